//! Rows of `alerts`: written, under a unique key, before delivery; delivered at least once.

use anyhow::{Context, Result};
use rusqlite::params;

use super::Db;

/// An alert waiting for (or after) delivery.
#[derive(Clone, Debug)]
pub struct PendingAlert {
    pub id: i64,
    pub key: String,
    pub payload: String,
    pub attempts: i64,
}

impl Db<'_> {
    /// Inserts an alert unless one with this key exists; returns whether it was new.
    pub fn insert_alert(
        &self,
        key: &str,
        task_id: &str,
        kind: &str,
        payload: &str,
        now: i64,
    ) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "INSERT INTO alerts (key, task_id, kind, payload, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(key) DO NOTHING",
                params![key, task_id, kind, payload, now],
            )
            .context("recording an alert")?;
        Ok(n == 1)
    }

    pub fn alert_by_key(&self, key: &str) -> Result<Option<PendingAlert>> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row(
                "SELECT id, key, payload, attempts FROM alerts WHERE key = ?1 AND delivered_at IS NULL",
                [key],
                |r| {
                    Ok(PendingAlert {
                        id: r.get(0)?,
                        key: r.get(1)?,
                        payload: r.get(2)?,
                        attempts: r.get(3)?,
                    })
                },
            )
            .optional()
            .context("reading an alert")
    }

    /// Records one delivery attempt.
    pub fn record_alert_attempt(
        &self,
        id: i64,
        delivered: bool,
        error: Option<&str>,
        now: i64,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE alerts SET attempts = attempts + 1, last_error = ?2,
                    delivered_at = CASE WHEN ?3 THEN ?4 ELSE delivered_at END
              WHERE id = ?1",
            params![id, error, delivered, now],
        )?;
        Ok(())
    }
}
