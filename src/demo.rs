//! `orch demo`: a self-contained walk through the pipeline in a temporary directory, incidents
//! included, with real git, a bare remote that plays the forge, and a real Python suite.
//!
//! Every step runs the real `orch` binary as its own process, exactly as cron, CI and operators
//! do; the demo only narrates and checks. Needs git and python3; uses pytest when it is installed,
//! else a plain python3 test runner (and says so). The directory is left for inspection.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::host;
use crate::ui::Ui;

/// A plain test runner for machines without pytest: runs every `test_*` function of every
/// `test_*.py`, prints a pytest-like summary, exits 0 (all passed) or 1.
const PLAIN_RUNNER: &str = r#"import glob, importlib, sys, traceback
sys.path.insert(0, ".")
passed = failed = 0
for path in sorted(glob.glob("test_*.py")):
    module = importlib.import_module(path[:-3])
    for name in sorted(dir(module)):
        if name.startswith("test_"):
            try:
                getattr(module, name)()
                passed += 1
            except Exception:
                failed += 1
                traceback.print_exc()
print(f"{failed} failed, {passed} passed" if failed else f"{passed} passed")
sys.exit(1 if failed else (0 if passed else 5))
"#;

const CALC: &str = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n";
const TEST_CALC: &str = "from calc import add, mul\n\n\ndef test_add():\n    assert add(2, 3) == 5\n\n\ndef test_mul():\n    assert mul(2, 3) == 6\n";
const RED_TEST: &str = "from calc import add\n\n\ndef test_add_is_commutative_for_strings():\n    assert add('a', 'b') == add('b', 'a')\n";

/// The shipped forge script for a bare repository, as `examples/merge/bare-repo.sh` has it: the
/// demo runs without the source tree.
const FORGE_SCRIPT: &str = include_str!("../examples/merge/bare-repo.sh");

/// A suite that starts three workers deaf to SIGINT/SIGTERM (like pytest-xdist's on a starved
/// machine), records their pids, and hangs.
const STARVED_SUITE: &str = r#"import os, signal, subprocess, sys, time
with open(os.environ["DEMO_PIDS"], "a") as pids:
    for _ in range(3):
        w = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
        pids.write(f"{w.pid}\n")
time.sleep(600)
"#;

struct Demo {
    dir: PathBuf,
    orch: PathBuf,
    remote: PathBuf,
    work: PathBuf,
    /// The re-test: the suite once, under pytest-cov where it is installed, writing the report
    /// the coverage gate judges (one suite run per deploy).
    suite: String,
    /// `ORCH_COVERAGE_MIN`: judged from the re-test's report where pytest-cov writes one.
    coverage_min: &'static str,
    env: Vec<(String, String)>,
    /// The one directory the demo grants its suites (`ORCH_GATE_WRITABLE`) for the markers it
    /// reads back: beside the state directory, never the state directory or one above it.
    scratch: PathBuf,
    step: usize,
    ui: Ui,
}

