//! What a gate run yields (`GateResult`), what a gate needs while it runs (`GateCx`), and how a
//! runner outcome becomes a verdict (`classify_run`). Routing a verdict is the engine's job.

use serde::Serialize;

use crate::config::Config;
use crate::lease::HeldLease;
use crate::outcome::{GateKind, InfraKind, Outcome, Verdict, VerdictHow};
use crate::owner::Claimant;
use crate::routing::BudgetKey;
use crate::runner::{RunOutcome, RunResult};
use crate::stages::Edge;
use crate::store::{RepoRow, Store, Task};
use crate::ui::Ui;

/// One gate's result, as reported and routed.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct GateResult {
    pub gate: GateKind,
    #[serde(flatten)]
    pub verdict: Verdict,
    pub outcome: Outcome,
    pub classification: &'static str,
    /// One line: why it passed, was skipped, or failed.
    pub detail: String,
    pub run_id: Option<i64>,
    pub evidence: Option<serde_json::Value>,
    /// The head the gate judged (the rebased branch tip, for the merge gate).
    pub head: Option<String>,
    /// The target commit it judged against.
    pub target: Option<String>,
    /// Who held the merge lock, when lock-busy.
    pub lock_holder: Option<String>,
    /// How a passing merge gate reached its verdict on (`head`, `target`): set by the gate
    /// (`tested` for a re-test that ran, `skipped` for skip-when-current, the stored verdict's
    /// own for a reuse).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub how: Option<VerdictHow>,
    /// The verdict is a stored one, reused as it is: nothing new is stored.
    #[serde(skip)]
    pub reused: bool,
    /// What a passing re-test left at `$ORCH_COVERAGE_REPORT` (the merge gate's, when its suite
    /// ran); the coverage gate judges it and the verdict keeps its percent.
    #[serde(skip)]
    pub report: Option<CoverageReport>,
}

/// A coverage report a gate command was asked to write at `$ORCH_COVERAGE_REPORT`, read before
/// its clone was removed. The agent's code wrote it: untrusted, read within bounds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum CoverageReport {
    /// No file there.
    Absent,
    /// Its total percent (`totals.percent_covered`).
    Percent(f64),
    /// A file orch cannot judge, and why (completes "the coverage report …").
    Unreadable(String),
}

/// A passing re-test of this step: its run, and what it left at `$ORCH_COVERAGE_REPORT`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Retested {
    pub run_id: Option<i64>,
    pub report: CoverageReport,
}

impl CoverageReport {
    /// The percent it measured, if it did.
    pub(crate) fn percent(&self) -> Option<f64> {
        match self {
            CoverageReport::Percent(p) => Some(*p),
            _ => None,
        }
    }
}

impl GateResult {
    pub(crate) fn new(gate: GateKind, verdict: Verdict) -> GateResult {
        GateResult {
            gate,
            outcome: verdict.outcome(),
            classification: verdict.classification(),
            detail: verdict.detail(),
            verdict,
            run_id: None,
            evidence: None,
            head: None,
            target: None,
            lock_holder: None,
            how: None,
            reused: false,
            report: None,
        }
    }
}

/// Everything a gate needs while it runs under the task's lease.
pub(crate) struct GateCx<'a> {
    pub store: &'a mut Store,
    pub config: &'a Config,
    pub ui: Ui,
    /// The task as it was when the lease was taken.
    pub task: Task,
    /// The task's registered repository: its canonical remote, target and protected branches.
    pub repo: RepoRow,
    pub lease: HeldLease,
    pub me: Claimant,
    pub edge: Edge,
    /// The branch tip before any rebase: the key of the edge's infra budget.
    pub base_tip: Option<String>,
    /// The head the merge gate judged (the rebased tip), for the gates after it.
    pub head: Option<String>,
    /// The merge gate's re-test on this step, for the coverage gate; `None` when none ran (a
    /// reused verdict, skip-when-current).
    pub retested: Option<Retested>,
    /// The budget key of this edge's pending re-queue, carried into this run.
    pub carried: Option<BudgetKey>,
    /// The rebased tip this run published as the task branch, if it did.
    pub published: Option<String>,
}

