//! What a hypervisor driver does around each plan: the QMP steps libvirt takes before
//! and after the library's transactions (attach stores, run jobs, reopen backing
//! layers, update the checkpoint tree). Each flow returns what it sent, for narration.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::img;
use crate::vm::{Image, Vm};
use crate::{HarnessError, Result};
use virtcheckpoint::{
    Action, BackupDisk, BackupMode, BackupPlan, CheckpointDef, CheckpointList, DeleteOptions,
    Domain, FixPlan, MetadataDir, NodeData, ParseOptions, Reopen, Resolution, SnapshotDisk,
    activewrite_actions, apply_fix, backup_begin_actions, blockcommit_bitmap_actions,
    blockcopy_bitmap_actions, checkpoint_add_actions, checkpoint_def_from_xml,
    checkpoint_discard_actions, fix_actions, fix_plan, reconcile, reopen_command, resolve_backup,
    size_actions, sizes_from_nodes, snapshot_bitmap_actions,
};

fn lib<T>(r: virtcheckpoint::Result<T>) -> Result<T> {
    r.map_err(|e| HarnessError::Other(e.to_string()))
}

/// A checkpoint definition for `name`, aligned against the VM's disks (`disks_xml`:
/// the `<disks>` element to use, or "" for all disks).
pub fn definition(vm: &Vm, name: &str, disks_xml: &str) -> Result<CheckpointDef> {
    let xml = format!("<domaincheckpoint><name>{name}</name>{disks_xml}</domaincheckpoint>");
    lib(checkpoint_def_from_xml(
        xml.as_bytes(),
        Some(&vm.domain()),
        ParseOptions::default(),
        virtcheckpoint::now(),
    ))
}

/// Creates checkpoint `name` on every disk; returns the transaction's actions.
pub fn create_checkpoint(
    vm: &mut Vm,
    list: &mut CheckpointList,
    name: &str,
) -> Result<Vec<Action>> {
    create_checkpoint_on(vm, list, name, "")
}

/// Creates checkpoint `name` with an explicit `<disks>` element.
pub fn create_checkpoint_on(
    vm: &mut Vm,
    list: &mut CheckpointList,
    name: &str,
    disks_xml: &str,
) -> Result<Vec<Action>> {
    let def = definition(vm, name, disks_xml)?;
    let nodes = vm.nodes()?;
    let actions = lib(checkpoint_add_actions(&vm.domain(), &def, Some(&nodes)))?;
    vm.transaction(&actions)?;
    lib(list.add_created(def))?;
    Ok(actions)
}

/// What a push backup did.
#[derive(Debug, Default)]
pub struct PushBackup {
    /// The start transaction.
    pub actions: Vec<Action>,
    /// The stand-alone removals at the end.
    pub cleanup: Vec<Action>,
    /// The backup image of each disk, by target.
    pub images: Vec<(String, PathBuf)>,
}

/// A push backup of every disk into new images `<dir>/<tag>-<target>.qcow2`: full, or
/// incremental from checkpoint `from`; with `new_checkpoint`, that checkpoint is created
/// in the same transaction.
pub fn backup_push(
    vm: &mut Vm,
    list: &mut CheckpointList,
    from: Option<&str>,
    new_checkpoint: Option<&str>,
    dir: &Path,
    tag: &str,
) -> Result<PushBackup> {
    let new_def = match new_checkpoint {
        Some(n) => Some(definition(vm, n, "")?),
        None => None,
    };
    let out = run_push(vm, list, dir, tag, |dom, disks, nodes, list| {
        let disks: Vec<BackupDisk> = disks
            .iter()
            .cloned()
            .map(|mut d| {
                d.incremental = from.map(str::to_owned);
                d
            })
            .collect();
        lib(backup_begin_actions(
            dom,
            BackupMode::Push,
            &disks,
            nodes,
            &|c| list.contains(c),
            new_def.as_ref(),
        ))
    })?;
    if let Some(def) = new_def {
        lib(list.add_created(def))?;
    }
    Ok(out)
}

