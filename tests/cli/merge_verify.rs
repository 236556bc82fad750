//! Merge-verify (`deploy → done`): the target only ever moves to a tree that passed orch's
//! re-test (issue 15). Real pytest suites that print the tree they ran on, a bare forge moved by
//! the shipped script (`examples/merge/bare-repo.sh`), and the remote's log of every value its
//! `main` took.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::{
    env_with, git, merge_of, merge_script, run_env_owned as run, Fixture, Out, Sandbox,
};

/// The re-test: prints the tree it runs on, then runs the suite.
const TREE_SUITE: &str =
    "echo tree=$(git rev-parse 'HEAD^{tree}'); python3 -m pytest -q -p no:cacheprovider";

/// The environment of these tests: the tree-printing suite, the shipped script as the forge
/// (`style`), alerts appended to `<sandbox>/alerts`, no coverage command; `extra` overrides.
fn env(sb: &Sandbox, style: &str, extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut all: Vec<(&str, String)> = vec![
        ("ORCH_MERGE_RETEST_CMD", TREE_SUITE.into()),
        ("ORCH_COVERAGE_CMD", String::new()),
        ("ORCH_MERGE_CMD", merge_script(style)),
        ("ORCH_MERGE_CMD_TIMEOUT_S", "60".into()),
        (
            "ORCH_ALERT_CMD",
            format!("cat >> '{}'", sb.path().join("alerts").display()),
        ),
    ];
    all.extend(extra.iter().cloned());
    env_with(&all)
}

/// The tree a commit of the remote carries.
fn tree(fx: &Fixture, commit: &str) -> String {
    git(&fx.remote, &["rev-parse", &format!("{commit}^{{tree}}")])
}

/// Every tree a passing re-test of `tasks` ran on, read back through `orch task show --json`
/// (the merge gate's passing events and their runs) and `orch run show N --json` (the suite's
/// own `tree=` line).
fn tested_trees(sb: &Sandbox, tasks: &[&str]) -> BTreeSet<String> {
    let mut runs = BTreeSet::new();
    for id in tasks {
        let show = sb.run(&["task", "show", id, "--json"]).expect(0).json();
        for item in show["history"].as_array().unwrap() {
            if item["kind"] == "gate" && item["gate"] == "merge" && item["outcome"] == "passed" {
                runs.insert(
                    item["run_id"]
                        .as_i64()
                        .expect("a tested pass names its run"),
                );
            }
        }
    }
    let mut trees = BTreeSet::new();
    for run in runs {
        let shown = sb
            .run(&["run", "show", &run.to_string(), "--json"])
            .expect(0)
            .json();
        assert_eq!(shown["outcome"], "passed", "{shown}");
        let output = shown["output"].as_str().unwrap_or_default();
        let printed: Vec<&str> = output
            .lines()
            .filter_map(|l| l.trim().strip_prefix("tree="))
            .collect();
        assert_eq!(
            printed.len(),
            1,
            "run {run} printed its tree once: {output}"
        );
        trees.insert(printed[0].to_string());
    }
    trees
}

/// The bors rule, checked on the remote's log: every commit the target pointed at after
/// `since` (an index into `Fixture::target_history`) has a tree a passing re-test ran on.
#[track_caller]
fn assert_only_tested_trees_landed(sb: &Sandbox, fx: &Fixture, since: usize, tasks: &[&str]) {
    let tested = tested_trees(sb, tasks);
    let history = fx.target_history();
    assert!(history.len() > since, "nothing landed: {history:?}");
    for commit in &history[since..] {
        let t = tree(fx, commit);
        assert!(
            tested.contains(&t),
            "the target pointed at {commit} with tree {t}, which no passing re-test ran on (tested: {tested:?})"
        );
    }
    fx.assert_no_target_push();
}

