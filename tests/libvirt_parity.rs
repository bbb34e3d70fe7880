//! Parity with real libvirt 9.0 over QEMU 10.0 (tests/data/libvirt-9.0-qmp): from the
//! node data and domain XML recorded there, the library's actions are byte-identical to
//! what libvirt sent, its errors read as libvirt's did, and its XML as libvirt wrote it.

use std::path::PathBuf;
use virtcheckpoint::{
    BackupDisk, BackupMode, CheckpointDef, CheckpointDisk, Disk, DiskCheckpointKind, Domain,
    FormatOptions, Image, NodeData, ParseOptions, SnapshotDisk, backup_begin_actions,
    checkpoint_add_actions, checkpoint_discard_actions, format_checkpoint, parse_checkpoint,
    parse_domain, parse_node_data, redefine_validate, snapshot_bitmap_actions, transaction,
};

fn data(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The file of `tests/data/<folder>` whose name starts with `prefix` and ends with `ext`.
fn find(folder: &str, prefix: &str, ext: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(folder);
    let name = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(prefix) && n.ends_with(ext))
        .unwrap_or_else(|| panic!("no {folder}/{prefix}*{ext}"));
    format!("{folder}/{name}")
}

fn record(prefix: &str) -> String {
    data(&find("libvirt-9.0-qmp", prefix, ".txt"))
}

/// The commands libvirt sent whose `execute` is `cmd`, without their `id`.
fn sent(record: &str, cmd: &str) -> Vec<String> {
    let head = format!("-> {{\"execute\":\"{cmd}\"");
    record
        .lines()
        .filter(|l| l.starts_with(&head))
        .map(|l| {
            let body = &l[3..];
            let cut = body.rfind(",\"id\":").expect("libvirt sends an id");
            format!("{}}}", &body[..cut])
        })
        .collect()
}

fn replies(prefix: &str) -> NodeData {
    parse_node_data(&data(&find("replies", prefix, ".json"))).unwrap()
}

fn status_domain(prefix: &str) -> Domain {
    parse_domain(data(&find("libvirt-9.0-qmp", prefix, ".xml")).as_bytes()).unwrap()
}

/// Domain `lvtest` (no XML was recorded for it): vda over the given node indices, top
/// first, as its QEMU command line and the recorded transactions name them.
fn lvtest(indices: &[u32]) -> Domain {
    Domain {
        name: "lvtest".into(),
        uuid: "9518971d-d34e-4867-be66-9b9b1a45c080".into(),
        disks: vec![Disk {
            target: "vda".into(),
            device: "disk".into(),
            bus: "virtio".into(),
            readonly: false,
            chain: indices
                .iter()
                .map(|&i| Image::qcow2_indexed(format!("/srv/lab/img/layer{i}.qcow2"), i))
                .collect(),
            ..Default::default()
        }],
    }
}

fn checkpoint(name: &str) -> CheckpointDef {
    CheckpointDef {
        name: name.into(),
        disks: vec![CheckpointDisk {
            name: "vda".into(),
            kind: DiskCheckpointKind::Bitmap,
            bitmap: Some(name.into()),
            size: None,
        }],
        ..Default::default()
    }
}

#[test]
fn status_and_live_xml_give_libvirts_node_names() {
    for (prefix, expect) in [
        ("21_", vec!["libvirt-1-format"]),
        ("20_", vec!["libvirt-1-format"]),
        ("25_", vec!["libvirt-2-format", "libvirt-1-format"]),
        ("24_", vec!["libvirt-2-format", "libvirt-1-format"]),
        (
            "33_",
            vec!["libvirt-3-format", "libvirt-2-format", "libvirt-1-format"],
        ),
        (
            "32_",
            vec!["libvirt-3-format", "libvirt-2-format", "libvirt-1-format"],
        ),
    ] {
        let dom = status_domain(prefix);
        let vda = dom.disk("vda").expect("vda");
        let nodes: Vec<&str> = vda.chain.iter().map(|i| i.format_node.as_str()).collect();
        assert_eq!(nodes, expect, "{prefix}");
        assert!(
            vda.chain
                .iter()
                .all(|i| i.storage_node.ends_with("-storage"))
        );
        assert_eq!(vda.top().unwrap().format, "qcow2");
    }
    let dom = status_domain("33_");
    assert_eq!(dom.name, "lvtest2");
    assert_eq!(
        dom.disk("vda").unwrap().chain[2].source,
        "/srv/lab/img/lv2-base.qcow2"
    );
}

