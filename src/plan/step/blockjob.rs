//! Steps around a chain's change: external snapshot, block commit, copy and pull,
//! and the end of a block job planned from the job's chain alone.

use super::{Step, command, job_start, push_transaction, reopened};
use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::model::domain::{Domain, Image};
use crate::model::nodes::NodeData;
use crate::plan::commit::{blockcommit_bitmap_actions, commit_failed_actions, commit_lost_bitmaps};
use crate::plan::copy::blockcopy_bitmap_actions;
use crate::plan::delete::Reopen;
use crate::plan::pull::blockpull_bitmap_actions;
use crate::plan::snapshot::{SnapshotDisk, snapshot_bitmap_actions};
use crate::plan::{activewrite_actions, activewrite_remove_actions, holds_bitmaps};
use crate::qmp::action::{Action, transaction};
use crate::qmp::json::Json;

/// An external snapshot of `disks` (qemuSnapshotDiskBitmapsPropagate): one transaction
/// with the bitmaps re-created on each overlay and its `blockdev-snapshot`. The domain
/// afterwards has each overlay on top (`overlays[i]` describes disk i's new image;
/// its format node must be the disk's `overlay_node`).
pub fn snapshot_step(
    dom: &Domain,
    disks: &[SnapshotDisk],
    overlays: &[Image],
    nodes: &NodeData,
) -> Result<Step> {
    if overlays.len() != disks.len()
        || disks
            .iter()
            .zip(overlays)
            .any(|(d, o)| d.overlay_node != o.format_node)
    {
        return Err(Error::invalid_arg(
            ErrorDomain::Qemu,
            "each snapshot disk needs its overlay image, with the overlay's format node",
        ));
    }
    let mut step = Step::default();
    push_transaction(&mut step.now, &snapshot_bitmap_actions(dom, disks, nodes)?);
    let mut after = dom.clone();
    for (d, o) in disks.iter().zip(overlays) {
        let disk = after.disk_mut(&d.target)?;
        disk.chain.insert(0, o.clone());
    }
    step.domain_after = Some(after);
    Ok(step)
}

