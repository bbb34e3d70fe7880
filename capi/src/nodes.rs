//! `vcp_node_data`: a parsed `query-named-block-nodes` reply.

use std::ffi::{c_char, c_int, c_uint, c_ulonglong};

use crate::domain::vcp_domain;
use crate::memory::c_string;
use crate::{collect_sized, free_handle, guard, into_handle, write_list};
use virtcheckpoint::{
    Bitmap, DetectZeroes, Error, ErrorDomain, Node, NodeData, detect_report, nodes_from_image_info,
    parse_node_data,
};

/// QEMU's block-node state from one `query-named-block-nodes` reply (libvirt's
/// `qemuBlockNamedNodeData`). Opaque; free with `vcp_node_data_free()`.
pub struct vcp_node_data(pub(crate) NodeData);

/// The bitmap records new writes (`recording`).
pub const VCP_BITMAP_RECORDING: c_uint = 1 << 0;
/// A job holds the bitmap (`busy`).
pub const VCP_BITMAP_BUSY: c_uint = 1 << 1;
/// QEMU stores the bitmap in the image (`persistent`).
pub const VCP_BITMAP_PERSISTENT: c_uint = 1 << 2;
/// The bitmap was not saved cleanly and can only be removed (`inconsistent`).
pub const VCP_BITMAP_INCONSISTENT: c_uint = 1 << 3;

/// The image is qcow2 with `compat: 0.10`, which cannot store persistent bitmaps.
pub const VCP_NODE_QCOW2_V2: c_uint = 1 << 0;
/// The image is qcow2 with extended L2 entries.
pub const VCP_NODE_QCOW2_EXTENDED_L2: c_uint = 1 << 1;
/// QEMU reports the node's `detect_zeroes` as `off` (at most one `VCP_NODE_DETECT_ZEROES_*`;
/// none: not reported). A reopen of the image then carries what the domain says.
pub const VCP_NODE_DETECT_ZEROES_OFF: c_uint = 1 << 2;
/// QEMU reports the node's `detect_zeroes` as `on`: a reopen of the image carries it.
pub const VCP_NODE_DETECT_ZEROES_ON: c_uint = 1 << 3;
/// QEMU reports the node's `detect_zeroes` as `unmap`: a reopen of the image carries it.
pub const VCP_NODE_DETECT_ZEROES_UNMAP: c_uint = 1 << 4;

/// The `VCP_NODE_DETECT_ZEROES_*` flags, each with its value.
const DETECT_ZEROES: [(c_uint, DetectZeroes); 3] = [
    (VCP_NODE_DETECT_ZEROES_OFF, DetectZeroes::Off),
    (VCP_NODE_DETECT_ZEROES_ON, DetectZeroes::On),
    (VCP_NODE_DETECT_ZEROES_UNMAP, DetectZeroes::Unmap),
];

/// One bitmap's state, filled by `vcp_node_data_get_bitmap()`.
#[repr(C)]
pub struct vcp_bitmap_info {
    /// `VCP_BITMAP_*` bits.
    pub flags: c_uint,
    /// Bytes covered by one bit.
    pub granularity: c_ulonglong,
    /// Dirty bytes (QEMU's `count`).
    pub count: c_ulonglong,
}

/// One node's state, filled by `vcp_node_data_get_node()`.
#[repr(C)]
pub struct vcp_node_info {
    /// `VCP_NODE_*` bits.
    pub flags: c_uint,
    /// `image.virtual-size` in bytes.
    pub capacity: c_ulonglong,
    /// `image.actual-size` in bytes (the capacity when QEMU gave none).
    pub physical: c_ulonglong,
    /// `image.cluster-size` in bytes, 0 when unknown.
    pub cluster_size: c_ulonglong,
    /// Number of dirty bitmaps on the node.
    pub n_bitmaps: c_uint,
    /// Number of internal snapshots on the node.
    pub n_snapshots: c_uint,
}

fn small(n: usize) -> c_uint {
    c_uint::try_from(n).unwrap_or(c_uint::MAX)
}

