//! The edge of the program: what cron and CI really send. `-q` is silent on success, a missing
//! database is "not found" and creates nothing, a hard-linked database is refused, no value of any
//! key panics, a panic still ends the step's tree, unknown `ORCH_*` names are named, conflicting
//! output flags are refused, and the README's CI example works under `bash -e`.

use std::path::Path;
use std::process::Command;

use crate::support::{orch_bin, pid_alive, Fixture, Out, Sandbox};

/// Every command that needs an existing database, with arguments that would pass clap.
const NEEDS_DATABASE: &[&[&str]] = &[
    &["advance", "T", "--to", "analysis"],
    &["advance", "--next"],
    &["reap"],
    &["reap", "--dry-run"],
    &["task", "add", "T", "--repo", "app", "--branch", "feat/t"],
    &["task", "show", "T"],
    &["task", "list"],
    &["task", "hold", "T", "--reason", "r"],
    &["task", "release", "T"],
    &["run", "show", "1"],
    &["queue"],
    &["queue", "--format", "prometheus"],
    &["merge-gate", "retest", "T"],
    &["repo", "list"],
    &["repo", "show", "app"],
    &["repo", "set", "app", "ORCH_MERGE_RETEST_TIMEOUT_S=60"],
    &["repo", "unset", "app", "ORCH_MERGE_RETEST_TIMEOUT_S"],
    &["repo", "remove", "app"],
];

