// The one definition of every error number the library reports and exports to C.
//
// Included by the core's `error` module, which builds `ErrorCode` and `ErrorDomain`
// from it, and by the C crate's build script, which writes the `VCP_ERR_*` and
// `VCP_FROM_*` macros of the header from it. Each row: the Rust variant, the C name
// after the prefix, libvirt's number (include/libvirt/virterror.h), libvirt's message
// prefix (virerror.c, `virErrorMsgStrings`; codes only), and what the library uses it
// for.

error_codes! {
    InternalError, "INTERNAL_ERROR", 1, "internal error",
        "an internal error, a malformed QEMU reply, or a caught panic";
    NoMemory, "NO_MEMORY", 2, "out of memory",
        "an allocation failed";
    InvalidArg, "INVALID_ARG", 8, "invalid argument",
        "NULL or non-UTF-8 argument, unknown flag bits, bad references";
    OperationFailed, "OPERATION_FAILED", 9, "operation failed",
        "e.g. a checkpoint name that already exists";
    XmlError, "XML_ERROR", 27, "XML error",
        "malformed XML";
    SystemError, "SYSTEM_ERROR", 38, "",
        "a failed system call (file I/O), with the OS error text";
    OperationInvalid, "OPERATION_INVALID", 55, "Requested operation is not valid",
        "e.g. \"domain is not running\"";
    ConfigUnsupported, "CONFIG_UNSUPPORTED", 67, "unsupported configuration",
        "a checkpoint or backup request the domain cannot honour";
    OperationUnsupported, "OPERATION_UNSUPPORTED", 84, "Operation not supported",
        "an operation this library or QEMU does not support";
    XmlInvalidSchema, "XML_INVALID_SCHEMA", 92, "XML document failed to validate against schema",
        "XML that libvirt's RNG schema would reject";
    InvalidDomainCheckpoint, "INVALID_DOMAIN_CHECKPOINT", 102, "Invalid domain checkpoint",
        "an invalid checkpoint object";
    NoDomainCheckpoint, "NO_DOMAIN_CHECKPOINT", 103, "Domain checkpoint not found",
        "no checkpoint of that name";
    NoDomainBackup, "NO_DOMAIN_BACKUP", 104, "Domain backup job id not found",
        "no backup job";
    CheckpointInconsistent, "CHECKPOINT_INCONSISTENT", 109, "checkpoint inconsistent",
        "a checkpoint's bitmap chain is missing or broken";
}

error_domains! {
    None, "NONE", 0, "no particular source";
    Xml, "XML", 5, "XML parsing";
    Qemu, "QEMU", 10, "the QEMU driver's checkpoint, backup and block-job logic";
    Domain, "DOMAIN", 20, "domain configuration and moment lists";
    DomainCheckpoint, "DOMAIN_CHECKPOINT", 69, "checkpoint XML";
}
