//! The per-disk backup resolver: for a backup requested incremental from checkpoint X,
//! each disk gets incremental-from-X when its chain is valid, or full with the reason,
//! instead of one hard error for the whole backup.

use super::backup::{BackupDisk, BackupMode, BackupPlan, backup_actions};
use super::chain::{ChainState, chain_state};
use crate::error::Result;
use crate::model::checkpoint::CheckpointDef;
use crate::model::domain::Domain;
use crate::model::nodes::NodeData;

/// Why a disk is backed up in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FullReason {
    /// No checkpoint of that name exists.
    UnknownCheckpoint,
    /// The checkpoint does not cover this disk (`checkpoint='no'`, or added later).
    NotCovered,
    /// The checkpoint's bitmap chain on this disk is not usable.
    Chain(ChainState),
}

/// The decision for one disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Incremental from the requested checkpoint.
    Incremental,
    /// Full, because of the reason.
    Full(FullReason),
}

/// Resolves each disk of a backup requested as incremental from `from` (the requested
/// `incremental` of `disks` is ignored and decided here), then plans the backup with
/// those decisions. Returns the per-disk decisions, in `disks` order, and the plan.
pub fn resolve_backup(
    dom: &Domain,
    mode: BackupMode,
    disks: &[BackupDisk],
    nodes: &NodeData,
    checkpoints: &[&CheckpointDef],
    from: &str,
    new_checkpoint: Option<&CheckpointDef>,
) -> Result<(Vec<(String, Resolution)>, BackupPlan)> {
    let def = checkpoints.iter().find(|d| d.name == from);
    let mut decided = Vec::with_capacity(disks.len());
    let mut resolved = Vec::with_capacity(disks.len());
    for bd in disks {
        let resolution = match def {
            None => Resolution::Full(FullReason::UnknownCheckpoint),
            Some(def) if !def.bitmap_disks().any(|d| d.name == bd.target) => {
                Resolution::Full(FullReason::NotCovered)
            }
            Some(_) => match dom.disk(&bd.target) {
                Some(disk) => match chain_state(&disk.chain, from, nodes) {
                    ChainState::Valid => Resolution::Incremental,
                    other => Resolution::Full(FullReason::Chain(other)),
                },
                None => Resolution::Full(FullReason::NotCovered),
            },
        };
        let mut d = bd.clone();
        d.incremental = (resolution == Resolution::Incremental).then(|| from.to_owned());
        resolved.push(d);
        decided.push((bd.target.clone(), resolution));
    }
    let plan = backup_actions(
        dom,
        mode,
        &resolved,
        nodes,
        &|c| checkpoints.iter().any(|d| d.name == c),
        new_checkpoint,
    )?;
    Ok((decided, plan))
}
