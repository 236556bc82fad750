//! The one routine that finishes dead runs, shared by lease take-over, merge-lock take-over and
//! the reaper.
//!
//! Whoever finishes a `runs` row (`UPDATE … WHERE finished_at IS NULL`) routes it; anyone else
//! writes nothing, so a reaper and a live owner, or two reapers, never route the same run twice.
//! A pgid is signalled only if its leader (pid = pgid) still has the recorded start time, or no
//! such process exists but a member of the group does (Linux never reuses a pid that is still a
//! process-group id). A run from an earlier boot is finished without signalling; a run from
//! another host or pid namespace is never signalled from here, and is finished (unsignalled) only
//! once the caller has judged its owner dead by TTL (`Elsewhere::FinishUnsignalled`).

use std::time::{Duration, Instant};

use anyhow::Result;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{getpgrp, Pid};
use serde::Serialize;

use crate::config::Config;
use crate::gates::GateKind;
use crate::host::{self, Locality};
use crate::lease::{self, Acquire, Claimant};
use crate::requeue;
use crate::store::{Expected, RunRow, Store};

/// How long to wait for a killed group to be shown empty.
const EMPTY_DEADLINE: Duration = Duration::from_secs(5);

/// What became of one run's process group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupState {
    /// No process of the group is alive (after a SIGKILL, or it was already gone).
    Empty,
    /// The group could not be shown empty: processes survive, or it cannot be checked from here.
    Unknown,
}

/// Whether a recorded run's process group may be signalled from here, under the signalling rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signalling {
    /// A run of an earlier boot of this host: nothing of it survives, nothing is signalled.
    EarlierBoot,
    /// Another host or pid namespace: nothing recorded there names a process here.
    Elsewhere,
    /// The pgid is ≤ 1 or orch's own group: never signalled.
    Guarded,
    /// The recorded group is gone: its leader's pid belongs to another process now, or no process
    /// is left in the group.
    Gone,
    /// The group is still there and may be signalled; these live processes are in it.
    Alive(Vec<i32>),
}

/// Judges a run's group under the signalling rule, without signalling anything (`--dry-run`
/// reports this).
pub fn signalling(run: &RunRow) -> Signalling {
    match host::locality(&run.host, &run.boot_id, &run.pid_ns) {
        Locality::EarlierBoot => return Signalling::EarlierBoot,
        Locality::Elsewhere => return Signalling::Elsewhere,
        Locality::Here => {}
    }
    let pgid = run.leader_pid;
    if pgid <= 1 || pgid == getpgrp().as_raw() {
        return Signalling::Guarded;
    }
    match host::proc_stat(pgid) {
        Some(leader) if leader.start_time == run.leader_pid_start => {
            Signalling::Alive(host::group_members(pgid))
        }
        // The pid belongs to another process now: the recorded group is gone for good.
        Some(_) => Signalling::Gone,
        // Linux never reuses a pid that is still a process-group id, so members are the run's.
        None => match host::group_members(pgid) {
            members if members.is_empty() => Signalling::Gone,
            members => Signalling::Alive(members),
        },
    }
}

/// Kills a recorded run's process group under the signalling rule and waits for it to be empty.
pub fn kill_run_group(run: &RunRow) -> GroupState {
    kill_group(run).0
}

