//! Honest classification (issue 14): a problem no retry fixes is `config` (HOLD, one alert, exit
//! 12, its re-queue dropped); a program that cannot start is infra for every gate; a HOLD placed
//! while a gate runs is exit 6; the actor of cron's and orch's own writes; a take-over says so;
//! every gate message names its run; a panicking gate is an infra verdict.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{
    env_with, pid_start_time, run_env_owned as run, wait_until, Fixture, Out, Sandbox,
};

/// The one line a step printed on stdout (its message).
#[track_caller]
fn one_line(out: &Out) -> String {
    assert_eq!(out.stdout.lines().count(), 1, "stdout: {}", out.stdout);
    out.stdout.trim().to_string()
}

/// Asserts the task is on HOLD by `orch` at `stage` with one alert and no re-queue, no
/// transition and no developer retry: what a `config` outcome leaves.
#[track_caller]
fn assert_config_hold(sb: &Sandbox, id: &str, stage: &str, names: &str) {
    assert_eq!(sb.stage_of(id).0, stage);
    let reason = sb.sqlite(&format!("SELECT hold_reason FROM tasks WHERE id = '{id}'"));
    assert!(reason.contains(names), "hold reason: {reason}");
    assert_eq!(
        sb.sqlite(&format!(
            "SELECT actor || '|' || action FROM holds WHERE task_id = '{id}'"
        )),
        "orch|hold"
    );
    assert_eq!(
        sb.sqlite(&format!(
            "SELECT count(*) FROM alerts WHERE task_id = '{id}'"
        )),
        "1"
    );
    assert_eq!(
        sb.sqlite(&format!(
            "SELECT count(*) FROM requeues WHERE task_id = '{id}'"
        )),
        "0"
    );
    assert_eq!(
        sb.sqlite(&format!("SELECT dev_retries FROM tasks WHERE id = '{id}'")),
        "0"
    );
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM edge_budgets WHERE infra_attempts > 0"),
        "0",
        "no infra budget spent"
    );
    assert_eq!(
        sb.sqlite(&format!(
            "SELECT count(*) FROM gate_events WHERE task_id = '{id}' AND outcome = 'config'"
        )),
        "1"
    );
}

#[test]
fn a_branch_gone_from_the_remote_is_a_config_hold_never_a_pass() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let tip = fx.commit_branch("feat/gone", "main", &[("notes.txt", "g\n")], "g");
    fx.add_task(&sb, "GONE", "feat/gone", "testing");
    let env = env_with(&[]);
    // The mirror fetched the branch once (its tracking ref exists), then the forge deleted it.
    run(
        &sb,
        &[
            "advance",
            "GONE",
            "--to",
            "deploy-staging",
            "--validated-sha",
            &tip,
        ],
        &env,
    )
    .expect(0);
    crate::support::git(&fx.remote, &["update-ref", "-d", "refs/heads/feat/gone"]);
    let out = run(&sb, &["advance", "GONE", "--to", "deploy"], &env).expect(12);
    let line = one_line(&out);
    assert!(line.contains("feat/gone"), "{line}");
    assert!(line.contains("not on the remote"), "{line}");
    assert!(line.contains("hint:"), "{line}");
    assert!(line.contains("on HOLD, one alert raised"), "{line}");
    assert_config_hold(&sb, "GONE", "deploy-staging", "not on the remote");
    assert_eq!(sb.sqlite("SELECT count(*) FROM runs"), "0", "no gate ran");
    fx.assert_no_target_push();
}

#[test]
fn a_gate_program_missing_from_path_is_a_config_hold_and_its_requeue_is_dropped() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/m", "main", &[("notes.txt", "m\n")], "m");
    fx.add_task(&sb, "MISS", "feat/m", "deploy-staging");
    // First an infra outcome a retry can fix: a timed-out scan, re-queued.
    let env = env_with(&[
        ("ORCH_SECURITY_GATE_CMD", "sleep 30".into()),
        ("ORCH_SECURITY_GATE_TIMEOUT_S", "1".into()),
    ]);
    run(&sb, &["advance", "MISS", "--to", "deploy"], &env).expect(11);
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM requeues WHERE task_id = 'MISS'"),
        "1"
    );
    sb.sqlite("UPDATE requeues SET due_at = 0, due_boot_ms = 0");
    sb.sqlite("DELETE FROM edge_budgets");
    // Then cron runs it with a scanner that is not installed.
    let env = env_with(&[(
        "ORCH_SECURITY_GATE_CMD",
        "no-such-scanner-xyz --all .".into(),
    )]);
    let runs_before = sb.sqlite("SELECT count(*) FROM runs");
    let out = run(&sb, &["advance", "--next"], &env).expect(12);
    let line = one_line(&out);
    assert!(line.contains("`no-such-scanner-xyz`"), "{line}");
    assert!(line.contains("ORCH_SECURITY_GATE_CMD"), "{line}");
    assert_config_hold(&sb, "MISS", "deploy-staging", "no-such-scanner-xyz");
    assert_eq!(sb.sqlite("SELECT count(*) FROM runs"), runs_before);
    // Nothing left for cron to re-claim every minute.
    let out = run(&sb, &["advance", "--next"], &env).expect(0);
    assert!(out.stdout.contains("nothing due"), "{}", out.stdout);

    // An absolute path that is not executable is the same problem.
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/n", "main", &[("notes.txt", "n\n")], "n");
    fx.add_task(&sb, "NX", "feat/n", "deploy-staging");
    let scanner = sb.path().join("scanner.sh");
    std::fs::write(&scanner, "#!/bin/sh\nexit 0\n").unwrap();
    let env = env_with(&[("ORCH_SECURITY_GATE_CMD", scanner.display().to_string())]);
    let out = run(&sb, &["advance", "NX", "--to", "deploy"], &env).expect(12);
    assert!(one_line(&out).contains("not executable"), "{}", out.stdout);
    assert_config_hold(&sb, "NX", "deploy-staging", "not executable");
}

