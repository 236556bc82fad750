//! Snapshots of the output people read — `task show`, `task list`, `queue`, `reap`, `doctor`,
//! `exec` and the one-line refusals — taken from the real binary, so that a change of wording,
//! alignment or exit code shows up as a diff instead of slipping past a `.contains()`.
//!
//! Each snapshot holds the exit code, stdout and stderr of one command. What differs from run to
//! run (the sandbox's path, times, ages, pids, commit ids, the host, load figures) is redacted by
//! a filter that names it (`pid [PID]`), never by dropping the line.
//!
//! After an intended change of output, update and review:
//!
//! ```text
//! INSTA_UPDATE=always cargo test --all-features --test cli snapshots
//! git diff tests/cli/snapshots/
//! ```
//!
//! Under CI (`CI` set, and `.ci/run` says `INSTA_UPDATE=no`) insta writes nothing: a mismatch or
//! a missing snapshot fails the test.

use std::process::Command;

use orch::host;

use crate::reap::{dead_process, plant_run, Place};
use crate::support::{Fixture, Out, Sandbox};

/// An age as `ui::age` prints it: `3s`, `4m 2s`, `2h 5m`.
const AGE: &str = r"(?:\d+h \d+m|\d+m \d+s|\d+s)";

/// A merge-gate suite that fails at once, with a pytest-like last line.
const RED_SUITE: &str = "echo 'FAILED test_calc.py::test_add - assert 5 == 6'; exit 1";

/// Runs `orch ARGS…` in the sandbox with what could change its wording pinned: the C locale
/// (git's messages), no terminal width (clap's wrapping) and no forced colour.
fn orch(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd: Command = sb.orch();
    for key in ["COLUMNS", "LINES", "CLICOLOR_FORCE", "LANGUAGE"] {
        cmd.env_remove(key);
    }
    cmd.env("LC_ALL", "C").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Out::from(cmd.output().expect("orch runs"))
}

/// Exit code, stdout and stderr as one text.
fn render(out: &Out) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.code, out.stdout, out.stderr
    )
}

/// `text` with every regex metacharacter escaped.
fn literal(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The redactions every snapshot gets: what differs between runs and machines.
fn settings(sb: &Sandbox, command: &str) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    s.set_description(command);
    // The sandbox is a fresh temporary directory each run.
    s.add_filter(&literal(sb.path().to_str().unwrap()), "[TMP]");
    // `ui::timestamp` (RFC 3339, to the second) and its space-separated form.
    s.add_filter(
        r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?Z",
        "[TIME]",
    );
    // Fixture commits carry the wall clock, so their ids differ every run.
    s.add_filter(r"\b[0-9a-f]{40}\b", "[SHA]");
    s.add_filter(r"\bpid \d+", "pid [PID]");
    s.add_filter(r"\bpgid \d+", "pgid [PID]");
    s.add_filter(r"process\(es\) \[\d+(?:, \d+)*\]", "process(es) [PIDS]");
    s.add_filter(
        &format!(r"\bon {}\b", literal(host::host_name())),
        "on [HOST]",
    );
    s.add_filter(&literal(host::boot_id()), "[BOOT-ID]");
    s.add_filter(&format!(r"\({AGE} ago\)"), "([AGE] ago)");
    // PATH differs between machines: where `doctor` found a program.
    s.add_filter(r"found \(/[^)]*\)", "found ([PATH])");
    // The runner's timeout evidence: the suite's times at this moment, the verdict drawn from
    // them, and this machine's load and CPUs.
    s.add_filter(
        r"the suite ran \d+\.\d{2} CPU-s and waited \d+\.\d{2} s for a CPU in \d+\.\d{2} s \(\d+ process\(es\)\): (?:hung|starved|busy); load \d+\.\d{2} on \d+ CPUs",
        "the suite ran [CPU-S] CPU-s and waited [WAIT-S] s for a CPU in [WALL-S] s ([N] process(es)): [VERDICT]; load [LOAD] on [CPUS] CPUs",
    );
    s
}

