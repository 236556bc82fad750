#!/usr/bin/env python3
"""Throughput and latency of `orch advance` under contention: 1, 4, 16 and 64 concurrent writers,
against the same workload done by the sqlite3 shell.

Each writer is a process looping for DURATION seconds; every iteration spawns one `orch advance
TASK --to S --expect F --actor wN`. Half of a writer's attempts move its own task, half race on
one hot task shared by all writers. Tasks move between `development` and `review` (edges without
gates). A writer knows its own task's stage exactly; for the hot task it keeps a guess (the stage
it last moved it to) and flips the guess after a lost race. Exit 0 is a winner (a transition
made), exit 4 a lost race; any other exit code, or "database is locked" on stderr, is a failure
of the benchmark, and so is a lost race on a writer's own task.

The baseline runs the same loop with one `sqlite3` shell process per attempt, executing what
orch does: read the task's version (orch's snapshot before its write transaction), then the SQL of
orch's single-transaction path (scripts/bench_advance.py) in BEGIN IMMEDIATE with busy_timeout
30000 and synchronous FULL: take the lease, CAS the stage and the version read, append the history
row, drop the re-queue, count, release the lease, commit; a CAS that finds another stage or
version counts `cas_lost` and reports a loss, as orch does.

For each N the two tools run ROUNDS times each in ABBA order (orch, sqlite3, sqlite3, orch, ...)
for DURATION / ROUNDS seconds a run, so a drift in the machine's load hits both alike; the figures
pool the rounds.

After each run the history is checked: every task's version grew by exactly its number of new
`transitions` rows, and the rows equal the winners counted (no lost update, no double win).

usage: scripts/bench_contention.py ORCH_BINARY [WRITERS [DURATION_S [ROUNDS]]]   defaults 1,4,16,64 20 4
"""

import multiprocessing as mp
import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

STAGES = ("development", "review")
HOT = "HOT"

SHELL_SQL = """PRAGMA busy_timeout = 30000;
PRAGMA temp_store = MEMORY;
PRAGMA synchronous = FULL;
CREATE TEMP TABLE seen AS SELECT version AS v FROM tasks WHERE id = '{task}';
BEGIN IMMEDIATE;
INSERT INTO transition_lease (task_id, owner, owner_pid, owner_pid_start, boot_id, pid_ns, host,
    acquired_at, renewed_at, expires_at, renewed_boot_ms, ttl_ms)
  VALUES ('{task}', '{actor} (sqlite3)', 1, 1, 'b', 'n', 'h', 0, 0, 60000, 0, 60000);
UPDATE tasks SET stage = '{to}', version = version + 1, updated_at = 1
  WHERE id = '{task}' AND stage = '{frm}' AND version = (SELECT v FROM seen)
    AND hold_reason IS NULL AND EXISTS (SELECT 1 FROM transition_lease WHERE task_id = '{task}');
CREATE TEMP TABLE won AS SELECT changes() AS n;
INSERT INTO transitions (task_id, from_stage, to_stage, version, actor, reason, lease_token, at)
  SELECT '{task}', '{frm}', '{to}', version, '{actor}', NULL,
         (SELECT token FROM transition_lease WHERE task_id = '{task}'), 1
    FROM tasks, won WHERE id = '{task}' AND won.n = 1;
DELETE FROM requeues WHERE task_id = '{task}' AND (SELECT n FROM won) = 1;
INSERT INTO counters (name, value)
  SELECT CASE n WHEN 1 THEN 'transitions.total' ELSE 'transition_lease.cas_lost' END, 1 FROM won
    WHERE true ON CONFLICT(name) DO UPDATE SET value = value + 1;
DELETE FROM transition_lease WHERE task_id = '{task}';
COMMIT;
SELECT n FROM won;
"""


def other(stage):
    return STAGES[1] if stage == STAGES[0] else STAGES[0]


def writer(kind, w, orch, db, env, start_at, deadline, out):
    """One writer's loop; puts a list of (hot, won, lost, seconds, failure) on `out`."""
    own, own_stage, hot_guess = f"W{w:02d}", STAGES[0], STAGES[0]
    actor = f"w{w}"
    results = []
    i = w  # odd writers start on the hot task, even ones on their own
    while time.monotonic() < start_at:
        time.sleep(0.001)
    while time.monotonic() < deadline:
        hot = i % 2 == 1
        i += 1
        task, frm = (HOT, hot_guess) if hot else (own, own_stage)
        to = other(frm)
        failure = None
        t0 = time.perf_counter()
        if kind == "orch":
            p = subprocess.run([orch, "advance", task, "--to", to, "--expect", frm,
                                "--actor", actor], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
            dt = time.perf_counter() - t0
            err = p.stderr.decode(errors="replace")
            won, lost = p.returncode == 0, p.returncode == 4
            if not (won or lost) or "database is locked" in err:
                failure = f"exit {p.returncode}: {err.strip()[:200]}"
        else:
            sql = SHELL_SQL.format(task=task, frm=frm, to=to, actor=actor)
            p = subprocess.run(["sqlite3", "-bail", db], input=sql.encode(),
                               capture_output=True)
            dt = time.perf_counter() - t0
            # the last line is the outcome (PRAGMA busy_timeout prints its value first)
            out_s = (p.stdout.decode().strip().splitlines() or [""])[-1]
            err = p.stderr.decode(errors="replace")
            won, lost = out_s == "1", out_s == "0"
            if p.returncode != 0 or err or not (won or lost):
                failure = f"exit {p.returncode}: {err.strip()[:200]} {out_s!r}"
        if lost and not hot:
            failure = failure or f"lost a race on its own task {own}"
        if won:
            if hot:
                hot_guess = to
            else:
                own_stage = to
        elif lost and hot:
            hot_guess = other(hot_guess)
        results.append((hot, won, lost, dt, failure))
    out.put((w, results))


def versions(db):
    out = subprocess.run(["sqlite3", db, "SELECT id, version, (SELECT count(*) FROM transitions "
                          "t WHERE t.task_id = tasks.id) FROM tasks ORDER BY id"],
                         check=True, capture_output=True, text=True).stdout
    return {line.split("|")[0]: tuple(map(int, line.split("|")[1:]))
            for line in out.strip().splitlines()}


def pct(samples, q):
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, round(q * len(s)) - 1))]


