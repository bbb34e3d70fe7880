//! `vcp_domain`: a domain's disks and backing chains with node names.

use std::ffi::{c_char, c_int, c_uint};

use super::{
    arg_bytes, arg_mut, arg_opt_str, arg_out, arg_ref, arg_str, boundary, check_flags, free_handle,
    into_handle, write_list,
};
use crate::error::{Error, ErrorDomain};
use crate::model::domain::{Disk, Domain, Image};
use crate::xml::domain::parse_domain;

/// A domain's disks, each with its backing chain and QEMU node names. Opaque; free with
/// `vcp_domain_free()`. Used by one thread at a time.
pub struct vcp_domain(pub(crate) Domain);

/// `vcp_domain_add_disk()`: the disk is read-only (`<readonly/>`).
pub const VCP_DISK_READONLY: c_uint = 1 << 0;

fn disk_mut<'a>(dom: &'a mut Domain, target: &str) -> Result<&'a mut Disk, Error> {
    dom.disks
        .iter_mut()
        .find(|d| d.target == target)
        .ok_or_else(|| no_disk(target))
}

pub(crate) fn no_disk(target: &str) -> Error {
    Error::invalid_arg(
        ErrorDomain::Domain,
        format_args!("no disk named '{target}'"),
    )
}

/// Parses libvirt's live, inactive or status (`<domstatus>`) domain XML: every
/// `<disk>` with its target, device, bus, read-only flag and `<backingStore>` chain.
/// Node names come from `<privateData><nodenames>` when present, else from the
/// `index` attributes (`libvirt-<index>-format`). `flags` must be 0.
///
/// Returns a new handle, or NULL with VIR_ERR_XML_ERROR (malformed XML, invalid UTF-8,
/// a disk without target, a duplicate target).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_domain_parse_xml(
    xml: *const c_char,
    flags: c_uint,
) -> *mut vcp_domain {
    const F: &str = "vcp_domain_parse_xml";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: C string or NULL.
        let xml = unsafe { arg_bytes(xml, "xml", F) }?;
        parse_domain(xml).map(|d| into_handle(vcp_domain(d)))
    })
}

/// A new domain without disks, for drivers that hold the structures already.
/// `name` and `uuid` may be NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_domain_new(
    name: *const c_char,
    uuid: *const c_char,
) -> *mut vcp_domain {
    const F: &str = "vcp_domain_new";
    boundary(F, || {
        // SAFETY: C strings or NULL.
        let name = unsafe { arg_opt_str(name, "name", F) }?.unwrap_or("");
        let uuid = unsafe { arg_opt_str(uuid, "uuid", F) }?.unwrap_or("");
        Ok(into_handle(vcp_domain(Domain {
            name: name.to_owned(),
            uuid: uuid.to_owned(),
            disks: Vec::new(),
        })))
    })
}

/// Adds a disk without media at the end of the domain's disk list. `device` (`disk`,
/// `cdrom`, ...) and `bus` may be NULL. `flags`: `VCP_DISK_READONLY`.
/// Returns 0, or -1 (a disk with that target exists: VIR_ERR_INVALID_ARG).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_domain_add_disk(
    dom: *mut vcp_domain,
    target: *const c_char,
    device: *const c_char,
    bus: *const c_char,
    flags: c_uint,
) -> c_int {
    const F: &str = "vcp_domain_add_disk";
    boundary(F, || {
        check_flags(flags, VCP_DISK_READONLY, F)?;
        // SAFETY: handle and C strings from the caller.
        let dom = &mut unsafe { arg_mut(dom, "dom", F) }?.0;
        let target = unsafe { arg_str(target, "target", F) }?;
        let device = unsafe { arg_opt_str(device, "device", F) }?.unwrap_or("disk");
        let bus = unsafe { arg_opt_str(bus, "bus", F) }?.unwrap_or("");
        if target.is_empty() {
            return Err(Error::invalid_arg(ErrorDomain::Domain, "empty disk target"));
        }
        if dom.disk(target).is_some() {
            return Err(Error::invalid_arg(
                ErrorDomain::Domain,
                format_args!("target '{target}' duplicated for disk sources"),
            ));
        }
        dom.disks.push(Disk {
            target: target.to_owned(),
            device: device.to_owned(),
            bus: bus.to_owned(),
            readonly: flags & VCP_DISK_READONLY != 0,
            chain: Vec::new(),
        });
        Ok(0)
    })
}

