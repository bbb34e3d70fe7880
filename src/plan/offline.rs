//! Checkpoint operations on a shut-off domain, as `qemu-img` argument vectors: the same
//! plans as online (same checks, same bitmaps), written for `qemu-img bitmap` instead
//! of a QMP transaction. libvirt only documents these steps for administrators; here
//! they are planned, so an offline domain's chain can be kept right too. Images
//! without node names (an inactive definition) are keyed by their file path, as the
//! node data read with `qemu-img info` is.

use super::{create, delete, size};
use crate::error::{Error, ErrorDomain, Result};
use crate::model::checkpoint::CheckpointDef;
use crate::model::domain::Domain;
use crate::model::nodes::NodeData;
use crate::qmp::action::Action;

/// One command line.
pub type Argv = Vec<String>;

fn file_of<'a>(dom: &'a Domain, node: &str) -> Result<(&'a str, &'a str)> {
    for d in &dom.disks {
        for image in &d.chain {
            if image.format_node == node {
                return Ok((&image.source, &image.format));
            }
        }
    }
    Err(Error::internal(format_args!(
        "node '{node}' belongs to no disk's chain"
    )))
}

fn argv(parts: &[&str]) -> Argv {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

/// Argument vectors as a JSON array of string arrays.
pub fn argv_json(cmds: &[Argv]) -> crate::qmp::json::Json {
    use crate::qmp::json::Json;
    Json::Arr(
        cmds.iter()
            .map(|c| Json::Arr(c.iter().map(|a| a.as_str().into()).collect()))
            .collect(),
    )
}

/// `qemu-img bitmap --remove FILE NAME`.
pub fn remove_argv(file: &str, name: &str) -> Argv {
    argv(&["qemu-img", "bitmap", "--remove", file, name])
}

/// Translates bitmap actions (planned against `dom`, whose format node names key the
/// images) into `qemu-img bitmap` commands. A merge becomes one `--merge` per source
/// (a source on the target image itself is a no-op and is left out).
pub fn to_qemu_img(actions: &[Action], dom: &Domain) -> Result<Vec<Argv>> {
    let mut out = Vec::new();
    for a in actions {
        match a {
            Action::BitmapAdd {
                node,
                name,
                disabled,
                granularity,
                ..
            } => {
                let (file, _) = file_of(dom, node)?;
                let mut v = argv(&["qemu-img", "bitmap", "--add"]);
                if *granularity > 0 {
                    v.extend(["-g".to_owned(), granularity.to_string()]);
                }
                if *disabled {
                    v.push("--disable".into());
                }
                v.extend([file.to_owned(), name.clone()]);
                out.push(v);
            }
            Action::BitmapRemove { node, name } => {
                let (file, _) = file_of(dom, node)?;
                out.push(remove_argv(file, name));
            }
            Action::BitmapMerge {
                node,
                target,
                bitmaps,
            } => {
                let (file, _) = file_of(dom, node)?;
                for src in bitmaps {
                    if src.node == *node && src.name == *target {
                        continue;
                    }
                    if src.node == *node {
                        // Same image: no -b (a second open would conflict with the lock).
                        out.push(argv(&[
                            "qemu-img", "bitmap", "--merge", &src.name, file, target,
                        ]));
                        continue;
                    }
                    let (src_file, src_fmt) = file_of(dom, &src.node)?;
                    let fmt = if src_fmt.is_empty() { "qcow2" } else { src_fmt };
                    out.push(argv(&[
                        "qemu-img", "bitmap", "--merge", &src.name, "-b", src_file, "-F", fmt,
                        file, target,
                    ]));
                }
            }
            Action::BlockdevSnapshot { .. } | Action::BlockdevBackup { .. } => {
                return Err(Error::invalid_arg(
                    ErrorDomain::Qemu,
                    "block jobs cannot run on a shut-off domain",
                ));
            }
        }
    }
    Ok(out)
}

/// Creating checkpoint `def` offline: `qemu-img bitmap --add TOP NAME` per disk, after
/// the same checks as online (`nodes` from the images' `qemu-img info`).
pub fn create_commands(dom: &Domain, def: &CheckpointDef, nodes: &NodeData) -> Result<Vec<Argv>> {
    let dom = &*dom.keyed_by_file();
    to_qemu_img(&create::add_actions(dom, def, Some(nodes))?, dom)
}

/// Deleting checkpoint `def` offline: `qemu-img bitmap --remove` on every layer that has
/// the bitmap. With `tolerate_missing`, disks without it are returned instead of
/// failing.
pub fn delete_commands(
    dom: &Domain,
    def: &CheckpointDef,
    nodes: &NodeData,
    tolerate_missing: bool,
) -> Result<(Vec<Argv>, Vec<String>)> {
    let dom = &*dom.keyed_by_file();
    let plan = delete::discard_actions(dom, def, nodes, tolerate_missing)?;
    Ok((to_qemu_img(&plan.actions, dom)?, plan.missing))
}

/// The offline size query's steps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SizeCommands {
    /// Build `libvirt-tmp-size-xml` on each measured disk's top image.
    pub merge: Vec<Argv>,
    /// Remove it again, once measured.
    pub cleanup: Vec<Argv>,
    /// The measured disks: (target, top image file).
    pub disks: Vec<(String, String)>,
}

