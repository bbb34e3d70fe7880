//! A driver process for the two-phase crash test: over QEMU's second QMP monitor it
//! takes a push backup from `c1` that creates checkpoint `c2`, the two-phase way
//! (journal, transaction, metadata, job end, commit), and stops at the point the test
//! names to be killed there with SIGKILL.
//!
//! Usage: vcp-crash-driver SOCKET META_BASE POINT REACHED_FILE TARGET=PATH:INDEX STORE_INDEX
//! POINT: 1 after the journal, 2 after the transaction, 3 after the metadata, 4 after
//! the job's end, 5 never (commits and exits).

use std::path::{Path, PathBuf};
use std::time::Duration;

use vcp_harness::qmp::Qmp;
use vcp_harness::vm::{Image, VmDisk, domain_of};
use virtcheckpoint::{
    BackupDisk, BackupMode, MetadataDir, ParseOptions, backup_step, begin_pending,
    checkpoint_def_from_xml, commit_pending, now, parse_node_data,
};

fn reached(point: u32, at: u32, file: &Path) {
    if point == at {
        std::fs::write(file, at.to_string()).expect("reached file");
        std::thread::sleep(Duration::from_secs(600)); // until killed
    }
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [socket, base, point, file, disk, store] = &a[..] else {
        eprintln!(
            "usage: vcp-crash-driver SOCKET META_BASE POINT REACHED TARGET=PATH:INDEX STORE_INDEX"
        );
        std::process::exit(2);
    };
    let at: u32 = point.parse().expect("point");
    let file = PathBuf::from(file);
    let (target, image) = disk.split_once('=').expect("TARGET=PATH:INDEX");
    let (path, index) = image.rsplit_once(':').expect("PATH:INDEX");
    let disks = [VmDisk {
        target: target.into(),
        chain: vec![Image {
            path: path.into(),
            index: index.parse().expect("index"),
        }],
        driver: Default::default(),
    }];
    let dom = domain_of(&disks);
    let mut qmp = Qmp::connect(Path::new(socket), Duration::from_secs(10)).expect("qmp");
    let raw = qmp
        .execute_raw("query-named-block-nodes", Some(r#"{"flat":true}"#))
        .expect("nodes");
    let nodes = parse_node_data(&raw).expect("node data");
    let md = MetadataDir::new(Path::new(base), "vm").expect("folder");
    let (mut list, _) = md.load().expect("metadata");
    let def = checkpoint_def_from_xml(
        b"<domaincheckpoint><name>c2</name></domaincheckpoint>",
        Some(&dom),
        ParseOptions::default(),
        now(),
    )
    .expect("definition");

    begin_pending(&md, "c2").expect("journal");
    reached(1, at, &file);
    let disk = BackupDisk {
        target: target.into(),
        incremental: Some("c1".into()),
        store_node: format!("libvirt-{store}-format"),
        export_bitmap: None,
    };
    let storage = format!("libvirt-{store}-storage");
    let step = backup_step(
        &dom,
        BackupMode::Push,
        &[disk],
        &nodes,
        &|c| list.contains(c),
        Some(&def),
        &[Some(&storage)],
    )
    .expect("backup step");
    for c in &step.now {
        qmp.execute_text(&c.to_compact()).expect("transaction");
    }
    reached(2, at, &file);
    list.add_created(def.clone()).expect("tree");
    md.save(&def).expect("save");
    reached(3, at, &file);
    for job in &step.jobs {
        qmp.wait_event("JOB_STATUS_CHANGE", Duration::from_secs(60), |d| {
            d["id"] == job.as_str() && d["status"] == "concluded"
        })
        .expect("job end");
    }
    for c in &step.on_end {
        qmp.execute_text(&c.to_compact()).expect("job end commands");
    }
    reached(4, at, &file);
    commit_pending(&md, "c2").expect("commit");
    std::fs::write(&file, "5").expect("reached file");
}
