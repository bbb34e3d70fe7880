//! The thread-local last error (libvirt's `virGetLastError` model). The error numbers
//! (`VCP_ERR_*`, `VCP_FROM_*`) are written into the header by build.rs from the core's
//! one table of them.

use std::cell::RefCell;
use std::ffi::{CString, c_char, c_int};
use std::ptr;

use virtcheckpoint::Error;

/// The last error raised on the calling thread.
///
/// `code` is a libvirt `virErrorNumber` (`VCP_ERR_*`), `domain` a `virErrorDomain`
/// (`VCP_FROM_*`), `message` the full text as libvirt formats it, e.g.
/// `"internal error: bitmap 'a' not found in backing chain of 'vda'"`.
/// Owned by the library; valid until the next call into the library on this thread.
#[repr(C)]
pub struct vcp_error {
    /// The `virErrorNumber` (`VCP_ERR_*`).
    pub code: c_int,
    /// The `virErrorDomain` (`VCP_FROM_*`).
    pub domain: c_int,
    /// The message, prefix included. Never NULL.
    pub message: *const c_char,
}

struct Stored {
    raw: vcp_error,
    message: CString,
    detail: CString,
    errno: c_int,
}

thread_local! {
    static LAST: RefCell<Option<Box<Stored>>> = const { RefCell::new(None) };
}

fn c_text(s: &str) -> CString {
    CString::new(s.replace('\0', "\\0")).unwrap_or_else(|_| CString::from(c"internal error"))
}

/// Records `err` as this thread's last error. During thread teardown (the
/// thread-local already gone) the error is dropped rather than aborting the process.
pub(crate) fn set(err: &Error) {
    // The strings live in the box; the raw pointer is taken from the box's own copy,
    // after the move, so it stays valid as long as the box.
    let mut stored = Box::new(Stored {
        raw: vcp_error {
            code: err.code().number(),
            domain: err.domain().number(),
            message: ptr::null(),
        },
        message: c_text(err.message()),
        detail: c_text(err.detail()),
        errno: err.errno().unwrap_or(0),
    });
    stored.raw.message = stored.message.as_ptr();
    let _ = LAST.try_with(|l| {
        if let Ok(mut slot) = l.try_borrow_mut() {
            *slot = Some(stored);
        }
    });
}

/// Clears this thread's last error (done at every entry point).
pub(crate) fn reset() {
    let _ = LAST.try_with(|l| {
        if let Ok(mut slot) = l.try_borrow_mut() {
            *slot = None;
        }
    });
}

/// Reads the stored error, if any, without ever panicking.
fn with_last<R>(f: impl FnOnce(&Stored) -> R, none: R) -> R {
    LAST.try_with(|l| match l.try_borrow() {
        Ok(slot) => slot.as_deref().map(f),
        Err(_) => None,
    })
    .ok()
    .flatten()
    .unwrap_or(none)
}

/// The last error raised on this thread by a call into this library, or NULL if the
/// last call succeeded. Every other entry point resets it first, as libvirt's public
/// API does. Do not free the result.
#[unsafe(no_mangle)]
pub extern "C" fn vcp_last_error() -> *const vcp_error {
    with_last(|s| &s.raw as *const vcp_error, ptr::null())
}

/// The last error's message, or `"no error"` when there is none (as
/// `virGetLastErrorMessage`). Never NULL; do not free.
#[unsafe(no_mangle)]
pub extern "C" fn vcp_last_error_message() -> *const c_char {
    with_last(|s| s.message.as_ptr(), c"no error".as_ptr())
}

/// The last error's message without libvirt's prefix (`"bitmap 'a' not found in
/// backing chain of 'vda'"` for `"internal error: bitmap 'a' …"`): what a libvirt
/// driver passes to `virReportError(code, "%s", …)`, which adds the prefix itself.
/// `"no error"` when there is none. Never NULL; do not free.
#[unsafe(no_mangle)]
pub extern "C" fn vcp_last_error_detail() -> *const c_char {
    with_last(|s| s.detail.as_ptr(), c"no error".as_ptr())
}

/// The OS error number of the last error when it is a VIR_ERR_SYSTEM_ERROR (for
/// `virReportSystemError`), else 0.
#[unsafe(no_mangle)]
pub extern "C" fn vcp_last_error_errno() -> c_int {
    with_last(|s| s.errno, 0)
}

/// Clears the calling thread's last error.
#[unsafe(no_mangle)]
pub extern "C" fn vcp_reset_last_error() {
    reset();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use virtcheckpoint::{ErrorCode, ErrorDomain};

    #[test]
    fn message_detail_and_errno() {
        let io = std::io::Error::from_raw_os_error(28);
        set(&Error::system(ErrorDomain::Qemu, "cannot write 'x'", &io));
        // SAFETY: set just above; the pointers live until the next call.
        unsafe {
            let e = &*vcp_last_error();
            assert_eq!(e.code, ErrorCode::SystemError.number());
            assert_eq!(
                CStr::from_ptr(e.message),
                CStr::from_ptr(vcp_last_error_message())
            );
        }
        assert_eq!(vcp_last_error_errno(), 28);
        set(&Error::internal("bitmap 'a' not found"));
        // SAFETY: as above.
        let detail = unsafe { CStr::from_ptr(vcp_last_error_detail()) };
        assert_eq!(detail.to_str().unwrap(), "bitmap 'a' not found");
        assert_eq!(vcp_last_error_errno(), 0);
        reset();
        assert!(vcp_last_error().is_null());
        // SAFETY: a static string.
        let none = unsafe { CStr::from_ptr(vcp_last_error_message()) };
        assert_eq!(none.to_str().unwrap(), "no error");
    }

    /// Calls made while the thread's locals are torn down (from another thread-local's
    /// destructor, after the last error's own slot is gone) must not panic: a panic
    /// there aborts the process.
    #[test]
    fn calls_during_thread_teardown_do_not_abort() {
        struct CallsOnDrop;
        impl Drop for CallsOnDrop {
            fn drop(&mut self) {
                let list = crate::vcp_checkpoint_list_new();
                // SAFETY: a handle of this library, or NULL.
                unsafe { crate::vcp_checkpoint_list_free(list) };
                let _ = vcp_last_error();
                let _ = vcp_last_error_message();
                reset();
            }
        }
        thread_local! {
            static GUARD: CallsOnDrop = const { CallsOnDrop };
        }
        let t = std::thread::spawn(|| {
            // Registered first, so destroyed after LAST.
            GUARD.with(|_| {});
            set(&Error::internal("x"));
        });
        assert!(t.join().is_ok(), "the thread ended without a panic");
    }
}
