//! `orch task add|show|list|hold|release`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::config::default_actor;
use crate::counter::Counter;
use crate::engine::load_task;
use crate::error::{failure, Exit};
use crate::stages::Stage;
use crate::store::{HistoryItem, NewTask, Store, Task};
use crate::ui::{age, timestamp};
use crate::{git, host, Context};

#[derive(Debug, Subcommand)]
pub(crate) enum TaskCommand {
    /// Register a task (default stage `created`).
    Add(AddArgs),
    /// One task with its whole history: transitions, gate events and holds, interleaved.
    Show(ShowArgs),
    /// List tasks.
    List(ListArgs),
    /// Put a task on HOLD: no stage change until a human releases it.
    Hold(HoldArgs),
    /// Lift a HOLD; clears the developer retries.
    Release(ReleaseArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AddArgs {
    /// The task id, e.g. `ORCH-7`.
    pub id: String,
    /// The repository's logical name: the lease scope and the merge-lock key.
    #[arg(long)]
    pub repo: String,
    /// The task branch.
    #[arg(long)]
    pub branch: String,
    /// Any checkout of the repository (needed from `deploy-staging` on).
    #[arg(long, value_name = "DIR")]
    pub worktree: Option<PathBuf>,
    /// The branch the task merges into.
    #[arg(long, default_value = "main")]
    pub target: String,
    /// The remote to fetch from and push the task branch to [default: `origin` when the
    /// checkout has one, else none].
    #[arg(long, conflicts_with = "no_remote")]
    pub remote: Option<String>,
    /// Work with local branches only, even when the checkout has an `origin`.
    #[arg(long)]
    pub no_remote: bool,
    /// The stage to register it at.
    #[arg(long, value_enum, default_value_t = Stage::Created)]
    pub stage: Stage,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    pub id: String,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only tasks at this stage.
    #[arg(long, value_enum)]
    pub stage: Option<Stage>,
}

#[derive(Debug, Args)]
pub(crate) struct HoldArgs {
    pub id: String,
    /// Why a human must look at it.
    #[arg(long)]
    pub reason: String,
    /// Who holds it [default: $USER].
    #[arg(long)]
    pub actor: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ReleaseArgs {
    pub id: String,
    /// Who releases it [default: $USER].
    #[arg(long)]
    pub actor: Option<String>,
}

pub(crate) fn run(ctx: &Context, cmd: TaskCommand) -> Result<Exit> {
    match cmd {
        TaskCommand::Add(args) => add(ctx, args),
        TaskCommand::Show(args) => show(ctx, args),
        TaskCommand::List(args) => list(ctx, args),
        TaskCommand::Hold(args) => hold(ctx, args),
        TaskCommand::Release(args) => release(ctx, args),
    }
}

fn usage(message: String) -> anyhow::Error {
    failure(Exit::Usage, message)
}

fn check_name(what: &str, value: &str) -> Result<()> {
    if value.is_empty()
        || value.len() > 200
        || value.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(usage(format!(
            "{what} `{value}` is not usable (hint: 1 to 200 characters, no spaces)"
        )));
    }
    Ok(())
}

fn add(ctx: &Context, args: AddArgs) -> Result<Exit> {
    check_name("task id", &args.id)?;
    check_name("repo", &args.repo)?;
    check_name("branch", &args.branch)?;
    check_name("target", &args.target)?;
    if args.branch == args.target {
        return Err(usage(format!(
            "the task branch `{}` is the target branch (hint: orch never moves the target; give the task its own branch)",
            args.branch
        )));
    }
    let worktree = match &args.worktree {
        Some(dir) => {
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            if !git::is_checkout(&dir) {
                return Err(usage(format!(
                    "`{}` is not a git checkout (hint: --worktree takes any checkout of the repository)",
                    dir.display()
                )));
            }
            Some(dir)
        }
        None => None,
    };
    let remote = match (&args.remote, args.no_remote, &worktree) {
        (_, true, _) => None,
        (Some(remote), _, _) => {
            check_name("remote", remote)?;
            if let Some(dir) = &worktree {
                if !git::remotes(dir)?.contains(remote) {
                    return Err(usage(format!(
                        "the checkout `{}` has no remote `{remote}` (hint: `git -C {} remote -v`, or --no-remote)",
                        dir.display(),
                        dir.display()
                    )));
                }
            }
            Some(remote.clone())
        }
        (None, false, Some(dir)) => git::remotes(dir)?.into_iter().find(|r| r == "origin"),
        (None, false, None) => None,
    };
    let new = NewTask {
        id: args.id.clone(),
        repo: args.repo,
        branch: args.branch,
        worktree: worktree.map(|d| d.display().to_string()),
        target: args.target,
        remote,
        stage: args.stage,
    };
    let mut store = Store::open(&ctx.config.db_path)?;
    let existing = store.write(|db| {
        if let Some(task) = db.task(&new.id)? {
            return Ok(Some(task));
        }
        db.insert_task(&new, host::wall_ms())?;
        db.count(Counter::TasksAdded, 1)?;
        Ok(None)
    })?;
    let (task, outcome) = match existing {
        None => (load_task(&store.read(), &new.id)?, "added"),
        Some(task) if same_registration(&task, &new) => (task, "already-registered"),
        Some(task) => {
            return Err(usage(format!(
                "task `{}` already exists with other settings (repo `{}`, branch `{}`, target `{}`) (hint: pick another id, or `orch task show {}`)",
                task.id, task.repo, task.branch, task.target, task.id
            )))
        }
    };
    if ctx.ui.json {
        ctx.ui
            .json(&serde_json::json!({ "outcome": outcome, "task": task }))?;
    } else if outcome == "added" {
        ctx.ui.line(format!(
            "added {} at {} (repo {}, branch {} → {}, remote {})",
            task.id,
            task.stage,
            task.repo,
            task.branch,
            task.target,
            task.remote.as_deref().unwrap_or("none")
        ));
    } else {
        ctx.ui.line(format!(
            "{} is already registered; nothing changed",
            task.id
        ));
    }
    Ok(Exit::Ok)
}

fn same_registration(task: &Task, new: &NewTask) -> bool {
    task.repo == new.repo
        && task.branch == new.branch
        && task.target == new.target
        && task.worktree == new.worktree
        && task.remote == new.remote
}

#[derive(Serialize)]
struct TaskView<'a> {
    task: &'a Task,
    lease: Option<crate::store::LeaseRow>,
    history: Vec<HistoryItem>,
}

fn show(ctx: &Context, args: ShowArgs) -> Result<Exit> {
    let (task, lease, history) = Store::read_only(&ctx.config.db_path, |store| {
        store.snapshot(|db| {
            let task = load_task(db, &args.id)?;
            Ok((task, db.lease(&args.id)?, db.history(&args.id)?))
        })
    })?;
    if ctx.ui.json {
        ctx.ui.json(&TaskView {
            task: &task,
            lease,
            history,
        })?;
        return Ok(Exit::Ok);
    }
    let ui = &ctx.ui;
    ui.line(format!(
        "task {}   repo {}   branch {} → {}   remote {}",
        task.id,
        task.repo,
        task.branch,
        task.target,
        task.remote.as_deref().unwrap_or("none")
    ));
    ui.line(format!(
        "stage {}   version {}   developer retries {}/{}   validated {}",
        task.stage,
        task.version,
        task.dev_retries,
        ctx.config.max_dev_retries,
        task.validated_sha.as_deref().unwrap_or("-")
    ));
    if let Some(dir) = &task.worktree {
        ui.line(format!("worktree {dir}"));
    }
    if let (Some(reason), Some(since)) = (&task.hold_reason, task.held_since) {
        ui.line(format!("HOLD since {}: {reason}", timestamp(since)));
    }
    if let Some(lease) = &lease {
        ui.line(format!("lease held by {}", lease.describe()));
    }
    ui.line("history:");
    if history.is_empty() {
        ui.line("  (no transitions yet)");
    }
    for item in &history {
        ui.line(format!("  {}  {}", timestamp(item.at()), describe(item)));
    }
    Ok(Exit::Ok)
}

fn describe(item: &HistoryItem) -> String {
    match item {
        HistoryItem::Transition(t) => format!(
            "v{:<3} {} → {}   by {}   token {}{}",
            t.version,
            t.from.map_or("-", |s| s.as_str()),
            t.to,
            t.actor,
            t.lease_token
                .map_or_else(|| "none (unguarded)".to_string(), |t| t.to_string()),
            t.reason
                .as_deref()
                .map(|r| format!("   reason: {r}"))
                .unwrap_or_default()
        ),
        HistoryItem::Gate(g) => format!(
            "gate {} on {}: {}{}{}",
            g.gate,
            g.edge.name(),
            g.outcome,
            g.detail
                .as_deref()
                .map(|d| format!(" — {d}"))
                .unwrap_or_default(),
            g.run_id.map(|r| format!(" (run {r})")).unwrap_or_default()
        ),
        HistoryItem::Hold(h) => match h.action.as_str() {
            "hold" => format!(
                "HOLD set by {}: {}",
                h.actor,
                h.reason.as_deref().unwrap_or("no reason given")
            ),
            _ => format!("HOLD released by {}", h.actor),
        },
    }
}

fn list(ctx: &Context, args: ListArgs) -> Result<Exit> {
    use std::io::Write;
    let store = Store::open_read_only(&ctx.config.db_path)?;
    let db = store.read();
    // Streamed row by row into a buffered stdout: memory stays flat at any number of tasks.
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0usize;
    let written: Result<()> = (|| {
        if ctx.ui.json {
            out.write_all(b"{\"tasks\":[")?;
            db.each_task(args.stage, |t| {
                if count > 0 {
                    out.write_all(b",")?;
                }
                count += 1;
                serde_json::to_writer(&mut out, &t)?;
                Ok(())
            })?;
            out.write_all(b"]}\n")?;
            return Ok(out.flush()?);
        }
        let width = db.longest_task_id()?.max(2);
        let now = host::wall_ms();
        db.each_task(args.stage, |t| {
            if count == 0 {
                writeln!(
                    out,
                    "{:<width$}  {:<14}  {:>7}  {:<8}  {:<20}  hold",
                    "id", "stage", "version", "age", "repo/branch"
                )?;
            }
            count += 1;
            writeln!(
                out,
                "{:<width$}  {:<14}  {:>7}  {:<8}  {:<20}  {}",
                t.id,
                t.stage.as_str(),
                t.version,
                age(now - t.updated_at),
                format!("{}/{}", t.repo, t.branch),
                t.hold_reason.as_deref().unwrap_or("-")
            )?;
            Ok(())
        })?;
        if count == 0 {
            writeln!(out, "no tasks")?;
        }
        Ok(out.flush()?)
    })();
    let broken_pipe = |e: &anyhow::Error| {
        e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                || c.downcast_ref::<serde_json::Error>()
                    .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
        })
    };
    match written {
        // A closed pipe (`orch task list | head`) ends the output quietly.
        Err(e) if broken_pipe(&e) => Ok(Exit::Ok),
        Err(e) if e.chain().any(|c| c.is::<std::io::Error>()) => {
            Err(e.context("cannot write the output to stdout"))
        }
        other => other.map(|()| Exit::Ok),
    }
}

