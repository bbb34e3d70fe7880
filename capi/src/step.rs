//! `vcp_step`: a whole driver step (the commands to send now, when the job is ready,
//! when it has ended, to abort it; the jobs; the domain afterwards).

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void};

use crate::chain::vcp_action_sink;
use crate::checkpoint::vcp_checkpoint_def;
use crate::domain::vcp_domain;
use crate::nodes::vcp_node_data;
use crate::plan::{
    VCP_BLOCKCOPY_SHALLOW, VCP_CHECKPOINT_DISCARD_IGNORE_MISSING, backup_disks, backup_mode,
    vcp_backup_disk,
};
use crate::{free_handle, guard, into_handle, memory, write_list};
use virtcheckpoint::{
    CreateOptions, Error, ErrorDomain, Image, SnapshotDisk, Step, StepCommand, backup_step,
    commit_step, copy_step, create_step, create_step_with, discard_step, fix_for_owner, fix_plan,
    fix_step, pending_abort_step, pull_step, reconcile, redefine_validate_step, reset_step,
    size_step, snapshot_step,
};

/// A driver step. Opaque; free with `vcp_step_free()`. Read-only once built.
pub struct vcp_step(pub(crate) Step);

/// `vcp_step_commands()`: what to send now, in order.
pub const VCP_STEP_NOW: c_int = 0;
/// `vcp_step_commands()`: what to send when the block job is ready (the pivot).
pub const VCP_STEP_ON_READY: c_int = 1;
/// `vcp_step_commands()`: what to send once the job has concluded.
pub const VCP_STEP_ON_END: c_int = 2;
/// `vcp_step_commands()`: what to send to abort the step.
pub const VCP_STEP_ON_ABORT: c_int = 3;

/// `vcp_copy_step()`: the domain is persistent (libvirt refuses a shallow copy of a
/// persistent domain without a transient job).
pub const VCP_COPY_PERSISTENT_DOMAIN: c_uint = 1 << 1;
/// `vcp_copy_step()`: the copy job is transient (`VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB`).
pub const VCP_COPY_TRANSIENT_JOB: c_uint = 1 << 2;
/// `vcp_copy_step()`: the mirror is a raw image (else qcow2), which holds no bitmap: the
/// step sends none to it, and a shallow copy of a disk with backing layers is refused.
pub const VCP_COPY_MIRROR_RAW: c_uint = 1 << 3;

/// An overlay for `vcp_snapshot_step()`: the new image of one disk.
#[repr(C)]
pub struct vcp_snapshot_overlay {
    /// The disk's target.
    pub target: *const c_char,
    /// The overlay's file (or network source as text); may be NULL.
    pub source: *const c_char,
    /// The overlay's format node, attached with `"backing": null`.
    pub format_node: *const c_char,
    /// The overlay's storage node; may be NULL.
    pub storage_node: *const c_char,
}

/// Frees a step. NULL is accepted.
///
/// # Safety
/// `step` is NULL or a handle from this library not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_step_free(step: *mut vcp_step) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(step) }
}

/// The commands of phase `phase` (`VCP_STEP_*`), or the error for another number.
fn phase_of(step: &Step, phase: c_int) -> virtcheckpoint::Result<&[virtcheckpoint::Json]> {
    usize::try_from(phase)
        .ok()
        .and_then(|p| step.phase(p))
        .ok_or_else(|| {
            Error::invalid_arg(
                ErrorDomain::Qemu,
                format_args!("unknown step phase {phase}"),
            )
        })
}

/// Refuses the text of a step whose reopens name the node alone.
fn sendable(step: &Step) -> virtcheckpoint::Result<()> {
    if step.is_sendable() {
        return Ok(());
    }
    Err(Error::invalid_arg(
        ErrorDomain::Qemu,
        "the step's reopens name the image's node alone: run it with vcp_step_run()",
    ))
}

/// Stores in `*commands` the step's commands of `phase` (`VCP_STEP_*`), each a compact
/// QMP command as libvirt sends it, in order. Returns their number, or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_step_commands(
    step: *const vcp_step,
    phase: c_int,
    commands: *mut *mut *mut c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle from the caller.
        let step = &unsafe { cx.handle(step, "step") }?.0;
        let out = cx.out(commands, "commands")?;
        let list = phase_of(step, phase)?;
        sendable(step)?;
        let texts: Vec<String> = list.iter().map(|c| c.to_compact()).collect();
        // SAFETY: the caller's out-parameter.
        unsafe { write_list(out, &texts) }
    })
}

