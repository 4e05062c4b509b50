"""Scale model: the wall time of a whole 384-well plate on a cluster, from measured costs.

Measures on this machine, then predicts:

1. **Work of every step.** Two simulated CellVoyager plates of camera-sized images
   (``--sites`` 2 and 8 sites of 2160x2560 pixels x 4 channels, as the target plate) go
   through ``tm_workflow submit`` with the default description (local backend). The jobs'
   own wall times (``tasks.time``) give, per step, the core-seconds of its run jobs per site
   and the seconds of its serial parts (init, collect) as a fixed part plus a part per site
   (a line through the two plates).
2. **Database writes.** Rows the workflow wrote into the experiment's tables per site, and
   the rate at which this machine's PostgreSQL takes such rows from ``--db-writers``
   concurrent writers (rows shaped like feature values, transactions of 1,000 rows).
3. **Bytes.** Per site: the raw images (imextract reads them), the extracted images
   (imextract writes them; corilla, illuminati and jterator read them) and the pyramids
   (illuminati writes them).

The model, for C nodes of K cores (``--nodes``, ``--cores``), per step: compute = run
core-seconds / (C x K) / ``--efficiency`` + SLURM's per-step overhead (``--slurm-step-s``:
sbatch, first start, polls) + two waves of per-task overhead (the automatic batch size makes
about two jobs per core); a step cannot be faster than its bytes through the shared storage
(``--storage-gb-s``, aggregate) or its rows through the one database; the slowest of the three
is the step's bottleneck, and the serial parts add to it. The target plate: ``--wells`` 384 x
``--target-sites`` 36 x 4 channels (about 600 GB of 16-bit images).

Usage::

    python benchmarks/scale_model.py [--sites 2 8] [--nodes 10 100] [--cores 16]

The last line of the output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_PG_URL, registered_plate, scratch_pg_database, tm  # noqa: E402

CHANNELS = 4
IMAGE_SIZE = "2160x2560"
#: the goal of issue 17: 100 nodes of 16 cores
GOAL_S = 30 * 60
#: task names: <step>_<phase>[-NN]_<index> (illuminati's run phases are run-NN)
_TASK = re.compile(r"^(?P<step>[a-z]+)_(?P<phase>init|run|collect)")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class StepCost:
    """Measured costs of one step: core-seconds of its run jobs per site, and seconds of its
    serial parts (init, collect) as a fixed part plus a part per site."""

    step: str
    run_core_s_per_site: float
    serial_s_fixed: float
    serial_s_per_site: float


@dataclass
class Measurement:
    sites: tuple[int, int]
    workflow_wall_s: tuple[float, float]
    steps: list[StepCost]
    raw_bytes_per_site: float
    extracted_bytes_per_site: float
    pyramid_bytes_per_site: float
    db_rows_per_site: float
    db_rows_per_s: float
    db_writers: int


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def step_totals(experiment_id: int) -> dict[str, tuple[float, float]]:
    """(run core-seconds, serial seconds) of each step of the experiment's last workflow
    submission, from the jobs' own wall times (``tasks.time``)."""
    import tmlib.models as tm
    from tmlib.workflow.manager import last_submission

    totals: dict[str, list[float]] = {}
    with tm.utils.MainSession() as session:
        submission = last_submission(session, experiment_id, "workflow")
        tasks = session.scalars(
            sa.select(tm.Task).where(
                tm.Task.submission_id == submission.id, tm.Task.is_collection.is_(False)
            )
        )
        for task in tasks:
            match = _TASK.match(task.name)
            if match is None or task.time is None:
                continue
            cost = totals.setdefault(match["step"], [0.0, 0.0])
            cost[0 if match["phase"] == "run" else 1] += task.time
    return {step: (run, serial) for step, (run, serial) in totals.items()}


def fit(small: dict, large: dict, sites: tuple[int, int]) -> list[StepCost]:
    """Costs per site (slopes between the two plates) and fixed serial costs (intercepts)."""
    a, b = sites
    costs = []
    for step in large:
        run_a, serial_a = small.get(step, (0.0, 0.0))
        run_b, serial_b = large[step]
        serial_slope = max((serial_b - serial_a) / (b - a), 0.0)
        costs.append(
            StepCost(
                step=step,
                run_core_s_per_site=max((run_b - run_a) / (b - a), run_b / b / 4),
                serial_s_fixed=max(serial_b - serial_slope * b, 0.0),
                serial_s_per_site=serial_slope,
            )
        )
    return costs


