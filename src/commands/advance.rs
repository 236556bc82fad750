//! `orch advance`: one transition of one task.

use anyhow::Result;
use clap::Args;

use crate::config::default_actor;
use crate::engine::{self, AdvanceRequest};
use crate::error::Exit;
use crate::stages::Stage;
use crate::store::Store;
use crate::Context;

#[derive(Debug, Args)]
pub struct AdvanceArgs {
    /// The task to move.
    pub id: String,
    /// The stage to move it to.
    #[arg(long, value_enum)]
    pub to: Stage,
    /// The stage this actor believes the task is at; the write lands only if it still is.
    #[arg(long, value_enum)]
    pub expect: Option<Stage>,
    /// Who is moving it (recorded in the history) [default: $USER].
    #[arg(long)]
    pub actor: Option<String>,
    /// The id of the event that asked for this move; a repeated id is processed once.
    #[arg(long, value_name = "E")]
    pub event_id: Option<String>,
    /// The commit the pipeline validated (compared by the merge and image gates).
    #[arg(long, value_name = "SHA")]
    pub validated_sha: Option<String>,
    /// Why, for the history.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

pub fn run(ctx: &Context, args: AdvanceArgs) -> Result<Exit> {
    let request = AdvanceRequest {
        task_id: args.id,
        to: args.to,
        expect: args.expect,
        actor: args.actor.unwrap_or_else(default_actor),
        event_id: args.event_id,
        validated_sha: args.validated_sha,
        reason: args.reason,
        force: false,
    };
    let mut store = Store::open(&ctx.config.db_path)?;
    let report = engine::advance(&mut store, &ctx.config, &request)?;
    if ctx.ui.json {
        ctx.ui.json(&report)?;
    } else {
        ctx.ui.line(&report.message);
    }
    Ok(report.exit)
}
