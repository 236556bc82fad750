//! `orch task add|show|list|hold|release`.

use anyhow::Result;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::config::default_actor;
use crate::counter::Counter;
use crate::engine::load_task;
use crate::error::{failure, Exit};
use crate::stages::Stage;
use crate::store::{HistoryItem, NewTask, NewTransition, Store, Task};
use crate::ui::{age, plain, timestamp};
use crate::{host, names, Context};

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
    /// The registered repository (`orch repo add`): the lease scope and the merge-lock key.
    #[arg(long)]
    pub repo: String,
    /// The task branch: a valid branch name, never the target or a protected branch.
    #[arg(long)]
    pub branch: String,
    /// The stage to register it at; anything but `created` skips every gate before it and needs
    /// --force and --reason.
    #[arg(long, value_enum, default_value_t = Stage::Created)]
    pub stage: Stage,
    /// Register at a stage other than `created` (written to the history with its reason).
    #[arg(long)]
    pub force: bool,
    /// Why the task skips the stages before --stage.
    #[arg(long)]
    pub reason: Option<String>,
    /// Who registers it [default: $USER].
    #[arg(long)]
    pub actor: Option<String>,
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

/// A task id from the command line, refused with exit 2 when it could not be registered.
fn check_id(id: &str) -> Result<()> {
    names::task_id(id).map_err(|why| {
        usage(format!(
            "task id `{}` {why} (hint: 1 to 200 bytes, no spaces)",
            plain(id)
        ))
    })
}

/// An `--actor` from the command line: no character that draws.
pub(crate) fn check_actor(actor: &str) -> Result<()> {
    names::text(actor).map_err(|why| usage(format!("the actor `{}` {why}", plain(actor))))
}

/// A task registered at a stage whose next edge is gated (`deploy-staging`, `deploy`) needs its
/// branch on the remote now: refused (exit 2, nothing written) when the remote says it has no
/// such branch. At `created` (or any stage before `deploy-staging`) the branch may not exist yet:
/// agents register work before they write it. A remote that cannot be asked is left to the
/// gated edge's preflight; a registration of a task already there is judged by the write.
fn check_branch_on_remote(store: &Store, args: &AddArgs, branch: &str) -> Result<()> {
    if !matches!(args.stage, Stage::DeployStaging | Stage::Deploy) {
        return Ok(());
    }
    let db = store.read();
    let Some(repo) = db.repo(&args.repo)? else {
        return Ok(());
    };
    if db.task(&args.id)?.is_some() {
        return Ok(());
    }
    match crate::git::remote_has_branch(&repo.url, branch) {
        Ok(false) => Err(usage(format!(
            "branch `{}` is not on the remote of `{}` ({}), and a task at `{}` is gated on it (hint: push the branch first, or register the task at `created`)",
            plain(branch),
            plain(&repo.name),
            plain(&repo.url),
            args.stage
        ))),
        Ok(true) | Err(_) => Ok(()),
    }
}

fn add(ctx: &Context, args: AddArgs) -> Result<Exit> {
    check_id(&args.id)?;
    names::identifier(&args.repo).map_err(|why| usage(format!("repo `{}` {why}", args.repo)))?;
    let branch = names::branch(&args.branch).map_err(|why| {
        usage(format!(
            "branch `{}` {why} (hint: give the task a branch of its own, e.g. `feat/{}`)",
            args.branch.escape_debug(),
            args.id
        ))
    })?;
    if args.stage != Stage::Created && !(args.force && args.reason.is_some()) {
        return Err(usage(format!(
            "registering `{}` at `{}` skips every gate before it (hint: register at `created`, or add --force --reason \"why\")",
            args.id, args.stage
        )));
    }
    if let Some(reason) = &args.reason {
        check_text("reason", reason)?;
    }
    let actor = args.actor.clone().unwrap_or_else(default_actor);
    check_actor(&actor)?;
    let mut store = Store::open_existing(&ctx.config.db_path)?;
    check_branch_on_remote(&store, &args, &branch)?;
    let outcome = store.write(|db| {
        let Some(repo) = db.repo(&args.repo)? else {
            return Err(usage(format!(
                "repo `{}` is not registered (hint: `orch repo add {} --url URL`)",
                args.repo, args.repo
            )));
        };
        // Compared without case too: a filesystem or a forge that folds case would make `Main`
        // the target.
        let full = names::full_ref(&branch).to_lowercase();
        if repo.guarded_refs().iter().any(|g| g.to_lowercase() == full) {
            return Err(usage(format!(
                "branch `{branch}` is the target or a protected branch of `{}` (hint: orch never moves those; give the task a branch of its own)",
                repo.name
            )));
        }
        let new = NewTask {
            id: args.id.clone(),
            repo: repo.name.clone(),
            branch: branch.clone(),
            target: repo.target.clone(),
            stage: args.stage,
        };
        if let Some(task) = db.task(&new.id)? {
            return match differing_field(&task, &new) {
                None => Ok(("already-registered", task)),
                Some((field, was, now)) => Err(usage(format!(
                    "task `{}` is already registered with {field} `{was}`, not `{now}` (hint: pick another id, or `orch task show {}`)",
                    task.id, task.id
                ))),
            };
        }
        let now = host::wall_ms();
        db.insert_task(&new, now)?;
        db.count(Counter::TasksAdded, 1)?;
        if new.stage != Stage::Created {
            db.insert_transition(&NewTransition {
                task_id: &new.id,
                from: None,
                to: new.stage,
                version: 1,
                actor: &actor,
                reason: args.reason.as_deref(),
                lease_token: None,
                at: now,
            })?;
        }
        Ok(("added", load_task(db, &new.id)?))
    })?;
    let (outcome, task) = outcome;
    if ctx.ui.json {
        ctx.ui
            .json(&serde_json::json!({ "outcome": outcome, "task": task }))?;
    } else if outcome == "added" {
        ctx.ui.line(format!(
            "added {} at {} (repo {}, branch {} → {})",
            plain(&task.id),
            task.stage,
            plain(&task.repo),
            plain(&task.branch),
            plain(&task.target)
        ));
    } else {
        ctx.ui.line(format!(
            "{} is already registered; nothing changed",
            plain(&task.id)
        ));
    }
    Ok(Exit::Ok)
}

