//! Reaching the goal: `orch advance ID --to S --goal G` stores the goal on the task, and the same
//! process — or, after a re-queue, `orch advance --next` — walks the gated forward edges to it.
//! Real git, a bare remote playing the forge, real pytest.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{
    env_with, merge_of, run_env_owned as run, wait_until, Fixture, Out, Sandbox, PYTEST, RED_TEST,
};

/// A forge merge: a fast-forward of the bare remote's main to `$ORCH_MERGE_HEAD`.
fn forge_merge_cmd(fx: &Fixture) -> String {
    format!(
        "git --git-dir='{}' update-ref refs/heads/main \"$ORCH_MERGE_HEAD\"",
        fx.remote.display()
    )
}

/// The gate tests' environment with the forge merge, `extra` overriding.
fn merge_env(fx: &Fixture, extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut all = vec![("ORCH_MERGE_CMD", forge_merge_cmd(fx))];
    all.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    env_with(&all)
}

/// The task's goal as stored (`-` when it has none).
fn goal_of(sb: &Sandbox, id: &str) -> String {
    sb.sqlite(&format!(
        "SELECT coalesce(goal, '-') FROM tasks WHERE id = '{id}'"
    ))
}

/// The task's transitions, oldest first: `from>to by actor`.
fn transitions(sb: &Sandbox, id: &str) -> Vec<String> {
    let rows = sb.sqlite(&format!(
        "SELECT from_stage || '>' || to_stage || ' by ' || actor FROM transitions
          WHERE task_id = '{id}' ORDER BY id"
    ));
    rows.lines().map(str::to_string).collect()
}

/// A suite that hangs on its first run only: it leaves `marker` and sleeps; once the marker is
/// there it runs pytest.
fn hangs_once(marker: &Path) -> String {
    format!(
        "if [ ! -e '{m}' ]; then touch '{m}'; exec sleep 300; fi; {PYTEST}",
        m = marker.display()
    )
}

/// Runs `orch advance --next` until it claims something (the re-queue's backoff is short),
/// returning what that claim did.
fn next_when_due(sb: &Sandbox, env: &[(String, String)]) -> Out {
    let mut claimed = None;
    wait_until(
        "the re-queued edge to come due",
        Duration::from_secs(120),
        || {
            let out = run(sb, &["advance", "--next"], env);
            if out.code == 0 && out.stdout.starts_with("nothing") {
                return false;
            }
            claimed = Some(out);
            true
        },
    );
    claimed.unwrap()
}

