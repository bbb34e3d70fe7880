//! Block commit (qemuBlockPivot, qemuBlockBitmapsHandleCommitFinish; SPEC 8).

use super::TMP_ACTIVEWRITE;
use super::merge::{MergeSpec, bitmap_merge_actions};
use crate::error::{Error, ErrorDomain, Result};
use crate::model::domain::Image;
use crate::model::nodes::NodeData;
use crate::qmp::action::Action;

fn check_range(chain: &[Image], top: usize, base: usize) -> Result<()> {
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
pub fn blockcommit_bitmap_actions(
    chain: &[Image],
    top: usize,
    base: usize,
    active: bool,
    nodes: &NodeData,
) -> Result<Vec<Action>> {
    check_range(chain, top, base)?;
    let base_node = chain[base].format_node.as_str();
    Ok(bitmap_merge_actions(
        &MergeSpec {
            chain: &chain[top..],
            base: Some(base - top),
            target: base_node,
            bitmap: None,
            dst_name: None,
            write_bitmap_src: active.then_some(base_node),
        },
        nodes,
    ))
}

/// A failed active commit: drop the activewrite bitmap from the base.
pub fn commit_failed_actions(base_node: &str) -> Vec<Action> {
    vec![Action::remove(base_node, TMP_ACTIVEWRITE)]
}
