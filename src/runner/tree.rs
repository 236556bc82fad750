//! The command's process tree as `/proc` shows it: the members of its group, orch's own children,
//! and the sweep that kills and reaps every descendant re-parented to orch.
//!
//! Invariant: the leader is reaped only after its group was sent SIGKILL, so the pgid orch signals
//! can never have been reused; after that, processes are only signalled one by one while they are
//! orch's unreaped children, whose pids cannot be reused either. The sweep ends only when orch has
//! no child left from the run (or a bound passed and the stuck ones are reported as survivors):
//! a process exits only after its own children were re-parented to the subreaper, so an empty
//! child list means the whole tree is gone.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::signals::{send, Target};
use crate::host;

/// A process identified for good: pid and start time.
pub(crate) type ProcessId = (i32, u64);

/// Live (not zombie) members of process group `pgid`.
pub(crate) fn group_members(pgid: i32) -> Vec<i32> {
    host::group_members(pgid)
}

/// CPU clock ticks the live members of group `pgid` used, with the children they reaped.
pub(crate) fn group_cpu_ticks(pgid: i32) -> u64 {
    group_members(pgid)
        .into_iter()
        .filter_map(host::cpu_ticks_with_reaped_children)
        .sum()
}

/// Whether this process has any child at all, exited or not (one `waitid`, no `/proc` scan).
pub(crate) fn has_children() -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    !matches!(waitid(Id::All, flags), Err(Errno::ECHILD))
}

/// A child of this process.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Child {
    pub pid: i32,
    pub start_time: u64,
    pub pgid: i32,
    pub zombie: bool,
}

/// This process's children, zombies included. `/proc/PID/task/*/children` is not built into every
/// kernel, so this scans `/proc` for the parent pid (which names the thread group, so children of
/// every thread are found).
pub(crate) fn children() -> Vec<Child> {
    let me = std::process::id() as i32;
    host::processes()
        .into_iter()
        .filter(|(_, s)| s.ppid == me)
        .map(|(pid, s)| Child {
            pid,
            start_time: s.start_time,
            pgid: s.pgid,
            zombie: s.is_dead(),
        })
        .collect()
}

/// How a child ended, as far as orch can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// It exited with this code.
    Code(i32),
    /// It died of this signal.
    Signal(i32),
    /// It is no longer orch's child and its status is lost.
    Unknown,
}

fn end_of(status: WaitStatus) -> Option<End> {
    match status {
        WaitStatus::Exited(_, code) => Some(End::Code(code)),
        WaitStatus::Signaled(_, signal, _) => Some(End::Signal(signal as i32)),
        WaitStatus::StillAlive => None,
        // Stops and continues are not asked for (`WEXITED` only); read them as still running.
        _ => None,
    }
}

/// How the leader ended, read without reaping it (`WNOWAIT`) so its pgid stays reserved;
/// `None` while it runs.
pub(crate) fn peek_exit(pid: i32) -> Option<End> {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    match waitid(Id::Pid(Pid::from_raw(pid)), flags) {
        Ok(status) => end_of(status),
        Err(Errno::EINTR) => None,
        Err(_) => Some(End::Unknown),
    }
}

/// Reaps `pid`, waiting up to `bound` for it to die; `None` when it is still there.
pub(crate) fn reap(pid: i32, bound: Duration) -> Option<End> {
    let start = Instant::now();
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(status) => {
                if let Some(end) = end_of(status) {
                    return Some(end);
                }
            }
            Err(Errno::EINTR) => {}
            Err(_) => return Some(End::Unknown),
        }
        if start.elapsed() >= bound {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Reaps the run's children that have already exited (escaped processes that died on their own),
/// so a long run does not pile up zombies. Never touches the leader or spared children.
pub(crate) fn reap_exited(leader: i32, spared: &HashSet<ProcessId>) {
    for child in children() {
        if child.zombie && child.pid != leader && !spared.contains(&(child.pid, child.start_time)) {
            let _ = waitpid(Pid::from_raw(child.pid), Some(WaitPidFlag::WNOHANG));
        }
    }
}

/// What the sweep did.
#[derive(Debug, Default)]
pub(crate) struct Swept {
    /// Processes of the run's group that died of SIGKILL (the final one, or the sweep's).
    pub killed_in_group: u32,
    /// Processes outside the group (escaped with setsid) that died of SIGKILL.
    pub killed_escaped: u32,
    /// Children it could not reap within the bound.
    pub survivors: Vec<i32>,
}

/// Kills and reaps every child of this process except `spared` (children that existed before the
/// run), round after round — a killed child's own children are re-parented here — until none is
/// left or `bound` passed. Every process killed for the run is re-parented here before it can be
/// reaped (its parent was killed too), so counting the children reaped with SIGKILL counts what
/// the run left behind, split by whether it was still in group `pgid`.
pub(crate) fn sweep(pgid: i32, spared: &HashSet<ProcessId>, bound: Duration) -> Swept {
    let start = Instant::now();
    let mut signalled: HashSet<ProcessId> = HashSet::new();
    let mut swept = Swept::default();
    if spared.is_empty() && !has_children() {
        return swept;
    }
    loop {
        let kids: Vec<Child> = children()
            .into_iter()
            .filter(|c| !spared.contains(&(c.pid, c.start_time)))
            .collect();
        if kids.is_empty() {
            return swept;
        }
        for kid in &kids {
            if !kid.zombie && signalled.insert((kid.pid, kid.start_time)) {
                // Our unreaped child: its pid cannot have been reused.
                let _ = send(Target::Process(kid.pid), Signal::SIGKILL);
            }
        }
        let mut reaped = false;
        for kid in &kids {
            match waitpid(Pid::from_raw(kid.pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
                Ok(WaitStatus::Signaled(_, Signal::SIGKILL, _)) => {
                    reaped = true;
                    if kid.pgid == pgid {
                        swept.killed_in_group += 1;
                    } else {
                        swept.killed_escaped += 1;
                    }
                }
                Ok(_) | Err(_) => reaped = true,
            }
        }
        if start.elapsed() >= bound {
            swept.survivors = children()
                .into_iter()
                .filter(|c| !spared.contains(&(c.pid, c.start_time)))
                .map(|c| c.pid)
                .collect();
            return swept;
        }
        if !reaped {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}
