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
use crate::host;
use crate::lease::{self, Acquire, Claimant, HeldLease};
use crate::stages::{find_edge, next_stages, Edge, Stage};
use crate::store::{Db, EventRecord, LeaseRow, Store, Task};

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
    pub force: bool,
}

/// What one `orch advance` did; also the outcome stored with its event id.
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
    /// For a duplicate event: the outcome of its first delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_outcome: Option<serde_json::Value>,
    #[serde(skip)]
    pub exit: Exit,
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
    AdvanceReport {
        task_id: task.id.clone(),
        outcome: "duplicate".into(),
        exit_code: 0,
        from: task.stage,
        stage: task.stage,
        version: task.version,
        lease_token: None,
        guarded: true,
        message: format!(
            "event `{}` was already processed (exit {}); nothing done",
            event.event_id, event.exit_code
        ),
        first_outcome: Some(event.outcome),
        exit: Exit::Ok,
    }
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

/// Runs one transition. Returns the report for outcomes 0, 10, 11, 12; the others are failures.
pub fn advance(store: &mut Store, config: &Config, req: &AdvanceRequest) -> Result<AdvanceReport> {
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
    // The due-time check of a re-queued edge goes here (merge-gate work), bypassed by `--force`.
    let guarded = config.lease_applies(&snap.repo);
    if guarded && snap.stage != from {
        store.write(|db| db.count("transition_lease.cas_lost", 1))?;
        return Err(moved_on(&req.task_id, Some(snap), from));
    }
    let me = Claimant::current(format!("{} (orch advance)", req.actor));
    if edge_gates(edge).is_empty() {
        // No long step: the write transaction itself is the exclusion, so the lease is taken,
        // used by the CAS and released in that one transaction.
        return commit_transition(store, config, req, &snap, edge, &me, None);
    }
    let lease = match store.write(|db| {
        if let Some(event_id) = &req.event_id {
            if let Some(event) = db.event(event_id)? {
                return Ok(Err(event));
            }
        }
        lease::acquire(db, &snap.id, &me, config.lease_ttl).map(Ok)
    })? {
        Err(event) => return Ok(duplicate_report(&snap, event)),
        Ok(Acquire::Busy(row)) => return Err(busy(&row)),
        Ok(Acquire::Held(lease)) => lease,
    };
    // Gates of the edge run here, between the lease and the CAS; none exist yet.
    commit_transition(store, config, req, &snap, edge, &me, Some(&lease))
}

/// The gates guarding an edge, in the order they run. Empty for now: the gate work fills it.
pub fn edge_gates(_edge: Edge) -> &'static [&'static str] {
    &[]
}

enum Written {
    Report(AdvanceReport),
    Duplicate(EventRecord),
    Busy(LeaseRow),
    Lost(Option<Task>),
}

/// The write of a transition: CAS (or the plain write), history row, event id and counters, in
/// one transaction. With `held == None` the lease is taken and released inside it.
fn commit_transition(
    store: &mut Store,
    config: &Config,
    req: &AdvanceRequest,
    snap: &Task,
    edge: Edge,
    me: &Claimant,
    held: Option<&HeldLease>,
) -> Result<AdvanceReport> {
    let guarded = config.lease_applies(&snap.repo);
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
                },
            };
            let expected = crate::store::Expected {
                task_id: &snap.id,
                stage: edge.from,
                version: snap.version,
                lease_token: Some(lease.token),
            };
            let moved = db.cas_stage(expected, edge.to, req.validated_sha.as_deref(), 0, now)?;
            lease.release_in(db)?;
            match moved {
                Some(version) => (edge.from, version, Some(lease.token)),
                None => {
                    db.count("transition_lease.cas_lost", 1)?;
                    return Ok(Written::Lost(db.task(&snap.id)?));
                }
            }
        } else {
            match db.plain_write_stage(&snap.id, edge.to, req.validated_sha.as_deref(), 0, now)? {
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
        db.count("transitions.total", 1)?;
        let report = AdvanceReport {
            task_id: snap.id.clone(),
            outcome: "advanced".into(),
            exit_code: 0,
            from,
            stage: edge.to,
            version,
            lease_token: token,
            guarded,
            message: format!("{} {from} → {} (version {version})", snap.id, edge.to),
            first_outcome: None,
            exit: Exit::Ok,
        };
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
        Written::Report(report) => Ok(report),
        Written::Duplicate(event) => Ok(duplicate_report(snap, event)),
        Written::Busy(row) => Err(busy(&row)),
        Written::Lost(now) => Err(moved_on(&snap.id, now, edge.from)),
    }
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