/// One line on stderr, nothing on stdout.
#[track_caller]
fn one_line(out: &Out) -> &str {
    assert_eq!(out.stdout, "", "stdout: {out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "stderr: {}", out.stderr);
    out.stderr.trim_end()
}

#[test]
fn quiet_cron_steps_print_nothing_on_an_idle_database() {
    let sb = Sandbox::new();
    sb.add_repo("app", sb.path().join("remote.git").to_str().unwrap());
    for args in [
        &["advance", "--next", "-q"][..],
        &["reap", "-q"],
        &["-q", "task", "list"],
        &["queue", "-q"],
    ] {
        let out = sb.run(args).expect(0);
        assert_eq!(
            (out.stdout.as_str(), out.stderr.as_str()),
            ("", ""),
            "{args:?}"
        );
    }
    // A failure still speaks under -q.
    let out = sb.run(&["-q", "task", "show", "NOPE"]).expect(3);
    assert!(out.stderr.contains("NOPE"), "{out:?}");
}

#[test]
fn a_missing_database_is_not_found_and_nothing_is_created() {
    let sb = Sandbox::new();
    let missing = sb.path().join("no-such-dir").join("orch.db");
    for args in NEEDS_DATABASE {
        let out = sb
            .run_env(args, &[("ORCH_DB_PATH", missing.to_str().unwrap())])
            .expect(3);
        let line = one_line(&out);
        assert!(
            line.contains(missing.to_str().unwrap())
                && line.contains("orch repo add")
                && line.contains("ORCH_DB_PATH"),
            "{args:?}: {line}"
        );
        assert!(
            !sb.path().join("no-such-dir").exists(),
            "{args:?} created it"
        );
    }
    // --db too, and two directories down: nothing appears.
    let deep = sb.path().join("x").join("y.db");
    for args in [&["advance", "--next"][..], &["reap", "-q"]] {
        let mut all = vec!["--db", deep.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = sb.run(&all).expect(3);
        one_line(&out);
        assert!(!sb.path().join("x").exists());
    }
    // doctor prints its report, names the missing database as a problem, exits 3, creates nothing.
    let out = sb
        .run_env(&["doctor"], &[("ORCH_DB_PATH", missing.to_str().unwrap())])
        .expect(3);
    assert!(out.stdout.contains("config"), "{}", out.stdout);
    assert!(
        out.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("- database") && l.contains("not found")),
        "{}",
        out.stdout
    );
    let json = sb
        .run_env(
            &["doctor", "--json"],
            &[("ORCH_DB_PATH", missing.to_str().unwrap())],
        )
        .expect(3)
        .json();
    assert_eq!(json["database"]["state"], "missing");
    assert!(!sb.path().join("no-such-dir").exists());
    assert!(!sb.db.parent().unwrap().exists());
}

#[test]
fn repo_add_creates_the_database_but_never_two_directories() {
    let sb = Sandbox::new();
    let deep = sb.path().join("a").join("b").join("orch.db");
    let out = sb
        .run(&[
            "--db",
            deep.to_str().unwrap(),
            "repo",
            "add",
            "app",
            "--url",
            "/r.git",
        ])
        .expect(2);
    assert!(one_line(&out).contains("create `"), "{out:?}");
    assert!(!sb.path().join("a").exists());
    // One directory down is fine: the sandbox's own `state/orch.db`.
    sb.add_repo("app", "/r.git");
    assert!(sb.db.is_file());
}

#[test]
fn a_directory_as_database_is_a_usage_error() {
    let sb = Sandbox::new();
    for args in [
        &["advance", "--next"][..],
        &["queue"],
        &["repo", "add", "a", "--url", "/r"],
    ] {
        let mut all = vec!["--db", sb.path().to_str().unwrap()];
        all.extend_from_slice(args);
        let out = sb.run(&all).expect(2);
        assert!(one_line(&out).contains("is a directory"), "{out:?}");
    }
}

#[test]
fn a_hard_linked_database_is_refused_and_a_symlinked_one_works() {
    let sb = Sandbox::new();
    sb.add_task("A", "created");
    let before = sb.dump();
    let link = sb.path().join("second.db");
    std::fs::hard_link(&sb.db, &link).unwrap();
    for db in [&link, &sb.db] {
        for args in [
            &["advance", "A", "--to", "analysis"][..],
            &["queue"],
            &["task", "show", "A"],
        ] {
            let mut all = vec!["--db", db.to_str().unwrap()];
            all.extend_from_slice(args);
            let out = sb.run(&all).expect(2);
            let line = one_line(&out);
            assert!(
                line.contains(db.to_str().unwrap())
                    && line.contains("hard links")
                    && line.contains("remove the extra link"),
                "{line}"
            );
        }
    }
    std::fs::remove_file(&link).unwrap();
    assert_eq!(sb.dump(), before, "a refused open wrote");
    let sym = sb.path().join("via-symlink.db");
    std::os::unix::fs::symlink(&sb.db, &sym).unwrap();
    sb.run(&[
        "--db",
        sym.to_str().unwrap(),
        "advance",
        "A",
        "--to",
        "analysis",
    ])
    .expect(0);
    assert_eq!(sb.stage_of("A").0, "analysis");
    let list = sb
        .run(&["--db", sym.to_str().unwrap(), "task", "list"])
        .expect(0);
    assert!(list.stdout.contains("analysis"), "{}", list.stdout);
}

/// Values no key should panic on.
const HOSTILE: &[&str] = &[
    "0",
    "-1",
    "18446744073709551615",
    "1e19",
    "nan",
    "15m",
    "abc",
    "",
    "99999999999999999999999999999999999999h",
    "1 2 3 4 5 6 7 8 9",
];

#[test]
fn no_value_of_any_key_makes_doctor_panic() {
    let sb = Sandbox::new();
    sb.add_task("A", "created");
    let keys = orch::config::keys();
    let huge = "9".repeat(10_000);
    for key in keys.iter().filter(|k| **k != "ORCH_DB_PATH") {
        for value in HOSTILE.iter().copied().chain([huge.as_str()]) {
            let out = sb.run_env(&["doctor", "--json"], &[(key, value)]);
            assert!(
                matches!(out.code, 0 | 2),
                "{key}={value:.40}: exit {}\n{}",
                out.code,
                out.stderr
            );
            assert!(
                !out.stderr.contains("panicked"),
                "{key}={value:.40}: {}",
                out.stderr
            );
        }
    }
}

#[test]
fn a_huge_duration_is_a_bad_value_with_its_default_not_a_panic() {
    let sb = Sandbox::new();
    sb.add_task("A", "created");
    let env = [("ORCH_MERGE_RETEST_TIMEOUT_S", "18446744073709551615")];
    let out = sb.run_env(&["doctor"], &env).expect(2);
    assert!(
        out.stdout.contains(
            "(default; \"18446744073709551615\" from env is longer than the maximum 7 days)"
        ),
        "{}",
        out.stdout
    );
    let out = sb.run_env(&["task", "list"], &env).expect(0);
    assert!(
        out.stderr.contains(
            "ORCH_MERGE_RETEST_TIMEOUT_S=\"18446744073709551615\" is longer than the maximum"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn huge_gate_timeouts_fall_back_and_the_gated_edge_still_passes() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/g", "main", &[("notes.txt", "g\n")], "g");
    fx.add_task(&sb, "G", "feat/g", "deploy-staging");
    let max = u64::MAX.to_string();
    let env = [
        ("ORCH_MERGE_RETEST_CMD", "true"),
        ("ORCH_MERGE_RETEST_TIMEOUT_S", max.as_str()),
        ("ORCH_SECURITY_GATE_CMD", "true"),
        ("ORCH_SECURITY_GATE_TIMEOUT_S", "1e19"),
        ("ORCH_COVERAGE_CMD", ""),
        ("ORCH_COVERAGE_TIMEOUT_S", max.as_str()),
        ("ORCH_KILL_GRACE_S", max.as_str()),
        ("ORCH_TRANSITION_LEASE_RENEW_S", "nan"),
        ("ORCH_TRANSITION_LEASE_TTL_S", max.as_str()),
        ("ORCH_MERGE_DEFER_MAX_ATTEMPTS", max.as_str()),
        ("ORCH_OUTPUT_CAP_BYTES", max.as_str()),
        ("ORCH_MAX_CONCURRENT_RUNS", max.as_str()),
    ];
    let out = sb
        .run_env(&["advance", "G", "--to", "deploy"], &env)
        .expect(0);
    assert!(out.stderr.contains("ORCH_KILL_GRACE_S="), "{}", out.stderr);
    assert_eq!(sb.stage_of("G").0, "deploy");
}

#[test]
fn huge_reaper_keys_fall_back_and_reap_runs() {
    let sb = Sandbox::new();
    sb.add_task("A", "created");
    let max = u64::MAX.to_string();
    for value in [max.as_str(), "1e19", "-1", "0", "nan", "abc"] {
        let env = [
            ("ORCH_REAPER_MAX_RUNNING_S", value),
            ("ORCH_REAPER_INTERVAL_S", value),
            ("ORCH_RETENTION_DAYS", value),
            ("ORCH_TRANSITION_LEASE_TTL_S", value),
            ("ORCH_ALERT_TIMEOUT_S", value),
        ];
        let out = sb.run_env(&["reap"], &env);
        assert_eq!(out.code, 0, "{value}: {out:?}");
        sb.run_env(&["reap", "--dry-run"], &env).expect(0);
        sb.run_env(&["queue", "--json"], &env).expect(0);
    }
}

#[test]
fn a_huge_exec_timeout_or_grace_is_exit_125_with_one_line() {
    let sb = Sandbox::new();
    for flag in ["--timeout", "--grace"] {
        for value in ["10000000000000000000", "1e19", "inf", "8d"] {
            let out = sb.run(&["exec", flag, value, "--", "true"]).expect(125);
            let line = one_line(&out);
            assert!(line.contains(flag) && line.contains(value), "{line}");
        }
    }
    // The largest accepted deadline works, and a huge grace from the environment falls back.
    sb.run(&["exec", "--timeout", "7d", "--", "true"]).expect(0);
    sb.run_env(
        &["exec", "--timeout", "7d", "--", "true"],
        &[("ORCH_KILL_GRACE_S", "18446744073709551615")],
    )
    .expect(0);
    assert!(!sb.db.exists());
}

/// A panic inside a gate run, while the suite is alive: the unwinding runner kills the run's
/// tree, the gate registry turns the panic into an `other` infra verdict (exit 11, the run
/// finished and named), the panic itself is one line on stderr, and a later reap routes nothing
/// again.
#[cfg(feature = "fault-injection")]
#[test]
fn a_panic_in_a_step_prints_one_line_and_kills_the_runs_tree() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/p", "main", &[("notes.txt", "p\n")], "p");
    fx.add_task(&sb, "P", "feat/p", "deploy-staging");
    let out = sb.run_env(
        &["advance", "P", "--to", "deploy", "-q"],
        &[
            ("ORCH_MERGE_RETEST_CMD", "sleep 300"),
            ("ORCH_COVERAGE_CMD", ""),
            ("FAULT_PANIC_AT", "runner.after_spawn"),
        ],
    );
    assert_eq!(out.code, 11, "{out:?}");
    assert!(
        out.stdout
            .contains("panicked: fault-injection: panic at runner.after_spawn")
            && out.stdout.contains("(run 1: `orch run show 1`)"),
        "{}",
        out.stdout
    );
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("orch: internal error: fault-injection: panic at runner.after_spawn"),
        "{}",
        out.stderr
    );
    let leader: i32 = sb
        .sqlite("SELECT leader_pid FROM runs ORDER BY id DESC LIMIT 1")
        .parse()
        .unwrap();
    assert!(
        !pid_alive(leader),
        "the run's leader {leader} outlived the panic"
    );
    let in_group = Command::new("pgrep")
        .args(["-g", &leader.to_string()])
        .output()
        .unwrap();
    assert!(
        in_group.stdout.is_empty(),
        "group {leader} still has members"
    );
    assert_eq!(sb.stage_of("P").0, "deploy-staging");
    assert_eq!(sb.sqlite("SELECT outcome FROM runs WHERE id = 1"), "other");
    let requeue = sb.sqlite("SELECT attempt FROM requeues WHERE task_id = 'P'");
    assert_eq!(requeue, "1");
    sb.run(&["reap", "-q"]).expect(0);
    assert_eq!(
        sb.sqlite("SELECT attempt FROM requeues WHERE task_id = 'P'"),
        requeue,
        "the reaper routed the run again"
    );
    assert_eq!(sb.sqlite("SELECT count(*) FROM transition_lease"), "0");
}

#[test]
fn an_unknown_orch_name_is_warned_once_with_the_closest_key_and_doctor_lists_it() {
    let sb = Sandbox::new();
    sb.add_task("A", "created");
    let env = [
        ("ORCH_MERGE_RETEST_TIMEOUT", "60"),
        // Names orch sets for its commands are known.
        ("ORCH_TASK_ID", "A"),
        ("ORCH_MERGE_HEAD", "x"),
    ];
    let out = sb.run_env(&["task", "list"], &env).expect(0);
    assert_eq!(
        out.stderr,
        "orch: warning: unknown setting ORCH_MERGE_RETEST_TIMEOUT (did you mean ORCH_MERGE_RETEST_TIMEOUT_S?)\n"
    );
    let out = sb.run_env(&["doctor"], &env).expect(2);
    assert!(
        out.stdout.lines().any(|l| l.trim_start().starts_with("- unknown setting ORCH_MERGE_RETEST_TIMEOUT (did you mean ORCH_MERGE_RETEST_TIMEOUT_S?)")),
        "{}",
        out.stdout
    );
    let out = sb.run_env(&["doctor", "-q"], &env).expect(2);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    // Far from every key: no guess.
    let out = sb
        .run_env(&["task", "list"], &[("ORCH_XYZZY", "1")])
        .expect(0);
    assert!(
        out.stderr.contains("unknown setting ORCH_XYZZY (hint:"),
        "{}",
        out.stderr
    );
    // Nothing unknown, nothing said (the test sandbox sets only real keys).
    assert_eq!(sb.run(&["task", "list"]).expect(0).stderr, "");
}

#[test]
fn doctor_shows_a_refused_value_and_what_is_used_instead() {
    let sb = Sandbox::new();
    sb.add_task("A", "created");
    let out = sb
        .run_env(&["doctor"], &[("ORCH_KILL_GRACE_S", "abc")])
        .expect(2);
    let line = out
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("ORCH_KILL_GRACE_S"))
        .unwrap();
    assert!(
        line.contains("20s") && line.ends_with("(default; \"abc\" from env is not a duration)"),
        "{line}"
    );
    let json = sb
        .run_env(&["doctor", "--json"], &[("ORCH_KILL_GRACE_S", "abc")])
        .expect(2)
        .json();
    let entry = json["config"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "ORCH_KILL_GRACE_S")
        .unwrap();
    assert_eq!(entry["value"], "20s");
    assert_eq!(entry["refused"]["raw"], "abc");
}

