//! The trust boundary, part 1, from the adversary's side: the operator's registry decides where
//! orch fetches and pushes; branch names, `--validated-sha` and the agent's test suite cannot
//! steer orch's own git, reach the target or a protected branch, or buy a merge.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::support::{git, merge_of, Fixture, Out, Sandbox};

/// Keys every gate run here uses: short timeouts and back-offs, so a re-queue is due at once.
fn base_env() -> Vec<(&'static str, String)> {
    vec![
        ("ORCH_MERGE_RETEST_TIMEOUT_S", "60".into()),
        ("ORCH_KILL_GRACE_S", "2".into()),
        ("ORCH_MERGE_INFRA_RETRY_BACKOFF_S", "1".into()),
        ("ORCH_MERGE_DEFER_DELAY_S", "1".into()),
        ("ORCH_MERGE_DEFER_MAX_ATTEMPTS", "400".into()),
    ]
}

fn with(extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env = base_env();
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k, v.clone()));
    }
    env
}

fn run(sb: &Sandbox, args: &[&str], env: &[(&'static str, String)]) -> Out {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sb.run_env(args, &env)
}

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A due infra re-queue of `deploy-staging → deploy`, as if an earlier attempt had timed out.
fn plant_due_requeue(sb: &Sandbox, task: &str) {
    let now = now_ms();
    sb.sqlite(&format!(
        "INSERT INTO requeues (task_id, from_stage, to_stage, kind, attempt, reason, due_at,
             due_boot_ms, boot_id, created_at)
         VALUES ('{task}', 'deploy-staging', 'deploy', 'infra', 1, 'merge timeout (planted)',
                 {}, 0, 'planted-boot (test)', {now})",
        now - 60_000
    ));
}

/// Every ref of a bare repository: `sha ref` per line.
fn refs_of(bare: &Path) -> String {
    git(bare, &["for-each-ref", "--format=%(objectname) %(refname)"])
}

/// `task add` refuses `branch` with exit 2, one line on stderr, and writes nothing.
#[track_caller]
fn refused(sb: &Sandbox, id: &str, branch: &str) {
    let before = sb.dump();
    let out = sb.run(&[
        "task",
        "add",
        id,
        "--repo",
        "app",
        &format!("--branch={branch}"),
    ]);
    assert_eq!(
        out.code, 2,
        "branch {branch:?} was not refused with 2:\n{}\n{}",
        out.stdout, out.stderr
    );
    assert_eq!(
        out.stderr.lines().count(),
        1,
        "branch {branch:?}: not one line:\n{}",
        out.stderr
    );
    assert_eq!(
        sb.dump(),
        before,
        "branch {branch:?}: something was written"
    );
}

#[test]
fn trust_hostile_branch_names_never_get_past_task_add() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    sb.run(&[
        "repo",
        "add",
        "app",
        "--url",
        fx.remote.to_str().unwrap(),
        "--protect",
        "release",
    ])
    .expect(0);
    for branch in [
        "HEAD",
        "@",
        "main",
        "refs/heads/main",
        "heads/main",
        "a:main",
        "evil:origin/evil:main",
        "+main",
        "-x",
        "--upload-pack=x",
        "a..b",
        "a@{1}",
        "a b",
        "a\u{200B}b",
        "release",
        "refs/heads/release",
        "heads/release",
        "refs/heads/refs/heads/main",
        "main\u{202E}",
        "\u{FEFF}main",
    ] {
        refused(&sb, "T", branch);
    }
    // A target registered by its full ref is the same branch by its short name.
    sb.run(&[
        "repo",
        "add",
        "svc",
        "--url",
        sb.path().join("svc.git").to_str().unwrap(),
        "--target",
        "refs/heads/trunk",
        "--protect",
        "heads/stable",
    ])
    .expect(0);
    for branch in ["trunk", "refs/heads/trunk", "stable", "refs/heads/stable"] {
        let before = sb.dump();
        let out = sb.run(&[
            "task",
            "add",
            "S",
            "--repo",
            "svc",
            &format!("--branch={branch}"),
        ]);
        assert_eq!(
            out.code, 2,
            "svc branch {branch:?}: {}{}",
            out.stdout, out.stderr
        );
        assert_eq!(sb.dump(), before);
    }
    assert_eq!(sb.sqlite("SELECT count(*) FROM tasks"), "0");
}

