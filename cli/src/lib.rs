//! What the `vcp` command line adds to the core library: running QEMU's tools on a
//! shut-off domain's images ([`tools`]) and the reconcile report as a table for people
//! ([`table`]). A daemon that links the library never gets these.

pub mod table;
pub mod tools;
