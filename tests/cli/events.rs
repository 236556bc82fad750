//! Event ids are scoped to their task: the same id on another task is another event, and an id
//! orch could not use (empty, longer than 200 bytes) is refused before anything is written.

use crate::support::Sandbox;

#[test]
fn the_same_event_id_on_two_tasks_moves_both() {
    let sb = Sandbox::new();
    sb.add_task("A", "created");
    sb.add_task("B", "created");
    for id in ["A", "B"] {
        sb.run(&["advance", id, "--to", "analysis", "--event-id", "ci-1"])
            .expect(0);
        assert_eq!(sb.stage_of(id), ("analysis".to_string(), 2));
    }
    // Re-delivered to A, the id is a duplicate of A's event only.
    let again = sb
        .run(&[
            "--json",
            "advance",
            "A",
            "--to",
            "analysis",
            "--event-id",
            "ci-1",
        ])
        .expect(0);
    assert_eq!(again.json()["outcome"], "duplicate");
    assert_eq!(sb.stage_of("A"), ("analysis".to_string(), 2));
    assert_eq!(
        sb.sqlite("SELECT task_id, event_id FROM events ORDER BY task_id"),
        "A|ci-1\nB|ci-1"
    );
}

#[test]
fn an_empty_or_overlong_event_id_is_refused_and_writes_nothing() {
    let sb = Sandbox::new();
    sb.add_task("A", "created");
    let before = sb.dump();
    let long = "e".repeat(201);
    for (event_id, why) in [
        ("", "is empty"),
        ("   ", "only white space"),
        (long.as_str(), "longer than 200 bytes"),
    ] {
        for args in [
            vec!["advance", "A", "--to", "analysis", "--event-id", event_id],
            vec!["merge-gate", "retest", "A", "--event-id", event_id],
        ] {
            let out = sb.run(&args).expect(2);
            assert!(out.stderr.contains(why), "{}", out.stderr);
            assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
            assert_eq!(sb.dump(), before);
        }
    }
    sb.run(&[
        "advance",
        "A",
        "--to",
        "analysis",
        "--event-id",
        &"e".repeat(200),
    ])
    .expect(0);
}

#[test]
fn ids_actors_and_reasons_that_draw_are_refused() {
    let sb = Sandbox::new();
    sb.add_task("A", "created");
    let before = sb.dump();
    for args in [
        vec!["advance", "A", "--to", "analysis", "--actor", "bot\u{202e}"],
        vec!["advance", "A", "--to", "analysis", "--reason", "a\u{1b}[2J"],
        vec!["task", "hold", "A", "--reason", "two\nlines"],
        vec!["task", "release", "A", "--actor", "x\u{200b}"],
    ] {
        let out = sb.run(&args).expect(2);
        assert!(out.stderr.contains("U+"), "{}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(!out.stderr.chars().any(|c| c.is_control() && c != '\n'));
        assert_eq!(sb.dump(), before);
    }
    let long = "T".repeat(201);
    let out = sb
        .run(&["task", "add", &long, "--repo", "r", "--branch", "feat/x"])
        .expect(2);
    assert!(out.stderr.contains("200 bytes"), "{}", out.stderr);
    let out = sb
        .run(&[
            "task",
            "add",
            "T\u{1b}[2J",
            "--repo",
            "r",
            "--branch",
            "feat/x",
        ])
        .expect(2);
    assert!(
        out.stderr.contains("U+001B") && out.stderr.contains(r"T\x1b[2J"),
        "{}",
        out.stderr
    );
}
