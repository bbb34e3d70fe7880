//! `query-named-block-nodes` (`flat: true`) reply -> [`NodeData`], with libvirt's rules
//! (qemuMonitorJSONBlockGetNamedNodeDataWorker, SPEC section 13).
//!
//! The reply is streamed once into borrowed, typed records; members of the wrong JSON
//! type count as absent, exactly as libvirt's getters treat them. An entry without a
//! string `node-name`, an `image` object or a numeric `image.virtual-size` fails the
//! whole parse.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::lenient::{Arr, LBool, LStr, LU64, Obj, Scalar};
use crate::error::{Error, ErrorCode, ErrorDomain, Result};
use crate::model::driver::DetectZeroes;
use crate::model::nodes::{Bitmap, InternalSnapshot, Node, NodeData};

const NOT_EXPECTED: &str = "query-named-block-nodes entry was not in expected format";

/// The largest reply accepted, in bytes (64 MiB: some 14 times the reply of 8 disks x
/// 16 layers x 500 checkpoints). A larger one is refused before it is read.
pub const MAX_NODE_JSON: usize = 64 << 20;

fn nul_error(what: &str, name: &str) -> Error {
    Error::internal(format_args!(
        "query-named-block-nodes: {what} '{}' contains a NUL character",
        name.replace('\0', "\\0")
    ))
}

#[derive(Deserialize, Default)]
struct RawNode<'a> {
    #[serde(rename = "node-name", borrow, default)]
    node_name: Scalar<'a>,
    #[serde(borrow, default)]
    image: Obj<RawImage<'a>>,
    #[serde(rename = "dirty-bitmaps", default)]
    dirty_bitmaps: Arr<Obj<BitmapFields>>,
    #[serde(borrow, default)]
    detect_zeroes: LStr<'a>,
}

/// The members of a bitmap entry that libvirt reads.
enum BitmapKey {
    Name,
    Recording,
    Busy,
    Persistent,
    Inconsistent,
    Granularity,
    Count,
    Other,
}

impl<'de> Deserialize<'de> for BitmapKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = BitmapKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }

            fn visit_str<E>(self, v: &str) -> std::result::Result<BitmapKey, E> {
                Ok(match v {
                    "name" => BitmapKey::Name,
                    "recording" => BitmapKey::Recording,
                    "busy" => BitmapKey::Busy,
                    "persistent" => BitmapKey::Persistent,
                    "inconsistent" => BitmapKey::Inconsistent,
                    "granularity" => BitmapKey::Granularity,
                    "count" => BitmapKey::Count,
                    _ => BitmapKey::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// The members of one `dirty-bitmaps` object, read straight into a [`Bitmap`] (one is
/// read per bitmap, so no intermediate record): `None` without a string `name`;
/// wrongly typed members count as absent (false / 0). Non-objects are skipped by the
/// surrounding [`Obj`].
struct BitmapFields(Option<Bitmap>);

impl<'de> Deserialize<'de> for BitmapFields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BitmapFields;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a dirty bitmap object")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<BitmapFields, A::Error> {
                let mut b = Bitmap::default();
                let mut named = false;
                while let Some(key) = map.next_key::<BitmapKey>()? {
                    let flag = |v: LBool| v.0.unwrap_or(false);
                    match key {
                        BitmapKey::Name => {
                            let n = map.next_value::<LStr<'de>>()?;
                            named = n.0.is_some();
                            b.name = n.0.map(Cow::into_owned).unwrap_or_default();
                        }
                        BitmapKey::Recording => b.recording = flag(map.next_value()?),
                        BitmapKey::Busy => b.busy = flag(map.next_value()?),
                        BitmapKey::Persistent => b.persistent = flag(map.next_value()?),
                        BitmapKey::Inconsistent => b.inconsistent = flag(map.next_value()?),
                        BitmapKey::Granularity => {
                            b.granularity = map.next_value::<LU64>()?.0.unwrap_or(0)
                        }
                        BitmapKey::Count => b.count = map.next_value::<LU64>()?.0.unwrap_or(0),
                        BitmapKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(BitmapFields(named.then_some(b)))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Deserialize, Default)]
struct RawImage<'a> {
    #[serde(rename = "virtual-size", borrow, default)]
    virtual_size: Scalar<'a>,
    #[serde(rename = "actual-size", borrow, default)]
    actual_size: Scalar<'a>,
    #[serde(rename = "cluster-size", borrow, default)]
    cluster_size: Scalar<'a>,
    #[serde(rename = "format-specific", borrow, default)]
    format_specific: Obj<RawFormatSpecific<'a>>,
    #[serde(borrow, default)]
    snapshots: Arr<Obj<RawSnapshot<'a>>>,
}

#[derive(Deserialize, Default)]
struct RawFormatSpecific<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Scalar<'a>,
    #[serde(borrow, default)]
    data: Obj<RawQcow2<'a>>,
}

#[derive(Deserialize, Default)]
struct RawQcow2<'a> {
    #[serde(borrow, default)]
    compat: Scalar<'a>,
    #[serde(rename = "extended-l2", borrow, default)]
    extended_l2: Scalar<'a>,
}

