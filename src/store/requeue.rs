//! Rows of `requeues` (a task's pending re-queue of an edge), `edge_budgets` (the infra budget and
//! deferral count per task, edge and branch tip) and `verdicts` (passing sub-gate verdicts).

use anyhow::{Context, Result};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::Db;
use crate::outcome::{GateKind, VerdictHow};
use crate::stages::{find_edge, text_column, Edge, Stage};

/// A pending re-queue.
#[derive(Clone, Debug, Serialize)]
pub struct RequeueRow {
    pub task_id: String,
    pub from_stage: Stage,
    pub to_stage: Stage,
    pub kind: RequeueKind,
    pub attempt: i64,
    pub reason: String,
    pub due_at: i64,
    pub due_boot_ms: i64,
    pub boot_id: String,
    pub created_at: i64,
    pub claimed_at: Option<i64>,
    pub budget_tip: Option<String>,
    pub published_tip: Option<String>,
}

/// Why an edge is re-queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RequeueKind {
    /// An infra outcome: one attempt of the edge's infra budget.
    Infra,
    /// Lock-busy: deferred without spending the budget.
    Deferral,
}

impl RequeueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequeueKind::Infra => "infra",
            RequeueKind::Deferral => "deferral",
        }
    }
}

impl std::fmt::Display for RequeueKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RequeueKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "infra" => Ok(RequeueKind::Infra),
            "deferral" => Ok(RequeueKind::Deferral),
            other => Err(format!("unknown re-queue kind `{other}`")),
        }
    }
}

text_column!(RequeueKind);

impl RequeueRow {
    /// The re-queued edge, when the table has it.
    pub fn edge(&self) -> Option<Edge> {
        find_edge(self.from_stage, self.to_stage)
    }

    /// Whether this re-queue is of `edge`.
    pub fn is_of(&self, edge: Edge) -> bool {
        self.from_stage == edge.from && self.to_stage == edge.to
    }

    /// Milliseconds until it is due (negative once due): by `CLOCK_BOOTTIME` on the boot that
    /// wrote it, by wall clock otherwise.
    pub fn due_in_ms(&self) -> i64 {
        if self.boot_id == crate::host::boot_id() {
            self.due_boot_ms - crate::host::boot_ms()
        } else {
            self.due_at - crate::host::wall_ms()
        }
    }
}

const REQUEUE_COLUMNS: &str = "task_id, from_stage, to_stage, kind, attempt, reason, due_at, \
     due_boot_ms, boot_id, created_at, claimed_at, budget_tip, published_tip";

fn requeue_from_row(r: &Row) -> rusqlite::Result<RequeueRow> {
    Ok(RequeueRow {
        task_id: r.get(0)?,
        from_stage: r.get(1)?,
        to_stage: r.get(2)?,
        kind: r.get(3)?,
        attempt: r.get(4)?,
        reason: r.get(5)?,
        due_at: r.get(6)?,
        due_boot_ms: r.get(7)?,
        boot_id: r.get(8)?,
        created_at: r.get(9)?,
        claimed_at: r.get(10)?,
        budget_tip: r.get(11)?,
        published_tip: r.get(12)?,
    })
}

/// A repository's latest coverage measurement.
#[derive(Clone, Debug, Serialize)]
pub struct CoverageRow {
    pub repo: String,
    pub task_id: String,
    pub percent: f64,
    pub minimum: f64,
    pub at: i64,
}

/// A passing sub-gate verdict to store: the commits it judged and the hash of the configuration
/// that produced it.
#[derive(Clone, Debug)]
pub struct NewVerdict<'a> {
    pub task_id: &'a str,
    pub gate: GateKind,
    pub head: &'a str,
    pub target: &'a str,
    pub config_hash: &'a str,
    /// How the verdict was reached (`VerdictRow::how`).
    pub how: VerdictHow,
    /// The total coverage percent the re-test's own report measured, if it wrote one.
    pub coverage: Option<f64>,
    pub run_id: Option<i64>,
    pub at: i64,
}

