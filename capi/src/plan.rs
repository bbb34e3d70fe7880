//! The planner from C: each function returns the actions of one libvirt step as a
//! compact JSON array, byte-identical to what libvirt puts in
//! `{"execute":"transaction","arguments":{"actions":<actions>}}`. Nothing is sent to
//! QEMU by the library.

use std::ffi::{c_char, c_int, c_uint};

use crate::checkpoint::vcp_checkpoint_def;
use crate::domain::vcp_domain;
use crate::nodes::vcp_node_data;
use crate::{Call, Out, Outputs, count, guard, memory};
use virtcheckpoint::{
    Action, BackupDisk, BackupMode, CheckpointDef, DiscardPlan, Domain, Error, ErrorDomain,
    MergeSpec, NodeData, Reopen, Result, SnapshotDisk, actions_json, activewrite_actions,
    backup_begin_actions, backup_bitmap_actions, bitmap_chain_is_valid, bitmap_merge_actions,
    blockcommit_bitmap_actions, blockcopy_bitmap_actions, blockpull_bitmap_actions,
    checkpoint_add_actions, checkpoint_discard_actions, commands_json, discard_disk_bitmaps,
    propagate_bitmap_actions, read_sizes, redefine_validate, size_actions, snapshot_bitmap_actions,
    wrap_transaction,
};

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
    cx: &Call,
    disks: *const vcp_backup_disk,
    n: usize,
) -> Result<Vec<BackupDisk>> {
    let mut list = Vec::new();
    // SAFETY: per the caller's contract.
    for d in unsafe { cx.slice(disks, n, "disks") }? {
        // SAFETY: strings of the caller's struct.
        unsafe {
            list.push(BackupDisk {
                target: cx.str(d.target, "target")?.to_owned(),
                incremental: cx.opt_str(d.incremental, "incremental")?.map(str::to_owned),
                store_node: cx.str(d.store_node, "store_node")?.to_owned(),
                export_bitmap: cx
                    .opt_str(d.export_bitmap, "export_bitmap")?
                    .map(str::to_owned),
            });
        }
    }
    Ok(list)
}

/// Writes `actions` as a compact JSON array to a checked out-parameter.
///
/// # Safety
/// The caller's out-parameter is writable.
unsafe fn put_actions(out: Out<*mut c_char>, actions: &[Action]) -> Result<()> {
    // SAFETY: forwarded contract.
    unsafe {
        Outputs::default()
            .json(out, &actions_json(actions))?
            .write()
    };
    Ok(())
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
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles from the caller.
        let (dom, def, nodes) = unsafe {
            (
                &cx.handle(dom, "dom")?.0,
                &cx.handle(def, "def")?.0,
                cx.opt_handle(nodes),
            )
        };
        let out = cx.out(actions, "actions")?;
        let list = checkpoint_add_actions(dom, def, nodes.map(|n| &n.0))?;
        // SAFETY: the caller's out-parameter.
        unsafe { put_actions(out, &list) }?;
        Ok(0)
    })
}

/// `vcp_checkpoint_discard_actions()`: a disk whose bitmap is gone from every layer is
/// skipped instead of failing the delete (not libvirt's behaviour: the way out of a
/// stuck chain). The disks skipped are stored in `*missing`.
pub const VCP_CHECKPOINT_DISCARD_IGNORE_MISSING: c_uint = 1 << 0;

/// Checkpoint deletion (qemuCheckpointDiscardBitmaps): one transaction removing the
/// checkpoint's bitmap from every layer of every disk that has it, and in `*reopen`
/// (NULL-terminated) the backing layers' format nodes to reopen read-write before it,
/// in that order, and read-only after it, in the reverse order, as libvirt does (each
/// disk's layers deepest first, the last disk's first; see
/// `vcp_blockdev_reopen_command()`).
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
    guard!(|cx| {
        // SAFETY: handles from the caller.
        let (dom, def, nodes) =
            unsafe { cx.handles3((dom, "dom"), (def, "def"), (nodes, "nodes")) }?;
        let (dom, def, nodes) = (&dom.0, &def.0, &nodes.0);
        // SAFETY: the caller's out-parameters.
        let (outs, tolerate) = unsafe { discard_out(cx, flags, actions, reopen, missing) }?;
        // SAFETY: the caller's out-parameters.
        unsafe { discard(outs, dom, def, nodes, tolerate) }?;
        Ok(0)
    })
}

/// The body of `vcp_checkpoint_discard_actions()`, shared with the delete plan.
///
/// # Safety
/// The out-parameters are NULL or writable.
#[allow(clippy::too_many_arguments)]
/// The out-parameters of a discard: actions, reopen list, missing list.
pub(crate) struct DiscardOut {
    actions: Out<*mut c_char>,
    reopen: Out<*mut *mut c_char>,
    missing: Out<*mut *mut c_char>,
}