/// Snapshots `out` as `name`, with the common redactions and `extra` ones (regex, replacement).
fn snapshot(name: &str, sb: &Sandbox, command: &str, out: &Out, extra: &[(&str, &str)]) {
    let mut s = settings(sb, command);
    for (regex, replacement) in extra {
        s.add_filter(regex, *replacement);
    }
    s.bind(|| insta::assert_snapshot!(name, render(out)));
}

/// `task list`'s age column (`{:<8}` and two spaces): the redaction keeps its width, so the
/// snapshot still pins the alignment.
fn list_age() -> (String, &'static str) {
    (format!(r"(?m)^(\S+  +\S+ +\d+  ){AGE} +"), "${1}[AGE]     ")
}

/// `queue`'s `oldest` column, the last of a stage row.
fn queue_oldest() -> (String, &'static str) {
    (format!(r"(?m)^(  \S+ +\d+ +\d+  ){AGE}$"), "${1}[AGE]")
}

#[test]
fn task_show_tells_the_story_of_transitions_a_red_gate_and_a_hold() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let tip = fx.commit_branch("feat/t", "main", &[("notes.txt", "t\n")], "notes");
    // main moves on, so the merge gate rebases and really runs the suite.
    fx.advance_remote_main(&[("main.txt", "m\n")], "main moves");
    fx.add_task(&sb, "T", "feat/t", "created");
    for stage in [
        "analysis",
        "architecture",
        "development",
        "review",
        "testing",
    ] {
        let reason = format!("to {stage}");
        orch(
            &sb,
            &[
                "advance", "T", "--to", stage, "--actor", "ci-bot", "--reason", &reason,
            ],
            &[],
        )
        .expect(0);
    }
    orch(
        &sb,
        &[
            "advance",
            "T",
            "--to",
            "deploy-staging",
            "--actor",
            "ci-bot",
            "--validated-sha",
            &tip,
        ],
        &[],
    )
    .expect(0);
    let red = orch(
        &sb,
        &["advance", "T", "--to", "deploy", "--actor", "ci-bot"],
        &[("ORCH_MERGE_RETEST_CMD", RED_SUITE)],
    );
    snapshot(
        "advance_gate_red",
        &sb,
        "orch advance T --to deploy (merge gate red)",
        &red,
        &[],
    );
    // The red verdict and the rollback it causes are written in one transaction, but each reads
    // the clock on its own: they can land in the same millisecond, or the verdict's clock read
    // can even come out later. `task show` orders by the history's sequence, not by time: the
    // red gate comes first either way.
    sb.sqlite(
        "UPDATE gate_events SET at = (SELECT at FROM transitions WHERE version = 8) + 1
         WHERE gate = 'merge'",
    );
    let json = orch(&sb, &["--json", "task", "show", "T"], &[])
        .expect(0)
        .json();
    let order: Vec<String> = json["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| match i["kind"].as_str().unwrap() {
            "gate" => format!("gate {} {}", i["gate"], i["outcome"]),
            kind => format!("{kind} v{}", i["version"]),
        })
        .collect();
    let red_at = order.iter().position(|i| i == "gate \"merge\" \"red\"");
    let rollback_at = order.iter().position(|i| i == "transition v8");
    assert!(
        red_at.is_some() && red_at < rollback_at,
        "the red gate before its rollback: {order:?}"
    );
    let seqs: Vec<i64> = json["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["seq"].as_i64().expect("every row numbered"))
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    let held = orch(
        &sb,
        &[
            "task",
            "hold",
            "T",
            "--reason",
            "suite flaky on main",
            "--actor",
            "alice",
        ],
        &[],
    );
    snapshot("task_hold", &sb, "orch task hold T", &held, &[]);
    let show = orch(&sb, &["task", "show", "T"], &[]);
    snapshot(
        "task_show_held",
        &sb,
        "orch task show T (on HOLD)",
        &show,
        &[],
    );

    let released = orch(&sb, &["task", "release", "T", "--actor", "alice"], &[]);
    snapshot("task_release", &sb, "orch task release T", &released, &[]);
    orch(
        &sb,
        &[
            "advance", "T", "--to", "review", "--actor", "dev-bot", "--reason", "fixed",
        ],
        &[],
    )
    .expect(0);
    let show = orch(&sb, &["task", "show", "T"], &[]);
    snapshot("task_show", &sb, "orch task show T", &show, &[]);

    // The red gate's run, named by `task show`: its command, outcome, times, timeout, evidence
    // and captured output.
    assert!(show.stdout.contains("(run 1)"), "{}", show.stdout);
    let before = sb.dump();
    let run = orch(&sb, &["run", "show", "1"], &[]);
    snapshot(
        "run_show",
        &sb,
        "orch run show 1",
        &run,
        &[(r"took .*?   timeout", "took [DURATION]   timeout")],
    );
    let json = orch(&sb, &["--json", "run", "show", "1"], &[])
        .expect(0)
        .json();
    assert_eq!(json["id"], 1);
    assert_eq!(json["task_id"], "T");
    assert_eq!(json["outcome"], "red");
    assert_eq!(json["exit_status"], 1);
    assert!(
        json["output"].as_str().unwrap().contains("assert 5 == 6"),
        "{json}"
    );
    assert!(json["finished_at"].as_i64().unwrap() >= json["started_at"].as_i64().unwrap());
    assert!(json["timeout_ms"].as_i64().unwrap() > 0, "{json}");
    let missing = orch(&sb, &["run", "show", "999"], &[]).expect(3);
    assert_eq!(missing.stdout, "");
    assert_eq!(missing.stderr.lines().count(), 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("run 999 not found"),
        "{}",
        missing.stderr
    );
    assert_eq!(sb.dump(), before, "reading a run writes nothing");
}

