//! The foundation: the stage engine with lease + CAS, HOLD, event ids, the kill-switch, config
//! warnings, and the read-only queue — each seen through the real binary on a real database.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{merge_script, pid_start_time, Fixture, Out, Sandbox};

const FORWARD: [&str; 8] = [
    "analysis",
    "architecture",
    "development",
    "review",
    "testing",
    "deploy-staging",
    "deploy",
    "done",
];

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_string()
}

fn pid_ns() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Who a planted lease row names as its holder.
struct Planted<'a> {
    pid: i32,
    start: u64,
    host: &'a str,
    boot: &'a str,
    ns: &'a str,
}

/// Writes a lease row for `task` as if the `holder` held it, renewed at `renewed_at`.
fn plant_lease(sb: &Sandbox, task: &str, holder: Planted, renewed_at: i64) {
    let Planted {
        pid,
        start,
        host,
        boot,
        ns,
    } = holder;
    sb.sqlite(&format!(
        "INSERT INTO transition_lease (task_id, owner, owner_pid, owner_pid_start, boot_id, pid_ns,
             host, acquired_at, renewed_at, expires_at, renewed_boot_ms, ttl_ms)
         VALUES ('{task}', 'planted (test)', {pid}, {start}, '{boot}', '{ns}', '{host}',
                 {renewed_at}, {renewed_at}, {renewed_at} + 60000, 0, 60000)"
    ));
}

#[test]
fn a_task_walks_to_done_and_its_history_names_actor_reason_version_and_token() {
    let sb = Sandbox::new();
    // A fixture repository with a green suite: the gated edges run for real.
    let fx = Fixture::new(&sb);
    fx.commit_branch("feat/t-1", "main", &[("notes.txt", "t-1\n")], "notes");
    fx.add_task(&sb, "T-1", "feat/t-1", "created");
    let merge = merge_script("ff");
    let green = [
        (
            "ORCH_MERGE_RETEST_CMD",
            "python3 -m pytest -q -p no:cacheprovider",
        ),
        ("ORCH_MERGE_CMD", merge.as_str()),
    ];
    for stage in FORWARD {
        sb.run_env(
            &[
                "advance",
                "T-1",
                "--to",
                stage,
                "--actor",
                "ci-bot",
                "--reason",
                &format!("to {stage}"),
            ],
            &green,
        )
        .expect(0);
    }
    assert_eq!(sb.stage_of("T-1"), ("done".into(), 9));
    fx.assert_no_target_push();

    let show = sb.run(&["task", "show", "T-1"]).expect(0);
    let lines: Vec<&str> = show.stdout.lines().filter(|l| l.contains(" by ")).collect();
    assert_eq!(lines.len(), 8, "{}", show.stdout);
    let mut from = "created";
    for (i, (line, to)) in lines.iter().zip(FORWARD).enumerate() {
        assert!(line.contains(&format!("v{}", i + 2)), "{line}");
        assert!(line.contains(&format!("{from} → {to}")), "{line}");
        assert!(line.contains("by ci-bot"), "{line}");
        assert!(line.contains(&format!("reason: to {to}")), "{line}");
        assert!(line.contains("token "), "{line}");
        from = to;
    }

    let json = sb.run(&["task", "show", "T-1", "--json"]).expect(0).json();
    let items = json["history"].as_array().unwrap();
    let history: Vec<_> = items.iter().filter(|h| h["kind"] == "transition").collect();
    assert_eq!(history.len(), 8);
    assert!(
        items
            .iter()
            .any(|h| h["kind"] == "gate" && h["gate"] == "merge" && h["outcome"] == "passed"),
        "the merge gate's pass is in the story: {items:?}"
    );
    let tokens: Vec<i64> = history
        .iter()
        .map(|h| h["lease_token"].as_i64().unwrap())
        .collect();
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "fencing tokens increase: {tokens:?}"
    );
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM transition_lease"),
        "0",
        "every lease released"
    );
}

