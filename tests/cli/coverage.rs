//! One suite run per edge (issue 15): the coverage gate judges the report the merge gate's
//! re-test wrote at `$ORCH_COVERAGE_REPORT` and runs nothing; a configured `ORCH_COVERAGE_CMD`
//! still runs on its own; `ORCH_COVERAGE_MIN > 0` with neither a report nor a command is a
//! configuration problem (HOLD, one alert, exit 12), never a silent skip.

use std::path::Path;

use crate::support::{env_with, run_env_owned as run, Fixture, Out, Sandbox, PYTEST, RED_TEST};

/// The re-test the migration asks for: the suite under pytest-cov, writing the JSON report orch
/// reads; it appends a line to `marker` first, so a test counts the suite's runs.
fn retest_with_report(marker: &Path) -> String {
    format!(
        "echo run >> '{}'; {PYTEST} --cov --cov-report=json:\"$ORCH_COVERAGE_REPORT\"",
        marker.display()
    )
}

/// The gate entry `name` of an `advance --json` report.
fn gate(json: &serde_json::Value, name: &str) -> serde_json::Value {
    json["gates"]
        .as_array()
        .and_then(|gates| gates.iter().find(|g| g["gate"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no {name} gate in {json}"))
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

/// The one line a step printed on stdout (its message).
#[track_caller]
fn one_line(out: &Out) -> String {
    assert_eq!(out.stdout.lines().count(), 1, "stdout: {}", out.stdout);
    out.stdout.trim().to_string()
}

/// A branch whose code the suite covers only in part (`calc.py` is covered; `extra.py` is not).
const PARTLY_COVERED: &[(&str, &str)] = &[
    (
        "extra.py",
        "def used():\n    return 1\n\n\ndef never_called():\n    a = 1\n    b = 2\n    return a + b\n",
    ),
    (
        "test_extra.py",
        "import extra\n\n\ndef test_used():\n    assert extra.used() == 1\n",
    ),
];

/// Acceptance 6: with a re-test that writes a coverage report, a gated deploy runs the suite
/// once (the runs of its edge, and a marker the suite appends to); with `ORCH_COVERAGE_CMD` set,
/// twice. Under the gate sandbox (Landlock where the kernel has it): the report's place is one
/// the confined suite may write.
#[test]
fn a_gated_deploy_runs_the_suite_once_with_the_retests_report_and_twice_with_a_coverage_command() {
    for with_command in [false, true] {
        let sb = Sandbox::new();
        let fx = Fixture::new(&sb);
        let markers = sb.path().join("markers");
        std::fs::create_dir(&markers).unwrap();
        let marker = markers.join("suite-runs");
        fx.commit_branch("feat/c", "main", &[("notes.txt", "c\n")], "c");
        // main moves on, so the merge gate rebases and really re-tests.
        fx.advance_remote_main(&[("main.txt", "m\n")], "main moves");
        fx.add_task(&sb, "C", "feat/c", "deploy-staging");
        let mut extra = vec![
            ("ORCH_MERGE_RETEST_CMD", retest_with_report(&marker)),
            ("ORCH_COVERAGE_MIN", "90".into()),
            ("ORCH_GATE_SANDBOX", "auto".into()),
            ("ORCH_GATE_WRITABLE", markers.display().to_string()),
        ];
        if with_command {
            // The old default, counted the same way.
            extra.push(("ORCH_COVERAGE_CMD", retest_with_report(&marker)));
        }
        let json = run(
            &sb,
            &["advance", "C", "--to", "deploy", "--json"],
            &env_with(&extra),
        )
        .expect(0)
        .json();
        let want = if with_command { 2 } else { 1 };
        assert_eq!(lines(&marker), want, "suite runs: {json}");
        assert_eq!(
            sb.sqlite("SELECT count(*) FROM runs WHERE task_id = 'C'"),
            want.to_string(),
            "{json}"
        );
        assert_eq!(
            sb.sqlite("SELECT group_concat(gate, ',') FROM (SELECT gate FROM runs ORDER BY id)"),
            if with_command {
                "merge,coverage"
            } else {
                "merge"
            }
        );
        let merge = gate(&json, "merge");
        let coverage = gate(&json, "coverage");
        assert_eq!(coverage["outcome"], "passed", "{json}");
        let detail = coverage["detail"].as_str().unwrap();
        assert!(detail.contains("coverage 100.0% (minimum 90%)"), "{detail}");
        if with_command {
            assert!(coverage["run_id"].is_i64(), "{json}");
        } else {
            assert!(detail.contains("the re-test's report"), "{detail}");
            assert_eq!(coverage["run_id"], merge["run_id"], "{json}");
        }
        let head = merge["head"].as_str().unwrap();
        assert_eq!(
            sb.sqlite("SELECT repo, task_id, head_sha, percent, minimum FROM coverage_reports"),
            format!("app|C|{head}|100.0|90.0")
        );
        // The verdict keeps what the re-test's report measured.
        assert_eq!(
            sb.sqlite(&format!(
                "SELECT how, coverage FROM verdicts WHERE gate = 'merge' AND head_sha = '{head}'"
            )),
            "tested|100.0"
        );
        assert_eq!(sb.stage_of("C").0, "deploy");
        // Where the kernel has Landlock, the re-test wrote its report confined.
        let doctor = sb.run(&["--json", "doctor"]).json();
        if doctor["sandbox"]
            .as_str()
            .unwrap_or("")
            .starts_with("landlock")
        {
            assert_eq!(
                sb.sqlite("SELECT count(*) FROM runs WHERE sandbox NOT LIKE 'landlock%' OR sandbox IS NULL"),
                "0"
            );
        }
    }
}

/// A report the agent's branch commits — at the working copy's old report path or any other —
/// is never what the gate judges: the re-test's report lives where no commit can put a file, and
/// the coverage command's own place is emptied before it runs.
#[test]
fn a_report_committed_on_the_branch_is_never_judged() {
    let fake = r#"{"totals": {"percent_covered": 100}}"#;
    let committed: &[(&str, &str)] = &[
        (".orch-coverage-report.json", fake),
        ("coverage.json", fake),
        ("notes.txt", "f\n"),
    ];
    // No coverage command, a re-test that writes no report: nothing measured, and the minimum
    // makes that a configuration problem, not a pass on the fake.
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/f", "main", committed, "fake report");
    fx.add_task(&sb, "F", "feat/f", "deploy-staging");
    let env = env_with(&[("ORCH_COVERAGE_MIN", "50".into())]);
    let out = run(&sb, &["advance", "F", "--to", "deploy"], &env).expect(12);
    assert!(one_line(&out).contains("gate coverage config"), "{out:?}");
    assert_eq!(sb.sqlite("SELECT count(*) FROM coverage_reports"), "0");

    // A coverage command that writes no report finds none: infra, never the committed file.
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/f", "main", committed, "fake report");
    fx.add_task(&sb, "F", "feat/f", "deploy-staging");
    let env = env_with(&[
        ("ORCH_COVERAGE_MIN", "50".into()),
        ("ORCH_COVERAGE_CMD", "true".into()),
    ]);
    let out = run(&sb, &["advance", "F", "--to", "deploy", "--json"], &env).expect(11);
    let coverage = gate(&out.json(), "coverage");
    assert_eq!(coverage["classification"], "infra", "{coverage}");
    assert!(
        coverage["detail"]
            .as_str()
            .unwrap()
            .contains("the coverage command wrote no report"),
        "{coverage}"
    );
    assert_eq!(sb.sqlite("SELECT count(*) FROM coverage_reports"), "0");
}

/// `ORCH_COVERAGE_MIN > 0` and neither a report from the re-test nor a coverage command: a
/// configuration problem, never a silent skip — exit 12, the one-line reason naming both fixes,
/// HOLD where the task is with one alert, no rollback, no budget spent, no re-queue.
#[test]
fn a_minimum_with_neither_report_nor_command_is_a_config_hold() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/n", "main", &[("notes.txt", "n\n")], "n");
    fx.add_task(&sb, "N", "feat/n", "deploy-staging");
    let alerts = sb.path().join("alerts.jsonl");
    let env = env_with(&[
        ("ORCH_COVERAGE_MIN", "50".into()),
        ("ORCH_ALERT_CMD", format!("cat >> '{}'", alerts.display())),
    ]);
    let out = run(&sb, &["advance", "N", "--to", "deploy"], &env).expect(12);
    let line = one_line(&out);
    for names in [
        "gate coverage config",
        "ORCH_COVERAGE_MIN is 50%",
        "$ORCH_COVERAGE_REPORT",
        "--cov-report=json:\"$ORCH_COVERAGE_REPORT\"",
        "ORCH_MERGE_RETEST_CMD",
        "ORCH_COVERAGE_CMD",
        "orch task release N",
    ] {
        assert!(line.contains(names), "missing `{names}` in: {line}");
    }
    assert_eq!(sb.stage_of("N").0, "deploy-staging");
    let reason = sb.sqlite("SELECT hold_reason FROM tasks WHERE id = 'N'");
    assert!(reason.contains("ORCH_COVERAGE_CMD"), "{reason}");
    assert_eq!(sb.sqlite("SELECT count(*) FROM alerts"), "1");
    assert_eq!(lines(&alerts), 1, "one alert delivered");
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM transitions"),
        "0",
        "no rollback"
    );
    assert_eq!(sb.sqlite("SELECT dev_retries FROM tasks"), "0");
    assert_eq!(sb.sqlite("SELECT count(*) FROM requeues"), "0");
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM edge_budgets WHERE infra_attempts > 0 OR deferrals > 0"),
        "0",
        "no budget spent"
    );
    assert_eq!(
        sb.sqlite("SELECT gate FROM gate_events WHERE outcome = 'config'"),
        "coverage"
    );
    assert_eq!(sb.sqlite("SELECT count(*) FROM coverage_reports"), "0");
    // The suite ran once (the re-test); nothing else ran for the coverage gate.
    assert_eq!(
        sb.sqlite("SELECT group_concat(gate, ',') FROM runs"),
        "merge"
    );
}

/// No minimum, no report, no command: the gate is skipped and the history says why.
#[test]
fn no_minimum_with_neither_report_nor_command_is_skipped_and_says_why() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/z", "main", &[("notes.txt", "z\n")], "z");
    fx.advance_remote_main(&[("main.txt", "m\n")], "main moves");
    fx.add_task(&sb, "Z", "feat/z", "deploy-staging");
    let json = run(
        &sb,
        &["advance", "Z", "--to", "deploy", "--json"],
        &env_with(&[]),
    )
    .expect(0)
    .json();
    let coverage = gate(&json, "coverage");
    assert_eq!(coverage["outcome"], "skipped", "{json}");
    let why = "ORCH_COVERAGE_CMD is not set and the re-test wrote no coverage report at $ORCH_COVERAGE_REPORT; gate skipped";
    assert_eq!(coverage["detail"], why, "{json}");
    let show = sb.run(&["task", "show", "Z"]).expect(0).stdout;
    assert!(show.contains(why), "{show}");
    assert_eq!(
        sb.sqlite("SELECT group_concat(gate, ',') FROM runs"),
        "merge"
    );
    assert_eq!(sb.stage_of("Z").0, "deploy");
}

