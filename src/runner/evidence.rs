//! Why a run timed out, measured from the suite's own processes: how long they spent on a CPU and
//! how long they were runnable but waiting for one (the scheduler's run delay,
//! `/proc/PID/task/TID/schedstat`), sampled while the run is alive, against the wall time it had.
//! The machine's load average and CPU count are kept beside them as context, never as the
//! verdict: a sleeping suite on a busy host is hung, not starved.
//!
//! orch treats a timeout as infra, the minority stance, so every timeout carries this evidence and
//! a one-word verdict a person can check instead of trusting.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::tree::ProcessId;
use crate::host::{self, SchedStat};

/// How often a run with a deadline has its processes sampled. A process that lives shorter than
/// this may be missed by the run delay (its CPU time still counts through its parent's reaped
/// children).
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// The one-word reading of a timeout's evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The suite's processes spent at least a third of the wall time runnable but waiting for a
    /// CPU: the machine was too busy for it.
    Starved,
    /// Under a tenth of the wall time on a CPU and under a tenth waiting for one: the suite was
    /// asleep or blocked — a lock, the network, a deadlock, a `sleep`.
    Hung,
    /// Anything else: the suite was computing — it is slow or loops.
    Busy,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Starved => "starved",
            Verdict::Hung => "hung",
            Verdict::Busy => "busy",
        })
    }
}

/// Where the numbers of an evidence came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Measure {
    /// The scheduler's per-thread accounting of the suite's processes: time on a CPU and run
    /// delay.
    Schedstat,
    /// No schedstat: only the process group's CPU time against wall time, so a starved run
    /// cannot be told from a hung one.
    CpuTime,
    /// A row written before orch read schedstat: the verdict was drawn from the load average.
    LoadAverage,
}

fn measured_before_schedstat() -> Measure {
    Measure::LoadAverage
}

/// What the run and the machine looked like at the deadline. Stored as JSON in `runs.evidence`;
/// fields added later have defaults, so older rows still read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The 1-minute load average: context only.
    pub load_1m: f64,
    /// The CPUs orch may run on: context only.
    pub cpus: u32,
    /// CPU seconds the suite's processes spent on a CPU (with the children they reaped).
    pub cpu_s: f64,
    /// Seconds the suite's processes spent runnable but waiting for a CPU, summed over them;
    /// `None` when it could not be measured.
    #[serde(default)]
    pub waited_s: Option<f64>,
    /// Wall seconds from exec to the deadline.
    pub wall_s: f64,
    /// How many processes of the run were sampled (those that exited still count).
    #[serde(default)]
    pub processes: u32,
    #[serde(default = "measured_before_schedstat")]
    pub measured_by: Measure,
    /// Why the evidence is weaker than usual, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub verdict: Verdict,
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.waited_s {
            Some(waited) => write!(
                f,
                "the suite ran {:.2} CPU-s and waited {:.2} s for a CPU in {:.2} s ({} process(es)): {}",
                self.cpu_s, waited, self.wall_s, self.processes, self.verdict
            )?,
            None => write!(
                f,
                "the group used {:.2} CPU-s in {:.2} s, its wait for a CPU not measured: {}",
                self.cpu_s, self.wall_s, self.verdict
            )?,
        }
        write!(f, "; load {:.2} on {} CPUs", self.load_1m, self.cpus)
    }
}

/// The verdict for a run that spent `cpu_s` on a CPU and `waited_s` waiting for one in `wall_s`
/// on a machine of `cpus` CPUs. Without a measured wait, only hung (under a tenth on a CPU) and
/// busy can be told apart. A suite that itself kept at least two thirds of the machine's CPUs
/// busy is busy however long its threads waited: they waited for each other, not for a machine
/// that had no CPU for it.
pub(crate) fn judge(cpu_s: f64, waited_s: Option<f64>, wall_s: f64, cpus: u32) -> Verdict {
    if wall_s <= 0.0 {
        return Verdict::Hung;
    }
    let waited = waited_s.unwrap_or(0.0);
    let occupied_machine = cpu_s >= f64::from(cpus.max(1)) * wall_s * 2.0 / 3.0;
    if waited >= wall_s / 3.0 && !occupied_machine {
        Verdict::Starved
    } else if cpu_s < wall_s / 10.0 && waited < wall_s / 10.0 {
        Verdict::Hung
    } else {
        Verdict::Busy
    }
}