/// Parses the reply of `query-named-block-nodes` (with `flat: true`): the bare array,
/// or the whole reply object `{"return": [...]}`. `flags` must be 0.
///
/// Returns a new handle, or NULL with VIR_ERR_INTERNAL_ERROR when the text is not JSON,
/// is a QMP error reply, has an entry without a string `node-name`, an `image` object
/// or a numeric `image.virtual-size` ("query-named-block-nodes entry was not in
/// expected format"), or names a node twice.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_node_data_parse_json(
    json: *const c_char,
    flags: c_uint,
) -> *mut vcp_node_data {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: C caller passes a NUL-terminated string or NULL.
        let json = unsafe { cx.str(json, "json") }?;
        parse_node_data(json).map(|nd| into_handle(vcp_node_data(nd)))
    })
}

/// Frees node data. NULL is accepted.
///
/// # Safety
/// `nodes` is NULL or a handle from `vcp_node_data_parse_json()` not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_node_data_free(nodes: *mut vcp_node_data) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(nodes) }
}

/// Stores in `*names` a new NULL-terminated array of every node name, in QEMU's order,
/// (free with `vcp_string_list_free()`). Returns their number, or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_node_data_get_node_names(
    nodes: *const vcp_node_data,
    names: *mut *mut *mut c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle from this library or NULL.
        let nd = &unsafe { cx.handle(nodes, "nodes") }?.0;
        let out = cx.out(names, "names")?;
        let list: Vec<&str> = nd.nodes().iter().map(|n| n.name.as_str()).collect();
        // SAFETY: the caller's out-parameter.
        unsafe { write_list(out, &list) }
    })
}

/// Fills `*info` with the state of node `node`. Returns 1 if the node exists, 0 if it
/// does not (`*info` untouched), -1 on error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_node_data_get_node(
    nodes: *const vcp_node_data,
    node: *const c_char,
    info: *mut vcp_node_info,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle/string from the caller or NULL.
        let nd = &unsafe { cx.handle(nodes, "nodes") }?.0;
        let name = unsafe { cx.str(node, "node") }?;
        let out = cx.out(info, "info")?;
        let Some(n) = nd.get(name) else {
            return Ok(0);
        };
        let mut flags = 0;
        if n.qcow2v2 {
            flags |= VCP_NODE_QCOW2_V2;
        }
        if n.qcow2_extended_l2 {
            flags |= VCP_NODE_QCOW2_EXTENDED_L2;
        }
        flags |= DETECT_ZEROES
            .iter()
            .find(|(_, z)| Some(*z) == n.detect_zeroes)
            .map_or(0, |(f, _)| *f);
        let value = vcp_node_info {
            flags,
            capacity: n.capacity,
            physical: n.physical,
            cluster_size: n.cluster_size,
            n_bitmaps: small(n.bitmaps.len()),
            n_snapshots: small(n.snapshots.len()),
        };
        // SAFETY: checked out-parameter.
        unsafe { out.put(value) };
        Ok(1)
    })
}

/// Stores in `*names` a new NULL-terminated array of the names of the bitmaps on node
/// `node`, in QEMU's order (free with `vcp_string_list_free()`). Returns their number,
/// or -1 with VIR_ERR_INVALID_ARG if there is no such node.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_node_data_get_bitmap_names(
    nodes: *const vcp_node_data,
    node: *const c_char,
    names: *mut *mut *mut c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle/string from the caller or NULL.
        let nd = &unsafe { cx.handle(nodes, "nodes") }?.0;
        let name = unsafe { cx.str(node, "node") }?;
        let out = cx.out(names, "names")?;
        let n = nd.find(name)?;
        let list: Vec<&str> = n.bitmaps.iter().map(|b| b.name.as_str()).collect();
        // SAFETY: the caller's out-parameter.
        unsafe { write_list(out, &list) }
    })
}

