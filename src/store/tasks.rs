//! Rows of `tasks`, and the stage writes: the compare-and-swap and the plain write.

use anyhow::{Context, Result};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::Db;
use crate::stages::{goals_kept_at, Stage};

/// A task as stored.
#[derive(Clone, Debug, Serialize)]
pub struct Task {
    pub id: String,
    pub repo: String,
    pub branch: String,
    pub target: String,
    pub stage: Stage,
    pub version: i64,
    pub validated_sha: Option<String>,
    pub dev_retries: i64,
    pub hold_reason: Option<String>,
    pub held_since: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The stage an `advance --goal` asked the pipeline to reach (`deploy` or `done`), kept until
    /// it is reached or the task leaves the forward path.
    pub goal: Option<Stage>,
}

impl Task {
    pub fn is_held(&self) -> bool {
        self.hold_reason.is_some()
    }
}

/// What `orch task add` registers.
#[derive(Clone, Debug)]
pub struct NewTask {
    pub id: String,
    pub repo: String,
    pub branch: String,
    pub target: String,
    pub stage: Stage,
}

const TASK_COLUMNS: &str = "id, repo, branch, target, stage, version, validated_sha, \
     dev_retries, hold_reason, held_since, created_at, updated_at, goal";

fn task_from_row(row: &Row) -> rusqlite::Result<Task> {
    Ok(Task {
        id: row.get(0)?,
        repo: row.get(1)?,
        branch: row.get(2)?,
        target: row.get(3)?,
        stage: row.get(4)?,
        version: row.get(5)?,
        validated_sha: row.get(6)?,
        dev_retries: row.get(7)?,
        hold_reason: row.get(8)?,
        held_since: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
        goal: row.get(12)?,
    })
}

/// The condition a compare-and-swap requires of a task row.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    pub stage: Stage,
    pub version: i64,
    /// The fencing token the writer holds, when the write is under a lease.
    pub lease_token: Option<i64>,
    pub task_id: &'a str,
}

