//! The operator view behind `orch queue`: read-only blocks, each built from aggregate queries.
//!
//! Building the view never writes; liveness of lease holders is judged, not acted on.

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::counter::Counter;
use crate::host;
use crate::outcome::{GateKind, Outcome};
use crate::owner::{Claimant, Holder};
use crate::stages::Stage;
use crate::store::{AlertRow, Db, OpenRun, RequeueKind};

/// Held tasks listed by `orch queue` at most (the longest held first); `held.total` counts all.
const HELD_LISTED: i64 = 100;

/// Every block of `orch queue`.
#[derive(Debug, Serialize)]
pub(crate) struct QueueView {
    pub generated_at: i64,
    pub stages: Vec<StageBlock>,
    /// The tasks on HOLD: why, and since when.
    pub held: HeldBlock,
    pub history: HistoryBlock,
    pub transition_lease: LeaseBlock,
    pub alerts: AlertsBlock,
    pub runs: RunsBlock,
    pub merge_gate: MergeGateBlock,
    /// The reaper: last run, what it reclaimed, stale flag (`crate::reaper::status`).
    pub reaper: crate::reaper::ReaperBlock,
    /// Per gate: counts per outcome and the last outcome.
    pub gates: std::collections::BTreeMap<String, GateBlock>,
    /// The last coverage measured per repository, against the minimum.
    pub coverage: Vec<CoverageView>,
}