/// xorshift64*: a fixed, printed seed reproduces a failure.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A random name: specials that mean something to git's ref grammar, and letters (which make
/// up main and release).
fn random_name(rng: &mut Rng) -> String {
    const SPECIAL: &[char] = &[
        ':', '+', '^', '~', '?', '*', '[', '\\', '@', '{', '}', '.', '/', '-',
    ];
    const LETTERS: &[char] = &[
        'm', 'a', 'i', 'n', 'r', 'e', 'l', 's', 'x', 'H', 'E', 'A', 'D',
    ];
    // Sometimes start from a guarded name and mutate it.
    let mut name: Vec<char> = match rng.below(6) {
        0 => "main".chars().collect(),
        1 => "release".chars().collect(),
        2 => "refs/heads/main".chars().collect(),
        3 => "heads/release".chars().collect(),
        _ => Vec::new(),
    };
    let extra = 1 + rng.below(8);
    for _ in 0..extra {
        let c = if rng.below(2) == 0 {
            SPECIAL[rng.below(SPECIAL.len())]
        } else {
            LETTERS[rng.below(LETTERS.len())]
        };
        let at = rng.below(name.len() + 1);
        name.insert(at, c);
    }
    name.into_iter().collect()
}

#[test]
fn trust_random_branch_names_accepted_by_task_add_never_move_main_or_a_protected_branch() {
    let seed: u64 = 0x5eed_0012_dead_beef;
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    // A protected branch that exists on the remote, so "unchanged" means something.
    git(
        &fx.work,
        &["push", "--quiet", "origin", "main:refs/heads/release"],
    );
    sb.run(&[
        "repo",
        "add",
        "app",
        "--url",
        fx.remote.to_str().unwrap(),
        "--protect",
        "release",
    ])
    .expect(0);
    // One task commit on the old main; then main moves, so every gate rebases and publishes.
    let tip = fx.commit_branch("seed", "main", &[("notes.txt", "seed\n")], "seed");
    fx.advance_remote_main(&[("other.txt", "other\n")], "other work");
    git(&fx.work, &["push", "--quiet", "origin", ":refs/heads/seed"]);
    std::fs::remove_file(&fx.push_log).unwrap();
    let main_before = fx.remote_ref("refs/heads/main");
    let release_before = fx.remote_ref("refs/heads/release");
    let env = with(&[("ORCH_MERGE_RETEST_CMD", "true".into())]);

    let mut rng = Rng(seed);
    let (mut accepted, mut gated) = (Vec::new(), 0);
    for i in 0..200 {
        let name = random_name(&mut rng);
        let id = format!("P{i}");
        let out = sb.run(&[
            "task",
            "add",
            &id,
            "--repo",
            "app",
            &format!("--branch={name}"),
        ]);
        if out.code != 0 {
            assert_eq!(
                out.code, 2,
                "seed {seed:#x}, name {name:?}: {}{}",
                out.stdout, out.stderr
            );
            continue;
        }
        let stored = sb.sqlite(&format!("SELECT branch FROM tasks WHERE id = '{id}'"));
        accepted.push((name.clone(), stored.clone()));
        assert!(
            !["main", "release"].contains(&stored.as_str()),
            "seed {seed:#x}: {name:?} registered as the guarded branch {stored:?}"
        );
        if gated >= 25 {
            continue;
        }
        // Push the branch as the agent would; skip a name git itself will not create.
        let pushed = Command::new("git")
            .arg("-C")
            .arg(&fx.work)
            .args(["push", "--quiet", "origin"])
            .arg(format!("{tip}:refs/heads/{stored}"))
            .output()
            .unwrap();
        if !pushed.status.success() {
            continue;
        }
        gated += 1;
        sb.sqlite(&format!(
            "UPDATE tasks SET stage = 'deploy-staging' WHERE id = '{id}'"
        ));
        let out = run(&sb, &["merge-gate", "retest", &id, "--json"], &env);
        assert_eq!(
            out.code, 0,
            "seed {seed:#x}, name {name:?} (stored {stored:?}):\n{}\n{}",
            out.stdout, out.stderr
        );
        assert_eq!(
            fx.remote_ref("refs/heads/main"),
            main_before,
            "seed {seed:#x}, {name:?}"
        );
        assert_eq!(
            fx.remote_ref("refs/heads/release"),
            release_before,
            "seed {seed:#x}, {name:?}"
        );
    }
    eprintln!(
        "seed {seed:#x}: {} accepted, {gated} gated: {accepted:?}",
        accepted.len()
    );
    assert!(gated > 0, "seed {seed:#x}: no random name reached the gate");
    let log = lines_of(&fx.push_log);
    assert!(
        log.iter()
            .all(|l| !l.ends_with(" refs/heads/main") && !l.ends_with(" refs/heads/release")),
        "seed {seed:#x}: a guarded ref was pushed:\n{}",
        log.join("\n")
    );
    assert_eq!(fx.remote_ref("refs/heads/main"), main_before);
    assert_eq!(fx.remote_ref("refs/heads/release"), release_before);
}

