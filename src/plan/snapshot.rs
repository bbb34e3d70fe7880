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
        actions.extend(propagate_bitmap_actions(
            nodes,
            &top.format_node,
            &sd.overlay_node,
        ));
        actions.push(Action::BlockdevSnapshot {
            node: top.format_node.clone(),
            overlay: sd.overlay_node.clone(),
        });
    }
    Ok(actions)
}

/// qemuSnapshotDiskBitmapsPropagate for one image: the persistent, recording,
/// consistent bitmaps of node `top_node` re-created on `overlay_node`, in QEMU's order
/// and with their granularity. Nothing when `nodes` does not know the node.
pub fn propagate_bitmap_actions(
    nodes: &NodeData,
    top_node: &str,
    overlay_node: &str,
) -> Vec<Action> {
    let Some(node) = nodes.get(top_node) else {
        return Vec::new();
    };
    node.bitmaps
        .iter()
        .filter(|b| b.is_healthy())
        .map(|b| Action::BitmapAdd {
            node: overlay_node.to_owned(),
            name: b.name.clone(),
            persistent: true,
            disabled: false,
            granularity: b.granularity,
        })
        .collect()
}
