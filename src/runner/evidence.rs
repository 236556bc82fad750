//! Why a run timed out, measured just before it is killed: the machine's load against its CPUs,
//! and the CPU time the process group used against the wall time it had.
//!
//! orch treats a timeout as infra, the minority stance, so every timeout carries this evidence and
//! a one-word verdict a person can check instead of trusting.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::host;

/// The one-word reading of a timeout's evidence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The machine was saturated (load above its CPU count) and the run got under half a CPU:
    /// it waited for CPU, not for itself.
    Starved,
    /// The run used almost no CPU (under 5 % of one) on a machine that was not saturated: it
    /// was waiting on something — a lock, the network, a deadlock.
    Hung,
    /// The run was computing: the suite is slow or loops.
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

/// What the machine and the run looked like at the deadline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The 1-minute load average.
    pub load_1m: f64,
    pub cpus: u32,
    /// CPU seconds the process group used (its reaped children included).
    pub cpu_s: f64,
    /// Wall seconds from exec to the deadline.
    pub wall_s: f64,
    pub verdict: Verdict,
}

impl Evidence {
    /// Measures now, for a group that used `cpu_ticks` in `wall`.
    pub(crate) fn measure(cpu_ticks: u64, wall: Duration) -> Evidence {
        let load_1m = host::load_average_1m().unwrap_or(0.0);
        let cpus = host::cpu_count();
        let cpu_s = cpu_ticks as f64 / host::clock_ticks_per_second() as f64;
        let wall_s = wall.as_secs_f64();
        Evidence {
            load_1m,
            cpus,
            cpu_s,
            wall_s,
            verdict: judge(load_1m, cpus, cpu_s, wall_s),
        }
    }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "load {:.2} on {} CPUs; the group used {:.2} CPU-s in {:.2} s: {}",
            self.load_1m, self.cpus, self.cpu_s, self.wall_s, self.verdict
        )
    }
}

/// The verdict for a run that used `cpu_s` CPU seconds in `wall_s` on a machine with this load.
pub(crate) fn judge(load_1m: f64, cpus: u32, cpu_s: f64, wall_s: f64) -> Verdict {
    // The average number of CPUs the run kept busy.
    let share = if wall_s > 0.0 { cpu_s / wall_s } else { 0.0 };
    if load_1m > f64::from(cpus.max(1)) && share < 0.5 {
        Verdict::Starved
    } else if share < 0.05 {
        Verdict::Hung
    } else {
        Verdict::Busy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saturated_machine_starves_an_idle_one_hangs_and_a_computing_run_is_busy() {
        assert_eq!(judge(9.0, 2, 1.0, 100.0), Verdict::Starved);
        assert_eq!(judge(0.3, 2, 0.1, 100.0), Verdict::Hung);
        assert_eq!(judge(0.9, 2, 90.0, 100.0), Verdict::Busy);
        // Saturated by the run itself: it got its CPU.
        assert_eq!(judge(3.0, 2, 180.0, 100.0), Verdict::Busy);
    }
}
