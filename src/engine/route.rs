//! Routing a gate that did not pass: a pure decision (`decide`), applied in one transaction
//! under a re-check of the lease (`apply`).
//!
//! red → `rollback_stage_cas` (a HOLD there once developer retries are spent); infra → the
//! edge's re-queue and budget (lock-busy defers first), or, with
//! `ORCH_MERGE_INFRA_RETRY_ENABLED=false`, the old rollback; no proof of merge, or a problem no
//! retry fixes (`config`) → HOLD and one alert, the re-queue dropped, no budget spent; cancelled →
//! nothing routed. A task a human put on HOLD while its gate ran is exit 6, nothing routed.

use anyhow::Result;

use super::report::{held, lease_lost, AdvanceReport, AdvanceRequest};
use crate::config::Config;
use crate::counter::Counter;
use crate::error::{failure, Exit};
use crate::gates::GateResult;
use crate::host;
use crate::lease::HeldLease;
use crate::outcome::{GateKind, InfraKind, Verdict};
use crate::routing::{self, hold, requeue, BudgetKey, Rollback, RouteCx, Seen};
use crate::stages::{Edge, Stage};
use crate::store::{Expected, NewGateEvent, Store, Task};

/// What to do with a gate that did not pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Routing {
    /// Roll back to `development` (HOLD instead once developer retries are spent).
    Rollback { reason: String },
    /// Lock-busy: defer without spending the budget while deferrals remain.
    Defer { reason: String },
    /// Spend one infra attempt: re-queue with backoff, or HOLD + alert on exhaustion.
    Requeue { reason: String },
    /// The merge command said yes but the target does not hold the head: HOLD + one alert.
    NoProof { reason: String },
    /// A problem no retry fixes: HOLD + one alert, the re-queue dropped, no budget spent.
    Config { reason: String },
    /// orch itself was stopped: nothing is routed.
    Cancelled { signal: i32 },
}

/// The routing of a verdict that is neither a pass nor a lost lease.
pub(crate) fn decide(verdict: &Verdict, gate: GateKind, config: &Config) -> Routing {
    match verdict {
        Verdict::Red { reason } => Routing::Rollback {
            reason: format!("gate {gate} red: {reason}"),
        },
        Verdict::Infra { reason, .. } if !config.merge_infra_retry_enabled => Routing::Rollback {
            reason: format!(
                "gate {gate} infra ({}) treated as red (ORCH_MERGE_INFRA_RETRY_ENABLED=false): {reason}",
                verdict.outcome()
            ),
        },
        Verdict::Infra {
            kind: InfraKind::LockBusy,
            reason,
        } => Routing::Defer {
            reason: reason.clone(),
        },
        Verdict::Infra { reason, .. } => Routing::Requeue {
            reason: reason.clone(),
        },
        Verdict::NoProof { reason } => Routing::NoProof {
            reason: reason.clone(),
        },
        // Never treated as red, even under ORCH_MERGE_INFRA_RETRY_ENABLED=false: no retry, no
        // developer, fixes it.
        Verdict::Config { reason } => Routing::Config {
            reason: reason.clone(),
        },
        Verdict::Cancelled { signal } => Routing::Cancelled { signal: *signal },
        // Passes and lost leases never reach routing; treat one as a cancellation of nothing.
        Verdict::Passed { .. } | Verdict::Skipped { .. } | Verdict::LeaseLost => {
            Routing::Cancelled { signal: 0 }
        }
    }
}

/// The step a failed gate ended, as routing needs it.
pub(crate) struct Failed<'a> {
    pub req: &'a AdvanceRequest,
    pub snap: &'a Task,
    pub edge: Edge,
    pub lease: &'a HeldLease,
    pub budget_key: &'a BudgetKey,
    /// Every gate that ran; the last one failed.
    pub results: Vec<GateResult>,
}