/// The run's processes as the scheduler accounted them, sampled while it is alive: the last
/// reading of every thread seen, so that a process that exited still counts with what it used.
#[derive(Debug)]
pub(crate) struct Sampler {
    next: Instant,
    /// By (pid, pid start time, tid).
    readings: HashMap<(i32, u64, i32), SchedStat>,
    processes: HashSet<ProcessId>,
}

impl Sampler {
    /// A sampler whose first sample is due at once.
    pub(crate) fn new(now: Instant) -> Sampler {
        Sampler {
            next: now,
            readings: HashMap::new(),
            processes: HashSet::new(),
        }
    }

    /// Samples when the interval has passed since the last sample.
    pub(crate) fn sample_if_due(&mut self, now: Instant, leader: i32, spared: &HashSet<ProcessId>) {
        if now >= self.next {
            self.sample(leader, spared);
            self.next = now + SAMPLE_EVERY;
        }
    }

    /// Reads every process of the run now: the leader's group, the leader's descendants wherever
    /// they went, and orch's children that are not `spared` (descendants re-parented to orch).
    pub(crate) fn sample(&mut self, leader: i32, spared: &HashSet<ProcessId>) {
        if !host::schedstat_available() {
            return;
        }
        for (pid, start) in run_processes(leader, spared) {
            let threads = host::thread_schedstats(pid);
            if threads.is_empty() {
                continue;
            }
            self.processes.insert((pid, start));
            for (tid, stat) in threads {
                self.readings.insert((pid, start, tid), stat);
            }
        }
    }

    /// The evidence for a run whose process group used `cpu_ticks` (stat's CPU times with reaped
    /// children) in `wall`; take a last `sample` first.
    pub(crate) fn evidence(&self, cpu_ticks: u64, wall: Duration) -> Evidence {
        let ticks_s = cpu_ticks as f64 / host::clock_ticks_per_second() as f64;
        let (cpu_s, waited_s, measured_by, note) = if self.readings.is_empty() {
            let why = if host::schedstat_available() {
                "no process of the run could be sampled"
            } else {
                "this kernel has no /proc/PID/schedstat"
            };
            (
                ticks_s,
                None,
                Measure::CpuTime,
                Some(format!(
                    "{why}: time waiting for a CPU was not measured, so starved cannot be told from hung; judged by CPU time against wall time"
                )),
            )
        } else {
            let ns = |f: fn(&SchedStat) -> u64| -> f64 {
                self.readings.values().map(f).sum::<u64>() as f64 / 1e9
            };
            // Children that lived between two samples are not in the readings, but their CPU time
            // is in their parents' reaped-children ticks.
            let cpu_s = ns(|s| s.cpu_ns).max(ticks_s);
            (cpu_s, Some(ns(|s| s.delay_ns)), Measure::Schedstat, None)
        };
        let wall_s = wall.as_secs_f64();
        let cpus = host::cpu_count();
        Evidence {
            load_1m: host::load_average_1m().unwrap_or(0.0),
            cpus,
            cpu_s,
            waited_s,
            wall_s,
            processes: u32::try_from(self.processes.len()).unwrap_or(u32::MAX),
            measured_by,
            note,
            verdict: judge(cpu_s, waited_s, wall_s, cpus),
        }
    }
}

