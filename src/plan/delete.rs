//! Checkpoint deletion (qemuCheckpointDiscardBitmaps, SPEC 5): pure removal of the
//! checkpoint's bitmap from every layer that has it, one transaction across the
//! checkpoint's disks, and the read-only backing layers to reopen around it.

pub use super::reopen::Reopen;
use crate::error::{Error, ErrorDomain, Result};
use crate::model::checkpoint::CheckpointDef;
use crate::model::domain::{Domain, Layer};
use crate::model::nodes::NodeData;
use crate::qmp::action::Action;

/// The plan for discarding one checkpoint's bitmaps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscardPlan {
    /// The transaction's actions.
    pub actions: Vec<Action>,
    /// Images to reopen, deepest first.
    pub reopen: Vec<Reopen>,
    /// Disks whose bitmap was found nowhere (only with `tolerate_missing`).
    pub missing: Vec<String>,
}

/// qemuCheckpointDiscardDiskBitmaps for one disk: removals in chain order for every
/// layer that has `bitmap`, and the indices of the non-top layers among them, deepest
/// first. Nothing found is libvirt's "not found in backing chain" error.
pub fn discard_disk_bitmaps<L: Layer>(
    chain: &[L],
    nodes: &NodeData,
    bitmap: &str,
    disk_target: &str,
) -> Result<(Vec<Action>, Vec<usize>)> {
    let mut actions = Vec::with_capacity(chain.len());
    let mut reopen = Vec::with_capacity(chain.len());
    for (i, image) in chain.iter().enumerate() {
        if nodes.bitmap(image.node(), bitmap).is_some() {
            actions.push(Action::remove(image.node(), bitmap));
            if i > 0 {
                reopen.push(i);
            }
        }
    }
    reopen.reverse();
    if actions.is_empty() {
        return Err(Error::internal(format_args!(
            "bitmap '{bitmap}' not found in backing chain of '{disk_target}'"
        )));
    }
    Ok((actions, reopen))
}

/// The removal plan for checkpoint `def` on domain `dom`. Disks no longer in the domain
/// are skipped. With `tolerate_missing` (not libvirt's behaviour) a disk whose bitmap
/// is gone from every layer is recorded in `missing` instead of failing the delete.
pub fn discard_actions(
    dom: &Domain,
    def: &CheckpointDef,
    nodes: &NodeData,
    tolerate_missing: bool,
) -> Result<DiscardPlan> {
    let mut plan = DiscardPlan::default();
    for cd in def.bitmap_disks() {
        let Some(disk) = dom.disk(&cd.name) else {
            continue;
        };
        let Some(bitmap) = cd.bitmap.as_deref() else {
            return Err(Error::invalid_arg(
                ErrorDomain::Qemu,
                format_args!(
                    "missing bitmap name for disk '{}' of checkpoint '{}'",
                    cd.name, def.name
                ),
            ));
        };
        match discard_disk_bitmaps(&disk.chain, nodes, bitmap, &disk.target) {
            Ok((actions, reopen)) => {
                plan.actions.extend(actions);
                plan.reopen
                    .extend(reopen.into_iter().map(|i| Reopen::of(disk, i)));
            }
            Err(_) if tolerate_missing => plan.missing.push(disk.target.clone()),
            Err(e) => return Err(e),
        }
    }
    Ok(plan)
}