/// A block commit of disk `target` from layer `top_node` into `base_node`, planned from
/// the chain before the commit and node data read when the job is ready (active) or
/// concluded (non-active).
///
/// `now` = the `block-commit` as libvirt starts it (job `job_id`, `top-node` and
/// `base-node`; for a non-active commit the base's file as `backing-file`; finalized
/// by QEMU, dismissed by the driver). Plan again at each moment: send `now` once, then
/// the phase of the moment from the step planned on fresh node data.
///
/// Active commit (top = the active layer): `on_ready` = the activewrite bitmap on the
/// base, then `job-complete`; `on_end` = the bitmap transaction (merges into the base,
/// the activewrite bitmap merged and removed); `on_abort` = `job-cancel`, the
/// activewrite bitmap's removal. Non-active: `on_end` = the base reopened read-write,
/// the bitmap transaction, the base reopened read-only. `job_id` is the commit job's id.
///
/// A base that cannot hold persistent bitmaps (raw, qcow2 v2), where QEMU would refuse
/// libvirt's merges: an active commit merges nothing into it (the base becomes the top
/// without the checkpoints' bitmaps) and only removes the transient activewrite bitmap
/// it added at the pivot, as libvirt 9.0 does when it has nothing to merge (11.3 leaves
/// that bitmap behind); a non-active one removes the copies, above the
/// committed layers, of the bitmaps the merge would have carried (which would look
/// valid while missing the committed layers' writes; see `commit_lost_bitmaps`),
/// reopening backing layers around it. Either way the checkpoints lose the disk, as a
/// reconcile afterwards reports, and none of them gives an incomplete backup.
pub fn commit_step(
    dom: &Domain,
    target: &str,
    top_node: &str,
    base_node: &str,
    job_id: &str,
    nodes: &NodeData,
) -> Result<Step> {
    let disk = dom.find_disk(target)?;
    let (top, base) = (disk.layer_of(top_node)?, disk.layer_of(base_node)?);
    let active = top == 0;
    let actions = blockcommit_bitmap_actions(&disk.chain, top, base, active, nodes)?;
    let keeps = holds_bitmaps(&disk.chain[base], nodes);
    let job = || vec![("id", Json::from(job_id))];
    let mut step = Step {
        jobs: vec![job_id.to_owned()],
        ..Step::default()
    };
    let mut start = vec![
        ("device", disk.chain[0].format_node.as_str().into()),
        ("job-id", job_id.into()),
        ("top-node", top_node.into()),
        ("base-node", base_node.into()),
    ];
    if !active && !disk.chain[base].source.is_empty() {
        start.push(("backing-file", disk.chain[base].source.as_str().into()));
    }
    step.now.push(command("block-commit", job_start(start)));
    step.on_abort.push(command("job-cancel", job()));
    if active {
        // The pivot's activewrite bitmap is transient: any node takes it.
        push_transaction(&mut step.on_ready, &activewrite_actions(base_node));
        step.on_ready.push(command("job-complete", job()));
        // A base that keeps no bitmap: none merged in (the checkpoints lose the disk),
        // the activewrite bitmap removed, as libvirt 9.0 removes it when there is
        // nothing to merge.
        let end = if keeps {
            actions
        } else {
            activewrite_remove_actions(base_node)
        };
        push_transaction(&mut step.on_end, &end);
        step.on_abort.extend(
            commit_failed_actions(base_node)
                .iter()
                .map(Action::to_command),
        );
    } else if keeps {
        step.on_end = reopened(&[Reopen::at(disk, base, nodes)], &actions);
    }
    let mut after = dom.clone();
    after.disk_mut(target)?.chain.drain(top..base);
    if !active && !keeps {
        // The layers above the committed ones, reopened once the job has concluded:
        // by then QEMU links the lowest of them to the base, so each is reopened with
        // its backing in the chain afterwards (the layers keep their places above).
        let (removals, layers) = commit_lost_bitmaps(&disk.chain, top, nodes);
        let now = after.find_disk(target)?;
        let reopen: Vec<Reopen> = layers
            .into_iter()
            .map(|i| Reopen::at(now, i, nodes))
            .collect();
        step.on_end = reopened(&reopen, &removals);
    }
    step.on_end.push(command("job-dismiss", job()));
    step.domain_after = Some(after);
    Ok(step)
}

