//! The write of a transition: CAS (or the plain write), the goal a request states, history row,
//! event id and counters, in one transaction.

use anyhow::Result;

use super::checks::Reclaimed;
use super::edge::Step;
use super::report::{busy, changing_hands, moved_on, AdvanceReport, GoalRequest};
use crate::config::Config;
use crate::counter::Counter;
use crate::error::Exit;
use crate::gates::GateResult;
use crate::host;
use crate::lease::{self, Acquire, HeldLease};
use crate::stages::goal_ahead;
use crate::store::{EventRecord, Expected, LeaseRow, NewTransition, Store, Task};
use crate::ui::Ui;

enum Written {
    Report(AdvanceReport),
    Duplicate(EventRecord),
    Busy(LeaseRow),
    Reclaim(LeaseRow, String),
    Lost(Option<Task>),
}

/// Commits `step`'s transition. With `held == None` (a gate-less edge) the lease is taken, used
/// by the CAS and released inside the one transaction: the write transaction is the exclusion.
pub(crate) fn commit_transition(
    store: &mut Store,
    config: &Config,
    ui: Ui,
    step: &Step,
    held: Option<&HeldLease>,
    gates: Vec<GateResult>,
) -> Result<AdvanceReport> {
    let (req, snap, edge) = (step.req, &step.snap, step.edge);
    let guarded = config.lease_applies(&snap.repo);
    let mut reclaimed = Reclaimed::default();
    for _ in 0..3 {
        let mut taken_over = None;
        let written = store.write(|db| {
            taken_over = None;
            if let Some(event_id) = &req.event_id {
                if let Some(event) = db.event(&snap.id, event_id)? {
                    return Ok(Written::Duplicate(event));
                }
            }
            let now = host::wall_ms();
            let (from, version, token) = if guarded {
                let lease = match held {
                    Some(lease) => lease.clone(),
                    None => match lease::acquire(db, &snap.id, &step.me, config.lease_ttl)? {
                        Acquire::Held(lease) => {
                            taken_over = Some(lease.clone());
                            lease
                        }
                        Acquire::Busy(row) => return Ok(Written::Busy(row)),
                        Acquire::Reclaim { row, whose } => return Ok(Written::Reclaim(row, whose)),
                    },
                };
                let expected = Expected {
                    task_id: &snap.id,
                    stage: edge.from,
                    version: snap.version,
                    lease_token: Some(lease.token),
                };
                let moved =
                    db.cas_stage(expected, edge.to, req.validated_sha.as_deref(), 0, now)?;
                lease.release_in(db)?;
                match moved {
                    Some(version) => (edge.from, version, Some(lease.token)),
                    None => {
                        db.count(Counter::LeaseCasLost, 1)?;
                        return Ok(Written::Lost(db.task(&snap.id)?));
                    }
                }
            } else {
                match db.plain_write_stage(
                    &snap.id,
                    edge.to,
                    req.validated_sha.as_deref(),
                    0,
                    now,
                )? {
                    Some((from, version)) => (from, version, None),
                    None => return Ok(Written::Lost(None)),
                }
            };
            // A request that states a goal (or none) stores it with the move that holds the
            // task; the goal survives only while still ahead of the stage reached.
            if let GoalRequest::Set(goal) = req.goal {
                db.set_goal(None, &snap.id, goal.filter(|g| goal_ahead(*g, edge.to)))?;
            }
            db.insert_transition(&NewTransition {
                task_id: &snap.id,
                from: Some(from),
                to: edge.to,
                version,
                actor: &req.actor,
                reason: req.reason.as_deref(),
                lease_token: token,
                at: now,
            })?;
            db.delete_requeue(&snap.id)?;
            db.count(Counter::Transitions, 1)?;
            let mut report = AdvanceReport::new(
                snap,
                "advanced",
                Exit::Ok,
                format!("{} {from} → {} (version {version})", snap.id, edge.to),
            );
            report.from = from;
            report.stage = edge.to;
            report.version = version;
            report.lease_token = token;
            report.guarded = guarded;
            report.gates = gates.clone();
            if let Some(event_id) = &req.event_id {
                db.insert_event(
                    event_id,
                    &snap.id,
                    "advance",
                    0,
                    &serde_json::to_value(&report)?,
                    now,
                )?;
            }
            Ok(Written::Report(report))
        })?;
        match written {
            Written::Report(report) => {
                crate::fault::point("advance.after_commit");
                if let Some(lease) = &taken_over {
                    reclaimed.note(ui, lease);
                }
                return Ok(report);
            }
            Written::Duplicate(event) => return Ok(AdvanceReport::duplicate(snap, event)),
            Written::Busy(row) => return Err(busy(&row)),
            Written::Lost(now) => return Err(moved_on(&snap.id, now, edge.from)),
            Written::Reclaim(row, whose) => reclaimed.reclaim(store, config, &row, whose)?,
        }
    }
    Err(changing_hands(&snap.id))
}
