//! `orch reap [--dry-run]`: the cron job that recovers from dead owners (`crate::reaper`).
//!
//! Exit 0 whatever it reclaimed; `--dry-run` writes nothing and signals nothing;
//! `ORCH_REAPER_ENABLED=false` makes it a no-op that says so.

use anyhow::Result;
use clap::Args;

use crate::error::Exit;
use crate::reaper;
use crate::Context;

#[derive(Debug, Args)]
pub(crate) struct ReapArgs {
    /// Print what would be done; write nothing, signal nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub(crate) fn run(ctx: &Context, args: ReapArgs) -> Result<Exit> {
    let report = reaper::reap(&ctx.config, args.dry_run)?;
    for warning in &report.warnings {
        eprintln!("orch: warning: {warning}");
    }
    if ctx.ui.json {
        ctx.ui.json(&report)?;
    } else {
        for line in report.lines(ctx.ui.quiet) {
            ctx.ui.line(line);
        }
    }
    Ok(Exit::Ok)
}
