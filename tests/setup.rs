//! scripts/test-setup, the part of scripts/test that installs the tests' Python packages: on a
//! machine whose Python has no pytest, it installs them into the repository's own `.venv/` and
//! leaves that Python's site-packages exactly as they were; a second run reuses the environment.
//!
//! The "machine's Python" is a throwaway virtual environment made for the test (its own, empty
//! site-packages), first on PATH, and the repository is a copy of the script and
//! requirements-test.txt: nothing of the real checkout or the real Python is touched.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().expect("the command runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Every file under `dir`, relative, with its size: what "unchanged" compares.
fn listing(dir: &Path) -> Vec<(PathBuf, u64)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(PathBuf, u64)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                walk(base, &path, out);
            } else {
                out.push((path.strip_prefix(base).unwrap().to_path_buf(), meta.len()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn the_setup_installs_into_the_repos_own_venv_and_leaves_the_global_python_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let global = tmp.path().join("global-python");
    let (ok, text) = run(Command::new("python3").args(["-m", "venv"]).arg(&global));
    assert!(ok, "cannot make the throwaway python: {text}");
    let global_bin = global.join("bin");
    let (ok, site) = run(Command::new(global_bin.join("python3")).args([
        "-c",
        "import sysconfig; print(sysconfig.get_paths()['purelib'], end='')",
    ]));
    assert!(ok, "{site}");
    let site = PathBuf::from(site);
    let no_pytest = || {
        let (ok, _) = run(Command::new(global_bin.join("python3")).args(["-c", "import pytest"]));
        assert!(!ok, "the throwaway python must have no pytest");
    };
    no_pytest();
    let before = listing(&site);
    assert!(
        !before.is_empty(),
        "no site-packages found at {}",
        site.display()
    );

    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join("scripts")).unwrap();
    for file in ["scripts/test-setup", "requirements-test.txt"] {
        std::fs::copy(root().join(file), repo.join(file)).unwrap();
    }
    let path = format!(
        "{}:{}",
        global_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let setup = || {
        let mut cmd = Command::new(repo.join("scripts/test-setup"));
        cmd.env("PATH", &path)
            .env_remove("VIRTUAL_ENV")
            .env_remove("PYTHONPATH")
            .env_remove("PIP_USER")
            .current_dir(tmp.path());
        let (ok, text) = run(&mut cmd);
        assert!(ok, "scripts/test-setup failed:\n{text}");
        text
    };

    let first = setup();
    assert!(
        first.contains("installing requirements-test.txt into .venv"),
        "{first}"
    );
    assert_eq!(
        listing(&site),
        before,
        "the global python's site-packages changed"
    );
    no_pytest();
    let venv_python = repo.join(".venv/bin/python3");
    let (ok, text) = run(Command::new(&venv_python).args([
        "-c",
        "import sys, pytest, pytest_cov, xdist, prometheus_client; print(sys.prefix, end='')",
    ]));
    assert!(ok, "the repo's .venv lacks the test packages: {text}");
    assert_eq!(
        std::fs::canonicalize(&text).unwrap(),
        std::fs::canonicalize(repo.join(".venv")).unwrap()
    );

    // Unchanged requirements: the environment is reused, pip is not run.
    let second = setup();
    assert!(
        second.contains(".venv has requirements-test.txt already"),
        "{second}"
    );
    assert_eq!(listing(&site), before);

    // A package gone from the environment: the stamp alone is not trusted, it is reinstalled.
    let (ok, text) = run(Command::new(&venv_python).args([
        "-m",
        "pip",
        "uninstall",
        "--quiet",
        "--yes",
        "pytest",
    ]));
    assert!(ok, "{text}");
    let third = setup();
    assert!(
        third.contains("installing requirements-test.txt"),
        "{third}"
    );
    let (ok, text) = run(Command::new(&venv_python).args(["-c", "import pytest"]));
    assert!(ok, "pytest is back: {text}");

    // An environment made without pip (Debian's venv without python3-venv) is made afresh.
    std::fs::remove_dir_all(repo.join(".venv")).unwrap();
    let (ok, text) = run(Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(repo.join(".venv")));
    assert!(ok, "{text}");
    let fourth = setup();
    assert!(
        fourth.contains("installing requirements-test.txt"),
        "{fourth}"
    );
    assert_eq!(listing(&site), before);

    // A `.venv` that is a plain file: one line naming the fix, nothing installed.
    std::fs::remove_dir_all(repo.join(".venv")).unwrap();
    std::fs::write(repo.join(".venv"), "").unwrap();
    let mut cmd = Command::new(repo.join("scripts/test-setup"));
    cmd.env("PATH", &path).current_dir(tmp.path());
    let (ok, text) = run(&mut cmd);
    assert!(
        !ok && text.contains("is not a directory (hint: remove it"),
        "{text}"
    );
}
