#!/usr/bin/env python3
"""The process-group runner against the usual ways of putting a deadline on a command.

1. Tree kill. A 10-process tree — a leader, 8 workers that ignore SIGTERM, and one grandchild that
   escapes the process group with setsid (double fork) and ignores SIGTERM too — gets a 1 s
   deadline and 1 s of grace from each of:
     - `orch exec --timeout 1 --grace 1 --signal TERM`
     - coreutils `timeout -k 1 1`
     - Python's `subprocess.run(timeout=1)`
   Measured per round: the processes of the tree still alive 1 s after the tool returned
   (survivors), and the time from the deadline until no process of the tree is left (or "never"
   when some survive). Target for orch: 0 survivors, empty within grace + 0.5 s. Survivors are
   killed by this script after each round.
2. Overhead. `orch exec -- true` against `true` run directly (and `timeout 60 true` for
   reference), interleaved so machine noise hits all alike; median and p90 wall time.

Standard library only. usage: scripts/bench_runner.py ORCH_BINARY [ROUNDS] [REPETITIONS]
"""

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

DEADLINE_S = 1.0
GRACE_S = 1.0

TREE_PY = r"""
import os, signal, sys, time

pidfile = sys.argv[1]

def record():
    fd = os.open(pidfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)

def spawn(body):
    if os.fork() == 0:
        try:
            body()
        finally:
            os._exit(0)

def worker():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    record()
    time.sleep(300)

def middle():
    os.setsid()
    spawn(worker)

record()
for _ in range(8):
    spawn(worker)
spawn(middle)
time.sleep(300)
"""

TREE_SIZE = 10


def alive(pid, needle):
    """A process of this benchmark's tree: it exists, is not a zombie, and runs our script."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return needle in f.read()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def pids_of(pidfile):
    try:
        with open(pidfile) as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}


def run_tool(tool, orch, script, pidfile):
    cmd = [sys.executable, script, pidfile]
    if tool == "orch exec":
        subprocess.run(
            [orch, "exec", "--timeout", str(DEADLINE_S), "--grace", str(GRACE_S),
             "--signal", "TERM", "--", *cmd],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env())
    elif tool == "timeout -k":
        subprocess.run(["timeout", "-k", str(GRACE_S), str(DEADLINE_S), *cmd],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        try:
            # DEVNULL: with pipes, the leaked processes would also hang communicate() for ever.
            subprocess.run(cmd, timeout=DEADLINE_S,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pass


def one_round(tool, orch, workdir, n):
    script = os.path.join(workdir, f"tree-{n}.py")
    with open(script, "w") as f:
        f.write(TREE_PY)
    needle = script.encode()
    pidfile = os.path.join(workdir, f"pids-{n}")
    start = time.monotonic()
    run_tool(tool, orch, script, pidfile)
    returned = time.monotonic()
    deadline = start + DEADLINE_S
    built = len(pids_of(pidfile))
    empty_at = None
    while time.monotonic() < returned + 1.0:
        if not any(alive(p, needle) for p in pids_of(pidfile)):
            empty_at = time.monotonic()
            break
        time.sleep(0.005)
    survivors = [p for p in pids_of(pidfile) if alive(p, needle)]
    for _ in range(200):
        left = [p for p in pids_of(pidfile) if alive(p, needle)]
        if not left:
            break
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.01)
    return {
        "built": built,
        "survivors": len(survivors),
        "to_empty": None if empty_at is None else max(0.0, empty_at - deadline),
        "tool_wall": returned - start,
    }


def tree_kill(orch, rounds):
    tools = ["orch exec", "timeout -k", "subprocess.run"]
    results = {t: [] for t in tools}
    with tempfile.TemporaryDirectory(prefix="orch-bench-runner-") as workdir:
        n = 0
        for _ in range(rounds):
            for tool in tools:
                n += 1
                results[tool].append(one_round(tool, orch, workdir, n))
    print(f"\n## Tree kill: {TREE_SIZE}-process tree, workers ignore SIGTERM, one grandchild "
          f"escapes with setsid; deadline {DEADLINE_S:g} s, grace {GRACE_S:g} s, {rounds} rounds\n")
    print("| tool | processes built | survivors (median / max) | deadline → empty tree (median) "
          "| tool returned after (median) |")
    print("|---|---|---|---|---|")
    for tool in tools:
        rs = results[tool]
        built = statistics.median(r["built"] for r in rs)
        surv = [r["survivors"] for r in rs]
        empties = [r["to_empty"] for r in rs]
        if any(e is None for e in empties):
            never = sum(e is None for e in empties)
            empty = f"never in {never}/{len(rs)} rounds"
        else:
            empty = f"{statistics.median(empties):.2f} s"
        wall = statistics.median(r["tool_wall"] for r in rs)
        name = {"orch exec": "`orch exec --timeout 1 --grace 1 --signal TERM`",
                "timeout -k": "`timeout -k 1 1`",
                "subprocess.run": "`subprocess.run(timeout=1)`"}[tool]
        print(f"| {name} | {built:g} | {statistics.median(surv):g} / {max(surv)} | {empty} "
              f"| {wall:.2f} s |")
    orch_rs = results["orch exec"]
    ok = all(r["survivors"] == 0 and r["to_empty"] is not None
             and r["to_empty"] <= GRACE_S + 0.5 for r in orch_rs)
    print(f"\norch target (0 survivors, empty within grace + 0.5 s = {GRACE_S + 0.5:g} s, every "
          f"round): {'met' if ok else 'MISSED'}")
    return ok


def ms(samples):
    samples = sorted(samples)
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.9) - 1] * 1000


def overhead(orch, repetitions):
    env = clean_env()
    cases = [
        ("`true` directly", ["true"]),
        ("`orch exec -- true`", [orch, "exec", "--", "true"]),
        ("`timeout 60 true` (reference)", ["timeout", "60", "true"]),
    ]
    samples = {name: [] for name, _ in cases}
    for _ in range(repetitions):
        for name, cmd in cases:
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, env=env)
            samples[name].append(time.perf_counter() - t0)
    print(f"\n## Overhead around a trivial command: {repetitions} repetitions, interleaved\n")
    print("| command | median | p90 |")
    print("|---|---|---|")
    for name, _ in cases:
        med, p90 = ms(samples[name])
        print(f"| {name} | {med:.2f} ms | {p90:.2f} ms |")
    direct, _ = ms(samples["`true` directly"])
    wrapped, _ = ms(samples["`orch exec -- true`"])
    extra = wrapped - direct
    print(f"\norch exec overhead (median difference): {extra:.2f} ms — target under 5 ms: "
          f"{'met' if extra < 5 else 'MISSED'}")
    return extra < 5


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    orch = os.path.abspath(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    repetitions = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    print(f"machine: {os.cpu_count()} CPUs, {os.uname().sysname} {os.uname().release}, "
          f"load {os.getloadavg()[0]:.2f}")
    ok = tree_kill(orch, rounds)
    ok = overhead(orch, repetitions) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
