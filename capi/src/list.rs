//! `vcp_checkpoint_list`: a domain's checkpoint tree and its metadata files.

use std::ffi::{c_char, c_int, c_uint};
use std::path::Path;

use crate::checkpoint::vcp_checkpoint_def;
use crate::domain::vcp_domain;
use crate::nodes::vcp_node_data;
use crate::plan::{VCP_CHECKPOINT_DISCARD_IGNORE_MISSING, discard, discard_out};
use crate::{Call, Outputs, collect_sized, count, free_handle, guard, into_handle, write_list};
use virtcheckpoint::{
    CheckpointList, DeleteOptions, DeletePlan, Domain, Error, ErrorDomain, ListOptions,
    MetadataDir, NodeData, Result, adopt_into, apply_delete, begin_pending, commit_pending,
    discard_steps, drop_pending, now, retire_all,
};

/// A domain's checkpoints: a forest with one "current" checkpoint (libvirt's
/// `virDomainCheckpointObjList`). Opaque; free with `vcp_checkpoint_list_free()`. A
/// handle is used by one thread at a time; different handles from any threads.
pub struct vcp_checkpoint_list(pub(crate) CheckpointList);

/// A planned delete (see `vcp_checkpoint_list_plan_delete()`). Opaque; free with
/// `vcp_checkpoint_delete_plan_free()`.
pub struct vcp_checkpoint_delete_plan(pub(crate) DeletePlan);

/// `vcp_checkpoint_list_add()`: the definition describes an existing checkpoint.
pub const VCP_CHECKPOINT_LIST_ADD_REDEFINE: c_uint = 1 << 0;
/// List only roots (`VIR_DOMAIN_CHECKPOINT_LIST_ROOTS`).
pub const VCP_CHECKPOINT_LIST_ROOTS: c_uint = 1 << 0;
/// From a checkpoint: all descendants (`VIR_DOMAIN_CHECKPOINT_LIST_DESCENDANTS`).
pub const VCP_CHECKPOINT_LIST_DESCENDANTS: c_uint = 1 << 0;
/// Parents before children (`VIR_DOMAIN_CHECKPOINT_LIST_TOPOLOGICAL`).
pub const VCP_CHECKPOINT_LIST_TOPOLOGICAL: c_uint = 1 << 1;
/// Only checkpoints without children (`VIR_DOMAIN_CHECKPOINT_LIST_LEAVES`).
pub const VCP_CHECKPOINT_LIST_LEAVES: c_uint = 1 << 2;
/// Only checkpoints with children (`VIR_DOMAIN_CHECKPOINT_LIST_NO_LEAVES`).
pub const VCP_CHECKPOINT_LIST_NO_LEAVES: c_uint = 1 << 3;
/// Delete the descendants too (`VIR_DOMAIN_CHECKPOINT_DELETE_CHILDREN`).
pub const VCP_CHECKPOINT_DELETE_CHILDREN: c_uint = 1 << 0;
/// Metadata only, no bitmap (`VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY`).
pub const VCP_CHECKPOINT_DELETE_METADATA_ONLY: c_uint = 1 << 1;
/// Only the descendants (`VIR_DOMAIN_CHECKPOINT_DELETE_CHILDREN_ONLY`).
pub const VCP_CHECKPOINT_DELETE_CHILDREN_ONLY: c_uint = 1 << 2;

/// A new, empty checkpoint list.
#[unsafe(no_mangle)]
pub extern "C" fn vcp_checkpoint_list_new() -> *mut vcp_checkpoint_list {
    guard!(|_cx| { Ok(into_handle(vcp_checkpoint_list(CheckpointList::new()))) })
}

/// Frees a list. NULL is accepted.
///
/// # Safety
/// `list` is NULL or a handle from this library not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_free(list: *mut vcp_checkpoint_list) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(list) }
}

