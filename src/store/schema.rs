//! The schema, as an append-only list of migrations keyed by `PRAGMA user_version`.
//!
//! Never edit or remove a migration once it has shipped: databases in the field were built by it.
//! Add a new one at the end instead. All pending migrations run in one exclusive transaction.

use anyhow::{Context, Result};
use rusqlite::{Connection, TransactionBehavior};

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // v1: tasks, their history, the lease, events, counters, alerts, runs.
    r#"
    CREATE TABLE tasks (
        id            TEXT PRIMARY KEY,
        repo          TEXT NOT NULL,
        branch        TEXT NOT NULL,
        worktree      TEXT,
        target        TEXT NOT NULL,
        remote        TEXT,
        stage         TEXT NOT NULL,
        version       INTEGER NOT NULL,
        validated_sha TEXT,
        dev_retries   INTEGER NOT NULL DEFAULT 0,
        hold_reason   TEXT,
        held_since    INTEGER,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX tasks_by_stage ON tasks(stage, updated_at, hold_reason);

    CREATE TABLE holds (
        id      INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL REFERENCES tasks(id),
        action  TEXT NOT NULL CHECK (action IN ('hold', 'release')),
        reason  TEXT,
        actor   TEXT NOT NULL,
        at      INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX holds_by_task ON holds(task_id, id);

    -- The token is the AUTOINCREMENT rowid: a fencing token that is never reused, even after
    -- deletes. One row per task at most.
    CREATE TABLE transition_lease (
        token           INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id         TEXT NOT NULL UNIQUE REFERENCES tasks(id),
        owner           TEXT NOT NULL,
        owner_pid       INTEGER NOT NULL,
        owner_pid_start INTEGER NOT NULL,
        boot_id         TEXT NOT NULL,
        pid_ns          TEXT NOT NULL,
        host            TEXT NOT NULL,
        acquired_at     INTEGER NOT NULL,
        renewed_at      INTEGER NOT NULL,
        expires_at      INTEGER NOT NULL,
        renewed_boot_ms INTEGER NOT NULL,
        ttl_ms          INTEGER NOT NULL
    );

    CREATE TABLE transitions (
        id          INTEGER PRIMARY KEY,
        task_id     TEXT NOT NULL REFERENCES tasks(id),
        from_stage  TEXT,
        to_stage    TEXT NOT NULL,
        version     INTEGER NOT NULL,
        actor       TEXT NOT NULL,
        reason      TEXT,
        lease_token INTEGER,
        at          INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX transitions_by_task ON transitions(task_id, id);

    CREATE TABLE gate_events (
        id      INTEGER PRIMARY KEY,
        task_id TEXT NOT NULL REFERENCES tasks(id),
        edge    TEXT NOT NULL,
        gate    TEXT NOT NULL,
        outcome TEXT NOT NULL,
        detail  TEXT,
        run_id  INTEGER,
        at      INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX gate_events_by_task ON gate_events(task_id, id);
    CREATE INDEX gate_events_by_gate ON gate_events(gate, id);

    CREATE TABLE events (
        event_id  TEXT PRIMARY KEY,
        task_id   TEXT NOT NULL REFERENCES tasks(id),
        command   TEXT NOT NULL,
        exit_code INTEGER NOT NULL,
        outcome   TEXT NOT NULL,
        at        INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX events_by_age ON events(at);

    CREATE TABLE counters (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;

    CREATE TABLE alerts (
        id           INTEGER PRIMARY KEY,
        key          TEXT NOT NULL UNIQUE,
        task_id      TEXT REFERENCES tasks(id),
        kind         TEXT NOT NULL,
        payload      TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        delivered_at INTEGER,
        attempts     INTEGER NOT NULL DEFAULT 0,
        last_error   TEXT
    ) STRICT;
    CREATE INDEX alerts_undelivered ON alerts(created_at) WHERE delivered_at IS NULL;

    -- One row per process group orch starts, committed before the command execs.
    CREATE TABLE runs (
        id               INTEGER PRIMARY KEY,
        task_id          TEXT REFERENCES tasks(id),
        gate             TEXT NOT NULL,
        command          TEXT NOT NULL,
        owner_pid        INTEGER NOT NULL,
        owner_pid_start  INTEGER NOT NULL,
        leader_pid       INTEGER NOT NULL,
        leader_pid_start INTEGER NOT NULL,
        boot_id          TEXT NOT NULL,
        pid_ns           TEXT NOT NULL,
        host             TEXT NOT NULL,
        started_at       INTEGER NOT NULL,
        started_boot_ms  INTEGER NOT NULL,
        timeout_ms       INTEGER NOT NULL,
        finished_at      INTEGER,
        outcome          TEXT,
        exit_status      INTEGER,
        output           TEXT,
        evidence         TEXT,
        -- The edge's budget key when the run started (the branch tip before orch's rebase, and
        -- the tip orch published): a reaped run spends the same budget its owner would have.
        budget_tip       TEXT,
        published_tip    TEXT
    ) STRICT;
    CREATE INDEX runs_unfinished ON runs(started_at) WHERE finished_at IS NULL;
    CREATE INDEX runs_by_task ON runs(task_id, id);

    -- The per-repository merge lock: held with a task's lease, its holder judged like one.
    CREATE TABLE merge_locks (
        repo            TEXT PRIMARY KEY,
        task_id         TEXT NOT NULL REFERENCES tasks(id),
        lease_token     INTEGER NOT NULL,
        owner           TEXT NOT NULL,
        owner_pid       INTEGER NOT NULL,
        owner_pid_start INTEGER NOT NULL,
        boot_id         TEXT NOT NULL,
        pid_ns          TEXT NOT NULL,
        host            TEXT NOT NULL,
        acquired_at     INTEGER NOT NULL,
        renewed_at      INTEGER NOT NULL,
        renewed_boot_ms INTEGER NOT NULL,
        ttl_ms          INTEGER NOT NULL
    ) STRICT;

    -- A task's pending re-queue of one edge (infra failure or lock-busy deferral).
    CREATE TABLE requeues (
        task_id     TEXT PRIMARY KEY REFERENCES tasks(id),
        from_stage  TEXT NOT NULL,
        to_stage    TEXT NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('infra', 'deferral')),
        attempt     INTEGER NOT NULL,
        reason      TEXT NOT NULL,
        due_at      INTEGER NOT NULL,
        due_boot_ms INTEGER NOT NULL,
        boot_id     TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        claimed_at  INTEGER,
        -- The budget key (branch tip before orch's rebase) and the rebased tip orch published:
        -- a re-run that finds either keeps spending the same budget.
        budget_tip    TEXT,
        published_tip TEXT
    ) STRICT;
    CREATE INDEX requeues_by_due ON requeues(due_at);

    -- One infra budget (and deferral count) per (task, edge, branch tip before the rebase).
    CREATE TABLE edge_budgets (
        task_id        TEXT NOT NULL REFERENCES tasks(id),
        edge           TEXT NOT NULL,
        base_tip       TEXT NOT NULL,
        infra_attempts INTEGER NOT NULL DEFAULT 0,
        deferrals      INTEGER NOT NULL DEFAULT 0,
        exhausted_at   INTEGER,
        PRIMARY KEY (task_id, edge, base_tip)
    ) STRICT;

    -- A sub-gate's passing verdict, with the commits it judged.
    CREATE TABLE verdicts (
        id         INTEGER PRIMARY KEY,
        task_id    TEXT NOT NULL REFERENCES tasks(id),
        gate       TEXT NOT NULL,
        head_sha   TEXT NOT NULL,
        target_sha TEXT NOT NULL,
        run_id     INTEGER,
        at         INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX verdicts_by_task ON verdicts(task_id, gate, id);

    -- The last coverage measured per repository, for `orch queue`.
    CREATE TABLE coverage_reports (
        repo       TEXT PRIMARY KEY,
        task_id    TEXT NOT NULL REFERENCES tasks(id),
        head_sha   TEXT NOT NULL,
        percent    REAL NOT NULL,
        minimum    REAL NOT NULL,
        at         INTEGER NOT NULL
    ) STRICT;

    -- One row per `orch reap`.
    CREATE TABLE reaper_runs (
        id          INTEGER PRIMARY KEY,
        started_at  INTEGER NOT NULL,
        finished_at INTEGER,
        dry_run     INTEGER NOT NULL,
        summary     TEXT
    ) STRICT;
    CREATE INDEX reaper_runs_by_age ON reaper_runs(started_at);

    -- `orch queue` without a scan: held tasks per stage, and the last finished reap.
    CREATE INDEX tasks_held ON tasks(stage) WHERE hold_reason IS NOT NULL;
    CREATE INDEX reaper_runs_by_finish ON reaper_runs(finished_at, id);
    -- `orch task list` in registration order without a sort.
    CREATE INDEX tasks_by_creation ON tasks(created_at, id);
    "#,
    // v2: the operator's repository registry and its per-repository gate settings; a verdict
    // records the hash of the command and timeout that produced it. Tasks keep their `worktree`
    // and `remote` columns (older rows), but orch reads neither any more.
    r#"
    CREATE TABLE repos (
        name       TEXT PRIMARY KEY,
        url        TEXT NOT NULL UNIQUE,
        target     TEXT NOT NULL,
        protect    TEXT NOT NULL DEFAULT '[]',
        created_at INTEGER NOT NULL
    ) STRICT;

    CREATE TABLE repo_settings (
        repo  TEXT NOT NULL REFERENCES repos(name),
        key   TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (repo, key)
    ) STRICT;

    ALTER TABLE verdicts ADD COLUMN config_hash TEXT;
    "#,
    // v3: an event id is scoped to its task — the same id on another task is another event — so
    // `events` is rebuilt keyed by (task, event id), its rows copied. A run records the sandbox
    // it ran in.
    r#"
    CREATE TABLE events_v3 (
        task_id   TEXT NOT NULL REFERENCES tasks(id),
        event_id  TEXT NOT NULL,
        command   TEXT NOT NULL,
        exit_code INTEGER NOT NULL,
        outcome   TEXT NOT NULL,
        at        INTEGER NOT NULL,
        PRIMARY KEY (task_id, event_id)
    ) STRICT;
    INSERT INTO events_v3 (task_id, event_id, command, exit_code, outcome, at)
        SELECT task_id, event_id, command, exit_code, outcome, at FROM events;
    DROP TABLE events;
    ALTER TABLE events_v3 RENAME TO events;
    CREATE INDEX events_by_age ON events(at);

    ALTER TABLE runs ADD COLUMN sandbox TEXT;
    "#,
    // v4: a run records the kill grace it was started with; an alert records the delivery timeout it was raised with and the end of the attempt in
    // flight, so that every deliverer (the raiser or any reaper) claims one attempt per window
    // taken from the row, not from its own environment. A task's history (transitions, gate
    // events, holds) is ordered by one sequence, not by timestamps that tie within a transaction;
    // existing rows are numbered by time, then in the order one transaction writes them (gate
    // event, then transition, then hold), then by id.
    r#"
    ALTER TABLE alerts ADD COLUMN timeout_ms INTEGER;
    ALTER TABLE alerts ADD COLUMN attempt_until INTEGER;

    -- The kill grace a run was started with: reaping by age waits for its timeout + this grace.
    ALTER TABLE runs ADD COLUMN grace_ms INTEGER;

    ALTER TABLE transitions ADD COLUMN seq INTEGER;
    ALTER TABLE gate_events ADD COLUMN seq INTEGER;
    ALTER TABLE holds ADD COLUMN seq INTEGER;
    CREATE TABLE history_seq (
        id    INTEGER PRIMARY KEY CHECK (id = 1),
        value INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE v4_history_order AS
        SELECT kind, id, row_number() OVER (ORDER BY at, rank, id) AS n FROM (
            SELECT 'g' AS kind, 0 AS rank, id, at FROM gate_events
            UNION ALL SELECT 't', 1, id, at FROM transitions
            UNION ALL SELECT 'h', 2, id, at FROM holds);
    CREATE UNIQUE INDEX v4_history_order_key ON v4_history_order(kind, id);
    UPDATE gate_events SET seq =
        (SELECT n FROM v4_history_order o WHERE o.kind = 'g' AND o.id = gate_events.id);
    UPDATE transitions SET seq =
        (SELECT n FROM v4_history_order o WHERE o.kind = 't' AND o.id = transitions.id);
    UPDATE holds SET seq =
        (SELECT n FROM v4_history_order o WHERE o.kind = 'h' AND o.id = holds.id);
    INSERT INTO history_seq (id, value)
        SELECT 1, coalesce(max(n), 0) FROM v4_history_order;
    DROP TABLE v4_history_order;
    "#,
    // v5: a passing verdict says how it was reached (`tested` by orch's own re-test, or
    // `skipped` because CI validated exactly the head on a no-op rebase); merge-verify merges
    // only onto the target tip it names; the coverage the re-test's own report measured, which
    // the coverage gate judges instead of running the suite again. A task may carry the goal
    // stage an `advance --goal` asked for, which the same process and `advance --next` continue
    // towards.
    r#"
    ALTER TABLE verdicts ADD COLUMN how TEXT;
    ALTER TABLE verdicts ADD COLUMN coverage REAL;
    ALTER TABLE tasks ADD COLUMN goal TEXT;
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Applies every pending migration in one exclusive transaction. Safe against a concurrent
/// migrator: the version is read again under the lock.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Applies the pending migrations up to schema `version`.
fn migrate_to(conn: &mut Connection, version: i64) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let pending = MIGRATIONS.iter().enumerate().take(version as usize);
    for (i, sql) in pending.skip(current as usize) {
        tx.execute_batch(sql)
            .with_context(|| format!("applying migration to schema v{}", i + 1))?;
    }
    tx.pragma_update(None, "user_version", version.max(current))?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::OptionalExtension;

    use super::*;

    /// A v2 database's event rows survive the rebuild of v3 and are found by (task, event id);
    /// the same id on another task is then another event.
    #[test]
    fn v3_keeps_v2_events_and_scopes_them_to_their_task() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 2).unwrap();
        conn.execute_batch(
            "INSERT INTO tasks (id, repo, branch, target, stage, version, created_at, updated_at)
                 VALUES ('T-1', 'r', 'b', 'main', 'development', 1, 0, 0),
                        ('T-2', 'r', 'c', 'main', 'development', 1, 0, 0);
             INSERT INTO events (event_id, task_id, command, exit_code, outcome, at)
                 VALUES ('ci-1', 'T-1', 'advance', 0, '{}', 7);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let at: i64 = conn
            .query_row(
                "SELECT at FROM events WHERE task_id = 'T-1' AND event_id = 'ci-1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(at, 7);
        conn.execute(
            "INSERT INTO events (event_id, task_id, command, exit_code, outcome, at)
                 VALUES ('ci-1', 'T-2', 'advance', 0, '{}', 8)",
            [],
        )
        .unwrap();
        let sandbox: Option<String> = conn
            .query_row("SELECT sandbox FROM runs", [], |r| r.get(0))
            .optional()
            .unwrap()
            .flatten();
        assert_eq!(sandbox, None);
    }

    /// v4 numbers a v3 history by time, then gate event before transition before hold within
    /// one timestamp (the order one transaction writes them), and continues the sequence.
    #[test]
    fn v4_numbers_the_existing_history_in_the_order_it_was_written() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate_to(&mut conn, 3).unwrap();
        conn.execute_batch(
            "INSERT INTO tasks (id, repo, branch, target, stage, version, created_at, updated_at)
                 VALUES ('T', 'r', 'b', 'main', 'development', 3, 0, 0);
             INSERT INTO transitions (task_id, from_stage, to_stage, version, actor, at)
                 VALUES ('T', NULL, 'deploy-staging', 1, 'a', 5),
                        ('T', 'deploy-staging', 'development', 2, 'a', 9);
             INSERT INTO holds (task_id, action, reason, actor, at)
                 VALUES ('T', 'hold', 'x', 'a', 9);
             INSERT INTO gate_events (task_id, edge, gate, outcome, at)
                 VALUES ('T', 'deploy-staging->deploy', 'merge', 'red', 9);",
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let order: Vec<String> = conn
            .prepare(
                "SELECT kind FROM (
                     SELECT 'transition v' || version AS kind, seq FROM transitions
                     UNION ALL SELECT 'gate ' || outcome, seq FROM gate_events
                     UNION ALL SELECT 'hold', seq FROM holds) ORDER BY seq",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            order,
            ["transition v1", "gate red", "transition v2", "hold"],
            "{order:?}"
        );
        let next: i64 = conn
            .query_row("SELECT value FROM history_seq", [], |r| r.get(0))
            .unwrap();
        assert_eq!(next, 4);
    }
}
