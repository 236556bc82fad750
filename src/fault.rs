//! Fault points for the crash tests: compiled in only with the `fault-injection` cargo feature,
//! never in a release build.
//!
//! With the feature, `FAULT_INJECT_AT=<point>` makes the process print one line naming the point
//! and abort (SIGABRT) when it gets there, so a test can show it died exactly there.
//! `FAULT_PAUSE_AT=<point>` with `FAULT_PAUSE_MS` pauses there instead, to widen a race window.
//! (These names carry no `ORCH_` prefix on purpose: they are not configuration.)

/// Every fault point, in the order a step reaches them.
pub const POINTS: &[&str] = &[
    "advance.after_lease",
    "runner.after_run_row",
    "runner.after_spawn",
    "gate.before_verdict",
    "merge_verify.after_merge_cmd",
    "advance.after_commit",
    "reap.before_finish",
];

/// Aborts here when this point is selected (feature `fault-injection` only).
#[cfg(feature = "fault-injection")]
pub fn point(name: &str) {
    debug_assert!(POINTS.contains(&name), "unknown fault point {name}");
    if std::env::var("FAULT_INJECT_AT").as_deref() == Ok(name) {
        eprintln!("orch: fault-injection: abort at {name}");
        std::process::abort();
    }
    if std::env::var("FAULT_PAUSE_AT").as_deref() == Ok(name) {
        let ms = std::env::var("FAULT_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// A no-op without the `fault-injection` feature.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str) {}