/// A database with tasks in several stages, one held, one rolled back by a red gate and one
/// re-queued after an infra failure (its remote is gone) on its way to a goal of `done`.
fn busy_queue() -> Sandbox {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let lib = Fixture::named(&sb, "lib");
    let red_tip = fx.commit_branch("feat/a-red", "main", &[("a.txt", "a\n")], "a");
    fx.advance_remote_main(&[("main.txt", "m\n")], "main moves");
    lib.commit_branch("feat/b-infra", "main", &[("b.txt", "b\n")], "b");

    fx.add_task(&sb, "A-RED", "feat/a-red", "testing");
    lib.add_task_in(&sb, "lib", "B-INFRA", "feat/b-infra", "deploy-staging");
    sb.add_task("C-NEW", "created");
    sb.add_task("D-HELD", "review");
    sb.add_task("E-DEV", "architecture");

    orch(
        &sb,
        &[
            "advance",
            "A-RED",
            "--to",
            "deploy-staging",
            "--actor",
            "ci-bot",
            "--validated-sha",
            &red_tip,
        ],
        &[],
    )
    .expect(0);
    orch(
        &sb,
        &["advance", "A-RED", "--to", "deploy", "--actor", "ci-bot"],
        &[("ORCH_MERGE_RETEST_CMD", RED_SUITE)],
    )
    .expect(10);
    std::fs::rename(&lib.remote, sb.path().join("gone.git")).unwrap();
    orch(
        &sb,
        &[
            "advance", "B-INFRA", "--to", "deploy", "--goal", "done", "--actor", "ci-bot",
        ],
        &[("ORCH_MERGE_INFRA_RETRY_BACKOFF_S", "3600")],
    )
    .expect(11);
    orch(
        &sb,
        &[
            "advance",
            "E-DEV",
            "--to",
            "development",
            "--actor",
            "ci-bot",
        ],
        &[],
    )
    .expect(0);
    orch(
        &sb,
        &[
            "task",
            "hold",
            "D-HELD",
            "--reason",
            "waiting for the security review",
            "--actor",
            "alice",
        ],
        &[],
    )
    .expect(0);
    sb
}

