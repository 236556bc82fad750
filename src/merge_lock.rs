//! The per-repository merge lock: one merge re-test per repository at a time.
//!
//! A row in `merge_locks`, taken under the task's lease and renewed with it; its holder is judged
//! alive exactly like a lease holder. A live holder means lock-busy (deferred, not failed); a dead
//! holder's lock is taken over only after its runs are finished through `reclaim`.

use anyhow::Result;

use crate::config::Config;
use crate::host;
use crate::lease::{judge, Claimant, Expiry, HeldLease, Holder};
use crate::store::{MergeLockRow, Store};

/// The outcome of asking for a repository's merge lock.
#[derive(Clone, Debug)]
pub enum LockAttempt {
    Held,
    /// Another live holder has it (described in one line).
    Busy(String),
}

impl MergeLockRow {
    fn holder(&self, me: &Claimant) -> Holder {
        judge(
            self.owner_pid,
            self.owner_pid_start,
            &self.host,
            &self.boot_id,
            &self.pid_ns,
            Expiry {
                renewed_at: self.renewed_at,
                renewed_boot_ms: self.renewed_boot_ms,
                ttl_ms: self.ttl_ms,
            },
            me,
        )
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

enum Step {
    Done(LockAttempt),
    Reclaim(MergeLockRow),
}

/// Takes `repo`'s merge lock for the task whose lease `lease` is.
pub fn acquire(
    store: &mut Store,
    config: &Config,
    repo: &str,
    lease: &HeldLease,
    me: &Claimant,
) -> Result<LockAttempt> {
    for _ in 0..3 {
        let step = store.write(|db| {
            if let Some(row) = db.merge_lock(repo)? {
                match row.holder(me) {
                    Holder::Mine if row.lease_token == lease.token => {
                        return Ok(Step::Done(LockAttempt::Held))
                    }
                    Holder::Mine | Holder::Alive => {
                        return Ok(Step::Done(LockAttempt::Busy(row.describe())))
                    }
                    Holder::Dead(_) => {
                        let open = db.unfinished_runs_of(
                            row.owner_pid,
                            row.owner_pid_start,
                            &row.host,
                            &row.boot_id,
                            &row.pid_ns,
                        )?;
                        if !open.is_empty() {
                            return Ok(Step::Reclaim(row));
                        }
                        db.delete_merge_lock(repo, row.lease_token)?;
                        db.count("merge_lock.taken_over", 1)?;
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
            db.count("merge_lock.acquired", 1)?;
            Ok(Step::Done(LockAttempt::Held))
        })?;
        match step {
            Step::Done(attempt) => return Ok(attempt),
            Step::Reclaim(row) => {
                let why = format!("merge-lock holder {} is dead", row.describe());
                let done = crate::reclaim::finish_runs_of_dead_holder(
                    store,
                    config,
                    row.owner_pid,
                    row.owner_pid_start,
                    &row.host,
                    &row.boot_id,
                    &row.pid_ns,
                    &why,
                )?;
                if !done {
                    return Ok(LockAttempt::Busy(format!(
                        "{} (dead, but its run could not be shown finished)",
                        row.describe()
                    )));
                }
            }
        }
    }
    Ok(LockAttempt::Busy(format!(
        "the merge lock of `{repo}` keeps changing hands"
    )))
}

/// Renews the lock with the lease; `false` when the lock is no longer this lease's.
pub fn renew(store: &mut Store, repo: &str, lease: &HeldLease) -> Result<bool> {
    store.write_retrying(|db| {
        db.renew_merge_lock(repo, lease.token, host::wall_ms(), host::boot_ms())
    })
}

/// Releases the lock if this lease still holds it.
pub fn release(store: &mut Store, repo: &str, lease: &HeldLease) -> Result<()> {
    store.write_retrying(|db| db.delete_merge_lock(repo, lease.token).map(|_| ()))
}
