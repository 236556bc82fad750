//! A task's story — `transitions`, `gate_events`, `holds` — plus `events` (processed event ids)
//! and `counters`.

use anyhow::{Context, Result};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::Db;
use crate::counter::Counter;
use crate::outcome::{GateKind, Outcome};
use crate::stages::{Edge, Stage};

/// A stage change to record.
#[derive(Clone, Debug)]
pub struct NewTransition<'a> {
    pub task_id: &'a str,
    /// `None` for a registration.
    pub from: Option<Stage>,
    pub to: Stage,
    pub version: i64,
    pub actor: &'a str,
    pub reason: Option<&'a str>,
    pub lease_token: Option<i64>,
    pub at: i64,
}

/// A gate event to record.
#[derive(Clone, Debug)]
pub struct NewGateEvent<'a> {
    pub task_id: &'a str,
    pub edge: Edge,
    pub gate: GateKind,
    pub outcome: Outcome,
    pub detail: Option<&'a str>,
    pub run_id: Option<i64>,
    pub at: i64,
}

/// One stage change.
#[derive(Clone, Debug, Serialize)]
pub struct TransitionRow {
    pub id: i64,
    pub task_id: String,
    pub from: Option<Stage>,
    pub to: Stage,
    pub version: i64,
    pub actor: String,
    pub reason: Option<String>,
    pub lease_token: Option<i64>,
    pub at: i64,
    /// The row's place in the task's history (`None` only for a row written without orch).
    pub seq: Option<i64>,
}

/// One gate outcome, skip, re-queue, deferral or reap.
#[derive(Clone, Debug, Serialize)]
pub struct GateEventRow {
    pub id: i64,
    pub task_id: String,
    #[serde(serialize_with = "Edge::serialize_name")]
    pub edge: Edge,
    pub gate: GateKind,
    pub outcome: Outcome,
    pub detail: Option<String>,
    pub run_id: Option<i64>,
    pub at: i64,
    pub seq: Option<i64>,
}

/// One HOLD set or lifted.
#[derive(Clone, Debug, Serialize)]
pub struct HoldRow {
    pub id: i64,
    pub action: String,
    pub reason: Option<String>,
    pub actor: String,
    pub at: i64,
    pub seq: Option<i64>,
}

/// An item of a task's interleaved history.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HistoryItem {
    Transition(TransitionRow),
    Gate(GateEventRow),
    Hold(HoldRow),
}

impl HistoryItem {
    pub fn at(&self) -> i64 {
        match self {
            HistoryItem::Transition(t) => t.at,
            HistoryItem::Gate(g) => g.at,
            HistoryItem::Hold(h) => h.at,
        }
    }

    pub fn seq(&self) -> Option<i64> {
        match self {
            HistoryItem::Transition(t) => t.seq,
            HistoryItem::Gate(g) => g.seq,
            HistoryItem::Hold(h) => h.seq,
        }
    }
}

/// A processed event id and the outcome it produced the first time.
#[derive(Clone, Debug, Serialize)]
pub struct EventRecord {
    pub event_id: String,
    pub task_id: String,
    pub command: String,
    pub exit_code: i64,
    pub outcome: serde_json::Value,
    pub at: i64,
}

