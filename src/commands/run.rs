//! `orch run show RUN`: one gate run — its command, outcome, evidence, protection, times and
//! captured output — read-only.

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::error::{failure, Exit};
use crate::store::Store;
use crate::ui::{age, plain, timestamp};
use crate::Context;

#[derive(Debug, Subcommand)]
pub(crate) enum RunCommand {
    /// One run: command, outcome, evidence, protection, times and captured output.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The run's id (`orch task show` names it beside each gate event).
    pub run: i64,
}

pub(crate) fn run(ctx: &Context, cmd: RunCommand) -> Result<Exit> {
    match cmd {
        RunCommand::Show(args) => show(ctx, args),
    }
}

/// The captured output is the suite's: each line is shown through `ui::plain`, so it cannot
/// move the cursor or retitle the terminal.
fn printable(text: &str) -> String {
    text.lines().map(plain).collect::<Vec<_>>().join("\n")
}

fn show(ctx: &Context, args: ShowArgs) -> Result<Exit> {
    let row = Store::read_only(&ctx.config.db_path, |store| store.read().run_row(args.run))?;
    let Some(run) = row else {
        return Err(failure(
            Exit::NotFound,
            format!(
                "run {} not found (hint: `orch task show ID` names each gate's run)",
                args.run
            ),
        ));
    };
    if ctx.ui.json {
        ctx.ui.json(&run)?;
        return Ok(Exit::Ok);
    }
    let ui = &ctx.ui;
    ui.line(format!(
        "run {}   task {}   gate {}   outcome {}   exit {}",
        run.id,
        printable(run.task_id.as_deref().unwrap_or("-")),
        run.gate,
        run.outcome.as_deref().unwrap_or("running"),
        run.exit_status
            .map_or_else(|| "-".to_string(), |c| c.to_string())
    ));
    ui.line(format!("command   {}", printable(&run.command)));
    ui.line(format!(
        "started   {}   finished {}   took {}   timeout {}",
        timestamp(run.started_at),
        run.finished_at.map_or_else(|| "-".to_string(), timestamp),
        run.finished_at.map_or_else(
            || "- (running)".to_string(),
            |end| age((end - run.started_at).max(0))
        ),
        if run.timeout_ms > 0 {
            format!(
                "{} (deadline {})",
                age(run.timeout_ms),
                timestamp(run.started_at.saturating_add(run.timeout_ms))
            )
        } else {
            "none".to_string()
        }
    ));
    ui.line(format!(
        "owner     pid {} on {}   leader pid {}",
        run.owner_pid, run.host, run.leader_pid
    ));
    ui.line(format!(
        "sandbox   {}",
        run.sandbox
            .as_deref()
            .unwrap_or("not the agent's code (unconfined)")
    ));
    if let Some(evidence) = &run.evidence {
        ui.line(format!("evidence  {}", printable(evidence)));
    }
    ui.line("--- output");
    ui.line(printable(run.output.as_deref().unwrap_or("")));
    Ok(Exit::Ok)
}
