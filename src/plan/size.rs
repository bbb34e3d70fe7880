//! Checkpoint size (qemuCheckpointGetXMLDescUpdateSize; SPEC 6): merge each disk's
//! chain into a temporary bitmap, read its count back, remove it.

use super::TMP_SIZE;
use super::chain::bitmap_chain_is_valid;
use super::merge::{MergeSpec, bitmap_merge_actions};
use crate::model::checkpoint::CheckpointDef;
use crate::model::domain::{Domain, Layer};
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

/// One disk's part of a size query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSizeActions {
    /// Removal of a temporary bitmap left on the top by an earlier query.
    pub recovery: Option<Action>,
    /// The merge of the checkpoint's bitmaps along the chain into the temporary bitmap.
    pub merge: Vec<Action>,
    /// The temporary bitmap's removal, once its count was read.
    pub cleanup: Action,
}

/// One disk's part of the size query of checkpoint `bitmap` along `chain` (top
/// first), or `None` when the chain does not carry the bitmap validly (libvirt gives
/// such a disk no size, without error). Read the size back with [`measured_size`].
pub fn disk_size_actions<L: Layer>(
    chain: &[L],
    bitmap: &str,
    nodes: &NodeData,
) -> Option<DiskSizeActions> {
    let top = chain.first()?.node();
    if !bitmap_chain_is_valid(chain, bitmap, nodes) {
        return None;
    }
    Some(DiskSizeActions {
        recovery: nodes
            .bitmap(top, TMP_SIZE)
            .map(|_| Action::remove(top, TMP_SIZE)),
        merge: bitmap_merge_actions(
            &MergeSpec {
                chain,
                base: None,
                target: top,
                bitmap: Some(bitmap),
                dst_name: Some(TMP_SIZE),
                write_bitmap_src: None,
            },
            nodes,
        ),
        cleanup: Action::remove(top, TMP_SIZE),
    })
}

/// The size a query measured on the disk whose top is `top_node`: the count of its
/// temporary bitmap in `after` (the node data read after the merge transaction).
pub fn measured_size(after: &NodeData, top_node: &str) -> Option<u64> {
    after.bitmap(top_node, TMP_SIZE).map(|b| b.count)
}

/// Plans the size query of checkpoint `def`. Disks that are not `bitmap` disks, are gone
/// from the domain or whose chain is not valid get no size, without error.
pub fn size_actions(dom: &Domain, def: &CheckpointDef, nodes: &NodeData) -> SizePlan {
    let mut plan = SizePlan::default();
    for cd in def.bitmap_disks() {
        let Some(disk) = dom.disk(&cd.name) else {
            continue;
        };
        let Some(d) = disk_size_actions(&disk.chain, &def.name, nodes) else {
            continue;
        };
        plan.recovery.extend(d.recovery);
        plan.merge.extend(d.merge);
        plan.cleanup.push(d.cleanup);
        plan.disks
            .push((disk.target.clone(), disk.chain[0].format_node.clone()));
    }
    plan
}

/// Reads the sizes back from the node data taken after the merge transaction: for each
/// measured disk, the count of its temporary bitmap, or `None` if it was not found.
pub fn sizes_from_nodes(plan: &SizePlan, after: &NodeData) -> Vec<(String, Option<u64>)> {
    plan.disks
        .iter()
        .map(|(target, node)| (target.clone(), measured_size(after, node)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::nodes::Bitmap;

    fn bitmap(name: &str, count: u64) -> Bitmap {
        Bitmap {
            name: name.into(),
            recording: true,
            persistent: true,
            granularity: 65536,
            count,
            ..Default::default()
        }
    }

    /// One disk's part of the size query, on a chain of bare node names: a leftover
    /// temporary bitmap is removed first, a chain without the checkpoint's bitmap is
    /// not measured, and the size is the temporary bitmap's count afterwards.
    #[test]
    fn one_disk_is_measured_along_its_chain() {
        let nodes = NodeData::of([
            ("top", vec![bitmap("c1", 0), bitmap(TMP_SIZE, 7)]),
            ("base", vec![bitmap("c1", 4096)]),
        ]);
        let chain = ["top", "base"];
        let d = disk_size_actions(&chain, "c1", &nodes).unwrap();
        assert_eq!(d.recovery, Some(Action::remove("top", TMP_SIZE)));
        assert_eq!(d.cleanup, Action::remove("top", TMP_SIZE));
        assert!(
            matches!(d.merge.last(), Some(Action::BitmapMerge { node, target, bitmaps })
                if node == "top" && target == TMP_SIZE && bitmaps.len() == 2),
            "{:?}",
            d.merge
        );
        assert_eq!(disk_size_actions(&chain, "c2", &nodes), None);
        assert_eq!(disk_size_actions::<&str>(&[], "c1", &nodes), None);
        assert_eq!(measured_size(&nodes, "top"), Some(7));
        assert_eq!(measured_size(&nodes, "base"), None);
    }
}
