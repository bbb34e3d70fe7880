//! Never strand a backup chain: each broken state users of libvirt meet is produced for
//! real on QEMU images, then reconciled, resolved per disk, fixed, and followed by an
//! exact backup. The `vcp` command line is run on the same states.
//!
//! These tests need QEMU (scripts/install-qemu.sh); without it they fail, never skip.

use std::path::{Path, PathBuf};

use vcp_cli::tools;
use vcp_harness::flows::{self, backup_push, create_checkpoint};
use vcp_harness::img::{self, clusters};
use vcp_harness::vm::{Vm, fresh_disks};
use virtcheckpoint::{
    ChainState, CheckpointList, DeleteOptions, ErrorCode, FullReason, MetadataDir, Resolution,
    apply_fix, fix_commands, fix_plan, reconcile,
};

mod common;
use common::vcp;

const MIB: u64 = 1 << 20;
const K64: u64 = 64 * 1024;

fn scene(name: &str) -> PathBuf {
    vcp_harness::qemu_available().unwrap_or_else(|why| panic!("{name} needs QEMU: {why}"));
    let dir = std::env::temp_dir().join(format!("vcp-strand-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn vm(dir: &Path, targets: &[&str]) -> Vm {
    Vm::start(dir, fresh_disks(dir, targets, 8 * MIB).unwrap()).unwrap()
}

/// Libvirt-style live domain XML for the VM's disks (with `index` attributes).
fn domain_xml(vm: &Vm) -> String {
    let mut s = String::from("<domain type='kvm'>\n  <name>vm</name>\n  <devices>\n");
    for d in &vm.disks {
        s.push_str(
            "    <disk type='file' device='disk'>\n      <driver name='qemu' type='qcow2'/>\n",
        );
        let mut close = String::new();
        for (i, image) in d.chain.iter().enumerate() {
            if i == 0 {
                s.push_str(&format!(
                    "      <source file='{}' index='{}'/>\n",
                    image.path.display(),
                    image.index
                ));
            } else {
                s.push_str(&format!(
                    "      <backingStore type='file' index='{}'><format type='qcow2'/><source file='{}'/>\n",
                    image.index,
                    image.path.display()
                ));
                close.push_str("</backingStore>");
            }
        }
        s.push_str(&format!("      <backingStore/>{close}\n"));
        s.push_str(&format!(
            "      <target dev='{}' bus='virtio'/>\n    </disk>\n",
            d.target
        ));
    }
    s.push_str("  </devices>\n</domain>\n");
    s
}

fn state(list: &CheckpointList, vm: &mut Vm, cp: &str, disk: &str) -> ChainState {
    let nodes = vm.nodes().unwrap();
    let rep = reconcile(&vm.domain(), &list.topological(), &nodes);
    rep.checkpoints
        .iter()
        .find(|c| c.name == cp)
        .and_then(|c| c.disks.iter().find(|d| d.disk == disk))
        .map(|d| d.state)
        .unwrap_or_else(|| panic!("{cp}/{disk} not reported"))
}

#[test]
fn gap_and_missing_bitmaps_resolve_per_disk_and_fix_online() {
    let dir = scene("gap");
    let mut vm = vm(&dir, &["vda", "vdb"]);
    let mut list = CheckpointList::new();
    let meta = MetadataDir::new(&dir, "vm").unwrap();
    vm.write("vda", 0x11, 0, MIB).unwrap();
    vm.write("vdb", 0x12, 0, MIB).unwrap();
    create_checkpoint(&mut vm, &mut list, "c1").unwrap();
    flows::snapshot(&mut vm, "vda", &dir.join("vda-s1.qcow2")).unwrap();
    flows::snapshot(&mut vm, "vda", &dir.join("vda-s2.qcow2")).unwrap();
    create_checkpoint(&mut vm, &mut list, "c2").unwrap();
    for d in list.defs() {
        meta.save(d).unwrap();
    }
    let wa = [(2 * MIB, K64)];
    let wb = [(3 * MIB, 2 * K64)];
    vm.write("vda", 0x21, wa[0].0, wa[0].1).unwrap();
    vm.write("vdb", 0x22, wb[0].0, wb[0].1).unwrap();

    // Behind the library's back: c1 leaves vda's middle layer, c2 leaves vdb.
    flows::remove_behind_back(&mut vm, "vda", 1, "c1").unwrap();
    flows::remove_behind_back(&mut vm, "vdb", 0, "c2").unwrap();
    assert_eq!(
        state(&list, &mut vm, "c1", "vda"),
        ChainState::Gap { missing: 1 }
    );
    assert_eq!(state(&list, &mut vm, "c1", "vdb"), ChainState::Valid);
    assert_eq!(state(&list, &mut vm, "c2", "vdb"), ChainState::MissingTop);

    // The command line shows it at a glance.
    std::fs::write(dir.join("domain.xml"), domain_xml(&vm)).unwrap();
    std::fs::write(dir.join("nodes.json"), vm.node_data_raw().unwrap()).unwrap();
    let d = dir.to_str().unwrap();
    let dom_xml = format!("{d}/domain.xml");
    let nodes_json = format!("{d}/nodes.json");
    let (code, table, _) = vcp(&[
        "check",
        "--domain",
        &dom_xml,
        "--metadata",
        d,
        "--name",
        "vm",
        "--nodes",
        &nodes_json,
    ]);
    eprintln!("vcp check (gap and missing):\n{table}");
    assert_eq!(code, 3, "drift found");
    assert!(table.contains("+  X  +  gap"), "{table}");
    assert!(table.contains("X  missing"), "{table}");
    assert!(
        table.contains("summary: 2 checkpoints, 2 disks: 2 ok, 1 gap, 1 missing; 0 orphan bitmaps"),
        "{table}"
    );
    let (code, json, _) = vcp(&[
        "check",
        "--domain",
        &dom_xml,
        "--metadata",
        d,
        "--name",
        "vm",
        "--nodes",
        &nodes_json,
        "--json",
    ]);
    assert_eq!(code, 3);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["clean"], false);
    assert_eq!(v["checkpoints"][0]["disks"][0]["state"], "gap");

    // libvirt would refuse the whole backup; the resolver backs each disk up as it can.
    let (decided, b1) = flows::backup_resolved(&mut vm, &mut list, "c1", &dir, "from-c1").unwrap();
    assert_eq!(
        decided,
        [
            (
                "vda".to_owned(),
                Resolution::Full(FullReason::Chain(ChainState::Gap { missing: 1 }))
            ),
            ("vdb".to_owned(), Resolution::Incremental),
        ]
    );
    let (decided, b2) = flows::backup_resolved(&mut vm, &mut list, "c2", &dir, "from-c2").unwrap();
    assert_eq!(decided[0].1, Resolution::Incremental);
    assert_eq!(
        decided[1].1,
        Resolution::Full(FullReason::Chain(ChainState::MissingTop))
    );
    let (code, out, _) = vcp(&[
        "resolve",
        "--domain",
        &dom_xml,
        "--metadata",
        d,
        "--name",
        "vm",
        "--nodes",
        &nodes_json,
        "--from",
        "c1",
        "--disk",
        "vda=store-a",
        "--disk",
        "vdb=store-b",
    ]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(
            r#"[{"disk":"vda","mode":"full","reason":"gap"},{"disk":"vdb","mode":"incremental"}]"#
        ),
        "{out}"
    );

    // The fix removes the broken copies only, and the metadata stops claiming them.
    let plan = flows::fix_online(&mut vm, &mut list, Some(&meta)).unwrap();
    assert_eq!(
        plan.uncover,
        [
            ("c1".to_owned(), "vda".to_owned()),
            ("c2".to_owned(), "vdb".to_owned())
        ]
    );
    let nodes = vm.nodes().unwrap();
    let rep = reconcile(&vm.domain(), &list.topological(), &nodes);
    assert!(rep.is_clean(), "{rep:?}");
    assert!(
        nodes.bitmap("libvirt-1-format", "c1").is_none(),
        "broken c1 copies gone from vda"
    );
    assert!(
        nodes.bitmap("libvirt-2-format", "c1").is_some(),
        "valid c1 on vdb kept"
    );
    let (reloaded, _) = meta.load().unwrap();
    assert_eq!(
        reconcile(&vm.domain(), &reloaded.topological(), &nodes),
        rep,
        "files follow the fix"
    );

    // And the next backups are exact.
    let w2a = [(5 * MIB, K64)];
    vm.write("vda", 0x31, w2a[0].0, w2a[0].1).unwrap();
    let (decided, b3) =
        flows::backup_resolved(&mut vm, &mut list, "c2", &dir, "after-fix").unwrap();
    assert_eq!(decided[1].1, Resolution::Full(FullReason::NotCovered));
    vm.quit().unwrap();
    let find =
        |b: &flows::PushBackup, t: &str| b.images.iter().find(|(x, _)| x == t).unwrap().1.clone();
    assert_eq!(
        img::allocated(&find(&b1, "vda")).unwrap(),
        clusters(&[(0, MIB), wa[0]]),
        "vda was backed up in full"
    );
    assert_eq!(img::allocated(&find(&b1, "vdb")).unwrap(), clusters(&wb));
    assert_eq!(img::allocated(&find(&b2, "vda")).unwrap(), clusters(&wa));
    assert_eq!(
        img::allocated(&find(&b3, "vda")).unwrap(),
        clusters(&[wa[0], w2a[0]])
    );
    assert!(
        img::same_content(&find(&b3, "vdb"), &dir.join("vdb-base.qcow2")).unwrap(),
        "vdb full"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn orphans_and_an_outside_snapshot_fixed_offline() {
    let dir = scene("orphan");
    let mut vm = vm(&dir, &["vda"]);
    let mut list = CheckpointList::new();
    let meta = MetadataDir::new(&dir, "vm").unwrap();
    vm.write("vda", 0x11, 0, MIB).unwrap();
    create_checkpoint(&mut vm, &mut list, "c1").unwrap();
    create_checkpoint(&mut vm, &mut list, "c2").unwrap();
    // Metadata dropped while the bitmap remains.
    let p = list
        .plan_delete("c2", DeleteOptions::METADATA_ONLY)
        .unwrap();
    list.apply_delete(&p).unwrap();
    for d in list.defs() {
        meta.save(d).unwrap();
    }
    // A snapshot taken outside the library: c1 is not carried into the overlay.
    flows::snapshot_unmanaged(&mut vm, "vda", &dir.join("vda-s1.qcow2")).unwrap();
    vm.write("vda", 0x22, 2 * MIB, K64).unwrap();

    // Offline tools refuse images QEMU holds.
    let dom = vm.domain();
    let e = tools::inspect(&dom, false).unwrap_err();
    assert_eq!(e.code(), ErrorCode::OperationInvalid);
    assert!(
        e.message().contains("in use by another process"),
        "{}",
        e.message()
    );
    let shared = tools::inspect(&dom, true).unwrap();
    assert!(
        shared
            .bitmap("libvirt-1-format", "c1")
            .is_some_and(|b| !b.inconsistent)
    );
    std::fs::write(dir.join("domain.xml"), domain_xml(&vm)).unwrap();
    let disks = vm.disks.clone();
    vm.quit().unwrap();

    let nodes = tools::inspect(&dom, false).unwrap();
    let rep = reconcile(&dom, &list.topological(), &nodes);
    assert_eq!(rep.checkpoints[0].disks[0].state, ChainState::MissingTop);
    assert_eq!(rep.orphans.len(), 1);
    assert_eq!(
        (rep.orphans[0].name.as_str(), rep.orphans[0].layer),
        ("c2", 1)
    );

    let d = dir.to_str().unwrap();
    let dom_xml = format!("{d}/domain.xml");
    let (code, table, _) = vcp(&[
        "check",
        "--domain",
        &dom_xml,
        "--metadata",
        d,
        "--name",
        "vm",
        "--offline",
    ]);
    eprintln!("vcp check --offline (outside snapshot, orphan):\n{table}");
    assert_eq!(code, 3);
    assert!(table.contains("X  +  missing"), "{table}");
    assert!(table.contains("? vda L1"), "{table}");
    let (_, tree, _) = vcp(&["tree", "--metadata", d, "--name", "vm"]);
    assert_eq!(tree, "c1 *\n");

    let plan = fix_plan(&rep, &dom);
    let cmds = fix_commands(&plan);
    let base = dir.join("vda-base.qcow2").display().to_string();
    assert_eq!(
        cmds,
        [
            vec!["qemu-img", "bitmap", "--remove", &base, "c1"],
            vec!["qemu-img", "bitmap", "--remove", &base, "c2"],
        ]
    );
    let (code, out, _) = vcp(&[
        "fix",
        "--domain",
        &dom_xml,
        "--metadata",
        d,
        "--name",
        "vm",
        "--offline",
        "--apply",
    ]);
    eprintln!("vcp fix --offline --apply:\n{out}");
    assert_eq!(code, 0);
    assert!(
        img::bitmaps(&dir.join("vda-base.qcow2"))
            .unwrap()
            .is_empty()
    );
    assert!(
        out.contains("# metadata: checkpoint c1 is broken on every disk and is dropped"),
        "{out}"
    );
    assert!(
        out.contains("applied: 2 bitmap removal(s), 0 checkpoint(s) rewritten, 1 dropped"),
        "{out}"
    );
    // The metadata files followed the fix: c1's file is gone, the check is clean.
    assert!(!dir.join("vm/c1.xml").exists());
    let (reloaded, _) = meta.load().unwrap();
    assert!(reloaded.is_empty());
    let nodes = tools::inspect(&dom, false).unwrap();
    assert!(reconcile(&dom, &reloaded.topological(), &nodes).is_clean());
    let (code, table, _) = vcp(&[
        "check",
        "--domain",
        &dom_xml,
        "--metadata",
        d,
        "--name",
        "vm",
        "--offline",
    ]);
    assert_eq!(code, 0, "{table}");
    let (code, out, _) = vcp(&[
        "fix",
        "--domain",
        &dom_xml,
        "--metadata",
        d,
        "--name",
        "vm",
        "--offline",
    ]);
    assert_eq!((code, out.as_str()), (0, "nothing to fix\n"));
    // The in-memory list of this test follows the same plan.
    let (_, dropped) = apply_fix(&mut list, &plan, None).unwrap();
    assert_eq!(dropped, 1);
    assert!(!list.contains("c1"));

    // A new chain starts and its backups are exact.
    let mut vm = Vm::start(&dir, disks).unwrap();
    create_checkpoint(&mut vm, &mut list, "c3").unwrap();
    vm.write("vda", 0x33, 4 * MIB, 2 * K64).unwrap();
    let b = backup_push(&mut vm, &mut list, Some("c3"), None, &dir, "c3").unwrap();
    vm.quit().unwrap();
    assert_eq!(
        img::allocated(&b.images[0].1).unwrap(),
        clusters(&[(4 * MIB, 2 * K64)])
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inconsistent_bitmaps_after_a_crash_fixed_and_restarted() {
    let dir = scene("crash");
    let mut vm = vm(&dir, &["vda", "vdb"]);
    let mut list = CheckpointList::new();
    create_checkpoint(&mut vm, &mut list, "c1").unwrap();
    vm.write("vda", 0x11, 0, K64).unwrap();
    let disks = vm.disks.clone();
    vm.quit().unwrap();
    let mut vm = Vm::start(&dir, disks.clone()).unwrap();
    vm.write("vdb", 0x12, 0, K64).unwrap();
    vm.kill();
    let mut vm = Vm::start(&dir, disks).unwrap();
    assert!(matches!(
        state(&list, &mut vm, "c1", "vda"),
        ChainState::Inconsistent { layer: 0 }
    ));
    assert!(matches!(
        state(&list, &mut vm, "c1", "vdb"),
        ChainState::Inconsistent { layer: 0 }
    ));
    let (decided, _) = flows::backup_resolved(&mut vm, &mut list, "c1", &dir, "full").unwrap();
    assert!(decided.iter().all(|(_, r)| matches!(
        r,
        Resolution::Full(FullReason::Chain(ChainState::Inconsistent { .. }))
    )));
    let plan = flows::fix_online(&mut vm, &mut list, None).unwrap();
    assert_eq!(plan.drop, ["c1"]);
    assert!(list.is_empty());
    assert!(reconcile(&vm.domain(), &list.topological(), &vm.nodes().unwrap()).is_clean());
    create_checkpoint(&mut vm, &mut list, "c2").unwrap();
    vm.write("vdb", 0x22, 6 * MIB, K64).unwrap();
    let b = backup_push(&mut vm, &mut list, Some("c2"), None, &dir, "c2").unwrap();
    vm.quit().unwrap();
    assert_eq!(
        img::allocated(&b.images[1].1).unwrap(),
        clusters(&[(6 * MIB, K64)])
    );
    assert_eq!(img::allocated(&b.images[0].1).unwrap(), vec![]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A CloudStack-style restart: the domain is rebuilt and the checkpoint metadata is
/// gone, but the bitmaps survive in the images. `vcp fix` offers adoption, `vcp adopt`
/// rebuilds c1 -> c2 -> c3 from the bitmaps alone (across an external snapshot), the
/// rebuilt definitions validate, and the next incremental from c2 is exact.
#[test]
fn lost_metadata_is_adopted_back_and_the_next_incremental_is_exact() {
    let dir = scene("adopt");
    let mut vm = vm(&dir, &["vda"]);
    let mut list = CheckpointList::new();
    vm.write("vda", 0x11, 0, MIB).unwrap();
    create_checkpoint(&mut vm, &mut list, "c1").unwrap();
    vm.write("vda", 0x22, MIB, K64).unwrap();
    create_checkpoint(&mut vm, &mut list, "c2").unwrap();
    vm.write("vda", 0x33, 2 * MIB, K64).unwrap();
    flows::snapshot(&mut vm, "vda", &dir.join("vda-s1.qcow2")).unwrap();
    vm.write("vda", 0x44, 3 * MIB, 2 * K64).unwrap();
    create_checkpoint(&mut vm, &mut list, "c3").unwrap();
    vm.write("vda", 0x55, 5 * MIB, K64).unwrap();
    let since_c2 = [(2 * MIB, K64), (3 * MIB, 2 * K64), (5 * MIB, K64)];

    // The domain is rebuilt: no metadata (an empty folder), the bitmaps still there.
    std::fs::write(dir.join("domain.xml"), domain_xml(&vm)).unwrap();
    std::fs::write(dir.join("nodes.json"), vm.node_data_raw().unwrap()).unwrap();
    let d = dir.to_str().unwrap();
    let (dom_xml, nodes_json) = (format!("{d}/domain.xml"), format!("{d}/nodes.json"));
    let base = [
        "--domain",
        &dom_xml,
        "--metadata",
        d,
        "--name",
        "vm",
        "--nodes",
        &nodes_json,
    ];
    let (code, out, err) = vcp(&[&["fix"][..], &base].concat());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "3 orphan bitmap(s) can be adopted as checkpoints instead of removed: c1, c2, c3"
        ),
        "{out}"
    );
    let (code, out, err) = vcp(&[&["adopt"][..], &base, &["--apply"]].concat());
    eprintln!("vcp adopt --apply:\n{out}");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.ends_with("# adopted, oldest first: c1 -> c2 -> c3\n"),
        "{out}"
    );
    let (code, out, _) = vcp(&[&["check"][..], &base].concat());
    assert_eq!(code, 0, "clean after adoption:\n{out}");
    let (_, out, _) = vcp(&["tree", "--metadata", d, "--name", "vm"]);
    eprintln!("vcp tree:\n{out}");

    // The driver reloads the adopted metadata: redefine validates, backups are exact.
    let (mut adopted, problems) = MetadataDir::new(&dir, "vm").unwrap().load().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(adopted.parent("c3").unwrap(), Some("c2"));
    assert_eq!(adopted.parent("c2").unwrap(), Some("c1"));
    assert_eq!(adopted.current(), Some("c3"));
    let nodes = vm.nodes().unwrap();
    for name in ["c1", "c2", "c3"] {
        let def = adopted.get(name).unwrap().clone();
        virtcheckpoint::redefine_validate(&vm.domain(), &def, &nodes).unwrap();
    }
    let b = backup_push(&mut vm, &mut adopted, Some("c2"), None, &dir, "after-adopt").unwrap();
    vm.quit().unwrap();
    assert_eq!(img::allocated(&b.images[0].1).unwrap(), clusters(&since_c2));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Chain reset after a revert: online, one transaction drops every bitmap on every
/// layer (the backing one reopened around it); the checkpoints are retired; a new
/// chain starts and its incremental is exact. Offline, `vcp reset --apply` does the
/// same with qemu-img, checked with qemu-img.
#[test]
fn chain_reset_drops_every_bitmap_and_a_new_chain_is_exact() {
    let dir = scene("reset");
    let mut vm = vm(&dir, &["vda"]);
    let mut list = CheckpointList::new();
    let md = MetadataDir::new(&dir, "vm").unwrap();
    create_checkpoint(&mut vm, &mut list, "c1").unwrap();
    md.save(list.get("c1").unwrap()).unwrap();
    vm.write("vda", 0x11, 0, K64).unwrap();
    flows::snapshot(&mut vm, "vda", &dir.join("vda-s1.qcow2")).unwrap();
    create_checkpoint(&mut vm, &mut list, "c2").unwrap();
    md.save(list.get("c2").unwrap()).unwrap();
    vm.write("vda", 0x22, MIB, K64).unwrap();

    let step = virtcheckpoint::reset_step(&vm.domain(), &vm.nodes().unwrap());
    assert_eq!(step.now.len(), 3, "reopen, one transaction, reopen");
    vm.send_phase(&step.now).unwrap();
    let nodes = vm.nodes().unwrap();
    assert!(
        nodes.nodes().iter().all(|n| n.bitmaps.is_empty()),
        "no bitmap left"
    );
    assert_eq!(
        virtcheckpoint::retire_all(&mut list, Some(&md)).unwrap(),
        ["c1", "c2"]
    );
    assert!(md.load().unwrap().0.is_empty(), "metadata files removed");

    create_checkpoint(&mut vm, &mut list, "n1").unwrap();
    vm.write("vda", 0x33, 2 * MIB, 2 * K64).unwrap();
    let b = backup_push(&mut vm, &mut list, Some("n1"), None, &dir, "after-reset").unwrap();
    let disks = vm.disks.clone();
    vm.quit().unwrap();
    assert_eq!(
        img::allocated(&b.images[0].1).unwrap(),
        clusters(&[(2 * MIB, 2 * K64)])
    );

    // Offline, from the command line: every layer's bitmaps gone, checked by qemu-img.
    let d = dir.to_str().unwrap();
    let fake = Vm::start(&dir, disks.clone()).unwrap();
    std::fs::write(dir.join("domain.xml"), domain_xml(&fake)).unwrap();
    fake.quit().unwrap();
    md.save(list.get("n1").unwrap()).unwrap();
    let dom_xml = format!("{d}/domain.xml");
    let (code, out, err) = vcp(&[
        "reset",
        "--domain",
        &dom_xml,
        "--metadata",
        d,
        "--name",
        "vm",
        "--offline",
        "--apply",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("qemu-img bitmap --remove"), "{out}");
    assert!(
        out.ends_with("# metadata: checkpoints retired: n1\n"),
        "{out}"
    );
    for image in &disks[0].chain {
        assert!(
            img::bitmaps(&image.path).unwrap().is_empty(),
            "{}",
            image.path.display()
        );
    }
    assert!(md.load().unwrap().0.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
