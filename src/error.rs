//! The exit-code contract: every outcome a command can end with, and the typed failure that
//! carries one of them to `main`.
//!
//! Exit codes are part of the contract — CI scripts branch on them — so they are named here once
//! and documented in the README and the man page from this list.

use std::fmt;

use serde::Serialize;

/// One of the contract's exit codes (DESIGN.md, "Commands").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exit {
    /// Done: transition made, gate passed, duplicate event, nothing to do.
    Ok,
    /// Internal error.
    Internal,
    /// Usage or configuration error.
    Usage,
    /// Not found: a task, or the database (only `orch repo add` creates one).
    NotFound,
    /// Lost race: a live lease holder, or the CAS found another stage or version.
    LostRace,
    /// Illegal transition: the edge is not in the stage table.
    Illegal,
    /// Task on HOLD: a human must release it first.
    Held,
    /// Gate red: rolled back to `development`, or put on HOLD because retries are spent.
    GateRed,
    /// Infra failure, or a re-queue that is not due yet: the task keeps its stage.
    Infra,
    /// HOLD raised with exactly one alert.
    Exhausted,
    /// Cancelled: orch received SIGINT/SIGTERM/SIGHUP; nothing routed.
    Cancelled,
}

impl Exit {
    /// Every exit code with its meaning, in the order the README and man page print them.
    pub const ALL: [Exit; 11] = [
        Exit::Ok,
        Exit::Internal,
        Exit::Usage,
        Exit::NotFound,
        Exit::LostRace,
        Exit::Illegal,
        Exit::Held,
        Exit::GateRed,
        Exit::Infra,
        Exit::Exhausted,
        Exit::Cancelled,
    ];

    pub fn code(self) -> i32 {
        match self {
            Exit::Ok => 0,
            Exit::Internal => 1,
            Exit::Usage => 2,
            Exit::NotFound => 3,
            Exit::LostRace => 4,
            Exit::Illegal => 5,
            Exit::Held => 6,
            Exit::GateRed => 10,
            Exit::Infra => 11,
            Exit::Exhausted => 12,
            Exit::Cancelled => 13,
        }
    }

    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Ok => "done: transition made, gate passed, duplicate event (its first outcome is reported), nothing to do",
            Exit::Internal => "internal error",
            Exit::Usage => "usage or configuration error",
            Exit::NotFound => "not found: the task, or the database (only `orch repo add` creates one)",
            Exit::LostRace => "lost race: lease held by a live owner, or the CAS found another stage/version; nothing written",
            Exit::Illegal => "illegal transition: the edge is not in the stage table; nothing written",
            Exit::Held => "task on HOLD: a human must release it first; nothing written",
            Exit::GateRed => "gate red: rolled back to `development`, or put on HOLD because developer retries are spent",
            Exit::Infra => "infra failure (timeout, lock-busy, other), or the re-queue is not due yet: the task keeps its stage",
            Exit::Exhausted => "HOLD raised with exactly one alert: infra retries exhausted, no proof of merge, no re-test verdict to merge, or a problem no retry fixes (a branch gone from the remote, a gate's program missing)",
            Exit::Cancelled => "cancelled: orch received SIGINT/SIGTERM/SIGHUP; the run was killed, nothing routed, no budget spent",
        }
    }
}

/// A failure that ends a command with a specific exit code and one line of explanation.
///
/// Raised through `anyhow` and recognised by `main`; anything else that reaches `main` is an
/// internal error (exit 1).
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Builds an `anyhow::Error` that `main` turns into `exit` with `message` on one line.
pub fn failure(exit: Exit, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure {
        exit,
        message: message.into(),
    })
}

/// The exit code an error ends the process with.
pub fn exit_of(err: &anyhow::Error) -> Exit {
    err.downcast_ref::<Failure>()
        .map(|f| f.exit)
        .unwrap_or(Exit::Internal)
}
