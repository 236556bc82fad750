//! Rows of `runs`: one per tracked process group orch starts. Owned by the process-group runner.
//!
//! A row is inserted (and committed) before its command may exec, so no tracked process runs
//! unrecorded; it is finished exactly once, by whoever wins `UPDATE … WHERE finished_at IS NULL`
//! — the live owner or a reaper — and the loser writes nothing else.

use anyhow::{Context, Result};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::Db;
use crate::host;
use crate::owner::OwnerId;

/// What the runner records before the command may exec. The owner (this process), host, boot,
/// pid namespace and start times are filled in by `Db::insert_run`.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub task_id: Option<String>,
    pub gate: String,
    pub command: String,
    pub leader_pid: i32,
    pub leader_pid_start: u64,
    /// The run's deadline in ms; 0 when it has none.
    pub timeout_ms: i64,
    /// The kill grace the run was started with, in ms.
    pub grace_ms: i64,
    /// The edge's budget key (see `runs.budget_tip` in the schema).
    pub budget_tip: Option<String>,
    pub published_tip: Option<String>,
    /// The protection the command had (`landlock ABI n`, `none (why)`); `None` for a command
    /// that is not the agent's code.
    pub sandbox: Option<String>,
}

/// A run as stored.
#[derive(Clone, Debug, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub task_id: Option<String>,
    pub gate: String,
    pub command: String,
    pub owner_pid: i32,
    pub owner_pid_start: u64,
    pub leader_pid: i32,
    pub leader_pid_start: u64,
    pub boot_id: String,
    pub pid_ns: String,
    pub host: String,
    pub started_at: i64,
    pub started_boot_ms: i64,
    pub timeout_ms: i64,
    pub finished_at: Option<i64>,
    pub outcome: Option<String>,
    pub exit_status: Option<i64>,
    pub output: Option<String>,
    /// The outcome's details as JSON (the timeout evidence, the reason of `other`, …).
    pub evidence: Option<String>,
    pub budget_tip: Option<String>,
    pub published_tip: Option<String>,
    /// The protection the command had; `None` when it is not the agent's code.
    pub sandbox: Option<String>,
    /// The kill grace the run was started with (ms); `None` for a row from before v4.
    pub grace_ms: Option<i64>,
}

impl RunRow {
    /// The identity of the orch process that owns the run.
    pub fn owner_id(&self) -> OwnerId {
        OwnerId::of(
            self.owner_pid,
            self.owner_pid_start,
            &self.host,
            &self.boot_id,
            &self.pid_ns,
        )
    }
}

pub(super) const RUN_COLUMNS: &str =
    "id, task_id, gate, command, owner_pid, owner_pid_start, leader_pid, \
     leader_pid_start, boot_id, pid_ns, host, started_at, started_boot_ms, timeout_ms, \
     finished_at, outcome, exit_status, output, evidence, budget_tip, published_tip, sandbox, \
     grace_ms";

pub(super) fn run_from_row(r: &Row) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        task_id: r.get(1)?,
        gate: r.get(2)?,
        command: r.get(3)?,
        owner_pid: r.get(4)?,
        owner_pid_start: r.get::<_, i64>(5)? as u64,
        leader_pid: r.get(6)?,
        leader_pid_start: r.get::<_, i64>(7)? as u64,
        boot_id: r.get(8)?,
        pid_ns: r.get(9)?,
        host: r.get(10)?,
        started_at: r.get(11)?,
        started_boot_ms: r.get(12)?,
        timeout_ms: r.get(13)?,
        finished_at: r.get(14)?,
        outcome: r.get(15)?,
        exit_status: r.get(16)?,
        output: r.get(17)?,
        evidence: r.get(18)?,
        budget_tip: r.get(19)?,
        published_tip: r.get(20)?,
        sandbox: r.get(21)?,
        grace_ms: r.get(22)?,
    })
}

