//! A test driver over the library's whole steps: it sends each step's phases at their
//! moments, and adds only what is the caller's own (image files, attaching nodes,
//! starting block jobs, waiting for QEMU's events). Which layers to reopen, what a job's
//! end or abort sends and the chain afterwards come from the steps. Each flow returns
//! what it sent, for narration.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::img;
use crate::vm::{Image, Vm};
use crate::{HarnessError, Result};
use virtcheckpoint::{
    BackupDisk, BackupMode, BlockJobEnd, CheckpointDef, CheckpointList, DeleteOptions,
    DetectZeroes, DiskDriver, Domain, FixPlan, Image as ModelImage, Json, MetadataDir, NodeData,
    ParseOptions, Reopen, Resolution, SnapshotDisk, Step, StepCommand, apply_delete, apply_fix,
    backup_step, chain_blockjob_end_step, checkpoint_def_from_xml, commit_step, copy_step,
    create_step, discard_steps, fix_plan, fix_step, pull_step, read_sizes, reconcile,
    resolved_backup_step, size_step, snapshot_step,
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
pub fn create_checkpoint(vm: &mut Vm, list: &mut CheckpointList, name: &str) -> Result<Step> {
    create_checkpoint_on(vm, list, name, "")
}

/// Creates checkpoint `name` with an explicit `<disks>` element.
pub fn create_checkpoint_on(
    vm: &mut Vm,
    list: &mut CheckpointList,
    name: &str,
    disks_xml: &str,
) -> Result<Step> {
    let def = definition(vm, name, disks_xml)?;
    let nodes = vm.nodes()?;
    let step = lib(create_step(&vm.domain(), &def, Some(&nodes)))?;
    vm.send_phase(&step.now)?;
    lib(list.add_created(def))?;
    Ok(step)
}

/// What a push backup did.
#[derive(Debug, Default)]
pub struct PushBackup {
    /// The step sent: the start transaction now, the end's commands.
    pub step: Step,
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
    let out = run_push(vm, list, dir, tag, |dom, disks, nodes, list, storage| {
        let disks: Vec<BackupDisk> = disks
            .iter()
            .cloned()
            .map(|mut d| {
                d.incremental = from.map(str::to_owned);
                d
            })
            .collect();
        lib(backup_step(
            dom,
            BackupMode::Push,
            &disks,
            nodes,
            &|c| list.contains(c),
            new_def.as_ref(),
            storage,
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
    let out = run_push(vm, list, dir, tag, |dom, disks, nodes, list, storage| {
        let (d, step) = lib(resolved_backup_step(
            dom,
            BackupMode::Push,
            disks,
            nodes,
            &list.topological(),
            from,
            None,
            storage,
        ))?;
        decided = d;
        Ok(step)
    })?;
    Ok((decided, out))
}

fn run_push(
    vm: &mut Vm,
    list: &CheckpointList,
    dir: &Path,
    tag: &str,
    plan: impl FnOnce(
        &Domain,
        &[BackupDisk],
        &NodeData,
        &CheckpointList,
        &[Option<&str>],
    ) -> Result<Step>,
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
        attached.push(index);
        disks.push(BackupDisk {
            target: d.target.clone(),
            incremental: None,
            store_node: format!("libvirt-{index}-format"),
            export_bitmap: None,
        });
        out.images.push((d.target.clone(), path));
    }
    let storage: Vec<String> = attached
        .iter()
        .map(|i| format!("libvirt-{i}-storage"))
        .collect();
    let storage: Vec<Option<&str>> = storage.iter().map(|s| Some(s.as_str())).collect();
    let step = match plan(&vm.domain(), &disks, &nodes, list, &storage) {
        Ok(p) => p,
        Err(e) => {
            for index in attached {
                let _ = vm.detach(index);
            }
            return Err(e);
        }
    };
    vm.send_phase(&step.now)?;
    for job in &step.jobs {
        vm.wait_concluded(job)?;
    }
    vm.send_phase(&step.on_end)?;
    out.step = step;
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

/// Reconciles online and applies the fix step (one removal transaction, backing
/// layers reopened around it), then the metadata brought in line (and its files,
/// given a metadata folder). Returns the plan.
pub fn fix_online(
    vm: &mut Vm,
    list: &mut CheckpointList,
    meta: Option<&MetadataDir>,
) -> Result<FixPlan> {
    let nodes = vm.nodes()?;
    let dom = vm.domain();
    let plan = fix_plan(&reconcile(&dom, &list.topological(), &nodes), &dom);
    vm.send_phase(&fix_step(&dom, &plan, &nodes).now)?;
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
    // libvirt opens a snapshot overlay with the disk's options but no detect_zeroes.
    let driver = DiskDriver {
        detect_zeroes: DetectZeroes::Default,
        ..vm.disk(target).driver
    };
    let index = vm.attach_with(overlay, None, &driver)?;
    Ok((index, nodes))
}

/// Records that `overlay` (node index `index`) is now disk `target`'s top, for a
/// snapshot taken behind the library's back (no step describes it).
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

/// An external snapshot of disk `target` into a new overlay at `overlay`: the step's
/// transaction (bitmaps propagated, `blockdev-snapshot`), then its chain afterwards.
/// Returns the step.
pub fn snapshot(vm: &mut Vm, target: &str, overlay: &Path) -> Result<Step> {
    let (index, nodes) = new_overlay(vm, target, overlay)?;
    let image = ModelImage::qcow2_indexed(overlay.display().to_string(), index);
    let disk = SnapshotDisk {
        target: target.into(),
        overlay_node: image.format_node.clone(),
    };
    let step = lib(snapshot_step(&vm.domain(), &[disk], &[image], &nodes))?;
    vm.send_phase(&step.now)?;
    adopt(vm, &step)?;
    Ok(step)
}

/// Takes the step's chain afterwards as the VM's.
fn adopt(vm: &mut Vm, step: &Step) -> Result<()> {
    match &step.domain_after {
        Some(d) => vm.adopt(d),
        None => Ok(()),
    }
}

/// The reopen description of layer `layer` of disk `target`.
fn layer_reopen(vm: &Vm, target: &str, layer: usize) -> Reopen {
    Reopen::of(vm.domain().disk(target).expect("known disk"), layer)
}

/// Runs `work` with `layers` reopened read-write and then read-only again: what the
/// outside actor of `remove_behind_back` does (the library's own steps carry their
/// reopens).
fn with_reopened<T>(
    vm: &mut Vm,
    layers: &[Reopen],
    work: impl FnOnce(&mut Vm) -> Result<T>,
) -> Result<T> {
    for r in layers {
        vm.send_phase(&[r.command(false)])?;
    }
    let out = work(vm);
    for r in layers {
        vm.send_phase(&[r.command(true)])?;
    }
    out
}

/// Deletes checkpoint `name` with `opts`: every discard step planned from one node
/// data reading (the whole subtree or nothing), then sent in order; then the tree is
/// updated. Returns the steps sent.
pub fn delete_checkpoint(
    vm: &mut Vm,
    list: &mut CheckpointList,
    name: &str,
    opts: DeleteOptions,
) -> Result<Vec<Step>> {
    let plan = lib(list.plan_delete(name, opts))?;
    let steps = lib(discard_steps(
        list,
        &plan,
        &vm.domain(),
        &vm.nodes()?,
        false,
    ))?;
    for step in &steps {
        vm.send_phase(&step.now)?;
    }
    lib(apply_delete(list, &plan, None))?;
    Ok(steps)
}

/// Each disk's dirty bytes since a checkpoint, by target.
pub type Sizes = Vec<(String, Option<u64>)>;

/// Measures checkpoint `name` with its size step: the merges now, the node data read
/// again for the sizes, then the step's cleanup. Returns each disk's size in bytes,
/// and the step.
pub fn checkpoint_size(vm: &mut Vm, list: &CheckpointList, name: &str) -> Result<(Sizes, Step)> {
    let mut def = lib(list.get(name))?.clone();
    let nodes = vm.nodes()?;
    let dom = vm.domain();
    let step = size_step(&dom, &def, &nodes);
    vm.send_phase(&step.now)?;
    let after = vm.nodes()?;
    read_sizes(&dom, &mut def, &nodes, &after);
    vm.send_phase(&step.on_end)?;
    let sizes = def
        .bitmap_disks()
        .map(|d| (d.name.clone(), d.size))
        .collect();
    Ok((sizes, step))
}

/// Commits `chain[top..base]` of disk `target` into `chain[base]` (top 0 = active
/// commit, with pivot): starts the job, then sends the commit step's phases at their
/// moments and takes its chain afterwards; the committed images then leave QEMU.
/// Returns the step.
pub fn block_commit(vm: &mut Vm, target: &str, top: usize, base: usize) -> Result<Step> {
    Ok(commit_with(vm, target, top, base, false)?.0)
}

/// Commits as [`block_commit`] does, but ends the job as a driver that holds only the
/// job's chain does (libvirt's completion handler): the bitmaps' part planned with
/// `chain_blockjob_end_step` from the chain as its links give it once the job
/// completed (an active commit's cut above the base), its node-only reopens sent with
/// the image's own options, then the job's own end. Returns the whole commit step (as
/// planned at the end) and the chain step sent instead of its bitmaps' part.
pub fn block_commit_chain_end(
    vm: &mut Vm,
    target: &str,
    top: usize,
    base: usize,
) -> Result<(Step, Step)> {
    let (whole, end) = commit_with(vm, target, top, base, true)?;
    Ok((whole, end.expect("planned from the chain")))
}

fn commit_with(
    vm: &mut Vm,
    target: &str,
    top: usize,
    base: usize,
    from_chain: bool,
) -> Result<(Step, Option<Step>)> {
    let chain = vm.disk(target).chain.clone();
    let domain_before = vm.domain();
    let (top_node, base_node) = (chain[top].format_node(), chain[base].format_node());
    let job = format!("commit-{target}-{top_node}");
    let plan = |vm: &mut Vm| {
        let nodes = vm.nodes()?;
        lib(commit_step(
            &domain_before,
            target,
            &top_node,
            &base_node,
            &job,
            &nodes,
        ))
    };
    let start = plan(vm)?;
    vm.send_phase(&start.now)?;
    if top == 0 {
        vm.wait_ready(&job)?;
        let ready = plan(vm)?;
        vm.send_phase(&ready.on_ready)?;
    }
    vm.wait_concluded(&job)?;
    let step = plan(vm)?;
    let end = if from_chain {
        let layers = if top == 0 {
            &chain[..base]
        } else {
            &chain[top..]
        };
        let names: Vec<String> = layers.iter().map(Image::format_node).collect();
        let kind = if top == 0 {
            BlockJobEnd::ActiveCommit
        } else {
            BlockJobEnd::Commit
        };
        let end = chain_blockjob_end_step(kind, &names, &base_node, &vm.nodes()?);
        for c in &end.now {
            match StepCommand::of(c) {
                StepCommand::Reopen { node, read_only } => {
                    let reopen = lib(Reopen::of_node(&domain_before, node))?;
                    vm.send_phase(&[reopen.command(read_only)])?;
                }
                _ => vm.send_phase(std::slice::from_ref(c))?,
            }
        }
        // The job's own end, which the driver sends itself.
        let job_end: Vec<Json> = step
            .on_end
            .iter()
            .filter(|c| matches!(StepCommand::of(c), StepCommand::Other(_)))
            .cloned()
            .collect();
        vm.send_phase(&job_end)?;
        Some(end)
    } else {
        vm.send_phase(&step.on_end)?;
        None
    };
    adopt(vm, &step)?;
    // As libvirt does once the bitmaps are merged: the committed images leave QEMU
    // (their files keep their bitmaps).
    for image in &chain[top..base] {
        vm.detach(image.index)?;
    }
    Ok((step, end))
}

/// Copies disk `target` into a new image at `dest` (only its top layer when `shallow`)
/// and pivots to it: starts the mirror job, then sends the copy step's phases at their
/// moments and takes its chain afterwards; the old images then leave QEMU. Returns the
/// step.
pub fn block_copy(vm: &mut Vm, target: &str, dest: &Path, shallow: bool) -> Result<Step> {
    let chain = vm.disk(target).chain.clone();
    let domain_before = vm.domain();
    let size = vm
        .nodes()?
        .get(&chain[0].format_node())
        .map_or(0, |n| n.capacity);
    let backing = if shallow { chain.get(1).cloned() } else { None };
    img::create(dest, size, backing.as_ref().map(|b| b.path.as_path()))?;
    // The mirror gets the disk's options, detect_zeroes included, as libvirt's.
    let driver = vm.disk(target).driver;
    let index = vm.attach_with(dest, backing.as_ref().map(|b| b.index), &driver)?;
    let mirror = ModelImage {
        format: img::format_of(dest).into(),
        ..ModelImage::qcow2_indexed(dest.display().to_string(), index)
    };
    let job = format!("copy-{target}-{}", chain[0].format_node());
    // The test VM is transient: libvirt's precondition for a shallow copy holds.
    let plan = |nodes: &NodeData| {
        lib(copy_step(
            &domain_before,
            target,
            &mirror,
            shallow,
            false,
            false,
            &job,
            nodes,
        ))
    };
    let start = plan(&vm.nodes()?)?;
    vm.send_phase(&start.now)?;
    vm.wait_ready(&job)?;
    let ready = plan(&vm.nodes()?)?;
    vm.send_phase(&ready.on_ready)?;
    vm.wait_concluded(&job)?;
    let step = plan(&vm.nodes()?)?;
    vm.send_phase(&step.on_end)?;
    adopt(vm, &step)?;
    let left = if shallow { &chain[..1] } else { &chain[..] };
    for image in left {
        vm.detach(image.index)?;
    }
    Ok(step)
}

/// A pull backup of disk `target` from checkpoint `from`: a scratch image over the
/// disk's top and an NBD server (the caller's), then the backup step (its transaction
/// and the export of the scratch node with the bitmap). `read` is called while the
/// export is up with the NBD socket path and the step; then the step's abort and end phases tear it
/// down, as libvirt ends a pull backup, and the server is stopped.
pub fn backup_pull<T>(
    vm: &mut Vm,
    list: &CheckpointList,
    target: &str,
    from: &str,
    dir: &Path,
    read: impl FnOnce(&Path, &Step) -> Result<T>,
) -> Result<T> {
    let top = vm.disk(target).chain[0].clone();
    let nodes = vm.nodes()?;
    let size = nodes.get(&top.format_node()).map_or(0, |n| n.capacity);
    let scratch_path = dir.join(format!("scratch-{target}.qcow2"));
    img::create(&scratch_path, size, Some(&top.path))?;
    let index = vm.attach(&scratch_path, Some(top.index))?;
    let disks = [BackupDisk {
        target: target.into(),
        incremental: Some(from.into()),
        store_node: format!("libvirt-{index}-format"),
        export_bitmap: None,
    }];
    let storage = format!("libvirt-{index}-storage");
    let step = lib(backup_step(
        &vm.domain(),
        BackupMode::Pull,
        &disks,
        &nodes,
        &|c| list.contains(c),
        None,
        &[Some(&storage)],
    ))?;
    let socket = dir.join("nbd.sock");
    vm.qmp.execute(
        "nbd-server-start",
        Some(json!({"addr": {"type": "unix", "data": {"path": socket}}})),
    )?;
    vm.send_phase(&step.now)?;
    let result = read(&socket, &step);
    vm.send_phase(&step.on_abort)?;
    for job in &step.jobs {
        vm.qmp.wait_event(
            "JOB_STATUS_CHANGE",
            std::time::Duration::from_secs(30),
            |d| d["id"] == job.as_str() && d["status"] == "concluded",
        )?;
    }
    vm.send_phase(&step.on_end)?;
    vm.qmp.execute("nbd-server-stop", None)?;
    result
}

/// Pulls the layers above `base` (None: all below the top) into disk `target`'s top
/// with a `block-stream` job, then sends the pull step's end (the job dismissed, the
/// bitmaps of the pulled layers merged into the top) and takes its chain afterwards;
/// the pulled images then leave QEMU. Returns the step.
pub fn block_pull(vm: &mut Vm, target: &str, base: Option<usize>) -> Result<Step> {
    let chain = vm.disk(target).chain.clone();
    let domain_before = vm.domain();
    let job = format!("pull-{target}-{}", chain[0].format_node());
    let nodes = vm.nodes()?;
    let base_node = base.map(|b| chain[b].format_node());
    let step = lib(pull_step(
        &domain_before,
        target,
        base_node.as_deref(),
        &job,
        &nodes,
    ))?;
    vm.send_phase(&step.now)?;
    vm.wait_concluded(&job)?;
    vm.send_phase(&step.on_end)?;
    adopt(vm, &step)?;
    for image in &chain[1..base.unwrap_or(chain.len())] {
        vm.detach(image.index)?;
    }
    Ok(step)
}
