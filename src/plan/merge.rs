//! The generic merge (qemuBlockGetBitmapMergeActions, SPEC 7.1), shared by backup,
//! size, block commit, block copy and block pull.

use super::TMP_ACTIVEWRITE;
use super::chain::layers_state;
use crate::model::domain::{Image, Layer};
use crate::model::nodes::{Bitmap, NodeData};
use crate::qmp::action::{Action, BitmapRef};

/// What to merge where.
#[derive(Debug, Clone, Copy)]
pub struct MergeSpec<'a, L: Layer = Image> {
    /// The chain from the merge's top image down to the end of the backing chain.
    pub chain: &'a [L],
    /// Index in `chain` of the base image, which is not a source; `None` = to the end.
    pub base: Option<usize>,
    /// Node that receives the merged bitmaps.
    pub target: &'a str,
    /// Only this bitmap; `None` = every bitmap valid from the top.
    pub bitmap: Option<&'a str>,
    /// Destination name (created transient and disabled); `None` = the bitmap's own
    /// name, created persistent and enabled only where the target lacks it.
    pub dst_name: Option<&'a str>,
    /// Node whose `libvirt-tmp-activewrite` bitmap is merged in too, then removed.
    pub write_bitmap_src: Option<&'a str>,
}

/// One bitmap's part of the generic merge: where its copies are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeOne<'a> {
    /// The bitmap (a candidate whose chain is valid from the top).
    pub name: &'a str,
    /// Whether the destination is added before the merge: always under a `dst_name`,
    /// else only where the target lacks the bitmap.
    pub add: bool,
    /// The added destination's granularity: that of the first source (0: none).
    pub granularity: u64,
    /// The positions in the chain of the sources holding the bitmap, top first.
    pub sources: Vec<usize>,
}

/// The generic merge for `spec` as positions: the candidates are the bitmaps on the
/// top image whose chain is valid, in the order of their actions (the reverse of
/// QEMU's). [`bitmap_merge_actions`] names them; a caller holding the chain's node
/// names can name them itself.
pub fn merge_plan<'a, L: Layer>(spec: &MergeSpec<'a, L>, nodes: &'a NodeData) -> Vec<MergeOne<'a>> {
    let Some(top) = spec.chain.first() else {
        return Vec::new();
    };
    let names: Vec<&str> = match spec.bitmap {
        // One bitmap: found by name (the first of that name, as libvirt's walk does).
        Some(only) => nodes
            .bitmap(top.node(), only)
            .map(|b| b.name.as_str())
            .into_iter()
            .collect(),
        None => nodes
            .get(top.node())
            .map(|n| n.bitmaps.iter().map(|b| b.name.as_str()).collect())
            .unwrap_or_default(),
    };
    let sources_end = spec.base.unwrap_or(spec.chain.len()).min(spec.chain.len());
    // Each candidate's copy on every layer, looked up once for the validity check
    // and the sources; the valid ones are processed in the reverse of QEMU's order.
    let mut plan: Vec<MergeOne<'a>> = names
        .into_iter()
        .filter_map(|name| {
            let found: Vec<Option<&Bitmap>> = spec
                .chain
                .iter()
                .map(|l| nodes.bitmap(l.node(), name))
                .collect();
            if !layers_state(found.iter().copied()).is_valid() {
                return None;
            }
            let mut sources = Vec::with_capacity(sources_end);
            sources.extend((0..sources_end).filter(|&i| found[i].is_some()));
            Some(MergeOne {
                name,
                add: spec.dst_name.is_some() || nodes.bitmap(spec.target, name).is_none(),
                granularity: sources
                    .first()
                    .map_or(0, |&i| found[i].map_or(0, |b| b.granularity)),
                sources,
            })
        })
        .collect();
    plan.reverse();
    plan
}

/// The add/merge actions for `spec`: [`merge_plan`] named, with the destination
/// (`dst_name`, transient and disabled, or the bitmap's own name, persistent and
/// enabled) and `libvirt-tmp-activewrite` of `write_bitmap_src` merged in, then removed.
pub fn bitmap_merge_actions<L: Layer>(spec: &MergeSpec<'_, L>, nodes: &NodeData) -> Vec<Action> {
    let mut actions = Vec::new();
    for one in merge_plan(spec, nodes) {
        let (dst, persistent, disabled) = match spec.dst_name {
            Some(d) => (d, false, true),
            None => (one.name, true, false),
        };
        // Room for the write node's source too.
        let mut sources = Vec::with_capacity(one.sources.len() + 1);
        sources.extend(one.sources.iter().map(|&i| BitmapRef {
            node: spec.chain[i].node().to_owned(),
            name: one.name.to_owned(),
        }));
        if one.add {
            actions.push(Action::BitmapAdd {
                node: spec.target.to_owned(),
                name: dst.to_owned(),
                persistent,
                disabled,
                granularity: one.granularity,
            });
        }
        if let Some(w) = spec.write_bitmap_src {
            sources.push(BitmapRef {
                node: w.to_owned(),
                name: TMP_ACTIVEWRITE.to_owned(),
            });
        }
        actions.push(Action::BitmapMerge {
            node: spec.target.to_owned(),
            target: dst.to_owned(),
            bitmaps: sources,
        });
    }
    if let Some(w) = spec.write_bitmap_src {
        actions.push(Action::remove(w, TMP_ACTIVEWRITE));
    }
    actions
}
