//! `vcp_checkpoint_def`: a checkpoint definition, parsed, aligned and formatted as
//! libvirt does.

use std::ffi::{c_char, c_int, c_longlong, c_uint};

use crate::domain::vcp_domain;
use crate::{Outputs, count, free_handle, guard, into_handle, memory};
use virtcheckpoint::{
    CheckpointDef, CheckpointDisk, DiskCheckpointKind, Error, ErrorDomain, FormatOptions,
    ParseOptions, checkpoint_def_from_xml, format_checkpoint, now,
};

/// A checkpoint definition (libvirt's `virDomainCheckpointDef`). Opaque; free with
/// `vcp_checkpoint_def_free()`. Used by one thread at a time:
/// `vcp_checkpoint_size_read()` changes it.
pub struct vcp_checkpoint_def(pub(crate) CheckpointDef);

/// Parse: the XML describes an existing checkpoint (`VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE`).
pub const VCP_CHECKPOINT_PARSE_REDEFINE: c_uint = 1 << 0;
/// Format: include security-sensitive data (`VIR_DOMAIN_CHECKPOINT_XML_SECURE`).
pub const VCP_CHECKPOINT_XML_SECURE: c_uint = 1 << 0;
/// Format: leave out `<domain>` (`VIR_DOMAIN_CHECKPOINT_XML_NO_DOMAIN`).
pub const VCP_CHECKPOINT_XML_NO_DOMAIN: c_uint = 1 << 1;
/// Format: print each disk's computed `size` (`VIR_DOMAIN_CHECKPOINT_XML_SIZE`).
pub const VCP_CHECKPOINT_XML_SIZE: c_uint = 1 << 2;

/// A disk's checkpoint type: left to the default (never printed).
pub const VCP_CHECKPOINT_TYPE_DEFAULT: c_int = 0;
/// A disk's checkpoint type: `no`.
pub const VCP_CHECKPOINT_TYPE_NO: c_int = 1;
/// A disk's checkpoint type: `bitmap`.
pub const VCP_CHECKPOINT_TYPE_BITMAP: c_int = 2;

/// A new definition named `name`, created at `creation_time` (Unix seconds), without
/// disks, for drivers that hold the parsed definition (add disks with
/// `vcp_checkpoint_def_add_disk()`). `flags` must be 0. NULL with VIR_ERR_INVALID_ARG
/// for a name libvirt's schema refuses or that does not fit a file name.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_new(
    name: *const c_char,
    creation_time: c_longlong,
    flags: c_uint,
) -> *mut vcp_checkpoint_def {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: C string from the caller.
        let name = unsafe { cx.str(name, "name") }?;
        Ok(into_handle(vcp_checkpoint_def(CheckpointDef::new(
            name,
            creation_time,
        )?)))
    })
}

/// Sets (or with NULL clears) the parent's name and the description. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_set_parent(
    def: *mut vcp_checkpoint_def,
    parent: *const c_char,
    description: *const c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle and C strings from the caller.
        let (def, parent, description) = unsafe {
            (
                &mut cx.handle_mut(def, "def")?.0,
                cx.opt_str(parent, "parent")?,
                cx.opt_str(description, "description")?,
            )
        };
        def.parent = parent.map(str::to_owned);
        def.description = description.map(str::to_owned);
        Ok(0)
    })
}

/// Appends a disk: its `name` (the target), its type (`VCP_CHECKPOINT_TYPE_*`) and its
/// bitmap name (NULL: none). Returns 0, or -1 (an empty name, an unknown type:
/// VIR_ERR_INVALID_ARG; a disk named twice: VIR_ERR_CONFIG_UNSUPPORTED, as libvirt).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_add_disk(
    def: *mut vcp_checkpoint_def,
    name: *const c_char,
    kind: c_int,
    bitmap: *const c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle and C strings from the caller.
        let (def, name, bitmap) = unsafe {
            (
                &mut cx.handle_mut(def, "def")?.0,
                cx.str(name, "name")?,
                cx.opt_str(bitmap, "bitmap")?,
            )
        };
        let kind = match kind {
            VCP_CHECKPOINT_TYPE_DEFAULT => DiskCheckpointKind::Default,
            VCP_CHECKPOINT_TYPE_NO => DiskCheckpointKind::No,
            VCP_CHECKPOINT_TYPE_BITMAP => DiskCheckpointKind::Bitmap,
            other => {
                return Err(Error::invalid_arg(
                    ErrorDomain::DomainCheckpoint,
                    format_args!("unknown checkpoint disk type {other}"),
                ));
            }
        };
        def.add_disk(CheckpointDisk {
            name: name.to_owned(),
            kind,
            bitmap: bitmap.map(str::to_owned),
            size: None,
        })?;
        Ok(0)
    })
}