/// Fills `*info` with the state of bitmap `bitmap` on node `node` (the first of that
/// name, as libvirt looks it up). Returns 1 if found, 0 if the node or the bitmap does
/// not exist (`*info` untouched), -1 on error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_node_data_get_bitmap(
    nodes: *const vcp_node_data,
    node: *const c_char,
    bitmap: *const c_char,
    info: *mut vcp_bitmap_info,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle/strings from the caller or NULL.
        let nd = &unsafe { cx.handle(nodes, "nodes") }?.0;
        let node = unsafe { cx.str(node, "node") }?;
        let bitmap = unsafe { cx.str(bitmap, "bitmap") }?;
        let out = cx.out(info, "info")?;
        let Some(b) = nd.bitmap(node, bitmap) else {
            return Ok(0);
        };
        let mut flags = 0;
        for (set, bit) in [
            (b.recording, VCP_BITMAP_RECORDING),
            (b.busy, VCP_BITMAP_BUSY),
            (b.persistent, VCP_BITMAP_PERSISTENT),
            (b.inconsistent, VCP_BITMAP_INCONSISTENT),
        ] {
            if set {
                flags |= bit;
            }
        }
        let value = vcp_bitmap_info {
            flags,
            granularity: b.granularity,
            count: b.count,
        };
        // SAFETY: checked out-parameter.
        unsafe { out.put(value) };
        Ok(1)
    })
}

/// The bitmap detection report of libvirt's test suite for this node data (nodes
/// `libvirt-<N>-format`, their bitmaps with flags, granularity and dirty count, and
/// internal snapshots). A new string; free with `vcp_free()`. NULL on error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_node_data_format_report(nodes: *const vcp_node_data) -> *mut c_char {
    guard!(|cx| {
        // SAFETY: handle from this library or NULL.
        let nd = &unsafe { cx.handle(nodes, "nodes") }?.0;
        c_string(&detect_report(nd))
    })
}

/// `vcp_node_data_add_image_info()`: the images are open in a running QEMU (read with
/// `qemu-img info -U`), so their `in-use` flag does not mean inconsistent.
pub const VCP_IMAGE_INFO_IN_USE: c_uint = 1 << 0;

/// A new, empty node data, to fill from `qemu-img info` with
/// `vcp_node_data_add_image_info()` for a shut-off domain.
#[unsafe(no_mangle)]
pub extern "C" fn vcp_node_data_new() -> *mut vcp_node_data {
    guard!(|_cx| { Ok(into_handle(vcp_node_data(NodeData::new()))) })
}

/// Adds the bitmaps of disk `target`'s chain from the output of
/// `qemu-img info --output=json --backing-chain <top image>` (entry i = layer i). For
/// an inactive domain, images are keyed by their file path. `flags`:
/// `VCP_IMAGE_INFO_IN_USE`. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_node_data_add_image_info(
    nodes: *mut vcp_node_data,
    dom: *const vcp_domain,
    target: *const c_char,
    info_json: *const c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, VCP_IMAGE_INFO_IN_USE)?;
        // SAFETY: handles and C strings from the caller.
        let nodes = &mut unsafe { cx.handle_mut(nodes, "nodes") }?.0;
        let dom = &unsafe { cx.handle(dom, "dom") }?.0;
        let target = unsafe { cx.str(target, "target") }?;
        let info = unsafe { cx.str(info_json, "info_json") }?;
        nodes_from_image_info(dom, target, info, flags & VCP_IMAGE_INFO_IN_USE != 0, nodes)?;
        Ok(0)
    })
}

/// Adds node `name` to node data built in place (for drivers that hold QEMU's parsed
/// reply already): `capacity` its virtual size, `flags` `VCP_NODE_*`. A name given
/// twice is VIR_ERR_INTERNAL_ERROR, as in a reply. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_node_data_add_node(
    nodes: *mut vcp_node_data,
    name: *const c_char,
    capacity: c_ulonglong,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        let detect: Vec<DetectZeroes> = DETECT_ZEROES
            .iter()
            .filter(|(f, _)| flags & f != 0)
            .map(|(_, z)| *z)
            .collect();
        cx.flags(
            flags,
            DETECT_ZEROES.iter().fold(
                VCP_NODE_QCOW2_V2 | VCP_NODE_QCOW2_EXTENDED_L2,
                |a, (f, _)| a | f,
            ),
        )?;
        if detect.len() > 1 {
            return Err(Error::invalid_arg(
                ErrorDomain::Qemu,
                "a node has one detect_zeroes: at most one VCP_NODE_DETECT_ZEROES_* flag",
            ));
        }
        // SAFETY: handle and C string from the caller.
        let (nd, name) = unsafe { (&mut cx.handle_mut(nodes, "nodes")?.0, cx.str(name, "name")?) };
        let node = Node {
            name: name.to_owned(),
            capacity,
            physical: capacity,
            qcow2v2: flags & VCP_NODE_QCOW2_V2 != 0,
            qcow2_extended_l2: flags & VCP_NODE_QCOW2_EXTENDED_L2 != 0,
            detect_zeroes: detect.first().copied(),
            ..Node::default()
        };
        nd.insert(node)
            .map_err(|d| Error::internal(format_args!("node '{}' appears twice", d.0.name)))?;
        Ok(0)
    })
}