/// One CI step's view of a task: `advance --to STAGE`, retried while it exits 11 (lock-busy or
/// not due yet), as a pipeline's retry would. Returns the last exit.
fn step_until_settled(sb: &Sandbox, env: &[(String, String)], id: &str, stage: &str) -> Out {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let out = run(sb, &["advance", id, "--to", stage, "--json"], env);
        if out.code != 11 || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Walks `id` from `deploy-staging` to `done` as separate CI steps; returns the exit codes of
/// the steps it ran (`deploy`, then `done` if `deploy` passed).
fn walk(sb: &Sandbox, env: &[(String, String)], id: &str) -> Vec<i32> {
    let deploy = step_until_settled(sb, env, id, "deploy");
    if deploy.code != 0 {
        return vec![deploy.code];
    }
    vec![0, step_until_settled(sb, env, id, "done").code]
}

/// Walks every task of `ids` at once, each in a process of its own per step.
fn walk_concurrently(sb: &Sandbox, env: &[(String, String)], ids: &[&str]) -> Vec<Vec<i32>> {
    std::thread::scope(|scope| {
        let walkers: Vec<_> = ids
            .iter()
            .map(|id| scope.spawn(move || walk(sb, env, id)))
            .collect();
        walkers.into_iter().map(|w| w.join().unwrap()).collect()
    })
}

/// Takes `id` (a branch of `files` on main) through `deploy-staging → deploy`; returns the head
/// the merge gate judged.
fn to_deploy(
    sb: &Sandbox,
    fx: &Fixture,
    env: &[(String, String)],
    id: &str,
    files: &[(&str, &str)],
) -> String {
    let branch = format!("feat/{}", id.to_lowercase());
    fx.commit_branch(&branch, "main", files, id);
    fx.add_task(sb, id, &branch, "deploy-staging");
    let json = run(sb, &["advance", id, "--to", "deploy", "--json"], env)
        .expect(0)
        .json();
    merge_of(&json)["head"].as_str().unwrap().to_string()
}

/// Commits on the remote's main that the tests let "another merge" land later: `count` commits
/// in a chain on the current main, made and then undone (main is put back), so a forge command
/// can move main onto them at the moment a test chooses. Returns them, oldest first.
fn side_commits(fx: &Fixture, count: usize) -> Vec<String> {
    let start = fx.remote_ref("main");
    let commits: Vec<String> = (0..count)
        .map(|i| fx.advance_remote_main(&[(&format!("other-{i}.txt"), "o\n")], "another merge"))
        .collect();
    fx.forge_update_main(&start);
    commits
}

fn alerts_of(sb: &Sandbox) -> Vec<String> {
    std::fs::read_to_string(sb.path().join("alerts"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn last_reason(sb: &Sandbox, id: &str) -> String {
    sb.sqlite(&format!(
        "SELECT reason FROM transitions WHERE task_id = '{id}' ORDER BY id DESC LIMIT 1"
    ))
}

/// Acceptance 1: two green tasks of one repo walked concurrently from `deploy-staging` to `done`
/// by separate processes, with a forge that builds merge commits (the one whose second merge
/// commit nobody ever tested): both reach `done`, and every commit main pointed at has a tree a
/// passing re-test printed.
#[test]
fn two_green_tasks_walked_concurrently_land_only_tested_trees() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let env = env(&sb, "merge", &[]);
    for id in ["A1", "A2"] {
        let branch = format!("feat/{}", id.to_lowercase());
        fx.commit_branch(&branch, "main", &[(&format!("{id}.txt"), "x\n")], id);
        fx.add_task(&sb, id, &branch, "deploy-staging");
    }
    let since = fx.target_history().len();
    let codes = walk_concurrently(&sb, &env, &["A1", "A2"]);
    assert_eq!(codes, vec![vec![0, 0], vec![0, 0]]);
    assert_eq!(sb.stage_of("A1").0, "done");
    assert_eq!(sb.stage_of("A2").0, "done");
    assert_eq!(fx.target_history().len(), since + 2, "two merges landed");
    assert_only_tested_trees_landed(&sb, &fx, since, &["A1", "A2"]);
    assert_eq!(sb.sqlite("SELECT count(*) FROM holds"), "0");
    assert!(alerts_of(&sb).is_empty());
}

/// Acceptance 2: two tasks that conflict, walked concurrently: the second is red (a rebase
/// conflict, rolled back to `development`), never infra, never HOLD; nothing untested lands.
#[test]
fn two_conflicting_tasks_walked_concurrently_the_second_is_red_never_infra() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let env = env(&sb, "merge", &[]);
    for (id, text) in [("C1", "one\n"), ("C2", "two\n")] {
        let branch = format!("feat/{}", id.to_lowercase());
        fx.commit_branch(&branch, "main", &[("shared.txt", text)], id);
        fx.add_task(&sb, id, &branch, "deploy-staging");
    }
    let since = fx.target_history().len();
    let codes = walk_concurrently(&sb, &env, &["C1", "C2"]);
    let stages = [sb.stage_of("C1").0, sb.stage_of("C2").0];
    let (winner, loser) = if stages[0] == "done" {
        ("C1", "C2")
    } else {
        ("C2", "C1")
    };
    assert_eq!(sb.stage_of(winner).0, "done", "{codes:?}");
    assert_eq!(sb.stage_of(loser).0, "development", "{codes:?}");
    assert_eq!(codes.iter().flatten().filter(|c| **c == 10).count(), 1);
    assert!(
        codes.iter().flatten().all(|c| [0, 10].contains(c)),
        "{codes:?}"
    );
    let reason = last_reason(&sb, loser);
    assert!(
        reason.contains("gate merge red: rebase onto main conflicts in shared.txt"),
        "{reason}"
    );
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM holds"),
        "0",
        "{}",
        sb.sqlite("SELECT * FROM holds")
    );
    assert_eq!(sb.sqlite("SELECT count(*) FROM alerts"), "0");
    assert_eq!(
        sb.sqlite(
            "SELECT count(*) FROM gate_events WHERE outcome IN ('timeout', 'other', 'no-proof', 'config', 'exhausted', 'infra-requeued')"
        ),
        "0",
        "{}",
        sb.sqlite("SELECT task_id, edge, gate, outcome, detail FROM gate_events")
    );
    assert_eq!(
        sb.sqlite("SELECT coalesce(sum(infra_attempts), 0) FROM edge_budgets"),
        "0"
    );
    assert_eq!(fx.target_history().len(), since + 1, "one merge landed");
    assert_only_tested_trees_landed(&sb, &fx, since, &[winner]);
}

/// The red of merge-verify's re-run of the merge sub-gate (the target moved and the rebase onto
/// it conflicts) rolls `deploy → development` back, and the history names the merge gate.
#[test]
fn a_rebase_conflict_in_merge_verifys_rerun_rolls_back_naming_the_merge_gate() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let env = env(&sb, "ff", &[]);
    to_deploy(&sb, &fx, &env, "K1", &[("shared.txt", "one\n")]);
    to_deploy(&sb, &fx, &env, "K2", &[("shared.txt", "two\n")]);
    run(&sb, &["advance", "K1", "--to", "done"], &env).expect(0);
    let out = run(&sb, &["advance", "K2", "--to", "done"], &env).expect(10);
    assert!(
        out.stdout
            .contains("gate merge red: rebase onto main conflicts in shared.txt"),
        "{}",
        out.stdout
    );
    assert_eq!(sb.stage_of("K2").0, "development");
    assert_eq!(
        sb.sqlite(
            "SELECT edge || ' ' || gate || ' ' || outcome FROM gate_events WHERE task_id = 'K2' ORDER BY id DESC LIMIT 1"
        ),
        "deploy->done merge red"
    );
    let show = sb.run(&["task", "show", "K2"]).expect(0).stdout;
    assert!(show.contains("deploy → development"), "{show}");
    assert!(show.contains("conflicts in shared.txt"), "{show}");
    assert_eq!(sb.sqlite("SELECT count(*) FROM holds"), "0");
}

