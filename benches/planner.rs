//! Planner benchmark (run: `cargo bench --bench planner`). Not a timed test: it prints
//! figures and ratios measured in one run.
//!
//! A generated domain of 8 disks x 16 layers with N checkpoints (each checkpoint's
//! bitmap on the layer it was created on and every layer above, as snapshots propagate
//! them) gives a `query-named-block-nodes` reply of several MB. Printed: the reply size,
//! the typed parse time against `serde_json::Value` on the same text, the peak memory of
//! the parse, and the time of each plan per disk, for two sizes of N.

use std::fmt::Write;
use std::hint::black_box;
use std::time::{Duration, Instant};

#[path = "common/alloc.rs"]
mod alloc;
use alloc::{Counting, peak_of};
use virtcheckpoint::{
    BackupDisk, BackupMode, CheckpointDef, CheckpointDisk, Disk, DiskCheckpointKind, Domain, Image,
    align_disks, backup_begin_actions, blockcommit_bitmap_actions, checkpoint_add_actions,
    checkpoint_discard_actions, parse_domain, parse_node_data, size_actions,
};

#[global_allocator]
static ALLOC: Counting = Counting;

const DISKS: usize = 8;
const LAYERS: usize = 16;

fn node(d: usize, layer: usize) -> usize {
    d * LAYERS + layer + 1
}

fn domain() -> Domain {
    Domain {
        name: "bench".into(),
        uuid: String::new(),
        disks: (0..DISKS)
            .map(|d| Disk {
                target: format!("vd{}", (b'a' + d as u8) as char),
                device: "disk".into(),
                bus: "virtio".into(),
                readonly: false,
                chain: (0..LAYERS)
                    .map(|l| {
                        Image::qcow2_indexed(format!("/img/d{d}-l{l}.qcow2"), node(d, l) as u32)
                    })
                    .collect(),
                ..Default::default()
            })
            .collect(),
    }
}

/// Layer (0 = top) on which checkpoint `k` of `n` was created: the oldest on the base.
fn layer_of(k: usize, n: usize) -> usize {
    LAYERS - 1 - (k * LAYERS / n)
}

fn reply(n: usize) -> String {
    let mut s = String::from("{\"return\": [");
    let mut first = true;
    for d in 0..DISKS {
        for l in 0..LAYERS {
            let id = node(d, l);
            for kind in ["format", "storage"] {
                if !first {
                    s.push_str(", ");
                }
                first = false;
                let _ = write!(
                    s,
                    "{{\"iops_rd\": 0, \"detect_zeroes\": \"off\", \"image\": {{\"virtual-size\": 10737418240, \
                     \"filename\": \"/img/d{d}-l{l}.qcow2\", \"cluster-size\": 65536, \"format\": \"qcow2\", \
                     \"actual-size\": 1234567, \"format-specific\": {{\"type\": \"qcow2\", \"data\": \
                     {{\"compat\": \"1.1\", \"compression-type\": \"zlib\", \"lazy-refcounts\": false, \
                     \"refcount-bits\": 16, \"corrupt\": false, \"extended-l2\": false}}}}, \"dirty-flag\": false}}, \
                     \"iops_wr\": 0, \"ro\": {}, \"node-name\": \"libvirt-{id}-{kind}\", \"backing_file_depth\": {}, \
                     \"drv\": \"{}\", \"iops\": 0, \"bps_wr\": 0, \"write_threshold\": 0, \"encrypted\": false, \
                     \"bps\": 0, \"bps_rd\": 0, \"cache\": {{\"no-flush\": false, \"direct\": false, \"writeback\": true}}, \
                     \"file\": \"/img/d{d}-l{l}.qcow2\"",
                    l > 0,
                    LAYERS - 1 - l,
                    if kind == "format" { "qcow2" } else { "file" },
                );
                if kind == "format" {
                    s.push_str(", \"dirty-bitmaps\": [");
                    // Newest first, as QEMU lists them.
                    let mut firstb = true;
                    for k in (0..n).rev().filter(|&k| layer_of(k, n) >= l) {
                        if !firstb {
                            s.push_str(", ");
                        }
                        firstb = false;
                        let _ = write!(
                            s,
                            "{{\"name\": \"chk{k}\", \"recording\": true, \"persistent\": true, \"busy\": false, \
                             \"status\": \"active\", \"granularity\": 65536, \"count\": {}}}",
                            (k % 97) * 65536
                        );
                    }
                    s.push(']');
                }
                s.push('}');
            }
        }
    }
    s.push_str("], \"id\": \"libvirt-42\"}");
    s
}

fn checkpoint(name: &str) -> CheckpointDef {
    CheckpointDef {
        name: name.into(),
        creation_time: 1,
        disks: (0..DISKS)
            .map(|d| CheckpointDisk {
                name: format!("vd{}", (b'a' + d as u8) as char),
                kind: DiskCheckpointKind::Bitmap,
                bitmap: Some(name.into()),
                size: None,
            })
            .collect(),
        ..Default::default()
    }
}

fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let t = Instant::now();
        black_box(f());
        best = best.min(t.elapsed());
    }
    best
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn run(n: usize) -> (f64, f64) {
    let text = reply(n);
    let mb = text.len() as f64 / 1048576.0;
    let typed = best(15, || parse_node_data(&text).unwrap());
    let value = best(15, || {
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    });
    let (nodes, peak) = peak_of(|| parse_node_data(&text).unwrap());
    let bitmaps: usize = nodes.nodes().iter().map(|n| n.bitmaps.len()).sum();

    println!(
        "N = {n} checkpoints: reply {mb:.2} MiB, {} nodes, {bitmaps} bitmaps",
        nodes.len()
    );
    println!(
        "  parse: typed {:.2} ms, serde_json::Value {:.2} ms -> {:.1}x faster (goal >= 5x)",
        ms(typed),
        ms(value),
        value.as_secs_f64() / typed.as_secs_f64()
    );
    println!(
        "  parse peak memory {:.2} MiB = {:.2}x the JSON text (goal < 2x)",
        peak as f64 / 1048576.0,
        peak as f64 / text.len() as f64
    );

    let dom = domain();
    let oldest = checkpoint("chk0");
    let newest_name = format!("chk{n}");
    let fresh = checkpoint(&newest_name);
    let per_disk = |d: Duration| ms(d) / DISKS as f64;
    let t_create = best(20, || {
        checkpoint_add_actions(&dom, &fresh, Some(&nodes)).unwrap()
    });
    let t_delete = best(20, || {
        checkpoint_discard_actions(&dom, &oldest, &nodes, false).unwrap()
    });
    let disks: Vec<BackupDisk> = dom
        .disks
        .iter()
        .map(|d| BackupDisk {
            target: d.target.clone(),
            incremental: Some("chk0".into()),
            store_node: format!("store-{}", d.target),
            export_bitmap: None,
        })
        .collect();
    let t_backup = best(20, || {
        backup_begin_actions(&dom, BackupMode::Push, &disks, &nodes, &|_| true, None).unwrap()
    });
    let t_commit = best(10, || {
        dom.disks
            .iter()
            .map(|d| {
                blockcommit_bitmap_actions(&d.chain, 4, 12, false, &nodes)
                    .unwrap()
                    .len()
            })
            .sum::<usize>()
    });
    let commit_actions: usize = dom
        .disks
        .iter()
        .map(|d| {
            blockcommit_bitmap_actions(&d.chain, 4, 12, false, &nodes)
                .unwrap()
                .len()
        })
        .sum();
    let t_size = best(20, || size_actions(&dom, &oldest, &nodes));
    println!(
        "  plans per disk: create {:.4} ms, delete oldest {:.4} ms, backup from oldest {:.4} ms, \
         commit layers 4..12 {:.4} ms ({commit_actions} actions), size {:.4} ms (goal < 2 ms each)",
        per_disk(t_create),
        per_disk(t_delete),
        per_disk(t_backup),
        per_disk(t_commit),
        per_disk(t_size)
    );
    (ms(typed), per_disk(t_commit))
}

/// Aligning a checkpoint that names each of `n` disks by its path, in reverse order.
fn align_time(n: usize) -> Duration {
    let mut dom = Domain::default();
    for i in 0..n {
        let target = format!("vd{i}");
        dom.add_disk(Disk {
            target: target.clone(),
            ..Disk::default()
        })
        .unwrap();
        dom.disks[i].chain.push(Image {
            source: format!("/img/{i}.qcow2"),
            format: "qcow2".into(),
            ..Image::default()
        });
    }
    let mut def = CheckpointDef::new("c1", 1).unwrap();
    def.disks = (0..n)
        .rev()
        .map(|i| CheckpointDisk {
            name: format!("/img/{i}.qcow2"),
            kind: DiskCheckpointKind::Bitmap,
            bitmap: None,
            size: None,
        })
        .collect();
    best(3, || {
        let mut d = def.clone();
        align_disks(&mut d, &dom).unwrap();
        d
    })
}

/// Parsing a domain document of `n` disks.
fn domain_parse_time(n: usize) -> Duration {
    let mut xml = String::from("<domain><devices>");
    for i in 0..n {
        write!(
            xml,
            "<disk><source file='/i/{i}'/><target dev='vd{i}'/></disk>"
        )
        .unwrap();
    }
    xml.push_str("</devices></domain>");
    best(3, || parse_domain(xml.as_bytes()).unwrap())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of benchmarks
    }
    if let Ok(which) = std::env::var("VCP_BENCH_ONE_PARSE") {
        // One parse (of the N = VCP_BENCH_N, default 500, reply) by `typed` or `value`, or
        // only the reply's generation (`gen`): for `valgrind --tool=callgrind`, whose
        // instruction counts do not depend on the machine's load.
        let n = std::env::var("VCP_BENCH_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(500);
        let text = reply(n);
        if which == "gen" {
            black_box(&text);
        } else if which == "value" {
            black_box(serde_json::from_str::<serde_json::Value>(&text).unwrap());
        } else {
            black_box(parse_node_data(&text).unwrap());
        }
        return;
    }
    if std::env::var_os("VCP_BENCH_PROFILE_PARSE").is_some() {
        // Only the typed parse, in a loop: for `perf record`.
        let text = reply(500);
        for _ in 0..100 {
            black_box(parse_node_data(&text).unwrap());
        }
        return;
    }
    let (p1, c1) = run(250);
    let (p2, c2) = run(500);
    println!(
        "scaling 250 -> 500 checkpoints: parse x{:.2}, commit x{:.2} (linear in checkpoints x layers = x2 bitmaps)",
        p2 / p1,
        c2 / c1
    );
    let (a1, a2) = (align_time(8192), align_time(65536));
    println!(
        "alignment by path, 8192 -> 65536 disks (the C ABI's array limit): {:.2} -> {:.2} ms, x{:.1} \
         (linear = x8, quadratic = x64)",
        ms(a1),
        ms(a2),
        a2.as_secs_f64() / a1.as_secs_f64()
    );
    let (d1, d2) = (domain_parse_time(8192), domain_parse_time(65536));
    println!(
        "domain XML parse, 8192 -> 65536 disks: {:.2} -> {:.2} ms, x{:.1} (linear = x8, quadratic = x64)",
        ms(d1),
        ms(d2),
        d2.as_secs_f64() / d1.as_secs_f64()
    );
}
