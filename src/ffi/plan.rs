//! The planner from C: each function returns the actions of one libvirt step as a
//! compact JSON array, byte-identical to what libvirt puts in
//! `{"execute":"transaction","arguments":{"actions":<actions>}}`. Nothing is sent to
//! QEMU by the library.

use std::ffi::{c_char, c_int, c_uint};

use super::checkpoint::vcp_checkpoint_def;
use super::domain::{no_disk, vcp_domain};
use super::memory::c_string_list;
use super::nodes::vcp_node_data;
use super::{
    arg_mut, arg_opt_ref, arg_opt_str, arg_opt_str_list, arg_out, arg_ref, arg_slice, arg_str,
    boundary, check_flags, write_out, write_string, write_strings,
};
use crate::error::{Error, ErrorDomain, Result};
use crate::model::domain::{Disk, Domain};
use crate::plan::backup::{BackupDisk, BackupMode, backup_actions, backup_bitmap_actions};
use crate::plan::merge::{MergeSpec, bitmap_merge_actions};
use crate::plan::snapshot::{SnapshotDisk, snapshot_bitmap_actions};
use crate::plan::{chain, commit, copy, create, delete, pull, redefine, size};
use crate::qmp::action::{Action, actions_json, commands_json, reopen_command};

/// `vcp_backup_begin_actions()`: push mode (QEMU writes into the store nodes).
pub const VCP_BACKUP_PUSH: c_int = 0;
/// `vcp_backup_begin_actions()`: pull mode (scratch nodes exported over NBD).
pub const VCP_BACKUP_PULL: c_int = 1;
/// `vcp_blockcommit_bitmap_actions()`: the commit's top is the active layer.
pub const VCP_BLOCKCOMMIT_ACTIVE: c_uint = 1 << 0;
/// `vcp_blockcopy_bitmap_actions()`: shallow copy (only the top layer was copied).
pub const VCP_BLOCKCOPY_SHALLOW: c_uint = 1 << 0;

/// One disk of a backup.
#[repr(C)]
pub struct vcp_backup_disk {
    /// The disk's target (`vda`).
    pub target: *const c_char,
    /// The checkpoint to back up from, or NULL for a full backup.
    pub incremental: *const c_char,
    /// The store (push) or scratch (pull) format node, already attached.
    pub store_node: *const c_char,
    /// The temporary bitmap's name, or NULL for `backup-<target>`.
    pub export_bitmap: *const c_char,
}

/// One disk getting an external snapshot.
#[repr(C)]
pub struct vcp_snapshot_disk {
    /// The disk's target.
    pub target: *const c_char,
    /// The new overlay's format node, already attached with `"backing": null`.
    pub overlay_node: *const c_char,
}

/// The `VCP_BACKUP_*` mode.
pub(crate) fn backup_mode(mode: c_int) -> Result<BackupMode> {
    match mode {
        VCP_BACKUP_PUSH => Ok(BackupMode::Push),
        VCP_BACKUP_PULL => Ok(BackupMode::Pull),
        other => Err(Error::invalid_arg(
            ErrorDomain::Qemu,
            format_args!("unknown backup mode {other}"),
        )),
    }
}

/// Reads a C array of backup disks.
///
/// # Safety
/// `disks` points to `n` readable `vcp_backup_disk` whose strings are NULL or
/// NUL-terminated.
pub(crate) unsafe fn backup_disks(
    disks: *const vcp_backup_disk,
    n: usize,
    func: &str,
) -> Result<Vec<BackupDisk>> {
    let mut list = Vec::new();
    // SAFETY: per the caller's contract.
    for d in unsafe { arg_slice(disks, n, "disks", func) }? {
        // SAFETY: strings of the caller's struct.
        unsafe {
            list.push(BackupDisk {
                target: arg_str(d.target, "target", func)?.to_owned(),
                incremental: arg_opt_str(d.incremental, "incremental", func)?.map(str::to_owned),
                store_node: arg_str(d.store_node, "store_node", func)?.to_owned(),
                export_bitmap: arg_opt_str(d.export_bitmap, "export_bitmap", func)?
                    .map(str::to_owned),
            });
        }
    }
    Ok(list)
}