#[test]
fn doctor_quiet_prints_only_problems() {
    let sb = Sandbox::new();
    sb.add_task("A", "created");
    let out = sb.run(&["doctor", "-q"]).expect(0);
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""));
    let out = sb
        .run_env(&["doctor", "-q"], &[("ORCH_MAX_DEV_RETRIES", "abc")])
        .expect(2);
    assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    assert!(
        out.stdout.contains("ORCH_MAX_DEV_RETRIES=\"abc\""),
        "{}",
        out.stdout
    );
}

#[test]
fn conflicting_output_flags_are_a_usage_error() {
    let sb = Sandbox::new();
    sb.add_task("A", "created");
    for format in ["prometheus", "openmetrics", "text"] {
        let out = sb.run(&["--json", "queue", "--format", format]).expect(2);
        let doc = out.json();
        assert!(
            doc["error"]
                .as_str()
                .unwrap()
                .contains("--json conflicts with `--format"),
            "{doc}"
        );
        let out = sb.run(&["queue", "--format", format, "--json"]).expect(2);
        assert_eq!(out.stdout.lines().count(), 1, "{}", out.stdout);
    }
    sb.run(&["--json", "queue", "--format", "json"])
        .expect(0)
        .json();
    sb.run(&["--json", "queue"]).expect(0).json();
}