/// Parses `<domaincheckpoint>` XML and prepares it as libvirt does
/// (virDomainCheckpointDefParseString + AlignDisks).
///
/// Without `VCP_CHECKPOINT_PARSE_REDEFINE` (creating a checkpoint): the creation time is
/// now, the name defaults to it, `<parent>`, `<creationTime>` and `<domain>` are
/// ignored, and, when `dom` is given, the disks are aligned against it: every domain
/// disk in domain order, defaults for unlisted ones, bitmap names defaulting to the
/// checkpoint name. With it: `<name>` and `<creationTime>` are required, `<parent>` and
/// `<domain>` kept; an embedded `<domain>` must have `dom`'s UUID and the disks are
/// aligned against it.
///
/// Errors: VIR_ERR_XML_ERROR (malformed XML, invalid UTF-8, no name on redefine),
/// VIR_ERR_XML_INVALID_SCHEMA (what libvirt's schema refuses, e.g. `../escape` or a
/// disk without name), VIR_ERR_CONFIG_UNSUPPORTED (alignment), VIR_ERR_INVALID_ARG.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_parse_xml(
    xml: *const c_char,
    dom: *const vcp_domain,
    flags: c_uint,
) -> *mut vcp_checkpoint_def {
    guard!(|cx| {
        cx.flags(flags, VCP_CHECKPOINT_PARSE_REDEFINE)?;
        // SAFETY: C string and optional handle from the caller.
        let (xml, dom) = unsafe { (cx.bytes(xml, "xml")?, cx.opt_handle(dom)) };
        let opts = ParseOptions {
            redefine: flags & VCP_CHECKPOINT_PARSE_REDEFINE != 0,
        };
        let def = checkpoint_def_from_xml(xml, dom.map(|d| &d.0), opts, now())?;
        Ok(into_handle(vcp_checkpoint_def(def)))
    })
}

/// Formats the definition as libvirt's `virDomainCheckpointGetXMLDesc` would.
/// `flags`: `VCP_CHECKPOINT_XML_SECURE`, `_NO_DOMAIN`, `_SIZE`. A new string (free
/// with `vcp_free()`), or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_format_xml(
    def: *const vcp_checkpoint_def,
    flags: c_uint,
) -> *mut c_char {
    guard!(|cx| {
        cx.flags(
            flags,
            VCP_CHECKPOINT_XML_SECURE | VCP_CHECKPOINT_XML_NO_DOMAIN | VCP_CHECKPOINT_XML_SIZE,
        )?;
        // SAFETY: handle from the caller.
        let def = &unsafe { cx.handle(def, "def") }?.0;
        let opts = FormatOptions {
            secure: flags & VCP_CHECKPOINT_XML_SECURE != 0,
            no_domain: flags & VCP_CHECKPOINT_XML_NO_DOMAIN != 0,
            size: flags & VCP_CHECKPOINT_XML_SIZE != 0,
        };
        memory::c_string(&format_checkpoint(def, opts))
    })
}

/// Frees a definition. NULL is accepted.
///
/// # Safety
/// `def` is NULL or a handle from this library not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_free(def: *mut vcp_checkpoint_def) {
    // SAFETY: forwarded contract.
    unsafe { free_handle(def) }
}

/// Stores in `*name` a new copy of the checkpoint's name. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_get_name(
    def: *const vcp_checkpoint_def,
    name: *mut *mut c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle from the caller.
        let def = &unsafe { cx.handle(def, "def") }?.0;
        let out = cx.out(name, "name")?;
        // SAFETY: the caller's out-parameter.
        unsafe { Outputs::default().string(out, Some(&def.name))?.write() };
        Ok(0)
    })
}

/// Stores in `*parent` a new copy of the parent's name, or NULL when the checkpoint has
/// no parent. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_get_parent(
    def: *const vcp_checkpoint_def,
    parent: *mut *mut c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle from the caller.
        let def = &unsafe { cx.handle(def, "def") }?.0;
        let out = cx.out(parent, "parent")?;
        // SAFETY: the caller's out-parameter.
        unsafe {
            Outputs::default()
                .string(out, def.parent.as_deref())?
                .write()
        };
        Ok(0)
    })
}

/// Stores the creation time (Unix seconds) in `*creation_time`. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_get_creation_time(
    def: *const vcp_checkpoint_def,
    creation_time: *mut c_longlong,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle from the caller.
        let def = &unsafe { cx.handle(def, "def") }?.0;
        let out = cx.out(creation_time, "creation_time")?;
        // SAFETY: the caller's out-parameter.
        unsafe { out.put(def.creation_time) };
        Ok(0)
    })
}

/// The number of disks of the definition, or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_get_disk_count(
    def: *const vcp_checkpoint_def,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle from the caller.
        Ok(count(unsafe { cx.handle(def, "def") }?.0.disks.len()))
    })
}

/// Disk `index` of the definition: a new copy of its name in `*name`, its type
/// (`VCP_CHECKPOINT_TYPE_*`) in `*type` and a new copy of its bitmap name (or NULL) in
/// `*bitmap`. Returns 0, or -1 for a bad index.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_get_disk(
    def: *const vcp_checkpoint_def,
    index: usize,
    name: *mut *mut c_char,
    kind: *mut c_int,
    bitmap: *mut *mut c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle from the caller.
        let def = &unsafe { cx.handle(def, "def") }?.0;
        let (n, k, b) = (
            cx.out(name, "name")?,
            cx.out(kind, "kind")?,
            cx.out(bitmap, "bitmap")?,
        );
        let d = def.disks.get(index).ok_or_else(|| {
            Error::invalid_arg(
                ErrorDomain::DomainCheckpoint,
                format_args!(
                    "disk index {index} out of range (checkpoint has {})",
                    def.disks.len()
                ),
            )
        })?;
        let outs = Outputs::default()
            .string(n, Some(&d.name))?
            .string(b, d.bitmap.as_deref())?;
        // SAFETY: the caller's out-parameters.
        unsafe {
            outs.write();
            k.put(match d.kind {
                DiskCheckpointKind::Default => VCP_CHECKPOINT_TYPE_DEFAULT,
                DiskCheckpointKind::No => VCP_CHECKPOINT_TYPE_NO,
                DiskCheckpointKind::Bitmap => VCP_CHECKPOINT_TYPE_BITMAP,
            });
        }
        Ok(0)
    })
}
