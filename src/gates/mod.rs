//! The quality gates: the registry `QG_CHECKS`, each gate's check, and what a gate run yields.
//!
//! A gate never panics and never raises past its caller: whatever goes wrong becomes a
//! `Verdict`. Routing a verdict (rollback, re-queue, HOLD) is the engine's job, through the one
//! CAS.

pub(crate) mod checks;
pub(crate) mod merge;
pub(crate) mod merge_verify;
mod record;
mod registry;
mod result;
pub(crate) mod worktree;

pub(crate) use crate::outcome::{GateKind, InfraKind, Verdict};
pub(crate) use record::record_pass;
pub(crate) use registry::{edge_gates, preflight, run};
pub(crate) use result::{
    classify_run, exit_said, last_line, CoverageReport, GateCx, GateResult, Retested,
};