/// A gate, the environment that makes its program fail to start, and what its detail says.
type Case = (&'static str, Vec<(&'static str, String)>, &'static str);

#[test]
fn a_gate_program_that_cannot_start_is_infra_for_every_gate() {
    // Shell syntax the preflight does not judge, so the program's absence shows in the run.
    let cases: [Case; 3] = [
        (
            "security",
            vec![(
                "ORCH_SECURITY_GATE_CMD",
                "cd . && no-such-scanner-xyz".into(),
            )],
            "not found",
        ),
        (
            "security",
            vec![("ORCH_SECURITY_GATE_CMD", "cd . && ./scan.sh".into())],
            "not executable",
        ),
        (
            "merge",
            vec![("ORCH_MERGE_RETEST_CMD", "cd . && no-such-pytest-xyz".into())],
            "not found",
        ),
    ];
    for (gate, extra, why) in cases {
        let sb = Sandbox::new();
        let fx = Fixture::new(&sb);
        fx.commit_branch("feat/c", "main", &[("scan.sh", "#!/bin/sh\nexit 0\n")], "c");
        fx.add_task(&sb, "C", "feat/c", "deploy-staging");
        let out = run(
            &sb,
            &["advance", "C", "--to", "deploy", "--json"],
            &env_with(&extra),
        )
        .expect(11);
        let json = out.json();
        let failed = json["gates"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(failed["gate"], gate, "{json}");
        assert_eq!(failed["outcome"], "other", "{gate}: {json}");
        assert!(
            failed["detail"].as_str().unwrap().contains(why),
            "{gate}: {json}"
        );
        assert_eq!(json["requeue"]["outcome"], "infra-requeued", "{json}");
        assert_eq!(sb.stage_of("C"), ("deploy-staging".into(), 1));
        assert_eq!(sb.sqlite("SELECT dev_retries FROM tasks"), "0");
        assert_eq!(sb.sqlite("SELECT count(*) FROM transitions"), "0");
        assert_eq!(sb.sqlite("SELECT count(*) FROM holds"), "0");
    }
}

#[test]
fn task_add_at_a_stage_that_needs_its_branch_refuses_a_branch_not_on_the_remote() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    sb.add_repo("app", fx.remote.to_str().unwrap());
    let before = sb.dump();
    for stage in ["deploy-staging", "deploy"] {
        let out = sb
            .run(&[
                "task",
                "add",
                "EARLY",
                "--repo",
                "app",
                "--branch",
                "feat/not-yet",
                "--stage",
                stage,
                "--force",
                "--reason",
                "migrated",
            ])
            .expect(2);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(out.stderr.contains("feat/not-yet"), "{}", out.stderr);
        assert!(out.stderr.contains("not on the remote"), "{}", out.stderr);
        assert!(out.stderr.contains("hint:"), "{}", out.stderr);
        assert!(out.stdout.is_empty());
        assert_eq!(sb.dump(), before, "{stage}: nothing written");
    }
    // Registered at `created` before its branch exists: valid (agents register work first).
    sb.run(&[
        "task",
        "add",
        "EARLY",
        "--repo",
        "app",
        "--branch",
        "feat/not-yet",
    ])
    .expect(0);
    assert_eq!(sb.stage_of("EARLY"), ("created".into(), 1));
    // Once pushed, a forced registration at deploy-staging is accepted.
    fx.commit_branch("feat/there", "main", &[("t.txt", "t\n")], "t");
    sb.run(&[
        "task",
        "add",
        "LATE",
        "--repo",
        "app",
        "--branch",
        "feat/there",
        "--stage",
        "deploy-staging",
        "--force",
        "--reason",
        "migrated",
    ])
    .expect(0);
}