#[derive(Deserialize, Default)]
struct RawSnapshot<'a> {
    #[serde(borrow, default)]
    name: Scalar<'a>,
    #[serde(rename = "vm-state-size", borrow, default)]
    vm_state_size: Scalar<'a>,
}

#[derive(Deserialize, Default)]
struct RawQmpError<'a> {
    #[serde(borrow, default)]
    desc: Scalar<'a>,
}

/// What the top level held: the nodes, or QEMU's error description.
enum Reply {
    Nodes(NodeData),
    QmpError(String),
    NoReturn,
}

/// Set when a node was read but not accepted; the parse then stops.
type Refusal = std::cell::RefCell<Option<Error>>;

/// The array of nodes: each entry is converted as soon as it is read, so only one
/// node's borrowed records are alive at a time, never the whole reply's.
struct NodesSeed<'r>(&'r Refusal);

impl<'de> serde::de::DeserializeSeed<'de> for NodesSeed<'_> {
    type Value = NodeData;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<NodeData, D::Error> {
        d.deserialize_seq(NodesVisitor(self.0))
    }
}

struct NodesVisitor<'r>(&'r Refusal);

impl<'de> Visitor<'de> for NodesVisitor<'_> {
    type Value = NodeData;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of block nodes")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<NodeData, A::Error> {
        let mut data = NodeData::new();
        while let Some(entry) = seq.next_element::<Obj<RawNode<'de>>>()? {
            let accepted = entry
                .0
                .ok_or_else(format_error)
                .and_then(convert)
                .and_then(|node| {
                    data.insert(node).map_err(|dup| {
                        Error::new(
                            ErrorCode::InternalError,
                            ErrorDomain::None,
                            format_args!("Duplicate hash table key '{}'", dup.0.name),
                        )
                    })
                });
            if let Err(e) = accepted {
                *self.0.borrow_mut() = Some(e);
                return Err(serde::de::Error::custom("refused entry"));
            }
        }
        Ok(data)
    }
}

struct ReplyVisitor<'r>(&'r Refusal);

