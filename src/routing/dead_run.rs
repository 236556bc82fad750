//! Routing a dead run: the policy half of "finish a dead run" (`crate::reclaim` is the mechanism).
//!
//! A reaped gate run is re-queued as infra under the lease — never rolled back — and spends the
//! budget its owner was spending. Used by the reaper and by every take-over of a dead holder's
//! lease or merge lock, so there is one routine, and only whoever closes the run's row routes it.

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::counter::Counter;
use crate::lease::{self, Acquire};
use crate::outcome::{GateKind, Outcome};
use crate::owner::{Claimant, OwnerId};
use crate::reclaim::{self, Elsewhere, Finish};
use crate::routing::requeue::{self, BudgetKey, RouteCx};
use crate::store::{Db, Expected, NewGateEvent, RunRow, Store};

/// One run finished and routed here.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ReapedRun {
    pub run_id: i64,
    pub task_id: Option<String>,
    pub gate: String,
    pub why: String,
    /// What routing did (`infra-requeued`, `exhausted`, `deferred`), or `None`.
    pub routed: Option<Outcome>,
    /// The processes that were alive in the run's group when it was killed (none: nothing was
    /// signalled).
    pub killed: Vec<i32>,
}

impl ReapedRun {
    /// What routing did, as reports name it.
    pub(crate) fn routed_name(&self) -> &'static str {
        self.routed.map_or("none", Outcome::as_str)
    }
}

/// What finishing a dead run came to, seen by the policy.
#[derive(Debug)]
pub(crate) enum DeadRun {
    Reaped(ReapedRun),
    /// Its group could not be shown empty: left open.
    Survivors,
    /// Someone else finished it first.
    FinishedElsewhere,
}

/// Finishes one dead run and routes it; `counter` is added to in the transaction that closes the
/// row (the reaper's own). The alert of an exhausted budget is delivered after the commit.
pub(crate) fn finish_dead_run(
    store: &mut Store,
    config: &Config,
    run: &RunRow,
    why: &str,
    elsewhere: Elsewhere,
    counter: Option<Counter>,
) -> Result<DeadRun> {
    let finished = reclaim::finish_run(store, run, why, elsewhere, |db, now| {
        if let Some(counter) = counter {
            db.count(counter, 1)?;
        }
        route_reaped(db, config, run, why, now)
    })?;
    let (killed, (routed, alert_key)) = match finished {
        Finish::Finished { killed, routed } => (killed, routed),
        Finish::Survivors => return Ok(DeadRun::Survivors),
        Finish::FinishedElsewhere => return Ok(DeadRun::FinishedElsewhere),
    };
    if let Some(key) = &alert_key {
        crate::alerts::deliver_key(store, config, key)?;
    }
    Ok(DeadRun::Reaped(ReapedRun {
        run_id: run.id,
        task_id: run.task_id.clone(),
        gate: run.gate.clone(),
        why: why.to_string(),
        routed,
        killed,
    }))
}

/// Finishes every unfinished run of a dead holder (lease or merge lock) before its lease or lock
/// is taken over. Returns `false` when a run's group could not be shown empty: the caller then
/// backs off instead of starting a second suite beside a surviving one.
pub(crate) fn finish_runs_of_dead_holder(
    store: &mut Store,
    config: &Config,
    holder: &OwnerId,
    why: &str,
) -> Result<HolderRuns> {
    let runs = store.read().unfinished_runs_of(holder)?;
    let mut done = HolderRuns {
        finished: 0,
        killed: 0,
        all_done: true,
    };
    for run in &runs {
        // The caller judged the holder dead; for a holder elsewhere that means its TTL passed.
        match finish_dead_run(store, config, run, why, Elsewhere::FinishUnsignalled, None)? {
            DeadRun::Reaped(reaped) => {
                done.finished += 1;
                done.killed += reaped.killed.len();
            }
            DeadRun::Survivors => done.all_done = false,
            DeadRun::FinishedElsewhere => {}
        }
    }
    Ok(done)
}

/// What finishing a dead holder's runs came to, for the one line a take-over prints.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HolderRuns {
    /// Runs this process finished.
    pub finished: usize,
    /// Processes killed in their groups.
    pub killed: usize,
    /// Every run is finished (false: a group could not be shown empty; back off).
    pub all_done: bool,
}

/// Routes a run this process just closed, inside that transaction: a gate run whose task is still
/// on the gate's edge, not held and not leased by a live actor, is re-queued as infra.
fn route_reaped(
    db: &Db,
    config: &Config,
    run: &RunRow,
    why: &str,
    now: i64,
) -> Result<(Option<Outcome>, Option<String>)> {
    let (Some(task_id), Some(gate)) = (&run.task_id, GateKind::from_name(&run.gate)) else {
        return Ok((None, None));
    };
    let edge = gate.edge();
    db.insert_gate_event(&NewGateEvent {
        task_id,
        edge,
        gate,
        outcome: Outcome::Reaped,
        detail: Some(why),
        run_id: Some(run.id),
        at: now,
    })?;
    let Some(task) = db.task(task_id)? else {
        return Ok((None, None));
    };
    if task.stage != edge.from || task.is_held() {
        return Ok((None, None));
    }
    // The reaper's task writes take the lease, for this transaction only.
    let me = Claimant::current("orch reap");
    let held = match lease::acquire_for_reclaim(db, task_id, &me, config.lease_ttl)? {
        Acquire::Held(held) => held,
        // A live actor owns the task now: it decides; the run is finished, nothing routed.
        Acquire::Busy(_) | Acquire::Reclaim { .. } => return Ok((None, None)),
    };
    let budget_key = spent_budget(db, run, task_id, edge)?;
    let expected = Expected {
        task_id,
        stage: task.stage,
        version: task.version,
        lease_token: Some(held.token),
    };
    let cx = RouteCx {
        config,
        task: &task,
        expected,
        edge,
        gate,
        budget_key: &budget_key,
    };
    let routed = requeue::route_infra(db, &cx, &format!("run {} reaped: {why}", run.id))?;
    held.release_in(db)?;
    Ok((Some(routed.outcome), routed.alert_key))
}

/// The budget the run's owner was spending (recorded on the run), else the pending re-queue's,
/// else the edge's latest.
fn spent_budget(
    db: &Db,
    run: &RunRow,
    task_id: &str,
    edge: crate::stages::Edge,
) -> Result<BudgetKey> {
    let recorded = run.budget_tip.clone().map(|tip| BudgetKey {
        tip,
        published: run.published_tip.clone(),
    });
    if let Some(key) = recorded {
        return Ok(key);
    }
    if let Some(key) = db.requeue(task_id)?.and_then(|r| {
        r.budget_tip.map(|tip| BudgetKey {
            tip,
            published: r.published_tip,
        })
    }) {
        return Ok(key);
    }
    Ok(BudgetKey {
        tip: db
            .latest_budget_tip(task_id, edge)?
            .unwrap_or_else(|| "unknown".into()),
        published: None,
    })
}
