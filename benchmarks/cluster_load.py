"""Load test: many concurrent cluster jobs reading and writing like jterator jobs.

N jobs of one SLURM array run at once on the four-node test cluster of
``slurm/multinode/`` (128 CPUs declared per node, so up to 512 at once). Each
job does what a jterator job does with the database (issue 17):

1. **read**: one short session reads its inputs (the experiment, the object
   type with its features and layers), through TissueMAPS' own engine
   (:func:`tmlib.models.session.use_job_connections`: no pool, connections
   retried with back-off);
2. **compute**: holds no connection for ``--compute-s`` seconds;
3. **write**: ``--objects`` objects with outlines and ``--features`` feature
   values each, through jterator's own :func:`tmlib.jterator.saving.save_prepared`
   (the features in short transactions, then one write transaction).

It runs once with the jobs connecting straight to a PostgreSQL that allows 20
connections (``--direct-url``, port 5434) and once through PgBouncer in
transaction pooling in front of it (``--pgbouncer-url``, port 6434), and
reports per run: failed jobs (goal 0 both ways), the peak of jobs running at
once (``squeue``), of jobs talking to the database at once, of PostgreSQL
connections (``pg_stat_activity``) and of PgBouncer clients (``SHOW POOLS``),
connection retries, read and write latencies and the objects written per second.

This machine has 2 cores and 24 GB: 500 Python processes of ~45 MB each do not
fit, and 500 interpreters starting at once would take minutes of CPU. So a job's
Python runs only while it talks to the database (one process to read, one to
write) and its compute is a ``sleep`` in the job's shell, and the jobs' starts are
spread over ``--spread-s`` (default 0.4 s per job); every job is running during
the compute window, so all N are concurrent jobs of the cluster. Peaks are
measured, not assumed.

Needs root's services: ``slurm/multinode/start.sh`` and
``slurm/multinode/pgbouncer_start.sh``.

Usage::

    python benchmarks/cluster_load.py [--jobs 100 500] [--via direct pgbouncer]

The last line of the output is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import scratch_pg_database  # noqa: E402

HERE = Path(__file__).resolve()
#: the object type db_writes.synthetic_site makes (one type)
OBJECT_TYPE = "Objects0"
SLURM_CONF = "/etc/slurm-multi/slurm.conf"
DIRECT_URL = "postgresql+psycopg2://postgres@127.0.0.1:5434/postgres"
PGBOUNCER_URL = "postgresql+psycopg2://postgres@127.0.0.1:6434/postgres"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------- the job


def job_read(experiment_id: int) -> dict:
    """Read a job's inputs in one short session; the names of what was read."""
    import tmlib.models as tm_models

    with tm_models.utils.ExperimentSession(experiment_id) as session:
        experiment = session.scalars(sa.select(tm_models.Experiment)).one()
        kind = session.scalars(
            sa.select(tm_models.MapobjectType).where(tm_models.MapobjectType.name == OBJECT_TYPE)
        ).one()
        return {
            "experiment": experiment.id,
            "layers": [layer.id for layer in kind.layers],
            "features": len(kind.features),
        }


class _RetryCounter(logging.Handler):
    """Counts the connection retries TissueMAPS logs (``tmlib.models.connect``)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0
        logger = logging.getLogger("tmlib.models.connect")
        logger.addHandler(self)
        logger.setLevel(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def run_job_phase(args: argparse.Namespace) -> None:
    """One phase of one job (``job read`` or ``job write``); writes its record as JSON."""
    start = time.time()
    from tmlib.models.session import use_job_connections

    use_job_connections()
    retries = _RetryCounter()
    imported = time.time()
    if args.phase == "read":
        found = job_read(args.experiment)
        record = {"read": found}
    else:
        import numpy as np
        from db_writes import synthetic_site  # a site's objects as jterator prepares them

        from tmlib.jterator.saving import save_prepared

        shape = argparse.Namespace(types=1, objects=args.objects, features=args.features,
                                   vertices=args.vertices)  # fmt: skip
        prepared = synthetic_site(np.random.default_rng(args.index), args.index, shape)
        prepared_at = time.time()
        written = save_prepared(args.experiment, prepared)
        record = {"objects": written, "prepare_s": prepared_at - imported}
        imported = prepared_at
    end = time.time()
    record.update(
        phase=args.phase, start=start, db_start=imported, db_end=end, retries=retries.count
    )
    path = Path(args.out) / f"{args.index}.{args.phase}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.rename(path)


# ---------------------------------------------------------- the submission

JOB_SCRIPT = """#!/bin/bash
# one load-test job: read, compute (a sleep: no connection, no Python), write
i=$SLURM_ARRAY_TASK_ID
out={out}
started=$(date +%s%3N)  # milliseconds
printf '{{"start": %s.%s, "node": "%s"}}' "${{started::-3}}" "${{started: -3}}" \\
    "$SLURMD_NODENAME" > "$out/$i.job.json"
