//! The contract's order of checks, pinned for each entry point that runs it: task exists (3) →
//! event id already seen (0, its first outcome) → the edge `(expect or current) → to` is in the
//! table (5) → HOLD (6) → due time of a re-queued edge (11, unless `--force`) → lease (4) →
//! CAS (4). Each case builds a task on which its check *and every later one* fails, so only the
//! order decides the exit code; each asserts the code, a one-line reason, and that nothing was
//! written.
//!
//! The entry points: `orch advance ID --to S [--expect S]`, `orch merge-gate retest ID` (its edge
//! is always `deploy-staging → deploy`, so the edge check never fails there) and `orch advance
//! --next` (see its cases at the end for which checks cannot apply to it).
//!
//! States no command creates (a re-queue row, a lease held by a live process, a task that another
//! actor moved on) are written with sqlite3, with the columns of `src/store/schema.rs`.

use std::process::{Child, Command};

use crate::support::{pid_start_time, Out, Sandbox, DOMAIN_TABLES};

/// Tables a refused step must leave alone: the domain tables and the re-queue state.
const UNTOUCHED: &[&str] = &["requeues", "edge_budgets", "verdicts", "merge_locks"];

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `sqlite3 .dump` of every table a refusal must not change (counters may count the attempt).
fn state(sb: &Sandbox) -> String {
    sb.sqlite("PRAGMA wal_checkpoint(TRUNCATE);");
    DOMAIN_TABLES
        .iter()
        .chain(UNTOUCHED)
        .map(|t| {
            let out = Command::new("sqlite3")
                .arg(&sb.db)
                .arg(format!(".dump {t}"))
                .output()
                .expect("the sqlite3 shell runs");
            String::from_utf8_lossy(&out.stdout).into_owned()
        })
        .collect()
}

/// A `sleep` process holding the task's lease, judged alive: this host, boot and pid namespace,
/// its real start time. Killed when dropped.
struct LiveHolder(Child);

impl LiveHolder {
    fn plant(sb: &Sandbox, task: &str) -> LiveHolder {
        let child = Command::new("sleep").arg("1000").spawn().unwrap();
        let pid = child.id() as i32;
        let read = |p: &str| std::fs::read_to_string(p).unwrap().trim().to_string();
        let boot = read("/proc/sys/kernel/random/boot_id");
        let host = read("/proc/sys/kernel/hostname");
        let ns = std::fs::read_link("/proc/self/ns/pid")
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let now = now_ms();
        sb.sqlite(&format!(
            "INSERT INTO transition_lease (task_id, owner, owner_pid, owner_pid_start, boot_id,
                 pid_ns, host, acquired_at, renewed_at, expires_at, renewed_boot_ms, ttl_ms)
             VALUES ('{task}', 'planted holder (test)', {pid}, {start}, '{boot}', '{ns}',
                     '{host}', {now}, {now}, {now} + 600000, 0, 600000)",
            start = pid_start_time(pid),
        ));
        LiveHolder(child)
    }
}

impl Drop for LiveHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// When a planted re-queue is due.
#[derive(Clone, Copy)]
enum Due {
    /// In an hour: refused with 11 unless forced.
    Later,
    /// A minute ago.
    Past,
}

/// A re-queue of `from → to` for `task`, written by another boot so that the wall clock decides
/// when it is due.
fn requeue(sb: &Sandbox, task: &str, from: &str, to: &str, due: Due) {
    let now = now_ms();
    let due_at = match due {
        Due::Later => now + 3_600_000,
        Due::Past => now - 60_000,
    };
    sb.sqlite(&format!(
        "INSERT INTO requeues (task_id, from_stage, to_stage, kind, attempt, reason, due_at,
             due_boot_ms, boot_id, created_at)
         VALUES ('{task}', '{from}', '{to}', 'infra', 1, 'merge timeout (planted)', {due_at}, 0,
                 'planted-boot (test)', {now})"
    ));
}

fn hold(sb: &Sandbox, task: &str) {
    sb.run(&["task", "hold", task, "--reason", "a human looks"])
        .expect(0);
}

/// Another actor moved the task on to `stage` behind this one's back.
fn moved_on(sb: &Sandbox, task: &str, stage: &str) {
    sb.sqlite(&format!(
        "UPDATE tasks SET stage = '{stage}', version = version + 1 WHERE id = '{task}'"
    ));
}

/// A task whose event `ev-1` was processed (created → analysis), then moved on to `stage`.
fn task_with_seen_event(sb: &Sandbox, task: &str, stage: &str) {
    sb.add_task(task, "created");
    sb.run(&["advance", task, "--to", "analysis", "--event-id", "ev-1"])
        .expect(0);
    moved_on(sb, task, stage);
}

/// Runs `args`, expects `code` with one stderr line containing `reason`, and nothing written.
#[track_caller]
fn refused(sb: &Sandbox, args: &[&str], code: i32, reason: &str) -> Out {
    let before = state(sb);
    let out = sb.run(args).expect(code);
    assert_eq!(
        out.stderr.lines().count(),
        1,
        "one line on stderr for {args:?}:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(reason),
        "{args:?}: stderr should name `{reason}`:\n{}",
        out.stderr
    );
    assert_eq!(state(sb), before, "{args:?} wrote something");
    out
}