/// Acceptance 3, first half: a merge command that lands some other tree (exit 0) is no proof:
/// exit 12, HOLD, exactly one alert whose text names what landed; the task is not done.
#[test]
fn a_merge_command_that_lands_a_different_tree_is_no_proof_naming_what_landed() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let head = to_deploy(&sb, &fx, &env(&sb, "ff", &[]), "D1", &[("d.txt", "d\n")]);
    // A "forge" that moves main from the base to a commit of the base's own tree.
    let forge = format!(
        "r='{r}'; new=$(git --git-dir=\"$r\" commit-tree \"$ORCH_MERGE_BASE^{{tree}}\" -p \"$ORCH_MERGE_BASE\" -m other) && git --git-dir=\"$r\" update-ref refs/heads/main \"$new\" \"$ORCH_MERGE_BASE\"",
        r = fx.remote.display()
    );
    let env = env(&sb, "ff", &[("ORCH_MERGE_CMD", forge)]);
    let out = run(&sb, &["advance", "D1", "--to", "done", "--json"], &env).expect(12);
    let json = out.json();
    assert_eq!(json["gates"][0]["outcome"], "no-proof", "{json}");
    let landed = fx.remote_ref("main");
    let short = &landed[..10];
    let message = json["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("main is now {short}")),
        "{message}"
    );
    assert!(message.contains(&head[..10]), "{message}");
    assert_eq!(sb.stage_of("D1").0, "deploy");
    assert!(sb
        .sqlite("SELECT hold_reason FROM tasks WHERE id = 'D1'")
        .contains(&format!("main is now {short}")));
    let alerts = alerts_of(&sb);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(
        alerts[0].contains(&format!("main is now {short}")),
        "{}",
        alerts[0]
    );
    assert_eq!(sb.sqlite("SELECT count(*) FROM alerts"), "1");
}