/// Appends an image below the current bottom of disk `target`'s chain (the first call
/// gives the active image). `source` is its path or network source as text, `format`
/// e.g. `qcow2`, the node names QEMU's. `flags` must be 0. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_domain_disk_append_image(
    dom: *mut vcp_domain,
    target: *const c_char,
    source: *const c_char,
    format: *const c_char,
    format_node: *const c_char,
    storage_node: *const c_char,
    flags: c_uint,
) -> c_int {
    const F: &str = "vcp_domain_disk_append_image";
    boundary(F, || {
        check_flags(flags, 0, F)?;
        // SAFETY: handle and C strings from the caller.
        let dom = &mut unsafe { arg_mut(dom, "dom", F) }?.0;
        let target = unsafe { arg_str(target, "target", F) }?;
        let source = unsafe { arg_str(source, "source", F) }?;
        let format = unsafe { arg_str(format, "format", F) }?;
        let format_node = unsafe { arg_str(format_node, "format_node", F) }?;
        let storage_node = unsafe { arg_opt_str(storage_node, "storage_node", F) }?.unwrap_or("");
        if format_node.is_empty() {
            return Err(Error::invalid_arg(
                ErrorDomain::Domain,
                "empty format node name",
            ));
        }
        let disk = disk_mut(dom, target)?;
        disk.chain.push(Image {
            source: source.to_owned(),
            format: format.to_owned(),
            format_node: format_node.to_owned(),
            storage_node: storage_node.to_owned(),
            readonly: false,
        });
        Ok(0)
    })
}

/// Frees a domain. NULL is accepted.
///
/// # Safety
/// `dom` is NULL or a handle from this library not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_domain_free(dom: *mut vcp_domain) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(dom) }
}

/// Stores in `*targets` a new NULL-terminated array of the disk targets in domain
/// order, and their number in `*count` (if not NULL). Free with
/// `vcp_string_list_free()`. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_domain_get_disks(
    dom: *const vcp_domain,
    targets: *mut *mut *mut c_char,
    count: *mut usize,
) -> c_int {
    const F: &str = "vcp_domain_get_disks";
    boundary(F, || {
        // SAFETY: handle from the caller.
        let dom = &unsafe { arg_ref(dom, "dom", F) }?.0;
        let out = arg_out(targets, "targets", F)?;
        let list: Vec<&str> = dom.disks.iter().map(|d| d.target.as_str()).collect();
        // SAFETY: checked out-parameter; `count` is NULL or writable.
        unsafe { write_list(out, count, &list) }?;
        Ok(0)
    })
}

/// Stores in `*format_nodes` a new NULL-terminated array of the format node names of
/// disk `target`'s chain, top first (empty for a disk without media), and the number in
/// `*count` (if not NULL). Returns 0, or -1 if there is no such disk.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_domain_get_disk_chain(
    dom: *const vcp_domain,
    target: *const c_char,
    format_nodes: *mut *mut *mut c_char,
    count: *mut usize,
) -> c_int {
    const F: &str = "vcp_domain_get_disk_chain";
    boundary(F, || {
        // SAFETY: handle and C string from the caller.
        let dom = &unsafe { arg_ref(dom, "dom", F) }?.0;
        let target = unsafe { arg_str(target, "target", F) }?;
        let out = arg_out(format_nodes, "format_nodes", F)?;
        let disk = dom.disk(target).ok_or_else(|| no_disk(target))?;
        let list: Vec<&str> = disk.chain.iter().map(|i| i.format_node.as_str()).collect();
        // SAFETY: checked out-parameter; `count` is NULL or writable.
        unsafe { write_list(out, count, &list) }?;
        Ok(0)
    })
}
