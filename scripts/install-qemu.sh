#!/usr/bin/env bash
# Installs qemu-system-x86 10.0 (Debian bookworm-backports) next to the machine's
# qemu-utils 10.0, through a private APT sources list derived from the machine's own
# Debian source, so nothing under /etc/apt changes. Plain `apt-get install
# qemu-system-x86` would take bookworm's 7.2 and remove qemu-utils 10. Idempotent.
set -euo pipefail

if command -v qemu-system-x86_64 >/dev/null && qemu-system-x86_64 --version | grep -q 'version 10\.'; then
    exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
src=/etc/apt/sources.list.d/debian.sources
if [ ! -r "$src" ]; then
    echo "install-qemu: $src not found; install qemu-system-x86 (>= 10.0) by hand" >&2
    exit 1
fi
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
mkdir -p "$d/lists/partial" "$d/archives/partial" "$d/parts"
awk '/^Suites:/ && !done {print $0" bookworm-backports"; done=1; next} {print}' "$src" > "$d/parts/debian.sources"
o=(-o Dir::Etc::sourcelist=/dev/null -o Dir::Etc::sourceparts="$d/parts"
   -o Dir::State::lists="$d/lists" -o Dir::Cache::archives="$d/archives")
DEBIAN_FRONTEND=noninteractive $sudo apt-get "${o[@]}" update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get "${o[@]}" install -y -qq --no-install-recommends \
    -t bookworm-backports qemu-system-x86 qemu-utils
qemu-system-x86_64 --version | head -1
