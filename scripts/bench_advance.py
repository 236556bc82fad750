#!/usr/bin/env python3
"""Wall time of one `orch advance` process against the same transaction done by the sqlite3 shell.

Both sides start a fresh process per transition, on their own copy of the same database, moving one
task between `development` and `review`; runs are interleaved so machine noise hits both alike.
The sqlite3 side runs exactly the SQL orch's single-transaction path runs: take the lease (insert),
CAS the stage, append the history row, count, release the lease (delete), commit.

usage: scripts/bench_advance.py ORCH_BINARY [ROUNDS]
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SQL = """PRAGMA busy_timeout = 30000;
PRAGMA synchronous = FULL;
BEGIN IMMEDIATE;
INSERT INTO transition_lease (task_id, owner, owner_pid, owner_pid_start, boot_id, pid_ns, host,
    acquired_at, renewed_at, expires_at, renewed_boot_ms, ttl_ms)
  VALUES ('B', 'bench (sqlite3)', 1, 1, 'b', 'n', 'h', 0, 0, 60000, 0, 60000);
UPDATE tasks SET stage = '{to}', version = version + 1, updated_at = 1
  WHERE id = 'B' AND stage = '{frm}' AND version = {version} AND hold_reason IS NULL
    AND EXISTS (SELECT 1 FROM transition_lease WHERE task_id = 'B');
INSERT INTO transitions (task_id, from_stage, to_stage, version, actor, reason, lease_token, at)
  VALUES ('B', '{frm}', '{to}', {version} + 1, 'bench', NULL, last_insert_rowid(), 1);
INSERT INTO counters (name, value) VALUES ('transitions.total', 1)
  ON CONFLICT(name) DO UPDATE SET value = value + 1;
DELETE FROM transition_lease WHERE task_id = 'B';
COMMIT;
"""


def ms(samples):
    samples = sorted(samples)
    p90 = samples[int(len(samples) * 0.9) - 1]
    return statistics.median(samples) * 1000, p90 * 1000


def main():
    orch = os.path.abspath(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    work = tempfile.mkdtemp(prefix="orch-bench-advance-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    orch_db = os.path.join(work, "orch.db")
    env["ORCH_DB_PATH"] = orch_db
    subprocess.run([orch, "task", "add", "B", "--repo", "bench", "--branch", "b",
                    "--stage", "development"], env=env, check=True, stdout=subprocess.DEVNULL)
    shell_db = os.path.join(work, "shell.db")
    shutil.copy(orch_db, shell_db)

    orch_t, shell_t = [], []
    stages = ("development", "review")
    for i in range(rounds):
        frm, to = stages[i % 2], stages[(i + 1) % 2]
        t0 = time.perf_counter()
        subprocess.run([orch, "advance", "B", "--to", to, "--actor", "bench"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        orch_t.append(time.perf_counter() - t0)
        sql = SQL.format(frm=frm, to=to, version=i + 1)
        t0 = time.perf_counter()
        subprocess.run(["sqlite3", shell_db], input=sql.encode(), check=True,
                       stdout=subprocess.DEVNULL)
        shell_t.append(time.perf_counter() - t0)

    def version(db):
        out = subprocess.run(["sqlite3", db, "SELECT stage, version FROM tasks"], check=True,
                             capture_output=True, text=True).stdout.strip()
        return out

    assert version(orch_db) == version(shell_db), (version(orch_db), version(shell_db))
    (om, op), (sm, sp) = ms(orch_t), ms(shell_t)
    print(f"advance: {rounds} transitions each, one process per transition, interleaved")
    print(f"  {'':<28} {'median':>9} {'p90':>9}")
    print(f"  {'orch advance':<28} {om:>7.2f}ms {op:>7.2f}ms")
    print(f"  {'sqlite3 shell, same tx':<28} {sm:>7.2f}ms {sp:>7.2f}ms")
    print(f"  orch / sqlite3 (median): {om / sm:.2f}")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
