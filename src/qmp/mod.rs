//! QEMU's side of the wire: reading `query-named-block-nodes` replies into the model
//! and writing transaction actions as the JSON text libvirt sends.

pub mod action;
pub mod image_info;
pub mod json;
mod lenient;
pub mod nodes;
pub mod print;