phase() {{ {python} {script} job "$1" --experiment {experiment} --index "$i" --out "$out" \\
    --objects {objects} --features {features} --vertices {vertices}; }}
wait_until() {{  # $1: milliseconds since the epoch
    local ms=$(( $1 - $(date +%s%3N) ))
    if (( ms > 0 )); then sleep "$(( ms / 1000 )).$(printf %03d $(( ms % 1000 )))"; fi
}}
offset=$(( i * {spread_ms} / {jobs} ))
wait_until $(( started + offset ))
phase read || {{ echo "read $?" > "$out/$i.failed"; exit 1; }}
wait_until $(( started + {spread_ms} + {compute_ms} + offset ))
phase write || {{ echo "write $?" > "$out/$i.failed"; exit 1; }}
date +%s.%N > "$out/$i.done"
"""


def database_url(url: str, database: str) -> str:
    return sa.engine.make_url(url).set(database=database).render_as_string(hide_password=False)


def prepare_experiment(job_url: str, home: Path) -> int:
    """A user, an experiment and its object type with one segmentation layer; its id."""
    from db_writes import setup_experiment

    os.environ.update(TMAPS_HOME=str(home), TMAPS_DB_URL=job_url,
                      TMAPS_CONFIG_FILE=str(home / "none.cfg"))  # fmt: skip
    return setup_experiment(argparse.Namespace(types=1))


class Monitor(threading.Thread):
    """Samples, every `interval` seconds: SLURM tasks running, PostgreSQL connections to
    the database, PgBouncer's clients and server connections for it."""

    def __init__(self, array_job: str, admin_url: str, database: str, pgbouncer_url: str,
                 interval: float = 0.5) -> None:  # fmt: skip
        super().__init__(daemon=True)
        self.array_job, self.database, self.interval = array_job, database, interval
        self.admin = sa.create_engine(admin_url, poolclass=sa.pool.StaticPool)
        self.pgbouncer = sa.engine.make_url(pgbouncer_url)
        self.stop = threading.Event()
        self.peaks = {"running_jobs": 0, "pg_connections": 0, "pgbouncer_clients": 0,
                      "pgbouncer_waiting": 0, "pgbouncer_servers": 0,
                      "memory_used_mb": 0}  # fmt: skip

    def _pools(self) -> dict[str, int]:
        import psycopg2

        u = self.pgbouncer
        conn = psycopg2.connect(host=u.host, port=u.port, user=u.username, dbname="pgbouncer")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SHOW POOLS")
                names = [c.name for c in cur.description]
                for row in cur.fetchall():
                    pool = dict(zip(names, row, strict=True))
                    if pool["database"] == self.database:
                        return {
                            "pgbouncer_clients": pool["cl_active"] + pool["cl_waiting"],
                            "pgbouncer_waiting": pool["cl_waiting"],
                            "pgbouncer_servers": pool["sv_active"] + pool["sv_idle"]
                            + pool["sv_used"] + pool["sv_tested"] + pool["sv_login"],
                        }  # fmt: skip
        finally:
            conn.close()
        return {}

    def run(self) -> None:
        env = {**os.environ, "SLURM_CONF": SLURM_CONF}
        while not self.stop.is_set():
            sample: dict[str, int] = {"memory_used_mb": _memory_used_mb()}
            squeue = subprocess.run(
                ["squeue", "-h", "-r", "-t", "R", "-j", self.array_job, "-o", "%i"],
                capture_output=True, text=True, env=env, check=False,
            )  # fmt: skip
            if squeue.returncode == 0:
                sample["running_jobs"] = len(squeue.stdout.split())
            # a full or restarting server, PgBouncer busy: no sample this time
            with contextlib.suppress(sa.exc.DBAPIError):
                sample["pg_connections"] = self._pg_connections()
            with contextlib.suppress(Exception):
                sample.update(self._pools())
            for key, value in sample.items():
                self.peaks[key] = max(self.peaks[key], value)
            self.stop.wait(self.interval)
        self.admin.dispose()

    def _pg_connections(self) -> int:
        # one connection kept open (while the jobs fill the server it could not be had)
        try:
            with self.admin.connect() as conn:
                count = conn.execute(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"),
                    {"d": self.database},
                ).scalar_one()
                conn.commit()
                return count
        except sa.exc.DBAPIError:
            self.admin.dispose()  # a new connection next time
            raise


def _memory_used_mb() -> int:
    """This machine's memory in use (MemTotal - MemAvailable), MB."""
    info = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, value = line.split(":")
        info[name] = int(value.split()[0])
    return (info["MemTotal"] - info["MemAvailable"]) // 1024


