//! The three entry points of a step — `advance`, `advance --next` and `merge-gate retest` —
//! each the contract's one order of checks (`checks::check`) followed by the edge; and the walk
//! to a task's goal (`walk_to_goal`) that `advance` and `advance --next` continue with.

use anyhow::Result;

use super::checks::{check, take_lease, take_over_dead_leases_of_due, Checked, Entry, Taken};
use super::commit::commit_transition;
use super::edge::{run_edge, EdgePurpose, Step};
use super::report::{illegal, lease_lost, moved_on, AdvanceReport, AdvanceRequest, GoalRequest};
use crate::config::Config;
use crate::error::{exit_of, failure, Exit};
use crate::gates::{edge_gates, GateKind};
use crate::git::Mirror;
use crate::host;
use crate::lease::{self, Acquire, HeldLease};
use crate::owner::Claimant;
use crate::stages::{goal_ahead, toward, Stage};
use crate::store::{Expected, Store, Task};
use crate::ui::Ui;

/// `orch advance`: one transition, then — when the task has a goal it has not reached — the
/// next forward edges toward it (`walk_to_goal`). Returns the last step's report for outcomes 0,
/// 10, 11, 12, 13; the others are failures (of the first step; a later step's is its report).
pub(crate) fn advance(
    store: &mut Store,
    config: &Config,
    ui: Ui,
    req: &AdvanceRequest,
) -> Result<AdvanceReport> {
    let first = advance_step(store, config, ui, req, "orch advance")?;
    walk_to_goal(store, config, ui, req, first, "orch advance")
}

/// One `advance` step: the checks, the lease (a gated edge), the goal the request states, the
/// edge. `command` names the claimant in the lease (`orch advance`, `orch advance --next`).
fn advance_step(
    store: &mut Store,
    config: &Config,
    ui: Ui,
    req: &AdvanceRequest,
    command: &str,
) -> Result<AdvanceReport> {
    let (snap, edge) = match check(store, config, req, Entry::Advance)? {
        Checked::Duplicate(report) => return Ok(report),
        Checked::Go { snap, edge } => (snap, edge),
    };
    if let Some(sha) = &req.validated_sha {
        check_validated_sha(store, config, &snap, sha)?;
    }
    let me = Claimant::current(format!("{} ({command})", req.actor));
    let step = Step {
        req,
        snap,
        edge,
        me,
    };
    if edge_gates(edge).is_empty() {
        // No long step: the write transaction itself is the exclusion, so the lease is taken,
        // used by the CAS and released in that one transaction (the goal is stored there too).
        return commit_transition(store, config, ui, &step, None, Vec::new());
    }
    crate::fault::point("advance.before_lease");
    let lease = match take_lease(
        store,
        config,
        ui,
        &step.snap,
        &step.me,
        req.event_id.as_deref(),
    )? {
        Taken::Held(lease) => lease,
        Taken::Duplicate(event) => return Ok(AdvanceReport::duplicate(&step.snap, event)),
    };
    crate::fault::point("advance.after_lease");
    if let GoalRequest::Set(goal) = req.goal {
        if let Err(err) = store_goal(store, &step.snap, &lease, goal) {
            let _ = store.write(|db| lease.release_in(db));
            return Err(err);
        }
    }
    run_edge(store, config, ui, step, lease, EdgePurpose::Transition)
}

/// Stores the goal a request states (`None` clears it) as soon as its gated step holds the task:
/// in a write that re-checks the lease, before any gate runs, so that a `kill -9` mid-step or an
/// infra re-queue keeps it. A task a human put on HOLD meanwhile is exit 6, nothing written.
fn store_goal(
    store: &mut Store,
    snap: &Task,
    lease: &HeldLease,
    goal: Option<Stage>,
) -> Result<()> {
    let goal = goal.filter(|g| goal_ahead(*g, snap.stage));
    let expected = Expected {
        task_id: &snap.id,
        stage: snap.stage,
        version: snap.version,
        lease_token: lease.cas_token(),
    };
    enum Stored {
        Yes,
        LeaseLost,
        Moved(Option<Task>),
    }
    let stored = store.write(|db| {
        if !lease.still_held(db)? {
            return Ok(Stored::LeaseLost);
        }
        // Under the kill-switch the write is plain, like every other write there.
        let condition = (!lease.unguarded).then_some(expected);
        if db.set_goal(condition, &snap.id, goal)? {
            Ok(Stored::Yes)
        } else {
            Ok(Stored::Moved(db.task(&snap.id)?))
        }
    })?;
    match stored {
        Stored::Yes => Ok(()),
        Stored::LeaseLost => Err(lease_lost(&snap.id)),
        Stored::Moved(now) => Err(moved_on(&snap.id, now, snap.stage)),
    }
}

