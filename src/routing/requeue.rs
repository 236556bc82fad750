//! The edge's re-queue and its infra budget.
//!
//! An infra outcome of any gate re-queues its edge: the task keeps its stage and gets a due time,
//! with a doubling backoff from `ORCH_MERGE_INFRA_RETRY_BACKOFF_S`. One budget per (task, edge,
//! branch tip before the rebase) covers every gate of the edge: with `ORCH_MERGE_INFRA_RETRY_MAX`
//! = 2, attempts 1 and 2 exit 11 and attempt 3 exits 12 with one alert and a HOLD. A lock-busy is
//! deferred without spending that budget, up to `ORCH_MERGE_DEFER_MAX_ATTEMPTS` times; after the
//! last it counts as infra. Everything here runs inside the routing transaction.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::alerts::{self, Alert};
use crate::config::Config;
use crate::counter::Counter;
use crate::error::Exit;
use crate::host;
use crate::outcome::{GateKind, Outcome};
use crate::stages::Edge;
use crate::store::{Db, Expected, NewGateEvent, RequeueKind, RequeueRow, Task};

/// What routing an infra or lock-busy outcome did.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Requeued {
    /// `deferred`, `infra-requeued`, `exhausted` (or `no-proof`, for a HOLD without proof).
    pub outcome: Outcome,
    /// This attempt's number, and the number of attempts the budget allows.
    pub attempt: i64,
    pub of: i64,
    /// When the edge is due again (wall ms), unless exhausted.
    pub due_at: Option<i64>,
    /// The alert raised on exhaustion (delivered after the commit).
    pub alert_key: Option<String>,
    /// Whether this routing put the task on HOLD (false when it already was: a HOLD is never
    /// reported that was not written).
    pub held: bool,
    #[serde(skip)]
    pub exit: Exit,
}

/// Everything routing needs about the failed step, read inside the routing transaction.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RouteCx<'a> {
    pub config: &'a Config,
    /// The task as the routing transaction reads it.
    pub task: &'a Task,
    /// What the writes must still find (the CAS condition).
    pub expected: Expected<'a>,
    pub edge: Edge,
    pub gate: GateKind,
    pub budget_key: &'a BudgetKey,
}

fn due_row(
    cx: &RouteCx,
    kind: RequeueKind,
    attempt: i64,
    reason: &str,
    delay: Duration,
) -> RequeueRow {
    let now = host::wall_ms();
    let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    RequeueRow {
        task_id: cx.task.id.clone(),
        from_stage: cx.edge.from,
        to_stage: cx.edge.to,
        kind,
        attempt,
        reason: reason.into(),
        due_at: now + delay_ms,
        due_boot_ms: host::boot_ms() + delay_ms,
        boot_id: host::boot_id().into(),
        created_at: now,
        claimed_at: None,
        budget_tip: Some(cx.budget_key.tip.clone()),
        published_tip: cx.budget_key.published.clone(),
    }
}

/// The key of an edge's infra budget: the branch tip before orch's rebase, and the rebased tip
/// orch published (a re-run that finds the branch there still spends the same budget).
#[derive(Clone, Debug, Default)]
pub(crate) struct BudgetKey {
    pub tip: String,
    pub published: Option<String>,
}

/// Lock-busy: a deferral while any remain, else an infra attempt.
pub(crate) fn defer_or_infra(db: &Db, cx: &RouteCx, reason: &str) -> Result<Requeued> {
    let (task, edge) = (cx.task, cx.edge);
    let base_tip = cx.budget_key.tip.as_str();
    let budget = db.budget(&task.id, edge, base_tip)?;
    let max = i64::from(cx.config.merge_defer_max_attempts);
    if budget.deferrals < max {
        let spent = db.spend_budget(&task.id, edge, base_tip, 0, 1)?;
        let delay = cx.config.merge_defer_delay;
        let row = due_row(cx, RequeueKind::Deferral, spent.deferrals, reason, delay);
        db.put_requeue(&row)?;
        let detail = format!(
            "lock-busy: {reason}; deferral {} of {max}, due in {}s",
            spent.deferrals,
            delay.as_secs()
        );
        record(db, cx, Outcome::Deferred, &detail, host::wall_ms())?;
        return Ok(Requeued {
            outcome: Outcome::Deferred,
            attempt: spent.deferrals,
            of: max,
            due_at: Some(row.due_at),
            alert_key: None,
            held: false,
            exit: Exit::Infra,
        });
    }
    route_infra(
        db,
        cx,
        &format!("lock-busy after {max} deferrals: {reason}"),
    )
}

