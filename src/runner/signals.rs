//! Signals around a run, and the one function every kill goes through.
//!
//! While a run is alive, orch blocks SIGCHLD, SIGINT, SIGTERM and SIGHUP in the calling thread and
//! collects them with `sigtimedwait`: the wait wakes at once when the leader exits or orch is told
//! to stop, the deadline is simply the wait's timeout, and no handler is installed — so there is
//! no async-signal-safe handler code and no process-wide handler to leak into the rest of orch
//! (wait-timeout's SIGCHLD handler is never removed: wait-timeout #34, #44). The output pumps are
//! started after the block and inherit it, so in the orch binary no thread can take these signals
//! away. In a host process with other threads that leave SIGCHLD unblocked the kernel may drop it,
//! so the runner also re-checks every 50 ms. The child unblocks everything before exec.
//!
//! Invariant: `send` never signals a pid or pgid ≤ 1, orch itself, or orch's own process group —
//! coreutils once nearly called `kill(-1)`, and an agent killed pid 1 after a failed `getpgid`.

use std::time::Duration;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::{getpgrp, getpid, Pid};

/// Who a signal is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// Every member of the process group with this id.
    Group(i32),
    /// One process.
    Process(i32),
}

/// Sends `signal` to `target` unless the target is one orch must never signal (refused with
/// `EPERM`). A target that is already gone is `ESRCH`.
pub(crate) fn send(target: Target, signal: Signal) -> nix::Result<()> {
    let me = getpid().as_raw();
    let my_group = getpgrp().as_raw();
    match target {
        Target::Group(pgid) => {
            if pgid <= 1 || pgid == me || pgid == my_group {
                return Err(Errno::EPERM);
            }
            killpg(Pid::from_raw(pgid), signal)
        }
        Target::Process(pid) => {
            if pid <= 1 || pid == me {
                return Err(Errno::EPERM);
            }
            kill(Pid::from_raw(pid), signal)
        }
    }
}

/// `SIGTERM`-style name of a signal number.
pub(crate) fn signal_name(signal: i32) -> String {
    Signal::try_from(signal)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {signal}"))
}

/// The signal state of a run, restored when dropped: the calling thread's mask, and whether orch
/// was a child subreaper before.
pub(crate) struct SignalScope {
    old_mask: libc::sigset_t,
    waited: libc::sigset_t,
    /// `Some(previous)` when this scope made orch a child subreaper.
    subreaper_was: Option<bool>,
}

impl SignalScope {
    /// Resets SIGCHLD to its default (an inherited SIG_IGN would make the kernel discard exit
    /// statuses), blocks the signals the run waits for, and with `subreaper` makes orch a child
    /// subreaper so descendants that escape the group are re-parented to it, not to init.
    ///
    /// SIGINT/SIGTERM/SIGHUP that orch inherited as ignored (`nohup`, `cmd &` in a script) stay
    /// ignored: they are not collected, so they are not forwarded either.
    pub(crate) fn enter(subreaper: bool) -> Result<SignalScope> {
        // SAFETY: plain libc calls on stack-owned, initialised signal sets and sigaction structs.
        let (old_mask, waited) = unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut dfl.sa_mask);
            libc::sigaction(libc::SIGCHLD, &dfl, std::ptr::null_mut());

            let mut waited: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut waited);
            libc::sigaddset(&mut waited, libc::SIGCHLD);
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                if !is_ignored(sig) {
                    libc::sigaddset(&mut waited, sig);
                }
            }
            let mut old_mask: libc::sigset_t = std::mem::zeroed();
            let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &waited, &mut old_mask);
            if rc != 0 {
                return Err(Errno::from_raw(rc)).context("blocking signals for a run");
            }
            (old_mask, waited)
        };
        let mut scope = SignalScope {
            old_mask,
            waited,
            subreaper_was: None,
        };
        if subreaper {
            let was =
                nix::sys::prctl::get_child_subreaper().context("reading PR_GET_CHILD_SUBREAPER")?;
            if !was {
                nix::sys::prctl::set_child_subreaper(true)
                    .context("becoming a child subreaper (PR_SET_CHILD_SUBREAPER)")?;
            }
            scope.subreaper_was = Some(was);
        }
        Ok(scope)
    }

    /// Waits up to `timeout` for one of the run's signals; `None` when the time passed first.
    pub(crate) fn wait(&self, timeout: Duration) -> Option<i32> {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `waited` is an initialised set; a null siginfo pointer is allowed.
        let signo = unsafe { libc::sigtimedwait(&self.waited, std::ptr::null_mut(), &ts) };
        (signo > 0).then_some(signo)
    }

    /// Takes a signal that is already pending without waiting.
    pub(crate) fn take_pending(&self) -> Option<i32> {
        self.wait(Duration::ZERO)
    }
}

impl Drop for SignalScope {
    fn drop(&mut self) {
        if self.subreaper_was == Some(false) {
            let _ = nix::sys::prctl::set_child_subreaper(false);
        }
        // SAFETY: restores the mask saved by `enter`.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut());
        }
    }
}

fn is_ignored(sig: libc::c_int) -> bool {
    // SAFETY: a null `act` only reads the current disposition.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(sig, std::ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_IGN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_targets_that_could_hit_init_everyone_or_orch_itself_are_refused() {
        let me = std::process::id() as i32;
        let my_group = getpgrp().as_raw();
        for target in [
            Target::Group(0),
            Target::Group(1),
            Target::Group(-1),
            Target::Group(my_group),
            Target::Group(me),
            Target::Process(0),
            Target::Process(1),
            Target::Process(-1),
            Target::Process(me),
        ] {
            // SIGCONT: were the guard broken, the test would wake processes, not kill them.
            assert_eq!(
                send(target, Signal::SIGCONT),
                Err(Errno::EPERM),
                "{target:?}"
            );
        }
    }
}