impl Db<'_> {
    /// The next number of the one sequence that orders every task's history (transitions, gate
    /// events, holds): taken inside the caller's write transaction, so numbers follow the order
    /// in which rows are written, whatever their timestamps.
    pub(super) fn next_history_seq(&self) -> Result<i64> {
        self.conn
            .query_row(
                "UPDATE history_seq SET value = value + 1 WHERE id = 1 RETURNING value",
                [],
                |r| r.get(0),
            )
            .context("numbering a history row")
    }

    pub fn insert_transition(&self, t: &NewTransition) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO transitions (task_id, from_stage, to_stage, version, actor, reason,
                                          lease_token, at, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    t.task_id,
                    t.from,
                    t.to,
                    t.version,
                    t.actor,
                    t.reason,
                    t.lease_token,
                    t.at,
                    self.next_history_seq()?
                ],
            )
            .context("recording a transition")?;
        Ok(())
    }

    pub fn insert_gate_event(&self, e: &NewGateEvent) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO gate_events (task_id, edge, gate, outcome, detail, run_id, at, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    e.task_id,
                    e.edge,
                    e.gate,
                    e.outcome,
                    e.detail,
                    e.run_id,
                    e.at,
                    self.next_history_seq()?
                ],
            )
            .context("recording a gate event")?;
        Ok(())
    }

    pub fn transitions(&self, task_id: &str) -> Result<Vec<TransitionRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, task_id, from_stage, to_stage, version, actor, reason, lease_token, at, seq
               FROM transitions WHERE task_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([task_id], |r| {
            Ok(TransitionRow {
                id: r.get(0)?,
                task_id: r.get(1)?,
                from: r.get(2)?,
                to: r.get(3)?,
                version: r.get(4)?,
                actor: r.get(5)?,
                reason: r.get(6)?,
                lease_token: r.get(7)?,
                at: r.get(8)?,
                seq: r.get(9)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading transitions")
    }

    pub fn gate_events(&self, task_id: &str) -> Result<Vec<GateEventRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, task_id, edge, gate, outcome, detail, run_id, at, seq
               FROM gate_events WHERE task_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([task_id], |r| {
            Ok(GateEventRow {
                id: r.get(0)?,
                task_id: r.get(1)?,
                edge: r.get(2)?,
                gate: r.get(3)?,
                outcome: r.get(4)?,
                detail: r.get(5)?,
                run_id: r.get(6)?,
                at: r.get(7)?,
                seq: r.get(8)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading gate events")
    }

    pub fn holds(&self, task_id: &str) -> Result<Vec<HoldRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, action, reason, actor, at, seq FROM holds WHERE task_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([task_id], |r| {
            Ok(HoldRow {
                id: r.get(0)?,
                action: r.get(1)?,
                reason: r.get(2)?,
                actor: r.get(3)?,
                at: r.get(4)?,
                seq: r.get(5)?,
            })
        })?;
        rows.collect::<rusqlite::Result<_>>()
            .context("reading holds")
    }

    /// Transitions, gate events and holds of a task, in the order they were written (the history
    /// sequence; timestamps tie within a second and within a transaction). A row without a
    /// number (written by hand, not by orch) comes after the numbered ones, by time.
    pub fn history(&self, task_id: &str) -> Result<Vec<HistoryItem>> {
        let mut items: Vec<HistoryItem> = self
            .transitions(task_id)?
            .into_iter()
            .map(HistoryItem::Transition)
            .chain(
                self.gate_events(task_id)?
                    .into_iter()
                    .map(HistoryItem::Gate),
            )
            .chain(self.holds(task_id)?.into_iter().map(HistoryItem::Hold))
            .collect();
        items.sort_by_key(|i| (i.seq().is_none(), i.seq(), i.at()));
        Ok(items)
    }

    /// The event `event_id` of task `task_id`: an event id is scoped to its task.
    pub fn event(&self, task_id: &str, event_id: &str) -> Result<Option<EventRecord>> {
        self.conn
            .query_row(
                "SELECT event_id, task_id, command, exit_code, outcome, at
                   FROM events WHERE task_id = ?1 AND event_id = ?2",
                [task_id, event_id],
                |r| {
                    let outcome: String = r.get(4)?;
                    Ok(EventRecord {
                        event_id: r.get(0)?,
                        task_id: r.get(1)?,
                        command: r.get(2)?,
                        exit_code: r.get(3)?,
                        outcome: serde_json::from_str(&outcome)
                            .unwrap_or(serde_json::Value::String(outcome)),
                        at: r.get(5)?,
                    })
                },
            )
            .optional()
            .context("reading an event")
    }

    /// Records an event id with the outcome it produced; in the transaction that wrote it.
    pub fn insert_event(
        &self,
        event_id: &str,
        task_id: &str,
        command: &str,
        exit_code: i32,
        outcome: &serde_json::Value,
        at: i64,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO events (event_id, task_id, command, exit_code, outcome, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    event_id,
                    task_id,
                    command,
                    exit_code,
                    outcome.to_string(),
                    at
                ],
            )
            .context("recording an event id")?;
        Ok(())
    }

    /// How many times a HOLD of the task was released: the number of its past HOLD episodes.
    pub fn releases(&self, task_id: &str) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT count(*) FROM holds WHERE task_id = ?1 AND action = 'release'",
            [task_id],
            |r| r.get(0),
        )?)
    }

    pub fn counter(&self, counter: Counter) -> Result<i64> {
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM counters WHERE name = ?1",
                [counter.name()],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }
}
