//! The reconcile report for people and programs: a table a person reads at a glance
//! (checkpoints by disks by layers, one symbol per state, a legend, a summary line) and
//! the same facts as JSON.

use std::fmt::Write;

use crate::model::domain::Domain;
use crate::plan::chain::ChainState;
use crate::plan::reconcile::{FixPlan, Report};
use crate::plan::resolve::{FullReason, Resolution};
use crate::qmp::json::Json;

/// The state's name in reports.
pub fn state_name(s: ChainState) -> &'static str {
    match s {
        ChainState::Valid => "ok",
        ChainState::MissingTop => "missing",
        ChainState::Gap { .. } => "gap",
        ChainState::Inconsistent { .. } => "inconsistent",
        ChainState::NotRecording { .. } => "not-recording",
        ChainState::NotPersistent { .. } => "not-persistent",
    }
}

/// The symbol of one layer of one checkpoint's chain.
fn symbol(state: ChainState, layer: usize, present: bool) -> char {
    if state.layer() == Some(layer) {
        return match state {
            ChainState::MissingTop | ChainState::Gap { .. } => 'X',
            ChainState::Inconsistent { .. } => '!',
            ChainState::NotRecording { .. } => '-',
            ChainState::NotPersistent { .. } => '~',
            ChainState::Valid => '+',
        };
    }
    if present { '+' } else { '.' }
}

/// The report as a table.
pub fn table(report: &Report, dom: &Domain) -> String {
    let name_w = report
        .checkpoints
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0)
        .max("checkpoint".len());
    let col_w: Vec<usize> = dom
        .disks
        .iter()
        .map(|d| (d.chain.len() * 3 + "not-persistent".len()).max(d.target.len()))
        .collect();
    let mut out = String::new();
    let mut line = format!("{:<name_w$}", "checkpoint");
    for (d, w) in dom.disks.iter().zip(&col_w) {
        let _ = write!(line, "  {:<w$}", d.target);
    }
    out.push_str(line.trim_end());
    out.push('\n');
    let mut line = format!("{:<name_w$}", "");
    for (d, w) in dom.disks.iter().zip(&col_w) {
        let layers: String = (0..d.chain.len()).map(|l| format!("L{l:<2}")).collect();
        let _ = write!(line, "  {:<w$}", layers);
    }
    out.push_str(line.trim_end());
    out.push('\n');
    let (mut ok, mut bad) = (0, std::collections::BTreeMap::<&str, usize>::new());
    for c in &report.checkpoints {
        let _ = write!(out, "{:<name_w$}", c.name);
        for (d, w) in dom.disks.iter().zip(&col_w) {
            let cell = match c.disks.iter().find(|x| x.disk == d.target) {
                None => "(not covered)".to_owned(),
                Some(dc) => {
                    let marks: String = dc
                        .present
                        .iter()
                        .enumerate()
                        .map(|(l, p)| format!("{}  ", symbol(dc.state, l, *p)))
                        .collect();
                    if dc.state.is_valid() {
                        ok += 1;
                    } else {
                        *bad.entry(state_name(dc.state)).or_default() += 1;
                    }
                    format!("{marks}{}", state_name(dc.state))
                }
            };
            let _ = write!(out, "  {cell:<w$}");
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    if !report.orphans.is_empty() {
        out.push_str("orphan bitmaps (no checkpoint):\n");
        for o in &report.orphans {
            let _ = writeln!(
                out,
                "  ? {} L{} {}: {}{}",
                o.disk,
                o.layer,
                o.node,
                o.name,
                if o.busy {
                    " (busy: in use by a job)"
                } else {
                    ""
                }
            );
        }
    }
    out.push_str(
        "legend: + bitmap present and usable  . not on this layer  X missing where needed  \
         ! inconsistent  - not recording  ~ not persistent  ? orphan\n",
    );
    let mut summary = format!(
        "summary: {} checkpoints, {} disks: {ok} ok",
        report.checkpoints.len(),
        dom.disks.len()
    );
    for (k, v) in &bad {
        let _ = write!(summary, ", {v} {k}");
    }
    let _ = write!(
        summary,
        "; {} orphan bitmap{}",
        report.orphans.len(),
        if report.orphans.len() == 1 { "" } else { "s" }
    );
    out.push_str(&summary);
    out.push('\n');
    out
}

/// The report and its fix as JSON.
pub fn json(report: &Report, fix: &FixPlan) -> Json {
    let checkpoints = report
        .checkpoints
        .iter()
        .map(|c| {
            Json::Obj(vec![
                ("name", c.name.as_str().into()),
                (
                    "disks",
                    Json::Arr(
                        c.disks
                            .iter()
                            .map(|d| {
                                let mut m = vec![
                                    ("disk", Json::from(d.disk.as_str())),
                                    ("state", state_name(d.state).into()),
                                ];
                                if let Some(l) = d.state.layer() {
                                    m.push(("layer", (l as u64).into()));
                                }
                                m.push((
                                    "layers",
                                    Json::Arr(d.present.iter().map(|p| (*p).into()).collect()),
                                ));
                                Json::Obj(m)
                            })
                            .collect(),
                    ),
                ),
            ])
        })
        .collect();
    let orphans = report
        .orphans
        .iter()
        .map(|o| {
            Json::Obj(vec![
                ("disk", o.disk.as_str().into()),
                ("layer", (o.layer as u64).into()),
                ("node", o.node.as_str().into()),
                ("name", o.name.as_str().into()),
                ("busy", o.busy.into()),
            ])
        })
        .collect();
    let removals = fix
        .removals
        .iter()
        .map(|r| {
            Json::Obj(vec![
                ("disk", r.disk.as_str().into()),
                ("layer", (r.layer as u64).into()),
                ("node", r.node.as_str().into()),
                ("file", r.file.as_str().into()),
                ("name", r.name.as_str().into()),
            ])
        })
        .collect();
    Json::Obj(vec![
        ("clean", report.is_clean().into()),
        ("checkpoints", Json::Arr(checkpoints)),
        ("orphans", Json::Arr(orphans)),
        (
            "fix",
            Json::Obj(vec![
                ("removals", Json::Arr(removals)),
                (
                    "broken",
                    Json::Arr(fix.broken.iter().map(|b| b.as_str().into()).collect()),
                ),
            ]),
        ),
    ])
}

/// The backup resolver's decisions as JSON: `[{"disk":…,"mode":"incremental"|"full",
/// "reason":…}]`.
pub fn resolution_json(decided: &[(String, Resolution)]) -> Json {
    Json::Arr(
        decided
            .iter()
            .map(|(disk, r)| {
                let mut m = vec![("disk", Json::from(disk.as_str()))];
                match r {
                    Resolution::Incremental => m.push(("mode", "incremental".into())),
                    Resolution::Full(reason) => {
                        m.push(("mode", "full".into()));
                        m.push((
                            "reason",
                            match reason {
                                FullReason::UnknownCheckpoint => "unknown-checkpoint".into(),
                                FullReason::NotCovered => "not-covered".into(),
                                FullReason::Chain(s) => state_name(*s).into(),
                            },
                        ));
                    }
                }
                Json::Obj(m)
            })
            .collect(),
    )
}
