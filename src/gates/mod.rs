//! The gate registry `QG_CHECKS` and what a gate run yields.
//!
//! Gates sit on the side-effectful edges and run in registry order between the lease and the CAS.
//! A gate never panics and never raises past its caller: whatever goes wrong becomes a `Verdict`.
//! Routing a verdict (rollback, re-queue, HOLD) is the engine's job, through the one CAS.

pub mod checks;
pub mod merge;
pub mod merge_verify;
pub mod worktree;

use serde::Serialize;

use crate::config::Config;
use crate::lease::{Claimant, HeldLease};
use crate::runner::{RunOutcome, RunResult};
use crate::stages::{Edge, EdgeKind, Stage};
use crate::store::{Store, Task};
use crate::ui::Ui;

/// A quality gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GateKind {
    /// `ORCH_SECURITY_GATE_CMD` on the branch tip; runs before the merge lock is taken.
    Security,
    /// The merge sub-gate: rebase onto the target and re-test under the merge lock.
    Merge,
    /// `measure_coverage`: `ORCH_COVERAGE_CMD` on the rebased head, against `ORCH_COVERAGE_MIN`.
    Coverage,
    /// `ORCH_IMAGE_FRESHNESS_CMD` prints the commit the staging image was built from; it must
    /// equal `validated_sha`.
    ImageFreshness,
    /// `deploy → done`: proof that the re-tested head is in the target.
    MergeVerify,
}

impl GateKind {
    pub const ALL: [GateKind; 5] = [
        GateKind::Security,
        GateKind::Merge,
        GateKind::Coverage,
        GateKind::ImageFreshness,
        GateKind::MergeVerify,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GateKind::Security => "security",
            GateKind::Merge => "merge",
            GateKind::Coverage => "coverage",
            GateKind::ImageFreshness => "image-freshness",
            GateKind::MergeVerify => "merge-verify",
        }
    }

    pub fn from_name(name: &str) -> Option<GateKind> {
        GateKind::ALL.into_iter().find(|g| g.name() == name)
    }

    /// The edge this gate guards.
    pub fn edge(self) -> Edge {
        match self {
            GateKind::MergeVerify => DONE_EDGE,
            _ => DEPLOY_EDGE,
        }
    }
}

const DEPLOY_EDGE: Edge = Edge {
    from: Stage::DeployStaging,
    to: Stage::Deploy,
    kind: EdgeKind::Forward,
};

const DONE_EDGE: Edge = Edge {
    from: Stage::Deploy,
    to: Stage::Done,
    kind: EdgeKind::Forward,
};

/// `QG_CHECKS`: the gates of each guarded edge, in the order they run.
pub const QG_CHECKS: &[(Stage, Stage, &[GateKind])] = &[
    (
        Stage::DeployStaging,
        Stage::Deploy,
        &[
            GateKind::Security,
            GateKind::Merge,
            GateKind::Coverage,
            GateKind::ImageFreshness,
        ],
    ),
    (Stage::Deploy, Stage::Done, &[GateKind::MergeVerify]),
];

/// The gates guarding an edge, in order; empty for an unguarded edge.
pub fn edge_gates(edge: Edge) -> &'static [GateKind] {
    QG_CHECKS
        .iter()
        .find(|(from, to, _)| *from == edge.from && *to == edge.to)
        .map_or(&[], |(_, _, gates)| gates)
}

/// Why an infra outcome happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InfraKind {
    Timeout,
    LockBusy,
    Other,
}

/// What one gate decided.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    Passed {
        detail: String,
    },
    Skipped {
        why: String,
    },
    Red {
        reason: String,
    },
    Infra {
        kind: InfraKind,
        reason: String,
    },
    Cancelled {
        signal: i32,
    },
    /// Merge-verify: the merge command reported success but the head is not in the target.
    NoProof {
        reason: String,
    },
    /// The caller's lease was gone at a re-check: stop, write nothing, exit 4.
    LeaseLost,
}