/// Checks a discard's flags and out-parameters; returns them with whether missing
/// bitmaps are tolerated.
///
/// # Safety
/// The out-parameters are NULL or writable.
pub(crate) unsafe fn discard_out(
    cx: &Call,
    flags: c_uint,
    actions: *mut *mut c_char,
    reopen: *mut *mut *mut c_char,
    missing: *mut *mut *mut c_char,
) -> Result<(DiscardOut, bool)> {
    cx.flags(flags, VCP_CHECKPOINT_DISCARD_IGNORE_MISSING)?;
    let outs = DiscardOut {
        actions: cx.out(actions, "actions")?,
        reopen: cx.out(reopen, "reopen")?,
        missing: cx.out(missing, "missing")?,
    };
    Ok((outs, flags & VCP_CHECKPOINT_DISCARD_IGNORE_MISSING != 0))
}

/// Plans the discard of `def` and writes it.
///
/// # Safety
/// The out-parameters are writable.
pub(crate) unsafe fn discard(
    outs: DiscardOut,
    dom: &Domain,
    def: &CheckpointDef,
    nodes: &NodeData,
    tolerate: bool,
) -> Result<()> {
    let plan: DiscardPlan = checkpoint_discard_actions(dom, def, nodes, tolerate)?;
    let reopen: Vec<&str> = plan.reopen.iter().map(|r| r.format_node.as_str()).collect();
    let written = Outputs::default()
        .json(outs.actions, &actions_json(&plan.actions))?
        .list(outs.reopen, &reopen)?
        .list(outs.missing, &plan.missing)?;
    // SAFETY: forwarded contract.
    unsafe { written.write() };
    Ok(())
}