/// The fenced block after "A CI step branches on the exit code" in README.md.
fn readme_ci_example() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let from = readme
        .find("A CI step branches on the exit code")
        .expect("the README has its CI example");
    let rest = &readme[from..];
    let start = rest.find("```sh\n").expect("a sh block") + "```sh\n".len();
    let end = rest[start..].find("```").unwrap();
    rest[start..start + end].to_string()
}

/// The `case` arms of the example: (pattern, the text its echo starts with).
fn arms(script: &str) -> Vec<(String, String)> {
    script
        .lines()
        .filter_map(|l| {
            let (pattern, body) = l.trim().split_once(") echo \"")?;
            let text = body.split(['"', '$']).next()?.to_string();
            Some((pattern.to_string(), text))
        })
        .collect()
}

#[test]
fn the_readme_ci_example_reaches_every_branch_under_bash_e() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let script = readme_ci_example();
    assert!(script.contains("|| rc=$?"), "{script}");
    let path = sb.path().join("ci-step.sh");
    std::fs::write(&path, &script).unwrap();
    let mode = sb.path().join("suite-exit");
    // The re-test exits with the code in `mode`: 0 passes, 1 is red, 3 is infra (other).
    let suite = format!("exit $(cat '{}')", mode.display());
    for (id, stage) in [
        ("E0", "deploy-staging"),
        ("E4", "testing"),
        ("E6", "deploy-staging"),
        ("E10", "deploy-staging"),
        ("E11", "deploy-staging"),
        ("E12", "deploy-staging"),
    ] {
        let branch = format!("feat/{}", id.to_lowercase());
        // A file of its own: E0 merges, and the later ones rebase onto it cleanly.
        fx.commit_branch(&branch, "main", &[(&format!("{id}.txt"), id)], id);
        fx.add_task(&sb, id, &branch, stage);
    }
    sb.run(&["task", "hold", "E6", "--reason", "a human looks"])
        .expect(0);
    let bin_dir = orch_bin().parent().unwrap().to_path_buf();
    let path_var = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let merge_cmd = format!(
        "git --git-dir='{}' update-ref refs/heads/main \"$ORCH_MERGE_HEAD\"",
        fx.remote.display()
    );
    let step = |task: &str, suite_exit: &str, retries: &str| -> Out {
        std::fs::write(&mode, suite_exit).unwrap();
        let mut cmd = Command::new("bash");
        for (key, _) in std::env::vars() {
            if key.starts_with("ORCH_") {
                cmd.env_remove(key);
            }
        }
        cmd.arg("-e")
            .arg(&path)
            .env_remove("CI_EVENT_ID")
            .env("ORCH_DB_PATH", &sb.db)
            .env("ORCH_GATE_SANDBOX", "off")
            .env("PATH", &path_var)
            .env("TASK", task)
            .env("ORCH_MERGE_RETEST_CMD", &suite)
            .env("ORCH_COVERAGE_CMD", "")
            // The example walks on to done (`--goal done`): the forge fast-forwards main.
            .env("ORCH_MERGE_CMD", &merge_cmd)
            .env("ORCH_MERGE_INFRA_RETRY_MAX", retries)
            .stdin(std::process::Stdio::null())
            .current_dir(sb.path());
        Out::from(cmd.output().unwrap())
    };
    // (task, suite exit, infra retries, the arm it must reach, the script's exit)
    let cases = [
        ("E0", "0", "2", "0", 0),
        ("E4", "0", "2", "4", 0),
        ("E6", "0", "2", "6", 1),
        ("E10", "1", "2", "10", 1),
        ("E11", "3", "2", "11", 0),
        ("E12", "3", "0", "12", 1),
        ("NO-SUCH-TASK", "0", "2", "*", 3),
    ];
    let arms = arms(&script);
    let mut reached = Vec::new();
    for (task, suite_exit, retries, arm, exit) in cases {
        let out = step(task, suite_exit, retries);
        let (_, text) = arms
            .iter()
            .find(|(pattern, _)| pattern == arm)
            .unwrap_or_else(|| panic!("the example has no `{arm})` arm: {arms:?}"));
        assert!(
            out.stdout.lines().any(|l| l.starts_with(text.as_str())),
            "{task} should reach `{arm})` ({text}):\n{out:?}"
        );
        assert_eq!(out.code, exit, "{task}: {out:?}");
        reached.push(arm.to_string());
    }
    for (pattern, _) in &arms {
        assert!(reached.contains(pattern), "no case reaches `{pattern})`");
    }
    fx.assert_no_target_push();
}

