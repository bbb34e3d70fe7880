//! libvirt conformance runner. Reads a manifest in the format of libvirt's CASES.json
//! (`VCP_CONFORMANCE_MANIFEST`, or the project's own copy), runs every case of every
//! kind through the library, compares with libvirt's expected output in libvirt's
//! printed format (SPEC section 16), prints one line per case and a final
//! `N passed, N failed`, and exits non-zero if any case failed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::Value;

mod support;
use support::xml2xml;
use virtcheckpoint::{
    Action, Image, MergeSpec, NodeData, actions_json, bitmap_chain_is_valid, bitmap_merge_actions,
    blockcommit_bitmap_actions, blockcopy_bitmap_actions, detect_report, discard_disk_bitmaps,
    parse_node_data,
};

struct Ctx {
    dir: PathBuf,
    manifest: Value,
}

type Outcome = Result<(), String>;

/// Runs one case of a kind.
type Runner = fn(&Ctx, &Value) -> Outcome;

impl Ctx {
    fn read(&self, rel: &str) -> Result<String, String> {
        std::fs::read_to_string(self.dir.join(rel)).map_err(|e| format!("cannot read {rel}: {e}"))
    }

    /// Node data by short name ("basic") or by path.
    fn nodes(&self, name: &str) -> Result<NodeData, String> {
        let rel = if name.ends_with(".json") {
            name.to_owned()
        } else {
            format!("tests/qemublocktestdata/bitmap/{name}.json")
        };
        parse_node_data(&self.read(&rel)?).map_err(|e| e.to_string())
    }

    /// The fake backing chain of the manifest, top first.
    fn chain(&self) -> Result<Vec<Image>, String> {
        let images = self.manifest["fake_chain"]["images"]
            .as_array()
            .ok_or("manifest has no fake_chain.images")?;
        let mut v: Vec<(u64, Image)> = images
            .iter()
            .map(|i| {
                (
                    i["index"].as_u64().unwrap_or(0),
                    Image {
                        source: i["path"].as_str().unwrap_or("").into(),
                        format: i["format"].as_str().unwrap_or("qcow2").into(),
                        format_node: i["nodeformat"].as_str().unwrap_or("").into(),
                        storage_node: i["nodestorage"].as_str().unwrap_or("").into(),
                        ..Default::default()
                    },
                )
            })
            .collect();
        v.sort_by_key(|(i, _)| *i);
        Ok(v.into_iter().map(|(_, i)| i).collect())
    }

    /// Position in the chain of the image with manifest index `index`.
    fn position(&self, index: u64) -> Result<usize, String> {
        let mut idx: Vec<u64> = self.manifest["fake_chain"]["images"]
            .as_array()
            .map(|a| a.iter().filter_map(|i| i["index"].as_u64()).collect())
            .unwrap_or_default();
        idx.sort_unstable();
        idx.iter()
            .position(|&i| i == index)
            .ok_or_else(|| format!("image {index} not in the fake chain"))
    }
}

fn pretty(actions: &[Action]) -> String {
    actions_json(actions).to_pretty()
}

/// virTestCompareToFile: equal, or equal but for a missing final newline; for JSON
/// printouts also equal when only the rendering of empty arrays differs (yajl printed
/// `[\n\n]`, json-c-era libvirt `[]`).
fn compare(actual: &str, expected: &str) -> Outcome {
    if actual == expected || format!("{actual}\n") == expected {
        return Ok(());
    }
    let squash = |s: &str| {
        let mut out = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            out.push(c);
            if c == '[' {
                let rest: String = chars.clone().collect();
                let trimmed = rest.trim_start();
                if trimmed.starts_with(']') {
                    let skip = rest.len() - trimmed.len();
                    for _ in 0..skip {
                        chars.next();
                    }
                }
            }
        }
        out
    };
    if squash(actual) == squash(expected) || format!("{}\n", squash(actual)) == squash(expected) {
        return Ok(());
    }
    let line = actual
        .lines()
        .zip(expected.lines())
        .position(|(a, e)| a != e)
        .unwrap_or(actual.lines().count().min(expected.lines().count()));
    Err(format!(
        "output differs from expected at line {}:\n--- actual\n{actual}--- expected\n{expected}",
        line + 1
    ))
}

fn s<'a>(case: &'a Value, key: &str) -> Result<&'a str, String> {
    case[key]
        .as_str()
        .ok_or_else(|| format!("case lacks '{key}'"))
}

fn run_detect(ctx: &Ctx, case: &Value) -> Outcome {
    let nd = ctx.nodes(s(case, "nodedata")?)?;
    compare(&detect_report(&nd), &ctx.read(s(case, "expected")?)?)
}

fn run_validate(ctx: &Ctx, case: &Value) -> Outcome {
    let nd = ctx.nodes(s(case, "nodedata")?)?;
    let got = bitmap_chain_is_valid(&ctx.chain()?, s(case, "bitmap")?, &nd);
    let want = case["expect"].as_bool().ok_or("case lacks 'expect'")?;
    if got == want {
        Ok(())
    } else {
        Err(format!("validity {got}, expected {want}"))
    }
}

