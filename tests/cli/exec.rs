//! `orch exec` and the process-group runner against real process trees.
//!
//! Each tree is a Python script written for the test: every process of it appends its pid to a
//! file, and a process counts as alive only while its command line still names this test's
//! script (so a recycled pid never passes for a survivor). Tree-kill tests assert that no process
//! of the tree is alive once `orch exec` has returned; kill-switch tests
//! (`ORCH_SUBPROCESS_TREE_KILL_ENABLED=false`) document the old leak — survivors exist — and
//! then kill the survivors themselves.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::support::{pid_alive, wait_until, Out, Sandbox};

/// The trees. Every process records its pid; `linger` outlives any test.
const TREE_PY: &str = r#"
import os, signal, sys, time

mode, pidfile = sys.argv[1], sys.argv[2]

def record():
    fd = os.open(pidfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)

def deaf():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

def spawn(body):
    pid = os.fork()
    if pid == 0:
        try:
            body()
        finally:
            os._exit(0)
    return pid

def wait_for(n):
    while True:
        try:
            with open(pidfile) as f:
                if len(f.read().split()) >= n:
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.01)

def linger():
    time.sleep(300)

record()
if mode == "deaf":
    # The leader and three workers ignore SIGTERM and SIGINT; a fourth worker is stopped.
    deaf()
    for _ in range(3):
        spawn(lambda: (record(), linger()))
    spawn(lambda: (record(), os.kill(os.getpid(), signal.SIGSTOP), linger()))
    wait_for(5)
    print("ready", flush=True)
    linger()
elif mode == "escape":
    # A grandchild leaves the group: setsid in the middle child, then a double fork.
    def middle():
        os.setsid()
        spawn(lambda: (deaf(), record(), linger()))
    spawn(middle)
    wait_for(2)
    print("ready", flush=True)
    linger()
elif mode == "orphans":
    # The leader exits 0 while its children keep running.
    for _ in range(3):
        spawn(lambda: (record(), linger()))
    wait_for(4)
    print("leader done", flush=True)
elif mode == "holds-stdout":
    # An escaped grandchild keeps stdout open; the leader exits 0.
    def middle():
        os.setsid()
        spawn(lambda: (deaf(), record(), print("grandchild holds stdout", flush=True), linger()))
    spawn(middle)
    wait_for(2)
    print("leader done", flush=True)
elif mode == "forking":
    # Two workers fork short-lived children without pause, also while they are being killed.
    deaf()
    def worker():
        record()
        while True:
            spawn(lambda: (record(), time.sleep(0.3)))
            try:
                while os.waitpid(-1, os.WNOHANG)[0]:
                    pass
            except ChildProcessError:
                pass
            time.sleep(0.01)
    for _ in range(2):
        spawn(worker)
    wait_for(6)
    print("ready", flush=True)
    linger()
elif mode == "stubborn":
    # Everything ignores SIGINT; the leader notes each SIGTERM and carries on; workers ignore it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for _ in range(2):
        spawn(lambda: (deaf(), record(), linger()))
    def noted(*_):
        with open(pidfile + ".term", "a") as f:
            f.write(f"{os.getpid()}\n")
    signal.signal(signal.SIGTERM, noted)
    wait_for(3)
    print("ready", flush=True)
    while True:
        linger()
elif mode == "stopped":
    # A stopped worker that exits on SIGINT: it can only act once it gets SIGCONT.
    def worker():
        def on_int(*_):
            with open(pidfile + ".int", "a") as f:
                f.write(f"{os.getpid()}\n")
            os._exit(0)
        signal.signal(signal.SIGINT, on_int)
        record()
        os.kill(os.getpid(), signal.SIGSTOP)
        linger()
    spawn(worker)
    wait_for(2)
    print("ready", flush=True)
    linger()
else:
    sys.exit(f"unknown mode {mode}")
"#;