/// Loads the metadata files of domain `domain` (every `<name>.xml` in `<base_dir>/<domain>`)
/// (libvirt's layout): relations rebuilt, the current checkpoint being the only leaf
/// if there is exactly one. Files that cannot be used (half-written, foreign, named
/// differently from their content, leftover temporary files) are skipped and listed
/// in `*problems` as `"<path>: <reason>"` (NULL-terminated, empty when all loaded; free
/// with `vcp_string_list_free()`). `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_load(
    base_dir: *const c_char,
    domain: *const c_char,
    problems: *mut *mut *mut c_char,
    flags: c_uint,
) -> *mut vcp_checkpoint_list {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: C strings from the caller.
        let dir = unsafe { metadata_dir(cx, base_dir, domain) }?;
        let out = cx.out(problems, "problems")?;
        let (list, found) = dir.load()?;
        let lines: Vec<String> = found.iter().map(ToString::to_string).collect();
        // SAFETY: the caller's out-parameter.
        unsafe { Outputs::default().list(out, &lines)?.write() };
        Ok(into_handle(vcp_checkpoint_list(list)))
    })
}

/// Writes checkpoint `name`'s metadata file `<base_dir>/<domain>/<name>.xml` (SECURE,
/// with its `<domain>`), atomically and durably. `flags` must be 0. Returns 0 or -1
/// (VIR_ERR_SYSTEM_ERROR with the OS error on I/O failure).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_save(
    list: *const vcp_checkpoint_list,
    base_dir: *const c_char,
    domain: *const c_char,
    name: *const c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handle and C strings from the caller.
        let (list, dir, name) = unsafe {
            (
                &cx.handle(list, "list")?.0,
                metadata_dir(cx, base_dir, domain)?,
                cx.str(name, "name")?,
            )
        };
        dir.save(list.get(name)?)?;
        Ok(0)
    })
}

/// The `VCP_CHECKPOINT_DELETE_*` bits as options.
fn delete_options(flags: c_uint) -> DeleteOptions {
    DeleteOptions {
        children: flags & VCP_CHECKPOINT_DELETE_CHILDREN != 0,
        metadata_only: flags & VCP_CHECKPOINT_DELETE_METADATA_ONLY != 0,
        children_only: flags & VCP_CHECKPOINT_DELETE_CHILDREN_ONLY != 0,
    }
}

/// The metadata folder `<base_dir>/<domain>`.
///
/// # Safety
/// The strings are NULL or NUL-terminated.
pub(crate) unsafe fn metadata_dir(
    cx: &Call,
    base_dir: *const c_char,
    domain: *const c_char,
) -> Result<MetadataDir> {
    // SAFETY: forwarded contract.
    let (base, domain) = unsafe { (cx.str(base_dir, "base_dir")?, cx.str(domain, "domain")?) };
    MetadataDir::new(Path::new(base), domain)
}

/// The metadata folder when both `base_dir` and `domain` are given, none when neither.
///
/// # Safety
/// The strings are NULL or NUL-terminated.
pub(crate) unsafe fn opt_metadata_dir(
    cx: &Call,
    base_dir: *const c_char,
    domain: *const c_char,
) -> Result<Option<MetadataDir>> {
    match (base_dir.is_null(), domain.is_null()) {
        (true, true) => Ok(None),
        // SAFETY: forwarded contract.
        (false, false) => unsafe { metadata_dir(cx, base_dir, domain) }.map(Some),
        _ => Err(Error::invalid_arg(
            ErrorDomain::Qemu,
            "base_dir and domain must be given together",
        )),
    }
}

/// Adds a copy of `def`. Without flags it is a new checkpoint: its parent is the
/// current checkpoint and it becomes current. With `VCP_CHECKPOINT_LIST_ADD_REDEFINE`
/// it is a redefinition: libvirt's cycle checks, replacement in place (children kept)
/// of a checkpoint of that name, current if its parent is current or there is none.
/// Returns 1 if it became current, 0 if not, -1 on error (a name in use when creating:
/// VIR_ERR_OPERATION_FAILED "domain moment %s already exists").
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_add(
    list: *mut vcp_checkpoint_list,
    def: *const vcp_checkpoint_def,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, VCP_CHECKPOINT_LIST_ADD_REDEFINE)?;
        // SAFETY: handles from the caller.
        let list = &mut unsafe { cx.handle_mut(list, "list") }?.0;
        let def = unsafe { cx.handle(def, "def") }?.0.clone();
        if flags & VCP_CHECKPOINT_LIST_ADD_REDEFINE != 0 {
            Ok(c_int::from(list.redefine(def)?))
        } else {
            list.add_created(def)?;
            Ok(1)
        }
    })
}

