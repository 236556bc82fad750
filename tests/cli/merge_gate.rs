//! The merge sub-gate, its re-queue and budget, and `orch advance --next`, on real git
//! repositories with a bare remote and real pytest.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{
    git, merge_of, pid_alive, starved_suite, wait_until, worker_pids, Fixture, Sandbox, RED_TEST,
};

/// A suite command that leaves one line in `marker` each time it runs, then runs pytest.
fn counted_pytest(marker: &Path) -> String {
    format!(
        "echo run >> '{}'; python3 -m pytest -q -p no:cacheprovider",
        marker.display()
    )
}

fn runs_of(marker: &Path) -> usize {
    std::fs::read_to_string(marker)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// Keys every merge-gate test uses: short, consistent with the configuration invariants.
fn base_env(cmd: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ORCH_MERGE_RETEST_CMD", cmd.to_string()),
        ("ORCH_MERGE_RETEST_TIMEOUT_S", "60".into()),
        ("ORCH_KILL_GRACE_S", "2".into()),
        ("ORCH_MERGE_INFRA_RETRY_BACKOFF_S", "1".into()),
        ("ORCH_MERGE_DEFER_DELAY_S", "1".into()),
        ("ORCH_MERGE_DEFER_MAX_ATTEMPTS", "400".into()),
    ]
}

