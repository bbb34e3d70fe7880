//! Block copy (qemuBlockBitmapsHandleBlockcopy; SPEC 9).

use super::merge::{MergeSpec, bitmap_merge_actions};
use crate::model::domain::Layer;
use crate::model::nodes::NodeData;
use crate::qmp::action::Action;

/// After the pivot: every bitmap valid from the old top is created on the mirror unless
/// already there, and filled from the old chain's layers (only the top when
/// `shallow`) plus the activewrite bitmap, which is then removed.
pub fn blockcopy_bitmap_actions<L: Layer>(
    chain: &[L],
    mirror_node: &str,
    shallow: bool,
    nodes: &NodeData,
) -> Vec<Action> {
    bitmap_merge_actions(
        &MergeSpec {
            chain,
            base: if shallow && chain.len() > 1 {
                Some(1)
            } else {
                None
            },
            target: mirror_node,
            bitmap: None,
            dst_name: None,
            write_bitmap_src: Some(mirror_node),
        },
        nodes,
    )
}
