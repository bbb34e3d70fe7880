//! The checkpoint tree on disk: libvirt's layout, load of foreign and half-written
//! files, a SIGKILL crash test, and concurrent use from 8 threads.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use virtcheckpoint::{
    CheckpointDef, CheckpointList, DeleteOptions, ErrorCode, FormatOptions, ListOptions,
    MetadataDir, ParseOptions, apply_delete, format_checkpoint, parse_checkpoint,
};

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vcp-store-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn reference(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/libvirt-9.0-qmp")
        .join(name);
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn libvirt_files_load_and_save_byte_identical() {
    let base = tempdir("libvirt");
    let md = MetadataDir::new(&base, "lvtest2").unwrap();
    std::fs::create_dir_all(md.path()).unwrap();
    let files = [
        ("c1", "34_checkpoint_dumpxml_c1.xml"),
        ("c2", "37_checkpoint_dumpxml_c2.xml"),
        ("c3", "40_checkpoint_dumpxml_c3.xml"),
    ];
    for (name, src) in files {
        std::fs::write(md.path().join(format!("{name}.xml")), reference(src)).unwrap();
    }
    let (list, problems) = md.load().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        list.list(None, ListOptions::TOPOLOGICAL).unwrap(),
        ["c1", "c2", "c3"]
    );
    assert_eq!(list.current(), Some("c3"), "the only leaf is current");
    // Saving what was loaded writes libvirt's bytes again.
    let out = MetadataDir::new(&base, "copy").unwrap();
    for def in list.defs() {
        out.save(def).unwrap();
    }
    for (name, src) in files {
        let written = std::fs::read_to_string(out.path().join(format!("{name}.xml"))).unwrap();
        assert_eq!(written, reference(src), "{name}");
    }
    out.remove("c2").unwrap();
    out.remove("c2").unwrap(); // already gone: fine
    assert!(!out.path().join("c2.xml").exists());
    assert!(MetadataDir::new(&base, "../x").is_err());
    assert!(out.remove("../etc/passwd").is_err());
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn broken_and_foreign_files_are_reported_and_skipped() {
    let base = tempdir("broken");
    let md = MetadataDir::new(&base, "vm").unwrap();
    let mut good = CheckpointDef {
        name: "good".into(),
        creation_time: 10,
        ..Default::default()
    };
    md.save(&good).unwrap();
    good.name = "other".into();
    let full = format_checkpoint(
        &good,
        FormatOptions {
            secure: true,
            ..Default::default()
        },
    );
    std::fs::write(md.path().join("half.xml"), &full[..full.len() / 2]).unwrap();
    std::fs::write(md.path().join("garbage.xml"), b"\x00\xffnot xml").unwrap();
    std::fs::write(md.path().join("mismatch.xml"), &full).unwrap();
    std::fs::write(md.path().join(".vcp-tmp-x.xml"), "partial").unwrap();
    std::fs::write(md.path().join("README"), "not a checkpoint file").unwrap();
    let (list, problems) = md.load().unwrap();
    assert_eq!(list.list(None, ListOptions::default()).unwrap(), ["good"]);
    let mut reported: Vec<String> = problems
        .iter()
        .map(|p| p.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    reported.sort();
    assert_eq!(
        reported,
        [".vcp-tmp-x.xml", "garbage.xml", "half.xml", "mismatch.xml"]
    );
    let e = md
        .save(&CheckpointDef {
            name: "t0".into(),
            creation_time: -1,
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(
        e.message(),
        "invalid argument: checkpoint t0 has a negative creation time"
    );
    for p in &problems {
        assert!(!p.reason.is_empty());
    }
    assert!(problems.iter().any(|p| {
        p.reason
            .contains("holds checkpoint 'other', not 'mismatch'")
    }));
    std::fs::remove_dir_all(&base).unwrap();
}

const CRASH_NAMES: usize = 12;
const PAYLOAD: usize = 48 * 1024;

fn crash_def(i: usize, generation: u64) -> CheckpointDef {
    CheckpointDef {
        name: format!("c{i}"),
        description: Some(format!("gen {generation} {}", "x".repeat(PAYLOAD))),
        creation_time: 1_000 + i as i64,
        parent: (i > 0).then(|| format!("c{}", i - 1)),
        ..Default::default()
    }
}

/// The writer of the crash test. Run by the parent (which sets the variables), it
/// saves every checkpoint again and again, a generation at a time, until killed. Run
/// as an ordinary test, it writes three generations and checks that the folder then
/// holds exactly the last one, complete, and no temporary file.
#[test]
fn crash_writer_child() {
    let (dir, start, rounds) = match std::env::var("VCP_CRASH_WRITER_DIR") {
        Ok(dir) => {
            let start: u64 = std::env::var("VCP_CRASH_GEN").unwrap().parse().unwrap();
            (PathBuf::from(dir), start, u64::MAX - start)
        }
        Err(_) => (tempdir("writer"), 7, 3),
    };
    let md = MetadataDir::new(&dir, "vm").unwrap();
    for generation in start..start + rounds {
        for i in 0..CRASH_NAMES {
            md.save(&crash_def(i, generation)).unwrap();
        }
    }
    let (list, problems) = md.load().unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(list.len(), CRASH_NAMES);
    for i in 0..CRASH_NAMES {
        let def = list.get(&format!("c{i}")).unwrap();
        assert_eq!(
            def.description,
            crash_def(i, start + rounds - 1).description
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigkill_during_saves_never_loses_or_tears_a_file() {
    let base = tempdir("crash");
    let md = MetadataDir::new(&base, "vm").unwrap();
    for i in 0..CRASH_NAMES {
        md.save(&crash_def(i, 0)).unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let mut seed = Instant::now().elapsed().as_nanos() as u64 | 1;
    let mut last_gen = [0u64; CRASH_NAMES];
    let (mut kills, mut leftovers, mut advanced) = (0, 0, 0);
    for round in 0..210u64 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("VCP_CRASH_WRITER_DIR", &base)
            .env("VCP_CRASH_GEN", ((round + 1) * 1_000_000).to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(2_000 + seed % 25_000));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;

        let (list, problems) = md.load().unwrap();
        for p in &problems {
            assert!(
                p.reason.contains("leftover temporary file"),
                "round {round}: {p:?}"
            );
        }
        leftovers += problems.len();
        assert_eq!(
            list.len(),
            CRASH_NAMES,
            "round {round}: a checkpoint was lost"
        );
        for (i, seen) in last_gen.iter_mut().enumerate() {
            let def = list.get(&format!("c{i}")).unwrap();
            let desc = def.description.as_deref().unwrap();
            let (head, tail) = desc.split_at(desc.find(' ').unwrap() + 1);
            assert_eq!(head, "gen ");
            let generation: u64 = tail.split(' ').next().unwrap().parse().unwrap();
            assert_eq!(
                desc,
                crash_def(i, generation).description.unwrap(),
                "torn file c{i}"
            );
            assert!(generation >= *seen, "c{i} went back in time");
            if generation > *seen {
                advanced += 1;
            }
            *seen = generation;
            let text = std::fs::read(md.path().join(format!("c{i}.xml"))).unwrap();
            parse_checkpoint(
                &text,
                ParseOptions {
                    redefine: true,
                    ..ParseOptions::default()
                },
                0,
            )
            .unwrap();
        }
        assert_eq!(
            list.list(None, ListOptions::TOPOLOGICAL).unwrap().len(),
            CRASH_NAMES
        );
    }
    eprintln!(
        "crash test: {kills} SIGKILLs, {advanced} file updates seen, {leftovers} leftover temp files reported"
    );
    assert!(kills >= 200);
    assert!(
        advanced > 0,
        "the writer never got to write: the test proved nothing"
    );
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn eight_threads_with_their_own_lists() {
    let base = tempdir("threads");
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let base = base.clone();
            std::thread::spawn(move || {
                let md = MetadataDir::new(&base, &format!("vm{t}")).unwrap();
                let mut list = CheckpointList::new();
                for i in 0..150 {
                    let def = CheckpointDef {
                        name: format!("t{t}-c{i}"),
                        creation_time: i + 1,
                        ..Default::default()
                    };
                    list.add_created(def).unwrap();
                    md.save(list.get(&format!("t{t}-c{i}")).unwrap()).unwrap();
                }
                let plan = list
                    .plan_delete(
                        &format!("t{t}-c100"),
                        DeleteOptions {
                            children: true,
                            ..Default::default()
                        },
                    )
                    .unwrap();
                assert_eq!(plan.removed.len(), 50);
                list.apply_delete(&plan).unwrap();
                for name in &plan.removed {
                    md.remove(name).unwrap();
                }
                let (loaded, problems) = md.load().unwrap();
                assert!(problems.is_empty(), "{problems:?}");
                assert_eq!(
                    loaded.list(None, ListOptions::TOPOLOGICAL).unwrap(),
                    list.list(None, ListOptions::TOPOLOGICAL).unwrap()
                );
                assert_eq!(loaded.current(), Some(format!("t{t}-c99").as_str()));
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    std::fs::remove_dir_all(&base).unwrap();
}

/// A delete that rewrites two re-parented children, where the second file cannot be
/// written: nothing changes, neither the list nor any file (new versions are staged
/// before any is renamed into place).
#[test]
fn a_failed_metadata_update_changes_no_file_and_not_the_list() {
    let base = tempdir("atomic");
    let md = MetadataDir::new(&base, "vm").unwrap();
    let mut list = CheckpointList::new();
    for (name, parent) in [("a", None), ("b", Some("a")), ("c", Some("b"))] {
        let def = CheckpointDef {
            name: name.into(),
            parent: parent.map(str::to_owned),
            creation_time: 10,
            ..Default::default()
        };
        list.redefine(def).unwrap();
    }
    let mut d = list.get("c").unwrap().clone();
    d.name = "d".into();
    list.redefine(d).unwrap();
    for n in ["a", "b", "c", "d"] {
        md.save(list.get(n).unwrap()).unwrap();
    }
    let before: Vec<Vec<u8>> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| std::fs::read(md.path().join(format!("{n}.xml"))).unwrap())
        .collect();
    // Deleting b re-parents c and d to a; d's temporary name is taken by a folder.
    std::fs::create_dir(md.path().join(".vcp-tmp-d.xml")).unwrap();
    let plan = list.plan_delete("b", DeleteOptions::default()).unwrap();
    assert_eq!(plan.reparent.len(), 2);
    let snapshot = list.clone();
    let e = apply_delete(&mut list, &plan, Some(&md)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::SystemError, "{e}");
    assert_eq!(
        list.list(None, ListOptions::TOPOLOGICAL).unwrap(),
        snapshot.list(None, ListOptions::TOPOLOGICAL).unwrap()
    );
    assert_eq!(list.parent("c").unwrap(), Some("b"));
    for (n, old) in ["a", "b", "c", "d"].iter().zip(&before) {
        let now = std::fs::read(md.path().join(format!("{n}.xml"))).unwrap();
        assert_eq!(&now, old, "{n}.xml changed");
    }
    assert!(
        !md.path().join(".vcp-tmp-c.xml").exists(),
        "c's staged file was left"
    );
    // Once the obstacle is gone the same plan applies, to both.
    std::fs::remove_dir(md.path().join(".vcp-tmp-d.xml")).unwrap();
    apply_delete(&mut list, &plan, Some(&md)).unwrap();
    let (reloaded, problems) = md.load().unwrap();
    assert!(problems.is_empty());
    assert_eq!(reloaded.parent("c").unwrap(), Some("a"));
    assert_eq!(reloaded.parent("d").unwrap(), Some("a"));
    assert!(!reloaded.contains("b"));
    std::fs::remove_dir_all(&base).unwrap();
}
