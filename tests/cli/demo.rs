//! `orch demo` runs to the end, with pytest and without it.

use crate::support::Sandbox;

fn demo(sb: &Sandbox, hide_pytest: bool) -> crate::support::Out {
    let mut cmd = sb.orch();
    cmd.arg("demo").env("TMPDIR", sb.path());
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