impl<'de> Visitor<'de> for ReplyVisitor<'_> {
    type Value = Reply;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of block nodes or a QMP reply object")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> std::result::Result<Self::Value, A::Error> {
        NodesVisitor(self.0).visit_seq(seq).map(Reply::Nodes)
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut out = Reply::NoReturn;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "return" => out = Reply::Nodes(map.next_value_seed(NodesSeed(self.0))?),
                "error" => {
                    let e = map.next_value::<Obj<RawQmpError<'de>>>()?;
                    let desc =
                        e.0.as_ref()
                            .and_then(|e| e.desc.as_str())
                            .unwrap_or("unknown error")
                            .to_owned();
                    out = Reply::QmpError(desc);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

fn format_error() -> Error {
    Error::internal(NOT_EXPECTED)
}

fn convert(raw: RawNode<'_>) -> Result<Node> {
    let name = raw.node_name.as_str().ok_or_else(format_error)?;
    if name.contains('\0') {
        return Err(nul_error("node name", name));
    }
    let image = raw.image.0.ok_or_else(format_error)?;
    let capacity = image.virtual_size.as_u64().ok_or_else(format_error)?;
    let physical = image.actual_size.as_u64().unwrap_or(capacity);
    let cluster_size = image.cluster_size.as_u64().unwrap_or(0);

    let (mut qcow2v2, mut qcow2_extended_l2) = (false, false);
    if let Some(fs) = image.format_specific.0
        && fs.kind.as_str() == Some("qcow2")
        && let Some(data) = fs.data.0
    {
        qcow2v2 = data.compat.as_str() == Some("0.10");
        qcow2_extended_l2 = data.extended_l2.as_bool().unwrap_or(false);
    }

    let bitmaps: Vec<Bitmap> = raw
        .dirty_bitmaps
        .0
        .into_iter()
        .filter_map(|entry| entry.0.and_then(|fields| fields.0))
        .collect();
    if let Some(b) = bitmaps.iter().find(|b| b.name.contains('\0')) {
        return Err(nul_error("bitmap name", &b.name));
    }

    let snapshots = image
        .snapshots
        .0
        .into_iter()
        .filter_map(|s| s.0)
        .filter_map(|s| {
            Some(InternalSnapshot {
                name: s.name.as_str().filter(|n| !n.contains('\0'))?.to_owned(),
                vmstate: s.vm_state_size.as_u64().unwrap_or(0) > 0,
            })
        })
        .collect();

    Ok(Node {
        name: name.to_owned(),
        capacity,
        physical,
        cluster_size,
        bitmaps,
        snapshots,
        qcow2v2,
        qcow2_extended_l2,
        detect_zeroes: raw
            .detect_zeroes
            .0
            .as_deref()
            .and_then(DetectZeroes::from_name),
    })
}

/// Parses a `query-named-block-nodes` reply: either the bare array QEMU returns, or the
/// whole QMP reply object `{"return": [...], "id": ...}`.
///
/// Errors (VIR_ERR_INTERNAL_ERROR): text that is not JSON (with serde's position), a
/// QMP error reply, an entry not in the expected format, a duplicate node name.
pub fn parse_node_data(json: &str) -> Result<NodeData> {
    if json.len() > MAX_NODE_JSON {
        return Err(Error::internal(format_args!(
            "query-named-block-nodes reply of {} bytes exceeds the {MAX_NODE_JSON} byte limit",
            json.len()
        )));
    }
    let refusal = Refusal::default();
    let mut de = serde_json::Deserializer::from_str(json);
    let reply = de
        .deserialize_any(ReplyVisitor(&refusal))
        .and_then(|r| de.end().map(|()| r))
        .map_err(|e| {
            refusal
                .borrow_mut()
                .take()
                .unwrap_or_else(|| Error::internal(format_args!("cannot parse json: {e}")))
        })?;
    match reply {
        Reply::Nodes(data) => Ok(data),
        Reply::QmpError(desc) => Err(Error::internal(format_args!(
            "unable to execute QEMU command 'query-named-block-nodes': {desc}"
        ))),
        Reply::NoReturn => Err(Error::internal(
            "query-named-block-nodes reply was missing return data",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: &str = r#"[{"node-name":"n1","image":{"virtual-size":1048576,
        "cluster-size":65536,"format-specific":{"type":"qcow2","data":{"compat":"0.10"}},
        "snapshots":[{"name":"s1","vm-state-size":0},{"name":"s0","vm-state-size":12}]},
        "dirty-bitmaps":[{"name":"a","recording":true,"persistent":true,"busy":false,
        "granularity":65536,"count":131072},{"recording":true},{"name":"b","recording":"yes"}]}]"#;

    #[test]
    fn parses_bitmaps_flags_and_snapshots() {
        let nd = parse_node_data(ONE).unwrap();
        let n = nd.get("n1").unwrap();
        assert_eq!(n.capacity, 1048576);
        assert_eq!(n.physical, 1048576, "physical defaults to capacity");
        assert_eq!(n.cluster_size, 65536);
        assert!(n.qcow2v2);
        assert_eq!(n.bitmaps.len(), 2, "a bitmap without a name is skipped");
        let a = &n.bitmaps[0];
        assert!(a.recording && a.persistent && !a.busy && !a.inconsistent);
        assert_eq!((a.granularity, a.count), (65536, 131072));
        assert!(
            !n.bitmaps[1].recording,
            "wrongly typed boolean counts as false"
        );
        assert_eq!(n.snapshots.len(), 2);
        assert!(n.snapshots[1].vmstate && !n.snapshots[0].vmstate);
        assert_eq!(n.detect_zeroes, None, "not reported");
    }

    /// QEMU's `detect_zeroes` of each node: a known value, else not reported.
    #[test]
    fn reads_each_nodes_detect_zeroes() {
        let node = |name: &str, dz: &str| {
            format!(r#"{{"node-name":"{name}","image":{{"virtual-size":1}},"detect_zeroes":{dz}}}"#)
        };
        let nd = parse_node_data(&format!(
            "[{},{},{},{}]",
            node("u", r#""unmap""#),
            node("o", r#""off""#),
            node("n", "5"),
            node("b", r#""bogus""#)
        ))
        .unwrap();
        let dz = |n: &str| nd.get(n).unwrap().detect_zeroes;
        assert_eq!(dz("u"), Some(DetectZeroes::Unmap));
        assert_eq!(dz("o"), Some(DetectZeroes::Off));
        assert_eq!((dz("n"), dz("b")), (None, None));
    }

    #[test]
    fn accepts_whole_reply_object() {
        let reply = format!(r#"{{"return": {ONE}, "id": "libvirt-12"}}"#);
        assert_eq!(parse_node_data(&reply).unwrap().len(), 1);
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in [
            r#"[{"image":{"virtual-size":1}}]"#,
            r#"[{"node-name":7,"image":{"virtual-size":1}}]"#,
            r#"[{"node-name":"x"}]"#,
            r#"[{"node-name":"x","image":[]}]"#,
            r#"[{"node-name":"x","image":{"virtual-size":"1"}}]"#,
            r#"[{"node-name":"x","image":{"virtual-size":-1}}]"#,
            r#"[3]"#,
        ] {
            let e = parse_node_data(bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InternalError, "{bad}");
            assert_eq!(
                e.message(),
                format!("internal error: {NOT_EXPECTED}"),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_bad_json_duplicates_and_errors() {
        let e = parse_node_data(r#"[{"node-name":"x","#).unwrap_err();
        assert!(
            e.message()
                .starts_with("internal error: cannot parse json: ")
        );
        let dup = r#"[{"node-name":"x","image":{"virtual-size":1}},{"node-name":"x","image":{"virtual-size":1}}]"#;
        assert_eq!(
            parse_node_data(dup).unwrap_err().message(),
            "internal error: Duplicate hash table key 'x'"
        );
        let qerr = r#"{"error":{"class":"GenericError","desc":"boom"}}"#;
        assert!(
            parse_node_data(qerr)
                .unwrap_err()
                .message()
                .ends_with(": boom")
        );
        assert!(parse_node_data("{}").is_err());
        assert!(parse_node_data("[] x").is_err());
        let deep = "[".repeat(10000) + &"]".repeat(10000);
        assert!(parse_node_data(&deep).is_err());
    }
}
