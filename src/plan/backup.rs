//! Backup start and end (qemuBackupBegin, qemuBackupDiskPrepareOneBitmapsChain,
//! qemuBlockJobProcessEventConcludedBackup; SPEC 7.2).

use super::chain::bitmap_chain_is_valid;
use super::create;
use super::merge::{MergeSpec, bitmap_merge_actions};
use super::redefine::inconsistent;
use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::model::checkpoint::CheckpointDef;
use crate::model::domain::{Domain, Layer};
use crate::model::nodes::NodeData;
use crate::qmp::action::{Action, BackupSync};

/// Push (QEMU writes the backup into a store) or pull (a client reads it over NBD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupMode {
    /// `mode='push'`.
    Push,
    /// `mode='pull'`.
    Pull,
}

/// One disk of a backup request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupDisk {
    /// The disk's target.
    pub target: String,
    /// The checkpoint to back up from; `None` = full.
    pub incremental: Option<String>,
    /// The store (push) or scratch (pull) format node, already attached.
    pub store_node: String,
    /// The temporary bitmap's name; `None` = `backup-<target>`.
    pub export_bitmap: Option<String>,
}

/// The plan of a backup start and its end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupPlan {
    /// The one transaction that starts the backup.
    pub actions: Vec<Action>,
    /// Stand-alone removals to send once the job has concluded and the store is
    /// detached (push, incremental disks only).
    pub cleanup: Vec<Action>,
    /// Pull mode: (disk target, scratch node, bitmap to export) per incremental disk.
    pub exports: Vec<(String, String, Option<String>)>,
}

/// The temporary bitmap name of a disk.
pub fn temporary_bitmap_name(disk: &BackupDisk) -> String {
    disk.export_bitmap
        .clone()
        .unwrap_or_else(|| format!("backup-{}", disk.target))
}

/// qemuBackupDiskPrepareOneBitmapsChain: the add + merge of checkpoint `incremental`'s
/// bitmap from every layer into `tmp` on `target_node`. No validity pre-check here.
pub fn backup_bitmap_actions<L: Layer>(
    chain: &[L],
    nodes: &NodeData,
    incremental: &str,
    target_node: &str,
    tmp: &str,
) -> Vec<Action> {
    bitmap_merge_actions(
        &MergeSpec {
            chain,
            base: None,
            target: target_node,
            bitmap: Some(incremental),
            dst_name: Some(tmp),
            write_bitmap_src: None,
        },
        nodes,
    )
}

/// Plans the start of a backup: [adds of the checkpoint created with it] then, per disk,
/// [temporary bitmap add + merge] and its `blockdev-backup`, all in one transaction.
///
/// `checkpoint_exists` answers whether a checkpoint of that name is known (libvirt's
/// metadata). A broken chain stops the whole plan with VIR_ERR_CHECKPOINT_INCONSISTENT,
/// as in libvirt; see `resolve` for the per-disk fallback.
pub fn backup_actions(
    dom: &Domain,
    mode: BackupMode,
    disks: &[BackupDisk],
    nodes: &NodeData,
    checkpoint_exists: &dyn Fn(&str) -> bool,
    new_checkpoint: Option<&CheckpointDef>,
) -> Result<BackupPlan> {
    if disks.is_empty() {
        return Err(Error::config_unsupported(
            ErrorDomain::Qemu,
            "no disks selected for backup",
        ));
    }
    let mut plan = BackupPlan::default();
    if let Some(def) = new_checkpoint {
        plan.actions = create::add_actions(dom, def, Some(nodes))?;
    }
    for bd in disks {
        let (disk, top) = super::disk_top(dom, &bd.target)?;
        let tmp = temporary_bitmap_name(bd);
        let mut bitmap = None;
        if let Some(chk) = bd.incremental.as_deref() {
            if !checkpoint_exists(chk) {
                return Err(Error::new(
                    ErrorCode::NoDomainCheckpoint,
                    ErrorDomain::Qemu,
                    format_args!(
                        "Checkpoint '{chk}' for incremental backup of disk '{}' not found",
                        bd.target
                    ),
                ));
            }
            if !bitmap_chain_is_valid(&disk.chain, chk, nodes) {
                return Err(inconsistent(chk, &bd.target));
            }
            let target = match mode {
                BackupMode::Pull => bd.store_node.as_str(),
                BackupMode::Push => top.format_node.as_str(),
            };
            plan.actions
                .extend(backup_bitmap_actions(&disk.chain, nodes, chk, target, &tmp));
            match mode {
                BackupMode::Push => plan.cleanup.push(Action::remove(&top.format_node, &tmp)),
                BackupMode::Pull => {
                    plan.exports
                        .push((bd.target.clone(), bd.store_node.clone(), Some(tmp.clone())))
                }
            }
            bitmap = Some(tmp);
        } else if mode == BackupMode::Pull {
            plan.exports
                .push((bd.target.clone(), bd.store_node.clone(), None));
        }
        let (sync, bitmap) = match mode {
            BackupMode::Pull => (BackupSync::None, None),
            BackupMode::Push if bitmap.is_some() => (BackupSync::Incremental, bitmap),
            BackupMode::Push => (BackupSync::Full, None),
        };
        plan.actions.push(Action::BlockdevBackup {
            device: top.format_node.clone(),
            job_id: format!("backup-{}-{}", bd.target, top.format_node),
            target: bd.store_node.clone(),
            sync,
            bitmap,
        });
    }
    Ok(plan)
}
