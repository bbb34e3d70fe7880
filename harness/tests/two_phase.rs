//! Two-phase backup checkpoints on a real QEMU: a driver process takes a push backup
//! that creates checkpoint c2 and is killed with SIGKILL at every point between the
//! begin and the commit. A new driver then finds c2 pending in the journal and drops it
//! (its bitmap removed, its metadata gone); the next incremental from c1 is exact.
//! Without a kill, c2 is committed and kept.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use vcp_harness::flows::{backup_push, create_checkpoint};
use vcp_harness::img::{self, clusters};
use vcp_harness::vm::{Vm, fresh_disks};
use virtcheckpoint::{
    CheckpointList, MetadataDir, drop_pending, fix_plan, fix_step, pending_abort_step, reconcile,
};

const MIB: u64 = 1 << 20;
const K64: u64 = 64 * 1024;

/// What a driver that restarts does for the backup jobs it finds: cancels the running
/// ones, dismisses them once concluded. (libvirt's job reconnection.)
fn settle_jobs(vm: &mut Vm) {
    let jobs = vm.qmp.execute("query-jobs", None).unwrap();
    for j in jobs.as_array().cloned().unwrap_or_default() {
        let id = j["id"].as_str().unwrap().to_owned();
        if j["status"] != "concluded" {
            vm.qmp
                .execute("job-cancel", Some(json!({"id": id})))
                .unwrap();
            vm.qmp
                .wait_event("JOB_STATUS_CHANGE", Duration::from_secs(30), |d| {
                    d["id"] == id.as_str() && d["status"] == "concluded"
                })
                .unwrap();
        }
        vm.qmp
            .execute("job-dismiss", Some(json!({"id": id})))
            .unwrap();
    }
    vm.qmp.discard_events();
}

fn run(point: u32) {
    vcp_harness::qemu_available().unwrap_or_else(|why| panic!("needs QEMU: {why}"));
    let dir = std::env::temp_dir().join(format!("vcp-2phase-{point}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut vm = Vm::start(&dir, fresh_disks(&dir, &["vda"], 8 * MIB).unwrap()).unwrap();
    let md = MetadataDir::new(&dir, "vm").unwrap();
    let mut list = CheckpointList::new();
    vm.write("vda", 0x11, 0, MIB).unwrap();
    create_checkpoint(&mut vm, &mut list, "c1").unwrap();
    md.save(list.get("c1").unwrap()).unwrap();
    let mut since_c1 = vec![(MIB, K64)];
    vm.write("vda", 0x22, MIB, K64).unwrap();

    // The driver's store, attached as libvirt attaches it.
    let store = dir.join("store.qcow2");
    img::create(&store, 8 * MIB, None).unwrap();
    let index = vm.attach(&store, None).unwrap();
    let top = &vm.disk("vda").chain[0];
    let reached = dir.join("reached");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vcp-crash-driver"))
        .arg(vm.driver_socket())
        .arg(&dir)
        .arg(point.to_string())
        .arg(&reached)
        .arg(format!("vda={}:{}", top.path.display(), top.index))
        .arg(index.to_string())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reached.exists() {
        assert!(
            Instant::now() < deadline,
            "the driver never reached point {point}"
        );
        if let Some(status) = child.try_wait().unwrap() {
            assert!(reached.exists(), "the driver died early: {status}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if point < 5 {
        child.kill().unwrap(); // SIGKILL
    }
    child.wait().unwrap();
    vm.write("vda", 0x33, 3 * MIB, 2 * K64).unwrap();
    since_c1.push((3 * MIB, 2 * K64));

    // A new driver: the journal names what was not committed.
    settle_jobs(&mut vm);
    let _ = vm.detach(index);
    let (mut list, problems) = md.load().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    let pending = md.pending().unwrap();
    if point < 5 {
        assert_eq!(pending, ["c2"], "point {point}");
    } else {
        assert!(pending.is_empty());
    }
    for name in &pending {
        let step = pending_abort_step(&vm.domain(), &vm.nodes().unwrap(), name);
        vm.send_phase(&step.now).unwrap();
        drop_pending(&mut list, &md, name).unwrap();
    }
    // What else the dead driver left (the backup's temporary bitmap) goes with the
    // never-strand fix, which touches no valid chain.
    let dom = vm.domain();
    let nodes = vm.nodes().unwrap();
    let fix = fix_plan(&reconcile(&dom, &list.topological(), &nodes), &dom);
    assert!(fix.removals.iter().all(|r| r.name != "c1"));
    vm.send_phase(&fix_step(&dom, &fix, &nodes).now).unwrap();
    let nodes = vm.nodes().unwrap();
    assert_eq!(
        nodes.bitmap("libvirt-1-format", "c2").is_some(),
        point == 5,
        "point {point}: c2's bitmap kept only once committed"
    );
    assert_eq!(list.contains("c2"), point == 5, "point {point}");
    assert!(md.pending().unwrap().is_empty());
    let (reloaded, _) = md.load().unwrap();
    assert_eq!(reloaded.contains("c2"), point == 5);

    // The next incremental from the previous checkpoint is exact.
    let b = backup_push(&mut vm, &mut list, Some("c1"), None, &dir, "next").unwrap();
    vm.quit().unwrap();
    assert_eq!(
        img::allocated(&b.images[0].1).unwrap(),
        clusters(&since_c1),
        "point {point}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn killed_after_the_journal() {
    run(1);
}

#[test]
fn killed_after_the_transaction() {
    run(2);
}

#[test]
fn killed_after_the_metadata() {
    run(3);
}

#[test]
fn killed_after_the_job_end() {
    run(4);
}

#[test]
fn committed_when_not_killed() {
    run(5);
}
