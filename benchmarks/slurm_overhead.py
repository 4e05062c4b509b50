"""Benchmark: what the SLURM backend adds to 400 tasks of 1 s on the single-node cluster.

One parallel collection of N jobs (``sleep S``) goes through our engine and
:class:`~tmlib.workflow.jobs.slurm.SlurmBackend` (one ``sbatch --array``,
exit files, squeue with back-off) on the cluster of ``slurm/start.sh``. The
overhead is the wall time minus the ideal N x S / cores, cores being the
CPUs ``sinfo`` reports. Goal < 15 s (Fractal's SLURM runner took ~90 s
beyond compute for the same shape of work, reference/anchors.md).

Usage::

    python benchmarks/slurm_overhead.py [--tasks 400] [--seconds 1]

The last line of the output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_OVERHEAD_S = 15.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cluster_cpus() -> int:
    result = subprocess.run(["sinfo", "-h", "-o", "%C"], capture_output=True, text=True,
                            check=False, timeout=30)  # fmt: skip
    if result.returncode != 0:
        sys.exit(f"sinfo does not answer: {result.stderr.strip()}; run slurm/start.sh")
    return int(result.stdout.split()[0].split("/")[-1])  # allocated/idle/other/total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    cpus = cluster_cpus()
    with tempfile.TemporaryDirectory(prefix="tm-slurm-") as tmp:
        os.environ.update(TMAPS_HOME=f"{tmp}/home", TMAPS_DB_URL=f"sqlite:///{tmp}/tm.db",
                          TMAPS_CONFIG_FILE=f"{tmp}/none.cfg")  # fmt: skip
        from sqlalchemy.orm import Session

        import tmlib.models as tm
        from tmlib import registry
        from tmlib.config import load_settings
        from tmlib.models.session import main_engine
        from tmlib.workflow.jobs.engine import PARALLEL, Engine, Result, TaskSpec, persist
        from tmlib.workflow.jobs.job import JobSpec, Resources
        from tmlib.workflow.jobs.slurm import SlurmBackend

        user_id = registry.add_user("bench", "bench", "bench@example.org")
        experiment_id = registry.add_experiment("slurm", "bench")
        logs = Path(tmp) / "logs"
        jobs = [
            TaskSpec(f"sleep_{i:04d}", "RunJob", job=JobSpec(
                f"sleep_{i:04d}", ["sleep", str(args.seconds)],
                Resources(cores=1, memory=100, walltime=600), logs))
            for i in range(args.tasks)
        ]  # fmt: skip
        session = Session(main_engine(), expire_on_commit=False)
        submission = tm.Submission(program="bench", experiment_id=experiment_id, user_id=user_id)
        session.add(submission)
        root = persist(session, submission, TaskSpec("phase", "RunPhase", mode=PARALLEL,
                                                     children=jobs))  # fmt: skip
        session.commit()
        engine = Engine(session, SlurmBackend(load_settings()), root)
        log(f"{args.tasks} tasks of {args.seconds} s on {cpus} CPUs ...")
        start = time.perf_counter()
        result = engine.run()
        seconds = time.perf_counter() - start
        failed = sum(1 for t in root.children if t.exitcode != 0)
    ideal = args.tasks * args.seconds / cpus
    print(json.dumps({
        "benchmark": "slurm_overhead",
        "tasks": args.tasks,
        "task_seconds": args.seconds,
        "cluster_cpus": cpus,
        "wall_s": round(seconds, 2),
        "ideal_s": round(ideal, 2),
        "overhead_s": round(seconds - ideal, 2),
        "failed": failed,
        "all_ok": result is Result.OK,
        "goal_overhead_s": GOAL_OVERHEAD_S,
        "meets_goal": result is Result.OK and seconds - ideal < GOAL_OVERHEAD_S,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
