//! `orch queue --format prometheus|openmetrics`: both outputs parsed by prometheus_client's own
//! parsers, checked against `orch queue --json` block by block and value by value.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::Sandbox;

/// Parses stdin with prometheus_client's parser for the format in argv[1] and prints the families
/// as JSON.
const PARSE: &str = r#"
import json, sys
if sys.argv[1] == "openmetrics":
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
else:
    from prometheus_client.parser import text_string_to_metric_families
families = [
    {
        "name": f.name,
        "type": f.type,
        "unit": f.unit,
        "help": f.documentation,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples],
    }
    for f in text_string_to_metric_families(sys.stdin.read())
]
print(json.dumps(families))
"#;

/// One parsed family.
#[derive(Debug)]
struct Family {
    name: String,
    kind: String,
    unit: String,
    help: String,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

fn parse(text: &str, format: &str) -> Vec<Family> {
    let mut child = Command::new("python3")
        .args(["-c", PARSE, format])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client's {format} parser refused the output (is it installed? \
         `python3 -m pip install -r requirements-test.txt`):\n{}\n--- output\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let families: Value = serde_json::from_slice(&out.stdout).unwrap();
    families
        .as_array()
        .unwrap()
        .iter()
        .map(|f| Family {
            name: f["name"].as_str().unwrap().into(),
            kind: f["type"].as_str().unwrap().into(),
            unit: f["unit"].as_str().unwrap_or("").into(),
            help: f["help"].as_str().unwrap().into(),
            samples: f["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let labels = s["labels"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                        .collect();
                    (
                        s["name"].as_str().unwrap().to_string(),
                        labels,
                        s["value"].as_f64().unwrap(),
                    )
                })
                .collect(),
        })
        .collect()
}

/// A sandbox with some history: tasks at several stages, a hold, advances (one of them with an
/// event id, delivered twice), a lost CAS.
fn busy_sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.add_task("A", "created");
    sb.add_task("B", "review");
    sb.add_task("C", "testing");
    sb.add_task("D", "development");
    sb.add_task("E", "done");
    sb.run(&["task", "hold", "C", "--reason", "flaky runner"])
        .expect(0);
    sb.run(&["advance", "A", "--to", "analysis", "--event-id", "gh-1"])
        .expect(0);
    sb.run(&["advance", "A", "--to", "analysis", "--event-id", "gh-1"])
        .expect(0);
    sb.run(&["advance", "D", "--to", "review"]).expect(0);
    // A stale expectation: the edge is legal, the CAS finds another stage (exit 4).
    sb.run(&["advance", "B", "--to", "development", "--expect", "testing"])
        .expect(4);
    sb
}

fn family<'a>(families: &'a [Family], name: &str) -> &'a Family {
    families
        .iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no family `{name}`"))
}

/// The value of the sample of `family` with exactly these labels.
fn value(families: &[Family], name: &str, labels: &[(&str, &str)]) -> f64 {
    let f = family(families, name);
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    f.samples
        .iter()
        .find(|(_, l, _)| *l == want)
        .unwrap_or_else(|| panic!("`{name}` has no sample {want:?}: {:?}", f.samples))
        .2
}

