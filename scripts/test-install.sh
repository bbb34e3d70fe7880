#!/usr/bin/env bash
# `meson install` into a staging folder installs the header, the static and shared
# libraries (with the versioned soname and its symlink) and a pkg-config file whose
# static flags come from rustc; a C program then builds against the installed copy.
set -euo pipefail
build=${1:?usage: test-install.sh BUILD_DIR}
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" >/dev/null
prefix=$(meson introspect "$build" --buildoptions | python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="prefix"][0])')
libdir=$(meson introspect "$build" --buildoptions | python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="libdir"][0])')
root="$dest$prefix"
lib="$root/$libdir"
for f in "$root/include/virtcheckpoint.h" "$lib/libvirtcheckpoint.a" "$lib/libvirtcheckpoint.so.0" \
         "$lib/pkgconfig/virtcheckpoint.pc"; do
    [ -e "$f" ] || { echo "not installed: $f"; exit 1; }
done
[ "$(readlink "$lib/libvirtcheckpoint.so")" = "libvirtcheckpoint.so.0" ] || { echo "bad .so symlink"; exit 1; }
objdump -p "$lib/libvirtcheckpoint.so.0" | grep -q 'SONAME *libvirtcheckpoint.so.0' || { echo "no versioned soname"; exit 1; }
export PKG_CONFIG_PATH="$lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$dest"
pkg-config --static --libs virtcheckpoint | grep -q -- '-lvirtcheckpoint' || { echo "pkg-config lacks -lvirtcheckpoint"; exit 1; }
pkg-config --static --libs virtcheckpoint | grep -q -- '-lpthread\|-lc' || { echo "pkg-config lacks Libs.private"; exit 1; }
cat > "$dest/use.c" <<'C'
#include <virtcheckpoint.h>
int main(void) { return vcp_version() == VCP_VERSION_NUMBER ? 0 : 1; }
C
# shellcheck disable=SC2046
cc -Werror -Wall "$dest/use.c" -o "$dest/use-static" $(pkg-config --cflags virtcheckpoint) \
    "$lib/libvirtcheckpoint.a" $(pkg-config --static --libs-only-l virtcheckpoint | sed 's/-lvirtcheckpoint//')
"$dest/use-static"
# shellcheck disable=SC2046
cc -Werror -Wall "$dest/use.c" -o "$dest/use-shared" $(pkg-config --cflags --libs virtcheckpoint)
LD_LIBRARY_PATH="$lib" "$dest/use-shared"
echo "installed and usable: header, libvirtcheckpoint.a, libvirtcheckpoint.so.0, virtcheckpoint.pc"