/// A new copy of checkpoint `name`'s definition, or NULL with
/// VIR_ERR_NO_DOMAIN_CHECKPOINT "no domain checkpoint with matching name '%s'".
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_lookup(
    list: *const vcp_checkpoint_list,
    name: *const c_char,
) -> *mut vcp_checkpoint_def {
    guard!(|cx| {
        // SAFETY: handle and C string from the caller.
        let list = &unsafe { cx.handle(list, "list") }?.0;
        let name = unsafe { cx.str(name, "name") }?;
        Ok(into_handle(vcp_checkpoint_def(list.get(name)?.clone())))
    })
}

/// Stores in `*name` a new copy of the current checkpoint's name, or NULL when there
/// is none. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_get_current(
    list: *const vcp_checkpoint_list,
    name: *mut *mut c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle from the caller.
        let list = &unsafe { cx.handle(list, "list") }?.0;
        let out = cx.out(name, "name")?;
        // SAFETY: the caller's out-parameter.
        unsafe { Outputs::default().string(out, list.current())?.write() };
        Ok(0)
    })
}

/// Makes `name` the current checkpoint (NULL: none). Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_set_current(
    list: *mut vcp_checkpoint_list,
    name: *const c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle and C string from the caller.
        let list = &mut unsafe { cx.handle_mut(list, "list") }?.0;
        let name = unsafe { cx.opt_str(name, "name") }?;
        list.set_current(name)?;
        Ok(0)
    })
}

/// Stores in `*parent` a new copy of the parent's name of checkpoint `name`, or NULL
/// for a root. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_get_parent(
    list: *const vcp_checkpoint_list,
    name: *const c_char,
    parent: *mut *mut c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle and C string from the caller.
        let list = &unsafe { cx.handle(list, "list") }?.0;
        let name = unsafe { cx.str(name, "name") }?;
        let out = cx.out(parent, "parent")?;
        // SAFETY: the caller's out-parameter.
        unsafe { Outputs::default().string(out, list.parent(name)?)?.write() };
        Ok(0)
    })
}

/// Lists checkpoint names as `virDomainListAllCheckpoints` (`from` NULL) or
/// `virDomainCheckpointListAllChildren` (`from` a checkpoint) do, with the
/// `VCP_CHECKPOINT_LIST_*` flags, in libvirt's order: roots, children and descendants
/// as libvirt walks its child lists (each before its own descendants, the newest
/// sibling first); without `VCP_CHECKPOINT_LIST_TOPOLOGICAL` the whole list in creation
/// order (libvirt's own is its hash table's). Stores a new NULL-terminated array in
/// `*names` (free with `vcp_string_list_free()`) and returns the count, or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_names(
    list: *const vcp_checkpoint_list,
    from: *const c_char,
    flags: c_uint,
    names: *mut *mut *mut c_char,
) -> c_int {
    guard!(|cx| {
        cx.flags(
            flags,
            VCP_CHECKPOINT_LIST_ROOTS
                | VCP_CHECKPOINT_LIST_TOPOLOGICAL
                | VCP_CHECKPOINT_LIST_LEAVES
                | VCP_CHECKPOINT_LIST_NO_LEAVES,
        )?;
        // SAFETY: handle and C string from the caller.
        let list = &unsafe { cx.handle(list, "list") }?.0;
        let from = unsafe { cx.opt_str(from, "from") }?;
        let out = cx.out(names, "names")?;
        let opts = ListOptions {
            roots: flags & VCP_CHECKPOINT_LIST_ROOTS != 0,
            descendants: flags & VCP_CHECKPOINT_LIST_DESCENDANTS != 0,
            topological: flags & VCP_CHECKPOINT_LIST_TOPOLOGICAL != 0,
            leaves: flags & VCP_CHECKPOINT_LIST_LEAVES != 0,
            no_leaves: flags & VCP_CHECKPOINT_LIST_NO_LEAVES != 0,
        };
        let found = list.list(from, opts)?;
        // SAFETY: the caller's out-parameter.
        unsafe { write_list(out, &found) }
    })
}

