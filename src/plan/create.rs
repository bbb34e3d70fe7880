//! Checkpoint creation (qemuCheckpointPrepare + qemuCheckpointAddActions after the
//! "don't chain bitmaps" change, SPEC 3): one new persistent, recording bitmap per
//! participating disk, and nothing else.

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::model::checkpoint::CheckpointDef;
use crate::model::domain::Domain;
use crate::model::nodes::NodeData;
use crate::qmp::action::Action;

/// QEMU's limit on bitmap names, in bytes.
pub const MAX_BITMAP_NAME: usize = 1023;

fn unsupported(detail: impl std::fmt::Display) -> Error {
    Error::config_unsupported(ErrorDomain::Qemu, detail)
}

/// The create-time checks of SPEC 3 step 4 for every `bitmap` disk, plus — when the
/// node data is given — what QEMU would refuse: a bitmap of that name already on the
/// node, a name that is empty or over 1023 bytes, a qcow2 v2 image.
pub fn check_create(dom: &Domain, def: &CheckpointDef, nodes: Option<&NodeData>) -> Result<()> {
    for cd in def.bitmap_disks() {
        let bitmap = cd.bitmap.as_deref().unwrap_or("");
        if bitmap != def.name {
            return Err(unsupported(format_args!(
                "bitmap for disk '{}' must match checkpoint name '{}'",
                cd.name, def.name
            )));
        }
        let Some(disk) = dom.disk(&cd.name) else {
            continue;
        };
        let Some(top) = disk.top() else {
            return Err(unsupported(format_args!(
                "disk '{}' is empty or readonly",
                cd.name
            )));
        };
        if top.format != "qcow2" {
            return Err(unsupported(format_args!(
                "checkpoint for disk {} unsupported for storage type {}",
                cd.name,
                if top.format.is_empty() {
                    "none"
                } else {
                    &top.format
                }
            )));
        }
        if bitmap.is_empty() || bitmap.len() > MAX_BITMAP_NAME {
            return Err(unsupported(format_args!(
                "bitmap name for disk '{}' must be 1 to {MAX_BITMAP_NAME} bytes long, not {}",
                cd.name,
                bitmap.len()
            )));
        }
        if let Some(node) = nodes.and_then(|n| n.get(&top.format_node)) {
            if node.qcow2v2 {
                return Err(unsupported(format_args!(
                    "checkpoint for disk {} unsupported: image '{}' is qcow2 v2 (compat 0.10), which cannot store persistent bitmaps",
                    cd.name, top.source
                )));
            }
            if node.bitmap(bitmap).is_some() {
                return Err(Error::new(
                    ErrorCode::OperationFailed,
                    ErrorDomain::Qemu,
                    format_args!(
                        "bitmap '{bitmap}' already exists on node '{}' of disk '{}'",
                        top.format_node, cd.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The smallest and largest bitmap granularity QEMU accepts, in bytes.
pub const MIN_GRANULARITY: u64 = 512;
/// See [`MIN_GRANULARITY`].
pub const MAX_GRANULARITY: u64 = 1 << 31;
/// The largest bitmap QEMU keeps, in bytes (one bit per granule).
pub const MAX_BITMAP_BYTES: u64 = 512 << 20;

/// Checks a checkpoint granularity for a disk of `virtual_size` bytes: a power of two
/// from 512 B to 2 GiB, whose bitmap of the whole disk fits QEMU's 512 MiB (so 64 KiB
/// covers 256 TiB). VIR_ERR_CONFIG_UNSUPPORTED otherwise, naming the disk.
pub fn check_granularity(disk: &str, granularity: u64, virtual_size: u64) -> Result<()> {
    if !granularity.is_power_of_two() || !(MIN_GRANULARITY..=MAX_GRANULARITY).contains(&granularity)
    {
        return Err(unsupported(format_args!(
            "granularity {granularity} for disk '{disk}' must be a power of two from {MIN_GRANULARITY} to {MAX_GRANULARITY} bytes"
        )));
    }
    let bits = virtual_size.div_ceil(granularity);
    if bits.div_ceil(8) > MAX_BITMAP_BYTES {
        let least = virtual_size
            .div_ceil(MAX_BITMAP_BYTES * 8)
            .next_power_of_two();
        return Err(unsupported(format_args!(
            "granularity {granularity} for disk '{disk}' of {virtual_size} bytes needs a bitmap over QEMU's 512 MiB: use {least} or more"
        )));
    }
    Ok(())
}

/// How a checkpoint is created beyond libvirt's definition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// The bitmaps' granularity in bytes (`None`: QEMU's default, as libvirt does). It
    /// is checked against each disk's virtual size, which the node data must give.
    pub granularity: Option<u64>,
}

/// The transaction actions that create checkpoint `def`: for each `bitmap` disk present
/// in the domain, in disk order, a `block-dirty-bitmap-add` on the disk's top node with
/// `persistent: true, disabled: false` and QEMU's default granularity.
pub fn add_actions(
    dom: &Domain,
    def: &CheckpointDef,
    nodes: Option<&NodeData>,
) -> Result<Vec<Action>> {
    add_actions_with(dom, def, nodes, CreateOptions::default())
}

/// [`add_actions`] with [`CreateOptions`]: with a granularity, every disk's bitmap gets
/// it, after it was checked for every disk (nothing is planned when one fails). The
/// chain stays uniform: snapshot propagation, commit and copy give each bitmap's new
/// copies the granularity of its top copy.
pub fn add_actions_with(
    dom: &Domain,
    def: &CheckpointDef,
    nodes: Option<&NodeData>,
    opts: CreateOptions,
) -> Result<Vec<Action>> {
    check_create(dom, def, nodes)?;
    if let Some(g) = opts.granularity {
        for cd in def.bitmap_disks() {
            let Some(top) = dom.disk(&cd.name).and_then(|d| d.top()) else {
                continue;
            };
            let size = nodes
                .and_then(|n| n.get(&top.format_node))
                .map(|n| n.capacity)
                .ok_or_else(|| {
                    Error::invalid_arg(
                        ErrorDomain::Qemu,
                        format_args!(
                            "a granularity needs the node data of disk '{}' (its virtual size)",
                            cd.name
                        ),
                    )
                })?;
            check_granularity(&cd.name, g, size)?;
        }
    }
    Ok(def
        .bitmap_disks()
        .filter_map(|cd| {
            let top = dom.disk(&cd.name)?.top()?;
            Some(Action::BitmapAdd {
                node: top.format_node.clone(),
                name: cd.bitmap.clone().unwrap_or_else(|| def.name.clone()),
                persistent: true,
                disabled: false,
                granularity: opts.granularity.unwrap_or(0),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granularity_limits() {
        const TIB: u64 = 1 << 40;
        check_granularity("vda", 65536, 256 * TIB).unwrap();
        let e = check_granularity("vda", 65536, 256 * TIB + 1).unwrap_err();
        assert!(e.message().contains("use 131072 or more"), "{e}");
        check_granularity("vda", 4 << 20, 1 << 50).unwrap();
        for bad in [0, 256, 3 << 16, 1 << 32] {
            let e = check_granularity("vda", bad, 1 << 30).unwrap_err();
            assert_eq!(e.code(), ErrorCode::ConfigUnsupported);
            assert!(e.message().contains("must be a power of two"), "{e}");
        }
        check_granularity("vda", 512, 1 << 30).unwrap();
        check_granularity("vda", 1 << 31, 1 << 62).unwrap();
    }
}
