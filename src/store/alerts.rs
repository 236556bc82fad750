//! Rows of `alerts`: written, under a unique key, before delivery; delivered at least once, and
//! at most once per attempt window (`Db::claim_alert_attempt`).

use anyhow::{Context, Result};
use rusqlite::{params, Row};

use super::Db;

/// An alert waiting for (or after) delivery.
#[derive(Clone, Debug)]
pub struct PendingAlert {
    pub id: i64,
    pub key: String,
    pub payload: String,
    pub attempts: i64,
    /// The delivery timeout every attempt uses (ms), stamped when the alert is raised (rows
    /// raised before v4 get it from their first claim).
    pub timeout_ms: Option<i64>,
    /// When the attempt in flight, if any, stops counting (wall ms).
    pub attempt_until: Option<i64>,
}

pub(super) const PENDING_ALERT_COLUMNS: &str =
    "id, key, payload, attempts, timeout_ms, attempt_until";

pub(super) fn pending_alert_from_row(r: &Row) -> rusqlite::Result<PendingAlert> {
    Ok(PendingAlert {
        id: r.get(0)?,
        key: r.get(1)?,
        payload: r.get(2)?,
        attempts: r.get(3)?,
        timeout_ms: r.get(4)?,
        attempt_until: r.get(5)?,
    })
}

impl Db<'_> {
    /// Inserts an alert unless one with this key exists; returns whether it was new. Its delivery
    /// timeout is the raiser's `ORCH_ALERT_TIMEOUT_S`; every attempt's window uses it.
    pub fn insert_alert(
        &self,
        key: &str,
        task_id: &str,
        kind: &str,
        payload: &str,
        timeout_ms: i64,
        now: i64,
    ) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "INSERT INTO alerts (key, task_id, kind, payload, created_at, timeout_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(key) DO NOTHING",
                params![key, task_id, kind, payload, now, timeout_ms],
            )
            .context("recording an alert")?;
        Ok(n == 1)
    }

    pub fn alert_by_key(&self, key: &str) -> Result<Option<PendingAlert>> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(
                &format!(
                    "SELECT {PENDING_ALERT_COLUMNS} FROM alerts
                      WHERE key = ?1 AND delivered_at IS NULL"
                ),
                [key],
                pending_alert_from_row,
            )
            .optional()
            .context("reading an alert")
    }

    /// Ends the window of the attempt in flight, as if it had passed.
    #[cfg(test)]
    pub fn end_alert_attempt_window_for_tests(&self, key: &str) -> Result<()> {
        self.conn
            .execute("UPDATE alerts SET attempt_until = 1 WHERE key = ?1", [key])?;
        Ok(())
    }
}
