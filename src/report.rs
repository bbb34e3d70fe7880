//! The reconcile report and the backup resolver's decisions as JSON, for programs (the
//! C ABI returns these; the command line prints them with `--json`).

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

/// The report and its fix as JSON.
pub fn report_json(report: &Report, fix: &FixPlan) -> Json {
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