def _peak_overlap(intervals: list[tuple[float, float]]) -> int:
    """The most intervals that overlap at one time."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    peak = current = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 3),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
        "max": round(ordered[-1], 3),
    }


def run_load(args: argparse.Namespace, jobs: int, via: str) -> dict:
    """One load run of `jobs` concurrent jobs connecting `via` direct or pgbouncer."""
    spread = args.spread_s if args.spread_s is not None else 0.4 * jobs
    with tempfile.TemporaryDirectory(prefix="tm-load-") as tmp, \
            scratch_pg_database(args.direct_url) as admin_db_url:  # fmt: skip
        database = sa.engine.make_url(admin_db_url).database
        job_url = database_url(args.pgbouncer_url if via == "pgbouncer" else args.direct_url,
                               database)  # fmt: skip
        home, out = Path(tmp) / "home", Path(tmp) / "out"
        home.mkdir()
        (out / "logs").mkdir(parents=True)
        experiment_id = prepare_experiment(job_url, home)
        script = Path(tmp) / "job.sh"
        script.write_text(JOB_SCRIPT.format(
            out=out, python=sys.executable, script=HERE, experiment=experiment_id,
            objects=args.objects, features=args.features,
            vertices=" ".join(map(str, args.vertices)),
            jobs=jobs, spread_ms=round(spread * 1000), compute_ms=round(args.compute_s * 1000),
        ))  # fmt: skip
        env = {**os.environ, "SLURM_CONF": SLURM_CONF, "OPENBLAS_NUM_THREADS": "1",
               "OMP_NUM_THREADS": "1"}  # fmt: skip
        log(f"{jobs} jobs via {via}: submitting (starts spread over {spread:.0f} s, "
            f"{args.compute_s:.0f} s of compute each)")  # fmt: skip
        began = time.time()
        submitted = subprocess.run(
            ["sbatch", "--parsable", f"--array=0-{jobs - 1}", f"--partition={args.partition}",
             "--ntasks=1", "--cpus-per-task=1", "--mem-per-cpu=200M", "--no-requeue",
             f"--output={out / 'logs' / '%a.log'}", "--export=ALL", "--job-name=tm-load",
             str(script)],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        if submitted.returncode != 0:
            sys.exit(f"cluster_load: sbatch failed: {submitted.stderr.strip()}")
        array_job = submitted.stdout.strip().split(";")[0]
        monitor = Monitor(array_job, args.direct_url, database, args.pgbouncer_url)
        monitor.start()
        deadline = began + spread * 2 + args.compute_s + args.timeout_s
        try:
            while time.time() < deadline:
                ended = len(list(out.glob("*.done"))) + len(list(out.glob("*.failed")))
                queue = subprocess.run(
                    ["squeue", "-h", "-r", "-j", array_job, "-o", "%i"],
                    capture_output=True, text=True, env=env, check=False,
                )  # fmt: skip
                if ended >= jobs or (queue.returncode == 0 and not queue.stdout.strip()):
                    break
                time.sleep(2)
            else:
                subprocess.run(["scancel", array_job], env=env, check=False)
                log(f"cluster_load: {jobs} jobs via {via} did not end in time: cancelled")
        finally:
            monitor.stop.set()
            monitor.join()
        wall = time.time() - began
        result = summarise(out, jobs, wall)
        result.update(via=via, spread_s=round(spread, 1), **{f"peak_{k}": v
                      for k, v in monitor.peaks.items()})  # fmt: skip
        result["rows_check"] = check_rows(admin_db_url, experiment_id, jobs * args.objects)
        log(f"{jobs} jobs via {via}: {result['failed']} failed, peak {result['peak_running_jobs']}"
            f" running at once, {result['peak_pg_connections']} PostgreSQL connections, "
            f"{result['retries']} retries, {result['objects_per_s']} objects/s")  # fmt: skip
        return result


def summarise(out: Path, jobs: int, wall: float) -> dict:
    def load(path: Path) -> dict:
        return json.loads(path.read_text())

    reads = {int(p.name.split(".")[0]): load(p) for p in out.glob("*.read.json")}
    writes = {int(p.name.split(".")[0]): load(p) for p in out.glob("*.write.json")}
    starts = {int(p.name.split(".")[0]): load(p) for p in out.glob("*.job.json")}
    done = {int(p.name.split(".")[0]): float(p.read_text()) for p in out.glob("*.done")}
    failed = sorted(set(range(jobs)) - set(done))
    errors = []
    for index in failed[:3]:
        log_file = out / "logs" / f"{index}.log"
        lines = log_file.read_text().strip().splitlines() if log_file.exists() else []
        errors.append(f"job {index}: " + (lines[-1] if lines else "no log"))
    db_phases = [(r["db_start"], r["db_end"]) for r in [*reads.values(), *writes.values()]]
    write_window = (
        max(w["db_end"] for w in writes.values()) - min(w["db_start"] for w in writes.values())
        if writes else 0.0
    )  # fmt: skip
    objects = sum(w["objects"] for w in writes.values())
    return {
        "jobs": jobs,
        "failed": len(failed),
        "errors": errors,
        "wall_s": round(wall, 1),
        "nodes": dict(sorted(Counter(s["node"] for s in starts.values()).items())),
        "peak_jobs_alive": _peak_overlap([(starts[i]["start"], done[i]) for i in done]),
        "peak_jobs_in_db": _peak_overlap(db_phases),
        "retries": sum(r["retries"] for r in [*reads.values(), *writes.values()]),
        "jobs_that_retried": len(
            {i for i, r in [*reads.items(), *writes.items()] if r["retries"]}
        ),  # fmt: skip
        "read_s": _quantiles([r["db_end"] - r["db_start"] for r in reads.values()]),
        "write_s": _quantiles([w["db_end"] - w["db_start"] for w in writes.values()]),
        "objects": objects,
        "objects_per_s": round(objects / write_window, 1) if write_window else None,
    }


def check_rows(admin_db_url: str, experiment_id: int, expected: int) -> dict:
    """Objects, outlines and feature values in the database: each exactly `expected`."""
    schema = f"experiment_{experiment_id}"
    engine = sa.create_engine(admin_db_url)
    with engine.connect() as conn:
        counts = {
            table: conn.execute(sa.text(f'SELECT count(*) FROM "{schema}".{table}')).scalar_one()
            for table in ("mapobjects", "mapobject_segmentations", "feature_values")
        }
    engine.dispose()
    return {**counts, "expected": expected, "ok": all(v == expected for v in counts.values())}


def check_services(args: argparse.Namespace) -> None:
    env = {**os.environ, "SLURM_CONF": SLURM_CONF}
    nodes = subprocess.run(["sinfo", "-h", "-N", "-p", args.partition, "-o", "%N %t"],
                           capture_output=True, text=True, env=env, check=False)  # fmt: skip
    if nodes.returncode != 0 or not nodes.stdout.strip():
        sys.exit("cluster_load: the four-node cluster does not answer: run "
                 "slurm/multinode/start.sh (as root)")  # fmt: skip
    for url in (args.direct_url, args.pgbouncer_url):
        try:
            engine = sa.create_engine(url)
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            engine.dispose()
        except sa.exc.OperationalError as err:
            sys.exit(f"cluster_load: cannot connect to {url}: {str(err).splitlines()[0]}; run "
                     "slurm/multinode/pgbouncer_start.sh (as root)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    job = sub.add_parser("job", help="one phase of one job (run by the job script)")
    job.add_argument("phase", choices=["read", "write"])
    job.add_argument("--experiment", type=int, required=True)
    job.add_argument("--index", type=int, required=True)
    job.add_argument("--out", required=True)
    for p in (parser, job):
        p.add_argument("--objects", type=int, default=300, help="objects each job writes")
        p.add_argument("--features", type=int, default=50, help="features per object")
        p.add_argument("--vertices", type=int, nargs=2, default=[30, 60], metavar=("MIN", "MAX"),
                       help="vertices per outline")  # fmt: skip
    parser.add_argument("--jobs", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--via", nargs="+", choices=["direct", "pgbouncer"],
                        default=["direct", "pgbouncer"])  # fmt: skip
    parser.add_argument("--compute-s", type=float, default=60.0,
                        help="seconds each job computes without a connection")  # fmt: skip
    parser.add_argument("--spread-s", type=float, default=None,
                        help="the jobs' reads start spread over this many seconds "
                        "(default 0.4 s per job)")  # fmt: skip
    parser.add_argument("--timeout-s", type=float, default=600.0,
                        help="give up this long after the last job should have ended")  # fmt: skip
    parser.add_argument("--partition", default="multi")
    parser.add_argument("--direct-url", default=DIRECT_URL)
    parser.add_argument("--pgbouncer-url", default=PGBOUNCER_URL)
    args = parser.parse_args()
    if args.command == "job":
        run_job_phase(args)
        return
    check_services(args)
    runs = []
    for jobs in args.jobs:
        for via in args.via:
            runs.append(run_load(args, jobs, via))
            log(json.dumps(runs[-1]))  # each run's figures, should a later run fail
    biggest = max(args.jobs)
    through = [r for r in runs if r["via"] == "pgbouncer" and r["jobs"] == biggest]
    print(json.dumps({
        "benchmark": "cluster_load",
        "objects_per_job": args.objects,
        "features": args.features,
        "compute_s": args.compute_s,
        "runs": runs,
        "goal": f"0 failed jobs at {biggest} concurrent, direct and through PgBouncer",
        "meets_goal": all(r["failed"] == 0 and r["rows_check"]["ok"] for r in runs)
        and bool(through) and through[0]["peak_running_jobs"] >= biggest,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
