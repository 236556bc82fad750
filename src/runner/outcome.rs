//! What a run ended with. The outcome is decided by who ended the run — a deadline, a signal to
//! orch, a lost lease — and only when nobody did, by the command's exit status: a timeout wins
//! over whatever status the killed command exits with.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::evidence::Evidence;
use super::spec::ExitCodes;

/// How a run ended, as gates route it: `passed`, `red`, infra (`timeout`, `lock-busy`, `other`),
/// or `cancelled`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum RunOutcome {
    Passed,
    Red,
    /// The deadline passed; the tree was killed.
    Timeout {
        evidence: Evidence,
    },
    /// The host already had `ORCH_MAX_CONCURRENT_RUNS` tracked runs alive; the command never ran.
    LockBusy,
    /// Anything else: an exit status that means no verdict, a signal orch did not send, a program
    /// that cannot start, a lost lease.
    Other {
        reason: String,
    },
    /// orch received SIGINT/SIGTERM/SIGHUP (`signal`) and killed the tree.
    Cancelled {
        signal: i32,
    },
}

impl RunOutcome {
    /// The outcome's name as stored in `runs.outcome` and printed.
    pub fn name(&self) -> &'static str {
        match self {
            RunOutcome::Passed => "passed",
            RunOutcome::Red => "red",
            RunOutcome::Timeout { .. } => "timeout",
            RunOutcome::LockBusy => "lock-busy",
            RunOutcome::Other { .. } => "other",
            RunOutcome::Cancelled { .. } => "cancelled",
        }
    }

    /// Whether the outcome is an infra failure (timeout, lock-busy, other): re-queued, never
    /// rolled back.
    pub fn is_infra(&self) -> bool {
        matches!(
            self,
            RunOutcome::Timeout { .. } | RunOutcome::LockBusy | RunOutcome::Other { .. }
        )
    }
}

/// Everything a caller learns about one run.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub outcome: RunOutcome,
    /// The leader's exit code, when it exited rather than died of a signal.
    pub exit_status: Option<i32>,
    /// The signal the leader died of, when it did.
    pub signal: Option<i32>,
    /// The output, head and tail within the cap, with a `[… N bytes cut …]` marker between.
    pub output: String,
    /// The `runs` row of a tracked run.
    pub run_id: Option<i64>,
    /// From exec until the tree was gone.
    pub wall: Duration,
    /// The heartbeat said the caller lost its lease: the tree was killed at once.
    pub aborted: bool,
    /// This process finished the `runs` row (false: untracked, or a reaper finished it first — then
    /// the caller writes nothing else about the run).
    pub finished_by_me: bool,
    /// The errno of a command that could not start (`ENOENT`: not found; `EACCES`: not
    /// executable); it never ran.
    pub start_errno: Option<i32>,
    /// Members of the process group still alive when the run ended, killed then.
    pub killed_in_group: u32,
    /// Descendants that had left the group (setsid, double fork), found re-parented to orch and
    /// killed.
    pub killed_escaped: u32,
    /// Pids that could not be killed and reaped within the bound (a process stuck in the kernel);
    /// empty on every ordinary path.
    pub survivors: Vec<i32>,
}

impl RunResult {
    /// The result of a run that never started because the host was full.
    pub(crate) fn lock_busy() -> RunResult {
        RunResult {
            outcome: RunOutcome::LockBusy,
            exit_status: None,
            signal: None,
            output: String::new(),
            run_id: None,
            wall: Duration::ZERO,
            aborted: false,
            finished_by_me: false,
            start_errno: None,
            killed_in_group: 0,
            killed_escaped: 0,
            survivors: Vec::new(),
        }
    }
}

/// The outcome of a command that exited with `code` on its own.
pub(crate) fn from_exit_code(codes: ExitCodes, code: i32) -> RunOutcome {
    match (codes, code) {
        (_, 0) => RunOutcome::Passed,
        (ExitCodes::Plain, _) => RunOutcome::Red,
        (ExitCodes::Pytest, 1) => RunOutcome::Red,
        (ExitCodes::Pytest, 5) => RunOutcome::Red,
        (ExitCodes::Pytest, code) => RunOutcome::Other {
            reason: format!("exit status {code} ({})", pytest_meaning(code)),
        },
    }
}

fn pytest_meaning(code: i32) -> &'static str {
    match code {
        2 => "pytest was interrupted",
        3 => "pytest internal error",
        4 => "pytest usage error, or a conftest that fails to import",
        6 => "pytest: too many warnings",
        _ => "not a pytest verdict",
    }
}

/// The outcome of a command whose leader died of `signal` that orch did not send.
pub(crate) fn from_foreign_signal(signal: i32) -> RunOutcome {
    RunOutcome::Other {
        reason: format!(
            "killed by {} (not sent by orch)",
            super::signals::signal_name(signal)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pytest_codes_map_to_passed_red_or_other() {
        let of = |c| from_exit_code(ExitCodes::Pytest, c).name();
        assert_eq!(
            [0, 1, 2, 3, 4, 5, 6, 7].map(of),
            ["passed", "red", "other", "other", "other", "red", "other", "other"]
        );
        assert_eq!(from_exit_code(ExitCodes::Plain, 3).name(), "red");
    }

    #[test]
    fn outcomes_serialize_with_their_kebab_case_tag() {
        let json = serde_json::to_value(RunOutcome::LockBusy).unwrap();
        assert_eq!(json, serde_json::json!({"outcome": "lock-busy"}));
        let json = serde_json::to_value(RunOutcome::Other { reason: "x".into() }).unwrap();
        assert_eq!(json, serde_json::json!({"outcome": "other", "reason": "x"}));
    }
}
