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

use crate::error::{Error, ErrorDomain, Result};
use crate::model::domain::{Disk, Domain, Image};

/// Disk `target` of `dom`, or VIR_ERR_INVALID_ARG "no disk named '%s'" (the wording of
/// libvirt's backup code).
pub(crate) fn disk<'a>(dom: &'a Domain, target: &str) -> Result<&'a Disk> {
    dom.disk(target).ok_or_else(|| {
        Error::invalid_arg(ErrorDomain::Qemu, format_args!("no disk named '{target}'"))
    })
}

/// Disk `target` and its active image; a disk without media is
/// VIR_ERR_CONFIG_UNSUPPORTED "disk '%s' is empty or readonly".
pub(crate) fn disk_top<'a>(dom: &'a Domain, target: &str) -> Result<(&'a Disk, &'a Image)> {
    let d = disk(dom, target)?;
    let top = d.top().ok_or_else(|| {
        Error::config_unsupported(
            ErrorDomain::Qemu,
            format_args!("disk '{target}' is empty or readonly"),
        )
    })?;
    Ok((d, top))
}