/// Applies the routing of the last (failed) gate in one transaction, re-checking the lease and
/// the CAS condition first; the exhaustion alert is delivered after the commit.
pub(crate) fn apply(store: &mut Store, config: &Config, step: Failed) -> Result<AdvanceReport> {
    let failed = step.results.last().expect("a failed gate").clone();
    let routing = decide(&failed.verdict, failed.gate, config);
    crate::fault::point("gate.before_verdict");
    let (req, snap, edge, lease) = (step.req, step.snap, step.edge, step.lease);
    let gate = failed.gate;
    enum Routed {
        Report(AdvanceReport),
        /// A human put the task on HOLD while its gate ran: exit 6, nothing routed.
        Held(Task),
        /// Under the kill-switch, another actor moved the task to a terminal stage while its gate
        /// ran, and routing would hold or re-queue it: nothing routed (no HOLD, no alert), exit 4.
        Terminal(Task),
        Lost,
    }
    let run = run_ref(failed.run_id);
    let routed = store.write(|db| {
        if !lease.still_held(db)? {
            db.count(Counter::LeaseCasLost, 1)?;
            return Ok(Routed::Lost);
        }
        let Some(task) = db.task(&snap.id)? else {
            return Ok(Routed::Lost);
        };
        // Under the kill-switch the routing writes are plain: no CAS, no re-check.
        if !lease.unguarded && task.is_held() {
            lease.release_in(db)?;
            return Ok(Routed::Held(task));
        }
        if !lease.unguarded && (task.stage != edge.from || task.version != snap.version) {
            db.count(Counter::LeaseCasLost, 1)?;
            return Ok(Routed::Lost);
        }
        // Under the kill-switch the plain writes land wherever the task is now — a rollback is
        // the old unconditional stage write, exactly — but a done or cancelled task is never put
        // on HOLD, alerted about or re-queued: nothing would ever release or claim it.
        let holds_or_requeues = match &routing {
            Routing::Rollback { .. } => task.dev_retries >= i64::from(config.max_dev_retries),
            Routing::Cancelled { .. } => false,
            Routing::Defer { .. }
            | Routing::Requeue { .. }
            | Routing::NoProof { .. }
            | Routing::Config { .. } => true,
        };
        if task.stage.is_terminal() && holds_or_requeues {
            db.count(Counter::LeaseCasLost, 1)?;
            return Ok(Routed::Terminal(task));
        }
        let now = host::wall_ms();
        let detail = failed.verdict.detail();
        db.insert_gate_event(&NewGateEvent {
            task_id: &snap.id,
            edge,
            gate,
            outcome: failed.outcome,
            detail: Some(&detail),
            run_id: failed.run_id,
            at: now,
        })?;
        db.count(Counter::Gate(gate, failed.outcome), 1)?;
        let expected = Expected {
            task_id: &snap.id,
            stage: edge.from,
            version: snap.version,
            lease_token: lease.cas_token(),
        };
        let cx = RouteCx {
            config,
            task: &task,
            expected,
            edge,
            gate,
            budget_key: step.budget_key,
        };
        let mut report =
            AdvanceReport::new(&task, failed.outcome.as_str(), Exit::Ok, String::new());
        report.lease_token = lease.cas_token();
        report.guarded = !lease.unguarded;
        match &routing {
            Routing::Rollback { reason } => {
                let seen = Seen {
                    task_id: &snap.id,
                    repo: &snap.repo,
                    stage: edge.from,
                    version: snap.version,
                    lease_token: lease.cas_token(),
                };
                let rollback = routing::rollback_stage_cas(db, config, seen, &req.actor, reason)?;
                db.delete_requeue(&snap.id)?;
                report.exit = Exit::GateRed;
                if let Rollback::RolledBack { version, .. } = &rollback {
                    report.stage = Stage::Development;
                    report.version = *version;
                }
                report.message = rollback_message(&snap.id, reason, &run, &rollback, config);
                report.rollback = Some(rollback);
            }
            Routing::Defer { reason } | Routing::Requeue { reason } => {
                let requeued = if matches!(routing, Routing::Defer { .. }) {
                    requeue::defer_or_infra(db, &cx, reason)?
                } else {
                    requeue::route_infra(db, &cx, reason)?
                };
                report.exit = requeued.exit;
                report.message = requeue_message(
                    &snap.id,
                    &failed,
                    &format!("{reason}{run}"),
                    &requeued,
                    edge,
                );
                report.requeue = Some(requeued);
            }
            Routing::NoProof { reason } => {
                let head = failed
                    .head
                    .clone()
                    .unwrap_or_else(|| step.budget_key.tip.clone());
                let (hold_reason, requeued) =
                    hold::hold_no_proof(db, &cx, reason, &head, !lease.unguarded)?;
                report.exit = Exit::Exhausted;
                report.message = format!(
                    "{}: {hold_reason}{run}; {}",
                    snap.id,
                    held_note(requeued.held)
                );
                report.requeue = Some(requeued);
            }
            Routing::Config { reason } => {
                let requeued = hold::hold_config(db, &cx, reason, !lease.unguarded)?;
                report.exit = Exit::Exhausted;
                report.message = format!(
                    "{}: gate {gate} config: {reason}{run}; {}",
                    snap.id,
                    held_note(requeued.held)
                );
                report.requeue = Some(requeued);
            }
            Routing::Cancelled { signal } => {
                report.exit = Exit::Cancelled;
                report.message = format!(
                    "{}: cancelled by signal {signal}; the run was killed, nothing routed",
                    snap.id
                );
            }
        }
        report.exit_code = report.exit.code();
        report.gates = step.results.clone();
        if let Some(event_id) = &req.event_id {
            if matches!(report.exit, Exit::GateRed | Exit::Infra | Exit::Exhausted)
                && db.event(&snap.id, event_id)?.is_none()
            {
                db.insert_event(
                    event_id,
                    &snap.id,
                    "advance",
                    report.exit.code(),
                    &serde_json::to_value(&report)?,
                    now,
                )?;
            }
        }
        lease.release_in(db)?;
        Ok(Routed::Report(report))
    })?;
    let report = match routed {
        Routed::Report(report) => report,
        Routed::Held(task) => return Err(held(&task)),
        Routed::Terminal(task) => {
            return Err(failure(
                Exit::LostRace,
                format!(
                    "{}: gate {gate} {}: {}{run}; but the task is now {} (version {}): nothing routed, no HOLD",
                    snap.id,
                    failed.outcome,
                    failed.verdict.detail(),
                    task.stage,
                    task.version
                ),
            ))
        }
        Routed::Lost => return Err(lease_lost(&snap.id)),
    };
    if let Some(key) = report.requeue.as_ref().and_then(|r| r.alert_key.as_deref()) {
        crate::alerts::deliver_key(store, config, key)?;
    }
    Ok(report)
}

