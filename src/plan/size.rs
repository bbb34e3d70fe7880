//! Checkpoint size (qemuCheckpointGetXMLDescUpdateSize; SPEC 6): merge each disk's
//! chain into a temporary bitmap, read its count back, remove it.

use super::TMP_SIZE;
use super::chain::bitmap_chain_is_valid;
use super::merge::{MergeSpec, bitmap_merge_actions};
use crate::model::checkpoint::CheckpointDef;
use crate::model::domain::Domain;
use crate::model::nodes::NodeData;
use crate::qmp::action::Action;

/// The three transactions of a size query, and the disks measured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SizePlan {
    /// Removal of leftover temporary bitmaps (send first, if not empty).
    pub recovery: Vec<Action>,
    /// The merges (send second).
    pub merge: Vec<Action>,
    /// The removals once the counts were read (send last).
    pub cleanup: Vec<Action>,
    /// (disk target, top node) of every disk measured.
    pub disks: Vec<(String, String)>,
}

/// Plans the size query of checkpoint `def`. Disks that are not `bitmap` disks, are gone
/// from the domain or whose chain is not valid get no size, without error.
pub fn size_actions(dom: &Domain, def: &CheckpointDef, nodes: &NodeData) -> SizePlan {
    let mut plan = SizePlan::default();
    for cd in def.bitmap_disks() {
        let Some(disk) = dom.disk(&cd.name) else {
            continue;
        };
        let Some(top) = disk.top() else {
            continue;
        };
        if !bitmap_chain_is_valid(&disk.chain, &def.name, nodes) {
            continue;
        }
        if nodes.bitmap(&top.format_node, TMP_SIZE).is_some() {
            plan.recovery
                .push(Action::remove(&top.format_node, TMP_SIZE));
        }
        plan.merge.extend(bitmap_merge_actions(
            &MergeSpec {
                chain: &disk.chain,
                base: None,
                target: &top.format_node,
                bitmap: Some(&def.name),
                dst_name: Some(TMP_SIZE),
                write_bitmap_src: None,
            },
            nodes,
        ));
        plan.cleanup
            .push(Action::remove(&top.format_node, TMP_SIZE));
        plan.disks
            .push((disk.target.clone(), top.format_node.clone()));
    }
    plan
}

/// Reads the sizes back from the node data taken after the merge transaction: for each
/// measured disk, the count of its temporary bitmap, or `None` if it was not found.
pub fn sizes_from_nodes(plan: &SizePlan, after: &NodeData) -> Vec<(String, Option<u64>)> {
    plan.disks
        .iter()
        .map(|(target, node)| {
            (
                target.clone(),
                after.bitmap(node, TMP_SIZE).map(|b| b.count),
            )
        })
        .collect()
}

/// Step two of the size query: re-derives the plan from `before` (the node data the
/// plan was made from), reads each measured disk's size from `after` (read after the
/// merge transaction) and stores it in `def`; other disks get none. Returns the number
/// of disks measured.
pub fn read_sizes(
    dom: &Domain,
    def: &mut CheckpointDef,
    before: &NodeData,
    after: &NodeData,
) -> usize {
    let plan = size_actions(dom, def, before);
    let sizes = sizes_from_nodes(&plan, after);
    apply_sizes(def, &sizes);
    sizes.iter().filter(|(_, s)| s.is_some()).count()
}

/// Writes the sizes into the definition (disks without one get none).
pub fn apply_sizes(def: &mut CheckpointDef, sizes: &[(String, Option<u64>)]) {
    for d in &mut def.disks {
        d.size = sizes
            .iter()
            .find(|(t, _)| *t == d.name)
            .and_then(|(_, s)| *s);
    }
}
