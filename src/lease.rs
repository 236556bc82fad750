//! The transition lease: at most one actor changes a task's stage at a time.
//!
//! A holder is alive while, on this host, boot and pid namespace, the process with its pid *and*
//! start time exists and is not a zombie. A holder from an earlier boot of this host is dead. A
//! holder on another host or in another pid namespace cannot be checked: it is dead only once its
//! TTL (stored in its row) has passed without renewal. A live holder is never usurped. The token is
//! a fencing token from an AUTOINCREMENT insert, and every CAS under a lease requires it.

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::counter::Counter;
use crate::host;
use crate::owner::{judge, Claimant, Holder};
use crate::store::{Db, LeaseRow, Store};

impl LeaseRow {
    /// Whether this row's holder is alive, seen by `me`.
    pub fn judge(&self, me: &Claimant) -> Holder {
        judge(&self.owner_id(), self.expiry(), me)
    }

    /// One line naming the holder, for the loser of a race.
    pub fn describe(&self) -> String {
        let age = (host::wall_ms() - self.acquired_at).max(0) / 1000;
        format!(
            "{} (pid {} on {}, lease token {}, held for {}s)",
            self.owner, self.owner_pid, self.host, self.token, age
        )
    }

    /// The dead holder, named for the take-over line, with why it was judged dead.
    pub(crate) fn dead_holder(&self, why: &str) -> String {
        format!(
            "{} (pid {} on {}, lease token {}): {why}",
            self.owner, self.owner_pid, self.host, self.token
        )
    }
}

/// The outcome of asking for a task's lease.
#[derive(Clone, Debug)]
pub(crate) enum Acquire {
    /// The caller holds the lease with this token.
    Held(HeldLease),
    /// A live holder has it; nothing was written but the `busy` counter.
    Busy(LeaseRow),
    /// The holder is dead but has unfinished runs: the caller must have them finished (outside
    /// the transaction) before the lease can be taken over. Nothing was written. `whose` names
    /// the dead holder and why it is dead, as `HeldLease::took_over` will: finishing its runs
    /// drops its lease, so the acquisition after them no longer sees whom it replaced.
    Reclaim { row: LeaseRow, whose: String },
}

/// A lease this process holds.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct HeldLease {
    pub task_id: String,
    pub token: i64,
    /// The reason the previous holder was judged dead, when this acquisition took it over.
    pub took_over: Option<String>,
    /// Whether this process already held it (re-entry).
    pub reentered: bool,
    /// No lease row at all: the kill-switch (or scope) turned the lease off for this task.
    pub unguarded: bool,
}

/// Acquires the lease of `task_id` inside the caller's write transaction.
///
/// Re-entry by the same process returns its token; a dead holder's row is replaced (a fresh
/// token); a live holder is never usurped.
pub(crate) fn acquire(db: &Db, task_id: &str, me: &Claimant, ttl: Duration) -> Result<Acquire> {
    acquire_inner(db, task_id, me, ttl, true)
}

/// `acquire` for the routing of a run that was just finished: the caller is itself finishing
/// the dead holder's runs, so their being open does not stop it.
pub(crate) fn acquire_for_reclaim(
    db: &Db,
    task_id: &str,
    me: &Claimant,
    ttl: Duration,
) -> Result<Acquire> {
    acquire_inner(db, task_id, me, ttl, false)
}

fn acquire_inner(
    db: &Db,
    task_id: &str,
    me: &Claimant,
    ttl: Duration,
    check_runs: bool,
) -> Result<Acquire> {
    let mut took_over = None;
    if let Some(row) = db.lease(task_id)? {
        match row.judge(me) {
            Holder::Mine => {
                return Ok(Acquire::Held(HeldLease {
                    task_id: task_id.to_string(),
                    token: row.token,
                    took_over: None,
                    reentered: true,
                    unguarded: false,
                }))
            }
            Holder::Alive => {
                db.count(Counter::LeaseBusy, 1)?;
                return Ok(Acquire::Busy(row));
            }
            Holder::Dead(why) => {
                let whose = row.dead_holder(&why);
                if check_runs && !db.unfinished_runs_of(&row.owner_id())?.is_empty() {
                    return Ok(Acquire::Reclaim { row, whose });
                }
                db.delete_lease(task_id, row.token)?;
                db.count(Counter::LeaseTakenOver, 1)?;
                took_over = Some(whose);
            }
        }
    }
    let (wall, boot) = (host::wall_ms(), host::boot_ms());
    let ttl_ms = ttl.as_millis() as i64;
    let token = db.insert_lease(&LeaseRow {
        token: 0,
        task_id: task_id.to_string(),
        owner: me.owner.clone(),
        owner_pid: me.pid,
        owner_pid_start: me.pid_start,
        boot_id: host::boot_id().to_string(),
        pid_ns: host::pid_namespace().to_string(),
        host: host::host_name().to_string(),
        acquired_at: wall,
        renewed_at: wall,
        expires_at: wall + ttl_ms,
        renewed_boot_ms: boot,
        ttl_ms,
    })?;
    db.count(Counter::LeaseAcquired, 1)?;
    Ok(Acquire::Held(HeldLease {
        task_id: task_id.to_string(),
        token,
        took_over,
        reentered: false,
        unguarded: false,
    }))
}

impl HeldLease {
    /// The stand-in for a lease when the lease does not apply (kill-switch or out of scope):
    /// renewals and re-checks always succeed, and CAS writes are plain.
    pub(crate) fn unguarded(task_id: &str) -> HeldLease {
        HeldLease {
            task_id: task_id.to_string(),
            token: 0,
            took_over: None,
            reentered: false,
            unguarded: true,
        }
    }

    /// The token a CAS must require, if any.
    pub(crate) fn cas_token(&self) -> Option<i64> {
        (!self.unguarded).then_some(self.token)
    }

    /// Extends the lease, retrying while the database is busy. `false` means the token is gone:
    /// the caller must stop its run and exit 4.
    pub(crate) fn renew(&self, store: &mut Store, ttl: Duration) -> Result<bool> {
        if self.unguarded {
            return Ok(true);
        }
        let ttl_ms = ttl.as_millis() as i64;
        store.write_retrying(|db| {
            db.renew_lease(
                &self.task_id,
                self.token,
                host::wall_ms(),
                host::boot_ms(),
                ttl_ms,
            )
        })
    }

    /// Whether the token still holds the lease (checked before each irreversible step).
    pub(crate) fn still_held(&self, db: &Db) -> Result<bool> {
        if self.unguarded {
            return Ok(true);
        }
        Ok(db
            .lease(&self.task_id)?
            .is_some_and(|row| row.token == self.token))
    }

    /// Gives the lease up inside the caller's transaction (a no-op when re-entered: the outer
    /// holder releases it).
    pub(crate) fn release_in(&self, db: &Db) -> Result<()> {
        if !self.reentered && !self.unguarded {
            db.delete_lease(&self.task_id, self.token)?;
        }
        Ok(())
    }
}
