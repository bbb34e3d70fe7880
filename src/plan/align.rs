//! Disk alignment of a checkpoint definition against a domain
//! (virDomainCheckpointAlignDisks + virDomainCheckpointDefAssignBitmapNames; SPEC 2.3).

use crate::error::{Error, ErrorDomain, Result};
use crate::model::checkpoint::{CheckpointDef, CheckpointDisk, DiskCheckpointKind};
use crate::model::domain::Domain;

const DOM: ErrorDomain = ErrorDomain::DomainCheckpoint;

fn unsupported(detail: impl std::fmt::Display) -> Error {
    Error::config_unsupported(DOM, detail)
}

/// Every `bitmap` disk without a bitmap name gets the checkpoint's name.
pub fn assign_bitmap_names(def: &mut CheckpointDef) {
    let name = def.name.clone();
    for d in &mut def.disks {
        if d.kind == DiskCheckpointKind::Bitmap && d.bitmap.is_none() {
            d.bitmap = Some(name.clone());
        }
    }
}

/// Aligns `def`'s disks with `dom`: every domain disk once, in domain order, requested
/// ones as given (names rewritten to targets), the rest defaulted; then default bitmap
/// names. On error `def` is unchanged.
pub fn align_disks(def: &mut CheckpointDef, dom: &Domain) -> Result<()> {
    if def.disks.len() > dom.disks.len() {
        return Err(unsupported("too many disk checkpoint requests for domain"));
    }
    if dom.disks.is_empty() {
        return Err(unsupported(
            "domain must have at least one disk to perform checkpoints",
        ));
    }
    let default_kind = if def.disks_given {
        DiskCheckpointKind::No
    } else {
        DiskCheckpointKind::Bitmap
    };
    let mut slots: Vec<Option<CheckpointDisk>> = vec![None; dom.disks.len()];
    for req in &def.disks {
        let idx = dom
            .disk_index_by_name(&req.name)
            .ok_or_else(|| unsupported(format_args!("no disk named '{}'", req.name)))?;
        if slots[idx].is_some() {
            return Err(unsupported(format_args!(
                "disk '{}' specified twice",
                req.name
            )));
        }
        let disk = &dom.disks[idx];
        if (disk.is_empty() || disk.readonly) && req.kind != DiskCheckpointKind::No {
            return Err(unsupported(format_args!(
                "disk '{}' is empty or readonly",
                disk.target
            )));
        }
        let mut d = req.clone();
        d.name = disk.target.clone();
        slots[idx] = Some(d);
    }
    def.disks = slots
        .into_iter()
        .zip(&dom.disks)
        .map(|(slot, disk)| {
            slot.unwrap_or_else(|| CheckpointDisk {
                name: disk.target.clone(),
                kind: if disk.is_empty() || disk.readonly {
                    DiskCheckpointKind::No
                } else {
                    default_kind
                },
                bitmap: None,
                size: None,
            })
        })
        .collect();
    for d in &mut def.disks {
        if d.kind == DiskCheckpointKind::Default {
            d.kind = default_kind;
        }
    }
    assign_bitmap_names(def);
    Ok(())
}