#[test]
fn task_list_and_queue_on_a_busy_database() {
    let sb = busy_queue();
    let (age, age_to) = list_age();
    let list = orch(&sb, &["task", "list"], &[]);
    snapshot("task_list", &sb, "orch task list", &list, &[(&age, age_to)]);
    let list = orch(&sb, &["task", "list", "--stage", "development"], &[]);
    snapshot(
        "task_list_stage",
        &sb,
        "orch task list --stage development",
        &list,
        &[(&age, age_to)],
    );
    let list = orch(&sb, &["task", "list", "--stage", "done"], &[]);
    snapshot(
        "task_list_stage_empty",
        &sb,
        "orch task list --stage done",
        &list,
        &[],
    );

    let (oldest, oldest_to) = queue_oldest();
    let queue = orch(&sb, &["queue"], &[]);
    snapshot(
        "queue",
        &sb,
        "orch queue",
        &queue,
        &[(&oldest, oldest_to), (r"\(in \d+s\)", "(in [SECS]s)")],
    );

    let next = orch(&sb, &["advance", "--next", "--actor", "cron"], &[]);
    snapshot(
        "advance_next_not_due",
        &sb,
        "orch advance --next (a re-queue not due yet)",
        &next,
        &[],
    );
}

#[test]
fn reap_on_an_idle_database() {
    let sb = Sandbox::new();
    sb.add_task("I", "created");
    let dry = orch(&sb, &["reap", "--dry-run"], &[]);
    snapshot(
        "reap_dry_run_idle",
        &sb,
        "orch reap --dry-run (nothing to do)",
        &dry,
        &[],
    );
    let reap = orch(&sb, &["reap"], &[]);
    snapshot("reap_idle", &sb, "orch reap (nothing to do)", &reap, &[]);
}

#[test]
fn reap_of_a_dead_owner_s_run_and_lease() {
    let sb = Sandbox::new();
    sb.add_task("D", "deploy-staging");
    let owner = dead_process();
    // Its suite's leader is dead too: nothing is signalled, whatever the machine runs.
    plant_run(&sb, Some("D"), owner, dead_process(), &Place::here());
    sb.sqlite(&format!(
        "INSERT INTO transition_lease (task_id, owner, owner_pid, owner_pid_start, boot_id, pid_ns,
             host, acquired_at, renewed_at, expires_at, renewed_boot_ms, ttl_ms)
         VALUES ('D', 'ci (orch advance)', {}, {}, '{}', '{}', '{}', 0, 0, 60000, {}, 60000);",
        owner.0,
        owner.1,
        host::boot_id(),
        host::pid_namespace(),
        host::host_name(),
        host::boot_ms()
    ));
    let dry = orch(&sb, &["reap", "--dry-run"], &[]);
    snapshot(
        "reap_dry_run_dead_owner",
        &sb,
        "orch reap --dry-run (a dead owner's run and lease)",
        &dry,
        &[],
    );
    let reap = orch(&sb, &["reap"], &[]);
    snapshot(
        "reap_dead_owner",
        &sb,
        "orch reap (a dead owner's run and lease)",
        &reap,
        &[],
    );
    assert_eq!(
        sb.sqlite("SELECT count(*) FROM transition_lease"),
        "0",
        "the dead owner's lease is gone"
    );
}

#[test]
fn doctor_on_a_clean_config_and_with_a_bad_value() {
    let sb = Sandbox::new();
    sb.add_task("A", "created");
    let clean = orch(&sb, &["doctor"], &[]);
    snapshot("doctor_clean", &sb, "orch doctor", &clean, &[]);
    let bad = orch(&sb, &["doctor"], &[("ORCH_KILL_GRACE_S", "abc")]);
    snapshot(
        "doctor_bad_value",
        &sb,
        "ORCH_KILL_GRACE_S=abc orch doctor",
        &bad,
        &[],
    );
}

