//! Rows of `transition_lease`. Whether a holder is alive is judged above the store.

use anyhow::{Context, Result};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::Db;
use crate::host;
use crate::owner::{Expiry, OwnerId};

/// A lease row: who holds a task, and how to tell whether they still live.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LeaseRow {
    pub token: i64,
    pub task_id: String,
    pub owner: String,
    pub owner_pid: i32,
    pub owner_pid_start: u64,
    pub boot_id: String,
    pub pid_ns: String,
    pub host: String,
    pub acquired_at: i64,
    pub renewed_at: i64,
    pub expires_at: i64,
    pub renewed_boot_ms: i64,
    pub ttl_ms: i64,
}

const LEASE_COLUMNS: &str = "token, task_id, owner, owner_pid, owner_pid_start, boot_id, pid_ns, \
     host, acquired_at, renewed_at, expires_at, renewed_boot_ms, ttl_ms";

impl LeaseRow {
    /// The holder's identity.
    pub fn owner_id(&self) -> OwnerId {
        OwnerId::of(
            self.owner_pid,
            self.owner_pid_start,
            &self.host,
            &self.boot_id,
            &self.pid_ns,
        )
    }

    /// When the row expires if its holder cannot be checked.
    pub fn expiry(&self) -> Expiry {
        Expiry {
            renewed_at: self.renewed_at,
            renewed_boot_ms: self.renewed_boot_ms,
            ttl_ms: self.ttl_ms,
        }
    }
}

fn lease_from_row(r: &Row) -> rusqlite::Result<LeaseRow> {
    Ok(LeaseRow {
        token: r.get(0)?,
        task_id: r.get(1)?,
        owner: r.get(2)?,
        owner_pid: r.get(3)?,
        owner_pid_start: r.get::<_, i64>(4)? as u64,
        boot_id: r.get(5)?,
        pid_ns: r.get(6)?,
        host: r.get(7)?,
        acquired_at: r.get(8)?,
        renewed_at: r.get(9)?,
        expires_at: r.get(10)?,
        renewed_boot_ms: r.get(11)?,
        ttl_ms: r.get(12)?,
    })
}

impl Db<'_> {
    pub fn lease(&self, task_id: &str) -> Result<Option<LeaseRow>> {
        self.conn
            .query_row(
                &format!("SELECT {LEASE_COLUMNS} FROM transition_lease WHERE task_id = ?1"),
                [task_id],
                lease_from_row,
            )
            .optional()
            .context("reading a lease")
    }

    pub fn leases(&self) -> Result<Vec<LeaseRow>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {LEASE_COLUMNS} FROM transition_lease ORDER BY acquired_at"
        ))?;
        let rows = stmt.query_map([], lease_from_row)?;
        rows.collect::<rusqlite::Result<_>>()
            .context("listing leases")
    }

    /// Inserts a lease row; the AUTOINCREMENT rowid it gets is the new fencing token. The
    /// `token` field of `row` is ignored.
    pub fn insert_lease(&self, row: &LeaseRow) -> Result<i64> {
        self.conn
            .execute(
                &format!(
                    "INSERT INTO transition_lease ({LEASE_COLUMNS})
                     VALUES (NULL, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                ),
                params![
                    row.task_id,
                    row.owner,
                    row.owner_pid,
                    row.owner_pid_start as i64,
                    row.boot_id,
                    row.pid_ns,
                    row.host,
                    row.acquired_at,
                    row.renewed_at,
                    row.expires_at,
                    row.renewed_boot_ms,
                    row.ttl_ms,
                ],
            )
            .context("acquiring a lease")?;
        Ok(self.conn.last_insert_rowid())
    }

    /// After a panic: gives up every lease and merge lock this process holds, unless it still has
    /// an unfinished run (then a take-over or the reaper finishes that run first, as for any dead
    /// holder). Returns how many rows it deleted.
    pub fn release_own_holdings(&self) -> Result<usize> {
        let (pid, start) = host::current_process();
        let (boot, ns, host) = (host::boot_id(), host::pid_namespace(), host::host_name());
        let no_open_run = "NOT EXISTS (SELECT 1 FROM runs WHERE finished_at IS NULL
                 AND owner_pid = ?1 AND owner_pid_start = ?2 AND boot_id = ?3 AND pid_ns = ?4
                 AND host = ?5)";
        let mine = "owner_pid = ?1 AND owner_pid_start = ?2 AND boot_id = ?3 AND pid_ns = ?4
                 AND host = ?5";
        let args = params![pid, start as i64, boot, ns, host];
        let locks = self.conn.execute(
            &format!("DELETE FROM merge_locks WHERE {mine} AND {no_open_run}"),
            args,
        )?;
        let leases = self.conn.execute(
            &format!("DELETE FROM transition_lease WHERE {mine} AND {no_open_run}"),
            args,
        )?;
        Ok(locks + leases)
    }

    /// Deletes the lease only if `token` still holds it. Returns whether it did.
    pub fn delete_lease(&self, task_id: &str, token: i64) -> Result<bool> {
        let n = self.conn.execute(
            "DELETE FROM transition_lease WHERE task_id = ?1 AND token = ?2",
            params![task_id, token],
        )?;
        Ok(n == 1)
    }

    /// Extends the lease only if `token` still holds it. Returns whether it did.
    pub fn renew_lease(
        &self,
        task_id: &str,
        token: i64,
        wall: i64,
        boot_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE transition_lease
                SET renewed_at = ?3, expires_at = ?3 + ?5, renewed_boot_ms = ?4, ttl_ms = ?5
              WHERE task_id = ?1 AND token = ?2",
            params![task_id, token, wall, boot_ms, ttl_ms],
        )?;
        Ok(n == 1)
    }
}