/// A merge command that lands H and then an untested commit on top of it (under the merge lock
/// nothing else moves the target), or that deletes the target, is exit 12 with one alert naming
/// what is there — never `done`, never an infra retry.
#[test]
fn a_merge_command_that_lands_more_than_the_tested_tree_or_deletes_the_target_is_no_proof() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let _ = to_deploy(&sb, &fx, &env(&sb, "ff", &[]), "D4", &[("d.txt", "d\n")]);
    let forge = format!(
        "r='{r}'; g() {{ git --git-dir=\"$r\" \"$@\"; }}; g update-ref refs/heads/main \"$ORCH_MERGE_HEAD\" \"$ORCH_MERGE_BASE\" && e=$(g commit-tree \"$ORCH_MERGE_BASE^{{tree}}\" -p \"$ORCH_MERGE_HEAD\" -m evil) && g update-ref refs/heads/main \"$e\"",
        r = fx.remote.display()
    );
    let out = run(
        &sb,
        &["advance", "D4", "--to", "done", "--json"],
        &env(&sb, "ff", &[("ORCH_MERGE_CMD", forge)]),
    )
    .expect(12);
    let tip = fx.remote_ref("main");
    let message = out.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains(&format!("main is now {}", &tip[..10])),
        "{message}"
    );
    assert_eq!(sb.stage_of("D4").0, "deploy");
    assert_eq!(alerts_of(&sb).len(), 1);

    let _ = to_deploy(&sb, &fx, &env(&sb, "ff", &[]), "D5", &[("e.txt", "e\n")]);
    let delete = format!(
        "git --git-dir='{}' update-ref -d refs/heads/main",
        fx.remote.display()
    );
    let out = run(
        &sb,
        &["advance", "D5", "--to", "done", "--json"],
        &env(&sb, "ff", &[("ORCH_MERGE_CMD", delete)]),
    )
    .expect(12);
    let message = out.json()["message"].as_str().unwrap().to_string();
    assert!(message.contains("is gone from the remote"), "{message}");
    assert_eq!(sb.stage_of("D5").0, "deploy");
    assert_eq!(alerts_of(&sb).len(), 2);
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM edge_budgets WHERE task_id = 'D5' AND infra_attempts > 0"),
        "0"
    );
}

/// Acceptance 3, second half (and the old `merge-base --is-ancestor` proof's hole): a merge
/// command that merges H onto a target it moved itself lands a merge commit nobody tested; H is
/// an ancestor of the target, but that is no proof: exit 12, one alert naming what landed.
#[test]
fn a_merge_onto_a_moved_target_is_no_proof_though_the_head_is_an_ancestor() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let head = to_deploy(&sb, &fx, &env(&sb, "ff", &[]), "D2", &[("d.txt", "d\n")]);
    let other = side_commits(&fx, 1).remove(0);
    // A forge without "require branches to be up to date": another merge lands first, then a
    // merge commit of that and H with git's merged tree.
    let forge = format!(
        "r='{r}'; g() {{ git --git-dir=\"$r\" \"$@\"; }}; g update-ref refs/heads/main {other} && t=$(g merge-tree --write-tree main \"$ORCH_MERGE_HEAD\") && m=$(g commit-tree \"$t\" -p main -p \"$ORCH_MERGE_HEAD\" -m merge) && g update-ref refs/heads/main \"$m\"",
        r = fx.remote.display()
    );
    let env = env(&sb, "ff", &[("ORCH_MERGE_CMD", forge)]);
    let out = run(&sb, &["advance", "D2", "--to", "done", "--json"], &env).expect(12);
    let landed = fx.remote_ref("main");
    assert_eq!(
        git(&fx.remote, &["merge-base", "--is-ancestor", &head, &landed]),
        "",
        "H is in the target: the old proof would have said done"
    );
    let message = out.json()["message"].as_str().unwrap().to_string();
    assert!(
        message.contains(&format!("main is now {}", &landed[..10]))
            && message.contains("the first commit above")
            && message.contains(&other[..10]),
        "{message}"
    );
    assert_eq!(sb.stage_of("D2").0, "deploy");
    let alerts = alerts_of(&sb);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].contains(&landed[..10]), "{}", alerts[0]);
}

