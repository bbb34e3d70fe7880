//! Store benchmark (run: `cargo bench --bench store`). Not a timed test: it prints
//! figures measured in one run.
//!
//! 10,000 checkpoints of a domain with 8 disks, each saved as libvirt does (SECURE,
//! with the domain definition embedded): the time to save them all, to load the folder
//! back, to list it topologically, and the peak memory of the load.

use std::fmt::Write;
use std::hint::black_box;
use std::time::Instant;

#[path = "common/alloc.rs"]
mod alloc;
use alloc::{Counting, peak_of};
use virtcheckpoint::{
    CheckpointDef, CheckpointDisk, CheckpointList, DiskCheckpointKind, ListOptions, MetadataDir,
};

#[global_allocator]
static ALLOC: Counting = Counting;

const CHECKPOINTS: usize = 10_000;
const DISKS: usize = 8;

fn domain_xml() -> String {
    let mut s = String::from(
        "<domain type='kvm'>\n  <name>bench</name>\n  <uuid>3164d1ad-aece-49b1-be9e-d4ed21278767</uuid>\n  \
         <memory unit='KiB'>4194304</memory>\n  <vcpu placement='static'>4</vcpu>\n  <os>\n    \
         <type arch='x86_64' machine='pc-q35-10.0'>hvm</type>\n  </os>\n  <devices>\n",
    );
    for d in 0..DISKS {
        let t = (b'a' + d as u8) as char;
        let _ = write!(
            s,
            "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n      \
             <source file='/var/lib/libvirt/images/bench-vd{t}.qcow2'/>\n      <target dev='vd{t}' bus='virtio'/>\n    \
             </disk>\n"
        );
    }
    s.push_str("  </devices>\n</domain>");
    s
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let base = std::env::temp_dir().join(format!("vcp-bench-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let md = MetadataDir::new(&base, "bench").unwrap();
    let dom = domain_xml();
    let mut list = CheckpointList::new();
    for i in 0..CHECKPOINTS {
        let name = format!("chk{i:05}");
        list.add_created(CheckpointDef {
            name: name.clone(),
            creation_time: 1_700_000_000 + i as i64,
            disks: (0..DISKS)
                .map(|d| CheckpointDisk {
                    name: format!("vd{}", (b'a' + d as u8) as char),
                    kind: DiskCheckpointKind::Bitmap,
                    bitmap: Some(name.clone()),
                    size: None,
                })
                .collect(),
            domain_xml: Some(dom.clone()),
            ..Default::default()
        })
        .unwrap();
    }

    let t = Instant::now();
    for def in list.defs() {
        md.save(def).unwrap();
    }
    let save = t.elapsed();
    let bytes: u64 = std::fs::read_dir(md.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();

    let t = Instant::now();
    let ((loaded, problems), peak) = peak_of(|| md.load().unwrap());
    let load = t.elapsed();
    assert!(problems.is_empty());
    assert_eq!(loaded.len(), CHECKPOINTS);

    let mut best = f64::MAX;
    for _ in 0..10 {
        let t = Instant::now();
        black_box(loaded.list(None, ListOptions::TOPOLOGICAL).unwrap());
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "{CHECKPOINTS} checkpoints x {DISKS} disks, {:.1} MiB of metadata files",
        bytes as f64 / 1048576.0
    );
    println!(
        "  save (atomic + fsync each): {:.0} ms total, {:.3} ms per file",
        save.as_secs_f64() * 1e3,
        save.as_secs_f64() * 1e3 / CHECKPOINTS as f64
    );
    println!(
        "  load: {:.0} ms (goal < 1000 ms), peak memory {:.1} MiB",
        load.as_secs_f64() * 1e3,
        peak as f64 / 1048576.0
    );
    println!("  list topological: {best:.2} ms (goal < 10 ms)");
    std::fs::remove_dir_all(&base).unwrap();
}