#[test]
fn prometheus_and_openmetrics_parse_and_carry_every_block_of_the_json() {
    let sb = busy_sandbox();
    let json = sb.run(&["queue", "--json"]).expect(0).json();
    let prom_text = sb
        .run(&["queue", "--format", "prometheus"])
        .expect(0)
        .stdout;
    let om_text = sb
        .run(&["queue", "--format", "openmetrics"])
        .expect(0)
        .stdout;
    assert!(om_text.ends_with("# EOF\n"), "{om_text}");
    assert!(!prom_text.contains("# EOF"), "{prom_text}");
    let prom = parse(&prom_text, "prometheus");
    let om = parse(&om_text, "openmetrics");

    // The same families, with the same types and values, in both formats.
    let shape = |fs: &[Family]| -> Vec<(String, String, usize)> {
        fs.iter()
            .map(|f| (f.name.clone(), f.kind.clone(), f.samples.len()))
            .collect()
    };
    assert_eq!(shape(&prom), shape(&om));
    for f in &om {
        assert!(f.name.starts_with("orch_"), "{}", f.name);
        assert!(!f.help.is_empty(), "`{}` has no HELP", f.name);
        assert!(f.kind == "counter" || f.kind == "gauge", "{f:?}");
        if f.name.ends_with("_seconds") {
            assert_eq!(f.unit, "seconds", "{}", f.name);
        }
        for (sample, _, _) in &f.samples {
            let want = if f.kind == "counter" {
                format!("{}_total", f.name)
            } else {
                f.name.clone()
            };
            assert_eq!(sample, &want);
        }
    }

    // Every block of `orch queue --json` has at least one family named after it.
    let blocks: Vec<&String> = json
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.is_object() || v.is_array())
        .map(|(k, _)| k)
        .collect();
    assert!(blocks.len() >= 7, "{blocks:?}");
    for block in blocks {
        let prefix = format!("orch_{block}_");
        assert!(
            om.iter().any(|f| f.name.starts_with(&prefix)),
            "block `{block}` of `orch queue --json` has no metric family `{prefix}…`: add its \
             metrics in src/metrics.rs"
        );
    }

    // Values agree with the JSON.
    for s in json["stages"].as_array().unwrap() {
        let stage = s["stage"].as_str().unwrap();
        let labels = [("stage", stage)];
        assert_eq!(
            value(&om, "orch_stages_tasks", &labels),
            s["count"].as_f64().unwrap(),
            "{stage}"
        );
        assert_eq!(
            value(&om, "orch_stages_held_tasks", &labels),
            s["held"].as_f64().unwrap(),
            "{stage}"
        );
    }
    assert_eq!(
        value(&om, "orch_stages_tasks", &[("stage", "analysis")]),
        1.0
    );
    assert_eq!(value(&om, "orch_stages_tasks", &[("stage", "review")]), 2.0);
    assert_eq!(
        value(&om, "orch_stages_held_tasks", &[("stage", "testing")]),
        1.0
    );
    let counters = &json["transition_lease"]["counters"];
    for name in ["acquired", "busy", "taken_over", "cas_lost"] {
        assert_eq!(
            value(&om, &format!("orch_transition_lease_{name}"), &[]),
            counters[name].as_f64().unwrap(),
            "{name}"
        );
    }
    assert_eq!(value(&om, "orch_transition_lease_cas_lost", &[]), 1.0);
    assert_eq!(
        value(&prom, "orch_transition_lease_cas_lost", &[]),
        1.0,
        "the Prometheus parser reads the same counter"
    );
    assert_eq!(
        value(&om, "orch_transition_lease_enabled", &[("scope", "*")]),
        1.0
    );
    assert_eq!(
        value(&om, "orch_alerts_raised", &[]),
        json["alerts"]["raised"].as_f64().unwrap()
    );
    // Every alert row was counted when it was raised.
    assert_eq!(json["alerts"]["raised"], json["alerts"]["total"]);
    for (gate, block) in json["gates"].as_object().unwrap() {
        assert_eq!(
            value(&om, "orch_gates_exhausted", &[("gate", gate)]),
            block["exhausted"].as_f64().unwrap()
        );
        assert_eq!(
            value(
                &om,
                "orch_gates_outcomes",
                &[("gate", gate), ("outcome", "passed")]
            ),
            block["passed"].as_f64().unwrap()
        );
    }
    for (outcome, n) in json["merge_gate"]["outcomes"].as_object().unwrap() {
        assert_eq!(
            value(&om, "orch_merge_gate_outcomes", &[("outcome", outcome)]),
            n.as_f64().unwrap()
        );
    }
    assert_eq!(
        value(&om, "orch_merge_gate_config_retest_timeout_seconds", &[]),
        json["merge_gate"]["config"]["retest_timeout_s"]
            .as_f64()
            .unwrap()
    );
    if let Some(reaper) = json.get("reaper") {
        assert_eq!(
            value(&om, "orch_reaper_stale", &[]),
            if reaper["stale"].as_bool().unwrap() {
                1.0
            } else {
                0.0
            }
        );
    }
}

#[test]
fn the_json_flag_conflicts_with_a_metrics_format_and_a_missing_database_is_not_found() {
    let sb = Sandbox::new();
    sb.run(&["queue", "--format", "prometheus"]).expect(3);
    assert!(!sb.db.exists(), "a read-only command created the database");
    sb.add_task("A", "created");
    // Two output formats asked for: a usage error, never one of them silently.
    let out = sb
        .run(&["queue", "--format", "openmetrics", "--json"])
        .expect(2);
    assert!(out.json()["error"]
        .as_str()
        .unwrap()
        .contains("--json conflicts"));
}

