//! Timeout evidence read from the suite's own processes (`/proc/PID/schedstat`), not the host's
//! load average: a sleeping suite beside CPU hogs is `hung`, a CPU-bound suite sharing its one CPU
//! with hogs is `starved`, a CPU-bound suite alone is `busy`.
//!
//! These tests run CPU hogs, so they are their own test binary and take one lock each: they never
//! run beside each other (scripts/test runs test binaries one at a time), and every hog dies when
//! its test ends, on every path (`Hogs` kills them in `Drop`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One test at a time in this binary: the hogs of one would skew another's measurement.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A shell loop that never sleeps: one CPU's worth of work, without forking.
const SPIN: &str = "while :; do :; done";

/// CPU hogs that die with the guard.
struct Hogs(Vec<Child>);

impl Hogs {
    /// `n` hogs, each pinned to `cpu` when given (`taskset -c CPU`).
    fn start(n: usize, cpu: Option<u32>) -> Hogs {
        let mut hogs = Hogs(Vec::new());
        for _ in 0..n {
            // Each hog in a session of its own: under autogroup (the kernel's default on most
            // desktops and CI images) a session is one scheduling group, so hogs sharing the
            // test's session would together get one group's share, and the suite (in orch's
            // own session) half of its CPU however many hogs ran. `setsid` execs in place (a
            // spawned child is no group leader), so the pid is the hog's.
            let mut cmd = Command::new("setsid");
            if let Some(cpu) = cpu {
                cmd.args(["taskset", "-c", &cpu.to_string()]);
            }
            cmd.args(["sh", "-c", SPIN]);
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            hogs.0.push(cmd.spawn().expect("a CPU hog starts"));
        }
        // A hog is running once it has used CPU: it then competes for certain.
        let deadline = Instant::now() + Duration::from_secs(60);
        for hog in &hogs.0 {
            while cpu_ns(hog.id()) == 0 {
                assert!(Instant::now() < deadline, "a CPU hog never ran");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        hogs
    }
}

impl Drop for Hogs {
    fn drop(&mut self) {
        for hog in &mut self.0 {
            let _ = hog.kill();
            let _ = hog.wait();
        }
    }
}

/// Nanoseconds `pid` spent on a CPU (`/proc/PID/schedstat`'s first field).
fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn orch_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_orch"))
}

/// `orch --json exec --timeout TIMEOUT -- ARGV…`: the timeout's outcome document.
fn exec_timeout(timeout: &str, argv: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(orch_bin());
    for (key, _) in std::env::vars() {
        if key.starts_with("ORCH_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .env("ORCH_DB_PATH", dir.path().join("orch.db"))
        .current_dir(dir.path())
        .args([
            "--json",
            "exec",
            "--timeout",
            timeout,
            "--grace",
            "1s",
            "--",
        ])
        .args(argv)
        .stdin(Stdio::null())
        .output()
        .expect("orch runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(124),
        "expected the timeout's exit 124\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{stdout}"));
    assert_eq!(doc["outcome"], "timeout", "{doc}");
    doc
}

fn seconds(evidence: &serde_json::Value, key: &str) -> f64 {
    evidence[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` missing from the evidence {evidence}"))
}

/// The evidence must say how it was measured and show the numbers its verdict follows from.
#[track_caller]
fn assert_verdict(doc: &serde_json::Value, verdict: &str) {
    let evidence = &doc["evidence"];
    assert_eq!(evidence["measured_by"], "schedstat", "{evidence}");
    let (cpu, waited, wall) = (
        seconds(evidence, "cpu_s"),
        seconds(evidence, "waited_s"),
        seconds(evidence, "wall_s"),
    );
    assert!(wall > 0.0, "{evidence}");
    assert!(evidence["load_1m"].is_number(), "{evidence}");
    assert!(
        evidence["cpus"].as_u64().is_some_and(|n| n >= 1),
        "{evidence}"
    );
    assert!(
        evidence["processes"].as_u64().is_some_and(|n| n >= 1),
        "{evidence}"
    );
    assert_eq!(evidence["verdict"], verdict, "{evidence}");
    match verdict {
        "starved" => assert!(waited >= wall / 3.0, "{evidence}"),
        "hung" => assert!(cpu < wall / 10.0 && waited < wall / 10.0, "{evidence}"),
        _ => assert!(waited < wall / 3.0 && cpu >= wall / 10.0, "{evidence}"),
    }
}

#[test]
fn a_sleeping_suite_beside_four_cpu_hogs_is_hung_not_starved() {
    let _serial = serial();
    let _hogs = Hogs::start(4, None);
    let doc = exec_timeout("3s", &["sleep", "60"]);
    assert_verdict(&doc, "hung");
}

#[test]
fn a_cpu_bound_suite_pinned_beside_two_hogs_on_its_cpu_is_starved() {
    let _serial = serial();
    let _hogs = Hogs::start(2, Some(0));
    let doc = exec_timeout("4s", &["taskset", "-c", "0", "sh", "-c", SPIN]);
    assert_verdict(&doc, "starved");
}

#[test]
fn a_cpu_bound_suite_alone_is_busy() {
    let _serial = serial();
    // Alone means alone: the suite's session (its own scheduling group under autogroup) and the
    // loop itself get the highest priority where orch's tests run as root, so that other work on
    // a shared test machine cannot starve it; elsewhere the boosts fail quietly.
    let boosted = format!(
        "echo -20 >/proc/self/autogroup 2>/dev/null; renice -n -20 -p $$ >/dev/null 2>&1; {SPIN}"
    );
    let doc = exec_timeout("3s", &["sh", "-c", &boosted]);
    assert_verdict(&doc, "busy");
}
