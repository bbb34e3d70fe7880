//! Reconcile: compare the checkpoint metadata with the bitmaps that exist, name every
//! drift, and plan the fix that removes only what is broken or orphaned. libvirt fails
//! a whole delete or backup with one hard error in these states; this is the way out.

use super::TMP_ACTIVEWRITE;
use super::TMP_SIZE;
use super::chain::{ChainState, chain_state};
use super::delete::Reopen;
use crate::model::checkpoint::CheckpointDef;
use crate::model::domain::Domain;
use crate::model::nodes::NodeData;
use crate::qmp::action::Action;

/// The state of one checkpoint on one disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskCheck {
    /// The disk's target.
    pub disk: String,
    /// What the chain of the checkpoint's bitmap looks like from the disk's top.
    pub state: ChainState,
    /// For each layer (top first): whether it holds the checkpoint's bitmap.
    pub present: Vec<bool>,
}

/// The state of one checkpoint on every disk it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointCheck {
    /// The checkpoint.
    pub name: String,
    /// One entry per `bitmap` disk still in the domain, in domain order.
    pub disks: Vec<DiskCheck>,
}

impl CheckpointCheck {
    /// Whether every disk is fine.
    pub fn is_ok(&self) -> bool {
        self.disks.iter().all(|d| d.state.is_valid())
    }
}

/// A bitmap that belongs to no checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// The disk.
    pub disk: String,
    /// The layer (0 = top).
    pub layer: usize,
    /// The layer's format node.
    pub node: String,
    /// The bitmap.
    pub name: String,
    /// A job holds it (a running backup's temporary bitmap): never removed.
    pub busy: bool,
}

/// The whole comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every checkpoint, in topological order.
    pub checkpoints: Vec<CheckpointCheck>,
    /// Every bitmap without a checkpoint.
    pub orphans: Vec<Orphan>,
}

impl Report {
    /// How many problems the report names: broken chains (one per checkpoint and
    /// disk) plus orphan bitmaps. Zero when clean.
    pub fn problems(&self) -> usize {
        self.orphans.len()
            + self
                .checkpoints
                .iter()
                .flat_map(|c| &c.disks)
                .filter(|d| !d.state.is_valid())
                .count()
    }

    /// Whether metadata and bitmaps agree everywhere.
    pub fn is_clean(&self) -> bool {
        self.orphans.is_empty() && self.checkpoints.iter().all(CheckpointCheck::is_ok)
    }
}

/// One bitmap to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The disk.
    pub disk: String,
    /// The layer (0 = top).
    pub layer: usize,
    /// The layer's format node.
    pub node: String,
    /// The image file of the layer.
    pub file: String,
    /// The bitmap.
    pub name: String,
}

/// What the fix does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FixPlan {
    /// Bitmaps to remove, disk by disk, top layer first.
    pub removals: Vec<Removal>,
    /// Checkpoints broken on at least one disk (their bitmaps on the broken disks are
    /// removed).
    pub broken: Vec<String>,
    /// (checkpoint, disk): the checkpoint stays valid on other disks and stops claiming
    /// this one (`checkpoint='no'`), so later backups from it are exact.
    pub uncover: Vec<(String, String)>,
    /// Checkpoints broken on every disk they cover: their metadata goes (a
    /// metadata-only delete, children re-parented).
    pub drop: Vec<String>,
}

/// Compares the checkpoints `defs` (parents before children, as
/// `CheckpointList::topological` gives them) with the bitmaps in `nodes` (online: a
/// `query-named-block-nodes` reply; offline: the images' `qemu-img info`). Images of a
/// shut-off domain without node names are keyed by file, as in the node data.
pub fn reconcile(dom: &Domain, defs: &[&CheckpointDef], nodes: &NodeData) -> Report {
    let dom = dom.keyed_by_file();
    let mut report = Report::default();
    for def in defs {
        let name = def.name.as_str();
        let mut check = CheckpointCheck {
            name: name.to_owned(),
            disks: Vec::new(),
        };
        for cd in def.bitmap_disks() {
            let Some(disk) = dom.disk(&cd.name) else {
                continue;
            };
            check.disks.push(DiskCheck {
                disk: disk.target.clone(),
                state: chain_state(&disk.chain, name, nodes),
                present: disk
                    .chain
                    .iter()
                    .map(|i| nodes.bitmap(&i.format_node, name).is_some())
                    .collect(),
            });
        }
        report.checkpoints.push(check);
    }
    for disk in &dom.disks {
        for (layer, image) in disk.chain.iter().enumerate() {
            let Some(node) = nodes.get(&image.format_node) else {
                continue;
            };
            for b in &node.bitmaps {
                if !defs.iter().any(|d| d.name == b.name) {
                    report.orphans.push(Orphan {
                        disk: disk.target.clone(),
                        layer,
                        node: image.format_node.clone(),
                        name: b.name.clone(),
                        busy: b.busy,
                    });
                }
            }
        }
    }
    report
}