fn hold(ctx: &Context, args: HoldArgs) -> Result<Exit> {
    let actor = args.actor.unwrap_or_else(default_actor);
    let mut store = Store::open(&ctx.config.db_path)?;
    let set = store.write(|db| {
        load_task(db, &args.id)?;
        let set = db.set_hold(None, &args.id, &args.reason, &actor, host::wall_ms())?;
        if set {
            db.count(Counter::HoldsRaised, 1)?;
        }
        Ok(set)
    })?;
    let outcome = if set { "held" } else { "already-held" };
    if ctx.ui.json {
        ctx.ui
            .json(&serde_json::json!({ "task_id": args.id, "outcome": outcome }))?;
    } else if set {
        ctx.ui
            .line(format!("{} is on HOLD: {}", args.id, args.reason));
    } else {
        ctx.ui
            .line(format!("{} was already on HOLD; nothing changed", args.id));
    }
    Ok(Exit::Ok)
}

fn release(ctx: &Context, args: ReleaseArgs) -> Result<Exit> {
    let actor = args.actor.unwrap_or_else(default_actor);
    let mut store = Store::open(&ctx.config.db_path)?;
    let released = store.write(|db| {
        load_task(db, &args.id)?;
        let released = db.release_hold(&args.id, &actor, host::wall_ms())?;
        if released {
            // A human looked: the developer retries and every infra budget start over.
            db.clear_budgets(&args.id)?;
        }
        Ok(released)
    })?;
    let outcome = if released { "released" } else { "not-held" };
    if ctx.ui.json {
        ctx.ui
            .json(&serde_json::json!({ "task_id": args.id, "outcome": outcome }))?;
    } else if released {
        ctx.ui.line(format!(
            "{} released; developer retries and infra attempts cleared",
            args.id
        ));
    } else {
        ctx.ui
            .line(format!("{} is not on HOLD; nothing changed", args.id));
    }
    Ok(Exit::Ok)
}
