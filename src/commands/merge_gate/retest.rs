//! `orch merge-gate retest ID`.

use anyhow::Result;
use clap::Args;

use crate::commands::advance::{check_request, print};
use crate::config::default_actor;
use crate::engine::{self, AdvanceRequest, GoalRequest};
use crate::error::Exit;
use crate::stages::Stage;
use crate::store::Store;
use crate::Context;

#[derive(Debug, Args)]
pub(crate) struct RetestArgs {
    /// The task, at `deploy-staging`.
    pub id: String,
    /// Who runs it (recorded in the history) [default: $USER].
    #[arg(long)]
    pub actor: Option<String>,
    /// The id of the event that asked for it; a repeated id is processed once.
    #[arg(long, value_name = "E")]
    pub event_id: Option<String>,
    /// Run now even if the edge is re-queued and not due yet.
    #[arg(long)]
    pub force: bool,
}

pub(super) fn run(ctx: &Context, args: RetestArgs) -> Result<Exit> {
    let actor = args.actor.unwrap_or_else(default_actor);
    check_request(&actor, args.event_id.as_deref())?;
    let request = AdvanceRequest {
        task_id: args.id,
        to: Stage::Deploy,
        expect: Some(Stage::DeployStaging),
        actor,
        event_id: args.event_id,
        validated_sha: None,
        reason: None,
        force: args.force,
        // The sub-gate alone moves nothing: the task's goal is left as it is.
        goal: GoalRequest::Keep,
    };
    let mut store = Store::open(&ctx.config.db_path)?;
    let report = engine::merge_gate_retest(&mut store, &ctx.config, ctx.ui, &request)?;
    print(ctx, &report)
}
