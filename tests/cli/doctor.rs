//! `orch doctor`: a healthy setup exits 0; every problem (a missing program, a broken invariant, a
//! database that is not one) is named with its fix and exits 2.

use crate::support::Sandbox;

/// The JSON report's `programs` entry for `source`.
fn program<'a>(report: &'a serde_json::Value, source: &str) -> &'a serde_json::Value {
    report["programs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["source"] == source)
        .unwrap_or_else(|| panic!("no program check for {source}: {report}"))
}

#[test]
fn a_healthy_setup_exits_0() {
    let sb = Sandbox::new();
    sb.add_task("A", "created");
    let out = sb.run(&["doctor"]).expect(0);
    assert!(out.stdout.contains("no problems found"), "{}", out.stdout);
    let report = sb.run(&["doctor", "--json"]).expect(0).json();
    assert_eq!(report["ok"], true);
    assert_eq!(report["problems"], serde_json::json!([]));
    assert_eq!(report["database"]["state"], "ok");
    assert_eq!(program(&report, "git")["status"], "found");
    assert_eq!(
        program(&report, "ORCH_MERGE_RETEST_CMD")["program"],
        "python3"
    );
    assert_eq!(program(&report, "ORCH_MERGE_RETEST_CMD")["status"], "found");
}

#[test]
fn a_missing_gate_program_is_reported_with_a_fix_and_exits_2() {
    let sb = Sandbox::new();
    sb.add_task("A", "created");
    let env = [(
        "ORCH_SECURITY_GATE_CMD",
        "SCAN_LEVEL=high no-such-scanner-7f3 --all",
    )];
    let out = sb.run_env(&["doctor"], &env).expect(2);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("no-such-scanner-7f3") && l.trim_start().starts_with("- "))
        .unwrap_or_else(|| panic!("the problem is not listed:\n{}", out.stdout));
    assert!(
        line.contains("ORCH_SECURITY_GATE_CMD") && line.contains("not on PATH"),
        "{line}"
    );
    assert!(
        line.contains("fix: install it") && line.contains("unset it to skip the gate"),
        "{line}"
    );
    let report = sb.run_env(&["doctor", "--json"], &env).expect(2).json();
    assert_eq!(report["ok"], false);
    let scan = program(&report, "ORCH_SECURITY_GATE_CMD");
    assert_eq!(scan["program"], "no-such-scanner-7f3");
    assert_eq!(scan["status"], "missing");
    assert_eq!(report["problems"].as_array().unwrap().len(), 1, "{report}");
}

#[test]
fn shell_builtins_are_not_looked_up_and_absolute_paths_are_checked() {
    let sb = Sandbox::new();
    // The database exists: the only problem is the scanner.
    sb.add_task("A", "created");
    let env = [
        ("ORCH_MERGE_CMD", "exit 0"),
        ("ORCH_ALERT_CMD", "cat >/dev/null"),
        (
            "ORCH_IMAGE_FRESHNESS_CMD",
            "GIT_DIR=.git git rev-parse HEAD",
        ),
        ("ORCH_SECURITY_GATE_CMD", "/no/such/dir/scan"),
    ];
    let report = sb.run_env(&["doctor", "--json"], &env).expect(2).json();
    assert_eq!(
        program(&report, "ORCH_MERGE_CMD")["status"],
        "not checked: a shell builtin or keyword"
    );
    assert_eq!(program(&report, "ORCH_ALERT_CMD")["status"], "found");
    assert_eq!(
        program(&report, "ORCH_IMAGE_FRESHNESS_CMD")["program"],
        "git"
    );
    assert_eq!(
        program(&report, "ORCH_IMAGE_FRESHNESS_CMD")["status"],
        "found"
    );
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    assert!(
        problems[0]
            .as_str()
            .unwrap()
            .contains("`/no/such/dir/scan`, which is not an executable file"),
        "{report}"
    );
}

#[test]
fn git_missing_from_path_is_a_problem_with_a_fix() {
    let sb = Sandbox::new();
    let empty = sb.path().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    let report = sb
        .run_env(&["doctor", "--json"], &[("PATH", empty.to_str().unwrap())])
        .expect(2)
        .json();
    let problems = report["problems"].to_string();
    assert!(
        problems.contains("`git` is not on PATH (fix: install git"),
        "{problems}"
    );
    // The default re-test runs python3, which is not there either.
    assert!(
        problems.contains("ORCH_MERGE_RETEST_CMD runs `python3`"),
        "{problems}"
    );
    assert_eq!(program(&report, "git")["status"], "missing");
}

#[test]
fn a_broken_invariant_and_a_file_that_is_not_a_database_are_problems() {
    let sb = Sandbox::new();
    let out = sb
        .run_env(&["doctor"], &[("ORCH_TRANSITION_LEASE_TTL_S", "20")])
        .expect(2);
    assert!(
        out.stdout
            .contains("ORCH_TRANSITION_LEASE_TTL_S (20) must be at least 3 × ORCH_TRANSITION_LEASE_RENEW_S (10); raise the TTL"),
        "{}",
        out.stdout
    );
    std::fs::create_dir_all(sb.db.parent().unwrap()).unwrap();
    std::fs::write(&sb.db, "not a database, just text\n".repeat(200)).unwrap();
    let report = sb.run(&["doctor", "--json"]).expect(2).json();
    assert_eq!(report["database"]["state"], "unusable", "{report}");
    assert_eq!(report["problems"].as_array().unwrap().len(), 1, "{report}");
}