/// A panic outside any gate (the engine, after the gates passed): one line, exit 1, and what the
/// step held — its lease, the repo's merge lock — is given back at once, nothing left open.
#[cfg(feature = "fault-injection")]
#[test]
fn a_panic_outside_the_gates_gives_back_the_lease_and_the_lock() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/q", "main", &[("notes.txt", "q\n")], "q");
    fx.add_task(&sb, "Q", "feat/q", "deploy-staging");
    let out = sb.run_env(
        &["advance", "Q", "--to", "deploy"],
        &[
            ("ORCH_MERGE_RETEST_CMD", "true"),
            ("ORCH_COVERAGE_CMD", ""),
            ("FAULT_PANIC_AT", "gate.before_verdict"),
        ],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with("orch: internal error: "),
        "{}",
        out.stderr
    );
    assert_eq!(sb.sqlite("SELECT count(*) FROM transition_lease"), "0");
    assert_eq!(sb.sqlite("SELECT count(*) FROM merge_locks"), "0");
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM runs WHERE finished_at IS NULL"),
        "0"
    );
    assert_eq!(sb.stage_of("Q").0, "deploy-staging");
    // The next step takes the lease as a fresh one: no take-over was needed.
    sb.run_env(
        &["advance", "Q", "--to", "deploy", "-q"],
        &[("ORCH_MERGE_RETEST_CMD", "true"), ("ORCH_COVERAGE_CMD", "")],
    )
    .expect(0);
    assert_eq!(
        sb.sqlite(
            "SELECT count(*) FROM counters WHERE name IN
                 ('transition_lease.taken_over', 'merge_lock.taken_over') AND value > 0"
        ),
        "0"
    );
}

