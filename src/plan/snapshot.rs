//! External snapshot bitmap propagation (qemuSnapshotDiskBitmapsPropagate, SPEC 11).

use crate::error::Result;
use crate::model::domain::Domain;
use crate::model::nodes::NodeData;
use crate::qmp::action::Action;

/// One disk getting an external snapshot: the new overlay's format node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDisk {
    /// The disk's target.
    pub target: String,
    /// The new overlay's format node, already attached with `backing: null`.
    pub overlay_node: String,
}

/// For each disk: the persistent, recording, consistent bitmaps of its current top
/// re-created on the overlay (QEMU's order, same granularity), then its
/// `blockdev-snapshot`. One transaction for all disks.
pub fn snapshot_bitmap_actions(
    dom: &Domain,
    disks: &[SnapshotDisk],
    nodes: &NodeData,
) -> Result<Vec<Action>> {
    let mut actions = Vec::new();
    for sd in disks {
        let (_, top) = super::disk_top(dom, &sd.target)?;
        if let Some(node) = nodes.get(&top.format_node) {
            for b in node.bitmaps.iter().filter(|b| b.is_healthy()) {
                actions.push(Action::BitmapAdd {
                    node: sd.overlay_node.clone(),
                    name: b.name.clone(),
                    persistent: true,
                    disabled: false,
                    granularity: b.granularity,
                });
            }
        }
        actions.push(Action::BlockdevSnapshot {
            node: top.format_node.clone(),
            overlay: sd.overlay_node.clone(),
        });
    }
    Ok(actions)
}
