//! Short helper processes that are not gate runs — git and the alert command — run so that none
//! outlives its step: its own process group, a deadline, the exit peeked without reaping
//! (`waitid(WNOWAIT)`), then the whole group SIGKILLed before the leader is reaped (so the pgid
//! cannot have been reused), and its pipes drained for a bounded time only (a grandchild may hold
//! them open for ever).

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{getpgrp, Pid};

/// How long the pipes are drained after the group is gone.
const DRAIN: Duration = Duration::from_millis(500);

/// How a helper process ended.
#[derive(Debug)]
pub(crate) struct Finished {
    /// `None` when the deadline passed (or orch was cancelled) and the group was killed.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// orch received SIGINT/SIGTERM/SIGHUP while it ran.
    pub cancelled: bool,
}

/// Runs `cmd` to completion within `deadline`, feeding `stdin`; kills its whole group on every
/// path.
pub(crate) fn run(
    mut cmd: Command,
    deadline: Duration,
    stdin: Option<&[u8]>,
) -> std::io::Result<Finished> {
    cmd.process_group(0)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let pid = child.id() as i32;
    // Fed from a thread, inside the deadline: a command that never reads its stdin would block
    // a write of more than a pipe's buffer for as long as it runs. The write ends (EPIPE) when
    // the group is killed.
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        let (tx, rx) = mpsc::channel();
        if let Some(mut pipe) = pipe {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = pipe.read_to_end(&mut buf);
                let _ = tx.send(buf);
            });
        }
        rx
    };
    let out = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );

    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    let mut cancelled = false;
    let exited = loop {
        match waitid(
            Id::Pid(Pid::from_raw(pid)),
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
        ) {
            Ok(WaitStatus::StillAlive) => {}
            _ => break true,
        }
        if crate::cancel::requested().is_some() {
            cancelled = true;
            break false;
        }
        if start.elapsed() >= deadline {
            break false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    // The leader is not reaped yet, so its pid is still this group's id: nothing else can have it.
    if pid > 1 && pid != getpgrp().as_raw() {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let status = child.wait()?;
    let stdout = out.recv_timeout(DRAIN).unwrap_or_default();
    let stderr = err.recv_timeout(DRAIN).unwrap_or_default();
    Ok(Finished {
        status: exited.then_some(status),
        stdout,
        stderr,
        cancelled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command that never reads its stdin, fed more than a pipe's buffer: the deadline still
    /// ends it (the write once blocked until the command exited on its own).
    #[test]
    fn a_large_stdin_never_outlives_the_deadline() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 30"]);
        let input = vec![b'x'; 1 << 20];
        let finished = run(cmd, Duration::from_millis(300), Some(&input)).unwrap();
        assert!(
            finished.status.is_none(),
            "killed at its deadline, not waited for"
        );
    }
}
