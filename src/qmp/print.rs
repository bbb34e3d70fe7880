//! libvirt's own test printouts, reproduced: the bitmap detection report of
//! tests/qemublocktest.c (SPEC section 16, case 1).

use std::fmt::Write;

use crate::model::nodes::NodeData;

/// The detection printout for node data: for `libvirt-0-format` .. `libvirt-29-format`,
/// each node that exists, its qcow2 v2 flag, its bitmaps and its internal snapshots.
/// Like libvirt's printer, the snapshot list is not followed by a newline.
pub fn detect_report(data: &NodeData) -> String {
    let mut out = String::new();
    for i in 0..30 {
        let name = format!("libvirt-{i}-format");
        let Some(node) = data.get(&name) else {
            continue;
        };
        let _ = writeln!(out, "{name}:");
        if node.qcow2v2 {
            out.push_str(" qcow2 v2\n");
        }
        for b in &node.bitmaps {
            let _ = writeln!(
                out,
                " {:>8}: record:{} busy:{} persist:{} inconsist:{} gran:{} dirty:{}",
                b.name,
                u8::from(b.recording),
                u8::from(b.busy),
                u8::from(b.persistent),
                u8::from(b.inconsistent),
                b.granularity,
                b.count
            );
        }
        if !node.snapshots.is_empty() {
            let mut snaps: Vec<_> = node.snapshots.iter().collect();
            snaps.sort_by(|a, b| a.name.cmp(&b.name));
            out.push_str(" internal snapshots:");
            for s in snaps {
                let _ = write!(out, " '{}'{}", s.name, if s.vmstate { "(*)" } else { "" });
            }
        }
    }
    out
}