/// The old proof accepted any target that contained H: a forge that merges without a base
/// (a merge commit of whatever main is and H) landed the merged tree of two tasks that no one
/// tested. Now the target moving from T re-runs the merge sub-gate first, so what the forge
/// builds is the tree the re-test ran on.
#[test]
fn a_forge_merge_commit_on_a_moved_target_is_retested_first() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let forge = format!(
        "r='{r}'; g() {{ git --git-dir=\"$r\" \"$@\"; }}; t=$(g merge-tree --write-tree main \"$ORCH_MERGE_HEAD\") && m=$(g commit-tree \"$t\" -p main -p \"$ORCH_MERGE_HEAD\" -m merge) && g update-ref refs/heads/main \"$m\"",
        r = fx.remote.display()
    );
    let env = env(&sb, "ff", &[("ORCH_MERGE_CMD", forge)]);
    let since = fx.target_history().len();
    to_deploy(&sb, &fx, &env, "B1", &[("b1.txt", "1\n")]);
    to_deploy(&sb, &fx, &env, "B2", &[("b2.txt", "2\n")]);
    run(&sb, &["advance", "B1", "--to", "done"], &env).expect(0);
    let out = run(&sb, &["advance", "B2", "--to", "done", "--json"], &env).expect(0);
    assert_eq!(sb.stage_of("B2").0, "done", "{}", out.stdout);
    assert_eq!(
        sb.sqlite(
            "SELECT count(*) FROM gate_events WHERE task_id = 'B2' AND edge = 'deploy->done' AND gate = 'merge' AND outcome = 'passed'"
        ),
        "1",
        "merge-verify re-ran the merge sub-gate"
    );
    assert_only_tested_trees_landed(&sb, &fx, since, &["B1", "B2"]);
}

/// The proof accepts what the shipped script lands in each of its styles: a fast-forward, a
/// merge commit and a squash, each with the tested tree.
#[test]
fn the_proof_accepts_a_fast_forward_a_merge_commit_and_a_squash() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let since = fx.target_history().len();
    let mut tasks = Vec::new();
    for (i, style) in ["ff", "merge", "squash"].into_iter().enumerate() {
        let id = format!("S{i}");
        let env = env(&sb, style, &[]);
        let head = to_deploy(&sb, &fx, &env, &id, &[(&format!("{style}.txt"), "s\n")]);
        let out = run(&sb, &["advance", &id, "--to", "done", "--json"], &env).expect(0);
        assert_eq!(sb.stage_of(&id).0, "done", "{style}");
        let main = fx.remote_ref("main");
        assert_eq!(tree(&fx, &main), tree(&fx, &head), "{style}");
        let detail = out.json()["gates"][0]["detail"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            detail.contains(&format!("into main as {}; proof holds", &main[..10])),
            "{style}: {detail}"
        );
        tasks.push(id);
    }
    let tasks: Vec<&str> = tasks.iter().map(String::as_str).collect();
    assert_only_tested_trees_landed(&sb, &fx, since, &tasks);
}

/// A merge command that fails because the target moved from T (the forge's compare-and-swap
/// refused) re-runs the merge sub-gate in the same step — rebase, publish, re-test — and merges
/// that: done, and the edge's infra budget untouched.
#[test]
fn a_merge_command_failing_on_a_moved_target_reruns_the_subgate_without_spending_budget() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let other = side_commits(&fx, 1).remove(0);
    let moved = sb.path().join("moved");
    let script = merge_script("ff");
    // The first time, another merge lands just before the forge's compare-and-swap.
    let forge = format!(
        "if [ ! -e '{m}' ]; then touch '{m}'; git --git-dir='{r}' update-ref refs/heads/main {other}; fi; echo \"$ORCH_MERGE_BASE\" >> '{m}.bases'; {script}",
        m = moved.display(),
        r = fx.remote.display()
    );
    let env = env(&sb, "ff", &[("ORCH_MERGE_CMD", forge)]);
    let first = to_deploy(&sb, &fx, &env, "R1", &[("r.txt", "r\n")]);
    let base = fx.remote_ref("main");
    let since = fx.target_history().len();
    let out = run(&sb, &["advance", "R1", "--to", "done", "--json"], &env).expect(0);
    assert_eq!(sb.stage_of("R1").0, "done", "{}", out.stderr);
    let bases = std::fs::read_to_string(format!("{}.bases", moved.display())).unwrap();
    assert_eq!(
        bases,
        format!("{base}\n{other}\n"),
        "merged from T, then from the moved tip"
    );
    let head = fx.remote_ref("main");
    assert_ne!(
        head, first,
        "the re-run rebased the head onto the moved target"
    );
    assert_eq!(git(&fx.remote, &["rev-parse", &format!("{head}^")]), other);
    assert_eq!(fx.remote_ref("refs/heads/feat/r1"), head, "published");
    assert_eq!(
        sb.sqlite("SELECT head_sha || ' ' || target_sha || ' ' || how FROM verdicts WHERE task_id = 'R1' ORDER BY id DESC LIMIT 1"),
        format!("{head} {other} tested")
    );
    assert_eq!(
        sb.sqlite("SELECT coalesce(sum(infra_attempts), 0) || ' ' || coalesce(sum(deferrals), 0) FROM edge_budgets WHERE task_id = 'R1'"),
        "0 0"
    );
    assert_eq!(sb.sqlite("SELECT count(*) FROM requeues"), "0");
    // The other merge is not ours to judge: from it on, only tested trees.
    let history = fx.target_history();
    assert_eq!(history[since..], [other.clone(), head.clone()]);
    assert!(tested_trees(&sb, &["R1"]).contains(&tree(&fx, &head)));
    fx.assert_no_target_push();
}

