//! What one step did (`AdvanceReport`, also the outcome stored with its event id), what it was
//! asked (`AdvanceRequest`), and the one-line failures of the contract's refusals.

use serde::Serialize;

use crate::error::{failure, Exit};
use crate::gates::GateResult;
use crate::routing::{Requeued, Rollback};
use crate::stages::{next_stages, Stage};
use crate::store::{Db, EventRecord, LeaseRow, Task};

/// One `orch advance`.
#[derive(Clone, Debug)]
pub(crate) struct AdvanceRequest {
    pub task_id: String,
    pub to: Stage,
    pub expect: Option<Stage>,
    pub actor: String,
    pub event_id: Option<String>,
    pub validated_sha: Option<String>,
    pub reason: Option<String>,
    /// Run a re-queued edge before its due time.
    pub force: bool,
    /// What this step does with the task's goal.
    pub goal: GoalRequest,
}

/// What a step does with the task's goal (`tasks.goal`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GoalRequest {
    /// `orch advance ID --to S [--goal G]`: the latest request governs. The goal (`None`: none)
    /// is stored once the step holds the task — right after its lease is taken on a gated edge,
    /// in the commit itself on an ungated one — and cleared the same way by a request without
    /// one.
    Set(Option<Stage>),
    /// A step that follows the goal already stored (`advance --next`, the next edge on the way to
    /// it) or leaves it alone (`merge-gate retest`).
    Keep,
}

/// What one `orch advance` (or `orch merge-gate retest`) did; also the outcome stored with its
/// event id.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct AdvanceReport {
    pub task_id: String,
    pub outcome: String,
    pub exit_code: i32,
    pub from: Stage,
    pub stage: Stage,
    pub version: i64,
    pub lease_token: Option<i64>,
    /// Whether lease + CAS guarded the write (false under the kill-switch or out of scope).
    pub guarded: bool,
    pub message: String,
    /// Every gate that ran, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateResult>,
    /// The re-queue (or exhaustion) an infra outcome led to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requeue: Option<Requeued>,
    /// The rollback a red gate led to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    /// For a duplicate event: the outcome of its first delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_outcome: Option<serde_json::Value>,
    /// The goal the task still has after this step (`advance --goal`): a re-queued edge keeps it
    /// and `advance --next` continues to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goal: Option<Stage>,
    /// When this process walked more than one edge on the way to a goal: every step's report in
    /// order, this one (the last) included. The exit code is the last step's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<AdvanceReport>,
    #[serde(skip)]
    pub exit: Exit,
    /// A later step on the way to a goal that was refused (lost race, HOLD, …): its message is the
    /// failure's one line, printed where failures go.
    #[serde(skip)]
    pub refused: bool,
}

impl AdvanceReport {
    pub(crate) fn new(task: &Task, outcome: &str, exit: Exit, message: String) -> AdvanceReport {
        AdvanceReport {
            task_id: task.id.clone(),
            outcome: outcome.into(),
            exit_code: exit.code(),
            from: task.stage,
            stage: task.stage,
            version: task.version,
            lease_token: None,
            guarded: true,
            message,
            gates: Vec::new(),
            requeue: None,
            rollback: None,
            first_outcome: None,
            goal: None,
            steps: Vec::new(),
            exit,
            refused: false,
        }
    }

    /// The report of a re-delivered event: its first outcome, nothing done.
    pub(crate) fn duplicate(task: &Task, event: EventRecord) -> AdvanceReport {
        let mut report = AdvanceReport::new(
            task,
            "duplicate",
            Exit::Ok,
            format!(
                "event `{}` was already processed (exit {}); nothing done",
                event.event_id, event.exit_code
            ),
        );
        report.first_outcome = Some(event.outcome);
        report
    }
}

/// The task row, or exit 3.
pub(crate) fn load_task(db: &Db, id: &str) -> anyhow::Result<Task> {
    db.task(id)?.ok_or_else(|| {
        failure(
            Exit::NotFound,
            format!("task `{id}` not found (hint: `orch task list`)"),
        )
    })
}

pub(crate) fn illegal(from: Stage, to: Stage) -> anyhow::Error {
    let allowed: Vec<&str> = next_stages(from).iter().map(|s| s.as_str()).collect();
    let hint = if allowed.is_empty() {
        format!("`{from}` is terminal")
    } else {
        format!("from `{from}` a task may go to: {}", allowed.join(", "))
    };
    failure(
        Exit::Illegal,
        format!("illegal transition `{from} → {to}` (hint: {hint}; see `orch doctor`)"),
    )
}

pub(crate) fn held(task: &Task) -> anyhow::Error {
    failure(
        Exit::Held,
        format!(
            "task `{}` is on HOLD: {} (hint: `orch task release {}` once a human has looked)",
            task.id,
            task.hold_reason.as_deref().unwrap_or("no reason given"),
            task.id
        ),
    )
}

pub(crate) fn busy(row: &LeaseRow) -> anyhow::Error {
    failure(
        Exit::LostRace,
        format!("task `{}` is held by {}", row.task_id, row.describe()),
    )
}

pub(crate) fn reclaim_blocked(row: &LeaseRow) -> anyhow::Error {
    failure(
        Exit::LostRace,
        format!(
            "task `{}`: its dead lease holder {} left a run whose processes could not be shown finished; backing off (hint: `orch reap`)",
            row.task_id,
            row.describe()
        ),
    )
}

pub(crate) fn lease_lost(id: &str) -> anyhow::Error {
    failure(
        Exit::LostRace,
        format!("task `{id}`: this actor lost its lease while its gates ran; nothing written"),
    )
}

pub(crate) fn changing_hands(id: &str) -> anyhow::Error {
    failure(
        Exit::LostRace,
        format!("task `{id}`: its lease keeps changing hands"),
    )
}

/// The task is not where this actor saw it: HOLD (6) if it is held now, else a lost race (4).
pub(crate) fn moved_on(id: &str, now: Option<Task>, expected: Stage) -> anyhow::Error {
    match now {
        Some(t) if t.is_held() => held(&t),
        Some(t) => failure(
            Exit::LostRace,
            format!(
                "task `{id}` is at `{}` (version {}) now, not where this actor saw it (`{expected}`)",
                t.stage, t.version
            ),
        ),
        None => failure(Exit::NotFound, format!("task `{id}` not found")),
    }
}
