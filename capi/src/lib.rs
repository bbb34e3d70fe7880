//! The C ABI of virtcheckpoint. It only converts: each entry point checks its
//! arguments, calls one function of the core crate (`virtcheckpoint`), and writes its
//! outputs through the shared writers below. It decides nothing.
//!
//! Conventions (libvirt's), written in the header too:
//! * failure returns -1 or NULL and sets the thread-local last error; every entry
//!   point resets that error first; no panic crosses the boundary;
//! * every out-parameter is required: NULL is VIR_ERR_INVALID_ARG, and they are
//!   written only on success (all of them, or none);
//! * a list is returned as a NULL-terminated array in an out-parameter, and the
//!   function returns its length;
//! * unknown flag bits are refused as `virCheckFlags` does.

#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)] // every exported fn documents its contract in prose

mod chain;
mod checkpoint;
mod domain;
mod error;
mod list;
mod memory;
mod nodes;
mod plan;
mod reconcile;
mod step;
mod version;

pub use chain::*;
pub use checkpoint::*;
pub use domain::*;
pub use error::*;
pub use list::*;
pub use memory::*;
pub use nodes::*;
pub use plan::*;
pub use reconcile::*;
pub use step::*;
pub use version::*;

use std::ffi::{CStr, c_char, c_int, c_uint};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;

use virtcheckpoint::{Error, ErrorDomain, Json, Result};

/// The name of the enclosing function, for error messages: entry points never type
/// their own name.
macro_rules! entry_name {
    () => {{
        fn here() {}
        let path = std::any::type_name_of_val(&here);
        let path = path.strip_suffix("::here").unwrap_or(path);
        path.rsplit("::").next().unwrap_or(path)
    }};
}

/// Runs an entry point's body in [`boundary`] under the entry point's own name.
macro_rules! guard {
    ($body:expr) => {
        $crate::boundary($crate::entry_name!(), $body)
    };
}
pub(crate) use {entry_name, guard};

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

impl FailValue for () {
    fn fail() -> Self {}
}

/// The call being served: its name, for the argument errors.
pub(crate) struct Call {
    func: &'static str,
}

/// The one boundary every exported body runs in: resets the last error, runs `body`,
/// turns an `Err` into the failure value plus the last error, and a panic into
/// VIR_ERR_INTERNAL_ERROR naming the entry point.
pub(crate) fn boundary<R: FailValue>(
    func: &'static str,
    body: impl FnOnce(&Call) -> Result<R>,
) -> R {
    error::reset();
    let cx = Call { func };
    match catch_unwind(AssertUnwindSafe(|| body(&cx))) {
        Ok(Ok(value)) => value,
        Ok(Err(err)) => {
            error::set(&err);
            R::fail()
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            error::set(&Error::internal(format_args!(
                "unexpected failure in {func}: {what}"
            )));
            R::fail()
        }
    }
}

/// A C count as `c_int`, saturating.
pub(crate) fn count(n: usize) -> c_int {
    c_int::try_from(n).unwrap_or(c_int::MAX)
}

/// Collects results into a vector sized for all of them up front, or the first error:
/// collecting into a `Result` gives the vector no size hint, so it grew step by step
/// (seven reallocations for a node's 250 bitmaps).
pub(crate) fn collect_sized<T>(items: impl ExactSizeIterator<Item = Result<T>>) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        out.push(item?);
    }
    Ok(out)
}

/// The largest array a caller may pass (a guard against a garbage count).
pub(crate) const MAX_ARRAY: usize = 1 << 16;

impl Call {
    fn invalid(&self, detail: std::fmt::Arguments<'_>) -> Error {
        Error::invalid_arg(ErrorDomain::None, detail)
    }

    fn null(&self, name: &str) -> Error {
        self.invalid(format_args!("{name} in {} must not be NULL", self.func))
    }

    /// `virCheckFlags`: any bit outside `allowed` is an error.
    pub(crate) fn flags(&self, flags: c_uint, allowed: c_uint) -> Result<()> {
        let bad = flags & !allowed;
        if bad != 0 {
            return Err(self.invalid(format_args!(
                "unsupported flags (0x{bad:x}) in function {}",
                self.func
            )));
        }
        Ok(())
    }

    /// A NUL-terminated string argument as bytes (for documents whose parser reports
    /// invalid UTF-8 itself).
    ///
    /// # Safety
    /// `p` is NULL or points to a NUL-terminated string that outlives `'a`.
    pub(crate) unsafe fn bytes<'a>(&self, p: *const c_char, name: &str) -> Result<&'a [u8]> {
        if p.is_null() {
            return Err(self.null(name));
        }
        // SAFETY: non-NULL and NUL-terminated per the caller's contract.
        Ok(unsafe { CStr::from_ptr(p) }.to_bytes())
    }