/// How a driver with its own QMP builders runs a step (`vcp_step_run()`): libvirt, say,
/// builds its transactions with its own JSON helpers and reopens an image with its own
/// options and access rights. Strings passed are valid during the callback only.
#[repr(C)]
pub struct vcp_step_ops {
    /// Passed to `transaction`, `reopen` and `command`.
    pub opaque: *mut c_void,
    /// Receives each transaction's actions, in order, before `transaction` sends them
    /// (as for the `vcp_chain_*` functions; it has its own `opaque`).
    pub actions: vcp_action_sink,
    /// Sends the transaction whose actions `actions` has just received (none, for an
    /// empty transaction, which libvirt sends too). May be NULL when the phase has none.
    pub transaction: Option<unsafe extern "C" fn(opaque: *mut c_void) -> c_int>,
    /// Reopens the image whose node is `node`: read-write (`read_only` 0) before a change
    /// to its bitmaps, read-only (1) after it. May be NULL when the phase reopens nothing.
    pub reopen: Option<
        unsafe extern "C" fn(opaque: *mut c_void, node: *const c_char, read_only: c_int) -> c_int,
    >,
    /// Any other command, as compact QMP. May be NULL when the phase has none.
    pub command: Option<unsafe extern "C" fn(opaque: *mut c_void, json: *const c_char) -> c_int>,
}

/// `vcp_step_run()`: a callback of the driver failed (its own error stands).
pub const VCP_STEP_RUN_DRIVER_FAILED: c_int = -2;

/// Runs phase `phase` (`VCP_STEP_*`) of `step` through `ops`, in order, so that a
/// driver runs a whole step with its own builders and never re-derives the order.
/// Every command of the phase is checked to have its callback before anything is
/// called (VIR_ERR_INVALID_ARG). When a callback fails (returns a negative number),
/// what follows is skipped except the read-only reopens of the images this run
/// reopened read-write, whose failures are ignored, as libvirt always puts them back
/// around a delete; the result is then `VCP_STEP_RUN_DRIVER_FAILED` and the library's
/// last error is cleared (the driver reported its own). Returns 0 when every callback
/// succeeded, -1 on the library's error. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_step_run(
    step: *const vcp_step,
    phase: c_int,
    ops: *const vcp_step_ops,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handles from the caller.
        let (step, ops) = unsafe { (&cx.handle(step, "step")?.0, cx.handle(ops, "ops")?) };
        cx.flags(flags, 0)?;
        let commands: Vec<StepCommand> =
            phase_of(step, phase)?.iter().map(StepCommand::of).collect();
        let missing = |what: &str| {
            Error::invalid_arg(
                ErrorDomain::None,
                format_args!("the step's phase {phase} needs the ops' {what} callback"),
            )
        };
        for c in &commands {
            match c {
                StepCommand::Transaction(_) if ops.transaction.is_none() => {
                    return Err(missing("transaction"));
                }
                // SAFETY: the ops' sink, checked as the chain functions check theirs.
                StepCommand::Transaction(_) => _ = unsafe { cx.sink(&ops.actions) }?,
                StepCommand::Reopen { .. } if ops.reopen.is_none() => {
                    return Err(missing("reopen"));
                }
                StepCommand::Other(_) if ops.command.is_none() => return Err(missing("command")),
                _ => {}
            }
        }
        let c_str = |s: &str| {
            std::ffi::CString::new(s).map_err(|_| {
                Error::internal(format_args!("'{}' holds a NUL byte", s.escape_debug()))
            })
        };
        let o = ops.opaque;
        let (mut reopened, mut failed) = (Vec::new(), false);
        for c in commands {
            match c {
                StepCommand::Reopen {
                    node,
                    read_only: true,
                } => {
                    if !failed || reopened.contains(&node) {
                        let n = c_str(node)?;
                        // SAFETY: the driver's callback (checked above), a valid string.
                        // A failure to put an image back read-only is ignored, as libvirt
                        // ignores it.
                        unsafe { ops.reopen.map(|f| f(o, n.as_ptr(), 1)) };
                    }
                }
                _ if failed => {}
                StepCommand::Reopen {
                    node,
                    read_only: false,
                } => {
                    let n = c_str(node)?;
                    // SAFETY: as above.
                    if unsafe { ops.reopen.map_or(-1, |f| f(o, n.as_ptr(), 0)) } < 0 {
                        failed = true;
                    } else {
                        reopened.push(node);
                    }
                }
                StepCommand::Transaction(actions) => {
                    // SAFETY: the ops' sink, checked above.
                    match unsafe { crate::chain::deliver_sent(&ops.actions, actions) } {
                        Err(e) if e.code() == virtcheckpoint::ErrorCode::OperationFailed => {
                            failed = true;
                        }
                        Err(e) => return Err(e),
                        // SAFETY: the driver's callback, checked above.
                        Ok(()) => failed = unsafe { ops.transaction.map_or(-1, |f| f(o)) } < 0,
                    }
                }
                StepCommand::Other(json) => {
                    let j = c_str(&json.to_compact())?;
                    // SAFETY: as above.
                    failed = unsafe { ops.command.map_or(-1, |f| f(o, j.as_ptr())) } < 0;
                }
            }
        }
        Ok(if failed {
            VCP_STEP_RUN_DRIVER_FAILED
        } else {
            0
        })
    })
}

