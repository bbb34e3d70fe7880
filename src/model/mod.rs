//! Plain data: what the planner reads. No I/O, no parsing, no C types.

pub mod checkpoint;
pub mod domain;
pub mod driver;
pub mod nodes;
