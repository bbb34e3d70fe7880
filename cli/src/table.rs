//! The reconcile report as a table a person reads at a glance: checkpoints by disks by
//! layers, one symbol per state, a legend, a summary line.

use std::fmt::Write;

use virtcheckpoint::{ChainState, Domain, Report, state_name};

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