fn find_disk<'a>(dom: &'a Domain, target: &str) -> Result<&'a Disk> {
    dom.disk(target).ok_or_else(|| no_disk(target))
}

fn chain_index(disk: &Disk, node: &str) -> Result<usize> {
    disk.chain
        .iter()
        .position(|i| i.format_node == node)
        .ok_or_else(|| {
            Error::invalid_arg(
                ErrorDomain::Qemu,
                format_args!(
                    "node '{node}' is not in the backing chain of disk '{}'",
                    disk.target
                ),
            )
        })
}

/// Writes `actions` as a compact JSON array to a checked out-parameter.
unsafe fn write_actions(out: *mut *mut c_char, actions: &[Action]) -> Result<()> {
    // SAFETY: forwarded contract.
    unsafe { write_string(out, &actions_json(actions).to_compact()) }
}

/// Checkpoint creation (qemuCheckpointAddActions after libvirt's "one bitmap per
/// checkpoint" change): for each `bitmap` disk of the aligned `def`, in disk order, one
/// `block-dirty-bitmap-add` of a persistent, enabled bitmap named after the checkpoint
/// on the disk's top node. No other bitmap is touched.
///
/// Checks: bitmap name equals checkpoint name, top image qcow2 (VIR_ERR_CONFIG_UNSUPPORTED);
/// given `nodes` (may be NULL), also what QEMU would refuse: the bitmap already on the
/// node (VIR_ERR_OPERATION_FAILED), a name empty or over 1023 bytes, a qcow2 v2 image.
/// `flags` must be 0. Stores the actions in `*actions` (free with `vcp_free()`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_add_actions(
    dom: *const vcp_domain,
    def: *const vcp_checkpoint_def,
    nodes: *const vcp_node_data,
    actions: *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    const F: &str = "vcp_checkpoint_add_actions";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: handles from the caller.
        let dom = &unsafe { arg_ref(dom, "dom", F) }?.0;
        let def = &unsafe { arg_ref(def, "def", F) }?.0;
        let nodes = unsafe { arg_opt_ref(nodes) }.map(|n| &n.0);
        let out = arg_out(actions, "actions", F)?;
        let list = create::add_actions(dom, def, nodes)?;
        // SAFETY: checked out-parameter.
        unsafe { write_actions(out, &list) }?;
        Ok(0)
    })
}

/// `vcp_checkpoint_discard_actions()`: a disk whose bitmap is gone from every layer is
/// skipped instead of failing the delete (not libvirt's behaviour: the way out of a
/// stuck chain). The disks skipped are stored in `*missing`.
pub const VCP_CHECKPOINT_DISCARD_IGNORE_MISSING: c_uint = 1 << 0;

/// Checkpoint deletion (qemuCheckpointDiscardBitmaps): one transaction removing the
/// checkpoint's bitmap from every layer of every disk that has it, and in `*reopen`
/// (NULL-terminated, deepest first) the backing layers' format nodes to reopen
/// read-write before it and read-only after it (see `vcp_blockdev_reopen_command()`).
///
/// A disk whose bitmap is found nowhere fails with VIR_ERR_INTERNAL_ERROR "bitmap '%s'
/// not found in backing chain of '%s'", unless `VCP_CHECKPOINT_DISCARD_IGNORE_MISSING`
/// is given; then those disks are listed in `*missing` (may be NULL without the flag).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_discard_actions(
    dom: *const vcp_domain,
    def: *const vcp_checkpoint_def,
    nodes: *const vcp_node_data,
    actions: *mut *mut c_char,
    reopen: *mut *mut *mut c_char,
    missing: *mut *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    const F: &str = "vcp_checkpoint_discard_actions";
    boundary(F, || {
        // SAFETY: handles from the caller.
        let dom = &unsafe { arg_ref(dom, "dom", F) }?.0;
        let def = &unsafe { arg_ref(def, "def", F) }?.0;
        let nodes = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        // SAFETY: out-parameters from the caller.
        unsafe { write_discard(dom, def, nodes, actions, reopen, missing, flags, F) }?;
        Ok(0)
    })
}