/// A red re-test is routed as red; its report is never judged nor recorded, whatever it says.
#[test]
fn a_red_retest_is_not_judged_for_coverage() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/r", "main", &[("test_red.py", RED_TEST)], "r");
    fx.add_task(&sb, "R", "feat/r", "deploy-staging");
    let marker = sb.path().join("suite-runs");
    let env = env_with(&[
        ("ORCH_MERGE_RETEST_CMD", retest_with_report(&marker)),
        ("ORCH_COVERAGE_MIN", "50".into()),
    ]);
    let json = run(&sb, &["advance", "R", "--to", "deploy", "--json"], &env)
        .expect(10)
        .json();
    let gates: Vec<&str> = json["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["gate"].as_str().unwrap())
        .collect();
    assert_eq!(gates, ["security", "merge"], "{json}");
    assert_eq!(gate(&json, "merge")["classification"], "red");
    assert_eq!(sb.stage_of("R").0, "development");
    assert_eq!(sb.sqlite("SELECT count(*) FROM coverage_reports"), "0");
    assert_eq!(sb.sqlite("SELECT count(*) FROM verdicts"), "0");
    assert_eq!(lines(&marker), 1);
}

/// Coverage below the minimum, measured by the re-test's own report: red, naming the percent,
/// rolled back — with the suite run once.
#[test]
fn coverage_below_the_minimum_from_the_retests_report_is_red_naming_the_percent() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/b", "main", PARTLY_COVERED, "b");
    fx.add_task(&sb, "B", "feat/b", "deploy-staging");
    let marker = sb.path().join("suite-runs");
    let env = env_with(&[
        ("ORCH_MERGE_RETEST_CMD", retest_with_report(&marker)),
        ("ORCH_COVERAGE_MIN", "99.5".into()),
    ]);
    let json = run(&sb, &["advance", "B", "--to", "deploy", "--json"], &env)
        .expect(10)
        .json();
    let coverage = gate(&json, "coverage");
    assert_eq!(coverage["classification"], "red", "{json}");
    let percent: f64 = sb
        .sqlite("SELECT percent FROM coverage_reports WHERE task_id = 'B'")
        .parse()
        .unwrap();
    assert!(percent < 99.5, "{percent}");
    let reason = format!("coverage {percent:.1}% is below ORCH_COVERAGE_MIN 99.5%");
    assert!(
        coverage["detail"].as_str().unwrap().contains(&reason),
        "{json}"
    );
    assert_eq!(sb.stage_of("B").0, "development");
    let last = sb.sqlite("SELECT reason FROM transitions ORDER BY id DESC LIMIT 1");
    assert!(
        last.contains("gate coverage red") && last.contains(&reason),
        "{last}"
    );
    assert_eq!(lines(&marker), 1, "the suite ran once");
    assert_eq!(sb.sqlite("SELECT count(*) FROM runs"), "1");
}

