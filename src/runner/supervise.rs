//! One run from fork to an empty tree: admission and the `runs` row, the wait (deadline, signals
//! to orch, heartbeat), the kill sequence, the sweep, and the outcome.
//!
//! Invariant: every path that forked a leader ends in `teardown` — SIGKILL to what is left of the
//! group, the leader reaped, escaped descendants swept — before the result is built or the row is
//! finished; the only exception is a leader abandoned before go, which is killed and reaped on
//! the spot and never ran.

use std::collections::HashSet;
use std::fs::File;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::libc;
use nix::sys::signal::Signal;

use super::evidence::{Evidence, Sampler};
use super::outcome::{from_exit_code, from_foreign_signal, RunOutcome, RunResult};
use super::output::Pumps;
use super::signals::{send, SignalScope, Target};
use super::spawn::{self, Prepared, StartFailure};
use super::spec::{RunSpec, Track};
use super::tree::{self, End, ProcessId};
use crate::host;
use crate::store::{NewRun, Store};

/// The longest the wait sleeps without looking: the group-empty poll during a grace, and the
/// fallback when SIGCHLD was taken by another thread.
const SLICE: Duration = Duration::from_millis(50);
/// How long the output pipes are drained once the tree is gone (grandchildren may hold them).
const DRAIN: Duration = Duration::from_millis(500);
/// How long SIGKILLed processes get to die before they are reported as survivors (only a process
/// stuck in the kernel takes longer).
const KILL_BOUND: Duration = Duration::from_secs(10);

/// A caller's heartbeat: called every interval during the wait with the store; `false` means the
/// caller lost its lease.
pub type Heartbeat<'a> = (Duration, &'a mut dyn FnMut(&mut Store) -> bool);

/// Runs `spec` to completion and returns how it ended. No process of the command's tree is left
/// alive when this returns (tree kill enabled; `result.survivors` names any the kernel would not
/// let die).
///
/// A tracked run (`spec.track`) needs `store`: its `runs` row is committed before the command
/// execs, and finished at the end unless a reaper finished it first (`finished_by_me`). With
/// `heartbeat`, the callback runs every interval; when it returns `false` the tree is killed at
/// once and the result is `Other { reason: "lease lost …" }` with `aborted` set.
///
/// Process-wide effects while the run is alive: orch is a child subreaper, SIGCHLD is at its
/// default disposition, and every child of orch that appears during the run counts as part of the
/// tree and is killed at the end — do not start other processes from other threads meanwhile.
/// Errors (the log file cannot be created, fork fails, the database refuses the row) come back
/// with the tree already dead.
pub fn run(
    store: Option<&mut Store>,
    spec: &RunSpec,
    heartbeat: Option<Heartbeat<'_>>,
) -> Result<RunResult> {
    let mut store = store;
    if spec.track.is_some() && store.is_none() {
        bail!("a tracked run needs the database (hint: pass the open store to `runner::run`)");
    }
    let prepared = Arc::new(Prepared::new(spec)?);
    let log = spec
        .log
        .as_ref()
        .map(|path| {
            File::create(path).with_context(|| {
                format!(
                    "cannot create the log file `{}` (hint: check that its directory exists and is writable)",
                    path.display()
                )
            })
        })
        .transpose()?;

    let signals = SignalScope::enter(spec.tree_kill)?;
    // Children orch already had are not part of this run's tree; the sweep leaves them alone.
    let spared: HashSet<ProcessId> = if spec.tree_kill && tree::has_children() {
        tree::children()
            .into_iter()
            .map(|c| (c.pid, c.start_time))
            .collect()
    } else {
        HashSet::new()
    };
    let protection = prepared.protection.as_ref().map(|p| p.to_string());
    let mut leader = spawn::spawn_gated(prepared)?;
    let pid = leader.pid;
    let mut unwinding = UnwindGuard {
        pid,
        tree_kill: spec.tree_kill,
        spared: spared.clone(),
        armed: true,
    };

    let run_id = match (&spec.track, store.as_deref_mut()) {
        (Some(track), Some(db)) => match admit(db, track, spec, protection.clone(), pid) {
            Ok(Some(id)) => Some(id),
            Ok(None) => {
                leader.abandon();
                return Ok(RunResult::lock_busy());
            }
            Err(err) => {
                leader.abandon();
                return Err(err.context("recording the run before it starts"));
            }
        },
        _ => None,
    };

    if run_id.is_some() {
        crate::fault::point("runner.after_run_row");
    }
    let (stdout, stderr) = (leader.stdout.take(), leader.stderr.take());
    let pumps = match (stdout, stderr) {
        (Some(out), Some(err)) => Some(Pumps::start(
            out,
            err,
            spec.echo,
            log,
            spec.output_cap,
            super::output::Progress::new(spec),
        )),
        _ => None,
    };
    let started = Instant::now();
    let start_failure = leader.go();
    if run_id.is_some() && start_failure.is_none() {
        crate::fault::point("runner.after_spawn");
    }
    let watched = match start_failure {
        // It never exec'd and has exited; there is no tree.
        Some(_) => Watched {
            end: tree::reap(pid, KILL_BOUND),
            ender: None,
            lease_lost: false,
        },
        None => watch(&signals, spec, pid, started, &spared, &mut store, heartbeat),
    };
    let torn = if start_failure.is_some() {
        TornDown::default()
    } else {
        teardown(spec, pid, &watched, &spared)
    };
    unwinding.armed = false;
    // The status peeked before reaping is the leader's own; the reaped one can only repeat it.
    let end = watched.end.or(torn.end);
    let output = pumps.map(|p| p.finish(DRAIN)).unwrap_or_default();
    let wall = started.elapsed();

    if matches!(watched.ender, Some(Ender::Cancelled(_))) {
        // Further stop signals were answered with SIGKILL already; swallow them so that
        // restoring the mask does not kill orch before it reports the cancellation.
        while signals.take_pending().is_some() {}
    }

    let outcome = decide(spec, &watched, start_failure, end);
    let (exit_status, signal) = match end {
        Some(End::Code(code)) if start_failure.is_none() => (Some(code), None),
        Some(End::Signal(sig)) => (None, Some(sig)),
        _ => (None, None),
    };
    let finished_by_me = match (run_id, store) {
        (Some(id), Some(db)) => finish(db, id, &outcome, exit_status, &output)?,
        _ => false,
    };
    drop(signals);
    Ok(RunResult {
        outcome,
        exit_status,
        signal,
        output,
        run_id,
        wall,
        aborted: watched.lease_lost,
        finished_by_me,
        start_errno: start_failure.map(|f| f.errno),
        killed_in_group: torn.killed_in_group,
        killed_escaped: torn.killed_escaped,
        survivors: torn.survivors,
    })
}