#[test]
fn refused_commands_exit_with_their_code_and_write_nothing() {
    let sb = Sandbox::new();
    sb.add_task("T-1", "review");
    let before = sb.dump();

    let out = sb.run(&["advance", "T-1", "--to", "done"]).expect(5);
    assert!(
        out.stderr.contains("illegal transition `review → done`"),
        "{}",
        out.stderr
    );
    let out = sb.run(&["advance", "NOPE", "--to", "testing"]).expect(3);
    assert!(
        out.stderr.contains("task `NOPE` not found"),
        "{}",
        out.stderr
    );
    let out = sb
        .run(&[
            "advance",
            "T-1",
            "--to",
            "review",
            "--expect",
            "development",
        ])
        .expect(4);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("is at `review`"), "{}", out.stderr);
    assert_eq!(sb.dump(), before, "refusals write nothing");

    sb.run(&["task", "hold", "T-1", "--reason", "flaky suite"])
        .expect(0);
    let held = sb.dump();
    let out = sb.run(&["advance", "T-1", "--to", "testing"]).expect(6);
    assert!(
        out.stderr.contains("on HOLD: flaky suite"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("orch task release T-1"),
        "{}",
        out.stderr
    );
    assert_eq!(sb.dump(), held, "a held task is not written");
    assert_eq!(
        sb.stage_of("T-1"),
        ("review".into(), 1),
        "HOLD does not bump the version"
    );

    sb.run(&["task", "release", "T-1"]).expect(0);
    sb.run(&["advance", "T-1", "--to", "testing"]).expect(0);
    assert_eq!(sb.stage_of("T-1"), ("testing".into(), 2));
    assert_eq!(
        sb.sqlite("SELECT group_concat(action) FROM holds WHERE task_id = 'T-1'"),
        "hold,release"
    );
}

