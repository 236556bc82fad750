//! The trust boundary, part 2: the agent's code (the re-test here) gets a fresh environment and,
//! where the kernel has Landlock, may write only its working copy, its TMPDIR, a few devices and
//! `ORCH_GATE_WRITABLE` — never orch's state directory.

use std::path::Path;

use crate::support::{Fixture, Sandbox};

fn gate_env(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        // The test sandbox turns it off for every other test (their suites write markers
        // beside the database); here it is what is under test.
        ("ORCH_GATE_SANDBOX", "auto"),
        ("ORCH_MERGE_RETEST_TIMEOUT_S", "120"),
        ("ORCH_KILL_GRACE_S", "2"),
        ("ORCH_MERGE_DEFER_DELAY_S", "1"),
        ("ORCH_MERGE_DEFER_MAX_ATTEMPTS", "400"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    env
}

fn retest(sb: &Sandbox, id: &str, env: &[(String, String)]) -> serde_json::Value {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    sb.run_env(&["--json", "merge-gate", "retest", id], &env)
        .expect(0)
        .json()
}

/// Whether this kernel has Landlock; says so when the test is skipped for want of it.
fn landlock_here() -> bool {
    let here = std::fs::read_to_string("/sys/kernel/security/lsm")
        .map(|l| l.contains("landlock"))
        .unwrap_or(false)
        || Path::new("/sys/kernel/security/landlock").exists();
    if !here {
        eprintln!("skipped: this kernel has no Landlock (see /sys/kernel/security/lsm)");
    }
    here
}

fn run_id(report: &serde_json::Value) -> String {
    report["gates"][0]["run_id"]
        .as_i64()
        .expect("a run id")
        .to_string()
}

/// A suite that prints its environment and working directory and passes.
#[test]
fn the_suite_sees_a_fresh_environment_and_runs_outside_the_state_directory() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/e", "main", &[("notes.txt", "e\n")], "notes");
    fx.add_task(&sb, "E", "feat/e", "deploy-staging");
    // The one place outside its working copy the suite may write: ORCH_GATE_WRITABLE.
    let out = sb.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let dump = out.join("suite-env");
    let cmd = format!(
        "env > '{0}'; echo \"PWD-IS=$(pwd)\" >> '{0}'",
        dump.display()
    );
    let out_dir = out.display().to_string();
    let env = gate_env(&[
        ("ORCH_GATE_WRITABLE", &out_dir),
        ("ORCH_MERGE_RETEST_CMD", &cmd),
        ("ORCH_ALERT_CMD", "cat > /dev/null # secret-webhook"),
        ("ORCH_MERGE_CMD", "true # merge-secret"),
        ("GH_TOKEN", "ghp_supersecret"),
        ("PIP_INDEX_URL", "https://mirror.example/simple"),
        ("ORCH_GATE_ENV_PASS", "PIP_INDEX_URL"),
    ]);
    retest(&sb, "E", &env);
    let seen = std::fs::read_to_string(&dump).unwrap();
    for secret in [
        "ORCH_DB_PATH",
        "ORCH_ALERT_CMD",
        "ORCH_MERGE_CMD",
        "GH_TOKEN",
        "ghp_",
    ] {
        assert!(!seen.contains(secret), "the suite saw {secret}:\n{seen}");
    }
    assert!(
        seen.lines()
            .any(|l| l == "PIP_INDEX_URL=https://mirror.example/simple"),
        "ORCH_GATE_ENV_PASS did not pass PIP_INDEX_URL:\n{seen}"
    );
    for name in [
        "PATH=",
        "HOME=",
        "TMPDIR=",
        "ORCH_TASK_ID=E",
        "ORCH_BRANCH=feat/e",
    ] {
        assert!(
            seen.lines().any(|l| l.starts_with(name)),
            "no {name}:\n{seen}"
        );
    }
    let pwd = seen
        .lines()
        .find_map(|l| l.strip_prefix("PWD-IS="))
        .unwrap();
    let state = std::fs::canonicalize(sb.db.parent().unwrap()).unwrap();
    assert!(
        !std::fs::canonicalize(pwd)
            .unwrap_or_else(|_| pwd.into())
            .starts_with(&state),
        "the suite ran in {pwd}, inside the state directory"
    );
}

