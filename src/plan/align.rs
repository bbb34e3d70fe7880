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
    // libvirt's rule: no disk listed (no `<disks>`, or an empty one) asks for a bitmap
    // on every disk that can have one; listed disks leave the others out.
    let default_kind = if !def.disks.is_empty() {
        DiskCheckpointKind::No
    } else {
        DiskCheckpointKind::Bitmap
    };
    let mut slots: Vec<Option<CheckpointDisk>> = vec![None; dom.disks.len()];
    let names = dom.disk_names();
    for req in &def.disks {
        let idx = names
            .find(&req.name)
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
                req.name
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::domain::{Disk, Image};

    fn disk(target: &str, source: Option<&str>, readonly: bool) -> Disk {
        Disk {
            target: target.into(),
            readonly,
            chain: source
                .map(|s| Image {
                    source: s.into(),
                    format: "qcow2".into(),
                    ..Image::default()
                })
                .into_iter()
                .collect(),
            ..Disk::default()
        }
    }

    fn domain() -> Domain {
        Domain {
            disks: vec![
                disk("vda", Some("/img/a.qcow2"), false),
                disk("vdb", Some("pool/vol"), false),
                disk("vdc", Some("/img/ro.qcow2"), true),
                disk("sda", None, false),
            ],
            ..Domain::default()
        }
    }

    fn requesting(names: &[&str]) -> CheckpointDef {
        let mut def = CheckpointDef::new("c1", 1).unwrap();
        def.disks = names
            .iter()
            .map(|n| CheckpointDisk {
                name: (*n).into(),
                kind: DiskCheckpointKind::Bitmap,
                bitmap: None,
                size: None,
            })
            .collect();
        def
    }

    fn shape(def: &CheckpointDef) -> Vec<(String, DiskCheckpointKind, Option<String>)> {
        def.disks
            .iter()
            .map(|d| (d.name.clone(), d.kind, d.bitmap.clone()))
            .collect()
    }

    #[test]
    fn no_disk_listed_gives_every_writable_disk_with_media_a_bitmap() {
        let mut def = requesting(&[]);
        align_disks(&mut def, &domain()).unwrap();
        let c1 = Some("c1".to_owned());
        assert_eq!(
            shape(&def),
            vec![
                ("vda".into(), DiskCheckpointKind::Bitmap, c1.clone()),
                ("vdb".into(), DiskCheckpointKind::Bitmap, c1),
                ("vdc".into(), DiskCheckpointKind::No, None),
                ("sda".into(), DiskCheckpointKind::No, None),
            ]
        );
    }

    #[test]
    fn a_path_names_a_disk_only_with_a_leading_slash() {
        let mut def = requesting(&["/img/a.qcow2"]);
        align_disks(&mut def, &domain()).unwrap();
        assert_eq!(def.disks[0].name, "vda");
        assert_eq!(def.disks[1].kind, DiskCheckpointKind::No);
        // libvirt reads a name without '/' as a target, even when a source matches it.
        let mut def = requesting(&["pool/vol"]);
        let err = align_disks(&mut def, &domain()).unwrap_err();
        assert_eq!(
            err.message(),
            "unsupported configuration: no disk named 'pool/vol'"
        );
        assert_eq!(def.disks[0].name, "pool/vol", "unchanged on error");
    }

    #[test]
    fn a_path_two_disks_share_names_neither() {
        let mut dom = domain();
        dom.disks.push(disk("vdd", Some("/img/a.qcow2"), false));
        let mut def = requesting(&["/img/a.qcow2"]);
        let err = align_disks(&mut def, &dom).unwrap_err();
        assert_eq!(
            err.message(),
            "unsupported configuration: no disk named '/img/a.qcow2'"
        );
        let mut def = requesting(&["vdd"]);
        align_disks(&mut def, &dom).unwrap();
        assert_eq!(
            def.disks[4].kind,
            DiskCheckpointKind::Bitmap,
            "the target still names it"
        );
    }

    #[test]
    fn a_refused_disk_is_named_as_it_was_requested() {
        let mut def = requesting(&["/img/ro.qcow2"]);
        let err = align_disks(&mut def, &domain()).unwrap_err();
        assert_eq!(
            err.message(),
            "unsupported configuration: disk '/img/ro.qcow2' is empty or readonly"
        );
        let mut def = requesting(&["vda", "/img/a.qcow2"]);
        let err = align_disks(&mut def, &domain()).unwrap_err();
        assert_eq!(
            err.message(),
            "unsupported configuration: disk '/img/a.qcow2' specified twice"
        );
    }
}
