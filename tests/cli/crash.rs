//! `kill -9` at every step: each fault point aborts orch exactly there (feature
//! `fault-injection`), `orch reap` recovers, and the invariant checker finds nothing wrong.

use std::path::Path;
use std::time::Duration;

use crate::invariants;
use crate::support::{merge_script, pid_alive, wait_until, Fixture, Out, Sandbox};

const PYTEST: &str = "python3 -m pytest -q -p no:cacheprovider";

fn env(sb: &Sandbox, suite: &str) -> Vec<(String, String)> {
    vec![
        ("ORCH_MERGE_RETEST_CMD".into(), suite.into()),
        ("ORCH_COVERAGE_CMD".into(), String::new()),
        ("ORCH_KILL_GRACE_S".into(), "1".into()),
        ("ORCH_MERGE_INFRA_RETRY_BACKOFF_S".into(), "1".into()),
        ("ORCH_MERGE_CMD".into(), merge_script("ff")),
        (
            "ORCH_ALERT_CMD".into(),
            format!("cat >> '{}'", sb.path().join("alerts").display()),
        ),
    ]
}

fn run(sb: &Sandbox, args: &[&str], env: &[(String, String)]) -> Out {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    sb.run_env(args, &env)
}

/// Runs `args` with the fault point selected and checks it died by abort exactly there.
fn crash_at(sb: &Sandbox, point: &str, args: &[&str], env: &[(String, String)]) {
    let mut env = env.to_vec();
    env.push(("FAULT_INJECT_AT".into(), point.into()));
    let out = run(sb, args, &env);
    assert_eq!(
        out.code,
        128 + 6,
        "{point}: expected SIGABRT, got {}:\n{}\n{}",
        out.code,
        out.stdout,
        out.stderr
    );
    let fault_lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("fault-injection"))
        .collect();
    assert_eq!(
        fault_lines,
        [format!("orch: fault-injection: abort at {point}")],
        "{point}: {}",
        out.stderr
    );
}

/// A suite that starts a worker, writes its pid and hangs (so a crash leaves a live group).
fn hanging_suite(dir: &Path) -> String {
    format!(
        "sh -c '(trap \"\" INT TERM; sleep 600) & echo $! >> {pids}; sleep 600'",
        pids = dir.join("pids").display()
    )
}

