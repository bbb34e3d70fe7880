#!/usr/bin/env bash
# Proves that a parent Meson project builds and links virtcheckpoint as a subproject:
# copies the tracked sources under <tmp>/parent/subprojects/virtcheckpoint, then runs
# `meson setup` + `meson test` in the parent.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/parent/subprojects/virtcheckpoint"
cp "$src"/tests/meson-subproject/* "$tmp/parent/"
(cd "$src" && git ls-files -z --cached --others --exclude-standard \
    | xargs -0 cp --parents -t "$tmp/parent/subprojects/virtcheckpoint")
# Reuse the crates already downloaded; the subproject builds its own target dir.
meson setup "$tmp/parent/build" "$tmp/parent" >"$tmp/setup.log" || { cat "$tmp/setup.log"; exit 1; }
meson test -C "$tmp/parent/build" --print-errorlogs