fn run(sb: &Sandbox, args: &[&str], env: &[(&'static str, String)]) -> crate::support::Out {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sb.run_env(args, &env)
}

fn gate_worktrees(sb: &Sandbox) -> usize {
    std::fs::read_dir(sb.db.parent().unwrap().join("worktrees"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn a_green_suite_passes_stores_its_verdict_and_is_not_run_again_for_the_same_commits() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/g", "main", &[("notes.txt", "green\n")], "notes");
    // main moves on: the gate must rebase, publish the branch with a lease, and re-test.
    fx.advance_remote_main(&[("other.txt", "other\n")], "other work");
    fx.add_task(&sb, "G", "feat/g", "deploy-staging");
    let marker = sb.path().join("suite-runs");
    let env = base_env(&counted_pytest(&marker));

    let out = run(&sb, &["merge-gate", "retest", "G", "--json"], &env).expect(0);
    let json = out.json();
    assert_eq!(merge_of(&json)["outcome"], "passed", "{json}");
    assert_eq!(runs_of(&marker), 1);
    let head = merge_of(&json)["head"].as_str().unwrap().to_string();
    assert_eq!(
        fx.remote_ref("refs/heads/feat/g"),
        head,
        "the rebased branch was published"
    );
    assert!(fx.remote_ref("refs/heads/main") != head);
    assert_eq!(
        git(&fx.remote, &["merge-base", &head, "main"]),
        fx.remote_ref("main"),
        "H is on main"
    );
    assert_eq!(
        sb.sqlite("SELECT head_sha FROM verdicts WHERE task_id = 'G'"),
        head
    );
    assert_eq!(gate_worktrees(&sb), 0, "the gate worktree is removed");

    // Nothing changed: the stored verdict for (H, target) is reused; the suite does not run.
    let again = run(&sb, &["merge-gate", "retest", "G", "--json"], &env)
        .expect(0)
        .json();
    assert_eq!(merge_of(&again)["outcome"], "skipped", "{again}");
    assert_eq!(runs_of(&marker), 1);

    // And advance reuses it too: the task reaches deploy without running the suite.
    run(&sb, &["advance", "G", "--to", "deploy"], &env).expect(0);
    assert_eq!(runs_of(&marker), 1);
    assert_eq!(sb.stage_of("G").0, "deploy");
    fx.assert_no_target_push();
}

#[test]
fn a_branch_already_on_main_whose_head_is_validated_skips_the_retest() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let tip = fx.commit_branch("feat/c", "main", &[("notes.txt", "current\n")], "notes");
    fx.add_task(&sb, "C", "feat/c", "testing");
    let marker = sb.path().join("suite-runs");
    let env = base_env(&counted_pytest(&marker));
    run(
        &sb,
        &[
            "advance",
            "C",
            "--to",
            "deploy-staging",
            "--validated-sha",
            &tip,
        ],
        &env,
    )
    .expect(0);

    let json = run(&sb, &["merge-gate", "retest", "C", "--json"], &env)
        .expect(0)
        .json();
    assert_eq!(merge_of(&json)["outcome"], "skipped", "{json}");
    assert!(
        merge_of(&json)["detail"]
            .as_str()
            .unwrap()
            .contains("equals validated_sha"),
        "{json}"
    );
    assert_eq!(runs_of(&marker), 0, "the suite provably did not run");
    assert_eq!(
        sb.sqlite("SELECT value FROM counters WHERE name = 'gates.merge.skipped_current'"),
        "1"
    );

    // With the switch off, the same situation runs the suite.
    let mut off = env.clone();
    off.push((
        "ORCH_MERGE_RETEST_SKIP_WHEN_CURRENT_ENABLED",
        "false".into(),
    ));
    sb.sqlite("DELETE FROM verdicts");
    run(&sb, &["merge-gate", "retest", "C"], &off).expect(0);
    assert_eq!(runs_of(&marker), 1);
    fx.assert_no_target_push();
}

#[test]
fn a_red_suite_rolls_back_and_the_red_after_the_retries_holds() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/r", "main", &[("test_red.py", RED_TEST)], "a red test");
    fx.add_task(&sb, "R", "feat/r", "deploy-staging");
    let mut env = base_env("python3 -m pytest -q -p no:cacheprovider");
    env.push(("ORCH_MAX_DEV_RETRIES", "1".into()));

    let out = run(&sb, &["advance", "R", "--to", "deploy", "--json"], &env).expect(10);
    let json = out.json();
    assert_eq!(merge_of(&json)["classification"], "red");
    assert_eq!(json["rollback"]["result"], "rolled-back");
    assert_eq!(sb.stage_of("R").0, "development");
    assert_eq!(sb.sqlite("SELECT dev_retries FROM tasks"), "1");
    let reason = sb.sqlite("SELECT reason FROM transitions ORDER BY id DESC LIMIT 1");
    assert!(reason.contains("gate merge red"), "{reason}");

    for stage in ["review", "testing", "deploy-staging"] {
        run(&sb, &["advance", "R", "--to", stage], &env).expect(0);
    }
    let json = run(&sb, &["advance", "R", "--to", "deploy", "--json"], &env)
        .expect(10)
        .json();
    assert_eq!(json["rollback"]["result"], "held", "{json}");
    assert_eq!(
        sb.stage_of("R").0,
        "deploy-staging",
        "held on the stage the gate guarded"
    );
    assert!(sb
        .sqlite("SELECT hold_reason FROM tasks")
        .contains("developer retries spent"));
    run(&sb, &["advance", "R", "--to", "deploy"], &env).expect(6);
    fx.assert_no_target_push();
}

#[test]
fn a_rebase_conflict_is_red_and_leaves_the_checkout_alone_and_a_lost_remote_is_infra() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let calc_task = "def add(a, b):\n    return b + a\n\n\ndef mul(a, b):\n    return a * b\n";
    let calc_main = "def add(a, b):\n    return a + b + 0\n\n\ndef mul(a, b):\n    return a * b\n";
    fx.commit_branch("feat/x", "main", &[("calc.py", calc_task)], "swap");
    fx.advance_remote_main(&[("calc.py", calc_main)], "zero");
    fx.add_task(&sb, "X", "feat/x", "deploy-staging");
    let head_before = git(&fx.work, &["rev-parse", "HEAD"]);
    let status_before = git(&fx.work, &["status", "--porcelain"]);
    let env = base_env("python3 -m pytest -q -p no:cacheprovider");

    let out = run(&sb, &["merge-gate", "retest", "X"], &env).expect(10);
    assert!(
        out.stdout.contains("conflicts in calc.py"),
        "{}",
        out.stdout
    );
    assert_eq!(sb.stage_of("X").0, "development");
    assert_eq!(
        git(&fx.work, &["rev-parse", "HEAD"]),
        head_before,
        "the checkout is untouched"
    );
    assert_eq!(git(&fx.work, &["status", "--porcelain"]), status_before);
    assert_eq!(
        git(&fx.work, &["worktree", "list"]).lines().count(),
        1,
        "no gate worktree left"
    );
    assert_eq!(gate_worktrees(&sb), 0);

    // The remote disappears: a failing fetch is infra, never a rollback.
    let sb2 = Sandbox::new();
    let fx2 = Fixture::new(&sb2);
    fx2.commit_branch("feat/y", "main", &[("notes.txt", "y\n")], "y");
    fx2.add_task(&sb2, "Y", "feat/y", "deploy-staging");
    std::fs::rename(&fx2.remote, sb2.path().join("gone.git")).unwrap();
    let out = run(&sb2, &["merge-gate", "retest", "Y", "--json"], &env).expect(11);
    let json = out.json();
    assert_eq!(merge_of(&json)["classification"], "infra", "{json}");
    assert!(
        merge_of(&json)["detail"]
            .as_str()
            .unwrap()
            .contains("fetch"),
        "{json}"
    );
    assert_eq!(sb2.stage_of("Y").0, "deploy-staging");
    assert_eq!(sb2.sqlite("SELECT dev_retries FROM tasks"), "0");
    fx.assert_no_target_push();
}

#[test]
fn the_starved_timeout_incident_is_requeued_never_rolled_back_then_alerts_once() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/s", "main", &[("notes.txt", "s\n")], "s");
    // main moves on: attempt 1 rebases and publishes the branch; orch's own rebase must not
    // buy a fresh budget for attempt 2.
    fx.advance_remote_main(&[("other.txt", "other\n")], "other work");
    fx.add_task(&sb, "S", "feat/s", "deploy-staging");
    let alerts = sb.path().join("alerts.jsonl");
    let mut env = base_env(&starved_suite(sb.path()));
    env.push(("ORCH_MERGE_RETEST_TIMEOUT_S", "2".into()));
    env.push(("ORCH_KILL_GRACE_S", "1".into()));
    env.push(("ORCH_ALERT_CMD", format!("cat >> '{}'", alerts.display())));

    // Attempt 1: timeout → infra, re-queued; the task keeps its stage; no process survives.
    let json = run(&sb, &["advance", "S", "--to", "deploy", "--json"], &env)
        .expect(11)
        .json();
    assert_eq!(merge_of(&json)["outcome"], "timeout", "{json}");
    assert_eq!(json["requeue"]["attempt"], 1);
    assert_eq!(json["requeue"]["of"], 3);
    assert!(
        merge_of(&json)["evidence"]["cpus"].as_u64().unwrap() >= 1,
        "evidence: {json}"
    );
    assert_eq!(sb.stage_of("S").0, "deploy-staging");
    assert_eq!(sb.sqlite("SELECT dev_retries FROM tasks"), "0");
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM transitions"),
        "0",
        "no rollback"
    );
    let pids = worker_pids(sb.path());
    assert_eq!(pids.len(), 3);
    wait_until("every worker to be dead", Duration::from_secs(30), || {
        pids.iter().all(|p| !pid_alive(*p))
    });
    assert!(sb
        .sqlite("SELECT evidence FROM runs WHERE id = 1")
        .contains("load_1m"));

    // Not due yet: advance refuses with 11 and runs nothing.
    run(&sb, &["advance", "S", "--to", "deploy"], &env).expect(11);
    assert_eq!(sb.sqlite("SELECT count(*) FROM runs"), "1");

    // Attempt 2, by the cron driver once due.
    wait_until("the re-queue to be due", Duration::from_secs(30), || {
        let out = run(&sb, &["advance", "--next", "--json"], &env);
        out.code != 0 || out.json()["outcome"] != "nothing-due"
    });
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM runs"),
        "2",
        "a new runs row"
    );
    assert!(sb.sqlite("SELECT detail FROM gate_events WHERE outcome = 'infra-requeued' ORDER BY id DESC LIMIT 1")
        .contains("attempt 2 of 3"));

    // Attempt 3: exhausted → 12, one alert row, the alert command called once, HOLD.
    let mut third = None;
    wait_until("the third attempt", Duration::from_secs(30), || {
        let out = run(&sb, &["advance", "--next", "--json"], &env);
        let done = out.code != 0;
        if done {
            third = Some(out);
        }
        done
    });
    let third = third.unwrap().expect(12);
    assert_eq!(third.json()["requeue"]["outcome"], "exhausted");
    assert_eq!(sb.sqlite("SELECT count(*) FROM alerts"), "1");
    assert_eq!(std::fs::read_to_string(&alerts).unwrap().lines().count(), 1);
    assert!(sb
        .sqlite("SELECT hold_reason FROM tasks")
        .contains("infra retries exhausted"));
    run(&sb, &["advance", "S", "--to", "deploy"], &env).expect(6);
    run(&sb, &["merge-gate", "retest", "S"], &env).expect(6);
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM alerts"),
        "1",
        "no second alert"
    );
    assert_eq!(sb.sqlite("SELECT count(*) FROM runs"), "3");
    let all = worker_pids(sb.path());
    wait_until(
        "every worker of every attempt to be dead",
        Duration::from_secs(30),
        || all.iter().all(|p| !pid_alive(*p)),
    );

    // A human releases it: the budget starts over (attempt 1 again), then a green run passes.
    sb.run(&["task", "release", "S"]).expect(0);
    let json = run(&sb, &["merge-gate", "retest", "S", "--json"], &env)
        .expect(11)
        .json();
    assert_eq!(json["requeue"]["attempt"], 1, "{json}");
    let green = base_env("python3 -m pytest -q -p no:cacheprovider");
    run(&sb, &["advance", "S", "--to", "deploy", "--force"], &green).expect(0);
    assert_eq!(sb.stage_of("S").0, "deploy");
    assert_eq!(sb.sqlite("SELECT count(*) FROM requeues"), "0");
    let all = worker_pids(sb.path());
    wait_until("no worker alive", Duration::from_secs(30), || {
        all.iter().all(|p| !pid_alive(*p))
    });
    fx.assert_no_target_push();
}