def run(kind, n, orch, template, duration):
    """One run of N writers of `kind` on a fresh copy of the registered tasks."""
    db = f"{template}.{kind}.{time.monotonic_ns()}"
    shutil.copy(template, db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env["ORCH_DB_PATH"] = db
    before = versions(db)
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start_at = time.monotonic() + 0.5
    deadline = start_at + duration
    procs = [ctx.Process(target=writer, args=(kind, w, orch, db, env, start_at, deadline, out))
             for w in range(n)]
    for p in procs:
        p.start()
    results = [r for _ in procs for r in out.get()[1]]
    elapsed = time.monotonic() - start_at
    for p in procs:
        p.join()
    after = versions(db)
    wins = sum(r[1] for r in results)
    grown = {t: (after[t][0] - before[t][0], after[t][1] - before[t][1]) for t in after}
    consistent = (all(dv == dt for dv, dt in grown.values())
                  and sum(dv for dv, _ in grown.values()) == wins)
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(db + suffix):
            os.remove(db + suffix)
    return results, elapsed, consistent


def summary(runs):
    """Pools the (results, elapsed, consistent) of a tool's rounds."""
    results = [r for rs, _, _ in runs for r in rs]
    elapsed = sum(e for _, e, _ in runs)
    lat = [r[3] * 1000 for r in results]
    wins = sum(r[1] for r in results)
    return {
        "attempts": len(results),
        "wins": wins,
        "lost": sum(r[2] for r in results),
        "hot_wins": sum(r[1] for r in results if r[0]),
        "hot": sum(r[0] for r in results),
        "failures": [r[4] for r in results if r[4]],
        "tps": wins / elapsed,
        "p50": pct(lat, 0.50),
        "p99": pct(lat, 0.99),
        "max": max(lat),
        "consistent": all(c for _, _, c in runs),
    }


def main():
    orch = os.path.abspath(sys.argv[1])
    writers = [int(s) for s in (sys.argv[2] if len(sys.argv) > 2 else "1,4,16,64").split(",")]
    duration = float(sys.argv[3]) if len(sys.argv) > 3 else 20.0
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    work = tempfile.mkdtemp(prefix="orch-bench-contention-")
    atexit.register(shutil.rmtree, work, True)
    print(f"contention: N writers, {duration:g}s per tool in {rounds} ABBA rounds, half the "
          f"attempts on one hot task; load average at start {os.getloadavg()[0]:.2f}")
    print(f"  {'writers':>7} {'tool':<8} {'transitions/s':>13} {'p50':>9} {'p99':>9} {'max':>9} "
          f"{'attempts':>8} {'won':>6} {'lost':>6} {'hot won/tried':>14} {'failures':>8} "
          f"{'history':>8}")
    all_failures = []
    for n in writers:
        orch_db = os.path.join(work, f"orch-{n}.db")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
        env["ORCH_DB_PATH"] = orch_db
        for task in [HOT] + [f"W{w:02d}" for w in range(n)]:
            subprocess.run([orch, "task", "add", task, "--repo", "bench", "--branch", "b",
                            "--stage", "development"], env=env, check=True,
                           stdout=subprocess.DEVNULL)
        subprocess.run(["sqlite3", orch_db, "PRAGMA wal_checkpoint(TRUNCATE)"], check=True,
                       stdout=subprocess.DEVNULL)
        runs = {"orch": [], "sqlite3": []}
        for k in range(rounds):
            order = ("orch", "sqlite3") if k % 2 == 0 else ("sqlite3", "orch")
            for kind in order:
                runs[kind].append(run(kind, n, orch, orch_db, duration / rounds))
        for kind in ("orch", "sqlite3"):
            r = summary(runs[kind])
            all_failures += [f"{kind} N={n}: {f}" for f in r["failures"]]
            print(f"  {n:>7} {kind:<8} {r['tps']:>13.1f} {r['p50']:>7.1f}ms {r['p99']:>7.1f}ms "
                  f"{r['max']:>7.1f}ms {r['attempts']:>8} {r['wins']:>6} {r['lost']:>6} "
                  f"{r['hot_wins']:>6}/{r['hot']:<7} {len(r['failures']):>8} "
                  f"{'ok' if r['consistent'] else 'BROKEN':>8}", flush=True)
    print(f"  load average at end {os.getloadavg()[0]:.2f}")
    for f in sorted(set(all_failures))[:20]:
        print(f"  FAILURE {f}")
    if all_failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