#[test]
fn refusals_are_one_line_with_their_exit_code() {
    let sb = Sandbox::new();
    sb.add_task("T", "review");
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            "error_unknown_task",
            "orch advance NOPE --to testing",
            &["advance", "NOPE", "--to", "testing"],
        ),
        (
            "error_illegal_transition",
            "orch advance T --to done",
            &["advance", "T", "--to", "done"],
        ),
        (
            "error_lost_race",
            "orch advance T --to review --expect development",
            &["advance", "T", "--to", "review", "--expect", "development"],
        ),
        (
            "error_unknown_stage",
            "orch task list --stage bogus",
            &["task", "list", "--stage", "bogus"],
        ),
    ];
    for (name, command, args) in cases {
        let out = orch(&sb, args, &[]);
        snapshot(name, &sb, command, &out, &[]);
    }

    orch(
        &sb,
        &[
            "task",
            "hold",
            "T",
            "--reason",
            "flaky suite",
            "--actor",
            "alice",
        ],
        &[],
    )
    .expect(0);
    let out = orch(&sb, &["advance", "T", "--to", "testing"], &[]);
    snapshot(
        "error_on_hold",
        &sb,
        "orch advance T --to testing",
        &out,
        &[],
    );

    let out = orch(&sb, &["advance", "--next", "--actor", "cron"], &[]);
    snapshot(
        "advance_next_nothing_due",
        &sb,
        "orch advance --next (no re-queue)",
        &out,
        &[],
    );

    let not_a_db = Sandbox::new();
    std::fs::create_dir_all(not_a_db.db.parent().unwrap()).unwrap();
    std::fs::write(&not_a_db.db, "not a database, just text\n".repeat(200)).unwrap();
    let out = orch(&not_a_db, &["task", "show", "T"], &[]);
    snapshot(
        "error_not_a_database",
        &not_a_db,
        "orch task show T (the file is not a database)",
        &out,
        &[],
    );
}

#[test]
fn exec_reports_a_red_command_and_a_timeout() {
    let sb = Sandbox::new();
    let red = orch(&sb, &["exec", "--", "sh", "-c", "exit 3"], &[]);
    snapshot("exec_red", &sb, "orch exec -- sh -c 'exit 3'", &red, &[]);
    let timeout = orch(&sb, &["exec", "--timeout", "1s", "--", "sleep", "30"], &[]);
    snapshot(
        "exec_timeout",
        &sb,
        "orch exec --timeout 1s -- sleep 30",
        &timeout,
        &[],
    );
}

/// A merge-gate suite whose last output line tries to clear the screen and set the title.
const HOSTILE_SUITE: &str = r"printf 'FAILED \033[2J\033]0;pwned\007\tend\n'; exit 1";

/// The same in SQL, with a newline: a reason as an older orch (or another writer) stored it.
const HOSTILE_SQL: &str =
    "char(27) || '[2J' || char(27) || ']0;pwned' || char(7) || char(10) || 'line two'";

