//! A HOLD that no retry fixes: merge-verify found no proof of merge. One alert, raised in the
//! transaction that sets the HOLD, delivered after its commit.

use anyhow::Result;

use crate::alerts::{self, Alert};
use crate::counter::Counter;
use crate::error::Exit;
use crate::host;
use crate::outcome::Outcome;
use crate::routing::requeue::{Requeued, RouteCx};

/// Puts the task on HOLD for a merge without proof, drops its re-queue and raises one alert per
/// HOLD episode. `guarded` is false under the kill-switch: the HOLD is then written without CAS.
pub(crate) fn hold_no_proof(
    db: &crate::store::Db,
    cx: &RouteCx,
    reason: &str,
    head: &str,
    guarded: bool,
) -> Result<(String, Requeued)> {
    let task = cx.task;
    let now = host::wall_ms();
    let hold_reason = format!("no proof of merge: {reason}");
    db.delete_requeue(&task.id)?;
    db.set_hold(
        guarded.then_some(cx.expected),
        &task.id,
        &hold_reason,
        cx.actor,
        now,
    )?;
    db.count(Counter::HoldsRaised, 1)?;
    let key = format!("no-proof/{}/{head}/{}", task.id, db.releases(&task.id)?);
    alerts::raise(
        db,
        &Alert {
            key: key.clone(),
            kind: "no-proof-of-merge".into(),
            task_id: task.id.clone(),
            repo: task.repo.clone(),
            stage: cx.edge.from.as_str().into(),
            summary: hold_reason.clone(),
            detail: serde_json::json!({ "head": head, "target": task.target }),
            at: crate::ui::timestamp(now),
        },
    )?;
    Ok((
        hold_reason,
        Requeued {
            outcome: Outcome::NoProof,
            attempt: 1,
            of: 1,
            due_at: None,
            alert_key: Some(key),
            exit: Exit::Exhausted,
        },
    ))
}
