//! `qemu-img info --output=json --backing-chain` of a shut-off domain's images, read
//! into the same node data a running QEMU's `query-named-block-nodes` gives.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::domain::Domain;
use crate::model::nodes::{Bitmap, Node, NodeData};

/// Adds to `into` the nodes of disk `target`'s chain, read from the JSON array of
/// `qemu-img info --output=json --backing-chain` (each layer found by its file name, or
/// image i = layer i when the output has no names) and keyed by the chain's format node names (file paths for an inactive domain).
/// With `in_use`, the `in-use` flag means "open by the running QEMU", not
/// "inconsistent". On error `into` is unchanged.
pub fn nodes_from_image_info(
    dom: &Domain,
    target: &str,
    info: &str,
    in_use: bool,
    into: &mut NodeData,
) -> Result<()> {
    if info.len() > super::nodes::MAX_NODE_JSON {
        return Err(Error::internal(format_args!(
            "qemu-img info output of {} bytes exceeds the {} byte limit",
            info.len(),
            super::nodes::MAX_NODE_JSON
        )));
    }
    let dom = dom.keyed_by_file();
    let disk = dom.find_disk(target)?;
    let v: Value = serde_json::from_str(info)
        .map_err(|e| Error::internal(format_args!("cannot parse qemu-img info output: {e}")))?;
    let list: &[Value] = match &v {
        Value::Array(a) => a,
        Value::Object(_) => std::slice::from_ref(&v),
        _ => {
            return Err(Error::internal(
                "qemu-img info output is not an object or array",
            ));
        }
    };
    let mut found = Vec::with_capacity(disk.chain.len());
    // Each layer is matched by file name when qemu-img gives them (it follows the
    // images' real backing references, which may differ from a stale definition), by
    // position otherwise. A layer the images do not reach gets no node.
    let named = |image: &crate::model::domain::Image| {
        list.iter()
            .find(|e| e["filename"].as_str() == Some(image.source.as_str()))
    };
    // By name only when the names match the definition at all (the top at least);
    // otherwise (paths written differently) by position.
    let by_name = disk.chain.first().is_some_and(|top| named(top).is_some());
    for (layer, image) in disk.chain.iter().enumerate() {
        let entry = if by_name {
            named(image)
        } else {
            list.get(layer)
        };
        let Some(entry) = entry else { continue };
        let data = &entry["format-specific"]["data"];
        let bitmaps = data["bitmaps"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|b| {
                        let flags: Vec<&str> = b["flags"]
                            .as_array()
                            .map(|f| f.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        Some(Bitmap {
                            name: b["name"].as_str()?.to_owned(),
                            recording: flags.contains(&"auto"),
                            busy: false,
                            persistent: true,
                            inconsistent: !in_use && flags.contains(&"in-use"),
                            granularity: b["granularity"].as_u64().unwrap_or(0),
                            count: 0,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let node = Node {
            name: image.format_node.clone(),
            capacity: entry["virtual-size"].as_u64().unwrap_or(0),
            physical: entry["actual-size"].as_u64().unwrap_or(0),
            cluster_size: entry["cluster-size"].as_u64().unwrap_or(0),
            bitmaps,
            snapshots: Vec::new(),
            qcow2v2: entry["format-specific"]["type"] == "qcow2" && data["compat"] == "0.10",
            qcow2_extended_l2: data["extended-l2"] == true,
            detect_zeroes: None,
        };
        if into.get(&node.name).is_some() || found.iter().any(|n: &Node| n.name == node.name) {
            return Err(Error::internal(format_args!(
                "image node '{}' appears twice",
                node.name
            )));
        }
        found.push(node);
    }
    // All checked: nothing was added when an error was returned.
    for node in found {
        let _ = into.insert(node);
    }
    Ok(())
}