/// The body of `vcp_checkpoint_discard_actions()`, shared with the delete plan.
///
/// # Safety
/// The out-parameters are NULL or writable.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn write_discard(
    dom: &Domain,
    def: &crate::model::checkpoint::CheckpointDef,
    nodes: &crate::model::nodes::NodeData,
    actions: *mut *mut c_char,
    reopen: *mut *mut *mut c_char,
    missing: *mut *mut *mut c_char,
    flags: c_uint,
    func: &str,
) -> Result<()> {
    check_flags(flags, VCP_CHECKPOINT_DISCARD_IGNORE_MISSING, func)?;
    let out = arg_out(actions, "actions", func)?;
    let reopen_out = arg_out(reopen, "reopen", func)?;
    let tolerate = flags & VCP_CHECKPOINT_DISCARD_IGNORE_MISSING != 0;
    if tolerate {
        arg_out(missing, "missing", func)?;
    }
    let plan = delete::discard_actions(dom, def, nodes, tolerate)?;
    let reopen_nodes: Vec<&str> = plan.reopen.iter().map(|r| r.format_node.as_str()).collect();
    let reopen_list = c_string_list(&reopen_nodes)?;
    let missing_list = if tolerate {
        match c_string_list(&plan.missing) {
            Ok(l) => l,
            Err(e) => {
                // SAFETY: allocated above, not handed out.
                unsafe { super::memory::vcp_string_list_free(reopen_list) };
                return Err(e);
            }
        }
    } else {
        std::ptr::null_mut()
    };
    // SAFETY: checked out-parameters; on failure the lists are freed.
    unsafe {
        if let Err(e) = write_actions(out, &plan.actions) {
            super::memory::vcp_string_list_free(reopen_list);
            super::memory::vcp_string_list_free(missing_list);
            return Err(e);
        }
        write_out(reopen_out, reopen_list);
        if tolerate {
            write_out(missing, missing_list);
        }
    }
    Ok(())
}

/// The `blockdev-reopen` command libvirt sends for a qcow2 backing layer of `dom`
/// around a delete or a commit: read-write before (`read_only` 0), read-only after.
/// A new string (free with `vcp_free()`) or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_blockdev_reopen_command(
    dom: *const vcp_domain,
    format_node: *const c_char,
    read_only: c_int,
) -> *mut c_char {
    const F: &str = "vcp_blockdev_reopen_command";
    boundary(F, || {
        // SAFETY: handle and C string from the caller.
        let dom = &unsafe { arg_ref(dom, "dom", F) }?.0;
        let node = unsafe { arg_str(format_node, "format_node", F) }?;
        for disk in &dom.disks {
            if let Some(i) = disk.chain.iter().position(|im| im.format_node == node) {
                let image = &disk.chain[i];
                let backing = disk.chain.get(i + 1).map(|b| b.format_node.as_str());
                let text =
                    reopen_command(node, &image.storage_node, backing, read_only != 0).to_compact();
                let mut out = std::ptr::null_mut();
                // SAFETY: local out-parameter.
                unsafe { write_string(&mut out, &text) }?;
                return Ok(out);
            }
        }
        Err(Error::invalid_arg(
            ErrorDomain::Qemu,
            format_args!("node '{node}' is not in any disk's backing chain"),
        ))
    })
}

/// Redefine validation (qemuCheckpointRedefineValidateBitmaps): for every `bitmap`
/// disk still in `dom`, the chain of bitmaps named after the checkpoint must be valid
/// from the top; else VIR_ERR_CHECKPOINT_INCONSISTENT "missing or broken bitmap '%s'
/// for disk '%s'" naming the first broken disk. `flags` must be 0. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_redefine_validate(
    dom: *const vcp_domain,
    def: *const vcp_checkpoint_def,
    nodes: *const vcp_node_data,
    flags: c_uint,
) -> c_int {
    const F: &str = "vcp_checkpoint_redefine_validate";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: handles from the caller.
        let dom = &unsafe { arg_ref(dom, "dom", F) }?.0;
        let def = &unsafe { arg_ref(def, "def", F) }?.0;
        let nodes = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        redefine::redefine_validate(dom, def, nodes)?;
        Ok(0)
    })
}