/// Spends one infra attempt: a re-queue with backoff, or on exhaustion one alert and a HOLD.
pub(crate) fn route_infra(db: &Db, cx: &RouteCx, reason: &str) -> Result<Requeued> {
    let (task, edge, gate) = (cx.task, cx.edge, cx.gate);
    let name = edge.name();
    let base_tip = cx.budget_key.tip.as_str();
    let spent = db.spend_budget(&task.id, edge, base_tip, 1, 0)?;
    let attempt = spent.infra_attempts;
    let max = i64::from(cx.config.merge_infra_retry_max);
    let of = max + 1;
    let now = host::wall_ms();
    if attempt <= max {
        // Doubling, never past the longest duration a key may hold.
        let doublings = u32::try_from(attempt - 1).unwrap_or(u32::MAX);
        let delay = cx
            .config
            .merge_infra_backoff
            .checked_mul(2u32.saturating_pow(doublings))
            .map_or(crate::config::MAX_DURATION, |d| {
                d.min(crate::config::MAX_DURATION)
            });
        let row = due_row(cx, RequeueKind::Infra, attempt, reason, delay);
        db.put_requeue(&row)?;
        let detail = format!(
            "attempt {attempt} of {of}: {reason}; due in {}s",
            delay.as_secs()
        );
        record(db, cx, Outcome::InfraRequeued, &detail, now)?;
        return Ok(Requeued {
            outcome: Outcome::InfraRequeued,
            attempt,
            of,
            due_at: Some(row.due_at),
            alert_key: None,
            held: false,
            exit: Exit::Infra,
        });
    }
    let hold_reason =
        format!("infra retries exhausted on {name} (attempt {attempt} of {of}): {reason}");
    db.mark_budget_exhausted(&task.id, edge, base_tip, now)?;
    db.delete_requeue(&task.id)?;
    // Under the kill-switch the HOLD is the plain write, like every other write there: it lands
    // wherever the task is now (a human may have moved it while the gate ran).
    let guarded = cx.config.lease_applies(&task.repo);
    let held = db.set_hold(
        guarded.then_some(cx.expected),
        &task.id,
        &hold_reason,
        super::ORCH_ACTOR,
        now,
    )?;
    if held {
        db.count(Counter::HoldsRaised, 1)?;
    }
    // One alert per episode: a release starts a new one, even on the same branch tip.
    let episode = db.releases(&task.id)?;
    let key = format!("infra-exhausted/{}/{name}/{base_tip}/{episode}", task.id);
    alerts::raise(
        db,
        cx.config,
        &Alert {
            key: key.clone(),
            kind: "infra-exhausted".into(),
            task_id: task.id.clone(),
            repo: task.repo.clone(),
            stage: task.stage.as_str().into(),
            summary: hold_reason.clone(),
            detail: serde_json::json!({ "edge": name, "gate": gate.name(), "base_tip": base_tip, "attempts": attempt }),
            at: crate::ui::timestamp(now),
        },
    )?;
    record(db, cx, Outcome::Exhausted, &hold_reason, now)?;
    Ok(Requeued {
        outcome: Outcome::Exhausted,
        attempt,
        of,
        due_at: None,
        alert_key: Some(key),
        held,
        exit: Exit::Exhausted,
    })
}

/// The gate event and the per-gate counter of what routing did.
fn record(db: &Db, cx: &RouteCx, outcome: Outcome, detail: &str, at: i64) -> Result<()> {
    db.insert_gate_event(&NewGateEvent {
        task_id: &cx.task.id,
        edge: cx.edge,
        gate: cx.gate,
        outcome,
        detail: Some(detail),
        run_id: None,
        at,
    })?;
    db.count(Counter::Gate(cx.gate, outcome), 1)
}
