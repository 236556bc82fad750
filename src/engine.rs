//! The stage engine: one transition of one task, in the contract's order of checks, and
//! `rollback_stage_cas`, the one helper every rollback goes through.
//!
//! Order of checks (the first failing one decides): task exists (3) → event id already seen
//! (0, first outcome reported) → the edge `(expect or current) → to` is in the table (5) → HOLD
//! (6) → due time of a re-queued edge (11 unless `--force`) → lease (4) → CAS (4). The edge's gates
//! run between the lease and the CAS. An event id is recorded only with an outcome that wrote
//! something, in the same transaction.

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::error::{failure, Exit};
use crate::gates::{self, edge_gates, GateCx, GateKind, GateResult, InfraKind, Verdict};
use crate::host;
use crate::lease::{self, Acquire, Claimant, HeldLease};
use crate::requeue::{self, Requeued};
use crate::stages::{find_edge, next_stages, Edge, Stage};
use crate::store::{Db, EventRecord, LeaseRow, Store, Task};
use crate::ui::Ui;

/// One `orch advance`.
#[derive(Clone, Debug)]
pub struct AdvanceRequest {
    pub task_id: String,
    pub to: Stage,
    pub expect: Option<Stage>,
    pub actor: String,
    pub event_id: Option<String>,
    pub validated_sha: Option<String>,
    pub reason: Option<String>,
    /// Run a re-queued edge before its due time.
    pub force: bool,
}

/// What one `orch advance` (or `orch merge-gate retest`) did; also the outcome stored with its
/// event id.
#[derive(Clone, Debug, Serialize)]
pub struct AdvanceReport {
    pub task_id: String,
    pub outcome: String,
    pub exit_code: i32,
    pub from: Stage,
    pub stage: Stage,
    pub version: i64,
    pub lease_token: Option<i64>,
    /// Whether lease + CAS guarded the write (false under the kill-switch or out of scope).
    pub guarded: bool,
    pub message: String,
    /// Every gate that ran, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateResult>,
    /// The re-queue (or exhaustion) an infra outcome led to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requeue: Option<Requeued>,
    /// The rollback a red gate led to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    /// For a duplicate event: the outcome of its first delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_outcome: Option<serde_json::Value>,
    #[serde(skip)]
    pub exit: Exit,
}

impl AdvanceReport {
    fn new(task: &Task, outcome: &str, exit: Exit, message: String) -> AdvanceReport {
        AdvanceReport {
            task_id: task.id.clone(),
            outcome: outcome.into(),
            exit_code: exit.code(),
            from: task.stage,
            stage: task.stage,
            version: task.version,
            lease_token: None,
            guarded: true,
            message,
            gates: Vec::new(),
            requeue: None,
            rollback: None,
            first_outcome: None,
            exit,
        }
    }
}

/// The task row, or exit 3.
pub fn load_task(db: &Db, id: &str) -> Result<Task> {
    db.task(id)?.ok_or_else(|| {
        failure(
            Exit::NotFound,
            format!("task `{id}` not found (hint: `orch task list`)"),
        )
    })
}

fn duplicate_report(task: &Task, event: EventRecord) -> AdvanceReport {
    let mut report = AdvanceReport::new(
        task,
        "duplicate",
        Exit::Ok,
        format!(
            "event `{}` was already processed (exit {}); nothing done",
            event.event_id, event.exit_code
        ),
    );
    report.first_outcome = Some(event.outcome);
    report
}

fn illegal(from: Stage, to: Stage) -> anyhow::Error {
    let allowed: Vec<&str> = next_stages(from).iter().map(|s| s.as_str()).collect();
    let hint = if allowed.is_empty() {
        format!("`{from}` is terminal")
    } else {
        format!("from `{from}` a task may go to: {}", allowed.join(", "))
    };
    failure(
        Exit::Illegal,
        format!("illegal transition `{from} → {to}` (hint: {hint}; see `orch doctor`)"),
    )
}

fn held(task: &Task) -> anyhow::Error {
    failure(
        Exit::Held,
        format!(
            "task `{}` is on HOLD: {} (hint: `orch task release {}` once a human has looked)",
            task.id,
            task.hold_reason.as_deref().unwrap_or("no reason given"),
            task.id
        ),
    )
}

fn busy(row: &LeaseRow) -> anyhow::Error {
    failure(
        Exit::LostRace,
        format!("task `{}` is held by {}", row.task_id, row.describe()),
    )
}