/// "Why is task X stuck?" from `orch queue` alone: a HOLD with its reason and age, a run alive
/// with its deadline, and a re-queue that is due while its edge is running (not "due now").
#[test]
fn queue_says_why_a_task_is_stuck_held_running_or_due() {
    let sb = Sandbox::new();
    sb.add_task("H", "testing");
    sb.add_task("R", "deploy-staging");
    sb.add_task("Q", "deploy-staging");
    sb.run(&["task", "hold", "H", "--reason", "flaky runner"])
        .expect(0);
    sb.sqlite(&format!(
        "UPDATE tasks SET held_since = {} WHERE id = 'H'",
        orch::host::wall_ms() - 125_000
    ));
    // R: re-queued, due 5 s ago, while its re-run is alive (owned by this test process).
    let me = std::process::id();
    let now = orch::host::wall_ms();
    let boot = orch::host::boot_ms();
    let (bid, ns, host) = (
        orch::host::boot_id(),
        orch::host::pid_namespace(),
        orch::host::host_name(),
    );
    let start = crate::support::pid_start_time(me as i32);
    sb.sqlite(&format!(
        "INSERT INTO runs (task_id, gate, command, owner_pid, owner_pid_start, leader_pid,
             leader_pid_start, boot_id, pid_ns, host, started_at, started_boot_ms, timeout_ms)
         VALUES ('R', 'merge', 'suite', {me}, {start}, {me}, {start}, '{bid}', '{ns}', '{host}',
                 {now}, {boot}, 600000);
         INSERT INTO requeues (task_id, from_stage, to_stage, kind, attempt, reason, due_at,
             due_boot_ms, boot_id, created_at)
         VALUES ('R', 'deploy-staging', 'deploy', 'infra', 1, 'suite timed out', {0}, {1},
                 '{bid}', {0}),
                ('Q', 'deploy-staging', 'deploy', 'infra', 1, 'runner lost', {0}, {1},
                 '{bid}', {0});",
        now - 5_000,
        boot - 5_000
    ));

    let json = sb.run(&["queue", "--json"]).expect(0).json();
    let held = &json["held"];
    assert_eq!(held["total"], 1, "{json}");
    assert_eq!(held["tasks"][0]["task_id"], "H");
    assert_eq!(held["tasks"][0]["stage"], "testing");
    assert_eq!(held["tasks"][0]["reason"], "flaky runner");
    assert!(held["tasks"][0]["age_s"].as_i64().unwrap() >= 125, "{json}");
    let run = &json["runs"]["alive"][0];
    assert_eq!(
        run["deadline_at"].as_i64().unwrap(),
        run["started_at"].as_i64().unwrap() + 600_000,
        "{json}"
    );
    assert!(run["deadline_in_s"].as_i64().unwrap() > 500, "{json}");
    let pending = json["merge_gate"]["pending"].as_array().unwrap();
    let state = |task: &str| {
        pending
            .iter()
            .find(|p| p["task_id"] == task)
            .unwrap_or_else(|| panic!("no re-queue of {task}: {json}"))
    };
    assert_eq!(state("R")["state"], "running", "{json}");
    assert_eq!(state("R")["running"], "run 1 (merge)", "{json}");
    assert_eq!(state("Q")["state"], "due", "{json}");

    let text = sb.run(&["queue"]).expect(0).stdout;
    assert!(text.contains("held  1 task(s) on HOLD"), "{text}");
    assert!(
        text.contains("  H  testing  since ") && text.contains(" ago)  reason: flaky runner"),
        "{text}"
    );
    let line = |task: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("  re-queued {task} ")))
            .unwrap_or_else(|| panic!("no re-queue line of {task}: {text}"))
            .to_string()
    };
    assert!(line("R").contains("running now: run 1 (merge)"), "{text}");
    assert!(!line("R").contains("due now"), "{text}");
    assert!(line("Q").contains("due now"), "{text}");
    assert!(text.contains("deadline "), "{text}");

    for format in ["prometheus", "openmetrics"] {
        let out = sb.run(&["queue", "--format", format]).expect(0).stdout;
        let families = parse(&out, format);
        assert_eq!(value(&families, "orch_held_tasks", &[]), 1.0);
        let age = value(
            &families,
            "orch_held_task_age_seconds",
            &[
                ("task", "H"),
                ("stage", "testing"),
                ("reason", "flaky runner"),
            ],
        );
        assert!(age >= 125.0, "{age}");
        assert_eq!(
            value(
                &families,
                "orch_merge_gate_pending_overdue",
                &[("kind", "infra")]
            ),
            1.0,
            "only Q is due and idle"
        );
        assert_eq!(
            value(
                &families,
                "orch_merge_gate_pending_running",
                &[("kind", "infra")]
            ),
            1.0
        );
        let deadline = value(
            &families,
            "orch_runs_deadline_timestamp_seconds",
            &[("run", "1"), ("task", "R"), ("gate", "merge")],
        );
        assert_eq!(
            deadline,
            run["deadline_at"].as_f64().unwrap() / 1000.0,
            "{format}"
        );
    }
}
