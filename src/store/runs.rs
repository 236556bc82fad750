//! Rows of `runs`: one per process group orch starts. Owned by the process-group runner.

use serde::Serialize;

/// What the runner records before the command may exec.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub task_id: Option<String>,
    pub gate: String,
    pub command: String,
    pub leader_pid: i32,
    pub leader_pid_start: u64,
    pub timeout_ms: i64,
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
}