/// A push backup requested incremental from `from`, resolved per disk: incremental
/// where the chain is valid, full (with the reason) elsewhere.
pub fn backup_resolved(
    vm: &mut Vm,
    list: &mut CheckpointList,
    from: &str,
    dir: &Path,
    tag: &str,
) -> Result<(Vec<(String, Resolution)>, PushBackup)> {
    let mut decided = Vec::new();
    let out = run_push(vm, list, dir, tag, |dom, disks, nodes, list| {
        let (d, plan) = lib(resolve_backup(
            dom,
            BackupMode::Push,
            disks,
            nodes,
            &list.topological(),
            from,
            None,
        ))?;
        decided = d;
        Ok(plan)
    })?;
    Ok((decided, out))
}

fn run_push(
    vm: &mut Vm,
    list: &CheckpointList,
    dir: &Path,
    tag: &str,
    plan: impl FnOnce(&Domain, &[BackupDisk], &NodeData, &CheckpointList) -> Result<BackupPlan>,
) -> Result<PushBackup> {
    let nodes = vm.nodes()?;
    let mut disks = Vec::new();
    let mut out = PushBackup::default();
    let mut attached = Vec::new();
    for d in vm.disks.clone() {
        let top = &d.chain[0];
        let size = nodes
            .get(&top.format_node())
            .map(|n| n.capacity)
            .ok_or_else(|| HarnessError::Other(format!("no node {}", top.format_node())))?;
        let path = dir.join(format!("{tag}-{}.qcow2", d.target));
        img::create(&path, size, None)?;
        let index = vm.attach(&path, None)?;
        attached.push((d.target.clone(), top.format_node(), index));
        disks.push(BackupDisk {
            target: d.target.clone(),
            incremental: None,
            store_node: format!("libvirt-{index}-format"),
            export_bitmap: None,
        });
        out.images.push((d.target.clone(), path));
    }
    let planned = plan(&vm.domain(), &disks, &nodes, list);
    let plan = match planned {
        Ok(p) => p,
        Err(e) => {
            for (_, _, index) in attached {
                let _ = vm.detach(index);
            }
            return Err(e);
        }
    };
    vm.transaction(&plan.actions)?;
    for (target, top, index) in attached {
        vm.finish_job(&format!("backup-{target}-{top}"))?;
        vm.detach(index)?;
    }
    for a in &plan.cleanup {
        vm.qmp.execute_text(&a.to_command().to_compact())?;
    }
    out.actions = plan.actions;
    out.cleanup = plan.cleanup;
    Ok(out)
}

/// An external snapshot taken behind the library's back: `blockdev-snapshot` alone,
/// no bitmap carried into the overlay.
pub fn snapshot_unmanaged(vm: &mut Vm, target: &str, overlay: &Path) -> Result<()> {
    let (index, _) = new_overlay(vm, target, overlay)?;
    let top = vm.disk(target).chain[0].format_node();
    vm.qmp.execute(
        "blockdev-snapshot",
        Some(json!({"node": top, "overlay": format!("libvirt-{index}-format")})),
    )?;
    push_top(vm, target, overlay, index);
    Ok(())
}

/// Removes bitmap `name` from layer `layer` of disk `target` behind the library's back
/// (reopening a backing layer read-write for it).
pub fn remove_behind_back(vm: &mut Vm, target: &str, layer: usize, name: &str) -> Result<()> {
    let node = vm.disk(target).chain[layer].format_node();
    let layers = if layer > 0 {
        vec![layer_reopen(vm, target, layer)]
    } else {
        Vec::new()
    };
    with_reopened(vm, &layers, |vm| {
        vm.qmp
            .execute(
                "block-dirty-bitmap-remove",
                Some(json!({"node": node, "name": name})),
            )
            .map(drop)
    })
}

