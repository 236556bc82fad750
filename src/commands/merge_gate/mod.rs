//! `orch merge-gate …`: the merge sub-gate on its own, for a CI step.

mod retest;

use anyhow::Result;
use clap::Subcommand;

use crate::error::Exit;
use crate::Context;

#[derive(Debug, Subcommand)]
pub(crate) enum MergeGateCommand {
    /// Rebase the task branch onto the target in a worktree of orch's own and re-test it under
    /// the repository's merge lock; a pass is stored and reused by `advance`.
    Retest(retest::RetestArgs),
}

pub(crate) fn run(ctx: &Context, cmd: MergeGateCommand) -> Result<Exit> {
    match cmd {
        MergeGateCommand::Retest(args) => retest::run(ctx, args),
    }
}