#[test]
fn kill_switch_exhaustion_while_a_human_moved_the_task_writes_the_hold_it_reports() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/k", "main", &[("notes.txt", "k\n")], "k");
    fx.add_task(&sb, "K", "feat/k", "deploy-staging");
    // The scan moves the task the way a human with sqlite3 would, then hangs until its timeout.
    let scan = format!(
        "sqlite3 -cmd '.timeout 30000' '{}' \"UPDATE tasks SET stage = 'development', version = version + 1 WHERE id = 'K'\"; sleep 30",
        sb.db.display()
    );
    let env = env_with(&[
        ("ORCH_TRANSITION_LEASE_ENABLED", "false".into()),
        ("ORCH_MERGE_INFRA_RETRY_MAX", "0".into()),
        ("ORCH_SECURITY_GATE_CMD", scan),
        ("ORCH_SECURITY_GATE_TIMEOUT_S", "2".into()),
    ]);
    let out = run(&sb, &["advance", "K", "--to", "deploy"], &env).expect(12);
    let line = one_line(&out);
    assert!(line.contains("on HOLD, one alert raised"), "{line}");
    // The plain write: the HOLD lands wherever the task is now.
    assert_eq!(sb.stage_of("K"), ("development".into(), 2));
    let reason = sb.sqlite("SELECT hold_reason FROM tasks WHERE id = 'K'");
    assert!(reason.contains("infra retries exhausted"), "{reason}");
    assert_eq!(
        sb.sqlite("SELECT actor || '|' || action FROM holds WHERE task_id = 'K'"),
        "orch|hold"
    );
    assert_eq!(sb.sqlite("SELECT count(*) FROM alerts"), "1");
    assert_eq!(sb.sqlite("SELECT count(*) FROM requeues"), "0");
}

/// `orch advance … --to deploy` started in the background.
fn spawn_advance(sb: &Sandbox, id: &str, env: &[(String, String)]) -> std::process::Child {
    let mut cmd = sb.orch();
    // `-q`: the error line is all it prints.
    cmd.args(["-q", "advance", id, "--to", "deploy"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

#[test]
fn a_hold_placed_while_a_gate_runs_is_exit_6_for_red_and_timeout() {
    for (kind, tail, timeout) in [("red", "exit 1", "60"), ("timeout", "sleep 600", "10")] {
        let sb = Sandbox::new();
        let fx = Fixture::new(&sb);
        fx.commit_branch("feat/h", "main", &[("notes.txt", "h\n")], "h");
        fx.add_task(&sb, "H", "feat/h", "deploy-staging");
        let started = sb.path().join("started");
        let go = sb.path().join("go");
        let scan = format!(
            "touch '{}'; while [ ! -e '{}' ]; do sleep 0.05; done; {tail}",
            started.display(),
            go.display()
        );
        let env = env_with(&[
            ("ORCH_SECURITY_GATE_CMD", scan),
            ("ORCH_SECURITY_GATE_TIMEOUT_S", timeout.into()),
        ]);
        let child = spawn_advance(&sb, "H", &env);
        wait_until("the scan to start", Duration::from_secs(60), || {
            started.exists()
        });
        sb.run(&["task", "hold", "H", "--reason", "a human looks"])
            .expect(0);
        std::fs::write(&go, "").unwrap();
        let out = Out::from(child.wait_with_output().unwrap()).expect(6);
        assert_eq!(out.stderr.lines().count(), 1, "{kind}: {}", out.stderr);
        assert!(out.stderr.contains("is on HOLD"), "{kind}: {}", out.stderr);
        assert!(!out.stderr.contains("lost its lease"), "{}", out.stderr);
        assert_eq!(sb.stage_of("H"), ("deploy-staging".into(), 1), "{kind}");
        assert_eq!(sb.sqlite("SELECT count(*) FROM transitions"), "0");
        assert_eq!(sb.sqlite("SELECT count(*) FROM requeues"), "0", "{kind}");
        assert_eq!(sb.sqlite("SELECT count(*) FROM gate_events"), "0", "{kind}");
        assert_eq!(sb.sqlite("SELECT dev_retries FROM tasks"), "0");
        assert_eq!(sb.sqlite("SELECT count(*) FROM transition_lease"), "0");
        assert_eq!(
            sb.sqlite("SELECT count(*) FROM runs WHERE finished_at IS NULL"),
            "0"
        );
    }
}

#[test]
fn cron_and_orch_are_recorded_as_the_actors_of_their_own_writes() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/a", "main", &[("notes.txt", "a\n")], "a");
    fx.add_task(&sb, "A", "feat/a", "deploy-staging");
    let hang = env_with(&[
        ("ORCH_SECURITY_GATE_CMD", "sleep 30".into()),
        ("ORCH_SECURITY_GATE_TIMEOUT_S", "1".into()),
    ]);
    run(&sb, &["advance", "A", "--to", "deploy"], &hang).expect(11);
    sb.sqlite("UPDATE requeues SET due_at = 0, due_boot_ms = 0");
    run(&sb, &["advance", "--next"], &env_with(&[])).expect(0);
    assert_eq!(
        sb.sqlite("SELECT actor FROM transitions WHERE to_stage = 'deploy'"),
        "cron"
    );
    let show = sb.run(&["task", "show", "A", "--json"]).expect(0).json();
    assert!(show.to_string().contains("\"cron\""), "{show}");

    // `--actor` overrides it.
    fx.commit_branch("feat/b", "main", &[("notes.txt", "b\n")], "b");
    fx.add_task(&sb, "B", "feat/b", "deploy-staging");
    run(&sb, &["advance", "B", "--to", "deploy"], &hang).expect(11);
    sb.sqlite("UPDATE requeues SET due_at = 0, due_boot_ms = 0");
    run(
        &sb,
        &["advance", "--next", "--actor", "ci-bot"],
        &env_with(&[]),
    )
    .expect(0);
    assert_eq!(
        sb.sqlite("SELECT actor FROM transitions WHERE task_id = 'B' AND to_stage = 'deploy'"),
        "ci-bot"
    );

    // An exhausted budget is orch's HOLD, whoever ran the step.
    fx.commit_branch("feat/e", "main", &[("notes.txt", "e\n")], "e");
    fx.add_task(&sb, "E", "feat/e", "deploy-staging");
    let mut exhaust = hang.clone();
    exhaust.push(("ORCH_MERGE_INFRA_RETRY_MAX".into(), "0".into()));
    run(
        &sb,
        &["advance", "E", "--to", "deploy", "--actor", "alice"],
        &exhaust,
    )
    .expect(12);
    assert_eq!(
        sb.sqlite("SELECT actor FROM holds WHERE task_id = 'E'"),
        "orch"
    );
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn taking_over_a_dead_holders_lease_says_so_in_one_line() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/t", "main", &[("notes.txt", "t\n")], "t");
    fx.add_task(&sb, "T", "feat/t", "deploy-staging");
    let mut dead = Command::new("true").spawn().unwrap();
    let pid = dead.id() as i32;
    let start = pid_start_time(pid);
    dead.wait().unwrap();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let now = now_ms();
    sb.sqlite(&format!(
        "INSERT INTO transition_lease (task_id, owner, owner_pid, owner_pid_start, boot_id, pid_ns,
             host, acquired_at, renewed_at, expires_at, renewed_boot_ms, ttl_ms)
         VALUES ('T', 'ghost (test)', {pid}, {start}, '{}', '{}', '{}', {now}, {now}, {now} + 60000, 0, 60000)",
        boot.trim(),
        ns.display(),
        host()
    ));
    let out = run(&sb, &["advance", "T", "--to", "deploy"], &env_with(&[])).expect(0);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("took over"))
        .collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(lines[0].contains(&format!("pid {pid}")), "{}", lines[0]);
    assert!(lines[0].contains(&host()), "{}", lines[0]);
    assert!(lines[0].contains("0 run(s) finished"), "{}", lines[0]);
    assert!(lines[0].contains("0 process(es) killed"), "{}", lines[0]);
    assert_eq!(sb.stage_of("T").0, "deploy");
}

