//! Recording a passing gate: its gate event, its counter and — for the merge sub-gate — its
//! verdict on (head, target, how), in one transaction that re-checks the lease first.
//!
//! The engine records every pass of an edge's gates here; merge-verify records the pass of the
//! merge sub-gate it re-ran under the merge lock here too, so that a re-run's verdict is stored
//! exactly like the edge's own.

use anyhow::Result;

use super::{GateCx, GateResult};
use crate::counter::Counter;
use crate::host;
use crate::store::{NewGateEvent, NewVerdict};

/// Records a passing (or skipped) gate and, when it judged a head on a target, its verdict — if
/// the lease still holds (`false` otherwise: nothing written).
pub(crate) fn record_pass(cx: &mut GateCx, result: &GateResult) -> Result<bool> {
    crate::fault::point("gate.before_verdict");
    let task_id = cx.task.id.clone();
    let edge = cx.edge;
    let lease = cx.lease.clone();
    let config = cx.config;
    cx.store.write(|db| {
        if !lease.still_held(db)? {
            return Ok(false);
        }
        let now = host::wall_ms();
        db.insert_gate_event(&NewGateEvent {
            task_id: &task_id,
            edge,
            gate: result.gate,
            outcome: result.outcome,
            detail: Some(&result.verdict.detail()),
            run_id: result.run_id,
            at: now,
        })?;
        db.count(Counter::Gate(result.gate, result.outcome), 1)?;
        if let (Some(head), Some(target), Some(how), false) =
            (&result.head, &result.target, result.how, result.reused)
        {
            db.insert_verdict(&NewVerdict {
                task_id: &task_id,
                gate: result.gate,
                head,
                target,
                config_hash: &config.retest_hash(),
                how,
                coverage: result.report.as_ref().and_then(|r| r.percent()),
                run_id: result.run_id,
                at: now,
            })?;
        }
        Ok(true)
    })
}
