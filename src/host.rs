//! What this host, boot, pid namespace and process are, and whether a process recorded earlier is
//! still the same living process.
//!
//! Liveness is judged by pid *and* pid start time (pids are reused), on the same host, boot and
//! pid namespace; a zombie is dead. Ages on this host are measured with `CLOCK_BOOTTIME`, which a
//! wall-clock step cannot move; wall-clock time is only stored for people to read.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::time::{clock_gettime, ClockId};

/// Milliseconds since the Unix epoch: for people, and for comparing with another host's rows.
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Milliseconds since this host booted, suspend included; comparable only beside the same boot id.
pub fn boot_ms() -> i64 {
    clock_gettime(ClockId::CLOCK_BOOTTIME)
        .map(|t| t.tv_sec() * 1000 + t.tv_nsec() / 1_000_000)
        .unwrap_or(0)
}

/// The kernel's boot id: differs after every reboot.
pub fn boot_id() -> &'static str {
    static BOOT_ID: OnceLock<String> = OnceLock::new();
    BOOT_ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown-boot".to_string())
    })
}

/// This process's pid namespace, as the kernel names it (`pid:[4026531836]`).
pub fn pid_namespace() -> &'static str {
    static PID_NS: OnceLock<String> = OnceLock::new();
    PID_NS.get_or_init(|| {
        std::fs::read_link("/proc/self/ns/pid")
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown-ns".to_string())
    })
}

/// This host's name.
pub fn host_name() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "unknown-host".to_string())
    })
}

/// A process as the kernel reports it now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// The one-letter state (`R`, `S`, `Z`, …).
    pub state: char,
    /// Start time in clock ticks since boot: with the pid, it names one process for good.
    pub start_time: u64,
    /// The process group id.
    pub pgid: i32,
    /// The parent pid.
    pub ppid: i32,
    /// User plus system CPU time in clock ticks.
    pub cpu_ticks: u64,
}

impl ProcStat {
    pub fn is_dead(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Reads `/proc/PID/stat`; `None` when there is no such process.
pub fn proc_stat(pid: i32) -> Option<ProcStat> {
    if pid <= 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<ProcStat> {
    // The command name is in parentheses and may itself hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the name, counted from 0: state(0) ppid(1) pgrp(2) … utime(11) stime(12) …
    // starttime(19).
    let field = |i: usize| fields.get(i).copied();
    Some(ProcStat {
        state: field(0)?.chars().next()?,
        ppid: field(1)?.parse().ok()?,
        pgid: field(2)?.parse().ok()?,
        cpu_ticks: field(11)?.parse::<u64>().ok()? + field(12)?.parse::<u64>().ok()?,
        start_time: field(19)?.parse().ok()?,
    })
}

/// This process's pid and start time.
pub fn current_process() -> (i32, u64) {
    let pid = std::process::id() as i32;
    let start = proc_stat(pid).map(|s| s.start_time).unwrap_or(0);
    (pid, start)
}

/// Where a recorded process lives, seen from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Locality {
    /// Same host, boot and pid namespace: its pid can be checked.
    Here,
    /// This host, an earlier boot: it is dead.
    EarlierBoot,
    /// Another host, or another pid namespace: it cannot be checked.
    Elsewhere,
}

/// Where a process recorded with this host, boot id and pid namespace lives, seen from here.
pub fn locality(host: &str, boot: &str, pid_ns: &str) -> Locality {
    if host != host_name() {
        Locality::Elsewhere
    } else if boot != boot_id() {
        Locality::EarlierBoot
    } else if pid_ns != pid_namespace() {
        Locality::Elsewhere
    } else {
        Locality::Here
    }
}

/// Whether the process with this pid and start time still exists here and is not a zombie.
pub fn is_alive(pid: i32, start_time: u64) -> bool {
    proc_stat(pid).is_some_and(|s| s.start_time == start_time && !s.is_dead())
}

/// Why a process recorded here is not alive any more, or `None` when it is.
pub fn why_dead(pid: i32, start_time: u64) -> Option<String> {
    match proc_stat(pid) {
        None => Some(format!("pid {pid} is gone")),
        Some(s) if s.start_time != start_time => {
            Some(format!("pid {pid} now belongs to another process"))
        }
        Some(s) if s.is_dead() => Some(format!("pid {pid} is a zombie")),
        Some(_) => None,
    }
}

/// Every process visible in `/proc` now, with its stat. A process that exits while the scan runs
/// is simply absent; threads are not listed (only thread-group leaders).
pub fn processes() -> Vec<(i32, ProcStat)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        Some((pid, parse_stat(&read_stat_quickly(pid)?)?))
    })
    .collect()
}