/// A long, valid retry budget: the doubling backoff is capped at 7 days, so attempt 31 of 41 is
/// due within a week and prints (its due time once went past year 9999: an internal error, the
/// routing rolled back, the gate run again and again, never a HOLD).
#[test]
fn a_long_retry_budget_never_overflows_its_due_time() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let tip = fx.commit_branch("feat/b", "main", &[("b.txt", "b\n")], "b");
    fx.add_task(&sb, "B", "feat/b", "deploy-staging");
    sb.sqlite(&format!(
        "INSERT INTO edge_budgets (task_id, edge, base_tip, infra_attempts)
         VALUES ('B', 'deploy-staging->deploy', '{tip}', 30)"
    ));
    let before = orch::host::wall_ms();
    let out = sb.run_env(
        &["--json", "advance", "B", "--to", "deploy", "--force"],
        &[
            ("ORCH_MERGE_RETEST_CMD", "exit 3"),
            ("ORCH_COVERAGE_CMD", ""),
            ("ORCH_MERGE_INFRA_RETRY_MAX", "40"),
            ("ORCH_MERGE_INFRA_RETRY_BACKOFF_S", "7d"),
        ],
    );
    assert_eq!(out.code, 11, "{out:?}");
    let due: i64 = sb
        .sqlite("SELECT due_at FROM requeues WHERE task_id = 'B'")
        .parse()
        .unwrap();
    let week = 7 * 24 * 3600 * 1000;
    assert!(due > before && due <= orch::host::wall_ms() + week, "{due}");
    assert_eq!(sb.sqlite("SELECT infra_attempts FROM edge_budgets"), "31");
    sb.run(&["queue"]).expect(0);
    sb.run(&["task", "show", "B"]).expect(0);
}

