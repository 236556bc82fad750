//! `orch reap`: recovery from dead owners on real process trees, a real git fixture and planted
//! `runs` rows — the signalling rule, finish-row-wins under concurrent reapers, dry runs that
//! write nothing, and the reaper's own bookkeeping.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use orch::host;

use crate::support::{
    git, pid_alive, pid_start_time, starved_suite, wait_until, worker_pids, Fixture, Out, Sandbox,
};

const DEADLINE: Duration = Duration::from_secs(120);

/// Keys of a merge gate whose suite hangs (no timeout within the test) and whose lease is not
/// renewed while the test looks at the database; consistent with the configuration invariants.
fn hanging_env(cmd: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ORCH_MERGE_RETEST_CMD", cmd.to_string()),
        ("ORCH_MERGE_RETEST_TIMEOUT_S", "600".into()),
        ("ORCH_KILL_GRACE_S", "2".into()),
        ("ORCH_MERGE_INFRA_RETRY_BACKOFF_S", "60".into()),
        ("ORCH_MERGE_DEFER_DELAY_S", "1".into()),
        ("ORCH_MERGE_DEFER_MAX_ATTEMPTS", "1000".into()),
        ("ORCH_TRANSITION_LEASE_RENEW_S", "1000".into()),
        ("ORCH_TRANSITION_LEASE_TTL_S", "3000".into()),
    ]
}

fn run(sb: &Sandbox, args: &[&str], env: &[(&'static str, String)]) -> Out {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    sb.run_env(args, &env)
}

fn spawn_orch(sb: &Sandbox, args: &[&str], env: &[(&'static str, String)]) -> Child {
    let mut cmd = sb.orch();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("orch starts")
}

/// A live `sleep` leading a process group of its own (pgid = pid); killed when dropped.
struct Sleeper {
    child: Child,
    pub pid: i32,
    pub start: u64,
}

impl Sleeper {
    fn new() -> Sleeper {
        use std::os::unix::process::CommandExt;
        let child = Command::new("sleep")
            .arg("1000")
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .expect("sleep starts");
        let pid = child.id() as i32;
        let start = pid_start_time(pid);
        Sleeper { child, pid, start }
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A pid and start time that no living process has: a process that has exited.
pub(crate) fn dead_process() -> (i32, u64) {
    let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = child.id() as i32;
    let start = pid_start_time(pid);
    child.kill().unwrap();
    child.wait().unwrap();
    (pid, start)
}

/// Where a planted run says it ran.
pub(crate) struct Place {
    host: String,
    boot: String,
    ns: String,
    /// Wall ms and `CLOCK_BOOTTIME` ms of its start.
    started_at: i64,
    started_boot_ms: i64,
}

impl Place {
    pub(crate) fn here() -> Place {
        Place {
            host: host::host_name().into(),
            boot: host::boot_id().into(),
            ns: host::pid_namespace().into(),
            started_at: host::wall_ms(),
            started_boot_ms: host::boot_ms(),
        }
    }
}

/// Inserts an unfinished `runs` row by SQL; returns its id.
pub(crate) fn plant_run(
    sb: &Sandbox,
    task: Option<&str>,
    owner: (i32, u64),
    leader: (i32, u64),
    at: &Place,
) -> i64 {
    let task = task.map_or("NULL".to_string(), |t| format!("'{t}'"));
    sb.sqlite(&format!(
        "INSERT INTO runs (task_id, gate, command, owner_pid, owner_pid_start, leader_pid,
             leader_pid_start, boot_id, pid_ns, host, started_at, started_boot_ms, timeout_ms)
         VALUES ({task}, 'merge', 'planted', {}, {}, {}, {}, '{}', '{}', '{}', {}, {}, 600000);
         SELECT last_insert_rowid();",
        owner.0,
        owner.1,
        leader.0,
        leader.1,
        at.boot,
        at.ns,
        at.host,
        at.started_at,
        at.started_boot_ms
    ))
    .parse()
    .unwrap()
}

fn run_outcome(sb: &Sandbox, id: i64) -> String {
    sb.sqlite(&format!(
        "SELECT coalesce(outcome, 'open') FROM runs WHERE id = {id}"
    ))
}

fn counter(sb: &Sandbox, name: &str) -> i64 {
    sb.sqlite(&format!(
        "SELECT coalesce((SELECT value FROM counters WHERE name = '{name}'), 0)"
    ))
    .parse()
    .unwrap()
}

/// Everything "writes nothing" covers here: the domain tables, plus the reaper's own rows, the
/// counters, merge locks and re-queues.
fn full_dump(sb: &Sandbox) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}",
        sb.dump(),
        sb.sqlite("SELECT * FROM merge_locks"),
        sb.sqlite("SELECT * FROM requeues"),
        sb.sqlite("SELECT * FROM reaper_runs"),
        sb.sqlite("SELECT * FROM counters ORDER BY name")
    )
}

#[test]
fn a_kill_9_orphan_suite_is_killed_whole_its_run_reaped_and_requeued_as_infra() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/t", "main", &[("t.txt", "t\n")], "t");
    fx.add_task(&sb, "T", "feat/t", "deploy-staging");
    let env = hanging_env(&starved_suite(sb.path()));

    let mut owner = spawn_orch(&sb, &["merge-gate", "retest", "T"], &env);
    wait_until("the suite's workers to start", DEADLINE, || {
        worker_pids(sb.path()).len() == 3
    });
    let leader: i32 = sb.sqlite("SELECT leader_pid FROM runs").parse().unwrap();
    let mut group = worker_pids(sb.path());
    group.push(leader);
    owner.kill().unwrap(); // SIGKILL: nothing in orch can clean up.
    owner.wait().unwrap();
    assert!(
        group.iter().all(|p| pid_alive(*p)),
        "the suite outlives its owner"
    );
    assert_eq!(sb.sqlite("SELECT count(*) FROM transition_lease"), "1");
    assert_eq!(sb.sqlite("SELECT count(*) FROM merge_locks"), "1");

    let out = run(&sb, &["reap"], &env).expect(0);
    wait_until(
        "every process of the suite's group to die",
        DEADLINE,
        || group.iter().all(|p| !pid_alive(*p)),
    );
    assert!(
        out.stdout
            .contains("reaped run 1 (task T, gate merge, tier 1)"),
        "{}",
        out.stdout
    );
    // The leader and the three workers at least (`sh -c` may have forked python too).
    let killed = out
        .stdout
        .split("killed ")
        .nth(1)
        .and_then(|r| r.split(' ').next());
    assert!(
        killed
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n >= 4),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("dropped the merge lock of app"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("removed gate worktree"),
        "{}",
        out.stdout
    );
    assert_eq!(run_outcome(&sb, 1), "reaped");
    assert_eq!(sb.stage_of("T").0, "deploy-staging");
    assert_eq!(
        sb.sqlite(
            "SELECT kind || ' ' || attempt || ' ' || to_stage FROM requeues WHERE task_id = 'T'"
        ),
        "infra 1 deploy"
    );
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM transitions"),
        "0",
        "never rolled back"
    );
    assert_eq!(sb.sqlite("SELECT dev_retries FROM tasks"), "0");
    assert_eq!(sb.sqlite("SELECT count(*) FROM transition_lease"), "0");
    assert_eq!(sb.sqlite("SELECT count(*) FROM merge_locks"), "0");
    let show = sb.run(&["task", "show", "T"]).expect(0).stdout;
    assert!(show.contains("reaped"), "{show}");
    assert!(show.contains("infra-requeued"), "{show}");
    let worktrees = sb.db.parent().unwrap().join("worktrees");
    assert_eq!(
        std::fs::read_dir(&worktrees)
            .map(|d| d.count())
            .unwrap_or(0),
        0,
        "the stale gate worktree is removed"
    );
    assert_eq!(
        git(&fx.work, &["worktree", "list"]).lines().count(),
        1,
        "and git's record of it pruned"
    );
    assert_eq!(counter(&sb, "reaper.reaped_runs"), 1);
    assert_eq!(counter(&sb, "reaper.dropped_merge_locks"), 1);
    assert_eq!(counter(&sb, "gates.merge.infra_requeued"), 1);
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM reaper_runs WHERE finished_at IS NOT NULL AND dry_run = 0"),
        "1"
    );
    fx.assert_no_target_push();

    // A second reap finds nothing left to do.
    let again = run(&sb, &["reap", "--json"], &env).expect(0).json();
    assert_eq!(again["actions"].as_array().unwrap().len(), 0, "{again}");
}

