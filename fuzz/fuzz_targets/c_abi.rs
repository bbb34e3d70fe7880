//! The C ABI as a caller uses it: parse a domain, a checkpoint and node data from the
//! input (three parts split at 0xff bytes), run every planner on them, free
//! everything. Nothing may panic across the boundary (an abort here), leak (the
//! sanitizer's leak check) or touch memory it should not.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ptr;
use virtcheckpoint_c::*;

fn cstr(b: &[u8]) -> CString {
    CString::new(b.iter().copied().filter(|&c| c != 0).collect::<Vec<u8>>()).unwrap()
}

unsafe fn free_list(l: *mut *mut c_char) {
    unsafe { vcp_string_list_free(l) }
}

/// The chain face's sink: counts the actions it is given as JSON.
unsafe extern "C" fn count_json(opaque: *mut c_void, json: *const c_char) -> c_int {
    unsafe {
        assert!(!json.is_null());
        *opaque.cast::<usize>() += 1;
    }
    0
}

unsafe extern "C" fn sent(opaque: *mut c_void) -> c_int {
    unsafe { *opaque.cast::<usize>() += 1 };
    0
}

unsafe extern "C" fn reopened(opaque: *mut c_void, node: *const c_char, ro: c_int) -> c_int {
    unsafe {
        assert!(!node.is_null() && (ro == 0 || ro == 1));
        *opaque.cast::<usize>() += 1;
    }
    0
}

/// A step planned from a chain, run as a driver runs it: it must go through, and its
/// text is given exactly when it reopens nothing; then freed (NULL: refused).
unsafe fn run_chain_step(step: *mut vcp_step) {
    if step.is_null() {
        return;
    }
    unsafe {
        let mut count = 0usize;
        let opaque: *mut c_void = (&raw mut count).cast();
        let ops = vcp_step_ops {
            opaque,
            actions: vcp_action_sink {
                opaque,
                bitmap_add: None,
                bitmap_remove: None,
                bitmap_merge: None,
                action: Some(count_json),
            },
            transaction: Some(sent),
            reopen: Some(reopened),
            command: None,
        };
        assert_eq!(vcp_step_run(step, VCP_STEP_NOW, &ops, 0), 0);
        let mut cmds = ptr::null_mut();
        let n = vcp_step_commands(step, VCP_STEP_NOW, &mut cmds);
        assert!(n == -1 || n <= 1, "a step without a reopen has at most its transaction");
        free_list(cmds);
        vcp_step_free(step);
    }
}

/// A copy of `def` made the way a driver hands over its own structures.
unsafe fn rebuild(def: *const vcp_checkpoint_def) -> *mut vcp_checkpoint_def {
    // SAFETY: `def` is a live definition; every pointer passed is ours or NULL.
    unsafe {
        let mut s: [*mut c_char; 4] = [ptr::null_mut(); 4];
        let mut ctime = 0;
        assert_eq!(vcp_checkpoint_def_get_name(def, &mut s[0]), 0);
        assert_eq!(vcp_checkpoint_def_get_parent(def, &mut s[1]), 0);
        assert_eq!(vcp_checkpoint_def_get_description(def, &mut s[2]), 0);
        assert_eq!(vcp_checkpoint_def_get_domain_xml(def, &mut s[3]), 0);
        assert_eq!(vcp_checkpoint_def_get_creation_time(def, &mut ctime), 0);
        // All disks in one call, as the per-disk getters give them.
        let mut disks: *mut vcp_checkpoint_disk = ptr::null_mut();
        let n = vcp_checkpoint_def_get_disks(def, &mut disks);
        assert_eq!(n, vcp_checkpoint_def_get_disk_count(def));
        for i in 0..n.max(0) as usize {
            let (mut name, mut kind, mut bitmap) = (ptr::null_mut(), 0, ptr::null_mut());
            assert_eq!(
                vcp_checkpoint_def_get_disk(def, i, &mut name, &mut kind, &mut bitmap),
                0
            );
            let d = &*disks.add(i);
            assert_eq!(CStr::from_ptr(d.name), CStr::from_ptr(name));
            assert_eq!(d.kind, kind);
            assert_eq!(d.bitmap.is_null(), bitmap.is_null());
            if !bitmap.is_null() {
                assert_eq!(CStr::from_ptr(d.bitmap), CStr::from_ptr(bitmap));
            }
            vcp_free(name.cast());
            vcp_free(bitmap.cast());
        }
        let n = n.max(0) as usize;
        let copy = vcp_checkpoint_def_new(s[0], ctime, 0);
        assert!(
            !copy.is_null(),
            "a parsed name refused by vcp_checkpoint_def_new"
        );
        assert_eq!(vcp_checkpoint_def_set_parent(copy, s[1], s[2]), 0);
        assert_eq!(vcp_checkpoint_def_set_disks(copy, disks, n), 0);
        assert_eq!(vcp_checkpoint_def_set_domain_xml(copy, s[3]), 0);
        for p in s {
            vcp_free(p.cast());
        }
        vcp_checkpoint_disks_free(disks, n);
        copy
    }
}