/// After a step that moved the task, while the task has a goal ahead of it, the same process
/// runs the next forward edge toward it (`deploy-staging → deploy → done`) as a fresh step: the
/// contract's checks, its own lease, its gates. It stops at the goal or at the first step that
/// does not advance (red, HOLD, infra or lock-busy re-queue, a lost race). The report is the last
/// step's, with every step in `steps` when there was more than one; a later step that was
/// refused becomes a report of its failure (`refused`). The event id, if any, was recorded with
/// the first step only.
fn walk_to_goal(
    store: &mut Store,
    config: &Config,
    ui: Ui,
    first_req: &AdvanceRequest,
    first: AdvanceReport,
    command: &str,
) -> Result<AdvanceReport> {
    if first.outcome == "duplicate" {
        return Ok(first);
    }
    let mut steps = Vec::new();
    let mut last = first;
    loop {
        let task = store.read().task(&last.task_id)?;
        last.goal = task.as_ref().and_then(|t| t.goal);
        let next = match (task, last.goal) {
            (Some(task), Some(goal))
                if last.exit == Exit::Ok
                    && last.outcome == "advanced"
                    && task.stage == last.stage
                    && task.version == last.version =>
            {
                toward(goal, task.stage).map(|edge| (task, goal, edge))
            }
            _ => None,
        };
        let Some((task, goal, edge)) = next else {
            break;
        };
        ui.note(format!(
            "goal {goal}: {} is at {}; running {edge}",
            crate::ui::plain(&task.id),
            task.stage
        ));
        let req = AdvanceRequest {
            task_id: task.id.clone(),
            to: edge.to,
            expect: Some(edge.from),
            actor: first_req.actor.clone(),
            event_id: None,
            validated_sha: None,
            reason: Some(format!("on the way to goal {goal}")),
            force: false,
            goal: GoalRequest::Keep,
        };
        let result = advance_step(store, config, ui, &req, command);
        steps.push(last);
        last = match result {
            Ok(report) => report,
            Err(err) => refused(store, &task, err)?,
        };
    }
    if let (Some(goal), false) = (last.goal, last.exit == Exit::Ok) {
        let how = if last.exit == Exit::Infra {
            ": `orch advance --next` continues to it"
        } else {
            ""
        };
        last.message
            .push_str(&format!(" (goal `{goal}` kept{how})"));
    }
    if !steps.is_empty() {
        steps.push(last.clone());
        last.steps = steps;
    }
    Ok(last)
}

/// A later step on the way to a goal that was refused (a lost race, a HOLD placed between the
/// steps, …) as the last step's report: its exit code and its one line. An internal error stays
/// one.
fn refused(store: &Store, task: &Task, err: anyhow::Error) -> Result<AdvanceReport> {
    let exit = exit_of(&err);
    if exit == Exit::Internal {
        return Err(err);
    }
    let now = store.read().task(&task.id)?.unwrap_or_else(|| task.clone());
    let outcome = serde_json::to_value(exit)?
        .as_str()
        .unwrap_or("refused")
        .to_string();
    let mut report = AdvanceReport::new(&now, &outcome, exit, err.to_string());
    report.refused = true;
    Ok(report)
}

/// `--validated-sha` names a commit CI validated: 40 hex digits that name a commit of the task's
/// repository, after a fetch of the task's branch into orch's mirror (exit 2 otherwise).
fn check_validated_sha(store: &Store, config: &Config, task: &Task, sha: &str) -> Result<()> {
    let bad = |why: String| {
        failure(
            Exit::Usage,
            format!("--validated-sha `{}` {why}", sha.escape_debug()),
        )
    };
    if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(
            "is not a full commit id (hint: 40 hex digits, e.g. `git rev-parse HEAD`)".into(),
        ));
    }
    let Some(repo) = store.read().repo(&task.repo)? else {
        return Err(bad(format!(
            "cannot be checked: repo `{}` is not registered (hint: `orch repo add {} --url URL`)",
            task.repo, task.repo
        )));
    };
    let mirror = Mirror::open(&config.state_dir(), &repo.name)?;
    let fetched = mirror.fetch(&repo.url, &task.branch);
    let sha = sha.to_ascii_lowercase();
    if mirror.repo.resolve(&sha)?.is_none() {
        return Err(bad(match fetched {
            Ok(()) => format!(
                "names no commit of `{}` (hint: the commit CI validated on `{}`)",
                repo.name, task.branch
            ),
            Err(e) => format!(
                "names no commit orch has, and fetching `{}` failed: {e:#}",
                task.branch
            ),
        }));
    }
    // It must be the task's: on the fetched branch, not any commit of the repository.
    if let Err(e) = fetched {
        return Err(bad(format!(
            "cannot be checked: fetching the task branch `{}` failed: {e:#}",
            task.branch
        )));
    }
    if !mirror
        .repo
        .is_ancestor(&sha, &Mirror::fetched(&task.branch))?
    {
        return Err(bad(format!(
            "is not on the task branch `{}` (hint: the commit CI validated on that branch)",
            task.branch
        )));
    }
    Ok(())
}