/// Plans `virDomainCheckpointDelete(name, flags)` (`VCP_CHECKPOINT_DELETE_*`) without
/// changing anything: which checkpoints' bitmaps to discard, in order (feed each to
/// `vcp_checkpoint_discard_actions()`), which metadata goes, which children get a new
/// parent, and the new current checkpoint. Apply it with
/// `vcp_checkpoint_list_apply_delete()` once QEMU accepted the discards; if QEMU
/// refused, just free it: nothing has changed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_plan_delete(
    list: *const vcp_checkpoint_list,
    name: *const c_char,
    flags: c_uint,
) -> *mut vcp_checkpoint_delete_plan {
    guard!(|cx| {
        cx.flags(
            flags,
            VCP_CHECKPOINT_DELETE_CHILDREN
                | VCP_CHECKPOINT_DELETE_METADATA_ONLY
                | VCP_CHECKPOINT_DELETE_CHILDREN_ONLY,
        )?;
        // SAFETY: handle and C string from the caller.
        let list = &unsafe { cx.handle(list, "list") }?.0;
        let name = unsafe { cx.str(name, "name") }?;
        let plan = list.plan_delete(name, delete_options(flags))?;
        Ok(into_handle(vcp_checkpoint_delete_plan(plan)))
    })
}

/// Records in `plan` (made on `list`) that the discard of checkpoint `name` failed, for
/// a driver that goes on with the other discards as libvirt does: `name` keeps its
/// bitmaps and metadata, and so does the checkpoint the delete names (a delete without
/// children then changes nothing); one that stays while its parent goes gets its
/// nearest ancestor that stays as parent (its file rewritten when the plan is
/// applied); the current checkpoint is unset if it goes. Apply the plan with
/// `vcp_checkpoint_list_apply_delete()` once the other discards went through. A
/// checkpoint the plan does not discard is VIR_ERR_INVALID_ARG. `flags` must be 0.
/// Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_delete_plan_refuse(
    plan: *mut vcp_checkpoint_delete_plan,
    list: *const vcp_checkpoint_list,
    name: *const c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles and C string from the caller.
        let (plan, list, name) = unsafe {
            (
                &mut cx.handle_mut(plan, "plan")?.0,
                &cx.handle(list, "list")?.0,
                cx.str(name, "name")?,
            )
        };
        list.refuse_discard(plan, name)?;
        Ok(0)
    })
}

/// Frees a delete plan. NULL is accepted.
///
/// # Safety
/// `plan` is NULL or a handle from this library not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_delete_plan_free(plan: *mut vcp_checkpoint_delete_plan) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(plan) }
}

/// The plan's checkpoints whose bitmaps must be discarded, in libvirt's order (each
/// descendant before its own, the newest sibling first, the target last; empty for a
/// metadata-only delete), as a new NULL-terminated array in `*names`.
/// Returns the count, or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_delete_plan_get_discard(
    plan: *const vcp_checkpoint_delete_plan,
    names: *mut *mut *mut c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle from the caller.
        let plan = &unsafe { cx.handle(plan, "plan") }?.0;
        let out = cx.out(names, "names")?;
        // SAFETY: the caller's out-parameter.
        unsafe { write_list(out, &plan.discard) }
    })
}

/// The plan's checkpoints whose metadata goes away, as a new NULL-terminated array in
/// `*names`. Returns the count, or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_delete_plan_get_removed(
    plan: *const vcp_checkpoint_delete_plan,
    names: *mut *mut *mut c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle from the caller.
        let plan = &unsafe { cx.handle(plan, "plan") }?.0;
        let out = cx.out(names, "names")?;
        // SAFETY: the caller's out-parameter.
        unsafe { write_list(out, &plan.removed) }
    })
}

