//! The logic: one pure function per operation. Model in, actions out; no parsing, no
//! formatting, no I/O. Every operation that merges bitmaps goes through
//! [`merge::bitmap_merge_actions`], and every validity question through
//! [`chain::chain_state`].

pub mod align;
pub mod backup;
pub mod chain;
pub mod commit;
pub mod copy;
pub mod create;
pub mod delete;
pub mod merge;
pub mod offline;
pub mod pull;
pub mod reconcile;
pub mod redefine;
pub mod resolve;
pub mod size;
pub mod snapshot;

/// Temporary bitmap recording writes that reach the base (commit) or mirror (copy)
/// between the pivot and the merge.
pub const TMP_ACTIVEWRITE: &str = "libvirt-tmp-activewrite";
/// Temporary bitmap of the size query.
pub const TMP_SIZE: &str = "libvirt-tmp-size-xml";