fn reclaim_blocked(row: &LeaseRow) -> anyhow::Error {
    failure(
        Exit::LostRace,
        format!(
            "task `{}`: its dead lease holder {} left a run whose processes could not be shown finished; backing off (hint: `orch reap`)",
            row.task_id,
            row.describe()
        ),
    )
}

fn lease_lost(id: &str) -> anyhow::Error {
    failure(
        Exit::LostRace,
        format!("task `{id}`: this actor lost its lease while its gates ran; nothing written"),
    )
}

fn moved_on(id: &str, now: Option<Task>, expected: Stage) -> anyhow::Error {
    match now {
        Some(t) if t.is_held() => held(&t),
        Some(t) => failure(
            Exit::LostRace,
            format!(
                "task `{id}` is at `{}` (version {}) now, not where this actor saw it (`{expected}`)",
                t.stage, t.version
            ),
        ),
        None => failure(Exit::NotFound, format!("task `{id}` not found")),
    }
}

/// Exit 11 when the edge is re-queued and not due yet (unless forced).
fn check_due(db: &Db, task: &Task, edge: Edge, force: bool) -> Result<()> {
    let Some(requeue) = db.requeue(&task.id)? else {
        return Ok(());
    };
    let due_in = requeue.due_in_ms();
    if force
        || due_in <= 0
        || requeue.from_stage != edge.from.as_str()
        || requeue.to_stage != edge.to.as_str()
    {
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

/// Runs one transition. Returns the report for outcomes 0, 10, 11, 12, 13; the others are
/// failures.
pub fn advance(
    store: &mut Store,
    config: &Config,
    ui: Ui,
    req: &AdvanceRequest,
) -> Result<AdvanceReport> {
    let snap = load_task(&store.read(), &req.task_id)?;
    if let Some(event_id) = &req.event_id {
        if let Some(event) = store.read().event(event_id)? {
            return Ok(duplicate_report(&snap, event));
        }
    }
    let from = req.expect.unwrap_or(snap.stage);
    let edge = find_edge(from, req.to).ok_or_else(|| illegal(from, req.to))?;
    if snap.is_held() {
        return Err(held(&snap));
    }
    check_due(&store.read(), &snap, edge, req.force)?;
    let guarded = config.lease_applies(&snap.repo);
    if guarded && snap.stage != from {
        store.write(|db| db.count("transition_lease.cas_lost", 1))?;
        return Err(moved_on(&req.task_id, Some(snap), from));
    }
    let me = Claimant::current(format!("{} (orch advance)", req.actor));
    if edge_gates(edge).is_empty() {
        // No long step: the write transaction itself is the exclusion, so the lease is taken,
        // used by the CAS and released in that one transaction.
        return commit_transition(store, config, req, &snap, edge, &me, None, Vec::new());
    }
    crate::fault::point("advance.before_lease");
    let lease = match take_lease(store, config, &snap, &me, req.event_id.as_deref())? {
        Ok(lease) => lease,
        Err(event) => return Ok(duplicate_report(&snap, event)),
    };
    crate::fault::point("advance.after_lease");
    run_edge(
        store,
        config,
        ui,
        req,
        snap,
        edge,
        me,
        lease,
        EdgeGoal::Transition,
    )
}

/// Takes the task's lease for a gated step (or the unguarded stand-in), after the event-id check.
fn take_lease(
    store: &mut Store,
    config: &Config,
    snap: &Task,
    me: &Claimant,
    event_id: Option<&str>,
) -> Result<std::result::Result<HeldLease, EventRecord>> {
    enum Step {
        Duplicate(EventRecord),
        Moved(Option<Task>),
        Acquired(Acquire),
    }
    if !config.lease_applies(&snap.repo) {
        if let Some(event) = event_id
            .map(|e| store.read().event(e))
            .transpose()?
            .flatten()
        {
            return Ok(Err(event));
        }
        return Ok(Ok(HeldLease::unguarded(&snap.id)));
    }
    for _ in 0..3 {
        // One transaction: the event id, the task still exactly where this actor saw it, and the
        // lease. A task that moved on in between is a lost race before any gate starts.
        let step = store.write(|db| {
            if let Some(event) = event_id.map(|e| db.event(e)).transpose()?.flatten() {
                return Ok(Step::Duplicate(event));
            }
            match db.task(&snap.id)? {
                Some(t) if t.stage == snap.stage && t.version == snap.version && !t.is_held() => {}
                other => {
                    db.count("transition_lease.cas_lost", 1)?;
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
            Step::Duplicate(event) => return Ok(Err(event)),
            Step::Moved(now) => return Err(moved_on(&snap.id, now, snap.stage)),
            Step::Acquired(Acquire::Held(lease)) => return Ok(Ok(lease)),
            Step::Acquired(Acquire::Busy(row)) => return Err(busy(&row)),
            Step::Acquired(Acquire::Reclaim(row)) => {
                if !row.finish_runs(store, config)? {
                    return Err(reclaim_blocked(&row));
                }
            }
        }
    }
    Err(failure(
        Exit::LostRace,
        format!("task `{}`: its lease keeps changing hands", snap.id),
    ))
}

/// What a gated run is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeGoal {
    /// `orch advance`: gates, then the CAS to the edge's target stage.
    Transition,
    /// `orch merge-gate retest`: the merge sub-gate alone; its passing verdict is stored.
    MergeGateOnly,
}

/// Runs the edge's gates under `lease`, then commits or routes; always releases the lease.
#[expect(clippy::too_many_arguments, reason = "the step's whole context")]
pub fn run_edge(
    store: &mut Store,
    config: &Config,
    ui: Ui,
    req: &AdvanceRequest,
    snap: Task,
    edge: Edge,
    me: Claimant,
    lease: HeldLease,
    goal: EdgeGoal,
) -> Result<AdvanceReport> {
    let lease_for_release = lease.clone();
    let result = run_edge_held(store, config, ui, req, snap, edge, me, lease, goal);
    // Every path gives the lease up (the commit and routing paths already did, in their
    // transactions; this is then a no-op delete).
    let _ = store.write(|db| lease_for_release.release_in(db));
    result
}

#[expect(clippy::too_many_arguments, reason = "the step's whole context")]
fn run_edge_held(
    store: &mut Store,
    config: &Config,
    ui: Ui,
    req: &AdvanceRequest,
    snap: Task,
    edge: Edge,
    me: Claimant,
    lease: HeldLease,
    goal: EdgeGoal,
) -> Result<AdvanceReport> {
    let gate_list: Vec<GateKind> = match goal {
        EdgeGoal::Transition => edge_gates(edge).to_vec(),
        EdgeGoal::MergeGateOnly => vec![GateKind::Merge],
    };
    let mut cx = GateCx {
        store,
        config,
        ui,
        task: snap.clone(),
        lease,
        me: me.clone(),
        edge,
        base_tip: None,
        head: None,
        carried: None,
        published: None,
    };
    cx.carried = cx.store.read().requeue(&snap.id)?.and_then(|r| {
        (r.from_stage == edge.from.as_str() && r.to_stage == edge.to.as_str())
            .then_some(())
            .and(r.budget_tip.map(|tip| crate::requeue::BudgetKey {
                tip,
                published: r.published_tip,
            }))
    });
    let mut results = Vec::new();
    for gate in gate_list {
        let mut result = match crate::cancel::requested() {
            Some(signal) => GateResult::new(gate, Verdict::Cancelled { signal }),
            None => gates::run(gate, &mut cx),
        };
        if let Some(signal) = crate::cancel::requested() {
            // Whatever the gate concluded while orch was being stopped: nothing is routed.
            result = GateResult::new(gate, Verdict::Cancelled { signal });
        }
        match &result.verdict {
            Verdict::Passed { .. } | Verdict::Skipped { .. } => {
                if !record_pass(&mut cx, &result)? {
                    return Err(lease_lost(&snap.id));
                }
                ui.note(format!(
                    "gate {}: {} — {}",
                    gate.name(),
                    result.outcome,
                    result.verdict.detail()
                ));
                if let Some(head) = &result.head {
                    cx.head = Some(head.clone());
                }
                results.push(result);
            }
            Verdict::LeaseLost => return Err(lease_lost(&snap.id)),
            _ => {
                let budget_key = cx.budget_key();
                let lease = cx.lease.clone();
                results.push(result);
                return route_failure(
                    cx.store,
                    config,
                    req,
                    &snap,
                    edge,
                    &lease,
                    &budget_key,
                    results,
                );
            }
        }
    }
    let lease = cx.lease.clone();
    match goal {
        EdgeGoal::Transition => commit_transition(
            cx.store,
            config,
            req,
            &snap,
            edge,
            &me,
            Some(&lease),
            results,
        ),
        EdgeGoal::MergeGateOnly => {
            let mut report = AdvanceReport::new(
                &snap,
                "passed",
                Exit::Ok,
                format!(
                    "{}: merge gate passed; {} may now advance to {}",
                    snap.id, snap.stage, edge.to
                ),
            );
            report.lease_token = lease.cas_token();
            report.guarded = !lease.unguarded;
            report.gates = results;
            // The pass is an outcome that wrote something (the verdict): record the event id with
            // it, so a re-delivery reports this outcome instead of re-running the gate.
            if let Some(event_id) = &req.event_id {
                let value = serde_json::to_value(&report)?;
                cx.store.write(|db| {
                    if db.event(event_id)?.is_none() {
                        db.insert_event(
                            event_id,
                            &snap.id,
                            "merge-gate retest",
                            0,
                            &value,
                            host::wall_ms(),
                        )?;
                    }
                    Ok(())
                })?;
            }
            Ok(report)
        }
    }
}

/// Records a passing (or skipped) gate and its verdict, if the lease still holds.
fn record_pass(cx: &mut GateCx, result: &GateResult) -> Result<bool> {
    crate::fault::point("gate.before_verdict");
    let task_id = cx.task.id.clone();
    let edge_name = requeue::edge_name(cx.edge);
    let lease = cx.lease.clone();
    cx.store.write(|db| {
        if !lease.still_held(db)? {
            return Ok(false);
        }
        let now = host::wall_ms();
        db.insert_gate_event(
            &task_id,
            &edge_name,
            result.gate.name(),
            result.outcome,
            Some(&result.verdict.detail()),
            result.run_id,
            now,
        )?;
        db.count(
            &format!("gates.{}.{}", result.gate.name(), result.outcome),
            1,
        )?;
        if let (Some(head), Some(target)) = (&result.head, &result.target) {
            if matches!(result.verdict, Verdict::Passed { .. }) || result.outcome == "skipped" {
                db.insert_verdict(
                    &task_id,
                    result.gate.name(),
                    head,
                    target,
                    result.run_id,
                    now,
                )?;
            }
        }
        Ok(true)
    })
}

/// Routes a gate that did not pass: red → `rollback_stage_cas`; infra → the edge's re-queue and
/// budget (or, with `ORCH_MERGE_INFRA_RETRY_ENABLED=false`, the old rollback); cancelled →
/// nothing routed. One transaction, under a re-check of the lease.
#[expect(clippy::too_many_arguments, reason = "the step's whole context")]
fn route_failure(
    store: &mut Store,
    config: &Config,
    req: &AdvanceRequest,
    snap: &Task,
    edge: Edge,
    lease: &HeldLease,
    budget_key: &crate::requeue::BudgetKey,
    results: Vec<GateResult>,
) -> Result<AdvanceReport> {
    let failed = results.last().expect("a failed gate").clone();
    crate::fault::point("gate.before_verdict");
    let gate = failed.gate.name();
    let edge_name = requeue::edge_name(edge);
    let routed = store.write(|db| {
        if !lease.still_held(db)? {
            db.count("transition_lease.cas_lost", 1)?;
            return Ok(None);
        }
        let Some(task) = db.task(&snap.id)? else {
            return Ok(None);
        };
        // Under the kill-switch the routing writes are plain: no CAS, no re-check.
        if !lease.unguarded
            && (task.stage != edge.from || task.version != snap.version || task.is_held())
        {
            db.count("transition_lease.cas_lost", 1)?;
            return Ok(None);
        }
        let now = host::wall_ms();
        let detail = failed.verdict.detail();
        db.insert_gate_event(&snap.id, &edge_name, gate, failed.outcome, Some(&detail), failed.run_id, now)?;
        db.count(&format!("gates.{gate}.{}", failed.outcome), 1)?;
        let expected = crate::store::Expected {
            task_id: &snap.id,
            stage: edge.from,
            version: snap.version,
            lease_token: lease.cas_token(),
        };
        let seen = Seen {
            task_id: &snap.id,
            repo: &snap.repo,
            stage: edge.from,
            version: snap.version,
            lease_token: lease.cas_token(),
        };
        let mut report = AdvanceReport::new(&task, failed.outcome, Exit::Ok, String::new());
        report.lease_token = lease.cas_token();
        report.guarded = !lease.unguarded;
        let red_reason = match &failed.verdict {
            Verdict::Red { reason } => Some(format!("gate {gate} red: {reason}")),
            Verdict::Infra { reason, .. } if !config.merge_infra_retry_enabled => Some(format!(
                "gate {gate} infra ({}) treated as red (ORCH_MERGE_INFRA_RETRY_ENABLED=false): {reason}",
                failed.outcome
            )),
            _ => None,
        };
        if let Some(reason) = red_reason {
            let rollback = rollback_stage_cas(db, config, seen, &req.actor, &reason)?;
            db.delete_requeue(&snap.id)?;
            report.exit = Exit::GateRed;
            report.message = match &rollback {
                Rollback::RolledBack { version, dev_retries } => {
                    report.stage = Stage::Development;
                    report.version = *version;
                    format!(
                        "{}: {reason}; rolled back to development (version {version}, developer retry {dev_retries} of {})",
                        snap.id, config.max_dev_retries
                    )
                }
                Rollback::Held { reason } => format!("{}: on HOLD: {reason}", snap.id),
                Rollback::Lost => format!("{}: {reason}; the rollback lost its CAS", snap.id),
            };
            report.rollback = Some(rollback);
        } else {
            match &failed.verdict {
                Verdict::Infra { kind, reason } => {
                    let requeued = if *kind == InfraKind::LockBusy {
                        requeue::defer_or_infra(db, config, &task, expected, edge, gate, budget_key, reason, &req.actor)?
                    } else {
                        requeue::route_infra(db, config, &task, expected, edge, gate, budget_key, reason, &req.actor)?
                    };
                    report.exit = requeued.exit;
                    report.message = match requeued.due_at {
                        Some(due) => format!(
                            "{}: gate {gate} {}: {reason}; {} {} of {}, due at {}; the task stays at {}",
                            snap.id,
                            failed.outcome,
                            if requeued.outcome == "deferred" { "deferral" } else { "attempt" },
                            requeued.attempt,
                            requeued.of,
                            crate::ui::timestamp(due),
                            edge.from
                        ),
                        None => format!(
                            "{}: gate {gate} {}: {reason}; infra retries exhausted (attempt {} of {}): on HOLD, one alert raised",
                            snap.id, failed.outcome, requeued.attempt, requeued.of
                        ),
                    };
                    report.requeue = Some(requeued);
                }
                Verdict::NoProof { reason } => {
                    let hold_reason = format!("no proof of merge: {reason}");
                    db.delete_requeue(&snap.id)?;
                    db.set_hold(
                        (!lease.unguarded).then_some(expected),
                        &snap.id,
                        &hold_reason,
                        &req.actor,
                        now,
                    )?;
                    db.count("holds.raised", 1)?;
                    let head = failed.head.clone().unwrap_or_else(|| budget_key.tip.clone());
                    let key = format!("no-proof/{}/{head}/{}", snap.id, db.releases(&snap.id)?);
                    crate::alerts::raise(
                        db,
                        &crate::alerts::Alert {
                            key: key.clone(),
                            kind: "no-proof-of-merge".into(),
                            task_id: snap.id.clone(),
                            repo: snap.repo.clone(),
                            stage: edge.from.as_str().into(),
                            summary: hold_reason.clone(),
                            detail: serde_json::json!({ "head": head, "target": snap.target }),
                            at: crate::ui::timestamp(now),
                        },
                    )?;
                    report.exit = Exit::Exhausted;
                    report.message = format!("{}: {hold_reason}; on HOLD, one alert raised", snap.id);
                    report.requeue = Some(Requeued {
                        outcome: "no-proof",
                        attempt: 1,
                        of: 1,
                        due_at: None,
                        alert_key: Some(key),
                        exit: Exit::Exhausted,
                    });
                }
                Verdict::Cancelled { signal } => {
                    report.exit = Exit::Cancelled;
                    report.message = format!(
                        "{}: cancelled by signal {signal}; the run was killed, nothing routed",
                        snap.id
                    );
                }
                _ => unreachable!("passes and lost leases are not routed"),
            }
        }
        report.exit_code = report.exit.code();
        report.gates = results.clone();
        if let Some(event_id) = &req.event_id {
            if matches!(report.exit, Exit::GateRed | Exit::Infra | Exit::Exhausted)
                && db.event(event_id)?.is_none()
            {
                db.insert_event(event_id, &snap.id, "advance", report.exit.code(), &serde_json::to_value(&report)?, now)?;
            }
        }
        lease.release_in(db)?;
        Ok(Some(report))
    })?;
    let report = routed.ok_or_else(|| lease_lost(&snap.id))?;
    if let Some(key) = report.requeue.as_ref().and_then(|r| r.alert_key.as_deref()) {
        crate::alerts::deliver_key(store, config, key)?;
    }
    Ok(report)
}

enum Written {
    Report(AdvanceReport),
    Duplicate(EventRecord),
    Busy(LeaseRow),
    Reclaim(LeaseRow),
    Lost(Option<Task>),
}

/// The write of a transition: CAS (or the plain write), history row, event id and counters, in
/// one transaction. With `held == None` the lease is taken and released inside it.
#[expect(clippy::too_many_arguments, reason = "the step's whole context")]
fn commit_transition(
    store: &mut Store,
    config: &Config,
    req: &AdvanceRequest,
    snap: &Task,
    edge: Edge,
    me: &Claimant,
    held: Option<&HeldLease>,
    gates: Vec<GateResult>,
) -> Result<AdvanceReport> {
    let guarded = config.lease_applies(&snap.repo);
    for _ in 0..3 {
        let written = store.write(|db| {
            if let Some(event_id) = &req.event_id {
                if let Some(event) = db.event(event_id)? {
                    return Ok(Written::Duplicate(event));
                }
            }
            let now = host::wall_ms();
            let (from, version, token) = if guarded {
                let lease = match held {
                    Some(lease) => lease.clone(),
                    None => match lease::acquire(db, &snap.id, me, config.lease_ttl)? {
                        Acquire::Held(lease) => lease,
                        Acquire::Busy(row) => return Ok(Written::Busy(row)),
                        Acquire::Reclaim(row) => return Ok(Written::Reclaim(row)),
                    },
                };
                let expected = crate::store::Expected {
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
                        db.count("transition_lease.cas_lost", 1)?;
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
            db.insert_transition(
                &snap.id,
                Some(from),
                edge.to,
                version,
                &req.actor,
                req.reason.as_deref(),
                token,
                now,
            )?;
            db.delete_requeue(&snap.id)?;
            db.count("transitions.total", 1)?;
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
                return Ok(report);
            }
            Written::Duplicate(event) => return Ok(duplicate_report(snap, event)),
            Written::Busy(row) => return Err(busy(&row)),
            Written::Lost(now) => return Err(moved_on(&snap.id, now, edge.from)),
            Written::Reclaim(row) => {
                if !row.finish_runs(store, config)? {
                    return Err(reclaim_blocked(&row));
                }
            }
        }
    }
    Err(failure(
        Exit::LostRace,
        format!("task `{}`: its lease keeps changing hands", snap.id),
    ))
}

/// `orch advance --next`: claims the earliest due re-queue whose task is neither held nor leased
/// (one `UPDATE … RETURNING`, the lease taken in the same transaction) and runs that edge.
/// `Ok(None)` when nothing is due.
pub fn advance_next(
    store: &mut Store,
    config: &Config,
    ui: Ui,
    actor: &str,
) -> Result<Option<AdvanceReport>> {
    let me = Claimant::current(format!("{actor} (orch advance --next)"));
    let claimed = store.write(|db| {
        let Some(requeue) =
            db.claim_due_requeue(host::wall_ms(), host::boot_ms(), host::boot_id())?
        else {
            return Ok(None);
        };
        let task = load_task(db, &requeue.task_id)?;
        let lease = if config.lease_applies(&task.repo) {
            match lease::acquire(db, &task.id, &me, config.lease_ttl)? {
                Acquire::Held(lease) => lease,
                _ => return Ok(None),
            }
        } else {
            HeldLease::unguarded(&task.id)
        };
        Ok(Some((requeue, task, lease)))
    })?;
    let Some((requeue, task, lease)) = claimed else {
        return Ok(None);
    };
    let from: Stage = requeue.from_stage.parse().map_err(anyhow::Error::msg)?;
    let to: Stage = requeue.to_stage.parse().map_err(anyhow::Error::msg)?;
    let edge = find_edge(from, to).ok_or_else(|| illegal(from, to))?;
    if task.stage != from {
        let _ = store.write(|db| {
            db.delete_requeue(&task.id)?;
            lease.release_in(db)
        });
        let id = task.id.clone();
        return Err(moved_on(&id, Some(task), from));
    }
    let req = AdvanceRequest {
        task_id: task.id.clone(),
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
    ui.note(format!(
        "advance --next: {} {edge}: re-queued {} {} due; running it",
        task.id, requeue.kind, requeue.attempt
    ));
    run_edge(
        store,
        config,
        ui,
        &req,
        task,
        edge,
        me,
        lease,
        EdgeGoal::Transition,
    )
    .map(Some)
}

/// `orch merge-gate retest`: the merge sub-gate alone, at `deploy-staging`, under the task's lease.
pub fn merge_gate_retest(
    store: &mut Store,
    config: &Config,
    ui: Ui,
    req: &AdvanceRequest,
) -> Result<AdvanceReport> {
    let snap = load_task(&store.read(), &req.task_id)?;
    if let Some(event_id) = &req.event_id {
        if let Some(event) = store.read().event(event_id)? {
            return Ok(duplicate_report(&snap, event));
        }
    }
    let edge = GateKind::Merge.edge();
    if snap.stage != edge.from {
        // The edge `deploy-staging → deploy` is in the table: a task elsewhere is a lost CAS.
        store.write(|db| db.count("transition_lease.cas_lost", 1))?;
        return Err(failure(
            Exit::LostRace,
            format!(
                "task `{}` is at `{}` (version {}), not `{}`: the merge gate guards `{edge}`",
                snap.id, snap.stage, snap.version, edge.from
            ),
        ));
    }
    if snap.is_held() {
        return Err(held(&snap));
    }
    check_due(&store.read(), &snap, edge, req.force)?;
    let me = Claimant::current(format!("{} (orch merge-gate retest)", req.actor));
    let lease = match take_lease(store, config, &snap, &me, req.event_id.as_deref())? {
        Ok(lease) => lease,
        Err(event) => return Ok(duplicate_report(&snap, event)),
    };
    run_edge(
        store,
        config,
        ui,
        req,
        snap,
        edge,
        me,
        lease,
        EdgeGoal::MergeGateOnly,
    )
}

/// What a rollback did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Rollback {
    /// Moved to `development`; a developer retry was spent.
    RolledBack { version: i64, dev_retries: i64 },
    /// Developer retries were spent: the task is on HOLD on the stage the gate guarded.
    Held { reason: String },
    /// The task was not where the caller saw it (or its lease was gone): nothing was written but
    /// the `cas_lost` counter.
    Lost,
}

/// The expected state a gate saw when it took the lease.
#[derive(Clone, Copy, Debug)]
pub struct Seen<'a> {
    pub task_id: &'a str,
    pub repo: &'a str,
    /// The stage the gate guarded.
    pub stage: Stage,
    pub version: i64,
    pub lease_token: Option<i64>,
}

/// Rolls a task back to `development`, in the caller's write transaction, through the CAS on the
/// stage the gate guarded. The red after `ORCH_MAX_DEV_RETRIES` rollbacks puts the task on HOLD on
/// that stage instead. Under the kill-switch, the same rollback is the plain write.
pub fn rollback_stage_cas(
    db: &Db,
    config: &Config,
    seen: Seen,
    actor: &str,
    reason: &str,
) -> Result<Rollback> {
    let now = host::wall_ms();
    let guarded = config.lease_applies(seen.repo);
    let Some(task) = db.task(seen.task_id)? else {
        return Ok(Rollback::Lost);
    };
    let expected = crate::store::Expected {
        task_id: seen.task_id,
        stage: seen.stage,
        version: seen.version,
        lease_token: seen.lease_token,
    };
    if task.dev_retries >= i64::from(config.max_dev_retries) {
        let hold_reason = format!(
            "developer retries spent ({} of {}): {reason}",
            task.dev_retries, config.max_dev_retries
        );
        let set = db.set_hold(
            guarded.then_some(expected),
            seen.task_id,
            &hold_reason,
            actor,
            now,
        )?;
        if !set {
            db.count("transition_lease.cas_lost", 1)?;
            return Ok(Rollback::Lost);
        }
        db.count("holds.raised", 1)?;
        return Ok(Rollback::Held {
            reason: hold_reason,
        });
    }
    let (from, version) = if guarded {
        match db.cas_stage(expected, Stage::Development, None, 1, now)? {
            Some(version) => (seen.stage, version),
            None => {
                db.count("transition_lease.cas_lost", 1)?;
                return Ok(Rollback::Lost);
            }
        }
    } else {
        match db.plain_write_stage(seen.task_id, Stage::Development, None, 1, now)? {
            Some(written) => written,
            None => return Ok(Rollback::Lost),
        }
    };
    db.insert_transition(
        seen.task_id,
        Some(from),
        Stage::Development,
        version,
        actor,
        Some(reason),
        seen.lease_token,
        now,
    )?;
    db.count("transitions.total", 1)?;
    db.count("transitions.rollback", 1)?;
    Ok(Rollback::RolledBack {
        version,
        dev_retries: task.dev_retries + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewTask;

    fn setup(stage: Stage) -> (tempfile::TempDir, Store, Config) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("orch.db")).unwrap();
        store
            .write(|db| {
                db.insert_task(
                    &NewTask {
                        id: "R".into(),
                        repo: "app".into(),
                        branch: "feat".into(),
                        worktree: None,
                        target: "main".into(),
                        remote: None,
                        stage,
                    },
                    1,
                )
            })
            .unwrap();
        let config = Config::load(&|_| None, Some(&dir.path().join("orch.db")));
        (dir, store, config)
    }

    fn seen(version: i64) -> Seen<'static> {
        Seen {
            task_id: "R",
            repo: "app",
            stage: Stage::DeployStaging,
            version,
            lease_token: None,
        }
    }

    #[test]
    fn rollbacks_spend_retries_then_the_next_red_holds_on_the_guarded_stage() {
        let (_dir, mut store, config) = setup(Stage::DeployStaging);
        let mut version = 1;
        for retry in 1..=3 {
            let result = store
                .write(|db| rollback_stage_cas(db, &config, seen(version), "gate", "merge red"))
                .unwrap();
            version += 1;
            assert_eq!(
                result,
                Rollback::RolledBack {
                    version,
                    dev_retries: retry
                }
            );
            // The developer fixes it and the task comes back to the guarded stage.
            store
                .write(|db| {
                    let t = db.task("R")?.unwrap();
                    db.plain_write_stage("R", Stage::DeployStaging, None, 0, 2)?;
                    Ok(t)
                })
                .unwrap();
            version += 1;
        }
        let result = store
            .write(|db| rollback_stage_cas(db, &config, seen(version), "gate", "merge red"))
            .unwrap();
        assert!(matches!(result, Rollback::Held { .. }), "{result:?}");
        let task = store.read().task("R").unwrap().unwrap();
        assert_eq!((task.stage, task.version), (Stage::DeployStaging, version));
        assert!(task
            .hold_reason
            .unwrap()
            .contains("developer retries spent (3 of 3)"));
    }

    #[test]
    fn a_rollback_that_finds_the_task_moved_on_writes_nothing_but_the_counter() {
        let (_dir, mut store, config) = setup(Stage::Done);
        let result = store
            .write(|db| rollback_stage_cas(db, &config, seen(1), "gate", "late red"))
            .unwrap();
        assert_eq!(result, Rollback::Lost);
        let db = store.read();
        let task = db.task("R").unwrap().unwrap();
        assert_eq!((task.stage, task.version), (Stage::Done, 1));
        assert!(db.transitions("R").unwrap().is_empty());
        assert_eq!(db.counter("transition_lease.cas_lost").unwrap(), 1);
    }

    #[test]
    fn under_the_kill_switch_a_rollback_is_the_plain_write() {
        let (dir, mut store, _) = setup(Stage::Done);
        let off = |k: &str| (k == "ORCH_TRANSITION_LEASE_ENABLED").then(|| "false".to_string());
        let config = Config::load(&off, Some(&dir.path().join("orch.db")));
        let result = store
            .write(|db| rollback_stage_cas(db, &config, seen(1), "gate", "late red"))
            .unwrap();
        assert!(matches!(result, Rollback::RolledBack { .. }));
        let t = &store.read().transitions("R").unwrap()[0];
        assert_eq!(
            (t.from.as_deref(), t.to.as_str()),
            (Some("done"), "development")
        );
    }
}
