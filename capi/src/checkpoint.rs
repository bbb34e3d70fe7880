//! `vcp_checkpoint_def`: a checkpoint definition, parsed, aligned and formatted as
//! libvirt does.

use std::ffi::{c_char, c_int, c_longlong, c_uint, c_ulonglong};

use crate::domain::vcp_domain;
use crate::{Call, Outputs, count, free_handle, guard, into_handle, memory};
use virtcheckpoint::{
    CheckpointDef, CheckpointDisk, DiskCheckpointKind, Error, ErrorCode, ErrorDomain,
    FormatOptions, ParseOptions, align_disks, checkpoint_def_from_xml, format_checkpoint, now,
};

/// A checkpoint definition (libvirt's `virDomainCheckpointDef`). Opaque; free with
/// `vcp_checkpoint_def_free()`. Used by one thread at a time:
/// `vcp_checkpoint_size_read()` changes it.
pub struct vcp_checkpoint_def(pub(crate) CheckpointDef);

/// Parse: the XML describes an existing checkpoint (`VIR_DOMAIN_CHECKPOINT_CREATE_REDEFINE`).
pub const VCP_CHECKPOINT_PARSE_REDEFINE: c_uint = 1 << 0;
/// Parse: parse only, as libvirt's `virDomainCheckpointDefParseString` (for drivers
/// that run their own post-parse and alignment): nothing is aligned, `dom` is not
/// used, and when creating there is no default name and no creation time (libvirt's
/// moment post-parse hook gives them). Without `<name>` the definition is unnamed.
pub const VCP_CHECKPOINT_PARSE_ONLY: c_uint = 1 << 1;
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
/// `vcp_checkpoint_def_add_disk()` or `vcp_checkpoint_def_set_disks()`). `name` NULL:
/// an unnamed definition (formatted without `<name>`, as libvirt formats one). `flags`
/// must be 0. NULL with VIR_ERR_INVALID_ARG for a name libvirt's schema refuses or
/// that does not fit a file name.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_new(
    name: *const c_char,
    creation_time: c_longlong,
    flags: c_uint,
) -> *mut vcp_checkpoint_def {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: C string from the caller.
        let def = match unsafe { cx.opt_str(name, "name") }? {
            Some(name) => CheckpointDef::new(name, creation_time)?,
            None => CheckpointDef::unnamed(creation_time),
        };
        Ok(into_handle(vcp_checkpoint_def(def)))
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
        def.add_disk(CheckpointDisk {
            name: name.to_owned(),
            kind: kind_of(kind)?,
            bitmap: bitmap.map(str::to_owned),
            size: None,
        })?;
        Ok(0)
    })
}

fn kind_of(kind: c_int) -> virtcheckpoint::Result<DiskCheckpointKind> {
    match kind {
        VCP_CHECKPOINT_TYPE_DEFAULT => Ok(DiskCheckpointKind::Default),
        VCP_CHECKPOINT_TYPE_NO => Ok(DiskCheckpointKind::No),
        VCP_CHECKPOINT_TYPE_BITMAP => Ok(DiskCheckpointKind::Bitmap),
        other => Err(Error::invalid_arg(
            ErrorDomain::DomainCheckpoint,
            format_args!("unknown checkpoint disk type {other}"),
        )),
    }
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
/// aligned against it. With `VCP_CHECKPOINT_PARSE_ONLY`: parsed only (see there).
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
        cx.flags(
            flags,
            VCP_CHECKPOINT_PARSE_REDEFINE | VCP_CHECKPOINT_PARSE_ONLY,
        )?;
        // SAFETY: C string and optional handle from the caller.
        let (xml, dom) = unsafe { (cx.bytes(xml, "xml")?, cx.opt_handle(dom)) };
        let opts = ParseOptions {
            redefine: flags & VCP_CHECKPOINT_PARSE_REDEFINE != 0,
            parse_only: flags & VCP_CHECKPOINT_PARSE_ONLY != 0,
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

/// The body of the definition's string getters: a new copy of what `field` picks from
/// `def` (NULL for none) in `*out`.
///
/// # Safety
/// `def` is NULL or a live definition; `out` is NULL or writable.
unsafe fn string_out(
    cx: &Call,
    def: *const vcp_checkpoint_def,
    out: *mut *mut c_char,
    what: &str,
    field: impl FnOnce(&CheckpointDef) -> Option<&str>,
) -> virtcheckpoint::Result<c_int> {
    // SAFETY: forwarded contract.
    let def = &unsafe { cx.handle(def, "def") }?.0;
    let out = cx.out(out, what)?;
    // SAFETY: the caller's out-parameter.
    unsafe { Outputs::default().string(out, field(def))?.write() };
    Ok(0)
}

/// Stores in `*name` a new copy of the checkpoint's name, or NULL for an unnamed
/// definition. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_get_name(
    def: *const vcp_checkpoint_def,
    name: *mut *mut c_char,
) -> c_int {
    // SAFETY: forwarded contract.
    guard!(|cx| unsafe {
        string_out(cx, def, name, "name", |d| {
            Some(d.name.as_str()).filter(|n| !n.is_empty())
        })
    })
}

/// Stores in `*parent` a new copy of the parent's name, or NULL when the checkpoint has
/// no parent. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_get_parent(
    def: *const vcp_checkpoint_def,
    parent: *mut *mut c_char,
) -> c_int {
    // SAFETY: forwarded contract.
    guard!(|cx| unsafe { string_out(cx, def, parent, "parent", |d| d.parent.as_deref()) })
}