/// A block copy of disk `target` onto `mirror` (its top image; `shallow`: the mirror
/// keeps the old backing chain), planned from the chain before the pivot.
///
/// Preconditions (libvirt's qemuDomainBlockCopy): a shallow copy of a persistent domain
/// needs a transient job (`VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB`), else
/// VIR_ERR_OPERATION_INVALID "domain is not transient"; a shallow copy of a disk with
/// backing layers cannot go into a raw mirror (VIR_ERR_CONFIG_UNSUPPORTED "shallow
/// copy of disk '%s' into a raw file is not possible"; the library plans no reuse of a
/// prepopulated file).
///
/// A mirror that cannot hold persistent bitmaps (raw, qcow2 v2), where QEMU would
/// refuse every persistent bitmap libvirt adds: nothing is merged into it, and the
/// transient activewrite bitmap of the pivot is only removed, as libvirt 9.0 does when
/// it has nothing to merge (11.3 leaves it behind); the checkpoints lose the disk, as a
/// reconcile afterwards reports.
///
/// `now` = the `blockdev-mirror` as libvirt starts it onto the attached mirror
/// (`sync` `top` when shallow, else `full`); plan again at each moment as for a commit.
/// `on_ready` = the activewrite bitmap on the mirror, then `job-complete` (the pivot);
/// `on_end` = the bitmap transaction (every valid bitmap created on the mirror and
/// filled from the old layers, the activewrite merged and removed) and `job-dismiss`;
/// `on_abort` = `job-cancel` (the mirror and its temporary bitmap go when it is
/// detached). The domain afterwards has the mirror on top: alone (deep), or over the
/// old backing chain (shallow).
#[allow(clippy::too_many_arguments)]
pub fn copy_step(
    dom: &Domain,
    target: &str,
    mirror: &Image,
    shallow: bool,
    persistent_domain: bool,
    transient_job: bool,
    job_id: &str,
    nodes: &NodeData,
) -> Result<Step> {
    if shallow && persistent_domain && !transient_job {
        return Err(Error::new(
            ErrorCode::OperationInvalid,
            ErrorDomain::Qemu,
            "domain is not transient",
        ));
    }
    let disk = dom.find_disk(target)?;
    let top = disk
        .top()
        .ok_or_else(|| Error::invalid_arg(ErrorDomain::Qemu, "the disk has no media"))?;
    if shallow && disk.chain.len() > 1 && mirror.format == "raw" {
        return Err(Error::config_unsupported(
            ErrorDomain::Qemu,
            format_args!("shallow copy of disk '{target}' into a raw file is not possible"),
        ));
    }
    // A mirror that keeps no bitmap: none merged in, the activewrite bitmap removed.
    let actions = if holds_bitmaps(mirror, nodes) {
        blockcopy_bitmap_actions(&disk.chain, &mirror.format_node, shallow, nodes)
    } else {
        activewrite_remove_actions(&mirror.format_node)
    };
    let job = || vec![("id", Json::from(job_id))];
    let mut step = Step {
        jobs: vec![job_id.to_owned()],
        ..Step::default()
    };
    step.now.push(command(
        "blockdev-mirror",
        job_start(vec![
            ("job-id", job_id.into()),
            ("device", top.format_node.as_str().into()),
            ("target", mirror.format_node.as_str().into()),
            ("sync", if shallow { "top" } else { "full" }.into()),
        ]),
    ));
    push_transaction(
        &mut step.on_ready,
        &activewrite_actions(&mirror.format_node),
    );
    step.on_ready.push(command("job-complete", job()));
    push_transaction(&mut step.on_end, &actions);
    step.on_end.push(command("job-dismiss", job()));
    step.on_abort.push(command("job-cancel", job()));
    let mut after = dom.clone();
    let chain = &mut after.disk_mut(target)?.chain;
    let backing = if shallow && !chain.is_empty() {
        chain.split_off(1)
    } else {
        Vec::new()
    };
    // libvirt opens the mirror with the disk's detect_zeroes, as a top image.
    let mirror = Image {
        detect_zeroes: disk.driver.detect_zeroes,
        ..mirror.clone()
    };
    *chain = std::iter::once(mirror).chain(backing).collect();
    step.domain_after = Some(after);
    Ok(step)
}

