//! Whole driver steps: for one operation, everything a driver sends QEMU around the
//! bitmap actions, in order, and what the domain looks like afterwards, so that no
//! caller re-derives libvirt's choreography (which layers to reopen, what to send when
//! a job ends or is given up, the chain after a block job).
//!
//! A [`Step`] has phases. `now` is sent at once, in order (for a delete: the reopens
//! read-write, the transaction, the reopens read-only). A step that starts or finishes
//! a block job lists what to send when the job is ready (`on_ready`: an active commit or
//! a copy pivot), when it has concluded (`on_end`), and to give it up (`on_abort`).
//! `domain_after` is the domain once the step is done, when the step changes a chain.
//!
//! Preconditions are checked by the builders and refused with libvirt's code and text;
//! a refusal plans nothing.

mod backup;
mod blockjob;
mod checkpoint;
#[cfg(test)]
mod tests;

pub use backup::{backup_step, resolved_backup_step};
pub use blockjob::{
    BlockJobEnd, chain_blockjob_end_step, commit_step, copy_step, pull_step, snapshot_step,
};
pub(crate) use checkpoint::reset_actions;
pub use checkpoint::{
    create_step, create_step_with, discard_step, fix_step, pending_abort_step,
    redefine_validate_step, reset_step, size_step,
};

use crate::model::domain::Domain;
use crate::plan::delete::Reopen;
use crate::qmp::action::{Action, transaction};
use crate::qmp::json::Json;

/// One driver step (see the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Step {
    /// Commands to send now, in order.
    pub now: Vec<Json>,
    /// The block jobs the step's commands start (their ids), whose conclusion is
    /// `on_end`'s moment (QEMU's `JOB_STATUS_CHANGE` to `concluded`).
    pub jobs: Vec<String>,
    /// Commands to send once the block job is ready (`BLOCK_JOB_READY`): the pivot.
    pub on_ready: Vec<Json>,
    /// Commands to send once the job has concluded successfully.
    pub on_end: Vec<Json>,
    /// Commands to give the step up: cancel its jobs and undo what it added.
    pub on_abort: Vec<Json>,
    /// The domain once the step is done, when it changes a chain.
    pub domain_after: Option<Domain>,
    /// Its reopens name the image's node alone (a step planned from a chain of node
    /// names, [`chain_blockjob_end_step`]): only a driver that reopens images its own
    /// way runs them ([`StepCommand::Reopen`]); as QMP text they are incomplete.
    pub reopens_by_driver: bool,
}

/// One command of a step as a driver with its own QMP builders runs it
/// ([`StepCommand::of`]).
#[derive(Debug, Clone, PartialEq)]
pub enum StepCommand<'a> {
    /// A `transaction` of these actions (`{"type":...,"data":{...}}` each), possibly none.
    Transaction(&'a [Json]),
    /// The `blockdev-reopen` of the image whose node is `node`, read-only or read-write:
    /// the driver reopens it its own way (with its own options and access rights).
    Reopen {
        /// The image's node.
        node: &'a str,
        /// Read-only (after the change) or read-write (before it).
        read_only: bool,
    },
    /// Any other command, as sent.
    Other(&'a Json),
}

impl StepCommand<'_> {
    /// What `command` (one of a step's) is.
    pub fn of(command: &Json) -> StepCommand<'_> {
        let args = command.get("arguments");
        match command.get("execute").and_then(Json::as_str) {
            Some("transaction") => {
                match args.and_then(|a| a.get("actions")).and_then(Json::as_array) {
                    Some(actions) => StepCommand::Transaction(actions),
                    None => StepCommand::Other(command),
                }
            }
            Some("blockdev-reopen") => {
                let options = args
                    .and_then(|a| a.get("options"))
                    .and_then(Json::as_array)
                    .filter(|o| o.len() == 1)
                    .map(|o| &o[0]);
                let node = options
                    .and_then(|o| o.get("node-name"))
                    .and_then(Json::as_str);
                let ro = options
                    .and_then(|o| o.get("read-only"))
                    .and_then(Json::as_bool);
                match (node, ro) {
                    (Some(node), Some(read_only)) => StepCommand::Reopen { node, read_only },
                    _ => StepCommand::Other(command),
                }
            }
            _ => StepCommand::Other(command),
        }
    }
}

impl Step {
    /// Whether the step can be sent as QMP text as it is: false when its reopens name
    /// the node alone ([`Step::reopens_by_driver`]) and it has one.
    pub fn is_sendable(&self) -> bool {
        !self.reopens_by_driver
            || ![&self.now, &self.on_ready, &self.on_end, &self.on_abort]
                .iter()
                .flat_map(|p| p.iter())
                .any(|c| matches!(StepCommand::of(c), StepCommand::Reopen { .. }))
    }

    /// The commands of one phase (`now`, `on_ready`, `on_end`, `on_abort`: 0 to 3), or
    /// `None` for another number.
    pub fn phase(&self, phase: usize) -> Option<&[Json]> {
        Some(match phase {
            0 => &self.now,
            1 => &self.on_ready,
            2 => &self.on_end,
            3 => &self.on_abort,
            _ => return None,
        })
    }

    /// The step as JSON: `{"now":[...],"jobs":[...],"on-ready":[...],"on-end":[...],
    /// "on-abort":[...]}` (empty phases included), commands compact as libvirt sends them.
    pub fn to_json(&self) -> Json {
        Json::Obj(vec![
            ("now", Json::Arr(self.now.clone())),
            (
                "jobs",
                Json::Arr(self.jobs.iter().map(|j| j.as_str().into()).collect()),
            ),
            ("on-ready", Json::Arr(self.on_ready.clone())),
            ("on-end", Json::Arr(self.on_end.clone())),
            ("on-abort", Json::Arr(self.on_abort.clone())),
        ])
    }
}

fn command(execute: &str, args: Vec<(&'static str, Json)>) -> Json {
    Json::Obj(vec![
        ("execute", execute.into()),
        ("arguments", Json::Obj(args)),
    ])
}

/// A block job's start arguments as libvirt sends them: `args`, then finalized by
/// QEMU and dismissed by the driver (`auto-finalize` true, `auto-dismiss` false).
fn job_start(mut args: Vec<(&'static str, Json)>) -> Vec<(&'static str, Json)> {
    args.push(("auto-finalize", true.into()));
    args.push(("auto-dismiss", false.into()));
    args
}

fn push_transaction(out: &mut Vec<Json>, actions: &[Action]) {
    if !actions.is_empty() {
        out.push(transaction(actions));
    }
}

/// `actions` wrapped in reopens: read-write before, in the reopen list's order, and
/// read-only after, in the reverse order, as libvirt walks its lists around a delete
/// (its read-only list is built by prepending each image reopened read-write).
fn reopened(reopen: &[Reopen], actions: &[Action]) -> Vec<Json> {
    if actions.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<Json> = reopen.iter().map(|r| r.command(false)).collect();
    out.push(transaction(actions));
    out.extend(reopen.iter().rev().map(|r| r.command(true)));
    out
}