/// Stores in `*description` a new copy of the description, or NULL when the
/// checkpoint has none. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_get_description(
    def: *const vcp_checkpoint_def,
    description: *mut *mut c_char,
) -> c_int {
    // SAFETY: forwarded contract.
    guard!(|cx| unsafe {
        string_out(cx, def, description, "description", |d| {
            d.description.as_deref()
        })
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

/// The `VCP_CHECKPOINT_TYPE_*` of a disk's kind.
fn kind_code(kind: DiskCheckpointKind) -> c_int {
    match kind {
        DiskCheckpointKind::Default => VCP_CHECKPOINT_TYPE_DEFAULT,
        DiskCheckpointKind::No => VCP_CHECKPOINT_TYPE_NO,
        DiskCheckpointKind::Bitmap => VCP_CHECKPOINT_TYPE_BITMAP,
    }
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
            k.put(kind_code(d.kind));
        }
        Ok(0)
    })
}

/// One disk of a definition, for `vcp_checkpoint_def_set_disks()`.
#[repr(C)]
pub struct vcp_checkpoint_disk {
    /// The disk's name (its target); NULL: a disk without name, which is not
    /// formatted (as libvirt's formatter skips one).
    pub name: *const c_char,
    /// `VCP_CHECKPOINT_TYPE_*`.
    pub kind: c_int,
    /// The bitmap's name, or NULL.
    pub bitmap: *const c_char,
    /// The size of the changes since the checkpoint, in bytes, when `has_size`.
    pub size: c_ulonglong,
    /// Nonzero when `size` is known (libvirt's `sizeValid`).
    pub has_size: c_int,
}

/// Replaces the definition's disks by the `n` of `disks`, in order, as a driver holds
/// them (libvirt's parsed `disks`, before or after alignment). Unlike
/// `vcp_checkpoint_def_add_disk()`, a disk named twice is not refused here (libvirt's
/// parse does not refuse one either; alignment does). Checked before anything
/// changes. Returns 0, or -1 (an unknown type, an empty name: VIR_ERR_INVALID_ARG).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_set_disks(
    def: *mut vcp_checkpoint_def,
    disks: *const vcp_checkpoint_disk,
    n: usize,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle and array from the caller.
        let (def, entries) = unsafe {
            (
                &mut cx.handle_mut(def, "def")?.0,
                cx.slice(disks, n, "disks")?,
            )
        };
        let list = entries
            .iter()
            .map(|d| {
                // SAFETY: each entry's strings are C strings or NULL per the contract.
                let (name, bitmap) = unsafe {
                    (
                        cx.opt_str(d.name, "disk name")?,
                        cx.opt_str(d.bitmap, "bitmap")?,
                    )
                };
                if name == Some("") {
                    return Err(Error::invalid_arg(
                        ErrorDomain::DomainCheckpoint,
                        "empty checkpoint disk name",
                    ));
                }
                Ok(CheckpointDisk {
                    name: name.unwrap_or_default().to_owned(),
                    kind: kind_of(d.kind)?,
                    bitmap: bitmap.map(str::to_owned),
                    size: (d.has_size != 0).then_some(d.size),
                })
            })
            .collect::<virtcheckpoint::Result<Vec<_>>>()?;
        def.disks = list;
        Ok(0)
    })
}

