//! A HOLD that no retry fixes: merge-verify found no proof of merge, or a `config` problem (a
//! branch gone from the remote, a gate's program missing). One alert, raised in the transaction
//! that sets the HOLD, delivered after its commit; the edge's re-queue is dropped so cron does not
//! claim it again; no budget is spent. orch records itself as the HOLD's actor.

use anyhow::Result;

use crate::alerts::{self, Alert};
use crate::counter::Counter;
use crate::error::Exit;
use crate::host;
use crate::outcome::Outcome;
use crate::routing::requeue::{Requeued, RouteCx};
use crate::routing::ORCH_ACTOR;
use crate::store::Db;

/// Puts the task on HOLD for a merge without proof, drops its re-queue and raises one alert per
/// HOLD episode. `guarded` is false under the kill-switch: the HOLD is then written without CAS.
pub(crate) fn hold_no_proof(
    db: &Db,
    cx: &RouteCx,
    reason: &str,
    head: &str,
    guarded: bool,
) -> Result<(String, Requeued)> {
    let hold_reason = format!("no proof of merge: {reason}");
    let key = format!(
        "no-proof/{}/{head}/{}",
        cx.task.id,
        db.releases(&cx.task.id)?
    );
    let detail = serde_json::json!({ "head": head, "target": cx.task.target });
    let requeued = hold_with_alert(
        db,
        cx,
        HoldAlert {
            reason: &hold_reason,
            key,
            kind: "no-proof-of-merge",
            detail,
            outcome: Outcome::NoProof,
            guarded,
        },
    )?;
    Ok((hold_reason, requeued))
}

/// Puts the task on HOLD for a problem no retry fixes (`reason` names it and the fix), drops its
/// re-queue and raises one alert per HOLD episode; no budget is spent, nothing rolls back.
pub(crate) fn hold_config(db: &Db, cx: &RouteCx, reason: &str, guarded: bool) -> Result<Requeued> {
    let task = cx.task;
    let key = format!(
        "config/{}/{}/{}/{}",
        task.id,
        cx.edge.name(),
        cx.gate.name(),
        db.releases(&task.id)?
    );
    let detail = serde_json::json!({ "edge": cx.edge.name(), "gate": cx.gate.name() });
    hold_with_alert(
        db,
        cx,
        HoldAlert {
            reason,
            key,
            kind: "config",
            detail,
            outcome: Outcome::Config,
            guarded,
        },
    )
}

/// What one HOLD with its alert says.
struct HoldAlert<'a> {
    reason: &'a str,
    key: String,
    kind: &'a str,
    detail: serde_json::Value,
    outcome: Outcome,
    /// False under the kill-switch: the HOLD is then the plain write.
    guarded: bool,
}

fn hold_with_alert(db: &Db, cx: &RouteCx, hold: HoldAlert) -> Result<Requeued> {
    let task = cx.task;
    let now = host::wall_ms();
    db.delete_requeue(&task.id)?;
    let held = db.set_hold(
        hold.guarded.then_some(cx.expected),
        &task.id,
        hold.reason,
        ORCH_ACTOR,
        now,
    )?;
    if held {
        db.count(Counter::HoldsRaised, 1)?;
    }
    alerts::raise(
        db,
        cx.config,
        &Alert {
            key: hold.key.clone(),
            kind: hold.kind.into(),
            task_id: task.id.clone(),
            repo: task.repo.clone(),
            stage: cx.edge.from.as_str().into(),
            summary: hold.reason.to_string(),
            detail: hold.detail,
            at: crate::ui::timestamp(now),
        },
    )?;
    Ok(Requeued {
        outcome: hold.outcome,
        attempt: 1,
        of: 1,
        due_at: None,
        alert_key: Some(hold.key),
        held,
        exit: Exit::Exhausted,
    })
}
