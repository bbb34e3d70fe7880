//! Block commit (qemuBlockPivot, qemuBlockBitmapsHandleCommitFinish; SPEC 8).

use super::chain::chain_state;
use super::merge::{MergeSpec, bitmap_merge_actions};
use crate::error::{Error, ErrorDomain, Result};
use crate::model::domain::Layer;
use crate::model::nodes::NodeData;
use crate::qmp::action::Action;

/// A commit's `top` above its `base`, both within `chain`.
pub(crate) fn check_range<L: Layer>(chain: &[L], top: usize, base: usize) -> Result<()> {
    if top >= base || base >= chain.len() {
        return Err(Error::invalid_arg(
            ErrorDomain::Qemu,
            format_args!(
                "commit top {top} must be above base {base} within a chain of {} images",
                chain.len()
            ),
        ));
    }
    Ok(())
}

/// After the commit of `chain[top..base]` into `chain[base]` (indices into the disk's
/// chain before the commit; `active` when `top` is the active layer): every bitmap
/// valid from `top` is created on the base if missing and filled from each layer in
/// `[top, base)` (and the activewrite bitmap, which is then removed).
pub fn blockcommit_bitmap_actions<L: Layer>(
    chain: &[L],
    top: usize,
    base: usize,
    active: bool,
    nodes: &NodeData,
) -> Result<Vec<Action>> {
    check_range(chain, top, base)?;
    Ok(commit_finish_actions(
        &chain[top..],
        chain[base].node(),
        active,
        nodes,
    ))
}

/// qemuBlockBitmapsHandleCommitFinish at libvirt's granularity: `chain` is the chain
/// from the commit's top down as the driver's links give it, which may already stop
/// above the base (libvirt cuts the chain above the base before it merges). The
/// layers above `base_node` are the sources; every bitmap valid along `chain` is
/// created on the base if missing and filled (with the activewrite bitmap when
/// `active`, which is then removed).
pub fn commit_finish_actions<L: Layer>(
    chain: &[L],
    base_node: &str,
    active: bool,
    nodes: &NodeData,
) -> Vec<Action> {
    bitmap_merge_actions(
        &MergeSpec {
            chain,
            base: chain.iter().position(|l| l.node() == base_node),
            target: base_node,
            bitmap: None,
            dst_name: None,
            write_bitmap_src: active.then_some(base_node),
        },
        nodes,
    )
}

/// A non-active commit of `chain[top..]`'s upper layers into a base that cannot hold
/// persistent bitmaps (raw, qcow2 v2; see `holds_bitmaps`): the bitmaps the merge
/// would have carried into the base (those valid from `chain[top]`) are lost with the
/// committed layers, and their copies on the layers above `top` would still look valid
/// while missing the committed layers' writes. So those copies are removed, and a
/// backup from such a checkpoint is refused instead of silently incomplete; the
/// checkpoint's bitmap is then gone from the disk, as a reconcile reports. Returns the
/// removals (by bitmap, top first) and the layers above `top` to reopen read-write
/// around them (never the active layer), deepest first.
pub fn commit_lost_bitmaps<L: Layer>(
    chain: &[L],
    top: usize,
    nodes: &NodeData,
) -> (Vec<Action>, Vec<usize>) {
    let (mut removals, mut reopen) = (Vec::new(), Vec::new());
    let Some(committed) = chain.get(top..).filter(|c| !c.is_empty()) else {
        return (removals, reopen);
    };
    let names = nodes
        .get(committed[0].node())
        .map_or(&[][..], |n| &n.bitmaps[..]);
    for name in names.iter().map(|b| b.name.as_str()) {
        if !chain_state(committed, name, nodes).is_valid() {
            continue;
        }
        for (i, layer) in chain[..top].iter().enumerate() {
            if nodes.bitmap(layer.node(), name).is_some() {
                removals.push(Action::remove(layer.node(), name));
                if i > 0 && !reopen.contains(&i) {
                    reopen.push(i);
                }
            }
        }
    }
    reopen.sort_unstable_by(|a, b| b.cmp(a));
    (removals, reopen)
}

/// A failed active commit: drop the activewrite bitmap from the base.
pub fn commit_failed_actions(base_node: &str) -> Vec<Action> {
    super::activewrite_remove_actions(base_node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::nodes::{Bitmap, Node};

    fn node(name: &str, bitmaps: &[(&str, bool)]) -> Node {
        Node {
            name: name.into(),
            bitmaps: bitmaps
                .iter()
                .map(|&(b, recording)| Bitmap {
                    name: b.into(),
                    recording,
                    persistent: true,
                    granularity: 65536,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// libvirt cuts the chain above the base before the commit's bitmaps are handled,
    /// so validity is read along the layers above the base only: a copy on the base
    /// that stopped recording does not keep the top's bitmap from being merged.
    #[test]
    fn a_cut_chain_is_read_as_libvirt_reads_it() {
        let mut nodes = NodeData::new();
        nodes.insert(node("top", &[("a", true)])).unwrap();
        nodes.insert(node("mid", &[("a", true)])).unwrap();
        nodes.insert(node("base", &[("a", false)])).unwrap();
        let cut = ["top", "mid"];
        let whole = ["top", "mid", "base"];

        let merged = commit_finish_actions(&cut, "base", false, &nodes);
        assert_eq!(
            merged,
            vec![Action::BitmapMerge {
                node: "base".into(),
                target: "a".into(),
                bitmaps: ["top", "mid"]
                    .iter()
                    .map(|n| crate::qmp::action::BitmapRef {
                        node: (*n).into(),
                        name: "a".into()
                    })
                    .collect(),
            }]
        );
        // Along the whole chain the base's copy breaks it: nothing to merge.
        assert!(commit_finish_actions(&whole, "base", false, &nodes).is_empty());
        // The index form reads the whole chain, as before the cut.
        assert_eq!(
            blockcommit_bitmap_actions(&whole, 0, 2, false, &nodes).unwrap(),
            commit_finish_actions(&whole, "base", false, &nodes)
        );
    }
}
