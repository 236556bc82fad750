//! `orch demo` runs to the end, with pytest and without it.

use crate::support::Sandbox;

fn demo(sb: &Sandbox, hide_pytest: bool) -> crate::support::Out {
    demo_with(sb, hide_pytest, &[])
}

fn demo_with(sb: &Sandbox, hide_pytest: bool, args: &[&str]) -> crate::support::Out {
    let mut cmd = sb.orch();
    // The demo is the README's first command: it runs with the gate sandbox at its default
    // (`auto`, Landlock where the kernel has it), not with the test `Sandbox`'s `off`.
    cmd.env_remove("ORCH_GATE_SANDBOX");
    cmd.args(args).arg("demo").env("TMPDIR", sb.path());
    if hide_pytest {
        // A `pytest` package that cannot be imported shadows the installed one.
        let shadow = sb.path().join("no-pytest");
        std::fs::create_dir_all(shadow.join("pytest")).unwrap();
        std::fs::write(
            shadow.join("pytest/__init__.py"),
            "raise ImportError('pytest is hidden for this test')\n",
        )
        .unwrap();
        cmd.env("PYTHONPATH", &shadow);
    }
    let out = cmd.output().unwrap();
    crate::support::Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn the_demo_runs_to_the_end_with_pytest() {
    let sb = Sandbox::new();
    let out = demo(&sb, false).expect(0);
    for step in [
        "1. a clean run",
        "2. a red re-test",
        "3. the incident",
        "4. a race",
        "5. kill -9",
        "done in",
    ] {
        assert!(
            out.stdout.contains(step),
            "missing `{step}`:\n{}",
            out.stdout
        );
    }
    assert!(
        out.stdout.contains("stages"),
        "it ends with `orch queue`:\n{}",
        out.stdout
    );
    assert!(!out.stdout.contains("pytest is not installed"));
    // One suite run per deploy: DEMO-1's re-test wrote the coverage report the coverage gate
    // judged; the coverage gate ran nothing of its own.
    let db = demo_dir(&out).join("state/orch.db");
    let query = |sql: &str| {
        let out = std::process::Command::new("sqlite3")
            .arg(&db)
            .arg(sql)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        query("SELECT group_concat(gate, ',') FROM (SELECT gate FROM runs WHERE task_id = 'DEMO-1' ORDER BY id)"),
        "security,merge,image-freshness,merge-verify"
    );
    assert_eq!(
        query("SELECT outcome, detail LIKE '%from the re-test''s report%' FROM gate_events WHERE task_id = 'DEMO-1' AND gate = 'coverage'"),
        "passed|1"
    );
    // Where the kernel has Landlock, the demo's gate commands ran confined: the default the
    // README's first command must work under.
    // Whether this kernel has Landlock, as orch itself judges it (`doctor`'s `sandbox`).
    let doctor = sb.run(&["--json", "doctor"]);
    let doctor: serde_json::Value = serde_json::from_str(&doctor.stdout).unwrap_or_default();
    if doctor["sandbox"]
        .as_str()
        .unwrap_or("")
        .starts_with("landlock")
    {
        let db = demo_dir(&out).join("state/orch.db");
        let sandboxes = std::process::Command::new("sqlite3")
            .arg(&db)
            .arg("SELECT DISTINCT sandbox FROM runs WHERE sandbox IS NOT NULL")
            .output()
            .unwrap();
        let sandboxes = String::from_utf8_lossy(&sandboxes.stdout);
        assert!(
            !sandboxes.trim().is_empty() && sandboxes.lines().all(|l| l.starts_with("landlock")),
            "every gate command of the demo ran under Landlock: {sandboxes:?}"
        );
    }
}

/// The directory the demo says it works in.
fn demo_dir(out: &crate::support::Out) -> std::path::PathBuf {
    let line = out
        .stdout
        .lines()
        .find_map(|l| l.split_once("working in ").map(|(_, rest)| rest))
        .expect("the demo names its directory");
    std::path::PathBuf::from(line.trim_end_matches(" (left there for inspection)"))
}

#[test]
fn under_q_the_demo_that_succeeds_prints_nothing() {
    let sb = Sandbox::new();
    let out = demo_with(&sb, false, &["-q"]).expect(0);
    assert_eq!(out.stdout, "", "-q silences the narration");
    assert_eq!(out.stderr, "", "-q silences the narration");
}

#[test]
fn the_demo_runs_to_the_end_without_pytest() {
    let sb = Sandbox::new();
    let out = demo(&sb, true).expect(0);
    assert!(
        out.stdout.contains("pytest is not installed"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("done in"), "{}", out.stdout);
}
