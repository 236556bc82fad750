//! The shipped forge scripts of `examples/merge/`, run the way orch runs an `ORCH_MERGE_CMD`
//! (`sh -c`, orch's variables in the environment): `github.sh` against a fake `gh` that records
//! its argv, and the refusals of `bare-repo.sh` (its merges are in gates.rs).

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::support::{git, Fixture, Sandbox};

const HEAD: &str = "0123456789abcdef0123456789abcdef01234567";

fn github_sh() -> String {
    format!("{}/examples/merge/github.sh", env!("CARGO_MANIFEST_DIR"))
}

/// A `gh` that writes its arguments, each ended by NUL, to `dir/gh-argv`, and succeeds.
fn fake_gh(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let gh = bin.join("gh");
    std::fs::write(
        &gh,
        format!(
            "#!/bin/sh\nprintf '%s\\0' \"$@\" > '{}'\n",
            dir.join("gh-argv").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&gh, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs github.sh with orch's variables (`vars`, a value of `None` leaves it unset) and the fake
/// `gh` first on PATH; returns the exit code, stderr and the argv `gh` got (`None`: not called).
fn github(dir: &Path, vars: &[(&str, Option<&str>)]) -> (Option<i32>, String, Option<Vec<String>>) {
    let argv_file = dir.join("gh-argv");
    let _ = std::fs::remove_file(&argv_file);
    let mut env: HashMap<&str, Option<&str>> = HashMap::from([
        ("ORCH_REPO_URL", Some("https://github.com/acme/app.git")),
        ("ORCH_BRANCH", Some("feat/x")),
        ("ORCH_MERGE_HEAD", Some(HEAD)),
        (
            "ORCH_MERGE_BASE",
            Some("89abcdef0123456789abcdef0123456789abcdef"),
        ),
        ("ORCH_TARGET", Some("main")),
        ("ORCH_REPO", Some("app")),
        ("ORCH_TASK_ID", Some("T1")),
    ]);
    for (k, v) in vars {
        env.insert(k, *v);
    }
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &format!("'{}'", github_sh())])
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", dir.join("bin").display()),
        )
        .current_dir(dir);
    for (k, v) in env {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let out = cmd.output().unwrap();
    let argv = std::fs::read(&argv_file).ok().map(|bytes| {
        String::from_utf8(bytes)
            .unwrap()
            .split_terminator('\0')
            .map(str::to_string)
            .collect()
    });
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        argv,
    )
}

fn expected_argv(method: &str, slug: &str, branch: &str) -> Vec<String> {
    [
        "pr",
        "merge",
        &format!("--{method}"),
        "--match-head-commit",
        HEAD,
        "-R",
        slug,
        "--",
        branch,
    ]
    .map(str::to_string)
    .to_vec()
}

#[test]
fn the_github_script_merges_the_retested_head_of_the_pull_request_by_gh() {
    let sb = Sandbox::new();
    fake_gh(sb.path());
    // Every spelling of a github.com remote names the same OWNER/NAME.
    for url in [
        "https://github.com/acme/app",
        "https://github.com/acme/app.git",
        "git@github.com:acme/app",
        "git@github.com:acme/app.git",
        "ssh://git@github.com/acme/app",
        "ssh://git@github.com/acme/app.git",
    ] {
        let (code, stderr, argv) = github(sb.path(), &[("ORCH_REPO_URL", Some(url))]);
        assert_eq!(code, Some(0), "{url}: {stderr}");
        assert_eq!(
            argv,
            Some(expected_argv("squash", "acme/app", "feat/x")),
            "{url}"
        );
    }
    // Names GitHub allows: dots, dashes and underscores in the name, dashes in the owner.
    let (code, stderr, argv) = github(
        sb.path(),
        &[("ORCH_REPO_URL", Some("git@github.com:my-org/my_app.js.git"))],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        argv,
        Some(expected_argv("squash", "my-org/my_app.js", "feat/x"))
    );
    // GH_MERGE_METHOD picks the method; empty is the default.
    for (method, flag) in [
        ("merge", "merge"),
        ("rebase", "rebase"),
        ("squash", "squash"),
        ("", "squash"),
    ] {
        let (code, stderr, argv) = github(sb.path(), &[("GH_MERGE_METHOD", Some(method))]);
        assert_eq!(code, Some(0), "{method}: {stderr}");
        assert_eq!(
            argv,
            Some(expected_argv(flag, "acme/app", "feat/x")),
            "{method}"
        );
    }
}

