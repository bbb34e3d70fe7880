//! Checkpoint metadata files in libvirt's layout: `<dir>/<domain>/<checkpoint>.xml`,
//! each the checkpoint formatted with SECURE and its `<domain>` (SPEC 2.4).
//!
//! Writes are atomic and durable: a temporary file in the same folder, fsync, rename
//! over the old file, fsync of the folder. A reader therefore sees the old or the new
//! complete file, never a mix, even if the writer is killed at any point.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::list::CheckpointList;
use crate::error::{Error, ErrorDomain, Result};
use crate::model::checkpoint::CheckpointDef;
use crate::xml::checkpoint::{
    FormatOptions, ParseOptions, format_checkpoint, is_valid_checkpoint_name, parse_checkpoint,
};

/// Prefix of temporary files; never a valid checkpoint name (leading '.').
const TMP_PREFIX: &str = ".vcp-tmp-";

/// The journal of pending checkpoints (created with a backup, not committed yet): one
/// name a line. Not a `*.xml` file, so libvirt and `load` pass it by.
const PENDING: &str = ".vcp-pending";

fn system(what: impl std::fmt::Display, e: &std::io::Error) -> Error {
    Error::system(ErrorDomain::Qemu, what, e)
}

/// A file found on load that is not a usable checkpoint, and why. Displayed as
/// `"<path>: <reason>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadProblem {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

impl std::fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// A domain's checkpoint metadata folder.
#[derive(Debug, Clone)]
pub struct MetadataDir {
    dir: PathBuf,
}

