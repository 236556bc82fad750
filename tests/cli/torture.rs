//! The torture test: for a bounded time, random concurrent `advance`, `advance --next`,
//! `merge-gate retest` (tiny suites that pass, fail or hang), `reap`, `task release` and `kill -9`
//! of random orch processes, on three tasks at a time in each of two repositories with bare
//! remotes, all walking `deploy-staging → deploy → done` and merging concurrently through the
//! shipped forge script (merge commits in one repository, squashes in the other). A task that
//! reaches `done` (or is held) is followed by a new one on a new branch commit, so several
//! merges land per repository. At the end, `orch reap`, the invariant checker, and the bors
//! rule: every commit a target pointed at is a tree a passing re-test printed. `ORCH_TORTURE_SECS`
//! is not an orch key: the test reads `TORTURE_SECS` (default 45) to run longer locally.

use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::invariants;
use crate::support::{merge_script, Fixture, Sandbox};

/// A tiny deterministic PRNG (xorshift), seeded per worker: no dependency, reproducible by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The task slots and their repository (an index into `REPOS`): each slot holds one task at a
/// time.
const SLOTS: [(&str, usize); 6] = [
    ("A1", 0),
    ("A2", 0),
    ("A3", 0),
    ("B1", 1),
    ("B2", 1),
    ("B3", 1),
];

/// How long a task stays at `deploy` before the torture tries `deploy → done`.
const LINGER_MS: i64 = 2_000;

/// The repositories and the `MERGE_STYLE` their forge merges with.
const REPOS: [(&str, &str); 2] = [("repo-a", "merge"), ("repo-b", "squash")];

