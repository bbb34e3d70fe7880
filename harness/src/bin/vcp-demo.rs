//! The demo: a real QEMU, checkpoints and incremental backups planned by
//! virtcheckpoint, verified with qemu-img. Without QEMU it says so and prints the plans
//! for the recorded libvirt run instead.

use std::path::{Path, PathBuf};

use vcp_harness::flows::{self, PushBackup, backup_push, create_checkpoint};
use vcp_harness::img;
use vcp_harness::vm::{Image, Vm, VmDisk};
use virtcheckpoint::{CheckpointList, DeleteOptions, Step};

const MIB: u64 = 1 << 20;
const K64: u64 = 64 * 1024;

type R<T> = Result<T, Box<dyn std::error::Error>>;

/// Prints a whole driver step: each phase with its commands.
fn show(label: &str, step: &Step) {
    println!("  -> {label}:");
    for (phase, cmds) in [
        ("now", &step.now),
        ("when ready", &step.on_ready),
        ("at job end", &step.on_end),
        ("on abort", &step.on_abort),
    ] {
        for c in cmds.iter() {
            println!("     [{phase}] {}", c.to_compact());
        }
    }
}

fn counts(vm: &mut Vm) -> R<()> {
    let nodes = vm.nodes()?;
    for d in vm.disks.clone() {
        for image in &d.chain {
            if let Some(n) = nodes.get(&image.format_node()) {
                let list: Vec<String> = n
                    .bitmaps
                    .iter()
                    .map(|b| format!("{}={} KiB", b.name, b.count / 1024))
                    .collect();
                println!("     dirty on {}: {}", image.format_node(), list.join(", "));
            }
        }
    }
    Ok(())
}

fn verify(b: &PushBackup, expect: &[(u64, u64)], label: &str) -> R<bool> {
    let got = img::allocated(&b.images[0].1)?;
    let ok = got == expect;
    let fmt = |v: &[(u64, u64)]| {
        v.iter()
            .map(|(s, l)| format!("{}K+{}K", s / 1024, l / 1024))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "     verify {label}: backup holds [{}], written [{}] -> {}",
        fmt(&got),
        fmt(expect),
        if ok { "EXACT" } else { "MISMATCH" }
    );
    Ok(ok)
}

fn write(vm: &mut Vm, pattern: u8, offset: u64, len: u64) -> R<()> {
    vm.write("vda", pattern, offset, len)?;
    println!(
        "  guest writes {} KiB of 0x{pattern:02x} at {} KiB",
        len / 1024,
        offset / 1024
    );
    Ok(())
}

fn run(dir: &Path) -> R<bool> {
    let base = dir.join("vda.qcow2");
    img::create(&base, 8 * MIB, None)?;
    let mut vm = Vm::start(
        dir,
        vec![VmDisk {
            target: "vda".into(),
            chain: vec![Image {
                path: base.clone(),
                index: 1,
            }],
            driver: Default::default(),
        }],
    )?;
    let mut list = CheckpointList::new();
    let mut ok = true;
    let v = vm.qmp.execute("query-version", None)?;
    println!(
        "QEMU {}.{}.{} (pid {}) with disk vda = libvirt-1-format ({})",
        v["qemu"]["major"],
        v["qemu"]["minor"],
        v["qemu"]["micro"],
        vm.pid(),
        base.display()
    );

    println!(
        "\n== Scenario a: checkpoints c1, c2, c3, one bitmap each, and exact incremental backups"
    );
    write(&mut vm, 0x11, 0, MIB)?;
    let full = backup_push(&mut vm, &mut list, None, Some("c1"), dir, "full")?;
    show(
        "full backup creating checkpoint c1 (one transaction)",
        &full.step,
    );
    write(&mut vm, 0x22, MIB, K64)?;
    let inc1 = backup_push(&mut vm, &mut list, Some("c1"), Some("c2"), dir, "inc1")?;
    show("incremental from c1, creating c2", &inc1.step);
    ok &= verify(&inc1, &[(MIB, K64)], "inc1")?;
    write(&mut vm, 0x33, 2 * MIB, 2 * K64)?;
    let created = create_checkpoint(&mut vm, &mut list, "c3")?;
    show("checkpoint c3 (no other bitmap touched)", &created);
    write(&mut vm, 0x44, 3 * MIB, K64)?;
    counts(&mut vm)?;
    let inc2 = backup_push(&mut vm, &mut list, Some("c2"), None, dir, "inc2")?;
    show("incremental from c2", &inc2.step);
    ok &= verify(&inc2, &[(2 * MIB, 2 * K64), (3 * MIB, K64)], "inc2")?;

    println!("\n== Scenario b: external snapshot, bitmaps carried into the overlay");
    let overlay = dir.join("vda-s1.qcow2");
    let snap = flows::snapshot(&mut vm, "vda", &overlay)?;
    show("snapshot s1 with bitmap propagation", &snap);
    write(&mut vm, 0x55, 5 * MIB, K64)?;
    create_checkpoint(&mut vm, &mut list, "c4")?;
    write(&mut vm, 0x66, 6 * MIB, K64)?;
    counts(&mut vm)?;
    let old = backup_push(&mut vm, &mut list, Some("c2"), None, dir, "from-c2")?;
    show(
        "incremental from c2 (older than the snapshot: merged from both layers)",
        &old.step,
    );
    ok &= verify(
        &old,
        &[
            (2 * MIB, 2 * K64),
            (3 * MIB, K64),
            (5 * MIB, K64),
            (6 * MIB, K64),
        ],
        "from-c2",
    )?;
    let new = backup_push(&mut vm, &mut list, Some("c4"), None, dir, "from-c4")?;
    show("incremental from c4 (newer than the snapshot)", &new.step);
    ok &= verify(&new, &[(6 * MIB, K64)], "from-c4")?;
    flows::backup_pull(&mut vm, &list, "vda", "c4", dir, |_, step| {
        show(
            "pull backup from c4 (NBD export with the bitmap; ended with abort, then end)",
            step,
        );
        Ok(())
    })?;

    println!("\n== Scenario c: delete, size, block pull, copy and commit, one step each");
    for step in flows::delete_checkpoint(&mut vm, &mut list, "c3", DeleteOptions::default())? {
        show(
            "delete c3 (on both layers: the backing one reopened around it)",
            &step,
        );
    }
    let c4 = list.get("c4")?.clone();
    let valid =
        virtcheckpoint::redefine_validate_step(&vm.domain(), &c4, Some(&vm.nodes()?), true)?;
    show(
        "redefine-validate of c4 (no command: the check passed)",
        &valid,
    );
    let (sizes, size) = flows::checkpoint_size(&mut vm, &list, "c4")?;
    show("size of c4 (merge now, read, clean up)", &size);
    for (disk, bytes) in sizes {
        println!("     c4 on {disk}: {} KiB dirty", bytes.unwrap_or(0) / 1024);
    }
    let pull = flows::block_pull(&mut vm, "vda", None)?;
    show("block pull of the base into the overlay", &pull);
    let copy = flows::block_copy(&mut vm, "vda", &dir.join("vda-copy.qcow2"), false)?;
    show("deep block copy, pivot to the copy", &copy);
    let s2 = dir.join("vda-s2.qcow2");
    flows::snapshot(&mut vm, "vda", &s2)?;
    write(&mut vm, 0x77, 7 * MIB, K64)?;
    let commit = flows::block_commit(&mut vm, "vda", 0, 1)?;
    show(
        "active block commit of s2 into the copy, with pivot",
        &commit,
    );
    write(&mut vm, 0x88, 4 * MIB, K64)?;
    let last = backup_push(&mut vm, &mut list, Some("c4"), None, dir, "last")?;
    show(
        "incremental from c4 after pull, copy and commit",
        &last.step,
    );
    ok &= verify(
        &last,
        &[(4 * MIB, K64), (6 * MIB, K64), (7 * MIB, K64)],
        "last",
    )?;
    let live = vm.disk("vda").chain[0].path.clone();
    vm.quit()?;

    // Restore full <- inc1 <- from-c2 <- last and compare with the live disk.
    img::rebase_unsafe(&inc1.images[0].1, &full.images[0].1)?;
    img::rebase_unsafe(&old.images[0].1, &inc1.images[0].1)?;
    img::rebase_unsafe(&last.images[0].1, &old.images[0].1)?;
    let same = img::same_content(&last.images[0].1, &live)?;
    println!(
        "\nrestore full <- inc1 <- from-c2 <- last vs live disk (qemu-img compare): {}",
        if same { "IDENTICAL" } else { "DIFFERENT" }
    );
    Ok(ok && same)
}