/// The pytest project the sandboxed re-test runs: a fixture using `tmp_path`, run under xdist;
/// one test tries to write orch's database, the mirror's config and a new file in the state
/// directory and expects EACCES from each.
fn hostile_pytest_project(state: &Path) -> [(&'static str, String); 2] {
    [
        (
            "test_tmp.py",
            "def test_writes_its_tmp_path(tmp_path):\n    (tmp_path / 'out.txt').write_text('ok')\n    assert (tmp_path / 'out.txt').read_text() == 'ok'\n\n\ndef test_two(tmp_path):\n    assert tmp_path.is_dir()\n".to_string(),
        ),
        (
            "test_escape.py",
            format!(
                "import errno, os, pytest\n\nSTATE = {state:?}\n\n@pytest.mark.parametrize('target', ['orch.db', 'mirrors/app.git/config', 'planted-by-suite'])\ndef test_state_is_not_writable(target):\n    path = os.path.join(STATE, target)\n    with pytest.raises(PermissionError) as err:\n        open(path, 'a').close()\n    assert err.value.errno == errno.EACCES\n",
                state = state.display().to_string()
            ),
        ),
    ]
}

#[test]
fn under_landlock_the_state_directory_is_not_writable_and_a_real_pytest_project_passes() {
    if !landlock_here() {
        return;
    }
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let state = sb.db.parent().unwrap().to_path_buf();
    let files = hostile_pytest_project(&state);
    let files: Vec<(&str, &str)> = files.iter().map(|(n, c)| (*n, c.as_str())).collect();
    fx.commit_branch("feat/s", "main", &files, "sandboxed suite");
    fx.add_task(&sb, "S", "feat/s", "deploy-staging");
    let env = gate_env(&[(
        "ORCH_MERGE_RETEST_CMD",
        "python3 -m pytest -q -p no:cacheprovider -n 2",
    )]);
    let report = retest(&sb, "S", &env);
    assert_eq!(report["outcome"], "passed", "{report}");
    let run = run_id(&report);
    let shown = sb.run(&["run", "show", &run]).expect(0).stdout;
    assert!(shown.contains("sandbox   landlock ABI"), "{shown}");
    assert!(shown.contains("5 passed"), "{shown}");
    assert!(!state.join("planted-by-suite").exists());
    let mirror_config = std::fs::read_to_string(state.join("mirrors/app.git/config")).unwrap();
    assert!(!mirror_config.contains("\n\n"), "{mirror_config}");

    // Forced off: the same suite's escape test fails (it can write), and `run show` says why.
    fx.advance_remote_main(&[("other.txt", "o\n")], "main moves");
    let env = gate_env(&[
        (
            "ORCH_MERGE_RETEST_CMD",
            "python3 -m pytest -q -p no:cacheprovider test_tmp.py",
        ),
        ("ORCH_GATE_SANDBOX", "off"),
    ]);
    let report = retest(&sb, "S", &env);
    let run = run_id(&report);
    let shown = sb.run(&["run", "show", &run]).expect(0).stdout;
    assert!(
        shown.contains("sandbox   none (ORCH_GATE_SANDBOX=off)"),
        "{shown}"
    );
    let json = sb.run(&["--json", "run", "show", &run]).expect(0).json();
    assert_eq!(json["sandbox"], "none (ORCH_GATE_SANDBOX=off)");
}

#[test]
fn run_show_names_a_missing_run_and_doctor_refuses_a_writable_state_or_path_directory() {
    let sb = Sandbox::new();
    sb.add_task("R", "created");
    let out = sb.run(&["run", "show", "999"]).expect(3);
    assert_eq!(
        out.stderr.trim(),
        "orch: run 999 not found (hint: `orch task show ID` names each gate's run)"
    );
    let state = sb
        .db
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .display()
        .to_string();
    let out = sb
        .run_env(&["doctor"], &[("ORCH_GATE_WRITABLE", &state)])
        .expect(2);
    assert!(
        out.stdout.contains("which holds orch's state directory"),
        "{}",
        out.stdout
    );
    let out = sb
        .run_env(&["doctor"], &[("ORCH_GATE_WRITABLE", "/usr")])
        .expect(2);
    assert!(out.stdout.contains("on PATH"), "{}", out.stdout);
    let out = sb.run(&["doctor"]).expect(0);
    assert!(out.stdout.contains("gate sandbox  "), "{}", out.stdout);
}

/// Past Landlock's writes: the agent's code may not signal orch, change an owner or set the
/// immutable flag on orch's state (capabilities dropped even for root), and orch's own keys never
/// pass through `ORCH_GATE_ENV_PASS`.
#[test]
fn the_sandboxed_suite_cannot_signal_orch_chown_its_state_or_be_passed_its_keys() {
    if !landlock_here() {
        return;
    }
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/p", "main", &[("notes.txt", "p\n")], "notes");
    fx.add_task(&sb, "P", "feat/p", "deploy-staging");
    let db = sb.db.display().to_string();
    let cmd = format!(
        "if kill -0 $PPID 2>/dev/null; then echo SIGNALLED-ORCH; else echo no-signal; fi; \
         if chown 1234 '{db}' 2>/dev/null; then echo CHOWNED; else echo no-chown; fi; \
         if chattr +i '{db}' 2>/dev/null; then chattr -i '{db}'; echo IMMUTABLE; else echo no-chattr; fi; \
         echo \"db-path=${{ORCH_DB_PATH:-unset}}\""
    );
    let env = gate_env(&[
        ("ORCH_MERGE_RETEST_CMD", &cmd),
        ("ORCH_GATE_ENV_PASS", "ORCH_DB_PATH,ORCH_ALERT_CMD"),
    ]);
    let report = retest(&sb, "P", &env);
    let shown = sb.run(&["run", "show", &run_id(&report)]).expect(0).stdout;
    for expected in ["no-signal", "no-chown", "db-path=unset"] {
        assert!(shown.contains(expected), "no {expected}:\n{shown}");
    }
    assert!(!shown.contains("IMMUTABLE"), "{shown}");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&sb.db).unwrap().uid(), 0);
}
