//! Finishing a dead run — the mechanism shared by lease take-over, merge-lock take-over and the
//! reaper: kill the run's process group under the signalling rule, then close its `runs` row
//! first-wins. It returns what it found and routes nothing; the caller's routing (the policy in
//! `crate::routing`) runs inside the same transaction that closed the row.
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

use crate::counter::Counter;
use crate::host::{self, Locality};
use crate::store::{Db, RunRow, Store};

/// How long to wait for a killed group to be shown empty.
const EMPTY_DEADLINE: Duration = Duration::from_secs(5);

/// What became of one run's process group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum GroupState {
    /// No process of the group is alive (after a SIGKILL, or it was already gone).
    Empty,
    /// The group could not be shown empty: processes survive, or it cannot be checked from here.
    Unknown,
}

/// Whether a recorded run's process group may be signalled from here, under the signalling rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Signalling {
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
pub(crate) fn signalling(run: &RunRow) -> Signalling {
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

/// Kills a recorded run's process group under the signalling rule and waits for it to be empty;
/// also names the processes that were alive in the group when it was killed.
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
pub(crate) enum Elsewhere {
    /// Leave it open: its owner could not be judged dead from here.
    Leave,
    /// Its owner was judged dead because its TTL passed: finish the row without signalling.
    FinishUnsignalled,
}

/// What finishing a dead run came to.
#[derive(Debug)]
pub(crate) enum Finish<R> {
    /// This process closed the row; `routed` is what the caller's routing did in that same
    /// transaction.
    Finished { killed: Vec<i32>, routed: R },
    /// The group could not be shown empty: the row is left open for a later attempt.
    Survivors,
    /// Someone else closed the row first: they route it, nothing was written here.
    FinishedElsewhere,
}

/// Finishes one run whose owner is dead: kills its group (unless it is recorded elsewhere and
/// `elsewhere` says to finish it unsignalled), then, in one transaction, closes the row if nobody
/// has and calls `route` on the closed row. A run recorded elsewhere under `Elsewhere::Leave` is
/// never signalled, so it is left open as `Survivors`.
pub(crate) fn finish_run<R>(
    store: &mut Store,
    run: &RunRow,
    why: &str,
    elsewhere: Elsewhere,
    route: impl FnOnce(&Db, i64) -> Result<R>,
) -> Result<Finish<R>> {
    let unsignalled = elsewhere == Elsewhere::FinishUnsignalled
        && run.owner_id().locality() == Locality::Elsewhere;
    let killed = if unsignalled {
        Vec::new()
    } else {
        match kill_group(run) {
            (GroupState::Empty, killed) => killed,
            (GroupState::Unknown, _) => return Ok(Finish::Survivors),
        }
    };
    crate::fault::point("reap.before_finish");
    store.write(|db| {
        let now = host::wall_ms();
        if !db.reap_run(run.id, why, now)? {
            return Ok(Finish::FinishedElsewhere);
        }
        db.count(Counter::RunsReaped, 1)?;
        let routed = route(db, now)?;
        Ok(Finish::Finished {
            killed: killed.clone(),
            routed,
        })
    })
}
