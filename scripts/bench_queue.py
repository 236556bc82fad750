#!/usr/bin/env python3
"""Wall time of `orch queue` (text and --json) and `orch task show` on databases of 1k, 10k and
100k tasks, against `SELECT stage, count(*) FROM tasks GROUP BY stage` in the sqlite3 shell.

Each database is built quickly: `orch task add` once creates the schema (the seed task is then
deleted), and the sqlite3 shell bulk-inserts the rows in one transaction: tasks spread over the ten
stages (1 % held, with a `holds` row), 10 `transitions` rows per task, gate events for the tasks
that went through the gated edges (with a finished `runs` row each), one processed event id per
task, the counters, a few leases, re-queues, alerts, merge locks and coverage reports, and reaper
runs (43,200 of them: one a minute for the 30 retention days). No ANALYZE is run (orch never
runs it). The WAL is checkpointed before timing.

Every command is run WARMUP times untimed, then RUNS times interleaved with the others (page cache
warm, as an operator re-running `orch queue` sees it); the median and the max are reported.
Then each SQL statement `orch queue` runs is timed in-process (Python's sqlite3, the median of 5)
with its EXPLAIN QUERY PLAN, so a miss points at its query, and so are the replacements proposed
in BENCHMARKS.md, on a copy with the proposed indexes, checked to return the same rows.

usage: scripts/bench_queue.py ORCH_BINARY [SIZES [RUNS]]     e.g. ... 1000,10000,100000 10
"""

import atexit
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

STAGES = ["created", "analysis", "architecture", "development", "review", "testing",
          "deploy-staging", "deploy", "done", "cancelled"]
GATES = ["security", "merge", "coverage", "image-freshness", "merge-verify"]
OUTCOMES = ["passed", "skipped", "red", "timeout", "lock-busy", "other", "cancelled", "no-proof"]
TARGET_MS = 50.0
WARMUP = 2

# One statement per data block of `orch queue` (src/store/views.rs, lease.rs, locks.rs,
# requeue.rs, reaper.rs, history.rs), as the release binary runs them.
QUEUE_SQL = {
    "stage_counts": "SELECT stage, count(*), sum(hold_reason IS NOT NULL), min(updated_at) "
                    "FROM tasks GROUP BY stage",
    "last_gate_outcomes": "SELECT gate, outcome, at FROM gate_events WHERE id IN ("
                          "SELECT max(id) FROM gate_events WHERE outcome IN ('passed', 'skipped', "
                          "'red', 'timeout', 'lock-busy', 'other', 'cancelled', 'no-proof') "
                          "GROUP BY gate)",
    "alert_totals": "SELECT count(*), (SELECT count(*) FROM alerts WHERE delivered_at IS NULL) "
                    "FROM alerts",
    "recent_alerts": "SELECT id, key, task_id, kind, created_at, delivered_at, attempts, "
                     "last_error FROM alerts ORDER BY id DESC LIMIT 10",
    "open_runs": "SELECT id, task_id, gate, leader_pid, owner_pid, host, started_at FROM runs "
                 "WHERE finished_at IS NULL ORDER BY started_at",
    "leases": "SELECT * FROM transition_lease ORDER BY acquired_at",
    "merge_locks": "SELECT * FROM merge_locks ORDER BY repo",
    "requeues": "SELECT * FROM requeues ORDER BY due_at",
    "coverage": "SELECT repo, task_id, percent, minimum, at FROM coverage_reports ORDER BY repo",
    "last_reaper_run": "SELECT id, started_at, finished_at, dry_run, summary FROM reaper_runs "
                       "WHERE finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC LIMIT 1",
    "counter (x1, ~70 per queue)": "SELECT value FROM counters WHERE name = 'gates.merge.passed'",
}

# The fix proposed in BENCHMARKS.md for the statements that scan: timed on a copy of the largest
# database with the two indexes of PROPOSED_INDEXES added, and checked to return what the
# statement it replaces returns.
PROPOSED_INDEXES = """
CREATE INDEX IF NOT EXISTS tasks_held ON tasks(stage) WHERE hold_reason IS NOT NULL;
CREATE INDEX IF NOT EXISTS reaper_runs_by_finish ON reaper_runs(finished_at, id);
"""
VERDICTS = "('passed', 'skipped', 'red', 'timeout', 'lock-busy', 'other', 'cancelled', 'no-proof')"
PROPOSED_SQL = {
    "stage_counts": (
        "SELECT s.column1, (SELECT count(*) FROM tasks WHERE stage = s.column1), "
        "(SELECT count(*) FROM tasks INDEXED BY tasks_held WHERE stage = s.column1 "
        "AND hold_reason IS NOT NULL), (SELECT min(updated_at) FROM tasks WHERE stage = s.column1) "
        "FROM (VALUES " + ", ".join(f"('{st}')" for st in STAGES) + ") AS s "
        "WHERE EXISTS (SELECT 1 FROM tasks WHERE stage = s.column1)"),
    # once per gate name (GateKind::ALL), with ?1 bound
    "last_gate_outcomes": (
        "SELECT gate, outcome, at FROM gate_events WHERE gate = ?1 AND outcome IN "
        f"{VERDICTS} ORDER BY id DESC LIMIT 1"),
    "last_reaper_run": QUEUE_SQL["last_reaper_run"],
}