#[test]
fn a_second_task_of_the_repo_finds_the_merge_lock_busy_and_is_deferred() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/a", "main", &[("a.txt", "a\n")], "a");
    fx.commit_branch("feat/b", "main", &[("b.txt", "b\n")], "b");
    fx.add_task(&sb, "A", "feat/a", "deploy-staging");
    fx.add_task(&sb, "B", "feat/b", "deploy-staging");
    let started = sb.path().join("started");
    let release = sb.path().join("release");
    let first_cmd = format!(
        "touch '{}'; while [ ! -f '{}' ]; do sleep 0.05; done; python3 -m pytest -q -p no:cacheprovider",
        started.display(),
        release.display()
    );
    let env_first = base_env(&first_cmd);
    let env_second = base_env("python3 -m pytest -q -p no:cacheprovider");

    let mut first = sb.orch();
    for (k, v) in &env_first {
        first.env(k, v);
    }
    let first = first
        .args(["advance", "A", "--to", "deploy"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the first suite to start", Duration::from_secs(60), || {
        started.exists()
    });

    let json = run(
        &sb,
        &["advance", "B", "--to", "deploy", "--json"],
        &env_second,
    )
    .expect(11)
    .json();
    assert_eq!(merge_of(&json)["outcome"], "lock-busy", "{json}");
    assert_eq!(json["requeue"]["outcome"], "deferred");
    assert!(
        merge_of(&json)["lock_holder"]
            .as_str()
            .unwrap()
            .contains("task A"),
        "{json}"
    );
    assert_eq!(sb.stage_of("B").0, "deploy-staging");
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM edge_budgets WHERE task_id = 'B' AND infra_attempts > 0"),
        "0"
    );

    std::fs::write(&release, "").unwrap();
    let out = first.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sb.stage_of("A").0, "deploy");

    wait_until(
        "B's deferral to be due and run",
        Duration::from_secs(60),
        || {
            let out = run(&sb, &["advance", "--next", "--json"], &env_second);
            out.code == 0 && out.json()["outcome"] == "advanced"
        },
    );
    assert_eq!(sb.stage_of("B").0, "deploy");
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM transitions WHERE to_stage = 'development'"),
        "0",
        "nothing rolled back"
    );
    fx.assert_no_target_push();
}

