//! Reconcile, the per-disk backup resolver and offline plans from C.

use std::ffi::{c_char, c_int, c_uint};

use crate::checkpoint::vcp_checkpoint_def;
use crate::domain::vcp_domain;
use crate::list::{opt_metadata_dir, vcp_checkpoint_list};
use crate::nodes::vcp_node_data;
use crate::plan::{
    VCP_CHECKPOINT_DISCARD_IGNORE_MISSING, backup_disks, backup_mode, vcp_backup_disk,
};
use crate::{Outputs, count, guard};
use virtcheckpoint::{
    actions_json, apply_fix, commands_json, fix_actions, fix_commands, fix_plan, offline,
    reconcile, report_json, resolution_json, resolve_backup,
};

/// Compares the checkpoint metadata `list` with the bitmaps in `nodes` (online or
/// offline). Stores in `*report` a JSON object: `clean`, per checkpoint
/// and disk the `state` (`ok`, `missing`, `gap`, `inconsistent`, `not-recording`,
/// `not-persistent`) with the `layer` at fault and which `layers` hold the bitmap, the
/// `orphans` (bitmaps of no checkpoint), and the `fix` (removals, broken checkpoints).
/// Returns the number of problems (0 = clean), or -1. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_reconcile(
    dom: *const vcp_domain,
    list: *const vcp_checkpoint_list,
    nodes: *const vcp_node_data,
    report: *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles from the caller.
        let (dom, list, nodes) =
            unsafe { cx.handles3((dom, "dom"), (list, "list"), (nodes, "nodes")) }?;
        let (dom, list, nodes) = (&dom.0, &list.0, &nodes.0);
        let out = cx.out(report, "report")?;
        let rep = reconcile(dom, &list.topological(), nodes);
        let fix = fix_plan(&rep, dom);
        // SAFETY: the caller's out-parameter.
        unsafe {
            Outputs::default()
                .json(out, &report_json(&rep, &fix))?
                .write()
        };
        Ok(count(rep.problems()))
    })
}

/// The fix for a running domain: in `*actions` one transaction removing every orphan
/// (that no job holds) and every copy of a broken checkpoint's bitmap on the disks where
/// it is broken — never a valid one — and in `*reopen` the backing layers to reopen
/// read-write before it, in order, and read-only after it, in the reverse order (see
/// `vcp_blockdev_reopen_command()`). Then call
/// `vcp_reconcile_fix_metadata()` with the same node data. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_reconcile_fix_actions(
    dom: *const vcp_domain,
    list: *const vcp_checkpoint_list,
    nodes: *const vcp_node_data,
    actions: *mut *mut c_char,
    reopen: *mut *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles from the caller.
        let (dom, list, nodes) =
            unsafe { cx.handles3((dom, "dom"), (list, "list"), (nodes, "nodes")) }?;
        let (dom, list, nodes) = (&dom.0, &list.0, &nodes.0);
        let (a, r) = (cx.out(actions, "actions")?, cx.out(reopen, "reopen")?);
        let plan = fix_plan(&reconcile(dom, &list.topological(), nodes), dom);
        let (acts, reopens) = fix_actions(&plan, dom, nodes);
        let names: Vec<&str> = reopens.iter().map(|r| r.format_node.as_str()).collect();
        let outs = Outputs::default()
            .json(a, &actions_json(&acts))?
            .list(r, &names)?;
        // SAFETY: the caller's out-parameters.
        unsafe { outs.write() };
        Ok(0)
    })
}

/// The fix for a shut-off domain: in `*commands` a JSON array of argument vectors
/// (`["qemu-img","bitmap","--remove",FILE,NAME]`), to run in order. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_reconcile_fix_commands(
    dom: *const vcp_domain,
    list: *const vcp_checkpoint_list,
    nodes: *const vcp_node_data,
    commands: *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles from the caller.
        let (dom, list, nodes) =
            unsafe { cx.handles3((dom, "dom"), (list, "list"), (nodes, "nodes")) }?;
        let (dom, list, nodes) = (&dom.0, &list.0, &nodes.0);
        let out = cx.out(commands, "commands")?;
        let plan = fix_plan(&reconcile(dom, &list.topological(), nodes), dom);
        // SAFETY: the caller's out-parameter.
        unsafe {
            Outputs::default()
                .json(out, &offline::argv_json(&fix_commands(&plan)))?
                .write()
        };
        Ok(0)
    })
}

/// After the fix was carried out: recomputes it from `nodes` (the node data the fix
/// was planned from) and brings `list` in line — a checkpoint broken on some disks
/// stops claiming them (`checkpoint='no'`), one broken on all is dropped (children
/// re-parented). With `base_dir` and `domain`, the metadata files follow. Returns the
/// number of checkpoints changed or dropped, or -1. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_reconcile_fix_metadata(
    list: *mut vcp_checkpoint_list,
    dom: *const vcp_domain,
    nodes: *const vcp_node_data,
    base_dir: *const c_char,
    domain: *const c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles and C strings from the caller.
        let (list, dom, nodes, dir) = unsafe {
            (
                &mut cx.handle_mut(list, "list")?.0,
                &cx.handle(dom, "dom")?.0,
                &cx.handle(nodes, "nodes")?.0,
                opt_metadata_dir(cx, base_dir, domain)?,
            )
        };
        let fix = fix_plan(&reconcile(dom, &list.topological(), nodes), dom);
        let (changed, dropped) = apply_fix(list, &fix, dir.as_ref())?;
        Ok(count(changed + dropped))
    })
}

