//! Starting the command's leader behind a gate. The child starts its own session (so its pid is
//! its pgid), resets its signal dispositions, then blocks on a pipe until the parent says go — a
//! tracked run commits its `runs` row first, so no process ever runs untracked. A child that is
//! never told to go (the host was full, or orch died) exits without running anything.
//!
//! `std::process::Command` cannot do this: its `spawn` returns only once the child has exec'd,
//! so a child waiting in `pre_exec` for the parent would deadlock it. Hence our own clone.
//! Invariant: between clone and exec the child, which shares orch's memory, only makes
//! async-signal-safe calls on data built before the clone, and allocates nothing.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::libc;
use nix::sys::signal::Signal;

use super::sandbox::{self, Protection};
use super::signals::{send, Target};
use super::spec::{Input, RunSpec, Sandboxing};

/// `close_range`'s flag: mark close-on-exec instead of closing now.
const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;

/// The byte that lets the child exec.
const GO: u8 = b'g';

/// Where the child was when it failed, reported through the exec-report pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    Session = 1,
    Stdio = 2,
    Cwd = 3,
    Exec = 4,
    Sandbox = 5,
}

/// A command that could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StartFailure {
    pub stage: Stage,
    pub errno: i32,
}

impl StartFailure {
    /// One line: what failed, why, and what to check.
    pub(crate) fn describe(&self, program: &str, cwd: Option<&Path>) -> String {
        let why = Errno::from_raw(self.errno).desc();
        match self.stage {
            Stage::Exec if self.errno == libc::ENOENT => {
                format!("cannot start `{program}`: not found (hint: check the command and PATH)")
            }
            Stage::Exec => format!(
                "cannot start `{program}`: {why} (hint: is it an executable file with a #! line?)"
            ),
            Stage::Cwd => format!(
                "cannot start `{program}`: cannot enter `{}`: {why}",
                cwd.map(|p| p.display().to_string()).unwrap_or_default()
            ),
            Stage::Session => format!("cannot start `{program}`: setsid failed: {why}"),
            Stage::Stdio => format!("cannot start `{program}`: cannot set up its output: {why}"),
            Stage::Sandbox => format!(
                "cannot start `{program}`: applying the Landlock sandbox failed: {why} (hint: ORCH_GATE_SANDBOX=off runs it unconfined)"
            ),
        }
    }
}

/// What the child needs between clone and exec, built before the clone.
pub(crate) struct Prepared {
    argv: Vec<CString>,
    envp: Vec<CString>,
    /// The paths to try in order (a PATH search done in advance, as execvp would).
    candidates: Vec<CString>,
    cwd: Option<CString>,
    new_session: bool,
    null_stdin: bool,
    /// The Landlock ruleset the leader applies to itself before exec.
    landlock: Option<OwnedFd>,
    /// What protection the run has (recorded in its `runs` row); `None` when not the agent's code.
    pub(crate) protection: Option<Protection>,
}

