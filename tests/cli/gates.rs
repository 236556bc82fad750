//! The gates of `deploy-staging → deploy` (security, merge, coverage, image freshness) and
//! merge-verify on `deploy → done`, with real git, a bare remote, real pytest and pytest-cov.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::{
    env_with, git, merge_script, pid_alive, pid_start_time, run_env_owned as run, wait_until,
    Fixture, Sandbox, RED_TEST,
};

/// A forge merge: point the bare remote's main at `$ORCH_MERGE_HEAD` (a fast-forward), leaving
/// a marker that it ran.
/// The shipped forge script (a fast-forward from exactly `$ORCH_MERGE_BASE`), leaving a line in
/// `marker` each time it runs.
fn forge_merge_cmd(marker: &Path) -> String {
    format!("echo ran >> '{}'; {}", marker.display(), merge_script("ff"))
}

/// A re-test that writes the coverage report the coverage gate judges.
const PYTEST_COV: &str =
    "python3 -m pytest -q -p no:cacheprovider --cov --cov-report=json:\"$ORCH_COVERAGE_REPORT\"";

fn last_reason(sb: &Sandbox) -> String {
    sb.sqlite("SELECT reason FROM transitions ORDER BY id DESC LIMIT 1")
}

/// A gate, the environment that turns it red, and the files the task branch commits.
type RedCase = (
    &'static str,
    Vec<(&'static str, String)>,
    &'static [(&'static str, &'static str)],
);

#[test]
fn each_gate_red_in_turn_rolls_back_naming_the_gate() {
    let cases: [RedCase; 4] = [
        (
            "security",
            vec![(
                "ORCH_SECURITY_GATE_CMD",
                "echo 'CVE-2026-0001 found'; exit 1".into(),
            )],
            &[("notes.txt", "s\n")],
        ),
        ("merge", vec![], &[("test_red.py", RED_TEST)]),
        (
            "coverage",
            vec![
                ("ORCH_COVERAGE_MIN", "100".into()),
                // The re-test writes the report the coverage gate judges.
                ("ORCH_MERGE_RETEST_CMD", PYTEST_COV.into()),
            ],
            &[
                ("extra.py", "def never_called():\n    return 1\n"),
                (
                    "test_extra.py",
                    "import extra\n\n\ndef test_import():\n    assert extra\n",
                ),
            ],
        ),
        (
            "image-freshness",
            vec![("ORCH_IMAGE_FRESHNESS_CMD", "echo 0123456789abcdef".into())],
            &[("notes.txt", "i\n")],
        ),
    ];
    for (gate, extra, files) in cases {
        let sb = Sandbox::new();
        let fx = Fixture::new(&sb);
        let tip = fx.commit_branch("feat/g", "main", files, "work");
        // main moves on, so the merge gate rebases and really re-tests.
        fx.advance_remote_main(&[("main.txt", "m\n")], "main moves");
        fx.add_task(&sb, "G", "feat/g", "testing");
        let env = env_with(&extra);
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
        let out = run(&sb, &["advance", "G", "--to", "deploy", "--json"], &env).expect(10);
        let json = out.json();
        let failed = json["gates"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(failed["gate"], gate, "{json}");
        assert_eq!(failed["classification"], "red", "{json}");
        assert_eq!(sb.stage_of("G").0, "development", "{gate}");
        assert!(
            last_reason(&sb).contains(&format!("gate {gate} red")),
            "{gate}: {}",
            last_reason(&sb)
        );
        let show = sb.run(&["task", "show", "G"]).expect(0).stdout;
        assert!(
            show.contains(&format!("gate {gate} on deploy-staging->deploy: red")),
            "{show}"
        );
        fx.assert_no_target_push();
    }
}

#[test]
fn unconfigured_gates_are_skipped_and_the_history_says_so_and_coverage_is_measured() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/k", "main", &[("notes.txt", "k\n")], "k");
    fx.add_task(&sb, "K", "feat/k", "deploy-staging");
    let env = env_with(&[
        ("ORCH_COVERAGE_MIN", "50".into()),
        ("ORCH_MERGE_RETEST_CMD", PYTEST_COV.into()),
    ]);
    let json = run(&sb, &["advance", "K", "--to", "deploy", "--json"], &env)
        .expect(0)
        .json();
    let outcomes: Vec<(String, String)> = json["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["gate"].as_str().unwrap().to_string(),
                g["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("security", "skipped"),
            ("merge", "passed"),
            ("coverage", "passed"),
            ("image-freshness", "skipped")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let show = sb.run(&["task", "show", "K"]).expect(0).stdout;
    assert!(
        show.contains("ORCH_SECURITY_GATE_CMD is not set; gate skipped"),
        "{show}"
    );
    let queue = sb.run(&["queue", "--json"]).expect(0).json();
    assert_eq!(queue["coverage"][0]["repo"], "app", "{queue}");
    assert!(queue["coverage"][0]["percent"].as_f64().unwrap() > 50.0);
    assert_eq!(queue["gates"]["security"]["skipped"], 1, "{queue}");
    assert_eq!(queue["gates"]["coverage"]["last_outcome"], "passed");
}

#[test]
fn a_rollback_loses_its_cas_without_clobbering_done_and_the_kill_switch_writes_anyway() {
    for lease_enabled in [true, false] {
        let sb = Sandbox::new();
        let fx = Fixture::new(&sb);
        fx.commit_branch("feat/l", "main", &[("notes.txt", "l\n")], "l");
        fx.add_task(&sb, "L", "feat/l", "deploy-staging");
        // While the security gate runs, another actor finishes the task and the lease is lost
        // (as if to its TTL); then the gate reports red.
        let sneak = format!(
            "sqlite3 '{}' \"PRAGMA busy_timeout=30000; UPDATE tasks SET stage='done', version=version+1; DELETE FROM transition_lease;\"; exit 1",
            sb.db.display()
        );
        let env = env_with(&[
            ("ORCH_SECURITY_GATE_CMD", sneak),
            ("ORCH_TRANSITION_LEASE_ENABLED", lease_enabled.to_string()),
        ]);
        let out = run(&sb, &["advance", "L", "--to", "deploy"], &env);
        if lease_enabled {
            out.expect(4);
            assert_eq!(
                sb.stage_of("L").0,
                "done",
                "the rollback did not clobber done"
            );
            assert_eq!(
                sb.sqlite("SELECT count(*) FROM transitions"),
                "0",
                "no history row"
            );
            assert_eq!(sb.sqlite("SELECT count(*) FROM alerts"), "0");
            assert_eq!(
                sb.sqlite("SELECT count(*) FROM gate_events WHERE outcome = 'red'"),
                "0"
            );
            assert_eq!(
                sb.sqlite("SELECT value FROM counters WHERE name = 'transition_lease.cas_lost'"),
                "1"
            );
        } else {
            out.expect(10);
            assert_eq!(sb.stage_of("L").0, "development", "the plain write lands");
            assert_eq!(
                sb.sqlite("SELECT from_stage || '>' || to_stage FROM transitions"),
                "done>development",
                "the old behaviour, exactly"
            );
        }
    }
}

#[test]
fn a_second_actor_that_finds_a_live_holder_starts_no_gate() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/h", "main", &[("notes.txt", "h\n")], "h");
    fx.add_task(&sb, "H", "feat/h", "deploy-staging");
    let markers = sb.path().join("markers");
    std::fs::create_dir(&markers).unwrap();
    let touch = |name: &str| format!("touch '{}'", markers.join(name).display());
    let env = env_with(&[
        ("ORCH_SECURITY_GATE_CMD", touch("security")),
        ("ORCH_MERGE_RETEST_CMD", touch("merge")),
        ("ORCH_COVERAGE_CMD", touch("coverage")),
        ("ORCH_IMAGE_FRESHNESS_CMD", touch("image")),
    ]);
    let mut holder = std::process::Command::new("sleep")
        .arg("1000")
        .spawn()
        .unwrap();
    let pid = holder.id() as i32;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    sb.sqlite(&format!(
        "INSERT INTO transition_lease (task_id, owner, owner_pid, owner_pid_start, boot_id, pid_ns, host,
             acquired_at, renewed_at, expires_at, renewed_boot_ms, ttl_ms)
         VALUES ('H', 'first actor', {pid}, {}, '{}', '{}', '{}', 0, 0, 60000, 0, 60000)",
        pid_start_time(pid),
        boot.trim(),
        ns.display(),
        host.trim()
    ));
    let before = sb.dump();
    let out = run(&sb, &["advance", "H", "--to", "deploy"], &env).expect(4);
    assert!(out.stderr.contains("held by first actor"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_dir(&markers).unwrap().count(),
        0,
        "no gate command ran"
    );
    assert_eq!(sb.dump(), before);
    holder.kill().unwrap();
    holder.wait().unwrap();
}

/// Takes a task through `deploy-staging → deploy` on a green suite; returns the head the merge
/// gate judged.
fn to_deploy(sb: &Sandbox, fx: &Fixture, id: &str, branch: &str) -> String {
    fx.commit_branch(branch, "main", &[(&format!("{id}.txt"), "x\n")], id);
    fx.advance_remote_main(&[(&format!("main-{id}.txt"), "m\n")], "main moves");
    fx.add_task(sb, id, branch, "deploy-staging");
    let json = run(
        sb,
        &["advance", id, "--to", "deploy", "--json"],
        &env_with(&[]),
    )
    .expect(0)
    .json();
    json["gates"][1]["head"].as_str().unwrap().to_string()
}

#[test]
fn done_needs_proof_of_merge_of_the_retested_head() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let marker = sb.path().join("merge-cmd-ran");

    // A merge command that "succeeds" without merging: 12, HOLD, one alert, not done.
    let alerts = sb.path().join("alerts");
    to_deploy(&sb, &fx, "P1", "feat/p1");
    let env = env_with(&[
        ("ORCH_MERGE_CMD", "true".into()),
        ("ORCH_ALERT_CMD", format!("cat >> '{}'", alerts.display())),
    ]);
    let json = run(&sb, &["advance", "P1", "--to", "done", "--json"], &env)
        .expect(12)
        .json();
    assert_eq!(json["gates"][0]["outcome"], "no-proof", "{json}");
    assert_eq!(sb.stage_of("P1").0, "deploy");
    assert!(sb
        .sqlite("SELECT hold_reason FROM tasks WHERE id = 'P1'")
        .contains("no proof of merge"));
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM alerts WHERE task_id = 'P1'"),
        "1"
    );
    assert_eq!(std::fs::read_to_string(&alerts).unwrap().lines().count(), 1);
    run(&sb, &["advance", "P1", "--to", "done"], &env).expect(6);

    // A real merge of H into the remote's main (the forge fast-forwards): done.
    let head = to_deploy(&sb, &fx, "P2", "feat/p2");
    let env = env_with(&[("ORCH_MERGE_CMD", forge_merge_cmd(&marker))]);
    run(&sb, &["advance", "P2", "--to", "done"], &env).expect(0);
    assert_eq!(sb.stage_of("P2").0, "done");
    assert_eq!(fx.remote_ref("main"), head, "exactly H was merged");
    assert_eq!(std::fs::read_to_string(&marker).unwrap().lines().count(), 1);

    // A crash after the merge: H is already in main; advance reaches done without merging.
    std::fs::remove_file(&marker).unwrap();
    let head = to_deploy(&sb, &fx, "P3", "feat/p3");
    fx.forge_update_main(&head);
    run(&sb, &["advance", "P3", "--to", "done"], &env).expect(0);
    assert_eq!(sb.stage_of("P3").0, "done");
    assert!(!marker.exists(), "the merge command never ran");
    let _ = git(&fx.work, &["status"]);
    fx.assert_no_target_push();
}

