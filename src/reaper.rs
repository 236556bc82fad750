//! The reaper (`orch reap`, from cron): recovery from owners that died without cleaning up.
//!
//! orch runs once per event, so nothing in-process survives a `kill -9`, an OOM kill or a torn-down
//! CI runner. Each reap, in order: finishes the runs of dead owners (tier 1: same host, boot and
//! pid namespace, owner pid with its start time gone or a zombie) and runs older than
//! `ORCH_REAPER_MAX_RUNNING_S` (tier 2, owner alive or not; refused while the maximum is not above
//! every gate timeout + grace), through the one routine that finishes dead runs
//! (`reclaim::finish_run_reaped`: the signalling rule, finish-row-wins, a reaped gate run
//! re-queued as infra and never rolled back); a run from an earlier boot is finished and nothing
//! signalled; a run from another host or pid namespace waits for its owner's TTL, then is
//! finished unsignalled. Then it drops dead leases and merge locks, re-delivers undelivered
//! alerts, removes stale gate worktrees and prunes old rows, and records itself in
//! `reaper_runs`.
//!
//! Invariants: every drop compares-and-swaps against the row it judged and requires the holder's
//! runs to be finished (`Db::drop_dead_lease`, `Db::drop_dead_merge_lock`); only whoever finishes
//! a `runs` row routes it; a live holder is never usurped; `--dry-run` writes nothing at all and
//! signals nothing.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::counter::Counter;
use crate::git::{Mirror, Repo};
use crate::host::{self, Locality};
use crate::outcome::GateKind;
use crate::owner::{Claimant, Expiry, Holder};
use crate::reclaim::{self, Elsewhere, Signalling};
use crate::routing::{self, DeadRun};
use crate::store::{Db, LeaseRow, Pruned, RunRow, Store};

/// Alerts re-delivered per reap at most: a broken alert command must not stall the reap.
const ALERTS_PER_REAP: i64 = 20;
/// Rows deleted per table per reap at most, so that a write transaction stays short.
const PRUNE_BATCH: i64 = 10_000;
/// Beyond a run's own timeout and the kill grace, how long its owner has to kill the group, sweep
/// it and close the row before a reap by age may.
const RUN_FINISH_MARGIN: Duration = Duration::from_secs(10);
/// Tolerance when comparing a process's start with a worktree's creation time.
const START_TIME_MARGIN_MS: i64 = 10_000;

/// Why a run is reaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Tier {
    /// Tier 1: the owner, on this host, boot and pid namespace, is dead.
    OwnerDead,
    /// Tier 2: the run is older than `ORCH_REAPER_MAX_RUNNING_S`, its owner alive or not.
    MaxRunning,
    /// The run started before this host's last boot.
    EarlierBoot,
    /// The owner is on another host or pid namespace and its TTL has passed.
    OwnerExpired,
}

/// One thing a reap did (or, in a dry run, would do).
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub(crate) enum Action {
    /// A run finished `reaped`, its group killed under the signalling rule.
    ReapRun {
        run_id: i64,
        task_id: Option<String>,
        gate: String,
        tier: Tier,
        why: String,
        /// Processes alive in the group when it was killed (or would be killed).
        killed: Vec<i32>,
        /// What routing did: `infra-requeued`, `exhausted`, `deferred`, `none`; in a dry run,
        /// what it would try.
        routed: String,
    },
    /// A run whose group this reap killed, but whose row someone else (its owner, another reap)
    /// closed first: they routed it.
    KillRun {
        run_id: i64,
        task_id: Option<String>,
        why: String,
        killed: Vec<i32>,
    },
    /// A run that should be reaped but whose group could not be shown empty: left open, retried
    /// by the next reap.
    KeepRun {
        run_id: i64,
        why: String,
        survivors: Vec<i32>,
    },
    DropLease {
        task_id: String,
        token: i64,
        owner: String,
        why: String,
    },
    DropMergeLock {
        repo: String,
        task_id: String,
        lease_token: i64,
        why: String,
    },
    RedeliverAlert {
        alert_id: i64,
        key: String,
        /// `None` in a dry run.
        delivered: Option<bool>,
    },
    RemoveWorktree {
        path: PathBuf,
        why: String,
    },
    Prune {
        older_than_days: u32,
        #[serde(flatten)]
        rows: Pruned,
    },
}

