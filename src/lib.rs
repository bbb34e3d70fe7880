//! # virtcheckpoint
//!
//! QEMU checkpoint and dirty-bitmap management under libvirt's "one bitmap per
//! checkpoint" design: every decision a hypervisor driver makes about
//! `block-dirty-bitmap-*` actions, as pure functions over plain data.
//!
//! This crate is the core: it has no `unsafe` code, spawns no process and never talks
//! to QEMU. It takes QEMU's `query-named-block-nodes` reply ([`parse_node_data`]) and
//! the domain's disks ([`parse_domain`], or a [`Domain`] built by hand), and returns
//! the actions to send, which [`actions_json`] and [`transaction`] write byte for byte
//! as libvirt does. The C ABI (`virtcheckpoint-c`) only converts to and from it; the
//! Rust side of a gradual libvirt migration calls this API directly.
//!
//! ```
//! use virtcheckpoint::{Domain, Image, ParseOptions, actions_json, checkpoint_add_actions,
//!                      checkpoint_def_from_xml};
//!
//! let mut dom = Domain::default();
//! dom.add_disk(virtcheckpoint::Disk { target: "vda".into(), device: "disk".into(),
//!                                     ..Default::default() })?;
//! dom.append_image("vda", Image::qcow2_indexed("/var/lib/vda.qcow2", 1))?;
//! let def = checkpoint_def_from_xml(b"<domaincheckpoint><name>c1</name></domaincheckpoint>",
//!                                   Some(&dom), ParseOptions::default(), 1_700_000_000)?;
//! let actions = checkpoint_add_actions(&dom, &def, None)?;
//! assert_eq!(actions_json(&actions).to_compact(),
//!     r#"[{"type":"block-dirty-bitmap-add","data":{"node":"libvirt-1-format","name":"c1","persistent":true,"disabled":false}}]"#);
//! # Ok::<(), virtcheckpoint::Error>(())
//! ```
//!
//! Errors carry libvirt's `virErrorNumber`, `virErrorDomain` and message text
//! ([`Error`]). Options are typed ([`ParseOptions`], [`FormatOptions`],
//! [`ListOptions`], [`DeleteOptions`]); the C ABI maps libvirt's flag bits onto them.
//!
//! Data flows one way: documents are parsed into the model, the planner turns the
//! model into [`Action`]s, and the JSON writer prints them. Changes to the checkpoint
//! tree are planned first ([`CheckpointList::plan_delete`]) and applied once QEMU
//! accepted them ([`apply_delete`]), to the tree and its files at once.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod api;
mod error;
mod model;
mod plan;
mod qmp;
mod report;
mod store;
mod xml;

pub use error::{Error, ErrorCode, ErrorDomain, Result};

// The model: plain data.
pub use model::checkpoint::{CheckpointDef, CheckpointDisk, DiskCheckpointKind};
pub use model::domain::{Disk, DiskNames, Domain, Image, Layer};
pub use model::driver::{CacheMode, DetectZeroes, Discard, DiskDriver};
pub use model::nodes::{Bitmap, InternalSnapshot, Node, NodeData};

// Documents in and out.
pub use api::{checkpoint_def_from_xml, now};
pub use qmp::action::{
    Action, BackupSync, BitmapRef, actions_json, commands_json, transaction, wrap_transaction,
};
pub use qmp::image_info::nodes_from_image_info;
pub use qmp::json::Json;
pub use qmp::nodes::{MAX_NODE_JSON, parse_node_data};
pub use qmp::print::detect_report;
pub use report::{report_json, resolution_json, state_name};
pub use xml::checkpoint::{
    FormatOptions, MAX_CHECKPOINT_NAME, ParseOptions, format_checkpoint, is_valid_checkpoint_name,
    parse_checkpoint,
};
pub use xml::domain::parse_domain;
pub use xml::tree::{
    MAX_BYTES as MAX_XML_BYTES, MAX_DEPTH as MAX_XML_DEPTH, MAX_ELEMENTS as MAX_XML_ELEMENTS,
};

// The planner: one function per libvirt step.
pub use plan::adopt::{Adoption, adopt};
pub use plan::align::{align_disks, assign_bitmap_names};
pub use plan::backup::{
    BackupDisk, BackupMode, BackupPlan, backup_actions as backup_begin_actions,
    backup_bitmap_actions, temporary_bitmap_name,
};
pub use plan::chain::{ChainState, bitmap_chain_is_valid, chain_state};
pub use plan::commit::{
    blockcommit_bitmap_actions, commit_failed_actions, commit_finish_actions, commit_lost_bitmaps,
};
pub use plan::copy::blockcopy_bitmap_actions;
pub use plan::create::{
    CreateOptions, MAX_BITMAP_BYTES, MAX_BITMAP_NAME, MAX_GRANULARITY, MIN_GRANULARITY,
    add_actions as checkpoint_add_actions, add_actions_with as checkpoint_add_actions_with,
    check_create, check_granularity,
};
pub use plan::delete::{
    DiscardPlan, DiskDiscard, Reopen, discard_actions as checkpoint_discard_actions,
    discard_disk_bitmaps, disk_discard,
};
pub use plan::merge::{MergeOne, MergeSpec, bitmap_merge_actions, merge_plan};
pub use plan::pull::blockpull_bitmap_actions;
pub use plan::reconcile::{
    CheckpointCheck, DiskCheck, FixPlan, Orphan, Removal, Report, fix_actions, fix_commands,
    fix_plan, is_temporary, reconcile,
};
pub use plan::redefine::redefine_validate;
pub use plan::resolve::{FullReason, Resolution, resolve_backup};
pub use plan::size::{
    DiskSizeActions, SizePlan, disk_size_actions, measured_size, read_sizes, size_actions,
    sizes_from_nodes,
};
pub use plan::snapshot::{SnapshotDisk, propagate_bitmap_actions, snapshot_bitmap_actions};
pub use plan::step::{
    BlockJobEnd, Step, StepCommand, backup_step, chain_blockjob_end_step, commit_step, copy_step,
    create_step, create_step_with, discard_step, fix_step, pending_abort_step, pull_step,
    redefine_validate_step, reset_step, resolved_backup_step, size_step, snapshot_step,
};
pub use plan::{TMP_ACTIVEWRITE, TMP_SIZE, activewrite_actions};

/// Checkpoint operations on a shut-off domain, as `qemu-img` argument vectors.
pub mod offline {
    pub use crate::plan::offline::{
        Argv, SizeCommands, argv_json, commit_commands, create_commands, delete_commands,
        remove_argv, reset_commands, size_commands, snapshot_commands, to_qemu_img,
    };
}

// The checkpoint tree and its metadata files.
pub use store::dir::{LoadProblem, MetadataDir};
pub use store::list::{CheckpointList, DeleteOptions, DeletePlan, ListOptions};
pub use store::owner::{OWNER_SEPARATOR, fix_for_owner, owned_name, owner_of};
pub use store::{
    adopt_into, apply_delete, apply_fix, begin_pending, commit_pending, discard_steps,
    drop_pending, retire_all,
};
