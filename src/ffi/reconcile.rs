//! Reconcile, the per-disk backup resolver and offline plans from C.

use std::ffi::{c_char, c_int, c_uint};
use std::path::Path;

use super::checkpoint::vcp_checkpoint_def;
use super::domain::vcp_domain;
use super::list::vcp_checkpoint_list;
use super::memory::{c_string_list, vcp_string_list_free};
use super::nodes::vcp_node_data;
use super::plan::{
    VCP_CHECKPOINT_DISCARD_IGNORE_MISSING, backup_disks, backup_mode, vcp_backup_disk,
};
use super::{
    arg_mut, arg_opt_ref, arg_opt_str, arg_out, arg_ref, arg_str, boundary, check_flags,
    into_handle, write_out, write_string, write_strings,
};
use crate::error::{Error, ErrorDomain};
use crate::model::nodes::NodeData;
use crate::plan::offline;
use crate::plan::reconcile::{apply_fix_metadata, fix_actions, fix_commands, fix_plan, reconcile};
use crate::plan::resolve::resolve_backup;
use crate::qmp::action::{actions_json, commands_json};
use crate::qmp::json::Json;
use crate::store::dir::MetadataDir;
use crate::{report, tools};

/// `vcp_node_data_add_image_info()`: the images are open in a running QEMU (read with
/// `qemu-img info -U`), so their `in-use` flag does not mean inconsistent.
pub const VCP_IMAGE_INFO_IN_USE: c_uint = 1 << 0;

/// A new, empty node data, to fill from `qemu-img info` with
/// `vcp_node_data_add_image_info()` for a shut-off domain.
#[unsafe(no_mangle)]
pub extern "C" fn vcp_node_data_new() -> *mut vcp_node_data {
    boundary("vcp_node_data_new", || {
        Ok(into_handle(vcp_node_data(NodeData::new())))
    })
}

/// Adds the bitmaps of disk `target`'s chain from the output of
/// `qemu-img info --output=json --backing-chain <top image>` (entry i = layer i). For
/// an inactive domain, images are keyed by their file path. `flags`:
/// `VCP_IMAGE_INFO_IN_USE`. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_node_data_add_image_info(
    nodes: *mut vcp_node_data,
    dom: *const vcp_domain,
    target: *const c_char,
    info_json: *const c_char,
    flags: c_uint,
) -> c_int {
    const F: &str = "vcp_node_data_add_image_info";
    boundary(F, || {
        check_flags(flags, VCP_IMAGE_INFO_IN_USE, F)?;
        // SAFETY: handles and C strings from the caller.
        let nodes = &mut unsafe { arg_mut(nodes, "nodes", F) }?.0;
        let dom = tools::offline_domain(&unsafe { arg_ref(dom, "dom", F) }?.0);
        let target = unsafe { arg_str(target, "target", F) }?;
        let info = unsafe { arg_str(info_json, "info_json", F) }?;
        // Work on a copy: on error the node data is unchanged.
        let mut next = nodes.clone();
        tools::nodes_from_image_info(
            &dom,
            target,
            info,
            flags & VCP_IMAGE_INFO_IN_USE != 0,
            &mut next,
        )?;
        *nodes = next;
        Ok(0)
    })
}

/// Compares the checkpoint metadata `list` with the bitmaps in `nodes` (online or
/// offline). Stores in `*report` (may be NULL) a JSON object: `clean`, per checkpoint
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
    const F: &str = "vcp_reconcile";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: handles from the caller.
        let dom = tools::offline_domain(&unsafe { arg_ref(dom, "dom", F) }?.0);
        let list = &unsafe { arg_ref(list, "list", F) }?.0;
        let nodes = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let rep = reconcile(&dom, list, nodes);
        let problems = rep.orphans.len()
            + rep
                .checkpoints
                .iter()
                .flat_map(|c| &c.disks)
                .filter(|d| !d.state.is_valid())
                .count();
        if !report.is_null() {
            let fix = fix_plan(&rep, &dom);
            // SAFETY: non-NULL out-parameter.
            unsafe { write_string(report, &report::json(&rep, &fix).to_compact()) }?;
        }
        Ok(c_int::try_from(problems).unwrap_or(c_int::MAX))
    })
}

/// The fix for a running domain: in `*actions` one transaction removing every orphan
/// (that no job holds) and every copy of a broken checkpoint's bitmap on the disks where
/// it is broken — never a valid one — and in `*reopen` the backing layers to reopen
/// read-write around it (deepest first; see `vcp_blockdev_reopen_command()`). Then call
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
    const F: &str = "vcp_reconcile_fix_actions";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: handles from the caller.
        let dom = &unsafe { arg_ref(dom, "dom", F) }?.0;
        let list = &unsafe { arg_ref(list, "list", F) }?.0;
        let nodes = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let out = arg_out(actions, "actions", F)?;
        let reopen_out = arg_out(reopen, "reopen", F)?;
        let plan = fix_plan(&reconcile(dom, list, nodes), dom);
        let (acts, reopens) = fix_actions(&plan, dom);
        let names: Vec<&str> = reopens.iter().map(|r| r.format_node.as_str()).collect();
        let arr = c_string_list(&names)?;
        // SAFETY: checked out-parameters; the list is freed if the string fails.
        unsafe {
            if let Err(e) = write_string(out, &actions_json(&acts).to_compact()) {
                vcp_string_list_free(arr);
                return Err(e);
            }
            write_out(reopen_out, arr);
        }
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
    const F: &str = "vcp_reconcile_fix_commands";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: handles from the caller.
        let dom = tools::offline_domain(&unsafe { arg_ref(dom, "dom", F) }?.0);
        let list = &unsafe { arg_ref(list, "list", F) }?.0;
        let nodes = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let out = arg_out(commands, "commands", F)?;
        let plan = fix_plan(&reconcile(&dom, list, nodes), &dom);
        // SAFETY: checked out-parameter.
        unsafe { write_string(out, &argv_json(&fix_commands(&plan))) }?;
        Ok(0)
    })
}