/// qemuBlockBitmapChainIsValid: 1 if bitmap `bitmap` forms a valid chain from the top
/// of disk `target` (present on the top, no gaps, every copy recording, persistent and
/// consistent), 0 if not, -1 on error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_bitmap_chain_is_valid(
    dom: *const vcp_domain,
    target: *const c_char,
    bitmap: *const c_char,
    nodes: *const vcp_node_data,
) -> c_int {
    const F: &str = "vcp_bitmap_chain_is_valid";
    boundary(F, || {
        // SAFETY: handles and C strings from the caller.
        let dom = &unsafe { arg_ref(dom, "dom", F) }?.0;
        let target = unsafe { arg_str(target, "target", F) }?;
        let bitmap = unsafe { arg_str(bitmap, "bitmap", F) }?;
        let nodes = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let disk = find_disk(dom, target)?;
        Ok(c_int::from(chain::bitmap_chain_is_valid(
            &disk.chain,
            bitmap,
            nodes,
        )))
    })
}

/// The generic merge (qemuBlockGetBitmapMergeActions) on disk `target`: from the layer
/// `top_node` down to, not including, `base_node` (NULL = to the end), merge bitmap
/// `bitmap` (NULL = every bitmap valid from the top) into node `target_node`, under the
/// name `dst_bitmap` (NULL = the bitmap's own name, created persistent where missing)
/// and with `libvirt-tmp-activewrite` of `write_bitmap_node` (may be NULL) merged in
/// and then removed. Stores the actions in `*actions`. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_bitmap_merge_actions(
    dom: *const vcp_domain,
    target: *const c_char,
    nodes: *const vcp_node_data,
    top_node: *const c_char,
    base_node: *const c_char,
    target_node: *const c_char,
    bitmap: *const c_char,
    dst_bitmap: *const c_char,
    write_bitmap_node: *const c_char,
    actions: *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    const F: &str = "vcp_bitmap_merge_actions";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: handles and C strings from the caller.
        let dom = &unsafe { arg_ref(dom, "dom", F) }?.0;
        let disk = find_disk(dom, unsafe { arg_str(target, "target", F) }?)?;
        let nodes = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let top = chain_index(disk, unsafe { arg_str(top_node, "top_node", F) }?)?;
        let base = match unsafe { arg_opt_str(base_node, "base_node", F) }? {
            Some(b) => Some(chain_index(disk, b)?),
            None => None,
        };
        if base.is_some_and(|b| b <= top) {
            return Err(Error::invalid_arg(
                ErrorDomain::Qemu,
                "base_node must be below top_node",
            ));
        }
        let spec = MergeSpec {
            chain: &disk.chain[top..],
            base: base.map(|b| b - top),
            target: unsafe { arg_str(target_node, "target_node", F) }?,
            bitmap: unsafe { arg_opt_str(bitmap, "bitmap", F) }?,
            dst_name: unsafe { arg_opt_str(dst_bitmap, "dst_bitmap", F) }?,
            write_bitmap_src: unsafe { arg_opt_str(write_bitmap_node, "write_bitmap_node", F) }?,
        };
        let out = arg_out(actions, "actions", F)?;
        let list = bitmap_merge_actions(&spec, nodes);
        // SAFETY: checked out-parameter.
        unsafe { write_actions(out, &list) }?;
        Ok(0)
    })
}

/// qemuBackupDiskPrepareOneBitmapsChain for disk `target`: add `tmp_bitmap` (transient,
/// disabled, the chain's granularity) on `target_node` and merge checkpoint
/// `incremental`'s bitmap from every layer into it. No validity check: an invalid or
/// missing chain gives an empty array. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_backup_bitmap_actions(
    dom: *const vcp_domain,
    target: *const c_char,
    nodes: *const vcp_node_data,
    incremental: *const c_char,
    target_node: *const c_char,
    tmp_bitmap: *const c_char,
    actions: *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    const F: &str = "vcp_backup_bitmap_actions";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: handles and C strings from the caller.
        let dom = &unsafe { arg_ref(dom, "dom", F) }?.0;
        let disk = find_disk(dom, unsafe { arg_str(target, "target", F) }?)?;
        let nodes = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let inc = unsafe { arg_str(incremental, "incremental", F) }?;
        let tnode = unsafe { arg_str(target_node, "target_node", F) }?;
        let tmp = unsafe { arg_str(tmp_bitmap, "tmp_bitmap", F) }?;
        let out = arg_out(actions, "actions", F)?;
        let list = backup_bitmap_actions(disk, nodes, inc, tnode, tmp);
        // SAFETY: checked out-parameter.
        unsafe { write_actions(out, &list) }?;
        Ok(0)
    })
}