/// Reconciles online and applies the fix: one removal transaction (backing layers
/// reopened around it), then the metadata brought in line (and its files, given a
/// metadata folder). Returns the plan.
pub fn fix_online(
    vm: &mut Vm,
    list: &mut CheckpointList,
    meta: Option<&MetadataDir>,
) -> Result<FixPlan> {
    let nodes = vm.nodes()?;
    let dom = vm.domain();
    let rep = reconcile(&dom, &list.topological(), &nodes);
    let plan = fix_plan(&rep, &dom);
    let (actions, reopens) = fix_actions(&plan, &dom);
    with_reopened(vm, &reopens, |vm| vm.transaction(&actions))?;
    lib(apply_fix(list, &plan, meta))?;
    Ok(plan)
}

/// Creates an overlay image over disk `target`'s top and attaches it with
/// `"backing": null`; returns its node index and the node data read before.
fn new_overlay(vm: &mut Vm, target: &str, overlay: &Path) -> Result<(u32, NodeData)> {
    let nodes = vm.nodes()?;
    let top = vm.disk(target).chain[0].clone();
    let size = nodes.get(&top.format_node()).map_or(0, |n| n.capacity);
    img::create(overlay, size, Some(&top.path))?;
    let index = vm.attach(overlay, None)?;
    Ok((index, nodes))
}

/// Records that `overlay` (node index `index`) is now disk `target`'s top.
fn push_top(vm: &mut Vm, target: &str, overlay: &Path, index: u32) {
    let disk = vm
        .disks
        .iter_mut()
        .find(|d| d.target == target)
        .expect("known disk");
    disk.chain.insert(
        0,
        Image {
            path: overlay.to_path_buf(),
            index,
        },
    );
}

/// An external snapshot of disk `target` into a new overlay at `overlay`, with the
/// bitmaps propagated; returns the transaction's actions.
pub fn snapshot(vm: &mut Vm, target: &str, overlay: &Path) -> Result<Vec<Action>> {
    let (index, nodes) = new_overlay(vm, target, overlay)?;
    let actions = lib(snapshot_bitmap_actions(
        &vm.domain(),
        &[SnapshotDisk {
            target: target.into(),
            overlay_node: format!("libvirt-{index}-format"),
        }],
        &nodes,
    ))?;
    vm.transaction(&actions)?;
    push_top(vm, target, overlay, index);
    Ok(actions)
}

/// The reopen description of layer `layer` of disk `target`.
fn layer_reopen(vm: &Vm, target: &str, layer: usize) -> Reopen {
    Reopen::of(vm.domain().disk(target).expect("known disk"), layer)
}

/// Runs `work` with `layers` reopened read-write, as libvirt does around a delete, a
/// fix or a non-active commit; they are reopened read-only afterwards even when `work`
/// failed.
fn with_reopened<T>(
    vm: &mut Vm,
    layers: &[Reopen],
    work: impl FnOnce(&mut Vm) -> Result<T>,
) -> Result<T> {
    let send = |vm: &mut Vm, r: &Reopen, read_only: bool| {
        let cmd = reopen_command(
            &r.format_node,
            &r.storage_node,
            r.backing_node.as_deref(),
            read_only,
        );
        vm.qmp.execute_text(&cmd.to_compact()).map(drop)
    };
    for r in layers {
        send(vm, r, false)?;
    }
    let out = work(vm);
    for r in layers {
        send(vm, r, true)?;
    }
    out
}

/// Deletes checkpoint `name` with `opts`: for each checkpoint to discard,
/// the node data is read again, the read-only layers holding the bitmap are reopened
/// read-write around the removal transaction, then the tree is updated. Returns the
/// transactions sent.
pub fn delete_checkpoint(
    vm: &mut Vm,
    list: &mut CheckpointList,
    name: &str,
    opts: DeleteOptions,
) -> Result<Vec<Vec<Action>>> {
    let plan = lib(list.plan_delete(name, opts))?;
    let mut sent = Vec::new();
    for cp in &plan.discard {
        let nodes = vm.nodes()?;
        let def = lib(list.get(cp))?.clone();
        let d = lib(checkpoint_discard_actions(
            &vm.domain(),
            &def,
            &nodes,
            false,
        ))?;
        with_reopened(vm, &d.reopen, |vm| vm.transaction(&d.actions))?;
        sent.push(d.actions);
    }
    lib(list.apply_delete(&plan))?;
    Ok(sent)
}