/// What one reap reclaimed, in numbers; stored as the `reaper_runs` row's summary.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Summary {
    pub reaped_runs: i64,
    pub kept_runs: i64,
    pub killed_processes: i64,
    /// Runs whose group this reap killed but whose row another process closed first (their
    /// processes are in `killed_processes`).
    pub killed_runs_finished_elsewhere: i64,
    pub dropped_leases: i64,
    pub dropped_merge_locks: i64,
    pub alerts_redelivered: i64,
    pub alerts_failed: i64,
    pub removed_worktrees: i64,
    pub pruned_rows: i64,
    /// The runs reaped, by id.
    pub reaped_run_ids: Vec<i64>,
}

/// The result of `orch reap`.
#[derive(Debug, Serialize)]
pub(crate) struct ReapReport {
    pub enabled: bool,
    pub dry_run: bool,
    /// This reap's `reaper_runs` row (none for a dry run).
    pub reaper_run_id: Option<i64>,
    /// Why reaping by age (tier 2) is refused, when it is.
    pub tier2_refused: Vec<String>,
    pub actions: Vec<Action>,
    pub summary: Summary,
    /// Things that went wrong without stopping the reap.
    pub warnings: Vec<String>,
}

impl ReapReport {
    fn new(config: &Config, dry_run: bool) -> ReapReport {
        ReapReport {
            enabled: config.reaper_enabled,
            dry_run,
            reaper_run_id: None,
            tier2_refused: config.reaper_max_violations(),
            actions: Vec::new(),
            summary: Summary::default(),
            warnings: Vec::new(),
        }
    }

    fn push(&mut self, action: Action) {
        let s = &mut self.summary;
        match &action {
            Action::ReapRun { run_id, killed, .. } => {
                s.reaped_runs += 1;
                s.killed_processes += killed.len() as i64;
                s.reaped_run_ids.push(*run_id);
            }
            Action::KillRun { killed, .. } => {
                s.killed_runs_finished_elsewhere += 1;
                s.killed_processes += killed.len() as i64;
            }
            Action::KeepRun { .. } => s.kept_runs += 1,
            Action::DropLease { .. } => s.dropped_leases += 1,
            Action::DropMergeLock { .. } => s.dropped_merge_locks += 1,
            Action::RedeliverAlert { delivered, .. } => match delivered {
                Some(false) => s.alerts_failed += 1,
                _ => s.alerts_redelivered += 1,
            },
            Action::RemoveWorktree { .. } => s.removed_worktrees += 1,
            Action::Prune { rows, .. } => s.pruned_rows += rows.total(),
        }
        self.actions.push(action);
    }

    /// One line per action, then a summary line (left out with `quiet`, so cron stays silent
    /// when there is nothing to say).
    pub(crate) fn lines(&self, quiet: bool) -> Vec<String> {
        if !self.enabled {
            return vec!["reaper disabled (ORCH_REAPER_ENABLED=false); nothing done".into()];
        }
        let mut out: Vec<String> = self.actions.iter().map(|a| a.line(self.dry_run)).collect();
        if quiet {
            return out;
        }
        for refusal in &self.tier2_refused {
            out.push(format!(
                "tier 2 (reaping by age) refused: {}",
                crate::ui::plain(refusal)
            ));
        }
        let s = &self.summary;
        out.push(if self.dry_run {
            format!(
                "reap --dry-run: would reap {} run(s) (kill {} process(es)), leave {} open, drop {} lease(s) and {} merge lock(s), re-deliver {} alert(s), remove {} gate worktree(s), prune {} row(s); nothing written, nothing signalled",
                s.reaped_runs,
                s.killed_processes,
                s.kept_runs,
                s.dropped_leases,
                s.dropped_merge_locks,
                s.alerts_redelivered,
                s.removed_worktrees,
                s.pruned_rows
            )
        } else {
            format!(
                "reap: {} run(s) reaped ({} process(es) killed), {} left open, {} lease(s) and {} merge lock(s) dropped, {} alert(s) re-delivered ({} failed), {} gate worktree(s) removed, {} row(s) pruned",
                s.reaped_runs,
                s.killed_processes,
                s.kept_runs,
                s.dropped_leases,
                s.dropped_merge_locks,
                s.alerts_redelivered,
                s.alerts_failed,
                s.removed_worktrees,
                s.pruned_rows
            )
        });
        out
    }
}