/// A stored passing verdict of a sub-gate: the head H it judged, the target tip T it was rebased
/// onto and tested on, and how (`tested` by orch's re-test; `skipped` because CI validated
/// exactly H on a no-op rebase onto T; `None` for a verdict stored before schema v5).
#[derive(Clone, Debug, PartialEq)]
pub struct VerdictRow {
    pub head: String,
    pub target: String,
    pub how: Option<VerdictHow>,
    pub run_id: Option<i64>,
    /// The total coverage percent the re-test's own report measured, if it wrote one.
    pub coverage: Option<f64>,
}

/// The budget of one (task, edge, branch tip).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Budget {
    pub infra_attempts: i64,
    pub deferrals: i64,
}

impl Db<'_> {
    pub fn requeue(&self, task_id: &str) -> Result<Option<RequeueRow>> {
        self.conn
            .query_row(
                &format!("SELECT {REQUEUE_COLUMNS} FROM requeues WHERE task_id = ?1"),
                [task_id],
                requeue_from_row,
            )
            .optional()
            .context("reading a re-queue")
    }

    pub fn requeues(&self) -> Result<Vec<RequeueRow>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {REQUEUE_COLUMNS} FROM requeues ORDER BY due_at"
        ))?;
        let rows = stmt.query_map([], requeue_from_row)?;
        rows.collect::<rusqlite::Result<_>>()
            .context("listing re-queues")
    }

    /// Writes (or replaces) the task's pending re-queue.
    pub fn put_requeue(&self, row: &RequeueRow) -> Result<()> {
        self.conn
            .execute(
                &format!(
                    "INSERT OR REPLACE INTO requeues ({REQUEUE_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, NULL, ?11, ?12)"
                ),
                params![
                    row.task_id,
                    row.from_stage,
                    row.to_stage,
                    row.kind,
                    row.attempt,
                    row.reason,
                    row.due_at,
                    row.due_boot_ms,
                    row.boot_id,
                    row.created_at,
                    row.budget_tip,
                    row.published_tip
                ],
            )
            .context("re-queueing an edge")?;
        Ok(())
    }

    pub fn delete_requeue(&self, task_id: &str) -> Result<()> {
        self.conn
            .execute("DELETE FROM requeues WHERE task_id = ?1", [task_id])?;
        Ok(())
    }

    /// Claims the earliest due re-queue whose task is neither held nor leased, in one
    /// `UPDATE … RETURNING`. The caller takes the lease in the same transaction.
    pub fn claim_due_requeue(
        &self,
        now_wall: i64,
        now_boot: i64,
        boot_id: &str,
    ) -> Result<Option<RequeueRow>> {
        self.conn
            .query_row(
                &format!(
                    "UPDATE requeues SET claimed_at = ?1
                      WHERE task_id = (
                        SELECT r.task_id FROM requeues r JOIN tasks t ON t.id = r.task_id
                         WHERE t.hold_reason IS NULL
                           AND NOT EXISTS (SELECT 1 FROM transition_lease l WHERE l.task_id = r.task_id)
                           AND CASE WHEN r.boot_id = ?3 THEN r.due_boot_ms <= ?2 ELSE r.due_at <= ?1 END
                         ORDER BY r.due_at LIMIT 1)
                      RETURNING {REQUEUE_COLUMNS}"
                ),
                params![now_wall, now_boot, boot_id],
                requeue_from_row,
            )
            .optional()
            .context("claiming a due re-queue")
    }

    pub fn budget(&self, task_id: &str, edge: Edge, base_tip: &str) -> Result<Budget> {
        Ok(self
            .conn
            .query_row(
                "SELECT infra_attempts, deferrals FROM edge_budgets
                  WHERE task_id = ?1 AND edge = ?2 AND base_tip = ?3",
                params![task_id, edge, base_tip],
                |r| {
                    Ok(Budget {
                        infra_attempts: r.get(0)?,
                        deferrals: r.get(1)?,
                    })
                },
            )
            .optional()?
            .unwrap_or_default())
    }

    /// Adds to a budget's counts; returns the budget afterwards.
    pub fn spend_budget(
        &self,
        task_id: &str,
        edge: Edge,
        base_tip: &str,
        infra: i64,
        deferrals: i64,
    ) -> Result<Budget> {
        self.conn.execute(
            "INSERT INTO edge_budgets (task_id, edge, base_tip, infra_attempts, deferrals)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (task_id, edge, base_tip) DO UPDATE
               SET infra_attempts = infra_attempts + excluded.infra_attempts,
                   deferrals = deferrals + excluded.deferrals",
            params![task_id, edge, base_tip, infra, deferrals],
        )?;
        self.budget(task_id, edge, base_tip)
    }

    pub fn mark_budget_exhausted(
        &self,
        task_id: &str,
        edge: Edge,
        base_tip: &str,
        now: i64,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE edge_budgets SET exhausted_at = ?4
              WHERE task_id = ?1 AND edge = ?2 AND base_tip = ?3",
            params![task_id, edge, base_tip, now],
        )?;
        Ok(())
    }

    /// Clears every budget of a task (`orch task release`).
    pub fn clear_budgets(&self, task_id: &str) -> Result<usize> {
        Ok(self
            .conn
            .execute("DELETE FROM edge_budgets WHERE task_id = ?1", [task_id])?)
    }

    pub fn insert_verdict(&self, v: &NewVerdict) -> Result<()> {
        self.conn.execute(
            "INSERT INTO verdicts
                 (task_id, gate, head_sha, target_sha, config_hash, how, coverage, run_id, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                v.task_id,
                v.gate,
                v.head,
                v.target,
                v.config_hash,
                v.how,
                v.coverage,
                v.run_id,
                v.at
            ],
        )?;
        Ok(())
    }

    /// The latest passing verdict of `gate` for the task that the configuration `config_hash`
    /// produced. A verdict of another command or timeout is never reused.
    pub fn latest_verdict(
        &self,
        task_id: &str,
        gate: GateKind,
        config_hash: &str,
    ) -> Result<Option<VerdictRow>> {
        self.conn
            .query_row(
                "SELECT head_sha, target_sha, how, run_id, coverage FROM verdicts
                  WHERE task_id = ?1 AND gate = ?2 AND config_hash = ?3
                  ORDER BY id DESC LIMIT 1",
                params![task_id, gate, config_hash],
                |r| {
                    Ok(VerdictRow {
                        head: r.get(0)?,
                        target: r.get(1)?,
                        how: r.get(2)?,
                        run_id: r.get(3)?,
                        coverage: r.get(4)?,
                    })
                },
            )
            .optional()
            .context("reading a verdict")
    }

    /// The coverage the latest passing verdict of `gate` for exactly `head` under the
    /// configuration `config_hash` measured (its re-test's own report), and that re-test's run.
    pub fn measured_coverage(
        &self,
        task_id: &str,
        gate: GateKind,
        head: &str,
        config_hash: &str,
    ) -> Result<Option<(f64, Option<i64>)>> {
        self.conn
            .query_row(
                "SELECT coverage, run_id FROM verdicts
                  WHERE task_id = ?1 AND gate = ?2 AND head_sha = ?3 AND config_hash = ?4
                    AND coverage IS NOT NULL
                  ORDER BY id DESC LIMIT 1",
                params![task_id, gate, head, config_hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .context("reading a verdict's coverage")
    }

    /// Records the coverage a task's head measured, as its repository's latest.
    pub fn record_coverage(
        &self,
        repo: &str,
        task_id: &str,
        head: &str,
        percent: f64,
        minimum: f64,
        at: i64,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO coverage_reports (repo, task_id, head_sha, percent, minimum, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![repo, task_id, head, percent, minimum, at],
        )?;
        Ok(())
    }

    /// Every repository's latest coverage.
    pub fn coverage_reports(&self) -> Result<Vec<CoverageRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT repo, task_id, percent, minimum, at FROM coverage_reports ORDER BY repo",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(CoverageRow {
                repo: r.get(0)?,
                task_id: r.get(1)?,
                percent: r.get(2)?,
                minimum: r.get(3)?,
                at: r.get(4)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading coverage")
    }
}
