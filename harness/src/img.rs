//! `qemu-img` checks and image preparation.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::{HarnessError, Result, io};

fn run(args: &[&str]) -> Result<String> {
    let out = io(
        format!("run qemu-img {}", args.join(" ")),
        Command::new("qemu-img").args(args).output(),
    )?;
    if !out.status.success() {
        return Err(HarnessError::Other(format!(
            "qemu-img {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn p(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// The format the harness gives a file by its name: `raw` for `*.raw`, else `qcow2`.
pub fn format_of(path: &Path) -> &'static str {
    if path.extension().is_some_and(|e| e == "raw") {
        "raw"
    } else {
        "qcow2"
    }
}

/// `qemu-img create -f FORMAT [-o compat=0.10] [-b backing -F FORMAT] path size`: the
/// format by the file's name ([`format_of`]); a `*-v2.qcow2` file is qcow2 v2 (compat
/// 0.10, which cannot store persistent bitmaps).
pub fn create(path: &Path, size: u64, backing: Option<&Path>) -> Result<()> {
    let size = size.to_string();
    let mut args = vec!["create", "-q", "-f", format_of(path)];
    if p(path).ends_with("-v2.qcow2") {
        args.extend(["-o", "compat=0.10"]);
    }
    if let Some(b) = backing {
        args.extend(["-b", p(b), "-F", format_of(b)]);
    }
    args.extend([p(path), &size]);
    run(&args).map(drop)
}

/// `qemu-img info --output=json` (`-U` when `shared`).
pub fn info(path: &Path, shared: bool) -> Result<Value> {
    let mut args = vec!["info", "--output=json"];
    if shared {
        args.push("-U");
    }
    args.push(p(path));
    let text = run(&args)?;
    serde_json::from_str(&text).map_err(|e| HarnessError::Other(format!("qemu-img info: {e}")))
}

/// The persistent bitmaps stored in an image: (name, flags).
pub fn bitmaps(path: &Path) -> Result<Vec<(String, Vec<String>)>> {
    let v = info(path, false)?;
    Ok(v["format-specific"]["data"]["bitmaps"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|b| {
                    (
                        b["name"].as_str().unwrap_or("").to_owned(),
                        b["flags"]
                            .as_array()
                            .map(|f| {
                                f.iter()
                                    .filter_map(|x| x.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The byte ranges an image itself holds data for (its own allocated clusters, not
/// its backing file's), merged: `qemu-img map --output=json`.
pub fn allocated(path: &Path) -> Result<Vec<(u64, u64)>> {
    let text = run(&["map", "--output=json", p(path)])?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| HarnessError::Other(format!("map: {e}")))?;
    let mut out: Vec<(u64, u64)> = Vec::new();
    for e in v.as_array().into_iter().flatten() {
        if e["data"] == true && e["depth"] == 0 {
            let (s, l) = (
                e["start"].as_u64().unwrap_or(0),
                e["length"].as_u64().unwrap_or(0),
            );
            match out.last_mut() {
                Some(last) if last.0 + last.1 == s => last.1 += l,
                _ => out.push((s, l)),
            }
        }
    }
    Ok(out)
}

/// `qemu-img compare a b`: whether the guest-visible contents are identical.
pub fn same_content(a: &Path, b: &Path) -> Result<bool> {
    let out = io(
        "run qemu-img compare",
        Command::new("qemu-img")
            .args(["compare", "-q", p(a), p(b)])
            .output(),
    )?;
    match out.status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(HarnessError::Other(format!(
            "qemu-img compare: {}",
            String::from_utf8_lossy(&out.stderr)
        ))),
    }
}

/// `qemu-img rebase -u -b backing -F qcow2 path`.
pub fn rebase_unsafe(path: &Path, backing: &Path) -> Result<()> {
    run(&["rebase", "-u", "-b", p(backing), "-F", "qcow2", p(path)]).map(drop)
}

/// `qemu-img check`: whether the image is consistent.
pub fn check(path: &Path) -> Result<bool> {
    let out = io(
        "run qemu-img check",
        Command::new("qemu-img")
            .args(["check", "-q", p(path)])
            .output(),
    )?;
    Ok(out.status.success())
}

/// The 64 KiB clusters touched by `writes` (offset, length), merged into ranges: what an
/// incremental backup of those writes must hold.
pub fn clusters(writes: &[(u64, u64)]) -> Vec<(u64, u64)> {
    const K64: u64 = 64 * 1024;
    let mut set: Vec<u64> = writes
        .iter()
        .flat_map(|&(o, l)| o / K64..(o + l).div_ceil(K64))
        .collect();
    set.sort_unstable();
    set.dedup();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for c in set {
        match out.last_mut() {
            Some(last) if last.0 + last.1 == c * K64 => last.1 += K64,
            _ => out.push((c * K64, K64)),
        }
    }
    out
}
