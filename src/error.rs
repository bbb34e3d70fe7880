//! Errors with libvirt's numbering: every failure the library reports carries a
//! `virErrorNumber`, a `virErrorDomain` and a message formatted as libvirt formats it
//! (`"<prefix>: <detail>"`, e.g. `"internal error: bitmap 'a' not found in ..."`).

use std::fmt;

/// libvirt's `virErrorNumber` values used by this library (include/libvirt/virterror.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// VIR_ERR_INTERNAL_ERROR
    InternalError = 1,
    /// VIR_ERR_NO_MEMORY
    NoMemory = 2,
    /// VIR_ERR_INVALID_ARG
    InvalidArg = 8,
    /// VIR_ERR_OPERATION_FAILED
    OperationFailed = 9,
    /// VIR_ERR_XML_ERROR
    XmlError = 27,
    /// VIR_ERR_SYSTEM_ERROR
    SystemError = 38,
    /// VIR_ERR_OPERATION_INVALID
    OperationInvalid = 55,
    /// VIR_ERR_CONFIG_UNSUPPORTED
    ConfigUnsupported = 67,
    /// VIR_ERR_OPERATION_UNSUPPORTED
    OperationUnsupported = 84,
    /// VIR_ERR_XML_INVALID_SCHEMA
    XmlInvalidSchema = 92,
    /// VIR_ERR_INVALID_DOMAIN_CHECKPOINT
    InvalidDomainCheckpoint = 102,
    /// VIR_ERR_NO_DOMAIN_CHECKPOINT
    NoDomainCheckpoint = 103,
    /// VIR_ERR_NO_DOMAIN_BACKUP
    NoDomainBackup = 104,
    /// VIR_ERR_CHECKPOINT_INCONSISTENT
    CheckpointInconsistent = 109,
}

impl ErrorCode {
    /// libvirt's message prefix for this code (virerror.c, `virErrorMsgStrings`).
    pub fn prefix(self) -> &'static str {
        match self {
            ErrorCode::InternalError => "internal error",
            ErrorCode::NoMemory => "out of memory",
            ErrorCode::InvalidArg => "invalid argument",
            ErrorCode::OperationFailed => "operation failed",
            ErrorCode::XmlError => "XML error",
            ErrorCode::SystemError => "",
            ErrorCode::OperationInvalid => "Requested operation is not valid",
            ErrorCode::ConfigUnsupported => "unsupported configuration",
            ErrorCode::OperationUnsupported => "Operation not supported",
            ErrorCode::XmlInvalidSchema => "XML document failed to validate against schema",
            ErrorCode::InvalidDomainCheckpoint => "Invalid domain checkpoint",
            ErrorCode::NoDomainCheckpoint => "Domain checkpoint not found",
            ErrorCode::NoDomainBackup => "Domain backup job id not found",
            ErrorCode::CheckpointInconsistent => "checkpoint inconsistent",
        }
    }

    /// The numeric `virErrorNumber`.
    pub fn number(self) -> i32 {
        self as i32
    }
}

/// libvirt's `virErrorDomain` values used by this library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorDomain {
    /// VIR_FROM_NONE
    None = 0,
    /// VIR_FROM_XML
    Xml = 5,
    /// VIR_FROM_QEMU: the QEMU driver (checkpoint, backup and block job code)
    Qemu = 10,
    /// VIR_FROM_DOMAIN: domain configuration (moment lists, disk lookup)
    Domain = 20,
    /// VIR_FROM_DOMAIN_CHECKPOINT: checkpoint XML (checkpoint_conf.c)
    DomainCheckpoint = 69,
}

impl ErrorDomain {
    /// The numeric `virErrorDomain`.
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
}

impl Error {
    /// An error whose message is libvirt's prefix for `code` followed by `detail`.
    pub fn new(code: ErrorCode, domain: ErrorDomain, detail: impl fmt::Display) -> Self {
        let prefix = code.prefix();
        let message = if prefix.is_empty() {
            detail.to_string()
        } else {
            format!("{prefix}: {detail}")
        };
        Error {
            code,
            domain,
            message,
        }
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