/// Runs `args`, expects exit 0 with `said` on stdout, nothing on stderr, and nothing written.
#[track_caller]
fn done_without_writing(sb: &Sandbox, args: &[&str], said: &str) -> Out {
    let before = state(sb);
    let out = sb.run(args).expect(0);
    assert!(
        out.stdout.contains(said),
        "{args:?}: stdout should say `{said}`:\n{}",
        out.stdout
    );
    assert_eq!(out.stderr, "", "{args:?}: nothing on stderr");
    assert_eq!(state(sb), before, "{args:?} wrote something");
    out
}

// ---- orch advance ID --to S [--expect S] ----

#[test]
fn advance_a_missing_task_is_3_before_its_seen_event_and_illegal_edge() {
    let sb = Sandbox::new();
    task_with_seen_event(&sb, "OTHER", "analysis");
    refused(
        &sb,
        &[
            "advance",
            "NOPE",
            "--to",
            "done",
            "--expect",
            "review",
            "--event-id",
            "ev-1",
        ],
        3,
        "task `NOPE` not found",
    );
}

#[test]
fn advance_a_seen_event_is_0_on_a_held_moved_leased_requeued_task_with_an_illegal_edge() {
    let sb = Sandbox::new();
    task_with_seen_event(&sb, "T", "deploy");
    hold(&sb, "T");
    requeue(&sb, "T", "deploy-staging", "deploy", Due::Later);
    let _holder = LiveHolder::plant(&sb, "T");
    done_without_writing(
        &sb,
        &[
            "advance",
            "T",
            "--to",
            "done",
            "--expect",
            "review",
            "--event-id",
            "ev-1",
        ],
        "already processed",
    );
}

#[test]
fn advance_an_illegal_edge_is_5_on_a_held_moved_leased_requeued_task() {
    let sb = Sandbox::new();
    sb.add_task("T", "deploy");
    hold(&sb, "T");
    requeue(&sb, "T", "deploy-staging", "deploy", Due::Later);
    let _holder = LiveHolder::plant(&sb, "T");
    refused(
        &sb,
        &["advance", "T", "--to", "done", "--expect", "review"],
        5,
        "illegal transition `review → done`",
    );
}

#[test]
fn advance_hold_is_6_before_a_not_due_requeue_a_live_lease_and_a_moved_task() {
    let sb = Sandbox::new();
    sb.add_task("T", "deploy");
    hold(&sb, "T");
    requeue(&sb, "T", "deploy-staging", "deploy", Due::Later);
    let _holder = LiveHolder::plant(&sb, "T");
    refused(
        &sb,
        &[
            "advance",
            "T",
            "--to",
            "deploy",
            "--expect",
            "deploy-staging",
        ],
        6,
        "is on HOLD",
    );
}

#[test]
fn advance_a_not_due_requeue_is_11_before_a_live_lease_and_a_moved_task() {
    let sb = Sandbox::new();
    sb.add_task("T", "deploy");
    requeue(&sb, "T", "deploy-staging", "deploy", Due::Later);
    let _holder = LiveHolder::plant(&sb, "T");
    refused(
        &sb,
        &[
            "advance",
            "T",
            "--to",
            "deploy",
            "--expect",
            "deploy-staging",
        ],
        11,
        "is re-queued",
    );
}

/// Fails today: `advance` compares the stage with `--expect` before it looks at the lease, so the
/// loser is told where the task is, not who holds it.
#[test]
fn advance_a_live_lease_is_4_naming_its_holder_before_the_moved_task() {
    let sb = Sandbox::new();
    sb.add_task("T", "deploy");
    // Not due, but forced: the due check passes and the lease decides.
    requeue(&sb, "T", "deploy-staging", "deploy", Due::Later);
    let _holder = LiveHolder::plant(&sb, "T");
    refused(
        &sb,
        &[
            "advance",
            "T",
            "--to",
            "deploy",
            "--expect",
            "deploy-staging",
            "--force",
        ],
        4,
        "is held by planted holder (test)",
    );
}

#[test]
fn advance_a_moved_task_is_4_naming_where_it_is() {
    let sb = Sandbox::new();
    sb.add_task("T", "deploy");
    refused(
        &sb,
        &[
            "advance",
            "T",
            "--to",
            "deploy",
            "--expect",
            "deploy-staging",
        ],
        4,
        "is at `deploy`",
    );
}

// ---- orch merge-gate retest ID: the edge is deploy-staging → deploy, always in the table ----

#[test]
fn retest_a_missing_task_is_3_before_its_seen_event() {
    let sb = Sandbox::new();
    task_with_seen_event(&sb, "OTHER", "analysis");
    refused(
        &sb,
        &["merge-gate", "retest", "NOPE", "--event-id", "ev-1"],
        3,
        "task `NOPE` not found",
    );
}

