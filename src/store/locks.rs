//! Rows of `merge_locks`: one per repository, held with a task's lease.

use anyhow::{Context, Result};
use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;

use super::Db;
use crate::owner::{Expiry, OwnerId};

/// A merge-lock row.
#[derive(Clone, Debug, Serialize)]
pub struct MergeLockRow {
    pub repo: String,
    pub task_id: String,
    pub lease_token: i64,
    pub owner: String,
    pub owner_pid: i32,
    pub owner_pid_start: u64,
    pub boot_id: String,
    pub pid_ns: String,
    pub host: String,
    pub acquired_at: i64,
    pub renewed_at: i64,
    pub renewed_boot_ms: i64,
    pub ttl_ms: i64,
}

const LOCK_COLUMNS: &str = "repo, task_id, lease_token, owner, owner_pid, owner_pid_start, \
     boot_id, pid_ns, host, acquired_at, renewed_at, renewed_boot_ms, ttl_ms";

impl MergeLockRow {
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

fn lock_from_row(r: &Row) -> rusqlite::Result<MergeLockRow> {
    Ok(MergeLockRow {
        repo: r.get(0)?,
        task_id: r.get(1)?,
        lease_token: r.get(2)?,
        owner: r.get(3)?,
        owner_pid: r.get(4)?,
        owner_pid_start: r.get::<_, i64>(5)? as u64,
        boot_id: r.get(6)?,
        pid_ns: r.get(7)?,
        host: r.get(8)?,
        acquired_at: r.get(9)?,
        renewed_at: r.get(10)?,
        renewed_boot_ms: r.get(11)?,
        ttl_ms: r.get(12)?,
    })
}

impl Db<'_> {
    pub fn merge_lock(&self, repo: &str) -> Result<Option<MergeLockRow>> {
        self.conn
            .query_row(
                &format!("SELECT {LOCK_COLUMNS} FROM merge_locks WHERE repo = ?1"),
                [repo],
                lock_from_row,
            )
            .optional()
            .context("reading a merge lock")
    }

    pub fn merge_locks(&self) -> Result<Vec<MergeLockRow>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {LOCK_COLUMNS} FROM merge_locks ORDER BY repo"
        ))?;
        let rows = stmt.query_map([], lock_from_row)?;
        rows.collect::<rusqlite::Result<_>>()
            .context("listing merge locks")
    }

    pub fn insert_merge_lock(&self, row: &MergeLockRow) -> Result<()> {
        self.conn
            .execute(
                &format!(
                    "INSERT INTO merge_locks ({LOCK_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                ),
                params![
                    row.repo,
                    row.task_id,
                    row.lease_token,
                    row.owner,
                    row.owner_pid,
                    row.owner_pid_start as i64,
                    row.boot_id,
                    row.pid_ns,
                    row.host,
                    row.acquired_at,
                    row.renewed_at,
                    row.renewed_boot_ms,
                    row.ttl_ms
                ],
            )
            .context("taking a merge lock")?;
        Ok(())
    }

    /// Deletes the lock only if this lease token holds it.
    pub fn delete_merge_lock(&self, repo: &str, lease_token: i64) -> Result<bool> {
        Ok(self.conn.execute(
            "DELETE FROM merge_locks WHERE repo = ?1 AND lease_token = ?2",
            params![repo, lease_token],
        )? == 1)
    }

    pub fn renew_merge_lock(
        &self,
        repo: &str,
        lease_token: i64,
        wall: i64,
        boot_ms: i64,
    ) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE merge_locks SET renewed_at = ?3, renewed_boot_ms = ?4
              WHERE repo = ?1 AND lease_token = ?2",
            params![repo, lease_token, wall, boot_ms],
        )? == 1)
    }
}