#[derive(Debug, Serialize)]
pub(crate) struct GateBlock {
    #[serde(flatten)]
    pub outcomes: std::collections::BTreeMap<String, i64>,
    pub infra_requeued: i64,
    pub deferred: i64,
    pub exhausted: i64,
    pub last_outcome: Option<String>,
    pub last_at: Option<i64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct CoverageView {
    pub repo: String,
    pub task_id: String,
    pub percent: f64,
    pub minimum: f64,
    pub ok: bool,
    pub at: i64,
}

#[derive(Debug, Serialize)]
pub(crate) struct MergeGateBlock {
    pub config: MergeGateConfig,
    /// Gate outcomes: passed, skipped, red, timeout, lock-busy, other, cancelled.
    pub outcomes: std::collections::BTreeMap<String, i64>,
    pub skipped_current: i64,
    pub deferred: i64,
    pub infra_requeued: i64,
    pub exhausted: i64,
    /// Merge locks taken, and taken over from a dead holder.
    pub lock_acquired: i64,
    pub lock_taken_over: i64,
    pub locks: Vec<MergeLockView>,
    pub pending: Vec<PendingRequeue>,
}

#[derive(Debug, Serialize)]
pub(crate) struct MergeGateConfig {
    pub retest_cmd: String,
    pub retest_timeout_s: u64,
    pub skip_when_current: bool,
    pub infra_retry_enabled: bool,
    pub infra_retry_max: u32,
    pub infra_retry_backoff_s: u64,
    pub defer_delay_s: u64,
    pub defer_max_attempts: u32,
}

#[derive(Debug, Serialize)]
pub(crate) struct MergeLockView {
    pub repo: String,
    pub task_id: String,
    pub owner: String,
    pub age_s: i64,
    pub holder: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct HeldBlock {
    pub total: i64,
    /// The longest held first, at most 100.
    pub tasks: Vec<HeldView>,
}

#[derive(Debug, Serialize)]
pub(crate) struct HeldView {
    pub task_id: String,
    pub stage: String,
    pub reason: String,
    pub held_since: Option<i64>,
    pub age_s: Option<i64>,
    /// The goal it keeps through the HOLD (`orch advance --goal`).
    pub goal: Option<Stage>,
}

/// Where a pending re-queue stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RequeueState {
    /// Not due yet.
    Waiting,
    /// Due, and nothing is working on the task: the next `orch advance --next` claims it.
    Due,
    /// Its task is being worked on now (a run alive, or a live holder of its lease): the edge is
    /// running, whatever the due time says.
    Running,
}

#[derive(Debug, Serialize)]
pub(crate) struct PendingRequeue {
    pub task_id: String,
    pub edge: String,
    pub kind: RequeueKind,
    pub attempt: i64,
    pub reason: String,
    pub due_at: i64,
    /// Seconds until due; negative when overdue.
    pub due_in_s: i64,
    pub state: RequeueState,
    /// What is running it, when `state` is `running` (`run 7`, or the lease holder).
    pub running: Option<String>,
    /// The task's goal: `advance --next` continues to it after the edge.
    pub goal: Option<Stage>,
}

#[derive(Debug, Serialize)]
pub(crate) struct StageBlock {
    pub stage: Stage,
    pub count: i64,
    pub held: i64,
    /// Age in seconds of the task that has waited longest at this stage.
    pub oldest_age_s: Option<i64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct LeaseBlock {
    pub enabled: bool,
    pub scope: String,
    pub leases: Vec<LiveLease>,
    pub counters: LeaseCounters,
}

#[derive(Debug, Serialize)]
pub(crate) struct LiveLease {
    pub task_id: String,
    pub owner: String,
    pub owner_pid: i32,
    pub host: String,
    pub token: i64,
    pub age_s: i64,
    /// `alive`, or `dead: why` (a dead lease is dropped by the next actor or the reaper).
    pub holder: String,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct LeaseCounters {
    pub acquired: i64,
    pub busy: i64,
    pub taken_over: i64,
    pub cas_lost: i64,
}

#[derive(Debug, Serialize)]
pub(crate) struct AlertsBlock {
    pub total: i64,
    pub undelivered: i64,
    /// Counters: alerts raised, deliveries that succeeded (re-deliveries included) and failed.
    pub raised: i64,
    pub delivered: i64,
    pub delivery_failed: i64,
    pub recent: Vec<AlertRow>,
}

#[derive(Debug, Serialize)]
pub(crate) struct RunsBlock {
    pub alive: Vec<RunView>,
    /// Runs finished by someone other than their owner (reaper or take-over).
    pub reaped: i64,
}

/// The history's totals: tasks registered, stage changes, rollbacks, HOLDs raised.
#[derive(Debug, Serialize)]
pub(crate) struct HistoryBlock {
    pub tasks_added: i64,
    pub transitions: i64,
    pub rollbacks: i64,
    pub holds_raised: i64,
}

#[derive(Debug, Serialize)]
pub(crate) struct RunView {
    #[serde(flatten)]
    pub run: OpenRun,
    pub age_s: i64,
    /// When its owner ends it: started + its own timeout (wall ms); `None` without a timeout.
    pub deadline_at: Option<i64>,
    /// Seconds until that deadline; negative once it has passed.
    pub deadline_in_s: Option<i64>,
}

/// Builds the view from one read snapshot.
pub(crate) fn build(db: &Db, config: &Config) -> Result<QueueView> {
    let now = host::wall_ms();
    let counts = db.stage_counts()?;
    let stages = Stage::ALL
        .into_iter()
        .map(|stage| {
            let row = counts.iter().find(|c| c.stage == stage.as_str());
            StageBlock {
                stage,
                count: row.map_or(0, |r| r.count),
                held: row.map_or(0, |r| r.held),
                oldest_age_s: row.map(|r| (now - r.oldest_since).max(0) / 1000),
            }
        })
        .collect();
    let me = Claimant::current("orch queue");
    let lease_rows = db.leases()?;
    let open_runs = db.open_runs()?;
    // Who is working on a task now: a run alive, else a live lease holder.
    let goals = db.requeue_goals()?;
    let working_on = |task_id: &str| -> Option<String> {
        if let Some(run) = open_runs
            .iter()
            .find(|r| r.task_id.as_deref() == Some(task_id))
        {
            return Some(format!("run {} ({})", run.id, run.gate));
        }
        lease_rows
            .iter()
            .find(|l| l.task_id == task_id && !matches!(l.judge(&me), Holder::Dead(_)))
            .map(|l| format!("lease held by {}", l.describe()))
    };
    let leases = lease_rows
        .iter()
        .cloned()
        .map(|row| LiveLease {
            holder: match row.judge(&me) {
                Holder::Alive | Holder::Mine => "alive".into(),
                Holder::Dead(why) => format!("dead: {why}"),
            },
            task_id: row.task_id,
            owner: row.owner,
            owner_pid: row.owner_pid,
            host: row.host,
            token: row.token,
            age_s: (now - row.acquired_at).max(0) / 1000,
        })
        .collect();
    let counter = |c: Counter| db.counter(c);
    let c = &config;
    let mut outcomes = std::collections::BTreeMap::new();
    // The merge sub-gate never records `no-proof` (merge-verify does).
    for outcome in Outcome::VERDICTS
        .into_iter()
        .filter(|o| *o != Outcome::NoProof)
    {
        outcomes.insert(
            outcome.as_str().to_string(),
            counter(Counter::Gate(GateKind::Merge, outcome))?,
        );
    }
    let merge_gate = MergeGateBlock {
        config: MergeGateConfig {
            retest_cmd: c.merge_retest_cmd.clone(),
            retest_timeout_s: c.merge_retest_timeout.as_secs(),
            skip_when_current: c.merge_skip_when_current,
            infra_retry_enabled: c.merge_infra_retry_enabled,
            infra_retry_max: c.merge_infra_retry_max,
            infra_retry_backoff_s: c.merge_infra_backoff.as_secs(),
            defer_delay_s: c.merge_defer_delay.as_secs(),
            defer_max_attempts: c.merge_defer_max_attempts,
        },
        outcomes,
        skipped_current: counter(Counter::MergeSkippedCurrent)?,
        deferred: counter(Counter::Gate(GateKind::Merge, Outcome::Deferred))?,
        infra_requeued: counter(Counter::Gate(GateKind::Merge, Outcome::InfraRequeued))?,
        exhausted: counter(Counter::Gate(GateKind::Merge, Outcome::Exhausted))?,
        lock_acquired: counter(Counter::MergeLockAcquired)?,
        lock_taken_over: counter(Counter::MergeLockTakenOver)?,
        locks: db
            .merge_locks()?
            .into_iter()
            .map(|l| MergeLockView {
                age_s: (now - l.acquired_at).max(0) / 1000,
                holder: format!("pid {} on {}", l.owner_pid, l.host),
                repo: l.repo,
                task_id: l.task_id,
                owner: l.owner,
            })
            .collect(),
        pending: db
            .requeues()?
            .into_iter()
            .map(|r| {
                let due_in_s = (r.due_in_ms() + 999).div_euclid(1000);
                let running = working_on(&r.task_id);
                let state = match (&running, due_in_s <= 0) {
                    (Some(_), _) => RequeueState::Running,
                    (None, true) => RequeueState::Due,
                    (None, false) => RequeueState::Waiting,
                };
                (r, due_in_s, state, running)
            })
            .map(|(r, due_in_s, state, running)| PendingRequeue {
                due_in_s,
                state,
                running,
                goal: goals
                    .iter()
                    .find(|(task_id, _)| *task_id == r.task_id)
                    .map(|(_, goal)| *goal),
                edge: format!("{} → {}", r.from_stage, r.to_stage),
                task_id: r.task_id,
                kind: r.kind,
                attempt: r.attempt,
                reason: r.reason,
                due_at: r.due_at,
            })
            .collect(),
    };
    let (total, undelivered) = db.alert_totals()?;
    let held_total = counts.iter().map(|c| c.held).sum();
    let held = HeldBlock {
        total: held_total,
        tasks: db
            .held_tasks(HELD_LISTED)?
            .into_iter()
            .map(|h| HeldView {
                age_s: h.held_since.map(|at| (now - at).max(0) / 1000),
                task_id: h.task_id,
                stage: h.stage,
                reason: h.reason,
                held_since: h.held_since,
                goal: h.goal,
            })
            .collect(),
    };
    Ok(QueueView {
        generated_at: now,
        stages,
        held,
        history: HistoryBlock {
            tasks_added: counter(Counter::TasksAdded)?,
            transitions: counter(Counter::Transitions)?,
            rollbacks: counter(Counter::Rollbacks)?,
            holds_raised: counter(Counter::HoldsRaised)?,
        },
        transition_lease: LeaseBlock {
            enabled: config.lease_enabled,
            scope: match &config.lease_repos {
                crate::config::RepoScope::All => "*".into(),
                crate::config::RepoScope::Only(r) => r.join(","),
            },
            leases,
            counters: LeaseCounters {
                acquired: counter(Counter::LeaseAcquired)?,
                busy: counter(Counter::LeaseBusy)?,
                taken_over: counter(Counter::LeaseTakenOver)?,
                cas_lost: counter(Counter::LeaseCasLost)?,
            },
        },
        alerts: AlertsBlock {
            total,
            undelivered,
            raised: counter(Counter::AlertsRaised)?,
            delivered: counter(Counter::AlertsDelivered)?,
            delivery_failed: counter(Counter::AlertsDeliveryFailed)?,
            recent: db.recent_alerts(10)?,
        },
        runs: RunsBlock {
            alive: open_runs
                .into_iter()
                .map(|run| {
                    let deadline_at =
                        (run.timeout_ms > 0).then(|| run.started_at.saturating_add(run.timeout_ms));
                    RunView {
                        age_s: (now - run.started_at).max(0) / 1000,
                        deadline_in_s: deadline_at.map(|d| (d - now).div_euclid(1000)),
                        deadline_at,
                        run,
                    }
                })
                .collect(),
            reaped: counter(Counter::RunsReaped)?,
        },
        merge_gate,
        reaper: crate::reaper::status(db, config)?,
        gates: gates_block(db)?,
        coverage: db
            .coverage_reports()?
            .into_iter()
            .map(|c| CoverageView {
                ok: c.percent + 1e-9 >= c.minimum,
                repo: c.repo,
                task_id: c.task_id,
                percent: c.percent,
                minimum: c.minimum,
                at: c.at,
            })
            .collect(),
    })
}

fn gates_block(db: &Db) -> Result<std::collections::BTreeMap<String, GateBlock>> {
    let last = db.last_gate_outcomes()?;
    let mut block = std::collections::BTreeMap::new();
    for gate in GateKind::ALL {
        let name = gate.name();
        let mut outcomes = std::collections::BTreeMap::new();
        for outcome in Outcome::VERDICTS {
            outcomes.insert(
                outcome.as_str().to_string(),
                db.counter(Counter::Gate(gate, outcome))?,
            );
        }
        let last = last.iter().find(|(g, _, _)| g == name);
        block.insert(
            name.to_string(),
            GateBlock {
                outcomes,
                infra_requeued: db.counter(Counter::Gate(gate, Outcome::InfraRequeued))?,
                deferred: db.counter(Counter::Gate(gate, Outcome::Deferred))?,
                exhausted: db.counter(Counter::Gate(gate, Outcome::Exhausted))?,
                last_outcome: last.map(|(_, o, _)| o.clone()),
                last_at: last.map(|(_, _, at)| *at),
            },
        );
    }
    Ok(block)
}

/// The view as short aligned text, one line per row: every line goes through `ui::plain`, so a
/// task id, an owner, a re-queue reason (a suite's last output line) or an alert's text prints
/// escaped and cannot draw.
pub(crate) fn render_text(view: &QueueView) -> Vec<String> {
    render_lines(view)
        .into_iter()
        .map(|line| match crate::ui::plain(&line) {
            std::borrow::Cow::Borrowed(_) => line,
            std::borrow::Cow::Owned(escaped) => escaped,
        })
        .collect()
}

/// `  goal S` for a task that has one, nothing otherwise.
fn goal_text(goal: Option<Stage>) -> String {
    goal.map(|g| format!("  goal {g}")).unwrap_or_default()
}

fn render_lines(view: &QueueView) -> Vec<String> {
    let mut out = vec!["stages".to_string()];
    out.push(format!(
        "  {:<14} {:>6} {:>5}  oldest",
        "stage", "count", "held"
    ));
    for s in &view.stages {
        out.push(format!(
            "  {:<14} {:>6} {:>5}  {}",
            s.stage.as_str(),
            s.count,
            s.held,
            s.oldest_age_s
                .map_or_else(|| "-".to_string(), |a| crate::ui::age(a * 1000))
        ));
    }
    out.push(format!("held  {} task(s) on HOLD", view.held.total));
    for t in &view.held.tasks {
        out.push(format!(
            "  {}  {}  since {}{}{}  reason: {}",
            t.task_id,
            t.stage,
            t.held_since
                .map_or_else(|| "-".to_string(), crate::ui::timestamp),
            t.age_s
                .map(|a| format!(" ({} ago)", crate::ui::age(a * 1000)))
                .unwrap_or_default(),
            goal_text(t.goal),
            t.reason
        ));
    }
    if view.held.total > view.held.tasks.len() as i64 {
        out.push(format!(
            "  … and {} more (orch task list shows them all)",
            view.held.total - view.held.tasks.len() as i64
        ));
    }
    let h = &view.history;
    out.push(format!(
        "history  tasks_added {}  transitions {}  rollbacks {}  holds_raised {}",
        h.tasks_added, h.transitions, h.rollbacks, h.holds_raised
    ));
    let l = &view.transition_lease;
    out.push(format!(
        "transition_lease  {}  scope {}  acquired {}  busy {}  taken_over {}  cas_lost {}",
        if l.enabled {
            "enabled"
        } else {
            "DISABLED (plain writes)"
        },
        l.scope,
        l.counters.acquired,
        l.counters.busy,
        l.counters.taken_over,
        l.counters.cas_lost
    ));
    for lease in &l.leases {
        out.push(format!(
            "  {}  {}  pid {} on {}  token {}  {}  {}",
            lease.task_id,
            lease.owner,
            lease.owner_pid,
            lease.host,
            lease.token,
            crate::ui::age(lease.age_s * 1000),
            lease.holder
        ));
    }
    let a = &view.alerts;
    out.push(format!(
        "alerts  {} total, {} undelivered  raised {}  delivered {}  delivery_failed {}",
        a.total, a.undelivered, a.raised, a.delivered, a.delivery_failed
    ));
    for a in &view.alerts.recent {
        out.push(format!(
            "  {}  {}  {}  {}",
            crate::ui::timestamp(a.created_at),
            a.kind,
            a.task_id.as_deref().unwrap_or("-"),
            if a.delivered_at.is_some() {
                "delivered"
            } else {
                "UNDELIVERED"
            }
        ));
    }
    let m = &view.merge_gate;
    out.push(format!(
        "merge_gate  {}  skipped_current {}  deferred {}  infra_requeued {}  exhausted {}  lock_acquired {}  lock_taken_over {}",
        m.outcomes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join("  "),
        m.skipped_current,
        m.deferred,
        m.infra_requeued,
        m.exhausted,
        m.lock_acquired,
        m.lock_taken_over
    ));
    for l in &m.locks {
        out.push(format!(
            "  lock {}  task {}  {}  {}  {}",
            l.repo,
            l.task_id,
            l.owner,
            crate::ui::age(l.age_s * 1000),
            l.holder
        ));
    }
    for p in &m.pending {
        out.push(format!(
            "  re-queued {}  {}{}  {} {}  due {} ({})  {}",
            p.task_id,
            p.edge,
            goal_text(p.goal),
            p.kind,
            p.attempt,
            crate::ui::timestamp(p.due_at),
            match (p.state, &p.running) {
                (RequeueState::Running, Some(by)) => format!("running now: {by}"),
                (RequeueState::Waiting, _) => format!("in {}s", p.due_in_s),
                _ => "due now".to_string(),
            },
            p.reason
        ));
    }
    out.push("gates".to_string());
    for (name, g) in &view.gates {
        let counts: Vec<String> = g
            .outcomes
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        out.push(format!(
            "  {:<16} last {:<10} {}",
            name,
            g.last_outcome.as_deref().unwrap_or("-"),
            if counts.is_empty() {
                "never ran".to_string()
            } else {
                counts.join("  ")
            }
        ));
    }
    out.push(format!("coverage  {} repositories", view.coverage.len()));
    for c in &view.coverage {
        out.push(format!(
            "  {:<16} {:>5.1}% (minimum {}%)  {}  task {}",
            c.repo,
            c.percent,
            c.minimum,
            if c.ok { "ok" } else { "BELOW" },
            c.task_id
        ));
    }
    out.push(format!(
        "runs  {} alive  reaped {}",
        view.runs.alive.len(),
        view.runs.reaped
    ));
    for r in &view.runs.alive {
        out.push(format!(
            "  run {}  {}  {}  pgid {}  {}  {}",
            r.run.id,
            r.run.task_id.as_deref().unwrap_or("-"),
            r.run.gate,
            r.run.leader_pid,
            crate::ui::age(r.age_s * 1000),
            match (r.deadline_at, r.deadline_in_s) {
                (Some(at), Some(left)) if left >= 0 => format!(
                    "deadline {} (in {})",
                    crate::ui::timestamp(at),
                    crate::ui::age(left * 1000)
                ),
                (Some(at), Some(left)) => format!(
                    "deadline {} (PASSED {} ago)",
                    crate::ui::timestamp(at),
                    crate::ui::age(-left * 1000)
                ),
                _ => "no deadline".to_string(),
            }
        ));
    }
    out.extend(view.reaper.lines());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{families, render, Exposition};
    use crate::store::Store;

    /// Every counter orch writes is shown: in `orch queue` text and JSON, and in the metrics.
    /// Each named counter gets a value no other number in the view has, so a counter that is
    /// written but shown nowhere fails here; the per-gate counters are checked through the
    /// `gates` block below.
    #[test]
    fn every_counter_written_is_shown_in_the_view_and_the_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orch.db");
        let mut store = Store::open(&path).unwrap();
        let value = |i: usize| 7_000_001 + i as i64 * 1_013;
        store
            .write(|db| {
                for (i, counter) in Counter::ALL_NAMED.into_iter().enumerate() {
                    db.count(counter, value(i))?;
                }
                for (i, gate) in GateKind::ALL.into_iter().enumerate() {
                    for (j, outcome) in Outcome::VERDICTS
                        .into_iter()
                        .chain(Outcome::ROUTES)
                        .enumerate()
                    {
                        db.count(Counter::Gate(gate, outcome), value(100 + i * 20 + j))?;
                    }
                }
                Ok(())
            })
            .unwrap();
        let config = Config::load(&|_| None, Some(&path));
        let view = build(&store.read(), &config).unwrap();
        let json = serde_json::to_string(&view).unwrap();
        let text = render_text(&view).join("\n");
        let metrics = render(&families(&view), Exposition::Prometheus);
        for (i, counter) in Counter::ALL_NAMED.into_iter().enumerate() {
            let v = value(i).to_string();
            assert!(
                json.contains(&v),
                "{} is not in `orch queue --json`",
                counter.name()
            );
            assert!(
                text.contains(&v),
                "{} is not in `orch queue`",
                counter.name()
            );
            assert!(
                metrics.contains(&v),
                "{} is not in the metrics",
                counter.name()
            );
        }
        for (i, gate) in GateKind::ALL.into_iter().enumerate() {
            for (j, outcome) in Outcome::VERDICTS
                .into_iter()
                .chain(Outcome::ROUTES)
                .enumerate()
            {
                let v = value(100 + i * 20 + j).to_string();
                let name = Counter::Gate(gate, outcome).name();
                assert!(json.contains(&v), "{name} is not in `orch queue --json`");
                assert!(metrics.contains(&v), "{name} is not in the metrics");
            }
        }
    }
}