impl MetadataDir {
    /// The folder `<base>/<domain>` (created on first save).
    pub fn new(base: &Path, domain: &str) -> Result<Self> {
        if domain.is_empty() || domain.contains('/') || domain.starts_with('.') {
            return Err(Error::invalid_arg(
                ErrorDomain::Qemu,
                format_args!("domain name '{domain}' cannot be used as a folder name"),
            ));
        }
        Ok(MetadataDir {
            dir: base.join(domain),
        })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn file_for(&self, name: &str) -> Result<PathBuf> {
        if !is_valid_checkpoint_name(name) {
            return Err(Error::invalid_arg(
                ErrorDomain::Qemu,
                format_args!("checkpoint name '{name}' cannot be used as a file name"),
            ));
        }
        Ok(self.dir.join(format!("{name}.xml")))
    }

    fn sync_dir(&self) -> Result<()> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| {
                system(
                    format_args!("cannot sync folder '{}'", self.dir.display()),
                    &e,
                )
            })
    }

    /// Writes the checkpoint's file atomically and durably.
    pub fn save(&self, def: &CheckpointDef) -> Result<()> {
        self.commit(&[def], &[])
    }

    /// Writes the complete new version of `def` next to its file, durably, under a
    /// temporary name; returns (temporary, final) paths. Nothing visible changes.
    fn stage(&self, def: &CheckpointDef) -> Result<(PathBuf, PathBuf)> {
        let path = self.file_for(&def.name)?;
        if def.creation_time < 0 {
            // libvirt cannot load a checkpoint file with a negative <creationTime>.
            return Err(Error::invalid_arg(
                ErrorDomain::Qemu,
                format_args!("checkpoint {} has a negative creation time", def.name),
            ));
        }
        let text = format_checkpoint(
            def,
            FormatOptions {
                secure: true,
                ..FormatOptions::default()
            },
        );
        // One temporary name per checkpoint: a save killed half-way leaves at most
        // one leftover per checkpoint, which the next save of it replaces.
        let tmp = self.dir.join(format!("{TMP_PREFIX}{}.xml", def.name));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(system(
                format_args!("unable to save metadata for checkpoint {}", def.name),
                &e,
            ));
        }
        Ok((tmp, path))
    }

    /// Writes `saves` and removes the files of `removes` as one change: every new
    /// version is staged (written and synced under a temporary name) first, so that a
    /// failure there (a full disk, a bad name, no permission) leaves every file as it
    /// was; then the staged files are renamed into place, the removed ones deleted, and
    /// the folder synced.
    pub fn commit(&self, saves: &[&CheckpointDef], removes: &[String]) -> Result<()> {
        for name in removes {
            self.file_for(name)?;
        }
        if !saves.is_empty() {
            fs::create_dir_all(&self.dir).map_err(|e| {
                system(
                    format_args!("cannot create folder '{}'", self.dir.display()),
                    &e,
                )
            })?;
        }
        let mut staged: Vec<(PathBuf, PathBuf)> = Vec::with_capacity(saves.len());
        for def in saves {
            match self.stage(def) {
                Ok(s) => staged.push(s),
                Err(e) => {
                    for (tmp, _) in &staged {
                        let _ = fs::remove_file(tmp);
                    }
                    return Err(e);
                }
            }
        }
        for (i, (tmp, path)) in staged.iter().enumerate() {
            if let Err(e) = fs::rename(tmp, path) {
                for (t, _) in &staged[i..] {
                    let _ = fs::remove_file(t);
                }
                return Err(system(
                    format_args!("unable to save metadata '{}'", path.display()),
                    &e,
                ));
            }
        }
        let mut changed = !staged.is_empty();
        for name in removes {
            let path = self.file_for(name)?;
            match fs::remove_file(&path) {
                Ok(()) => changed = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(system(
                        format_args!("failed to remove checkpoint metadata '{}'", path.display()),
                        &e,
                    ));
                }
            }
        }
        if changed { self.sync_dir() } else { Ok(()) }
    }

    /// Removes the checkpoint's file (a missing file is not an error).
    pub fn remove(&self, name: &str) -> Result<()> {
        self.commit(&[], &[name.to_owned()])
    }

    /// The checkpoints marked pending (two-phase backup checkpoints), in the order they
    /// were marked. None when there is no journal.
    pub fn pending(&self) -> Result<Vec<String>> {
        match fs::read_to_string(self.dir.join(PENDING)) {
            Ok(text) => Ok(text
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(system(
                format_args!(
                    "cannot read the pending journal of '{}'",
                    self.dir.display()
                ),
                &e,
            )),
        }
    }

    /// Replaces the pending journal, atomically and durably (removed when empty).
    pub fn set_pending(&self, names: &[String]) -> Result<()> {
        let path = self.dir.join(PENDING);
        if names.is_empty() {
            return match fs::remove_file(&path) {
                Ok(()) => self.sync_dir(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(system(
                    format_args!("cannot remove '{}'", path.display()),
                    &e,
                )),
            };
        }
        for n in names {
            self.file_for(n)?;
        }
        fs::create_dir_all(&self.dir).map_err(|e| {
            system(
                format_args!("cannot create folder '{}'", self.dir.display()),
                &e,
            )
        })?;
        let tmp = self.dir.join(format!("{TMP_PREFIX}pending"));
        let text: String = names.iter().map(|n| format!("{n}\n")).collect();
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(system(
                format_args!("cannot write '{}'", path.display()),
                &e,
            ));
        }
        self.sync_dir()
    }

    /// Loads every `*.xml` file of the folder into a list (relations rebuilt, current
    /// chosen as libvirt does). Files that cannot be used — unparsable, half-written,
    /// named differently from the checkpoint inside, leftover temporary files — are
    /// skipped and returned with their path and reason. A missing folder is an empty
    /// list.
    pub fn load(&self) -> Result<(CheckpointList, Vec<LoadProblem>)> {
        let mut problems = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((CheckpointList::new(), problems));
            }
            Err(e) => {
                return Err(system(
                    format_args!("cannot read folder '{}'", self.dir.display()),
                    &e,
                ));
            }
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        let mut defs = Vec::with_capacity(paths.len());
        for path in paths {
            let Some(fname) = path.file_name().and_then(|f| f.to_str()).map(str::to_owned) else {
                problems.push(LoadProblem {
                    path,
                    reason: "file name is not UTF-8".into(),
                });
                continue;
            };
            if fname == PENDING {
                continue; // the pending journal, read by `pending`
            }
            if fname.starts_with(TMP_PREFIX) {
                problems.push(LoadProblem {
                    path,
                    reason: "leftover temporary file of an interrupted save".into(),
                });
                continue;
            }
            let Some(stem) = fname.strip_suffix(".xml") else {
                continue; // not ours: libvirt also reads only *.xml
            };
            match fs::read(&path) {
                Err(e) => problems.push(LoadProblem {
                    path,
                    reason: format!("cannot read: {e}"),
                }),
                Ok(bytes) => match parse_checkpoint(
                    &bytes,
                    ParseOptions {
                        redefine: true,
                        ..ParseOptions::default()
                    },
                    0,
                ) {
                    Err(e) => problems.push(LoadProblem {
                        path,
                        reason: e.to_string(),
                    }),
                    Ok(def) if def.name != stem => problems.push(LoadProblem {
                        path,
                        reason: format!("holds checkpoint '{}', not '{stem}'", def.name),
                    }),
                    Ok(def) => defs.push(def),
                },
            }
        }
        defs.sort_by(|a, b| {
            a.creation_time
                .cmp(&b.creation_time)
                .then(a.name.cmp(&b.name))
        });
        Ok((CheckpointList::from_defs(defs), problems))
    }
}
