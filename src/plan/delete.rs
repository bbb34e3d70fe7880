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
    /// Images to reopen read-write before the transaction, in libvirt's order: each
    /// disk's layers deepest first, the last disk's first (libvirt prepends every layer
    /// it finds, walking each disk from its top, to one list). The read-only reopens
    /// afterwards go the other way.
    pub reopen: Vec<Reopen>,
    /// Disks whose bitmap was found nowhere (only with `tolerate_missing`).
    pub missing: Vec<String>,
}

/// Where one disk's bitmap is, for qemuCheckpointDiscardDiskBitmaps: the layers of
/// `chain` that hold it, top first (never none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskDiscard<'a, L> {
    chain: &'a [L],
    bitmap: &'a str,
    layers: Vec<usize>,
}

impl<'a, L: Layer> DiskDiscard<'a, L> {
    /// The positions in the chain of the layers holding the bitmap, top first: one
    /// removal each (what [`DiskDiscard::actions`] names).
    pub fn layers(&self) -> &[usize] {
        &self.layers
    }

    /// The removals, in chain order.
    pub fn actions(&self) -> impl ExactSizeIterator<Item = Action> + '_ {
        self.layers
            .iter()
            .map(|&i| Action::remove(self.chain[i].node(), self.bitmap))
    }

    /// The non-top layers among them, deepest first: those to reopen read-write.
    pub fn reopen(&self) -> impl Iterator<Item = usize> + '_ {
        self.layers.iter().rev().copied().filter(|&i| i > 0)
    }
}

/// The layers of `chain` holding `bitmap` (qemuCheckpointDiscardDiskBitmaps for one
/// disk). Nothing found is libvirt's "not found in backing chain" error.
pub fn disk_discard<'a, L: Layer>(
    chain: &'a [L],
    nodes: &NodeData,
    bitmap: &'a str,
    disk_target: &str,
) -> Result<DiskDiscard<'a, L>> {
    // Sized for every layer: a bitmap is on most of them (grown, the vector cost a
    // delete more than its lookups).
    let mut layers = Vec::with_capacity(chain.len());
    layers.extend((0..chain.len()).filter(|&i| nodes.bitmap(chain[i].node(), bitmap).is_some()));
    if layers.is_empty() {
        return Err(Error::internal(format_args!(
            "bitmap '{bitmap}' not found in backing chain of '{disk_target}'"
        )));
    }
    Ok(DiskDiscard {
        chain,
        bitmap,
        layers,
    })
}

/// [`disk_discard`] as lists: the removals in chain order, and the non-top layers
/// holding the bitmap, deepest first.
pub fn discard_disk_bitmaps<L: Layer>(
    chain: &[L],
    nodes: &NodeData,
    bitmap: &str,
    disk_target: &str,
) -> Result<(Vec<Action>, Vec<usize>)> {
    let d = disk_discard(chain, nodes, bitmap, disk_target)?;
    Ok((d.actions().collect(), d.reopen().collect()))
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
        match disk_discard(&disk.chain, nodes, bitmap, &disk.target) {
            Ok(d) => {
                plan.actions.extend(d.actions());
                plan.reopen
                    .splice(0..0, d.reopen().map(|i| Reopen::at(disk, i, nodes)));
            }
            Err(_) if tolerate_missing => plan.missing.push(disk.target.clone()),
            Err(e) => return Err(e),
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::nodes::Bitmap;

    /// The layers holding the bitmap, wherever they are: removals top first, the
    /// layers to reopen deepest first and never the top; found nowhere is libvirt's
    /// error naming the disk.
    #[test]
    fn the_bitmap_is_removed_where_it_is_and_its_backing_layers_reopened() {
        let c1 = || {
            vec![Bitmap {
                name: "c1".into(),
                ..Default::default()
            }]
        };
        let nodes = NodeData::of([("l0", c1()), ("l1", Vec::new()), ("l2", c1()), ("l3", c1())]);
        let chain = ["l0", "l1", "l2", "l3"];
        let d = disk_discard(&chain, &nodes, "c1", "vda").unwrap();
        let removed: Vec<Action> = d.actions().collect();
        assert_eq!(
            removed,
            [
                Action::remove("l0", "c1"),
                Action::remove("l2", "c1"),
                Action::remove("l3", "c1")
            ]
        );
        assert_eq!(d.reopen().collect::<Vec<_>>(), [3, 2]);
        assert_eq!(
            discard_disk_bitmaps(&chain[1..], &nodes, "c1", "vda").unwrap(),
            (
                vec![Action::remove("l2", "c1"), Action::remove("l3", "c1")],
                vec![2, 1]
            )
        );
        let err = disk_discard(&chain, &nodes, "c9", "vda").unwrap_err();
        assert_eq!(
            err.message(),
            "internal error: bitmap 'c9' not found in backing chain of 'vda'"
        );
    }
}