impl Action {
    /// One line in the past tense, or with `would` for a dry run.
    fn line(&self, dry_run: bool) -> String {
        let verb = |done: &str, todo: &str| {
            if dry_run {
                format!("would {todo}")
            } else {
                done.to_string()
            }
        };
        let text = match self {
            Action::ReapRun {
                run_id,
                task_id,
                gate,
                tier,
                why,
                killed,
                routed,
            } => format!(
                "{} run {run_id} (task {}, gate {gate}, {}): {why}; {}; {}: {routed}",
                verb("reaped", "reap"),
                task_id.as_deref().unwrap_or("-"),
                match tier {
                    Tier::OwnerDead => "tier 1",
                    Tier::MaxRunning => "tier 2",
                    Tier::EarlierBoot => "earlier boot",
                    Tier::OwnerExpired => "owner elsewhere, TTL passed",
                },
                if killed.is_empty() {
                    "nothing signalled".to_string()
                } else {
                    format!(
                        "{} {} process(es) {killed:?}",
                        verb("killed", "kill"),
                        killed.len()
                    )
                },
                verb("routed", "route")
            ),
            Action::KillRun {
                run_id,
                task_id,
                why,
                killed,
            } => format!(
                "{} {} process(es) {killed:?} of run {run_id} (task {}): {why}; its owner closed the run first and routes it",
                verb("killed", "kill"),
                killed.len(),
                task_id.as_deref().unwrap_or("-")
            ),
            Action::KeepRun {
                run_id,
                why,
                survivors,
            } => format!(
                "{} run {run_id} open: {why}; its group could not be shown empty (survivors {survivors:?}); the next reap retries",
                verb("left", "leave")
            ),
            Action::DropLease {
                task_id,
                token,
                owner,
                why,
            } => format!(
                "{} the lease of {task_id} (token {token}, {owner}): {why}",
                verb("dropped", "drop")
            ),
            Action::DropMergeLock {
                repo,
                task_id,
                lease_token,
                why,
            } => format!(
                "{} the merge lock of {repo} (task {task_id}, lease token {lease_token}): {why}",
                verb("dropped", "drop")
            ),
            Action::RedeliverAlert {
                alert_id,
                key,
                delivered,
            } => match delivered {
                Some(false) => format!(
                    "failed to re-deliver alert {alert_id} `{key}`; the next reap retries"
                ),
                _ => format!(
                    "{} alert {alert_id} `{key}`",
                    verb("re-delivered", "re-deliver")
                ),
            },
            Action::RemoveWorktree { path, why } => format!(
                "{} gate worktree {}: {why}",
                verb("removed", "remove"),
                path.display()
            ),
            Action::Prune {
                older_than_days,
                rows,
            } => format!(
                "{} rows older than {older_than_days} days: {} reaper run(s), {} event id(s), {} finished run(s)",
                verb("pruned", "prune"),
                rows.reaper_runs,
                rows.events,
                rows.runs
            ),
        };
        // Task ids, owners, reasons and keys came from outside: one action, one line.
        crate::ui::plain(&text).into_owned()
    }
}

/// Whether a reap acts or only says what it would do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Finish, drop, deliver, remove and prune.
    Reap,
    /// `--dry-run`: the same judgements on a read-only open; nothing written, nothing signalled.
    DryRun,
}

