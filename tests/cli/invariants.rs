//! The invariant checker the crash and torture tests end with: everything orch promises about the
//! database, the processes and the remotes, checked from the outside.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{git, pid_alive, Fixture, Sandbox};

/// Panics with every violation found.
#[track_caller]
pub(crate) fn check(sb: &Sandbox, fixtures: &[&Fixture]) {
    let violations = violations(sb, fixtures);
    assert!(
        violations.is_empty(),
        "invariants violated:\n  {}",
        violations.join("\n  ")
    );
}

/// `check`, and the bors rule (`tested_tree_violations`): panics with every violation of both;
/// returns how many times each target moved.
#[track_caller]
pub(crate) fn check_with_tested_trees(sb: &Sandbox, repos: &[(&str, &Fixture)]) -> Vec<usize> {
    let fixtures: Vec<&Fixture> = repos.iter().map(|(_, fx)| *fx).collect();
    let mut violations = violations(sb, &fixtures);
    let moves = tested_tree_violations(sb, repos, &mut violations);
    assert!(
        violations.is_empty(),
        "invariants violated:\n  {}",
        violations.join("\n  ")
    );
    moves
}

/// Everything `check` finds wrong.
fn violations(sb: &Sandbox, fixtures: &[&Fixture]) -> Vec<String> {
    let mut violations = Vec::new();
    let q = |sql: &str| sb.sqlite(sql);

    if q("PRAGMA integrity_check") != "ok" {
        violations.push(format!("integrity_check: {}", q("PRAGMA integrity_check")));
    }

    // The stage table, as orch itself prints it.
    let doctor = sb.run(&["doctor", "--json"]).json();
    let edges: HashSet<(String, String)> = doctor["stage_transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_string(),
                e["to"].as_str().unwrap().to_string(),
            )
        })
        .collect();

    for task in q("SELECT id || '|' || version FROM tasks").lines() {
        let (id, version) = task.split_once('|').unwrap();
        let version: i64 = version.parse().unwrap();
        let versions: Vec<i64> = q(&format!(
            "SELECT version FROM transitions WHERE task_id = '{id}' ORDER BY id"
        ))
        .lines()
        .map(|v| v.parse().unwrap())
        .collect();
        // A forced registration (`task add --stage S --force`) is version 1's row; otherwise
        // the history starts with the first stage change, version 2.
        let registered = q(&format!(
            "SELECT count(*) FROM transitions WHERE task_id = '{id}' AND from_stage IS NULL"
        )) == "1";
        let expected: Vec<i64> = (if registered { 1 } else { 2 }..=version).collect();
        if versions != expected {
            violations.push(format!(
                "task {id}: transition versions {versions:?}, task version {version}"
            ));
        }
    }
    for row in q(
        "SELECT task_id || '|' || from_stage || '|' || to_stage FROM transitions
          WHERE from_stage IS NOT NULL",
    )
    .lines()
    {
        let parts: Vec<&str> = row.split('|').collect();
        if !edges.contains(&(parts[1].to_string(), parts[2].to_string())) {
            violations.push(format!(
                "task {}: transition {} → {} is not in the table",
                parts[0], parts[1], parts[2]
            ));
        }
    }
    let rollbacks_from_done = q(
        "SELECT count(*) FROM transitions WHERE from_stage = 'done' AND to_stage = 'development'",
    );
    if rollbacks_from_done != "0" {
        violations.push(format!(
            "{rollbacks_from_done} done → development transitions"
        ));
    }

    for row in q("SELECT task_id || '|' || owner_pid FROM transition_lease").lines() {
        let (task, pid) = row.split_once('|').unwrap();
        if !pid_alive(pid.parse().unwrap()) {
            violations.push(format!("task {task}: a lease held by dead pid {pid}"));
        }
    }
    for row in q("SELECT repo || '|' || owner_pid FROM merge_locks").lines() {
        let (repo, pid) = row.split_once('|').unwrap();
        if !pid_alive(pid.parse().unwrap()) {
            violations.push(format!("repo {repo}: a merge lock held by dead pid {pid}"));
        }
    }
    let open = q("SELECT count(*) FROM runs WHERE finished_at IS NULL");
    if open != "0" {
        violations.push(format!("{open} runs rows not finished"));
    }
    let groups: HashSet<i32> = q("SELECT leader_pid FROM runs")
        .lines()
        .map(|p| p.parse().unwrap())
        .collect();
    for pid in std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
    {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let pgid: i32 = fields[2].parse().unwrap_or(0);
        if fields[0] != "Z" && groups.contains(&pgid) && pid_alive(pid) {
            violations.push(format!("process {pid} of run group {pgid} is still alive"));
        }
    }

    // done only with proof of merge: some remote's main holds the re-tested tree just above
    // the base it was tested on.
    for id in q("SELECT id FROM tasks WHERE stage = 'done'").lines() {
        let verdict = q(&format!(
            "SELECT head_sha || '|' || target_sha FROM verdicts WHERE task_id = '{id}' AND gate = 'merge' ORDER BY id DESC LIMIT 1"
        ));
        let proven = verdict.split_once('|').is_some_and(|(head, base)| {
            fixtures
                .iter()
                .any(|fx| target_holds_tree(&fx.remote, head, base))
        });
        if !proven {
            violations.push(format!(
                "task {id} is done but no remote's main holds its re-tested tree (head|base {verdict:?})"
            ));
        }
    }

    // Counters agree with the history they count.
    let counter = |name: &str| {
        let v = q(&format!("SELECT value FROM counters WHERE name = '{name}'"));
        if v.is_empty() {
            "0".to_string()
        } else {
            v
        }
    };
    // `transitions.total` counts stage changes; a registration at a stage (`task add --stage S
    // --force`, version 1's row) is counted by `tasks.added`.
    let transitions = q("SELECT count(*) FROM transitions WHERE from_stage IS NOT NULL");
    if counter("transitions.total") != transitions {
        violations.push(format!(
            "transitions.total {} ≠ {transitions} stage changes",
            counter("transitions.total")
        ));
    }
    let tasks = q("SELECT count(*) FROM tasks");
    if counter("tasks.added") != tasks {
        violations.push(format!(
            "tasks.added {} ≠ {tasks} tasks",
            counter("tasks.added")
        ));
    }
    let rollbacks = q(
        "SELECT count(*) FROM transitions WHERE to_stage = 'development' AND reason LIKE 'gate %'",
    );
    if counter("transitions.rollback") != rollbacks {
        violations.push(format!(
            "transitions.rollback {} ≠ {rollbacks} gate rollbacks",
            counter("transitions.rollback")
        ));
    }
    let requeued = q("SELECT count(*) FROM gate_events WHERE outcome = 'infra-requeued'");
    let requeue_counters =
        q("SELECT ifnull(sum(value), 0) FROM counters WHERE name LIKE 'gates.%.infra_requeued'");
    if requeued != requeue_counters {
        violations.push(format!(
            "infra_requeued counters {requeue_counters} ≠ {requeued} re-queue events"
        ));
    }
    let exhausted = q("SELECT count(*) FROM gate_events WHERE outcome = 'exhausted'");
    let alerts = q("SELECT count(*) FROM alerts WHERE kind = 'infra-exhausted'");
    if exhausted != alerts {
        violations.push(format!(
            "{exhausted} exhausted episodes but {alerts} alerts"
        ));
    }

    for fx in fixtures {
        let log = std::fs::read_to_string(&fx.push_log).unwrap_or_default();
        if log.lines().any(|l| l.ends_with(" refs/heads/main")) {
            violations.push(format!("a push reached main of {}", fx.remote.display()));
        }
        let _ = git(&fx.remote, &["rev-parse", "main"]);
    }
    violations
}

