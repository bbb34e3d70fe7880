//! Errors with libvirt's numbering: every failure the library reports carries a
//! `virErrorNumber`, a `virErrorDomain` and a message formatted as libvirt formats it
//! (`"<prefix>: <detail>"`, e.g. `"internal error: bitmap 'a' not found in ..."`).

use std::fmt;

macro_rules! error_codes {
    ($($variant:ident, $c:literal, $n:literal, $prefix:literal, $doc:literal;)*) => {
        /// libvirt's `virErrorNumber` values used by this library.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $(#[doc = concat!("VIR_ERR_", $c, ": ", $doc, ".")] $variant = $n,)*
        }

        impl ErrorCode {
            /// Every code, in libvirt's numeric order.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$variant),*];

            /// libvirt's message prefix for this code (virerror.c, `virErrorMsgStrings`).
            pub fn prefix(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $prefix,)*
                }
            }
        }
    };
}

macro_rules! error_domains {
    ($($variant:ident, $c:literal, $n:literal, $doc:literal;)*) => {
        /// libvirt's `virErrorDomain` values used by this library.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorDomain {
            $(#[doc = concat!("VIR_FROM_", $c, ": ", $doc, ".")] $variant = $n,)*
        }
    };
}

include!("numbers.rs");

impl ErrorDomain {
    /// The numeric `virErrorDomain`.
    pub fn number(self) -> i32 {
        self as i32
    }
}

impl ErrorCode {
    /// The numeric `virErrorNumber`.
    pub fn number(self) -> i32 {
        self as i32
    }
}

/// An error as libvirt reports it: code, domain and the full message text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    code: ErrorCode,
    domain: ErrorDomain,
    message: String,
    /// Where the detail starts in `message` (after libvirt's prefix and ": ").
    detail_at: usize,
    /// The OS error number of a system error.
    errno: Option<i32>,
}

impl Error {
    /// An error whose message is libvirt's prefix for `code` followed by `detail`.
    pub fn new(code: ErrorCode, domain: ErrorDomain, detail: impl fmt::Display) -> Self {
        let prefix = code.prefix();
        let (message, detail_at) = if prefix.is_empty() {
            (detail.to_string(), 0)
        } else {
            (format!("{prefix}: {detail}"), prefix.len() + 2)
        };
        Error {
            code,
            domain,
            message,
            detail_at,
            errno: None,
        }
    }

    /// VIR_ERR_SYSTEM_ERROR: `what` failed with the OS error `err` (libvirt's
    /// `virReportSystemError`: "<what>: <strerror>", the errno kept).
    pub fn system(domain: ErrorDomain, what: impl fmt::Display, err: &std::io::Error) -> Self {
        let mut e = Error::new(
            ErrorCode::SystemError,
            domain,
            format_args!("{what}: {err}"),
        );
        e.errno = err.raw_os_error();
        e
    }

    /// VIR_ERR_INVALID_ARG "no disk named '%s'": a disk target the domain does not
    /// have (the wording of libvirt's backup code). Every lookup of a disk by target
    /// reports this one error.
    pub fn no_disk(target: &str) -> Self {
        Error::invalid_arg(ErrorDomain::Qemu, format_args!("no disk named '{target}'"))
    }

    /// VIR_ERR_INTERNAL_ERROR from the QEMU driver.
    pub fn internal(detail: impl fmt::Display) -> Self {
        Error::new(ErrorCode::InternalError, ErrorDomain::Qemu, detail)
    }

    /// VIR_ERR_INVALID_ARG.
    pub fn invalid_arg(domain: ErrorDomain, detail: impl fmt::Display) -> Self {
        Error::new(ErrorCode::InvalidArg, domain, detail)
    }

    /// VIR_ERR_CONFIG_UNSUPPORTED.
    pub fn config_unsupported(domain: ErrorDomain, detail: impl fmt::Display) -> Self {
        Error::new(ErrorCode::ConfigUnsupported, domain, detail)
    }

    /// VIR_ERR_XML_ERROR.
    pub fn xml(domain: ErrorDomain, detail: impl fmt::Display) -> Self {
        Error::new(ErrorCode::XmlError, domain, detail)
    }

    /// The `virErrorNumber`.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The `virErrorDomain`.
    pub fn domain(&self) -> ErrorDomain {
        self.domain
    }

    /// The full message, prefix included, as `virGetLastErrorMessage()` gives it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message without libvirt's prefix: what a libvirt driver passes to
    /// `virReportError`, which adds the prefix itself.
    pub fn detail(&self) -> &str {
        &self.message[self.detail_at..]
    }

    /// The OS error number of a VIR_ERR_SYSTEM_ERROR, when there is one.
    pub fn errno(&self) -> Option<i32> {
        self.errno
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_has_libvirt_prefix() {
        let e = Error::internal("bitmap 'a' not found in backing chain of 'vda'");
        assert_eq!(
            e.message(),
            "internal error: bitmap 'a' not found in backing chain of 'vda'"
        );
        assert_eq!(e.code().number(), 1);
        assert_eq!(e.domain().number(), 10);
        let e = Error::new(
            ErrorCode::CheckpointInconsistent,
            ErrorDomain::Qemu,
            "missing or broken bitmap 'c2' for disk 'vda'",
        );
        assert_eq!(
            e.to_string(),
            "checkpoint inconsistent: missing or broken bitmap 'c2' for disk 'vda'"
        );
    }

    #[test]
    fn numbers_match_virterror_h() {
        assert_eq!(ErrorCode::ConfigUnsupported.number(), 67);
        assert_eq!(ErrorCode::NoDomainCheckpoint.number(), 103);
        assert_eq!(ErrorCode::CheckpointInconsistent.number(), 109);
        assert_eq!(ErrorCode::OperationUnsupported.number(), 84);
        assert_eq!(ErrorDomain::DomainCheckpoint.number(), 69);
    }
}
