//! One file per subcommand, each with its arguments and one entry function.

pub mod advance;
pub mod demo;
pub mod doctor;
pub mod exec;
pub mod merge_gate;
pub mod queue;
pub mod reap;
pub mod task;

use anyhow::Result;

use crate::cli::Command;
use crate::Context;

/// Runs one subcommand; returns the process exit code for outcomes that are not failures.
pub fn dispatch(ctx: &Context, command: Command) -> Result<i32> {
    match command {
        Command::Task(cmd) => task::run(ctx, cmd).map(|e| e.code()),
        Command::Advance(args) => advance::run(ctx, args).map(|e| e.code()),
        Command::Queue(args) => queue::run(ctx, args).map(|e| e.code()),
        Command::Doctor(args) => doctor::run(ctx, args).map(|e| e.code()),
        Command::MergeGate(cmd) => merge_gate::run(ctx, cmd).map(|e| e.code()),
        Command::Exec(args) => exec::run(ctx, args),
        Command::Demo(args) => demo::run(ctx, args).map(|e| e.code()),
        Command::Reap(args) => reap::run(ctx, args).map(|e| e.code()),
    }
}