#[test]
fn every_gate_message_names_its_run() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/r", "main", &[("notes.txt", "r\n")], "r");
    fx.add_task(&sb, "R", "feat/r", "deploy-staging");
    // Timeout → re-queue.
    let env = env_with(&[
        ("ORCH_SECURITY_GATE_CMD", "sleep 30".into()),
        ("ORCH_SECURITY_GATE_TIMEOUT_S", "1".into()),
    ]);
    let out = run(&sb, &["advance", "R", "--to", "deploy"], &env).expect(11);
    let run_id = sb.sqlite("SELECT max(id) FROM runs");
    assert!(
        one_line(&out).contains(&format!("(run {run_id}: `orch run show {run_id}`)")),
        "{}",
        out.stdout
    );
    assert_eq!(
        sb.sqlite("SELECT run_id FROM gate_events WHERE outcome = 'timeout'"),
        run_id
    );
    // Red → rollback.
    let env = env_with(&[("ORCH_SECURITY_GATE_CMD", "echo CVE; exit 1".into())]);
    let out = run(&sb, &["advance", "R", "--to", "deploy", "--force"], &env).expect(10);
    let run_id = sb.sqlite("SELECT max(id) FROM runs");
    assert!(
        one_line(&out).contains(&format!("(run {run_id}: `orch run show {run_id}`)")),
        "{}",
        out.stdout
    );
}

