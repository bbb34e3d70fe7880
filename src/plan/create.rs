//! Checkpoint creation (qemuCheckpointPrepare + qemuCheckpointAddActions after the
//! "don't chain bitmaps" change, SPEC 3): one new persistent, recording bitmap per
//! participating disk, and nothing else.

use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::model::checkpoint::CheckpointDef;
use crate::model::domain::Domain;
use crate::model::nodes::NodeData;
use crate::qmp::action::Action;

/// QEMU's limit on bitmap names, in bytes.
pub const MAX_BITMAP_NAME: usize = 1023;

fn unsupported(detail: impl std::fmt::Display) -> Error {
    Error::config_unsupported(ErrorDomain::Qemu, detail)
}

/// The create-time checks of SPEC 3 step 4 for every `bitmap` disk, plus — when the
/// node data is given — what QEMU would refuse: a bitmap of that name already on the
/// node, a name that is empty or over 1023 bytes, a qcow2 v2 image.
pub fn check_create(dom: &Domain, def: &CheckpointDef, nodes: Option<&NodeData>) -> Result<()> {
    for cd in def.bitmap_disks() {
        let bitmap = cd.bitmap.as_deref().unwrap_or("");
        if bitmap != def.name {
            return Err(unsupported(format_args!(
                "bitmap for disk '{}' must match checkpoint name '{}'",
                cd.name, def.name
            )));
        }
        let Some(disk) = dom.disk(&cd.name) else {
            continue;
        };
        let Some(top) = disk.top() else {
            return Err(unsupported(format_args!(
                "disk '{}' is empty or readonly",
                cd.name
            )));
        };
        if top.format != "qcow2" {
            return Err(unsupported(format_args!(
                "checkpoint for disk {} unsupported for storage type {}",
                cd.name,
                if top.format.is_empty() {
                    "none"
                } else {
                    &top.format
                }
            )));
        }
        if bitmap.is_empty() || bitmap.len() > MAX_BITMAP_NAME {
            return Err(unsupported(format_args!(
                "bitmap name for disk '{}' must be 1 to {MAX_BITMAP_NAME} bytes long, not {}",
                cd.name,
                bitmap.len()
            )));
        }
        if let Some(node) = nodes.and_then(|n| n.get(&top.format_node)) {
            if node.qcow2v2 {
                return Err(unsupported(format_args!(
                    "checkpoint for disk {} unsupported: image '{}' is qcow2 v2 (compat 0.10), which cannot store persistent bitmaps",
                    cd.name, top.source
                )));
            }
            if node.bitmap(bitmap).is_some() {
                return Err(Error::new(
                    ErrorCode::OperationFailed,
                    ErrorDomain::Qemu,
                    format_args!(
                        "bitmap '{bitmap}' already exists on node '{}' of disk '{}'",
                        top.format_node, cd.name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The transaction actions that create checkpoint `def`: for each `bitmap` disk present
/// in the domain, in disk order, a `block-dirty-bitmap-add` on the disk's top node with
/// `persistent: true, disabled: false` and QEMU's default granularity.
pub fn add_actions(
    dom: &Domain,
    def: &CheckpointDef,
    nodes: Option<&NodeData>,
) -> Result<Vec<Action>> {
    check_create(dom, def, nodes)?;
    Ok(def
        .bitmap_disks()
        .filter_map(|cd| {
            let top = dom.disk(&cd.name)?.top()?;
            Some(Action::BitmapAdd {
                node: top.format_node.clone(),
                name: cd.bitmap.clone().unwrap_or_else(|| def.name.clone()),
                persistent: true,
                disabled: false,
                granularity: 0,
            })
        })
        .collect())
}
