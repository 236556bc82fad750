#!/usr/bin/env python3
"""Suite runs per gated deploy: `deploy-staging → deploy` with a coverage minimum, the old default
against the new, side by side in one run.

- old: the re-test is `python3 -m pytest -q` and `ORCH_COVERAGE_CMD` is the old default,
  `python3 -m pytest -q --cov --cov-report=json:"$ORCH_COVERAGE_REPORT"` (a second suite run);
- new: `ORCH_COVERAGE_CMD` unset, the re-test writes the report the coverage gate judges:
  `python3 -m pytest -q --cov --cov-report=json:"$ORCH_COVERAGE_REPORT"`.

Each round builds, for each mode (interleaved, so machine noise hits both alike), a fresh state
directory, a bare remote playing the forge and a pytest project whose suite takes a few seconds of
CPU; the task branch is behind a main that moved, so the merge gate rebases and really re-tests.
It counts the `runs` rows of the task's deploy edge, sums their wall time, and times the whole
`orch advance T --to deploy` process. The suite is also run once per round on its own, for
reference. The gate sandbox is at its default (Landlock where the kernel has it).

Needs pytest and pytest-cov for the interpreter running this script (scripts/test-setup's .venv
has both); the Python standard library otherwise.

usage: scripts/bench_runs.py ORCH_BINARY [ROUNDS]
"""

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

PY = sys.executable
OLD_DEFAULT_COVERAGE_CMD = f'{PY} -m pytest -q --cov --cov-report=json:"$ORCH_COVERAGE_REPORT"'
MODES = {
    "old": {
        "ORCH_MERGE_RETEST_CMD": f"{PY} -m pytest -q",
        "ORCH_COVERAGE_CMD": OLD_DEFAULT_COVERAGE_CMD,
    },
    "new": {
        "ORCH_MERGE_RETEST_CMD": f'{PY} -m pytest -q --cov --cov-report=json:"$ORCH_COVERAGE_REPORT"',
        "ORCH_COVERAGE_CMD": "",
    },
}

# A small package and a suite of 40 modules that exercise it: a few seconds of CPU in all.
PACKAGE = '''
def collatz(n):
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


def longest(limit):
    best, arg = 0, 1
    for i in range(1, limit):
        s = collatz(i)
        if s > best:
            best, arg = s, i
    return arg, best


def primes(limit):
    sieve = [True] * limit
    sieve[0:2] = [False, False]
    for i in range(2, int(limit ** 0.5) + 1):
        if sieve[i]:
            sieve[i * i::i] = [False] * len(sieve[i * i::i])
    return [i for i, p in enumerate(sieve) if p]
'''
TEST = '''from mathy import collatz, longest, primes


def test_collatz_{i}():
    assert collatz(27) == 111


def test_longest_{i}():
    arg, best = longest(6000 + {i})
    assert best >= 200 and arg > 0


def test_primes_{i}():
    assert len(primes(20000)) == 2262
'''


def git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def project(root):
    """A bare remote whose main moved past the task branch `feat/t`; returns the remote."""
    remote = os.path.join(root, "remote.git")
    work = os.path.join(root, "work")
    git(root, "init", "--quiet", "--bare", "-b", "main", remote)
    git(root, "init", "--quiet", "-b", "main", work)
    with open(os.path.join(work, "mathy.py"), "w") as f:
        f.write(PACKAGE)
    for i in range(40):
        with open(os.path.join(work, f"test_mathy_{i}.py"), "w") as f:
            f.write(TEST.format(i=i))
    with open(os.path.join(work, ".gitignore"), "w") as f:
        f.write("__pycache__/\n.pytest_cache/\n.coverage\n")
    git(work, "add", ".")
    git(work, "commit", "--quiet", "-m", "project")
    git(work, "remote", "add", "origin", remote)
    git(work, "push", "--quiet", "origin", "main")
    git(work, "checkout", "--quiet", "-b", "feat/t")
    with open(os.path.join(work, "notes.txt"), "w") as f:
        f.write("the task's change\n")
    git(work, "add", ".")
    git(work, "commit", "--quiet", "-m", "task")
    git(work, "push", "--quiet", "origin", "feat/t")
    git(work, "checkout", "--quiet", "main")
    with open(os.path.join(work, "main.txt"), "w") as f:
        f.write("main moves\n")
    git(work, "add", ".")
    git(work, "commit", "--quiet", "-m", "main moves")
    git(work, "push", "--quiet", "origin", "main")
    return remote, work