/// The first field in which a re-registration differs from the task: (name, stored, asked).
fn differing_field(task: &Task, new: &NewTask) -> Option<(&'static str, String, String)> {
    [
        ("repo", task.repo.clone(), new.repo.clone()),
        ("branch", task.branch.clone(), new.branch.clone()),
        ("target", task.target.clone(), new.target.clone()),
    ]
    .into_iter()
    .find(|(_, was, now)| was != now)
    .or_else(|| {
        // A task that moved on since its registration is still the same registration only when
        // no stage was asked for beyond `created`.
        (new.stage != Stage::Created && task.version == 1 && task.stage != new.stage)
            .then(|| ("stage", task.stage.to_string(), new.stage.to_string()))
    })
}

/// Free text from a flag: at most 2,000 characters, no control, invisible or bidi character.
pub(crate) fn check_text(what: &str, value: &str) -> Result<()> {
    if value.chars().count() > 2000 {
        return Err(usage(format!(
            "the {what} must be at most 2,000 characters"
        )));
    }
    names::text(value).map_err(|why| usage(format!("the {what} {why}")))
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
        "task {}   repo {}   branch {} → {}",
        plain(&task.id),
        plain(&task.repo),
        plain(&task.branch),
        plain(&task.target)
    ));
    ui.line(format!(
        "stage {}   version {}   developer retries {}/{}   validated {}   goal {}",
        task.stage,
        task.version,
        task.dev_retries,
        ctx.config.max_dev_retries,
        plain(task.validated_sha.as_deref().unwrap_or("-")),
        task.goal.map_or("-", |g| g.as_str())
    ));
    if let (Some(reason), Some(since)) = (&task.hold_reason, task.held_since) {
        ui.line(format!(
            "HOLD since {}: {}",
            timestamp(since),
            plain(reason)
        ));
    }
    if let Some(lease) = &lease {
        ui.line(format!("lease held by {}", plain(&lease.describe())));
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
            plain(&t.actor),
            match (t.lease_token, t.from) {
                (Some(token), _) => token.to_string(),
                (None, None) => "none (registered here with --force)".to_string(),
                (None, Some(_)) => "none (unguarded)".to_string(),
            },
            t.reason
                .as_deref()
                .map(|r| format!("   reason: {}", plain(r)))
                .unwrap_or_default()
        ),
        HistoryItem::Gate(g) => format!(
            "gate {} on {}: {}{}{}",
            g.gate,
            g.edge.name(),
            g.outcome,
            g.detail
                .as_deref()
                .map(|d| format!(" — {}", plain(d)))
                .unwrap_or_default(),
            g.run_id.map(|r| format!(" (run {r})")).unwrap_or_default()
        ),
        HistoryItem::Hold(h) => match h.action.as_str() {
            "hold" => format!(
                "HOLD set by {}: {}",
                plain(&h.actor),
                plain(h.reason.as_deref().unwrap_or("no reason given"))
            ),
            _ => format!("HOLD released by {}", plain(&h.actor)),
        },
    }
}

fn list(ctx: &Context, args: ListArgs) -> Result<Exit> {
    use std::io::Write;
    let store = Store::open_read_only(&ctx.config.db_path)?;
    let db = store.read();
    // Streamed row by row into a buffered stdout: memory stays flat at any number of tasks.
    let stdout = std::io::stdout();
    // `-q` is silent on success: the rows are not written (a failure still prints its error).
    let mut out: Box<dyn Write> = if ctx.ui.quiet && !ctx.ui.json {
        Box::new(std::io::sink())
    } else {
        Box::new(std::io::BufWriter::new(stdout.lock()))
    };
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
                plain(&t.id),
                t.stage.as_str(),
                t.version,
                age(now - t.updated_at),
                format!("{}/{}", plain(&t.repo), plain(&t.branch)),
                plain(t.hold_reason.as_deref().unwrap_or("-"))
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
    check_actor(&actor)?;
    check_text("reason", &args.reason)?;
    let mut store = Store::open_existing(&ctx.config.db_path)?;
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
        ctx.ui.line(format!(
            "{} is on HOLD: {}",
            plain(&args.id),
            plain(&args.reason)
        ));
    } else {
        ctx.ui.line(format!(
            "{} was already on HOLD; nothing changed",
            plain(&args.id)
        ));
    }
    Ok(Exit::Ok)
}

fn release(ctx: &Context, args: ReleaseArgs) -> Result<Exit> {
    let actor = args.actor.unwrap_or_else(default_actor);
    check_actor(&actor)?;
    let mut store = Store::open_existing(&ctx.config.db_path)?;
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
            plain(&args.id)
        ));
    } else {
        ctx.ui.line(format!(
            "{} is not on HOLD; nothing changed",
            plain(&args.id)
        ));
    }
    Ok(Exit::Ok)
}
