//! `vcp_node_data`: a parsed `query-named-block-nodes` reply.

use std::ffi::{c_char, c_int, c_uint, c_ulonglong};

use super::memory::c_string;
use super::{
    arg_out, arg_ref, arg_str, boundary, check_flags, free_handle, into_handle, write_list,
    write_out,
};
use crate::error::{Error, ErrorDomain};
use crate::model::nodes::{Node, NodeData};
use crate::qmp;

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

fn count(n: usize) -> c_uint {
    c_uint::try_from(n).unwrap_or(c_uint::MAX)
}

fn find_node<'a>(nd: &'a NodeData, name: &str) -> Result<&'a Node, Error> {
    nd.get(name).ok_or_else(|| {
        Error::invalid_arg(
            ErrorDomain::Qemu,
            format_args!("node '{name}' not found in node data"),
        )
    })
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
    const F: &str = "vcp_node_data_parse_json";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: C caller passes a NUL-terminated string or NULL.
        let json = unsafe { arg_str(json, "json", F) }?;
        qmp::nodes::parse_node_data(json).map(|nd| into_handle(vcp_node_data(nd)))
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
/// and in `*count` (if not NULL) its length. Free with `vcp_string_list_free()`.
/// Returns 0, or -1 on error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_node_data_get_node_names(
    nodes: *const vcp_node_data,
    names: *mut *mut *mut c_char,
    count: *mut usize,
) -> c_int {
    const F: &str = "vcp_node_data_get_node_names";
    boundary(F, || {
        // SAFETY: handle from this library or NULL.
        let nd = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let out = arg_out(names, "names", F)?;
        let list: Vec<&str> = nd.nodes().iter().map(|n| n.name.as_str()).collect();
        // SAFETY: checked out-parameter; `count` is NULL or writable.
        unsafe { write_list(out, count, &list) }?;
        Ok(0)
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
    const F: &str = "vcp_node_data_get_node";
    boundary(F, || {
        // SAFETY: handle/string from the caller or NULL.
        let nd = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let name = unsafe { arg_str(node, "node", F) }?;
        let out = arg_out(info, "info", F)?;
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
        let value = vcp_node_info {
            flags,
            capacity: n.capacity,
            physical: n.physical,
            cluster_size: n.cluster_size,
            n_bitmaps: count(n.bitmaps.len()),
            n_snapshots: count(n.snapshots.len()),
        };
        // SAFETY: checked out-parameter.
        unsafe { write_out(out, value) };
        Ok(1)
    })
}

/// Stores in `*names` a new NULL-terminated array of the names of the bitmaps on node
/// `node`, in QEMU's order, and in `*count` (if not NULL) its length. Free with
/// `vcp_string_list_free()`. Returns 0, or -1 with VIR_ERR_INVALID_ARG if there is no
/// such node.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_node_data_get_bitmap_names(
    nodes: *const vcp_node_data,
    node: *const c_char,
    names: *mut *mut *mut c_char,
    count: *mut usize,
) -> c_int {
    const F: &str = "vcp_node_data_get_bitmap_names";
    boundary(F, || {
        // SAFETY: handle/string from the caller or NULL.
        let nd = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let name = unsafe { arg_str(node, "node", F) }?;
        let out = arg_out(names, "names", F)?;
        let n = find_node(nd, name)?;
        let list: Vec<&str> = n.bitmaps.iter().map(|b| b.name.as_str()).collect();
        // SAFETY: checked out-parameter; `count` is NULL or writable.
        unsafe { write_list(out, count, &list) }?;
        Ok(0)
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
    const F: &str = "vcp_node_data_get_bitmap";
    boundary(F, || {
        // SAFETY: handle/strings from the caller or NULL.
        let nd = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        let node = unsafe { arg_str(node, "node", F) }?;
        let bitmap = unsafe { arg_str(bitmap, "bitmap", F) }?;
        let out = arg_out(info, "info", F)?;
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
        unsafe { write_out(out, value) };
        Ok(1)
    })
}

/// The bitmap detection report of libvirt's test suite for this node data (nodes
/// `libvirt-<N>-format`, their bitmaps with flags, granularity and dirty count, and
/// internal snapshots). A new string; free with `vcp_free()`. NULL on error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_node_data_format_report(nodes: *const vcp_node_data) -> *mut c_char {
    const F: &str = "vcp_node_data_format_report";
    boundary(F, || {
        // SAFETY: handle from this library or NULL.
        let nd = &unsafe { arg_ref(nodes, "nodes", F) }?.0;
        c_string(&qmp::print::detect_report(nd))
    })
}
