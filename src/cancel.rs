//! Cancellation outside a gate run: SIGINT/SIGTERM/SIGHUP that orch receives between runs (during
//! git, an alert, or between gates) are recorded here instead of killing orch mid-step, so the
//! step stops at its next check with exit 13 and nothing routed — and the lease is released.
//! During a run the runner's own signal scope takes them (and forwards them to the group).

use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn record(signal: nix::libc::c_int) {
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// Installs the recording handler for INT, TERM and HUP, except where orch inherited the signal
/// ignored (e.g. under `nohup`): that choice is kept.
pub(crate) fn install() {
    let action = SigAction::new(
        SigHandler::Handler(record),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
        unsafe {
            if let Ok(old) = sigaction(signal, &action) {
                if old.handler() == SigHandler::SigIgn {
                    let _ = sigaction(signal, &old);
                }
            }
        }
    }
}

/// The signal received, if any.
pub(crate) fn requested() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}