#[test]
fn a_goal_of_done_walks_deploy_staging_to_done_in_one_process_and_the_event_is_the_first_step_s() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/g", "main", &[("g.txt", "g\n")], "g");
    // main moves on: the merge gate rebases and really re-tests.
    fx.advance_remote_main(&[("m.txt", "m\n")], "main moves");
    fx.add_task(&sb, "G", "feat/g", "deploy-staging");
    let env = merge_env(&fx, &[]);
    let args = [
        "advance",
        "G",
        "--to",
        "deploy",
        "--goal",
        "done",
        "--actor",
        "ci",
        "--event-id",
        "push-1",
    ];
    let out = run(&sb, &args, &env).expect(0);
    // One line per step on stdout.
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [
            "G deploy-staging → deploy (version 2)",
            "G deploy → done (version 3)"
        ],
        "{}",
        out.stderr
    );
    assert_eq!(
        transitions(&sb, "G"),
        ["deploy-staging>deploy by ci", "deploy>done by ci"]
    );
    assert_eq!(goal_of(&sb, "G"), "-", "a goal reached is cleared");
    // Exactly the re-tested head landed.
    let tested = sb.sqlite("SELECT head_sha FROM verdicts WHERE task_id = 'G' AND gate = 'merge' ORDER BY id DESC LIMIT 1");
    assert_eq!(fx.remote_ref("main"), tested);
    // The event id is recorded with the first step only, with that step's outcome.
    assert_eq!(
        sb.sqlite("SELECT exit_code || ' ' || json_extract(outcome, '$.stage') FROM events"),
        "0 deploy"
    );
    let again = run(&sb, &args, &env).expect(0);
    assert!(
        again.stdout.contains("already processed"),
        "{}",
        again.stdout
    );
    assert_eq!(transitions(&sb, "G").len(), 2);
    fx.assert_no_target_push();

    // From `testing`: the ungated first edge stores the goal in its own commit, then the gated
    // edges follow. `--json` is one document: the last step, with every step in `steps`.
    fx.commit_branch("feat/h", "main", &[("h.txt", "h\n")], "h");
    fx.add_task(&sb, "H", "feat/h", "testing");
    let json = run(
        &sb,
        &[
            "--json",
            "advance",
            "H",
            "--to",
            "deploy-staging",
            "--goal",
            "done",
        ],
        &env,
    )
    .expect(0)
    .json();
    assert_eq!(json["stage"], "done", "{json}");
    assert_eq!(json["exit_code"], 0, "{json}");
    let steps: Vec<(String, String)> = json["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {json}"))
        .iter()
        .map(|s| {
            (
                s["from"].as_str().unwrap().to_string(),
                s["stage"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("testing", "deploy-staging"),
            ("deploy-staging", "deploy"),
            ("deploy", "done")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(merge_of(&json["steps"][1])["outcome"], "passed", "{json}");
    assert_eq!(transitions(&sb, "H").len(), 3);
    assert_eq!(goal_of(&sb, "H"), "-");
    fx.assert_no_target_push();
}

#[test]
fn a_red_retest_stops_the_walk_at_development_with_the_goal_cleared() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/r", "main", &[("test_red.py", RED_TEST)], "red");
    fx.add_task(&sb, "R", "feat/r", "deploy-staging");
    let out = run(
        &sb,
        &[
            "advance", "R", "--to", "deploy", "--goal", "done", "--actor", "ci",
        ],
        &merge_env(&fx, &[]),
    )
    .expect(10);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    assert_eq!(sb.stage_of("R").0, "development");
    assert_eq!(goal_of(&sb, "R"), "-", "a rollback clears the goal");
    assert_eq!(transitions(&sb, "R"), ["deploy-staging>development by ci"]);
    fx.assert_no_target_push();
}

#[test]
fn a_hold_stops_the_walk_keeps_the_goal_and_task_show_and_queue_print_it() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/p", "main", &[("p.txt", "p\n")], "p");
    fx.add_task(&sb, "P", "feat/p", "deploy-staging");
    // A merge command that says yes and merges nothing: no proof, HOLD + one alert (12).
    let env = env_with(&[("ORCH_MERGE_CMD", "true".into())]);
    let out = run(
        &sb,
        &[
            "advance", "P", "--to", "deploy", "--goal", "done", "--actor", "ci",
        ],
        &env,
    )
    .expect(12);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert_eq!(lines[0], "P deploy-staging → deploy (version 2)");
    assert!(lines[1].contains("goal `done` kept"), "{}", lines[1]);
    assert_eq!(sb.stage_of("P").0, "deploy");
    assert_eq!(transitions(&sb, "P"), ["deploy-staging>deploy by ci"]);
    assert_eq!(goal_of(&sb, "P"), "done", "a HOLD keeps the goal");
    assert_eq!(sb.sqlite("SELECT count(*) FROM alerts"), "1");

    let show = sb.run(&["task", "show", "P"]).expect(0).stdout;
    assert!(show.contains("goal done"), "{show}");
    let show = sb.run(&["--json", "task", "show", "P"]).expect(0).json();
    assert_eq!(show["task"]["goal"], "done", "{show}");
    let queue = sb.run(&["queue"]).expect(0).stdout;
    let held = queue
        .lines()
        .find(|l| l.trim_start().starts_with("P  deploy"))
        .unwrap_or_else(|| panic!("no held line for P:\n{queue}"));
    assert!(held.contains("goal done"), "{held}");
    let queue = sb.run(&["queue", "--json"]).expect(0).json();
    assert_eq!(queue["held"]["tasks"][0]["goal"], "done", "{queue}");

    // `task release` keeps the goal: the next request states its own.
    sb.run(&["task", "release", "P"]).expect(0);
    assert_eq!(goal_of(&sb, "P"), "done");
    let show = sb.run(&["task", "show", "P"]).expect(0).stdout;
    assert!(show.contains("goal done"), "{show}");
}

/// Acceptance 5: a task re-queued by an infra timeout with a goal of `done` reaches `done`
/// through `advance --next` alone (cron), with no further CI step.
#[test]
fn an_infra_requeued_task_with_goal_done_reaches_done_through_advance_next_alone() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/a", "main", &[("a.txt", "a\n")], "a");
    fx.add_task(&sb, "A", "feat/a", "deploy-staging");
    let marker = sb.path().join("a-timed-out-once");
    // The CI step's re-test times out (its suite hangs the first time); cron's runs it again.
    let suite = hangs_once(&marker);
    let ci = merge_env(
        &fx,
        &[
            ("ORCH_MERGE_RETEST_CMD", suite.clone()),
            ("ORCH_MERGE_RETEST_TIMEOUT_S", "2".into()),
        ],
    );
    let cron = merge_env(&fx, &[("ORCH_MERGE_RETEST_CMD", suite)]);
    let out = run(
        &sb,
        &[
            "advance", "A", "--to", "deploy", "--goal", "done", "--actor", "ci",
        ],
        &ci,
    )
    .expect(11);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    assert!(
        out.stdout
            .contains("goal `done` kept: `orch advance --next` continues to it"),
        "{}",
        out.stdout
    );
    assert_eq!(sb.stage_of("A").0, "deploy-staging");
    assert_eq!(goal_of(&sb, "A"), "done", "a re-queue keeps the goal");
    assert_eq!(
        sb.sqlite("SELECT kind || ' ' || to_stage FROM requeues WHERE task_id = 'A'"),
        "infra deploy"
    );
    // The operator sees where it is going: `task show` and `queue`, text and JSON.
    let show = sb.run(&["task", "show", "A"]).expect(0).stdout;
    assert!(show.contains("goal done"), "{show}");
    let queue = sb.run(&["queue"]).expect(0).stdout;
    let pending = queue
        .lines()
        .find(|l| l.contains("re-queued A"))
        .unwrap_or_else(|| panic!("no re-queued line for A:\n{queue}"));
    assert!(pending.contains("goal done"), "{pending}");
    let queue = sb.run(&["queue", "--json"]).expect(0).json();
    assert_eq!(queue["merge_gate"]["pending"][0]["goal"], "done", "{queue}");

    // cron, and nothing else.
    let out = next_when_due(&sb, &cron).expect(0);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [
            "A deploy-staging → deploy (version 2)",
            "A deploy → done (version 3)"
        ],
        "{}",
        out.stderr
    );
    assert_eq!(
        transitions(&sb, "A"),
        ["deploy-staging>deploy by cron", "deploy>done by cron"]
    );
    assert_eq!(goal_of(&sb, "A"), "-");
    assert_eq!(sb.sqlite("SELECT count(*) FROM requeues"), "0");
    let tested = sb.sqlite("SELECT head_sha FROM verdicts WHERE task_id = 'A' AND gate = 'merge' ORDER BY id DESC LIMIT 1");
    assert_eq!(fx.remote_ref("main"), tested);
    fx.assert_no_target_push();
}

