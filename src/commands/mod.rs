//! One file per subcommand, each with its arguments and one entry function; `crate::cli`
//! dispatches to them.

pub mod advance;
pub mod demo;
pub mod doctor;
pub mod exec;
pub mod merge_gate;
pub mod queue;
pub mod reap;
pub mod task;