/// Stores in `*jobs` the ids of the block jobs the step starts or finishes. Returns
/// their number, or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_step_jobs(
    step: *const vcp_step,
    jobs: *mut *mut *mut c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle from the caller.
        let step = &unsafe { cx.handle(step, "step") }?.0;
        let out = cx.out(jobs, "jobs")?;
        // SAFETY: the caller's out-parameter.
        unsafe { write_list(out, &step.jobs) }
    })
}

/// Stores in `*dom` a new domain: the chains once the step is done (free with
/// `vcp_domain_free()`). Returns 1, or 0 when the step changes no chain (`*dom` set to
/// NULL), or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_step_get_domain_after(
    step: *const vcp_step,
    dom: *mut *mut vcp_domain,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle from the caller.
        let step = &unsafe { cx.handle(step, "step") }?.0;
        let out = cx.out(dom, "dom")?;
        let (value, found) = match &step.domain_after {
            Some(d) => (into_handle(vcp_domain(d.clone())), 1),
            None => (std::ptr::null_mut(), 0),
        };
        // SAFETY: the caller's out-parameter.
        unsafe { out.put(value) };
        Ok(found)
    })
}

/// The whole step as one JSON object (`now`, `jobs`, `on-ready`, `on-end`,
/// `on-abort`). A new string (free with `vcp_free()`), or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_step_format_json(step: *const vcp_step) -> *mut c_char {
    guard!(|cx| {
        // SAFETY: handle from the caller.
        let step = &unsafe { cx.handle(step, "step") }?.0;
        sendable(step)?;
        memory::c_string(&step.to_json().to_compact())
    })
}

/// The step that creates checkpoint `def` (one transaction). `nodes` may be NULL (then
/// QEMU's own checks are not made here). `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_create_step(
    dom: *const vcp_domain,
    def: *const vcp_checkpoint_def,
    nodes: *const vcp_node_data,
    flags: c_uint,
) -> *mut vcp_step {
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
        Ok(into_handle(vcp_step(create_step(
            dom,
            def,
            nodes.map(|n| &n.0),
        )?)))
    })
}

/// `vcp_redefine_validate_step()`: the domain is not running.
pub const VCP_REDEFINE_DOMAIN_INACTIVE: c_uint = 1 << 0;

/// The step of a redefine with validation (`VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE_VALIDATE`,
/// qemuCheckpointRedefineValidateBitmaps): nothing to send, the step is the check.
/// `nodes` is the node data read just before (NULL only with
/// `VCP_REDEFINE_DOMAIN_INACTIVE`). Refused as libvirt refuses it: an inactive domain
/// with VIR_ERR_OPERATION_INVALID "domain is not running", a missing or broken bitmap
/// with VIR_ERR_CHECKPOINT_INCONSISTENT. `flags`: `VCP_REDEFINE_DOMAIN_INACTIVE`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_redefine_validate_step(
    dom: *const vcp_domain,
    def: *const vcp_checkpoint_def,
    nodes: *const vcp_node_data,
    flags: c_uint,
) -> *mut vcp_step {
    guard!(|cx| {
        cx.flags(flags, VCP_REDEFINE_DOMAIN_INACTIVE)?;
        // SAFETY: handles from the caller.
        let (dom, def, nodes) = unsafe {
            (
                &cx.handle(dom, "dom")?.0,
                &cx.handle(def, "def")?.0,
                cx.opt_handle(nodes),
            )
        };
        let running = flags & VCP_REDEFINE_DOMAIN_INACTIVE == 0;
        let step = redefine_validate_step(dom, def, nodes.map(|n| &n.0), running)?;
        Ok(into_handle(vcp_step(step)))
    })
}