impl GateCx<'_> {
    /// Records the branch tip found before any rebase as the budget key — unless it is the tip
    /// an earlier attempt of this re-queued edge started from or published itself: orch's own
    /// rebase does not buy a fresh budget.
    pub(crate) fn note_base_tip(&mut self, current: &str) {
        let key = match &self.carried {
            Some(carried)
                if carried.tip == current || carried.published.as_deref() == Some(current) =>
            {
                carried.tip.clone()
            }
            _ => current.to_string(),
        };
        self.base_tip = Some(key);
    }

    /// The budget key routing uses.
    pub(crate) fn budget_key(&self) -> BudgetKey {
        BudgetKey {
            tip: self.base_tip.clone().unwrap_or_else(|| "unknown".into()),
            published: self
                .published
                .clone()
                .or_else(|| self.carried.as_ref().and_then(|c| c.published.clone())),
        }
    }
}

/// `classify_retest_failure`: the runner's outcome as a gate verdict.
pub(crate) fn classify_run(result: &RunResult) -> Verdict {
    if result.aborted {
        return Verdict::LeaseLost;
    }
    if result.run_id.is_some() && !result.finished_by_me {
        // The reaper finished the row (tier 2: older than ORCH_REAPER_MAX_RUNNING_S) and killed the
        // group; its routing lost to this live lease holder, so routing is ours: infra.
        return Verdict::Infra {
            kind: InfraKind::Other,
            reason: "the reaper finished this run first (older than ORCH_REAPER_MAX_RUNNING_S) and killed its group".into(),
        };
    }
    if let Some(why) = could_not_start(result) {
        // The one rule for every gate: a program that cannot start says nothing about the code
        // it was to judge. Infra (other), never red.
        return Verdict::Infra {
            kind: InfraKind::Other,
            reason: format!("the command could not start: {why}"),
        };
    }
    match &result.outcome {
        RunOutcome::Passed => Verdict::Passed {
            detail: format!("passed in {:.1}s", result.wall.as_secs_f64()),
        },
        RunOutcome::Red => Verdict::Red {
            reason: format!("red {}", exit_said(result.exit_status, &result.output)),
        },
        RunOutcome::Timeout { evidence } => Verdict::Infra {
            kind: InfraKind::Timeout,
            reason: format!(
                "timed out after {:.0}s wall: {} ({evidence})",
                evidence.wall_s, evidence.verdict
            ),
        },
        RunOutcome::LockBusy => Verdict::Infra {
            kind: InfraKind::LockBusy,
            reason: "this host already runs ORCH_MAX_CONCURRENT_RUNS gate runs".into(),
        },
        RunOutcome::Other { reason } => Verdict::Infra {
            kind: InfraKind::Other,
            reason: reason.clone(),
        },
        RunOutcome::Cancelled { signal } => Verdict::Cancelled { signal: *signal },
    }
}

/// Why a run's program could not start: a spawn errno, or the shell's own 127 (not found) and
/// 126 (not executable) — every gate command runs through `sh -c`. Only for a run that ended on
/// its own with a failing status (a timeout or a cancellation decides first).
fn could_not_start(result: &RunResult) -> Option<String> {
    if !matches!(result.outcome, RunOutcome::Red | RunOutcome::Other { .. }) {
        return None;
    }
    let said = last_line(&result.output);
    let said = if said.is_empty() {
        String::new()
    } else {
        format!(": {said}")
    };
    match (result.start_errno, result.exit_status) {
        (Some(errno), _) if errno == nix::libc::ENOENT => Some("the program is not found".into()),
        (Some(errno), _) if errno == nix::libc::EACCES => {
            Some("the program is not executable".into())
        }
        (Some(errno), _) => Some(format!("errno {errno}")),
        (None, Some(127)) => Some(format!("exit 127, a program is not found{said}")),
        (None, Some(126)) => Some(format!("exit 126, a program is not executable{said}")),
        _ => None,
    }
}

/// How a failed command ended, for a one-line reason: `(exit 1): <its last line>`, or
/// `(exit 1, no output)` when it printed nothing (never a dangling ": ").
pub(crate) fn exit_said(status: Option<i32>, output: &str) -> String {
    let status = status.map_or("?".into(), |c| c.to_string());
    match last_line(output) {
        said if said.is_empty() => format!("(exit {status}, no output)"),
        said => format!("(exit {status}): {said}"),
    }
}

/// The last non-empty line of a command's output (pytest's summary).
pub(crate) fn last_line(output: &str) -> String {
    output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .chars()
        .take(200)
        .collect()
}