/// A block pull into disk `target`'s top from the layers above `base_node` (None: the
/// whole chain), planned before the job starts: `now` = the `block-stream` as libvirt
/// starts it (with a base: its node and its file as `backing-file`); `on_end` =
/// `job-dismiss`, then the
/// merges of each valid bitmap from the pulled layers into the top. The job is
/// dismissed first because QEMU 10.0 crashes answering `query-named-block-nodes` while
/// a concluded stream job waits to be dismissed (seen here); the merges only need the
/// bitmaps known at the start, which the stream does not change. The domain afterwards
/// has the pulled layers gone.
pub fn pull_step(
    dom: &Domain,
    target: &str,
    base_node: Option<&str>,
    job_id: &str,
    nodes: &NodeData,
) -> Result<Step> {
    let disk = dom.find_disk(target)?;
    let base = base_node.map(|b| disk.layer_of(b)).transpose()?;
    let top = disk
        .top()
        .ok_or_else(|| Error::invalid_arg(ErrorDomain::Qemu, "the disk has no media"))?;
    let actions = blockpull_bitmap_actions(&disk.chain, base, nodes);
    let job = || vec![("id", Json::from(job_id))];
    let mut step = Step {
        jobs: vec![job_id.to_owned()],
        ..Step::default()
    };
    let mut start = vec![
        ("device", top.format_node.as_str().into()),
        ("job-id", job_id.into()),
    ];
    if let Some(b) = base {
        start.push(("base-node", disk.chain[b].format_node.as_str().into()));
        if !disk.chain[b].source.is_empty() {
            start.push(("backing-file", disk.chain[b].source.as_str().into()));
        }
    }
    step.now.push(command("block-stream", job_start(start)));
    step.on_end.push(command("job-dismiss", job()));
    push_transaction(&mut step.on_end, &actions);
    step.on_abort.push(command("job-cancel", job()));
    let mut after = dom.clone();
    let chain = &mut after.disk_mut(target)?.chain;
    let end = base.unwrap_or(chain.len());
    if end > 1 {
        chain.drain(1..end);
    }
    step.domain_after = Some(after);
    Ok(step)
}

/// Which block job has completed, for [`chain_blockjob_end_step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockJobEnd {
    /// A pull (`block-stream`) into the chain's top of its first `sources` layers (the
    /// top included; the chain's length = every layer).
    Pull {
        /// The layers pulled, from the top.
        sources: usize,
    },
    /// A commit of upper layers into a base below the active layer.
    Commit,
    /// A commit of the active layer (pivoted: the base is now the disk's top).
    ActiveCommit,
    /// A copy, pivoted onto the mirror; shallow: the mirror kept the backing chain.
    Copy {
        /// Only the top was copied.
        shallow: bool,
    },
}

/// The bitmaps' part of the end of a block job at libvirt's granularity (its
/// completion handlers qemuBlockJobProcessEventCompleted{Pull,Commit,Copy}Bitmaps),
/// planned along `chain` (node names from the job's top down, as the driver's links
/// give them once the job completed: libvirt cuts an active commit's chain above the
/// base first) from node data read then. `target` is the node that receives the
/// bitmaps: the base of a commit, the mirror of a copy (a pull's is the chain's top).
///
/// `now` is the transaction of libvirt's merges (nothing when there is none to make,
/// as libvirt sends nothing then); for a commit below the active layer the base is
/// reopened read-write before it and read-only after it, as libvirt does. The reopens
/// name the node alone: the driver runs them its own way (`reopens_by_driver`).
pub fn chain_blockjob_end_step<L: crate::model::domain::Layer>(
    job: BlockJobEnd,
    chain: &[L],
    target: &str,
    nodes: &NodeData,
) -> Step {
    let actions = match job {
        BlockJobEnd::Pull { sources } => {
            blockpull_bitmap_actions(chain, (sources < chain.len()).then_some(sources), nodes)
        }
        BlockJobEnd::Commit => {
            crate::plan::commit::commit_finish_actions(chain, target, false, nodes)
        }
        BlockJobEnd::ActiveCommit => {
            crate::plan::commit::commit_finish_actions(chain, target, true, nodes)
        }
        BlockJobEnd::Copy { shallow } => blockcopy_bitmap_actions(chain, target, shallow, nodes),
    };
    let reopen = |read_only: bool| {
        command(
            "blockdev-reopen",
            vec![(
                "options",
                Json::Arr(vec![Json::Obj(vec![
                    ("node-name", target.into()),
                    ("read-only", read_only.into()),
                ])]),
            )],
        )
    };
    let mut now = Vec::new();
    if !actions.is_empty() {
        let around = job == BlockJobEnd::Commit;
        now.extend(around.then(|| reopen(false)));
        now.push(transaction(&actions));
        now.extend(around.then(|| reopen(true)));
    }
    Step {
        now,
        reopens_by_driver: true,
        ..Step::default()
    }
}