#[test]
fn a_live_owner_is_left_alone_no_domain_row_changes_and_no_process_dies() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/l", "main", &[("l.txt", "l\n")], "l");
    fx.add_task(&sb, "L", "feat/l", "deploy-staging");
    let env = hanging_env(&starved_suite(sb.path()));

    let mut owner = spawn_orch(&sb, &["merge-gate", "retest", "L"], &env);
    wait_until("the suite's workers to start", DEADLINE, || {
        worker_pids(sb.path()).len() == 3
    });
    let leader: i32 = sb.sqlite("SELECT leader_pid FROM runs").parse().unwrap();
    let mut group = worker_pids(sb.path());
    group.push(leader);
    let before = sb.dump();
    let locks = sb.sqlite("SELECT * FROM merge_locks");
    let requeues = sb.sqlite("SELECT * FROM requeues");

    let json = run(&sb, &["reap", "--json"], &env).expect(0).json();
    assert_eq!(json["actions"].as_array().unwrap().len(), 0, "{json}");
    assert_eq!(sb.dump(), before, "no domain row changed");
    assert_eq!(sb.sqlite("SELECT * FROM merge_locks"), locks);
    assert_eq!(sb.sqlite("SELECT * FROM requeues"), requeues);
    assert!(group.iter().all(|p| pid_alive(*p)), "no process died");
    assert!(owner.try_wait().unwrap().is_none(), "the owner still runs");
    assert_eq!(run_outcome(&sb, 1), "open");
    assert_eq!(
        std::fs::read_dir(sb.db.parent().unwrap().join("worktrees"))
            .unwrap()
            .count(),
        1,
        "the live gate's worktree is kept"
    );

    // The owner ends its own run: SIGTERM cancels it and kills the whole group.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(owner.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    owner.wait().unwrap();
    wait_until("the suite's group to die with its owner", DEADLINE, || {
        group.iter().all(|p| !pid_alive(*p))
    });
    assert_eq!(run_outcome(&sb, 1), "cancelled");
}