/// Runs the demo; returns the directory it left.
pub(crate) fn run(ui: Ui) -> Result<PathBuf> {
    let started = Instant::now();
    let base = std::env::temp_dir();
    let dir = base.join(format!(
        "orch-demo-{}-{}",
        std::process::id(),
        host::wall_ms()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating `{}`", dir.display()))?;
    for tool in ["git", "python3"] {
        if Command::new(tool).arg("--version").output().is_err() {
            bail!("`{tool}` is not installed (hint: the demo needs git and python3)");
        }
    }
    let has_pytest = Command::new("python3")
        .args(["-c", "import pytest"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let has_cov = has_pytest
        && Command::new("python3")
            .args(["-c", "import pytest_cov"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    let runner = dir.join("plain_runner.py");
    std::fs::write(&runner, PLAIN_RUNNER)?;
    let suite = if has_cov {
        "python3 -m pytest -q -p no:cacheprovider --cov --cov-report=json:\"$ORCH_COVERAGE_REPORT\""
            .to_string()
    } else if has_pytest {
        "python3 -m pytest -q -p no:cacheprovider".to_string()
    } else {
        format!("python3 '{}'", runner.display())
    };
    let mut demo = Demo {
        remote: dir.join("remote.git"),
        work: dir.join("work"),
        orch: std::env::current_exe().context("finding the orch binary")?,
        suite,
        coverage_min: if has_cov { "80" } else { "0" },
        env: Vec::new(),
        scratch: dir.join("scratch"),
        step: 0,
        ui,
        dir: dir.clone(),
    };
    demo.say(&format!(
        "working in {} (left there for inspection)",
        dir.display()
    ));
    if !has_pytest {
        demo.say(
            "pytest is not installed: the suites run under a plain python3 test runner instead",
        );
    } else if !has_cov {
        demo.say(
            "pytest-cov is not installed: the re-test writes no coverage report, so the coverage gate is skipped",
        );
    }
    demo.setup_repositories()?;
    demo.clean_run()?;
    demo.red_retest()?;
    demo.starved_incident()?;
    demo.lost_race()?;
    demo.kill_and_reap()?;
    demo.say("the operator view, `orch queue`:");
    let queue = demo.orch(&["queue"], &[])?;
    for line in String::from_utf8_lossy(&queue.stdout).lines() {
        demo.ui.line(line);
    }
    demo.say(&format!(
        "done in {:.1}s; everything is in {}",
        started.elapsed().as_secs_f64(),
        dir.display()
    ));
    Ok(dir)
}

impl Demo {
    /// One line of narration on stdout, through `ui` so that `-q` holds it back and prints it
    /// only if the demo fails.
    fn say(&mut self, line: &str) {
        self.step += 1;
        self.ui.line(format!("[demo {:>2}] {line}", self.step));
    }

    fn git(&self, dir: &Path, args: &[&str]) -> Result<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", "orch demo")
            .env("GIT_AUTHOR_EMAIL", "demo@orch.invalid")
            .env("GIT_COMMITTER_NAME", "orch demo")
            .env("GIT_COMMITTER_EMAIL", "demo@orch.invalid")
            .output()?;
        if !out.status.success() {
            bail!(
                "git {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn command(&self, args: &[&str], extra: &[(&str, String)]) -> Command {
        let mut cmd = Command::new(&self.orch);
        cmd.args(args).stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    }

    fn orch(&self, args: &[&str], extra: &[(&str, String)]) -> Result<Output> {
        Ok(self.command(args, extra).output()?)
    }

    /// Runs orch, narrates its exit code and first line, and checks the code.
    fn expect(&mut self, args: &[&str], extra: &[(&str, String)], code: i32) -> Result<Output> {
        let out = self.orch(args, extra)?;
        let got = out.status.code().unwrap_or(-1);
        let line = String::from_utf8_lossy(if out.stdout.is_empty() {
            &out.stderr
        } else {
            &out.stdout
        })
        .lines()
        .last()
        .unwrap_or("")
        .trim_start_matches("orch: ")
        .to_string();
        self.say(&format!("  $ orch {} → exit {got}: {line}", args.join(" ")));
        if got != code {
            bail!(
                "`orch {}` exited {got}, expected {code}:\n{}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(out)
    }

    fn setup_repositories(&mut self) -> Result<()> {
        let (dir, remote, work) = (self.dir.clone(), self.remote.clone(), self.work.clone());
        self.git(
            &dir,
            &[
                "init",
                "--quiet",
                "--bare",
                "-b",
                "main",
                &remote.to_string_lossy(),
            ],
        )?;
        self.git(
            &dir,
            &["init", "--quiet", "-b", "main", &work.to_string_lossy()],
        )?;
        std::fs::write(work.join("calc.py"), CALC)?;
        std::fs::write(work.join("test_calc.py"), TEST_CALC)?;
        std::fs::write(work.join(".gitignore"), "__pycache__/\n.pytest_cache/\n")?;
        self.git(&work, &["add", "."])?;
        self.git(&work, &["commit", "--quiet", "-m", "calc with tests"])?;
        self.git(
            &work,
            &["remote", "add", "origin", &remote.to_string_lossy()],
        )?;
        self.git(&work, &["push", "--quiet", "origin", "main"])?;
        let hook = remote.join("hooks/pre-receive");
        std::fs::write(
            &hook,
            "#!/bin/sh\nwhile read old new ref; do\n  [ \"$ref\" = refs/heads/main ] && { echo 'main is merged by the forge, never pushed' >&2; exit 1; }\ndone\nexit 0\n",
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
        // The forge's merge: the shipped script for a bare repository (examples/merge/), which
        // moves main from exactly $ORCH_MERGE_BASE, the tip the re-test ran on.
        let forge = dir.join("bare-repo.sh");
        std::fs::write(&forge, FORGE_SCRIPT)?;
        std::fs::set_permissions(&forge, std::fs::Permissions::from_mode(0o755))?;
        let alerts = dir.join("alerts.jsonl");
        // Under the gate sandbox (Landlock, the default where the kernel has it) a suite may
        // write only its working copy, its TMPDIR and what the operator grants; the demo's
        // suites leave their markers in this one granted directory.
        std::fs::create_dir_all(&self.scratch)
            .with_context(|| format!("creating `{}`", self.scratch.display()))?;
        self.env = vec![
            (
                "ORCH_GATE_WRITABLE".into(),
                self.scratch.display().to_string(),
            ),
            (
                "ORCH_DB_PATH".into(),
                dir.join("state/orch.db").display().to_string(),
            ),
            ("ORCH_MERGE_RETEST_CMD".into(), self.suite.clone()),
            // No coverage command: the coverage gate judges the re-test's own report.
            ("ORCH_COVERAGE_CMD".into(), String::new()),
            ("ORCH_COVERAGE_MIN".into(), self.coverage_min.into()),
            (
                "ORCH_SECURITY_GATE_CMD".into(),
                "python3 -c \"print('security scan: no findings')\"".into(),
            ),
            ("ORCH_MERGE_CMD".into(), format!("'{}'", forge.display())),
            (
                "ORCH_ALERT_CMD".into(),
                format!("cat >> '{}'", alerts.display()),
            ),
            ("ORCH_MERGE_INFRA_RETRY_BACKOFF_S".into(), "1".into()),
            ("ORCH_MERGE_DEFER_DELAY_S".into(), "1".into()),
            ("ORCH_MERGE_DEFER_MAX_ATTEMPTS".into(), "400".into()),
            ("ORCH_MERGE_RETEST_TIMEOUT_S".into(), "60".into()),
            ("ORCH_KILL_GRACE_S".into(), "1".into()),
            ("ORCH_TRANSITION_LEASE_RENEW_S".into(), "2".into()),
            ("ORCH_TRANSITION_LEASE_TTL_S".into(), "60".into()),
            ("GIT_AUTHOR_NAME".into(), "orch demo".into()),
            ("GIT_AUTHOR_EMAIL".into(), "demo@orch.invalid".into()),
            ("GIT_COMMITTER_NAME".into(), "orch demo".into()),
            ("GIT_COMMITTER_EMAIL".into(), "demo@orch.invalid".into()),
        ];
        self.say(&format!(
            "a Python project with a bare remote at {} (its pre-receive hook refuses any push to main; the forge merges with the shipped examples/merge/bare-repo.sh, a compare-and-swap from the re-tested tip)",
            remote.display()
        ));
        let url = remote.display().to_string();
        self.expect(&["repo", "add", "demo", "--url", &url], &[], 0)?;
        Ok(())
    }

    /// Commits `files` on a new task branch, pushes it, registers the task at `stage`.
    fn task(&mut self, id: &str, files: &[(&str, &str)], stage: &str) -> Result<String> {
        let work = self.work.clone();
        let branch = format!("feat/{}", id.to_lowercase());
        self.git(&work, &["checkout", "--quiet", "-B", &branch, "main"])?;
        for (name, content) in files {
            std::fs::write(work.join(name), content)?;
        }
        self.git(&work, &["add", "."])?;
        self.git(&work, &["commit", "--quiet", "-m", &format!("{id}: work")])?;
        self.git(&work, &["push", "--quiet", "--force", "origin", &branch])?;
        let tip = self.git(&work, &["rev-parse", "HEAD"])?;
        self.git(&work, &["checkout", "--quiet", "main"])?;
        let mut args = vec![
            "task", "add", id, "--repo", "demo", "--branch", &branch, "--stage", stage, "--actor",
            "ci",
        ];
        if stage != "created" {
            // A CI step registers the later tasks where the story needs them; the history
            // records why they skipped the stages before.
            args.extend([
                "--force",
                "--reason",
                "demo: DEMO-1 shows the walk up to here",
            ]);
        }
        self.expect(&args, &[], 0)?;
        Ok(tip)
    }

    fn clean_run(&mut self) -> Result<()> {
        self.say("1. a clean run: DEMO-1 walks to done, with every gate and proof of merge");
        let tip = self.task("DEMO-1", &[("demo-1.md", "# demo 1\n")], "created")?;
        for stage in [
            "analysis",
            "architecture",
            "development",
            "review",
            "testing",
        ] {
            self.expect(
                &["advance", "DEMO-1", "--to", stage, "--actor", "agent"],
                &[],
                0,
            )?;
        }
        let image = [("ORCH_IMAGE_FRESHNESS_CMD", format!("echo {tip}"))];
        self.expect(
            &[
                "advance",
                "DEMO-1",
                "--to",
                "deploy-staging",
                "--validated-sha",
                &tip,
                "--actor",
                "ci",
            ],
            &image,
            0,
        )?;
        self.expect(
            &["advance", "DEMO-1", "--to", "deploy", "--actor", "ci"],
            &image,
            0,
        )?;
        if self.coverage_min != "0" {
            self.say(&format!(
                "  the suite ran once: the coverage gate judged the re-test's own report against ORCH_COVERAGE_MIN={}",
                self.coverage_min
            ));
        }
        self.expect(
            &["advance", "DEMO-1", "--to", "done", "--actor", "ci"],
            &image,
            0,
        )?;
        let main = self.git(&self.remote.clone(), &["rev-parse", "main"])?;
        self.say(&format!(
            "  the remote's main is now {}: the re-tested head, merged by the forge",
            &main[..10]
        ));
        Ok(())
    }

    fn red_retest(&mut self) -> Result<()> {
        self.say("2. a red re-test: DEMO-2's suite fails after the rebase; it is rolled back to development");
        self.task("DEMO-2", &[("test_strings.py", RED_TEST)], "deploy-staging")?;
        self.expect(
            &["advance", "DEMO-2", "--to", "deploy", "--actor", "ci"],
            &[],
            10,
        )?;
        Ok(())
    }

    fn starved_incident(&mut self) -> Result<()> {
        self.say("3. the incident: DEMO-3's suite starts workers and hangs past its timeout");
        // The suite writes its workers' pids for the demo to check: through the one extra
        // variable and the one writable directory the demo grants the agent's code.
        let pids = self.scratch.join("demo-3-pids");
        let script = self.dir.join("starved_suite.py");
        std::fs::write(&script, STARVED_SUITE)?;
        self.task("DEMO-3", &[("demo-3.md", "# demo 3\n")], "deploy-staging")?;
        let env = [
            (
                "ORCH_MERGE_RETEST_CMD",
                format!("python3 '{}'", script.display()),
            ),
            ("ORCH_MERGE_RETEST_TIMEOUT_S", "2".into()),
            ("DEMO_PIDS", pids.display().to_string()),
            ("ORCH_GATE_ENV_PASS", "DEMO_PIDS".into()),
        ];
        self.expect(
            &["advance", "DEMO-3", "--to", "deploy", "--actor", "ci"],
            &env,
            11,
        )?;
        self.say("  a timeout is infra: the task keeps deploy-staging, no developer retry is spent; re-queued");
        self.check_all_dead(&pids)?;
        for code in [11, 12] {
            self.wait_due()?;
            self.expect(&["advance", "--next", "--actor", "cron"], &env, code)?;
        }
        self.check_all_dead(&pids)?;
        let alerts = std::fs::read_to_string(self.dir.join("alerts.jsonl")).unwrap_or_default();
        self.say(&format!(
            "  budget spent: DEMO-3 is on HOLD and ORCH_ALERT_CMD received exactly {} alert",
            alerts.lines().count()
        ));
        self.expect(
            &["advance", "DEMO-3", "--to", "deploy", "--actor", "ci"],
            &env,
            6,
        )?;
        Ok(())
    }

    /// Waits until the earliest re-queue is due.
    fn wait_due(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.orch(&["queue", "--json"], &[])?;
            let view: serde_json::Value = serde_json::from_slice(&out.stdout)?;
            let due = view["merge_gate"]["pending"].as_array().is_some_and(|p| {
                p.iter()
                    .any(|r| r["due_in_s"].as_i64().is_some_and(|s| s <= 0))
            });
            if due {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("no re-queue became due");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn check_all_dead(&mut self, pids_file: &Path) -> Result<()> {
        let pids: Vec<i32> = std::fs::read_to_string(pids_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        let deadline = Instant::now() + Duration::from_secs(20);
        while pids
            .iter()
            .any(|&p| host::proc_stat(p).is_some_and(|s| !s.is_dead()))
        {
            if Instant::now() > deadline {
                bail!("a worker of the suite survived: {pids:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.say(&format!(
            "  not one of the suite's {} workers is alive: the whole tree died",
            pids.len()
        ));
        Ok(())
    }

    fn lost_race(&mut self) -> Result<()> {
        self.say("4. a race: while CI re-tests DEMO-4, a stale reviewer bot tries to roll it back");
        // The marker goes where the sandbox lets the suite write: the granted directory.
        let started = self.scratch.join("demo-4-started");
        self.task("DEMO-4", &[("demo-4.md", "# demo 4\n")], "deploy-staging")?;
        let slow = format!("touch '{}'; sleep 2; {}", started.display(), self.suite);
        let mut first: Child = self
            .command(
                &["advance", "DEMO-4", "--to", "deploy", "--actor", "ci", "-q"],
                &[("ORCH_MERGE_RETEST_CMD", slow)],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !started.exists() {
            if Instant::now() > deadline {
                let _ = first.kill();
                bail!("the first actor's suite never started");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.expect(
            &[
                "advance",
                "DEMO-4",
                "--to",
                "development",
                "--expect",
                "deploy-staging",
                "--actor",
                "review-bot",
            ],
            &[],
            4,
        )?;
        let status = first.wait()?;
        self.say(&format!(
            "  the first actor finished with exit {}: DEMO-4 is at deploy, untouched by the loser",
            status.code().unwrap_or(-1)
        ));
        Ok(())
    }

    fn kill_and_reap(&mut self) -> Result<()> {
        self.say("5. kill -9: DEMO-5's orch dies mid re-test; `orch reap` (cron) recovers");
        // The suite writes its workers' pids for the demo to check: through the one extra
        // variable and the one writable directory the demo grants the agent's code.
        let pids = self.scratch.join("demo-5-pids");
        let script = self.dir.join("starved_suite.py");
        self.task("DEMO-5", &[("demo-5.md", "# demo 5\n")], "deploy-staging")?;
        let env = [
            (
                "ORCH_MERGE_RETEST_CMD",
                format!("python3 '{}'", script.display()),
            ),
            ("DEMO_PIDS", pids.display().to_string()),
            ("ORCH_GATE_ENV_PASS", "DEMO_PIDS".into()),
        ];
        let mut victim = self
            .command(
                &["merge-gate", "retest", "DEMO-5", "--actor", "ci", "-q"],
                &env,
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::fs::read_to_string(&pids)
            .map(|s| s.lines().count())
            .unwrap_or(0)
            < 3
        {
            if Instant::now() > deadline {
                let _ = victim.kill();
                bail!("DEMO-5's suite never started its workers");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        victim.kill()?;
        victim.wait()?;
        self.say(&format!(
            "  kill -9 {}: the suite's workers are orphans now",
            victim.id()
        ));
        self.expect(&["reap"], &[], 0)?;
        self.check_all_dead(&pids)?;
        let show = self.orch(&["task", "show", "DEMO-5"], &[])?;
        if let Some(line) = String::from_utf8_lossy(&show.stdout)
            .lines()
            .find(|l| l.contains("reaped"))
        {
            let line = line.trim().to_string();
            self.say(&format!("  history: {line}"));
        }
        Ok(())
    }
}