/// The start of a backup (qemuBackupBegin): one transaction with [the adds of
/// `new_checkpoint`, if not NULL] then per disk [temporary bitmap add + merge, for
/// incremental disks] and its `blockdev-backup` (job `backup-<target>-<top node>`,
/// `sync` incremental/full in push mode, none in pull mode).
///
/// `mode` is `VCP_BACKUP_PUSH` or `VCP_BACKUP_PULL`. `checkpoints` is the
/// NULL-terminated list of existing checkpoint names (NULL = do not check). Stores the
/// transaction's actions in `*actions` and, in `*cleanup` (may be NULL), the stand-alone
/// commands to send when the job has concluded (push: one `block-dirty-bitmap-remove`
/// per incremental disk), as a JSON array of commands.
///
/// Errors as libvirt's: VIR_ERR_NO_DOMAIN_CHECKPOINT for an unknown checkpoint,
/// VIR_ERR_CHECKPOINT_INCONSISTENT for a broken chain, VIR_ERR_INVALID_ARG for an
/// unknown disk, VIR_ERR_CONFIG_UNSUPPORTED for no disks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_backup_begin_actions(
    dom: *const vcp_domain,
    nodes: *const vcp_node_data,
    mode: c_int,
    disks: *const vcp_backup_disk,
    ndisks: usize,
    checkpoints: *const *const c_char,
    new_checkpoint: *const vcp_checkpoint_def,
    actions: *mut *mut c_char,
    cleanup: *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    const F: &str = "vcp_backup_begin_actions";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: handles, arrays and C strings from the caller.
        let dom = &unsafe { arg_ref(dom, "dom", F) }?.0;
        let nodes = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let mode = backup_mode(mode)?;
        let list = unsafe { backup_disks(disks, ndisks, F) }?;
        let known = unsafe { arg_opt_str_list(checkpoints, "checkpoints", F) }?;
        let new_def = unsafe { arg_opt_ref(new_checkpoint) }.map(|d| &d.0);
        let out = arg_out(actions, "actions", F)?;
        let exists = |name: &str| known.as_ref().is_none_or(|k| k.contains(&name));
        let plan = backup_actions(dom, mode, &list, nodes, &exists, new_def)?;
        write_strings(
            &[out, cleanup],
            &[
                actions_json(&plan.actions).to_compact(),
                commands_json(&plan.cleanup).to_compact(),
            ],
        )?;
        Ok(0)
    })
}

/// External snapshot (qemuSnapshotDiskBitmapsPropagate): for each disk, the persistent,
/// recording, consistent bitmaps of its top re-created on the new overlay (QEMU's
/// order, same granularity), then its `blockdev-snapshot`; one transaction for all.
/// `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_snapshot_bitmap_actions(
    dom: *const vcp_domain,
    nodes: *const vcp_node_data,
    disks: *const vcp_snapshot_disk,
    ndisks: usize,
    actions: *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    const F: &str = "vcp_snapshot_bitmap_actions";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: handles, arrays and C strings from the caller.
        let dom = &unsafe { arg_ref(dom, "dom", F) }?.0;
        let nodes = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let mut list = Vec::new();
        for d in unsafe { arg_slice(disks, ndisks, "disks", F) }? {
            list.push(SnapshotDisk {
                target: unsafe { arg_str(d.target, "target", F) }?.to_owned(),
                overlay_node: unsafe { arg_str(d.overlay_node, "overlay_node", F) }?.to_owned(),
            });
        }
        let out = arg_out(actions, "actions", F)?;
        let acts = snapshot_bitmap_actions(dom, &list, nodes)?;
        // SAFETY: checked out-parameter.
        unsafe { write_actions(out, &acts) }?;
        Ok(0)
    })
}

