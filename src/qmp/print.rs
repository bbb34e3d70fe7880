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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qmp::nodes::parse_node_data;

    #[test]
    fn prints_v2_long_names_flags_and_sorted_snapshots() {
        let json = r#"[
          {"node-name":"libvirt-1-format","image":{"virtual-size":1,
            "format-specific":{"type":"qcow2","data":{"compat":"0.10"}},
            "snapshots":[{"name":"b2","vm-state-size":0},{"name":"a1","vm-state-size":5}]},
           "dirty-bitmaps":[{"name":"current","recording":true,"persistent":true,
              "inconsistent":true,"granularity":65536,"count":0},
             {"name":"top-transient-inactive","busy":true,"granularity":512,"count":1024}]},
          {"node-name":"libvirt-1-storage","image":{"virtual-size":1}},
          {"node-name":"libvirt-30-format","image":{"virtual-size":1}},
          {"node-name":"pflash0","image":{"virtual-size":1}}]"#;
        let nd = parse_node_data(json).unwrap();
        assert_eq!(
            detect_report(&nd),
            "libvirt-1-format:\n qcow2 v2\n  current: record:1 busy:0 persist:1 inconsist:1 gran:65536 dirty:0\n \
             top-transient-inactive: record:0 busy:1 persist:0 inconsist:0 gran:512 dirty:1024\n \
             internal snapshots: 'a1'(*) 'b2'"
        );
    }
}