def deploy(orch, root, mode, base_env):
    remote, _ = project(root)
    env = dict(base_env)
    env["ORCH_DB_PATH"] = os.path.join(root, "state", "orch.db")
    env["ORCH_COVERAGE_MIN"] = "80"
    env.update(MODES[mode])
    quiet = {"env": env, "check": True, "stdout": subprocess.DEVNULL}
    subprocess.run([orch, "repo", "add", "app", "--url", remote], **quiet)
    subprocess.run([orch, "task", "add", "T", "--repo", "app", "--branch", "feat/t",
                    "--stage", "deploy-staging", "--force", "--reason", "bench"], **quiet)
    t0 = time.perf_counter()
    out = subprocess.run([orch, "--json", "advance", "T", "--to", "deploy"], env=env,
                         capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"bench_runs: {mode}: orch advance exited {out.returncode}:\n{out.stdout}{out.stderr}")
    report = json.loads(out.stdout)
    coverage = next(g for g in report["gates"] if g["gate"] == "coverage")
    db = sqlite3.connect(env["ORCH_DB_PATH"])
    rows = db.execute("SELECT gate, finished_at - started_at FROM runs WHERE task_id = 'T'"
                      " ORDER BY id").fetchall()
    db.close()
    return {
        "wall": wall,
        "runs": len(rows),
        "gates": ",".join(g for g, _ in rows),
        "suite_s": sum(ms for _, ms in rows) / 1000,
        "coverage": coverage["detail"],
    }


def suite_alone(root):
    _, work = project(root)
    t0 = time.perf_counter()
    subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=work, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main():
    orch = os.path.abspath(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    for module in ("pytest", "pytest_cov"):
        if subprocess.run([PY, "-c", f"import {module}"], stderr=subprocess.DEVNULL).returncode:
            sys.exit(f"bench_runs: {PY} has no {module} (hint: scripts/test-setup, then run "
                     "this with .venv/bin/python3)")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    base_env.update({
        "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@orch.invalid",
        "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@orch.invalid",
    })
    os.environ.update({k: v for k, v in base_env.items() if k.startswith("GIT_")})
    results = {mode: [] for mode in MODES}
    alone = []
    top = tempfile.mkdtemp(prefix="orch-bench-runs-")
    try:
        for r in range(rounds):
            for mode in MODES:
                root = os.path.join(top, f"{mode}-{r}")
                os.makedirs(root)
                results[mode].append(deploy(orch, root, mode, base_env))
            root = os.path.join(top, f"alone-{r}")
            os.makedirs(root)
            alone.append(suite_alone(root))
    finally:
        shutil.rmtree(top, ignore_errors=True)
    print(f"suite runs per gated deploy ({rounds} rounds, interleaved; ORCH_COVERAGE_MIN=80)")
    print(f"the suite alone (pytest -q, no coverage): median {statistics.median(alone):.2f} s")
    print("| configuration | suite runs per deploy | runs (gates) | suite time in runs (median) "
          "| `orch advance … --to deploy` wall (median) |")
    print("|---|---|---|---|---|")
    labels = {
        "old": "old default: `ORCH_COVERAGE_CMD` runs pytest-cov after the re-test",
        "new": "new default: the re-test writes `$ORCH_COVERAGE_REPORT`",
    }
    for mode, samples in results.items():
        runs = sorted({s["runs"] for s in samples})
        gates = sorted({s["gates"] for s in samples})
        print(f"| {labels[mode]} | {'/'.join(map(str, runs))} | {'; '.join(gates)} "
              f"| {statistics.median(s['suite_s'] for s in samples):.2f} s "
              f"| {statistics.median(s['wall'] for s in samples):.2f} s |")
    old = statistics.median(s["wall"] for s in results["old"])
    new = statistics.median(s["wall"] for s in results["new"])
    print(f"new / old edge wall (median): {new / old:.2f}")
    print(f"coverage gate, new: {results['new'][0]['coverage']}")
    print(f"coverage gate, old: {results['old'][0]['coverage']}")


if __name__ == "__main__":
    main()
