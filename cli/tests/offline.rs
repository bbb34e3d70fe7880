//! Checkpoint operations on a shut-off domain, planned as `qemu-img` commands and run
//! on real images: create, size, external snapshot, commit, delete; and the refusal of
//! images another process holds. Needs qemu-img, qemu-io, qemu-nbd (and QEMU for the
//! lock test); fails without them.

use std::path::{Path, PathBuf};
use std::process::Command;

use vcp_cli::tools;
use vcp_harness::img;
use vcp_harness::vm::{Image as VmImage, Vm, VmDisk};
use virtcheckpoint::{
    CheckpointDef, Disk, Domain, ErrorCode, Image, ParseOptions, checkpoint_def_from_xml, offline,
};

mod common;
use common::vcp;

const MIB: u64 = 1 << 20;
const K64: u64 = 64 * 1024;

fn folder(name: &str) -> PathBuf {
    vcp_harness::qemu_available()
        .unwrap_or_else(|why| panic!("offline tests need QEMU's tools: {why}"));
    let d = std::env::temp_dir().join(format!("vcp-offline-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn qemu_io(file: &Path, cmd: &str) {
    let out = Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", cmd])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An inactive domain: images known by path only (no node names), each of the
/// format its name gives (raw for `*.raw`).
fn domain(chain: &[&Path]) -> Domain {
    Domain {
        name: "off".into(),
        uuid: String::new(),
        disks: vec![Disk {
            target: "vda".into(),
            device: "disk".into(),
            bus: "virtio".into(),
            readonly: false,
            chain: chain
                .iter()
                .map(|p| Image {
                    source: p.display().to_string(),
                    format: img::format_of(p).into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
    }
}

fn def(name: &str, dom: &Domain) -> CheckpointDef {
    let xml = format!("<domaincheckpoint><name>{name}</name></domaincheckpoint>");
    checkpoint_def_from_xml(xml.as_bytes(), Some(dom), ParseOptions::default(), 1).unwrap()
}

fn run_all(cmds: &[Vec<String>]) {
    for c in cmds {
        tools::run(c).unwrap_or_else(|e| panic!("{}: {e}", c.join(" ")));
    }
}

fn size_of(dom: &Domain, def: &CheckpointDef) -> u64 {
    let nodes = tools::inspect(dom, false).unwrap();
    let plan = offline::size_commands(dom, def, &nodes).unwrap();
    run_all(&plan.merge);
    let bytes = tools::dirty_bytes(&plan.disks[0].1, "libvirt-tmp-size-xml").unwrap();
    run_all(&plan.cleanup);
    bytes
}

fn names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = img::bitmaps(p).unwrap().into_iter().map(|b| b.0).collect();
    v.sort();
    v
}

#[test]
fn offline_create_size_snapshot_commit_delete() {
    let dir = folder("ops");
    let base = dir.join("base.qcow2");
    img::create(&base, 8 * MIB, None).unwrap();
    qemu_io(&base, "write -P 0x11 0 1M");
    let dom = domain(&[&base]);
    let c1 = def("c1", &dom);

    // Create: the same checks as online, then qemu-img bitmap --add.
    let nodes = tools::inspect(&dom, false).unwrap();
    let cmds = offline::create_commands(&dom, &c1, &nodes).unwrap();
    assert_eq!(
        cmds,
        [vec![
            "qemu-img",
            "bitmap",
            "--add",
            base.to_str().unwrap(),
            "c1"
        ]]
    );
    run_all(&cmds);
    let b = img::bitmaps(&base).unwrap();
    assert_eq!(
        b,
        [("c1".to_owned(), vec!["auto".to_owned()])],
        "persistent and recording"
    );
    let nodes = tools::inspect(&dom, false).unwrap();
    let e = offline::create_commands(&dom, &c1, &nodes).unwrap_err();
    assert_eq!(e.code(), ErrorCode::OperationFailed, "already exists: {e}");

    // Writes made offline are recorded; the size is their bytes.
    qemu_io(&base, "write -P 0x22 2M 64k");
    assert_eq!(size_of(&dom, &c1), K64);
    assert_eq!(names(&base), ["c1"], "temporary size bitmap removed");

    // External snapshot offline: the overlay carries c1.
    let overlay = dir.join("s1.qcow2");
    let cmds = offline::snapshot_commands(&dom, "vda", overlay.to_str().unwrap(), &nodes).unwrap();
    assert_eq!(cmds.len(), 2);
    run_all(&cmds);
    assert_eq!(names(&overlay), ["c1"]);
    qemu_io(&overlay, "write -P 0x33 4M 64k");
    let layered = domain(&[&overlay, &base]);
    assert_eq!(size_of(&layered, &c1), 2 * K64, "merged across both layers");

    // Commit offline: qemu-img commit, then c1 carried into the base.
    let nodes = tools::inspect(&layered, false).unwrap();
    let cmds = offline::commit_commands(&layered, "vda", 0, 1, &nodes).unwrap();
    assert_eq!(cmds[0][1], "commit");
    assert!(
        cmds.iter().any(|c| c.contains(&"--merge".to_owned())),
        "{cmds:?}"
    );
    run_all(&cmds);
    assert_eq!(
        size_of(&dom, &c1),
        2 * K64,
        "the base alone now knows both writes"
    );

    // Delete offline: every layer that has it.
    let nodes = tools::inspect(&layered, false).unwrap();
    let (cmds, missing) = offline::delete_commands(&layered, &c1, &nodes, false).unwrap();
    assert!(missing.is_empty());
    assert_eq!(cmds.len(), 2, "overlay and base");
    run_all(&cmds);
    assert!(names(&base).is_empty() && names(&overlay).is_empty());
    let nodes = tools::inspect(&layered, false).unwrap();
    let e = offline::delete_commands(&layered, &c1, &nodes, false).unwrap_err();
    assert_eq!(
        e.message(),
        "internal error: bitmap 'c1' not found in backing chain of 'vda'"
    );
    let (cmds, missing) = offline::delete_commands(&layered, &c1, &nodes, true).unwrap();
    assert!(
        cmds.is_empty() && missing == ["vda"],
        "the delete that cannot get stuck"
    );
    assert!(img::check(&base).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn images_held_by_qemu_are_refused() {
    let dir = folder("lock");
    let base = dir.join("held.qcow2");
    img::create(&base, 8 * MIB, None).unwrap();
    let vm = Vm::start(
        &dir,
        vec![VmDisk {
            target: "vda".into(),
            chain: vec![VmImage {
                path: base.clone(),
                index: 1,
            }],
            driver: Default::default(),
        }],
    )
    .unwrap();
    let dom = domain(&[&base]);
    let e = tools::inspect(&dom, false).unwrap_err();
    assert_eq!(e.code(), ErrorCode::OperationInvalid);
    let cmd: Vec<String> = ["qemu-img", "bitmap", "--add", base.to_str().unwrap(), "x"]
        .map(str::to_owned)
        .to_vec();
    let e = tools::run(&cmd).unwrap_err();
    assert_eq!(e.code(), ErrorCode::OperationInvalid, "{e}");
    assert!(e.message().contains("in use by another process"), "{e}");
    let e = tools::dirty_bytes(base.to_str().unwrap(), "x").unwrap_err();
    assert_eq!(e.code(), ErrorCode::OperationInvalid, "{e}");
    assert!(e.message().contains("in use by another process"), "{e}");
    vm.quit().unwrap();
    assert!(names(&base).is_empty(), "nothing was changed");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `vcp offline`: the same plans from the command line, read with qemu-img and
/// carried out with `--apply`; the oracle is the data written and qemu-img's view.
#[test]
fn offline_plans_from_the_command_line() {
    let dir = folder("cli");
    let base = dir.join("base.qcow2");
    img::create(&base, 8 * MIB, None).unwrap();
    let dom_xml = dir.join("dom.xml");
    std::fs::write(
        &dom_xml,
        format!(
            "<domain><name>off</name><devices><disk type='file' device='disk'>\
             <driver name='qemu' type='qcow2'/><source file='{}'/>\
             <target dev='vda' bus='virtio'/></disk></devices></domain>",
            base.display()
        ),
    )
    .unwrap();
    let request = dir.join("c1.xml");
    std::fs::write(
        &request,
        "<domaincheckpoint><name>c1</name></domaincheckpoint>",
    )
    .unwrap();
    let (d, r) = (dom_xml.to_str().unwrap(), request.to_str().unwrap());

    let (code, out, err) = vcp(&["offline", "create", "--domain", d, "--checkpoint", r]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("qemu-img bitmap --add {} c1\n", base.display())
    );
    assert!(names(&base).is_empty(), "without --apply nothing runs");
    let (code, _, err) = vcp(&[
        "offline",
        "create",
        "--domain",
        d,
        "--checkpoint",
        r,
        "--apply",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(names(&base), ["c1"]);

    qemu_io(&base, "write -P 0x22 1M 192k");
    let stored = dir.join("c1-stored.xml");
    std::fs::write(
        &stored,
        "<domaincheckpoint><name>c1</name><creationTime>1</creationTime>\
         <disks><disk name='vda' checkpoint='bitmap' bitmap='c1'/></disks></domaincheckpoint>",
    )
    .unwrap();
    let s = stored.to_str().unwrap();
    let (code, out, err) = vcp(&[
        "offline",
        "size",
        "--domain",
        d,
        "--checkpoint",
        s,
        "--apply",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with(&format!("vda: {}\n", 192 * 1024)), "{out}");
    assert_eq!(
        names(&base),
        ["c1"],
        "the size query leaves no temporary bitmap"
    );

    let (code, _, err) = vcp(&[
        "offline",
        "delete",
        "--domain",
        d,
        "--checkpoint",
        s,
        "--apply",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(names(&base).is_empty());
    let (code, _, err) = vcp(&["offline", "delete", "--domain", d, "--checkpoint", s]);
    assert_eq!(code, 1);
    assert!(
        err.contains("bitmap 'c1' not found in backing chain of 'vda'"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A middle-layer commit offline: the layer above is rebased onto the base, so the
/// chain stays consistent, the bitmaps stay exact, and a definition that still lists
/// the committed layer does not credit anyone's bitmaps to it.
#[test]
fn offline_middle_commit_rebases_the_layer_above() {
    let dir = folder("midcommit");
    let base = dir.join("base.qcow2");
    img::create(&base, 8 * MIB, None).unwrap();
    let one = domain(&[&base]);
    let c1 = def("c1", &one);
    run_all(&offline::create_commands(&one, &c1, &tools::inspect(&one, false).unwrap()).unwrap());
    let (mid, top) = (dir.join("mid.qcow2"), dir.join("top.qcow2"));
    let n = tools::inspect(&one, false).unwrap();
    run_all(&offline::snapshot_commands(&one, "vda", mid.to_str().unwrap(), &n).unwrap());
    qemu_io(&mid, "write -P 0x44 1M 64k");
    let two = domain(&[&mid, &base]);
    let n = tools::inspect(&two, false).unwrap();
    run_all(&offline::snapshot_commands(&two, "vda", top.to_str().unwrap(), &n).unwrap());
    qemu_io(&top, "write -P 0x55 3M 128k");
    let three = domain(&[&top, &mid, &base]);
    assert_eq!(size_of(&three, &c1), 3 * K64);

    // Commit mid into base: commit, rebase top onto base, then the bitmaps.
    let n = tools::inspect(&three, false).unwrap();
    let cmds = offline::commit_commands(&three, "vda", 1, 2, &n).unwrap();
    assert_eq!(cmds[0][1], "commit");
    assert_eq!(
        cmds[1],
        [
            "qemu-img",
            "rebase",
            "-u",
            "-F",
            "qcow2",
            "-b",
            base.to_str().unwrap(),
            top.to_str().unwrap()
        ]
    );
    run_all(&cmds);
    let info = img::info(&top, false).unwrap();
    assert_eq!(info["backing-filename"], base.to_str().unwrap(), "{info}");
    assert!(img::check(&top).unwrap());

    let after = domain(&[&top, &base]);
    assert_eq!(
        size_of(&after, &c1),
        3 * K64,
        "the incremental is still exact"
    );
    // The stale three-layer definition: mid is no longer reached, so it gets no node,
    // and base's bitmaps are not credited to it.
    let stale = tools::inspect(&three, false).unwrap();
    assert!(stale.get(mid.to_str().unwrap()).is_none());
    assert!(stale.bitmap(base.to_str().unwrap(), "c1").is_some());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A middle-layer commit offline into a raw base: no bitmap is merged into it (it
/// cannot hold one), and the copy above of the bitmap whose writes went with the
/// committed layer is removed, so that it cannot give an incomplete backup; the
/// checkpoint made after that layer keeps its exact size.
#[test]
fn offline_commit_into_a_raw_base_leaves_no_incomplete_bitmap() {
    let dir = folder("rawcommit");
    let base = dir.join("base.raw");
    img::create(&base, 8 * MIB, None).unwrap();
    let (mid, top) = (dir.join("mid.qcow2"), dir.join("top.qcow2"));
    let one = domain(&[&base]);
    run_all(
        &offline::snapshot_commands(
            &one,
            "vda",
            mid.to_str().unwrap(),
            &tools::inspect(&one, false).unwrap(),
        )
        .unwrap(),
    );
    let two = domain(&[&mid, &base]);
    let c1 = def("c1", &two);
    run_all(&offline::create_commands(&two, &c1, &tools::inspect(&two, false).unwrap()).unwrap());
    qemu_io(&mid, "write -P 0x44 1M 64k");
    run_all(
        &offline::snapshot_commands(
            &two,
            "vda",
            top.to_str().unwrap(),
            &tools::inspect(&two, false).unwrap(),
        )
        .unwrap(),
    );
    let three = domain(&[&top, &mid, &base]);
    let c2 = def("c2", &three);
    run_all(
        &offline::create_commands(&three, &c2, &tools::inspect(&three, false).unwrap()).unwrap(),
    );
    qemu_io(&top, "write -P 0x55 3M 128k");
    assert_eq!(names(&top), ["c1", "c2"]);

    let cmds =
        offline::commit_commands(&three, "vda", 1, 2, &tools::inspect(&three, false).unwrap())
            .unwrap();
    assert!(
        cmds.iter().all(|c| !c.contains(&"--merge".to_owned())),
        "nothing merged into the raw base: {cmds:?}"
    );
    assert_eq!(
        cmds[1][4], "raw",
        "the layer above rebased onto the raw base: {cmds:?}"
    );
    assert_eq!(
        cmds[2],
        [
            "qemu-img",
            "bitmap",
            "--remove",
            top.to_str().unwrap(),
            "c1"
        ]
    );
    run_all(&cmds);
    assert_eq!(names(&top), ["c2"]);
    assert!(img::check(&top).unwrap());
    let after = domain(&[&top, &base]);
    assert_eq!(
        size_of(&after, &c2),
        2 * K64,
        "c2's incremental is still exact"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
