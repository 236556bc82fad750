//! The reaper's own SQL: its `reaper_runs` rows, the conditional drops of dead leases and merge
//! locks, the claim of an alert re-delivery, and retention pruning.
//!
//! Every drop compares-and-swaps against the snapshot the reaper judged (token and last renewal)
//! and requires that the holder has no unfinished run left, in one `DELETE`: a row renewed or
//! re-taken since it was judged, or a holder whose run is still open, is never dropped.

use anyhow::{Context, Result};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::alerts::{pending_alert_from_row, PENDING_ALERT_COLUMNS};
use super::{Db, LeaseRow, MergeLockRow, PendingAlert};

/// One `orch reap`, as recorded.
#[derive(Clone, Debug, Serialize)]
pub struct ReaperRunRow {
    pub id: i64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub dry_run: bool,
    /// What it reclaimed, as the JSON document it wrote.
    pub summary: Option<String>,
}

/// Rows removed by one retention pass, per table.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Pruned {
    pub reaper_runs: i64,
    pub events: i64,
    pub runs: i64,
}

impl Pruned {
    pub fn total(&self) -> i64 {
        self.reaper_runs + self.events + self.runs
    }
}

/// The condition "the holder recorded in this row has no unfinished run", for `DELETE`s on
/// `transition_lease` and `merge_locks` (both record their holder with the same columns).
fn holder_has_no_open_run(table: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM runs r WHERE r.finished_at IS NULL
             AND r.owner_pid = {table}.owner_pid AND r.owner_pid_start = {table}.owner_pid_start
             AND r.host = {table}.host AND r.boot_id = {table}.boot_id
             AND r.pid_ns = {table}.pid_ns)"
    )
}