#[test]
fn thirty_two_racers_over_two_hundred_rounds_have_exactly_one_winner_each() {
    // Knob: `RACE_ROUNDS` (default 200, CI's full strength); `RACE_ROUNDS=10 cargo test
    // --all-features --test cli thirty_two` for a fast focused run. The torture test in
    // torture.rs has `TORTURE_SECS`.
    let rounds: i64 = std::env::var("RACE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(200);
    let sb = Sandbox::new();
    sb.add_task("RACE", "development");
    let mut seen_lost_lines = std::collections::HashSet::new();
    for round in 0..rounds {
        let (from, to) = if round % 2 == 0 {
            ("development", "review")
        } else {
            ("review", "development")
        };
        let children: Vec<_> = (0..32)
            .map(|i| {
                let mut cmd = sb.orch();
                cmd.args([
                    "advance",
                    "RACE",
                    "--to",
                    to,
                    "--expect",
                    from,
                    "--actor",
                    &format!("racer-{i}"),
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
                cmd.spawn().expect("orch starts")
            })
            .collect();
        let mut winners = 0;
        for child in children {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            let stdout = String::from_utf8_lossy(&out.stdout);
            match out.status.code() {
                Some(0) => {
                    winners += 1;
                    assert!(
                        stderr.is_empty(),
                        "round {round}: winner wrote to stderr: {stderr}"
                    );
                }
                Some(4) => {
                    assert_eq!(
                        stderr.lines().count(),
                        1,
                        "round {round}: loser stderr: {stderr}"
                    );
                    assert!(stdout.is_empty(), "round {round}: loser stdout: {stdout}");
                    assert!(!stderr.contains("locked"), "round {round}: {stderr}");
                    seen_lost_lines.insert(stderr.split(' ').take(4).collect::<Vec<_>>().join(" "));
                }
                other => panic!("round {round}: exit {other:?}: {stderr}"),
            }
        }
        assert_eq!(winners, 1, "round {round}: exactly one winner");
    }
    // An even number of rounds ends where it started; an odd one in review.
    let last = if rounds % 2 == 0 {
        "development"
    } else {
        "review"
    };
    assert_eq!(sb.stage_of("RACE"), (last.into(), rounds + 1));
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM transitions WHERE task_id = 'RACE'"),
        rounds.to_string()
    );
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM transitions t1 JOIN transitions t2 ON t1.version = t2.version AND t1.id < t2.id"),
        "0",
        "no version written twice"
    );
}

#[test]
fn a_live_holder_is_never_usurped_and_a_dead_one_is_taken_over_at_once() {
    let sb = Sandbox::new();
    sb.add_task("L", "development");
    let mut holder = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = holder.id() as i32;
    let start = pid_start_time(pid);

    // A live process with its real start time: never usurped, nothing written.
    plant_lease(
        &sb,
        "L",
        Planted {
            pid,
            start,
            host: &host(),
            boot: &boot_id(),
            ns: &pid_ns(),
        },
        now_ms(),
    );
    let before = sb.dump();
    let out = sb.run(&["advance", "L", "--to", "review"]).expect(4);
    assert!(
        out.stderr
            .contains(&format!("held by planted (test) (pid {pid}")),
        "{}",
        out.stderr
    );
    assert_eq!(sb.dump(), before);

    // The same pid with another start time is a reused pid: taken over.
    sb.sqlite("DELETE FROM transition_lease");
    plant_lease(
        &sb,
        "L",
        Planted {
            pid,
            start: start + 1,
            host: &host(),
            boot: &boot_id(),
            ns: &pid_ns(),
        },
        now_ms(),
    );
    sb.run(&["advance", "L", "--to", "review"]).expect(0);

    // A dead pid: taken over.
    holder.kill().unwrap();
    holder.wait().unwrap();
    plant_lease(
        &sb,
        "L",
        Planted {
            pid,
            start,
            host: &host(),
            boot: &boot_id(),
            ns: &pid_ns(),
        },
        now_ms(),
    );
    sb.run(&["advance", "L", "--to", "development"]).expect(0);

    // A holder from an earlier boot of this host: dead.
    let me = std::process::id() as i32;
    plant_lease(
        &sb,
        "L",
        Planted {
            pid: me,
            start: pid_start_time(me),
            host: &host(),
            boot: "00000000-earlier-boot",
            ns: &pid_ns(),
        },
        now_ms(),
    );
    sb.run(&["advance", "L", "--to", "review"]).expect(0);

    // Another host cannot be checked: only its TTL (60 s in the row) frees it.
    plant_lease(
        &sb,
        "L",
        Planted {
            pid: me,
            start: 1,
            host: "elsewhere.example",
            boot: "other-boot",
            ns: "pid:[1]",
        },
        now_ms(),
    );
    let before = sb.dump();
    sb.run(&["advance", "L", "--to", "development"]).expect(4);
    assert_eq!(sb.dump(), before);
    sb.sqlite(&format!(
        "UPDATE transition_lease SET renewed_at = {}",
        now_ms() - 61_000
    ));
    sb.run(&["advance", "L", "--to", "development"]).expect(0);

    assert_eq!(sb.stage_of("L"), ("development".into(), 5));
    let counters =
        sb.run(&["queue", "--json"]).expect(0).json()["transition_lease"]["counters"].clone();
    assert_eq!(counters["busy"], 2);
    assert_eq!(counters["taken_over"], 4);
}

#[test]
fn a_repeated_event_id_is_processed_once_and_reports_its_first_outcome() {
    let sb = Sandbox::new();
    sb.add_task("E", "created");
    let first = sb
        .run(&[
            "advance",
            "E",
            "--to",
            "analysis",
            "--event-id",
            "gh-42",
            "--json",
        ])
        .expect(0)
        .json();
    let before = sb.dump();
    let again = sb
        .run(&[
            "advance",
            "E",
            "--to",
            "analysis",
            "--event-id",
            "gh-42",
            "--json",
        ])
        .expect(0)
        .json();
    assert_eq!(again["outcome"], "duplicate");
    assert_eq!(again["first_outcome"], first);
    assert_eq!(sb.dump(), before, "a duplicate writes nothing");

    // A refused attempt records no event id: the same id can still do its work later.
    sb.run(&["advance", "E", "--to", "done", "--event-id", "gh-43"])
        .expect(5);
    sb.run(&[
        "advance",
        "E",
        "--to",
        "architecture",
        "--event-id",
        "gh-43",
    ])
    .expect(0);
    assert_eq!(sb.sqlite("SELECT count(*) FROM events"), "2");
}

#[test]
fn the_kill_switch_and_an_out_of_scope_repo_write_where_the_cas_would_refuse() {
    for env in [
        ("ORCH_TRANSITION_LEASE_ENABLED", "false"),
        ("ORCH_TRANSITION_LEASE_REPOS", "other-repo"),
    ] {
        let sb = Sandbox::new();
        sb.add_task("K", "testing");
        // A stale actor believes the task is still in review.
        sb.run(&["advance", "K", "--to", "development", "--expect", "review"])
            .expect(4);
        assert_eq!(sb.stage_of("K"), ("testing".into(), 1));

        // Even a live lease holder does not stop the plain write.
        let me = std::process::id() as i32;
        plant_lease(
            &sb,
            "K",
            Planted {
                pid: me,
                start: pid_start_time(me),
                host: &host(),
                boot: &boot_id(),
                ns: &pid_ns(),
            },
            now_ms(),
        );
        let out = sb
            .run_env(
                &[
                    "advance",
                    "K",
                    "--to",
                    "development",
                    "--expect",
                    "review",
                    "--json",
                ],
                &[env],
            )
            .expect(0);
        assert_eq!(out.json()["guarded"], false);
        assert_eq!(sb.stage_of("K"), ("development".into(), 2), "{env:?}");
        assert_eq!(
            sb.sqlite("SELECT from_stage || '>' || to_stage || ' ' || ifnull(lease_token, 'none') FROM transitions"),
            "testing>development none",
            "the history shows the unconditional write"
        );
    }
}

#[test]
fn a_malformed_value_warns_falls_back_and_fails_doctor_naming_the_key() {
    let sb = Sandbox::new();
    sb.add_task("C", "created");
    let bad = [("ORCH_MAX_DEV_RETRIES", "abc")];
    let out = sb.run_env(&["task", "list"], &bad).expect(0);
    let warning: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(warning.len(), 1, "{}", out.stderr);
    assert!(
        warning[0].contains("ORCH_MAX_DEV_RETRIES") && warning[0].contains("using the default 3")
    );

    let doctor = sb.run_env(&["doctor", "--json"], &bad).expect(2).json();
    assert_eq!(doctor["ok"], false);
    let problems = doctor["problems"].to_string();
    assert!(problems.contains("ORCH_MAX_DEV_RETRIES"), "{problems}");
    let entry = doctor["config"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "ORCH_MAX_DEV_RETRIES")
        .unwrap()
        .clone();
    assert_eq!(entry["value"], "3");
    assert_eq!(entry["source"], "default");

    let good = sb
        .run_env(&["doctor"], &[("ORCH_MAX_DEV_RETRIES", "5")])
        .expect(0);
    assert!(
        good.stdout.contains("ORCH_MAX_DEV_RETRIES"),
        "{}",
        good.stdout
    );
    assert!(good.stdout.contains("(env)"), "{}", good.stdout);
}

#[test]
fn queue_is_one_json_document_and_reads_a_database_in_a_read_only_location() {
    let sb = Sandbox::new();
    // Missing database: not found, and no file is created.
    sb.run(&["queue", "--json"]).expect(3);
    assert!(!sb.db.exists() && !sb.db.parent().unwrap().exists());

    sb.add_task("Q1", "review");
    sb.add_task("Q2", "review");
    sb.run(&["task", "hold", "Q2", "--reason", "look"])
        .expect(0);
    let before = sb.dump();
    let files = || {
        let mut names: Vec<_> = std::fs::read_dir(sb.db.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let files_before = files();
    let json = sb.run(&["queue", "--json"]).expect(0).json();
    sb.run(&["task", "list"]).expect(0);
    sb.run(&["task", "show", "Q1"]).expect(0);
    assert_eq!(files(), files_before, "read-only commands create no file");
    for block in ["stages", "transition_lease", "alerts", "runs"] {
        assert!(json.get(block).is_some(), "block {block} missing: {json}");
    }
    let review = json["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == "review")
        .unwrap()
        .clone();
    assert_eq!(
        (review["count"].as_i64(), review["held"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(sb.dump(), before, "queue never writes");

    // The same on a read-only bind mount of the database's directory.
    let dir = sb.db.parent().unwrap();
    let script = format!(
        "mount --bind '{d}' '{d}' && mount -o remount,ro,bind '{d}' && touch '{d}/probe' 2>/dev/null && exit 99; \
         '{orch}' queue --json; echo \"exit=$?\" >&2; '{orch}' task add X --repo r --branch b; echo \"write-exit=$?\" >&2",
        d = dir.display(),
        orch = crate::support::orch_bin().display()
    );
    let out = sb.orch_shell("unshare", &["-rm", "sh", "-c", &script]);
    assert!(out.stderr.contains("exit=0"), "{}", out.stderr);
    assert!(
        out.stderr.contains("write-exit=2"),
        "a write to a read-only location is a usage error: {}",
        out.stderr
    );
    let ro: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    assert_eq!(ro["stages"], json["stages"]);
    assert_eq!(sb.dump(), before);
}

#[test]
fn a_file_that_is_not_a_database_or_is_from_a_newer_schema_is_refused_untouched() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.db.parent().unwrap()).unwrap();
    std::fs::write(&sb.db, "name,stage\nT,done\n").unwrap();
    let out = sb
        .run(&["task", "add", "T", "--repo", "r", "--branch", "b"])
        .expect(2);
    assert!(
        out.stderr.contains("is not an orch database"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 1);
    sb.run(&["queue"]).expect(2);
    assert_eq!(
        std::fs::read_to_string(&sb.db).unwrap(),
        "name,stage\nT,done\n"
    );

    std::fs::remove_file(&sb.db).unwrap();
    sb.add_task("T", "created");
    sb.sqlite("PRAGMA user_version = 999;");
    let bytes = std::fs::read(&sb.db).unwrap();
    let out = sb.run(&["advance", "T", "--to", "analysis"]).expect(2);
    assert!(
        out.stderr.contains("newer than this orch"),
        "{}",
        out.stderr
    );
    sb.run(&["queue", "--json"]).expect(2);
    assert_eq!(std::fs::read(&sb.db).unwrap(), bytes, "left untouched");
}

#[test]
fn task_add_is_idempotent_for_the_same_registration_and_refuses_a_conflicting_one() {
    let sb = Sandbox::new();
    sb.add_task("A", "created");
    let again = sb
        .run(&[
            "task", "add", "A", "--repo", "app", "--branch", "feat/A", "--json",
        ])
        .expect(0);
    assert_eq!(again.json()["outcome"], "already-registered");
    let other = sb.path().join("other.git");
    sb.add_repo("other", other.to_str().unwrap());
    let out = sb
        .run(&["task", "add", "A", "--repo", "other", "--branch", "x"])
        .expect(2);
    assert_eq!(
        out.stderr.trim(),
        "orch: task `A` is already registered with repo `app`, not `other` (hint: pick another id, or `orch task show A`)"
    );
    let out = sb
        .run(&[
            "task",
            "add",
            "A",
            "--repo",
            "app",
            "--branch",
            "feat/other",
        ])
        .expect(2);
    assert!(
        out.stderr
            .contains("with branch `feat/A`, not `feat/other`"),
        "{}",
        out.stderr
    );
    let out = sb
        .run(&["task", "add", "B", "--repo", "app", "--branch", "main"])
        .expect(2);
    assert!(
        out.stderr
            .contains("is the target or a protected branch of `app`"),
        "{}",
        out.stderr
    );
    let out = sb.run(&["advance", "A", "--to", "nowhere"]).expect(2);
    assert!(out.stderr.contains("nowhere"), "{}", out.stderr);
    let _ = Duration::ZERO;
}

#[test]
fn a_closed_pipe_is_success_and_any_other_failed_write_is_not() {
    let sb = Sandbox::new();
    sb.add_task("W", "created");
    // stdout on a full disk: the listing never reached its reader, so the command fails.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Out::from(
        sb.orch()
            .args(["task", "list"])
            .stdout(full)
            .output()
            .unwrap(),
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(
        out.stderr.trim(),
        "orch: cannot write the output to stdout: No space left on device (os error 28)"
    );
    // `orch exec` keeps timeout(1)'s codes: orch failing is 125, never a status the child had.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = Out::from(
        sb.orch()
            .args(["--json", "exec", "--", "true"])
            .stdout(full)
            .output()
            .unwrap(),
    );
    assert_eq!(out.code, 125, "{}", out.stderr);
    // stdout closed by its reader (`orch task list | head -0`): the reader had what it wanted.
    let mut child = sb
        .orch()
        .args(["task", "list"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = Out::from(child.wait_with_output().unwrap());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stderr, "");
}
