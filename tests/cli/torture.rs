//! The torture test: for a bounded time, random concurrent `advance`, `advance --next`,
//! `merge-gate retest` (tiny suites that pass, fail or hang), `reap`, `task release` and `kill -9`
//! of random orch processes, on a handful of tasks in two repositories with bare remotes. At the
//! end, `orch reap` and the invariant checker. `ORCH_TORTURE_SECS` is not an orch key: the test
//! reads `TORTURE_SECS` (default 45) to run longer locally.

use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::invariants;
use crate::support::{Fixture, Sandbox};

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

const TASKS: [(&str, usize); 6] = [
    ("A1", 0),
    ("A2", 0),
    ("A3", 0),
    ("B1", 1),
    ("B2", 1),
    ("B3", 1),
];

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
    let fixtures = [Fixture::named(&sb, "a-"), Fixture::named(&sb, "b-")];
    for (id, repo) in TASKS {
        let fx = &fixtures[repo];
        fx.commit_branch(
            &format!("feat/{id}"),
            "main",
            &[(&format!("{id}.txt"), "x\n")],
            id,
        );
        fx.add_task_in(
            &sb,
            if repo == 0 { "repo-a" } else { "repo-b" },
            id,
            &format!("feat/{id}"),
            "deploy-staging",
        );
    }
    // The suite: passes, fails or hangs at random; the forge merges only fast-forwards.
    let suite = "python3 -c \"import random, time, sys; r = random.random(); time.sleep(r * 0.3); \
                 time.sleep(30) if r > 0.85 else None; sys.exit(0 if r < 0.6 else 1)\"";
    let merge = |fx: &Fixture| {
        format!(
            "old=$(git --git-dir='{r}' rev-parse main) && git --git-dir='{r}' merge-base --is-ancestor \"$old\" \"$ORCH_MERGE_HEAD\" && git --git-dir='{r}' update-ref refs/heads/main \"$ORCH_MERGE_HEAD\" \"$old\"",
            r = fx.remote.display()
        )
    };
    let envs: Vec<Vec<(String, String)>> = fixtures
        .iter()
        .map(|fx| {
            vec![
                ("ORCH_MERGE_RETEST_CMD".to_string(), suite.to_string()),
                ("ORCH_MERGE_RETEST_TIMEOUT_S".into(), "2".into()),
                ("ORCH_COVERAGE_CMD".into(), String::new()),
                ("ORCH_KILL_GRACE_S".into(), "1".into()),
                ("ORCH_MERGE_INFRA_RETRY_BACKOFF_S".into(), "1".into()),
                ("ORCH_MERGE_DEFER_DELAY_S".into(), "1".into()),
                ("ORCH_MERGE_DEFER_MAX_ATTEMPTS".into(), "100".into()),
                ("ORCH_MAX_CONCURRENT_RUNS".into(), "3".into()),
                ("ORCH_MERGE_CMD".into(), merge(fx)),
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
            std::thread::spawn(move || {
                let mut rng = Rng(seed.wrapping_add(w.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1);
                while Instant::now() < deadline {
                    let (id, repo) = TASKS[rng.below(TASKS.len() as u64) as usize];
                    let stage = sb.sqlite(&format!("SELECT stage FROM tasks WHERE id = '{id}'"));
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
                            id.into(),
                            "--to".into(),
                            next.into(),
                            "--expect".into(),
                            stage.clone(),
                        ],
                        4 => vec!["advance".into(), "--next".into()],
                        5 | 6 => vec!["merge-gate".into(), "retest".into(), id.into()],
                        7 => vec!["reap".into()],
                        8 => vec!["task".into(), "release".into(), id.into()],
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
    invariants::check(&sb, &[&fixtures[0], &fixtures[1]]);
    let summary = sb.sqlite("SELECT group_concat(stage || ':' || n, ' ') FROM (SELECT stage, count(*) n FROM tasks GROUP BY stage)");
    let runs = sb.sqlite("SELECT count(*) FROM runs");
    eprintln!("torture: stages {summary}; {runs} runs");
}