/// Stores in `*disks` a new array of the definition's disks, in order, as
/// `vcp_checkpoint_def_set_disks()` takes them, and returns their number (or -1). The
/// array, and each disk's `name` and `bitmap` (NULL when unset), are `malloc()`ed and
/// the caller's: free them with `vcp_checkpoint_disks_free()`, or keep the strings and
/// `free()` the rest (a driver's own disk structures may take them over). No disk:
/// NULL and 0.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_get_disks(
    def: *const vcp_checkpoint_def,
    disks: *mut *mut vcp_checkpoint_disk,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle from the caller.
        let def = &unsafe { cx.handle(def, "def") }?.0;
        let out = cx.out(disks, "disks")?;
        let array = memory::c_array::<vcp_checkpoint_disk>(def.disks.len())?;
        for (i, d) in def.disks.iter().enumerate() {
            // SAFETY: slot i of the array, written before it is read; on failure the
            // slots written so far (their strings ours) are freed with the array.
            unsafe {
                array.add(i).write(vcp_checkpoint_disk {
                    name: std::ptr::null(),
                    kind: kind_code(d.kind),
                    bitmap: std::ptr::null(),
                    size: d.size.unwrap_or(0),
                    has_size: c_int::from(d.size.is_some()),
                });
                let slot = &mut *array.add(i);
                let strings = (|| -> virtcheckpoint::Result<()> {
                    slot.name = memory::c_string(&d.name)?;
                    if let Some(b) = &d.bitmap {
                        slot.bitmap = memory::c_string(b)?;
                    }
                    Ok(())
                })();
                if let Err(e) = strings {
                    vcp_checkpoint_disks_free(array, i + 1);
                    return Err(e);
                }
            }
        }
        // SAFETY: the caller's out-parameter; ownership passes to the caller.
        unsafe { out.put(array) };
        Ok(count(def.disks.len()))
    })
}

/// Frees an array from `vcp_checkpoint_def_get_disks()` of `n` disks, with their
/// strings. NULL is accepted.
///
/// # Safety
/// `disks` is NULL or such an array of at least `n` entries, not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_disks_free(disks: *mut vcp_checkpoint_disk, n: usize) {
    if disks.is_null() {
        return;
    }
    // SAFETY: per the contract, n written entries whose strings are malloc'ed or NULL.
    unsafe {
        for i in 0..n {
            let d = &*disks.add(i);
            memory::vcp_free(d.name.cast_mut().cast());
            memory::vcp_free(d.bitmap.cast_mut().cast());
        }
        memory::vcp_free(disks.cast());
    }
}

/// Aligns the definition's disks with domain `dom`, as libvirt's
/// `virDomainCheckpointAlignDisks` does: every domain disk once, in domain order; a
/// requested disk named by its target, or by its source path when the name starts
/// with `/`, renamed to its target; the others `no` when empty or read-only, else
/// `bitmap` when the definition lists no disk and `no` when it does; then every
/// `bitmap` disk without a bitmap name gets the checkpoint's name. `dom` NULL: the
/// definition has no domain to align with (libvirt's VIR_ERR_INTERNAL_ERROR "missing
/// domain in checkpoint"). `flags` must be 0. Returns 0, or -1 with libvirt's
/// VIR_ERR_CONFIG_UNSUPPORTED texts (too many disks, a domain without disks, "no disk
/// named '%s'", "disk '%s' specified twice", "disk '%s' is empty or readonly"); the
/// definition is unchanged on error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_align(
    def: *mut vcp_checkpoint_def,
    dom: *const vcp_domain,
    flags: c_uint,
) -> c_int {
    guard!(|cx| {
        cx.flags(flags, 0)?;
        // SAFETY: the caller's handles.
        let (def, dom) = unsafe { (&mut cx.handle_mut(def, "def")?.0, cx.opt_handle(dom)) };
        let dom = dom.ok_or_else(|| {
            Error::new(
                ErrorCode::InternalError,
                ErrorDomain::DomainCheckpoint,
                "missing domain in checkpoint",
            )
        })?;
        align_disks(def, &dom.0)?;
        Ok(0)
    })
}

/// Sets (or with NULL clears) the embedded `<domain>`: its XML as it stands in
/// formatted checkpoint XML, each line after the first indented by its depth plus
/// the two spaces of the checkpoint's children, as libvirt's domain formatter writes
/// it into the checkpoint's buffer (leading blanks of the first line are dropped).
/// The text is written back verbatim by `vcp_checkpoint_def_format_xml()`. It must be
/// one well-formed element (VIR_ERR_XML_ERROR), and the definition is unchanged on
/// error. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_set_domain_xml(
    def: *mut vcp_checkpoint_def,
    xml: *const c_char,
) -> c_int {
    guard!(|cx| {
        // SAFETY: handle and C string from the caller.
        let (def, xml) = unsafe { (&mut cx.handle_mut(def, "def")?.0, cx.opt_str(xml, "xml")?) };
        def.set_domain_xml(xml)?;
        Ok(0)
    })
}