/// Stores in `*name` a new copy of the current checkpoint after the plan, or NULL.
/// Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_delete_plan_get_new_current(
    plan: *const vcp_checkpoint_delete_plan,
    name: *mut *mut c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle from the caller.
        let plan = &unsafe { cx.handle(plan, "plan") }?.0;
        let out = cx.out(name, "name")?;
        // SAFETY: the caller's out-parameter.
        unsafe {
            Outputs::default()
                .string(out, plan.new_current.as_deref())?
                .write()
        };
        Ok(0)
    })
}

/// Applies a delete plan made on this list: re-parents children, removes the deleted
/// checkpoints, sets the new current one. With `base_dir` and `domain` (both or
/// neither), the metadata files follow: re-parented children are rewritten, deleted
/// ones unlinked. `flags` must be 0. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_apply_delete(
    list: *mut vcp_checkpoint_list,
    plan: *const vcp_checkpoint_delete_plan,
    base_dir: *const c_char,
    domain: *const c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handles and C strings from the caller.
        let (list, plan, dir) = unsafe {
            (
                &mut cx.handle_mut(list, "list")?.0,
                &cx.handle(plan, "plan")?.0,
                opt_metadata_dir(cx, base_dir, domain)?,
            )
        };
        apply_delete(list, plan, dir.as_ref())?;
        Ok(0)
    })
}

/// Adopts the bitmaps the metadata lost: from `nodes`, every bitmap of no checkpoint in
/// `list` that forms a valid chain from a disk's top is rebuilt as a checkpoint (oldest
/// first by its dirty data, continuing from the current checkpoint) and redefined into
/// `list`; with `base_dir` and `domain` (both or neither) the metadata files are
/// written too. Stores the adopted names, oldest first, in `*names` and returns their
/// number, or -1 (VIR_ERR_OPERATION_INVALID when the order cannot be told; nothing
/// changes). `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_adopt(
    list: *mut vcp_checkpoint_list,
    dom: *const vcp_domain,
    nodes: *const vcp_node_data,
    base_dir: *const c_char,
    domain: *const c_char,
    names: *mut *mut *mut c_char,
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
        let out = cx.out(names, "names")?;
        // Planned on a copy, the output allocated, then the files written: all or nothing.
        let mut next = list.clone();
        let adopted = adopt_into(&mut next, dom, nodes, None, now())?;
        let outs = Outputs::default().list(out, &adopted)?;
        if let Some(dir) = &dir {
            let defs = collect_sized(adopted.iter().map(|n| next.get(n)))?;
            dir.commit(&defs, &[])?;
        }
        // SAFETY: the caller's out-parameter.
        unsafe { outs.write() };
        *list = next;
        Ok(count(adopted.len()))
    })
}

/// Retires every checkpoint of `list` (after a chain reset): the list is emptied and,
/// with `base_dir` and `domain`, every metadata file removed. Returns how many were
/// retired, or -1. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_retire_all(
    list: *mut vcp_checkpoint_list,
    base_dir: *const c_char,
    domain: *const c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handle and C strings from the caller.
        let (list, dir) = unsafe {
            (
                &mut cx.handle_mut(list, "list")?.0,
                opt_metadata_dir(cx, base_dir, domain)?,
            )
        };
        Ok(count(retire_all(list, dir.as_ref())?.len()))
    })
}