#[test]
fn the_latest_request_governs_a_plain_advance_clears_a_stored_goal() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/b", "main", &[("b.txt", "b\n")], "b");
    fx.add_task(&sb, "B", "feat/b", "deploy-staging");
    let marker = sb.path().join("b-timed-out-once");
    let suite = hangs_once(&marker);
    let ci = merge_env(
        &fx,
        &[
            ("ORCH_MERGE_RETEST_CMD", suite.clone()),
            ("ORCH_MERGE_RETEST_TIMEOUT_S", "2".into()),
        ],
    );
    run(
        &sb,
        &["advance", "B", "--to", "deploy", "--goal", "done"],
        &ci,
    )
    .expect(11);
    assert_eq!(goal_of(&sb, "B"), "done");
    // A human runs the re-queued edge now, without a goal: it stops at deploy, goal gone.
    let plain = merge_env(&fx, &[("ORCH_MERGE_RETEST_CMD", suite)]);
    let out = run(&sb, &["advance", "B", "--to", "deploy", "--force"], &plain).expect(0);
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["B deploy-staging → deploy (version 2)"]
    );
    assert_eq!(sb.stage_of("B").0, "deploy");
    assert_eq!(goal_of(&sb, "B"), "-");
    let next = run(&sb, &["advance", "--next"], &plain).expect(0);
    assert!(next.stdout.starts_with("nothing due"), "{}", next.stdout);
    assert_eq!(sb.stage_of("B").0, "deploy");
}

