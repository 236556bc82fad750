#!/usr/bin/env python3
"""Peak memory (max RSS) of each orch command, against the sqlite3 shell running one query on the
same database, and `true`.

The databases are those of scripts/bench_queue.py (built the same way): 1k tasks and 100k tasks,
10 history rows per task. Each command runs RUNS times on each database; the largest max RSS is
reported. Max RSS comes from GNU `/usr/bin/time -v` ("Maximum resident set size") when present,
else from `resource.getrusage(RUSAGE_CHILDREN).ru_maxrss` in a fresh Python process that runs the
command as its only child. Target: every command under 16 MiB.

usage: scripts/bench_memory.py ORCH_BINARY [SIZES [RUNS]]        e.g. ... 1000,100000 3
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in scripts/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_queue  # noqa: E402  (same directory: the database builder)

TARGET_KIB = 16 * 1024
GNU_TIME = "/usr/bin/time"
FALLBACK = ("import resource, subprocess, sys\n"
            "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
            "sys.stderr.buffer.write(p.stderr)\n"
            "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")


def has_gnu_time():
    if not os.access(GNU_TIME, os.X_OK):
        return False
    p = subprocess.run([GNU_TIME, "-v", "true"], capture_output=True, text=True)
    return "Maximum resident set size" in p.stderr


def max_rss_kib(cmd, env, use_time):
    """(max RSS in KiB, exit code) of one run of `cmd`."""
    if use_time:
        with tempfile.NamedTemporaryFile("r", suffix=".time") as f:
            p = subprocess.run([GNU_TIME, "-v", "-o", f.name] + cmd, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            report = f.read()
        code = p.returncode
        kib = next(int(line.split(":")[1]) for line in report.splitlines()
                   if "Maximum resident set size" in line)
    else:
        p = subprocess.run([sys.executable, "-c", FALLBACK] + cmd, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        code, kib = map(int, p.stdout.decode().split())
    return kib, code, p.stderr


def main():
    orch = os.path.abspath(sys.argv[1])
    sizes = [int(s) for s in (sys.argv[2] if len(sys.argv) > 2 else "1000,100000").split(",")]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    use_time = has_gnu_time()
    has_reap = " reap " in subprocess.run([orch, "--help"], capture_output=True,
                                          text=True).stdout
    work = tempfile.mkdtemp(prefix="orch-bench-memory-")
    atexit.register(shutil.rmtree, work, True)
    # name -> (argv builder taking (db, run index), allowed exit codes)
    commands = {
        "orch task add": (lambda db, i: [orch, "task", "add", f"NEW{i}", "--repo", "bench",
                                         "--branch", f"b{i}"], {0}),
        "orch task show": (lambda db, i: [orch, "task", "show", "T0000008"], {0}),
        "orch task list": (lambda db, i: [orch, "task", "list"], {0}),
        "orch --json task list": (lambda db, i: [orch, "--json", "task", "list"], {0}),
        "orch advance (no gates)": (lambda db, i: [orch, "advance", "MEM", "--to",
                                                   ("review", "development")[i % 2], "--expect",
                                                   ("development", "review")[i % 2]], {0}),
        "orch queue": (lambda db, i: [orch, "queue"], {0}),
        "orch queue --json": (lambda db, i: [orch, "queue", "--json"], {0}),
        "orch doctor": (lambda db, i: [orch, "doctor"], {0}),
        "orch exec -- true": (lambda db, i: [orch, "exec", "--", "true"], {0}),
    }
    if has_reap:
        commands["orch reap"] = (lambda db, i: [orch, "reap"], {0})
    baselines = {
        "sqlite3 DB 'SELECT stage, count(*) … GROUP BY stage'":
            (lambda db, i: ["sqlite3", db, bench_queue.BASELINE_SQL], {0}),
        "sqlite3 DB 'SELECT * FROM tasks'":
            (lambda db, i: ["sqlite3", db, "SELECT * FROM tasks"], {0}),
        "true": (lambda db, i: ["true"], {0}),
    }
    print(f"memory: max RSS (KiB, the largest of {runs} runs) via "
          f"{'/usr/bin/time -v' if use_time else 'getrusage(RUSAGE_CHILDREN)'}; "
          f"target < {TARGET_KIB} KiB (16 MiB)"
          + ("" if has_reap else "; `orch reap` not present in this build"))
    header = "".join(f"{f'{n} tasks':>14}" for n in sizes)
    print(f"  {'command':<52}{header}")
    table = {name: [] for name in list(commands) + list(baselines)}
    failures = []
    for n in sizes:
        db = bench_queue.build_db(orch, os.path.join(work, f"m{n}.db"), n)
        env = bench_queue.clean_env(db)
        subprocess.run([orch, "task", "add", "MEM", "--repo", "bench", "--branch", "b",
                        "--stage", "development"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        for name, (argv, ok) in list(commands.items()) + list(baselines.items()):
            worst = 0
            for i in range(runs):
                kib, code, err = max_rss_kib(argv(db, i), env, use_time)
                if code not in ok:
                    failures.append(f"{name} at {n} tasks exited {code}: "
                                    f"{err.decode(errors='replace').strip()[:200]}")
                worst = max(worst, kib)
            table[name].append(worst)
        os.remove(db)
    for name, row in table.items():
        over = name.startswith("orch")
        cells = "".join(f"{kib:>9} {'MISS' if over and kib >= TARGET_KIB else '':<4}"
                        for kib in row)
        print(f"  {name:<52}{cells}")
    misses = [name for name, row in table.items()
              if name.startswith("orch") and max(row) >= TARGET_KIB]
    print(f"  target: {'all orch commands under 16 MiB' if not misses else 'MISSED by ' + ', '.join(misses)}")
    for f in failures:
        print(f"  FAILURE {f}")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