#[test]
fn with_infra_retry_switched_off_an_infra_outcome_rolls_back_as_before() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/o", "main", &[("o.txt", "o\n")], "o");
    fx.add_task(&sb, "O", "feat/o", "deploy-staging");
    let mut env = base_env("exit 3");
    env.push(("ORCH_MERGE_INFRA_RETRY_ENABLED", "false".into()));
    let json = run(&sb, &["merge-gate", "retest", "O", "--json"], &env)
        .expect(10)
        .json();
    assert_eq!(merge_of(&json)["classification"], "infra", "{json}");
    assert_eq!(sb.stage_of("O").0, "development");
    assert_eq!(sb.sqlite("SELECT dev_retries FROM tasks"), "1");
    fx.assert_no_target_push();
}

#[test]
fn an_agent_checkout_hook_never_runs_and_a_moved_task_is_a_lost_race() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/h", "main", &[("h.txt", "h\n")], "h");
    fx.add_task(&sb, "H", "feat/h", "deploy-staging");
    // Hooks in the agent's own checkout would leave a background child behind: orch never runs
    // git there, so none of them ever runs (its git works in its own mirror, hooks off).
    let pids = sb.path().join("hook-pids");
    use std::os::unix::fs::PermissionsExt;
    for name in [
        "post-checkout",
        "pre-rebase",
        "post-rewrite",
        "pre-push",
        "reference-transaction",
    ] {
        let hook = fx.work.join(".git/hooks").join(name);
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\nsleep 1234 >/dev/null 2>&1 &\necho $! >> '{}'\n",
                pids.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // A main that moved makes the gate rebase, publish and re-test: every hook's moment.
    fx.advance_remote_main(&[("other.txt", "o\n")], "other");
    let env = base_env("python3 -m pytest -q -p no:cacheprovider");
    let json = run(
        &sb,
        &["merge-gate", "retest", "H", "--event-id", "ci-7", "--json"],
        &env,
    )
    .expect(0)
    .json();
    let first = merge_of(&json);
    assert!(!pids.exists(), "a hook of the agent's checkout ran");

    // The same event again: its first outcome, nothing re-run.
    let again = run(
        &sb,
        &["merge-gate", "retest", "H", "--event-id", "ci-7", "--json"],
        &env,
    )
    .expect(0)
    .json();
    assert_eq!(again["outcome"], "duplicate", "{again}");
    assert_eq!(
        merge_of(&again["first_outcome"])["outcome"],
        first["outcome"]
    );

    // A task that moved on is a lost race (4), not an illegal transition.
    run(&sb, &["advance", "H", "--to", "deploy"], &env).expect(0);
    let out = run(&sb, &["merge-gate", "retest", "H"], &env).expect(4);
    assert_eq!(
        out.stderr
            .lines()
            .filter(|l| l.starts_with("orch: "))
            .count(),
        1,
        "{}",
        out.stderr
    );
    fx.assert_no_target_push();
}