def experiment_rows(experiment_id: int) -> int:
    """Rows in the experiment's tables (what its jobs wrote into the database)."""
    import tmlib.models as tm

    with tm.utils.ExperimentSession(experiment_id) as session:
        tables = tm.ExperimentModel.metadata.sorted_tables
        return sum(
            session.scalar(sa.select(sa.func.count()).select_from(table)) or 0 for table in tables
        )


def database_rate(rows: int, writers: int, admin_url: str) -> float:
    """Rows per second PostgreSQL takes from `writers` concurrent jobs, each inserting rows
    shaped like feature values (id, 50 floats as an array) in transactions of 1,000 rows."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy.dialects import postgresql

    with scratch_pg_database(admin_url) as url:
        engine = sa.create_engine(url, pool_size=writers)
        table = sa.Table(
            "probe",
            sa.MetaData(),
            sa.Column("id", sa.BigInteger, primary_key=True),
            sa.Column("values", postgresql.ARRAY(sa.Float)),
        )
        table.metadata.create_all(engine)
        values = [float(n) for n in range(50)]
        per_writer = rows // writers

        def write(writer: int) -> None:
            first = writer * per_writer
            for start in range(first, first + per_writer, 1000):
                chunk = [{"id": i, "values": values} for i in range(start, start + 1000)]
                with engine.begin() as conn:
                    conn.execute(table.insert(), chunk)

        begin = time.perf_counter()
        with ThreadPoolExecutor(writers) as pool:
            list(pool.map(write, range(writers)))
        elapsed = time.perf_counter() - begin
        engine.dispose()
    return per_writer * writers / elapsed


def run_plate(tmp: Path, sites: int) -> tuple[float, dict, int, int, int, int]:
    """Simulate, register and process a plate of `sites` sites; (wall s, step totals, bytes
    of the raw, extracted and pyramid images, database rows)."""
    log(f"{sites} sites x {CHANNELS} channels of {IMAGE_SIZE}: simulating and registering")
    tmp.mkdir()
    experiment_id = int(
        registered_plate(tmp, "scale", wells=1, sites=sites, size=IMAGE_SIZE, channels=CHANNELS)
    )
    raw = directory_bytes(tmp / "plate") - directory_bytes(tmp / "plate" / "ground_truth")
    start = time.perf_counter()
    tm(["tm_workflow", str(experiment_id), "submit"])
    wall = time.perf_counter() - start
    log(f"{sites} sites: the workflow (default description, local backend) took {wall:.1f} s")
    channels = list((tmp / "home" / "experiments").glob("*/channels/*"))
    extracted = sum(directory_bytes(c / "images") for c in channels)
    pyramids = sum(directory_bytes(c / "layers") for c in channels)
    totals = step_totals(experiment_id)
    return wall, totals, raw, extracted, pyramids, experiment_rows(experiment_id)


def measure(tmp: Path, sites: tuple[int, int], probe_rows: int, writers: int,
            admin_url: str) -> Measurement:  # fmt: skip
    wall_a, small, *_ = run_plate(tmp / "small", sites[0])
    wall_b, large, raw, extracted, pyramids, rows = run_plate(tmp / "large", sites[1])
    log(f"PostgreSQL: {probe_rows} rows from {writers} writers")
    return Measurement(
        sites=sites,
        workflow_wall_s=(round(wall_a, 1), round(wall_b, 1)),
        steps=fit(small, large, sites),
        raw_bytes_per_site=raw / sites[1],
        extracted_bytes_per_site=extracted / sites[1],
        pyramid_bytes_per_site=pyramids / sites[1],
        db_rows_per_site=rows / sites[1],
        db_rows_per_s=database_rate(probe_rows, writers, admin_url),
        db_writers=writers,
    )


@dataclass
class Cluster:
    nodes: int
    cores: int
    storage_gb_s: float
    slurm_step_s: float
    slurm_task_s: float
    efficiency: float


def predict(m: Measurement, cluster: Cluster, target_sites: int) -> dict:
    """Predicted seconds of each step and of the plate on `cluster`, with bottlenecks."""
    cores = cluster.nodes * cluster.cores
    storage = cluster.storage_gb_s * 1e9
    steps = []
    for cost in m.steps:
        # the automatic batch size gives about two run jobs per core: two waves
        waves = 2
        compute = (
            cost.run_core_s_per_site * target_sites / cores / cluster.efficiency
            + cluster.slurm_step_s
            + cluster.slurm_task_s * waves
        )
        moved = {
            "imextract": m.raw_bytes_per_site + m.extracted_bytes_per_site,
            "corilla": m.extracted_bytes_per_site,
            "illuminati": m.extracted_bytes_per_site + m.pyramid_bytes_per_site,
            "jterator": m.extracted_bytes_per_site,
        }.get(cost.step, 0.0) * target_sites
        io = moved / storage
        # jterator writes the objects and features; the other steps few rows
        database = (
            m.db_rows_per_site * target_sites / m.db_rows_per_s if cost.step == "jterator" else 0.0
        )
        limits = {"compute": compute, "storage": io, "database": database}
        bottleneck = max(limits, key=limits.__getitem__)
        serial = cost.serial_s_fixed + cost.serial_s_per_site * target_sites
        limiting = "serial" if serial > limits[bottleneck] else bottleneck
        steps.append(
            {
                "step": cost.step,
                "seconds": round(limits[bottleneck] + serial, 1),
                "bottleneck": limiting,
                **{f"{k}_s": round(v, 1) for k, v in limits.items()},
                "serial_s": round(serial, 1),
            }
        )
    total = sum(s["seconds"] for s in steps)
    return {
        "nodes": cluster.nodes,
        "cores_per_node": cluster.cores,
        "minutes": round(total / 60, 1),
        "steps": steps,
        "saturates_first": max(steps, key=lambda s: s["seconds"])["bottleneck"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs=2, default=[2, 8],
                        help="sites of the two plates measured (4 channels each)")  # fmt: skip
    parser.add_argument("--wells", type=int, default=384, help="wells of the target plate")
    parser.add_argument("--target-sites", type=int, default=36, help="sites per target well")
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--cores", type=int, default=16, help="cores per node")
    parser.add_argument("--storage-gb-s", type=float, default=5.0,
                        help="aggregate bandwidth of the shared file system, GB/s")  # fmt: skip
    parser.add_argument("--slurm-step-s", type=float, default=15.0,
                        help="SLURM's overhead per step (sbatch, first start, polls)")  # fmt: skip
    parser.add_argument("--slurm-task-s", type=float, default=0.07,
                        help="SLURM's overhead per task and core (13.8 s for 400 tasks on 2 "
                        "cores, benchmarks/slurm_overhead.py)")  # fmt: skip
    parser.add_argument("--efficiency", type=float, default=0.8,
                        help="share of core time spent in jobs (waves, stragglers)")  # fmt: skip
    parser.add_argument("--db-probe-rows", type=int, default=200_000)
    parser.add_argument("--db-writers", type=int, default=4, help="concurrent writers")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args()
    os.environ.setdefault("TMAPS_CORES", str(os.cpu_count() or 2))
    with tempfile.TemporaryDirectory(prefix="tm-scale-") as tmp:
        m = measure(Path(tmp), tuple(args.sites), args.db_probe_rows, args.db_writers, args.pg_url)
    target_sites = args.wells * args.target_sites
    predictions = [
        predict(
            m,
            Cluster(
                n,
                args.cores,
                args.storage_gb_s,
                args.slurm_step_s,
                args.slurm_task_s,
                args.efficiency,
            ),
            target_sites,
        )  # fmt: skip
        for n in args.nodes
    ]
    for p in predictions:
        log(f"{p['nodes']:>4} nodes x {p['cores_per_node']} cores: {p['minutes']} min "
            f"(saturates first: {p['saturates_first']})")  # fmt: skip
    goal = next((p for p in predictions if p["nodes"] == 100 and p["cores_per_node"] == 16), None)
    print(
        json.dumps(
            {
                "benchmark": "scale_model",
                "target": {
                    "wells": args.wells,
                    "sites_per_well": args.target_sites,
                    "channels": CHANNELS,
                    "image": IMAGE_SIZE,
                    "raw_gb": round(m.raw_bytes_per_site * target_sites / 1e9, 1),
                },  # fmt: skip
                "measured": asdict(m),
                "cluster": {
                    "storage_gb_s": args.storage_gb_s,
                    "slurm_step_s": args.slurm_step_s,
                    "slurm_task_s": args.slurm_task_s,
                    "efficiency": args.efficiency,
                },  # fmt: skip
                "predictions": predictions,
                "goal_minutes_100x16": GOAL_S / 60,
                "meets_goal": None if goal is None else goal["minutes"] * 60 <= GOAL_S,
                "assumptions": [
                    "compute scales linearly with sites (independent per-site jobs)",
                    "serial parts (init, collect) cost a fixed part plus a part per site, "
                    "both fitted between the two measured plates",
                    "run jobs: core-seconds per site from the two plates; two waves per step",
                    "cluster cores as fast as this machine's",
                    "one PostgreSQL server takes every write at the measured rate",
                    "storage bandwidth is the aggregate of the shared file system",
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
