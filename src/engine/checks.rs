//! The contract's order of checks, written once and used by every entry point (`advance`,
//! `advance --next`, `merge-gate retest`).
//!
//! The first failing check decides: task exists (3) → event id already seen (0, its first
//! outcome reported) → the edge `(expect or current) → to` is in the table (5) → HOLD (6) → due
//! time of a re-queued edge (11 unless `--force`) → lease (4) → CAS (4). The lease and the CAS are
//! checked again inside the transactions that take the lease and write the stage.

use anyhow::Result;

use super::report::{
    busy, changing_hands, held, illegal, load_task, moved_on, reclaim_blocked, AdvanceReport,
    AdvanceRequest,
};
use crate::config::Config;
use crate::counter::Counter;
use crate::error::{failure, Exit};
use crate::lease::{self, Acquire, HeldLease};
use crate::owner::{Claimant, Holder};
use crate::routing::{self, HolderRuns};
use crate::stages::{find_edge, Edge};
use crate::store::{Db, EventRecord, Store, Task};
use crate::ui::Ui;

/// Which entry point runs the checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// `orch advance ID --to S`.
    Advance,
    /// `orch merge-gate retest ID`: always the edge `deploy-staging → deploy`.
    MergeGate,
    /// `orch advance --next`: the edge of a claimed re-queue, forced, with no event id.
    Next,
}

/// What the checks up to the lease found.
pub(crate) enum Checked {
    /// The event id was already processed: report its first outcome, do nothing.
    Duplicate(AdvanceReport),
    /// Every check passed: the task as seen, and the edge to run.
    Go { snap: Task, edge: Edge },
}

/// Runs the checks up to the lease, in the contract's order.
pub(crate) fn check(
    store: &mut Store,
    config: &Config,
    req: &AdvanceRequest,
    entry: Entry,
) -> Result<Checked> {
    let snap = load_task(&store.read(), &req.task_id)?;
    if let Some(event) = seen_event(&store.read(), &snap.id, req.event_id.as_deref())? {
        return Ok(Checked::Duplicate(AdvanceReport::duplicate(&snap, event)));
    }
    let from = req.expect.unwrap_or(snap.stage);
    let edge = find_edge(from, req.to).ok_or_else(|| illegal(from, req.to))?;
    if snap.is_held() {
        return Err(held(&snap));
    }
    check_due(&store.read(), &snap, edge, req.force)?;
    // The lease before the CAS: a live holder is named even when the task has also moved.
    if config.lease_applies(&snap.repo) {
        if let Some(row) = store.read().lease(&snap.id)? {
            if row.judge(&Claimant::current("")) == Holder::Alive {
                store.write(|db| db.count(Counter::LeaseBusy, 1))?;
                return Err(busy(&row));
            }
        }
    }
    // A task that is not where the caller expects it has lost its CAS already. Under the
    // kill-switch `advance` writes unconditionally, so it is not refused here; the merge gate
    // guards its one edge and a claimed re-queue its own, whatever the lease says.
    let guarded = config.lease_applies(&snap.repo) || entry != Entry::Advance;
    if guarded && snap.stage != from {
        if entry != Entry::Next {
            store.write(|db| db.count(Counter::LeaseCasLost, 1))?;
        }
        return Err(match entry {
            Entry::MergeGate => failure(
                Exit::LostRace,
                format!(
                    "task `{}` is at `{}` (version {}), not `{}`: the merge gate guards `{edge}`",
                    snap.id, snap.stage, snap.version, edge.from
                ),
            ),
            Entry::Advance | Entry::Next => moved_on(&req.task_id, Some(snap), from),
        });
    }
    Ok(Checked::Go { snap, edge })
}

fn seen_event(db: &Db, task_id: &str, event_id: Option<&str>) -> Result<Option<EventRecord>> {
    event_id
        .map(|e| db.event(task_id, e))
        .transpose()
        .map(Option::flatten)
}

/// Exit 11 when the edge is re-queued and not due yet (unless forced).
fn check_due(db: &Db, task: &Task, edge: Edge, force: bool) -> Result<()> {
    let Some(requeue) = db.requeue(&task.id)? else {
        return Ok(());
    };
    let due_in = requeue.due_in_ms();
    if force || due_in <= 0 || !requeue.is_of(edge) {
        return Ok(());
    }
    Err(failure(
        Exit::Infra,
        format!(
            "task `{}`: {} is re-queued ({} {}: {}) and due in {}s, at {} (hint: `orch advance --next` runs it when due; --force runs it now)",
            task.id,
            edge,
            requeue.kind,
            requeue.attempt,
            requeue.reason,
            (due_in + 999) / 1000,
            crate::ui::timestamp(requeue.due_at)
        ),
    ))
}

/// What taking the lease for a gated step came to.
pub(crate) enum Taken {
    Held(HeldLease),
    /// The event id was processed while this actor was getting here.
    Duplicate(EventRecord),
}

