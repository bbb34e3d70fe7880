//! QMP transaction actions and commands, written in libvirt's member order
//! (qemu_monitor_json.c; SPEC section 14).

use super::json::Json;

/// `sync` of a `blockdev-backup` job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupSync {
    /// Copy everything.
    Full,
    /// Copy what the job's bitmap marks.
    Incremental,
    /// Copy nothing ahead of time (pull mode: the scratch image fills on write).
    None,
}

impl BackupSync {
    fn as_str(self) -> &'static str {
        match self {
            BackupSync::Full => "full",
            BackupSync::Incremental => "incremental",
            BackupSync::None => "none",
        }
    }
}

/// A source of a bitmap merge: bitmap `name` on node `node`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BitmapRef {
    /// Node name.
    pub node: String,
    /// Bitmap name.
    pub name: String,
}

/// One action of a QMP `transaction`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `block-dirty-bitmap-add`; `granularity` 0 means "let QEMU choose" (omitted).
    BitmapAdd {
        /// Node.
        node: String,
        /// Bitmap name.
        name: String,
        /// Stored in the image.
        persistent: bool,
        /// Created not recording.
        disabled: bool,
        /// Bytes per bit, 0 to omit.
        granularity: u64,
    },
    /// `block-dirty-bitmap-remove`.
    BitmapRemove {
        /// Node.
        node: String,
        /// Bitmap name.
        name: String,
    },
    /// `block-dirty-bitmap-merge`: ORs `bitmaps` into `node:target`.
    BitmapMerge {
        /// Node of the destination.
        node: String,
        /// Destination bitmap.
        target: String,
        /// Sources.
        bitmaps: Vec<BitmapRef>,
    },
    /// `blockdev-snapshot`: `overlay` goes on top of `node`.
    BlockdevSnapshot {
        /// The current top.
        node: String,
        /// The new overlay.
        overlay: String,
    },
    /// `blockdev-backup` with libvirt's fixed `auto-finalize: true, auto-dismiss: false`.
    BlockdevBackup {
        /// Source node (the disk's top).
        device: String,
        /// Job id.
        job_id: String,
        /// Target node (store or scratch).
        target: String,
        /// Sync mode.
        sync: BackupSync,
        /// The bitmap of an incremental job.
        bitmap: Option<String>,
    },
}

