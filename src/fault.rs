//! Fault points for the crash tests: compiled in only with the `fault-injection` cargo feature,
//! never in a release build.
//!
//! With the feature, `FAULT_INJECT_AT=<point>` makes the process print one line naming the point
//! and abort (SIGABRT) when it gets there, so a test can show it died exactly there.
//! `FAULT_PANIC_AT=<point>` panics there instead (any point: one of `PANIC_POINTS` inside a gate
//! shows a panicking gate ends on the normal path; elsewhere a panic still ends the step's tree
//! and prints one line). `FAULT_PAUSE_AT=<point>` pauses there instead — `FAULT_PAUSE_MS`, or until the file
//! `FAULT_PAUSE_UNTIL` exists — so a test can change the world under it.
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

/// Points inside a gate where a test may make orch panic (`FAULT_PANIC_AT`).
pub const PANIC_POINTS: &[&str] = &["merge.after_retest"];

/// Points where a test may pause orch (`FAULT_PAUSE_AT`) to change the world under it.
pub const PAUSE_POINTS: &[&str] = &["advance.before_lease"];

/// Aborts here when this point is selected (feature `fault-injection` only).
#[cfg(feature = "fault-injection")]
pub fn point(name: &str) {
    debug_assert!(
        POINTS.contains(&name) || PAUSE_POINTS.contains(&name) || PANIC_POINTS.contains(&name),
        "unknown fault point {name}"
    );
    if std::env::var("FAULT_PANIC_AT").as_deref() == Ok(name) {
        panic!("fault-injection: panic at {name}");
    }
    if std::env::var("FAULT_INJECT_AT").as_deref() == Ok(name) {
        eprintln!("orch: fault-injection: abort at {name}");
        std::process::abort();
    }
    if std::env::var("FAULT_PAUSE_AT").as_deref() == Ok(name) {
        let ms = std::env::var("FAULT_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200);
        eprintln!("orch: fault-injection: pause at {name}");
        match std::env::var("FAULT_PAUSE_UNTIL") {
            // Until the test creates this file (bounded), so no test sleeps and hopes.
            Ok(file) => {
                let start = std::time::Instant::now();
                while !std::path::Path::new(&file).exists()
                    && start.elapsed() < std::time::Duration::from_secs(120)
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(ms)),
        }
    }
}

/// A no-op without the `fault-injection` feature.
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str) {}