/// Takes the task's lease for a gated step (or the unguarded stand-in), re-checking the event id
/// and the CAS condition in the same transaction. A dead holder's runs are finished first.
pub(crate) fn take_lease(
    store: &mut Store,
    config: &Config,
    ui: Ui,
    snap: &Task,
    me: &Claimant,
    event_id: Option<&str>,
) -> Result<Taken> {
    enum Step {
        Duplicate(EventRecord),
        Moved(Option<Task>),
        Acquired(Acquire),
    }
    if !config.lease_applies(&snap.repo) {
        if let Some(event) = seen_event(&store.read(), &snap.id, event_id)? {
            return Ok(Taken::Duplicate(event));
        }
        return Ok(Taken::Held(HeldLease::unguarded(&snap.id)));
    }
    let mut reclaimed = Reclaimed::default();
    for _ in 0..3 {
        // One transaction: the event id, the task still exactly where this actor saw it, and the
        // lease. A task that moved on in between is a lost race before any gate starts.
        let step = store.write(|db| {
            if let Some(event) = seen_event(db, &snap.id, event_id)? {
                return Ok(Step::Duplicate(event));
            }
            match db.task(&snap.id)? {
                Some(t) if t.stage == snap.stage && t.version == snap.version && !t.is_held() => {}
                other => {
                    db.count(Counter::LeaseCasLost, 1)?;
                    return Ok(Step::Moved(other));
                }
            }
            Ok(Step::Acquired(lease::acquire(
                db,
                &snap.id,
                me,
                config.lease_ttl,
            )?))
        })?;
        match step {
            Step::Duplicate(event) => return Ok(Taken::Duplicate(event)),
            Step::Moved(now) => return Err(moved_on(&snap.id, now, snap.stage)),
            Step::Acquired(Acquire::Held(lease)) => {
                reclaimed.note(ui, &lease);
                return Ok(Taken::Held(lease));
            }
            Step::Acquired(Acquire::Busy(row)) => return Err(busy(&row)),
            Step::Acquired(Acquire::Reclaim { row, whose }) => {
                reclaimed.reclaim(store, config, &row, whose)?;
            }
        }
    }
    Err(changing_hands(&snap.id))
}

/// Finishes a dead lease holder's runs before its lease is taken over; exit 4 when their
/// processes could not be shown finished.
pub(crate) fn reclaim_holder(
    store: &mut Store,
    config: &Config,
    row: &crate::store::LeaseRow,
) -> Result<HolderRuns> {
    let done = routing::finish_runs_of_dead_holder(store, config, &row.owner_id(), &dead_why(row))?;
    if done.all_done {
        Ok(done)
    } else {
        Err(reclaim_blocked(row))
    }
}

/// `advance --next` claims only re-queues whose task has no lease row at all (liveness is not
/// SQL's to judge), so a due edge whose actor died holding the lease would never be claimed, and
/// reported "running now" under a dead pid. Before the claim, each such dead holder is taken
/// over as `take_lease` would: its runs finished through the routine the reaper uses (their
/// routing re-queues the edge), its lease dropped against the row judged, and the take-over line
/// printed. A holder whose processes could not be shown finished is left for `orch reap`.
pub(crate) fn take_over_dead_leases_of_due(
    store: &mut Store,
    config: &Config,
    ui: Ui,
) -> Result<()> {
    let me = Claimant::current("");
    let due: Vec<_> = store
        .read()
        .requeues()?
        .into_iter()
        .filter(|r| r.due_in_ms() <= 0)
        .collect();
    for requeue in due {
        let Some(row) = store.read().lease(&requeue.task_id)? else {
            continue;
        };
        let Holder::Dead(why) = row.judge(&me) else {
            continue;
        };
        let runs =
            routing::finish_runs_of_dead_holder(store, config, &row.owner_id(), &dead_why(&row))?;
        if !runs.all_done {
            continue;
        }
        // The runs' routing took and gave back the lease; else the dead row is still there.
        let dropped = store.write(|db| {
            let dropped = db.drop_dead_lease(&row)?;
            if dropped {
                db.count(Counter::LeaseTakenOver, 1)?;
            }
            Ok(dropped)
        })?;
        if dropped || runs.finished > 0 {
            note_take_over(ui, &row.task_id, &row.dead_holder(&why), runs);
        }
    }
    Ok(())
}

fn dead_why(row: &crate::store::LeaseRow) -> String {
    format!("lease holder {} is dead", row.describe())
}

/// What this actor did to dead lease holders before its acquisition held: whom it reclaimed
/// and what finishing their runs killed. Finishing a dead holder's runs drops its lease (their
/// routing takes and gives it back), so the acquisition that follows is a fresh one and no longer
/// names whom it replaced: the take-over line is built from what was reclaimed here.
#[derive(Default)]
pub(crate) struct Reclaimed {
    whose: Option<String>,
    runs: HolderRuns,
}

impl Reclaimed {
    /// Finishes the runs of the dead holder `row` (named `whose`); exit 4 when their processes
    /// could not be shown finished.
    pub(crate) fn reclaim(
        &mut self,
        store: &mut Store,
        config: &Config,
        row: &crate::store::LeaseRow,
        whose: String,
    ) -> Result<()> {
        let done = reclaim_holder(store, config, row)?;
        self.runs.finished += done.finished;
        self.runs.killed += done.killed;
        self.whose.get_or_insert(whose);
        Ok(())
    }

    /// The one line a take-over of a dead holder's lease prints (stderr): whose lease, and what
    /// finishing its runs killed. Nothing when `lease` replaced no dead holder.
    pub(crate) fn note(&self, ui: Ui, lease: &HeldLease) {
        let Some(whose) = self.whose.as_ref().or(lease.took_over.as_ref()) else {
            return;
        };
        note_take_over(ui, &lease.task_id, whose, self.runs);
    }
}

/// The one line a take-over of a dead holder's lease prints (stderr).
pub(crate) fn note_take_over(ui: Ui, task_id: &str, whose: &str, runs: HolderRuns) {
    ui.note(format!(
        "task `{}`: took over the lease of dead holder {}: {} run(s) finished, {} process(es) killed",
        crate::ui::plain(task_id),
        crate::ui::plain(whose),
        runs.finished,
        runs.killed
    ));
}
