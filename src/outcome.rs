//! Gate kinds, what a gate decides (`Verdict`) and the outcome names every record uses.
//!
//! One `Outcome` type is written to `gate_events`, counted in `counters`, stored in re-queues and
//! read back by the queue view: the names below are the only spelling, at every edge (SQL, JSON,
//! text). Routing a verdict is not decided here; `crate::engine` does it.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::stages::{text_column, Edge, EdgeKind, Stage};

/// A quality gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

impl fmt::Display for GateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for GateKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl FromStr for GateKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GateKind::from_name(s).ok_or_else(|| format!("unknown gate `{s}`"))
    }
}

impl GateKind {
    fn as_str(self) -> &'static str {
        self.name()
    }
}

text_column!(GateKind);

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

/// Why an infra outcome happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum InfraKind {
    Timeout,
    LockBusy,
    Other,
}

/// Every outcome a gate event records: a gate's verdict, or what routing did with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Passed,
    Skipped,
    Red,
    Timeout,
    LockBusy,
    Other,
    Cancelled,
    NoProof,
    /// A problem no retry fixes (a branch gone from the remote, a gate's program missing): HOLD
    /// and one alert, no budget spent, no rollback.
    Config,
    /// The caller's lease was gone at a re-check (reported, never recorded as a gate event).
    LeaseLost,
    /// Lock-busy, re-queued without spending the infra budget.
    Deferred,
    /// An infra outcome re-queued the edge.
    InfraRequeued,
    /// The infra budget is spent: HOLD and one alert.
    Exhausted,
    /// The reaper finished the gate's run.
    Reaped,
}

impl Outcome {
    /// The outcomes of a gate's own verdict: one counter each per gate in the queue view.
    pub const VERDICTS: [Outcome; 9] = [
        Outcome::Passed,
        Outcome::Skipped,
        Outcome::Red,
        Outcome::Timeout,
        Outcome::LockBusy,
        Outcome::Other,
        Outcome::Cancelled,
        Outcome::NoProof,
        Outcome::Config,
    ];

    /// What routing does with a failed gate: counted per gate beside the verdicts.
    pub const ROUTES: [Outcome; 3] = [
        Outcome::InfraRequeued,
        Outcome::Deferred,
        Outcome::Exhausted,
    ];

    const ALL: [Outcome; 14] = [
        Outcome::Passed,
        Outcome::Skipped,
        Outcome::Red,
        Outcome::Timeout,
        Outcome::LockBusy,
        Outcome::Other,
        Outcome::Cancelled,
        Outcome::NoProof,
        Outcome::Config,
        Outcome::LeaseLost,
        Outcome::Deferred,
        Outcome::InfraRequeued,
        Outcome::Exhausted,
        Outcome::Reaped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Skipped => "skipped",
            Outcome::Red => "red",
            Outcome::Timeout => "timeout",
            Outcome::LockBusy => "lock-busy",
            Outcome::Other => "other",
            Outcome::Cancelled => "cancelled",
            Outcome::NoProof => "no-proof",
            Outcome::Config => "config",
            Outcome::LeaseLost => "lease-lost",
            Outcome::Deferred => "deferred",
            Outcome::InfraRequeued => "infra-requeued",
            Outcome::Exhausted => "exhausted",
            Outcome::Reaped => "reaped",
        }
    }

    /// The name of this outcome's per-gate counter (`gates.<gate>.<name>`); the routing
    /// counters have always been spelled with an underscore.
    pub fn counter_name(self) -> &'static str {
        match self {
            Outcome::InfraRequeued => "infra_requeued",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("unknown outcome `{s}`"))
    }
}

impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

text_column!(Outcome);

/// How a passing merge verdict was reached, stored with it (`verdicts.how`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictHow {
    /// orch's re-test ran on the rebased head and passed.
    Tested,
    /// Skip-when-current: the rebase onto the target was a no-op and the head is exactly what a
    /// CI step validated (`validated_sha`).
    Skipped,
}

impl VerdictHow {
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictHow::Tested => "tested",
            VerdictHow::Skipped => "skipped",
        }
    }
}

impl fmt::Display for VerdictHow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VerdictHow {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [VerdictHow::Tested, VerdictHow::Skipped]
            .into_iter()
            .find(|h| h.as_str() == s)
            .ok_or_else(|| format!("unknown verdict `how` `{s}`"))
    }
}

text_column!(VerdictHow);

/// An error that is a problem no retry fixes (a branch gone from the remote): whoever turns a
/// gate's error into a verdict (`gates::run`) makes it `Verdict::Config`, never infra.
#[derive(Debug)]
pub(crate) struct ConfigProblem(pub String);

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigProblem {}

/// What one gate decided.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub(crate) enum Verdict {
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
    /// A problem no retry fixes: `reason` names it and the fix. HOLD and one alert (exit 12).
    Config {
        reason: String,
    },
    /// The caller's lease was gone at a re-check: stop, write nothing, exit 4.
    LeaseLost,
}

impl Verdict {
    /// The outcome recorded in `gate_events` and the counters.
    pub(crate) fn outcome(&self) -> Outcome {
        match self {
            Verdict::Passed { .. } => Outcome::Passed,
            Verdict::Skipped { .. } => Outcome::Skipped,
            Verdict::Red { .. } => Outcome::Red,
            Verdict::Infra {
                kind: InfraKind::Timeout,
                ..
            } => Outcome::Timeout,
            Verdict::Infra {
                kind: InfraKind::LockBusy,
                ..
            } => Outcome::LockBusy,
            Verdict::Infra {
                kind: InfraKind::Other,
                ..
            } => Outcome::Other,
            Verdict::Cancelled { .. } => Outcome::Cancelled,
            Verdict::NoProof { .. } => Outcome::NoProof,
            Verdict::Config { .. } => Outcome::Config,
            Verdict::LeaseLost => Outcome::LeaseLost,
        }
    }

    /// `passed`, `red`, `infra`, `cancelled`, `no-proof`, `config` or `lost-race`: how the outcome is
    /// routed, as reports name it.
    pub(crate) fn classification(&self) -> &'static str {
        match self {
            Verdict::Passed { .. } | Verdict::Skipped { .. } => "passed",
            Verdict::Red { .. } => "red",
            Verdict::Infra { .. } => "infra",
            Verdict::Cancelled { .. } => "cancelled",
            Verdict::NoProof { .. } => "no-proof",
            Verdict::Config { .. } => "config",
            Verdict::LeaseLost => "lost-race",
        }
    }

    /// Whether the gate let the edge go on (a pass or a skip).
    pub(crate) fn is_pass(&self) -> bool {
        matches!(self, Verdict::Passed { .. } | Verdict::Skipped { .. })
    }

    pub(crate) fn detail(&self) -> String {
        match self {
            Verdict::Passed { detail } => detail.clone(),
            Verdict::Skipped { why } => why.clone(),
            Verdict::Red { reason }
            | Verdict::Infra { reason, .. }
            | Verdict::NoProof { reason }
            | Verdict::Config { reason } => reason.clone(),
            Verdict::Cancelled { signal } => format!("orch received signal {signal}"),
            Verdict::LeaseLost => "the lease was lost".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_names_round_trip() {
        for outcome in Outcome::ALL {
            assert_eq!(outcome.as_str().parse::<Outcome>().unwrap(), outcome);
        }
    }

    #[test]
    fn gate_names_round_trip() {
        for gate in GateKind::ALL {
            assert_eq!(GateKind::from_name(gate.name()), Some(gate));
        }
    }
}