fn pids(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

fn reap_and_check(sb: &Sandbox, fx: &Fixture, env: &[(String, String)]) {
    run(sb, &["reap"], env).expect(0);
    let workers = pids(sb.path());
    wait_until("every worker to be dead", Duration::from_secs(30), || {
        workers.iter().all(|p| !pid_alive(*p))
    });
    invariants::check(sb, &[fx]);
}

#[test]
fn every_fault_point_is_recovered_by_reap() {
    let points: Vec<&str> = orch::fault::POINTS.to_vec();
    let mut covered = Vec::new();

    // Steps of `advance deploy-staging → deploy` and of the runner.
    for point in [
        "advance.after_lease",
        "runner.after_run_row",
        "runner.after_spawn",
        "gate.before_verdict",
    ] {
        let sb = Sandbox::new();
        let fx = Fixture::new(&sb);
        fx.commit_branch("feat/c", "main", &[("c.txt", "c\n")], "c");
        fx.add_task(&sb, "C", "feat/c", "deploy-staging");
        let suite = if point == "runner.after_spawn" {
            hanging_suite(sb.path())
        } else {
            PYTEST.to_string()
        };
        let env = env(&sb, &suite);
        crash_at(&sb, point, &["advance", "C", "--to", "deploy"], &env);
        if point == "runner.after_run_row" {
            // Its leader was waiting for go: orch's death must end it, with no reaper's help.
            let leader: i32 = sb.sqlite("SELECT leader_pid FROM runs").parse().unwrap();
            wait_until(
                "the waiting leader to exit by itself",
                Duration::from_secs(30),
                || !pid_alive(leader),
            );
        }
        reap_and_check(&sb, &fx, &env);
        // The task is not stuck: it can still move on.
        assert_eq!(sb.stage_of("C").0, "deploy-staging", "{point}");
        let green = self::env(&sb, PYTEST);
        run(&sb, &["advance", "C", "--to", "deploy", "--force"], &green).expect(0);
        invariants::check(&sb, &[&fx]);
        covered.push(point);
    }

    // merge-verify: the forge merged, then orch died before the proof; the next try proves it.
    {
        let sb = Sandbox::new();
        let fx = Fixture::new(&sb);
        fx.commit_branch("feat/m", "main", &[("m.txt", "m\n")], "m");
        fx.add_task(&sb, "M", "feat/m", "deploy-staging");
        let env = env(&sb, PYTEST);
        run(&sb, &["advance", "M", "--to", "deploy"], &env).expect(0);
        crash_at(
            &sb,
            "merge_verify.after_merge_cmd",
            &["advance", "M", "--to", "done"],
            &env,
        );
        reap_and_check(&sb, &fx, &env);
        run(&sb, &["advance", "M", "--to", "done"], &env).expect(0);
        invariants::check(&sb, &[&fx]);
        covered.push("merge_verify.after_merge_cmd");
    }

    // After the commit, before the release: the transition stands.
    {
        let sb = Sandbox::new();
        let fx = Fixture::new(&sb);
        fx.add_task(&sb, "A", "feat/a", "review");
        let env = env(&sb, PYTEST);
        crash_at(
            &sb,
            "advance.after_commit",
            &["advance", "A", "--to", "testing"],
            &env,
        );
        assert_eq!(sb.stage_of("A"), ("testing".into(), 2));
        reap_and_check(&sb, &fx, &env);
        covered.push("advance.after_commit");
    }

    // The reaper itself dies between killing an orphan's group and finishing its row.
    {
        let sb = Sandbox::new();
        let fx = Fixture::new(&sb);
        fx.commit_branch("feat/r", "main", &[("r.txt", "r\n")], "r");
        fx.add_task(&sb, "R", "feat/r", "deploy-staging");
        let env = env(&sb, &hanging_suite(sb.path()));
        crash_at(
            &sb,
            "runner.after_spawn",
            &["advance", "R", "--to", "deploy"],
            &env,
        );
        crash_at(&sb, "reap.before_finish", &["reap"], &env);
        reap_and_check(&sb, &fx, &env);
        assert_eq!(
            sb.sqlite("SELECT count(*) FROM gate_events WHERE outcome = 'reaped'"),
            "1",
            "routed once"
        );
        covered.push("reap.before_finish");
    }

    covered.sort_unstable();
    let mut all = points;
    all.sort_unstable();
    assert_eq!(covered, all, "every fault point is covered");
}

#[test]
fn a_task_that_moves_on_between_the_read_and_the_lease_starts_no_gate() {
    use std::io::BufRead;
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/p", "main", &[("p.txt", "p\n")], "p");
    fx.add_task(&sb, "P", "feat/p", "deploy-staging");
    let marker = sb.path().join("security-ran");
    let mut cmd = sb.orch();
    cmd.args(["advance", "P", "--to", "deploy"])
        .env(
            "ORCH_SECURITY_GATE_CMD",
            format!("touch '{}'", marker.display()),
        )
        .env("FAULT_PAUSE_AT", "advance.before_lease")
        .env("FAULT_PAUSE_UNTIL", sb.path().join("go"))
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert_eq!(
        line.trim(),
        "orch: fault-injection: pause at advance.before_lease"
    );
    // Another actor rolls the task back while this one is between its read and its lease.
    sb.sqlite("UPDATE tasks SET stage = 'development', version = version + 1");
    std::fs::write(sb.path().join("go"), "").unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(status.code(), Some(4), "{rest}");
    assert!(
        rest.contains("is at `development` (version 2) now"),
        "{rest}"
    );
    assert!(!marker.exists(), "no gate ran for a lost race");
    assert_eq!(sb.sqlite("SELECT count(*) FROM gate_events"), "0");
    assert_eq!(sb.sqlite("SELECT count(*) FROM transition_lease"), "0");
}