#[cfg(feature = "fault-injection")]
#[test]
fn a_panicking_gate_is_an_infra_verdict_and_releases_lease_and_lock() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/p", "main", &[("notes.txt", "p\n")], "p");
    fx.advance_remote_main(&[("main.txt", "m\n")], "main moves");
    fx.add_task(&sb, "PANIC", "feat/p", "deploy-staging");
    let mut env = env_with(&[]);
    env.push(("FAULT_PANIC_AT".into(), "merge.after_retest".into()));
    let out = run(&sb, &["advance", "PANIC", "--to", "deploy", "--json"], &env).expect(11);
    let json = out.json();
    assert_eq!(json["gates"][1]["gate"], "merge", "{json}");
    assert_eq!(json["gates"][1]["outcome"], "other", "{json}");
    assert!(
        json["gates"][1]["detail"]
            .as_str()
            .unwrap()
            .contains("panicked"),
        "{json}"
    );
    assert_eq!(sb.stage_of("PANIC").0, "deploy-staging");
    assert_eq!(sb.sqlite("SELECT count(*) FROM transition_lease"), "0");
    assert_eq!(sb.sqlite("SELECT count(*) FROM merge_locks"), "0");
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM runs WHERE finished_at IS NULL"),
        "0"
    );
    assert_eq!(sb.sqlite("SELECT count(*) FROM requeues"), "1");
    // The gate's throwaway clone went with the unwinding gate.
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with("orch-gate-") && name.contains("-PANIC-")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Starts `orch ARGS…` in the background with a re-test that marks `started` and hangs, waits
/// until it runs, and kills orch with SIGKILL: its lease and its run are left to a dead holder.
fn kill_mid_retest(sb: &Sandbox, args: &[&str]) -> u32 {
    let started = sb.path().join("retest-started");
    let _ = std::fs::remove_file(&started);
    let hang = format!("touch '{}'; exec sleep 300", started.display());
    let mut cmd = sb.orch();
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in env_with(&[("ORCH_MERGE_RETEST_CMD", hang)]) {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    wait_until("the re-test to start", Duration::from_secs(90), || {
        started.exists()
    });
    let pid = child.id();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM runs WHERE finished_at IS NULL"),
        "1",
        "the killed holder's run is left open"
    );
    assert_eq!(
        sb.sqlite("SELECT owner_pid FROM transition_lease"),
        pid.to_string()
    );
    pid
}

