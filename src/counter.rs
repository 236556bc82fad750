//! The durable counters: one type shared by the writers (in the transaction of the event they
//! count) and the readers (`orch queue`, the metrics).
//!
//! Every counter written is shown by `orch queue` and exported as a metric; `Counter::ALL_NAMED`
//! lists the ones that are not per gate, and a test holds the queue view to it.

use std::borrow::Cow;

use crate::outcome::{GateKind, Outcome};

/// One durable counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Counter {
    LeaseAcquired,
    LeaseBusy,
    LeaseTakenOver,
    LeaseCasLost,
    MergeLockAcquired,
    MergeLockTakenOver,
    TasksAdded,
    Transitions,
    Rollbacks,
    HoldsRaised,
    RunsReaped,
    AlertsRaised,
    AlertsDelivered,
    AlertsRedelivered,
    AlertsDeliveryFailed,
    ReaperRuns,
    ReaperReapedRuns,
    ReaperDroppedLeases,
    ReaperDroppedMergeLocks,
    ReaperRemovedWorktrees,
    ReaperPrunedRows,
    /// The merge sub-gate skipped its re-test: a no-op rebase onto a head CI validated.
    MergeSkippedCurrent,
    /// A gate's verdict, or what routing did with it.
    Gate(GateKind, Outcome),
}

impl Counter {
    /// Every counter that is not per gate.
    pub const ALL_NAMED: [Counter; 22] = [
        Counter::LeaseAcquired,
        Counter::LeaseBusy,
        Counter::LeaseTakenOver,
        Counter::LeaseCasLost,
        Counter::MergeLockAcquired,
        Counter::MergeLockTakenOver,
        Counter::TasksAdded,
        Counter::Transitions,
        Counter::Rollbacks,
        Counter::HoldsRaised,
        Counter::RunsReaped,
        Counter::AlertsRaised,
        Counter::AlertsDelivered,
        Counter::AlertsRedelivered,
        Counter::AlertsDeliveryFailed,
        Counter::ReaperRuns,
        Counter::ReaperReapedRuns,
        Counter::ReaperDroppedLeases,
        Counter::ReaperDroppedMergeLocks,
        Counter::ReaperRemovedWorktrees,
        Counter::ReaperPrunedRows,
        Counter::MergeSkippedCurrent,
    ];

    /// The row name in `counters` (unchanged since the first release: databases keep them).
    pub fn name(self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Counter::LeaseAcquired => "transition_lease.acquired",
            Counter::LeaseBusy => "transition_lease.busy",
            Counter::LeaseTakenOver => "transition_lease.taken_over",
            Counter::LeaseCasLost => "transition_lease.cas_lost",
            Counter::MergeLockAcquired => "merge_lock.acquired",
            Counter::MergeLockTakenOver => "merge_lock.taken_over",
            Counter::TasksAdded => "tasks.added",
            Counter::Transitions => "transitions.total",
            Counter::Rollbacks => "transitions.rollback",
            Counter::HoldsRaised => "holds.raised",
            Counter::RunsReaped => "runs.reaped",
            Counter::AlertsRaised => "alerts.raised",
            Counter::AlertsDelivered => "alerts.delivered",
            Counter::AlertsRedelivered => "alerts.redelivered",
            Counter::AlertsDeliveryFailed => "alerts.delivery_failed",
            Counter::ReaperRuns => "reaper.runs",
            Counter::ReaperReapedRuns => "reaper.reaped_runs",
            Counter::ReaperDroppedLeases => "reaper.dropped_leases",
            Counter::ReaperDroppedMergeLocks => "reaper.dropped_merge_locks",
            Counter::ReaperRemovedWorktrees => "reaper.removed_worktrees",
            Counter::ReaperPrunedRows => "reaper.pruned_rows",
            Counter::MergeSkippedCurrent => "gates.merge.skipped_current",
            Counter::Gate(gate, outcome) => {
                return Cow::Owned(format!("gates.{}.{}", gate.name(), outcome.counter_name()))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = Counter::ALL_NAMED.iter().map(|c| c.name()).collect();
        for gate in GateKind::ALL {
            for outcome in Outcome::VERDICTS.into_iter().chain(Outcome::ROUTES) {
                names.push(Counter::Gate(gate, outcome).name());
            }
        }
        let before = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), before);
    }
}
