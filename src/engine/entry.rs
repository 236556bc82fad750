//! The three entry points of a step — `advance`, `advance --next` and `merge-gate retest` —
//! each the contract's one order of checks (`checks::check`) followed by the edge.

use anyhow::Result;

use super::checks::{check, take_lease, take_over_dead_leases_of_due, Checked, Entry, Taken};
use super::commit::commit_transition;
use super::edge::{run_edge, EdgeGoal, Step};
use super::report::{illegal, AdvanceReport, AdvanceRequest};
use crate::config::Config;
use crate::error::{failure, Exit};
use crate::gates::{edge_gates, GateKind};
use crate::git::Mirror;
use crate::host;
use crate::lease::{self, Acquire, HeldLease};
use crate::owner::Claimant;

use crate::store::{Store, Task};
use crate::ui::Ui;

/// `orch advance`: one transition. Returns the report for outcomes 0, 10, 11, 12, 13; the
/// others are failures.
pub(crate) fn advance(
    store: &mut Store,
    config: &Config,
    ui: Ui,
    req: &AdvanceRequest,
) -> Result<AdvanceReport> {
    let (snap, edge) = match check(store, config, req, Entry::Advance)? {
        Checked::Duplicate(report) => return Ok(report),
        Checked::Go { snap, edge } => (snap, edge),
    };
    if let Some(sha) = &req.validated_sha {
        check_validated_sha(store, config, &snap, sha)?;
    }
    let me = Claimant::current(format!("{} (orch advance)", req.actor));
    let step = Step {
        req,
        snap,
        edge,
        me,
    };
    if edge_gates(edge).is_empty() {
        // No long step: the write transaction itself is the exclusion, so the lease is taken,
        // used by the CAS and released in that one transaction.
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
    run_edge(store, config, ui, step, lease, EdgeGoal::Transition)
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
    run_edge(store, config, ui, step, lease, EdgeGoal::MergeGateOnly)
}

/// `orch advance --next`: claims the earliest due re-queue whose task is neither held nor leased
/// (one `UPDATE … RETURNING`, the lease taken in the same transaction), then runs the contract's
/// checks on it and its edge. `Ok(None)` when nothing is due.
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
    run_edge(store, config, ui, step, lease, EdgeGoal::Transition).map(Some)
}