/// A panic between the spawn and the teardown unwinds through this: it kills the group, reaps
/// the leader and sweeps escaped descendants, so a panic still ends the run's tree (the row is
/// left for the reaper: its owner is dead once the process exits).
struct UnwindGuard {
    pid: i32,
    tree_kill: bool,
    spared: HashSet<ProcessId>,
    armed: bool,
}

impl Drop for UnwindGuard {
    fn drop(&mut self) {
        if !self.armed || !std::thread::panicking() {
            return;
        }
        if self.tree_kill {
            let _ = send(Target::Group(self.pid), Signal::SIGKILL);
            let _ = tree::reap(self.pid, KILL_BOUND);
            let _ = tree::sweep(self.pid, &self.spared, KILL_BOUND);
        } else {
            let _ = send(Target::Process(self.pid), Signal::SIGKILL);
            let _ = tree::reap(self.pid, KILL_BOUND);
        }
    }
}

/// Inserts the run's row if the host has room; `None` when it is full (lock-busy). The count and
/// the insert share one `BEGIN IMMEDIATE`, so two runs cannot both take the last place.
fn admit(
    store: &mut Store,
    track: &Track,
    spec: &RunSpec,
    sandbox: Option<String>,
    pid: i32,
) -> Result<Option<i64>> {
    let run = NewRun {
        task_id: track.task_id.clone(),
        gate: track.gate.clone(),
        command: spec.display(),
        leader_pid: pid,
        leader_pid_start: host::proc_stat(pid).map(|s| s.start_time).unwrap_or(0),
        timeout_ms: spec
            .timeout
            .map(|t| i64::try_from(t.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0),
        grace_ms: i64::try_from(spec.grace.as_millis()).unwrap_or(i64::MAX),
        budget_tip: track.budget_tip.clone(),
        published_tip: track.published_tip.clone(),
        sandbox,
    };
    store.write(|db| {
        if track.max_concurrent > 0 {
            let alive = db
                .unfinished_runs_here()?
                .iter()
                .filter(|r| host::is_alive(r.owner_pid, r.owner_pid_start))
                .count();
            if alive >= track.max_concurrent as usize {
                return Ok(None);
            }
        }
        db.insert_run(&run).map(Some)
    })
}

/// Finishes the row unless a reaper did first; the outcome's details go to `evidence` as JSON.
fn finish(
    store: &mut Store,
    id: i64,
    outcome: &RunOutcome,
    exit_status: Option<i32>,
    output: &str,
) -> Result<bool> {
    let evidence = match outcome {
        RunOutcome::Timeout { .. } | RunOutcome::Other { .. } | RunOutcome::Cancelled { .. } => {
            Some(serde_json::to_string(outcome)?)
        }
        _ => None,
    };
    store
        .write_retrying(|db| {
            db.finish_run(
                id,
                outcome.name(),
                exit_status.map(i64::from),
                output,
                evidence.as_deref(),
            )
        })
        .context("finishing the run's row")
}

/// Who ended the run, when it was not the command itself.
#[derive(Debug)]
enum Ender {
    Timeout(Evidence),
    Cancelled(i32),
}

/// What the wait saw.
#[derive(Debug)]
struct Watched {
    /// The leader's end, read without reaping; `None` if it would not die.
    end: Option<End>,
    ender: Option<Ender>,
    lease_lost: bool,
}

/// Waits for the leader to end, acting on the deadline, orch's own signals and the heartbeat.
fn watch(
    signals: &SignalScope,
    spec: &RunSpec,
    pid: i32,
    started: Instant,
    spared: &HashSet<ProcessId>,
    store: &mut Option<&mut Store>,
    heartbeat: Option<Heartbeat<'_>>,
) -> Watched {
    let tree_kill = spec.tree_kill;
    // With tree kill the group is the target; without, the old behaviour: the direct child only.
    let target = if tree_kill {
        Target::Group(pid)
    } else {
        Target::Process(pid)
    };
    let deadline = spec.timeout.map(|t| started + t);
    let mut beat = heartbeat.map(|(every, f)| {
        let every = every.max(Duration::from_millis(10));
        (every, f, started + every)
    });
    let mut ender: Option<Ender> = None;
    let mut lease_lost = false;
    let mut grace_ends: Option<Instant> = None;
    let mut killed_at: Option<Instant> = None;
    let mut stop_signals = 0;
    // Only a run with a deadline can need the evidence: sample its processes while it lives.
    let mut sampler = deadline.map(|_| Sampler::new(started));
    // SIGKILL once; what it killed is counted by the sweep.
    let kill = |killed_at: &mut Option<Instant>| {
        if killed_at.is_none() {
            let _ = send(target, Signal::SIGKILL);
            *killed_at = Some(Instant::now());
        }
    };
    loop {
        let now = Instant::now();
        if let Some(end) = tree::peek_exit(pid) {
            // Nobody else ended the run: the leader did, and the rest of the tree dies in
            // teardown. Otherwise, after orch's first signal, the group gets its grace to finish
            // (polled every SLICE).
            let settled = (ender.is_none() && !lease_lost)
                || !tree_kill
                || killed_at.is_some()
                || tree::group_members(pid).is_empty();
            if settled {
                return Watched {
                    end: Some(end),
                    ender,
                    lease_lost,
                };
            }
        }
        if killed_at.is_some_and(|k| now.duration_since(k) >= KILL_BOUND) {
            return Watched {
                end: None,
                ender,
                lease_lost,
            };
        }
        if grace_ends.is_some_and(|g| now >= g) {
            kill(&mut killed_at);
        }
        if ender.is_none() && !lease_lost && deadline.is_some_and(|d| now >= d) {
            // Measured before any signal: what the group managed in the time it had.
            let cpu = if tree_kill {
                tree::group_cpu_ticks(pid)
            } else {
                host::cpu_ticks_with_reaped_children(pid).unwrap_or(0)
            };
            let mut last = sampler.take().unwrap_or_else(|| Sampler::new(now));
            last.sample(pid, spared);
            ender = Some(Ender::Timeout(last.evidence(cpu, now - started)));
            if tree_kill {
                let _ = send(target, spec.kill_signal.signal());
                // A stopped process never acts on the signal it was sent.
                let _ = send(target, Signal::SIGCONT);
                grace_ends = Some(now + spec.grace);
            } else {
                kill(&mut killed_at);
            }
            continue;
        }
        if let (Some(sampler), None) = (sampler.as_mut(), &ender) {
            sampler.sample_if_due(now, pid, spared);
        }
        if let Some((every, f, next)) = beat.as_mut() {
            if now >= *next {
                *next = now + *every;
                if let Some(db) = store.as_deref_mut() {
                    if !f(db) {
                        lease_lost = true;
                        kill(&mut killed_at);
                    }
                }
            }
        }
        let mut wake = now + SLICE;
        if ender.is_none() {
            if let Some(d) = deadline {
                wake = wake.min(d);
            }
        }
        if let (Some(g), None) = (grace_ends, killed_at) {
            wake = wake.min(g);
        }
        if let Some((_, _, next)) = &beat {
            wake = wake.min(*next);
        }
        match signals.wait(wake.saturating_duration_since(now)) {
            None => {}
            // Orphans re-parented to orch that died on their own; only before orch's SIGKILL
            // (what that kills is left for the sweep to count), and not when it was the leader
            // (the next look ends the wait).
            Some(libc::SIGCHLD)
                if tree_kill && killed_at.is_none() && tree::peek_exit(pid).is_none() =>
            {
                tree::reap_exited(pid, spared);
            }
            Some(libc::SIGCHLD) => {}
            Some(sig) => {
                stop_signals += 1;
                if stop_signals == 1 && ender.is_none() && !lease_lost {
                    // The new session cut the tree off from orch's terminal: pass the signal on.
                    ender = Some(Ender::Cancelled(sig));
                    if let Ok(forwarded) = Signal::try_from(sig) {
                        let _ = send(target, forwarded);
                    }
                    let _ = send(target, Signal::SIGCONT);
                    grace_ends = Some(Instant::now() + spec.grace);
                } else {
                    // A second stop signal (or one during a timeout's grace) escalates.
                    kill(&mut killed_at);
                }
            }
        }
    }
}

/// What teardown did.
#[derive(Debug, Default)]
struct TornDown {
    /// The leader's end as reaped.
    end: Option<End>,
    killed_in_group: u32,
    killed_escaped: u32,
    survivors: Vec<i32>,
}

/// Ends the tree on every path: SIGKILL to the group while the leader is unreaped (its pgid cannot
/// have been reused), reap the leader, then sweep what escaped the group.
fn teardown(spec: &RunSpec, pid: i32, watched: &Watched, spared: &HashSet<ProcessId>) -> TornDown {
    if !spec.tree_kill {
        // The old behaviour: only the direct child is waited for.
        let end = tree::reap(pid, KILL_BOUND);
        return TornDown {
            end,
            survivors: if end.is_none() { vec![pid] } else { Vec::new() },
            ..TornDown::default()
        };
    }
    let _ = send(Target::Group(pid), Signal::SIGKILL);
    let end = if watched.end.is_some() {
        tree::reap(pid, KILL_BOUND)
    } else {
        None
    };
    let swept = tree::sweep(pid, spared, KILL_BOUND);
    TornDown {
        end,
        killed_in_group: swept.killed_in_group,
        killed_escaped: swept.killed_escaped,
        survivors: swept.survivors,
    }
}

/// The outcome: decided by who ended the run, then by the exit status.
fn decide(
    spec: &RunSpec,
    watched: &Watched,
    start_failure: Option<StartFailure>,
    end: Option<End>,
) -> RunOutcome {
    if watched.lease_lost {
        return RunOutcome::Other {
            reason: "lease lost: the caller no longer holds the task's lease; the run was killed"
                .into(),
        };
    }
    if let Some(failure) = start_failure {
        return RunOutcome::Other {
            reason: failure.describe(&spec.argv[0], spec.cwd.as_deref()),
        };
    }
    match (&watched.ender, end) {
        (Some(Ender::Timeout(evidence)), _) => RunOutcome::Timeout {
            evidence: evidence.clone(),
        },
        (Some(Ender::Cancelled(signal)), _) => RunOutcome::Cancelled { signal: *signal },
        (None, Some(End::Code(code))) => from_exit_code(spec.exit_codes, code),
        (None, Some(End::Signal(signal))) => from_foreign_signal(signal),
        (None, Some(End::Unknown) | None) => RunOutcome::Other {
            reason: "the command's exit status was lost".into(),
        },
    }
}