/// The `blockdev-reopen` command libvirt sends for a qcow2 backing layer of `dom`
/// around a delete or a commit: read-write before (`read_only` 0), read-only after,
/// with the image's options (`vcp_domain_disk_set_driver()`).
/// A new string (free with `vcp_free()`) or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_blockdev_reopen_command(
    dom: *const vcp_domain,
    format_node: *const c_char,
    read_only: c_int,
) -> *mut c_char {
    guard!(|cx| {
        // SAFETY: handle and C string from the caller.
        let (dom, node) = unsafe {
            (
                &cx.handle(dom, "dom")?.0,
                cx.str(format_node, "format_node")?,
            )
        };
        let command = Reopen::of_node(dom, node)?.command(read_only != 0);
        memory::c_string(&command.to_compact())
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
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles from the caller.
        let dom = &unsafe { cx.handle(dom, "dom") }?.0;
        let def = &unsafe { cx.handle(def, "def") }?.0;
        let nodes = &unsafe { cx.handle(nodes, "nodes") }?.0;
        redefine_validate(dom, def, nodes)?;
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
    guard!(|cx| {
        // SAFETY: handles and C strings from the caller.
        let (dom, target, bitmap, nodes) = unsafe {
            (
                &cx.handle(dom, "dom")?.0,
                cx.str(target, "target")?,
                cx.str(bitmap, "bitmap")?,
                &cx.handle(nodes, "nodes")?.0,
            )
        };
        let chain = &dom.find_disk(target)?.chain;
        Ok(c_int::from(bitmap_chain_is_valid(chain, bitmap, nodes)))
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
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles and C strings from the caller.
        let (dom, target, nodes, top, base) = unsafe {
            (
                &cx.handle(dom, "dom")?.0,
                cx.str(target, "target")?,
                &cx.handle(nodes, "nodes")?.0,
                cx.str(top_node, "top_node")?,
                cx.opt_str(base_node, "base_node")?,
            )
        };
        let out = cx.out(actions, "actions")?;
        let (chain, base) = dom.find_disk(target)?.chain_between(top, base)?;
        // SAFETY: C strings from the caller.
        let spec = unsafe {
            MergeSpec {
                chain,
                base,
                target: cx.str(target_node, "target_node")?,
                bitmap: cx.opt_str(bitmap, "bitmap")?,
                dst_name: cx.opt_str(dst_bitmap, "dst_bitmap")?,
                write_bitmap_src: cx.opt_str(write_bitmap_node, "write_bitmap_node")?,
            }
        };
        // SAFETY: the caller's out-parameter.
        unsafe { put_actions(out, &bitmap_merge_actions(&spec, nodes)) }?;
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
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles and C strings from the caller.
        let (dom, target, nodes, inc, tnode, tmp) = unsafe {
            (
                &cx.handle(dom, "dom")?.0,
                cx.str(target, "target")?,
                &cx.handle(nodes, "nodes")?.0,
                cx.str(incremental, "incremental")?,
                cx.str(target_node, "target_node")?,
                cx.str(tmp_bitmap, "tmp_bitmap")?,
            )
        };
        let out = cx.out(actions, "actions")?;
        let list = backup_bitmap_actions(&dom.find_disk(target)?.chain, nodes, inc, tnode, tmp);
        // SAFETY: the caller's out-parameter.
        unsafe { put_actions(out, &list) }?;
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
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles, arrays and C strings from the caller.
        let (dom, nodes, list, known, new_def) = unsafe {
            (
                &cx.handle(dom, "dom")?.0,
                &cx.handle(nodes, "nodes")?.0,
                backup_disks(cx, disks, ndisks)?,
                cx.opt_str_list(checkpoints, "checkpoints")?,
                cx.opt_handle(new_checkpoint).map(|d| &d.0),
            )
        };
        let (a, c) = (cx.out(actions, "actions")?, cx.out(cleanup, "cleanup")?);
        let exists = |name: &str| known.as_ref().is_none_or(|k| k.contains(&name));
        let plan = backup_begin_actions(dom, backup_mode(mode)?, &list, nodes, &exists, new_def)?;
        let outs = Outputs::default()
            .json(a, &actions_json(&plan.actions))?
            .json(c, &commands_json(&plan.cleanup))?;
        // SAFETY: the caller's out-parameters.
        unsafe { outs.write() };
        Ok(0)
    })
}

/// qemuSnapshotDiskBitmapsPropagate at libvirt's granularity, one image: the
/// persistent, recording, consistent bitmaps of node `top_node` re-created on
/// `overlay_node` (QEMU's order, same granularity), as a JSON array of transaction
/// actions (`[]` when the node is unknown or has none). libvirt adds the
/// `blockdev-snapshot` itself. `flags` must be 0. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_node_propagate_bitmap_actions(
    nodes: *const vcp_node_data,
    top_node: *const c_char,
    overlay_node: *const c_char,
    actions: *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handle and C strings from the caller.
        let (nodes, top, overlay) = unsafe {
            (
                &cx.handle(nodes, "nodes")?.0,
                cx.str(top_node, "top_node")?,
                cx.str(overlay_node, "overlay_node")?,
            )
        };
        let out = cx.out(actions, "actions")?;
        // SAFETY: the caller's out-parameter.
        unsafe { put_actions(out, &propagate_bitmap_actions(nodes, top, overlay)) }?;
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
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles, arrays and C strings from the caller.
        let (dom, nodes, given) = unsafe {
            (
                &cx.handle(dom, "dom")?.0,
                &cx.handle(nodes, "nodes")?.0,
                cx.slice(disks, ndisks, "disks")?,
            )
        };
        let mut list = Vec::with_capacity(given.len());
        for d in given {
            // SAFETY: strings of the caller's struct.
            list.push(unsafe {
                SnapshotDisk {
                    target: cx.str(d.target, "target")?.to_owned(),
                    overlay_node: cx.str(d.overlay_node, "overlay_node")?.to_owned(),
                }
            });
        }
        let out = cx.out(actions, "actions")?;
        let acts = snapshot_bitmap_actions(dom, &list, nodes)?;
        // SAFETY: the caller's out-parameter.
        unsafe { put_actions(out, &acts) }?;
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
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: C string from the caller.
        let node = unsafe { cx.str(node, "node") }?;
        let out = cx.out(actions, "actions")?;
        // SAFETY: the caller's out-parameter.
        unsafe { put_actions(out, &activewrite_actions(node)) }?;
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
    guard!(|cx| {
        cx.flags(flags, VCP_BLOCKCOMMIT_ACTIVE)?;
        // SAFETY: handles and C strings from the caller.
        let (dom, target, nodes, top, base) = unsafe {
            (
                &cx.handle(dom, "dom")?.0,
                cx.str(target, "target")?,
                &cx.handle(nodes, "nodes")?.0,
                cx.str(top_node, "top_node")?,
                cx.str(base_node, "base_node")?,
            )
        };
        let out = cx.out(actions, "actions")?;
        let disk = dom.find_disk(target)?;
        let (top, base) = (disk.layer_of(top)?, disk.layer_of(base)?);
        let active = flags & VCP_BLOCKCOMMIT_ACTIVE != 0;
        let list = blockcommit_bitmap_actions(&disk.chain, top, base, active, nodes)?;
        // SAFETY: the caller's out-parameter.
        unsafe { put_actions(out, &list) }?;
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
    guard!(|cx| {
        cx.flags(flags, VCP_BLOCKCOPY_SHALLOW)?;
        // SAFETY: handles and C strings from the caller.
        let (dom, target, nodes, mirror) = unsafe {
            (
                &cx.handle(dom, "dom")?.0,
                cx.str(target, "target")?,
                &cx.handle(nodes, "nodes")?.0,
                cx.str(mirror_node, "mirror_node")?,
            )
        };
        let out = cx.out(actions, "actions")?;
        let chain = &dom.find_disk(target)?.chain;
        let shallow = flags & VCP_BLOCKCOPY_SHALLOW != 0;
        let list = blockcopy_bitmap_actions(chain, mirror, shallow, nodes);
        // SAFETY: the caller's out-parameter.
        unsafe { put_actions(out, &list) }?;
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
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles and C strings from the caller.
        let (dom, target, nodes, base) = unsafe {
            (
                &cx.handle(dom, "dom")?.0,
                cx.str(target, "target")?,
                &cx.handle(nodes, "nodes")?.0,
                cx.opt_str(base_node, "base_node")?,
            )
        };
        let out = cx.out(actions, "actions")?;
        let disk = dom.find_disk(target)?;
        let base = base.map(|b| disk.layer_of(b)).transpose()?;
        let list = blockpull_bitmap_actions(&disk.chain, base, nodes);
        // SAFETY: the caller's out-parameter.
        unsafe { put_actions(out, &list) }?;
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
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles from the caller.
        let (dom, def, nodes) =
            unsafe { cx.handles3((dom, "dom"), (def, "def"), (nodes, "nodes")) }?;
        let (dom, def, nodes) = (&dom.0, &def.0, &nodes.0);
        let (r, m, c) = (
            cx.out(recovery, "recovery")?,
            cx.out(merge, "merge")?,
            cx.out(cleanup, "cleanup")?,
        );
        let plan = size_actions(dom, def, nodes);
        let outs = Outputs::default()
            .json(r, &actions_json(&plan.recovery))?
            .json(m, &actions_json(&plan.merge))?
            .json(c, &actions_json(&plan.cleanup))?;
        // SAFETY: the caller's out-parameters.
        unsafe { outs.write() };
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
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles from the caller.
        let (dom, def, before, after) = unsafe {
            (
                &cx.handle(dom, "dom")?.0,
                &mut cx.handle_mut(def, "def")?.0,
                &cx.handle(before, "before")?.0,
                &cx.handle(after, "after")?.0,
            )
        };
        Ok(count(read_sizes(dom, def, before, after)))
    })
}

/// Wraps an action array as libvirt sends it:
/// `{"execute":"transaction","arguments":{"actions":<actions>}}`. A new string (free
/// with `vcp_free()`), or NULL when `actions` is not a JSON array (VIR_ERR_INVALID_ARG).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_transaction_command(actions: *const c_char) -> *mut c_char {
    guard!(|cx| {
        // SAFETY: C string from the caller.
        let actions = unsafe { cx.str(actions, "actions") }?;
        memory::c_string(&wrap_transaction(actions)?)
    })
}

/// The removal of bitmap `bitmap` from every layer of disk `target`'s chain that has it
/// (qemuCheckpointDiscardDiskBitmaps, libvirt's per-disk granularity): the actions in
/// `*actions`, and in `*reopen` the format nodes of the non-top layers among them,
/// deepest first, to reopen read-write around the transaction. A bitmap found nowhere
/// is VIR_ERR_INTERNAL_ERROR "bitmap '%s' not found in backing chain of '%s'" naming
/// `target`. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_disk_discard_bitmap_actions(
    dom: *const vcp_domain,
    target: *const c_char,
    nodes: *const vcp_node_data,
    bitmap: *const c_char,
    actions: *mut *mut c_char,
    reopen: *mut *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles and C strings from the caller.
        let (dom, target, nodes, bitmap) = unsafe {
            (
                &cx.handle(dom, "dom")?.0,
                cx.str(target, "target")?,
                &cx.handle(nodes, "nodes")?.0,
                cx.str(bitmap, "bitmap")?,
            )
        };
        let (a, r) = (cx.out(actions, "actions")?, cx.out(reopen, "reopen")?);
        let disk = dom.find_disk(target)?;
        let (acts, layers) = discard_disk_bitmaps(&disk.chain, nodes, bitmap, target)?;
        let names: Vec<&str> = layers
            .iter()
            .map(|&l| disk.chain[l].format_node.as_str())
            .collect();
        let outs = Outputs::default()
            .json(a, &actions_json(&acts))?
            .list(r, &names)?;
        // SAFETY: the caller's out-parameters.
        unsafe { outs.write() };
        Ok(0)
    })
}