/// The processes of the run led by `leader`, now.
fn run_processes(leader: i32, spared: &HashSet<ProcessId>) -> Vec<ProcessId> {
    let me = std::process::id() as i32;
    let all = host::processes();
    let mut members: HashSet<i32> = all
        .iter()
        .filter(|(pid, s)| {
            *pid == leader
                || s.pgid == leader
                || (s.ppid == me && !spared.contains(&(*pid, s.start_time)))
        })
        .map(|(pid, _)| *pid)
        .collect();
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (pid, s) in &all {
        children.entry(s.ppid).or_default().push(*pid);
    }
    let mut todo: Vec<i32> = members.iter().copied().collect();
    while let Some(parent) = todo.pop() {
        for child in children.get(&parent).into_iter().flatten() {
            if members.insert(*child) {
                todo.push(*child);
            }
        }
    }
    all.into_iter()
        .filter(|(pid, _)| members.contains(pid))
        .map(|(pid, s)| (pid, s.start_time))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_a_third_starves_under_a_tenth_of_both_hangs_and_the_rest_is_busy() {
        // A third of the wall waiting for a CPU, whatever it computed.
        assert_eq!(judge(1.0, Some(33.4), 100.0, 4), Verdict::Starved);
        assert_eq!(judge(60.0, Some(40.0), 100.0, 4), Verdict::Starved);
        // Asleep: neither computing nor waiting.
        assert_eq!(judge(0.1, Some(0.2), 100.0, 4), Verdict::Hung);
        assert_eq!(judge(9.9, Some(9.9), 100.0, 4), Verdict::Hung);
        // Computing, or waiting a little: busy.
        assert_eq!(judge(90.0, Some(5.0), 100.0, 4), Verdict::Busy);
        assert_eq!(judge(10.0, Some(0.0), 100.0, 4), Verdict::Busy);
        assert_eq!(judge(1.0, Some(20.0), 100.0, 4), Verdict::Busy);
        // Many processes computing at once: more CPU than wall.
        assert_eq!(judge(180.0, Some(1.0), 100.0, 4), Verdict::Busy);
        // Eight spinning threads on two CPUs: they wait for each other, the machine is theirs.
        assert_eq!(judge(200.0, Some(600.0), 100.0, 2), Verdict::Busy);
        // The same wait while the suite got only half the machine: starved.
        assert_eq!(judge(100.0, Some(600.0), 100.0, 2), Verdict::Starved);
    }

    #[test]
    fn without_a_measured_wait_only_cpu_time_against_wall_decides() {
        assert_eq!(judge(0.5, None, 100.0, 4), Verdict::Hung);
        assert_eq!(judge(50.0, None, 100.0, 4), Verdict::Busy);
        assert_eq!(judge(0.0, None, 0.0, 4), Verdict::Hung);
    }

    #[test]
    fn an_evidence_row_written_before_schedstat_still_reads() {
        let old = r#"{"load_1m":9.0,"cpus":2,"cpu_s":0.0,"wall_s":3.0,"verdict":"starved"}"#;
        let evidence: Evidence = serde_json::from_str(old).unwrap();
        assert_eq!(evidence.verdict, Verdict::Starved);
        assert_eq!(evidence.measured_by, Measure::LoadAverage);
        assert_eq!(evidence.waited_s, None);
        assert_eq!(evidence.processes, 0);
        let outcome = r#"{"outcome":"timeout","evidence":{"load_1m":0.5,"cpus":4,"cpu_s":1.0,"wall_s":2.0,"verdict":"busy"}}"#;
        assert!(matches!(
            serde_json::from_str::<super::super::RunOutcome>(outcome).unwrap(),
            super::super::RunOutcome::Timeout { .. }
        ));
    }

    #[test]
    fn this_process_and_its_children_are_sampled_and_the_readings_outlive_them() {
        if !host::schedstat_available() {
            return;
        }
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 30",
            ])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let mut sampler = Sampler::new(Instant::now());
        let deadline = Instant::now() + Duration::from_secs(60);
        while sampler.readings.values().all(|s| s.cpu_ns == 0) {
            assert!(Instant::now() < deadline, "the child never showed CPU time");
            sampler.sample(pid, &HashSet::new());
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        // Gone, yet counted.
        sampler.sample(pid, &HashSet::new());
        let evidence = sampler.evidence(0, Duration::from_secs(1));
        assert_eq!(evidence.measured_by, Measure::Schedstat);
        assert!(evidence.processes >= 1);
        assert!(evidence.cpu_s > 0.0);
        assert!(evidence.waited_s.is_some());
    }
}
