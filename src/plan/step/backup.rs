//! Backup steps: push and pull, with their jobs' end and abort.

use super::{Step, command, push_transaction};
use crate::error::Result;
use crate::model::checkpoint::CheckpointDef;
use crate::model::domain::Domain;
use crate::model::nodes::NodeData;
use crate::plan::backup::{BackupDisk, BackupMode, backup_actions, temporary_bitmap_name};
use crate::plan::create;
use crate::qmp::action::Action;
use crate::qmp::json::Json;

/// The start of a backup (qemuBackupBegin) and its end and abort.
///
/// `now`: one transaction ([the adds of `new_checkpoint`], then per disk the temporary
/// bitmap and its `blockdev-backup`), and in pull mode one `block-export-add` per disk
/// (NBD, read-only, named after the disk target, exporting the temporary bitmap of an
/// incremental disk). `on_end`, once the jobs concluded, per disk: `job-dismiss`, the
/// store's `blockdev-del` (format node, then the storage node when
/// `store_storage_nodes` names it), then in push mode the temporary bitmaps' removal
/// from the tops. `on_abort`: in pull mode each export's `block-export-del`, then a
/// `job-cancel` per job, then the removal of `new_checkpoint`'s bitmaps (it stays
/// pending until the job ended well; see `begin_pending`). A pull backup's jobs never
/// conclude on their own: the driver ends it, when the client is done, with the export
/// removal and job cancel of `on_abort` and then `on_end`.
pub fn backup_step(
    dom: &Domain,
    mode: BackupMode,
    disks: &[BackupDisk],
    nodes: &NodeData,
    checkpoint_exists: &dyn Fn(&str) -> bool,
    new_checkpoint: Option<&CheckpointDef>,
    store_storage_nodes: &[Option<&str>],
) -> Result<Step> {
    let plan = backup_actions(dom, mode, disks, nodes, checkpoint_exists, new_checkpoint)?;
    let mut step = Step::default();
    push_transaction(&mut step.now, &plan.actions);
    for a in &plan.actions {
        if let Action::BlockdevBackup { job_id, .. } = a {
            step.jobs.push(job_id.clone());
        }
    }
    for (i, bd) in disks.iter().enumerate() {
        let export_id = format!("libvirt-nbd-{}", bd.store_node);
        if mode == BackupMode::Pull {
            let mut args = vec![
                ("type", "nbd".into()),
                ("id", export_id.as_str().into()),
                ("node-name", bd.store_node.as_str().into()),
                ("writable", false.into()),
                ("name", bd.target.as_str().into()),
            ];
            if bd.incremental.is_some() {
                let tmp = temporary_bitmap_name(bd);
                args.push(("bitmaps", Json::Arr(vec![tmp.as_str().into()])));
            }
            step.now.push(command("block-export-add", args));
            step.on_abort.push(command(
                "block-export-del",
                vec![("id", export_id.as_str().into())],
            ));
        }
        if let Some(job) = step.jobs.get(i) {
            step.on_end
                .push(command("job-dismiss", vec![("id", job.as_str().into())]));
            step.on_abort
                .push(command("job-cancel", vec![("id", job.as_str().into())]));
        }
        step.on_end.push(command(
            "blockdev-del",
            vec![("node-name", bd.store_node.as_str().into())],
        ));
        if let Some(Some(storage)) = store_storage_nodes.get(i) {
            step.on_end.push(command(
                "blockdev-del",
                vec![("node-name", (*storage).into())],
            ));
        }
    }
    step.on_end
        .extend(plan.cleanup.iter().map(Action::to_command));
    // A checkpoint created with the backup is pending until the job ends well: an
    // abort removes its bitmaps (nothing to merge back, every other bitmap recorded on).
    if let Some(def) = new_checkpoint {
        for a in create::add_actions(dom, def, Some(nodes))? {
            if let Action::BitmapAdd { node, name, .. } = a {
                step.on_abort
                    .push(Action::remove(&node, &name).to_command());
            }
        }
    }
    Ok(step)
}

/// The backup step of a backup requested incremental from `from`, resolved per disk
/// (`resolve_backup`): incremental where the chain is valid, full elsewhere. Returns the
/// decisions, in `disks` order, and the step.
#[allow(clippy::too_many_arguments)]
pub fn resolved_backup_step(
    dom: &Domain,
    mode: BackupMode,
    disks: &[BackupDisk],
    nodes: &NodeData,
    checkpoints: &[&CheckpointDef],
    from: &str,
    new_checkpoint: Option<&CheckpointDef>,
    store_storage_nodes: &[Option<&str>],
) -> Result<(Vec<(String, crate::plan::resolve::Resolution)>, Step)> {
    let (decided, _) = crate::plan::resolve::resolve_backup(
        dom,
        mode,
        disks,
        nodes,
        checkpoints,
        from,
        new_checkpoint,
    )?;
    let resolved: Vec<BackupDisk> = disks
        .iter()
        .zip(&decided)
        .map(|(d, (_, r))| BackupDisk {
            incremental: (*r == crate::plan::resolve::Resolution::Incremental)
                .then(|| from.to_owned()),
            ..d.clone()
        })
        .collect();
    let exists = |c: &str| checkpoints.iter().any(|d| d.name == c);
    let step = backup_step(
        dom,
        mode,
        &resolved,
        nodes,
        &exists,
        new_checkpoint,
        store_storage_nodes,
    )?;
    Ok((decided, step))
}
