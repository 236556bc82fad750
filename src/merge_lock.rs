//! The per-repository merge lock: one merge re-test per repository at a time.
//!
//! A row in `merge_locks`, taken under the task's lease and renewed with it; its holder is judged
//! alive exactly like a lease holder (`crate::owner::judge`). A live holder means lock-busy
//! (deferred, not failed). A dead holder whose runs are still open is reported as
//! `LockAttempt::Reclaim`: the caller has those runs finished, then asks again — this module
//! finishes nothing and routes nothing.

use anyhow::Result;

use crate::config::Config;
use crate::counter::Counter;
use crate::host;
use crate::lease::HeldLease;
use crate::owner::{judge, Claimant, Holder};
use crate::store::{MergeLockRow, Store};

/// The outcome of one attempt at a repository's merge lock.
#[derive(Clone, Debug)]
pub(crate) enum LockAttempt {
    Held,
    /// Another live holder has it (described in one line).
    Busy(String),
    /// The holder is dead but its runs are unfinished: finish them, then try again.
    Reclaim(MergeLockRow),
}

impl MergeLockRow {
    /// Whether this lock's holder is alive, seen by `me`.
    pub fn judge(&self, me: &Claimant) -> Holder {
        judge(&self.owner_id(), self.expiry(), me)
    }

    pub fn describe(&self) -> String {
        format!(
            "task {} ({}, pid {} on {}, held for {}s)",
            self.task_id,
            self.owner,
            self.owner_pid,
            self.host,
            (host::wall_ms() - self.acquired_at).max(0) / 1000
        )
    }
}

/// One attempt at `repo`'s merge lock for the task whose lease `lease` is.
pub(crate) fn try_acquire(
    store: &mut Store,
    config: &Config,
    repo: &str,
    lease: &HeldLease,
    me: &Claimant,
) -> Result<LockAttempt> {
    store.write(|db| {
        if let Some(row) = db.merge_lock(repo)? {
            match row.judge(me) {
                Holder::Mine if row.lease_token == lease.token => return Ok(LockAttempt::Held),
                Holder::Mine | Holder::Alive => return Ok(LockAttempt::Busy(row.describe())),
                Holder::Dead(_) => {
                    if !db.unfinished_runs_of(&row.owner_id())?.is_empty() {
                        return Ok(LockAttempt::Reclaim(row));
                    }
                    db.delete_merge_lock(repo, row.lease_token)?;
                    db.count(Counter::MergeLockTakenOver, 1)?;
                }
            }
        }
        let (wall, boot) = (host::wall_ms(), host::boot_ms());
        db.insert_merge_lock(&MergeLockRow {
            repo: repo.to_string(),
            task_id: lease.task_id.clone(),
            lease_token: lease.token,
            owner: me.owner.clone(),
            owner_pid: me.pid,
            owner_pid_start: me.pid_start,
            boot_id: host::boot_id().into(),
            pid_ns: host::pid_namespace().into(),
            host: host::host_name().into(),
            acquired_at: wall,
            renewed_at: wall,
            renewed_boot_ms: boot,
            ttl_ms: config.lease_ttl.as_millis() as i64,
        })?;
        db.count(Counter::MergeLockAcquired, 1)?;
        Ok(LockAttempt::Held)
    })
}

/// Renews the lock with the lease; `false` when the lock is no longer this lease's.
pub(crate) fn renew(store: &mut Store, repo: &str, lease: &HeldLease) -> Result<bool> {
    store.write_retrying(|db| {
        db.renew_merge_lock(repo, lease.token, host::wall_ms(), host::boot_ms())
    })
}

/// Releases the lock if this lease still holds it.
pub(crate) fn release(store: &mut Store, repo: &str, lease: &HeldLease) -> Result<()> {
    store.write_retrying(|db| db.delete_merge_lock(repo, lease.token).map(|_| ()))
}
