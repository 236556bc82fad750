//! The test sandbox: a temporary directory with its own database, and the real `orch` binary run
//! against it with a clean environment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The `orch` binary under test.
pub(crate) fn orch_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_orch"))
}

/// What one command printed and how it ended.
#[derive(Debug, Clone)]
pub(crate) struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub(crate) fn from(output: Output) -> Out {
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
    pub(crate) fn expect(self, code: i32) -> Out {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", self.stdout))
    }
}

/// A temporary directory with a database path inside it.
pub(crate) struct Sandbox {
    pub dir: TempDir,
    pub db: PathBuf,
}

/// The tables whose rows are the domain: "writes nothing" means none of these changed.
pub(crate) const DOMAIN_TABLES: &[&str] = &[
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
    pub(crate) fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("orch-test-")
            .tempdir()
            .unwrap();
        let db = dir.path().join("state").join("orch.db");
        Sandbox { dir, db }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `orch` with a clean environment: no inherited `ORCH_*` key, this sandbox's database.
    pub(crate) fn orch(&self) -> Command {
        let mut cmd = Command::new(orch_bin());
        for (key, _) in std::env::vars() {
            if key.starts_with("ORCH_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("ORCH_DB_PATH", &self.db)
            // Suites in these tests leave markers beside the database, which Landlock would
            // refuse; tests/cli/sandbox.rs turns it on where it is what is tested.
            .env("ORCH_GATE_SANDBOX", "off")
            .current_dir(self.dir.path());
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `orch ARGS…` to completion.
    pub(crate) fn run(&self, args: &[&str]) -> Out {
        self.run_env(args, &[])
    }

    /// Runs `orch ARGS…` with extra environment.
    pub(crate) fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut cmd = self.orch();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Out::from(cmd.output().expect("orch runs"))
    }

    /// Runs the sqlite3 shell on the database and returns its stdout.
    pub(crate) fn sqlite(&self, sql: &str) -> String {
        let output = Command::new("sqlite3")
            .args(["-cmd", ".timeout 30000"])
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
    pub(crate) fn dump(&self) -> String {
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

    /// Registers repository `name` with the canonical remote `url` (idempotent).
    pub(crate) fn add_repo(&self, name: &str, url: &str) {
        self.run(&["repo", "add", name, "--url", url]).expect(0);
    }

    /// Registers a task of repository `repo` on `branch`, then puts it at `stage` the way a
    /// fixture does: by writing the row, with no history (the gates before `stage` are not
    /// what the test is about). `orch task add --stage S --force` would record a registration.
    pub(crate) fn register(&self, repo: &str, id: &str, branch: &str, stage: &str) {
        self.run(&["task", "add", id, "--repo", repo, "--branch", branch])
            .expect(0);
        if stage != "created" {
            self.sqlite(&format!(
                "UPDATE tasks SET stage = '{stage}' WHERE id = '{id}'"
            ));
        }
    }

    /// Registers a task at `stage` with the usual test settings (repository `app`, whose remote
    /// no gate-less test ever reaches).
    pub(crate) fn add_task(&self, id: &str, stage: &str) {
        if self.run(&["repo", "show", "app"]).code != 0 {
            let url = self.path().join("app-remote.git");
            self.add_repo("app", url.to_str().unwrap());
        }
        self.register("app", id, &format!("feat/{id}"), stage);
    }

    /// The task's stage and version.
    pub(crate) fn stage_of(&self, id: &str) -> (String, i64) {
        let row = self.sqlite(&format!(
            "SELECT stage || '|' || version FROM tasks WHERE id = '{id}'"
        ));
        let (stage, version) = row.split_once('|').expect("task exists");
        (stage.to_string(), version.parse().unwrap())
    }
}

/// Polls `cond` every 20 ms until it holds or `deadline` passes; panics with `what` on timeout.
#[track_caller]
pub(crate) fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether a process with this pid exists and is not a zombie.
pub(crate) fn pid_alive(pid: i32) -> bool {
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
pub(crate) fn pid_start_time(pid: i32) -> u64 {
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
    pub(crate) fn orch_shell(&self, program: &str, args: &[&str]) -> Out {
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

/// Runs git in `dir`; panics with its stderr on failure; returns trimmed stdout.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The shipped forge script for a bare repository (`examples/merge/bare-repo.sh`), as an
/// `ORCH_MERGE_CMD`: it moves the target from exactly `$ORCH_MERGE_BASE` by `update-ref` with the
/// expected old value. `style` is its `MERGE_STYLE` (`ff`, `merge` or `squash`).
pub(crate) fn merge_script(style: &str) -> String {
    format!(
        "MERGE_STYLE={style} '{}/examples/merge/bare-repo.sh'",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Gives the repository at `dir` its own committer identity, so that the tests need none from the
/// machine (scripts/test sets no global one).
pub(crate) fn git_identity(dir: &Path) {
    git(dir, &["config", "user.name", "orch tests"]);
    git(dir, &["config", "user.email", "orch-tests@example.invalid"]);
}

/// A Python project in a git repository with a bare remote that plays the forge: its
/// pre-receive hook logs every push and refuses any update of `main` (INV-4's witness).
pub(crate) struct Fixture {
    /// The bare remote.
    pub remote: PathBuf,
    /// The agent's checkout (registered as the task's worktree).
    pub work: PathBuf,
    /// Every ref update pushed to the remote: `old new ref` per line.
    pub push_log: PathBuf,
}

const CALC: &str = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n";
const TEST_CALC: &str =
    "from calc import add, mul\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n";

impl Fixture {
    pub(crate) fn new(sb: &Sandbox) -> Fixture {
        Fixture::named(sb, "")
    }

    /// A second (third…) repository in the same sandbox: its paths carry `name`.
    pub(crate) fn named(sb: &Sandbox, name: &str) -> Fixture {
        let remote = sb.path().join(format!("{name}remote.git"));
        let work = sb.path().join(format!("{name}work"));
        let push_log = sb.path().join(format!("{name}push.log"));
        git(
            sb.path(),
            &[
                "init",
                "--quiet",
                "--bare",
                "-b",
                "main",
                remote.to_str().unwrap(),
            ],
        );
        // Every value the target ever takes is logged, so a test can prove main only ever
        // pointed at tested trees (`Fixture::target_history`).
        git(&remote, &["config", "core.logAllRefUpdates", "always"]);
        git(
            sb.path(),
            &["init", "--quiet", "-b", "main", work.to_str().unwrap()],
        );
        git_identity(&work);
        std::fs::write(work.join("calc.py"), CALC).unwrap();
        std::fs::write(work.join("test_calc.py"), TEST_CALC).unwrap();
        std::fs::write(work.join(".gitignore"), "__pycache__/\n.pytest_cache/\n").unwrap();
        git(&work, &["add", "."]);
        git(&work, &["commit", "--quiet", "-m", "calc"]);
        git(
            &work,
            &["remote", "add", "origin", remote.to_str().unwrap()],
        );
        git(&work, &["push", "--quiet", "origin", "main"]);
        let hook = remote.join("hooks").join("pre-receive");
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\nwhile read old new ref; do\n  echo \"$old $new $ref\" >> '{}'\n  if [ \"$ref\" = refs/heads/main ]; then echo 'pre-receive: main is never pushed' >&2; exit 1; fi\ndone\n",
                push_log.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        Fixture {
            remote,
            work,
            push_log,
        }
    }

    /// Commits `files` on `branch` (created from `base`) in the agent's checkout and pushes it;
    /// returns the new tip. The checkout is left on `main`.
    pub(crate) fn commit_branch(
        &self,
        branch: &str,
        base: &str,
        files: &[(&str, &str)],
        message: &str,
    ) -> String {
        git(&self.work, &["checkout", "--quiet", "-B", branch, base]);
        for (name, content) in files {
            std::fs::write(self.work.join(name), content).unwrap();
        }
        git(&self.work, &["add", "."]);
        git(&self.work, &["commit", "--quiet", "-m", message]);
        git(
            &self.work,
            &["push", "--quiet", "--force", "origin", branch],
        );
        let tip = git(&self.work, &["rev-parse", "HEAD"]);
        git(&self.work, &["checkout", "--quiet", "main"]);
        tip
    }

    /// Moves the remote's `main` forward by a commit of `files`, the way a forge merges:
    /// `update-ref` in the bare repository, never a push.
    pub(crate) fn advance_remote_main(&self, files: &[(&str, &str)], message: &str) -> String {
        let scratch = self
            .work
            .parent()
            .unwrap()
            .join(format!("scratch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        git(
            self.work.parent().unwrap(),
            &[
                "clone",
                "--quiet",
                self.remote.to_str().unwrap(),
                scratch.to_str().unwrap(),
            ],
        );
        git_identity(&scratch);
        for (name, content) in files {
            std::fs::write(scratch.join(name), content).unwrap();
        }
        git(&scratch, &["add", "."]);
        git(&scratch, &["commit", "--quiet", "-m", message]);
        let sha = git(&scratch, &["rev-parse", "HEAD"]);
        // Hand the objects over on a side ref, then move main as the forge would.
        git(
            &scratch,
            &[
                "push",
                "--quiet",
                "origin",
                &format!("{sha}:refs/heads/forge-tmp"),
            ],
        );
        self.forge_update_main(&sha);
        git(&self.remote, &["update-ref", "-d", "refs/heads/forge-tmp"]);
        std::fs::remove_dir_all(&scratch).unwrap();
        sha
    }

    /// Points the remote's `main` at `sha` directly (the forge's merge).
    pub(crate) fn forge_update_main(&self, sha: &str) {
        Command::new("git")
            .arg(format!("--git-dir={}", self.remote.display()))
            .args(["update-ref", "refs/heads/main", sha])
            .status()
            .unwrap();
    }

    /// Every commit the remote's `main` has pointed at, oldest first (its reflog: the remote
    /// logs every ref update).
    pub(crate) fn target_history(&self) -> Vec<String> {
        let log = git(
            &self.remote,
            &["reflog", "show", "--format=%H", "refs/heads/main", "--"],
        );
        let mut shas: Vec<String> = log.lines().map(str::to_string).collect();
        shas.reverse();
        shas
    }

    /// A ref of the remote.
    pub(crate) fn remote_ref(&self, name: &str) -> String {
        git(&self.remote, &["rev-parse", name])
    }

    /// Registers `id` of repository `app` (this fixture's remote) at `stage`.
    pub(crate) fn add_task(&self, sb: &Sandbox, id: &str, branch: &str, stage: &str) {
        self.add_task_in(sb, "app", id, branch, stage);
    }

    /// Registers `id` of repository `repo` (this fixture's remote) at `stage`.
    pub(crate) fn add_task_in(
        &self,
        sb: &Sandbox,
        repo: &str,
        id: &str,
        branch: &str,
        stage: &str,
    ) {
        sb.add_repo(repo, self.remote.to_str().unwrap());
        sb.register(repo, id, branch, stage);
    }

    /// INV-4's witness: no push ever reached the target branch.
    #[track_caller]
    pub(crate) fn assert_no_target_push(&self) {
        let log = std::fs::read_to_string(&self.push_log).unwrap_or_default();
        assert!(
            !log.lines().any(|l| l.ends_with(" refs/heads/main")),
            "a push reached main:\n{log}"
        );
    }
}

/// A suite that fails: the branch's own test is red.
pub(crate) const RED_TEST: &str = "def test_red():\n    assert 1 == 2\n";

/// A suite that starts three pytest-xdist-like workers ignoring SIGINT and SIGTERM, writes their
/// pids to `dir/worker-pids`, and hangs.
pub(crate) fn starved_suite(dir: &Path) -> String {
    let script = dir.join("starved_suite.py");
    std::fs::write(
        &script,
        format!(
            "import subprocess, sys, time\n\
             pids = open('{pids}', 'a')\n\
             for _ in range(3):\n\
             \x20   w = subprocess.Popen([sys.executable, '-c', 'import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'])\n\
             \x20   pids.write(f'{{w.pid}}\\n')\n\
             pids.flush()\n\
             time.sleep(600)\n",
            pids = dir.join("worker-pids").display()
        ),
    )
    .unwrap();
    format!("python3 '{}'", script.display())
}

/// The pids `starved_suite` wrote.
pub(crate) fn worker_pids(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("worker-pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// The merge gate's entry of an `orch --json advance` / `merge-gate retest` report.
pub(crate) fn merge_of(json: &serde_json::Value) -> serde_json::Value {
    json["gates"]
        .as_array()
        .and_then(|gates| gates.iter().find(|g| g["gate"] == "merge"))
        .cloned()
        .unwrap_or_else(|| panic!("no merge gate in {json}"))
}

/// The suite command the gate tests re-test with.
pub(crate) const PYTEST: &str = "python3 -m pytest -q -p no:cacheprovider";

/// The gate tests' environment: short timeouts and backoffs, `extra` overriding.
pub(crate) fn env_with(extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("ORCH_MERGE_RETEST_CMD".into(), PYTEST.into()),
        ("ORCH_MERGE_RETEST_TIMEOUT_S".into(), "60".into()),
        ("ORCH_KILL_GRACE_S".into(), "1".into()),
        ("ORCH_MERGE_INFRA_RETRY_BACKOFF_S".into(), "1".into()),
        ("ORCH_MERGE_DEFER_DELAY_S".into(), "1".into()),
        // Covers the merge lock's whole span (60 + 1 + 120 + 1 s), as `orch doctor` requires.
        ("ORCH_MERGE_DEFER_MAX_ATTEMPTS".into(), "400".into()),
    ];
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.clone()));
    }
    env
}

/// Runs orch in `sb` with an owned environment (see `env_with`).
pub(crate) fn run_env_owned(sb: &Sandbox, args: &[&str], env: &[(String, String)]) -> Out {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    sb.run_env(args, &env)
}