#[test]
fn a_reused_leader_pid_or_another_boot_or_host_is_never_signalled() {
    let sb = Sandbox::new();
    sb.add_task("X", "created");
    let reused = Sleeper::new();
    let survivor = Sleeper::new();
    let dead_owner = dead_process();
    let me = (
        std::process::id() as i32,
        pid_start_time(std::process::id() as i32),
    );

    // The leader's pid now belongs to an unrelated process with another start time.
    let reused_run = plant_run(
        &sb,
        None,
        dead_owner,
        (reused.pid, reused.start + 1),
        &Place::here(),
    );
    // A live leader with the right start time, but recorded in an earlier boot of this host.
    let earlier = Place {
        boot: "earlier-boot".into(),
        ..Place::here()
    };
    let earlier_run = plant_run(
        &sb,
        None,
        dead_owner,
        (survivor.pid, survivor.start),
        &earlier,
    );
    // Another host: recent, so left to that host's reaper; and old, past the TTL.
    let recent_elsewhere = Place {
        host: "elsewhere-host".into(),
        boot: "elsewhere-boot".into(),
        ..Place::here()
    };
    let recent_run = plant_run(
        &sb,
        None,
        dead_owner,
        (survivor.pid, survivor.start),
        &recent_elsewhere,
    );
    let old_elsewhere = Place {
        started_at: host::wall_ms() - 3_600_000,
        ..Place {
            host: "elsewhere-host".into(),
            boot: "elsewhere-boot".into(),
            ..Place::here()
        }
    };
    let old_run = plant_run(
        &sb,
        None,
        dead_owner,
        (survivor.pid, survivor.start),
        &old_elsewhere,
    );
    // A live owner here (this test process): not tier 1, and far from tier 2.
    let live_run = plant_run(
        &sb,
        None,
        me,
        (survivor.pid, survivor.start),
        &Place::here(),
    );

    let json = sb.run(&["reap", "--json"]).expect(0).json();
    let mut tiers: Vec<(i64, &str)> = json["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["run_id"].as_i64().unwrap(), a["tier"].as_str().unwrap()))
        .collect();
    tiers.sort();
    assert_eq!(
        tiers,
        [
            (reused_run, "owner-dead"),
            (earlier_run, "earlier-boot"),
            (old_run, "owner-expired")
        ],
        "{json}"
    );
    assert_eq!(json["summary"]["killed_processes"], 0, "{json}");
    for id in [reused_run, earlier_run, old_run] {
        assert_eq!(run_outcome(&sb, id), "reaped");
    }
    assert_eq!(run_outcome(&sb, recent_run), "open");
    assert_eq!(run_outcome(&sb, live_run), "open");
    assert!(
        pid_alive(reused.pid),
        "an unrelated process is never signalled"
    );
    assert!(
        pid_alive(survivor.pid),
        "nothing of another boot or host is signalled"
    );
}

#[test]
fn many_reapers_at_once_route_each_orphan_exactly_once() {
    const ROUNDS: usize = 10;
    const REAPERS: usize = 8;
    let sb = Sandbox::new();
    for round in 0..ROUNDS {
        let task = format!("R{round}");
        sb.add_task(&task, "deploy-staging");
        let run_id = plant_run(
            &sb,
            Some(&task),
            dead_process(),
            dead_process(),
            &Place::here(),
        );
        let reapers: Vec<Child> = (0..REAPERS)
            .map(|_| {
                sb.orch()
                    .args(["reap", "--json"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut reaped_by = 0;
        for reaper in reapers {
            let out = reaper.wait_with_output().unwrap();
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            reaped_by += json["summary"]["reaped_runs"].as_i64().unwrap();
        }
        assert_eq!(reaped_by, 1, "round {round}: one reaper finished the run");
        assert_eq!(run_outcome(&sb, run_id), "reaped");
        assert_eq!(
            sb.sqlite(&format!(
                "SELECT group_concat(outcome, ',') FROM gate_events WHERE task_id = '{task}'"
            )),
            "reaped,infra-requeued",
            "round {round}: routed once"
        );
        assert_eq!(
            sb.sqlite(&format!(
                "SELECT kind FROM requeues WHERE task_id = '{task}'"
            )),
            "infra"
        );
    }
    assert_eq!(counter(&sb, "gates.merge.infra_requeued"), ROUNDS as i64);
    assert_eq!(counter(&sb, "reaper.reaped_runs"), ROUNDS as i64);
    assert_eq!(counter(&sb, "runs.reaped"), ROUNDS as i64);
    assert_eq!(counter(&sb, "reaper.runs"), (ROUNDS * REAPERS) as i64);
    assert_eq!(sb.sqlite("SELECT count(*) FROM transition_lease"), "0");
    assert_eq!(sb.sqlite("SELECT count(*) FROM transitions"), "0");
}

#[test]
fn a_dry_run_prints_what_it_would_do_and_writes_and_signals_nothing() {
    let sb = Sandbox::new();
    sb.add_task("D", "deploy-staging");
    let leader = Sleeper::new();
    let dead_owner = dead_process();
    let run_id = plant_run(
        &sb,
        Some("D"),
        dead_owner,
        (leader.pid, leader.start),
        &Place::here(),
    );
    // The dead owner's lease, and an alert nobody delivered.
    sb.sqlite(&format!(
        "INSERT INTO transition_lease (task_id, owner, owner_pid, owner_pid_start, boot_id, pid_ns,
             host, acquired_at, renewed_at, expires_at, renewed_boot_ms, ttl_ms)
         VALUES ('D', 'ci (orch advance)', {}, {}, '{}', '{}', '{}', 0, 0, 60000, {}, 60000);
         INSERT INTO alerts (key, task_id, kind, payload, created_at)
         VALUES ('k1', 'D', 'infra-exhausted', '{{\"key\":\"k1\"}}', 0);",
        dead_owner.0,
        dead_owner.1,
        host::boot_id(),
        host::pid_namespace(),
        host::host_name(),
        host::boot_ms()
    ));
    let before = full_dump(&sb);

    let out = sb.run(&["reap", "--dry-run"]).expect(0);
    assert!(
        out.stdout.contains(&format!(
            "would reap run {run_id} (task D, gate merge, tier 1): owner pid {} is gone; would kill 1 process(es) [{}]",
            dead_owner.0, leader.pid
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("would route: infra re-queue"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("would drop the lease of D"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("would re-deliver alert"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("nothing written, nothing signalled"),
        "{}",
        out.stdout
    );
    let json = sb.run(&["reap", "--dry-run", "--json"]).expect(0).json();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["reaper_run_id"], serde_json::Value::Null);
    assert_eq!(json["summary"]["reaped_runs"], 1, "{json}");
    assert_eq!(full_dump(&sb), before, "a dry run writes nothing at all");
    assert!(pid_alive(leader.pid), "a dry run signals nothing");

    // The real reap does what the dry run said.
    let json = sb.run(&["reap", "--json"]).expect(0).json();
    assert_eq!(json["summary"]["reaped_runs"], 1, "{json}");
    assert_eq!(json["summary"]["alerts_redelivered"], 1, "{json}");
    wait_until("the orphan's group to die", DEADLINE, || {
        !pid_alive(leader.pid)
    });
    assert_eq!(run_outcome(&sb, run_id), "reaped");
    assert_eq!(sb.sqlite("SELECT count(*) FROM transition_lease"), "0");
    assert_eq!(
        sb.sqlite("SELECT kind FROM requeues WHERE task_id = 'D'"),
        "infra"
    );
}

#[test]
fn a_disabled_reaper_says_so_and_does_nothing() {
    let sb = Sandbox::new();
    let off = [("ORCH_REAPER_ENABLED", "false")];
    // A missing database is "not found" whether the reaper is enabled or not: nothing appears.
    sb.run_env(&["reap"], &off).expect(3);
    assert!(!sb.db.exists());

    sb.add_task("Z", "deploy-staging");
    let out = sb.run_env(&["reap"], &off).expect(0);
    assert!(out.stdout.contains("reaper disabled"), "{}", out.stdout);
    let leader = Sleeper::new();
    plant_run(
        &sb,
        Some("Z"),
        dead_process(),
        (leader.pid, leader.start),
        &Place::here(),
    );
    let before = full_dump(&sb);
    let json = sb.run_env(&["reap", "--json"], &off).expect(0).json();
    assert_eq!(json["enabled"], false);
    assert_eq!(full_dump(&sb), before);
    assert!(pid_alive(leader.pid));
}

#[test]
fn a_reaper_maximum_under_a_gate_timeout_refuses_tier_2_and_a_valid_one_reaps_by_age() {
    let sb = Sandbox::new();
    sb.add_task("A", "deploy-staging");
    let leader = Sleeper::new();
    let me = (
        std::process::id() as i32,
        pid_start_time(std::process::id() as i32),
    );
    // Owner alive (this test process), started an hour ago.
    let old = Place {
        started_at: host::wall_ms() - 3_600_000,
        started_boot_ms: host::boot_ms() - 3_600_000,
        ..Place::here()
    };
    let run_id = plant_run(&sb, Some("A"), me, (leader.pid, leader.start), &old);

    let out = sb
        .run_env(&["reap"], &[("ORCH_REAPER_MAX_RUNNING_S", "10")])
        .expect(0);
    assert!(
        out.stderr
            .contains("warning: ORCH_REAPER_MAX_RUNNING_S (10) must be greater than ORCH_MERGE_RETEST_TIMEOUT_S"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("tier 2 (reaping by age) refused"),
        "{}",
        out.stdout
    );
    assert_eq!(run_outcome(&sb, run_id), "open");
    assert!(pid_alive(leader.pid));
    let doctor = sb
        .run_env(
            &["doctor", "--json"],
            &[("ORCH_REAPER_MAX_RUNNING_S", "10")],
        )
        .expect(2)
        .json();
    assert!(doctor["problems"]
        .to_string()
        .contains("ORCH_REAPER_MAX_RUNNING_S"));

    let valid = [
        ("ORCH_REAPER_MAX_RUNNING_S", "1000"),
        ("ORCH_MERGE_RETEST_TIMEOUT_S", "5"),
        ("ORCH_KILL_GRACE_S", "1"),
    ];
    let json = sb.run_env(&["reap", "--json"], &valid).expect(0).json();
    assert_eq!(json["actions"][0]["tier"], "max-running", "{json}");
    assert_eq!(json["tier2_refused"].as_array().unwrap().len(), 0);
    wait_until("the old run's group to die", DEADLINE, || {
        !pid_alive(leader.pid)
    });
    assert_eq!(run_outcome(&sb, run_id), "reaped");
}

#[test]
fn undelivered_alerts_are_redelivered_stale_worktrees_removed_and_old_rows_pruned() {
    let sb = Sandbox::new();
    sb.add_task("W", "created");
    let delivered = sb.path().join("alerts.jsonl");
    let env = [(
        "ORCH_ALERT_CMD",
        format!("cat >> '{}'", delivered.display()),
    )];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let now = host::wall_ms();
    sb.sqlite(&format!(
        "INSERT INTO alerts (key, task_id, kind, payload, created_at)
         VALUES ('old', 'W', 'infra-exhausted', '{{\"key\":\"old\"}}', 0),
                ('fresh', 'W', 'infra-exhausted', '{{\"key\":\"fresh\"}}', {now});
         INSERT INTO events (event_id, task_id, command, exit_code, outcome, at)
         VALUES ('e-old', 'W', 'advance', 0, 'advanced', 0),
                ('e-new', 'W', 'advance', 0, 'advanced', {now});
         INSERT INTO runs (task_id, gate, command, owner_pid, owner_pid_start, leader_pid,
             leader_pid_start, boot_id, pid_ns, host, started_at, started_boot_ms, timeout_ms,
             finished_at, outcome)
         VALUES ('W', 'merge', 'old', 2, 2, 2, 2, 'b', 'n', 'h', 0, 0, 0, 1000, 'passed');
         INSERT INTO reaper_runs (started_at, finished_at, dry_run, summary)
         VALUES (0, 1, 0, '{{}}');"
    ));
    let worktrees = sb.db.parent().unwrap().join("worktrees");
    let (dead_pid, _) = dead_process();
    let stale = worktrees.join(format!("W-{dead_pid}-merge-{now}"));
    let live = worktrees.join(format!("W-{}-merge-{now}", std::process::id()));
    let foreign = worktrees.join("not-a-gate-worktree");
    for dir in [&stale, &live, &foreign] {
        std::fs::create_dir_all(dir.join("sub")).unwrap();
    }

    let json = sb.run_env(&["reap", "--json"], &env).expect(0).json();
    let s = &json["summary"];
    assert_eq!(s["alerts_redelivered"], 1, "{json}");
    assert_eq!(s["removed_worktrees"], 1, "{json}");
    assert_eq!(s["pruned_rows"], 3, "{json}");
    assert_eq!(
        std::fs::read_to_string(&delivered).unwrap().trim(),
        "{\"key\":\"old\"}"
    );
    assert_eq!(
        sb.sqlite("SELECT key FROM alerts WHERE delivered_at IS NULL"),
        "fresh",
        "a fresh alert is left to its raiser"
    );
    assert!(!stale.exists() && live.exists() && foreign.exists());
    assert_eq!(sb.sqlite("SELECT event_id FROM events"), "e-new");
    assert_eq!(sb.sqlite("SELECT count(*) FROM runs"), "0");
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM reaper_runs"),
        "1",
        "only this reap"
    );
    assert_eq!(counter(&sb, "alerts.redelivered"), 1);
    assert_eq!(counter(&sb, "reaper.pruned_rows"), 3);
    assert_eq!(counter(&sb, "reaper.removed_worktrees"), 1);

    // A failing alert command: the attempt is recorded, the alert stays undelivered.
    sb.sqlite("UPDATE alerts SET created_at = 0 WHERE key = 'fresh'");
    let json = sb
        .run_env(&["reap", "--json"], &[("ORCH_ALERT_CMD", "exit 3")])
        .expect(0)
        .json();
    assert_eq!(json["summary"]["alerts_failed"], 1, "{json}");
    assert_eq!(
        sb.sqlite(
            "SELECT attempts || ' ' || (delivered_at IS NULL) FROM alerts WHERE key = 'fresh'"
        ),
        "1 1"
    );
}

#[test]
fn queue_shows_the_reaper_block_and_flags_a_stale_reaper() {
    let sb = Sandbox::new();
    // A fresh database (`repo add` creates it): no reap could have run yet, so none is missing.
    let url = sb.path().join("app-remote.git");
    sb.add_repo("app", url.to_str().unwrap());
    let fresh = sb
        .run_env(&["queue", "--json"], &[("ORCH_REAPER_INTERVAL_S", "1")])
        .expect(0)
        .json();
    assert_eq!(fresh["reaper"]["stale"], false, "just created: {fresh}");
    sb.add_task("Q", "created");
    let queue = sb.run(&["queue", "--json"]).expect(0).json();
    assert_eq!(
        queue["reaper"]["stale"], false,
        "registered just now: {queue}"
    );
    assert_eq!(queue["reaper"]["last_run"], serde_json::Value::Null);
    let text = sb.run(&["queue"]).expect(0).stdout;
    assert!(text.contains("reaper  ok"), "{text}");
    // Registered more than 3 × the interval ago and never reaped: stale.
    sb.sqlite(&format!(
        "UPDATE repos SET created_at = {0}; UPDATE tasks SET created_at = {0}",
        host::wall_ms() - 10_000
    ));
    let queue = sb
        .run_env(&["queue", "--json"], &[("ORCH_REAPER_INTERVAL_S", "1")])
        .expect(0)
        .json();
    assert_eq!(queue["reaper"]["stale"], true, "never reaped: {queue}");
    let text = sb
        .run_env(&["queue"], &[("ORCH_REAPER_INTERVAL_S", "1")])
        .expect(0)
        .stdout;
    assert!(text.contains("reaper  STALE"), "{text}");

    plant_run(&sb, None, dead_process(), dead_process(), &Place::here());
    sb.run(&["reap"]).expect(0);
    let queue = sb.run(&["queue", "--json"]).expect(0).json();
    let reaper = &queue["reaper"];
    assert_eq!(reaper["stale"], false, "{queue}");
    assert_eq!(reaper["last_run"]["summary"]["reaped_runs"], 1, "{queue}");
    assert_eq!(reaper["counters"]["runs"], 1);
    assert_eq!(reaper["counters"]["reaped_runs"], 1);
    let text = sb.run(&["queue"]).expect(0).stdout;
    assert!(text.contains("reaper  ok"), "{text}");
    assert!(text.contains("reaped 1 run(s)"), "{text}");

    // Silent for more than 3 × the interval: stale.
    sb.sqlite(&format!(
        "UPDATE reaper_runs SET finished_at = {}",
        host::wall_ms() - 10_000
    ));
    let queue = sb
        .run_env(&["queue", "--json"], &[("ORCH_REAPER_INTERVAL_S", "1")])
        .expect(0)
        .json();
    assert_eq!(queue["reaper"]["stale"], true, "{queue}");
    let text = sb
        .run_env(&["queue"], &[("ORCH_REAPER_INTERVAL_S", "1")])
        .expect(0)
        .stdout;
    assert!(text.contains("reaper  STALE"), "{text}");
}

/// cron's environment: a small ORCH_REAPER_MAX_RUNNING_S that is valid there (every gate timeout
/// of cron's own environment below it), while the CI step that started the run had a long one.
fn cron_env() -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = [
        "ORCH_MERGE_RETEST_TIMEOUT_S",
        "ORCH_SECURITY_GATE_TIMEOUT_S",
        "ORCH_COVERAGE_TIMEOUT_S",
        "ORCH_IMAGE_FRESHNESS_TIMEOUT_S",
        "ORCH_MERGE_CMD_TIMEOUT_S",
    ]
    .into_iter()
    .map(|k| (k, "1".to_string()))
    .collect();
    env.push(("ORCH_KILL_GRACE_S", "1".into()));
    env.push(("ORCH_REAPER_MAX_RUNNING_S", "5".into()));
    env
}

/// The actions of a reap report that are about runs.
fn run_actions(json: &serde_json::Value) -> Vec<serde_json::Value> {
    json["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"].as_str().unwrap().ends_with("-run"))
        .cloned()
        .collect()
}

fn last_reaper_summary(sb: &Sandbox) -> serde_json::Value {
    serde_json::from_str(&sb.sqlite("SELECT summary FROM reaper_runs ORDER BY id DESC LIMIT 1"))
        .unwrap()
}

#[test]
fn reaping_by_age_waits_for_the_run_s_own_timeout_and_counts_what_it_kills() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/g", "main", &[("g.txt", "g\n")], "g");
    fx.add_task(&sb, "G", "feat/g", "deploy-staging");
    let mut env = hanging_env(&starved_suite(sb.path()));
    env.retain(|(k, _)| *k != "ORCH_MERGE_RETEST_TIMEOUT_S" && *k != "ORCH_KILL_GRACE_S");
    env.push(("ORCH_MERGE_RETEST_TIMEOUT_S", "120".into()));
    // The step gives its suite 60 s of grace; cron's environment says 1 s.
    env.push(("ORCH_KILL_GRACE_S", "60".into()));
    let mut owner = spawn_orch(&sb, &["merge-gate", "retest", "G"], &env);
    wait_until("the suite's workers to start", DEADLINE, || {
        worker_pids(sb.path()).len() == 3
    });
    let leader: i32 = sb.sqlite("SELECT leader_pid FROM runs").parse().unwrap();
    let mut group = worker_pids(sb.path());
    group.push(leader);
    assert_eq!(
        sb.sqlite("SELECT timeout_ms, grace_ms FROM runs"),
        "120000|60000"
    );
    // 60 s into its 120 s: far over cron's ORCH_REAPER_MAX_RUNNING_S (5), inside its own timeout.
    sb.sqlite(
        "UPDATE runs SET started_at = started_at - 60000, started_boot_ms = started_boot_ms - 60000",
    );
    let domain = format!(
        "{}\n{}\n{}",
        sb.dump(),
        sb.sqlite("SELECT * FROM merge_locks"),
        sb.sqlite("SELECT * FROM requeues")
    );

    let cron = cron_env();
    let json = run(&sb, &["reap", "--json"], &cron).expect(0).json();
    assert_eq!(json["tier2_refused"].as_array().unwrap().len(), 0, "{json}");
    // (Other tests' stale gate clones in the shared $TMPDIR may be removed: not runs.)
    assert!(run_actions(&json).is_empty(), "{json}");
    assert_eq!(json["summary"]["reaped_runs"], 0, "{json}");
    assert_eq!(json["summary"]["killed_processes"], 0, "{json}");
    let text = run(&sb, &["reap"], &cron).expect(0);
    assert!(
        text.stdout
            .starts_with("reap: 0 run(s) reaped (0 process(es) killed)"),
        "{}",
        text.stdout
    );
    assert!(
        group.iter().all(|p| pid_alive(*p)),
        "the live suite survives"
    );
    assert!(owner.try_wait().unwrap().is_none(), "its owner still runs");
    assert_eq!(run_outcome(&sb, 1), "open");
    assert_eq!(
        format!(
            "{}\n{}\n{}",
            sb.dump(),
            sb.sqlite("SELECT * FROM merge_locks"),
            sb.sqlite("SELECT * FROM requeues")
        ),
        domain,
        "no domain row changed"
    );
    assert_eq!(last_reaper_summary(&sb)["killed_processes"], 0);

    // 150 s in: past its timeout + cron's own grace (1 s) + the margin, but inside the grace the
    // run was started with (60 s): its owner may still be tearing it down; nothing is killed.
    sb.sqlite(
        "UPDATE runs SET started_at = started_at - 90000, started_boot_ms = started_boot_ms - 90000",
    );
    let json = run(&sb, &["reap", "--json"], &cron).expect(0).json();
    assert!(run_actions(&json).is_empty(), "{json}");
    assert!(group.iter().all(|p| pid_alive(*p)), "inside its own grace");
    assert_eq!(run_outcome(&sb, 1), "open");

    // The owner is stuck (stopped: it cannot enforce its timeout) and the run is past its 120 s +
    // the grace: reaped by age, and what was killed is counted, in the report and in its row.
    let owner_pid = nix::unistd::Pid::from_raw(owner.id() as i32);
    nix::sys::signal::kill(owner_pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    sb.sqlite(
        "UPDATE runs SET started_at = started_at - 200000, started_boot_ms = started_boot_ms - 200000",
    );
    let json = run(&sb, &["reap", "--json"], &cron).expect(0).json();
    nix::sys::signal::kill(owner_pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let reaped = run_actions(&json);
    assert_eq!(reaped.len(), 1, "{json}");
    assert_eq!(reaped[0]["tier"], "max-running", "{json}");
    assert!(
        reaped[0]["why"]
            .as_str()
            .unwrap()
            .contains("past its own timeout (2m 0s) + kill grace (60s)"),
        "{json}"
    );
    let killed = reaped[0]["killed"].as_array().unwrap().len() as i64;
    assert!(killed >= 4, "the leader and the three workers: {json}");
    assert_eq!(json["summary"]["reaped_runs"], 1, "{json}");
    assert_eq!(json["summary"]["killed_processes"], killed, "{json}");
    let row = last_reaper_summary(&sb);
    assert_eq!(row["reaped_runs"], 1, "{row}");
    assert_eq!(row["killed_processes"], killed, "{row}");
    assert_eq!(row["reaped_run_ids"], serde_json::json!([1]), "{row}");
    wait_until("the suite's group to die", DEADLINE, || {
        group.iter().all(|p| !pid_alive(*p))
    });
    assert_eq!(run_outcome(&sb, 1), "reaped");
    assert_eq!(counter(&sb, "reaper.reaped_runs"), 1);
    wait_until("the woken owner to exit", DEADLINE, || {
        owner.try_wait().unwrap().is_some()
    });
}

#[test]
fn an_alert_is_delivered_once_per_attempt_window_whoever_delivers_it() {
    let sb = Sandbox::new();
    sb.add_task("W", "created");
    let log = sb.path().join("deliveries.log");
    let release = sb.path().join("release");
    // Slow: logs the delivery, then waits (polling) until the test lets it finish.
    let slow = format!(
        "cat >> '{}'; echo >> '{}'; while [ ! -e '{}' ]; do sleep 0.05; done",
        log.display(),
        log.display(),
        release.display()
    );
    let deliveries = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .count()
    };
    sb.sqlite(
        "INSERT INTO alerts (key, task_id, kind, payload, created_at)
         VALUES ('k', 'W', 'infra-exhausted', '{\"key\":\"k\"}', 0)",
    );
    let first = [
        ("ORCH_ALERT_CMD", slow.clone()),
        ("ORCH_ALERT_TIMEOUT_S", "600".to_string()),
    ];
    let mut a = spawn_orch(&sb, &["reap"], &first);
    wait_until("the first delivery to start", DEADLINE, || {
        deliveries() == 1
    });

    // While it is in flight, reapers with a much shorter ORCH_ALERT_TIMEOUT_S come and go.
    let short = [
        ("ORCH_ALERT_CMD", slow.clone()),
        ("ORCH_ALERT_TIMEOUT_S", "1".to_string()),
    ];
    let mut others: Vec<Child> = (0..4).map(|_| spawn_orch(&sb, &["reap"], &short)).collect();
    for o in &mut others {
        assert!(o.wait().unwrap().success());
    }
    let json = run(&sb, &["reap", "--json"], &short).expect(0).json();
    assert_eq!(json["summary"]["alerts_redelivered"], 0, "{json}");
    assert_eq!(deliveries(), 1, "no second delivery inside the window");
    assert_eq!(
        sb.sqlite("SELECT attempts || ' ' || timeout_ms || ' ' || (attempt_until > 0) FROM alerts"),
        "1 600000 1",
        "the first claim stamped the row's timeout and its window"
    );

    std::fs::write(&release, "").unwrap();
    assert!(a.wait().unwrap().success());
    assert_eq!(deliveries(), 1);
    assert_eq!(
        sb.sqlite("SELECT attempts || ' ' || (delivered_at IS NOT NULL) FROM alerts"),
        "1 1"
    );
    assert_eq!(counter(&sb, "alerts.delivered"), 1);
    assert_eq!(counter(&sb, "alerts.redelivered"), 1);

    // A deliverer that died mid-attempt: inside its window nobody sends; once the window has
    // passed undelivered, the next reap does. Nothing is lost.
    let now = host::wall_ms();
    sb.sqlite(&format!(
        "INSERT INTO alerts (key, task_id, kind, payload, created_at, attempts, timeout_ms,
                             attempt_until)
         VALUES ('died', 'W', 'infra-exhausted', '{{\"key\":\"died\"}}', 0, 1, 600000,
                 {})",
        now + 600_000
    ));
    let fast = [(
        "ORCH_ALERT_CMD",
        format!("cat >> '{}'; echo >> '{}'", log.display(), log.display()),
    )];
    let json = run(&sb, &["reap", "--json"], &fast).expect(0).json();
    assert_eq!(json["summary"]["alerts_redelivered"], 0, "{json}");
    assert_eq!(deliveries(), 1);
    sb.sqlite(&format!(
        "UPDATE alerts SET attempt_until = {} WHERE key = 'died'",
        now - 1
    ));
    let json = run(&sb, &["reap", "--json"], &fast).expect(0).json();
    assert_eq!(json["summary"]["alerts_redelivered"], 1, "{json}");
    assert_eq!(deliveries(), 2);
    assert_eq!(
        sb.sqlite(
            "SELECT attempts || ' ' || (delivered_at IS NOT NULL) FROM alerts WHERE key = 'died'"
        ),
        "2 1"
    );
}

/// `advance --next` while the only due re-queue's edge is running (its task leased by a live
/// step): it claims nothing and says what is running, not "nothing due".
#[test]
fn advance_next_says_a_due_requeue_is_running_not_nothing_due() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/n", "main", &[("n.txt", "n\n")], "n");
    fx.add_task(&sb, "N", "feat/n", "deploy-staging");
    let env = hanging_env(&starved_suite(sb.path()));
    let mut owner = spawn_orch(&sb, &["merge-gate", "retest", "N"], &env);
    wait_until("the suite's workers to start", DEADLINE, || {
        worker_pids(sb.path()).len() == 3
    });
    let (bid, now, boot) = (
        orch::host::boot_id(),
        orch::host::wall_ms(),
        orch::host::boot_ms(),
    );
    sb.sqlite(&format!(
        "INSERT INTO requeues (task_id, from_stage, to_stage, kind, attempt, reason, due_at,
             due_boot_ms, boot_id, created_at)
         VALUES ('N', 'deploy-staging', 'deploy', 'infra', 1, 'suite timed out', {}, {},
                 '{bid}', {now})",
        now - 5_000,
        boot - 5_000
    ));
    let out = sb.run(&["advance", "--next"]).expect(0);
    assert_eq!(
        out.stdout,
        format!(
            "nothing to claim; N's re-queued edge deploy-staging → deploy is running now (pid {} on {})\n",
            owner.id(),
            orch::host::host_name()
        )
    );
    let json = sb.run(&["--json", "advance", "--next"]).expect(0).json();
    assert_eq!(
        json["next_due"]["running"],
        format!("pid {} on {}", owner.id(), orch::host::host_name())
    );
    assert_eq!(sb.sqlite("SELECT claimed_at IS NULL FROM requeues"), "1");
    owner.kill().unwrap();
    owner.wait().unwrap();
    sb.run(&["reap", "-q"]).expect(0);
}

/// An alert raised with a short `ORCH_ALERT_TIMEOUT_S` whose command needs longer is not stuck for
/// ever: a reaper with a longer timeout lengthens the row's and delivers it.
#[test]
fn a_reaper_with_a_longer_alert_timeout_delivers_what_the_raisers_could_not() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/a", "main", &[("a.txt", "a\n")], "a");
    fx.add_task(&sb, "A", "feat/a", "deploy-staging");
    let delivered = sb.path().join("delivered");
    let out = sb.run_env(
        &["advance", "A", "--to", "deploy"],
        &[
            ("ORCH_MERGE_RETEST_CMD", "exit 3"),
            ("ORCH_COVERAGE_CMD", ""),
            ("ORCH_MERGE_INFRA_RETRY_MAX", "0"),
            ("ORCH_ALERT_TIMEOUT_S", "1"),
            ("ORCH_ALERT_CMD", "sleep 3; exit 0"),
        ],
    );
    assert_eq!(out.code, 12, "{out:?}");
    assert_eq!(
        sb.sqlite("SELECT timeout_ms, delivered_at IS NULL FROM alerts"),
        "1000|1"
    );
    let slow = format!("sleep 2; cat >> '{}'", delivered.display());
    // The raiser's failed attempt ended its window: the next reap retries at once.
    sb.run_env(
        &["reap", "-q"],
        &[
            ("ORCH_ALERT_TIMEOUT_S", "60"),
            ("ORCH_ALERT_CMD", slow.as_str()),
        ],
    )
    .expect(0);
    assert!(std::fs::read_to_string(&delivered)
        .unwrap()
        .contains("\"task_id\":\"A\""));
    assert_eq!(
        sb.sqlite("SELECT timeout_ms, delivered_at IS NOT NULL FROM alerts"),
        "60000|1"
    );
}