/// Appends bitmap `name` to node `node` of node data built in place: `flags`
/// `VCP_BITMAP_*`, its granularity and dirty count. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_node_data_add_bitmap(
    nodes: *mut vcp_node_data,
    node: *const c_char,
    name: *const c_char,
    flags: c_uint,
    granularity: c_ulonglong,
    count: c_ulonglong,
) -> c_int {
    guard!(|cx| {
        cx.flags(
            flags,
            VCP_BITMAP_RECORDING
                | VCP_BITMAP_BUSY
                | VCP_BITMAP_PERSISTENT
                | VCP_BITMAP_INCONSISTENT,
        )?;
        // SAFETY: handle and C strings from the caller.
        let (nd, node, name) = unsafe {
            (
                &mut cx.handle_mut(nodes, "nodes")?.0,
                cx.str(node, "node")?,
                cx.str(name, "name")?,
            )
        };
        nd.add_bitmap(node, bitmap_of(name, flags, granularity, count))?;
        Ok(0)
    })
}

/// One bitmap to add with `vcp_node_data_add_bitmaps()`.
#[repr(C)]
pub struct vcp_bitmap_entry {
    /// The bitmap's name.
    pub name: *const c_char,
    /// `VCP_BITMAP_*` bits.
    pub flags: c_uint,
    /// Bytes covered by one bit.
    pub granularity: c_ulonglong,
    /// Dirty bytes (QEMU's `count`).
    pub count: c_ulonglong,
}

/// Appends the `n` bitmaps of `bitmaps`, in order, to node `node` of node data built
/// in place: `vcp_node_data_add_bitmap()` for a whole node in one call (a driver
/// copying its parsed reply). Checked before anything is added: on error the node is
/// unchanged. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_node_data_add_bitmaps(
    nodes: *mut vcp_node_data,
    node: *const c_char,
    bitmaps: *const vcp_bitmap_entry,
    n: usize,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle, C string and array from the caller.
        let (nd, node, entries) = unsafe {
            (
                &mut cx.handle_mut(nodes, "nodes")?.0,
                cx.str(node, "node")?,
                cx.slice(bitmaps, n, "bitmaps")?,
            )
        };
        let all = VCP_BITMAP_RECORDING
            | VCP_BITMAP_BUSY
            | VCP_BITMAP_PERSISTENT
            | VCP_BITMAP_INCONSISTENT;
        let list = collect_sized(entries.iter().map(|e| {
            cx.flags(e.flags, all)?;
            // SAFETY: each entry's name is a C string per the contract.
            let name = unsafe { cx.str(e.name, "bitmap name") }?;
            Ok(bitmap_of(name, e.flags, e.granularity, e.count))
        }))?;
        nd.add_bitmaps(node, list)?;
        Ok(0)
    })
}

fn bitmap_of(name: &str, flags: c_uint, granularity: u64, count: u64) -> Bitmap {
    Bitmap {
        name: name.to_owned(),
        recording: flags & VCP_BITMAP_RECORDING != 0,
        busy: flags & VCP_BITMAP_BUSY != 0,
        persistent: flags & VCP_BITMAP_PERSISTENT != 0,
        inconsistent: flags & VCP_BITMAP_INCONSISTENT != 0,
        granularity,
        count,
    }
}