/// Runs one reap: the one sequence, in either mode.
pub(crate) fn reap(config: &Config, dry_run: bool) -> Result<ReapReport> {
    let mode = if dry_run { Mode::DryRun } else { Mode::Reap };
    let mut report = ReapReport::new(config, dry_run);
    if !config.reaper_enabled {
        return Ok(report);
    }
    let mut store = match mode {
        Mode::DryRun if !config.db_path.exists() => return Ok(report),
        Mode::DryRun => Store::open_read_only(&config.db_path)?,
        Mode::Reap => Store::open(&config.db_path)?,
    };
    if mode == Mode::Reap {
        let id = store.write(|db| db.insert_reaper_run(host::wall_ms()))?;
        report.reaper_run_id = Some(id);
    }
    reap_runs(&mut store, config, mode, &mut report)?;
    drop_dead_leases(&mut store, mode, &mut report)?;
    drop_dead_merge_locks(&mut store, mode, &mut report)?;
    redeliver_alerts(&mut store, config, mode, &mut report)?;
    remove_stale_worktrees(&mut store, config, mode, &mut report)?;
    prune(&mut store, config, mode, &mut report)?;
    if let Some(id) = report.reaper_run_id {
        let summary = serde_json::to_string(&report.summary)?;
        let s = report.summary.clone();
        store.write(|db| {
            db.finish_reaper_run(id, host::wall_ms(), &summary)?;
            db.count(Counter::ReaperRuns, 1)?;
            if s.removed_worktrees > 0 {
                db.count(Counter::ReaperRemovedWorktrees, s.removed_worktrees)?;
            }
            Ok(())
        })?;
    }
    Ok(report)
}

/// Judges every unfinished run: why it must be reaped, or `None` to leave it alone.
fn judge_run(
    db: &Db,
    config: &Config,
    run: &RunRow,
    tier2: bool,
    me: &Claimant,
) -> Result<Option<(Tier, String)>> {
    Ok(match host::locality(&run.host, &run.boot_id, &run.pid_ns) {
        Locality::Here => {
            if let Some(why) = host::why_dead(run.owner_pid, run.owner_pid_start) {
                Some((Tier::OwnerDead, format!("owner {why}")))
            } else {
                let age_ms = host::boot_ms() - run.started_boot_ms;
                let max = config.reaper_max_running;
                (tier2 && age_ms > max.as_millis() as i64 && past_own_deadline(config, run, age_ms))
                    .then(|| {
                        (
                            Tier::MaxRunning,
                            format!(
                                "running for {}, over ORCH_REAPER_MAX_RUNNING_S ({}s){}",
                                crate::ui::age(age_ms),
                                max.as_secs(),
                                if run.timeout_ms > 0 {
                                    format!(
                                        " and past its own timeout ({}) + kill grace ({}s) + {}s",
                                        crate::ui::age(run.timeout_ms),
                                        run_grace(config, run).as_secs(),
                                        RUN_FINISH_MARGIN.as_secs()
                                    )
                                } else {
                                    String::new()
                                }
                            ),
                        )
                    })
            }
        }
        Locality::EarlierBoot => Some((
            Tier::EarlierBoot,
            "started before this host's last boot".to_string(),
        )),
        Locality::Elsewhere => {
            owner_expired(db, config, run, me)?.map(|why| (Tier::OwnerExpired, why))
        }
    })
}

/// Whether a run has outlived the deadline its owner enforces: its recorded timeout
/// (`runs.timeout_ms`, the one it was started with, whatever this process's gate timeouts say) +
/// its recorded kill grace (`runs.grace_ms`; this process's `ORCH_KILL_GRACE_S` only for a row
/// from before v4, and never less) +
/// `RUN_FINISH_MARGIN`. A run without a timeout has no such deadline. Reaping by age never kills
/// a run before it: the owner would still end it itself.
fn past_own_deadline(config: &Config, run: &RunRow, age_ms: i64) -> bool {
    if run.timeout_ms <= 0 {
        return true;
    }
    let deadline = Duration::from_millis(run.timeout_ms as u64)
        .saturating_add(run_grace(config, run))
        .saturating_add(RUN_FINISH_MARGIN);
    age_ms > i64::try_from(deadline.as_millis()).unwrap_or(i64::MAX)
}

/// The kill grace a run's owner gives it: the one recorded in its row, or this process's
/// `ORCH_KILL_GRACE_S` if that is longer (or the row is from before v4).
fn run_grace(config: &Config, run: &RunRow) -> Duration {
    let recorded = Duration::from_millis(run.grace_ms.unwrap_or(0).max(0) as u64);
    recorded.max(config.kill_grace)
}