BASELINE_SQL = "SELECT stage, count(*) FROM tasks GROUP BY stage"


def clean_env(db):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env["ORCH_DB_PATH"] = db
    return env


def populate_sql(n, now_ms):
    """The bulk insert for a database of `n` tasks (schema already created by orch)."""
    stage_case = "CASE i % 10 " + " ".join(
        f"WHEN {k} THEN '{s}'" for k, s in enumerate(STAGES)) + " END"
    gate_rows = " UNION ALL ".join(
        f"SELECT {k} AS g, '{g}' AS gate, '{'deploy->done' if g == 'merge-verify' else 'deploy-staging->deploy'}' AS edge"
        for k, g in enumerate(GATES))
    counters = []
    for g in GATES:
        for o in OUTCOMES:
            counters.append((f"gates.{g}.{o}", n // 10))
        for extra in ("infra_requeued", "deferred", "exhausted"):
            counters.append((f"gates.{g}.{extra}", n // 200))
    for name in ("transition_lease.acquired", "transitions.total"):
        counters.append((name, 10 * n))
    for name in ("transition_lease.busy", "transition_lease.cas_lost", "transition_lease.taken_over",
                 "gates.merge.skipped_current", "holds.raised", "alerts.raised",
                 "alerts.delivered", "reaper.runs", "reaper.reaped_runs", "reaper.pruned_rows",
                 "reaper.dropped_leases", "runs.reaped"):
        counters.append((name, n // 100 + 1))
    counter_values = ", ".join(f"('{k}', {v})" for k, v in counters)
    return f"""
PRAGMA synchronous = OFF;
BEGIN;
DELETE FROM transitions; DELETE FROM events; DELETE FROM gate_events; DELETE FROM holds;
DELETE FROM counters; DELETE FROM tasks;
CREATE TEMP TABLE n AS WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {n})
  SELECT i FROM c;
INSERT INTO tasks (id, repo, branch, worktree, target, remote, stage, version, validated_sha,
                   dev_retries, hold_reason, held_since, created_at, updated_at)
  SELECT printf('T%07d', i), 'repo' || (i % 20), 'feat/t' || i, NULL, 'main', 'origin',
         {stage_case}, 11, NULL, i % 4,
         CASE WHEN i % 100 = 7 THEN 'bench: held by an operator' END,
         CASE WHEN i % 100 = 7 THEN {now_ms} - 3600000 END,
         {now_ms} - 864000000 + i, {now_ms} - ((i * 7919) % 864000) * 1000
    FROM n;
INSERT INTO holds (task_id, action, reason, actor, at)
  SELECT id, 'hold', hold_reason, 'operator', held_since FROM tasks WHERE hold_reason IS NOT NULL;
-- 10 history rows per task, interleaved across tasks the way a busy pipeline writes them.
WITH RECURSIVE k(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM k WHERE j < 10)
INSERT INTO transitions (task_id, from_stage, to_stage, version, actor, reason, lease_token, at)
  SELECT printf('T%07d', i), CASE j WHEN 1 THEN NULL ELSE '{STAGES[3]}' END, '{STAGES[4]}', j,
         'bench', NULL, j * {n} + i, {now_ms} - 864000000 + j * 60000 + i
    FROM k, n ORDER BY j, i;
-- Gate events and their finished runs: every task at deploy or later went through the gates.
INSERT INTO runs (task_id, gate, command, owner_pid, owner_pid_start, leader_pid,
                  leader_pid_start, boot_id, pid_ns, host, started_at, started_boot_ms,
                  timeout_ms, finished_at, outcome, exit_status, output, evidence)
  SELECT printf('T%07d', i), gate, 'python3 -m pytest -q', 1000, 1, 2000 + i, 1, 'bench-boot',
         'pid:[1]', 'bench-host', {now_ms} - 86400000 + i, 0, 900000,
         {now_ms} - 86300000 + i,
         CASE WHEN i % 50 = 7 AND gate = 'merge' THEN 'red' ELSE 'passed' END,
         CASE WHEN i % 50 = 7 AND gate = 'merge' THEN 1 ELSE 0 END,
         '12 passed in 3.21s', NULL
    FROM n, ({gate_rows}) AS gates
   WHERE i % 10 IN (7, 8) AND (gate != 'merge-verify' OR i % 10 = 8)
   ORDER BY i, g;
INSERT INTO gate_events (task_id, edge, gate, outcome, detail, run_id, at)
  SELECT runs.task_id, CASE gate WHEN 'merge-verify' THEN 'deploy->done'
                                 ELSE 'deploy-staging->deploy' END,
         gate, outcome, 'bench', id, finished_at
    FROM runs ORDER BY id;
INSERT INTO gate_events (task_id, edge, gate, outcome, detail, run_id, at)
  SELECT printf('T%07d', i), 'deploy-staging->deploy', 'merge', 'infra-requeued',
         'attempt 1 of 2: timeout; due in 120s', NULL, {now_ms} - 3600000 + i
    FROM n WHERE i % 200 = 5;
INSERT INTO events (event_id, task_id, command, exit_code, outcome, at)
  SELECT 'gh-delivery-' || i, printf('T%07d', i), 'advance', 0, 'moved', {now_ms} - 86400000 + i
    FROM n;
INSERT INTO counters (name, value) VALUES {counter_values};
-- A few leases (owners long gone), a merge lock, re-queues, budgets, alerts, coverage, reaps.
INSERT INTO transition_lease (task_id, owner, owner_pid, owner_pid_start, boot_id, pid_ns, host,
                              acquired_at, renewed_at, expires_at, renewed_boot_ms, ttl_ms)
  SELECT printf('T%07d', i), 'ci', 4000000 + i, 1, 'bench-boot', 'pid:[1]', 'bench-host',
         {now_ms} - 60000, {now_ms} - 60000, {now_ms}, 0, 60000
    FROM n WHERE i % 10 = 6 AND i <= 60;
INSERT INTO merge_locks (repo, task_id, lease_token, owner, owner_pid, owner_pid_start, boot_id,
                         pid_ns, host, acquired_at, renewed_at, renewed_boot_ms, ttl_ms)
  SELECT 'repo6', task_id, token, owner, owner_pid, 1, 'bench-boot', 'pid:[1]', 'bench-host',
         acquired_at, renewed_at, 0, 60000 FROM transition_lease ORDER BY token LIMIT 1;
INSERT INTO requeues (task_id, from_stage, to_stage, kind, attempt, reason, due_at, due_boot_ms,
                      boot_id, created_at, claimed_at, budget_tip, published_tip)
  SELECT printf('T%07d', i), 'deploy-staging', 'deploy', CASE WHEN i % 20 = 6 THEN 'infra'
         ELSE 'deferral' END, 1, 'timeout', {now_ms} + i * 1000, 0, 'bench-boot',
         {now_ms} - 60000, NULL, 'abc', NULL
    FROM n WHERE i % 10 = 6 AND i <= 120;
INSERT INTO edge_budgets (task_id, edge, base_tip, infra_attempts, deferrals, exhausted_at)
  SELECT task_id, 'deploy-staging->deploy', 'abc', 1, 0, NULL FROM requeues;
INSERT INTO alerts (key, task_id, kind, payload, created_at, delivered_at, attempts, last_error)
  SELECT 'exhausted:' || printf('T%07d', i), printf('T%07d', i), 'infra-exhausted', '{{}}',
         {now_ms} - 3600000 + i, CASE WHEN i % 2 = 0 THEN {now_ms} END, 1, NULL
    FROM n WHERE i % 100 = 7 AND i <= 2000;
INSERT INTO coverage_reports (repo, task_id, head_sha, percent, minimum, at)
  SELECT 'repo' || i, printf('T%07d', i), 'abc', 80.0 + i % 10, 75.0, {now_ms} FROM n WHERE i <= 20;
-- A reap a minute for the 30 days of ORCH_RETENTION_DAYS: the steady state, whatever the tasks.
WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 43200)
INSERT INTO reaper_runs (started_at, finished_at, dry_run, summary)
  SELECT {now_ms} - i * 60000, {now_ms} - i * 60000 + 40, 0,
         '{{"reaped_runs":0,"dropped_leases":0,"dropped_merge_locks":0,"alerts_redelivered":0,"removed_worktrees":0,"pruned_rows":1}}'
    FROM r ORDER BY i DESC;
DROP TABLE n;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
"""


def build_db(orch, path, n):
    """Creates a database of `n` tasks at `path` (see the module docstring)."""
    env = clean_env(path)
    subprocess.run([orch, "task", "add", "SEED", "--repo", "bench", "--branch", "b"], env=env,
                   check=True, stdout=subprocess.DEVNULL)
    sql = populate_sql(n, int(time.time() * 1000))
    subprocess.run(["sqlite3", "-bail", path], input=sql.encode(), check=True,
                   stdout=subprocess.DEVNULL)
    return path


def run_ms(cmd, env):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = (time.perf_counter() - t0) * 1000
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.decode().strip()}")
    return dt


def timed(conn, sql, args_list=((),)):
    """(median ms of 5, rows, plan) of `sql` run once per argument tuple."""
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        rows = [row for args in args_list for row in conn.execute(sql, args).fetchall()]
        samples.append((time.perf_counter() - t0) * 1000)
    plan = "; ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args_list[0]))
    return statistics.median(samples), rows, plan


def per_query(db):
    """Each statement `orch queue` runs, then the proposed replacements on a copy with the
    proposed indexes: [(name, ms, plan)], [(name, ms, plan, same result)]."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    current = {name: timed(conn, sql) for name, sql in QUEUE_SQL.items()}
    conn.close()
    fixed = db + ".fixed"
    shutil.copy(db, fixed)
    subprocess.run(["sqlite3", "-bail", fixed], input=PROPOSED_INDEXES.encode(), check=True)
    conn = sqlite3.connect(f"file:{fixed}?mode=ro", uri=True)
    proposed = []
    for name, sql in PROPOSED_SQL.items():
        args = [(g,) for g in GATES] if "?1" in sql else [()]
        ms_, rows, plan = timed(conn, sql, args)
        proposed.append((name, ms_, plan, sorted(rows) == sorted(current[name][1])))
    conn.close()
    os.remove(fixed)
    return [(name, ms_, plan) for name, (ms_, _, plan) in current.items()], proposed


def main():
    orch = os.path.abspath(sys.argv[1])
    sizes = [int(s) for s in (sys.argv[2] if len(sys.argv) > 2 else "1000,10000,100000").split(",")]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    work = tempfile.mkdtemp(prefix="orch-bench-queue-")
    atexit.register(shutil.rmtree, work, True)
    print(f"queue: median (max) wall ms of {runs} runs per command, interleaved, warm cache; "
          f"target `orch queue` < {TARGET_MS:.0f} ms at 100k tasks")
    print(f"  {'tasks':>7} {'db MiB':>7}  {'orch queue':>14} {'queue --json':>14} "
          f"{'task show':>14} {'sqlite3 GROUP BY':>17}")
    diagnostics = []
    for n in sizes:
        db = os.path.join(work, f"q{n}.db")
        t0 = time.perf_counter()
        build_db(orch, db, n)
        build_s = time.perf_counter() - t0
        env = clean_env(db)
        show_id = f"T{n // 2 + 8:07d}"  # a task at `done`, with gate events and a run
        cmds = {
            "queue": [orch, "queue"],
            "json": [orch, "queue", "--json"],
            "show": [orch, "task", "show", show_id],
            "base": ["sqlite3", db, BASELINE_SQL],
        }
        samples = {k: [] for k in cmds}
        for _ in range(WARMUP):
            for cmd in cmds.values():
                run_ms(cmd, env)
        for _ in range(runs):
            for k, cmd in cmds.items():
                samples[k].append(run_ms(cmd, env))
        cell = {k: f"{statistics.median(v):6.1f} ({max(v):5.1f})" for k, v in samples.items()}
        size_mib = os.path.getsize(db) / 2**20
        print(f"  {n:>7} {size_mib:>7.1f}  {cell['queue']:>14} {cell['json']:>14} "
              f"{cell['show']:>14} {cell['base']:>17}   (built in {build_s:.1f}s)")
        if n == max(sizes):
            q = statistics.median(samples["queue"])
            verdict = "on target" if q < TARGET_MS else "MISSES the target"
            print(f"  orch queue at {n} tasks: {q:.1f} ms median, {verdict}")
            diagnostics, proposed = per_query(db)
        os.remove(db)
    print(f"  per statement at {max(sizes)} tasks (in-process, Python sqlite3 "
          f"{sqlite3.sqlite_version}, median of 5):")
    for name, ms_, plan in sorted(diagnostics, key=lambda d: -d[1]):
        print(f"    {ms_:7.2f} ms  {name:<28} {plan}")
    print("  proposed replacements (see BENCHMARKS.md), on a copy with the proposed indexes:")
    for name, ms_, plan, same in proposed:
        print(f"    {ms_:7.2f} ms  {name:<28} {'same rows' if same else 'DIFFERENT ROWS'}  {plan}")


if __name__ == "__main__":
    main()
