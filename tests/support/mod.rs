//! Helpers shared by the integration tests.

use std::path::Path;

use serde_json::Value;
use virtcheckpoint::{
    CheckpointDisk, DiskCheckpointKind, FormatOptions, ParseOptions, format_checkpoint,
    parse_checkpoint,
};

/// libvirt's qemudomaincheckpointxml2xmltest for one case of the manifest: parse,
/// apply the test's tweaks, format with SECURE (+SIZE), compare with the expected file.
pub fn xml2xml(dir: &Path, case: &Value) -> Result<(), String> {
    let read = |key: &str| -> Result<String, String> {
        let rel = case[key]
            .as_str()
            .ok_or_else(|| format!("case lacks '{key}'"))?;
        std::fs::read_to_string(dir.join(rel)).map_err(|e| format!("cannot read {rel}: {e}"))
    };
    let input = read("input")?;
    let flags = ParseOptions {
        redefine: case["parse_redefine"].as_bool().unwrap_or(false),
        ..ParseOptions::default()
    };
    let now = case["mock_creation_time"].as_i64().unwrap_or(0);
    let parsed = parse_checkpoint(input.as_bytes(), flags, now);
    if case["kind"].as_str() == Some("invalid")
        || case["expect_parse_failure"].as_bool().unwrap_or(false)
    {
        return match parsed {
            Err(_) => Ok(()),
            Ok(_) => Err("parse succeeded, expected a failure".into()),
        };
    }
    let mut def = parsed.map_err(|e| e.to_string())?;
    if case["set_parent"].as_bool().unwrap_or(false) {
        if def.parent.is_some() {
            return Err("input already had a parent".into());
        }
        def.parent = Some("1525111885".into());
    }
    if case["vda_bitmap"].as_bool().unwrap_or(false) {
        def.disks.push(CheckpointDisk::default());
        let first = &mut def.disks[0];
        if first.name.is_empty() {
            first.name = "vda".into();
            first.kind = DiskCheckpointKind::Bitmap;
        } else if first.name != "vda" {
            return Err(format!("first disk is '{}', not 'vda'", first.name));
        }
        if first.bitmap.is_some() {
            return Err("first disk already has a bitmap".into());
        }
        first.bitmap = Some(def.name.clone());
    }
    let mut fmt = FormatOptions {
        secure: true,
        ..Default::default()
    };
    if case["size"].as_bool().unwrap_or(false) {
        def.disks[0].size = Some(1048576);
        fmt.size = true;
    }
    let out = format_checkpoint(&def, fmt);
    let expected = read("expected")?;
    if out == expected || format!("{out}\n") == expected {
        Ok(())
    } else {
        Err(format!("--- actual\n{out}--- expected\n{expected}"))
    }
}
