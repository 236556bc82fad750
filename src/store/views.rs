//! Aggregate reads for `orch queue`: each one a single SQL statement over an index, never a scan
//! of history in Rust.

use anyhow::{Context, Result};
use rusqlite::OptionalExtension;
use serde::Serialize;

use super::Db;
use crate::stages::Stage;

/// One row of the `stages` block.
#[derive(Clone, Debug, Serialize)]
pub struct StageCount {
    pub stage: String,
    pub count: i64,
    pub held: i64,
    /// When the longest-waiting task entered this stage (wall ms).
    pub oldest_since: i64,
}

/// An alert as the queue shows it.
#[derive(Clone, Debug, Serialize)]
pub struct AlertRow {
    pub id: i64,
    pub key: String,
    pub task_id: Option<String>,
    pub kind: String,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// A run that has not finished.
#[derive(Clone, Debug, Serialize)]
pub struct OpenRun {
    pub id: i64,
    pub task_id: Option<String>,
    pub gate: String,
    pub leader_pid: i32,
    pub owner_pid: i32,
    pub host: String,
    pub started_at: i64,
    /// The run's own timeout (ms); 0 when it has none.
    pub timeout_ms: i64,
}

/// A task on HOLD, as the queue lists it.
#[derive(Clone, Debug, Serialize)]
pub struct HeldTask {
    pub task_id: String,
    pub stage: String,
    pub reason: String,
    pub held_since: Option<i64>,
    /// The goal it keeps through the HOLD.
    pub goal: Option<Stage>,
}

impl Db<'_> {
    pub fn stage_counts(&self) -> Result<Vec<StageCount>> {
        let mut stmt = self.conn.prepare(
            // One seek per stage instead of a pass over every task: min() is a seek on
            // tasks_by_stage, the held count reads only held tasks (tasks_held).
            "SELECT s.column1,
                    (SELECT count(*) FROM tasks WHERE stage = s.column1),
                    (SELECT count(*) FROM tasks INDEXED BY tasks_held
                      WHERE stage = s.column1 AND hold_reason IS NOT NULL),
                    (SELECT min(updated_at) FROM tasks WHERE stage = s.column1)
               FROM (VALUES ('created'), ('analysis'), ('architecture'), ('development'),
                            ('review'), ('testing'), ('deploy-staging'), ('deploy'), ('done'),
                            ('cancelled')) AS s
              WHERE EXISTS (SELECT 1 FROM tasks WHERE stage = s.column1)",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(StageCount {
                stage: r.get(0)?,
                count: r.get(1)?,
                held: r.get(2)?,
                oldest_since: r.get(3)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .context("counting tasks per stage")
    }

    pub fn recent_alerts(&self, limit: i64) -> Result<Vec<AlertRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, key, task_id, kind, created_at, delivered_at, attempts, last_error
               FROM alerts ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok(AlertRow {
                id: r.get(0)?,
                key: r.get(1)?,
                task_id: r.get(2)?,
                kind: r.get(3)?,
                created_at: r.get(4)?,
                delivered_at: r.get(5)?,
                attempts: r.get(6)?,
                last_error: r.get(7)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading alerts")
    }

    /// (total alerts, undelivered alerts).
    pub fn alert_totals(&self) -> Result<(i64, i64)> {
        self.conn
            .query_row(
                "SELECT count(*), (SELECT count(*) FROM alerts WHERE delivered_at IS NULL)
                   FROM alerts",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .context("counting alerts")
    }

    pub fn open_runs(&self) -> Result<Vec<OpenRun>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, task_id, gate, leader_pid, owner_pid, host, started_at, timeout_ms
               FROM runs WHERE finished_at IS NULL ORDER BY started_at",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(OpenRun {
                id: r.get(0)?,
                task_id: r.get(1)?,
                gate: r.get(2)?,
                leader_pid: r.get(3)?,
                owner_pid: r.get(4)?,
                host: r.get(5)?,
                started_at: r.get(6)?,
                timeout_ms: r.get(7)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading open runs")
    }

    /// The tasks on HOLD, longest held first, at most `limit` (the partial index `tasks_held`).
    pub fn held_tasks(&self, limit: i64) -> Result<Vec<HeldTask>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, stage, hold_reason, held_since, goal FROM tasks
              WHERE hold_reason IS NOT NULL ORDER BY held_since, id LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok(HeldTask {
                task_id: r.get(0)?,
                stage: r.get(1)?,
                reason: r.get(2)?,
                held_since: r.get(3)?,
                goal: r.get(4)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading held tasks")
    }

    /// The goal of each task with a pending re-queue, for the tasks that have one: where
    /// `advance --next` continues to once it runs the edge.
    pub fn requeue_goals(&self) -> Result<Vec<(String, Stage)>> {
        let mut stmt = self.conn.prepare(
            "SELECT r.task_id, t.goal FROM requeues r JOIN tasks t ON t.id = r.task_id
              WHERE t.goal IS NOT NULL",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading the goals of re-queued tasks")
    }

    /// Since when anything could have needed a reaper: the first repository registered, else the
    /// first task (wall ms); `None` on a database with neither.
    pub fn watched_since(&self) -> Result<Option<i64>> {
        self.conn
            .query_row(
                "SELECT min(t) FROM (SELECT min(created_at) AS t FROM repos
                                     UNION ALL SELECT min(created_at) FROM tasks)",
                [],
                |r| r.get(0),
            )
            .context("reading the registry's age")
    }

    /// The last verdict-bearing outcome of each gate: (gate, outcome, at). Per gate, a walk back
    /// from its newest event on gate_events_by_gate (gate, id) to the first verdict.
    pub fn last_gate_outcomes(&self) -> Result<Vec<(String, String, i64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT gate, outcome, at FROM gate_events
              WHERE gate = ?1 AND outcome IN ('passed', 'skipped', 'red', 'timeout', 'lock-busy',
                                              'other', 'cancelled', 'no-proof')
              ORDER BY id DESC LIMIT 1",
        )?;
        let mut out = Vec::new();
        for gate in crate::outcome::GateKind::ALL {
            let row = stmt
                .query_row([gate.name()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()
                .context("reading the last gate outcomes")?;
            out.extend(row);
        }
        Ok(out)
    }
}