/// The per-disk backup resolver: a backup requested incremental from checkpoint `from`
/// (the disks' own `incremental` is ignored) backs each disk up incrementally where
/// the chain is valid and in full elsewhere, instead of libvirt's one hard error.
/// Stores the transaction in `*actions`, the end-of-job commands in `*cleanup` and the
/// decisions in `*resolution`:
/// `[{"disk":"vda","mode":"incremental"},{"disk":"vdb","mode":"full","reason":"missing"}]`
/// (reasons: `unknown-checkpoint`, `not-covered`, or a reconcile state).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_backup_resolve_actions(
    dom: *const vcp_domain,
    nodes: *const vcp_node_data,
    list: *const vcp_checkpoint_list,
    from: *const c_char,
    mode: c_int,
    disks: *const vcp_backup_disk,
    ndisks: usize,
    new_checkpoint: *const vcp_checkpoint_def,
    actions: *mut *mut c_char,
    cleanup: *mut *mut c_char,
    resolution: *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles, arrays and C strings from the caller.
        let (dom, nodes, list, from, disks, new_def) = unsafe {
            (
                &cx.handle(dom, "dom")?.0,
                &cx.handle(nodes, "nodes")?.0,
                &cx.handle(list, "list")?.0,
                cx.str(from, "from")?,
                backup_disks(cx, disks, ndisks)?,
                cx.opt_handle(new_checkpoint).map(|d| &d.0),
            )
        };
        let (a, c, r) = (
            cx.out(actions, "actions")?,
            cx.out(cleanup, "cleanup")?,
            cx.out(resolution, "resolution")?,
        );
        let mode = backup_mode(mode)?;
        let defs = list.topological();
        let (decided, plan) = resolve_backup(dom, mode, &disks, nodes, &defs, from, new_def)?;
        let outs = Outputs::default()
            .json(a, &actions_json(&plan.actions))?
            .json(c, &commands_json(&plan.cleanup))?
            .json(r, &resolution_json(&decided))?;
        // SAFETY: the caller's out-parameters.
        unsafe { outs.write() };
        Ok(0)
    })
}

/// Creating checkpoint `def` on a shut-off domain: in `*commands` a JSON array of
/// `qemu-img bitmap --add` argument vectors, after the same checks as online (`nodes`
/// from the images' `qemu-img info`). `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_offline_create_commands(
    dom: *const vcp_domain,
    def: *const vcp_checkpoint_def,
    nodes: *const vcp_node_data,
    commands: *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles from the caller.
        let (dom, def, nodes) =
            unsafe { cx.handles3((dom, "dom"), (def, "def"), (nodes, "nodes")) }?;
        let (dom, def, nodes) = (&dom.0, &def.0, &nodes.0);
        let out = cx.out(commands, "commands")?;
        let cmds = offline::create_commands(dom, def, nodes)?;
        // SAFETY: the caller's out-parameter.
        unsafe {
            Outputs::default()
                .json(out, &offline::argv_json(&cmds))?
                .write()
        };
        Ok(0)
    })
}

/// Deleting checkpoint `def` on a shut-off domain: `qemu-img bitmap --remove` argument
/// vectors for every layer that has the bitmap. With
/// `VCP_CHECKPOINT_DISCARD_IGNORE_MISSING`, disks without it are listed in `*missing`
/// (always written; empty without the flag) instead of failing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_offline_delete_commands(
    dom: *const vcp_domain,
    def: *const vcp_checkpoint_def,
    nodes: *const vcp_node_data,
    commands: *mut *mut c_char,
    missing: *mut *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, VCP_CHECKPOINT_DISCARD_IGNORE_MISSING)?;
        // SAFETY: handles from the caller.
        let (dom, def, nodes) =
            unsafe { cx.handles3((dom, "dom"), (def, "def"), (nodes, "nodes")) }?;
        let (dom, def, nodes) = (&dom.0, &def.0, &nodes.0);
        let (c, m) = (cx.out(commands, "commands")?, cx.out(missing, "missing")?);
        let tolerate = flags & VCP_CHECKPOINT_DISCARD_IGNORE_MISSING != 0;
        let (cmds, gone) = offline::delete_commands(dom, def, nodes, tolerate)?;
        let outs = Outputs::default()
            .json(c, &offline::argv_json(&cmds))?
            .list(m, &gone)?;
        // SAFETY: the caller's out-parameters.
        unsafe { outs.write() };
        Ok(0)
    })
}