#[test]
fn create_matches_libvirt() {
    for (rec, status, name) in [
        ("18_", "21_", "c1"),
        ("27_", "25_", "c2"),
        ("30_", "33_", "c3"),
    ] {
        let dom = status_domain(status);
        let actions = checkpoint_add_actions(&dom, &checkpoint(name), None).unwrap();
        assert_eq!(
            vec![transaction(&actions).to_compact()],
            sent(&record(rec), "transaction"),
            "{rec}"
        );
    }
    let actions = checkpoint_add_actions(&lvtest(&[1]), &checkpoint("chk1"), None).unwrap();
    assert_eq!(
        vec![transaction(&actions).to_compact()],
        sent(&record("02_"), "transaction")
    );
}

#[test]
fn create_refuses_what_qemu_would() {
    let nd = replies("08_");
    let e = checkpoint_add_actions(&lvtest(&[1]), &checkpoint("chk1"), Some(&nd)).unwrap_err();
    assert_eq!(
        e.message(),
        "operation failed: bitmap 'chk1' already exists on node 'libvirt-1-format' of disk 'vda'"
    );
    let mut bad = checkpoint("x");
    bad.disks[0].bitmap = Some("y".into());
    let e = checkpoint_add_actions(&lvtest(&[1]), &bad, None).unwrap_err();
    assert_eq!(
        e.message(),
        "unsupported configuration: bitmap for disk 'vda' must match checkpoint name 'x'"
    );
    let mut raw = lvtest(&[1]);
    raw.disks[0].chain[0].format = "raw".into();
    let e = checkpoint_add_actions(&raw, &checkpoint("x"), None).unwrap_err();
    assert_eq!(
        e.message(),
        "unsupported configuration: checkpoint for disk vda unsupported for storage type raw"
    );
    let long = "n".repeat(1024);
    assert!(checkpoint_add_actions(&lvtest(&[1]), &checkpoint(&long), None).is_err());
}

#[test]
fn delete_matches_libvirt() {
    let plan =
        checkpoint_discard_actions(&lvtest(&[1]), &checkpoint("chk2"), &replies("08_"), false)
            .unwrap();
    assert!(plan.reopen.is_empty());
    assert_eq!(
        vec![transaction(&plan.actions).to_compact()],
        sent(&record("08_"), "transaction")
    );

    // After the snapshot: the backing layer must be reopened read-write, then read-only.
    let plan = checkpoint_discard_actions(
        &lvtest(&[4, 1]),
        &checkpoint("chk1"),
        &replies("13_"),
        false,
    )
    .unwrap();
    let rec = record("13_");
    assert_eq!(
        vec![transaction(&plan.actions).to_compact()],
        sent(&rec, "transaction")
    );
    let mut reopens = Vec::new();
    for ro in [false, true] {
        for r in &plan.reopen {
            reopens.push(r.command(ro).to_compact());
        }
    }
    assert_eq!(reopens, sent(&rec, "blockdev-reopen"));
}

#[test]
fn failures_read_as_libvirts() {
    // After the block copy of the recorded run, vda is one layer, libvirt-6-format.
    let dom = status_domain("74_");
    assert_eq!(
        dom.disk("vda").unwrap().chain[0].format_node,
        "libvirt-6-format"
    );
    let nd = replies("69_");
    let e = checkpoint_discard_actions(&dom, &checkpoint("c2"), &nd, false).unwrap_err();
    assert_eq!(
        e.message(),
        "internal error: bitmap 'c2' not found in backing chain of 'vda'"
    );
    assert!(record("69_").contains(e.message()));

    let e = redefine_validate(&dom, &checkpoint("c2"), &replies("70_")).unwrap_err();
    assert_eq!(
        e.message(),
        "checkpoint inconsistent: missing or broken bitmap 'c2' for disk 'vda'"
    );
    assert!(record("70_").contains(e.message()));
    redefine_validate(&dom, &checkpoint("c1"), &replies("70_")).unwrap();

    let disks = [BackupDisk {
        target: "vda".into(),
        incremental: Some("c2".into()),
        store_node: "libvirt-4-format".into(),
        export_bitmap: None,
    }];
    let e = backup_begin_actions(
        &dom,
        BackupMode::Push,
        &disks,
        &replies("68_"),
        &|_| true,
        None,
    )
    .unwrap_err();
    assert!(record("68_").contains(e.message()), "{}", e.message());
}

