//! # virtcheckpoint
//!
//! QEMU checkpoint and dirty-bitmap management under libvirt's "one bitmap per
//! checkpoint" design, as a Rust library with a libvirt-compatible C ABI.
//!
//! Data flows one way: a C caller enters through [`ffi`] (handles borrowed, arguments
//! checked), the Rust API parses QEMU's and libvirt's documents into [`model`], the
//! planner turns the model into actions, and [`qmp`] writes them as the JSON text
//! libvirt sends. Errors carry libvirt's numbers and texts ([`error`]).

pub mod api;
pub mod error;
pub mod ffi;
pub mod model;
pub mod plan;
pub mod qmp;
pub mod report;
pub mod store;
pub mod tools;
pub mod xml;

pub use error::{Error, ErrorCode, ErrorDomain, Result};
pub use model::nodes::{Bitmap, InternalSnapshot, Node, NodeData};
pub use qmp::nodes::parse_node_data;