/// Like `vcp_create_step()`, with the bitmaps' granularity in bytes (0: QEMU's
/// default): a power of two from 512 B to 2 GiB whose bitmap of each disk fits QEMU's
/// 512 MiB, checked against each disk's virtual size in `nodes` (required) before
/// anything is planned (VIR_ERR_CONFIG_UNSUPPORTED). `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_create_step_granularity(
    dom: *const vcp_domain,
    def: *const vcp_checkpoint_def,
    nodes: *const vcp_node_data,
    granularity: c_ulonglong,
    flags: c_uint,
) -> *mut vcp_step {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles from the caller.
        let (dom, def, nodes) =
            unsafe { cx.handles3((dom, "dom"), (def, "def"), (nodes, "nodes")) }?;
        let opts = CreateOptions {
            granularity: (granularity != 0).then_some(granularity),
        };
        let step = create_step_with(&dom.0, &def.0, Some(&nodes.0), opts)?;
        Ok(into_handle(vcp_step(step)))
    })
}

/// The step that discards checkpoint `def`'s bitmaps, from node data read just before:
/// the backing layers reopened read-write, the removal transaction, the layers
/// reopened read-only. `flags`: `VCP_CHECKPOINT_DISCARD_IGNORE_MISSING`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_discard_step(
    dom: *const vcp_domain,
    def: *const vcp_checkpoint_def,
    nodes: *const vcp_node_data,
    flags: c_uint,
) -> *mut vcp_step {
    guard!(|cx| {
        cx.flags(flags, VCP_CHECKPOINT_DISCARD_IGNORE_MISSING)?;
        // SAFETY: handles from the caller.
        let (dom, def, nodes) =
            unsafe { cx.handles3((dom, "dom"), (def, "def"), (nodes, "nodes")) }?;
        let (dom, def, nodes) = (&dom.0, &def.0, &nodes.0);
        let tolerate = flags & VCP_CHECKPOINT_DISCARD_IGNORE_MISSING != 0;
        Ok(into_handle(vcp_step(discard_step(
            dom, def, nodes, tolerate,
        )?)))
    })
}

/// The backup step (see `vcp_backup_begin_actions()` for the arguments):
/// `VCP_STEP_NOW` the transaction and, in pull mode, each disk's `block-export-add`;
/// `VCP_STEP_ON_END`, once the jobs concluded, per disk `job-dismiss` and the store's
/// `blockdev-del` (its storage node too when `store_storage_nodes`, NULL or `ndisks`
/// entries that may be NULL, names it), then the temporary bitmaps' removal (push);
/// `VCP_STEP_ON_ABORT` each export's removal (pull) and a `job-cancel` per job. A pull
/// backup is ended with `VCP_STEP_ON_ABORT`, then `VCP_STEP_ON_END`. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_backup_step(
    dom: *const vcp_domain,
    nodes: *const vcp_node_data,
    mode: c_int,
    disks: *const vcp_backup_disk,
    ndisks: usize,
    store_storage_nodes: *const *const c_char,
    checkpoints: *const *const c_char,
    new_checkpoint: *const vcp_checkpoint_def,
    flags: c_uint,
) -> *mut vcp_step {
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
        let mut storage = Vec::with_capacity(list.len());
        if !store_storage_nodes.is_null() {
            // SAFETY: `ndisks` entries (bounded by `backup_disks`), each NULL or a string.
            for p in unsafe { cx.slice(store_storage_nodes, list.len(), "store_storage_nodes") }? {
                storage.push(unsafe { cx.opt_str(*p, "store_storage_nodes") }?);
            }
        }
        let exists = |name: &str| known.as_ref().is_none_or(|k| k.contains(&name));
        let step = backup_step(
            dom,
            backup_mode(mode)?,
            &list,
            nodes,
            &exists,
            new_def,
            &storage,
        )?;
        Ok(into_handle(vcp_step(step)))
    })
}