/// A suite that, besides passing, tries to take over git: it redirects the registered URL to
/// `fork` (`insteadOf`, `pushInsteadOf`), sets `core.sshCommand`, and installs hooks that leave
/// a marker in `markers` — all in `$(git rev-parse --git-common-dir)`, and, when `via_alternates`,
/// also in the repository its objects are borrowed from. It writes its `pwd` to `pwd_file`.
fn hostile_suite(
    sb: &Sandbox,
    url: &str,
    fork: &Path,
    markers: &Path,
    pwd_file: &Path,
    via_alternates: bool,
) -> String {
    let script = sb.path().join("hostile_suite.sh");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
pwd >> '{pwd}'
poison() {{
  gd="$1"
  git config -f "$gd/config" url.'{fork}'.insteadOf '{url}'
  git config -f "$gd/config" url.'{fork}'.pushInsteadOf '{url}'
  git config -f "$gd/config" core.sshCommand "touch '{markers}/ssh'"
  git config -f "$gd/config" core.hooksPath "$gd/hooks"
  mkdir -p "$gd/hooks"
  for h in pre-push post-checkout reference-transaction pre-rebase post-rewrite post-merge \
           pre-commit pre-auto-gc post-index-change pre-receive update post-update; do
    printf '#!/bin/sh\ntouch "%s/hook-%s"\n' '{markers}' "$h" > "$gd/hooks/$h"
    chmod +x "$gd/hooks/$h"
  done
}}
poison "$(git rev-parse --git-common-dir)"
if [ '{alt}' = yes ]; then
  alt="$(git rev-parse --git-common-dir)/objects/info/alternates"
  if [ -f "$alt" ]; then
    while read objects; do poison "$(dirname "$objects")"; done < "$alt"
  fi
  # Wherever it learnt the path (the environment, a guess at the default state directory),
  # the suite poisons orch's mirrors themselves.
  for m in '{state}'/mirrors/*.git; do
    [ -d "$m" ] && poison "$m" && echo "objects-elsewhere" > "$m/objects/info/alternates"
  done
fi
exit 0
"#,
            pwd = pwd_file.display(),
            fork = fork.display(),
            url = url,
            markers = markers.display(),
            alt = if via_alternates { "yes" } else { "no" },
            state = sb.db.parent().unwrap().display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("sh '{}'", script.display())
}

fn hostile_suite_changes_nothing_orch_does_later(via_alternates: bool) {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let markers = sb.path().join("markers");
    std::fs::create_dir(&markers).unwrap();
    let pwd_file = sb.path().join("suite-pwd");
    fx.commit_branch("feat/h", "main", &[("notes.txt", "h\n")], "notes");
    fx.advance_remote_main(&[("other.txt", "1\n")], "main moves");
    fx.add_task(&sb, "H", "feat/h", "deploy-staging");
    let url = sb.sqlite("SELECT url FROM repos WHERE name = 'app'");
    // The fork is a faithful copy, so a redirected fetch would succeed and go unnoticed.
    let fork = sb.path().join("fork.git");
    git(
        sb.path(),
        &[
            "clone",
            "--quiet",
            "--bare",
            fx.remote.to_str().unwrap(),
            fork.to_str().unwrap(),
        ],
    );
    let fork_refs = refs_of(&fork);
    let env = with(&[(
        "ORCH_MERGE_RETEST_CMD",
        hostile_suite(&sb, &url, &fork, &markers, &pwd_file, via_alternates),
    )]);

    let first = run(&sb, &["merge-gate", "retest", "H", "--json"], &env).expect(0);
    assert_eq!(
        merge_of(&first.json())["outcome"],
        "passed",
        "{}",
        first.stdout
    );
    assert_eq!(lines_of(&pwd_file).len(), 1, "the suite ran");

    // main moves again: orch must fetch, rebase and push — to the registered URL.
    fx.advance_remote_main(&[("other.txt", "2\n")], "main moves again");
    let log_before = lines_of(&fx.push_log).len();
    let second = run(&sb, &["merge-gate", "retest", "H", "--json"], &env).expect(0);
    let json = second.json();
    assert_eq!(merge_of(&json)["outcome"], "passed", "{json}");
    let head = merge_of(&json)["head"].as_str().unwrap().to_string();
    let new_log = lines_of(&fx.push_log)[log_before..].to_vec();
    assert!(
        new_log
            .iter()
            .any(|l| l.ends_with(" refs/heads/feat/h") && l.contains(&head)),
        "the second re-test published {head} to the registered URL: {new_log:?}\n\
         the fork's refs before:\n{fork_refs}\nand after:\n{}",
        refs_of(&fork)
    );
    assert_eq!(fx.remote_ref("refs/heads/feat/h"), head);
    assert_eq!(refs_of(&fork), fork_refs, "the fork received nothing");
    let planted: Vec<_> = std::fs::read_dir(&markers)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        planted.is_empty(),
        "a planted hook or ssh command ran: {planted:?}"
    );
    fx.assert_no_target_push();

    let state = std::fs::canonicalize(sb.db.parent().unwrap()).unwrap();
    for pwd in lines_of(&pwd_file) {
        let pwd = std::fs::canonicalize(&pwd).unwrap_or_else(|_| pwd.clone().into());
        assert!(
            !pwd.starts_with(&state),
            "the suite ran in {} inside the state directory {}",
            pwd.display(),
            state.display()
        );
    }
}

#[test]
fn trust_a_suite_that_poisons_its_git_dir_changes_nothing_orch_does_later() {
    hostile_suite_changes_nothing_orch_does_later(false);
}

/// A suite that reaches orch's mirror itself — through alternates if its copy had any, or by a
/// path it learnt — and poisons its config and alternates must not redirect orch's next fetch or
/// push either (orch puts the mirror's own config back before every use).
#[test]
fn trust_a_suite_that_poisons_the_mirror_through_its_alternates_changes_nothing_orch_does_later() {
    hostile_suite_changes_nothing_orch_does_later(true);
}

#[test]
fn trust_each_repo_is_gated_with_its_own_command_and_a_changed_command_voids_its_verdict() {
    let sb = Sandbox::new();
    let fa = Fixture::named(&sb, "a");
    let fb = Fixture::named(&sb, "b");
    let ran_a = sb.path().join("ran-A");
    let ran_b = sb.path().join("ran-B");
    for (fx, repo, task, marker) in [(&fa, "a", "TA", &ran_a), (&fb, "b", "TB", &ran_b)] {
        fx.commit_branch("feat/t", "main", &[("notes.txt", "t\n")], "notes");
        fx.advance_remote_main(&[("other.txt", "o\n")], "other");
        fx.add_task_in(&sb, repo, task, "feat/t", "deploy-staging");
        sb.run(&[
            "repo",
            "set",
            repo,
            &format!(
                "ORCH_MERGE_RETEST_CMD=echo \"$ORCH_REPO $ORCH_TASK_ID\" >> '{}'",
                marker.display()
            ),
        ])
        .expect(0);
        plant_due_requeue(&sb, task);
    }
    // The environment's command would fail every task: only each repo's own may run.
    let env = with(&[("ORCH_MERGE_RETEST_CMD", "exit 3".into())]);
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        let out = run(&sb, &["advance", "--next", "--json"], &env);
        let json = out.json();
        if json["outcome"] == "nothing-due" {
            break;
        }
        assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
        outcomes.push(json);
    }
    assert_eq!(outcomes.len(), 2, "two claimed re-queues: {outcomes:?}");
    assert_eq!(lines_of(&ran_a), vec!["a TA".to_string()]);
    assert_eq!(lines_of(&ran_b), vec!["b TB".to_string()]);
    assert_eq!(sb.stage_of("TA").0, "deploy");
    assert_eq!(sb.stage_of("TB").0, "deploy");
    fa.assert_no_target_push();
    fb.assert_no_target_push();

    // A second task of `a`: passes, then its verdict is reused…
    fa.commit_branch("feat/u", "main", &[("u.txt", "u\n")], "u");
    fa.advance_remote_main(&[("other.txt", "o2\n")], "other 2");
    sb.register("a", "UA", "feat/u", "deploy-staging");
    let json = run(&sb, &["merge-gate", "retest", "UA", "--json"], &env)
        .expect(0)
        .json();
    assert_eq!(merge_of(&json)["outcome"], "passed", "{json}");
    let json = run(&sb, &["merge-gate", "retest", "UA", "--json"], &env)
        .expect(0)
        .json();
    assert_eq!(merge_of(&json)["outcome"], "skipped", "{json}");
    assert!(
        merge_of(&json)["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("reused the passing verdict"),
        "{json}"
    );
    assert_eq!(lines_of(&ran_a).len(), 2);
    // …until the repo's command changes: the stored verdict is not the new command's.
    sb.run(&[
        "repo",
        "set",
        "a",
        &format!(
            "ORCH_MERGE_RETEST_CMD=echo \"changed $ORCH_TASK_ID\" >> '{}'",
            ran_a.display()
        ),
    ])
    .expect(0);
    let json = run(&sb, &["merge-gate", "retest", "UA", "--json"], &env)
        .expect(0)
        .json();
    assert_eq!(merge_of(&json)["outcome"], "passed", "{json}");
    assert!(
        !merge_of(&json)["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("reused"),
        "{json}"
    );
    assert_eq!(lines_of(&ran_a).last().unwrap(), "changed UA");
    assert_eq!(lines_of(&ran_b).len(), 1, "b's command never ran for a");

    // `repo show`: every key with its source.
    let show = run(
        &sb,
        &["repo", "show", "a"],
        &with(&[("ORCH_COVERAGE_MIN", "50".into())]),
    )
    .expect(0);
    let line = |key: &str| {
        show.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no {key} in:\n{}", show.stdout))
            .to_string()
    };
    assert!(
        line("ORCH_MERGE_RETEST_CMD").ends_with("(repo)"),
        "{}",
        show.stdout
    );
    assert!(
        line("ORCH_MERGE_RETEST_CMD").contains("changed"),
        "{}",
        show.stdout
    );
    assert!(
        line("ORCH_COVERAGE_MIN").ends_with("(env)"),
        "{}",
        show.stdout
    );
    assert!(
        line("ORCH_MERGE_CMD").ends_with("(default)"),
        "{}",
        show.stdout
    );
    // Unset: the environment's value applies again.
    sb.run(&["repo", "unset", "a", "ORCH_MERGE_RETEST_CMD"])
        .expect(0);
    let show = run(&sb, &["repo", "show", "a"], &env).expect(0);
    assert!(
        show.stdout
            .lines()
            .any(|l| l.starts_with("  ORCH_MERGE_RETEST_CMD") && l.ends_with("exit 3  (env)")),
        "{}",
        show.stdout
    );
}

#[test]
fn trust_a_forced_registration_is_in_the_history_and_buys_no_merge() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    sb.add_repo("app", fx.remote.to_str().unwrap());
    let before = sb.dump();
    for args in [
        &["--stage", "done"][..],
        &["--stage", "done", "--force"][..],
        &["--stage", "done", "--reason", "imported"][..],
    ] {
        let mut full = vec!["task", "add", "F", "--repo", "app", "--branch", "feat/f"];
        full.extend_from_slice(args);
        let out = sb.run(&full).expect(2);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
    assert_eq!(sb.dump(), before, "a refused registration writes nothing");

    sb.run(&[
        "task",
        "add",
        "F",
        "--repo",
        "app",
        "--branch",
        "feat/f",
        "--stage",
        "done",
        "--force",
        "--reason",
        "imported from the old tracker",
        "--actor",
        "alice",
    ])
    .expect(0);
    let show = sb.run(&["task", "show", "F"]).expect(0);
    let registration = show
        .stdout
        .lines()
        .find(|l| l.contains("- → done"))
        .unwrap_or_else(|| panic!("no registration in:\n{}", show.stdout));
    assert!(registration.contains("v1"), "{registration}");
    assert!(registration.contains("by alice"), "{registration}");
    assert!(
        registration.contains("reason: imported from the old tracker"),
        "{registration}"
    );
    assert_eq!(
        sb.sqlite("SELECT count(*) || '|' || coalesce(from_stage, 'NULL') || '|' || to_stage || '|' || version FROM transitions WHERE task_id = 'F'"),
        "1|NULL|done|1"
    );

    // Forced to deploy: no re-test of orch's, so merge-verify merges nothing.
    let tip = fx.commit_branch("feat/d", "main", &[("notes.txt", "d\n")], "d");
    sb.run(&[
        "task",
        "add",
        "D",
        "--repo",
        "app",
        "--branch",
        "feat/d",
        "--stage",
        "deploy",
        "--force",
        "--reason",
        "skip the gates",
    ])
    .expect(0);
    let main_before = fx.remote_ref("refs/heads/main");
    let marker = sb.path().join("merged");
    let env = with(&[
        (
            "ORCH_MERGE_CMD",
            format!(
                "echo ran >> '{}'; git --git-dir='{}' update-ref refs/heads/main \"$ORCH_MERGE_HEAD\"",
                marker.display(),
                fx.remote.display()
            ),
        ),
        ("ORCH_MERGE_RETEST_CMD", "true".into()),
    ]);
    let out = run(&sb, &["advance", "D", "--to", "done", "--json"], &env).expect(12);
    assert!(
        out.stdout.contains("no passing re-test verdict of orch's"),
        "{}",
        out.stdout
    );
    assert_eq!(sb.stage_of("D").0, "deploy");
    assert!(
        sb.sqlite("SELECT hold_reason FROM tasks WHERE id = 'D'")
            .contains("no passing re-test verdict"),
        "on HOLD"
    );
    assert_eq!(sb.sqlite("SELECT count(*) FROM alerts"), "1");
    assert!(!marker.exists(), "the merge command never ran");
    assert_eq!(fx.remote_ref("refs/heads/main"), main_before);
    assert!(git(&fx.remote, &["branch", "--contains", &tip]) != "main");
    // Held: a second try is 6, and still one alert.
    run(&sb, &["advance", "D", "--to", "done"], &env).expect(6);
    assert_eq!(sb.sqlite("SELECT count(*) FROM alerts"), "1");
    fx.assert_no_target_push();
}

#[test]
fn trust_validated_sha_must_name_a_commit_of_the_repo() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let tip = fx.commit_branch("feat/v", "main", &[("notes.txt", "v\n")], "v");
    fx.add_task(&sb, "V", "feat/v", "testing");
    // A commit only in the agent's checkout, never pushed; a blob that is in the repository.
    git(&fx.work, &["checkout", "--quiet", "-B", "local", "main"]);
    std::fs::write(fx.work.join("local.txt"), "local\n").unwrap();
    git(&fx.work, &["add", "."]);
    git(&fx.work, &["commit", "--quiet", "-m", "local only"]);
    let unpushed = git(&fx.work, &["rev-parse", "HEAD"]);
    git(&fx.work, &["checkout", "--quiet", "main"]);
    let blob = git(&fx.work, &["rev-parse", &format!("{tip}:notes.txt")]);
    let tree = git(&fx.work, &["rev-parse", &format!("{tip}^{{tree}}")]);
    // A commit of the repository, pushed, on another task's branch — and in orch's mirror,
    // since that task's validation fetched it: still not this task's.
    let elsewhere = fx.commit_branch("feat/other", "main", &[("o.txt", "o\n")], "other");
    fx.add_task(&sb, "W", "feat/other", "testing");
    sb.run(&[
        "advance",
        "W",
        "--to",
        "deploy-staging",
        "--validated-sha",
        &elsewhere,
    ])
    .expect(0);

    let before = sb.dump();
    for sha in [
        elsewhere,
        "abc123".to_string(),
        "not-a-sha; rm -rf /".to_string(),
        "g".repeat(40),
        format!("{tip}0"),
        format!(" {}", &tip[1..]),
        "0123456789abcdef0123456789abcdef01234567".to_string(),
        unpushed,
        blob,
        tree,
        "HEAD".to_string(),
        "feat/v".to_string(),
    ] {
        let out = sb.run(&[
            "advance",
            "V",
            "--to",
            "deploy-staging",
            "--validated-sha",
            &sha,
        ]);
        assert_eq!(
            out.code, 2,
            "--validated-sha {sha:?} was not refused with 2:\n{}\n{}",
            out.stdout, out.stderr
        );
        assert_eq!(out.stderr.lines().count(), 1, "{sha:?}: {}", out.stderr);
        assert_eq!(sb.dump(), before, "{sha:?}: something was written");
    }
    assert_eq!(sb.stage_of("V"), ("testing".into(), 1));

    sb.run(&[
        "advance",
        "V",
        "--to",
        "deploy-staging",
        "--validated-sha",
        &tip,
    ])
    .expect(0);
    assert_eq!(sb.stage_of("V").0, "deploy-staging");
    assert_eq!(
        sb.sqlite("SELECT validated_sha FROM tasks WHERE id = 'V'"),
        tip
    );
}

#[test]
fn trust_the_registry_refuses_a_second_name_for_a_remote_and_removing_a_repo_in_use() {
    // A fresh path: `repo add` creates the database and its directory (whose parent exists).
    let sb = Sandbox::new();
    let db = sb.path().join("fresh").join("orch.db");
    let remote = sb.path().join("r.git");
    git(
        sb.path(),
        &[
            "init",
            "--quiet",
            "--bare",
            "-b",
            "main",
            remote.to_str().unwrap(),
        ],
    );
    let orch = |args: &[&str]| {
        let mut cmd = sb.orch();
        cmd.env("ORCH_DB_PATH", &db).args(args);
        Out::from(cmd.output().unwrap())
    };
    assert!(!db.parent().unwrap().exists());
    orch(&["repo", "add", "app", "--url", remote.to_str().unwrap()]).expect(0);
    assert!(db.exists(), "the database was created");
    // Idempotent under the same name.
    orch(&["repo", "add", "app", "--url", remote.to_str().unwrap()]).expect(0);

    // The same remote under another name, in any spelling.
    let spellings = [
        remote.to_str().unwrap().to_string(),
        format!("{}/", remote.display()),
        format!("{}/../r.git", sb.path().join("fresh").display()),
        "r.git".to_string(),
        // git opens `x.git` for `x`, and `file://` is the same path.
        sb.path().join("r").display().to_string(),
        format!("file://{}", remote.display()),
        format!("file://localhost{}", remote.display()),
    ];
    for url in &spellings {
        let out = orch(&["repo", "add", "other", "--url", url]);
        assert_eq!(out.code, 2, "{url}: {}\n{}", out.stdout, out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    }
    // A remote helper's `transport::address` and schemes orch never fetches from are refused.
    for url in [
        "ext::sh -c touch% /tmp/pwned",
        "fd::3",
        "ext::x",
        "ftp://host/r.git",
    ] {
        let out = orch(&["repo", "add", "odd", "--url", url]);
        assert_eq!(out.code, 2, "{url}: {}", out.stderr);
    }
    assert_eq!(
        orch(&["repo", "list"]).expect(0).stdout.lines().count(),
        1,
        "only `app` is registered"
    );
    // A branch that is the target but for its case is refused too.
    for lookalike in ["Main", "MAIN", "refs/heads/Main"] {
        let out = orch(&["task", "add", "L", "--repo", "app", "--branch", lookalike]);
        assert_eq!(out.code, 2, "{lookalike}: {}", out.stderr);
    }
    // A different target for the same name is refused, naming the field.
    let out = orch(&[
        "repo",
        "add",
        "app",
        "--url",
        remote.to_str().unwrap(),
        "--target",
        "develop",
    ])
    .expect(2);
    assert!(out.stderr.contains("target"), "{}", out.stderr);

    // A repo with a task stays registered.
    orch(&["task", "add", "T", "--repo", "app", "--branch", "feat/t"]).expect(0);
    let out = orch(&["repo", "remove", "app"]).expect(2);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    orch(&["repo", "show", "app"]).expect(0);
    // A task re-registered with another branch is refused, naming the field.
    let out = orch(&["task", "add", "T", "--repo", "app", "--branch", "feat/u"]).expect(2);
    assert!(out.stderr.contains("branch"), "{}", out.stderr);
    // A repo no task uses can go.
    orch(&[
        "repo",
        "add",
        "spare",
        "--url",
        sb.path().join("spare.git").to_str().unwrap(),
    ])
    .expect(0);
    let spare_mirror = db.parent().unwrap().join("mirrors").join("spare.git");
    std::fs::create_dir_all(&spare_mirror).unwrap();
    orch(&["repo", "remove", "spare"]).expect(0);
    orch(&["repo", "show", "spare"]).expect(3);
    assert!(!spare_mirror.exists(), "the removed repo's mirror is gone");
}

/// DESIGN, trust boundary: "the state directory is 0700 and the database 0600 when orch creates
/// them" — the mirrors (the only copy of what orch fetched and pushes from) live there.
#[test]
fn trust_repo_add_creates_a_private_state_directory_and_database() {
    let sb = Sandbox::new();
    let remote = sb.path().join("r.git");
    git(
        sb.path(),
        &[
            "init",
            "--quiet",
            "--bare",
            "-b",
            "main",
            remote.to_str().unwrap(),
        ],
    );
    sb.add_repo("app", remote.to_str().unwrap());
    let dir = std::fs::metadata(sb.db.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    let db = std::fs::metadata(&sb.db).unwrap().permissions().mode();
    assert_eq!(
        (dir & 0o777, db & 0o777),
        (0o700, 0o600),
        "state directory {:o}, database {:o}",
        dir & 0o777,
        db & 0o777
    );
}
