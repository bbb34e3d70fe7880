//! Checkpoint deletion (qemuCheckpointDiscardBitmaps, SPEC 5): pure removal of the
//! checkpoint's bitmap from every layer that has it, one transaction across the
//! checkpoint's disks, and the read-only backing layers to reopen around it.

use crate::error::{Error, ErrorDomain, Result};
use crate::model::checkpoint::CheckpointDef;
use crate::model::domain::{Disk, Domain, Image};
use crate::model::nodes::NodeData;
use crate::qmp::action::{Action, reopen_command};
use crate::qmp::json::Json;

/// A backing image to reopen read-write before the transaction and read-only after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reopen {
    /// Its format node.
    pub format_node: String,
    /// Its storage node.
    pub storage_node: String,
    /// The format node of the image below it, if any.
    pub backing_node: Option<String>,
}

impl Reopen {
    /// Layer `layer` of `disk`'s chain.
    pub fn of(disk: &Disk, layer: usize) -> Reopen {
        Reopen {
            format_node: disk.chain[layer].format_node.clone(),
            storage_node: disk.chain[layer].storage_node.clone(),
            backing_node: disk.chain.get(layer + 1).map(|b| b.format_node.clone()),
        }
    }

    /// The image of `dom` whose format node is `node`.
    pub fn of_node(dom: &Domain, node: &str) -> Result<Reopen> {
        let (disk, layer) = dom.find_node(node)?;
        Ok(Reopen::of(disk, layer))
    }

    /// The `blockdev-reopen` command libvirt sends for this image: read-write
    /// (`read_only` false) before the change, read-only after it.
    pub fn command(&self, read_only: bool) -> Json {
        reopen_command(
            &self.format_node,
            &self.storage_node,
            self.backing_node.as_deref(),
            read_only,
        )
    }
}

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
pub fn discard_disk_bitmaps(
    chain: &[Image],
    nodes: &NodeData,
    bitmap: &str,
    disk_target: &str,
) -> Result<(Vec<Action>, Vec<usize>)> {
    let mut actions = Vec::new();
    let mut reopen = Vec::new();
    for (i, image) in chain.iter().enumerate() {
        if nodes.bitmap(&image.format_node, bitmap).is_some() {
            actions.push(Action::remove(&image.format_node, bitmap));
            if i > 0 {
                reopen.insert(0, i);
            }
        }
    }
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