#[test]
fn retest_a_seen_event_is_0_on_a_held_moved_leased_requeued_task() {
    let sb = Sandbox::new();
    task_with_seen_event(&sb, "T", "deploy");
    hold(&sb, "T");
    requeue(&sb, "T", "deploy-staging", "deploy", Due::Later);
    let _holder = LiveHolder::plant(&sb, "T");
    done_without_writing(
        &sb,
        &["merge-gate", "retest", "T", "--event-id", "ev-1"],
        "already processed",
    );
}

/// The known bug: today the retest compares the stage before every other check and exits 4.
#[test]
fn retest_hold_is_6_on_a_task_that_moved_past_deploy_staging() {
    let sb = Sandbox::new();
    sb.add_task("T", "deploy");
    hold(&sb, "T");
    requeue(&sb, "T", "deploy-staging", "deploy", Due::Later);
    let _holder = LiveHolder::plant(&sb, "T");
    refused(&sb, &["merge-gate", "retest", "T"], 6, "is on HOLD");
}

/// Fails today for the same reason as the HOLD case: the stage is compared first (exit 4).
#[test]
fn retest_a_not_due_requeue_is_11_before_a_live_lease_and_a_moved_task() {
    let sb = Sandbox::new();
    sb.add_task("T", "deploy");
    requeue(&sb, "T", "deploy-staging", "deploy", Due::Later);
    let _holder = LiveHolder::plant(&sb, "T");
    refused(&sb, &["merge-gate", "retest", "T"], 11, "is re-queued");
}

/// Fails today for the same reason: exit 4, but naming the stage instead of the holder.
#[test]
fn retest_a_live_lease_is_4_naming_its_holder_before_the_moved_task() {
    let sb = Sandbox::new();
    sb.add_task("T", "deploy");
    requeue(&sb, "T", "deploy-staging", "deploy", Due::Later);
    let _holder = LiveHolder::plant(&sb, "T");
    refused(
        &sb,
        &["merge-gate", "retest", "T", "--force"],
        4,
        "is held by planted holder (test)",
    );
}

#[test]
fn retest_a_moved_task_is_4_naming_where_it_is() {
    let sb = Sandbox::new();
    sb.add_task("T", "deploy");
    refused(&sb, &["merge-gate", "retest", "T"], 4, "is at `deploy`");
}

// ---- orch advance --next ----
//
// The claim (one `UPDATE … RETURNING`) takes only a due re-queue whose task exists, is not held
// and is not leased, so most checks cannot fail after it: the task exists (a re-queue row refers
// to its task), there is no event id (`--next` takes none), the edge was in the table when it
// was re-queued, a held or leased task and a re-queue not yet due are simply not claimed (exit 0,
// nothing due; `--force` is refused with `--next`). What is left is the CAS: the task moved on
// after its edge was re-queued.

#[test]
fn next_with_nothing_due_is_0_and_writes_nothing() {
    let sb = Sandbox::new();
    sb.add_task("T", "deploy-staging");
    done_without_writing(&sb, &["advance", "--next"], "nothing due");
}

#[test]
fn next_claims_no_held_no_leased_and_no_not_yet_due_requeue() {
    let sb = Sandbox::new();
    sb.add_task("HELD", "deploy-staging");
    hold(&sb, "HELD");
    requeue(&sb, "HELD", "deploy-staging", "deploy", Due::Past);
    sb.add_task("LEASED", "deploy-staging");
    requeue(&sb, "LEASED", "deploy-staging", "deploy", Due::Past);
    let _holder = LiveHolder::plant(&sb, "LEASED");
    sb.add_task("LATER", "deploy-staging");
    requeue(&sb, "LATER", "deploy-staging", "deploy", Due::Later);
    done_without_writing(&sb, &["advance", "--next"], "nothing due");
}

#[test]
fn next_a_due_requeue_of_a_task_that_moved_on_is_4_and_drops_the_stale_requeue() {
    next_moved_on(&[]);
}

/// The kill-switch turns lease and CAS into plain writes, but a claimed re-queue of an edge the
/// task has left is still stale: running it would write an edge the table does not have.
#[test]
fn next_under_the_kill_switch_still_refuses_a_requeue_of_an_edge_the_task_has_left() {
    next_moved_on(&[("ORCH_TRANSITION_LEASE_ENABLED", "false")]);
}

fn next_moved_on(env: &[(&str, &str)]) {
    let sb = Sandbox::new();
    sb.add_task("T", "deploy");
    requeue(&sb, "T", "deploy-staging", "deploy", Due::Past);
    let before = state(&sb);
    let out = sb.run_env(&["advance", "--next"], env).expect(4);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("is at `deploy`"), "{}", out.stderr);
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM requeues"),
        "0",
        "the stale re-queue is dropped"
    );
    // Nothing else changed: no stage write, no history, the lease taken for the claim released.
    let without_requeue = |dump: &str| {
        dump.lines()
            .filter(|l| !l.starts_with("INSERT INTO requeues"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(without_requeue(&state(&sb)), without_requeue(&before));
    assert_eq!(sb.stage_of("T"), ("deploy".into(), 1));
}
