//! Steps on checkpoints themselves: create, delete, redefine, size, and the
//! reconcile fix, reset and pending-checkpoint removal built on a delete.

use super::{Step, push_transaction, reopened};
use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::model::checkpoint::CheckpointDef;
use crate::model::domain::Domain;
use crate::model::nodes::NodeData;
use crate::plan::create;
use crate::plan::delete::{Reopen, discard_actions, disk_discard};
use crate::qmp::action::{Action, transaction};

/// Creating checkpoint `def` (qemuCheckpointAddActions): one transaction, sent even
/// when it has no action (every disk left out), as libvirt sends it.
pub fn create_step(dom: &Domain, def: &CheckpointDef, nodes: Option<&NodeData>) -> Result<Step> {
    create_step_with(dom, def, nodes, create::CreateOptions::default())
}

/// [`create_step`] with [`create::CreateOptions`] (a granularity).
pub fn create_step_with(
    dom: &Domain,
    def: &CheckpointDef,
    nodes: Option<&NodeData>,
    opts: create::CreateOptions,
) -> Result<Step> {
    // Sent even without an action (every disk left out), as libvirt sends it.
    Ok(Step {
        now: vec![transaction(&create::add_actions_with(
            dom, def, nodes, opts,
        )?)],
        ..Step::default()
    })
}

/// Discarding checkpoint `def`'s bitmaps (qemuCheckpointDiscardBitmaps), planned from
/// node data read just before: the backing layers holding the bitmap reopened
/// read-write, the removal transaction, the layers reopened read-only. The transaction
/// is sent even when it has no action (the checkpoint has no bitmap disk left in the
/// domain), as libvirt sends it; QEMU accepts an empty transaction. Only when a disk
/// was tolerated as missing (not libvirt's behaviour) and nothing is left to remove is
/// there nothing to send.
pub fn discard_step(
    dom: &Domain,
    def: &CheckpointDef,
    nodes: &NodeData,
    tolerate_missing: bool,
) -> Result<Step> {
    let plan = discard_actions(dom, def, nodes, tolerate_missing)?;
    Ok(Step {
        now: if plan.actions.is_empty() && plan.missing.is_empty() {
            vec![transaction(&[])]
        } else {
            reopened(&plan.reopen, &plan.actions)
        },
        ..Step::default()
    })
}

/// Redefining checkpoint `def` with validation (qemuCheckpointRedefineValidateBitmaps):
/// nothing to send; the step is the check. Preconditions, as libvirt's: the domain
/// must be running (VIR_ERR_OPERATION_INVALID "domain is not running"); then for every
/// `bitmap` disk still in the domain the chain of bitmaps named after the checkpoint
/// must be valid in `nodes` (read just before), else VIR_ERR_CHECKPOINT_INCONSISTENT.
/// A redefine without validation needs no step (and no running domain).
pub fn redefine_validate_step(
    dom: &Domain,
    def: &CheckpointDef,
    nodes: Option<&NodeData>,
    running: bool,
) -> Result<Step> {
    if !running {
        return Err(Error::new(
            ErrorCode::OperationInvalid,
            ErrorDomain::Domain,
            "domain is not running",
        ));
    }
    let nodes = nodes.ok_or_else(|| {
        Error::invalid_arg(
            ErrorDomain::Qemu,
            "redefine validation needs the node data of the running domain",
        )
    })?;
    crate::plan::redefine::redefine_validate(dom, def, nodes)?;
    Ok(Step::default())
}

/// The size query of checkpoint `def` (qemuCheckpointGetXMLDescUpdateSize) as a step:
/// `now` removes leftover temporary bitmaps and merges each measured disk's chain into
/// `libvirt-tmp-size-xml`; the driver then reads the node data again and takes the
/// sizes (`read_sizes`); `on_end` removes the temporary bitmaps. No job is involved:
/// `on_end` is the moment after the read.
pub fn size_step(dom: &Domain, def: &CheckpointDef, nodes: &NodeData) -> Step {
    let plan = crate::plan::size::size_actions(dom, def, nodes);
    let mut step = Step::default();
    push_transaction(&mut step.now, &plan.recovery);
    push_transaction(&mut step.now, &plan.merge);
    push_transaction(&mut step.on_end, &plan.cleanup);
    step
}

/// The online reconcile fix: the backing layers holding a removal reopened read-write,
/// one transaction removing every broken copy and orphan, the layers reopened
/// read-only, from the node data the plan was made from. Then bring the metadata in
/// line (`apply_fix`).
pub fn fix_step(dom: &Domain, fix: &crate::plan::reconcile::FixPlan, nodes: &NodeData) -> Step {
    let (actions, reopen) = crate::plan::reconcile::fix_actions(fix, dom, nodes);
    Step {
        now: reopened(&reopen, &actions),
        ..Step::default()
    }
}

/// Chain reset, for after a snapshot revert or a restore from backup, when every bitmap
/// is wrong: one transaction removing every bitmap on every layer of every disk (those
/// a job holds excepted), the backing layers holding one reopened around it. Retire the
/// checkpoints with `retire_all` once QEMU accepted it.
pub fn reset_step(dom: &Domain, nodes: &NodeData) -> Step {
    let (actions, reopen) = reset_actions(dom, nodes);
    Step {
        now: reopened(&reopen, &actions),
        ..Step::default()
    }
}

/// The removals of a chain reset and the backing layers they touch (deepest first).
pub(crate) fn reset_actions(dom: &Domain, nodes: &NodeData) -> (Vec<Action>, Vec<Reopen>) {
    let mut actions = Vec::new();
    let mut reopen = Vec::new();
    for disk in &dom.disks {
        for (layer, image) in disk.chain.iter().enumerate() {
            let Some(node) = nodes.get(&image.format_node) else {
                continue;
            };
            let mut touched = false;
            for b in node.bitmaps.iter().filter(|b| !b.busy) {
                actions.push(Action::remove(&image.format_node, &b.name));
                touched = true;
            }
            if touched && layer > 0 {
                reopen.insert(0, Reopen::at(disk, layer, nodes));
            }
        }
    }
    (actions, reopen)
}

/// Removing a pending checkpoint's bitmaps (a backup's new checkpoint that was never
/// committed: the backup was aborted, or the driver died): one transaction removing
/// bitmap `name` wherever it is on every disk's chain, the backing layers reopened
/// around it. Nothing to send when it was never created. Then `drop_pending`. Nothing
/// has to be merged back: every other bitmap kept recording.
pub fn pending_abort_step(dom: &Domain, nodes: &NodeData, name: &str) -> Step {
    let mut actions = Vec::new();
    let mut reopen = Vec::new();
    for disk in &dom.disks {
        // The delete's own per-disk removal; a disk without the bitmap has nothing to do.
        if let Ok(d) = disk_discard(&disk.chain, nodes, name, &disk.target) {
            actions.extend(d.actions());
            reopen.splice(0..0, d.reopen().map(|l| Reopen::at(disk, l, nodes)));
        }
    }
    Step {
        now: reopened(&reopen, &actions),
        ..Step::default()
    }
}