/// `/proc/PID/stat` in one read: the kernel renders the line whole, so a buffer larger than it
/// gets everything at once (open, read, close) — a full scan runs on every process-group run.
fn read_stat_quickly(pid: i32) -> Option<String> {
    use std::io::Read;
    let path = format!("/proc/{pid}/stat");
    let mut file = std::fs::File::open(&path).ok()?;
    let mut buf = [0u8; 2048];
    let n = file.read(&mut buf).ok()?;
    if n == buf.len() {
        return std::fs::read_to_string(&path).ok();
    }
    String::from_utf8(buf[..n].to_vec()).ok()
}

/// CPU clock ticks a process used itself plus those of the children it has already reaped
/// (`utime + stime + cutime + cstime`): a suite's workers that exited still count.
pub fn cpu_ticks_with_reaped_children(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    // Fields after the name, counted from 0: utime(11) stime(12) cutime(13) cstime(14).
    rest.split_whitespace()
        .skip(11)
        .take(4)
        .map(|f| f.parse::<i64>().ok().map(|v| v.max(0) as u64))
        .sum()
}

/// What the scheduler accounted to one thread since it started (`/proc/PID/task/TID/schedstat`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedStat {
    /// Nanoseconds on a CPU (the first field).
    pub cpu_ns: u64,
    /// Nanoseconds runnable but waiting for a CPU: the run delay (the second field).
    pub delay_ns: u64,
}

/// Whether this kernel shows `/proc/PID/schedstat` (`CONFIG_SCHED_INFO`), checked once.
pub fn schedstat_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        std::fs::read_to_string("/proc/self/schedstat")
            .ok()
            .and_then(|s| parse_schedstat(&s))
            .is_some()
    })
}

/// The threads of process `pid` with what the scheduler accounted to each; empty when the
/// process is gone or the kernel has no schedstat.
pub fn thread_schedstats(pid: i32) -> Vec<(i32, SchedStat)> {
    if pid <= 0 {
        return Vec::new();
    }
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let tid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat")).ok()?;
        Some((tid, parse_schedstat(&text)?))
    })
    .collect()
}

fn parse_schedstat(text: &str) -> Option<SchedStat> {
    let mut fields = text.split_whitespace();
    Some(SchedStat {
        cpu_ns: fields.next()?.parse().ok()?,
        delay_ns: fields.next()?.parse().ok()?,
    })
}

/// The 1-minute load average from `/proc/loadavg`.
pub fn load_average_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// How many CPUs this process may run on (affinity and cgroup quota included).
pub fn cpu_count() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// The live (non-zombie) processes whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|(_, s)| s.pgid == pgid && !s.is_dead())
        .map(|(pid, _)| pid)
        .collect()
}

/// Clock ticks per second, for reading `/proc` times.
pub fn clock_ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map(|v| v as u64)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_name_with_spaces_and_parentheses() {
        let line =
            "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 987654 1 1";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 1);
        assert_eq!(s.pgid, 4242);
        assert_eq!(s.cpu_ticks, 10);
        assert_eq!(s.start_time, 987654);
    }

    #[test]
    fn reads_cpu_time_and_run_delay_from_schedstat() {
        assert_eq!(
            parse_schedstat("342493842 682864021 89\n"),
            Some(SchedStat {
                cpu_ns: 342_493_842,
                delay_ns: 682_864_021
            })
        );
        assert_eq!(parse_schedstat("12\n"), None);
        assert_eq!(parse_schedstat(""), None);
    }

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_not() {
        let (pid, start) = current_process();
        assert!(is_alive(pid, start));
        assert!(!is_alive(pid, start + 1));
        assert_eq!(
            why_dead(pid, start + 1).unwrap(),
            format!("pid {pid} now belongs to another process")
        );
    }
}