/// The block commit step of disk `target` from `top_node` into `base_node` (an active
/// commit when `top_node` is the disk's top), job `job_id`, planned from the chain
/// before the commit and node data read when the job is ready or concluded.
/// `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_commit_step(
    dom: *const vcp_domain,
    target: *const c_char,
    nodes: *const vcp_node_data,
    top_node: *const c_char,
    base_node: *const c_char,
    job_id: *const c_char,
    flags: c_uint,
) -> *mut vcp_step {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles and C strings from the caller.
        let (dom, target, nodes, top, base, job) = unsafe {
            (
                &cx.handle(dom, "dom")?.0,
                cx.str(target, "target")?,
                &cx.handle(nodes, "nodes")?.0,
                cx.str(top_node, "top_node")?,
                cx.str(base_node, "base_node")?,
                cx.str(job_id, "job_id")?,
            )
        };
        Ok(into_handle(vcp_step(commit_step(
            dom, target, top, base, job, nodes,
        )?)))
    })
}

/// The block copy step of disk `target` onto the mirror image (`mirror_source` may be
/// NULL; `mirror_storage_node` may be NULL), job `job_id`. `flags`:
/// `VCP_BLOCKCOPY_SHALLOW`, `VCP_COPY_PERSISTENT_DOMAIN`, `VCP_COPY_TRANSIENT_JOB`,
/// `VCP_COPY_MIRROR_RAW`; a shallow copy of a persistent domain without a transient
/// job is refused with VIR_ERR_OPERATION_INVALID "domain is not transient", and one
/// into a raw mirror with VIR_ERR_CONFIG_UNSUPPORTED, as libvirt refuses them. A mirror
/// that holds no bitmap (raw, or qcow2 v2 in `nodes`) gets no bitmap command.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_copy_step(
    dom: *const vcp_domain,
    target: *const c_char,
    nodes: *const vcp_node_data,
    mirror_source: *const c_char,
    mirror_format_node: *const c_char,
    mirror_storage_node: *const c_char,
    job_id: *const c_char,
    flags: c_uint,
) -> *mut vcp_step {
    guard!(|cx| {
        cx.flags(
            flags,
            VCP_BLOCKCOPY_SHALLOW
                | VCP_COPY_PERSISTENT_DOMAIN
                | VCP_COPY_TRANSIENT_JOB
                | VCP_COPY_MIRROR_RAW,
        )?;
        // SAFETY: handles and C strings from the caller.
        let (dom, target, nodes, job, mirror) = unsafe {
            (
                &cx.handle(dom, "dom")?.0,
                cx.str(target, "target")?,
                &cx.handle(nodes, "nodes")?.0,
                cx.str(job_id, "job_id")?,
                Image {
                    source: cx
                        .opt_str(mirror_source, "mirror_source")?
                        .unwrap_or("")
                        .to_owned(),
                    format: if flags & VCP_COPY_MIRROR_RAW != 0 {
                        "raw"
                    } else {
                        "qcow2"
                    }
                    .into(),
                    format_node: cx.str(mirror_format_node, "mirror_format_node")?.to_owned(),
                    storage_node: cx
                        .opt_str(mirror_storage_node, "mirror_storage_node")?
                        .unwrap_or("")
                        .to_owned(),
                    ..Image::default()
                },
            )
        };
        let step = copy_step(
            dom,
            target,
            &mirror,
            flags & VCP_BLOCKCOPY_SHALLOW != 0,
            flags & VCP_COPY_PERSISTENT_DOMAIN != 0,
            flags & VCP_COPY_TRANSIENT_JOB != 0,
            job,
            nodes,
        )?;
        Ok(into_handle(vcp_step(step)))
    })
}

/// The block pull step of disk `target` down to `base_node` (NULL: the whole chain),
/// job `job_id`, planned before the job starts (its `VCP_STEP_ON_END` dismisses the job
/// first, then merges the bitmaps). `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_pull_step(
    dom: *const vcp_domain,
    target: *const c_char,
    nodes: *const vcp_node_data,
    base_node: *const c_char,
    job_id: *const c_char,
    flags: c_uint,
) -> *mut vcp_step {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles and C strings from the caller.
        let (dom, target, nodes, base, job) = unsafe {
            (
                &cx.handle(dom, "dom")?.0,
                cx.str(target, "target")?,
                &cx.handle(nodes, "nodes")?.0,
                cx.opt_str(base_node, "base_node")?,
                cx.str(job_id, "job_id")?,
            )
        };
        Ok(into_handle(vcp_step(pull_step(
            dom, target, base, job, nodes,
        )?)))
    })
}

