#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh machine of this project's kind
# (Debian 12 with rustup's toolchain): Meson, Ninja, valgrind, pkg-config, QEMU 10.
# Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail

need=()
command -v meson >/dev/null || need+=(meson)
command -v ninja >/dev/null || need+=(ninja-build)
command -v valgrind >/dev/null || need+=(valgrind)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v c++ >/dev/null || need+=(g++)

if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# QEMU 10 (system emulator from bookworm-backports, next to the machine's qemu-utils).
bash "$(dirname "$0")/install-qemu.sh"
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt >/dev/null 2>&1 || true
