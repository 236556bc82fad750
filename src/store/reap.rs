//! The `runs` queries of the routine that finishes dead runs.

use anyhow::{Context, Result};
use rusqlite::{params, OptionalExtension};

use super::runs::{run_from_row, RUN_COLUMNS};
use super::{Db, RunRow};
use crate::owner::OwnerId;
use crate::stages::Edge;

impl Db<'_> {
    /// Unfinished runs started by the process (pid, start time) on this host, boot and namespace.
    pub fn unfinished_runs_of(&self, owner: &OwnerId) -> Result<Vec<RunRow>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs
              WHERE finished_at IS NULL AND owner_pid = ?1 AND owner_pid_start = ?2
                AND host = ?3 AND boot_id = ?4 AND pid_ns = ?5
              ORDER BY started_at"
        ))?;
        let rows = stmt.query_map(
            params![
                owner.pid,
                owner.pid_start as i64,
                owner.host,
                owner.boot_id,
                owner.pid_ns
            ],
            run_from_row,
        )?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading a holder's unfinished runs")
    }

    /// Finishes a run as `reaped` only if nobody finished it yet. Whoever gets `true` routes it;
    /// anyone else writes nothing.
    pub fn reap_run(&self, id: i64, why: &str, now: i64) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE runs SET finished_at = ?2, outcome = 'reaped', evidence = ?3
              WHERE id = ?1 AND finished_at IS NULL",
            params![id, now, serde_json::json!({ "reaped": why }).to_string()],
        )? == 1)
    }

    /// The branch tip of the budget an edge last spent for a task, if any.
    pub fn latest_budget_tip(&self, task_id: &str, edge: Edge) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT base_tip FROM edge_budgets WHERE task_id = ?1 AND edge = ?2
                  ORDER BY rowid DESC LIMIT 1",
                params![task_id, edge],
                |r| r.get(0),
            )
            .optional()
            .context("reading a budget")
    }
}
