//! `vcp_checkpoint_list`: a domain's checkpoint tree and its metadata files.

use std::ffi::{c_char, c_int, c_uint};
use std::path::Path;

use super::checkpoint::vcp_checkpoint_def;
use super::memory::c_string_list;
use super::{
    arg_mut, arg_opt_str, arg_out, arg_ref, arg_str, boundary, check_flags, free_handle,
    into_handle, write_out, write_string,
};
use crate::store::dir::MetadataDir;
use crate::store::list::{CheckpointList, DeletePlan};

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
    boundary("vcp_checkpoint_list_new", || {
        Ok(into_handle(vcp_checkpoint_list(CheckpointList::new())))
    })
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
/// differently from their content, leftover temporary files) are skipped and, if
/// `problems` is not NULL, listed there as `"<path>: <reason>"` (NULL-terminated; free
/// with `vcp_string_list_free()`). `flags` must be 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_load(
    base_dir: *const c_char,
    domain: *const c_char,
    problems: *mut *mut *mut c_char,
    flags: c_uint,
) -> *mut vcp_checkpoint_list {
    const F: &str = "vcp_checkpoint_list_load";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: C strings from the caller.
        let base = unsafe { arg_str(base_dir, "base_dir", F) }?;
        let domain = unsafe { arg_str(domain, "domain", F) }?;
        let (list, found) = MetadataDir::new(Path::new(base), domain)?.load()?;
        if !problems.is_null() {
            let lines: Vec<String> = found
                .iter()
                .map(|p| format!("{}: {}", p.path.display(), p.reason))
                .collect();
            let arr = c_string_list(&lines)?;
            // SAFETY: non-NULL out-parameter.
            unsafe { write_out(problems, arr) };
        }
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
    const F: &str = "vcp_checkpoint_list_save";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: handle and C strings from the caller.
        let list = &unsafe { arg_ref(list, "list", F) }?.0;
        let base = unsafe { arg_str(base_dir, "base_dir", F) }?;
        let domain = unsafe { arg_str(domain, "domain", F) }?;
        let name = unsafe { arg_str(name, "name", F) }?;
        MetadataDir::new(Path::new(base), domain)?.save(list.get(name)?)?;
        Ok(0)
    })
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
    const F: &str = "vcp_checkpoint_list_add";
    boundary(F, || {
        check_flags(flags, VCP_CHECKPOINT_LIST_ADD_REDEFINE, F)?;
        // SAFETY: handles from the caller.
        let list = &mut unsafe { arg_mut(list, "list", F) }?.0;
        let def = unsafe { arg_ref(def, "def", F) }?.0.clone();
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
    const F: &str = "vcp_checkpoint_list_lookup";
    boundary(F, || {
        // SAFETY: handle and C string from the caller.
        let list = &unsafe { arg_ref(list, "list", F) }?.0;
        let name = unsafe { arg_str(name, "name", F) }?;
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
    const F: &str = "vcp_checkpoint_list_get_current";
    boundary(F, || {
        // SAFETY: handle from the caller.
        let list = &unsafe { arg_ref(list, "list", F) }?.0;
        let out = arg_out(name, "name", F)?;
        match list.current() {
            // SAFETY: checked out-parameter.
            Some(c) => unsafe { write_string(out, c) }?,
            // SAFETY: checked out-parameter.
            None => unsafe { write_out(out, std::ptr::null_mut()) },
        }
        Ok(0)
    })
}

/// Makes `name` the current checkpoint (NULL: none). Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_set_current(
    list: *mut vcp_checkpoint_list,
    name: *const c_char,
) -> c_int {
    const F: &str = "vcp_checkpoint_list_set_current";
    boundary(F, || {
        // SAFETY: handle and C string from the caller.
        let list = &mut unsafe { arg_mut(list, "list", F) }?.0;
        let name = unsafe { arg_opt_str(name, "name", F) }?;
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
    const F: &str = "vcp_checkpoint_list_get_parent";
    boundary(F, || {
        // SAFETY: handle and C string from the caller.
        let list = &unsafe { arg_ref(list, "list", F) }?.0;
        let name = unsafe { arg_str(name, "name", F) }?;
        let out = arg_out(parent, "parent", F)?;
        match list.parent(name)? {
            // SAFETY: checked out-parameter.
            Some(p) => unsafe { write_string(out, p) }?,
            // SAFETY: checked out-parameter.
            None => unsafe { write_out(out, std::ptr::null_mut()) },
        }
        Ok(0)
    })
}

/// Lists checkpoint names as `virDomainListAllCheckpoints` (`from` NULL) or
/// `virDomainCheckpointListAllChildren` (`from` a checkpoint) do, with the
/// `VCP_CHECKPOINT_LIST_*` flags. Stores a new NULL-terminated array in `*names` (free
/// with `vcp_string_list_free()`) and returns the count, or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_list_names(
    list: *const vcp_checkpoint_list,
    from: *const c_char,
    flags: c_uint,
    names: *mut *mut *mut c_char,
) -> c_int {
    const F: &str = "vcp_checkpoint_list_names";
    boundary(F, || {
        check_flags(
            flags,
            VCP_CHECKPOINT_LIST_ROOTS
                | VCP_CHECKPOINT_LIST_TOPOLOGICAL
                | VCP_CHECKPOINT_LIST_LEAVES
                | VCP_CHECKPOINT_LIST_NO_LEAVES,
            F,
        )?;
        // SAFETY: handle and C string from the caller.
        let list = &unsafe { arg_ref(list, "list", F) }?.0;
        let from = unsafe { arg_opt_str(from, "from", F) }?;
        let out = arg_out(names, "names", F)?;
        let found = list.list(from, flags)?;
        let arr = c_string_list(&found)?;
        // SAFETY: checked out-parameter.
        unsafe { write_out(out, arr) };
        Ok(c_int::try_from(found.len()).unwrap_or(c_int::MAX))
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
    const F: &str = "vcp_checkpoint_list_plan_delete";
    boundary(F, || {
        check_flags(
            flags,
            VCP_CHECKPOINT_DELETE_CHILDREN
                | VCP_CHECKPOINT_DELETE_METADATA_ONLY
                | VCP_CHECKPOINT_DELETE_CHILDREN_ONLY,
            F,
        )?;
        // SAFETY: handle and C string from the caller.
        let list = &unsafe { arg_ref(list, "list", F) }?.0;
        let name = unsafe { arg_str(name, "name", F) }?;
        Ok(into_handle(vcp_checkpoint_delete_plan(
            list.plan_delete(name, flags)?,
        )))
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

/// The plan's checkpoints whose bitmaps must be discarded, in order (deepest first;
/// empty for a metadata-only delete), as a new NULL-terminated array in `*names`.
/// Returns the count, or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_delete_plan_get_discard(
    plan: *const vcp_checkpoint_delete_plan,
    names: *mut *mut *mut c_char,
) -> c_int {
    const F: &str = "vcp_checkpoint_delete_plan_get_discard";
    boundary(F, || {
        // SAFETY: handle from the caller.
        let plan = &unsafe { arg_ref(plan, "plan", F) }?.0;
        let out = arg_out(names, "names", F)?;
        let arr = c_string_list(&plan.discard)?;
        // SAFETY: checked out-parameter.
        unsafe { write_out(out, arr) };
        Ok(c_int::try_from(plan.discard.len()).unwrap_or(c_int::MAX))
    })
}

/// The plan's checkpoints whose metadata goes away, as a new NULL-terminated array in
/// `*names`. Returns the count, or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_delete_plan_get_removed(
    plan: *const vcp_checkpoint_delete_plan,
    names: *mut *mut *mut c_char,
) -> c_int {
    const F: &str = "vcp_checkpoint_delete_plan_get_removed";
    boundary(F, || {
        // SAFETY: handle from the caller.
        let plan = &unsafe { arg_ref(plan, "plan", F) }?.0;
        let out = arg_out(names, "names", F)?;
        let arr = c_string_list(&plan.removed)?;
        // SAFETY: checked out-parameter.
        unsafe { write_out(out, arr) };
        Ok(c_int::try_from(plan.removed.len()).unwrap_or(c_int::MAX))
    })
}

/// Stores in `*name` a new copy of the current checkpoint after the plan, or NULL.
/// Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_delete_plan_get_new_current(
    plan: *const vcp_checkpoint_delete_plan,
    name: *mut *mut c_char,
) -> c_int {
    const F: &str = "vcp_checkpoint_delete_plan_get_new_current";
    boundary(F, || {
        // SAFETY: handle from the caller.
        let plan = &unsafe { arg_ref(plan, "plan", F) }?.0;
        let out = arg_out(name, "name", F)?;
        match &plan.new_current {
            // SAFETY: checked out-parameter.
            Some(c) => unsafe { write_string(out, c) }?,
            // SAFETY: checked out-parameter.
            None => unsafe { write_out(out, std::ptr::null_mut()) },
        }
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
    const F: &str = "vcp_checkpoint_list_apply_delete";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: handles and C strings from the caller.
        let list = &mut unsafe { arg_mut(list, "list", F) }?.0;
        let plan = &unsafe { arg_ref(plan, "plan", F) }?.0;
        let base = unsafe { arg_opt_str(base_dir, "base_dir", F) }?;
        let domain = unsafe { arg_opt_str(domain, "domain", F) }?;
        let dir = match (base, domain) {
            (Some(b), Some(d)) => Some(MetadataDir::new(Path::new(b), d)?),
            (None, None) => None,
            _ => {
                return Err(crate::error::Error::invalid_arg(
                    crate::error::ErrorDomain::Qemu,
                    "base_dir and domain must be given together",
                ));
            }
        };
        // Work on a copy so that a failed file update leaves the list unchanged.
        let mut next = list.clone();
        let rewrite = next.apply_delete(plan)?;
        if let Some(dir) = dir {
            for name in &rewrite {
                dir.save(next.get(name)?)?;
            }
            for name in &plan.removed {
                dir.remove(name)?;
            }
        }
        *list = next;
        Ok(0)
    })
}

/// The discard transaction for checkpoint `index` of the plan's discard list (in
/// order), planned against `nodes` read just before it, as libvirt reads the node data
/// again before each one: stores the actions in `*actions` and the backing layers to
/// reopen in `*reopen` (deepest first), as `vcp_checkpoint_discard_actions()` does.
/// `flags`: `VCP_CHECKPOINT_DISCARD_IGNORE_MISSING` (then `*missing` lists the disks
/// whose bitmap was already gone). Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_delete_plan_discard_actions(
    plan: *const vcp_checkpoint_delete_plan,
    list: *const vcp_checkpoint_list,
    dom: *const super::domain::vcp_domain,
    nodes: *const super::nodes::vcp_node_data,
    index: usize,
    actions: *mut *mut c_char,
    reopen: *mut *mut *mut c_char,
    missing: *mut *mut *mut c_char,
    flags: c_uint,
) -> c_int {
    const F: &str = "vcp_checkpoint_delete_plan_discard_actions";
    boundary(F, || {
        // SAFETY: handles from the caller.
        let plan = &unsafe { arg_ref(plan, "plan", F) }?.0;
        let list = &unsafe { arg_ref(list, "list", F) }?.0;
        let name = plan.discard.get(index).ok_or_else(|| {
            crate::error::Error::invalid_arg(
                crate::error::ErrorDomain::Qemu,
                format_args!(
                    "discard index {index} out of range (the plan discards {})",
                    plan.discard.len()
                ),
            )
        })?;
        let def = list.get(name)?;
        // SAFETY: handles from the caller.
        let dom = &unsafe { arg_ref(dom, "dom", F) }?.0;
        let nodes = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        // SAFETY: out-parameters from the caller.
        unsafe { super::plan::write_discard(dom, def, nodes, actions, reopen, missing, flags, F) }?;
        Ok(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_flags_equal_the_store_flags() {
        use crate::store::list;
        assert_eq!(VCP_CHECKPOINT_LIST_ROOTS, list::LIST_ROOTS);
        assert_eq!(VCP_CHECKPOINT_LIST_DESCENDANTS, list::LIST_DESCENDANTS);
        assert_eq!(VCP_CHECKPOINT_LIST_TOPOLOGICAL, list::LIST_TOPOLOGICAL);
        assert_eq!(VCP_CHECKPOINT_LIST_LEAVES, list::LIST_LEAVES);
        assert_eq!(VCP_CHECKPOINT_LIST_NO_LEAVES, list::LIST_NO_LEAVES);
        assert_eq!(VCP_CHECKPOINT_DELETE_CHILDREN, list::DELETE_CHILDREN);
        assert_eq!(
            VCP_CHECKPOINT_DELETE_METADATA_ONLY,
            list::DELETE_METADATA_ONLY
        );
        assert_eq!(
            VCP_CHECKPOINT_DELETE_CHILDREN_ONLY,
            list::DELETE_CHILDREN_ONLY
        );
    }
}