impl Db<'_> {
    pub fn task(&self, id: &str) -> Result<Option<Task>> {
        self.conn
            .query_row(
                &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"),
                [id],
                task_from_row,
            )
            .optional()
            .context("reading a task")
    }

    /// Visits tasks, optionally of one stage, oldest first, one row at a time (a list of 100k
    /// tasks is streamed, never held in memory).
    pub fn each_task(
        &self,
        stage: Option<Stage>,
        mut f: impl FnMut(Task) -> Result<()>,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE ?1 IS NULL OR stage = ?1 ORDER BY created_at, id"
        ))?;
        let mut rows = stmt.query([stage.map(|s| s.as_str())])?;
        while let Some(row) = rows.next().context("listing tasks")? {
            f(task_from_row(row)?)?;
        }
        Ok(())
    }

    /// The longest task id (for aligning a list), 0 when there is none.
    pub fn longest_task_id(&self) -> Result<usize> {
        let n: Option<i64> = self
            .conn
            .query_row("SELECT max(length(id)) FROM tasks", [], |r| r.get(0))?;
        Ok(n.unwrap_or(0) as usize)
    }

    pub fn insert_task(&self, t: &NewTask, now: i64) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO tasks (id, repo, branch, target, stage, version, created_at,
                                    updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6)",
                params![t.id, t.repo, t.branch, t.target, t.stage, now],
            )
            .context("registering a task")?;
        Ok(())
    }

    /// The compare-and-swap: moves the task to `to` only if it is still exactly at the expected
    /// stage and version, not on HOLD, and (under a lease) the caller's token still holds it.
    /// Returns the new version, or `None` when the task is not where the caller saw it.
    ///
    /// The task's goal survives the write only while it is still ahead of `to`
    /// (`stages::goal_ahead`): the goal reached, a rollback or a cancel drops it.
    pub fn cas_stage(
        &self,
        expected: Expected,
        to: Stage,
        validated_sha: Option<&str>,
        dev_retries_delta: i64,
        now: i64,
    ) -> Result<Option<i64>> {
        let kept = goals_kept_at(to);
        self.conn
            .query_row(
                "UPDATE tasks
                    SET stage = ?1, version = version + 1, updated_at = ?2,
                        validated_sha = coalesce(?3, validated_sha),
                        dev_retries = dev_retries + ?4,
                        goal = CASE WHEN goal IN (?9, ?10) THEN goal END
                  WHERE id = ?5 AND stage = ?6 AND version = ?7 AND hold_reason IS NULL
                    AND (?8 IS NULL OR EXISTS (
                        SELECT 1 FROM transition_lease WHERE task_id = ?5 AND token = ?8))
                  RETURNING version",
                params![
                    to.as_str(),
                    now,
                    validated_sha,
                    dev_retries_delta,
                    expected.task_id,
                    expected.stage.as_str(),
                    expected.version,
                    expected.lease_token,
                    kept[0],
                    kept[1],
                ],
                |r| r.get(0),
            )
            .optional()
            .context("compare-and-swap of a task's stage")
    }

    /// The plain, unconditional write the kill-switch degrades to. Returns the stage it replaced
    /// and the new version. The goal is kept or dropped as by `cas_stage`.
    pub fn plain_write_stage(
        &self,
        task_id: &str,
        to: Stage,
        validated_sha: Option<&str>,
        dev_retries_delta: i64,
        now: i64,
    ) -> Result<Option<(Stage, i64)>> {
        let Some(before) = self.task(task_id)? else {
            return Ok(None);
        };
        let kept = goals_kept_at(to);
        self.conn
            .execute(
                "UPDATE tasks
                    SET stage = ?1, version = version + 1, updated_at = ?2,
                        validated_sha = coalesce(?3, validated_sha),
                        dev_retries = dev_retries + ?4,
                        goal = CASE WHEN goal IN (?6, ?7) THEN goal END
                  WHERE id = ?5",
                params![
                    to.as_str(),
                    now,
                    validated_sha,
                    dev_retries_delta,
                    task_id,
                    kept[0],
                    kept[1]
                ],
            )
            .context("writing a task's stage")?;
        Ok(Some((before.stage, before.version + 1)))
    }

    /// Stores the goal an `advance --goal` asked for (`None` clears it), under the same
    /// condition as a CAS when `expected` is given (the caller's lease still held, the task where
    /// it saw it), else by id alone (the kill-switch's plain write, or inside the transaction that
    /// has just moved the task). The version does not change. Returns whether the row matched.
    pub fn set_goal(
        &self,
        expected: Option<Expected>,
        task_id: &str,
        goal: Option<Stage>,
    ) -> Result<bool> {
        let changed = match expected {
            Some(e) => self.conn.execute(
                "UPDATE tasks SET goal = ?1
                  WHERE id = ?2 AND stage = ?3 AND version = ?4 AND hold_reason IS NULL
                    AND (?5 IS NULL OR EXISTS (
                        SELECT 1 FROM transition_lease WHERE task_id = ?2 AND token = ?5))",
                params![goal, task_id, e.stage, e.version, e.lease_token],
            ),
            None => self.conn.execute(
                "UPDATE tasks SET goal = ?1 WHERE id = ?2",
                params![goal, task_id],
            ),
        }
        .context("storing a task's goal")?;
        Ok(changed == 1)
    }

    /// Puts the task on HOLD under the same condition as a CAS (when `expected` has a stage
    /// check); the version does not change. Returns whether the hold was set.
    pub fn set_hold(
        &self,
        expected: Option<Expected>,
        task_id: &str,
        reason: &str,
        actor: &str,
        now: i64,
    ) -> Result<bool> {
        let changed = match expected {
            Some(e) => self.conn.execute(
                "UPDATE tasks SET hold_reason = ?1, held_since = ?2
                  WHERE id = ?3 AND stage = ?4 AND version = ?5 AND hold_reason IS NULL
                    AND (?6 IS NULL OR EXISTS (
                        SELECT 1 FROM transition_lease WHERE task_id = ?3 AND token = ?6))",
                params![
                    reason,
                    now,
                    task_id,
                    e.stage.as_str(),
                    e.version,
                    e.lease_token
                ],
            )?,
            None => self.conn.execute(
                "UPDATE tasks SET hold_reason = ?1, held_since = ?2
                  WHERE id = ?3 AND hold_reason IS NULL",
                params![reason, now, task_id],
            )?,
        };
        if changed == 1 {
            self.insert_hold_row(task_id, "hold", Some(reason), actor, now)?;
        }
        Ok(changed == 1)
    }

    /// Lifts a HOLD and clears the developer retries. Returns whether the task was held.
    pub fn release_hold(&self, task_id: &str, actor: &str, now: i64) -> Result<bool> {
        let changed = self.conn.execute(
            "UPDATE tasks SET hold_reason = NULL, held_since = NULL, dev_retries = 0
              WHERE id = ?1 AND hold_reason IS NOT NULL",
            [task_id],
        )?;
        if changed == 1 {
            self.insert_hold_row(task_id, "release", None, actor, now)?;
        }
        Ok(changed == 1)
    }

    fn insert_hold_row(
        &self,
        task_id: &str,
        action: &str,
        reason: Option<&str>,
        actor: &str,
        now: i64,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO holds (task_id, action, reason, actor, at, seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                task_id,
                action,
                reason,
                actor,
                now,
                self.next_history_seq()?
            ],
        )?;
        Ok(())
    }
}