impl Db<'_> {
    /// Records the start of a reap; returns its id.
    pub fn insert_reaper_run(&self, started_at: i64) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO reaper_runs (started_at, dry_run) VALUES (?1, 0)",
                [started_at],
            )
            .context("recording the reap")?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records the end of a reap with its summary.
    pub fn finish_reaper_run(&self, id: i64, finished_at: i64, summary: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE reaper_runs SET finished_at = ?2, summary = ?3 WHERE id = ?1",
                params![id, finished_at, summary],
            )
            .context("recording the end of the reap")?;
        Ok(())
    }

    /// The most recent reap that finished, if any.
    pub fn last_reaper_run(&self) -> Result<Option<ReaperRunRow>> {
        self.conn
            .query_row(
                "SELECT id, started_at, finished_at, dry_run, summary FROM reaper_runs
                  WHERE finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC LIMIT 1",
                [],
                |r| {
                    Ok(ReaperRunRow {
                        id: r.get(0)?,
                        started_at: r.get(1)?,
                        finished_at: r.get(2)?,
                        dry_run: r.get::<_, i64>(3)? != 0,
                        summary: r.get(4)?,
                    })
                },
            )
            .optional()
            .context("reading the last reap")
    }

    /// Drops a lease judged dead, only if it is still exactly the row judged (same token, not
    /// renewed since) and its holder has no unfinished run. Returns whether it did.
    pub fn drop_dead_lease(&self, judged: &LeaseRow) -> Result<bool> {
        let n = self
            .conn
            .execute(
                &format!(
                    "DELETE FROM transition_lease
                      WHERE task_id = ?1 AND token = ?2 AND renewed_at = ?3
                        AND renewed_boot_ms = ?4 AND {}",
                    holder_has_no_open_run("transition_lease")
                ),
                params![
                    judged.task_id,
                    judged.token,
                    judged.renewed_at,
                    judged.renewed_boot_ms
                ],
            )
            .context("dropping a dead lease")?;
        Ok(n == 1)
    }

    /// Drops a merge lock judged dead, only if it is still exactly the row judged (same lease
    /// token, not renewed since) and its holder has no unfinished run. Returns whether it did.
    pub fn drop_dead_merge_lock(&self, judged: &MergeLockRow) -> Result<bool> {
        let n = self
            .conn
            .execute(
                &format!(
                    "DELETE FROM merge_locks
                      WHERE repo = ?1 AND lease_token = ?2 AND renewed_at = ?3
                        AND renewed_boot_ms = ?4 AND {}",
                    holder_has_no_open_run("merge_locks")
                ),
                params![
                    judged.repo,
                    judged.lease_token,
                    judged.renewed_at,
                    judged.renewed_boot_ms
                ],
            )
            .context("dropping a dead merge lock")?;
        Ok(n == 1)
    }

    /// Undelivered alerts whose raiser has had its chance (it attempted already, or the alert was
    /// created more than its own timeout + `margin_ms` ago; `default_timeout_ms` for a row without
    /// one) and with no attempt in flight, oldest first.
    pub fn alerts_to_redeliver(
        &self,
        now: i64,
        default_timeout_ms: i64,
        margin_ms: i64,
        limit: i64,
    ) -> Result<Vec<PendingAlert>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {PENDING_ALERT_COLUMNS} FROM alerts
              WHERE delivered_at IS NULL
                AND (attempts > 0 OR created_at + coalesce(timeout_ms, ?2) + ?3 <= ?1)
                AND (attempt_until IS NULL OR attempt_until <= ?1)
              ORDER BY created_at, id LIMIT ?4"
        ))?;
        let rows = stmt.query_map(
            params![now, default_timeout_ms, margin_ms, limit],
            pending_alert_from_row,
        )?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading alerts to re-deliver")
    }

    /// Claims one delivery attempt of an alert: counts it, only if nobody attempted or delivered
    /// it since `alert` was read and no attempt is in flight (an earlier claim's window has not
    /// ended at `now`). The window is the row's timeout + `margin_ms`; a claimer whose own
    /// `timeout_ms` is longer lengthens the row's (a row from before v4 gets it), a shorter one
    /// never shortens it. Whoever
    /// gets `true` sends it, under the row's timeout; anyone else does not.
    pub fn claim_alert_attempt(
        &self,
        alert: &PendingAlert,
        now: i64,
        timeout_ms: i64,
        margin_ms: i64,
    ) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE alerts SET attempts = attempts + 1,
                        timeout_ms = max(coalesce(timeout_ms, ?4), ?4),
                        attempt_until = ?3 + max(coalesce(timeout_ms, ?4), ?4) + ?5
                  WHERE id = ?1 AND attempts = ?2 AND delivered_at IS NULL
                    AND (attempt_until IS NULL OR attempt_until <= ?3)",
                params![alert.id, alert.attempts, now, timeout_ms, margin_ms],
            )
            .context("claiming an alert delivery")?;
        Ok(n == 1)
    }

    /// Records the result of the attempt claimed as number `attempt` (already counted by the
    /// claim). A failed attempt that is still the last one claimed ends its window, so the next
    /// reap retries at once; a delivered one keeps it.
    pub fn record_claimed_attempt(
        &self,
        id: i64,
        attempt: i64,
        delivered: bool,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        self.conn
            .execute(
                "UPDATE alerts SET last_error = ?3,
                        delivered_at = CASE WHEN ?4 THEN ?5 ELSE delivered_at END,
                        attempt_until = CASE WHEN NOT ?4 AND attempts = ?2 THEN NULL
                                             ELSE attempt_until END
                  WHERE id = ?1",
                params![id, attempt, error, delivered, now],
            )
            .context("recording an alert delivery")?;
        Ok(())
    }

    /// Deletes, at most `batch` rows per table, the reaps, processed event ids and finished runs
    /// older than `cutoff` (wall ms). The reap `keep` (the one running) is never deleted.
    pub fn prune_older_than(&self, cutoff: i64, keep: Option<i64>, batch: i64) -> Result<Pruned> {
        let reaper_runs = self.conn.execute(
            "DELETE FROM reaper_runs WHERE id IN (
                 SELECT id FROM reaper_runs WHERE started_at < ?1 AND id IS NOT ?2 LIMIT ?3)",
            params![cutoff, keep, batch],
        )?;
        let events = self.conn.execute(
            "DELETE FROM events WHERE rowid IN (
                 SELECT rowid FROM events WHERE at < ?1 LIMIT ?2)",
            params![cutoff, batch],
        )?;
        let runs = self.conn.execute(
            "DELETE FROM runs WHERE id IN (
                 SELECT id FROM runs WHERE finished_at IS NOT NULL AND finished_at < ?1 LIMIT ?2)",
            params![cutoff, batch],
        )?;
        Ok(Pruned {
            reaper_runs: reaper_runs as i64,
            events: events as i64,
            runs: runs as i64,
        })
    }

    /// Rows retention would delete now (for `--dry-run`), per table.
    pub fn count_older_than(&self, cutoff: i64) -> Result<Pruned> {
        let count = |sql: &str| -> Result<i64> {
            self.conn
                .query_row(sql, [cutoff], |r| r.get(0))
                .context("counting rows to prune")
        };
        Ok(Pruned {
            reaper_runs: count("SELECT count(*) FROM reaper_runs WHERE started_at < ?1")?,
            events: count("SELECT count(*) FROM events WHERE at < ?1")?,
            runs: count(
                "SELECT count(*) FROM runs WHERE finished_at IS NOT NULL AND finished_at < ?1",
            )?,
        })
    }
}
