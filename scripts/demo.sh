#!/usr/bin/env bash
# The demo: starts a real, guest-less QEMU, creates checkpoints, takes full and
# incremental backups across an external snapshot with the transactions virtcheckpoint
# plans, and verifies every backup with qemu-img. Installs QEMU first when it can (as
# root); without QEMU it says so and prints the plans only.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! command -v qemu-system-x86_64 >/dev/null; then
    if [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null; then
        bash scripts/install-qemu.sh >/dev/null 2>&1 || echo "(could not install QEMU)"
    fi
fi
cargo build --quiet --release -p vcp-harness --bin vcp-demo || exit 1
exec target/release/vcp-demo