#[test]
fn random_concurrent_steps_and_kills_break_no_invariant() {
    // Knobs (not orch keys, only this test's): `TORTURE_SECS` (default 45) runs longer or shorter,
    // `TORTURE_SEED` reproduces a run. The race test in foundation.rs has `RACE_ROUNDS`.
    let secs: u64 = std::env::var("TORTURE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(45);
    let seed: u64 = std::env::var("TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| (std::process::id() as u64).wrapping_mul(2_654_435_761) + 1);
    eprintln!("torture: {secs}s, seed {seed}");
    let sb = Arc::new(Sandbox::new());
    let fixtures = Arc::new([Fixture::named(&sb, "a-"), Fixture::named(&sb, "b-")]);
    for (id, repo) in SLOTS {
        let fx = &fixtures[repo];
        fx.commit_branch(
            &format!("feat/{id}"),
            "main",
            &[(&format!("{id}.txt"), "x\n")],
            id,
        );
        fx.add_task_in(
            &sb,
            REPOS[repo].0,
            id,
            &format!("feat/{id}"),
            "deploy-staging",
        );
    }
    // The task each slot works on, and how many it has had.
    let slots: Arc<Mutex<Vec<(String, u32)>>> = Arc::new(Mutex::new(
        SLOTS.iter().map(|(id, _)| (id.to_string(), 1)).collect(),
    ));
    // The suite: prints the tree it tests (so the run's captured output records it), then
    // passes, fails or hangs at random.
    let suite =
        "echo \"tree=$(git rev-parse 'HEAD^{tree}')\" && python3 -c \"import random, time, sys; \
                 r = random.random(); time.sleep(r * 0.3); time.sleep(30) if r > 0.85 else None; \
                 sys.exit(0 if r < 0.6 else 1)\"";
    // The forge: the shipped bare-repository script, which moves main only from exactly the
    // base orch re-tested on.
    let envs: Vec<Vec<(String, String)>> = REPOS
        .iter()
        .map(|(_, style)| {
            vec![
                ("ORCH_MERGE_RETEST_CMD".to_string(), suite.to_string()),
                ("ORCH_MERGE_RETEST_TIMEOUT_S".into(), "2".into()),
                ("ORCH_COVERAGE_CMD".into(), String::new()),
                ("ORCH_KILL_GRACE_S".into(), "1".into()),
                ("ORCH_MERGE_INFRA_RETRY_BACKOFF_S".into(), "1".into()),
                ("ORCH_MERGE_DEFER_DELAY_S".into(), "1".into()),
                ("ORCH_MERGE_DEFER_MAX_ATTEMPTS".into(), "100".into()),
                ("ORCH_MAX_CONCURRENT_RUNS".into(), "3".into()),
                ("ORCH_MERGE_CMD".into(), merge_script(style)),
                ("ORCH_ALERT_CMD".into(), "cat > /dev/null".into()),
                // Tier 2 stays on: every gate timeout + grace is below the reaper's maximum.
                ("ORCH_REAPER_MAX_RUNNING_S".into(), "60".into()),
                ("ORCH_SECURITY_GATE_TIMEOUT_S".into(), "10".into()),
                ("ORCH_COVERAGE_TIMEOUT_S".into(), "10".into()),
                ("ORCH_IMAGE_FRESHNESS_TIMEOUT_S".into(), "10".into()),
                ("ORCH_MERGE_CMD_TIMEOUT_S".into(), "10".into()),
            ]
        })
        .collect();
    let running: Arc<Mutex<Vec<Child>>> = Arc::new(Mutex::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let workers: Vec<_> = (0..4u64)
        .map(|w| {
            let (sb, running, envs) = (Arc::clone(&sb), Arc::clone(&running), envs.clone());
            let (fixtures, slots) = (Arc::clone(&fixtures), Arc::clone(&slots));
            std::thread::spawn(move || {
                let mut rng = Rng(seed.wrapping_add(w.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
                while Instant::now() < deadline {
                    let slot = rng.below(SLOTS.len() as u64) as usize;
                    let repo = SLOTS[slot].1;
                    let id = slots.lock().unwrap()[slot].0.clone();
                    let row = sb.sqlite(&format!(
                        "SELECT stage, hold_reason IS NOT NULL, \
                                CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) - updated_at \
                           FROM tasks WHERE id = '{id}'"
                    ));
                    let [stage, held, idle_ms]: [&str; 3] = row
                        .split('|')
                        .collect::<Vec<_>>()
                        .try_into()
                        .expect("the slot's task exists");
                    let stage = stage.to_string();
                    if stage == "done" || held == "1" {
                        next_task(&sb, &fixtures[repo], &slots, slot, &id);
                        continue;
                    }
                    // A deploy takes a while before `deploy → done` (as a real one does): the
                    // other tasks of the repository pass `deploy-staging → deploy` meanwhile,
                    // so merges land onto a target that moved since their re-test.
                    if stage == "deploy" && idle_ms.parse::<i64>().unwrap_or(0) < LINGER_MS {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    let next = match stage.as_str() {
                        "development" => "review",
                        "review" => "testing",
                        "testing" => "deploy-staging",
                        "deploy-staging" => "deploy",
                        "deploy" => "done",
                        _ => "deploy",
                    };
                    let args: Vec<String> = match rng.below(10) {
                        0..=3 => vec![
                            "advance".into(),
                            id.clone(),
                            "--to".into(),
                            next.into(),
                            "--expect".into(),
                            stage.clone(),
                        ],
                        4 => vec!["advance".into(), "--next".into()],
                        5 | 6 => vec!["merge-gate".into(), "retest".into(), id.clone()],
                        7 => vec!["reap".into()],
                        8 => vec!["task".into(), "release".into(), id.clone()],
                        _ => {
                            // kill -9 a random orch process of the test.
                            let mut list = running.lock().unwrap();
                            if !list.is_empty() {
                                let i = rng.below(list.len() as u64) as usize;
                                let _ = list[i].kill();
                            }
                            continue;
                        }
                    };
                    let mut cmd = sb.orch();
                    cmd.args(&args)
                        .arg("-q")
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped());
                    for (k, v) in &envs[repo] {
                        cmd.env(k, v);
                    }
                    let child = cmd.spawn().expect("orch starts");
                    let pid = child.id();
                    running.lock().unwrap().push(child);
                    // Wait for our own child without holding the lock across the wait.
                    loop {
                        let mut list = running.lock().unwrap();
                        let Some(pos) = list.iter().position(|c| c.id() == pid) else {
                            break;
                        };
                        match list[pos].try_wait() {
                            Ok(Some(status)) => {
                                let mut child = list.swap_remove(pos);
                                drop(list);
                                // Already reaped by `try_wait` above; this returns at once.
                                let _ = child.wait();
                                let mut stderr = String::new();
                                if let Some(mut e) = child.stderr.take() {
                                    use std::io::Read;
                                    let _ = e.read_to_string(&mut stderr);
                                }
                                let code = status.code();
                                assert!(
                                    !stderr.contains("database is locked")
                                        && code != Some(1)
                                        && code != Some(2),
                                    "orch {args:?} exited {code:?}: {stderr}"
                                );
                                break;
                            }
                            _ => {
                                drop(list);
                                std::thread::sleep(Duration::from_millis(10));
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a worker failed");
    }
    // Let every orphan of a killed orch be found, then check.
    for env in &envs {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        sb.run_env(&["reap"], &env).expect(0);
    }
    let merges = invariants::check_with_tested_trees(
        &sb,
        &[(REPOS[0].0, &fixtures[0]), (REPOS[1].0, &fixtures[1])],
    );
    let summary = sb.sqlite("SELECT group_concat(stage || ':' || n, ' ') FROM (SELECT stage, count(*) n FROM tasks GROUP BY stage)");
    let runs = sb.sqlite("SELECT count(*) FROM runs");
    eprintln!("torture: stages {summary}; {runs} runs; merges per repository {merges:?}");
    // The forge lands only tested trees and refuses the rest, and nothing here is misconfigured:
    // a HOLD for no proof of merge (or a `config` one) is orch judging a good merge wrong.
    let wrong_holds = sb.sqlite(
        "SELECT group_concat(task_id || ': ' || payload, '; ') FROM alerts \
          WHERE kind IN ('no-proof-of-merge', 'config')",
    );
    assert!(
        wrong_holds.is_empty(),
        "seed {seed}: held for no proof or config: {wrong_holds}"
    );
    // Not vacuous: each target moved (a quick local run may be too short to land one).
    if secs >= 30 {
        assert!(
            merges.iter().all(|m| *m >= 1),
            "seed {seed}: a repository saw no merge in {secs}s (merges {merges:?}, stages {summary})"
        );
    }
}

/// Registers the next task of `slot` (its last one, `done_id`, is done or held): a new commit
/// of its own on a new branch, at `deploy-staging` (`task add --stage deploy-staging --force`, a
/// registration orch records).
fn next_task(
    sb: &Sandbox,
    fx: &Fixture,
    slots: &Mutex<Vec<(String, u32)>>,
    slot: usize,
    done_id: &str,
) {
    // The lock is held across the git work: one checkout per fixture, one writer at a time.
    let mut slots = slots.lock().unwrap();
    if slots[slot].0 != done_id {
        return; // another worker got here first
    }
    let (base, repo) = SLOTS[slot];
    let n = slots[slot].1 + 1;
    let id = format!("{base}-{n}");
    let branch = format!("feat/{id}");
    fx.commit_branch(&branch, "main", &[(&format!("{id}.txt"), "x\n")], &id);
    sb.run(&[
        "task",
        "add",
        &id,
        "--repo",
        REPOS[repo].0,
        "--branch",
        &branch,
        "--stage",
        "deploy-staging",
        "--force",
        "--reason",
        "torture: the slot's next task",
    ])
    .expect(0);
    slots[slot] = (id, n);
}