/// Measures checkpoint `name`: the three transactions of the size query; returns each
/// disk's size in bytes.
pub fn checkpoint_size(
    vm: &mut Vm,
    list: &CheckpointList,
    name: &str,
) -> Result<Vec<(String, Option<u64>)>> {
    let def = lib(list.get(name))?.clone();
    let nodes = vm.nodes()?;
    let plan = size_actions(&vm.domain(), &def, &nodes);
    vm.transaction(&plan.recovery)?;
    vm.transaction(&plan.merge)?;
    let after = vm.nodes()?;
    let sizes = sizes_from_nodes(&plan, &after);
    vm.transaction(&plan.cleanup)?;
    Ok(sizes)
}

/// Commits `chain[top..base]` of disk `target` into `chain[base]` (top 0 = active
/// commit, with pivot), carrying the bitmaps as libvirt does; returns the bitmap
/// transaction.
pub fn block_commit(vm: &mut Vm, target: &str, top: usize, base: usize) -> Result<Vec<Action>> {
    let chain = vm.disk(target).chain.clone();
    let domain_before = vm.domain();
    let disk_before = domain_before.disk(target).expect("known").clone();
    let job = format!("commit-{target}-{}", chain[top].format_node());
    let active = top == 0;
    let mut args = json!({"job-id": job, "device": chain[0].format_node(),
                          "base-node": chain[base].format_node(), "auto-finalize": true,
                          "auto-dismiss": false});
    if !active {
        args["top-node"] = json!(chain[top].format_node());
        // The base is read-only below the active layer: the commit needs it writable.
    }
    vm.qmp.execute("block-commit", Some(args))?;
    if active {
        vm.wait_ready(&job)?;
        vm.transaction(&activewrite_actions(&chain[base].format_node()))?;
        vm.qmp.execute("job-complete", Some(json!({"id": job})))?;
    }
    vm.finish_job(&job)?;
    let nodes = vm.nodes()?;
    let actions = lib(blockcommit_bitmap_actions(
        &disk_before.chain,
        top,
        base,
        active,
        &nodes,
    ))?;
    // The chain QEMU has now: the committed layers are gone.
    let disk = vm
        .disks
        .iter_mut()
        .find(|d| d.target == target)
        .expect("known disk");
    disk.chain.drain(top..base);
    if active {
        vm.transaction(&actions)?;
    } else {
        let base_layer = [layer_reopen(vm, target, top)];
        with_reopened(vm, &base_layer, |vm| vm.transaction(&actions))?;
    }
    // As libvirt does once the bitmaps are merged: the committed images leave QEMU
    // (their files keep their bitmaps).
    for image in &chain[top..base] {
        vm.detach(image.index)?;
    }
    Ok(actions)
}