/// The transaction sent before `job-complete` of an active block commit (on the base)
/// or a block copy pivot (on the mirror): a transient, enabled
/// `libvirt-tmp-activewrite` bitmap on `node`. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_activewrite_add_actions(
    node: *const c_char,
    actions: *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    const F: &str = "vcp_activewrite_add_actions";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: C string from the caller.
        let node = unsafe { arg_str(node, "node", F) }?;
        let out = arg_out(actions, "actions", F)?;
        // SAFETY: checked out-parameter.
        unsafe { write_actions(out, &commit::commit_pivot_actions(node)) }?;
        Ok(0)
    })
}

/// Block commit completion (qemuBlockBitmapsHandleCommitFinish) on disk `target`, whose
/// chain is the one before the commit: every bitmap valid from `top_node` is created on
/// `base_node` if missing and filled from each layer in [top, base); with
/// `VCP_BLOCKCOMMIT_ACTIVE`, the base's activewrite bitmap is merged in and removed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_blockcommit_bitmap_actions(
    dom: *const vcp_domain,
    target: *const c_char,
    nodes: *const vcp_node_data,
    top_node: *const c_char,
    base_node: *const c_char,
    actions: *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    const F: &str = "vcp_blockcommit_bitmap_actions";
    boundary(F, || {
        check_flags(flags, VCP_BLOCKCOMMIT_ACTIVE, F)?;
        // SAFETY: handles and C strings from the caller.
        let dom = &unsafe { arg_ref(dom, "dom", F) }?.0;
        let disk = find_disk(dom, unsafe { arg_str(target, "target", F) }?)?;
        let nodes = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let top = chain_index(disk, unsafe { arg_str(top_node, "top_node", F) }?)?;
        let base = chain_index(disk, unsafe { arg_str(base_node, "base_node", F) }?)?;
        let out = arg_out(actions, "actions", F)?;
        let active = flags & VCP_BLOCKCOMMIT_ACTIVE != 0;
        let list = commit::blockcommit_bitmap_actions(&disk.chain, top, base, active, nodes)?;
        // SAFETY: checked out-parameter.
        unsafe { write_actions(out, &list) }?;
        Ok(0)
    })
}

/// Block copy after the pivot (qemuBlockBitmapsHandleBlockcopy) of disk `target`, whose
/// chain is the old one: every bitmap valid from the old top is created on
/// `mirror_node` unless there and filled from the old layers (only the top with
/// `VCP_BLOCKCOPY_SHALLOW`) plus the mirror's activewrite bitmap, which is removed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_blockcopy_bitmap_actions(
    dom: *const vcp_domain,
    target: *const c_char,
    nodes: *const vcp_node_data,
    mirror_node: *const c_char,
    actions: *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    const F: &str = "vcp_blockcopy_bitmap_actions";
    boundary(F, || {
        check_flags(flags, VCP_BLOCKCOPY_SHALLOW, F)?;
        // SAFETY: handles and C strings from the caller.
        let dom = &unsafe { arg_ref(dom, "dom", F) }?.0;
        let disk = find_disk(dom, unsafe { arg_str(target, "target", F) }?)?;
        let nodes = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let mirror = unsafe { arg_str(mirror_node, "mirror_node", F) }?;
        let out = arg_out(actions, "actions", F)?;
        let shallow = flags & VCP_BLOCKCOPY_SHALLOW != 0;
        let list = copy::blockcopy_bitmap_actions(&disk.chain, mirror, shallow, nodes);
        // SAFETY: checked out-parameter.
        unsafe { write_actions(out, &list) }?;
        Ok(0)
    })
}

/// Block pull completion of disk `target` (chain before the pull; `base_node` NULL =
/// pulled down to the end): each valid bitmap of the top gets the same-named bitmaps of
/// the pulled layers merged into it. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_blockpull_bitmap_actions(
    dom: *const vcp_domain,
    target: *const c_char,
    nodes: *const vcp_node_data,
    base_node: *const c_char,
    actions: *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    const F: &str = "vcp_blockpull_bitmap_actions";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: handles and C strings from the caller.
        let dom = &unsafe { arg_ref(dom, "dom", F) }?.0;
        let disk = find_disk(dom, unsafe { arg_str(target, "target", F) }?)?;
        let nodes = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let base = match unsafe { arg_opt_str(base_node, "base_node", F) }? {
            Some(b) => Some(chain_index(disk, b)?),
            None => None,
        };
        let out = arg_out(actions, "actions", F)?;
        let list = pull::blockpull_bitmap_actions(&disk.chain, base, nodes);
        // SAFETY: checked out-parameter.
        unsafe { write_actions(out, &list) }?;
        Ok(0)
    })
}

