//! The store: the one module that owns the SQLite connection and all SQL.
//!
//! Every writing transaction is `BEGIN IMMEDIATE` (a deferred read-then-write upgrade would fail
//! with SQLITE_BUSY at once, bypassing the busy handler); `busy_timeout` is 30 s because a write
//! here lasts milliseconds. The schema is versioned by `PRAGMA user_version` with an append-only
//! list of migrations. A file that is not a database, or one from a newer schema, is refused and
//! left untouched. Read-only commands open with `mode=ro` and never create a file.

mod alerts;
mod connection;
mod history;
mod lease;
mod locks;
mod reap;
mod reaper;
mod repos;
mod requeue;
mod runs;
mod schema;
mod tasks;
mod views;

pub use alerts::PendingAlert;
pub use history::{
    EventRecord, GateEventRow, HistoryItem, HoldRow, NewGateEvent, NewTransition, TransitionRow,
};
pub use lease::LeaseRow;
pub use locks::MergeLockRow;
pub use reaper::{Pruned, ReaperRunRow};
pub use repos::RepoRow;
pub use requeue::{Budget, NewVerdict, RequeueKind, RequeueRow, VerdictRow};
pub use runs::{NewRun, RunRow};
pub use schema::SCHEMA_VERSION;
pub use tasks::{Expected, NewTask, Task};
pub use views::{AlertRow, HeldTask, OpenRun, StageCount};

pub use connection::{is_busy, Db, Store, BUSY_TIMEOUT};