#[test]
fn backups_match_libvirt() {
    let push = |target: &str, inc: Option<&str>, store: &str| BackupDisk {
        target: target.into(),
        incremental: inc.map(str::to_owned),
        store_node: store.into(),
        export_bitmap: None,
    };
    let known = |c: &str| ["chk1", "chk2", "chk3", "chk4"].contains(&c);

    let rec = record("06_");
    let plan = backup_begin_actions(
        &lvtest(&[1]),
        BackupMode::Push,
        &[push("vda", Some("chk1"), "libvirt-2-format")],
        &replies("06_"),
        &known,
        None,
    )
    .unwrap();
    assert_eq!(
        vec![transaction(&plan.actions).to_compact()],
        sent(&rec, "transaction")
    );
    let cleanup: Vec<String> = plan
        .cleanup
        .iter()
        .map(|a| a.to_command().to_compact())
        .collect();
    assert_eq!(cleanup, sent(&rec, "block-dirty-bitmap-remove"));

    let plan = backup_begin_actions(
        &lvtest(&[1]),
        BackupMode::Push,
        &[push("vda", None, "libvirt-3-format")],
        &replies("07_"),
        &known,
        Some(&checkpoint("chk3")),
    )
    .unwrap();
    assert_eq!(
        vec![transaction(&plan.actions).to_compact()],
        sent(&record("07_"), "transaction")
    );
    assert!(plan.cleanup.is_empty(), "a full backup removes no bitmap");
    assert!(sent(&record("07_"), "block-dirty-bitmap-remove").is_empty());

    let rec = record("12_");
    let plan = backup_begin_actions(
        &lvtest(&[4, 1]),
        BackupMode::Push,
        &[push("vda", Some("chk1"), "libvirt-5-format")],
        &replies("12_"),
        &known,
        None,
    )
    .unwrap();
    assert_eq!(
        vec![transaction(&plan.actions).to_compact()],
        sent(&rec, "transaction")
    );
    let cleanup: Vec<String> = plan
        .cleanup
        .iter()
        .map(|a| a.to_command().to_compact())
        .collect();
    assert_eq!(cleanup, sent(&rec, "block-dirty-bitmap-remove"));

    let e = backup_begin_actions(
        &lvtest(&[1]),
        BackupMode::Push,
        &[push("vda", Some("nope"), "x")],
        &replies("06_"),
        &known,
        None,
    )
    .unwrap_err();
    assert_eq!(
        e.message(),
        "Domain checkpoint not found: Checkpoint 'nope' for incremental backup of disk 'vda' not found"
    );
}

#[test]
fn snapshot_propagation_matches_libvirt() {
    let cases = [
        (lvtest(&[1]), "09_", "libvirt-4-format"),
        (status_domain("21_"), "23_", "libvirt-2-format"),
        (status_domain("25_"), "29_", "libvirt-3-format"),
    ];
    for (dom, rec, overlay) in cases {
        let sd = [SnapshotDisk {
            target: "vda".into(),
            overlay_node: overlay.into(),
        }];
        let actions = snapshot_bitmap_actions(&dom, &sd, &replies(rec)).unwrap();
        assert_eq!(
            vec![transaction(&actions).to_compact()],
            sent(&record(rec), "transaction"),
            "{rec}"
        );
    }
}

#[test]
fn checkpoint_xml_round_trips_as_libvirt_wrote_it() {
    for (full, nodom) in [("34_", "35_"), ("37_", "38_"), ("40_", "41_")] {
        let xml = data(&find("libvirt-9.0-qmp", full, ".xml"));
        let def = parse_checkpoint(
            xml.as_bytes(),
            ParseOptions {
                redefine: true,
                ..ParseOptions::default()
            },
            0,
        )
        .unwrap();
        assert_eq!(
            format_checkpoint(
                &def,
                FormatOptions {
                    secure: true,
                    ..Default::default()
                }
            ),
            xml,
            "{full}"
        );
        let no_dom = data(&find("libvirt-9.0-qmp", nodom, ".xml"));
        assert_eq!(
            format_checkpoint(
                &def,
                FormatOptions {
                    secure: true,
                    no_domain: true,
                    ..Default::default()
                }
            ),
            no_dom,
            "{nodom}"
        );
    }
}

/// The commands libvirt sent, in order, whose `execute` is one of `cmds` (ids cut).
fn sent_in_order(record: &str, cmds: &[&str]) -> Vec<String> {
    record
        .lines()
        .filter(|l| {
            cmds.iter()
                .any(|c| l.starts_with(&format!("-> {{\"execute\":\"{c}\"")))
        })
        .map(|l| {
            let body = &l[3..];
            format!("{}}}", &body[..body.rfind(",\"id\":").unwrap()])
        })
        .collect()
}

