//! The C ABI: the only module with `extern "C"` and `unsafe`. It borrows handles,
//! checks arguments (NULL, UTF-8, flags), calls the Rust API and records errors. It
//! never decides anything itself.
//!
//! Conventions (libvirt's): failure returns -1 or NULL and sets the thread-local last
//! error; every entry point resets that error first; out-parameters are written only
//! on success; unknown flag bits are refused as `virCheckFlags` does; no panic crosses
//! the boundary.

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)] // every exported fn documents its contract in prose

pub mod checkpoint;
pub mod domain;
pub mod error;
pub mod list;
pub mod memory;
pub mod nodes;
pub mod plan;
pub mod reconcile;
pub mod version;

use std::ffi::{CStr, c_char, c_int, c_uint};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use crate::error::{Error, ErrorDomain, Result};

/// What an entry point returns when it fails.
pub(crate) trait FailValue {
    fn fail() -> Self;
}

impl FailValue for c_int {
    fn fail() -> Self {
        -1
    }
}

impl<T> FailValue for *mut T {
    fn fail() -> Self {
        ptr::null_mut()
    }
}

impl<T> FailValue for *const T {
    fn fail() -> Self {
        ptr::null()
    }
}

/// The one boundary every exported body runs in: resets the last error, runs `body`,
/// turns an `Err` into the failure value plus the last error, and a panic into
/// VIR_ERR_INTERNAL_ERROR naming `func`.
pub(crate) fn boundary<R: FailValue>(func: &'static str, body: impl FnOnce() -> Result<R>) -> R {
    error::reset();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(value)) => value,
        Ok(Err(err)) => {
            error::set(&err);
            R::fail()
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            error::set(&Error::internal(format_args!(
                "unexpected failure in {func}: {what}"
            )));
            R::fail()
        }
    }
}

fn null_arg(name: &str, func: &str) -> Error {
    Error::invalid_arg(
        ErrorDomain::None,
        format_args!("{name} in {func} must not be NULL"),
    )
}

/// Borrows a NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn arg_str<'a>(p: *const c_char, name: &str, func: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(null_arg(name, func));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|e| {
        Error::invalid_arg(
            ErrorDomain::None,
            format_args!(
                "{name} in {func} is not valid UTF-8 (byte {})",
                e.valid_up_to()
            ),
        )
    })
}

/// Like [`arg_str`] but NULL gives `None`.
///
/// # Safety
/// As for [`arg_str`].
pub(crate) unsafe fn arg_opt_str<'a>(
    p: *const c_char,
    name: &str,
    func: &str,
) -> Result<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { arg_str(p, name, func) }.map(Some)
    }
}

/// Borrows a handle argument.
///
/// # Safety
/// `p` is NULL or a live handle of type `T` created by this library.
pub(crate) unsafe fn arg_ref<'a, T>(p: *const T, name: &str, func: &str) -> Result<&'a T> {
    // SAFETY: non-NULL handles are live per the caller's contract.
    unsafe { p.as_ref() }.ok_or_else(|| null_arg(name, func))
}

/// Borrows a handle argument mutably.
///
/// # Safety
/// `p` is NULL or a live handle of type `T`, used by this thread only.
pub(crate) unsafe fn arg_mut<'a, T>(p: *mut T, name: &str, func: &str) -> Result<&'a mut T> {
    // SAFETY: as above.
    unsafe { p.as_mut() }.ok_or_else(|| null_arg(name, func))
}

/// Checks that an out-parameter is not NULL; it is written only once the call succeeds.
pub(crate) fn arg_out<T>(p: *mut T, name: &str, func: &str) -> Result<*mut T> {
    if p.is_null() {
        Err(null_arg(name, func))
    } else {
        Ok(p)
    }
}

/// `virCheckFlags`: any bit outside `allowed` is an error.
pub(crate) fn check_flags(flags: c_uint, allowed: c_uint, func: &str) -> Result<()> {
    let bad = flags & !allowed;
    if bad != 0 {
        return Err(Error::invalid_arg(
            ErrorDomain::None,
            format_args!("unsupported flags (0x{bad:x}) in function {func}"),
        ));
    }
    Ok(())
}

/// Moves a Rust value into a new handle.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Frees a handle made by [`into_handle`]; NULL is accepted.
///
/// # Safety
/// `p` is NULL or came from `into_handle::<T>` and was not freed yet.
pub(crate) unsafe fn free_handle<T>(p: *mut T) {
    if !p.is_null() {
        // SAFETY: per the caller's contract, `p` is an unfreed Box pointer.
        drop(unsafe { Box::from_raw(p) });
    }
}

/// Writes `value` to a checked out-parameter.
///
/// # Safety
/// `p` was checked by [`arg_out`] and is writable.
pub(crate) unsafe fn write_out<T>(p: *mut T, value: T) {
    // SAFETY: checked non-NULL; writable per the caller's contract.
    unsafe { p.write(value) }
}