    /// A NUL-terminated UTF-8 string argument.
    ///
    /// # Safety
    /// As for [`Call::bytes`].
    pub(crate) unsafe fn str<'a>(&self, p: *const c_char, name: &str) -> Result<&'a str> {
        // SAFETY: forwarded contract.
        let bytes = unsafe { self.bytes(p, name) }?;
        std::str::from_utf8(bytes).map_err(|e| {
            self.invalid(format_args!(
                "{name} in {} is not valid UTF-8 (byte {})",
                self.func,
                e.valid_up_to()
            ))
        })
    }

    /// Like [`Call::str`], NULL giving `None`.
    ///
    /// # Safety
    /// As for [`Call::bytes`].
    pub(crate) unsafe fn opt_str<'a>(
        &self,
        p: *const c_char,
        name: &str,
    ) -> Result<Option<&'a str>> {
        if p.is_null() {
            Ok(None)
        } else {
            // SAFETY: forwarded contract.
            unsafe { self.str(p, name) }.map(Some)
        }
    }

    /// A handle argument.
    ///
    /// # Safety
    /// `p` is NULL or a live handle of type `T` created by this library.
    pub(crate) unsafe fn handle<'a, T>(&self, p: *const T, name: &str) -> Result<&'a T> {
        // SAFETY: non-NULL handles are live per the caller's contract.
        unsafe { p.as_ref() }.ok_or_else(|| self.null(name))
    }

    /// A handle argument the call changes.
    ///
    /// # Safety
    /// `p` is NULL or a live handle of type `T`, used by this thread only.
    pub(crate) unsafe fn handle_mut<'a, T>(&self, p: *mut T, name: &str) -> Result<&'a mut T> {
        // SAFETY: as above.
        unsafe { p.as_mut() }.ok_or_else(|| self.null(name))
    }

    /// The three handles most planners take: the domain, a second handle, the node
    /// data.
    ///
    /// # Safety
    /// As for [`Call::handle`], for each.
    pub(crate) unsafe fn handles3<'a, A, B, C>(
        &self,
        a: (*const A, &str),
        b: (*const B, &str),
        c: (*const C, &str),
    ) -> Result<(&'a A, &'a B, &'a C)> {
        // SAFETY: forwarded contract.
        unsafe {
            Ok((
                self.handle(a.0, a.1)?,
                self.handle(b.0, b.1)?,
                self.handle(c.0, c.1)?,
            ))
        }
    }

    /// An optional handle argument (NULL = absent).
    ///
    /// # Safety
    /// `p` is NULL or a live handle of type `T`.
    pub(crate) unsafe fn opt_handle<'a, T>(&self, p: *const T) -> Option<&'a T> {
        // SAFETY: per the caller's contract.
        unsafe { p.as_ref() }
    }

    /// An array of `n` C structs (NULL allowed only when `n` is 0; `n` at most
    /// [`MAX_ARRAY`]).
    ///
    /// # Safety
    /// `p` points to `n` readable elements, or `n` is 0.
    pub(crate) unsafe fn slice<'a, T>(&self, p: *const T, n: usize, name: &str) -> Result<&'a [T]> {
        if n == 0 {
            return Ok(&[]);
        }
        if n > MAX_ARRAY {
            return Err(self.invalid(format_args!(
                "{name} in {}: {n} elements is more than the limit of {MAX_ARRAY}",
                self.func
            )));
        }
        if p.is_null() {
            return Err(self.null(name));
        }
        // SAFETY: `n` elements per the caller's contract; `n` is bounded, so the byte
        // size cannot overflow for the small structs used here.
        Ok(unsafe { std::slice::from_raw_parts(p, n) })
    }

    /// A NULL-terminated array of strings (NULL = absent), at most [`MAX_ARRAY`].
    ///
    /// # Safety
    /// `p` is NULL or a NULL-terminated array of NUL-terminated strings.
    pub(crate) unsafe fn opt_str_list<'a>(
        &self,
        p: *const *const c_char,
        name: &str,
    ) -> Result<Option<Vec<&'a str>>> {
        if p.is_null() {
            return Ok(None);
        }
        let mut out = Vec::new();
        // SAFETY: NULL-terminated per the caller's contract.
        unsafe {
            while !(*p.add(out.len())).is_null() {
                if out.len() == MAX_ARRAY {
                    return Err(self.invalid(format_args!(
                        "{name} in {} has more than {MAX_ARRAY} entries",
                        self.func
                    )));
                }
                out.push(self.str(*p.add(out.len()), name)?);
            }
        }
        Ok(Some(out))
    }

    /// A required out-parameter, checked before anything is computed.
    pub(crate) fn out<T>(&self, p: *mut T, name: &str) -> Result<Out<T>> {
        if p.is_null() {
            Err(self.null(name))
        } else {
            Ok(Out(p))
        }
    }
}