/// git in `dir` with stderr dropped: trimmed stdout, or `None` when it fails (a commit another
/// repository's remote does not have, say).
fn git_quiet(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The proof of merge, from the outside: `base` is on the first-parent chain of the remote's
/// `main`, and one of the first n commits above it on that chain (n: the commits `head` has over
/// `base`, at least one) has `head`'s tree — a fast-forward, a merge commit, a squash or a
/// rebase-merge of `head`, possibly with more merges on top.
fn target_holds_tree(remote: &Path, head: &str, base: &str) -> bool {
    let Some(n) = git_quiet(remote, &["rev-list", "--count", &format!("{base}..{head}")])
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n > 0)
    else {
        return false;
    };
    let (Some(tree), Some(chain)) = (
        git_quiet(remote, &["rev-parse", &format!("{head}^{{tree}}")]),
        git_quiet(
            remote,
            &["log", "--first-parent", "--format=%H %T", "main", "--"],
        ),
    ) else {
        return false;
    };
    // Newest first: the commits above `base` are the ones before it.
    let chain: Vec<(&str, &str)> = chain.lines().filter_map(|l| l.split_once(' ')).collect();
    let Some(at) = chain.iter().position(|(commit, _)| *commit == base) else {
        return false;
    };
    chain[..at].iter().rev().take(n).any(|(_, t)| *t == tree)
}

/// The bors rule, checked from the outside: every commit each repository's target pointed at
/// since the fixture was made (its remote's reflog, `Fixture::target_history`, all but the first
/// entry) has a tree that a passing run of a task of that repository printed as `tree=<sha>` —
/// the suites print `git rev-parse HEAD^{tree}` of what they test, and the trees are read back
/// through `orch run show N --json`. `repos` pairs each registered repository with its fixture.
/// Appends each violation; returns how many times each target moved.
fn tested_tree_violations(
    sb: &Sandbox,
    repos: &[(&str, &Fixture)],
    violations: &mut Vec<String>,
) -> Vec<usize> {
    let mut moves = Vec::new();
    for (repo, fx) in repos {
        let mut tested = HashSet::new();
        let runs = sb.sqlite(&format!(
            "SELECT r.id FROM runs r JOIN tasks t ON t.id = r.task_id WHERE t.repo = '{repo}' ORDER BY r.id"
        ));
        for run in runs.lines() {
            let shown = sb.run(&["run", "show", run, "--json"]).expect(0).json();
            if shown["outcome"] != "passed" {
                continue;
            }
            let output = shown["output"].as_str().unwrap_or("");
            tested.extend(
                output
                    .lines()
                    .filter_map(|l| l.strip_prefix("tree="))
                    .map(str::to_string),
            );
        }
        let history = fx.target_history();
        moves.push(history.len().saturating_sub(1));
        for commit in history.iter().skip(1) {
            let tree = git(&fx.remote, &["rev-parse", &format!("{commit}^{{tree}}")]);
            if !tested.contains(&tree) {
                let what = git(&fx.remote, &["log", "-1", "--format=%p → %s", commit, "--"]);
                violations.push(format!(
                    "{repo}: main pointed at {commit} (tree {tree}, parents {what}), a tree no passing run tested"
                ));
            }
        }
    }
    moves
}