/// Deadline of the trees that must be killed: long enough for Python to build the whole tree on
/// a loaded machine first.
const TREE_TIMEOUT: &str = "4s";
/// How long any `orch exec` of these tests may take before the test calls it hung.
const HUNG: Duration = Duration::from_secs(90);
/// How long a killed tree gets to disappear from `/proc`.
const DEATH: Duration = Duration::from_secs(20);

/// One process tree of `TREE_PY` in its own sandbox.
struct Tree {
    sandbox: Sandbox,
    mode: &'static str,
    script: PathBuf,
    pids: PathBuf,
}

impl Tree {
    fn new(mode: &'static str) -> Tree {
        let sandbox = Sandbox::new();
        let script = sandbox.path().join("tree.py");
        std::fs::write(&script, TREE_PY).unwrap();
        let pids = sandbox.path().join("pids");
        Tree {
            sandbox,
            mode,
            script,
            pids,
        }
    }

    /// `orch [ARGS…] -- python3 tree.py MODE PIDS`, with extra environment.
    fn orch(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = self.sandbox.orch();
        cmd.args(args)
            .arg("--")
            .arg("python3")
            .arg(&self.script)
            .arg(self.mode)
            .arg(&self.pids);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    fn recorded(&self) -> Vec<i32> {
        read_pids(&self.pids)
    }

    /// Recorded processes that still exist (not zombies) and still run this test's script.
    fn alive(&self) -> Vec<i32> {
        let needle = self.script.to_string_lossy().into_owned();
        self.recorded()
            .into_iter()
            .filter(|pid| {
                pid_alive(*pid)
                    && std::fs::read(format!("/proc/{pid}/cmdline"))
                        .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                        .unwrap_or(false)
            })
            .collect()
    }

    /// Asserts that the tree was built (at least `expected` processes recorded) and that none of
    /// it is alive.
    #[track_caller]
    fn assert_all_dead(&self, expected: usize) {
        let recorded = self.recorded();
        assert!(
            recorded.len() >= expected,
            "the {} tree recorded {} processes, expected at least {expected}: {recorded:?}",
            self.mode,
            recorded.len()
        );
        let alive = self.alive();
        assert!(
            alive.is_empty(),
            "processes of the {} tree outlived `orch exec`: {alive:?} (of {recorded:?})",
            self.mode
        );
    }

    /// Kills whatever of the tree is alive, round after round (a forking tree adds processes),
    /// until none is left.
    fn kill_all(&self) {
        let start = Instant::now();
        loop {
            let alive = self.alive();
            if alive.is_empty() {
                // A forking worker may have been mid-fork: look once more after a moment.
                std::thread::sleep(Duration::from_millis(100));
                if self.alive().is_empty() {
                    return;
                }
                continue;
            }
            for pid in alive {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            if start.elapsed() > DEATH {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Tree {
    /// A failing test must not leave its tree behind.
    fn drop(&mut self) {
        self.kill_all();
    }
}

fn read_pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Starts `cmd` with its output captured on threads.
fn start(mut cmd: Command) -> (Child, std::thread::JoinHandle<(String, String)>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("orch starts");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        (s, err_reader.join().unwrap())
    });
    (child, reader)
}

/// Waits for a started `orch` to exit within `deadline` (a hung one is killed and fails the
/// test) and returns what it printed.
#[track_caller]
fn finish(
    mut child: Child,
    reader: std::thread::JoinHandle<(String, String)>,
    deadline: Duration,
) -> Out {
    use std::os::unix::process::ExitStatusExt;
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`orch exec` did not return within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = reader.join().unwrap();
    Out {
        code: status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        stdout,
        stderr,
    }
}

/// Runs `cmd` to completion, failing the test if it hangs.
#[track_caller]
fn run_bounded(cmd: Command) -> Out {
    let (child, reader) = start(cmd);
    finish(child, reader, HUNG)
}

fn json_u64(out: &Out, key: &str) -> u64 {
    out.json()[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` missing from {}", out.stdout))
}

const KILL_SWITCH_OFF: (&str, &str) = ("ORCH_SUBPROCESS_TREE_KILL_ENABLED", "false");

// --- tree kill: nothing survives -------------------------------------------------------------

#[test]
fn workers_that_ignore_sigterm_and_sigint_and_a_stopped_one_die_at_the_timeout() {
    let tree = Tree::new("deaf");
    let out = run_bounded(tree.orch(
        &["--json", "exec", "--timeout", TREE_TIMEOUT, "--grace", "1s"],
        &[],
    ))
    .expect(124);
    let doc = out.json();
    assert_eq!(doc["outcome"], "timeout", "{}", out.stdout);
    assert!(doc["evidence"]["verdict"].is_string(), "{}", out.stdout);
    assert_eq!(doc["survivors"], serde_json::json!([]));
    assert!(json_u64(&out, "killed_in_group") >= 1, "{}", out.stdout);
    assert!(out.stderr.contains("ready"), "{}", out.stderr);
    tree.assert_all_dead(5);
}

#[test]
fn a_grandchild_that_escapes_with_setsid_and_a_double_fork_is_swept() {
    let tree = Tree::new("escape");
    let out = run_bounded(tree.orch(
        &["--json", "exec", "--timeout", TREE_TIMEOUT, "--grace", "1s"],
        &[],
    ))
    .expect(124);
    assert_eq!(json_u64(&out, "killed_escaped"), 1, "{}", out.stdout);
    tree.assert_all_dead(2);
}

#[test]
fn a_leader_that_exits_0_while_its_children_run_passes_and_its_children_die() {
    let tree = Tree::new("orphans");
    let out = run_bounded(tree.orch(&["--json", "exec"], &[])).expect(0);
    assert_eq!(out.json()["outcome"], "passed");
    assert_eq!(json_u64(&out, "survivors_swept"), 3, "{}", out.stdout);
    assert!(out.stderr.contains("leader done"), "{}", out.stderr);
    tree.assert_all_dead(4);
}

#[test]
fn a_grandchild_holding_stdout_open_neither_hangs_orch_nor_survives() {
    let tree = Tree::new("holds-stdout");
    let out = run_bounded(tree.orch(&["exec"], &[])).expect(0);
    assert!(out.stdout.contains("leader done"), "{}", out.stdout);
    assert!(
        out.stdout.contains("grandchild holds stdout"),
        "{}",
        out.stdout
    );
    tree.assert_all_dead(2);
}

#[test]
fn a_tree_that_forks_while_it_is_being_killed_leaves_nothing() {
    let tree = Tree::new("forking");
    run_bounded(tree.orch(&["exec", "--timeout", TREE_TIMEOUT, "--grace", "1s"], &[])).expect(124);
    tree.assert_all_dead(6);
}

#[test]
fn a_stopped_worker_gets_sigcont_and_acts_on_sigint_within_the_grace() {
    let tree = Tree::new("stopped");
    // The grace is far longer than the wait allowed below: the tree must end on SIGINT (which the
    // stopped worker can only act on after SIGCONT), not on the final SIGKILL.
    let (child, reader) =
        start(tree.orch(&["exec", "--timeout", TREE_TIMEOUT, "--grace", "300s"], &[]));
    finish(child, reader, Duration::from_secs(60)).expect(124);
    let acted = read_pids(&tree.pids.with_extension("int"));
    let recorded = tree.recorded();
    assert_eq!(acted.len(), 1, "the stopped worker never handled SIGINT");
    assert!(recorded.contains(&acted[0]));
    tree.assert_all_dead(2);
}

#[test]
fn sigterm_to_orch_exec_kills_the_tree_and_exits_143() {
    let tree = Tree::new("deaf");
    let (child, reader) = start(tree.orch(&["exec", "--grace", "1s"], &[]));
    wait_until("the tree is up", HUNG, || tree.recorded().len() >= 5);
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let out = finish(child, reader, HUNG).expect(143);
    assert!(
        out.stderr.contains("cancelled by SIGTERM"),
        "{}",
        out.stderr
    );
    tree.assert_all_dead(5);
}

#[test]
fn a_second_signal_to_orch_exec_escalates_to_sigkill_at_once() {
    let tree = Tree::new("stubborn");
    // Nothing in the tree dies of the forwarded SIGTERM; only the escalation can end it before
    // the grace.
    let (child, reader) = start(tree.orch(&["--json", "exec", "--grace", "300s"], &[]));
    let orch = Pid::from_raw(child.id() as i32);
    wait_until("the tree is up", HUNG, || tree.recorded().len() >= 3);
    kill(orch, Signal::SIGTERM).unwrap();
    let forwarded = tree.pids.with_extension("term");
    wait_until("the leader got the forwarded SIGTERM", HUNG, || {
        !read_pids(&forwarded).is_empty()
    });
    assert_eq!(read_pids(&forwarded), tree.recorded()[..1]);
    kill(orch, Signal::SIGINT).unwrap();
    let out = finish(child, reader, Duration::from_secs(60)).expect(143);
    assert_eq!(out.json()["outcome"], "cancelled");
    assert_eq!(out.json()["cancelled_by"], 15);
    tree.assert_all_dead(3);
}

// --- the kill-switch: the old leak, documented -----------------------------------------------

/// Runs `tree` with the kill-switch off, asserts `orch exec` exits `code` and that processes of
/// the tree survived it — the leak the process-group runner exists to end — then kills them.
#[track_caller]
fn shows_the_old_leak(mode: &'static str, args: &[&str], code: i32, built: usize) {
    let tree = Tree::new(mode);
    let out = run_bounded(tree.orch(args, &[KILL_SWITCH_OFF])).expect(code);
    let recorded = tree.recorded();
    assert!(
        recorded.len() >= built,
        "the tree was not built: {recorded:?}"
    );
    let survivors = tree.alive();
    assert!(
        !survivors.is_empty(),
        "with the kill-switch off the {mode} tree was expected to leak; stderr:\n{}",
        out.stderr
    );
    tree.kill_all();
    let alive = tree.alive();
    assert!(alive.is_empty(), "could not clean up the leak: {alive:?}");
}

#[test]
fn kill_switch_off_leaks_workers_that_ignore_signals_and_a_stopped_one() {
    shows_the_old_leak("deaf", &["exec", "--timeout", TREE_TIMEOUT], 124, 5);
}

#[test]
fn kill_switch_off_leaks_the_escaped_grandchild() {
    shows_the_old_leak("escape", &["exec", "--timeout", TREE_TIMEOUT], 124, 2);
}

#[test]
fn kill_switch_off_leaks_the_children_of_a_leader_that_exits_0() {
    shows_the_old_leak("orphans", &["exec"], 0, 4);
}

#[test]
fn kill_switch_off_leaks_the_grandchild_holding_stdout_but_does_not_hang() {
    shows_the_old_leak("holds-stdout", &["exec"], 0, 2);
}

#[test]
fn kill_switch_off_leaks_the_stopped_worker_and_the_forking_tree() {
    shows_the_old_leak("stopped", &["exec", "--timeout", TREE_TIMEOUT], 124, 2);
    shows_the_old_leak("forking", &["exec", "--timeout", TREE_TIMEOUT], 124, 6);
}

// --- pytest ----------------------------------------------------------------------------------

const SLOW_TEST_PY: &str = r#"
import pathlib, time
import pytest

HERE = pathlib.Path(__file__).parent

@pytest.fixture
def resource():
    yield
    (HERE / "teardown-ran").write_text("yes")

def test_sleeps(resource):
    (HERE / "test-started").write_text("yes")
    time.sleep(300)
"#;

#[test]
fn a_pytest_run_that_times_out_tears_down_prints_its_summary_and_is_a_timeout() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.path().join("test_slow.py"), SLOW_TEST_PY).unwrap();
    let mut cmd = sandbox.orch();
    // The deadline leaves pytest time to start even on a loaded machine; the grace is far more
    // than its tear-down needs.
    cmd.args([
        "--json",
        "exec",
        "--timeout",
        "10s",
        "--grace",
        "20s",
        "--",
        "python3",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "test_slow.py",
    ]);
    let out = run_bounded(cmd).expect(124);
    let doc = out.json();
    assert_eq!(doc["outcome"], "timeout", "{}", out.stdout);
    // pytest's own verdict on SIGINT is exit 2 ("interrupted"); the runner calls it a timeout.
    assert_eq!(doc["exit_status"], 2, "{}\n{}", out.stdout, out.stderr);
    assert!(
        sandbox.path().join("test-started").exists(),
        "{}",
        out.stderr
    );
    assert!(
        sandbox.path().join("teardown-ran").exists(),
        "the fixture was not torn down:\n{}",
        out.stderr
    );
    assert!(out.stderr.contains("KeyboardInterrupt"), "{}", out.stderr);
    let summary = out
        .stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    assert!(
        summary.contains(" in ") && summary.trim_end_matches('=').trim_end().ends_with('s'),
        "pytest's summary line is missing; last line: {summary:?}\n{}",
        out.stderr
    );
}

// --- exit codes and output -------------------------------------------------------------------

#[test]
fn exit_codes_are_those_of_timeout_1() {
    let sandbox = Sandbox::new();
    let run = |args: &[&str]| {
        let mut cmd = sandbox.orch();
        cmd.args(args);
        run_bounded(cmd)
    };
    run(&["exec", "--timeout", "1s", "--", "sh", "-c", "exit 3"]).expect(3);
    run(&["exec", "--", "true"]).expect(0);
    let out = run(&["exec", "--timeout", "1s", "--", "sleep", "30"]).expect(124);
    assert!(out.stderr.contains("timed out after 1s"), "{}", out.stderr);
    run(&["exec", "--timeout", "0.5", "--", "sleep", "30"]).expect(124);
    let out = run(&["exec", "--", "orch-test-no-such-program"]).expect(127);
    assert!(out.stderr.contains("not found"), "{}", out.stderr);
    let not_executable = sandbox.path().join("data.txt");
    std::fs::write(&not_executable, "just text\n").unwrap();
    run(&["exec", "--", not_executable.to_str().unwrap()]).expect(126);
    // Killed by a signal orch did not send: 128 + N.
    run(&["exec", "--", "sh", "-c", "kill -KILL $$"]).expect(137);
    let out = run(&["exec", "--timeout", "soon", "--", "true"]).expect(125);
    assert!(out.stderr.starts_with("orch: --timeout"), "{}", out.stderr);
    run(&["exec", "--signal", "KILL", "--", "true"]).expect(125);
    // `orch exec` never touches the database.
    assert!(!sandbox.db.exists());
    assert!(!sandbox.db.parent().unwrap().exists());
}

#[test]
fn json_puts_the_command_output_on_stderr_and_one_document_on_stdout() {
    let sandbox = Sandbox::new();
    let log = sandbox.path().join("out.log");
    let mut cmd = sandbox.orch();
    cmd.args(["--json", "exec", "--log"]).arg(&log).args([
        "--",
        "sh",
        "-c",
        "echo to-stdout; echo to-stderr >&2; exit 3",
    ]);
    let out = run_bounded(cmd).expect(3);
    let doc = out.json();
    assert_eq!(doc["outcome"], "red");
    assert_eq!(doc["exit_code"], 3);
    assert_eq!(doc["exit_status"], 3);
    assert_eq!(doc["tree_kill"], true);
    assert!(out.stderr.contains("to-stdout") && out.stderr.contains("to-stderr"));
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("to-stdout") && logged.contains("to-stderr"),
        "{logged}"
    );
    assert!(!sandbox.db.exists());
}

#[test]
fn without_json_the_command_keeps_its_own_stdout_and_stderr() {
    let sandbox = Sandbox::new();
    let mut cmd = sandbox.orch();
    cmd.args(["exec", "--", "sh", "-c", "echo out; echo err >&2"]);
    let out = run_bounded(cmd).expect(0);
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
}
