//! The one routine that finishes dead runs, shared by lease take-over, merge-lock take-over and
//! the reaper.
//!
//! Whoever finishes a `runs` row (`UPDATE … WHERE finished_at IS NULL`) routes it; anyone else
//! writes nothing, so a reaper and a live owner, or two reapers, never route the same run twice.
//! A pgid is signalled only if its leader (pid = pgid) still has the recorded start time, or no
//! such process exists but a member of the group does (Linux never reuses a pid that is still a
//! process-group id). A run from an earlier boot is finished without signalling; a run from
//! another host or pid namespace is never signalled from here.

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

/// Kills a recorded run's process group under the signalling rule and waits for it to be empty.
pub fn kill_run_group(run: &RunRow) -> GroupState {
    match host::locality(&run.host, &run.boot_id, &run.pid_ns) {
        Locality::EarlierBoot => return GroupState::Empty,
        Locality::Elsewhere => return GroupState::Unknown,
        Locality::Here => {}
    }
    let pgid = run.leader_pid;
    if pgid <= 1 || pgid == getpgrp().as_raw() {
        return GroupState::Unknown;
    }
    let may_signal = match host::proc_stat(pgid) {
        Some(leader) if leader.start_time == run.leader_pid_start => true,
        // The pid belongs to another process now: the recorded group is gone for good.
        Some(_) => false,
        None => !host::group_members(pgid).is_empty(),
    };
    if !may_signal {
        return GroupState::Empty;
    }
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    let start = Instant::now();
    while start.elapsed() < EMPTY_DEADLINE {
        if host::group_members(pgid).is_empty() {
            return GroupState::Empty;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    GroupState::Unknown
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
    #[serde(skip)]
    pub alert_key: Option<String>,
}

/// Finishes one run whose owner is dead: kills its group, then, if this process is the one that
/// finishes the row, routes it (a gate run is re-queued as infra, never rolled back). Returns
/// `None` when the group could not be shown empty (the row is left for later) or someone else
/// finished the row first.
pub fn finish_dead_run(
    store: &mut Store,
    config: &Config,
    run: &RunRow,
    why: &str,
) -> Result<Option<Reaped>> {
    if kill_run_group(run) != GroupState::Empty {
        return Ok(None);
    }
    let me = Claimant::current("orch reap");
    let reaped = store.write(|db| {
        let now = host::wall_ms();
        if !db.reap_run(run.id, why, now)? {
            return Ok(None);
        }
        db.count("runs.reaped", 1)?;
        let mut result = Reaped {
            run_id: run.id,
            task_id: run.task_id.clone(),
            gate: run.gate.clone(),
            why: why.to_string(),
            routed: "none".into(),
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
        let base_tip = db
            .latest_budget_tip(task_id, &edge_name)?
            .unwrap_or_else(|| "unknown".into());
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
            &base_tip,
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
        if finish_dead_run(store, config, run, why)?.is_none() {
            // Someone else may have finished it; only a row still open is a survivor.
            all_done &= store
                .read()
                .run_row(run.id)?
                .is_some_and(|r| r.finished_at.is_some());
        }
    }
    Ok(all_done)
}
