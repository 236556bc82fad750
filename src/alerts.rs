//! Alerts: one per exhausted episode, from the final state only.
//!
//! An alert row with a unique key is written in the transaction that raises the HOLD, before any
//! delivery; delivery happens after the commit, through `ORCH_ALERT_CMD` with the alert as JSON on
//! stdin, and is retried by the reaper (`redeliver`) until it succeeds (at least once). Without an
//! alert command the alert is printed on stderr and counted delivered.
//!
//! At most once per attempt window: every deliverer — the raiser or any reaper — first claims an
//! attempt (`Db::claim_alert_attempt`), which holds for the alert's window: the delivery timeout
//! stored in its row plus `ALERT_GRACE_MARGIN`. The raise stamps the row with the raiser's
//! `ORCH_ALERT_TIMEOUT_S` (a row from before v4 gets it from its first claim); a claim by a process
//! with a longer one lengthens it, never shortens it; every attempt runs the command under the
//! row's timeout, so a process with another `ORCH_ALERT_TIMEOUT_S` neither shortens the window nor
//! outlives it. A failed attempt ends its window; one whose deliverer died expires
//! with it, and the next reap retries: nothing is lost.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::counter::Counter;
use crate::host;
use crate::store::{Db, PendingAlert, Store};

/// Beyond the alert command's own timeout, how long an attempt holds its claim (and how long an
/// alert's raiser has to deliver it before a reaper does).
pub(crate) const ALERT_GRACE_MARGIN: Duration = Duration::from_secs(10);

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
pub(crate) fn raise(db: &Db, config: &Config, alert: &Alert) -> Result<bool> {
    let payload = serde_json::to_string(alert)?;
    let new = db.insert_alert(
        &alert.key,
        &alert.task_id,
        &alert.kind,
        &payload,
        millis(config.alert_timeout),
        host::wall_ms(),
    )?;
    if new {
        db.count(Counter::AlertsRaised, 1)?;
    }
    Ok(new)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The delivery timeout of an attempt on a stored alert: the one in its row (stamped when it was
/// raised), or this process's own if that is longer — a claim may lengthen the row's timeout (an
/// alert command that needs more time than the raiser gave it is not stuck for ever) but never
/// shorten it, so no process's own setting cuts another's attempt window short.
pub(crate) fn timeout_of(config: &Config, alert: &PendingAlert) -> Duration {
    alert.timeout_ms.map_or(config.alert_timeout, |ms| {
        Duration::from_millis(ms.max(0) as u64).max(config.alert_timeout)
    })
}

/// Who is delivering: the raiser, right after its commit, or a reaper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deliverer {
    Raiser,
    Reaper,
}

/// One claimed attempt: claim the window, send under the alert's own timeout, record the result.
/// `None` when another process attempted or delivered it first, or has an attempt in flight.
fn attempt(
    store: &mut Store,
    config: &Config,
    alert: &PendingAlert,
    by: Deliverer,
) -> Result<Option<bool>> {
    let timeout = timeout_of(config, alert);
    let now = host::wall_ms();
    let (own, margin) = (millis(config.alert_timeout), millis(ALERT_GRACE_MARGIN));
    if !store.write(|db| db.claim_alert_attempt(alert, now, own, margin))? {
        return Ok(None);
    }
    let result = send(config, &alert.payload, timeout);
    let now = host::wall_ms();
    store.write_retrying(|db| {
        db.record_claimed_attempt(
            alert.id,
            alert.attempts + 1,
            result.is_ok(),
            result.as_ref().err().map(String::as_str),
            now,
        )?;
        if result.is_ok() {
            db.count(Counter::AlertsDelivered, 1)?;
            if by == Deliverer::Reaper {
                db.count(Counter::AlertsRedelivered, 1)?;
            }
            Ok(())
        } else {
            db.count(Counter::AlertsDeliveryFailed, 1)
        }
    })?;
    Ok(Some(result.is_ok()))
}

/// The reaper's re-delivery of a stored alert (see `attempt`). `None` when another process
/// attempted or delivered it first, or has an attempt in flight.
pub(crate) fn redeliver(
    store: &mut Store,
    config: &Config,
    alert: &PendingAlert,
) -> Result<Option<bool>> {
    attempt(store, config, alert, Deliverer::Reaper)
}

/// The raiser's delivery of the alert with this key, if it is still undelivered. Returns whether
/// it was delivered here or is being (or was) delivered by another process.
pub(crate) fn deliver_key(store: &mut Store, config: &Config, key: &str) -> Result<bool> {
    match store.read().alert_by_key(key)? {
        Some(alert) => Ok(attempt(store, config, &alert, Deliverer::Raiser)?.unwrap_or(true)),
        None => Ok(true),
    }
}

fn send(config: &Config, payload: &str, timeout: Duration) -> std::result::Result<(), String> {
    let Some(cmd) = &config.alert_cmd else {
        eprintln!("orch: ALERT {payload}");
        return Ok(());
    };
    let mut command = Command::new("sh");
    command.args(["-c", cmd]);
    let mut input = payload.as_bytes().to_vec();
    input.push(b'\n');
    let finished = crate::child::run(command, timeout, Some(&input))
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
            "ORCH_ALERT_CMD timed out after {}s (the alert's timeout, ORCH_ALERT_TIMEOUT_S when it was raised)",
            timeout.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(key: &str) -> Alert {
        Alert {
            key: key.into(),
            kind: "infra-exhausted".into(),
            task_id: "T".into(),
            repo: "r".into(),
            stage: "deploy-staging".into(),
            summary: "s".into(),
            detail: serde_json::Value::Null,
            at: "now".into(),
        }
    }

    /// The raiser claims its attempt like a reaper does: while another process's attempt is in
    /// flight it sends nothing; once that window has passed undelivered, it sends.
    #[test]
    fn the_raiser_does_not_send_while_another_attempt_is_in_flight() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("orch.db");
        let sent = dir.path().join("sent");
        let cmd = format!("cat >> '{}'", sent.display());
        let env = move |k: &str| match k {
            "ORCH_ALERT_CMD" => Some(cmd.clone()),
            "ORCH_ALERT_TIMEOUT_S" => Some("7".into()),
            _ => None,
        };
        let config = Config::load(&env, Some(&path));
        let mut store = Store::open(&path).unwrap();
        store
            .write(|db| {
                db.insert_task(
                    &crate::store::NewTask {
                        id: "T".into(),
                        repo: "r".into(),
                        branch: "b".into(),
                        target: "main".into(),
                        stage: crate::stages::Stage::DeployStaging,
                    },
                    0,
                )?;
                raise(db, &config, &alert("k"))
            })
            .unwrap();
        // A reaper claimed it a moment ago and is still sending.
        let pending = store.read().alert_by_key("k").unwrap().unwrap();
        let now = host::wall_ms();
        assert!(store
            .write(|db| db.claim_alert_attempt(&pending, now, 60_000, 10_000))
            .unwrap());
        assert!(deliver_key(&mut store, &config, "k").unwrap());
        assert!(!sent.exists(), "sent twice inside one window");
        let row = store.read().alert_by_key("k").unwrap().unwrap();
        assert_eq!(
            (row.attempts, row.timeout_ms),
            (1, Some(60_000)),
            "a claim with a longer timeout lengthens the row's"
        );

        // That attempt's window passed without a delivery: the next deliverer sends, under the
        // row's timeout.
        store
            .write(|db| db.end_alert_attempt_window_for_tests("k"))
            .unwrap();
        assert!(deliver_key(&mut store, &config, "k").unwrap());
        assert!(sent.exists());
        assert!(
            store.read().alert_by_key("k").unwrap().is_none(),
            "delivered"
        );

        // A fresh alert carries the raiser's ORCH_ALERT_TIMEOUT_S from the raise on; a reaper
        // with another timeout claims under the row's.
        store.write(|db| raise(db, &config, &alert("k2"))).unwrap();
        let fresh = store.read().alert_by_key("k2").unwrap().unwrap();
        assert_eq!(fresh.timeout_ms, Some(7_000));
        assert!(store
            .write(|db| db.claim_alert_attempt(&fresh, host::wall_ms(), 1_000, 10_000))
            .unwrap());
        let claimed = store.read().alert_by_key("k2").unwrap().unwrap();
        assert_eq!(claimed.timeout_ms, Some(7_000));
        assert_eq!(timeout_of(&config, &claimed), Duration::from_secs(7));
    }
}
