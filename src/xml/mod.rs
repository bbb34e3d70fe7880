//! libvirt XML in and out: checkpoint definitions (read and written exactly as libvirt
//! does) and the parts of domain XML the planner needs (disks and backing chains).

pub mod checkpoint;
pub mod domain;
pub mod tree;