/// Whole driver steps: the delete across a snapshot is libvirt's reopen read-write,
/// transaction, reopen read-only, in that order; the push backup's start is its
/// transaction and its end libvirt's job-dismiss, store detach and bitmap removal.
#[test]
fn steps_match_libvirt_in_order() {
    let step = virtcheckpoint::discard_step(
        &lvtest(&[4, 1]),
        &checkpoint("chk1"),
        &replies("13_"),
        false,
    )
    .unwrap();
    let got: Vec<String> = step.now.iter().map(|c| c.to_compact()).collect();
    assert_eq!(
        got,
        sent_in_order(&record("13_"), &["blockdev-reopen", "transaction"])
    );

    let known = |c: &str| c == "chk1";
    let disk = BackupDisk {
        target: "vda".into(),
        incremental: Some("chk1".into()),
        store_node: "libvirt-2-format".into(),
        export_bitmap: None,
    };
    let step = virtcheckpoint::backup_step(
        &lvtest(&[1]),
        BackupMode::Push,
        &[disk],
        &replies("06_"),
        &known,
        None,
        &[Some("libvirt-2-storage")],
    )
    .unwrap();
    let rec = record("06_");
    let now: Vec<String> = step.now.iter().map(|c| c.to_compact()).collect();
    assert_eq!(now, sent(&rec, "transaction"));
    assert_eq!(step.jobs, ["backup-vda-libvirt-1-format"]);
    let end: Vec<String> = step.on_end.iter().map(|c| c.to_compact()).collect();
    // What libvirt sent after the transaction, bar its job polling.
    let after: Vec<String> = sent_in_order(
        &rec,
        &["job-dismiss", "blockdev-del", "block-dirty-bitmap-remove"],
    )
    .into_iter()
    .filter(|c| !c.contains("create-libvirt-2-format"))
    .collect();
    assert_eq!(end, after);
    assert_eq!(
        step.on_abort[0].to_compact(),
        r#"{"execute":"job-cancel","arguments":{"id":"backup-vda-libvirt-1-format"}}"#
    );
}

/// The embedded `<domain>` as libvirt writes it: a multi-line text value inside it is
/// not indented (libvirt's buffer indents lines, not a value's own line breaks), and it
/// comes back byte for byte.
#[test]
fn an_embedded_domain_with_a_multi_line_value_round_trips() {
    let xml = "<domaincheckpoint>\n  <name>c1</name>\n  <creationTime>5</creationTime>\n  \
               <domain type='kvm'>\n    <name>vm</name>\n    <description>first\nsecond\n   \
               third</description>\n  </domain>\n</domaincheckpoint>\n";
    let redefine = ParseOptions {
        redefine: true,
        ..ParseOptions::default()
    };
    let def = parse_checkpoint(xml.as_bytes(), redefine, 0).unwrap();
    assert_eq!(format_checkpoint(&def, FormatOptions::default()), xml);
    // Written at another indentation, its lines move to the element's place.
    let flat = xml
        .replace("\n  <domain", "\n<domain")
        .replace("\n    <", "\n  <");
    let flat = flat.replace("\n  </domain>", "\n</domain>");
    let def2 = parse_checkpoint(flat.as_bytes(), redefine, 0).unwrap();
    assert!(
        def2.domain_xml
            .as_deref()
            .unwrap()
            .starts_with("<domain type='kvm'>\n    <name>vm</name>\n"),
        "{:?}",
        def2.domain_xml
    );
}

/// What libvirt's parse leaves to its post-parse hook stays unset with `parse_only`;
/// an empty `<description/>` is no description (XPath's string() of it is empty).
#[test]
fn parse_without_defaults_leaves_name_and_time_unset() {
    let opts = ParseOptions {
        redefine: false,
        parse_only: true,
    };
    let def = parse_checkpoint(
        b"<domaincheckpoint><description/></domaincheckpoint>",
        opts,
        9,
    )
    .unwrap();
    assert_eq!((def.name.as_str(), def.creation_time), ("", 0));
    assert_eq!(def.description, None);
    let out = format_checkpoint(&def, FormatOptions::default());
    assert!(
        !out.contains("<name>") && !out.contains("<description>"),
        "{out}"
    );
    let def = parse_checkpoint(b"<domaincheckpoint/>", ParseOptions::default(), 9).unwrap();
    assert_eq!((def.name.as_str(), def.creation_time), ("9", 9));
}

#[test]
fn a_domain_set_by_a_driver_is_checked_and_written_verbatim() {
    let mut def = CheckpointDef::new("c1", 7).unwrap();
    for bad in ["<domain>", "<disk/>", "", "<domain/><domain/>"] {
        assert!(def.set_domain_xml(Some(bad)).is_err(), "{bad}");
        assert_eq!(def.domain_xml, None, "{bad}");
    }
    def.set_domain_xml(Some(
        "  <domain type='qemu'>\n    <name>a\nb</name>\n  </domain>\n",
    ))
    .unwrap();
    assert_eq!(
        format_checkpoint(&def, FormatOptions::default()),
        "<domaincheckpoint>\n  <name>c1</name>\n  <creationTime>7</creationTime>\n  \
         <domain type='qemu'>\n    <name>a\nb</name>\n  </domain>\n</domaincheckpoint>\n"
    );
    def.set_domain_xml(None).unwrap();
    assert_eq!(def.domain_xml, None);
}