/// The take-over lines of a step's stderr.
fn take_over_lines(out: &Out) -> Vec<String> {
    out.stderr
        .lines()
        .filter(|l| l.contains("took over the lease"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_dead_holder_killed_mid_run_is_taken_over_in_one_line_by_advance_and_next() {
    // `advance`: the line names the dead holder and the run it finished; `-q` silences it.
    for quiet in [false, true] {
        let sb = Sandbox::new();
        let fx = Fixture::new(&sb);
        fx.commit_branch("feat/d", "main", &[("notes.txt", "d\n")], "d");
        fx.add_task(&sb, "D", "feat/d", "deploy-staging");
        let pid = kill_mid_retest(&sb, &["advance", "D", "--to", "deploy"]);
        let args: &[&str] = if quiet {
            &["-q", "advance", "D", "--to", "deploy"]
        } else {
            &["advance", "D", "--to", "deploy"]
        };
        let out = run(&sb, args, &env_with(&[])).expect(0);
        let lines = take_over_lines(&out);
        if quiet {
            assert!(out.stderr.is_empty(), "-q: {}", out.stderr);
        } else {
            assert_eq!(lines.len(), 1, "{}", out.stderr);
            assert!(lines[0].contains(&format!("pid {pid} ")), "{}", lines[0]);
            assert!(lines[0].contains("1 run(s) finished"), "{}", lines[0]);
            assert!(lines[0].contains("process(es) killed"), "{}", lines[0]);
        }
        assert_eq!(sb.stage_of("D").0, "deploy");
        assert_eq!(
            sb.sqlite("SELECT count(*) FROM runs WHERE finished_at IS NULL"),
            "0"
        );
    }

    // `advance --next`: cron killed mid-run; the next minute's cron takes the dead lease over
    // instead of reporting the dead pid as running.
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/n", "main", &[("notes.txt", "n\n")], "n");
    fx.add_task(&sb, "N", "feat/n", "deploy-staging");
    let hang = env_with(&[
        ("ORCH_SECURITY_GATE_CMD", "sleep 30".into()),
        ("ORCH_SECURITY_GATE_TIMEOUT_S", "1".into()),
    ]);
    run(&sb, &["advance", "N", "--to", "deploy"], &hang).expect(11);
    sb.sqlite("UPDATE requeues SET due_at = 0, due_boot_ms = 0");
    let pid = kill_mid_retest(&sb, &["advance", "--next"]);
    sb.sqlite("UPDATE requeues SET due_at = 0, due_boot_ms = 0");
    let out = run(&sb, &["advance", "--next"], &env_with(&[])).expect(0);
    let lines = take_over_lines(&out);
    assert_eq!(lines.len(), 1, "{}\n{}", out.stderr, out.stdout);
    assert!(lines[0].contains(&format!("pid {pid} ")), "{}", lines[0]);
    assert!(lines[0].contains("1 run(s) finished"), "{}", lines[0]);
    assert!(!out.stdout.contains("running now"), "{}", out.stdout);
    assert_eq!(sb.sqlite("SELECT count(*) FROM transition_lease"), "0");
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM runs WHERE finished_at IS NULL"),
        "0"
    );
    // The finished run was routed as infra: its edge is re-queued, and cron runs it when due.
    assert_eq!(sb.sqlite("SELECT count(*) FROM requeues"), "1");
    sb.sqlite("UPDATE requeues SET due_at = 0, due_boot_ms = 0");
    let out = run(&sb, &["-q", "advance", "--next"], &env_with(&[])).expect(0);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
    assert_eq!(sb.stage_of("N").0, "deploy");
}

#[test]
fn a_missing_merge_command_is_judged_only_when_it_is_about_to_run() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let tip = fx.commit_branch("feat/v", "main", &[("notes.txt", "v\n")], "v");
    fx.add_task(&sb, "V", "feat/v", "deploy-staging");
    run(&sb, &["advance", "V", "--to", "deploy"], &env_with(&[])).expect(0);
    let missing = env_with(&[("ORCH_MERGE_CMD", "no-such-merge-xyz --squash".into())]);
    // The forge merged the head already: proof first, the merge command is never needed.
    fx.forge_update_main(&tip);
    let out = run(&sb, &["advance", "V", "--to", "done"], &missing).expect(0);
    assert!(out.stdout.contains("deploy → done"), "{}", out.stdout);
    assert_eq!(sb.sqlite("SELECT count(*) FROM holds"), "0");

    // Not merged: the merge command is about to run and its program is missing: config HOLD.
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/w", "main", &[("notes.txt", "w\n")], "w");
    fx.add_task(&sb, "W", "feat/w", "deploy-staging");
    run(&sb, &["advance", "W", "--to", "deploy"], &env_with(&[])).expect(0);
    let runs_before = sb.sqlite("SELECT count(*) FROM runs");
    let out = run(&sb, &["advance", "W", "--to", "done"], &missing).expect(12);
    let line = one_line(&out);
    assert!(line.contains("gate merge-verify config"), "{line}");
    assert!(line.contains("`no-such-merge-xyz`"), "{line}");
    assert!(line.contains("ORCH_MERGE_CMD"), "{line}");
    assert_config_hold(&sb, "W", "deploy", "no-such-merge-xyz");
    assert_eq!(sb.sqlite("SELECT count(*) FROM runs"), runs_before);
    fx.assert_no_target_push();
}

#[test]
fn a_missing_retest_program_is_judged_only_when_the_retest_is_about_to_run() {
    let missing = || env_with(&[("ORCH_MERGE_RETEST_CMD", "no-such-pytest-xyz -q".into())]);
    // Skip-when-current: the re-test is not needed, so its program is not either.
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let tip = fx.commit_branch("feat/s", "main", &[("notes.txt", "s\n")], "s");
    fx.add_task(&sb, "S", "feat/s", "testing");
    run(
        &sb,
        &[
            "advance",
            "S",
            "--to",
            "deploy-staging",
            "--validated-sha",
            &tip,
        ],
        &missing(),
    )
    .expect(0);
    let out = run(&sb, &["advance", "S", "--to", "deploy"], &missing()).expect(0);
    assert!(out.stderr.contains("skipped the re-test"), "{}", out.stderr);
    assert_eq!(sb.stage_of("S").0, "deploy");
    assert_eq!(sb.sqlite("SELECT count(*) FROM holds"), "0");

    // The re-test must run: its missing program is a config HOLD before any run starts, while
    // the security gate (configured, present) is judged at the edge start as before.
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/t", "main", &[("notes.txt", "t\n")], "t");
    fx.add_task(&sb, "T", "feat/t", "deploy-staging");
    let mut env = missing();
    env.push(("ORCH_SECURITY_GATE_CMD".into(), "true".into()));
    let out = run(&sb, &["advance", "T", "--to", "deploy"], &env).expect(12);
    let line = one_line(&out);
    assert!(line.contains("gate merge config"), "{line}");
    assert!(line.contains("`no-such-pytest-xyz`"), "{line}");
    assert!(line.contains("ORCH_MERGE_RETEST_CMD"), "{line}");
    assert_config_hold(&sb, "T", "deploy-staging", "no-such-pytest-xyz");
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM runs WHERE gate = 'merge'"),
        "0"
    );
    // A missing security scanner is still found before anything runs.
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/u", "main", &[("notes.txt", "u\n")], "u");
    fx.add_task(&sb, "U", "feat/u", "deploy-staging");
    let env = env_with(&[("ORCH_SECURITY_GATE_CMD", "no-such-scanner-xyz".into())]);
    let out = run(&sb, &["advance", "U", "--to", "deploy"], &env).expect(12);
    assert!(
        one_line(&out).contains("gate security config"),
        "{}",
        out.stdout
    );
    assert_eq!(sb.sqlite("SELECT count(*) FROM runs"), "0");
}