/// Stores in `*xml` a new copy of the embedded `<domain>` element's XML (a whole
/// document, as `vcp_checkpoint_def_set_domain_xml()` describes it), or NULL when the
/// definition carries none. Returns 0 or -1.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vcp_checkpoint_def_get_domain_xml(
    def: *const vcp_checkpoint_def,
    xml: *mut *mut c_char,
) -> c_int {
    // SAFETY: forwarded contract.
    guard!(|cx| unsafe { string_out(cx, def, xml, "xml", |d| d.domain_xml.as_deref()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{vcp_domain_add_disk, vcp_domain_disk_append_image, vcp_domain_new};
    use std::ffi::CStr;
    use std::ptr;

    /// The disks `get_disks` hands out, as (name, kind, bitmap) text; the array freed.
    unsafe fn disks_of(def: *const vcp_checkpoint_def) -> Vec<(String, c_int, Option<String>)> {
        // SAFETY: `def` is live; the array and its strings are ours and freed here.
        unsafe {
            let mut disks = ptr::null_mut();
            let n = vcp_checkpoint_def_get_disks(def, &mut disks);
            assert!(n >= 0);
            let text = |p: *const c_char| CStr::from_ptr(p).to_string_lossy().into_owned();
            let out = (0..n as usize)
                .map(|i| {
                    let d = &*disks.add(i);
                    (
                        text(d.name),
                        d.kind,
                        (!d.bitmap.is_null()).then(|| text(d.bitmap)),
                    )
                })
                .collect();
            vcp_checkpoint_disks_free(disks, n as usize);
            out
        }
    }

    #[test]
    fn align_a_held_definition_and_read_its_disks_back() {
        // SAFETY: every handle is created, used and freed here.
        unsafe {
            let dom = vcp_domain_new(ptr::null(), ptr::null());
            assert_eq!(
                vcp_domain_add_disk(dom, c"vda".as_ptr(), ptr::null(), ptr::null(), 0),
                0
            );
            let (src, fmt) = (c"/img/a.qcow2".as_ptr(), c"qcow2".as_ptr());
            let append = |node| {
                vcp_domain_disk_append_image(dom, c"vda".as_ptr(), src, fmt, node, ptr::null(), 0)
            };
            assert_eq!(append(ptr::null()), 0, "an inactive image needs no node");
            assert_eq!(append(c"".as_ptr()), -1, "an empty node name is refused");
            assert_eq!(
                vcp_domain_add_disk(dom, c"sda".as_ptr(), ptr::null(), ptr::null(), 0),
                0
            );

            let def = vcp_checkpoint_def_new(c"c1".as_ptr(), 1, 0);
            let wanted = [vcp_checkpoint_disk {
                name: c"/img/a.qcow2".as_ptr(),
                kind: VCP_CHECKPOINT_TYPE_BITMAP,
                bitmap: ptr::null(),
                size: 0,
                has_size: 0,
            }];
            assert_eq!(vcp_checkpoint_def_set_disks(def, wanted.as_ptr(), 1), 0);
            assert_eq!(
                vcp_checkpoint_def_align(def, ptr::null(), 0),
                -1,
                "no domain"
            );
            assert_eq!(disks_of(def)[0].0, "/img/a.qcow2", "unchanged on error");
            assert_eq!(vcp_checkpoint_def_align(def, dom, 0), 0);
            assert_eq!(
                disks_of(def),
                vec![
                    ("vda".into(), VCP_CHECKPOINT_TYPE_BITMAP, Some("c1".into())),
                    ("sda".into(), VCP_CHECKPOINT_TYPE_NO, None),
                ]
            );
            let mut none = ptr::null_mut();
            assert_eq!(vcp_checkpoint_def_get_disks(def, ptr::null_mut()), -1);
            assert_eq!(vcp_checkpoint_def_set_disks(def, wanted.as_ptr(), 0), 0);
            assert_eq!(vcp_checkpoint_def_get_disks(def, &mut none), 0);
            assert!(none.is_null());
            vcp_checkpoint_disks_free(ptr::null_mut(), 2);
            vcp_checkpoint_def_free(def);
            crate::domain::vcp_domain_free(dom);
        }
    }
}
