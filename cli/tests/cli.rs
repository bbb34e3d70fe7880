//! The `vcp` command line: plans printed as libvirt sent them, errors in libvirt's
//! wording on stderr, meaningful exit codes.

use std::path::PathBuf;

mod common;
use common::vcp;

fn data(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(rel)
        .display()
        .to_string()
}

fn libvirt_sent(record: &str, cmd: &str) -> Vec<String> {
    let text = std::fs::read_to_string(data(&format!("libvirt-9.0-qmp/{record}"))).unwrap();
    let head = format!("-> {{\"execute\":\"{cmd}\"");
    text.lines()
        .filter(|l| l.starts_with(&head))
        .map(|l| {
            let body = &l[3..];
            format!("{}}}", &body[..body.rfind(",\"id\":").unwrap()])
        })
        .collect()
}

/// A file of its own for one test (tests run at once in one process: a name shared by
/// two would be removed under the other).
fn tmp(name: &str, text: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("vcp-cli-{}-{n}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn help_and_usage_errors() {
    let (code, out, _) = vcp(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("vcp check") && out.contains("Exit codes"));
    let (code, _, err) = vcp(&["frobnicate"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown command 'frobnicate'"), "{err}");
    let (code, _, err) = vcp(&[
        "plan",
        "create",
        "--domain",
        &data("libvirt-9.0-qmp/21_status_xml_before_snapshot.xml"),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("missing required option --checkpoint"),
        "{err}"
    );
    let (code, _, err) = vcp(&["nodes", "/nonexistent/file.json"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: cannot read '/nonexistent/file.json'"),
        "{err}"
    );
}

#[test]
fn plans_match_what_libvirt_sent() {
    let request = tmp(
        "c1.xml",
        "<domaincheckpoint><name>c1</name></domaincheckpoint>",
    );
    let (code, out, err) = vcp(&[
        "plan",
        "create",
        "--domain",
        &data("libvirt-9.0-qmp/21_status_xml_before_snapshot.xml"),
        "--checkpoint",
        &request,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        libvirt_sent("18_checkpoint_create_c1.txt", "transaction")
    );

    let (code, out, err) = vcp(&[
        "plan",
        "snapshot",
        "--domain",
        &data("libvirt-9.0-qmp/21_status_xml_before_snapshot.xml"),
        "--nodes",
        &data("replies/23_snapshot_create_external_s1.json"),
        "--disk",
        "vda=libvirt-2-format",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        libvirt_sent("23_snapshot_create_external_s1.txt", "transaction")
    );

    // The same plan, pretty: libvirt's test-suite layout.
    let (_, pretty, _) = vcp(&[
        "plan",
        "create",
        "--domain",
        &data("libvirt-9.0-qmp/21_status_xml_before_snapshot.xml"),
        "--checkpoint",
        &request,
        "--pretty",
    ]);
    assert!(
        pretty.starts_with("[\n  {\n    \"type\": \"block-dirty-bitmap-add\",\n"),
        "{pretty}"
    );
    std::fs::remove_file(request).unwrap();
}

#[test]
fn refusals_read_as_libvirts_errors() {
    let stored = tmp(
        "c2.xml",
        "<domaincheckpoint><name>c2</name><creationTime>5</creationTime>\
        <disks><disk name='vda' checkpoint='bitmap' bitmap='c2'/></disks></domaincheckpoint>",
    );
    let args = [
        "plan",
        "delete",
        "--domain",
        &data("libvirt-9.0-qmp/74_status_xml_end.xml"),
        "--checkpoint",
        &stored,
        "--nodes",
        &data("replies/69_fail_checkpoint_delete_c2_bitmap_missing.json"),
    ];
    let (code, out, err) = vcp(&args);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(
        err,
        "error: internal error: bitmap 'c2' not found in backing chain of 'vda'\n"
    );
    // Opt-in: the delete that cannot get stuck.
    let mut lenient = args.to_vec();
    lenient.push("--ignore-missing");
    let (code, out, err) = vcp(&lenient);
    assert_eq!(code, 0);
    assert_eq!(out, "", "nothing to send: no empty transaction either");
    assert!(
        err.contains("bitmap 'c2' was already gone from every layer of disk 'vda'"),
        "{err}"
    );

    let (code, _, err) = vcp(&[
        "plan",
        "backup",
        "--domain",
        &data("libvirt-9.0-qmp/74_status_xml_end.xml"),
        "--nodes",
        &data("replies/68_fail_backup_incremental_from_c2_bitmap_missing.json"),
        "--from",
        "c2",
        "--disk",
        "vda=libvirt-9-format",
    ]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: checkpoint inconsistent: missing or broken bitmap 'c2' for disk 'vda'\n"
    );
    std::fs::remove_file(stored).unwrap();
}

/// A disk the domain does not have is refused with libvirt's error, for every plan
/// that names one, with or without its optional node arguments (`plan pull` without
/// `--base` used to panic).
#[test]
fn unknown_disks_are_refused_not_panicked_on() {
    let dom = data("libvirt-9.0-qmp/21_status_xml_before_snapshot.xml");
    let nodes = data("replies/06_backup_begin_push_incremental_from_chk1.json");
    for extra in [
        &["pull"][..],
        &["pull", "--base", "libvirt-1-format"][..],
        &["copy", "--mirror", "m"][..],
        &["commit", "--top", "a", "--base", "b"][..],
    ] {
        let mut args = vec!["plan", extra[0], "--domain", &dom, "--nodes", &nodes];
        args.extend(["--disk", "vdz"]);
        args.extend(&extra[1..]);
        let (code, out, err) = vcp(&args);
        assert_eq!(code, 1, "{extra:?}: {err}");
        assert!(out.is_empty(), "{extra:?}");
        assert_eq!(
            err, "error: invalid argument: no disk named 'vdz'\n",
            "{extra:?}"
        );
    }
}

/// `vcp plan … --step` prints the whole driver step: for a backup, the transaction now,
/// libvirt's job-dismiss, store detach and bitmap removal at the end, the cancel to
/// abort.
#[test]
fn plan_step_prints_every_phase() {
    let dom = data("libvirt-9.0-qmp/21_status_xml_before_snapshot.xml");
    let nodes = data("replies/06_backup_begin_push_incremental_from_chk1.json");
    let (code, out, err) = vcp(&[
        "plan",
        "backup",
        "--domain",
        &dom,
        "--nodes",
        &nodes,
        "--disk",
        "vda=store",
        "--step",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["now"][0]["execute"], "transaction");
    let end: Vec<&str> = v["on-end"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["execute"].as_str().unwrap())
        .collect();
    assert_eq!(
        end,
        ["job-dismiss", "blockdev-del"],
        "a full backup removes no bitmap"
    );
    assert_eq!(v["on-abort"][0]["execute"], "job-cancel");
    assert_eq!(v["jobs"].as_array().unwrap().len(), 1);
}

/// The never-lose-a-chain commands: a chosen granularity on create, retention for one
/// owner, and what a crash left pending.
#[test]
fn granularity_retention_and_pending_from_the_command_line() {
    use virtcheckpoint::{CheckpointDef, MetadataDir, begin_pending};
    let dom = data("libvirt-9.0-qmp/21_status_xml_before_snapshot.xml");
    let nodes = data("replies/23_snapshot_create_external_s1.json");
    let request = tmp(
        "g.xml",
        "<domaincheckpoint><name>g1</name></domaincheckpoint>",
    );
    let create = |g: &str| {
        vcp(&[
            "plan",
            "create",
            "--domain",
            &dom,
            "--checkpoint",
            &request,
            "--nodes",
            &nodes,
            "--granularity",
            g,
        ])
    };
    let (code, out, err) = create("4194304");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(r#""name":"g1","persistent":true,"disabled":false,"granularity":4194304"#),
        "{out}"
    );
    let (code, out, err) = create("3000");
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("must be a power of two"), "{err}");

    let base = std::env::temp_dir().join(format!("vcp-cli-owners-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let md = MetadataDir::new(&base, "vm").unwrap();
    for (i, n) in ["a:1", "b:1", "a:2"].iter().enumerate() {
        md.save(&CheckpointDef {
            name: (*n).into(),
            creation_time: 10 + i as i64,
            ..Default::default()
        })
        .unwrap();
    }
    let b = base.to_str().unwrap();
    let (code, out, err) = vcp(&[
        "retain",
        "--domain",
        &dom,
        "--nodes",
        &nodes,
        "--metadata",
        b,
        "--name",
        "vm",
        "--owner",
        "a",
        "--keep",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    // a:1 has no disk: libvirt's delete still sends its (empty) transaction.
    assert_eq!(
        out, "# delete a:1\n{\"execute\":\"transaction\",\"arguments\":{\"actions\":[]}}\n",
        "only a's oldest, nothing of b's"
    );

    let (_, out, _) = vcp(&["pending", "--metadata", b, "--name", "vm"]);
    assert_eq!(out, "nothing pending\n");
    begin_pending(&md, "a:2").unwrap();
    let (code, out, err) = vcp(&["pending", "--metadata", b, "--name", "vm", "--apply"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "# pending: a:2\n# dropped: a:2\n");
    let (list, _) = md.load().unwrap();
    assert!(!list.contains("a:2") && list.contains("a:1") && list.contains("b:1"));
    assert!(md.pending().unwrap().is_empty());
    std::fs::remove_dir_all(&base).unwrap();
}

/// `vcp plan snapshot --step`, `vcp plan size --step` and `vcp plan validate`.
#[test]
fn snapshot_size_and_validate_steps() {
    let dom = data("libvirt-9.0-qmp/21_status_xml_before_snapshot.xml");
    let nodes = data("replies/23_snapshot_create_external_s1.json");
    let (code, out, err) = vcp(&[
        "plan",
        "snapshot",
        "--domain",
        &dom,
        "--nodes",
        &nodes,
        "--disk",
        "vda=libvirt-9-format",
        "--step",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let actions = v["now"][0]["arguments"]["actions"].as_array().unwrap();
    assert_eq!(
        actions.last().unwrap()["type"],
        "blockdev-snapshot",
        "the bitmaps first, then the snapshot, in one transaction"
    );
    assert!(v["jobs"].as_array().unwrap().is_empty());

    let c1 = tmp(
        "c1.xml",
        "<domaincheckpoint><name>c1</name><creationTime>1</creationTime>\
         <disks><disk name='vda' checkpoint='bitmap' bitmap='c1'/></disks></domaincheckpoint>",
    );
    let (code, out, err) = vcp(&[
        "plan",
        "size",
        "--domain",
        &dom,
        "--nodes",
        &nodes,
        "--checkpoint",
        &c1,
        "--step",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["now"][0]["execute"], "transaction", "the merge now");
    assert!(
        v["on-end"][0].to_string().contains("libvirt-tmp-size-xml"),
        "the temporary bitmap removed after the read"
    );

    let end = data("libvirt-9.0-qmp/74_status_xml_end.xml");
    let missing = data("replies/70_fail_checkpoint_redefine_validate_c2_bitmap_missing.json");
    let validate = |name: &str| {
        let c = tmp(
            &format!("{name}.xml"),
            &format!(
                "<domaincheckpoint><name>{name}</name><creationTime>1</creationTime>\
                 <disks><disk name='vda' checkpoint='bitmap'/></disks></domaincheckpoint>"
            ),
        );
        vcp(&[
            "plan",
            "validate",
            "--domain",
            &end,
            "--nodes",
            &missing,
            "--checkpoint",
            &c,
        ])
    };
    let (code, out, err) = validate("c1");
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let (code, out, err) = validate("c2");
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(
        err,
        "error: checkpoint inconsistent: missing or broken bitmap 'c2' for disk 'vda'\n"
    );
}

/// A stored tree's delete with children, as libvirt runs it: the descendants each
/// before its own (siblings newest first), then the checkpoint. A descendant whose
/// bitmap is gone is refused and the others are still discarded (printed: sent), as
/// libvirt goes on through every descendant; the checkpoint itself is then kept and
/// the delete fails with the last refusal's error.
#[test]
fn a_stored_trees_delete_goes_in_libvirts_order_and_fails_as_libvirt_does() {
    use virtcheckpoint::{CheckpointDef, CheckpointDisk, DiskCheckpointKind, MetadataDir};
    let dom = data("libvirt-9.0-qmp/21_status_xml_before_snapshot.xml");
    // chk1 and chk2 exist on vda; chk3 and chk4 do not.
    let nodes = data("replies/06_backup_begin_push_incremental_from_chk1.json");
    let base = std::env::temp_dir().join(format!("vcp-cli-tree-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let md = MetadataDir::new(&base, "vm").unwrap();
    // root -> chk1 -> {chk2, chk3}, chk3 -> chk4 (chk3 the newer sibling).
    for (i, (n, parent)) in [
        ("root", None),
        ("chk1", Some("root")),
        ("chk2", Some("chk1")),
        ("chk3", Some("chk1")),
        ("chk4", Some("chk3")),
    ]
    .iter()
    .enumerate()
    {
        md.save(&CheckpointDef {
            name: (*n).into(),
            parent: parent.map(str::to_owned),
            creation_time: 10 + i as i64,
            disks: vec![CheckpointDisk {
                name: "vda".into(),
                kind: DiskCheckpointKind::Bitmap,
                bitmap: Some((*n).into()),
                size: None,
            }],
            ..Default::default()
        })
        .unwrap();
    }
    let b = base.to_str().unwrap();
    let delete = |name: &str, how: &[&str]| {
        let mut args = vec![
            "plan",
            "delete",
            "--domain",
            &dom,
            "--metadata",
            b,
            "--name",
            "vm",
            "--checkpoint",
            name,
            "--nodes",
            &nodes,
        ];
        args.extend_from_slice(how);
        vcp(&args)
    };
    let discards = |out: &str| -> Vec<String> {
        out.lines()
            .filter_map(|l| l.strip_prefix("# discard "))
            .map(str::to_owned)
            .collect()
    };
    // chk3 (the newest child) and its child chk4 have no bitmap: both are refused,
    // chk2 (its bitmap there) is still discarded after them, chk1 is kept, and the
    // error is the last refusal's.
    let (code, out, err) = delete("chk1", &["--children"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(discards(&out), ["chk2"]);
    assert!(out.contains(r#""name":"chk2""#), "{out}");
    assert!(!out.contains(r#""name":"chk1""#), "{out}");
    assert_eq!(
        err,
        "error: internal error: bitmap 'chk4' not found in backing chain of 'vda'\n"
    );
    // Children only: the same discards and refusals.
    let (code, out, err) = delete("chk1", &["--children-only"]);
    assert_eq!(
        (code, discards(&out)),
        (1, vec!["chk2".to_owned()]),
        "{err}"
    );
    // The order alone, where every bitmap is tolerated as missing.
    let (code, out, err) = delete("root", &["--ignore-missing"]);
    assert_eq!((code, discards(&out).len()), (0, 1), "{err}");
    let (code, out, err) = delete("root", &["--children", "--ignore-missing"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(discards(&out), ["chk1", "chk3", "chk4", "chk2", "root"]);
    let _ = std::fs::remove_dir_all(&base);
}

/// A backup's disks each as libvirt aligns them: a disk's own checkpoint
/// (`--incremental vda=CHK`, libvirt's incremental='CHK') plans as the backup's
/// `--from`; `--full vda` (backupmode='full') overrides `--from` for that disk; a pull
/// backup's `--export-bitmap vda=B` (exportbitmap='B') names its temporary bitmap.
#[test]
fn backup_modes_per_disk() {
    let dom = data("libvirt-9.0-qmp/21_status_xml_before_snapshot.xml");
    let nodes = data("replies/06_backup_begin_push_incremental_from_chk1.json");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "plan",
            "backup",
            "--domain",
            &dom,
            "--nodes",
            &nodes,
            "--disk",
            "vda=store",
        ];
        args.extend(extra);
        vcp(&args)
    };
    let plan = |extra: &[&str]| {
        let (code, out, err) = run(extra);
        assert_eq!(code, 0, "{extra:?}: {err}");
        out
    };
    let from = plan(&["--from", "chk1"]);
    assert!(from.contains("\"sync\":\"incremental\""), "{from}");
    assert_eq!(plan(&["--incremental", "vda=chk1"]), from);
    assert_eq!(
        plan(&["--from", "nope", "--incremental", "vda=chk1"]),
        from,
        "the disk's own checkpoint wins"
    );
    let full = plan(&["--from", "chk1", "--full", "vda"]);
    assert_eq!(full, plan(&[]));
    assert!(
        full.contains("\"sync\":\"full\"") && !full.contains("merge"),
        "{full}"
    );
    // A pull backup's bitmap named by the request (exportbitmap='eb').
    let pull = plan(&["--pull", "--from", "chk1"]);
    let named = plan(&["--pull", "--from", "chk1", "--export-bitmap", "vda=eb"]);
    assert!(pull.contains("\"name\":\"backup-vda\""), "{pull}");
    assert_eq!(named, pull.replace("\"backup-vda\"", "\"eb\""));
    let (code, _, err) = run(&["--incremental", "vda"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--incremental takes TARGET=CHECKPOINT, not 'vda'"),
        "{err}"
    );
}

/// `vcp tree` prints roots and siblings sorted by name, as virsh's `--tree` does,
/// whatever order the library lists them in (libvirt's: the newest sibling first).
#[test]
fn tree_prints_siblings_by_name() {
    let dir = std::env::temp_dir().join(format!("vcp-cli-tree-{}", std::process::id()));
    let vm = dir.join("vm");
    std::fs::create_dir_all(&vm).unwrap();
    for (name, parent, time) in [
        ("a", None, 1),
        ("c2", Some("a"), 2),
        ("c10", Some("a"), 3),
        ("b", None, 4),
    ] {
        let parent = parent.map_or(String::new(), |p| {
            format!("<parent><name>{p}</name></parent>")
        });
        std::fs::write(
            vm.join(format!("{name}.xml")),
            format!(
                "<domaincheckpoint><name>{name}</name>{parent}\
                 <creationTime>{time}</creationTime></domaincheckpoint>"
            ),
        )
        .unwrap();
    }
    let (code, out, err) = vcp(&[
        "tree",
        "--metadata",
        &dir.display().to_string(),
        "--name",
        "vm",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "a\n|-- c10\n`-- c2\nb\n");
    std::fs::remove_dir_all(&dir).unwrap();
}
