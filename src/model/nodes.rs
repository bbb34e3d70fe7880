//! QEMU's block-node state as libvirt keeps it after `query-named-block-nodes`
//! (`qemuBlockNamedNodeData`): per node, its size, qcow2 flags, dirty bitmaps and
//! internal snapshots.

use std::collections::HashMap;

/// One dirty bitmap on a node, in the order QEMU listed it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bitmap {
    /// The bitmap's name.
    pub name: String,
    /// Whether the bitmap records new writes (`recording`).
    pub recording: bool,
    /// Whether a job holds the bitmap (`busy`).
    pub busy: bool,
    /// Whether QEMU stores the bitmap in the image (`persistent`).
    pub persistent: bool,
    /// Whether the bitmap was not saved cleanly (`inconsistent`).
    pub inconsistent: bool,
    /// Bytes covered by one bit.
    pub granularity: u64,
    /// Dirty bytes (`count`).
    pub count: u64,
}

impl Bitmap {
    /// The condition every layer of a valid checkpoint chain must meet (SPEC 1.4):
    /// recording, persistent and consistent.
    pub fn is_healthy(&self) -> bool {
        self.recording && self.persistent && !self.inconsistent
    }
}

/// An internal (qcow2) snapshot found on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalSnapshot {
    /// The snapshot's name.
    pub name: String,
    /// Whether it carries VM state (`vm-state-size > 0`).
    pub vmstate: bool,
}

/// One block node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    /// QEMU's `node-name`.
    pub name: String,
    /// `image.virtual-size`.
    pub capacity: u64,
    /// `image.actual-size`, or the capacity when QEMU gave none.
    pub physical: u64,
    /// `image.cluster-size`, 0 when absent.
    pub cluster_size: u64,
    /// Dirty bitmaps in QEMU's order (newest first, as QEMU lists them).
    pub bitmaps: Vec<Bitmap>,
    /// Internal snapshots in QEMU's order.
    pub snapshots: Vec<InternalSnapshot>,
    /// qcow2 with `compat: 0.10`: cannot hold persistent bitmaps.
    pub qcow2v2: bool,
    /// qcow2 with extended L2 entries.
    pub qcow2_extended_l2: bool,
    /// The zero-write detection QEMU reports for the node (`detect_zeroes`), when it
    /// reports one: which images libvirt opened with the disk's setting is its runtime
    /// state, which the status XML does not show.
    pub detect_zeroes: Option<crate::model::driver::DetectZeroes>,
}

impl Node {
    /// The first bitmap of that exact name (qemuBlockNamedNodeDataGetBitmapByName).
    pub fn bitmap(&self, name: &str) -> Option<&Bitmap> {
        self.bitmaps.iter().find(|b| b.name == name)
    }
}

/// All nodes of one `query-named-block-nodes` reply, looked up by name.
#[derive(Debug, Clone, Default)]
pub struct NodeData {
    nodes: Vec<Node>,
    index: HashMap<String, usize>,
    /// Per node with many bitmaps: (hash of name, position) sorted, for binary search,
    /// built on the first lookup; nodes with few bitmaps are searched linearly.
    bitmap_index: Vec<std::sync::OnceLock<Vec<(u64, u32)>>>,
}

/// FNV-1a: the bitmap index's hash. Names are short, so a hash without set-up cost
/// matters more than its quality; equal hashes are resolved by comparing names.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Nodes with more bitmaps than this get a name index.
const INDEX_BITMAPS_ABOVE: usize = 16;

/// Two node data are equal when they hold the same nodes in the same order (the lazy
/// lookup index does not count).
impl PartialEq for NodeData {
    fn eq(&self, other: &Self) -> bool {
        self.nodes == other.nodes
    }
}

impl Eq for NodeData {}

/// Returned by [`NodeData::insert`] when the name is already present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateNode(pub Node);

