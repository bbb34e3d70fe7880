//! Redefine validation (qemuCheckpointRedefineValidateBitmaps, SPEC 4).

use super::chain::bitmap_chain_is_valid;
use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::model::checkpoint::CheckpointDef;
use crate::model::domain::Domain;
use crate::model::nodes::NodeData;

/// Checks that, for every `bitmap` disk still in the domain, the chain of bitmaps named
/// after the checkpoint is valid from the disk's top. The first broken disk gives
/// VIR_ERR_CHECKPOINT_INCONSISTENT. Disks gone from the domain are tolerated.
pub fn redefine_validate(dom: &Domain, def: &CheckpointDef, nodes: &NodeData) -> Result<()> {
    for cd in def.bitmap_disks() {
        let Some(disk) = dom.disk(&cd.name) else {
            continue;
        };
        if !bitmap_chain_is_valid(&disk.chain, &def.name, nodes) {
            return Err(inconsistent(&def.name, &disk.target));
        }
    }
    Ok(())
}

/// "missing or broken bitmap '%s' for disk '%s'".
pub fn inconsistent(bitmap: &str, disk: &str) -> Error {
    Error::new(
        ErrorCode::CheckpointInconsistent,
        ErrorDomain::Qemu,
        format_args!("missing or broken bitmap '{bitmap}' for disk '{disk}'"),
    )
}