fn argv_json(cmds: &[Vec<String>]) -> String {
    Json::Arr(
        cmds.iter()
            .map(|c| Json::Arr(c.iter().map(|a| a.as_str().into()).collect()))
            .collect(),
    )
    .to_compact()
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
    const F: &str = "vcp_reconcile_fix_metadata";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: handles and C strings from the caller.
        let list = &mut unsafe { arg_mut(list, "list", F) }?.0;
        let dom = tools::offline_domain(&unsafe { arg_ref(dom, "dom", F) }?.0);
        let nodes = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let dir = match (unsafe { arg_opt_str(base_dir, "base_dir", F) }?, unsafe {
            arg_opt_str(domain, "domain", F)
        }?) {
            (Some(b), Some(d)) => Some(MetadataDir::new(Path::new(b), d)?),
            (None, None) => None,
            _ => {
                return Err(Error::invalid_arg(
                    ErrorDomain::Qemu,
                    "base_dir and domain must be given together",
                ));
            }
        };
        let plan = fix_plan(&reconcile(&dom, list, nodes), &dom);
        let mut next = list.clone();
        let (changed, removed) = apply_fix_metadata(&mut next, &plan)?;
        if let Some(dir) = dir {
            for c in &changed {
                dir.save(next.get(c)?)?;
            }
            for r in &removed {
                dir.remove(r)?;
            }
        }
        *list = next;
        Ok(c_int::try_from(changed.len() + removed.len()).unwrap_or(c_int::MAX))
    })
}

/// The per-disk backup resolver: a backup requested incremental from checkpoint `from`
/// (the disks' own `incremental` is ignored) backs each disk up incrementally where
/// the chain is valid and in full elsewhere, instead of libvirt's one hard error.
/// Stores the transaction in `*actions`, the end-of-job commands in `*cleanup` (may be
/// NULL) and the decisions in `*resolution` (may be NULL):
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
    const F: &str = "vcp_backup_resolve_actions";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: handles, arrays and C strings from the caller.
        let dom = &unsafe { arg_ref(dom, "dom", F) }?.0;
        let nodes = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let list = &unsafe { arg_ref(list, "list", F) }?.0;
        let from = unsafe { arg_str(from, "from", F) }?;
        let mode = backup_mode(mode)?;
        let list_disks = unsafe { backup_disks(disks, ndisks, F) }?;
        let new_def = unsafe { arg_opt_ref(new_checkpoint) }.map(|d| &d.0);
        let out = arg_out(actions, "actions", F)?;
        let (decided, plan) = resolve_backup(dom, mode, &list_disks, nodes, list, from, new_def)?;
        let texts = [
            actions_json(&plan.actions).to_compact(),
            commands_json(&plan.cleanup).to_compact(),
            report::resolution_json(&decided).to_compact(),
        ];
        write_strings(&[out, cleanup, resolution], &texts)?;
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
    const F: &str = "vcp_offline_create_commands";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: handles from the caller.
        let dom = tools::offline_domain(&unsafe { arg_ref(dom, "dom", F) }?.0);
        let def = &unsafe { arg_ref(def, "def", F) }?.0;
        let nodes = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let out = arg_out(commands, "commands", F)?;
        let cmds = offline::create_commands(&dom, def, nodes)?;
        // SAFETY: checked out-parameter.
        unsafe { write_string(out, &argv_json(&cmds)) }?;
        Ok(0)
    })
}

/// Deleting checkpoint `def` on a shut-off domain: `qemu-img bitmap --remove` argument
/// vectors for every layer that has the bitmap. With
/// `VCP_CHECKPOINT_DISCARD_IGNORE_MISSING`, disks without it are listed in `*missing`
/// instead of failing.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_offline_delete_commands(
    dom: *const vcp_domain,
    def: *const vcp_checkpoint_def,
    nodes: *const vcp_node_data,
    commands: *mut *mut c_char,
    missing: *mut *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    const F: &str = "vcp_offline_delete_commands";
    boundary(F, || {
        check_flags(flags, VCP_CHECKPOINT_DISCARD_IGNORE_MISSING, F)?;
        // SAFETY: handles from the caller.
        let dom = tools::offline_domain(&unsafe { arg_ref(dom, "dom", F) }?.0);
        let def = &unsafe { arg_ref(def, "def", F) }?.0;
        let nodes = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let out = arg_out(commands, "commands", F)?;
        let tolerate = flags & VCP_CHECKPOINT_DISCARD_IGNORE_MISSING != 0;
        let (cmds, gone) = offline::delete_commands(&dom, def, nodes, tolerate)?;
        let arr = if missing.is_null() {
            std::ptr::null_mut()
        } else {
            c_string_list(&gone)?
        };
        // SAFETY: checked out-parameters; the list is freed if the string fails.
        unsafe {
            if let Err(e) = write_string(out, &argv_json(&cmds)) {
                vcp_string_list_free(arr);
                return Err(e);
            }
            if !missing.is_null() {
                write_out(missing, arr);
            }
        }
        Ok(0)
    })
}