fn plans_only() {
    println!("QEMU is not available here: printing the plans for libvirt's recorded run only.");
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/replies");
    let text = std::fs::read_to_string(data.join("13_checkpoint_delete_chk1_after_snapshot.json"))
        .unwrap_or_default();
    let Ok(nodes) = virtcheckpoint::parse_node_data(&text) else {
        println!("(recorded data not found)");
        return;
    };
    let mut dom = virtcheckpoint::Domain::default();
    dom.disks.push(virtcheckpoint::Disk {
        target: "vda".into(),
        chain: vec![
            virtcheckpoint::Image::qcow2_indexed("/img/vda.snap1.qcow2", 4),
            virtcheckpoint::Image::qcow2_indexed("/img/vda.qcow2", 1),
        ],
        ..Default::default()
    });
    let disks = [virtcheckpoint::BackupDisk {
        target: "vda".into(),
        incremental: Some("chk1".into()),
        store_node: "libvirt-5-format".into(),
        export_bitmap: None,
    }];
    let chk = |name: &str| virtcheckpoint::CheckpointDef {
        name: name.into(),
        disks: vec![virtcheckpoint::CheckpointDisk {
            name: "vda".into(),
            kind: virtcheckpoint::DiskCheckpointKind::Bitmap,
            bitmap: Some(name.into()),
            size: None,
        }],
        ..Default::default()
    };
    if let Ok(step) = virtcheckpoint::create_step(&dom, &chk("chk5"), Some(&nodes)) {
        show(
            "checkpoint chk5 (one new bitmap, nothing else touched)",
            &step,
        );
    }
    if let Ok(step) = virtcheckpoint::discard_step(&dom, &chk("chk1"), &nodes, false) {
        show(
            "delete chk1 from both layers (the backing layer reopened around it)",
            &step,
        );
    }
    let storage = [Some("libvirt-5-storage")];
    if let Ok(step) = virtcheckpoint::backup_step(
        &dom,
        virtcheckpoint::BackupMode::Push,
        &disks,
        &nodes,
        &|_| true,
        None,
        &storage,
    ) {
        show("incremental backup from chk1 across the snapshot", &step);
    }
}

fn main() {
    if let Err(why) = vcp_harness::qemu_available() {
        println!("{why}");
        plans_only();
        return;
    }
    let dir = std::env::temp_dir().join(format!("vcp-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary folder");
    let result = run(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(true) => println!("\ndemo: every backup verified exact"),
        Ok(false) => {
            println!("\ndemo: a verification FAILED");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("demo failed: {e}");
            std::process::exit(1);
        }
    }
}
