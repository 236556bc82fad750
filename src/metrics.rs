//! The metrics of `orch queue --format prometheus|openmetrics`: every counter and gauge of the
//! `QueueView`, as the Prometheus text format (what node_exporter's textfile collector reads) or
//! as OpenMetrics.
//!
//! Each family is named `orch_<block>_…` after the block of `orch queue --json` it comes from, so
//! every metric has a JSON twin under the same name; a test walks the JSON and fails when a block
//! has no family. Counters are the durable, monotonic `counters` table (and the alerts, which are
//! never pruned); everything else is a point-in-time gauge. Families are always printed with their
//! HELP and TYPE lines, even when they have no sample yet, so a dashboard sees every name from the
//! first scrape.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::gates::GateKind;
use crate::queue::{QueueView, RequeueState};

/// Which text format to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exposition {
    /// The Prometheus text format 0.0.4: counter families carry their `_total` name.
    Prometheus,
    /// OpenMetrics 1.0: counter families are named without `_total`; the text ends in `# EOF`.
    OpenMetrics,
}

/// Whether a family only ever goes up (across every process, for the life of the database).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MetricType {
    Counter,
    Gauge,
}

/// One metric family: a name, its HELP text, its type and its samples.
#[derive(Clone, Debug)]
pub(crate) struct Family {
    /// The family name; a counter's samples add `_total` to it.
    pub name: String,
    pub help: &'static str,
    pub kind: MetricType,
    pub samples: Vec<Sample>,
}

/// One sample of a family.
#[derive(Clone, Debug)]
pub(crate) struct Sample {
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Family {
    /// The OpenMetrics unit, taken from the name's suffix.
    fn unit(&self) -> Option<&'static str> {
        self.name.ends_with("_seconds").then_some("seconds")
    }

    /// The name each sample is written with.
    fn sample_name(&self) -> String {
        match self.kind {
            MetricType::Counter => format!("{}_total", self.name),
            MetricType::Gauge => self.name.clone(),
        }
    }

