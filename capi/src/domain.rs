//! `vcp_domain`: a domain's disks and backing chains with node names.

use std::ffi::{c_char, c_int, c_uint};

use crate::{free_handle, guard, into_handle, write_list};
use virtcheckpoint::{Disk, DiskDriver, Domain, Error, ErrorDomain, Image, parse_domain};

/// A domain's disks, each with its backing chain and QEMU node names. Opaque; free with
/// `vcp_domain_free()`. Used by one thread at a time (no call changes it except the
/// builders, `vcp_domain_add_disk()` and `vcp_domain_disk_append_image()`).
pub struct vcp_domain(pub(crate) Domain);

/// `vcp_domain_add_disk()`: the disk is read-only (`<readonly/>`).
pub const VCP_DISK_READONLY: c_uint = 1 << 0;

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
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: C string or NULL.
        let xml = unsafe { cx.bytes(xml, "xml") }?;
        Ok(into_handle(vcp_domain(parse_domain(xml)?)))
    })
}

/// A new domain without disks, for drivers that hold the structures already.
/// `name` and `uuid` may be NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_domain_new(
    name: *const c_char,
    uuid: *const c_char,
) -> *mut vcp_domain {
    guard!(|cx| {
        // SAFETY: C strings or NULL.
        let (name, uuid) = unsafe { (cx.opt_str(name, "name")?, cx.opt_str(uuid, "uuid")?) };
        Ok(into_handle(vcp_domain(Domain {
            name: name.unwrap_or("").to_owned(),
            uuid: uuid.unwrap_or("").to_owned(),
            disks: Vec::new(),
        })))
    })
}

/// Adds a disk without media at the end of the domain's disk list. `device` (`disk`,
/// `cdrom`, ...) and `bus` may be NULL. `flags`: `VCP_DISK_READONLY`.
/// Returns 0, or -1 (an empty target, or a disk with that target exists:
/// VIR_ERR_XML_ERROR, as libvirt's domain parser reports both).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_domain_add_disk(
    dom: *mut vcp_domain,
    target: *const c_char,
    device: *const c_char,
    bus: *const c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, VCP_DISK_READONLY)?;
        // SAFETY: handle and C strings from the caller.
        let (dom, target, device, bus) = unsafe {
            (
                &mut cx.handle_mut(dom, "dom")?.0,
                cx.str(target, "target")?,
                cx.opt_str(device, "device")?,
                cx.opt_str(bus, "bus")?,
            )
        };
        dom.add_disk(Disk {
            target: target.to_owned(),
            device: device.unwrap_or("disk").to_owned(),
            bus: bus.unwrap_or("").to_owned(),
            readonly: flags & VCP_DISK_READONLY != 0,
            chain: Vec::new(),
            driver: DiskDriver::default(),
        })?;
        Ok(0)
    })
}

/// Sets disk `target`'s `<driver>` options that reach QEMU's format nodes, as the
/// domain XML names them: `cache` (`none`, `writethrough`, `writeback`, `directsync`,
/// `unsafe`), `discard` (`unmap`, `ignore`), `detect_zeroes` (`off`, `on`, `unmap`);
/// NULL for unset. The reopens planned for the disk's images then carry them as
/// libvirt sends them. detect_zeroes is the top image's: the image at the top of the
/// chain when this is called, or the first one appended after. `flags` must be 0. Returns 0, or -1 (no such disk:
/// VIR_ERR_INVALID_ARG; an unknown value: VIR_ERR_XML_ERROR, nothing changed).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_domain_disk_set_driver(
    dom: *mut vcp_domain,
    target: *const c_char,
    cache: *const c_char,
    discard: *const c_char,
    detect_zeroes: *const c_char,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handle and C strings from the caller.
        let (dom, target, driver) = unsafe {
            (
                &mut cx.handle_mut(dom, "dom")?.0,
                cx.str(target, "target")?,
                DiskDriver::from_attrs(
                    cx.opt_str(cache, "cache")?,
                    cx.opt_str(discard, "discard")?,
                    cx.opt_str(detect_zeroes, "detect_zeroes")?,
                )?,
            )
        };
        dom.set_disk_driver(target, driver)?;
        Ok(0)
    })
}

/// Appends an image below the current bottom of disk `target`'s chain (the first call
/// gives the active image). `source` is its path or network source as text, `format`
/// e.g. `qcow2`, the node names QEMU's. `format_node` NULL: an image QEMU has not
/// opened (an inactive domain's, which libvirt names no node for): enough for
/// `vcp_checkpoint_def_align()`, while a plan that needs its node finds none.
/// `storage_node` may be NULL. `flags` must be 0. Returns 0, or -1 (an empty
/// `format_node`: VIR_ERR_INVALID_ARG).
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
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: handle and C strings from the caller.
        let (dom, target, image) = unsafe {
            (
                &mut cx.handle_mut(dom, "dom")?.0,
                cx.str(target, "target")?,
                Image {
                    source: cx.str(source, "source")?.to_owned(),
                    format: cx.str(format, "format")?.to_owned(),
                    format_node: match cx.opt_str(format_node, "format_node")? {
                        Some("") => {
                            return Err(Error::invalid_arg(
                                ErrorDomain::Domain,
                                "empty format node name",
                            ));
                        }
                        node => node.unwrap_or("").to_owned(),
                    },
                    storage_node: cx
                        .opt_str(storage_node, "storage_node")?
                        .unwrap_or("")
                        .to_owned(),
                    ..Image::default()
                },
            )
        };
        dom.append_image(target, image)?;
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
/// order (free with `vcp_string_list_free()`). Returns their number, or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_domain_get_disks(
    dom: *const vcp_domain,
    targets: *mut *mut *mut c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle from the caller.
        let dom = &unsafe { cx.handle(dom, "dom") }?.0;
        let out = cx.out(targets, "targets")?;
        let list: Vec<&str> = dom.disks.iter().map(|d| d.target.as_str()).collect();
        // SAFETY: the caller's out-parameter.
        unsafe { write_list(out, &list) }
    })
}

/// Stores in `*format_nodes` a new NULL-terminated array of the format node names of
/// disk `target`'s chain, top first (empty for a disk without media). Returns their
/// number, or -1 (VIR_ERR_INVALID_ARG "no disk named '%s'").
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_domain_get_disk_chain(
    dom: *const vcp_domain,
    target: *const c_char,
    format_nodes: *mut *mut *mut c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle and C string from the caller.
        let (dom, target) = unsafe { (&cx.handle(dom, "dom")?.0, cx.str(target, "target")?) };
        let out = cx.out(format_nodes, "format_nodes")?;
        let disk = dom.find_disk(target)?;
        let list: Vec<&str> = disk.chain.iter().map(|i| i.format_node.as_str()).collect();
        // SAFETY: the caller's out-parameter.
        unsafe { write_list(out, &list) }
    })
}