#[test]
fn the_github_script_passes_a_hostile_branch_name_as_one_argument_after_the_separator() {
    let sb = Sandbox::new();
    fake_gh(sb.path());
    sb.add_repo("app", "https://github.com/acme/app.git");
    for (i, branch) in [
        "feat/$(touch${IFS}pwned)",
        "x/--admin",
        "a;b`touch${IFS}pwned`",
        "q'\"x",
        "f/${IFS}|&<>",
        "feat/--squash",
    ]
    .into_iter()
    .enumerate()
    {
        // orch itself registers these names: they reach ORCH_BRANCH.
        sb.run(&[
            "task",
            "add",
            &format!("H{i}"),
            "--repo",
            "app",
            "--branch",
            branch,
        ])
        .expect(0);
        let (code, stderr, argv) = github(sb.path(), &[("ORCH_BRANCH", Some(branch))]);
        assert_eq!(code, Some(0), "{branch}: {stderr}");
        assert_eq!(
            argv,
            Some(expected_argv("squash", "acme/app", branch)),
            "{branch}"
        );
        assert!(!sb.path().join("pwned").exists(), "{branch} was evaluated");
    }
}

#[test]
fn the_github_script_refuses_what_it_cannot_merge_exactly_without_calling_gh() {
    let sb = Sandbox::new();
    fake_gh(sb.path());
    let refused = |vars: &[(&str, Option<&str>)], says: &str| {
        let (code, stderr, argv) = github(sb.path(), vars);
        assert_eq!(code, Some(2), "{vars:?}: {stderr}");
        assert_eq!(argv, None, "{vars:?}: gh was called");
        assert_eq!(stderr.lines().count(), 1, "{vars:?}: {stderr}");
        assert!(
            stderr.starts_with("github.sh: ") && stderr.contains(says),
            "{vars:?}: {stderr}"
        );
    };
    for name in ["ORCH_MERGE_HEAD", "ORCH_BRANCH", "ORCH_REPO_URL"] {
        refused(&[(name, None)], &format!("{name} is not set"));
        refused(&[(name, Some(""))], &format!("{name} is not set"));
    }
    for method in ["fast-forward", "--admin", "squash --auto", "Squash"] {
        refused(
            &[("GH_MERGE_METHOD", Some(method))],
            "GH_MERGE_METHOD must be squash, merge or rebase",
        );
    }
    for url in [
        // Not github.com.
        "https://gitlab.com/acme/app.git",
        "git@gitlab.com:acme/app.git",
        "ssh://git@gitlab.com/acme/app.git",
        "https://github.com.evil.example/acme/app",
        "http://github.com/acme/app",
        "/srv/git/app.git",
        "file:///srv/git/app.git",
        "acme/app",
        // Not exactly OWNER/NAME.
        "https://github.com/acme/app/tree/main",
        "https://github.com/acme/app/",
        "https://github.com/acme/",
        "https://github.com//app",
        "https://github.com/acme",
        "git@github.com:acme/app/extra.git",
        "ssh://git@github.com/acme/app/x",
        "https://github.com/acme/app?tab=readme",
        "https://github.com/-R/app",
        "https://github.com/acme/..",
        "https://github.com/acme/app\nhttps://github.com/evil/app",
    ] {
        refused(
            &[("ORCH_REPO_URL", Some(url))],
            "is not a github.com repository URL",
        );
    }
}