/// The target moving again while the re-run re-tested: the step defers like lock-busy (no infra
/// budget, "the target keeps moving"); the next step re-runs and merges.
#[test]
fn a_target_that_keeps_moving_defers_the_step() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let others = side_commits(&fx, 2);
    let count = sb.path().join("forge-runs");
    let script = merge_script("ff");
    let forge = format!(
        "n=$(($(cat '{c}' 2>/dev/null || echo 0) + 1)); echo $n > '{c}'; case $n in 1) git --git-dir='{r}' update-ref refs/heads/main {o1};; 2) git --git-dir='{r}' update-ref refs/heads/main {o2};; esac; {script}",
        c = count.display(),
        r = fx.remote.display(),
        o1 = others[0],
        o2 = others[1]
    );
    let env = env(&sb, "ff", &[("ORCH_MERGE_CMD", forge)]);
    to_deploy(&sb, &fx, &env, "M1", &[("m.txt", "m\n")]);
    let out = run(&sb, &["advance", "M1", "--to", "done", "--json"], &env).expect(11);
    let json = out.json();
    assert_eq!(json["requeue"]["outcome"], "deferred", "{json}");
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("the target keeps moving"),
        "{json}"
    );
    assert_eq!(sb.stage_of("M1").0, "deploy");
    assert_eq!(
        sb.sqlite("SELECT coalesce(sum(infra_attempts), 0) FROM edge_budgets WHERE task_id = 'M1'"),
        "0"
    );
    // The next step: the target is still the second move; re-run once more, then merge.
    run(&sb, &["advance", "M1", "--to", "done", "--force"], &env).expect(0);
    assert_eq!(sb.stage_of("M1").0, "done");
    let main = fx.remote_ref("main");
    assert_eq!(
        git(&fx.remote, &["rev-parse", &format!("{main}^")]),
        others[1]
    );
    assert!(tested_trees(&sb, &["M1"]).contains(&tree(&fx, &main)));
    assert_eq!(sb.sqlite("SELECT count(*) FROM holds"), "0");
}

/// A head with no commits over the target is red "nothing to merge": in the merge sub-gate
/// after the rebase, and in merge-verify (a verdict whose head has nothing over its target).
#[test]
fn a_head_with_no_commits_over_the_target_is_red_nothing_to_merge() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let env = env(&sb, "ff", &[]);
    // A branch that is main itself.
    git(
        &fx.work,
        &["push", "--quiet", "origin", "main:refs/heads/feat/empty"],
    );
    fx.add_task(&sb, "E1", "feat/empty", "deploy-staging");
    let out = run(&sb, &["advance", "E1", "--to", "deploy"], &env).expect(10);
    assert!(
        out.stdout
            .contains("gate merge red: nothing to merge: feat/empty has no commits over main"),
        "{}",
        out.stdout
    );
    assert_eq!(sb.stage_of("E1").0, "development");
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM verdicts WHERE task_id = 'E1'"),
        "0"
    );

    // merge-verify: a verdict whose head is its target.
    to_deploy(&sb, &fx, &env, "E2", &[("e.txt", "e\n")]);
    sb.sqlite("UPDATE verdicts SET head_sha = target_sha WHERE task_id = 'E2'");
    let before = fx.target_history();
    let out = run(&sb, &["advance", "E2", "--to", "done"], &env).expect(10);
    assert!(
        out.stdout
            .contains("gate merge-verify red: nothing to merge"),
        "{}",
        out.stdout
    );
    assert_eq!(sb.stage_of("E2").0, "development");
    assert!(last_reason(&sb, "E2").contains("nothing to merge"));
    assert_eq!(fx.target_history(), before, "nothing merged");
}