/// `orch merge-gate retest` measured the head (a CI step); the deploy reuses that verdict, and
/// the coverage gate judges the coverage the verdict keeps: still one suite run in all.
#[test]
fn a_reused_verdict_brings_the_coverage_its_retest_measured() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/u", "main", &[("notes.txt", "u\n")], "u");
    fx.advance_remote_main(&[("main.txt", "m\n")], "main moves");
    fx.add_task(&sb, "U", "feat/u", "deploy-staging");
    let marker = sb.path().join("suite-runs");
    let env = env_with(&[
        ("ORCH_MERGE_RETEST_CMD", retest_with_report(&marker)),
        ("ORCH_COVERAGE_MIN", "90".into()),
    ]);
    run(&sb, &["merge-gate", "retest", "U"], &env).expect(0);
    assert_eq!(sb.sqlite("SELECT coverage FROM verdicts"), "100.0");
    let json = run(&sb, &["advance", "U", "--to", "deploy", "--json"], &env)
        .expect(0)
        .json();
    let merge = gate(&json, "merge");
    assert!(
        merge["detail"].as_str().unwrap().contains("reused"),
        "{json}"
    );
    let coverage = gate(&json, "coverage");
    assert_eq!(coverage["outcome"], "passed", "{json}");
    let detail = coverage["detail"].as_str().unwrap();
    assert!(
        detail.contains("coverage 100.0% (minimum 90%)") && detail.contains("an earlier re-test"),
        "{detail}"
    );
    assert_eq!(lines(&marker), 1, "the suite ran once in all");
    assert_eq!(sb.sqlite("SELECT count(*) FROM runs"), "1");
    assert_eq!(sb.sqlite("SELECT count(*) FROM coverage_reports"), "1");
}