/// Copies disk `target` into a new image at `dest` (only its top layer when `shallow`)
/// and pivots to it, carrying the bitmaps; returns the bitmap transaction.
pub fn block_copy(vm: &mut Vm, target: &str, dest: &Path, shallow: bool) -> Result<Vec<Action>> {
    let chain = vm.disk(target).chain.clone();
    let disk_before = vm.domain().disk(target).expect("known").clone();
    let size = vm
        .nodes()?
        .get(&chain[0].format_node())
        .map_or(0, |n| n.capacity);
    let backing = if shallow { chain.get(1).cloned() } else { None };
    img::create(dest, size, backing.as_ref().map(|b| b.path.as_path()))?;
    let index = vm.attach(dest, backing.as_ref().map(|b| b.index))?;
    let mirror = format!("libvirt-{index}-format");
    let job = format!("copy-{target}-{}", chain[0].format_node());
    vm.qmp.execute(
        "blockdev-mirror",
        Some(
            json!({"job-id": job, "device": chain[0].format_node(), "target": mirror,
                    "sync": if shallow { "top" } else { "full" }, "auto-finalize": true,
                    "auto-dismiss": false}),
        ),
    )?;
    vm.wait_ready(&job)?;
    vm.transaction(&activewrite_actions(&mirror))?;
    vm.qmp.execute("job-complete", Some(json!({"id": job})))?;
    vm.finish_job(&job)?;
    let nodes = vm.nodes()?;
    let actions = blockcopy_bitmap_actions(&disk_before.chain, &mirror, shallow, &nodes);
    vm.transaction(&actions)?;
    let left = if shallow { &chain[..1] } else { &chain[..] };
    for image in left {
        vm.detach(image.index)?;
    }
    let disk = vm
        .disks
        .iter_mut()
        .find(|d| d.target == target)
        .expect("known disk");
    let mut new_chain = vec![Image {
        path: dest.to_path_buf(),
        index,
    }];
    if shallow {
        new_chain.extend(chain[1..].iter().cloned());
    }
    disk.chain = new_chain;
    Ok(actions)
}

/// A pull backup of disk `target` from checkpoint `from`: a scratch image over the
/// disk's top, the library's transaction (temporary bitmap merged on the scratch node,
/// `blockdev-backup` sync none), the scratch exported over NBD on `socket` with the
/// bitmap. `read` is called while the export is up with the NBD socket path; then the
/// export, server, job and scratch node are torn down as libvirt does.
pub fn backup_pull<T>(
    vm: &mut Vm,
    list: &CheckpointList,
    target: &str,
    from: &str,
    dir: &Path,
    read: impl FnOnce(&Path) -> Result<T>,
) -> Result<T> {
    let top = vm.disk(target).chain[0].clone();
    let nodes = vm.nodes()?;
    let size = nodes.get(&top.format_node()).map_or(0, |n| n.capacity);
    let scratch_path = dir.join(format!("scratch-{target}.qcow2"));
    img::create(&scratch_path, size, Some(&top.path))?;
    let index = vm.attach(&scratch_path, Some(top.index))?;
    let scratch = format!("libvirt-{index}-format");
    let disks = [BackupDisk {
        target: target.into(),
        incremental: Some(from.into()),
        store_node: scratch.clone(),
        export_bitmap: None,
    }];
    let plan = lib(backup_begin_actions(
        &vm.domain(),
        BackupMode::Pull,
        &disks,
        &nodes,
        &|c| list.contains(c),
        None,
    ))?;
    let socket = dir.join("nbd.sock");
    vm.qmp.execute(
        "nbd-server-start",
        Some(json!({"addr": {"type": "unix", "data": {"path": socket}}})),
    )?;
    vm.transaction(&plan.actions)?;
    let (_, _, bitmap) = plan.exports[0].clone();
    let export_id = format!("libvirt-nbd-{scratch}");
    vm.qmp.execute(
        "block-export-add",
        Some(
            json!({"type": "nbd", "id": export_id, "node-name": scratch, "writable": false,
                    "name": target, "bitmaps": bitmap.into_iter().collect::<Vec<_>>()}),
        ),
    )?;
    let result = read(&socket);
    let job = format!("backup-{target}-{}", top.format_node());
    vm.qmp.execute("nbd-server-stop", None)?;
    vm.qmp.execute("job-cancel", Some(json!({"id": job})))?;
    vm.qmp.wait_event(
        "JOB_STATUS_CHANGE",
        std::time::Duration::from_secs(30),
        |d| d["id"] == job.as_str() && d["status"] == "concluded",
    )?;
    vm.qmp.execute("job-dismiss", Some(json!({"id": job})))?;
    vm.detach(index)?;
    result
}