impl Prepared {
    pub(crate) fn new(spec: &RunSpec) -> Result<Prepared> {
        let Some(program) = spec.argv.first() else {
            bail!("no command to run (hint: put the command after `--`)");
        };
        let argv = spec
            .argv
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .context("an argument holds a NUL byte")?;
        let mut env: Vec<(OsString, OsString)> = if spec.clean_env {
            Vec::new()
        } else {
            std::env::vars_os().collect()
        };
        for (key, value) in &spec.env {
            env.retain(|(k, _)| k.as_bytes() != key.as_bytes());
            env.push((key.into(), value.into()));
        }
        let path = env
            .iter()
            .find(|(k, _)| k.as_bytes() == b"PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        let envp = env
            .into_iter()
            .filter_map(|(k, v)| {
                let mut entry = k.into_vec();
                entry.push(b'=');
                entry.extend(v.into_vec());
                CString::new(entry).ok()
            })
            .collect();
        let candidates = if program.contains('/') {
            vec![CString::new(program.as_bytes())?]
        } else if program.is_empty() {
            Vec::new()
        } else {
            path.as_bytes()
                .split(|b| *b == b':')
                .map(|dir| {
                    let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
                    let mut full = dir.to_vec();
                    full.push(b'/');
                    full.extend_from_slice(program.as_bytes());
                    CString::new(full)
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let cwd = spec
            .cwd
            .as_ref()
            .map(|p| CString::new(p.as_os_str().as_bytes()))
            .transpose()
            .context("the working directory holds a NUL byte")?;
        let (landlock, protection) = match &spec.sandboxing {
            Sandboxing::Unconfined => (None, None),
            Sandboxing::Off => (
                None,
                Some(Protection::None {
                    reason: "ORCH_GATE_SANDBOX=off".into(),
                }),
            ),
            Sandboxing::Confine(writable) => match sandbox::ruleset(writable) {
                Ok(ruleset) => (Some(ruleset.fd), Some(ruleset.protection)),
                Err(none) => (None, Some(none)),
            },
        };
        Ok(Prepared {
            argv,
            envp,
            candidates,
            cwd,
            new_session: spec.tree_kill,
            null_stdin: spec.stdin == Input::Null,
            landlock,
            protection,
        })
    }
}

/// The started leader, waiting for go.
pub(crate) struct Leader {
    pub pid: i32,
    go: Option<OwnedFd>,
    report: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// The thread whose `clone` started the child; it returns once the child has exec'd or
    /// exited.
    helper: Option<JoinHandle<()>>,
}

/// The child's ends of the pipes; the helper thread closes its copies once the child has exec'd.
struct ChildEnds {
    stdin: Option<OwnedFd>,
    stdout: OwnedFd,
    stderr: OwnedFd,
    go: OwnedFd,
    /// The number of orch's own (write) end of the go pipe: the child closes its inherited copy,
    /// so that orch's death is end-of-file on go and the waiting child exits instead of waiting
    /// for ever.
    go_peer: RawFd,
    report: OwnedFd,
    pid: OwnedFd,
}

/// Everything the child reads between clone and exec. It lives on the helper thread's stack,
/// which stays put while the child runs: `CLONE_VFORK` suspends that thread until exec or exit.
struct ChildPlan<'a> {
    prepared: &'a Prepared,
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    stdin: Option<RawFd>,
    stdout: RawFd,
    stderr: RawFd,
    go: RawFd,
    go_peer: RawFd,
    report: RawFd,
    pid: RawFd,
    dfl: libc::sigaction,
    empty: libc::sigset_t,
}

/// Stack of the cloned child until it execs; it only runs the short, allocation-free `child`.
const CHILD_STACK: usize = 64 * 1024;

/// Starts the leader; it waits for `Leader::go` before it execs.
///
/// The child is cloned with `CLONE_VM | CLONE_VFORK` — posix_spawn's way, without copying orch's
/// page tables, which made a plain fork cost about a millisecond more per run — from a helper
/// thread, because `CLONE_VFORK` suspends the calling thread until the child execs, and this
/// child first waits for go. The child writes its pid to a pipe, so orch learns it at once.
pub(crate) fn spawn_gated(prepared: Arc<Prepared>) -> Result<Leader> {
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (go_r, go_w) = pipe()?;
    let (report_r, report_w) = pipe()?;
    let (pid_r, pid_w) = pipe()?;
    let stdin = if prepared.null_stdin {
        let fd = nix::fcntl::open(
            "/dev/null",
            OFlag::O_RDWR | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .context("opening /dev/null")?;
        // SAFETY: `open` returned a new descriptor that nothing else owns.
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    } else {
        None
    };
    let ends = ChildEnds {
        stdin,
        stdout: out_w,
        stderr: err_w,
        go: go_r,
        go_peer: go_w.as_raw_fd(),
        report: report_w,
        pid: pid_w,
    };
    let helper = std::thread::Builder::new()
        .name("orch-spawn".into())
        .spawn(move || clone_child(&prepared, ends))
        .context("starting the spawn thread")?;
    // The child's first act is to write its pid; end-of-file means clone failed.
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < buf.len() {
        match nix::unistd::read(pid_r.as_raw_fd(), &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    if got < buf.len() {
        let _ = helper.join();
        return Err(anyhow::anyhow!(
            "cannot start a process (clone failed; hint: too many processes?)"
        ));
    }
    Ok(Leader {
        pid: i32::from_le_bytes(buf),
        go: Some(go_w),
        report: Some(report_r),
        stdout: Some(out_r),
        stderr: Some(err_r),
        helper: Some(helper),
    })
}

/// Runs on the helper thread: clones the child and returns once it has exec'd or exited.
fn clone_child(prepared: &Prepared, ends: ChildEnds) {
    let ptrs = |strings: &[CString]| -> Vec<*const libc::c_char> {
        strings
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    // SAFETY: plain zero-initialised libc structs, filled before the clone.
    let (dfl, empty, all) = unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut dfl.sa_mask);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        (dfl, empty, all)
    };
    let plan = ChildPlan {
        prepared,
        argv: ptrs(&prepared.argv),
        envp: ptrs(&prepared.envp),
        stdin: ends.stdin.as_ref().map(|f| f.as_raw_fd()),
        stdout: ends.stdout.as_raw_fd(),
        stderr: ends.stderr.as_raw_fd(),
        go: ends.go.as_raw_fd(),
        go_peer: ends.go_peer,
        report: ends.report.as_raw_fd(),
        pid: ends.pid.as_raw_fd(),
        dfl,
        empty,
    };
    let mut stack = vec![0u8; CHILD_STACK];
    // SAFETY: the top of our own allocation, aligned down to 16 bytes as the ABI wants.
    let top = unsafe { stack.as_mut_ptr().add(CHILD_STACK) };
    let top = ((top as usize) & !15) as *mut libc::c_void;
    // SAFETY: every signal is blocked across the clone so no handler can run in the child on
    // memory it shares with orch; the child unblocks them just before exec. `plan` and `stack`
    // outlive the child's use of them: CLONE_VFORK holds this thread until exec or exit.
    unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        libc::clone(
            child_entry,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&plan as *const ChildPlan).cast_mut().cast(),
        );
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
    // Our copies of the child's ends close here, after its exec: end-of-file on the report pipe
    // now means exec happened, on the output pipes that the tree is done with them.
    drop(ends);
}

extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildPlan` on the suspended helper thread's stack.
    unsafe { child(&*(arg as *const ChildPlan)) }
}

impl Leader {
    /// Lets the child exec; returns why it could not start, or `None` once it has exec'd.
    pub(crate) fn go(&mut self) -> Option<StartFailure> {
        if let Some(go) = self.go.take() {
            // A child that already died (killed from outside) makes this EPIPE: its exit is seen
            // by the wait like any other.
            let _ = nix::unistd::write(&go, &[GO]);
        }
        let report = self.report.take()?;
        let mut buf = [0u8; 5];
        let mut got = 0;
        while got < buf.len() {
            match nix::unistd::read(report.as_raw_fd(), &mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        if let Some(helper) = self.helper.take() {
            let _ = helper.join();
        }
        if got < buf.len() {
            // End-of-file: the report pipe closed on exec.
            return None;
        }
        let stage = match buf[0] {
            1 => Stage::Session,
            2 => Stage::Stdio,
            3 => Stage::Cwd,
            5 => Stage::Sandbox,
            _ => Stage::Exec,
        };
        let errno = i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]);
        Some(StartFailure { stage, errno })
    }

    /// Kills and reaps a child that was never told to go: its command never runs.
    pub(crate) fn abandon(&mut self) {
        // Without go the child exits by itself; SIGKILL makes sure.
        self.go.take();
        let _ = send(Target::Process(self.pid), Signal::SIGKILL);
        if let Some(helper) = self.helper.take() {
            let _ = helper.join();
        }
        while let Err(Errno::EINTR) =
            nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid), None)
        {}
    }
}

/// The child, from clone to exec. It shares orch's memory: only async-signal-safe calls on the
/// plan, nothing allocates, and errno lands on the suspended helper thread.
unsafe fn child(plan: &ChildPlan) -> ! {
    // SAFETY: runs in the cloned child before exec. Every call is a raw, async-signal-safe libc
    // call on descriptors and buffers the plan prepared before the clone; nothing allocates or
    // takes a lock, and the function never returns (exec or `fail`).
    unsafe {
        // The child has its own copy of orch's descriptor table: drop its copy of orch's end of the
        // go pipe, or a SIGKILLed orch would leave it waiting on that pipe for ever.
        libc::close(plan.go_peer);
        let me = (libc::syscall(libc::SYS_getpid) as i32).to_le_bytes();
        libc::write(plan.pid, me.as_ptr().cast(), me.len());
        let p = plan.prepared;
        if p.new_session && libc::setsid() < 0 {
            fail(plan.report, Stage::Session);
        }
        // Handlers do not survive exec, but an inherited SIG_IGN does: Python installs no
        // KeyboardInterrupt handler when SIGINT arrives ignored, and pytest must see SIGINT.
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &plan.dfl, std::ptr::null_mut());
            }
        }
        if let Some(fd) = plan.stdin {
            if libc::dup2(fd, 0) < 0 {
                fail(plan.report, Stage::Stdio);
            }
        }
        // The pipe ends are above 2 (see `pipe`), so dup2 always makes a fresh, inheritable copy.
        if libc::dup2(plan.stdout, 1) < 0 || libc::dup2(plan.stderr, 2) < 0 {
            fail(plan.report, Stage::Stdio);
        }
        let mut byte = 0u8;
        loop {
            let n = libc::read(plan.go, (&mut byte as *mut u8).cast(), 1);
            if n == 1 && byte == GO {
                break;
            }
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            // Never told to go: the parent gave up or died. Run nothing.
            libc::_exit(125);
        }
        if let Some(cwd) = &p.cwd {
            if libc::chdir(cwd.as_ptr()) < 0 {
                fail(plan.report, Stage::Cwd);
            }
        }
        // The agent's code: confine its writes just before exec (raw syscalls only; the ruleset
        // was built by orch before the clone). orch itself is never restricted.
        if let Some(ruleset) = &p.landlock {
            // Capabilities a root suite would keep past Landlock (chown, chattr +i, mount):
            // out of the bounding set, so the exec'd program never gets them.
            for cap in sandbox::DROPPED_CAPS {
                libc::prctl(libc::PR_CAPBSET_DROP, *cap, 0, 0, 0);
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0
                || libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) < 0
            {
                fail(plan.report, Stage::Sandbox);
            }
        }
        // Descriptors orch inherited without close-on-exec never reach the command: every one
        // above stderr closes at exec (those the child still needs are used before it).
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC);
        libc::pthread_sigmask(libc::SIG_SETMASK, &plan.empty, std::ptr::null_mut());
        // execvp's search: try each candidate; "not there" moves on, EACCES is remembered, anything
        // else stops the search.
        let mut denied = false;
        let mut fatal = 0;
        for path in &p.candidates {
            libc::execve(path.as_ptr(), plan.argv.as_ptr(), plan.envp.as_ptr());
            match *libc::__errno_location() {
                libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
                libc::EACCES => denied = true,
                other => {
                    fatal = other;
                    break;
                }
            }
        }
        *libc::__errno_location() = if fatal != 0 {
            fatal
        } else if denied {
            libc::EACCES
        } else {
            libc::ENOENT
        };
        fail(plan.report, Stage::Exec)
    }
}

/// Reports `errno` at `stage` to the parent and exits.
unsafe fn fail(report: RawFd, stage: Stage) -> ! {
    // SAFETY: async-signal-safe calls only (read errno, write to a pipe the plan owns, `_exit`),
    // on a stack buffer; called only from `child`, in the cloned child.
    unsafe {
        let errno = (*libc::__errno_location()).to_le_bytes();
        let msg = [stage as u8, errno[0], errno[1], errno[2], errno[3]];
        libc::write(report, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

/// A close-on-exec pipe whose ends are both above the standard descriptors, so the child's dup2
/// onto 0, 1 and 2 can never be a no-op that keeps close-on-exec set.
fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("creating a pipe")?;
    Ok((above_stdio(r)?, above_stdio(w)?))
}

fn above_stdio(fd: OwnedFd) -> Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    let moved = fcntl(fd.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(3)).context("moving a pipe")?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}