/// With a minimum to judge and no coverage command, skip-when-current does not skip the re-test:
/// a skipped re-test measures nothing, and the deploy would hold for want of a report. Without a
/// minimum it still skips (and the coverage gate says why it measured nothing).
#[test]
fn a_minimum_keeps_skip_when_current_from_skipping_the_only_suite_run() {
    for minimum in ["90", "0"] {
        let sb = Sandbox::new();
        let fx = Fixture::new(&sb);
        let tip = fx.commit_branch("feat/s", "main", &[("notes.txt", "s\n")], "s");
        fx.add_task(&sb, "S", "feat/s", "testing");
        let marker = sb.path().join("suite-runs");
        let env = env_with(&[
            ("ORCH_MERGE_RETEST_CMD", retest_with_report(&marker)),
            ("ORCH_COVERAGE_MIN", minimum.into()),
        ]);
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
            &env,
        )
        .expect(0);
        let json = run(&sb, &["advance", "S", "--to", "deploy", "--json"], &env)
            .expect(0)
            .json();
        let (merge, coverage) = (gate(&json, "merge"), gate(&json, "coverage"));
        let skipped = sb.sqlite(
            "SELECT coalesce((SELECT value FROM counters WHERE name = 'gates.merge.skipped_current'), 0)",
        );
        if minimum == "90" {
            assert_eq!(merge["outcome"], "passed", "{json}");
            assert_eq!(coverage["outcome"], "passed", "{json}");
            assert_eq!(lines(&marker), 1);
            assert_eq!(
                sb.sqlite("SELECT group_concat(gate, ',') FROM runs"),
                "merge"
            );
            assert_eq!(skipped, "0");
        } else {
            assert_eq!(merge["outcome"], "skipped", "{json}");
            assert_eq!(coverage["outcome"], "skipped", "{json}");
            assert!(
                coverage["detail"]
                    .as_str()
                    .unwrap()
                    .contains("the re-test did not run on this step"),
                "{json}"
            );
            assert_eq!(lines(&marker), 0);
            assert_eq!(skipped, "1");
        }
    }
}