#[test]
fn a_hanging_gate_command_is_killed_as_a_tree_and_requeued_as_infra() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/w", "main", &[("notes.txt", "w\n")], "w");
    fx.add_task(&sb, "W", "feat/w", "deploy-staging");
    let pids = sb.path().join("pids");
    let hang = format!(
        "for i in 1 2 3; do (trap '' INT TERM; sleep 600) & echo $! >> '{}'; done; sleep 600",
        pids.display()
    );
    let env = env_with(&[
        ("ORCH_SECURITY_GATE_CMD", hang),
        ("ORCH_SECURITY_GATE_TIMEOUT_S", "2".into()),
    ]);
    let json = run(&sb, &["advance", "W", "--to", "deploy", "--json"], &env)
        .expect(11)
        .json();
    assert_eq!(json["gates"][0]["gate"], "security");
    assert_eq!(json["gates"][0]["outcome"], "timeout", "{json}");
    assert_eq!(json["requeue"]["outcome"], "infra-requeued");
    assert_eq!(sb.stage_of("W").0, "deploy-staging");
    assert_eq!(
        sb.sqlite("SELECT to_stage FROM requeues WHERE task_id = 'W'"),
        "deploy"
    );
    let workers: Vec<i32> = std::fs::read_to_string(&pids)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(workers.len(), 3);
    wait_until("the whole tree to be dead", Duration::from_secs(30), || {
        workers.iter().all(|p| !pid_alive(*p))
    });
}

