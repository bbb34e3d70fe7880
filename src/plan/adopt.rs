//! Adopt: rebuild checkpoint metadata that was lost (a domain redefined from scratch
//! on every start, a transient domain, a lost metadata folder) from the images'
//! bitmaps alone, instead of removing them as orphans.
//!
//! Candidates are the bitmaps of no known checkpoint that form a valid chain from the
//! top of a disk (persistent, recording, consistent, no gap) and are no temporary
//! bitmap of libvirt's. In the "one bitmap per checkpoint" design every bitmap keeps
//! recording from its checkpoint on, so an older checkpoint's bitmap holds every
//! cluster a newer one holds: on each layer, its dirty count is at least the newer
//! one's, and it reaches at least as many layers down (a checkpoint made after a
//! snapshot starts on the overlay). That gives the order. Where two candidates cannot
//! be told apart (equal everywhere), or disks disagree, the order is not decided and
//! nothing is adopted: the caller is told why, rather than given a guess.

use std::cmp::Ordering;

use super::chain::{ChainState, chain_state};
use super::reconcile::is_temporary;
use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::model::checkpoint::{CheckpointDef, CheckpointDisk, DiskCheckpointKind};
use crate::model::domain::Domain;
use crate::model::nodes::NodeData;

/// What a bitmap looks like on one disk: its dirty count per layer, top first, down to
/// where it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Trace {
    counts: Vec<u64>,
}

/// `a` is older than `b` (its checkpoint came first) on this disk, newer, or the data
/// cannot tell.
fn compare(a: &Trace, b: &Trace) -> Option<Ordering> {
    let depth = a.counts.len().cmp(&b.counts.len());
    let shared = a.counts.len().min(b.counts.len());
    let mut order = depth;
    for i in 0..shared {
        match (order, a.counts[i].cmp(&b.counts[i])) {
            (_, Ordering::Equal) => {}
            (Ordering::Equal, o) => order = o,
            (o, p) if o != p => return None, // more on one layer, less on another
            _ => {}
        }
    }
    // Greater = older (more layers, more dirty data).
    (order != Ordering::Equal).then_some(order)
}

/// An adoption: the definitions to redefine, oldest first (each the parent of the
/// next), or why the order cannot be decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoption {
    /// The rebuilt definitions, oldest first, ready for `CheckpointList::redefine` and
    /// `MetadataDir::save` (creation times are the adoption time plus their rank:
    /// the real ones are lost).
    pub defs: Vec<CheckpointDef>,
}

/// Plans the adoption of every candidate bitmap of `dom` (see the module docs).
/// `known` are the names of the checkpoints the metadata still has: their bitmaps are
/// not candidates. The adopted chain continues from `parent` (the current checkpoint,
/// if any). Errors: VIR_ERR_OPERATION_INVALID when the order cannot be decided, with
/// the two bitmaps named.
pub fn adopt(
    dom: &Domain,
    nodes: &NodeData,
    known: &[&str],
    parent: Option<&str>,
    now: i64,
) -> Result<Adoption> {
    let dom = dom.keyed_by_file();
    // Candidate names, in the order first seen (top layers first, QEMU's order).
    let mut names: Vec<String> = Vec::new();
    for disk in &dom.disks {
        let Some(top) = disk.top() else { continue };
        let Some(node) = nodes.get(&top.format_node) else {
            continue;
        };
        for b in &node.bitmaps {
            if !known.contains(&b.name.as_str())
                && !is_temporary(&b.name)
                && !names.contains(&b.name)
                && crate::xml::checkpoint::is_valid_checkpoint_name(&b.name)
            {
                names.push(b.name.clone());
            }
        }
    }
    // Per candidate, per disk: its trace where its chain is valid.
    let traces: Vec<Vec<Option<Trace>>> = names
        .iter()
        .map(|name| {
            dom.disks
                .iter()
                .map(|disk| {
                    (chain_state(&disk.chain, name, nodes) == ChainState::Valid).then(|| Trace {
                        counts: disk
                            .chain
                            .iter()
                            .map_while(|i| nodes.bitmap(&i.format_node, name).map(|b| b.count))
                            .collect(),
                    })
                })
                .collect()
        })
        .collect();
    let mut candidates: Vec<usize> = (0..names.len())
        .filter(|&c| traces[c].iter().any(Option::is_some))
        .collect();
    // Order oldest first; every pair must be decided, the same way on every disk both
    // cover.
    let decide = |a: usize, b: usize| -> Result<Ordering> {
        let mut verdict = None;
        for (ta, tb) in traces[a].iter().zip(&traces[b]) {
            let (Some(ta), Some(tb)) = (ta, tb) else {
                continue;
            };
            let o = compare(ta, tb);
            match (verdict, o) {
                (_, None) => {
                    return Err(undecided(
                        &names[a],
                        &names[b],
                        "equal or crossing dirty counts",
                    ));
                }
                (None, Some(o)) => verdict = Some(o),
                (Some(v), Some(o)) if v != o => {
                    return Err(undecided(&names[a], &names[b], "disks disagree"));
                }
                _ => {}
            }
        }
        verdict.ok_or_else(|| undecided(&names[a], &names[b], "no disk holds both"))
    };
    for i in 0..candidates.len() {
        for j in i + 1..candidates.len() {
            decide(candidates[i], candidates[j])?;
        }
    }
    candidates.sort_by(|&a, &b| decide(b, a).unwrap_or(Ordering::Equal));
    let mut defs = Vec::with_capacity(candidates.len());
    let mut prev = parent.map(str::to_owned);
    for (rank, &c) in candidates.iter().enumerate() {
        let name = names[c].clone();
        let disks = dom
            .disks
            .iter()
            .zip(&traces[c])
            .map(|(d, t)| CheckpointDisk {
                name: d.target.clone(),
                kind: if t.is_some() {
                    DiskCheckpointKind::Bitmap
                } else {
                    DiskCheckpointKind::No
                },
                bitmap: t.is_some().then(|| name.clone()),
                size: None,
            })
            .collect();
        defs.push(CheckpointDef {
            name: name.clone(),
            description: Some("adopted from the bitmaps in the images".into()),
            parent: prev.replace(name),
            creation_time: now + rank as i64,
            disks,
            domain_xml: None,
        });
    }
    Ok(Adoption { defs })
}

