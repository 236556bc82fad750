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
use crate::error::Exit;
use crate::host;
use crate::stages::Edge;
use crate::store::{Db, Expected, RequeueRow, Task};

/// What routing an infra or lock-busy outcome did.
#[derive(Clone, Debug, Serialize)]
pub struct Requeued {
    /// `deferred`, `infra-requeued` or `exhausted`.
    pub outcome: &'static str,
    /// This attempt's number, and the number of attempts the budget allows.
    pub attempt: i64,
    pub of: i64,
    /// When the edge is due again (wall ms), unless exhausted.
    pub due_at: Option<i64>,
    /// The alert raised on exhaustion (delivered after the commit).
    pub alert_key: Option<String>,
    #[serde(skip)]
    pub exit: Exit,
}

/// The edge name as budgets and gate events record it.
pub fn edge_name(edge: Edge) -> String {
    format!("{}->{}", edge.from, edge.to)
}

fn due_row(
    task: &Task,
    budget_key: &BudgetKey,
    edge: Edge,
    kind: &str,
    attempt: i64,
    reason: &str,
    delay: Duration,
) -> RequeueRow {
    let now = host::wall_ms();
    let delay_ms = delay.as_millis() as i64;
    RequeueRow {
        task_id: task.id.clone(),
        from_stage: edge.from.as_str().into(),
        to_stage: edge.to.as_str().into(),
        kind: kind.into(),
        attempt,
        reason: reason.into(),
        due_at: now + delay_ms,
        due_boot_ms: host::boot_ms() + delay_ms,
        boot_id: host::boot_id().into(),
        created_at: now,
        claimed_at: None,
        budget_tip: Some(budget_key.tip.clone()),
        published_tip: budget_key.published.clone(),
    }
}

/// The key of an edge's infra budget: the branch tip before orch's rebase, and the rebased tip
/// orch published (a re-run that finds the branch there still spends the same budget).
#[derive(Clone, Debug, Default)]
pub struct BudgetKey {
    pub tip: String,
    pub published: Option<String>,
}

/// Lock-busy: a deferral while any remain, else an infra attempt.
#[expect(
    clippy::too_many_arguments,
    reason = "the routing context, spelled out"
)]
pub fn defer_or_infra(
    db: &Db,
    config: &Config,
    task: &Task,
    expected: Expected,
    edge: Edge,
    gate: &str,
    budget_key: &BudgetKey,
    reason: &str,
    actor: &str,
) -> Result<Requeued> {
    let name = edge_name(edge);
    let base_tip = budget_key.tip.as_str();
    let budget = db.budget(&task.id, &name, base_tip)?;
    let max = i64::from(config.merge_defer_max_attempts);
    if budget.deferrals < max {
        let spent = db.spend_budget(&task.id, &name, base_tip, 0, 1)?;
        let row = due_row(
            task,
            budget_key,
            edge,
            "deferral",
            spent.deferrals,
            reason,
            config.merge_defer_delay,
        );
        db.put_requeue(&row)?;
        db.insert_gate_event(
            &task.id,
            &name,
            gate,
            "deferred",
            Some(&format!(
                "lock-busy: {reason}; deferral {} of {max}, due in {}s",
                spent.deferrals,
                config.merge_defer_delay.as_secs()
            )),
            None,
            host::wall_ms(),
        )?;
        db.count(&format!("gates.{gate}.deferred"), 1)?;
        return Ok(Requeued {
            outcome: "deferred",
            attempt: spent.deferrals,
            of: max,
            due_at: Some(row.due_at),
            alert_key: None,
            exit: Exit::Infra,
        });
    }
    route_infra(
        db,
        config,
        task,
        expected,
        edge,
        gate,
        budget_key,
        &format!("lock-busy after {max} deferrals: {reason}"),
        actor,
    )
}

/// Spends one infra attempt: a re-queue with backoff, or on exhaustion one alert and a HOLD.
#[expect(
    clippy::too_many_arguments,
    reason = "the routing context, spelled out"
)]
pub fn route_infra(
    db: &Db,
    config: &Config,
    task: &Task,
    expected: Expected,
    edge: Edge,
    gate: &str,
    budget_key: &BudgetKey,
    reason: &str,
    actor: &str,
) -> Result<Requeued> {
    let name = edge_name(edge);
    let base_tip = budget_key.tip.as_str();
    let spent = db.spend_budget(&task.id, &name, base_tip, 1, 0)?;
    let attempt = spent.infra_attempts;
    let max = i64::from(config.merge_infra_retry_max);
    let of = max + 1;
    let now = host::wall_ms();
    if attempt <= max {
        let delay = config.merge_infra_backoff * 2u32.saturating_pow((attempt - 1) as u32);
        let row = due_row(task, budget_key, edge, "infra", attempt, reason, delay);
        db.put_requeue(&row)?;
        db.insert_gate_event(
            &task.id,
            &name,
            gate,
            "infra-requeued",
            Some(&format!(
                "attempt {attempt} of {of}: {reason}; due in {}s",
                delay.as_secs()
            )),
            None,
            now,
        )?;
        db.count(&format!("gates.{gate}.infra_requeued"), 1)?;
        return Ok(Requeued {
            outcome: "infra-requeued",
            attempt,
            of,
            due_at: Some(row.due_at),
            alert_key: None,
            exit: Exit::Infra,
        });
    }
    let hold_reason =
        format!("infra retries exhausted on {name} (attempt {attempt} of {of}): {reason}");
    db.mark_budget_exhausted(&task.id, &name, base_tip, now)?;
    db.delete_requeue(&task.id)?;
    db.set_hold(Some(expected), &task.id, &hold_reason, actor, now)?;
    db.count("holds.raised", 1)?;
    // One alert per episode: a release starts a new one, even on the same branch tip.
    let episode = db.releases(&task.id)?;
    let key = format!("infra-exhausted/{}/{name}/{base_tip}/{episode}", task.id);
    alerts::raise(
        db,
        &Alert {
            key: key.clone(),
            kind: "infra-exhausted".into(),
            task_id: task.id.clone(),
            repo: task.repo.clone(),
            stage: task.stage.as_str().into(),
            summary: hold_reason.clone(),
            detail: serde_json::json!({ "edge": name, "gate": gate, "base_tip": base_tip, "attempts": attempt }),
            at: crate::ui::timestamp(now),
        },
    )?;
    db.insert_gate_event(
        &task.id,
        &name,
        gate,
        "exhausted",
        Some(&hold_reason),
        None,
        now,
    )?;
    db.count(&format!("gates.{gate}.exhausted"), 1)?;
    Ok(Requeued {
        outcome: "exhausted",
        attempt,
        of,
        due_at: None,
        alert_key: Some(key),
        exit: Exit::Exhausted,
    })
}