impl Db<'_> {
    /// Inserts an unfinished run owned by this process, on this host, boot and pid namespace;
    /// returns its id. Call it inside the write that also checked the host's run limit.
    pub fn insert_run(&self, run: &NewRun) -> Result<i64> {
        let (owner_pid, owner_pid_start) = host::current_process();
        self.conn
            .execute(
                "INSERT INTO runs (task_id, gate, command, owner_pid, owner_pid_start, leader_pid,
                     leader_pid_start, boot_id, pid_ns, host, started_at, started_boot_ms, timeout_ms,
                     budget_tip, published_tip, sandbox, grace_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                         ?17)",
                params![
                    run.task_id,
                    run.gate,
                    run.command,
                    owner_pid,
                    owner_pid_start as i64,
                    run.leader_pid,
                    run.leader_pid_start as i64,
                    host::boot_id(),
                    host::pid_namespace(),
                    host::host_name(),
                    host::wall_ms(),
                    host::boot_ms(),
                    run.timeout_ms,
                    run.budget_tip,
                    run.published_tip,
                    run.sandbox,
                    run.grace_ms,
                ],
            )
            .context("recording a run")?;
        Ok(self.conn.last_insert_rowid())
    }

    /// One run by id.
    pub fn run_row(&self, id: i64) -> Result<Option<RunRow>> {
        self.conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                [id],
                run_from_row,
            )
            .optional()
            .context("reading a run")
    }

    /// Every unfinished run, oldest first (the reaper judges each owner).
    pub fn unfinished_runs(&self) -> Result<Vec<RunRow>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE finished_at IS NULL ORDER BY started_at, id"
        ))?;
        let rows = stmt.query_map([], run_from_row)?;
        rows.collect::<rusqlite::Result<_>>()
            .context("listing unfinished runs")
    }

    /// Unfinished runs recorded on this host, boot and pid namespace: the ones whose owner's
    /// liveness can be checked here.
    pub fn unfinished_runs_here(&self) -> Result<Vec<RunRow>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs
             WHERE finished_at IS NULL AND host = ?1 AND boot_id = ?2 AND pid_ns = ?3
             ORDER BY started_at, id"
        ))?;
        let rows = stmt.query_map(
            params![host::host_name(), host::boot_id(), host::pid_namespace()],
            run_from_row,
        )?;
        rows.collect::<rusqlite::Result<_>>()
            .context("listing this host's unfinished runs")
    }

    /// Finishes a run unless someone already has; returns whether this call finished it. Whoever
    /// gets `false` must write nothing else about the run.
    /// Finishes, as `other`, the runs of a task this process still has open — after a gate
    /// panicked: the unwinding runner killed their trees; the caught panic routes the step, so
    /// the reaper must not route them again. Returns the ids it finished.
    pub fn finish_own_open_runs(&self, task_id: &str, output: &str) -> Result<Vec<i64>> {
        let (pid, start) = host::current_process();
        let mut stmt = self.conn.prepare(
            "UPDATE runs SET finished_at = ?4, outcome = 'other', output = ?5
              WHERE task_id = ?1 AND owner_pid = ?2 AND owner_pid_start = ?3
                AND finished_at IS NULL
             RETURNING id",
        )?;
        let ids = stmt
            .query_map(
                params![task_id, pid, start as i64, host::wall_ms(), output],
                |r| r.get(0),
            )?
            .collect::<rusqlite::Result<Vec<i64>>>()
            .context("finishing the runs of a panicked gate")?;
        Ok(ids)
    }

    pub fn finish_run(
        &self,
        id: i64,
        outcome: &str,
        exit_status: Option<i64>,
        output: &str,
        evidence: Option<&str>,
    ) -> Result<bool> {
        let changed = self
            .conn
            .execute(
                "UPDATE runs SET finished_at = ?2, outcome = ?3, exit_status = ?4, output = ?5,
                     evidence = ?6
                 WHERE id = ?1 AND finished_at IS NULL",
                params![id, host::wall_ms(), outcome, exit_status, output, evidence],
            )
            .context("finishing a run")?;
        Ok(changed == 1)
    }
}