#[test]
fn a_kill_9_mid_retest_keeps_the_goal_and_cron_reaches_done() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/k", "main", &[("k.txt", "k\n")], "k");
    fx.add_task(&sb, "K", "feat/k", "deploy-staging");
    let started = sb.path().join("k-started");
    let env = merge_env(&fx, &[("ORCH_MERGE_RETEST_CMD", hangs_once(&started))]);
    let mut cmd = sb.orch();
    cmd.args(["advance", "K", "--to", "deploy", "--goal", "done"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    wait_until("the re-test to start", Duration::from_secs(90), || {
        started.exists()
    });
    child.kill().unwrap(); // SIGKILL: nothing in orch can clean up.
    child.wait().unwrap();
    assert_eq!(
        goal_of(&sb, "K"),
        "done",
        "stored once the step held the task"
    );
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM runs WHERE finished_at IS NULL"),
        "1"
    );

    run(&sb, &["reap"], &env).expect(0);
    assert_eq!(
        sb.sqlite("SELECT kind || ' ' || to_stage FROM requeues WHERE task_id = 'K'"),
        "infra deploy"
    );
    assert_eq!(goal_of(&sb, "K"), "done");
    let out = next_when_due(&sb, &env).expect(0);
    assert_eq!(out.stdout.lines().count(), 2, "{}", out.stdout);
    assert_eq!(sb.stage_of("K").0, "done");
    assert_eq!(
        transitions(&sb, "K"),
        ["deploy-staging>deploy by cron", "deploy>done by cron"]
    );
    assert_eq!(goal_of(&sb, "K"), "-");
    fx.assert_no_target_push();
}

#[test]
fn goal_refusals_exit_2_with_one_line_and_write_nothing() {
    let sb = Sandbox::new();
    sb.add_task("T", "deploy-staging");
    let before = sb.dump();
    let cases: &[(&[&str], &str)] = &[
        (
            &["advance", "T", "--to", "deploy", "--goal", "testing"],
            "[possible values: deploy, done]",
        ),
        (
            &["advance", "T", "--to", "done", "--goal", "deploy"],
            "`--to done` is past the goal `deploy`",
        ),
        (
            &["advance", "T", "--to", "development", "--goal", "done"],
            "--goal walks forward edges",
        ),
        (
            &["advance", "T", "--to", "cancelled", "--goal", "done"],
            "--goal walks forward edges",
        ),
        (
            &["advance", "T", "--to", "testing", "--goal", "deploy"],
            "--goal walks forward edges",
        ),
        (
            &["advance", "--next", "--goal", "done"],
            "`--goal` is not for `--next`",
        ),
    ];
    for (args, says) in cases {
        let out = sb.run(args).expect(2);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
        if !says.starts_with('[') {
            assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {}", out.stderr);
        }
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
        assert_eq!(sb.dump(), before, "{args:?} wrote something");
    }
}

/// A later step that is refused (here: its repository's registration is gone, so it cannot be
/// gated) ends the walk with that refusal's exit code and one line where failures go, after the
/// earlier steps' lines; `--json` is still one document.
#[test]
fn a_later_step_refused_ends_the_walk_with_its_exit_code_and_one_line_on_stderr() {
    for json in [false, true] {
        let sb = Sandbox::new();
        sb.add_task("U", "testing");
        sb.sqlite("PRAGMA foreign_keys = OFF; DELETE FROM repos WHERE name = 'app'");
        let mut args = vec!["advance", "U", "--to", "deploy-staging", "--goal", "done"];
        if json {
            args.insert(0, "--json");
        }
        let out = sb.run(&args).expect(2);
        assert_eq!(sb.stage_of("U").0, "deploy-staging");
        assert_eq!(goal_of(&sb, "U"), "done", "nothing ran on the refused edge");
        if json {
            let doc = out.json();
            assert_eq!(doc["exit_code"], 2, "{doc}");
            assert_eq!(doc["outcome"], "usage", "{doc}");
            assert_eq!(doc["goal"], "done", "{doc}");
            assert_eq!(doc["steps"].as_array().map(Vec::len), Some(2), "{doc}");
            assert_eq!(doc["steps"][0]["stage"], "deploy-staging", "{doc}");
        } else {
            assert_eq!(
                out.stdout.lines().collect::<Vec<_>>(),
                ["U testing → deploy-staging (version 2)"]
            );
            let errors: Vec<&str> = out
                .stderr
                .lines()
                .filter(|l| l.starts_with("orch: "))
                .collect();
            assert_eq!(errors.len(), 1, "{}", out.stderr);
            assert!(errors[0].contains("is not registered"), "{}", errors[0]);
            assert!(errors[0].contains("goal `done` kept"), "{}", errors[0]);
        }
    }
}