#[test]
fn untrusted_text_prints_escaped_on_one_line() {
    let sb = Sandbox::new();
    let fx = Fixture::new(&sb);
    let lib = Fixture::named(&sb, "lib");
    let tip = fx.commit_branch("feat/evil", "main", &[("e.txt", "e\n")], "e");
    fx.advance_remote_main(&[("main.txt", "m\n")], "main moves");
    lib.commit_branch("feat/infra", "main", &[("i.txt", "i\n")], "i");
    fx.add_task(&sb, "EVIL", "feat/evil", "testing");
    lib.add_task_in(&sb, "lib", "INFRA", "feat/infra", "deploy-staging");
    orch(
        &sb,
        &[
            "advance",
            "EVIL",
            "--to",
            "deploy-staging",
            "--actor",
            "ci-bot",
            "--validated-sha",
            &tip,
        ],
        &[],
    )
    .expect(0);
    // The suite's last line becomes the rollback reason.
    let red = orch(
        &sb,
        &["advance", "EVIL", "--to", "deploy", "--actor", "ci-bot"],
        &[("ORCH_MERGE_RETEST_CMD", HOSTILE_SUITE)],
    );
    snapshot(
        "advance_gate_red_hostile",
        &sb,
        "orch advance EVIL --to deploy (hostile suite)",
        &red,
        &[],
    );
    sb.sqlite(
        "UPDATE gate_events SET at = (SELECT max(at) FROM transitions WHERE task_id = 'EVIL')
         WHERE task_id = 'EVIL' AND gate = 'merge'",
    );
    // A reason with control characters is refused now; the one stored below stands for a row
    // written before that (or by another writer), which must still print safely.
    let refused = orch(
        &sb,
        &[
            "task",
            "hold",
            "EVIL",
            "--reason",
            "x\u{1b}]0;pwned\u{7}",
            "--actor",
            "alice",
        ],
        &[],
    );
    snapshot(
        "task_hold_hostile_refused",
        &sb,
        "orch task hold EVIL --reason (control characters)",
        &refused,
        &[],
    );
    orch(
        &sb,
        &[
            "task",
            "hold",
            "EVIL",
            "--reason",
            "placeholder",
            "--actor",
            "alice",
        ],
        &[],
    )
    .expect(0);
    sb.sqlite(&format!(
        "UPDATE tasks SET hold_reason = 'held: ' || {HOSTILE_SQL} WHERE id = 'EVIL';
         UPDATE holds SET reason = 'held: ' || {HOSTILE_SQL} WHERE task_id = 'EVIL';"
    ));
    // An infra re-queue whose reason came from outside.
    std::fs::rename(&lib.remote, sb.path().join("gone.git")).unwrap();
    orch(
        &sb,
        &["advance", "INFRA", "--to", "deploy", "--actor", "ci-bot"],
        &[("ORCH_MERGE_INFRA_RETRY_BACKOFF_S", "3600")],
    )
    .expect(11);
    sb.sqlite(&format!(
        "UPDATE requeues SET reason = 'infra: ' || {HOSTILE_SQL} WHERE task_id = 'INFRA'"
    ));

    let show = orch(&sb, &["task", "show", "EVIL"], &[]);
    snapshot(
        "task_show_hostile",
        &sb,
        "orch task show EVIL (hostile reasons)",
        &show,
        &[],
    );
    let (age, age_to) = list_age();
    let list = orch(&sb, &["task", "list"], &[]);
    snapshot(
        "task_list_hostile",
        &sb,
        "orch task list (hostile reasons)",
        &list,
        &[(&age, age_to)],
    );
    let (oldest, oldest_to) = queue_oldest();
    let queue = orch(&sb, &["queue"], &[]);
    snapshot(
        "queue_hostile",
        &sb,
        "orch queue (hostile re-queue reason)",
        &queue,
        &[(&oldest, oldest_to), (r"\(in \d+s\)", "(in [SECS]s)")],
    );
    let held = orch(
        &sb,
        &["advance", "EVIL", "--to", "review", "--actor", "ci-bot"],
        &[],
    );
    snapshot(
        "error_on_hold_hostile",
        &sb,
        "orch advance EVIL (on a hostile HOLD)",
        &held,
        &[],
    );
    for out in [&red, &refused, &show, &list, &queue, &held] {
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(!all.chars().any(|c| c.is_control() && c != '\n'), "{all:?}");
    }
    // --json stays exact.
    let json = orch(&sb, &["task", "show", "EVIL", "--json"], &[])
        .expect(0)
        .json();
    assert!(json["task"]["hold_reason"]
        .as_str()
        .unwrap()
        .contains("\u{1b}[2J\u{1b}]0;pwned\u{7}\nline two"));
}