/// A run recorded on another host or pid namespace: its owner is judged by the lease it holds on
/// the run's task (the TTL stored in that row), or, holding none, by the run's age against
/// `ORCH_TRANSITION_LEASE_TTL_S`.
fn owner_expired(db: &Db, config: &Config, run: &RunRow, me: &Claimant) -> Result<Option<String>> {
    let owners_lease = match &run.task_id {
        Some(task_id) => db.lease(task_id)?.filter(|l| {
            l.owner_pid == run.owner_pid
                && l.owner_pid_start == run.owner_pid_start
                && l.host == run.host
                && l.boot_id == run.boot_id
                && l.pid_ns == run.pid_ns
        }),
        None => None,
    };
    let place = format!(
        "owner pid {} on `{}` ({})",
        run.owner_pid, run.host, run.pid_ns
    );
    Ok(match owners_lease {
        Some(lease) => match lease.judge(me) {
            Holder::Dead(_) => Some(format!(
                "{place} cannot be checked and its lease's TTL has passed"
            )),
            Holder::Alive | Holder::Mine => None,
        },
        None => {
            let expiry = Expiry {
                renewed_at: run.started_at,
                renewed_boot_ms: run.started_boot_ms,
                ttl_ms: config.lease_ttl.as_millis() as i64,
            };
            expiry.passed(&run.boot_id).then(|| {
                format!(
                    "{place} cannot be checked, holds no lease, and the run is older than ORCH_TRANSITION_LEASE_TTL_S ({}s)",
                    config.lease_ttl.as_secs()
                )
            })
        }
    })
}

fn reap_runs(
    store: &mut Store,
    config: &Config,
    mode: Mode,
    report: &mut ReapReport,
) -> Result<()> {
    let me = Claimant::current("orch reap");
    let tier2 = report.tier2_refused.is_empty();
    let runs = store.read().unfinished_runs()?;
    for run in &runs {
        let Some((tier, why)) = judge_run(&store.read(), config, run, tier2, &me)? else {
            continue;
        };
        let reap = |killed: Vec<i32>, routed: String| Action::ReapRun {
            run_id: run.id,
            task_id: run.task_id.clone(),
            gate: run.gate.clone(),
            tier,
            why: why.clone(),
            killed,
            routed,
        };
        if mode == Mode::DryRun {
            let action = match reclaim::signalling(run) {
                Signalling::Guarded => Action::KeepRun {
                    run_id: run.id,
                    why: why.clone(),
                    survivors: Vec::new(),
                },
                Signalling::Alive(members) => reap(members, would_route(&store.read(), run)?),
                _ => reap(Vec::new(), would_route(&store.read(), run)?),
            };
            report.push(action);
            continue;
        }
        let elsewhere = if tier == Tier::OwnerExpired {
            Elsewhere::FinishUnsignalled
        } else {
            Elsewhere::Leave
        };
        let counter = Some(Counter::ReaperReapedRuns);
        // What `finish_dead_run` is about to kill, so that a kill is reported even when someone
        // else (a live owner woken by it) closes the row first.
        let alive = match reclaim::signalling(run) {
            Signalling::Alive(members) if elsewhere == Elsewhere::Leave => members,
            _ => Vec::new(),
        };
        match routing::finish_dead_run(store, config, run, &why, elsewhere, counter)? {
            DeadRun::Reaped(reaped) => {
                let routed = reaped.routed_name().to_string();
                report.push(reap(reaped.killed, routed));
            }
            // Someone else finished it first: they route it, this reap writes nothing to the
            // run; but what it killed is said and counted.
            DeadRun::FinishedElsewhere if !alive.is_empty() => report.push(Action::KillRun {
                run_id: run.id,
                task_id: run.task_id.clone(),
                why,
                killed: alive,
            }),
            DeadRun::FinishedElsewhere => {}
            DeadRun::Survivors => report.push(Action::KeepRun {
                run_id: run.id,
                why,
                survivors: host::group_members(run.leader_pid),
            }),
        }
    }
    Ok(())
}

fn drop_dead_leases(store: &mut Store, mode: Mode, report: &mut ReapReport) -> Result<()> {
    let me = Claimant::current("orch reap");
    for row in store.read().leases()? {
        let Holder::Dead(why) = row.judge(&me) else {
            continue;
        };
        let dropped = mode == Mode::DryRun
            || store.write(|db| {
                let dropped = db.drop_dead_lease(&row)?;
                if dropped {
                    db.count(Counter::ReaperDroppedLeases, 1)?;
                }
                Ok(dropped)
            })?;
        if dropped {
            report.push(Action::DropLease {
                task_id: row.task_id,
                token: row.token,
                owner: row.owner,
                why,
            });
        }
    }
    Ok(())
}

