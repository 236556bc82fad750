//! The invariant checker the crash and torture tests end with: everything orch promises about the
//! database, the processes and the remotes, checked from the outside.

use std::collections::HashSet;

use crate::support::{git, pid_alive, Fixture, Sandbox};

/// Panics with every violation found.
#[track_caller]
pub(crate) fn check(sb: &Sandbox, fixtures: &[&Fixture]) {
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

    // done only with proof of merge of the re-tested head in the remote.
    for id in q("SELECT id FROM tasks WHERE stage = 'done'").lines() {
        let head = q(&format!(
            "SELECT head_sha FROM verdicts WHERE task_id = '{id}' AND gate = 'merge' ORDER BY id DESC LIMIT 1"
        ));
        let proven = !head.is_empty()
            && fixtures.iter().any(|fx| {
                std::process::Command::new("git")
                    .arg("-C")
                    .arg(&fx.remote)
                    .args(["merge-base", "--is-ancestor", &head, "main"])
                    .status()
                    .is_ok_and(|s| s.success())
            });
        if !proven {
            violations.push(format!(
                "task {id} is done but its head {head:?} is not in any remote's main"
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
    let transitions = q("SELECT count(*) FROM transitions");
    if counter("transitions.total") != transitions {
        violations.push(format!(
            "transitions.total {} ≠ {transitions} transitions",
            counter("transitions.total")
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

    assert!(
        violations.is_empty(),
        "invariants violated:\n  {}",
        violations.join("\n  ")
    );
}