    fn sample(&mut self, labels: &[(&'static str, &str)], value: f64) -> &mut Family {
        self.samples.push(Sample {
            labels: labels.iter().map(|&(k, v)| (k, v.to_string())).collect(),
            value,
        });
        self
    }

    fn value(&mut self, value: f64) -> &mut Family {
        self.sample(&[], value)
    }
}

/// The families under construction, in the order they are printed.
#[derive(Default)]
struct Families(Vec<Family>);

impl Families {
    fn add(&mut self, name: &str, kind: MetricType, help: &'static str) -> &mut Family {
        debug_assert!(
            !self.0.iter().any(|f| f.name == name),
            "metric family `{name}` defined twice"
        );
        self.0.push(Family {
            name: format!("orch_{name}"),
            help,
            kind,
            samples: Vec::new(),
        });
        self.0.last_mut().expect("just pushed")
    }

    fn counter(&mut self, name: &str, help: &'static str) -> &mut Family {
        self.add(name, MetricType::Counter, help)
    }

    fn gauge(&mut self, name: &str, help: &'static str) -> &mut Family {
        self.add(name, MetricType::Gauge, help)
    }
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Every family of the view, block by block in the order of `orch queue --json`.
pub(crate) fn families(view: &QueueView) -> Vec<Family> {
    let mut f = Families::default();
    stages(&mut f, view);
    held(&mut f, view);
    history(&mut f, view);
    transition_lease(&mut f, view);
    alerts(&mut f, view);
    runs(&mut f, view);
    merge_gate(&mut f, view);
    reaper(&mut f, view);
    gates(&mut f, view);
    coverage(&mut f, view);
    f.0
}

fn stages(f: &mut Families, view: &QueueView) {
    let tasks = f.gauge("stages_tasks", "Tasks at each stage, held ones included.");
    for s in &view.stages {
        tasks.sample(&[("stage", s.stage.as_str())], s.count as f64);
    }
    let held = f.gauge("stages_held_tasks", "Tasks on HOLD at each stage.");
    for s in &view.stages {
        held.sample(&[("stage", s.stage.as_str())], s.held as f64);
    }
    let oldest = f.gauge(
        "stages_oldest_age_seconds",
        "Age of the task that has waited longest at each stage that has tasks.",
    );
    for s in &view.stages {
        if let Some(age) = s.oldest_age_s {
            oldest.sample(&[("stage", s.stage.as_str())], age as f64);
        }
    }
}

fn transition_lease(f: &mut Families, view: &QueueView) {
    let l = &view.transition_lease;
    f.gauge(
        "transition_lease_enabled",
        "1 when lease and CAS guard stage writes of the repositories in scope, 0 under the kill-switch.",
    )
    .sample(&[("scope", &l.scope)], flag(l.enabled));
    let alive = l.leases.iter().filter(|x| x.holder == "alive").count();
    f.gauge(
        "transition_lease_leases",
        "Leases held now, by holder liveness; a dead one is dropped by the next actor or the reaper.",
    )
    .sample(&[("holder", "alive")], alive as f64)
    .sample(&[("holder", "dead")], (l.leases.len() - alive) as f64);
    let oldest = f.gauge(
        "transition_lease_oldest_age_seconds",
        "Age of the oldest lease held now.",
    );
    if let Some(age) = l.leases.iter().map(|x| x.age_s).max() {
        oldest.value(age as f64);
    }
    let c = &l.counters;
    f.counter("transition_lease_acquired", "Leases acquired.")
        .value(c.acquired as f64);
    f.counter(
        "transition_lease_busy",
        "Attempts refused because a live owner held the lease.",
    )
    .value(c.busy as f64);
    f.counter(
        "transition_lease_taken_over",
        "Leases taken over from a dead holder.",
    )
    .value(c.taken_over as f64);
    f.counter(
        "transition_lease_cas_lost",
        "Stage writes refused because the task was no longer at the expected stage and version.",
    )
    .value(c.cas_lost as f64);
}

fn held(f: &mut Families, view: &QueueView) {
    f.gauge("held_tasks", "Tasks on HOLD now (orch queue lists why).")
        .value(view.held.total as f64);
    let age = f.gauge(
        "held_task_age_seconds",
        "How long each task listed on HOLD has been held, by task, stage and reason.",
    );
    for t in &view.held.tasks {
        if let Some(a) = t.age_s {
            age.samples.push(Sample {
                labels: vec![
                    ("task", t.task_id.clone()),
                    ("stage", t.stage.clone()),
                    ("reason", t.reason.clone()),
                ],
                value: a as f64,
            });
        }
    }
}

fn history(f: &mut Families, view: &QueueView) {
    let h = &view.history;
    f.counter("history_tasks_added", "Tasks registered.")
        .value(h.tasks_added as f64);
    f.counter(
        "history_transitions",
        "Stage changes written (rollbacks included).",
    )
    .value(h.transitions as f64);
    f.counter("history_rollbacks", "Rollbacks to development.")
        .value(h.rollbacks as f64);
    f.counter(
        "history_holds_raised",
        "HOLDs raised, by orch or by an operator.",
    )
    .value(h.holds_raised as f64);
}

fn alerts(f: &mut Families, view: &QueueView) {
    f.counter("alerts_raised", "Alerts raised.")
        .value(view.alerts.raised as f64);
    f.counter(
        "alerts_delivered",
        "Deliveries ORCH_ALERT_CMD accepted, re-deliveries included.",
    )
    .value(view.alerts.delivered as f64);
    f.counter(
        "alerts_delivery_failed",
        "Delivery attempts that failed; the reaper tries again.",
    )
    .value(view.alerts.delivery_failed as f64);
    f.gauge(
        "alerts_undelivered",
        "Alerts ORCH_ALERT_CMD has not accepted yet; the reaper delivers them again.",
    )
    .value(view.alerts.undelivered as f64);
}

fn runs(f: &mut Families, view: &QueueView) {
    let mut by_gate: BTreeMap<&str, usize> = GateKind::ALL.iter().map(|g| (g.name(), 0)).collect();
    for r in &view.runs.alive {
        *by_gate.entry(r.run.gate.as_str()).or_default() += 1;
    }
    let alive = f.gauge(
        "runs_alive",
        "Gate runs alive now (started, not finished), by gate.",
    );
    for (gate, n) in by_gate {
        alive.sample(&[("gate", gate)], n as f64);
    }
    let oldest = f.gauge(
        "runs_oldest_age_seconds",
        "Age of the oldest run alive; the reaper ends runs older than ORCH_REAPER_MAX_RUNNING_S.",
    );
    if let Some(age) = view.runs.alive.iter().map(|r| r.age_s).max() {
        oldest.value(age as f64);
    }
    let deadline = f.gauge(
        "runs_deadline_timestamp_seconds",
        "When each run alive reaches its own timeout (started + timeout), by run, task and gate.",
    );
    for r in &view.runs.alive {
        if let Some(at) = r.deadline_at {
            deadline.samples.push(Sample {
                labels: vec![
                    ("run", r.run.id.to_string()),
                    ("task", r.run.task_id.clone().unwrap_or_default()),
                    ("gate", r.run.gate.clone()),
                ],
                value: at as f64 / 1000.0,
            });
        }
    }
    f.counter(
        "runs_reaped",
        "Runs finished by someone other than their owner: the reaper or a take-over.",
    )
    .value(view.runs.reaped as f64);
}

fn merge_gate(f: &mut Families, view: &QueueView) {
    let m = &view.merge_gate;
    let c = &m.config;
    f.gauge(
        "merge_gate_config_retest_timeout_seconds",
        "ORCH_MERGE_RETEST_TIMEOUT_S.",
    )
    .value(c.retest_timeout_s as f64);
    f.gauge(
        "merge_gate_config_skip_when_current",
        "ORCH_MERGE_RETEST_SKIP_WHEN_CURRENT_ENABLED, 1 or 0.",
    )
    .value(flag(c.skip_when_current));
    f.gauge(
        "merge_gate_config_infra_retry_enabled",
        "ORCH_MERGE_INFRA_RETRY_ENABLED, 1 or 0.",
    )
    .value(flag(c.infra_retry_enabled));
    f.gauge(
        "merge_gate_config_infra_retry_max",
        "ORCH_MERGE_INFRA_RETRY_MAX.",
    )
    .value(f64::from(c.infra_retry_max));
    f.gauge(
        "merge_gate_config_infra_retry_backoff_seconds",
        "ORCH_MERGE_INFRA_RETRY_BACKOFF_S.",
    )
    .value(c.infra_retry_backoff_s as f64);
    f.gauge(
        "merge_gate_config_defer_delay_seconds",
        "ORCH_MERGE_DEFER_DELAY_S.",
    )
    .value(c.defer_delay_s as f64);
    f.gauge(
        "merge_gate_config_defer_max_attempts",
        "ORCH_MERGE_DEFER_MAX_ATTEMPTS.",
    )
    .value(f64::from(c.defer_max_attempts));
    let outcomes = f.counter("merge_gate_outcomes", "Merge sub-gate outcomes.");
    for (outcome, n) in &m.outcomes {
        outcomes.sample(&[("outcome", outcome)], *n as f64);
    }
    f.counter(
        "merge_gate_skipped_current",
        "Re-tests skipped because the head was already validated and the rebase was a no-op.",
    )
    .value(m.skipped_current as f64);
    f.counter(
        "merge_gate_deferred",
        "Edges deferred because the merge lock was busy.",
    )
    .value(m.deferred as f64);
    f.counter(
        "merge_gate_infra_requeued",
        "Edges re-queued after an infra outcome of the merge sub-gate.",
    )
    .value(m.infra_requeued as f64);
    f.counter(
        "merge_gate_exhausted",
        "Re-queue budgets spent: HOLD plus one alert.",
    )
    .value(m.exhausted as f64);
    f.counter("merge_gate_lock_acquired", "Merge locks taken.")
        .value(m.lock_acquired as f64);
    f.counter(
        "merge_gate_lock_taken_over",
        "Merge locks taken over from a dead holder.",
    )
    .value(m.lock_taken_over as f64);
    f.gauge("merge_gate_locks", "Merge locks held now.")
        .value(m.locks.len() as f64);
    let lock_age = f.gauge(
        "merge_gate_lock_age_seconds",
        "How long each held merge lock has been held, by repository.",
    );
    for l in &m.locks {
        lock_age.sample(&[("repo", &l.repo)], l.age_s as f64);
    }
    let mut by_kind: BTreeMap<&str, (usize, usize, usize)> = ["deferral", "infra"]
        .into_iter()
        .map(|k| (k, (0, 0, 0)))
        .collect();
    for p in &m.pending {
        let e = by_kind.entry(p.kind.as_str()).or_default();
        e.0 += 1;
        match p.state {
            RequeueState::Due => e.1 += 1,
            RequeueState::Running => e.2 += 1,
            RequeueState::Waiting => {}
        }
    }
    let pending = f.gauge(
        "merge_gate_pending_requeues",
        "Re-queued edges waiting for `orch advance --next`, by kind.",
    );
    for (kind, (n, _, _)) in &by_kind {
        pending.sample(&[("kind", kind)], *n as f64);
    }
    let overdue = f.gauge(
        "merge_gate_pending_overdue",
        "Re-queued edges already due and not running, by kind; a growing number means cron is not running orch advance --next.",
    );
    for (kind, (_, n, _)) in &by_kind {
        overdue.sample(&[("kind", kind)], *n as f64);
    }
    let running = f.gauge(
        "merge_gate_pending_running",
        "Re-queued edges whose task is being worked on now (a run alive or a live lease), by kind.",
    );
    for (kind, (_, _, n)) in &by_kind {
        running.sample(&[("kind", kind)], *n as f64);
    }
    let most_overdue = m
        .pending
        .iter()
        .filter(|p| p.state == RequeueState::Due)
        .map(|p| -p.due_in_s)
        .max()
        .unwrap_or(0);
    f.gauge(
        "merge_gate_pending_max_overdue_seconds",
        "How long the most overdue re-queued edge (not running) has been due, 0 when none is.",
    )
    .value(most_overdue.max(0) as f64);
}

fn reaper(f: &mut Families, view: &QueueView) {
    let r = &view.reaper;
    f.gauge("reaper_enabled", "ORCH_REAPER_ENABLED, 1 or 0.")
        .value(flag(r.enabled));
    f.gauge(
        "reaper_stale",
        "1 when no reap finished within 3 x ORCH_REAPER_INTERVAL_S while the reaper is enabled.",
    )
    .value(flag(r.stale));
    f.gauge(
        "reaper_config_interval_seconds",
        "ORCH_REAPER_INTERVAL_S: how often cron runs orch reap.",
    )
    .value(r.interval_s as f64);
    f.gauge(
        "reaper_config_max_running_seconds",
        "ORCH_REAPER_MAX_RUNNING_S: runs older than this are reaped.",
    )
    .value(r.max_running_s as f64);
    f.gauge("reaper_config_retention_days", "ORCH_RETENTION_DAYS.")
        .value(f64::from(r.retention_days));
    let age = f.gauge(
        "reaper_last_run_age_seconds",
        "Seconds since the last reap finished; absent before the first one.",
    );
    if let Some(last) = &r.last_run {
        age.value(last.age_s as f64);
    }
    let at = f.gauge(
        "reaper_last_run_timestamp_seconds",
        "When the last reap finished, in seconds since the epoch.",
    );
    if let Some(last) = &r.last_run {
        at.value(last.finished_at as f64 / 1000.0);
    }
    let reclaimed = f.gauge(
        "reaper_last_run_reclaimed",
        "What the last reap reclaimed, by kind.",
    );
    if let Some(serde_json::Value::Object(summary)) = r.last_run.as_ref().map(|l| &l.summary) {
        for (what, n) in summary {
            if let Some(n) = n.as_f64() {
                reclaimed.sample(&[("what", what)], n);
            }
        }
    }
    let c = &r.counters;
    for (name, help, value) in [
        ("reaper_runs", "Reaps finished.", c.runs),
        (
            "reaper_reaped_runs",
            "Runs the reaper finished for a dead or overdue owner.",
            c.reaped_runs,
        ),
        (
            "reaper_dropped_leases",
            "Leases of dead holders the reaper dropped.",
            c.dropped_leases,
        ),
        (
            "reaper_dropped_merge_locks",
            "Merge locks of dead holders the reaper dropped.",
            c.dropped_merge_locks,
        ),
        (
            "reaper_removed_worktrees",
            "Stale gate worktrees the reaper removed.",
            c.removed_worktrees,
        ),
        (
            "reaper_pruned_rows",
            "Rows older than ORCH_RETENTION_DAYS the reaper pruned.",
            c.pruned_rows,
        ),
        (
            "reaper_alerts_redelivered",
            "Undelivered alerts delivered again.",
            c.alerts_redelivered,
        ),
    ] {
        f.counter(name, help).value(value as f64);
    }
}

fn gates(f: &mut Families, view: &QueueView) {
    let outcomes = f.counter("gates_outcomes", "Gate outcomes, by gate and outcome.");
    for (gate, g) in &view.gates {
        for (outcome, n) in &g.outcomes {
            outcomes.sample(&[("gate", gate), ("outcome", outcome)], *n as f64);
        }
    }
    let infra = f.counter(
        "gates_infra_requeued",
        "Edges re-queued after an infra outcome, by gate.",
    );
    for (gate, g) in &view.gates {
        infra.sample(&[("gate", gate)], g.infra_requeued as f64);
    }
    let deferred = f.counter(
        "gates_deferred",
        "Edges deferred because the merge lock was busy, by gate.",
    );
    for (gate, g) in &view.gates {
        deferred.sample(&[("gate", gate)], g.deferred as f64);
    }
    let exhausted = f.counter(
        "gates_exhausted",
        "Re-queue budgets spent (HOLD plus one alert), by the gate that spent the last attempt.",
    );
    for (gate, g) in &view.gates {
        exhausted.sample(&[("gate", gate)], g.exhausted as f64);
    }
    let last = f.gauge(
        "gates_last_outcome",
        "The last outcome of each gate that has run: always 1, the outcome is the label.",
    );
    for (gate, g) in &view.gates {
        if let Some(outcome) = &g.last_outcome {
            last.sample(&[("gate", gate), ("outcome", outcome)], 1.0);
        }
    }
    let last_at = f.gauge(
        "gates_last_timestamp_seconds",
        "When each gate that has run last recorded an outcome, in seconds since the epoch.",
    );
    for (gate, g) in &view.gates {
        if let Some(at) = g.last_at {
            last_at.sample(&[("gate", gate)], at as f64 / 1000.0);
        }
    }
}

fn coverage(f: &mut Families, view: &QueueView) {
    let percent = f.gauge(
        "coverage_percent",
        "The last total coverage measured, by repository.",
    );
    for c in &view.coverage {
        percent.sample(&[("repo", &c.repo)], c.percent);
    }
    let minimum = f.gauge(
        "coverage_minimum_percent",
        "ORCH_COVERAGE_MIN when that coverage was measured, by repository.",
    );
    for c in &view.coverage {
        minimum.sample(&[("repo", &c.repo)], c.minimum);
    }
    let ok = f.gauge(
        "coverage_ok",
        "1 when the last coverage measured reached the minimum, by repository.",
    );
    for c in &view.coverage {
        ok.sample(&[("repo", &c.repo)], flag(c.ok));
    }
    let at = f.gauge(
        "coverage_measured_timestamp_seconds",
        "When the last coverage was measured, in seconds since the epoch, by repository.",
    );
    for c in &view.coverage {
        at.sample(&[("repo", &c.repo)], c.at as f64 / 1000.0);
    }
}

/// The families as text in `format`; every line ends in a newline.
pub(crate) fn render(families: &[Family], format: Exposition) -> String {
    let mut out = String::new();
    for family in families {
        // Prometheus text describes a counter by its sample name; OpenMetrics by the family's.
        let described = match format {
            Exposition::Prometheus => family.sample_name(),
            Exposition::OpenMetrics => family.name.clone(),
        };
        let kind = match family.kind {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
        };
        let _ = writeln!(
            out,
            "# HELP {described} {}",
            escape_help(family.help, format)
        );
        let _ = writeln!(out, "# TYPE {described} {kind}");
        if format == Exposition::OpenMetrics {
            if let Some(unit) = family.unit() {
                let _ = writeln!(out, "# UNIT {described} {unit}");
            }
        }
        let name = family.sample_name();
        for sample in &family.samples {
            out.push_str(&name);
            if !sample.labels.is_empty() {
                out.push('{');
                for (i, (key, value)) in sample.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{key}=\"{}\"", escape_label(value));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", number(sample.value));
        }
    }
    if format == Exposition::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// HELP text: both formats escape a backslash and a newline; OpenMetrics also a double quote.
fn escape_help(text: &str, format: Exposition) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if format == Exposition::OpenMetrics => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// A label value: backslash, double quote and newline are escaped in both formats.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// A sample value: integers without a fraction, and the spellings both formats accept for the
/// values that are not finite.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn family(kind: MetricType, samples: Vec<Sample>) -> Family {
        Family {
            name: "orch_x_seconds".into(),
            help: "A \"quoted\" back\\slash.",
            kind,
            samples,
        }
    }

    #[test]
    fn a_counter_is_named_with_total_in_prometheus_and_without_in_openmetrics() {
        let f = vec![family(
            MetricType::Counter,
            vec![Sample {
                labels: vec![("repo", "a\"b\\c\nd".into())],
                value: 3.0,
            }],
        )];
        assert_eq!(
            render(&f, Exposition::Prometheus),
            "# HELP orch_x_seconds_total A \"quoted\" back\\\\slash.\n\
             # TYPE orch_x_seconds_total counter\n\
             orch_x_seconds_total{repo=\"a\\\"b\\\\c\\nd\"} 3\n"
        );
        assert_eq!(
            render(&f, Exposition::OpenMetrics),
            "# HELP orch_x_seconds A \\\"quoted\\\" back\\\\slash.\n\
             # TYPE orch_x_seconds counter\n\
             # UNIT orch_x_seconds seconds\n\
             orch_x_seconds_total{repo=\"a\\\"b\\\\c\\nd\"} 3\n\
             # EOF\n"
        );
    }

    #[test]
    fn values_print_as_integers_when_whole() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(-2.0), "-2");
        assert_eq!(number(87.5), "87.5");
        assert_eq!(number(1_700_000_000.123), "1700000000.123");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NAN), "NaN");
    }
}