fn drop_dead_merge_locks(store: &mut Store, mode: Mode, report: &mut ReapReport) -> Result<()> {
    let me = Claimant::current("orch reap");
    for lock in store.read().merge_locks()? {
        let Holder::Dead(why) = lock.judge(&me) else {
            continue;
        };
        let dropped = mode == Mode::DryRun
            || store.write(|db| {
                let dropped = db.drop_dead_merge_lock(&lock)?;
                if dropped {
                    db.count(Counter::ReaperDroppedMergeLocks, 1)?;
                }
                Ok(dropped)
            })?;
        if dropped {
            report.push(Action::DropMergeLock {
                repo: lock.repo,
                task_id: lock.task_id,
                lease_token: lock.lease_token,
                why,
            });
        }
    }
    Ok(())
}

fn redeliver_alerts(
    store: &mut Store,
    config: &Config,
    mode: Mode,
    report: &mut ReapReport,
) -> Result<()> {
    // Each alert's window is its own (the timeout stored in its row), not this process's.
    let pending = store.read().alerts_to_redeliver(
        host::wall_ms(),
        config.alert_timeout.as_millis() as i64,
        crate::alerts::ALERT_GRACE_MARGIN.as_millis() as i64,
        ALERTS_PER_REAP,
    )?;
    for alert in &pending {
        let delivered = match mode {
            Mode::DryRun => None,
            Mode::Reap => match crate::alerts::redeliver(store, config, alert)? {
                Some(delivered) => Some(delivered),
                // Another process attempted or delivered it first, or has an attempt in flight.
                None => continue,
            },
        };
        report.push(Action::RedeliverAlert {
            alert_id: alert.id,
            key: alert.key.clone(),
            delivered,
        });
    }
    Ok(())
}

/// A gate worktree directory is named `<task>-<orch pid>[-<gate>]-<wall ms>`: its owning orch
/// pid and creation time, read from the right (a task id may hold dashes and digits, a gate name
/// holds no all-digit part).
fn parse_worktree_name(name: &str) -> Option<(i32, i64)> {
    let mut parts = name.rsplit('-');
    let created_ms: i64 = parts.next()?.parse().ok()?;
    let pid = parts.find_map(|p| {
        (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse::<i32>().ok())
            .flatten()
    })?;
    // Something must remain for the task id.
    parts.next()?;
    Some((pid, created_ms))
}

/// Why a gate worktree's owner is dead, or `None` while it may be alive. A live lease holder with
/// that pid (here, or elsewhere and within its TTL) may own it; so may a live process with that
/// pid that started before the worktree was created.
fn worktree_owner_dead(
    pid: i32,
    created_ms: i64,
    leases: &[LeaseRow],
    me: &Claimant,
) -> Option<String> {
    if leases
        .iter()
        .any(|l| l.owner_pid == pid && !matches!(l.judge(me), Holder::Dead(_)))
    {
        return None;
    }
    match host::proc_stat(pid) {
        None => Some(format!("orch pid {pid} is gone")),
        Some(s) if s.is_dead() => Some(format!("orch pid {pid} is a zombie")),
        Some(s) => {
            let started_ms = host::wall_ms() - host::boot_ms()
                + (s.start_time * 1000 / host::clock_ticks_per_second()) as i64;
            (started_ms > created_ms + START_TIME_MARGIN_MS).then(|| {
                format!("pid {pid} now belongs to a process started after the worktree was made")
            })
        }
    }
}

/// The stale gate working copies — worktrees of orch's mirrors under the database's
/// `worktrees` directory, and gate clones (`orch-gate-…`) in the temporary directory — with why
/// each is stale.
fn stale_worktrees(db: &Db, config: &Config) -> Result<Vec<(PathBuf, String)>> {
    let me = Claimant::current("orch reap");
    let leases = db.leases()?;
    let places = [
        (crate::gates::worktree::worktrees_dir(config), String::new()),
        (
            std::env::temp_dir(),
            crate::gates::worktree::clone_prefix(config),
        ),
    ];
    let mut stale = Vec::new();
    for (dir, prefix) in places {
        // Never follow a symlink: a planted `worktrees -> /somewhere` must not get that place
        // deleted.
        if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_dir()) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Some((pid, created_ms)) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.strip_prefix(prefix.as_str()))
                .and_then(parse_worktree_name)
            else {
                continue;
            };
            if let Some(why) = worktree_owner_dead(pid, created_ms, &leases, &me) {
                stale.push((path, why));
            }
        }
    }
    stale.sort();
    Ok(stale)
}

