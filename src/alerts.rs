//! Alerts: one per exhausted episode, from the final state only.
//!
//! An alert row with a unique key is written in the transaction that raises the HOLD, before any
//! delivery; delivery happens after the commit, through `ORCH_ALERT_CMD` with the alert as JSON on
//! stdin, and is retried by the reaper (`redeliver`) until it succeeds (at least once). Without an
//! alert command the alert is printed on stderr and counted delivered.

use std::process::Command;

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::counter::Counter;
use crate::host;
use crate::store::{Db, PendingAlert, Store};

/// What an alert says.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Alert {
    pub key: String,
    pub kind: String,
    pub task_id: String,
    pub repo: String,
    pub stage: String,
    pub summary: String,
    pub detail: serde_json::Value,
    pub at: String,
}

/// Writes the alert row in the caller's transaction. Returns whether it is new (a second raise of
/// the same episode writes nothing).
pub(crate) fn raise(db: &Db, alert: &Alert) -> Result<bool> {
    let payload = serde_json::to_string(alert)?;
    let new = db.insert_alert(
        &alert.key,
        &alert.task_id,
        &alert.kind,
        &payload,
        host::wall_ms(),
    )?;
    if new {
        db.count(Counter::AlertsRaised, 1)?;
    }
    Ok(new)
}

/// Delivers one stored alert; records the attempt. Returns whether it was delivered.
pub(crate) fn deliver(store: &mut Store, config: &Config, alert: &PendingAlert) -> Result<bool> {
    let result = send(config, &alert.payload);
    let now = host::wall_ms();
    store.write(|db| {
        db.record_alert_attempt(
            alert.id,
            result.is_ok(),
            result.as_ref().err().map(String::as_str),
            now,
        )?;
        db.count(
            if result.is_ok() {
                Counter::AlertsDelivered
            } else {
                Counter::AlertsDeliveryFailed
            },
            1,
        )
    })?;
    Ok(result.is_ok())
}

/// The reaper's re-delivery of a stored alert. The attempt is claimed first (a compare-and-swap
/// on the attempt count it read), so two reapers never send the same attempt; the result is
/// recorded after. `None` when another process attempted or delivered it first.
pub(crate) fn redeliver(
    store: &mut Store,
    config: &Config,
    alert: &PendingAlert,
) -> Result<Option<bool>> {
    if !store.write(|db| db.claim_alert_attempt(alert))? {
        return Ok(None);
    }
    let result = send(config, &alert.payload);
    let now = host::wall_ms();
    store.write_retrying(|db| {
        db.record_claimed_attempt(
            alert.id,
            result.is_ok(),
            result.as_ref().err().map(String::as_str),
            now,
        )?;
        if result.is_ok() {
            db.count(Counter::AlertsDelivered, 1)?;
            db.count(Counter::AlertsRedelivered, 1)
        } else {
            db.count(Counter::AlertsDeliveryFailed, 1)
        }
    })?;
    Ok(Some(result.is_ok()))
}

/// Delivers the alert with this key if it is still undelivered.
pub(crate) fn deliver_key(store: &mut Store, config: &Config, key: &str) -> Result<bool> {
    match store.read().alert_by_key(key)? {
        Some(alert) => deliver(store, config, &alert),
        None => Ok(true),
    }
}

fn send(config: &Config, payload: &str) -> std::result::Result<(), String> {
    let Some(cmd) = &config.alert_cmd else {
        eprintln!("orch: ALERT {payload}");
        return Ok(());
    };
    let mut command = Command::new("sh");
    command.args(["-c", cmd]);
    let mut input = payload.as_bytes().to_vec();
    input.push(b'\n');
    let finished = crate::child::run(command, config.alert_timeout, Some(&input))
        .map_err(|e| format!("cannot start ORCH_ALERT_CMD: {e}"))?;
    match finished.status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(format!(
            "ORCH_ALERT_CMD exited with {s}: {}",
            String::from_utf8_lossy(&finished.stderr).trim()
        )),
        None if finished.cancelled => {
            Err("ORCH_ALERT_CMD interrupted: orch received a signal".into())
        }
        None => Err(format!(
            "ORCH_ALERT_CMD timed out after {}s",
            config.alert_timeout.as_secs()
        )),
    }
}
