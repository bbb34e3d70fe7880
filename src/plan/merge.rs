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

/// The add/merge actions for `spec`: candidates are the bitmaps on the top image whose
/// chain is valid, processed in the reverse of QEMU's order.
pub fn bitmap_merge_actions<L: Layer>(spec: &MergeSpec<'_, L>, nodes: &NodeData) -> Vec<Action> {
    let mut actions = Vec::new();
    let Some(top) = spec.chain.first() else {
        return actions;
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
    let candidates: Vec<(&str, Vec<Option<&Bitmap>>)> = names
        .into_iter()
        .map(|name| {
            let found = spec
                .chain
                .iter()
                .map(|l| nodes.bitmap(l.node(), name))
                .collect();
            (name, found)
        })
        .filter(|(_, found): &(&str, Vec<Option<&Bitmap>>)| {
            layers_state(found.iter().copied()).is_valid()
        })
        .collect();

    for (name, found) in candidates.into_iter().rev() {
        let (dst, persistent, disabled) = match spec.dst_name {
            Some(d) => (d, false, true),
            None => (name, true, false),
        };
        let mut granularity = 0;
        let mut sources = Vec::with_capacity(sources_end + 1);
        for (image, b) in spec.chain[..sources_end].iter().zip(&found) {
            if let Some(b) = b {
                if sources.is_empty() {
                    granularity = b.granularity;
                }
                sources.push(BitmapRef {
                    node: image.node().to_owned(),
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
