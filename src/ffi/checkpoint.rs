//! `vcp_checkpoint_def`: a checkpoint definition, parsed, aligned and formatted as
//! libvirt does.

use std::ffi::{c_char, c_int, c_longlong, c_uint};
use std::ptr;

use super::domain::vcp_domain;
use super::{
    arg_bytes, arg_opt_ref, arg_out, arg_ref, boundary, check_flags, free_handle, into_handle,
    write_out, write_string,
};
use crate::api;
use crate::error::{Error, ErrorDomain};
use crate::model::checkpoint::{CheckpointDef, DiskCheckpointKind};
use crate::xml::checkpoint::format_checkpoint;

/// A checkpoint definition (libvirt's `virDomainCheckpointDef`). Opaque; free with
/// `vcp_checkpoint_def_free()`.
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
    const F: &str = "vcp_checkpoint_def_parse_xml";
    boundary(F, || {
        check_flags(flags, VCP_CHECKPOINT_PARSE_REDEFINE, F)?;
        // SAFETY: C string and optional handle from the caller.
        let xml = unsafe { arg_bytes(xml, "xml", F) }?;
        let dom = unsafe { arg_opt_ref(dom) }.map(|d| &d.0);
        api::checkpoint_def_from_xml(xml, dom, flags, api::now())
            .map(|d| into_handle(vcp_checkpoint_def(d)))
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
    const F: &str = "vcp_checkpoint_def_format_xml";
    boundary(F, || {
        check_flags(
            flags,
            VCP_CHECKPOINT_XML_SECURE | VCP_CHECKPOINT_XML_NO_DOMAIN | VCP_CHECKPOINT_XML_SIZE,
            F,
        )?;
        // SAFETY: handle from the caller.
        let def = &unsafe { arg_ref(def, "def", F) }?.0;
        let mut out = ptr::null_mut();
        // The C flags have libvirt's values, which the formatter uses too.
        let text = format_checkpoint(def, flags);
        // SAFETY: local out-parameter.
        unsafe { write_string(&mut out, &text) }?;
        Ok(out)
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
    const F: &str = "vcp_checkpoint_def_get_name";
    boundary(F, || {
        // SAFETY: handle from the caller.
        let def = &unsafe { arg_ref(def, "def", F) }?.0;
        let out = arg_out(name, "name", F)?;
        // SAFETY: checked out-parameter.
        unsafe { write_string(out, &def.name) }?;
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
    const F: &str = "vcp_checkpoint_def_get_parent";
    boundary(F, || {
        // SAFETY: handle from the caller.
        let def = &unsafe { arg_ref(def, "def", F) }?.0;
        let out = arg_out(parent, "parent", F)?;
        match &def.parent {
            // SAFETY: checked out-parameter.
            Some(p) => unsafe { write_string(out, p) }?,
            // SAFETY: checked out-parameter.
            None => unsafe { write_out(out, ptr::null_mut()) },
        }
        Ok(0)
    })
}

/// Stores the creation time (Unix seconds) in `*creation_time`. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_get_creation_time(
    def: *const vcp_checkpoint_def,
    creation_time: *mut c_longlong,
) -> c_int {
    const F: &str = "vcp_checkpoint_def_get_creation_time";
    boundary(F, || {
        // SAFETY: handle from the caller.
        let def = &unsafe { arg_ref(def, "def", F) }?.0;
        let out = arg_out(creation_time, "creation_time", F)?;
        // SAFETY: checked out-parameter.
        unsafe { write_out(out, def.creation_time) };
        Ok(0)
    })
}

/// The number of disks of the definition, or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_get_disk_count(
    def: *const vcp_checkpoint_def,
) -> c_int {
    const F: &str = "vcp_checkpoint_def_get_disk_count";
    boundary(F, || {
        // SAFETY: handle from the caller.
        let def = &unsafe { arg_ref(def, "def", F) }?.0;
        Ok(c_int::try_from(def.disks.len()).unwrap_or(c_int::MAX))
    })
}

/// Disk `index` of the definition: a new copy of its name in `*name`, its type
/// (`VCP_CHECKPOINT_TYPE_*`) in `*type` and a new copy of its bitmap name (or NULL) in
/// `*bitmap`. Any out-parameter may be NULL. Returns 0, or -1 for a bad index.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_get_disk(
    def: *const vcp_checkpoint_def,
    index: usize,
    name: *mut *mut c_char,
    kind: *mut c_int,
    bitmap: *mut *mut c_char,
) -> c_int {
    const F: &str = "vcp_checkpoint_def_get_disk";
    boundary(F, || {
        // SAFETY: handle from the caller.
        let def = &unsafe { arg_ref(def, "def", F) }?.0;
        let d = def.disks.get(index).ok_or_else(|| {
            Error::invalid_arg(
                ErrorDomain::DomainCheckpoint,
                format_args!(
                    "disk index {index} out of range (checkpoint has {})",
                    def.disks.len()
                ),
            )
        })?;
        let name_c = super::memory::c_string(&d.name)?;
        let bitmap_c = match &d.bitmap {
            Some(b) => match super::memory::c_string(b) {
                Ok(p) => p,
                Err(e) => {
                    // SAFETY: allocated just above.
                    unsafe { super::memory::vcp_free(name_c.cast()) };
                    return Err(e);
                }
            },
            None => ptr::null_mut(),
        };
        // SAFETY: out-parameters are NULL or writable; unused copies are freed.
        unsafe {
            if name.is_null() {
                super::memory::vcp_free(name_c.cast());
            } else {
                write_out(name, name_c);
            }
            if bitmap.is_null() {
                super::memory::vcp_free(bitmap_c.cast());
            } else {
                write_out(bitmap, bitmap_c);
            }
            if !kind.is_null() {
                write_out(
                    kind,
                    match d.kind {
                        DiskCheckpointKind::Default => VCP_CHECKPOINT_TYPE_DEFAULT,
                        DiskCheckpointKind::No => VCP_CHECKPOINT_TYPE_NO,
                        DiskCheckpointKind::Bitmap => VCP_CHECKPOINT_TYPE_BITMAP,
                    },
                );
            }
        }
        Ok(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::checkpoint::{FORMAT_NO_DOMAIN, FORMAT_SECURE, FORMAT_SIZE, PARSE_REDEFINE};

    #[test]
    fn c_flags_equal_libvirts_and_the_formatters() {
        assert_eq!(VCP_CHECKPOINT_XML_SECURE, FORMAT_SECURE);
        assert_eq!(VCP_CHECKPOINT_XML_NO_DOMAIN, FORMAT_NO_DOMAIN);
        assert_eq!(VCP_CHECKPOINT_XML_SIZE, FORMAT_SIZE);
        assert_eq!(VCP_CHECKPOINT_PARSE_REDEFINE, PARSE_REDEFINE);
    }
}
