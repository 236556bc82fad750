//! Who holds something — a lease, a merge lock, a run — and whether they still live.
//!
//! One identity type (`OwnerId`: pid, start time, host, boot id, pid namespace) for every row
//! that records a holder, and one `judge`. A holder is alive while, on this host, boot and pid
//! namespace, the process with that pid *and* start time exists and is not a zombie. A holder on
//! this host from an earlier boot is dead. A holder on another host or in another pid namespace
//! cannot be checked: it is dead only once the TTL stored in its row has passed without renewal.

use crate::host::{self, Locality};

/// The identity of a process that holds or owns a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerId {
    pub pid: i32,
    pub pid_start: u64,
    pub host: String,
    pub boot_id: String,
    pub pid_ns: String,
}

impl OwnerId {
    /// The identity a row records in its `owner_pid`, `owner_pid_start`, `host`, `boot_id` and
    /// `pid_ns` columns.
    pub(crate) fn of(pid: i32, pid_start: u64, host: &str, boot_id: &str, pid_ns: &str) -> OwnerId {
        OwnerId {
            pid,
            pid_start,
            host: host.to_string(),
            boot_id: boot_id.to_string(),
            pid_ns: pid_ns.to_string(),
        }
    }

    /// Where this owner lives, seen from here.
    pub fn locality(&self) -> Locality {
        host::locality(&self.host, &self.boot_id, &self.pid_ns)
    }
}

/// Who is asking for a lease or lock: this process, under an actor's name.
#[derive(Clone, Debug)]
pub struct Claimant {
    pub owner: String,
    pub pid: i32,
    pub pid_start: u64,
}

impl Claimant {
    /// This process, acting as `owner` (for example `ci (orch advance)`).
    pub fn current(owner: impl Into<String>) -> Claimant {
        let (pid, pid_start) = host::current_process();
        Claimant {
            owner: owner.into(),
            pid,
            pid_start,
        }
    }
}

/// What a row's holder is, seen from here now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// This very process: re-entry uses the token it holds.
    Mine,
    /// A live process, or one that cannot be checked and whose TTL has not passed.
    Alive,
    /// Dead, with the reason.
    Dead(String),
}

/// When a row that cannot be checked expires: on the same boot (another pid namespace of this
/// kernel) by `CLOCK_BOOTTIME`, elsewhere by wall clock. The TTL is the row's, never the caller's.
#[derive(Clone, Copy, Debug)]
pub struct Expiry {
    pub renewed_at: i64,
    pub renewed_boot_ms: i64,
    pub ttl_ms: i64,
}

impl Expiry {
    pub fn passed(&self, row_boot: &str) -> bool {
        if row_boot == host::boot_id() {
            host::boot_ms() > self.renewed_boot_ms + self.ttl_ms
        } else {
            host::wall_ms() > self.renewed_at + self.ttl_ms
        }
    }
}

/// Judges a recorded holder (a lease's, a merge lock's) from here.
pub(crate) fn judge(holder: &OwnerId, expiry: Expiry, me: &Claimant) -> Holder {
    match holder.locality() {
        Locality::Here if holder.pid == me.pid && holder.pid_start == me.pid_start => Holder::Mine,
        Locality::Here => match host::why_dead(holder.pid, holder.pid_start) {
            None => Holder::Alive,
            Some(why) => Holder::Dead(why),
        },
        Locality::EarlierBoot => Holder::Dead("holder is from an earlier boot of this host".into()),
        Locality::Elsewhere => {
            if expiry.passed(&holder.boot_id) {
                Holder::Dead(format!(
                    "holder on `{}` cannot be checked and its TTL has passed",
                    holder.host
                ))
            } else {
                Holder::Alive
            }
        }
    }
}