impl NodeData {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Unit tests' table: nodes by name with their bitmaps, in order.
    #[cfg(test)]
    pub(crate) fn of<'a>(nodes: impl IntoIterator<Item = (&'a str, Vec<Bitmap>)>) -> Self {
        let mut data = Self::new();
        for (name, bitmaps) in nodes {
            data.insert(Node {
                name: name.into(),
                bitmaps,
                ..Default::default()
            })
            .unwrap();
        }
        data
    }

    /// Adds a node; a second node of the same name is refused.
    pub fn insert(&mut self, node: Node) -> Result<(), DuplicateNode> {
        if self.index.contains_key(&node.name) {
            return Err(DuplicateNode(node));
        }
        self.index.insert(node.name.clone(), self.nodes.len());
        self.bitmap_index.push(std::sync::OnceLock::new());
        self.nodes.push(node);
        Ok(())
    }

    /// Appends `bitmap` to node `node` (for drivers that hold the parsed table and
    /// build node data in place). VIR_ERR_INVALID_ARG for an unknown node, an empty
    /// name or one with a NUL.
    pub fn add_bitmap(&mut self, node: &str, bitmap: Bitmap) -> crate::error::Result<()> {
        self.add_bitmaps(node, vec![bitmap])
    }

    /// Appends `bitmaps`, in order, to node `node`: all of them, or (on the errors of
    /// [`NodeData::add_bitmap`]) none.
    pub fn add_bitmaps(&mut self, node: &str, bitmaps: Vec<Bitmap>) -> crate::error::Result<()> {
        if bitmaps
            .iter()
            .any(|b| b.name.is_empty() || b.name.contains('\0'))
        {
            return Err(crate::error::Error::invalid_arg(
                crate::error::ErrorDomain::Qemu,
                "a bitmap needs a name without NUL characters",
            ));
        }
        let i = *self.index.get(node).ok_or_else(|| {
            crate::error::Error::invalid_arg(
                crate::error::ErrorDomain::Qemu,
                format_args!("node '{node}' not found in node data"),
            )
        })?;
        let list = &mut self.nodes[i].bitmaps;
        if list.is_empty() {
            *list = bitmaps;
        } else {
            list.extend(bitmaps);
        }
        self.bitmap_index[i] = std::sync::OnceLock::new();
        Ok(())
    }

    /// The node of that name (an empty name, a layer without a node, matches none).
    pub fn get(&self, name: &str) -> Option<&Node> {
        if name.is_empty() {
            return None;
        }
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    /// The node named `name`, or VIR_ERR_INVALID_ARG "node '%s' not found in node data".
    pub fn find(&self, name: &str) -> crate::error::Result<&Node> {
        self.get(name).ok_or_else(|| {
            crate::error::Error::invalid_arg(
                crate::error::ErrorDomain::Qemu,
                format_args!("node '{name}' not found in node data"),
            )
        })
    }

    /// The bitmap `bitmap` on node `node`, if both exist.
    pub fn bitmap(&self, node: &str, bitmap: &str) -> Option<&Bitmap> {
        if node.is_empty() {
            return None;
        }
        let i = *self.index.get(node)?;
        let n = &self.nodes[i];
        if n.bitmaps.len() <= INDEX_BITMAPS_ABOVE {
            return n.bitmap(bitmap);
        }
        let sorted = self.bitmap_index[i].get_or_init(|| {
            let mut v: Vec<(u64, u32)> = n
                .bitmaps
                .iter()
                .enumerate()
                .map(|(i, b)| (name_hash(&b.name), i as u32))
                .collect();
            v.sort_unstable();
            v
        });
        let h = name_hash(bitmap);
        let start = sorted.partition_point(|&(k, _)| k < h);
        // Equal hashes are sorted by position, so the first match is QEMU's first.
        sorted[start..]
            .iter()
            .take_while(|&&(k, _)| k == h)
            .map(|&(_, pos)| &n.bitmaps[pos as usize])
            .find(|b| b.name == bitmap)
    }

    /// Nodes in the order QEMU reported them.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the table has no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_duplicates() {
        let mut nd = NodeData::new();
        let n = Node {
            name: "libvirt-1-format".into(),
            bitmaps: vec![Bitmap {
                name: "a".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        nd.insert(n.clone()).unwrap();
        assert!(nd.insert(n).is_err());
        assert_eq!(nd.len(), 1);
        assert!(nd.bitmap("libvirt-1-format", "a").is_some());
        assert!(nd.bitmap("libvirt-1-format", "b").is_none());
        assert!(nd.bitmap("libvirt-2-format", "a").is_none());
        // A node with many bitmaps (indexed) finds the first of a name, as libvirt does.
        let mut big = Node {
            name: "big".into(),
            ..Default::default()
        };
        for i in 0..40 {
            big.bitmaps.push(Bitmap {
                name: format!("b{}", i % 30),
                count: i,
                ..Default::default()
            });
        }
        nd.insert(big).unwrap();
        assert_eq!(nd.bitmap("big", "b5").unwrap().count, 5);
        assert_eq!(nd.bitmap("big", "b29").unwrap().count, 29);
        assert!(nd.bitmap("big", "b30").is_none());
    }
}
