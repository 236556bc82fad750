//! The process-group runner's tracked runs, in process: the `runs` row is committed before the
//! command execs, a full host is lock-busy and runs nothing, the row is finished once with its
//! outcome, evidence and capped output, and a lost lease kills the tree at once.
//!
//! The scenarios run in sequence in one test: the runner's signal mask and child-subreaper flag
//! are process-wide state, so two runs in one process must never overlap.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use orch::config::Config;
use orch::runner::{self, Echo, RunOutcome, RunSpec, Track};
use orch::store::{NewRun, Store};

fn config() -> Config {
    Config::load(&|_| None, None)
}

fn sqlite(db: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("the sqlite3 shell runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A tracked gate run of `command` (through `sh -c`), output captured only.
fn tracked(command: &str, max_concurrent: u32) -> RunSpec {
    let mut spec = RunSpec::shell(&config(), command);
    spec.echo = Echo::Silent;
    spec.track = Some(Track {
        task_id: None,
        gate: "retest".into(),
        max_concurrent,
        budget_tip: None,
        published_tip: None,
    });
    spec
}

fn alive(pid: i32) -> bool {
    orch::host::proc_stat(pid).is_some_and(|s| !s.is_dead())
}

#[test]
fn tracked_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orch.db");
    let mut store = Store::open(&db).unwrap();
    let dbs = db.display().to_string();

    // The row is committed before the command execs: the command itself reads it, with its own
    // pid as the recorded leader (= pgid).
    let spec = tracked(
        &format!(
            "echo leader=$$; sqlite3 '{dbs}' \"SELECT 'rows=' || count(*) || ' leader=' || leader_pid FROM runs WHERE finished_at IS NULL\""
        ),
        1,
    );
    let result = runner::run(Some(&mut store), &spec, None).unwrap();
    assert_eq!(result.outcome, RunOutcome::Passed, "{}", result.output);
    let leader = result
        .output
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("leader="))
        .expect("the command printed its pid");
    assert!(
        result.output.contains(&format!("rows=1 leader={leader}")),
        "the command did not see its own committed row: {}",
        result.output
    );
    assert!(result.finished_by_me);
    let id = result.run_id.expect("a tracked run has a row");
    let row = store.read().run_row(id).unwrap().unwrap();
    assert_eq!(row.outcome.as_deref(), Some("passed"));
    assert_eq!(row.exit_status, Some(0));
    assert_eq!(row.leader_pid.to_string(), leader);
    assert_eq!(row.owner_pid, std::process::id() as i32);
    assert!(row.finished_at.is_some());
    assert_eq!(row.output.as_deref(), Some(result.output.as_str()));

    // A live tracked run (a row owned by this very process) fills a host limited to one: the
    // next run is lock-busy, its command never runs, and it writes no row.
    let busy = store
        .write(|db| {
            db.insert_run(&NewRun {
                task_id: None,
                gate: "retest".into(),
                command: "sleep 600".into(),
                leader_pid: std::process::id() as i32,
                leader_pid_start: 0,
                timeout_ms: 0,
                grace_ms: 0,
                budget_tip: None,
                published_tip: None,
                sandbox: None,
            })
        })
        .unwrap();
    let marker = dir.path().join("ran");
    let touch = format!("touch '{}'", marker.display());
    let rows_before = sqlite(&db, "SELECT count(*) FROM runs");
    let result = runner::run(Some(&mut store), &tracked(&touch, 1), None).unwrap();
    assert_eq!(result.outcome, RunOutcome::LockBusy);
    assert_eq!(result.run_id, None);
    assert!(!marker.exists(), "a lock-busy run's command ran");
    assert_eq!(sqlite(&db, "SELECT count(*) FROM runs"), rows_before);

    // Room for two: it runs.
    let result = runner::run(Some(&mut store), &tracked(&touch, 2), None).unwrap();
    assert_eq!(result.outcome, RunOutcome::Passed);
    assert!(marker.exists());
    std::fs::remove_file(&marker).unwrap();

    // An unfinished row whose owner is dead (the pid now belongs to another start time) does not
    // count.
    sqlite(
        &db,
        &format!("UPDATE runs SET owner_pid_start = owner_pid_start + 1 WHERE id = {busy}"),
    );
    let result = runner::run(Some(&mut store), &tracked(&touch, 1), None).unwrap();
    assert_eq!(result.outcome, RunOutcome::Passed);
    assert!(marker.exists());

    // A timeout finishes the row `timeout`, with evidence and the output capped to head + tail:
    // the last line survives.
    let mut spec = tracked(
        "i=0; while [ $i -lt 3000 ]; do echo \"line $i\"; i=$((i+1)); done; echo last-line; exec sleep 300",
        1,
    );
    spec.timeout = Some(Duration::from_secs(3));
    spec.grace = Duration::from_secs(5);
    spec.output_cap = 1000;
    let result = runner::run(Some(&mut store), &spec, None).unwrap();
    let RunOutcome::Timeout { evidence } = &result.outcome else {
        panic!("expected a timeout, got {:?}", result.outcome);
    };
    assert!(evidence.wall_s >= 3.0 && evidence.cpus >= 1, "{evidence:?}");
    assert!(result.output.starts_with("line 0\n"), "{}", result.output);
    assert!(
        result.output.contains(" bytes cut …]\n"),
        "{}",
        result.output
    );
    assert!(result.output.ends_with("last-line\n"), "{}", result.output);
    let row = store
        .read()
        .run_row(result.run_id.unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(row.outcome.as_deref(), Some("timeout"));
    let stored: serde_json::Value = serde_json::from_str(row.evidence.as_deref().unwrap()).unwrap();
    assert_eq!(stored["outcome"], "timeout");
    assert!(stored["evidence"]["verdict"].is_string(), "{stored}");
    assert_eq!(row.output.as_deref(), Some(result.output.as_str()));

    // pytest's exit codes: 5 (no tests collected) is red, 2 (interrupted) is other, and so is a
    // program that cannot start.
    let result = runner::run(Some(&mut store), &tracked("exit 5", 1), None).unwrap();
    assert_eq!(result.outcome, RunOutcome::Red);
    assert_eq!(result.exit_status, Some(5));
    let result = runner::run(Some(&mut store), &tracked("exit 2", 1), None).unwrap();
    assert_eq!(result.outcome.name(), "other");
    assert!(result.outcome.is_infra());
    let mut spec = tracked("", 1);
    spec.argv = vec!["orch-test-no-such-program".into()];
    let result = runner::run(Some(&mut store), &spec, None).unwrap();
    let RunOutcome::Other { reason } = &result.outcome else {
        panic!("expected other, got {:?}", result.outcome);
    };
    assert!(reason.contains("not found"), "{reason}");
    assert_eq!(result.start_errno, Some(nix::libc::ENOENT));
    let row = store
        .read()
        .run_row(result.run_id.unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(row.outcome.as_deref(), Some("other"));

    // A heartbeat that reports the lease lost kills the tree at once: `other`, aborted.
    let pids = dir.path().join("pids");
    let spec = tracked(
        &format!(
            "echo $$ > '{p}'; sleep 300 & echo $! >> '{p}'; wait",
            p = pids.display()
        ),
        1,
    );
    let mut beats = 0;
    let mut beat = |_: &mut Store| {
        beats += 1;
        beats < 3
    };
    let started = Instant::now();
    let result = runner::run(
        Some(&mut store),
        &spec,
        Some((Duration::from_millis(100), &mut beat)),
    )
    .unwrap();
    assert!(result.aborted);
    let RunOutcome::Other { reason } = &result.outcome else {
        panic!("expected other, got {:?}", result.outcome);
    };
    assert!(reason.starts_with("lease lost"), "{reason}");
    assert_eq!(beats, 3);
    assert!(
        started.elapsed() < Duration::from_secs(200),
        "the tree was not killed at once"
    );
    for pid in std::fs::read_to_string(&pids).unwrap().split_whitespace() {
        assert!(
            !alive(pid.parse().unwrap()),
            "pid {pid} outlived a lost lease"
        );
    }

    // A reaper that finished the row first wins: the owner writes nothing over it.
    let spec = tracked(
        &format!(
            "sqlite3 '{dbs}' \"UPDATE runs SET finished_at = 1, outcome = 'reaped' WHERE finished_at IS NULL\""
        ),
        1,
    );
    let result = runner::run(Some(&mut store), &spec, None).unwrap();
    assert_eq!(result.outcome, RunOutcome::Passed);
    assert!(!result.finished_by_me);
    let row = store
        .read()
        .run_row(result.run_id.unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(row.outcome.as_deref(), Some("reaped"));
    assert_eq!(row.output, None);
}
