//! The generic merge (qemuBlockGetBitmapMergeActions, SPEC 7.1), shared by backup,
//! size, block commit, block copy and block pull.

use super::TMP_ACTIVEWRITE;
use super::chain::bitmap_chain_is_valid;
use crate::model::domain::Image;
use crate::model::nodes::NodeData;
use crate::qmp::action::{Action, BitmapRef};

/// What to merge where.
#[derive(Debug, Clone, Copy)]
pub struct MergeSpec<'a> {
    /// The chain from the merge's top image down to the end of the backing chain.
    pub chain: &'a [Image],
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

/// The add/merge actions for `spec`: candidates are the bitmaps on the top image whose
/// chain is valid, processed in the reverse of QEMU's order.
pub fn bitmap_merge_actions(spec: &MergeSpec<'_>, nodes: &NodeData) -> Vec<Action> {
    let mut actions = Vec::new();
    let Some(top) = spec.chain.first() else {
        return actions;
    };
    let candidates: Vec<&str> = nodes
        .get(&top.format_node)
        .map(|n| {
            n.bitmaps
                .iter()
                .filter(|b| spec.bitmap.is_none_or(|only| only == b.name))
                .filter(|b| bitmap_chain_is_valid(spec.chain, &b.name, nodes))
                .map(|b| b.name.as_str())
                .collect()
        })
        .unwrap_or_default();
    let sources_end = spec.base.unwrap_or(spec.chain.len()).min(spec.chain.len());

    for name in candidates.into_iter().rev() {
        let (dst, persistent, disabled) = match spec.dst_name {
            Some(d) => (d, false, true),
            None => (name, true, false),
        };
        let mut granularity = 0;
        let mut sources = Vec::new();
        for image in &spec.chain[..sources_end] {
            if let Some(b) = nodes.bitmap(&image.format_node, name) {
                if sources.is_empty() {
                    granularity = b.granularity;
                }
                sources.push(BitmapRef {
                    node: image.format_node.clone(),
                    name: name.to_owned(),
                });
            }
        }
        if spec.dst_name.is_some() || nodes.bitmap(spec.target, name).is_none() {
            actions.push(Action::BitmapAdd {
                node: spec.target.to_owned(),
                name: dst.to_owned(),
                persistent,
                disabled,
                granularity,
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