/// A reused verdict keeps the original's `how` and run: a re-queued edge whose merge gate finds
/// its stored verdict for the same commits neither looks "skipped" nor forgets the run it rests on.
#[test]
fn a_reused_verdict_keeps_how_it_was_reached_and_its_run() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let marker = sb.path().join("coverage-ran");
    // The coverage command writes no report the first time (infra: re-queued), a full one then.
    let coverage = format!(
        "if [ -e '{m}' ]; then echo '{{\"totals\": {{\"percent_covered\": 100.0}}}}' > \"$ORCH_COVERAGE_REPORT\"; else touch '{m}'; fi",
        m = marker.display()
    );
    let env = env(&sb, "ff", &[("ORCH_COVERAGE_CMD", coverage)]);
    fx.commit_branch("feat/u", "main", &[("u.txt", "u\n")], "u");
    fx.add_task(&sb, "U", "feat/u", "deploy-staging");
    let first = run(&sb, &["advance", "U", "--to", "deploy", "--json"], &env)
        .expect(11)
        .json();
    let tested = merge_of(&first);
    assert_eq!(tested["how"], "tested", "{first}");
    let run_id = tested["run_id"].as_i64().unwrap();
    let again = run(
        &sb,
        &["advance", "U", "--to", "deploy", "--force", "--json"],
        &env,
    )
    .expect(0)
    .json();
    let reused = merge_of(&again);
    assert_eq!(reused["outcome"], "skipped", "{again}");
    assert_eq!(reused["how"], "tested", "{again}");
    assert_eq!(reused["run_id"], run_id, "{again}");
    assert!(
        reused["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("(tested in run {run_id})")),
        "{again}"
    );
    assert_eq!(
        sb.sqlite("SELECT how || ' ' || run_id FROM verdicts WHERE task_id = 'U' ORDER BY id DESC LIMIT 1"),
        format!("tested {run_id}")
    );
    run(&sb, &["advance", "U", "--to", "done"], &env).expect(0);
    assert_eq!(sb.stage_of("U").0, "done");
}

/// Acceptance 4: orch killed right after the merge command succeeded; another task merges on
/// top; the first task's edge runs again: done (the proof holds), and its merge command ran once.
#[cfg(feature = "fault-injection")]
#[test]
fn a_crash_after_the_merge_then_another_merge_on_top_still_proves_done_without_a_second_merge() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let marker = sb.path().join("merged");
    let forge = format!(
        "echo \"$ORCH_TASK_ID\" >> '{}'; {}",
        marker.display(),
        merge_script("ff")
    );
    let env = env(&sb, "ff", &[("ORCH_MERGE_CMD", forge)]);
    let since = fx.target_history().len();
    let first = to_deploy(&sb, &fx, &env, "F1", &[("f1.txt", "1\n")]);
    fx.commit_branch("feat/f2", "main", &[("f2.txt", "2\n")], "F2");
    fx.add_task(&sb, "F2", "feat/f2", "deploy-staging");

    let mut crash = env.clone();
    crash.push((
        "FAULT_INJECT_AT".into(),
        "merge_verify.after_merge_cmd".into(),
    ));
    let out = run(&sb, &["advance", "F1", "--to", "done"], &crash);
    assert_eq!(out.code, 128 + 6, "{}", out.stderr);
    assert_eq!(
        fx.remote_ref("main"),
        first,
        "the merge landed before the crash"
    );
    assert_eq!(sb.stage_of("F1").0, "deploy");

    // Another task merges on top (taking over the dead holder's merge lock).
    run(&sb, &["advance", "F2", "--to", "deploy"], &env).expect(0);
    run(&sb, &["advance", "F2", "--to", "done"], &env).expect(0);
    assert_ne!(fx.remote_ref("main"), first);

    let out = run(&sb, &["advance", "F1", "--to", "done", "--json"], &env).expect(0);
    assert_eq!(sb.stage_of("F1").0, "done");
    let detail = out.json()["gates"][0]["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.contains(&format!("is in main as {}", &first[..10])),
        "{detail}"
    );
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "F1\nF2\n",
        "each merge command ran once"
    );
    assert_only_tested_trees_landed(&sb, &fx, since, &["F1", "F2"]);
}

