//! The routing policy: what happens to a task after a gate did not pass — re-queue and budget,
//! rollback, HOLD — and to a dead run after it was finished. Everything here runs inside one
//! write transaction that the caller opened; alerts are delivered after its commit.

pub(crate) mod dead_run;
pub(crate) mod hold;
pub(crate) mod requeue;
pub(crate) mod rollback;

/// The actor orch records for the HOLDs it raises itself (exhaustion, no proof, config).
pub(crate) const ORCH_ACTOR: &str = "orch";

pub(crate) use dead_run::{finish_dead_run, finish_runs_of_dead_holder, DeadRun, HolderRuns};
pub(crate) use requeue::{BudgetKey, Requeued, RouteCx};
pub(crate) use rollback::{rollback_stage_cas, Rollback, Seen};