/// The shipped forge script (`examples/merge/bare-repo.sh`) is a compare-and-swap: it moves the
/// target from exactly `$ORCH_MERGE_BASE` to a commit with the head's tree (fast-forward, merge
/// commit or squash), and changes nothing once the target has moved.
#[test]
fn the_shipped_bare_repo_script_merges_only_from_the_expected_base() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let base = fx.remote_ref("main");
    let head = fx.commit_branch("feat/s", "main", &[("s.txt", "s\n")], "s");
    let tree = |rev: &str| git(&fx.remote, &["rev-parse", &format!("{rev}^{{tree}}")]);
    let run = |style: &str, expected_base: &str| {
        let out = Command::new("sh")
            .args(["-c", &merge_script(style)])
            .env("ORCH_REPO_URL", format!("file://{}", fx.remote.display()))
            .env("ORCH_TARGET", "main")
            .env("ORCH_MERGE_HEAD", &head)
            .env("ORCH_MERGE_BASE", expected_base)
            .env("ORCH_BRANCH", "feat/s")
            .env("ORCH_TASK_ID", "S")
            .current_dir(sb.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (style, parents) in [("merge", 2), ("squash", 1), ("ff", 1)] {
        fx.forge_update_main(&base);
        assert_eq!(run(style, &base).0, Some(0), "{style}");
        let landed = fx.remote_ref("main");
        assert_eq!(tree(&landed), tree(&head), "{style}");
        let first_parent = git(&fx.remote, &["rev-parse", &format!("{landed}^1")]);
        let expected_parent = if style == "ff" {
            git(&fx.remote, &["rev-parse", &format!("{head}^1")])
        } else {
            base.clone()
        };
        assert_eq!(first_parent, expected_parent, "{style}");
        let line = git(&fx.remote, &["rev-list", "--no-walk", "--parents", &landed]);
        assert_eq!(
            line.split_whitespace().count(),
            parents + 1,
            "{style}: {line}"
        );
    }
    // The target has moved (it is the head now): the CAS refuses and nothing changes.
    let (code, stderr) = run("merge", &base);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("is no longer"), "{stderr}");
    assert_eq!(fx.remote_ref("main"), head);
    // The remote's log saw every value main took.
    let history = fx.target_history();
    assert_eq!(history.first(), Some(&base));
    assert_eq!(history.last(), Some(&head));
}