/// Whether `name` is one of libvirt's temporary bitmaps.
pub fn is_temporary(name: &str) -> bool {
    name == TMP_ACTIVEWRITE || name == TMP_SIZE || name.starts_with("backup-")
}

/// The fix: remove every orphan that no job holds, and every copy of a broken
/// checkpoint's bitmap on the disks where it is broken. A valid chain is never touched.
pub fn fix_plan(report: &Report, dom: &Domain) -> FixPlan {
    let dom = dom.keyed_by_file();
    let mut plan = FixPlan::default();
    let file = |disk: &str, layer: usize| {
        dom.disk(disk)
            .and_then(|d| d.chain.get(layer))
            .map(|i| i.source.clone())
            .unwrap_or_default()
    };
    for d in &dom.disks {
        for cc in &report.checkpoints {
            for dc in cc.disks.iter().filter(|x| x.disk == d.target) {
                if dc.state.is_valid() {
                    continue;
                }
                for (layer, present) in dc.present.iter().enumerate() {
                    if *present {
                        plan.removals.push(Removal {
                            disk: d.target.clone(),
                            layer,
                            node: d.chain[layer].format_node.clone(),
                            file: file(&d.target, layer),
                            name: cc.name.clone(),
                        });
                    }
                }
            }
        }
        for o in report
            .orphans
            .iter()
            .filter(|o| o.disk == d.target && !o.busy)
        {
            plan.removals.push(Removal {
                disk: o.disk.clone(),
                layer: o.layer,
                node: o.node.clone(),
                file: file(&o.disk, o.layer),
                name: o.name.clone(),
            });
        }
    }
    plan.removals.sort_by(|a, b| {
        let pos = |r: &Removal| dom.disks.iter().position(|d| d.target == r.disk);
        pos(a).cmp(&pos(b)).then(a.layer.cmp(&b.layer))
    });
    for c in report.checkpoints.iter().filter(|c| !c.is_ok()) {
        plan.broken.push(c.name.clone());
        if c.disks.iter().all(|d| !d.state.is_valid()) {
            plan.drop.push(c.name.clone());
        } else {
            for d in c.disks.iter().filter(|d| !d.state.is_valid()) {
                plan.uncover.push((c.name.clone(), d.disk.clone()));
            }
        }
    }
    plan
}

/// The fix as one QMP transaction for a running domain, with the read-only backing
/// layers to reopen read-write around it (deepest first), as a delete does; `nodes` is
/// the node data the plan was made from (each image's detect_zeroes, [`Reopen::at`]).
pub fn fix_actions(plan: &FixPlan, dom: &Domain, nodes: &NodeData) -> (Vec<Action>, Vec<Reopen>) {
    let actions = plan
        .removals
        .iter()
        .map(|r| Action::remove(&r.node, &r.name))
        .collect();
    let mut reopen: Vec<Reopen> = Vec::new();
    for r in plan.removals.iter().filter(|r| r.layer > 0) {
        if reopen.iter().any(|x| x.format_node == r.node) {
            continue;
        }
        if let Some(d) = dom.disk(&r.disk) {
            reopen.insert(0, Reopen::at(d, r.layer, nodes));
        }
    }
    (actions, reopen)
}

/// The fix for a shut-off domain: `qemu-img bitmap --remove FILE NAME` argument
/// vectors, in order.
pub fn fix_commands(plan: &FixPlan) -> Vec<Vec<String>> {
    plan.removals
        .iter()
        .map(|r| super::offline::remove_argv(&r.file, &r.name))
        .collect()
}