/// `orch merge-gate retest`: the merge sub-gate alone, at `deploy-staging`, under the task's
/// lease.
pub(crate) fn merge_gate_retest(
    store: &mut Store,
    config: &Config,
    ui: Ui,
    req: &AdvanceRequest,
) -> Result<AdvanceReport> {
    let edge = GateKind::Merge.edge();
    let req = AdvanceRequest {
        to: edge.to,
        expect: Some(edge.from),
        ..req.clone()
    };
    let (snap, edge) = match check(store, config, &req, Entry::MergeGate)? {
        Checked::Duplicate(report) => return Ok(report),
        Checked::Go { snap, edge } => (snap, edge),
    };
    let me = Claimant::current(format!("{} (orch merge-gate retest)", req.actor));
    let lease = match take_lease(store, config, ui, &snap, &me, req.event_id.as_deref())? {
        Taken::Held(lease) => lease,
        Taken::Duplicate(event) => return Ok(AdvanceReport::duplicate(&snap, event)),
    };
    let step = Step {
        req: &req,
        snap,
        edge,
        me,
    };
    run_edge(store, config, ui, step, lease, EdgePurpose::MergeGateOnly)
}

/// `orch advance --next`: claims the earliest due re-queue whose task is neither held nor leased
/// (one `UPDATE … RETURNING`, the lease taken in the same transaction), then runs the contract's
/// checks on it and its edge, and continues toward the task's goal (`walk_to_goal`). `Ok(None)`
/// when nothing is due.
///
/// Of the checks, the event id does not apply (cron sends none) and the due time is met by the
/// claim; the claim also skips held and leased tasks, and the checks run again after it.
pub(crate) fn advance_next(
    store: &mut Store,
    config: &Config,
    ui: Ui,
    actor: &str,
) -> Result<Option<AdvanceReport>> {
    let me = Claimant::current(format!("{actor} (orch advance --next)"));
    take_over_dead_leases_of_due(store, config, ui)?;
    let claimed = store.write(|db| {
        let Some(requeue) =
            db.claim_due_requeue(host::wall_ms(), host::boot_ms(), host::boot_id())?
        else {
            return Ok(None);
        };
        let Some(task) = db.task(&requeue.task_id)? else {
            return Ok(None);
        };
        let lease = if config.lease_applies(&task.repo) {
            match lease::acquire(db, &task.id, &me, config.lease_ttl)? {
                Acquire::Held(lease) => lease,
                _ => return Ok(None),
            }
        } else {
            HeldLease::unguarded(&task.id)
        };
        Ok(Some((requeue, lease)))
    })?;
    let Some((requeue, lease)) = claimed else {
        return Ok(None);
    };
    let (from, to) = (requeue.from_stage, requeue.to_stage);
    let req = AdvanceRequest {
        task_id: requeue.task_id.clone(),
        to,
        expect: Some(from),
        actor: actor.to_string(),
        event_id: None,
        validated_sha: None,
        reason: Some(format!(
            "re-queued {} (attempt {}) due",
            requeue.kind, requeue.attempt
        )),
        force: true,
        goal: GoalRequest::Keep,
    };
    let (snap, edge) = match check(store, config, &req, Entry::Next) {
        Ok(Checked::Go { snap, edge }) if requeue.edge().is_some() => (snap, edge),
        Ok(_) => {
            let _ = store.write(|db| lease.release_in(db));
            return Err(illegal(from, to));
        }
        Err(err) => {
            // A claimed edge that cannot run: give the lease back; a task that moved on makes
            // its re-queue stale.
            let _ = store.write(|db| {
                if db.task(&req.task_id)?.is_some_and(|t| t.stage != from) {
                    db.delete_requeue(&req.task_id)?;
                }
                lease.release_in(db)
            });
            return Err(err);
        }
    };
    ui.note(format!(
        "advance --next: {} {edge}: re-queued {} {} due; running it",
        snap.id, requeue.kind, requeue.attempt
    ));
    let step = Step {
        req: &req,
        snap,
        edge,
        me,
    };
    let report = run_edge(store, config, ui, step, lease, EdgePurpose::Transition)?;
    walk_to_goal(store, config, ui, &req, report, "orch advance --next").map(Some)
}
