//! The test sandbox: a temporary directory with its own database, and the real `orch` binary run
//! against it with a clean environment.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The `orch` binary under test.
pub fn orch_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_orch"))
}

/// What one command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    fn from(output: Output) -> Out {
        use std::os::unix::process::ExitStatusExt;
        Out {
            code: output
                .status
                .code()
                .unwrap_or_else(|| 128 + output.status.signal().unwrap_or(0)),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn expect(self, code: i32) -> Out {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", self.stdout))
    }
}

/// A temporary directory with a database path inside it.
pub struct Sandbox {
    pub dir: TempDir,
    pub db: PathBuf,
}

/// The tables whose rows are the domain: "writes nothing" means none of these changed.
pub const DOMAIN_TABLES: &[&str] = &[
    "tasks",
    "transitions",
    "holds",
    "transition_lease",
    "events",
    "alerts",
    "runs",
    "gate_events",
];

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("orch-test-")
            .tempdir()
            .unwrap();
        let db = dir.path().join("state").join("orch.db");
        Sandbox { dir, db }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `orch` with a clean environment: no inherited `ORCH_*` key, this sandbox's database.
    pub fn orch(&self) -> Command {
        let mut cmd = Command::new(orch_bin());
        for (key, _) in std::env::vars() {
            if key.starts_with("ORCH_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("ORCH_DB_PATH", &self.db)
            .current_dir(self.dir.path());
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `orch ARGS…` to completion.
    pub fn run(&self, args: &[&str]) -> Out {
        self.run_env(args, &[])
    }

    /// Runs `orch ARGS…` with extra environment.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut cmd = self.orch();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Out::from(cmd.output().expect("orch runs"))
    }

    /// Runs the sqlite3 shell on the database and returns its stdout.
    pub fn sqlite(&self, sql: &str) -> String {
        let output = Command::new("sqlite3")
            .arg(&self.db)
            .arg(sql)
            .output()
            .expect("the sqlite3 shell runs");
        assert!(
            output.status.success(),
            "sqlite3 failed on {sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// `sqlite3 .dump` of the domain tables after a WAL checkpoint: equal dumps mean nothing was
    /// written.
    pub fn dump(&self) -> String {
        self.sqlite("PRAGMA wal_checkpoint(TRUNCATE);");
        DOMAIN_TABLES
            .iter()
            .map(|t| {
                let out = Command::new("sqlite3")
                    .arg(&self.db)
                    .arg(format!(".dump {t}"))
                    .output()
                    .expect("the sqlite3 shell runs");
                String::from_utf8_lossy(&out.stdout).into_owned()
            })
            .collect()
    }

    /// Registers a task at `stage` with the usual test settings.
    pub fn add_task(&self, id: &str, stage: &str) {
        self.run(&[
            "task",
            "add",
            id,
            "--repo",
            "app",
            "--branch",
            &format!("feat/{id}"),
            "--stage",
            stage,
        ])
        .expect(0);
    }

    /// The task's stage and version.
    pub fn stage_of(&self, id: &str) -> (String, i64) {
        let row = self.sqlite(&format!(
            "SELECT stage || '|' || version FROM tasks WHERE id = '{id}'"
        ));
        let (stage, version) = row.split_once('|').expect("task exists");
        (stage.to_string(), version.parse().unwrap())
    }
}

/// Polls `cond` every 20 ms until it holds or `deadline` passes; panics with `what` on timeout.
#[track_caller]
pub fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a process with this pid exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

/// The start time (clock ticks since boot) of a live process.
pub fn pid_start_time(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process exists");
    stat.rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap()
}

impl Sandbox {
    /// Runs another program (e.g. `unshare`) with this sandbox's orch environment.
    pub fn orch_shell(&self, program: &str, args: &[&str]) -> Out {
        let mut cmd = Command::new(program);
        for (key, _) in std::env::vars() {
            if key.starts_with("ORCH_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("ORCH_DB_PATH", &self.db)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .args(args);
        Out::from(cmd.output().expect("program runs"))
    }
}
