#!/usr/bin/env bash
# The demo: reads real query-named-block-nodes replies that QEMU 10.0 gave libvirt 9.0
# (tests/data/replies) and prints each node's dirty bitmaps, before and after an
# external snapshot propagated the checkpoint bitmaps into the new overlay.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --release --bin vcp
vcp=target/release/vcp
echo "== Domain lvtest, checkpoints chk1 and chk3 on one qcow2 layer:"
$vcp nodes tests/data/replies/09_snapshot_create_disk_only_snap1.json
echo
echo "== After the external snapshot snap1 and checkpoint chk4: the overlay (libvirt-4)"
echo "   carries copies of every recording bitmap, the backing layer keeps its own:"
$vcp nodes tests/data/replies/13_checkpoint_delete_chk1_after_snapshot.json