/// A report the re-test wrote that orch cannot read (not JSON, no totals, not a regular file):
/// with a minimum to judge, a configuration problem naming why (the same command writes the same
/// report again: retrying spends suite runs and fixes nothing); without one, the gate is skipped
/// and says why.
#[test]
fn an_unreadable_report_from_the_retest_is_config_with_a_minimum_and_skipped_without() {
    let cases = [
        ("echo 'not json' > \"$ORCH_COVERAGE_REPORT\"", "is not JSON"),
        (
            "echo '{\"meta\": {}}' > \"$ORCH_COVERAGE_REPORT\"",
            "has no totals.percent_covered",
        ),
        (
            "ln -s /dev/zero \"$ORCH_COVERAGE_REPORT\"",
            "is not a regular file",
        ),
    ];
    for (write, why) in cases {
        for minimum in ["50", "0"] {
            let sb = Sandbox::new();
            let fx = Fixture::new(&sb);
            fx.commit_branch("feat/w", "main", &[("notes.txt", "w\n")], "w");
            fx.add_task(&sb, "W", "feat/w", "deploy-staging");
            let env = env_with(&[
                ("ORCH_MERGE_RETEST_CMD", format!("{PYTEST} && {write}")),
                ("ORCH_COVERAGE_MIN", minimum.into()),
            ]);
            let out = run(&sb, &["advance", "W", "--to", "deploy", "--json"], &env);
            let coverage = gate(&out.json(), "coverage");
            let detail = coverage["detail"].as_str().unwrap().to_string();
            assert!(detail.contains(why), "{write}: {detail}");
            assert!(detail.contains("the re-test's coverage report"), "{detail}");
            if minimum == "50" {
                out.expect(12);
                assert_eq!(coverage["classification"], "config", "{detail}");
                assert_eq!(sb.stage_of("W").0, "deploy-staging");
                assert_eq!(sb.sqlite("SELECT count(*) FROM alerts"), "1");
            } else {
                out.expect(0);
                assert_eq!(coverage["outcome"], "skipped", "{detail}");
            }
            assert_eq!(sb.sqlite("SELECT count(*) FROM coverage_reports"), "0");
        }
    }
}

/// The coverage gate has no command by default: `orch doctor` shows it unset (and checks no
/// program for it), `orch repo show` too; doctor warns when a minimum is set with no coverage
/// command and a re-test that never mentions `$ORCH_COVERAGE_REPORT`.
#[test]
fn doctor_and_repo_show_reflect_the_unset_default() {
    let sb = Sandbox::new();
    let report = sb.run(&["doctor", "--json"]).json();
    let entry = report["config"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "ORCH_COVERAGE_CMD")
        .cloned()
        .unwrap();
    assert_eq!(entry["value"], "(unset)", "{entry}");
    assert_eq!(entry["source"], "default", "{entry}");
    assert!(
        !report["programs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["source"] == "ORCH_COVERAGE_CMD"),
        "{report}"
    );
    let warned = |env: &[(&str, &str)]| {
        sb.run_env(&["doctor", "--json"], env).json()["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("ORCH_COVERAGE_MIN"))
    };
    assert!(!warned(&[]), "no minimum, nothing to warn about");
    assert!(warned(&[("ORCH_COVERAGE_MIN", "80")]));
    assert!(!warned(&[
        ("ORCH_COVERAGE_MIN", "80"),
        (
            "ORCH_MERGE_RETEST_CMD",
            "python3 -m pytest -q --cov --cov-report=json:\"$ORCH_COVERAGE_REPORT\""
        ),
    ]));
    assert!(!warned(&[
        ("ORCH_COVERAGE_MIN", "80"),
        ("ORCH_COVERAGE_CMD", "make coverage"),
    ]));

    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/d", "main", &[("notes.txt", "d\n")], "d");
    fx.add_task(&sb, "D", "feat/d", "created");
    let show = sb.run(&["repo", "show", "app"]).expect(0).stdout;
    let line = show
        .lines()
        .find(|l| l.split_whitespace().next() == Some("ORCH_COVERAGE_CMD"))
        .unwrap_or_else(|| panic!("{show}"));
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>(),
        ["ORCH_COVERAGE_CMD", "(unset)", "(default)"],
        "{show}"
    );
}
