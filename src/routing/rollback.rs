//! `rollback_stage_cas`: the one helper every rollback goes through.
//!
//! A red gate rolls the task back to `development` through the CAS on the stage the gate guarded
//! while its developer retries are below `ORCH_MAX_DEV_RETRIES`; the red after that puts it on
//! HOLD on that stage instead. Under the kill-switch the same rollback is the plain write.

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::counter::Counter;
use crate::host;
use crate::stages::Stage;
use crate::store::{Db, Expected, NewTransition};

/// What a rollback did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub(crate) enum Rollback {
    /// Moved to `development`; a developer retry was spent.
    RolledBack { version: i64, dev_retries: i64 },
    /// Developer retries were spent: the task is on HOLD on the stage the gate guarded.
    Held { reason: String },
    /// The task was not where the caller saw it (or its lease was gone): nothing was written but
    /// the `cas_lost` counter.
    Lost,
}

/// The expected state a gate saw when it took the lease.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seen<'a> {
    pub task_id: &'a str,
    pub repo: &'a str,
    /// The stage the gate guarded.
    pub stage: Stage,
    pub version: i64,
    pub lease_token: Option<i64>,
}

/// Rolls a task back to `development`, in the caller's write transaction, through the CAS on the
/// stage the gate guarded. The red after `ORCH_MAX_DEV_RETRIES` rollbacks puts the task on HOLD on
/// that stage instead. Under the kill-switch, the same rollback is the plain write.
pub(crate) fn rollback_stage_cas(
    db: &Db,
    config: &Config,
    seen: Seen,
    actor: &str,
    reason: &str,
) -> Result<Rollback> {
    let now = host::wall_ms();
    let guarded = config.lease_applies(seen.repo);
    let Some(task) = db.task(seen.task_id)? else {
        return Ok(Rollback::Lost);
    };
    let expected = Expected {
        task_id: seen.task_id,
        stage: seen.stage,
        version: seen.version,
        lease_token: seen.lease_token,
    };
    if task.dev_retries >= i64::from(config.max_dev_retries) {
        let hold_reason = format!(
            "developer retries spent ({} of {}): {reason}",
            task.dev_retries, config.max_dev_retries
        );
        // orch decides this HOLD, whoever ran the gate.
        let set = db.set_hold(
            guarded.then_some(expected),
            seen.task_id,
            &hold_reason,
            super::ORCH_ACTOR,
            now,
        )?;
        if !set {
            db.count(Counter::LeaseCasLost, 1)?;
            return Ok(Rollback::Lost);
        }
        db.count(Counter::HoldsRaised, 1)?;
        return Ok(Rollback::Held {
            reason: hold_reason,
        });
    }
    let (from, version) = if guarded {
        match db.cas_stage(expected, Stage::Development, None, 1, now)? {
            Some(version) => (seen.stage, version),
            None => {
                db.count(Counter::LeaseCasLost, 1)?;
                return Ok(Rollback::Lost);
            }
        }
    } else {
        match db.plain_write_stage(seen.task_id, Stage::Development, None, 1, now)? {
            Some(written) => written,
            None => return Ok(Rollback::Lost),
        }
    };
    db.insert_transition(&NewTransition {
        task_id: seen.task_id,
        from: Some(from),
        to: Stage::Development,
        version,
        actor,
        reason: Some(reason),
        lease_token: seen.lease_token,
        at: now,
    })?;
    db.count(Counter::Transitions, 1)?;
    db.count(Counter::Rollbacks, 1)?;
    Ok(Rollback::RolledBack {
        version,
        dev_retries: task.dev_retries + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewTask, Store};

    fn setup(stage: Stage) -> (tempfile::TempDir, Store, Config) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("orch.db")).unwrap();
        store
            .write(|db| {
                db.insert_task(
                    &NewTask {
                        id: "R".into(),
                        repo: "app".into(),
                        branch: "feat".into(),
                        target: "main".into(),
                        stage,
                    },
                    1,
                )
            })
            .unwrap();
        let config = Config::load(&|_| None, Some(&dir.path().join("orch.db")));
        (dir, store, config)
    }

    fn seen(version: i64) -> Seen<'static> {
        Seen {
            task_id: "R",
            repo: "app",
            stage: Stage::DeployStaging,
            version,
            lease_token: None,
        }
    }

    #[test]
    fn rollbacks_spend_retries_then_the_next_red_holds_on_the_guarded_stage() {
        let (_dir, mut store, config) = setup(Stage::DeployStaging);
        let mut version = 1;
        for retry in 1..=3 {
            let result = store
                .write(|db| rollback_stage_cas(db, &config, seen(version), "gate", "merge red"))
                .unwrap();
            version += 1;
            assert_eq!(
                result,
                Rollback::RolledBack {
                    version,
                    dev_retries: retry
                }
            );
            // The developer fixes it and the task comes back to the guarded stage.
            store
                .write(|db| {
                    let t = db.task("R")?.unwrap();
                    db.plain_write_stage("R", Stage::DeployStaging, None, 0, 2)?;
                    Ok(t)
                })
                .unwrap();
            version += 1;
        }
        let result = store
            .write(|db| rollback_stage_cas(db, &config, seen(version), "gate", "merge red"))
            .unwrap();
        assert!(matches!(result, Rollback::Held { .. }), "{result:?}");
        let task = store.read().task("R").unwrap().unwrap();
        assert_eq!((task.stage, task.version), (Stage::DeployStaging, version));
        assert!(task
            .hold_reason
            .unwrap()
            .contains("developer retries spent (3 of 3)"));
    }

    #[test]
    fn a_rollback_that_finds_the_task_moved_on_writes_nothing_but_the_counter() {
        let (_dir, mut store, config) = setup(Stage::Done);
        let result = store
            .write(|db| rollback_stage_cas(db, &config, seen(1), "gate", "late red"))
            .unwrap();
        assert_eq!(result, Rollback::Lost);
        let db = store.read();
        let task = db.task("R").unwrap().unwrap();
        assert_eq!((task.stage, task.version), (Stage::Done, 1));
        assert!(db.transitions("R").unwrap().is_empty());
        assert_eq!(db.counter(Counter::LeaseCasLost).unwrap(), 1);
    }

    #[test]
    fn under_the_kill_switch_a_rollback_is_the_plain_write() {
        let (dir, mut store, _) = setup(Stage::Done);
        let off = |k: &str| (k == "ORCH_TRANSITION_LEASE_ENABLED").then(|| "false".to_string());
        let config = Config::load(&off, Some(&dir.path().join("orch.db")));
        let result = store
            .write(|db| rollback_stage_cas(db, &config, seen(1), "gate", "late red"))
            .unwrap();
        assert!(matches!(result, Rollback::RolledBack { .. }));
        let t = &store.read().transitions("R").unwrap()[0];
        assert_eq!((t.from, t.to), (Some(Stage::Done), Stage::Development));
    }
}
