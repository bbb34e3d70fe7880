//! The logic: one pure function per operation. Model in, actions out; no parsing, no
//! formatting, no I/O. Every operation that merges bitmaps goes through
//! [`merge::bitmap_merge_actions`], and every validity question through
//! [`chain::chain_state`].

pub(crate) mod adopt;
pub(crate) mod align;
pub(crate) mod backup;
pub(crate) mod chain;
pub(crate) mod commit;
pub(crate) mod copy;
pub(crate) mod create;
pub(crate) mod delete;
pub(crate) mod merge;
pub(crate) mod offline;
pub(crate) mod pull;
pub(crate) mod reconcile;
pub(crate) mod redefine;
pub(crate) mod reopen;
pub(crate) mod resolve;
pub(crate) mod size;
pub(crate) mod snapshot;
pub(crate) mod step;

/// Temporary bitmap recording writes that reach the base (commit) or mirror (copy)
/// between the pivot and the merge.
pub const TMP_ACTIVEWRITE: &str = "libvirt-tmp-activewrite";
/// Temporary bitmap of the size query.
pub const TMP_SIZE: &str = "libvirt-tmp-size-xml";

use crate::error::{Error, ErrorDomain, Result};
use crate::model::domain::{Disk, Domain, Image};
use crate::model::nodes::NodeData;
use crate::qmp::action::Action;

/// Whether `image` can hold persistent bitmaps: a qcow2 image (an unknown format is
/// taken as qcow2, as everywhere else) that `nodes` does not show as qcow2 v2 (compat
/// 0.10). QEMU refuses a persistent bitmap anywhere else ("Can't store persistent
/// bitmaps to ...").
pub(crate) fn holds_bitmaps(image: &Image, nodes: &NodeData) -> bool {
    (image.format.is_empty() || image.format == "qcow2")
        && !nodes.get(&image.format_node).is_some_and(|n| n.qcow2v2)
}

/// The transaction sent before `job-complete` of an active block commit (on the base)
/// or a block copy pivot (on the mirror): a transient, enabled
/// `libvirt-tmp-activewrite` bitmap on `node` that records the writes reaching it
/// between the pivot and the bitmap merge (qemuBlockPivot).
pub fn activewrite_actions(node: &str) -> Vec<Action> {
    vec![Action::BitmapAdd {
        node: node.to_owned(),
        name: TMP_ACTIVEWRITE.to_owned(),
        persistent: false,
        disabled: false,
        granularity: 0,
    }]
}

/// The removal of the pivot's `libvirt-tmp-activewrite` bitmap from `node`: after the
/// merge, on a failed job, or where nothing could be merged (a target that keeps no
/// bitmap).
pub fn activewrite_remove_actions(node: &str) -> Vec<Action> {
    vec![Action::remove(node, TMP_ACTIVEWRITE)]
}

/// Disk `target` and its active image; a disk without media is
/// VIR_ERR_CONFIG_UNSUPPORTED "disk '%s' is empty or readonly".
pub(crate) fn disk_top<'a>(dom: &'a Domain, target: &str) -> Result<(&'a Disk, &'a Image)> {
    let d = dom.find_disk(target)?;
    let top = d.top().ok_or_else(|| {
        Error::config_unsupported(
            ErrorDomain::Qemu,
            format_args!("disk '{target}' is empty or readonly"),
        )
    })?;
    Ok((d, top))
}