/// `-q` silences success only: `orch -q exec` whose command timed out still says so (cron mails
/// what a job prints).
#[test]
fn quiet_exec_still_reports_its_timeout() {
    let sb = Sandbox::new();
    let out = sb.run(&[
        "-q",
        "exec",
        "--timeout",
        "1",
        "--grace",
        "1",
        "--",
        "sleep",
        "30",
    ]);
    assert_eq!(out.code, 124, "{out:?}");
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("timed out after 1s"), "{}", out.stderr);
    let ok = sb
        .run(&["-q", "exec", "--timeout", "5", "--", "true"])
        .expect(0);
    assert_eq!((ok.stdout.as_str(), ok.stderr.as_str()), ("", ""));
}

/// A FIFO or a device as the database: refused at once (exit 2, one line), never opened — a FIFO
/// blocked the header read for ever and cron lines piled up.
#[test]
fn a_database_that_is_not_a_regular_file_is_refused_without_opening_it() {
    let sb = Sandbox::new();
    let fifo = sb.path().join("fifo.db");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for db in [fifo.to_str().unwrap(), "/dev/null"] {
        for args in [
            &["queue"][..],
            &["reap"],
            &["repo", "add", "app", "--url", "/nonexistent.git"],
        ] {
            let mut full = vec!["--db", db];
            full.extend_from_slice(args);
            let out = sb.run(&full);
            assert_eq!(out.code, 2, "{db} {args:?}: {out:?}");
            assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
            assert!(
                out.stderr.contains("is not a regular file"),
                "{}",
                out.stderr
            );
        }
    }
}

/// On a fresh machine the default database place (`~/.local/state/orch`) is created by `repo
/// add` with its parents; a path given explicitly only ever grows its last directory.
#[test]
fn repo_add_creates_the_default_database_place_on_a_fresh_machine() {
    let sb = Sandbox::new();
    let home = sb.path().join("fresh-home");
    std::fs::create_dir(&home).unwrap();
    let remote = sb.path().join("r.git");
    assert!(Command::new("git")
        .args(["init", "--quiet", "--bare"])
        .arg(&remote)
        .status()
        .unwrap()
        .success());
    let out = sb
        .orch()
        .env_remove("ORCH_DB_PATH")
        .env_remove("XDG_STATE_HOME")
        .env("HOME", &home)
        .args(["-q", "repo", "add", "app", "--url"])
        .arg(&remote)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = home.join(".local/state/orch/orch.db");
    assert!(db.is_file(), "{}", db.display());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(db.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
}

/// Warnings are for people: a lower-case spelling still gets its suggestion, a huge refused value
/// is cut in the warning, and `doctor -q` still prints doctor's own warnings.
#[test]
fn warnings_suggest_case_insensitively_cut_huge_values_and_survive_doctor_quiet() {
    let sb = Sandbox::new();
    sb.add_task("A", "created");
    let out = sb
        .run_env(&["task", "list"], &[("ORCH_db_path_x", "1")])
        .expect(0);
    assert!(
        out.stderr.contains("did you mean ORCH_DB_PATH?"),
        "{}",
        out.stderr
    );
    let huge = "9".repeat(100_000);
    let out = sb
        .run_env(&["task", "list"], &[("ORCH_KILL_GRACE_S", huge.as_str())])
        .expect(0);
    assert!(out.stderr.len() < 1_000, "{} bytes", out.stderr.len());
    assert!(out.stderr.contains("(100000 bytes)"), "{}", out.stderr);
    // The state directory open to others: a doctor warning, shown under -q too.
    use std::os::unix::fs::PermissionsExt;
    let state = sb.db.parent().unwrap().to_path_buf();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = sb.run(&["-q", "doctor"]);
    assert!(out.stderr.contains("accessible to others"), "{out:?}");
}
