"""Benchmark: job engine throughput on the local backend, with every state change persisted.

* 1,000 trivial jobs (``true``) in one parallel collection on 2 cores, on SQLite
  and on PostgreSQL: jobs/s, and that every job ended TERMINATED with exit code 0.
* 10,000 jobs of which a random 1 % fail with exit code 3 (SQLite): every
  failure must be recorded with its exit code, and nothing else may fail.
* The peer, in the same run: submitit's LocalExecutor running 20 ``/bin/echo``
  commands (``pip install -e '.[bench]'``); GC3Pie no longer installs on
  Python 3.11 (anchors.md measured it at ~1 job/s).

Usage::

    python benchmarks/engine.py [--jobs 1000] [--many 10000] [--runs 3]

The last line of the output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from common import DEFAULT_PG_URL, scratch_pg_database
from sqlalchemy.orm import Session

GOAL_JOBS_PER_S = 20.0


def _environment(home: Path, db_url: str) -> None:
    os.environ.update(TMAPS_HOME=str(home), TMAPS_DB_URL=db_url,
                      TMAPS_CONFIG_FILE=str(home / "none.cfg"))  # fmt: skip


def run_jobs(home: Path, db_url: str, commands: list[list[str]]) -> tuple[float, dict[str, int]]:
    """Run `commands` as one parallel collection on 2 cores; seconds and exit codes by job."""
    import tmlib.models as tm
    from tmlib import registry
    from tmlib.models.session import dispose_engines
    from tmlib.workflow.jobs.backends import LocalBackend
    from tmlib.workflow.jobs.engine import PARALLEL, Engine, TaskSpec, persist
    from tmlib.workflow.jobs.job import JobSpec

    _environment(home, db_url)
    dispose_engines()
    tag = uuid.uuid4().hex[:6]
    user = registry.add_user(f"bench{tag}", "x", f"{tag}@example.org")
    experiment = registry.add_experiment(f"bench{tag}", f"bench{tag}")
    logs = home / f"logs{tag}"
    tree = TaskSpec(
        "bench", "RunPhase", mode=PARALLEL,
        children=[
            TaskSpec(f"job{i:06d}", "RunJob", job=JobSpec(f"job{i:06d}", cmd, log_dir=logs))
            for i, cmd in enumerate(commands)
        ],
    )  # fmt: skip
    with Session(tm.utils.main_engine(), expire_on_commit=False) as session:
        submission = tm.Submission(program="bench", experiment_id=experiment, user_id=user)
        session.add(submission)
        root = persist(session, submission, tree)
        session.commit()
        backend = LocalBackend(2)
        start = time.perf_counter()
        Engine(session, backend, root).run(interval=0.005)
        elapsed = time.perf_counter() - start
        backend.close()
        submission_id = submission.id
    # read back what was persisted, in a fresh session
    with Session(tm.utils.main_engine()) as session:
        rows = session.execute(
            sa.select(tm.Task.name, tm.Task.state, tm.Task.exitcode).where(
                tm.Task.submission_id == submission_id, tm.Task.is_collection.is_(False)
            )
        ).all()
    codes = {name: (code if state == "TERMINATED" else None) for name, state, code in rows}
    dispose_engines()
    return elapsed, codes


def bench_throughput(home: Path, db_url: str, n: int, runs: int) -> dict:
    rates, lost = [], 0
    for _ in range(runs):
        elapsed, codes = run_jobs(home, db_url, [["true"]] * n)
        lost += sum(1 for c in codes.values() if c != 0) + (n - len(codes))
        rates.append(n / elapsed)
        print(f"  {n} jobs: {n / elapsed:.1f} jobs/s", file=sys.stderr)
    return {
        "jobs": n,
        "jobs_per_s": round(statistics.median(rates), 1),
        "min": round(min(rates), 1),
        "max": round(max(rates), 1),
        "lost_exit_codes": lost,
    }


def bench_failures(home: Path, db_url: str, n: int) -> dict:
    rng = random.Random(1)
    failing = set(rng.sample(range(n), n // 100))
    commands = [["sh", "-c", "exit 3"] if i in failing else ["true"] for i in range(n)]
    elapsed, codes = run_jobs(home, db_url, commands)
    expected = {f"job{i:06d}" for i in failing}
    recorded = {name for name, code in codes.items() if code == 3}
    wrong = sum(1 for name, code in codes.items() if name not in expected and code != 0)
    print(f"  {n} jobs with {len(failing)} failing: {n / elapsed:.1f} jobs/s", file=sys.stderr)
    return {"jobs": n, "failing": len(failing), "failures_recorded": len(recorded & expected),
            "missing_or_wrong": len(expected - recorded) + wrong + (n - len(codes)),
            "jobs_per_s": round(n / elapsed, 1)}  # fmt: skip


def bench_submitit(n: int = 20) -> dict:
    try:
        import submitit
    except ImportError:
        return {"skipped": "submitit not installed (pip install -e '.[bench]')"}
    with tempfile.TemporaryDirectory() as folder:
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=5)
        start = time.perf_counter()
        jobs = [executor.submit(subprocess.run, ["/bin/echo", str(i)]) for i in range(n)]
        for job in jobs:
            job.result()
        elapsed = time.perf_counter() - start
    print(f"  submitit: {n} jobs in {elapsed:.1f} s", file=sys.stderr)
    return {"peer": f"submitit {submitit.__version__} LocalExecutor", "jobs": n,
            "seconds": round(elapsed, 2), "jobs_per_s": round(n / elapsed, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--many", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="admin URL of a PostgreSQL server")
    args = parser.parse_args()
    result: dict = {"benchmark": "engine", "cores": 2, "goal_jobs_per_s": GOAL_JOBS_PER_S}
    with tempfile.TemporaryDirectory(prefix="tm-engine-") as tmp:
        home = Path(tmp)
        print("SQLite:", file=sys.stderr)
        result["sqlite"] = bench_throughput(
            home / "s", f"sqlite:///{home}/s/tm.db", args.jobs, args.runs
        )
        with scratch_pg_database(args.pg_url) as url:
            print("PostgreSQL:", file=sys.stderr)
            result["postgresql"] = bench_throughput(home / "p", url, args.jobs, args.runs)
        if args.many:
            print("failures:", file=sys.stderr)
            result["failures"] = bench_failures(home / "f", f"sqlite:///{home}/f/tm.db", args.many)
    result["peer"] = bench_submitit()
    peer_rate = result["peer"].get("jobs_per_s")
    if peer_rate:
        result["ratio_vs_submitit"] = round(result["sqlite"]["jobs_per_s"] / peer_rate, 1)
    result["meets_goal"] = (
        min(result["sqlite"]["jobs_per_s"], result["postgresql"]["jobs_per_s"]) >= GOAL_JOBS_PER_S
        and result["sqlite"]["lost_exit_codes"] == 0
        and result["postgresql"]["lost_exit_codes"] == 0
        and result.get("failures", {}).get("missing_or_wrong", 0) == 0
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