/// Removes stale gate working copies, then prunes git's records of them in every mirror.
fn remove_stale_worktrees(
    store: &mut Store,
    config: &Config,
    mode: Mode,
    report: &mut ReapReport,
) -> Result<()> {
    let stale = stale_worktrees(&store.read(), config)?;
    let mut removed = 0;
    for (path, why) in stale {
        if mode == Mode::Reap {
            if let Err(e) = std::fs::remove_dir_all(&path) {
                // Another reaper may have removed it first.
                if path.exists() {
                    report.warnings.push(format!(
                        "cannot remove the stale gate worktree `{}`: {e} (hint: remove it by hand, then `git worktree prune` in the task's checkout)",
                        path.display()
                    ));
                }
                continue;
            }
            removed += 1;
        }
        report.push(Action::RemoveWorktree { path, why });
    }
    if removed > 0 {
        for repo in store.read().repos()? {
            let mirror = Mirror::dir(&config.state_dir(), &repo.name);
            if mirror.is_dir() {
                if let Err(e) = Repo::at(&mirror).prune_worktrees() {
                    report.warnings.push(format!(
                        "`git worktree prune` failed in orch's mirror `{}`: {e:#}",
                        mirror.display()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Retention: deletes reaps, processed event ids and finished runs older than
/// `ORCH_RETENTION_DAYS` (0 keeps them forever).
fn prune(store: &mut Store, config: &Config, mode: Mode, report: &mut ReapReport) -> Result<()> {
    let days = config.retention_days;
    if days == 0 {
        return Ok(());
    }
    let cutoff = host::wall_ms() - i64::from(days) * 86_400_000;
    let rows = match mode {
        Mode::DryRun => store.read().count_older_than(cutoff)?,
        Mode::Reap => {
            let keep = report.reaper_run_id;
            store.write(|db| {
                let pruned = db.prune_older_than(cutoff, keep, PRUNE_BATCH)?;
                if pruned.total() > 0 {
                    db.count(Counter::ReaperPrunedRows, pruned.total())?;
                }
                Ok(pruned)
            })?
        }
    };
    if rows.total() > 0 {
        report.push(Action::Prune {
            older_than_days: days,
            rows,
        });
    }
    Ok(())
}

/// What routing would try for a reaped run, seen now.
fn would_route(db: &Db, run: &RunRow) -> Result<String> {
    let (Some(task_id), Some(edge)) = (
        &run.task_id,
        GateKind::from_name(&run.gate).map(GateKind::edge),
    ) else {
        return Ok("none".into());
    };
    Ok(match db.task(task_id)? {
        Some(task) if task.stage == edge.from && !task.is_held() => "infra re-queue".into(),
        _ => "none".into(),
    })
}

/// The `reaper` block of `orch queue`.
#[derive(Debug, Serialize)]
pub(crate) struct ReaperBlock {
    pub enabled: bool,
    pub interval_s: u64,
    pub max_running_s: u64,
    pub retention_days: u32,
    /// The last reap that finished.
    pub last_run: Option<LastReap>,
    /// No reap finished within 3 × `ORCH_REAPER_INTERVAL_S` (while the reaper is enabled), and
    /// the registry is older than that: a fresh database is not stale before a reap could run.
    pub stale: bool,
    /// Since when a reaper could have been needed: the first repository (else task) registered.
    pub watched_since: Option<i64>,
    pub counters: ReaperCounters,
}

#[derive(Debug, Serialize)]
pub(crate) struct LastReap {
    pub id: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub age_s: i64,
    /// What it reclaimed (the `reaper_runs` row's summary).
    pub summary: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub(crate) struct ReaperCounters {
    pub runs: i64,
    pub reaped_runs: i64,
    pub dropped_leases: i64,
    pub dropped_merge_locks: i64,
    pub removed_worktrees: i64,
    pub pruned_rows: i64,
    pub alerts_redelivered: i64,
}

/// Builds the `reaper` block from the caller's read snapshot.
pub(crate) fn status(db: &Db, config: &Config) -> Result<ReaperBlock> {
    let now = host::wall_ms();
    let last_run = db.last_reaper_run()?.map(|r| {
        let finished_at = r.finished_at.unwrap_or(r.started_at);
        LastReap {
            id: r.id,
            started_at: r.started_at,
            finished_at,
            age_s: (now - finished_at).max(0) / 1000,
            summary: r
                .summary
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(serde_json::Value::Null),
        }
    });
    let window_ms =
        i64::try_from(config.reaper_interval.saturating_mul(3).as_millis()).unwrap_or(i64::MAX);
    let watched_since = db.watched_since()?;
    // The last sign of a reaper, or, before the first reap, the registry's first row: a
    // database younger than the window has had no chance to be reaped.
    let reference = last_run.as_ref().map(|r| r.finished_at).or(watched_since);
    let stale =
        config.reaper_enabled && reference.is_some_and(|at| now.saturating_sub(at) > window_ms);
    let counter = |c: Counter| db.counter(c);
    Ok(ReaperBlock {
        enabled: config.reaper_enabled,
        interval_s: config.reaper_interval.as_secs(),
        max_running_s: config.reaper_max_running.as_secs(),
        retention_days: config.retention_days,
        last_run,
        stale,
        watched_since,
        counters: ReaperCounters {
            runs: counter(Counter::ReaperRuns)?,
            reaped_runs: counter(Counter::ReaperReapedRuns)?,
            dropped_leases: counter(Counter::ReaperDroppedLeases)?,
            dropped_merge_locks: counter(Counter::ReaperDroppedMergeLocks)?,
            removed_worktrees: counter(Counter::ReaperRemovedWorktrees)?,
            pruned_rows: counter(Counter::ReaperPrunedRows)?,
            alerts_redelivered: counter(Counter::AlertsRedelivered)?,
        },
    })
}

impl ReaperBlock {
    /// The block as `orch queue` text.
    pub(crate) fn lines(&self) -> Vec<String> {
        let state = if !self.enabled {
            "DISABLED (ORCH_REAPER_ENABLED=false)".to_string()
        } else if self.stale {
            format!(
                "STALE: no reap finished in 3 × ORCH_REAPER_INTERVAL_S ({}s); is cron running `orch reap`?",
                self.interval_s * 3
            )
        } else {
            "ok".to_string()
        };
        let c = &self.counters;
        let mut out = vec![format!(
            "reaper  {state}  runs {}  reaped_runs {}  dropped_leases {}  dropped_merge_locks {}  removed_worktrees {}  alerts_redelivered {}  pruned_rows {}",
            c.runs,
            c.reaped_runs,
            c.dropped_leases,
            c.dropped_merge_locks,
            c.removed_worktrees,
            c.alerts_redelivered,
            c.pruned_rows
        )];
        match &self.last_run {
            None => out.push("  last run: never".into()),
            Some(r) => {
                let n = |k: &str| r.summary.get(k).and_then(|v| v.as_i64()).unwrap_or(0);
                out.push(format!(
                    "  last run {} ({} ago): reaped {} run(s), dropped {} lease(s) and {} merge lock(s), re-delivered {} alert(s), removed {} worktree(s), pruned {} row(s)",
                    crate::ui::timestamp(r.finished_at),
                    crate::ui::age(r.age_s * 1000),
                    n("reaped_runs"),
                    n("dropped_leases"),
                    n("dropped_merge_locks"),
                    n("alerts_redelivered"),
                    n("removed_worktrees"),
                    n("pruned_rows")
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worktree_name_yields_its_owner_pid_and_creation_time() {
        assert_eq!(
            parse_worktree_name("T-7-1234-1700000000000"),
            Some((1234, 1_700_000_000_000))
        );
        assert_eq!(
            parse_worktree_name("T-7-1234-image-freshness-1700000000000"),
            Some((1234, 1_700_000_000_000))
        );
        assert_eq!(parse_worktree_name("ORCH_1-42-merge-5"), Some((42, 5)));
        assert_eq!(parse_worktree_name("1234-1700000000000"), None);
        assert_eq!(parse_worktree_name("notes"), None);
        assert_eq!(parse_worktree_name("a-b-c"), None);
    }
}
