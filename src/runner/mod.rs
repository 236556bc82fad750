//! The process-group runner: every command orch starts for a step — each gate, and `orch exec` —
//! goes through `run`, and no process of its tree outlives the step.
//!
//! Invariant: when `run` returns, the command's process group is empty and every descendant that
//! escaped it (setsid, double fork) and was re-parented to orch — a child subreaper while a run is
//! alive — has been killed and reaped, on every path, a passing run included. A tracked run's
//! `runs` row is committed before the command execs, so no process runs untracked. The outcome is
//! decided by who ended the run (the deadline, a signal to orch, a lost lease), not by the exit
//! status: a timeout wins.
//!
//! The files: `spec` (what to run), `outcome` (how it ended), `spawn` (fork, the go gate, exec),
//! `signals` (the blocked signal set and the guarded kill), `tree` (`/proc`: group members,
//! children, the sweep), `output` (live echo, log, head-and-tail capture), `evidence` (starved,
//! hung or busy), `supervise` (the wait loop and teardown that tie them together).
//! `ORCH_SUBPROCESS_TREE_KILL_ENABLED=false` keeps the old behaviour: no new session, no sweep, a
//! timeout kills the direct child only.

mod evidence;
mod outcome;
mod output;
mod sandbox;
mod signals;
mod spawn;
mod spec;
mod supervise;
mod tree;

pub use evidence::{Evidence, Measure, Verdict};
pub use outcome::{RunOutcome, RunResult};
pub use sandbox::{abi as landlock_abi, Protection};
pub(crate) use sandbox::{device_paths, within};
pub use spec::{shell_argv, Echo, ExitCodes, Input, RunSpec, Sandboxing, Track};
pub use supervise::{run, Heartbeat};
