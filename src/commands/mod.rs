//! One file per subcommand, each with its arguments and one entry function; `crate::cli`
//! dispatches to them.

pub(crate) mod advance;
pub(crate) mod demo;
pub(crate) mod doctor;
pub(crate) mod exec;
pub(crate) mod merge_gate;
pub(crate) mod queue;
pub(crate) mod reap;
pub(crate) mod repo;
pub(crate) mod run;
pub(crate) mod task;