/// Borrows a NUL-terminated string argument as bytes (for documents whose parser
/// reports invalid UTF-8 itself).
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn arg_bytes<'a>(p: *const c_char, name: &str, func: &str) -> Result<&'a [u8]> {
    if p.is_null() {
        return Err(null_arg(name, func));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    Ok(unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// Borrows an optional handle argument (NULL = absent).
///
/// # Safety
/// `p` is NULL or a live handle of type `T`.
pub(crate) unsafe fn arg_opt_ref<'a, T>(p: *const T) -> Option<&'a T> {
    // SAFETY: per the caller's contract.
    unsafe { p.as_ref() }
}

/// Borrows a NULL-terminated array of strings (NULL = absent).
///
/// # Safety
/// `p` is NULL or a NULL-terminated array of NUL-terminated strings.
pub(crate) unsafe fn arg_opt_str_list<'a>(
    p: *const *const c_char,
    name: &str,
    func: &str,
) -> Result<Option<Vec<&'a str>>> {
    if p.is_null() {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut i = 0;
    // SAFETY: NULL-terminated per the caller's contract.
    unsafe {
        while !(*p.add(i)).is_null() {
            out.push(arg_str(*p.add(i), name, func)?);
            i += 1;
        }
    }
    Ok(Some(out))
}

/// Borrows an array of `n` C structs (NULL allowed only when `n` is 0).
///
/// # Safety
/// `p` points to `n` readable elements, or `n` is 0.
pub(crate) unsafe fn arg_slice<'a, T>(
    p: *const T,
    n: usize,
    name: &str,
    func: &str,
) -> Result<&'a [T]> {
    if n == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(null_arg(name, func));
    }
    // SAFETY: `n` elements per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, n) })
}

/// Writes a new NULL-terminated string array to a checked out-parameter and, when
/// `count` is not NULL, its length.
///
/// # Safety
/// `out` was checked by [`arg_out`]; `count` is NULL or writable.
pub(crate) unsafe fn write_list<S: AsRef<str>>(
    out: *mut *mut *mut c_char,
    count: *mut usize,
    items: &[S],
) -> Result<()> {
    let arr = memory::c_string_list(items)?;
    // SAFETY: checked out-parameters.
    unsafe {
        write_out(out, arr);
        if !count.is_null() {
            write_out(count, items.len());
        }
    }
    Ok(())
}

/// Writes a new C string to a checked out-parameter.
///
/// # Safety
/// `out` was checked by [`arg_out`].
pub(crate) unsafe fn write_string(out: *mut *mut c_char, s: &str) -> Result<()> {
    let p = memory::c_string(s)?;
    // SAFETY: checked out-parameter.
    unsafe { write_out(out, p) };
    Ok(())
}

/// Writes each text to its out-parameter (NULL ones skipped), all or nothing.
pub(crate) fn write_strings(outs: &[*mut *mut c_char], texts: &[String]) -> Result<()> {
    let mut made = Vec::new();
    for (o, t) in outs.iter().zip(texts) {
        if o.is_null() {
            continue;
        }
        match memory::c_string(t) {
            Ok(p) => made.push((*o, p)),
            Err(e) => {
                for (_, p) in made {
                    // SAFETY: allocated above, not handed out.
                    unsafe { memory::vcp_free(p.cast()) };
                }
                return Err(e);
            }
        }
    }
    for (o, p) in made {
        // SAFETY: non-NULL out-parameters given by the caller.
        unsafe { write_out(o, p) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn boundary_catches_panics_and_errors() {
        let r: c_int = boundary("vcp_test", || panic!("boom"));
        assert_eq!(r, -1);
        let e = unsafe { &*error::vcp_last_error() };
        assert_eq!(e.code, error::VCP_ERR_INTERNAL_ERROR);
        let msg = unsafe { CStr::from_ptr(e.message) }.to_str().unwrap();
        assert_eq!(msg, "internal error: unexpected failure in vcp_test: boom");

        let r: *mut u8 = boundary("vcp_test", || Err(Error::internal("x")));
        assert!(r.is_null());
        let r: c_int = boundary("vcp_test", || Ok(0));
        assert_eq!(r, 0);
        assert!(
            error::vcp_last_error().is_null(),
            "success resets the error"
        );
    }

    #[test]
    fn argument_checks() {
        let e = check_flags(5, 1, "vcp_f").unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArg);
        assert_eq!(
            e.message(),
            "invalid argument: unsupported flags (0x4) in function vcp_f"
        );
        let e = unsafe { arg_str(ptr::null(), "xml", "vcp_f") }.unwrap_err();
        assert_eq!(
            e.message(),
            "invalid argument: xml in vcp_f must not be NULL"
        );
        let bad = c"a\xffb";
        let e = unsafe { arg_str(bad.as_ptr(), "xml", "vcp_f") }.unwrap_err();
        assert_eq!(
            e.message(),
            "invalid argument: xml in vcp_f is not valid UTF-8 (byte 1)"
        );
    }
}