#[test]
fn the_preflight_never_holds_a_command_the_shell_can_start() {
    // `chdir` is a dash builtin.
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/c", "main", &[("notes.txt", "c\n")], "c");
    fx.add_task(&sb, "C", "feat/c", "deploy-staging");
    let env = env_with(&[("ORCH_SECURITY_GATE_CMD", "chdir . && true".into())]);
    let out = run(&sb, &["advance", "C", "--to", "deploy"], &env).expect(0);
    assert!(
        out.stderr.contains("gate security: passed"),
        "{}",
        out.stderr
    );

    // No PATH at all: `sh` searches its own default path, which is not orch's to guess, so the
    // program is left to the gate. (Only where a program lives in sbin alone.)
    let only_in_sbin = ["/usr/sbin/sysctl", "/sbin/sysctl"]
        .iter()
        .any(|p| std::path::Path::new(p).exists())
        && !["/usr/local/bin/sysctl", "/usr/bin/sysctl", "/bin/sysctl"]
            .iter()
            .any(|p| std::path::Path::new(p).exists());
    if !only_in_sbin {
        eprintln!("skipped the PATH-unset case: sysctl is not in sbin alone here");
        return;
    }
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/p", "main", &[("notes.txt", "p\n")], "p");
    fx.add_task(&sb, "P", "feat/p", "deploy-staging");
    let mut cmd = sb.orch();
    cmd.args(["advance", "P", "--to", "deploy"])
        .env_remove("PATH");
    for (k, v) in env_with(&[
        ("ORCH_SECURITY_GATE_CMD", "sysctl -n kernel.ostype".into()),
        ("ORCH_MERGE_RETEST_CMD", "true".into()),
        (
            "ORCH_COVERAGE_CMD",
            r#"echo '{"totals":{"percent_covered":100}}' > "$ORCH_COVERAGE_REPORT""#.into(),
        ),
    ]) {
        cmd.env(k, v);
    }
    let out = Out::from(cmd.output().unwrap()).expect(0);
    assert!(
        out.stderr.contains("gate security: passed"),
        "{}",
        out.stderr
    );
    assert_eq!(sb.stage_of("P").0, "deploy");
}

#[test]
fn a_hold_for_spent_developer_retries_names_its_run_and_an_empty_output_no_dangling_colon() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/r", "main", &[("notes.txt", "r\n")], "r");
    fx.add_task(&sb, "R", "feat/r", "deploy-staging");
    let env = env_with(&[
        ("ORCH_MERGE_RETEST_CMD", "echo boom; exit 1".into()),
        ("ORCH_MAX_DEV_RETRIES", "0".into()),
    ]);
    let out = run(&sb, &["advance", "R", "--to", "deploy"], &env).expect(10);
    let run_id = sb.sqlite("SELECT max(id) FROM runs");
    let line = one_line(&out);
    assert!(line.contains("on HOLD: developer retries spent"), "{line}");
    assert!(line.contains("boom"), "{line}");
    assert!(
        line.contains(&format!("(run {run_id}: `orch run show {run_id}`)")),
        "{line}"
    );

    // A red with no output at all: no ": " left hanging, for a rollback and for a HOLD.
    for (retries, code) in [("3", 10), ("0", 10)] {
        let sb = Sandbox::new();
        let fx = Fixture::new(&sb);
        fx.commit_branch("feat/e", "main", &[("notes.txt", "e\n")], "e");
        fx.add_task(&sb, "E", "feat/e", "deploy-staging");
        let env = env_with(&[
            ("ORCH_MERGE_RETEST_CMD", "exit 1".into()),
            ("ORCH_MAX_DEV_RETRIES", retries.into()),
        ]);
        let out = run(&sb, &["advance", "E", "--to", "deploy"], &env).expect(code);
        let line = one_line(&out);
        assert!(line.contains("red (exit 1, no output)"), "{line}");
        assert!(!line.contains(": (run"), "{line}");
        assert!(!line.contains(":  "), "{line}");
        assert!(!line.contains(": ;"), "{line}");
        let run_id = sb.sqlite("SELECT max(id) FROM runs");
        assert!(line.contains(&format!("(run {run_id}: ")), "{line}");
        let detail = sb.sqlite("SELECT detail FROM gate_events WHERE outcome = 'red'");
        assert!(!detail.ends_with(": "), "{detail}");
    }
}

#[test]
fn a_branch_gone_is_the_merge_gates_config_when_security_is_not_configured() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let tip = fx.commit_branch("feat/g", "main", &[("notes.txt", "g\n")], "g");
    fx.add_task(&sb, "G", "feat/g", "testing");
    let env = env_with(&[]);
    run(
        &sb,
        &[
            "advance",
            "G",
            "--to",
            "deploy-staging",
            "--validated-sha",
            &tip,
        ],
        &env,
    )
    .expect(0);
    crate::support::git(&fx.remote, &["update-ref", "-d", "refs/heads/feat/g"]);
    let out = run(&sb, &["advance", "G", "--to", "deploy"], &env).expect(12);
    let line = one_line(&out);
    assert!(line.contains("gate merge config"), "{line}");
    assert!(line.contains("not on the remote"), "{line}");
    assert_eq!(
        sb.sqlite("SELECT gate FROM gate_events WHERE outcome = 'config'"),
        "merge"
    );
    let counters = sb.sqlite("SELECT name FROM counters WHERE name LIKE '%config%' AND value > 0");
    assert!(counters.contains("merge"), "{counters}");
    assert!(!counters.contains("security"), "{counters}");
    assert_config_hold(&sb, "G", "deploy-staging", "not on the remote");
}