/// Where a gate's run can be read: ` (run N: `orch run show N`)`, or nothing for a gate that ran
/// no command.
pub(crate) fn run_ref(run_id: Option<i64>) -> String {
    run_id.map_or_else(String::new, |id| {
        format!(" (run {id}: `orch run show {id}`)")
    })
}

/// What a HOLD-raising routing did, as its message ends.
fn held_note(held: bool) -> &'static str {
    if held {
        "on HOLD, one alert raised"
    } else {
        "the task was already on HOLD; one alert raised"
    }
}

/// The one line of a rollback (or of the HOLD that replaced it), naming the gate's run.
fn rollback_message(
    id: &str,
    reason: &str,
    run: &str,
    rollback: &Rollback,
    config: &Config,
) -> String {
    match rollback {
        Rollback::RolledBack {
            version,
            dev_retries,
        } => format!(
            "{id}: {reason}{run}; rolled back to development (version {version}, developer retry {dev_retries} of {})",
            config.max_dev_retries
        ),
        Rollback::Held { reason } => format!("{id}: on HOLD: {reason}{run}"),
        Rollback::Lost => format!("{id}: {reason}{run}; the rollback lost its CAS"),
    }
}

fn requeue_message(
    id: &str,
    failed: &GateResult,
    reason: &str,
    requeued: &routing::Requeued,
    edge: Edge,
) -> String {
    let gate = failed.gate;
    match requeued.due_at {
        Some(due) => format!(
            "{id}: gate {gate} {}: {reason}; {} {} of {}, due at {}; the task stays at {}",
            failed.outcome,
            if requeued.outcome == crate::outcome::Outcome::Deferred {
                "deferral"
            } else {
                "attempt"
            },
            requeued.attempt,
            requeued.of,
            crate::ui::timestamp(due),
            edge.from
        ),
        None => format!(
            "{id}: gate {gate} {}: {reason}; infra retries exhausted (attempt {} of {}): {}",
            failed.outcome,
            requeued.attempt,
            requeued.of,
            held_note(requeued.held)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(infra_retry: bool) -> Config {
        let env = move |k: &str| {
            (k == "ORCH_MERGE_INFRA_RETRY_ENABLED" && !infra_retry).then(|| "false".to_string())
        };
        Config::load(&env, Some(std::path::Path::new("/nonexistent/orch.db")))
    }

    fn infra(kind: InfraKind) -> Verdict {
        Verdict::Infra {
            kind,
            reason: "why".into(),
        }
    }

    #[test]
    fn every_failed_verdict_has_one_routing() {
        let on = config(true);
        let off = config(false);
        let red = Verdict::Red {
            reason: "1 failed".into(),
        };
        let no_proof = Verdict::NoProof {
            reason: "not in main".into(),
        };
        let config_problem = Verdict::Config {
            reason: "branch gone".into(),
        };
        let table: Vec<(&Verdict, &Config, Routing)> = vec![
            (
                &red,
                &on,
                Routing::Rollback {
                    reason: "gate merge red: 1 failed".into(),
                },
            ),
            (
                &red,
                &off,
                Routing::Rollback {
                    reason: "gate merge red: 1 failed".into(),
                },
            ),
            (
                &no_proof,
                &on,
                Routing::NoProof {
                    reason: "not in main".into(),
                },
            ),
            (
                &Verdict::Cancelled { signal: 15 },
                &on,
                Routing::Cancelled { signal: 15 },
            ),
            (
                &config_problem,
                &on,
                Routing::Config {
                    reason: "branch gone".into(),
                },
            ),
            (
                &config_problem,
                &off,
                Routing::Config {
                    reason: "branch gone".into(),
                },
            ),
        ];
        for (verdict, config, expected) in table {
            assert_eq!(
                decide(verdict, GateKind::Merge, config),
                expected,
                "{verdict:?}"
            );
        }
        for kind in [InfraKind::Timeout, InfraKind::Other] {
            assert_eq!(
                decide(&infra(kind), GateKind::Merge, &on),
                Routing::Requeue {
                    reason: "why".into()
                }
            );
        }
        assert_eq!(
            decide(&infra(InfraKind::LockBusy), GateKind::Merge, &on),
            Routing::Defer {
                reason: "why".into()
            }
        );
        for (kind, name) in [
            (InfraKind::Timeout, "timeout"),
            (InfraKind::LockBusy, "lock-busy"),
            (InfraKind::Other, "other"),
        ] {
            assert_eq!(
                decide(&infra(kind), GateKind::Security, &off),
                Routing::Rollback {
                    reason: format!(
                        "gate security infra ({name}) treated as red (ORCH_MERGE_INFRA_RETRY_ENABLED=false): why"
                    )
                }
            );
        }
    }
}