/// Merge-verify takes the repository's merge lock: while another task's re-test holds it, the
/// step defers (lock-busy, no infra budget) and nothing merges.
#[test]
fn merge_verify_defers_while_another_task_holds_the_merge_lock() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let env_a = env(&sb, "ff", &[]);
    to_deploy(&sb, &fx, &env_a, "L1", &[("l1.txt", "1\n")]);
    fx.commit_branch("feat/l2", "main", &[("l2.txt", "2\n")], "L2");
    fx.add_task(&sb, "L2", "feat/l2", "deploy-staging");
    let (started, release) = (sb.path().join("started"), sb.path().join("release"));
    let blocking = format!(
        "touch '{}'; while [ ! -f '{}' ]; do sleep 0.05; done; {TREE_SUITE}",
        started.display(),
        release.display()
    );
    let env_b = env(&sb, "ff", &[("ORCH_MERGE_RETEST_CMD", blocking)]);
    let mut holder = sb.orch();
    holder.envs(env_b.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut holder = holder
        .args(["advance", "L2", "--to", "deploy"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    crate::support::wait_until("L2's re-test to start", Duration::from_secs(60), || {
        started.exists()
    });
    let before = fx.target_history();
    let out = run(&sb, &["advance", "L1", "--to", "done", "--json"], &env_a);
    let after = fx.target_history();
    // Let the holder finish before anything is asserted: a failing test leaves no orch behind.
    std::fs::write(&release, "").unwrap();
    assert!(holder.wait().unwrap().success());
    let json = out.expect(11).json();
    assert_eq!(json["gates"][0]["gate"], "merge-verify", "{json}");
    assert_eq!(json["gates"][0]["outcome"], "lock-busy", "{json}");
    assert!(
        json["gates"][0]["lock_holder"]
            .as_str()
            .unwrap()
            .contains("task L2"),
        "{json}"
    );
    assert_eq!(json["requeue"]["outcome"], "deferred", "{json}");
    assert_eq!(after, before, "nothing merged without the lock");
    assert_eq!(sb.stage_of("L1").0, "deploy");
    // The lock is free: the deferred edge runs (the target did not move: L2 is only at deploy).
    run(&sb, &["advance", "L1", "--to", "done", "--force"], &env_a).expect(0);
    assert_eq!(sb.stage_of("L1").0, "done");
    assert_eq!(
        sb.sqlite("SELECT coalesce(sum(infra_attempts), 0) FROM edge_budgets WHERE task_id = 'L1'"),
        "0"
    );
}

/// An infra timeout of merge-verify's re-run of the sub-gate is the `deploy → done` edge's
/// re-queue (the task stays at `deploy`); cron's `advance --next` alone then finishes it.
#[test]
fn a_timed_out_rerun_requeues_the_done_edge_and_cron_finishes_it() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let hang = sb.path().join("hang");
    let suite = format!(
        "if [ -e '{}' ]; then sleep 600; fi; {TREE_SUITE}",
        hang.display()
    );
    let env = env(
        &sb,
        "ff",
        &[
            ("ORCH_MERGE_RETEST_CMD", suite),
            ("ORCH_MERGE_RETEST_TIMEOUT_S", "20".into()),
        ],
    );
    to_deploy(&sb, &fx, &env, "T1", &[("t.txt", "t\n")]);
    fx.advance_remote_main(&[("moved.txt", "m\n")], "another merge");
    std::fs::write(&hang, "").unwrap();
    let before = fx.target_history();
    let json = run(&sb, &["advance", "T1", "--to", "done", "--json"], &env)
        .expect(11)
        .json();
    assert_eq!(json["gates"][0]["gate"], "merge", "{json}");
    assert_eq!(json["gates"][0]["outcome"], "timeout", "{json}");
    assert_eq!(json["requeue"]["outcome"], "infra-requeued", "{json}");
    assert_eq!(sb.stage_of("T1").0, "deploy");
    assert_eq!(
        sb.sqlite("SELECT from_stage || ' ' || to_stage FROM requeues WHERE task_id = 'T1'"),
        "deploy done"
    );
    assert_eq!(
        sb.sqlite("SELECT edge || ' ' || infra_attempts FROM edge_budgets WHERE task_id = 'T1'"),
        "deploy->done 1"
    );
    assert_eq!(fx.target_history(), before, "nothing merged");

    std::fs::remove_file(&hang).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while sb.stage_of("T1").0 != "done" {
        assert!(Instant::now() < deadline, "cron never finished T1");
        let out = run(&sb, &["advance", "--next"], &env);
        assert!([0, 11].contains(&out.code), "{out:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let main = fx.remote_ref("main");
    assert!(tested_trees(&sb, &["T1"]).contains(&tree(&fx, &main)));
}