impl Action {
    /// The bitmap action `json` (`{"type":...,"data":{...}}`, as [`Action::to_json`]
    /// writes it) read back; `None` for any other action. A merge source given as a
    /// bare name (QMP's short form) is on the destination's node.
    pub fn bitmap_from_json(json: &Json) -> Option<Action> {
        let data = json.get("data")?;
        let s = |k: &str| data.get(k).and_then(Json::as_str).map(str::to_owned);
        match json.get("type")?.as_str()? {
            "block-dirty-bitmap-add" => Some(Action::BitmapAdd {
                node: s("node")?,
                name: s("name")?,
                persistent: data
                    .get("persistent")
                    .and_then(Json::as_bool)
                    .unwrap_or(false),
                disabled: data
                    .get("disabled")
                    .and_then(Json::as_bool)
                    .unwrap_or(false),
                granularity: match data.get("granularity") {
                    Some(Json::Num(g)) => *g,
                    _ => 0,
                },
            }),
            "block-dirty-bitmap-remove" => Some(Action::BitmapRemove {
                node: s("node")?,
                name: s("name")?,
            }),
            "block-dirty-bitmap-merge" => {
                let node = s("node")?;
                let bitmaps = data
                    .get("bitmaps")?
                    .as_array()?
                    .iter()
                    .map(|b| match b {
                        Json::Str(name) => Some(BitmapRef {
                            node: node.clone(),
                            name: name.clone(),
                        }),
                        b => Some(BitmapRef {
                            node: b.get("node")?.as_str()?.to_owned(),
                            name: b.get("name")?.as_str()?.to_owned(),
                        }),
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(Action::BitmapMerge {
                    node,
                    target: s("target")?,
                    bitmaps,
                })
            }
            _ => None,
        }
    }

    /// Shorthand for a removal.
    pub fn remove(node: &str, name: &str) -> Self {
        Action::BitmapRemove {
            node: node.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The action as `{"type": ..., "data": {...}}`.
    pub fn to_json(&self) -> Json {
        let (kind, data) = match self {
            Action::BitmapAdd {
                node,
                name,
                persistent,
                disabled,
                granularity,
            } => {
                let mut d = vec![
                    ("node", Json::from(node.as_str())),
                    ("name", name.as_str().into()),
                    ("persistent", (*persistent).into()),
                    ("disabled", (*disabled).into()),
                ];
                if *granularity > 0 {
                    d.push(("granularity", (*granularity).into()));
                }
                ("block-dirty-bitmap-add", d)
            }
            Action::BitmapRemove { node, name } => (
                "block-dirty-bitmap-remove",
                vec![
                    ("node", node.as_str().into()),
                    ("name", name.as_str().into()),
                ],
            ),
            Action::BitmapMerge {
                node,
                target,
                bitmaps,
            } => (
                "block-dirty-bitmap-merge",
                vec![
                    ("node", node.as_str().into()),
                    ("target", target.as_str().into()),
                    (
                        "bitmaps",
                        Json::Arr(
                            bitmaps
                                .iter()
                                .map(|b| {
                                    Json::Obj(vec![
                                        ("node", b.node.as_str().into()),
                                        ("name", b.name.as_str().into()),
                                    ])
                                })
                                .collect(),
                        ),
                    ),
                ],
            ),
            Action::BlockdevSnapshot { node, overlay } => (
                "blockdev-snapshot",
                vec![
                    ("node", node.as_str().into()),
                    ("overlay", overlay.as_str().into()),
                ],
            ),
            Action::BlockdevBackup {
                device,
                job_id,
                target,
                sync,
                bitmap,
            } => {
                let mut d = vec![
                    ("device", Json::from(device.as_str())),
                    ("job-id", job_id.as_str().into()),
                    ("target", target.as_str().into()),
                    ("sync", sync.as_str().into()),
                ];
                if let Some(b) = bitmap {
                    d.push(("bitmap", b.as_str().into()));
                }
                d.push(("auto-finalize", true.into()));
                d.push(("auto-dismiss", false.into()));
                ("blockdev-backup", d)
            }
        };
        Json::Obj(vec![("type", kind.into()), ("data", Json::Obj(data))])
    }

    /// The same operation as a stand-alone command (`{"execute": ..., "arguments": ...}`),
    /// as libvirt sends a backup's final bitmap removal.
    pub fn to_command(&self) -> Json {
        match self.to_json() {
            Json::Obj(mut m) if m.len() == 2 => {
                let data = m.pop().map(|(_, v)| v).unwrap_or(Json::Null);
                let kind = m.pop().map(|(_, v)| v).unwrap_or(Json::Null);
                Json::Obj(vec![("execute", kind), ("arguments", data)])
            }
            other => other,
        }
    }
}

/// The actions as a JSON array.
pub fn actions_json(actions: &[Action]) -> Json {
    Json::Arr(actions.iter().map(Action::to_json).collect())
}

/// The actions as an array of stand-alone commands (`{"execute":…,"arguments":…}`).
pub fn commands_json(actions: &[Action]) -> Json {
    Json::Arr(actions.iter().map(Action::to_command).collect())
}

/// `{"execute":"transaction","arguments":{"actions":[...]}}`.
pub fn transaction(actions: &[Action]) -> Json {
    Json::Obj(vec![
        ("execute", "transaction".into()),
        (
            "arguments",
            Json::Obj(vec![("actions", actions_json(actions))]),
        ),
    ])
}

/// Wraps a JSON array of actions as libvirt sends it:
/// `{"execute":"transaction","arguments":{"actions":<actions>}}`. Text that is not a
/// JSON array is VIR_ERR_INVALID_ARG.
pub fn wrap_transaction(actions: &str) -> crate::error::Result<String> {
    let trimmed = actions.trim();
    let is_array =
        trimmed.starts_with('[') && serde_json::from_str::<serde::de::IgnoredAny>(trimmed).is_ok();
    if !is_array {
        return Err(crate::error::Error::invalid_arg(
            crate::error::ErrorDomain::Qemu,
            "actions must be a JSON array",
        ));
    }
    Ok(format!(
        "{{\"execute\":\"transaction\",\"arguments\":{{\"actions\":{trimmed}}}}}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step's bitmap actions read back as they were planned (a driver runs them with
    /// its own builders); any other action is not a bitmap action.
    #[test]
    fn bitmap_actions_read_back_from_their_json() {
        let actions = [
            Action::BitmapAdd {
                node: "n".into(),
                name: "b".into(),
                persistent: true,
                disabled: true,
                granularity: 1 << 20,
            },
            Action::remove("n", "b"),
            Action::BitmapMerge {
                node: "n".into(),
                target: "t".into(),
                bitmaps: vec![BitmapRef {
                    node: "m".into(),
                    name: "b".into(),
                }],
            },
        ];
        for a in &actions {
            assert_eq!(Action::bitmap_from_json(&a.to_json()).as_ref(), Some(a));
        }
        let snapshot = Action::BlockdevSnapshot {
            node: "n".into(),
            overlay: "o".into(),
        };
        assert_eq!(Action::bitmap_from_json(&snapshot.to_json()), None);
        let short = Json::Obj(vec![
            ("type", "block-dirty-bitmap-merge".into()),
            (
                "data",
                Json::Obj(vec![
                    ("node", "n".into()),
                    ("target", "t".into()),
                    ("bitmaps", Json::Arr(vec!["b".into()])),
                ]),
            ),
        ]);
        assert_eq!(
            Action::bitmap_from_json(&short),
            Some(Action::BitmapMerge {
                node: "n".into(),
                target: "t".into(),
                bitmaps: vec![BitmapRef {
                    node: "n".into(),
                    name: "b".into()
                }],
            }),
            "a bare source name is on the destination's node"
        );
    }

    #[test]
    fn shapes_match_libvirt() {
        let a = Action::BitmapAdd {
            node: "libvirt-1-format".into(),
            name: "chk1".into(),
            persistent: true,
            disabled: false,
            granularity: 0,
        };
        assert_eq!(
            a.to_json().to_compact(),
            r#"{"type":"block-dirty-bitmap-add","data":{"node":"libvirt-1-format","name":"chk1","persistent":true,"disabled":false}}"#
        );
        let r = Action::remove("libvirt-1-format", "backup-vda");
        assert_eq!(
            r.to_command().to_compact(),
            r#"{"execute":"block-dirty-bitmap-remove","arguments":{"node":"libvirt-1-format","name":"backup-vda"}}"#
        );
        let b = Action::BlockdevBackup {
            device: "libvirt-1-format".into(),
            job_id: "backup-vda-libvirt-1-format".into(),
            target: "libvirt-3-format".into(),
            sync: BackupSync::Full,
            bitmap: None,
        };
        assert_eq!(
            b.to_json().to_compact(),
            r#"{"type":"blockdev-backup","data":{"device":"libvirt-1-format","job-id":"backup-vda-libvirt-1-format","target":"libvirt-3-format","sync":"full","auto-finalize":true,"auto-dismiss":false}}"#
        );
    }
}
