//! The thread-local last error (libvirt's `virGetLastError` model) and the error
//! numbers C callers compare against.

use std::cell::RefCell;
use std::ffi::{CString, c_char, c_int};
use std::ptr;

use crate::error::Error;

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
    _message: CString,
}

thread_local! {
    static LAST: RefCell<Option<Box<Stored>>> = const { RefCell::new(None) };
}

/// Records `err` as this thread's last error.
pub(crate) fn set(err: &Error) {
    let message = CString::new(err.message().replace('\0', "\\0"))
        .unwrap_or_else(|_| CString::from(c"internal error"));
    let stored = Box::new(Stored {
        raw: vcp_error {
            code: err.code().number(),
            domain: err.domain().number(),
            message: message.as_ptr(),
        },
        _message: message,
    });
    LAST.with(|l| *l.borrow_mut() = Some(stored));
}

/// Clears this thread's last error (done at every entry point).
pub(crate) fn reset() {
    LAST.with(|l| *l.borrow_mut() = None);
}

/// The last error raised on this thread by a call into this library, or NULL if the
/// last call succeeded. Every other entry point resets it first, as libvirt's public
/// API does. Do not free the result.
#[unsafe(no_mangle)]
pub extern "C" fn vcp_last_error() -> *const vcp_error {
    LAST.with(|l| {
        l.borrow()
            .as_ref()
            .map_or(ptr::null(), |s| &s.raw as *const vcp_error)
    })
}

/// The last error's message, or `"no error"` when there is none (as
/// `virGetLastErrorMessage`). Never NULL; do not free.
#[unsafe(no_mangle)]
pub extern "C" fn vcp_last_error_message() -> *const c_char {
    LAST.with(|l| {
        l.borrow()
            .as_ref()
            .map_or(c"no error".as_ptr(), |s| s._message.as_ptr())
    })
}

/// Clears the calling thread's last error.
#[unsafe(no_mangle)]
pub extern "C" fn vcp_reset_last_error() {
    reset();
}

/// VIR_ERR_OK: no error.
pub const VCP_ERR_OK: c_int = 0;
/// VIR_ERR_INTERNAL_ERROR: an internal error, a malformed QEMU reply, or a caught panic.
pub const VCP_ERR_INTERNAL_ERROR: c_int = 1;
/// VIR_ERR_NO_MEMORY.
pub const VCP_ERR_NO_MEMORY: c_int = 2;
/// VIR_ERR_INVALID_ARG: NULL or non-UTF-8 argument, unknown flag bits, bad references.
pub const VCP_ERR_INVALID_ARG: c_int = 8;
/// VIR_ERR_OPERATION_FAILED: e.g. a checkpoint name that already exists.
pub const VCP_ERR_OPERATION_FAILED: c_int = 9;
/// VIR_ERR_XML_ERROR: malformed XML.
pub const VCP_ERR_XML_ERROR: c_int = 27;
/// VIR_ERR_SYSTEM_ERROR: a failed system call (file I/O), with the OS error text.
pub const VCP_ERR_SYSTEM_ERROR: c_int = 38;
/// VIR_ERR_OPERATION_INVALID: e.g. "domain is not running".
pub const VCP_ERR_OPERATION_INVALID: c_int = 55;
/// VIR_ERR_CONFIG_UNSUPPORTED: a checkpoint or backup request the domain cannot honour.
pub const VCP_ERR_CONFIG_UNSUPPORTED: c_int = 67;
/// VIR_ERR_OPERATION_UNSUPPORTED.
pub const VCP_ERR_OPERATION_UNSUPPORTED: c_int = 84;
/// VIR_ERR_XML_INVALID_SCHEMA: XML that libvirt's RNG schema would reject.
pub const VCP_ERR_XML_INVALID_SCHEMA: c_int = 92;
/// VIR_ERR_INVALID_DOMAIN_CHECKPOINT.
pub const VCP_ERR_INVALID_DOMAIN_CHECKPOINT: c_int = 102;
/// VIR_ERR_NO_DOMAIN_CHECKPOINT: no checkpoint of that name.
pub const VCP_ERR_NO_DOMAIN_CHECKPOINT: c_int = 103;
/// VIR_ERR_NO_DOMAIN_BACKUP.
pub const VCP_ERR_NO_DOMAIN_BACKUP: c_int = 104;
/// VIR_ERR_CHECKPOINT_INCONSISTENT: a checkpoint's bitmap chain is missing or broken.
pub const VCP_ERR_CHECKPOINT_INCONSISTENT: c_int = 109;

/// VIR_FROM_NONE.
pub const VCP_FROM_NONE: c_int = 0;
/// VIR_FROM_XML.
pub const VCP_FROM_XML: c_int = 5;
/// VIR_FROM_QEMU: the QEMU driver's checkpoint, backup and block-job logic.
pub const VCP_FROM_QEMU: c_int = 10;
/// VIR_FROM_DOMAIN: domain configuration and moment lists.
pub const VCP_FROM_DOMAIN: c_int = 20;
/// VIR_FROM_DOMAIN_CHECKPOINT: checkpoint XML.
pub const VCP_FROM_DOMAIN_CHECKPOINT: c_int = 69;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorCode, ErrorDomain};

    #[test]
    fn c_constants_equal_core_numbers() {
        let pairs = [
            (VCP_ERR_INTERNAL_ERROR, ErrorCode::InternalError),
            (VCP_ERR_NO_MEMORY, ErrorCode::NoMemory),
            (VCP_ERR_INVALID_ARG, ErrorCode::InvalidArg),
            (VCP_ERR_OPERATION_FAILED, ErrorCode::OperationFailed),
            (VCP_ERR_XML_ERROR, ErrorCode::XmlError),
            (VCP_ERR_SYSTEM_ERROR, ErrorCode::SystemError),
            (VCP_ERR_OPERATION_INVALID, ErrorCode::OperationInvalid),
            (VCP_ERR_CONFIG_UNSUPPORTED, ErrorCode::ConfigUnsupported),
            (
                VCP_ERR_OPERATION_UNSUPPORTED,
                ErrorCode::OperationUnsupported,
            ),
            (VCP_ERR_XML_INVALID_SCHEMA, ErrorCode::XmlInvalidSchema),
            (
                VCP_ERR_INVALID_DOMAIN_CHECKPOINT,
                ErrorCode::InvalidDomainCheckpoint,
            ),
            (VCP_ERR_NO_DOMAIN_CHECKPOINT, ErrorCode::NoDomainCheckpoint),
            (VCP_ERR_NO_DOMAIN_BACKUP, ErrorCode::NoDomainBackup),
            (
                VCP_ERR_CHECKPOINT_INCONSISTENT,
                ErrorCode::CheckpointInconsistent,
            ),
        ];
        for (c, core) in pairs {
            assert_eq!(c, core.number(), "{core:?}");
        }
        let domains = [
            (VCP_FROM_NONE, ErrorDomain::None),
            (VCP_FROM_XML, ErrorDomain::Xml),
            (VCP_FROM_QEMU, ErrorDomain::Qemu),
            (VCP_FROM_DOMAIN, ErrorDomain::Domain),
            (VCP_FROM_DOMAIN_CHECKPOINT, ErrorDomain::DomainCheckpoint),
        ];
        for (c, core) in domains {
            assert_eq!(c, core.number(), "{core:?}");
        }
    }
}
