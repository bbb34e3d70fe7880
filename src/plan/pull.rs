//! Block pull (qemuBlockJobProcessEventCompletedPullBitmaps; SPEC 10).

use super::merge::{MergeSpec, bitmap_merge_actions};
use crate::model::domain::Layer;
use crate::model::nodes::NodeData;
use crate::qmp::action::Action;

/// After a pull of everything above `base` (index in the chain; `None` = whole chain)
/// into the top: each valid bitmap of the top gets the same-named bitmaps of the
/// pulled layers merged into it.
pub fn blockpull_bitmap_actions<L: Layer>(
    chain: &[L],
    base: Option<usize>,
    nodes: &NodeData,
) -> Vec<Action> {
    let Some(top) = chain.first() else {
        return Vec::new();
    };
    bitmap_merge_actions(
        &MergeSpec {
            chain,
            base,
            target: top.node(),
            bitmap: None,
            dst_name: None,
            write_bitmap_src: None,
        },
        nodes,
    )
}