#[test]
fn kill_switch_routing_never_holds_a_task_a_human_cancelled_meanwhile() {
    // Infra exhaustion (exit 3 is `other`) and a red with developer retries spent. (A red with
    // retries left is the kill-switch's plain rollback, exactly: tests/cli/gates.rs pins it.)
    for (tail, retries) in [("exit 3", "3"), ("exit 1", "0")] {
        let sb = Sandbox::new();
        let fx = Fixture::new(&sb);
        fx.commit_branch("feat/k", "main", &[("notes.txt", "k\n")], "k");
        fx.add_task(&sb, "K", "feat/k", "deploy-staging");
        let started = sb.path().join("started");
        let go = sb.path().join("go");
        let retest = format!(
            "touch '{}'; while [ ! -e '{}' ]; do sleep 0.05; done; {tail}",
            started.display(),
            go.display()
        );
        let env = env_with(&[
            ("ORCH_TRANSITION_LEASE_ENABLED", "false".into()),
            ("ORCH_MERGE_INFRA_RETRY_MAX", "0".into()),
            ("ORCH_MAX_DEV_RETRIES", retries.into()),
            ("ORCH_MERGE_RETEST_CMD", retest),
        ]);
        let mut cmd = sb.orch();
        cmd.args(["-q", "advance", "K", "--to", "deploy"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        wait_until("the re-test to start", Duration::from_secs(90), || {
            started.exists()
        });
        run(
            &sb,
            &["advance", "K", "--to", "cancelled", "--reason", "abandoned"],
            &env,
        )
        .expect(0);
        std::fs::write(&go, "").unwrap();
        let out = Out::from(child.wait_with_output().unwrap()).expect(4);
        assert_eq!(out.stderr.lines().count(), 1, "{tail}: {}", out.stderr);
        assert!(
            out.stderr.contains("now cancelled"),
            "{tail}: {}",
            out.stderr
        );
        assert!(out.stderr.contains("no HOLD"), "{tail}: {}", out.stderr);
        assert_eq!(sb.stage_of("K"), ("cancelled".into(), 2), "{tail}");
        assert_eq!(
            sb.sqlite("SELECT count(*) FROM tasks WHERE hold_reason IS NOT NULL"),
            "0"
        );
        assert_eq!(sb.sqlite("SELECT count(*) FROM holds"), "0", "{tail}");
        assert_eq!(sb.sqlite("SELECT count(*) FROM alerts"), "0", "{tail}");
        assert_eq!(sb.sqlite("SELECT count(*) FROM requeues"), "0", "{tail}");
        assert_eq!(sb.sqlite("SELECT count(*) FROM transitions"), "1", "{tail}");
        assert_eq!(sb.sqlite("SELECT dev_retries FROM tasks"), "0", "{tail}");
        let queue = sb.run(&["queue", "--format", "json"]).expect(0).json();
        assert_eq!(queue["held"]["total"], 0, "{queue}");
    }
}

/// `python3 -m pytest` where that python has no pytest (cron's bare PATH finds a system python):
/// pytest's "No module named pytest" exits 1 like a red suite and blamed the change. It is a
/// config HOLD before the re-test runs, naming the interpreter; a python that has pytest passes.
#[test]
fn a_python_without_pytest_is_a_config_hold_not_a_red() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/m", "main", &[("notes.txt", "m\n")], "m");
    fx.add_task(&sb, "M", "feat/m", "deploy-staging");
    // A python3 first on PATH that sees no site-packages: the interpreter cron would find.
    let real = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v python3"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let bin = sb.path().join("bare-python");
    std::fs::create_dir_all(&bin).unwrap();
    let wrapper = bin.join("python3");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec {} -S \"$@\"\n", real.trim()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let env = env_with(&[
        ("ORCH_MERGE_RETEST_CMD", "python3 -m pytest -q".into()),
        ("PATH", path.clone()),
    ]);
    // A coverage command that runs pytest too: found at the edge's start.
    let mut with_cov = env.clone();
    with_cov.push((
        "ORCH_COVERAGE_CMD".into(),
        "python3 -m pytest -q --cov --cov-report=json:\"$ORCH_COVERAGE_REPORT\"".into(),
    ));
    let out = run(&sb, &["advance", "M", "--to", "deploy"], &with_cov).expect(12);
    assert!(
        one_line(&out).contains("gate coverage config"),
        "{}",
        out.stdout
    );
    sb.run(&["task", "release", "M"]).expect(0);
    // Without a coverage command (the default), the re-test's own check finds it before the
    // re-test runs.
    let out = run(&sb, &["advance", "M", "--to", "deploy"], &env).expect(12);
    let line = one_line(&out);
    assert!(
        line.contains("gate merge config") && line.contains("has no module `pytest`"),
        "{line}"
    );
    assert_eq!(
        sb.sqlite(
            "SELECT stage, hold_reason LIKE '%has no module `pytest`%', dev_retries FROM tasks"
        ),
        "deploy-staging|1|0",
        "held where it was, never rolled back"
    );
    assert_eq!(sb.sqlite("SELECT count(*) FROM alerts"), "2");
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM runs WHERE gate = 'merge'"),
        "0"
    );
}