fn run_backup(ctx: &Ctx, case: &Value) -> Outcome {
    let nd = ctx.nodes(s(case, "nodedata")?)?;
    let chain = ctx.chain()?;
    let actions = bitmap_merge_actions(
        &MergeSpec {
            chain: &chain,
            base: None,
            target: s(case, "target_node")?,
            bitmap: Some(s(case, "incremental")?),
            dst_name: Some(s(case, "target_bitmap")?),
            write_bitmap_src: None,
        },
        &nd,
    );
    compare(&pretty(&actions), &ctx.read(s(case, "expected")?)?)
}

fn run_delete(ctx: &Ctx, case: &Value) -> Outcome {
    let nd = ctx.nodes(s(case, "nodedata")?)?;
    let chain = ctx.chain()?;
    let out =
        match discard_disk_bitmaps(&chain, &nd, s(case, "delete_bitmap")?, s(case, "disk_dst")?) {
            Ok((actions, reopen)) => {
                let mut out = pretty(&actions);
                if !reopen.is_empty() {
                    out.push_str("reopen nodes:\n");
                    for i in reopen {
                        out.push_str(&chain[i].format_node);
                        out.push('\n');
                    }
                }
                out
            }
            Err(_) => "NULL\n".to_owned(),
        };
    compare(&out, &ctx.read(s(case, "expected")?)?)
}

fn run_blockcopy(ctx: &Ctx, case: &Value) -> Outcome {
    let nd = ctx.nodes(s(case, "nodedata")?)?;
    let chain = ctx.chain()?;
    let shallow = case["shallow"].as_bool().unwrap_or(false);
    let actions = blockcopy_bitmap_actions(&chain, s(case, "mirror_node")?, shallow, &nd);
    let out = if actions.is_empty() {
        String::new()
    } else {
        pretty(&actions)
    };
    compare(&out, &ctx.read(s(case, "expected")?)?)
}

fn run_blockcommit(ctx: &Ctx, case: &Value) -> Outcome {
    let nd = ctx.nodes(s(case, "nodedata")?)?;
    let chain = ctx.chain()?;
    let top = ctx.position(case["top"].as_u64().ok_or("case lacks 'top'")?)?;
    let base = ctx.position(case["base"].as_u64().ok_or("case lacks 'base'")?)?;
    let active = case["active"].as_bool().unwrap_or(top == 0);
    let actions =
        blockcommit_bitmap_actions(&chain, top, base, active, &nd).map_err(|e| e.to_string())?;
    let mut out = "merge bitmpas:\n".to_owned();
    if !actions.is_empty() {
        out.push_str(&pretty(&actions));
    }
    compare(&out, &ctx.read(s(case, "expected")?)?)
}

fn run_xml2xml(ctx: &Ctx, case: &Value) -> Outcome {
    xml2xml(&ctx.dir, case)
}

fn main() -> ExitCode {
    let manifest_path = std::env::var_os("VCP_CONFORMANCE_MANIFEST")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/conformance/CASES.json")
        });
    let text = match std::fs::read_to_string(&manifest_path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read manifest {}: {e}", manifest_path.display());
            println!("0 passed, 1 failed");
            return ExitCode::FAILURE;
        }
    };
    let manifest: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("manifest {} is not JSON: {e}", manifest_path.display());
            println!("0 passed, 1 failed");
            return ExitCode::FAILURE;
        }
    };
    let ctx = Ctx {
        dir: manifest_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        manifest,
    };
    let kinds: [(&str, Runner); 7] = [
        ("bitmap_detect", run_detect),
        ("bitmap_validate", run_validate),
        ("backup_incremental_merge", run_backup),
        ("checkpoint_delete", run_delete),
        ("bitmap_blockcopy", run_blockcopy),
        ("bitmap_blockcommit", run_blockcommit),
        ("checkpoint_xml2xml", run_xml2xml),
    ];
    let (mut passed, mut failed) = (0, 0);
    // A list of cases under a kind this runner does not know (a renamed or new kind)
    // is a failure per case, never a silent skip.
    if let Some(all) = ctx.manifest.as_object() {
        for (key, value) in all {
            if let Some(cases) = value.as_array()
                && !kinds.iter().any(|(k, _)| k == key)
            {
                for _ in cases {
                    failed += 1;
                }
                println!(
                    "FAIL {key}: {} case(s) of a kind this runner does not know",
                    cases.len()
                );
            }
        }
    }
    for (kind, run) in kinds {
        let Some(cases) = ctx.manifest[kind].as_array() else {
            continue;
        };
        let before = (passed, failed);
        for (i, case) in cases.iter().enumerate() {
            let name = case["name"].as_str().map(str::to_owned).unwrap_or_else(|| {
                format!(
                    "{}-{}",
                    case["nodedata"].as_str().unwrap_or("case"),
                    case["bitmap"].as_str().unwrap_or(&i.to_string())
                )
            });
            match run(&ctx, case) {
                Ok(()) => {
                    passed += 1;
                    println!("PASS {kind}/{name}");
                }
                Err(why) => {
                    failed += 1;
                    println!("FAIL {kind}/{name}: {why}");
                }
            }
        }
        println!(
            "kind {kind}: {} passed, {} failed",
            passed - before.0,
            failed - before.1
        );
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 && passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
