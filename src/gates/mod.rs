//! The quality gates: the registry `QG_CHECKS`, each gate's check, and what a gate run yields.
//!
//! A gate never panics and never raises past its caller: whatever goes wrong becomes a
//! `Verdict`. Routing a verdict (rollback, re-queue, HOLD) is the engine's job, through the one
//! CAS.

pub mod checks;
pub mod merge;
pub mod merge_verify;
mod registry;
mod result;
pub mod worktree;

pub use crate::outcome::{GateKind, InfraKind, Verdict};
pub use registry::{edge_gates, run, QG_CHECKS};
pub use result::{classify_run, last_line, GateCx, GateResult};