/// Whether a disk target of `dom` starts with '/'.
unsafe fn has_path_like_target(dom: *const vcp_domain) -> bool {
    // SAFETY: `dom` is a live domain; the list is ours and freed here.
    unsafe {
        let mut targets: *mut *mut c_char = ptr::null_mut();
        let n = vcp_domain_get_disks(dom, &mut targets);
        let found = (0..n.max(0) as usize).any(|i| *(*targets.add(i)) == b'/' as c_char);
        free_list(targets);
        found
    }
}

/// Everything a driver reads of a step, then the step freed (NULL: refused).
unsafe fn walk_step(step: *mut vcp_step) {
    if step.is_null() {
        return;
    }
    // SAFETY: `step` is a live step; every out pointer is ours.
    unsafe {
        for phase in [
            VCP_STEP_NOW,
            VCP_STEP_ON_READY,
            VCP_STEP_ON_END,
            VCP_STEP_ON_ABORT,
        ] {
            let mut cmds = ptr::null_mut();
            assert!(vcp_step_commands(step, phase, &mut cmds) >= 0);
            free_list(cmds);
        }
        vcp_free(vcp_step_format_json(step).cast());
        let mut after = ptr::null_mut();
        assert!(vcp_step_get_domain_after(step, &mut after) >= 0);
        vcp_domain_free(after);
        vcp_step_free(step);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |&b| b == 0xff);
    let dom_xml = cstr(parts.next().unwrap_or_default());
    let cp_xml = cstr(parts.next().unwrap_or_default());
    let json = cstr(parts.next().unwrap_or_default());
    let flags = parts.next().and_then(|f| f.first()).copied().unwrap_or(0) as u32;
    unsafe {
        let dom = vcp_domain_parse_xml(dom_xml.as_ptr(), 0);
        let def = vcp_checkpoint_def_parse_xml(cp_xml.as_ptr(), dom, flags & 3);
        let nodes = vcp_node_data_parse_json(json.as_ptr(), 0);
        let mut a: *mut c_char = ptr::null_mut();
        let (mut b, mut c): (*mut c_char, *mut c_char) = (ptr::null_mut(), ptr::null_mut());
        let (mut r, mut m): (*mut *mut c_char, *mut *mut c_char) =
            (ptr::null_mut(), ptr::null_mut());
        if vcp_checkpoint_add_actions(dom, def, nodes, &mut a, 0) == 0 {
            let t = vcp_transaction_command(a);
            vcp_free(t.cast());
            vcp_free(a.cast());
        }
        if vcp_checkpoint_discard_actions(dom, def, nodes, &mut a, &mut r, &mut m, flags & 1) == 0 {
            let mut i = 0;
            while !(*r.add(i)).is_null() {
                vcp_free(vcp_blockdev_reopen_command(dom, *r.add(i), 0).cast());
                i += 1;
            }
            vcp_free(a.cast());
            free_list(r);
            free_list(m);
        }
        vcp_checkpoint_redefine_validate(dom, def, nodes, 0);
        if vcp_checkpoint_size_actions(dom, def, nodes, &mut a, &mut b, &mut c, 0) == 0 {
            vcp_free(a.cast());
            vcp_free(b.cast());
            vcp_free(c.cast());
            vcp_checkpoint_size_read(dom, def, nodes, nodes, 0);
        }
        let x = vcp_checkpoint_def_format_xml(def, 7);
        if !x.is_null() {
            // Rebuilt through the driver-held face from the getters, it formats the same.
            let copy = rebuild(def);
            let y = vcp_checkpoint_def_format_xml(copy, 7);
            assert_eq!(
                CStr::from_ptr(x),
                CStr::from_ptr(y),
                "rebuilt definition differs"
            );
            vcp_free(y.cast());
            // A definition aligned with the domain at parse aligns again unchanged (a
            // target starting with '/', which libvirt's schema refuses, would be read
            // as a path).
            if flags & 3 == 0 && !dom.is_null() && !has_path_like_target(dom) {
                assert_eq!(vcp_checkpoint_def_align(copy, dom, 0), 0, "re-alignment refused");
                let z = vcp_checkpoint_def_format_xml(copy, 7);
                assert_eq!(CStr::from_ptr(x), CStr::from_ptr(z), "re-alignment changed it");
                vcp_free(z.cast());
            }
            vcp_checkpoint_def_free(copy);
        }
        vcp_free(x.cast());
        let mut targets: *mut *mut c_char = ptr::null_mut();
        let n = vcp_domain_get_disks(dom, &mut targets);
        if n >= 0 {
            let mut i = 0;
            while !(*targets.add(i)).is_null() {
                let t = *targets.add(i);
                vcp_bitmap_chain_is_valid(dom, t, c"c1".as_ptr(), nodes);
                let mut chain: *mut *mut c_char = ptr::null_mut();
                let k = vcp_domain_get_disk_chain(dom, t, &mut chain);
                if k > 0 {
                    let top = *chain;
                    let n = k as usize;
                    let names = chain as *const *const c_char;
                    let mut count = 0usize;
                    let sink = vcp_action_sink {
                        opaque: (&raw mut count).cast(),
                        bitmap_add: None,
                        bitmap_remove: None,
                        bitmap_merge: None,
                        action: Some(count_json),
                    };
                    let mut reopen = vec![0usize; n];
                    let mut nreopen = 0usize;
                    let tail = *chain.add(n - 1);
                    vcp_chain_bitmap_is_valid(names, n, nodes, c"c1".as_ptr());
                    vcp_chain_merge_actions(
                        names,
                        n,
                        n / 2,
                        nodes,
                        top,
                        ptr::null(),
                        ptr::null(),
                        top,
                        &sink,
                        0,
                    );
                    vcp_chain_backup_actions(
                        names,
                        n,
                        nodes,
                        c"c1".as_ptr(),
                        top,
                        c"tmp".as_ptr(),
                        &sink,
                        0,
                    );
                    vcp_chain_blockcopy_actions(names, n, nodes, top, &sink, flags & 1);
                    vcp_chain_blockcommit_actions(names, n, nodes, tail, &sink, flags & 1);
                    if vcp_chain_discard_actions(
                        names,
                        n,
                        nodes,
                        c"c1".as_ptr(),
                        t,
                        &sink,
                        reopen.as_mut_ptr(),
                        &mut nreopen,
                        0,
                    ) == 0
                    {
                        assert!(nreopen < n && reopen[..nreopen].iter().all(|&l| l > 0 && l < n));
                    }
                    vcp_node_propagate_actions(nodes, top, c"ov".as_ptr(), &sink, 0);
                    for job in 0..5 {
                        let into = if job == VCP_BLOCKJOB_END_COMMIT { tail } else { top };
                        let f = if job == VCP_BLOCKJOB_END_COPY { flags & 1 } else { 0 };
                        let step =
                            vcp_chain_blockjob_end_step(job, names, n, n / 2, nodes, into, f);
                        assert!(job < 4 || step.is_null(), "unknown job {job} planned");
                        run_chain_step(step);
                    }
                    let before = count;
                    let rc = vcp_chain_size_actions(
                        names,
                        n,
                        nodes,
                        c"c1".as_ptr(),
                        &sink,
                        &sink,
                        &sink,
                        0,
                    );
                    // Measured: at least the merge's two actions and the cleanup.
                    assert!(rc == -1 || (rc == 0) == (count == before), "size rc {rc}");
                    let mut size = 0;
                    vcp_chain_size_read(nodes, top, &mut size);
                    if vcp_blockpull_bitmap_actions(dom, t, nodes, ptr::null(), &mut a, 0) == 0 {
                        vcp_free(a.cast());
                    }
                    if vcp_blockcopy_bitmap_actions(dom, t, nodes, top, &mut a, flags & 1) == 0 {
                        vcp_free(a.cast());
                    }
                    let last = *chain.add(k as usize - 1);
                    if vcp_blockcommit_bitmap_actions(dom, t, nodes, top, last, &mut a, flags & 1)
                        == 0
                    {
                        vcp_free(a.cast());
                    }
                    // The whole steps of the block jobs, the copy with any flags
                    // (a raw mirror among them).
                    walk_step(vcp_commit_step(dom, t, nodes, top, last, c"j".as_ptr(), 0));
                    walk_step(vcp_copy_step(
                        dom,
                        t,
                        nodes,
                        ptr::null(),
                        c"libvirt-99-format".as_ptr(),
                        ptr::null(),
                        c"j".as_ptr(),
                        flags & 0xf,
                    ));
                    let base = if flags & 2 != 0 { last } else { ptr::null() };
                    walk_step(vcp_pull_step(dom, t, nodes, base, c"j".as_ptr(), 0));
                    let disk = vcp_snapshot_disk {
                        target: t,
                        overlay_node: c"ov".as_ptr(),
                    };
                    if vcp_snapshot_bitmap_actions(dom, nodes, &disk, 1, &mut a, 0) == 0 {
                        vcp_free(a.cast());
                    }
                    let bd = vcp_backup_disk {
                        target: t,
                        incremental: c"c1".as_ptr(),
                        store_node: c"store".as_ptr(),
                        export_bitmap: ptr::null(),
                    };
                    if vcp_backup_begin_actions(
                        dom,
                        nodes,
                        (flags & 1) as i32,
                        &bd,
                        1,
                        ptr::null(),
                        def,
                        &mut a,
                        &mut b,
                        0,
                    ) == 0
                    {
                        vcp_free(a.cast());
                        vcp_free(b.cast());
                    }
                }
                free_list(chain);
                i += 1;
            }
            free_list(targets);
        }
        let list = vcp_checkpoint_list_new();
        if vcp_checkpoint_list_add(list, def, flags & 1) >= 0 {
            // A delete with children: checked whole, then its first discard, which
            // must go through when the whole was found possible.
            let mut name: *mut c_char = ptr::null_mut();
            if vcp_checkpoint_def_get_name(def, &mut name) == 0 && !name.is_null() {
                let plan =
                    vcp_checkpoint_list_plan_delete(list, name, VCP_CHECKPOINT_DELETE_CHILDREN);
                if !plan.is_null() {
                    let whole = vcp_checkpoint_delete_plan_check(plan, list, dom, nodes, flags & 1);
                    let mut m: *mut *mut c_char = ptr::null_mut();
                    let first = vcp_checkpoint_delete_plan_discard_actions(
                        plan,
                        list,
                        dom,
                        nodes,
                        0,
                        &mut a,
                        &mut r,
                        &mut m,
                        flags & 1,
                    );
                    assert!(
                        whole == -1 || first == 0,
                        "checked whole, first discard refused"
                    );
                    // Its first discard refused: kept, whatever else goes.
                    let mut d: *mut *mut c_char = ptr::null_mut();
                    if vcp_checkpoint_delete_plan_get_discard(plan, &mut d) > 0 {
                        let refused = CStr::from_ptr(*d).to_owned();
                        assert_eq!(vcp_checkpoint_delete_plan_refuse(plan, list, *d, 0), 0);
                        let mut gone: *mut *mut c_char = ptr::null_mut();
                        let k = vcp_checkpoint_delete_plan_get_removed(plan, &mut gone);
                        for i in 0..k.max(0) as usize {
                            assert_ne!(CStr::from_ptr(*gone.add(i)), refused.as_c_str());
                        }
                        free_list(gone);
                    }
                    free_list(d);
                    if first == 0 {
                        vcp_free(a.cast());
                        free_list(r);
                        free_list(m);
                    }
                    vcp_checkpoint_delete_plan_free(plan);
                }
                vcp_free(name.cast());
            }
            let mut rep: *mut c_char = ptr::null_mut();
            if vcp_reconcile(dom, list, nodes, &mut rep, 0) >= 0 {
                vcp_free(rep.cast());
            }
            if vcp_reconcile_fix_actions(dom, list, nodes, &mut a, &mut r, 0) == 0 {
                vcp_free(a.cast());
                free_list(r);
            }
            vcp_reconcile_fix_metadata(list, dom, nodes, ptr::null(), ptr::null(), 0);
        }
        vcp_checkpoint_list_free(list);
        if vcp_node_data_get_node_names(nodes, &mut r) >= 0 {
            free_list(r);
        }
        vcp_node_data_free(nodes);
        vcp_checkpoint_def_free(def);
        vcp_domain_free(dom);
    }
});