impl Verdict {
    /// The outcome name recorded in `gate_events` and the counters.
    pub fn outcome(&self) -> &'static str {
        match self {
            Verdict::Passed { .. } => "passed",
            Verdict::Skipped { .. } => "skipped",
            Verdict::Red { .. } => "red",
            Verdict::Infra {
                kind: InfraKind::Timeout,
                ..
            } => "timeout",
            Verdict::Infra {
                kind: InfraKind::LockBusy,
                ..
            } => "lock-busy",
            Verdict::Infra {
                kind: InfraKind::Other,
                ..
            } => "other",
            Verdict::Cancelled { .. } => "cancelled",
            Verdict::NoProof { .. } => "no-proof",
            Verdict::LeaseLost => "lease-lost",
        }
    }

    /// `passed`, `red`, `infra` or `cancelled`: how the outcome is routed.
    pub fn classification(&self) -> &'static str {
        match self {
            Verdict::Passed { .. } | Verdict::Skipped { .. } => "passed",
            Verdict::Red { .. } => "red",
            Verdict::Infra { .. } => "infra",
            Verdict::Cancelled { .. } => "cancelled",
            Verdict::NoProof { .. } => "no-proof",
            Verdict::LeaseLost => "lost-race",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Verdict::Passed { detail } => detail.clone(),
            Verdict::Skipped { why } => why.clone(),
            Verdict::Red { reason }
            | Verdict::Infra { reason, .. }
            | Verdict::NoProof { reason } => reason.clone(),
            Verdict::Cancelled { signal } => format!("orch received signal {signal}"),
            Verdict::LeaseLost => "the lease was lost".into(),
        }
    }
}

/// One gate's result, as reported and routed.
#[derive(Clone, Debug, Serialize)]
pub struct GateResult {
    pub gate: GateKind,
    #[serde(flatten)]
    pub verdict: Verdict,
    pub outcome: &'static str,
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
}

impl GateResult {
    pub fn new(gate: GateKind, verdict: Verdict) -> GateResult {
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
        }
    }
}

/// Everything a gate needs while it runs under the task's lease.
pub struct GateCx<'a> {
    pub store: &'a mut Store,
    pub config: &'a Config,
    pub ui: Ui,
    /// The task as it was when the lease was taken.
    pub task: Task,
    pub lease: HeldLease,
    pub me: Claimant,
    pub edge: Edge,
    /// The branch tip before any rebase: the key of the edge's infra budget.
    pub base_tip: Option<String>,
    /// The head the merge gate judged (the rebased tip), for the gates after it.
    pub head: Option<String>,
    /// The budget key of this edge's pending re-queue, carried into this run.
    pub carried: Option<crate::requeue::BudgetKey>,
    /// The rebased tip this run published as the task branch, if it did.
    pub published: Option<String>,
}

impl GateCx<'_> {
    /// Records the branch tip found before any rebase as the budget key — unless it is the tip
    /// an earlier attempt of this re-queued edge started from or published itself: orch's own
    /// rebase does not buy a fresh budget.
    pub fn note_base_tip(&mut self, current: &str) {
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
    pub fn budget_key(&self) -> crate::requeue::BudgetKey {
        crate::requeue::BudgetKey {
            tip: self.base_tip.clone().unwrap_or_else(|| "unknown".into()),
            published: self
                .published
                .clone()
                .or_else(|| self.carried.as_ref().and_then(|c| c.published.clone())),
        }
    }
}

/// Runs one gate. Never fails: an error becomes an `other` infra verdict.
pub fn run(gate: GateKind, cx: &mut GateCx) -> GateResult {
    let result = match gate {
        GateKind::Security => checks::security(cx),
        GateKind::Merge => merge::retest(cx),
        GateKind::Coverage => checks::coverage(cx),
        GateKind::ImageFreshness => checks::image_freshness(cx),
        GateKind::MergeVerify => merge_verify::verify(cx),
    };
    result.unwrap_or_else(|err| {
        GateResult::new(
            gate,
            Verdict::Infra {
                kind: InfraKind::Other,
                reason: format!("{err:#}"),
            },
        )
    })
}

/// `classify_retest_failure`: the runner's outcome as a gate verdict.
pub fn classify_run(result: &RunResult) -> Verdict {
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
    match &result.outcome {
        RunOutcome::Passed => Verdict::Passed {
            detail: format!("passed in {:.1}s", result.wall.as_secs_f64()),
        },
        RunOutcome::Red => Verdict::Red {
            reason: format!(
                "red (exit {}): {}",
                result.exit_status.map_or("?".into(), |c| c.to_string()),
                last_line(&result.output)
            ),
        },
        RunOutcome::Timeout { evidence } => Verdict::Infra {
            kind: InfraKind::Timeout,
            reason: format!(
                "timed out after {:.0}s wall: {} (load {:.2} on {} CPUs, the suite used {:.1} CPU-s)",
                evidence.wall_s, evidence.verdict, evidence.load_1m, evidence.cpus, evidence.cpu_s
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

/// The last non-empty line of a command's output (pytest's summary).
pub fn last_line(output: &str) -> String {
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