/// The external snapshot step of `n` overlays: one transaction (bitmaps re-created on
/// each overlay, its `blockdev-snapshot`), and the domain afterwards with each overlay
/// on top. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_snapshot_step(
    dom: *const vcp_domain,
    nodes: *const vcp_node_data,
    overlays: *const vcp_snapshot_overlay,
    n: usize,
    flags: c_uint,
) -> *mut vcp_step {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles and the caller's array.
        let (dom, nodes, given) = unsafe {
            (
                &cx.handle(dom, "dom")?.0,
                &cx.handle(nodes, "nodes")?.0,
                cx.slice(overlays, n, "overlays")?,
            )
        };
        let (mut disks, mut images) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for o in given {
            // SAFETY: strings of the caller's struct.
            let (target, source, node, storage) = unsafe {
                (
                    cx.str(o.target, "target")?,
                    cx.opt_str(o.source, "source")?,
                    cx.str(o.format_node, "format_node")?,
                    cx.opt_str(o.storage_node, "storage_node")?,
                )
            };
            disks.push(SnapshotDisk {
                target: target.to_owned(),
                overlay_node: node.to_owned(),
            });
            images.push(Image {
                source: source.unwrap_or("").to_owned(),
                format: "qcow2".into(),
                format_node: node.to_owned(),
                storage_node: storage.unwrap_or("").to_owned(),
                ..Image::default()
            });
        }
        Ok(into_handle(vcp_step(snapshot_step(
            dom, &disks, &images, nodes,
        )?)))
    })
}

/// The size query of checkpoint `def` as a step (qemuCheckpointGetXMLDescUpdateSize):
/// `VCP_STEP_NOW` removes leftover temporary bitmaps and merges each measured disk's
/// chain into `libvirt-tmp-size-xml`; then read the node data again and take the sizes
/// with `vcp_checkpoint_size_read()`; `VCP_STEP_ON_END` removes the temporary bitmaps.
/// `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_size_step(
    dom: *const vcp_domain,
    def: *const vcp_checkpoint_def,
    nodes: *const vcp_node_data,
    flags: c_uint,
) -> *mut vcp_step {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles from the caller.
        let (dom, def, nodes) =
            unsafe { cx.handles3((dom, "dom"), (def, "def"), (nodes, "nodes")) }?;
        Ok(into_handle(vcp_step(size_step(&dom.0, &def.0, &nodes.0))))
    })
}

/// The chain reset step (after a snapshot revert or a restore, when every bitmap is
/// wrong): one transaction removing every bitmap on every layer (those a job holds
/// excepted), the backing layers reopened around it. Then retire the checkpoints with
/// `vcp_checkpoint_list_retire_all()`. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_reset_step(
    dom: *const vcp_domain,
    nodes: *const vcp_node_data,
    flags: c_uint,
) -> *mut vcp_step {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles from the caller.
        let (dom, nodes) = unsafe { (&cx.handle(dom, "dom")?.0, &cx.handle(nodes, "nodes")?.0) };
        Ok(into_handle(vcp_step(reset_step(dom, nodes))))
    })
}

/// The online reconcile fix as a step (the removals in one transaction, the backing
/// layers reopened around it); then `vcp_reconcile_fix_metadata()`. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_fix_step(
    dom: *const vcp_domain,
    list: *const crate::list::vcp_checkpoint_list,
    nodes: *const vcp_node_data,
    flags: c_uint,
) -> *mut vcp_step {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles from the caller.
        let (dom, list, nodes) =
            unsafe { cx.handles3((dom, "dom"), (list, "list"), (nodes, "nodes")) }?;
        let (dom, list, nodes) = (&dom.0, &list.0, &nodes.0);
        let fix = fix_plan(&reconcile(dom, &list.topological(), nodes), dom);
        Ok(into_handle(vcp_step(fix_step(dom, &fix, nodes))))
    })
}

