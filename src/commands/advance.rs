//! `orch advance`: one transition of one task — with `--goal`, and the next forward edges to the
//! goal — or (`--next`) the cron driver that runs the re-queued edge due soonest, and on toward
//! the task's goal.

use anyhow::Result;
use clap::Args;

use crate::commands::task::{check_actor, check_text};
use crate::config::default_actor;
use crate::engine::{self, AdvanceReport, AdvanceRequest, GoalRequest};
use crate::error::{failure, Exit};
use crate::names;
use crate::stages::Stage;
use crate::store::Store;
use crate::Context;

#[derive(Debug, Args)]
pub(crate) struct AdvanceArgs {
    /// The task to move.
    #[arg(required_unless_present = "next", conflicts_with = "next")]
    pub id: Option<String>,
    /// The stage to move it to.
    #[arg(long, value_enum, required_unless_present = "next")]
    pub to: Option<Stage>,
    /// Walk on to this stage: after the move, this process runs the next gated forward edges
    /// (deploy-staging → deploy → done) until it is there or a step stops (red, HOLD, infra).
    /// Stored on the task: a re-queued edge keeps it and `advance --next` continues to it. A move
    /// without --goal clears a stored goal.
    #[arg(long, value_enum, value_name = "STAGE")]
    pub goal: Option<Goal>,
    /// The stage this actor believes the task is at; the write lands only if it still is.
    #[arg(long, value_enum)]
    pub expect: Option<Stage>,
    /// Who is moving it (recorded in the history) [default: $USER; `cron` with --next].
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
    /// Run a re-queued edge now, before its due time.
    #[arg(long)]
    pub force: bool,
    /// The cron driver: claim the task whose re-queued edge is due soonest and run that edge, then
    /// continue toward the task's goal.
    #[arg(long, conflicts_with_all = ["to", "expect", "event_id", "validated_sha", "force"])]
    pub next: bool,
}

/// The stages `--goal` may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Goal {
    Deploy,
    Done,
}

impl Goal {
    fn stage(self) -> Stage {
        match self {
            Goal::Deploy => Stage::Deploy,
            Goal::Done => Stage::Done,
        }
    }
}

/// The actor `advance --next` records when no `--actor` is given.
const CRON_ACTOR: &str = "cron";

pub(crate) fn run(ctx: &Context, args: AdvanceArgs) -> Result<Exit> {
    let goal = check_goal(&args)?;
    // cron drives `--next`: its transitions are recorded as `cron` unless `--actor` says who.
    let actor = args.actor.unwrap_or_else(|| {
        if args.next {
            CRON_ACTOR.to_string()
        } else {
            default_actor()
        }
    });
    check_request(&actor, args.event_id.as_deref())?;
    if let Some(reason) = &args.reason {
        check_text("reason", reason)?;
    }
    let mut store = Store::open(&ctx.config.db_path)?;
    if args.next {
        return match engine::advance_next(&mut store, &ctx.config, ctx.ui, &actor)? {
            Some(report) => print(ctx, &report),
            None => {
                let db = store.read();
                let next = db.requeues()?.into_iter().next();
                // A due re-queue that is not claimable is one whose edge is running now (its
                // task is leased): say so, not "nothing due".
                let running = match &next {
                    Some(r) if r.due_in_ms() <= 0 => db
                        .lease(&r.task_id)?
                        .map(|l| format!("pid {} on {}", l.owner_pid, l.host)),
                    _ => None,
                };
                if ctx.ui.json {
                    ctx.ui.json(&serde_json::json!({
                        "outcome": "nothing-due",
                        "exit_code": 0,
                        "next_due": next.as_ref().map(|r| serde_json::json!({
                            "task_id": r.task_id, "due_at": r.due_at, "kind": r.kind,
                            "running": running,
                        })),
                    }))?;
                } else {
                    ctx.ui.line(match (next, running) {
                        (Some(r), Some(by)) => format!(
                            "nothing to claim; {}'s re-queued edge {} → {} is running now ({})",
                            crate::ui::plain(&r.task_id),
                            r.from_stage,
                            r.to_stage,
                            crate::ui::plain(&by)
                        ),
                        (Some(r), None) => format!(
                            "nothing due; next: {} at {}",
                            crate::ui::plain(&r.task_id),
                            crate::ui::timestamp(r.due_at)
                        ),
                        (None, _) => "nothing due; no re-queued edge".to_string(),
                    });
                }
                Ok(Exit::Ok)
            }
        };
    }
    let (Some(task_id), Some(to)) = (args.id, args.to) else {
        return Err(failure(Exit::Usage, "give a task id and --to, or --next"));
    };
    let request = AdvanceRequest {
        task_id,
        to,
        expect: args.expect,
        actor,
        event_id: args.event_id,
        validated_sha: args.validated_sha,
        reason: args.reason,
        force: args.force,
        goal: GoalRequest::Set(goal),
    };
    let report = engine::advance(&mut store, &ctx.config, ctx.ui, &request)?;
    print(ctx, &report)
}

/// Refuses (exit 2, nothing opened or written) an actor or an event id orch would not store: an
/// empty event id — an unset `$CI_EVENT_ID` — would silence every later event that is empty too.
pub(crate) fn check_request(actor: &str, event_id: Option<&str>) -> Result<()> {
    check_actor(actor)?;
    if let Some(event_id) = event_id {
        names::event_id(event_id).map_err(|why| {
            failure(
                Exit::Usage,
                format!("--event-id `{}` {why}", crate::ui::plain(event_id)),
            )
        })?;
    }
    Ok(())
}

/// Refuses (exit 2, nothing written) a `--goal` the walk cannot take: with `--next` (cron follows
/// the goal a task already has), after a `--to` off the goal's way, or a `--to` past the goal.
fn check_goal(args: &AdvanceArgs) -> Result<Option<Stage>> {
    let Some(goal) = args.goal.map(Goal::stage) else {
        return Ok(None);
    };
    if args.next {
        return Err(failure(
            Exit::Usage,
            "`--goal` is not for `--next`: cron continues toward the goal the task already has (hint: drop --goal)",
        ));
    }
    let Some(to) = args.to else {
        return Ok(Some(goal));
    };
    if !matches!(to, Stage::DeployStaging | Stage::Deploy | Stage::Done) {
        return Err(failure(
            Exit::Usage,
            format!(
                "--goal walks forward edges to `deploy` or `done`, and `--to {to}` is not on that way (hint: --to deploy-staging, deploy or done; or drop --goal)"
            ),
        ));
    }
    if to > goal {
        return Err(failure(
            Exit::Usage,
            format!("`--to {to}` is past the goal `{goal}` (hint: --goal {to}, or drop --goal)"),
        ));
    }
    Ok(Some(goal))
}

/// Prints a step's report (text or JSON) and returns its exit code. On the way to a goal, text
/// is one line per step; a later step that was refused prints its one line where failures go.
pub(crate) fn print(ctx: &Context, report: &AdvanceReport) -> Result<Exit> {
    if ctx.ui.json {
        ctx.ui.json(report)?;
        return Ok(report.exit);
    }
    let earlier = report.steps.len().saturating_sub(1);
    for step in &report.steps[..earlier] {
        ctx.ui.line(crate::ui::plain(&step.message));
    }
    if report.refused {
        eprintln!("orch: {}", crate::ui::plain(&report.message));
    } else {
        ctx.ui.line(crate::ui::plain(&report.message));
    }
    Ok(report.exit)
}
