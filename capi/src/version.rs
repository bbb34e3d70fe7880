//! Library version, as a number in libvirt's encoding.

use std::ffi::c_ulong;

/// The library version as `major * 1000000 + minor * 1000 + micro` (libvirt's
/// `virGetVersion` encoding). Equals `VCP_VERSION_NUMBER` of the header it was built
/// with.
#[unsafe(no_mangle)]
pub extern "C" fn vcp_version() -> c_ulong {
    let part = |s: &str| s.parse::<c_ulong>().unwrap_or(0);
    part(env!("CARGO_PKG_VERSION_MAJOR")) * 1_000_000
        + part(env!("CARGO_PKG_VERSION_MINOR")) * 1_000
        + part(env!("CARGO_PKG_VERSION_PATCH"))
}
