//! Checkpoint bookkeeping: the tree of a domain's checkpoints with its "current" one
//! ([`list`]), and its metadata files on disk ([`dir`]).

pub mod dir;
pub mod list;