/// The size query offline: run `merge`, measure `libvirt-tmp-size-xml` on each disk's
/// top image (`tools::dirty_bytes`), run `cleanup`.
pub fn size_commands(dom: &Domain, def: &CheckpointDef, nodes: &NodeData) -> Result<SizeCommands> {
    let dom = &*dom.keyed_by_file();
    let plan = size::size_actions(dom, def, nodes);
    let mut merge = to_qemu_img(&plan.recovery, dom)?;
    merge.extend(to_qemu_img(&plan.merge, dom)?);
    let cleanup = to_qemu_img(&plan.cleanup, dom)?;
    let disks = plan
        .disks
        .iter()
        .map(|(t, node)| Ok((t.clone(), file_of(dom, node)?.0.to_owned())))
        .collect::<Result<Vec<_>>>()?;
    Ok(SizeCommands {
        merge,
        cleanup,
        disks,
    })
}

/// An external snapshot offline: create the overlay over disk `target`'s top, then
/// re-create on it every persistent, recording, consistent bitmap of the top.
pub fn snapshot_commands(
    dom: &Domain,
    target: &str,
    overlay_file: &str,
    nodes: &NodeData,
) -> Result<Vec<Argv>> {
    let dom = &*dom.keyed_by_file();
    let top = dom.find_disk(target)?.top().ok_or_else(|| {
        Error::config_unsupported(ErrorDomain::Qemu, format_args!("disk '{target}' is empty"))
    })?;
    let mut out = vec![argv(&[
        "qemu-img",
        "create",
        "-q",
        "-f",
        "qcow2",
        "-b",
        &top.source,
        "-F",
        &top.format,
        overlay_file,
    ])];
    if let Some(node) = nodes.get(&top.format_node) {
        for b in node.bitmaps.iter().filter(|b| b.is_healthy()) {
            let mut v = argv(&["qemu-img", "bitmap", "--add"]);
            if b.granularity > 0 {
                v.extend(["-g".to_owned(), b.granularity.to_string()]);
            }
            v.extend([overlay_file.to_owned(), b.name.clone()]);
            out.push(v);
        }
    }
    Ok(out)
}

/// A block commit offline of `chain[top..base]` into `chain[base]` of disk `target`:
/// `qemu-img commit`; when the committed part is not the top of the chain, the image
/// above it rebased onto the base (`qemu-img rebase -u`: the data is the same, only its
/// backing reference changes), as libvirt's block commit rewrites the overlay's
/// backing; then the bitmaps carried into the base as online (every valid bitmap of
/// the top created on the base if missing and merged from each committed layer), or,
/// for a base that cannot hold them (raw, qcow2 v2), the copies of those bitmaps above
/// the committed layers removed, as online.
pub fn commit_commands(
    dom: &Domain,
    target: &str,
    top: usize,
    base: usize,
    nodes: &NodeData,
) -> Result<Vec<Argv>> {
    let dom = &*dom.keyed_by_file();
    let disk = dom.find_disk(target)?;
    super::commit::check_range(&disk.chain, top, base)?;
    let base_image = &disk.chain[base];
    let actions = if super::holds_bitmaps(base_image, nodes) {
        super::commit::blockcommit_bitmap_actions(&disk.chain, top, base, false, nodes)?
    } else {
        super::commit::commit_lost_bitmaps(&disk.chain, top, nodes).0
    };
    let mut out = vec![argv(&[
        "qemu-img",
        "commit",
        "-q",
        "-b",
        &base_image.source,
        &disk.chain[top].source,
    ])];
    if top > 0 {
        let fmt = if base_image.format.is_empty() {
            "qcow2"
        } else {
            &base_image.format
        };
        out.push(argv(&[
            "qemu-img",
            "rebase",
            "-u",
            "-F",
            fmt,
            "-b",
            &base_image.source,
            &disk.chain[top - 1].source,
        ]));
    }
    out.extend(to_qemu_img(&actions, dom)?);
    Ok(out)
}

/// A chain reset offline: `qemu-img bitmap --remove` of every bitmap on every layer.
pub fn reset_commands(dom: &Domain, nodes: &NodeData) -> Result<Vec<Argv>> {
    let dom = &*dom.keyed_by_file();
    let (actions, _) = super::step::reset_actions(dom, nodes);
    to_qemu_img(&actions, dom)
}