/// The step that removes pending checkpoint `name`'s bitmaps wherever they are (an
/// aborted backup's new checkpoint, or one found pending after a crash), the backing
/// layers reopened around it; nothing to send when it was never created. Then
/// `vcp_checkpoint_list_drop_pending()`. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_pending_abort_step(
    dom: *const vcp_domain,
    nodes: *const vcp_node_data,
    name: *const c_char,
    flags: c_uint,
) -> *mut vcp_step {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles and C string from the caller.
        let (dom, nodes, name) = unsafe {
            (
                &cx.handle(dom, "dom")?.0,
                &cx.handle(nodes, "nodes")?.0,
                cx.str(name, "name")?,
            )
        };
        Ok(into_handle(vcp_step(pending_abort_step(dom, nodes, name))))
    })
}

/// As `vcp_fix_step()`, limited to `owner`: only its own broken copies and orphan
/// bitmaps are removed; no other owner's bitmap is touched. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_fix_step_owner(
    dom: *const vcp_domain,
    list: *const crate::list::vcp_checkpoint_list,
    nodes: *const vcp_node_data,
    owner: *const c_char,
    flags: c_uint,
) -> *mut vcp_step {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles and C string from the caller.
        let (dom, list, nodes) =
            unsafe { cx.handles3((dom, "dom"), (list, "list"), (nodes, "nodes")) }?;
        let owner = unsafe { cx.str(owner, "owner") }?;
        let (dom, list, nodes) = (&dom.0, &list.0, &nodes.0);
        let fix = fix_plan(&reconcile(dom, &list.topological(), nodes), dom);
        Ok(into_handle(vcp_step(fix_step(
            dom,
            &fix_for_owner(&fix, owner),
            nodes,
        ))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::ffi::CStr;

    /// The callbacks' log, shared: the test reads it between runs.
    type Log = RefCell<Vec<String>>;

    /// Appends `line` to the log `o` points to.
    ///
    /// # Safety
    /// `o` is a live `Log`.
    unsafe fn log(o: *mut c_void, line: String) {
        // SAFETY: forwarded contract; shared access, the log's own borrow checked.
        unsafe { (*o.cast_const().cast::<Log>()).borrow_mut().push(line) }
    }
    use virtcheckpoint::{CheckpointDef, CheckpointDisk, DiskCheckpointKind, Domain, Image};

    unsafe extern "C" fn remove(o: *mut c_void, node: *const c_char, _: *const c_char) -> c_int {
        // SAFETY: the test passes a Log as opaque; `node` is valid for the call.
        unsafe {
            let node = CStr::from_ptr(node).to_str().unwrap();
            log(o, format!("remove {node}"));
        }
        0
    }
    unsafe extern "C" fn other(o: *mut c_void, json: *const c_char) -> c_int {
        // SAFETY: as above.
        unsafe {
            let json = CStr::from_ptr(json).to_str().unwrap();
            log(o, json.to_owned());
        }
        0
    }
    unsafe extern "C" fn transaction(o: *mut c_void) -> c_int {
        // SAFETY: as above.
        unsafe { log(o, "transaction".into()) };
        0
    }
    unsafe extern "C" fn reopen(o: *mut c_void, node: *const c_char, ro: c_int) -> c_int {
        // SAFETY: as above.
        unsafe {
            let node = CStr::from_ptr(node).to_str().unwrap();
            log(o, format!("{} {node}", if ro == 1 { "ro" } else { "rw" }));
            // The base refuses to be made writable.
            if ro == 0 && node == "libvirt-1-format" {
                return -1;
            }
        }
        0
    }

    /// Ops whose callbacks log to `log` (removals typed, other actions as JSON).
    fn logging_ops(log: &Log) -> vcp_step_ops {
        let opaque: *mut c_void = (log as *const Log).cast_mut().cast();
        vcp_step_ops {
            opaque,
            actions: vcp_action_sink {
                opaque,
                bitmap_add: None,
                bitmap_remove: Some(remove),
                bitmap_merge: None,
                action: Some(other),
            },
            transaction: Some(transaction),
            reopen: Some(reopen),
            command: None,
        }
    }

    /// A query-named-block-nodes reply: each node with one healthy bitmap `c1`.
    fn reply_with_c1(nodes: &[String]) -> String {
        let bitmap = r#"[{"name":"c1","recording":true,"persistent":true,"granularity":65536}]"#;
        let nodes: Vec<String> = nodes
            .iter()
            .map(|n| {
                format!(
                    r#"{{"node-name":"{n}","image":{{"virtual-size":1}},"dirty-bitmaps":{bitmap}}}"#
                )
            })
            .collect();
        format!("[{}]", nodes.join(","))
    }

    /// A delete across three layers run through a driver's callbacks: reopens in
    /// libvirt's order around the removals; a refused reopen skips the rest but puts
    /// back what was reopened (run under Miri in CI: the callbacks' strings).
    #[test]
    fn a_step_runs_through_the_drivers_callbacks() {
        let mut dom = Domain::default();
        dom.add_disk(virtcheckpoint::Disk {
            target: "vda".into(),
            ..Default::default()
        })
        .unwrap();
        for i in [3, 2, 1] {
            dom.append_image("vda", Image::qcow2_indexed(format!("/i/{i}"), i))
                .unwrap();
        }
        let layers = |r: std::ops::RangeInclusive<usize>| -> Vec<String> {
            r.rev().map(|i| format!("libvirt-{i}-format")).collect()
        };
        let nodes = virtcheckpoint::parse_node_data(&reply_with_c1(&layers(1..=3))).unwrap();
        let mut def = CheckpointDef::new("c1", 1).unwrap();
        def.add_disk(CheckpointDisk {
            name: "vda".into(),
            kind: DiskCheckpointKind::Bitmap,
            bitmap: Some("c1".into()),
            size: None,
        })
        .unwrap();
        let step = vcp_step(discard_step(&dom, &def, &nodes, false).unwrap());
        let log = Log::default();
        let ops = logging_ops(&log);
        // SAFETY: a live step and ops whose callbacks take `log`.
        let rc = unsafe { vcp_step_run(&step, VCP_STEP_NOW, &ops, 0) };
        assert_eq!(rc, VCP_STEP_RUN_DRIVER_FAILED);
        // Deepest first: the base refuses; the middle layer, reopened, is put back.
        assert_eq!(*log.borrow(), ["rw libvirt-1-format"]);
        log.borrow_mut().clear();
        let nodes_top_two =
            virtcheckpoint::parse_node_data(&reply_with_c1(&layers(2..=3))).unwrap();
        let step = vcp_step(discard_step(&dom, &def, &nodes_top_two, false).unwrap());
        // SAFETY: as above.
        let rc = unsafe { vcp_step_run(&step, VCP_STEP_NOW, &ops, 0) };
        assert_eq!(rc, 0);
        assert_eq!(
            *log.borrow(),
            [
                "rw libvirt-2-format",
                "remove libvirt-3-format",
                "remove libvirt-2-format",
                "transaction",
                "ro libvirt-2-format"
            ]
        );
    }

    /// A non-active commit's end planned from the caller's chain (C strings) and run
    /// through the driver: the base reopened around the merges; its text refused, for
    /// the reopens name the node alone (run under Miri in CI: the chain's pointers).
    #[test]
    fn a_block_jobs_end_runs_from_the_callers_chain() {
        use crate::chain::{VCP_BLOCKJOB_END_COMMIT, vcp_chain_blockjob_end_step};
        use crate::nodes::{vcp_node_data_free, vcp_node_data_parse_json};
        use std::ffi::CString;
        let json = CString::new(reply_with_c1(&["n1".into(), "n2".into()])).unwrap();
        let names = [CString::new("n1").unwrap(), CString::new("n2").unwrap()];
        let chain: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
        let log = Log::default();
        let ops = logging_ops(&log);
        // SAFETY: a NUL-terminated reply; a chain of live C strings; live handles and
        // ops whose callbacks take `log`.
        unsafe {
            let nodes = vcp_node_data_parse_json(json.as_ptr(), 0);
            assert!(!nodes.is_null());
            let step = vcp_chain_blockjob_end_step(
                VCP_BLOCKJOB_END_COMMIT,
                chain.as_ptr(),
                2,
                0,
                nodes,
                chain[1],
                0,
            );
            assert!(!step.is_null());
            assert_eq!(vcp_step_run(step, VCP_STEP_NOW, &ops, 0), 0);
            let mut text = std::ptr::null_mut();
            assert_eq!(vcp_step_commands(step, VCP_STEP_NOW, &mut text), -1);
            assert!(text.is_null());
            vcp_step_free(step);
            vcp_node_data_free(nodes);
        }
        assert_eq!(
            *log.borrow(),
            [
                "rw n2",
                r#"{"type":"block-dirty-bitmap-merge","data":{"node":"n2","target":"c1","bitmaps":[{"node":"n1","name":"c1"}]}}"#,
                "transaction",
                "ro n2"
            ]
        );
    }
}