/// The size query of checkpoint `def` (qemuCheckpointGetXMLDescUpdateSize), step one:
/// in `*recovery` the removal of leftover temporary bitmaps (send first if not `[]`),
/// in `*merge` the merges into `libvirt-tmp-size-xml`, in `*cleanup` their removal (send
/// after reading the node data again and calling `vcp_checkpoint_size_read()`). Disks
/// whose chain is not valid are skipped, as libvirt does. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_size_actions(
    dom: *const vcp_domain,
    def: *const vcp_checkpoint_def,
    nodes: *const vcp_node_data,
    recovery: *mut *mut c_char,
    merge: *mut *mut c_char,
    cleanup: *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    const F: &str = "vcp_checkpoint_size_actions";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: handles from the caller.
        let dom = &unsafe { arg_ref(dom, "dom", F) }?.0;
        let def = &unsafe { arg_ref(def, "def", F) }?.0;
        let nodes = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let (r, m, c) = (
            arg_out(recovery, "recovery", F)?,
            arg_out(merge, "merge", F)?,
            arg_out(cleanup, "cleanup", F)?,
        );
        let plan = size::size_actions(dom, def, nodes);
        write_strings(
            &[r, m, c],
            &[
                actions_json(&plan.recovery).to_compact(),
                actions_json(&plan.merge).to_compact(),
                actions_json(&plan.cleanup).to_compact(),
            ],
        )?;
        Ok(0)
    })
}

/// Step two of the size query: from `before` (the node data the plan was made from)
/// and `after` (read after the merge transaction), stores each measured disk's size
/// in `def` (printed with `VCP_CHECKPOINT_XML_SIZE`); other disks get none. Returns the
/// number of disks measured, or -1. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_size_read(
    dom: *const vcp_domain,
    def: *mut vcp_checkpoint_def,
    before: *const vcp_node_data,
    after: *const vcp_node_data,
    flags: c_uint,
) -> c_int {
    const F: &str = "vcp_checkpoint_size_read";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: handles from the caller.
        let dom = &unsafe { arg_ref(dom, "dom", F) }?.0;
        let def = &mut unsafe { arg_mut(def, "def", F) }?.0;
        let before = &unsafe { arg_ref(before, "before", F) }?.0;
        let after = &unsafe { arg_ref(after, "after", F) }?.0;
        let plan = size::size_actions(dom, def, before);
        let sizes = size::sizes_from_nodes(&plan, after);
        size::apply_sizes(def, &sizes);
        Ok(
            c_int::try_from(sizes.iter().filter(|(_, s)| s.is_some()).count())
                .unwrap_or(c_int::MAX),
        )
    })
}

/// Wraps an action array as libvirt sends it:
/// `{"execute":"transaction","arguments":{"actions":<actions>}}`. A new string (free
/// with `vcp_free()`), or NULL when `actions` is not a JSON array (VIR_ERR_INVALID_ARG).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_transaction_command(actions: *const c_char) -> *mut c_char {
    const F: &str = "vcp_transaction_command";
    boundary(F, || {
        // SAFETY: C string from the caller.
        let actions = unsafe { arg_str(actions, "actions", F) }?;
        let trimmed = actions.trim();
        let is_array = trimmed.starts_with('[')
            && serde_json::from_str::<serde::de::IgnoredAny>(trimmed).is_ok();
        if !is_array {
            return Err(Error::invalid_arg(
                ErrorDomain::Qemu,
                "actions must be a JSON array",
            ));
        }
        let mut out = std::ptr::null_mut();
        // SAFETY: local out-parameter.
        unsafe {
            write_string(
                &mut out,
                &format!("{{\"execute\":\"transaction\",\"arguments\":{{\"actions\":{trimmed}}}}}"),
            )
        }?;
        Ok(out)
    })
}