/// The discard transaction for checkpoint `index` of the plan's discard list (in
/// order), planned against `nodes` read just before it, as libvirt reads the node data
/// again before each one: stores the actions in `*actions` and the backing layers to
/// reopen in `*reopen` (in `vcp_checkpoint_discard_actions()`'s order), as that does.
/// `flags`: `VCP_CHECKPOINT_DISCARD_IGNORE_MISSING` (then `*missing` lists the disks
/// whose bitmap was already gone). Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_delete_plan_discard_actions(
    plan: *const vcp_checkpoint_delete_plan,
    list: *const vcp_checkpoint_list,
    dom: *const vcp_domain,
    nodes: *const vcp_node_data,
    index: usize,
    actions: *mut *mut c_char,
    reopen: *mut *mut *mut c_char,
    missing: *mut *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handles from the caller.
        let (plan, list, dom, nodes) = unsafe { plan_handles(cx, plan, list, dom, nodes) }?;
        // SAFETY: the caller's out-parameters.
        let (outs, tolerate) = unsafe { discard_out(cx, flags, actions, reopen, missing) }?;
        let def = list.discarded(plan, index)?;
        // SAFETY: the caller's out-parameters.
        unsafe { discard(outs, dom, def, nodes, tolerate) }?;
        Ok(0)
    })
}

/// A delete plan's handles with the list, domain and node data it is planned against.
///
/// # Safety
/// Each pointer is NULL or a handle from this library not freed yet.
unsafe fn plan_handles<'a>(
    cx: &Call,
    plan: *const vcp_checkpoint_delete_plan,
    list: *const vcp_checkpoint_list,
    dom: *const vcp_domain,
    nodes: *const vcp_node_data,
) -> Result<(&'a DeletePlan, &'a CheckpointList, &'a Domain, &'a NodeData)> {
    // SAFETY: forwarded contract.
    unsafe {
        Ok((
            &cx.handle(plan, "plan")?.0,
            &cx.handle(list, "list")?.0,
            &cx.handle(dom, "dom")?.0,
            &cx.handle(nodes, "nodes")?.0,
        ))
    }
}

/// Checks, before anything is sent, that every discard of the plan can be planned from
/// `nodes` read once: under one bitmap per checkpoint each discard removes only its own
/// checkpoint's bitmap, so the whole subtree is checked against one reading. Returns 0
/// when all can (then plan each with `vcp_checkpoint_delete_plan_discard_actions()`, in
/// order, from the same `nodes`), or -1 with the first failing discard's error (e.g.
/// VIR_ERR_INTERNAL_ERROR "bitmap 'c3' not found in backing chain of 'vda'"). libvirt
/// discards one checkpoint at a time and goes on past a failure: the other descendants
/// are gone, the refused one stays (its parent possibly gone), the checkpoint itself
/// stays, and the delete fails with the last refusal's error. `flags`: `VCP_CHECKPOINT_DISCARD_IGNORE_MISSING`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_delete_plan_check(
    plan: *const vcp_checkpoint_delete_plan,
    list: *const vcp_checkpoint_list,
    dom: *const vcp_domain,
    nodes: *const vcp_node_data,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, VCP_CHECKPOINT_DISCARD_IGNORE_MISSING)?;
        // SAFETY: handles from the caller.
        let (plan, list, dom, nodes) = unsafe { plan_handles(cx, plan, list, dom, nodes) }?;
        let tolerate = flags & VCP_CHECKPOINT_DISCARD_IGNORE_MISSING != 0;
        discard_steps(list, plan, dom, nodes, tolerate)?;
        Ok(0)
    })
}

/// Two-phase backup checkpoints: marks checkpoint `name` pending in the journal of
/// `<base_dir>/<domain>`, durably; call it before sending the backup transaction that
/// creates the checkpoint's bitmap. Returns 0 or -1. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_pending_begin(
    base_dir: *const c_char,
    domain: *const c_char,
    name: *const c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: C strings from the caller.
        let (dir, name) = unsafe { (metadata_dir(cx, base_dir, domain)?, cx.str(name, "name")?) };
        begin_pending(&dir, name)?;
        Ok(0)
    })
}

/// Two-phase backup checkpoints: the backup ended well, checkpoint `name` is committed
/// (out of the journal). Returns 0 or -1. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_pending_commit(
    base_dir: *const c_char,
    domain: *const c_char,
    name: *const c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: C strings from the caller.
        let (dir, name) = unsafe { (metadata_dir(cx, base_dir, domain)?, cx.str(name, "name")?) };
        commit_pending(&dir, name)?;
        Ok(0)
    })
}