/// A checked, non-NULL out-parameter.
pub(crate) struct Out<T>(*mut T);

impl<T> Out<T> {
    /// Writes a plain value.
    ///
    /// # Safety
    /// The pointer the caller gave is writable.
    pub(crate) unsafe fn put(self, value: T) {
        // SAFETY: checked non-NULL; writable per the caller's contract.
        unsafe { self.0.write(value) }
    }

    /// The caller's pointer, for an out-parameter that is an array.
    pub(crate) fn as_ptr(&self) -> *mut T {
        self.0
    }
}

/// The outputs of one call, allocated first and written together: either every
/// out-parameter is written, or (on an allocation failure) none, and nothing leaks.
#[derive(Default)]
pub(crate) struct Outputs {
    strings: Vec<(*mut *mut c_char, *mut c_char)>,
    lists: Vec<(*mut *mut *mut c_char, *mut *mut c_char)>,
}

impl Outputs {
    /// A string for `out` (`None` writes NULL).
    pub(crate) fn string(mut self, out: Out<*mut c_char>, s: Option<&str>) -> Result<Self> {
        let p = match s {
            Some(s) => memory::c_string(s)?,
            None => ptr::null_mut(),
        };
        self.strings.push((out.0, p));
        Ok(self)
    }

    /// Compact JSON text for `out`.
    pub(crate) fn json(self, out: Out<*mut c_char>, j: &Json) -> Result<Self> {
        self.string(out, Some(&j.to_compact()))
    }

    /// A NULL-terminated string array for `out`.
    pub(crate) fn list<S: AsRef<str>>(
        mut self,
        out: Out<*mut *mut c_char>,
        items: &[S],
    ) -> Result<Self> {
        let p = memory::c_string_list(items)?;
        self.lists.push((out.0, p));
        Ok(self)
    }

    /// Writes every output.
    ///
    /// # Safety
    /// The out-parameters the caller gave are writable.
    pub(crate) unsafe fn write(mut self) {
        // SAFETY: checked non-NULL, writable per the caller's contract; ownership of
        // each allocation passes to the caller.
        unsafe {
            for (o, p) in self.strings.drain(..) {
                o.write(p);
            }
            for (o, p) in self.lists.drain(..) {
                o.write(p);
            }
        }
    }
}

/// Writes `items` to `out` as a new NULL-terminated string array and returns their
/// count: the whole result of a call whose only output is one list.
///
/// # Safety
/// `out` is writable per the caller's contract.
pub(crate) unsafe fn write_list<S: AsRef<str>>(
    out: Out<*mut *mut c_char>,
    items: &[S],
) -> Result<c_int> {
    // SAFETY: forwarded contract.
    unsafe { Outputs::default().list(out, items)?.write() };
    Ok(count(items.len()))
}