fn undecided(a: &str, b: &str, why: &str) -> Error {
    Error::new(
        ErrorCode::OperationInvalid,
        ErrorDomain::Qemu,
        format_args!(
            "cannot tell whether bitmap '{a}' or '{b}' is the older checkpoint ({why}): not adopting"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::domain::{Disk, Image};
    use crate::qmp::nodes::parse_node_data;

    fn dom(layers: u32) -> Domain {
        let mut d = Domain::default();
        d.add_disk(Disk {
            target: "vda".into(),
            ..Default::default()
        })
        .unwrap();
        for i in (1..=layers).rev() {
            d.append_image("vda", Image::qcow2_indexed(format!("/i/{i}"), i))
                .unwrap();
        }
        d
    }

    fn nodes(layers: &[(u32, &[(&str, u64)])]) -> NodeData {
        let entries: Vec<String> = layers
            .iter()
            .map(|(i, bs)| {
                let b: Vec<String> = bs
                    .iter()
                    .map(|(n, c)| {
                        format!(r#"{{"name":"{n}","recording":true,"persistent":true,"count":{c},"granularity":65536}}"#)
                    })
                    .collect();
                format!(
                    r#"{{"node-name":"libvirt-{i}-format","image":{{"virtual-size":1}},"dirty-bitmaps":[{}]}}"#,
                    b.join(",")
                )
            })
            .collect();
        parse_node_data(&format!("[{}]", entries.join(","))).unwrap()
    }

    #[test]
    fn orders_by_dirty_data_and_depth() {
        // c1 and c2 on the base, c3 after the snapshot on the overlay only.
        let n = nodes(&[
            (2, &[("c3", 65536), ("c1", 131072), ("c2", 131072)]),
            (1, &[("c1", 3 << 16), ("c2", 1 << 16), ("backup-vda", 0)]),
        ]);
        let a = adopt(&dom(2), &n, &[], None, 100).unwrap();
        let names: Vec<&str> = a.defs.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["c1", "c2", "c3"]);
        assert_eq!(a.defs[0].parent, None);
        assert_eq!(a.defs[2].parent.as_deref(), Some("c2"));
        assert_eq!(a.defs[1].creation_time, 101);
    }

    #[test]
    fn refuses_to_guess() {
        let n = nodes(&[(1, &[("a", 65536), ("b", 65536)])]);
        let e = adopt(&dom(1), &n, &[], None, 1).unwrap_err();
        assert_eq!(e.code(), ErrorCode::OperationInvalid);
        assert!(e.message().contains("'a' or 'b'"), "{e}");
        // Known checkpoints are not candidates; the rest continue from the current one.
        let a = adopt(&dom(1), &n, &["a"], Some("a"), 1).unwrap();
        assert_eq!(a.defs.len(), 1);
        assert_eq!(a.defs[0].parent.as_deref(), Some("a"));
    }
}