/// The checkpoints pending in the journal of `<base_dir>/<domain>` (after a crash:
/// those to remove with `vcp_pending_abort_step()` and
/// `vcp_checkpoint_list_drop_pending()`), in `*names`. Returns their number, or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_pending_names(
    base_dir: *const c_char,
    domain: *const c_char,
    names: *mut *mut *mut c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: C strings from the caller.
        let dir = unsafe { metadata_dir(cx, base_dir, domain) }?;
        let out = cx.out(names, "names")?;
        let pending = dir.pending()?;
        // SAFETY: the caller's out-parameter.
        unsafe { write_list(out, &pending) }
    })
}

/// Drops pending checkpoint `name` once its bitmaps were removed: out of `list`
/// (children re-parented), its metadata file and its journal entry removed. Returns 0
/// or -1. `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_drop_pending(
    list: *mut vcp_checkpoint_list,
    base_dir: *const c_char,
    domain: *const c_char,
    name: *const c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handle and C strings from the caller.
        let (list, dir, name) = unsafe {
            (
                &mut cx.handle_mut(list, "list")?.0,
                metadata_dir(cx, base_dir, domain)?,
                cx.str(name, "name")?,
            )
        };
        drop_pending(list, &dir, name)?;
        Ok(0)
    })
}

/// The checkpoints of `owner` (named `owner:NAME`), parents before children, in
/// `*names`. Returns their number, or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_owned_names(
    list: *const vcp_checkpoint_list,
    owner: *const c_char,
    names: *mut *mut *mut c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle and C string from the caller.
        let (list, owner) = unsafe { (&cx.handle(list, "list")?.0, cx.str(owner, "owner")?) };
        let out = cx.out(names, "names")?;
        let found: Vec<&str> = list
            .owned_by(owner)
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        // SAFETY: the caller's out-parameter.
        unsafe { write_list(out, &found) }
    })
}

/// Retention for `owner`: in `*names` the checkpoints to delete, oldest first, so that
/// only its `keep` newest stay; delete each with `vcp_checkpoint_list_plan_delete_owned()`
/// in that order. No other owner's checkpoint is ever listed. Returns their number, or
/// -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_plan_retention(
    list: *const vcp_checkpoint_list,
    owner: *const c_char,
    keep: usize,
    names: *mut *mut *mut c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle and C string from the caller.
        let (list, owner) = unsafe { (&cx.handle(list, "list")?.0, cx.str(owner, "owner")?) };
        let out = cx.out(names, "names")?;
        let plans = list.plan_retention(owner, keep)?;
        let targets: Vec<&str> = plans.iter().map(|p| p.target.as_str()).collect();
        // SAFETY: the caller's out-parameter.
        unsafe { write_list(out, &targets) }
    })
}

/// As `vcp_checkpoint_list_plan_delete()`, on behalf of `owner`: refused with
/// VIR_ERR_OPERATION_INVALID when the checkpoint, or a descendant the delete would
/// remove, belongs to someone else.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_plan_delete_owned(
    list: *const vcp_checkpoint_list,
    name: *const c_char,
    owner: *const c_char,
    flags: c_uint,
) -> *mut vcp_checkpoint_delete_plan {
    guard!(|cx| {
        cx.flags(
            flags,
            VCP_CHECKPOINT_DELETE_CHILDREN
                | VCP_CHECKPOINT_DELETE_METADATA_ONLY
                | VCP_CHECKPOINT_DELETE_CHILDREN_ONLY,
        )?;
        // SAFETY: handle and C strings from the caller.
        let (list, name, owner) = unsafe {
            (
                &cx.handle(list, "list")?.0,
                cx.str(name, "name")?,
                cx.str(owner, "owner")?,
            )
        };
        let opts = delete_options(flags);
        Ok(into_handle(vcp_checkpoint_delete_plan(
            list.plan_delete_owned(name, owner, opts)?,
        )))
    })
}