impl Drop for Outputs {
    fn drop(&mut self) {
        // Only reached with allocations when a later output failed: free them.
        // SAFETY: allocated by `memory`, never handed out.
        unsafe {
            for (_, p) in self.strings.drain(..) {
                memory::vcp_free(p.cast());
            }
            for (_, p) in self.lists.drain(..) {
                memory::vcp_string_list_free(p);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use virtcheckpoint::ErrorCode;

    fn last_message() -> String {
        let e = error::vcp_last_error();
        assert!(!e.is_null());
        // SAFETY: non-NULL error of this thread.
        unsafe { CStr::from_ptr((*e).message) }
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn boundary_catches_panics_and_errors() {
        let r: c_int = boundary("vcp_test", |_| panic!("boom"));
        assert_eq!(r, -1);
        // SAFETY: set just above.
        let e = unsafe { &*error::vcp_last_error() };
        assert_eq!(e.code, ErrorCode::InternalError.number());
        assert_eq!(
            last_message(),
            "internal error: unexpected failure in vcp_test: boom"
        );
        let r: *mut u8 = boundary("vcp_test", |_| Err(Error::internal("x")));
        assert!(r.is_null());
        let r: c_int = boundary("vcp_test", |_| Ok(0));
        assert_eq!(r, 0);
        assert!(
            error::vcp_last_error().is_null(),
            "success resets the error"
        );
    }

    #[test]
    fn the_entry_name_is_the_enclosing_function() {
        fn vcp_example() -> c_int {
            guard!(|cx: &Call| {
                cx.flags(4, 1)?;
                Ok(0)
            })
        }
        assert_eq!(vcp_example(), -1);
        assert_eq!(
            last_message(),
            "invalid argument: unsupported flags (0x4) in function vcp_example"
        );
    }

    #[test]
    fn argument_checks() {
        let cx = Call { func: "vcp_f" };
        let e = cx.flags(5, 1).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidArg);
        // SAFETY: NULL and a valid C string.
        let e = unsafe { cx.str(ptr::null(), "xml") }.unwrap_err();
        assert_eq!(
            e.message(),
            "invalid argument: xml in vcp_f must not be NULL"
        );
        let bad = c"a\xffb";
        // SAFETY: a valid C string.
        let e = unsafe { cx.str(bad.as_ptr(), "xml") }.unwrap_err();
        assert_eq!(
            e.message(),
            "invalid argument: xml in vcp_f is not valid UTF-8 (byte 1)"
        );
        let e = cx.out(ptr::null_mut::<c_int>(), "count").err().unwrap();
        assert_eq!(
            e.message(),
            "invalid argument: count in vcp_f must not be NULL"
        );
        let one = [0u8; 1];
        // SAFETY: the pointer is valid for 1 element; the count is refused first.
        let e = unsafe { cx.slice(one.as_ptr(), usize::MAX, "disks") }.unwrap_err();
        assert!(
            e.message().contains("more than the limit"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn string_lists_are_bounded() {
        let cx = Call { func: "vcp_f" };
        let one = c"x";
        let mut many: Vec<*const c_char> = vec![one.as_ptr(); MAX_ARRAY + 1];
        many.push(ptr::null());
        // SAFETY: a NULL-terminated array of valid C strings.
        let e = unsafe { cx.opt_str_list(many.as_ptr(), "checkpoints") }.unwrap_err();
        assert!(
            e.message().contains("more than 65536 entries"),
            "{}",
            e.message()
        );
        many.truncate(MAX_ARRAY);
        many.push(ptr::null());
        // SAFETY: as above.
        let ok = unsafe { cx.opt_str_list(many.as_ptr(), "checkpoints") }.unwrap();
        assert_eq!(ok.map(|v| v.len()), Some(MAX_ARRAY));
    }

    #[test]
    fn outputs_are_all_or_nothing() {
        let mut a: *mut c_char = ptr::null_mut();
        let mut b: *mut c_char = ptr::null_mut();
        let cx = Call { func: "vcp_f" };
        // The second string has an embedded NUL: neither output is written.
        let r = Outputs::default()
            .string(cx.out(&mut a, "a").unwrap(), Some("fine"))
            .and_then(|o| o.string(cx.out(&mut b, "b").unwrap(), Some("bad\0")));
        assert!(r.is_err());
        assert!(a.is_null() && b.is_null());
    }

    /// End to end through the exported functions, as a C caller does: a failing
    /// parse sets the error a caller reads; a successful chain of calls hands out
    /// malloc'd lists and strings that the caller frees (Miri checks every pointer).
    #[test]
    fn end_to_end_error_and_success_paths() {
        // SAFETY: C strings and handles of this library, freed once.
        unsafe {
            assert!(vcp_node_data_parse_json(c"[{".as_ptr(), 0).is_null());
            let e = &*error::vcp_last_error();
            assert_eq!(e.code, ErrorCode::InternalError.number());
            assert!(
                CStr::from_ptr(e.message)
                    .to_str()
                    .unwrap()
                    .starts_with("internal error: cannot parse json")
            );
            assert!(
                CStr::from_ptr(error::vcp_last_error_detail())
                    .to_str()
                    .unwrap()
                    .starts_with("cannot parse json")
            );

            let dom = vcp_domain_parse_xml(
                c"<domain><devices><disk><source file='/a'/><target dev='vda'/></disk></devices></domain>".as_ptr(),
                0,
            );
            assert!(!dom.is_null());
            let mut targets: *mut *mut c_char = ptr::null_mut();
            assert_eq!(vcp_domain_get_disks(dom, &mut targets), 1);
            assert_eq!(CStr::from_ptr(*targets).to_str().unwrap(), "vda");
            assert!((*targets.add(1)).is_null());
            vcp_string_list_free(targets);
            let def = vcp_checkpoint_def_parse_xml(
                c"<domaincheckpoint><name>c1</name></domaincheckpoint>".as_ptr(),
                dom,
                0,
            );
            assert!(!def.is_null());
            let mut actions: *mut c_char = ptr::null_mut();
            // The disk has no node names (an inactive definition): libvirt's refusal.
            assert_eq!(
                vcp_checkpoint_add_actions(dom, def, ptr::null(), &mut actions, 0),
                -1
            );
            assert!(actions.is_null());
            let xml = vcp_checkpoint_def_format_xml(def, 0);
            assert!(
                CStr::from_ptr(xml)
                    .to_str()
                    .unwrap()
                    .contains("<disk name='vda' checkpoint='bitmap' bitmap='c1'/>")
            );
            vcp_free(xml.cast());
            vcp_checkpoint_def_free(def);
            vcp_domain_free(dom);
        }
    }
}