/// `kill_run_group`, also naming the processes that were alive in the group when it was killed.
fn kill_group(run: &RunRow) -> (GroupState, Vec<i32>) {
    let members = match signalling(run) {
        Signalling::EarlierBoot | Signalling::Gone => return (GroupState::Empty, Vec::new()),
        Signalling::Elsewhere | Signalling::Guarded => return (GroupState::Unknown, Vec::new()),
        Signalling::Alive(members) => members,
    };
    let pgid = run.leader_pid;
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    let start = Instant::now();
    while start.elapsed() < EMPTY_DEADLINE {
        if host::group_members(pgid).is_empty() {
            return (GroupState::Empty, members);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (GroupState::Unknown, members)
}

/// What to do with a run recorded on another host or pid namespace, which nothing here may
/// signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elsewhere {
    /// Leave it open: its owner could not be judged dead from here.
    Leave,
    /// Its owner was judged dead because its TTL passed: finish the row without signalling.
    FinishUnsignalled,
}

/// One run finished here.
#[derive(Clone, Debug, Serialize)]
pub struct Reaped {
    pub run_id: i64,
    pub task_id: Option<String>,
    pub gate: String,
    pub why: String,
    /// What routing did: `infra-requeued`, `exhausted`, `deferred`, or `none`.
    pub routed: String,
    /// The processes that were alive in the run's group when it was killed (none: nothing was
    /// signalled).
    pub killed: Vec<i32>,
    #[serde(skip)]
    pub alert_key: Option<String>,
}

/// Finishes one run whose owner is dead: kills its group, then, if this process is the one that
/// finishes the row, routes it (a gate run is re-queued as infra, never rolled back). Returns
/// `None` when the group could not be shown empty (the row is left for later) or someone else
/// finished the row first. A run recorded elsewhere is left open.
pub fn finish_dead_run(
    store: &mut Store,
    config: &Config,
    run: &RunRow,
    why: &str,
) -> Result<Option<Reaped>> {
    finish_run_reaped(store, config, run, why, Elsewhere::Leave, None)
}

/// `finish_dead_run`, saying what to do with a run recorded on another host or pid namespace,
/// and naming a counter to add 1 to in the transaction that finishes the row (the reaper's own).
pub fn finish_run_reaped(
    store: &mut Store,
    config: &Config,
    run: &RunRow,
    why: &str,
    elsewhere: Elsewhere,
    counter: Option<&str>,
) -> Result<Option<Reaped>> {
    let unsignalled = elsewhere == Elsewhere::FinishUnsignalled
        && host::locality(&run.host, &run.boot_id, &run.pid_ns) == Locality::Elsewhere;
    let killed = if unsignalled {
        Vec::new()
    } else {
        match kill_group(run) {
            (GroupState::Empty, killed) => killed,
            (GroupState::Unknown, _) => return Ok(None),
        }
    };
    let me = Claimant::current("orch reap");
    crate::fault::point("reap.before_finish");
    let reaped = store.write(|db| {
        let now = host::wall_ms();
        if !db.reap_run(run.id, why, now)? {
            return Ok(None);
        }
        db.count("runs.reaped", 1)?;
        if let Some(counter) = counter {
            db.count(counter, 1)?;
        }
        let mut result = Reaped {
            run_id: run.id,
            task_id: run.task_id.clone(),
            gate: run.gate.clone(),
            why: why.to_string(),
            routed: "none".into(),
            killed: killed.clone(),
            alert_key: None,
        };
        let Some(task_id) = &run.task_id else {
            return Ok(Some(result));
        };
        let Some(edge) = GateKind::from_name(&run.gate).map(GateKind::edge) else {
            return Ok(Some(result));
        };
        let edge_name = requeue::edge_name(edge);
        db.insert_gate_event(
            task_id,
            &edge_name,
            &run.gate,
            "reaped",
            Some(why),
            Some(run.id),
            now,
        )?;
        let Some(task) = db.task(task_id)? else {
            return Ok(Some(result));
        };
        if task.stage != edge.from || task.is_held() {
            return Ok(Some(result));
        }
        // The reaper's task writes take the lease, for this transaction only.
        let held = match lease::acquire_for_reclaim(db, task_id, &me, config.lease_ttl)? {
            Acquire::Held(held) => held,
            // A live actor owns the task now: it decides; the run is finished, nothing routed.
            Acquire::Busy(_) | Acquire::Reclaim(_) => return Ok(Some(result)),
        };
        // Spend the budget the run's owner was spending (recorded on the run), else the pending
        // re-queue's, else the edge's latest.
        let recorded = run
            .budget_tip
            .clone()
            .map(|tip| (tip, run.published_tip.clone()));
        let budget_key = match recorded.or(db
            .requeue(task_id)?
            .and_then(|r| r.budget_tip.map(|t| (t, r.published_tip))))
        {
            Some((tip, published)) => requeue::BudgetKey { tip, published },
            None => requeue::BudgetKey {
                tip: db
                    .latest_budget_tip(task_id, &edge_name)?
                    .unwrap_or_else(|| "unknown".into()),
                published: None,
            },
        };
        let expected = Expected {
            task_id,
            stage: task.stage,
            version: task.version,
            lease_token: Some(held.token),
        };
        let routed = requeue::route_infra(
            db,
            config,
            &task,
            expected,
            edge,
            &run.gate,
            &budget_key,
            &format!("run {} reaped: {why}", run.id),
            "orch reap",
        )?;
        held.release_in(db)?;
        result.routed = routed.outcome.into();
        result.alert_key = routed.alert_key;
        Ok(Some(result))
    })?;
    if let Some(key) = reaped.as_ref().and_then(|r| r.alert_key.as_deref()) {
        crate::alerts::deliver_key(store, config, key)?;
    }
    Ok(reaped)
}

/// Finishes every unfinished run of a dead holder (lease or merge lock) before its lease or lock
/// is taken over. Returns `false` when a run's group could not be shown empty: the caller then
/// backs off instead of starting a second suite beside a surviving one.
#[expect(
    clippy::too_many_arguments,
    reason = "a holder's identity, spelled out"
)]
pub fn finish_runs_of_dead_holder(
    store: &mut Store,
    config: &Config,
    pid: i32,
    pid_start: u64,
    host_name: &str,
    boot: &str,
    ns: &str,
    why: &str,
) -> Result<bool> {
    let runs = store
        .read()
        .unfinished_runs_of(pid, pid_start, host_name, boot, ns)?;
    let mut all_done = true;
    for run in &runs {
        // The caller judged the holder dead; for a holder elsewhere that means its TTL passed.
        let finished =
            finish_run_reaped(store, config, run, why, Elsewhere::FinishUnsignalled, None)?;
        if finished.is_none() {
            // Someone else may have finished it; only a row still open is a survivor.
            all_done &= store
                .read()
                .run_row(run.id)?
                .is_some_and(|r| r.finished_at.is_some());
        }
    }
    Ok(all_done)
}