/// Variables to set (`Some`) or unset (`None`) for a script.
type Vars = Vec<(&'static str, Option<String>)>;

/// `bare-repo.sh` with orch's variables and `MERGE_STYLE=merge` (`vars` override; `None` unsets):
/// exit code and stderr.
fn bare_repo(sb: &Sandbox, fx: &Fixture, vars: &[(&str, Option<String>)]) -> (Option<i32>, String) {
    let mut env: HashMap<&str, Option<String>> = HashMap::from([
        (
            "ORCH_REPO_URL",
            Some(format!("file://{}", fx.remote.display())),
        ),
        ("ORCH_TARGET", Some("main".to_string())),
        ("ORCH_BRANCH", Some("feat/s".to_string())),
        ("ORCH_TASK_ID", Some("S".to_string())),
        ("MERGE_STYLE", Some("merge".to_string())),
    ]);
    for (k, v) in vars {
        env.insert(k, v.clone());
    }
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        &format!(
            "'{}/examples/merge/bare-repo.sh'",
            env!("CARGO_MANIFEST_DIR")
        ),
    ])
    .env_clear()
    .env("PATH", "/usr/bin:/bin")
    .current_dir(sb.path());
    for (k, v) in env {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_shipped_bare_repo_script_refuses_without_moving_the_target() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let base = fx.remote_ref("main");
    let head = fx.commit_branch("feat/s", "main", &[("s.txt", "s\n")], "s");
    // `moved`: a commit main once held; `head` is not based on it.
    let moved = fx.advance_remote_main(&[("m.txt", "m\n")], "m");
    fx.forge_update_main(&base);
    let history = fx.target_history();
    let refs = || {
        git(
            &fx.remote,
            &["for-each-ref", "--format=%(objectname) %(refname)"],
        )
    };
    let before = refs();
    let merge = |extra: &[(&'static str, Option<String>)]| {
        let mut vars = vec![
            ("ORCH_MERGE_HEAD", Some(head.clone())),
            ("ORCH_MERGE_BASE", Some(base.clone())),
        ];
        vars.extend_from_slice(extra);
        vars
    };
    let some = |s: &str| Some(s.to_string());
    let cases: Vec<(Vars, i32, &str)> = vec![
        (
            merge(&[("ORCH_MERGE_BASE", None)]),
            2,
            "ORCH_MERGE_BASE is not set",
        ),
        (
            merge(&[("ORCH_MERGE_BASE", some(""))]),
            2,
            "ORCH_MERGE_BASE is not set",
        ),
        (
            merge(&[("ORCH_MERGE_HEAD", None)]),
            2,
            "ORCH_MERGE_HEAD is not set",
        ),
        (merge(&[("ORCH_TARGET", None)]), 2, "ORCH_TARGET is not set"),
        (
            merge(&[("ORCH_REPO_URL", None)]),
            2,
            "ORCH_REPO_URL is not set",
        ),
        // Relative: it would name the remote beside the working directory.
        (
            merge(&[("ORCH_REPO_URL", some("remote.git"))]),
            2,
            "must be a local path or a file:// URL",
        ),
        (
            merge(&[("ORCH_REPO_URL", some("file://remote.git"))]),
            2,
            "must be a local path or a file:// URL",
        ),
        (
            merge(&[("ORCH_REPO_URL", some("https://example.invalid/remote.git"))]),
            2,
            "must be a local path or a file:// URL",
        ),
        (
            merge(&[("ORCH_TARGET", some("main..x"))]),
            2,
            "is not a branch name",
        ),
        (
            merge(&[("MERGE_STYLE", some("octopus"))]),
            2,
            "MERGE_STYLE must be ff, merge or squash",
        ),
        // A head not based on the base: nothing merged (exit 1, as when the target moved: orch
        // rebases and re-tests).
        (
            merge(&[("ORCH_MERGE_BASE", some(&moved))]),
            1,
            "is not based on",
        ),
    ];
    for (vars, code, says) in cases {
        let (got, stderr) = bare_repo(&sb, &fx, &vars);
        assert_eq!(got, Some(code), "{vars:?}: {stderr}");
        assert!(
            stderr.starts_with("bare-repo.sh: ") && stderr.contains(says),
            "{vars:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{vars:?}: {stderr}");
        assert_eq!(refs(), before, "{vars:?}: a ref moved");
        assert_eq!(fx.target_history(), history, "{vars:?}: main moved");
    }
    // The same variables with the base main really is: it merges (the cases above failed for
    // their own reason only).
    assert_eq!(bare_repo(&sb, &fx, &merge(&[])).0, Some(0));
    assert_ne!(fx.remote_ref("main"), base);
}
