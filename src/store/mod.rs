//! Checkpoint bookkeeping: the tree of a domain's checkpoints with its "current" one
//! ([`list`]), its metadata files on disk ([`dir`]), and the changes that touch both,
//! each all or nothing.

pub(crate) mod dir;
pub(crate) mod list;
pub(crate) mod owner;

use crate::error::Result;
use crate::model::checkpoint::{CheckpointDef, DiskCheckpointKind};
use crate::model::domain::Domain;
use crate::model::nodes::NodeData;
use crate::plan::reconcile::FixPlan;
use crate::plan::step::{Step, discard_step};
use dir::MetadataDir;
use list::{CheckpointList, DeleteOptions, DeletePlan};

/// Applies a delete planned with [`CheckpointList::plan_delete`], once QEMU accepted
/// its discards, to the tree and (when `dir` is given) to the metadata files:
/// re-parented children are written again, removed checkpoints' files deleted. All or
/// nothing: on any error the list is unchanged and so are the files (new versions are
/// staged before anything is replaced).
pub fn apply_delete(
    list: &mut CheckpointList,
    plan: &DeletePlan,
    dir: Option<&MetadataDir>,
) -> Result<()> {
    let mut next = list.clone();
    let rewrite = next.apply_delete(plan)?;
    if let Some(dir) = dir {
        let saves = rewrite
            .iter()
            .map(|n| next.get(n))
            .collect::<Result<Vec<_>>>()?;
        dir.commit(&saves, &plan.removed)?;
    }
    *list = next;
    Ok(())
}

/// The discard steps of a delete planned with [`CheckpointList::plan_delete`], one per
/// checkpoint in its discard order, all planned from `nodes` read once before anything
/// is sent. Under one bitmap per checkpoint a discard removes only that checkpoint's
/// own bitmap, so one reading serves every step, and a delete whose subtree cannot be
/// discarded whole (a descendant's bitmap gone) fails here with that discard's error
/// while nothing has been sent or changed. libvirt instead discards one checkpoint at
/// a time and goes on past a failure: the other descendants are gone, the refused one
/// keeps its bitmaps and metadata (under a parent that may be gone), the checkpoint
/// itself stays, and the delete fails with the last refusal's error.
/// `tolerate_missing` as [`discard_step`](crate::plan::step::discard_step).
pub fn discard_steps(
    list: &CheckpointList,
    plan: &DeletePlan,
    dom: &Domain,
    nodes: &NodeData,
    tolerate_missing: bool,
) -> Result<Vec<Step>> {
    (0..plan.discard.len())
        .map(|i| discard_step(dom, list.discarded(plan, i)?, nodes, tolerate_missing))
        .collect()
}

/// Brings the metadata in line with a reconcile fix once its removals were carried
/// out: broken disks are no longer claimed (`checkpoint='no'`), checkpoints broken on
/// every disk are dropped (their children re-parented). Applied to the tree and, when
/// `dir` is given, to the files, all or nothing as [`apply_delete`]. Returns how many
/// checkpoints were rewritten and how many dropped.
pub fn apply_fix(
    list: &mut CheckpointList,
    fix: &FixPlan,
    dir: Option<&MetadataDir>,
) -> Result<(usize, usize)> {
    let mut next = list.clone();
    let mut changed: Vec<String> = Vec::new();
    for (name, disk) in &fix.uncover {
        let mut def = next.get(name)?.clone();
        for d in def.disks.iter_mut().filter(|d| d.name == *disk) {
            d.kind = DiskCheckpointKind::No;
            d.bitmap = None;
            d.size = None;
        }
        next.replace_def(def)?;
        if !changed.contains(name) {
            changed.push(name.clone());
        }
    }
    let mut removed = Vec::new();
    for name in &fix.drop {
        if !next.contains(name) {
            continue;
        }
        let del = next.plan_delete(name, DeleteOptions::METADATA_ONLY)?;
        for r in next.apply_delete(&del)? {
            if !changed.contains(&r) {
                changed.push(r);
            }
        }
        removed.extend(del.removed);
    }
    changed.retain(|c| next.contains(c));
    if let Some(dir) = dir {
        let saves = changed
            .iter()
            .map(|n| next.get(n))
            .collect::<Result<Vec<&CheckpointDef>>>()?;
        dir.commit(&saves, &removed)?;
    }
    *list = next;
    Ok((changed.len(), removed.len()))
}

/// Adopts the bitmaps the metadata lost (`plan::adopt`): the rebuilt definitions are
/// redefined into `list`, continuing from its current checkpoint, and (when `dir` is
/// given) written, all or nothing. Returns the adopted names, oldest first.
pub fn adopt_into(
    list: &mut CheckpointList,
    dom: &crate::model::domain::Domain,
    nodes: &crate::model::nodes::NodeData,
    dir: Option<&MetadataDir>,
    now: i64,
) -> Result<Vec<String>> {
    let known: Vec<&str> = list.defs().map(|d| d.name.as_str()).collect();
    let current = list.current().map(str::to_owned);
    let adoption = crate::plan::adopt::adopt(dom, nodes, &known, current.as_deref(), now)?;
    let mut next = list.clone();
    for def in &adoption.defs {
        next.redefine(def.clone())?;
    }
    if let Some(last) = adoption.defs.last() {
        next.set_current(Some(&last.name))?;
    }
    if let Some(dir) = dir {
        let saves: Vec<&CheckpointDef> = adoption.defs.iter().collect();
        dir.commit(&saves, &[])?;
    }
    *list = next;
    Ok(adoption.defs.into_iter().map(|d| d.name).collect())
}

/// Retires every checkpoint (after a chain reset): the tree is emptied and (when `dir`
/// is given) every metadata file removed, all or nothing. Returns the names retired.
pub fn retire_all(list: &mut CheckpointList, dir: Option<&MetadataDir>) -> Result<Vec<String>> {
    let names: Vec<String> = list.defs().map(|d| d.name.clone()).collect();
    if let Some(dir) = dir {
        dir.commit(&[], &names)?;
    }
    *list = CheckpointList::new();
    Ok(names)
}

/// Two-phase backup checkpoints, step 1: marks `name` pending in the folder's journal,
/// durably, before the backup transaction that creates its bitmap is sent. Until
/// [`commit_pending`], a crash or an abort leaves a checkpoint that
/// [`drop_pending`] (after the step of `plan::step::pending_abort_step`) removes.
pub fn begin_pending(dir: &MetadataDir, name: &str) -> Result<()> {
    let mut names = dir.pending()?;
    if !names.iter().any(|n| n == name) {
        names.push(name.to_owned());
    }
    dir.set_pending(&names)
}

/// Two-phase backup checkpoints, last step: the backup job ended well; `name` is a
/// checkpoint like any other from now on.
pub fn commit_pending(dir: &MetadataDir, name: &str) -> Result<()> {
    let names: Vec<String> = dir.pending()?.into_iter().filter(|n| n != name).collect();
    dir.set_pending(&names)
}

/// Drops pending checkpoint `name` once its bitmaps were removed: out of the tree (its
/// children, if any, re-parented), its metadata file removed, out of the journal.
pub fn drop_pending(list: &mut CheckpointList, dir: &MetadataDir, name: &str) -> Result<()> {
    if list.contains(name) {
        let plan = list.plan_delete(name, DeleteOptions::METADATA_ONLY)?;
        apply_delete(list, &plan, Some(dir))?;
    } else {
        dir.commit(&[], &[name.to_owned()])?;
    }
    commit_pending(dir, name)
}
