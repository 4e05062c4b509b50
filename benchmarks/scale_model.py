"""Scale model: the wall time of a whole 384-well plate on a cluster, from measured costs.

Measures on this machine, then predicts:

1. **Work of every step.** Two simulated CellVoyager plates of camera-sized images
   (``--sites`` 2 and 8 sites of 2160x2560 pixels x 4 channels, as the target plate) go
   through ``tm_workflow submit`` with the default description (local backend). The jobs'
   own wall times (``tasks.time``) give, per step, the core-seconds of its run jobs per site
   and the seconds of its serial parts (init, collect) as a fixed part plus a part per site
   (a line through the two plates). The serial parts are fitted instead on two plates of many
   small images (``--count-sites`` 16 and 144 sites of ``--count-size`` 256x256): their work
   grows with the numbers of sites and images, not with pixels, and a wide range of sites
   keeps the slope out of the noise; corilla's collect, which adds one camera-sized partial
   sum per run job, is costed per run job (at most ``MAX_PARTS`` a channel).
2. **Database writes.** The objects jterator wrote per site, and how fast this machine's
   PostgreSQL takes such sites through jterator's own write path (``benchmarks/db_writes.py``,
   ``--db-writers`` job processes), also per CPU second of PostgreSQL's processes: the
   cluster's database server is modelled as ``--db-cores`` such cores.
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
from common import DEFAULT_PG_URL, registered_plate, tm  # noqa: E402

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
    #: corilla's collect grows with its partial statistics (run jobs), not with sites
    serial_s_per_run_job: float = 0.0
    run_jobs: tuple[int, int] = (0, 0)


@dataclass
class Measurement:
    sites: tuple[int, int]
    workflow_wall_s: tuple[float, float]
    steps: list[StepCost]
    raw_bytes_per_site: float
    extracted_bytes_per_site: float
    pyramid_bytes_per_site: float
    db_objects_per_site: float
    #: jterator's write path on this machine (writers and PostgreSQL share its cores)
    db_objects_per_s: float
    #: the same per CPU second of PostgreSQL's processes: what a database server's core takes
    db_objects_per_pg_cpu_s: float | None
    db_writers: int


def directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def step_totals(experiment_id: int) -> dict[str, dict[str, float]]:
    """Per step of the experiment's last workflow submission: the seconds of its run jobs
    (core-seconds), of its init and of its collect job, and its number of run jobs, from the
    jobs' own wall times (``tasks.time``)."""
    import tmlib.models as tm
    from tmlib.workflow.manager import last_submission

    totals: dict[str, dict[str, float]] = {}
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
            cost = totals.setdefault(match["step"], {"run": 0.0, "init": 0.0, "collect": 0.0,
                                                     "jobs": 0})  # fmt: skip
            cost[match["phase"]] += task.time
            cost["jobs"] += match["phase"] == "run"
    return totals


def fit(camera: tuple[dict, dict], sites: tuple[int, int], counts: tuple[dict, dict],
        count_sites: tuple[int, int]) -> list[StepCost]:  # fmt: skip
    """Per step: run core-seconds per site from the two camera-sized plates; the serial parts
    (init and collect) as a fixed part plus a part per site, fitted between the two plates of
    many small sites (their work depends on counts of sites and images, not on pixels); but
    corilla's collect per run job (it adds one partial sum of camera-sized images per job)."""
    (a, b), (c, d) = sites, count_sites
    zero = {"run": 0.0, "init": 0.0, "collect": 0.0, "jobs": 0}
    costs = []
    for step, large in camera[1].items():
        small = camera[0].get(step, zero)
        run_core_s_per_site = max((large["run"] - small["run"]) / (b - a), large["run"] / b / 4)
        few, many = counts[0].get(step, zero), counts[1].get(step, large)
        parts = ("init",) if step == "corilla" else ("init", "collect")
        serial_c = sum(few[part] for part in parts)
        serial_d = sum(many[part] for part in parts)
        slope = max((serial_d - serial_c) / (d - c), 0.0)
        per_job = large["collect"] / large["jobs"] if step == "corilla" and large["jobs"] else 0.0
        costs.append(
            StepCost(
                step=step,
                run_core_s_per_site=run_core_s_per_site,
                serial_s_fixed=max(serial_d - slope * d, 0.0),
                serial_s_per_site=slope,
                serial_s_per_run_job=per_job,
                run_jobs=(int(small["jobs"]), int(large["jobs"])),
            )
        )
    return costs


def corilla_partials(target_sites: int, cores: int) -> int:
    """corilla's run jobs on the target plate: about two per core, at most MAX_PARTS a channel."""
    from tmlib.workflow.steps.corilla import MAX_PARTS

    per_channel = min(target_sites, MAX_PARTS, max(1, 2 * cores // CHANNELS))
    return per_channel * CHANNELS


def segmented_objects(experiment_id: int) -> tuple[int, int, int]:
    """(objects, object types, features per object) that jterator wrote (not the static
    Plates/Wells/Sites of illuminati)."""
    import tmlib.models as tm
    from tmlib.workflow.steps.illuminati import STATIC_TYPES

    static = [name for name, _ in STATIC_TYPES]
    with tm.utils.ExperimentSession(experiment_id) as session:
        kinds = session.scalars(
            sa.select(tm.MapobjectType).where(tm.MapobjectType.name.not_in(static))
        ).all()
        objects = session.scalar(
            sa.select(sa.func.count()).where(
                tm.Mapobject.mapobject_type_id.in_([k.id for k in kinds])
            )
        )
        features = max((len(k.features) for k in kinds), default=0)
    return int(objects or 0), len(kinds), features


def postgres_cpu_s() -> float:
    """CPU seconds of this machine's PostgreSQL processes so far, ended backends included
    (the postmaster has reaped them: its children's times)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended
            continue
        if "(postgres)" not in text:
            continue
        fields = text.rsplit(")", 1)[1].split()
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / tick


def database_rate(objects: int, types: int, features: int, writers: int,
                  pg_url: str) -> dict:  # fmt: skip
    """How fast this machine's PostgreSQL takes a site's objects through jterator's own write
    path (``benchmarks/db_writes.py``: `writers` job processes), and per CPU second of
    PostgreSQL's own processes (which the model multiplies by the database server's cores)."""
    calls = 8
    before = postgres_cpu_s()
    output = tm(["python", str(Path(__file__).with_name("db_writes.py")),
                 "--writers", str(writers), "--objects", str(objects), "--types", str(types),
                 "--features", str(features), "--runs", "1", "--calls", str(calls),
                 "--pg-url", pg_url])  # fmt: skip
    pg_cpu = postgres_cpu_s() - before
    figures = json.loads(output.splitlines()[-1])["writers"][str(writers)]["auto"]
    # every writer writes its calls and a warm-up call, a site of objects x types each
    written = writers * (calls + 1) * objects * types
    return {
        "objects_per_s": figures["objects_per_s"],
        "objects_per_pg_cpu_s": written / pg_cpu if pg_cpu else None,
    }


def run_plate(tmp: Path, sites: int, size: str = IMAGE_SIZE
              ) -> tuple[float, dict, int, int, int, tuple[int, int, int]]:  # fmt: skip
    """Simulate, register and process a plate of `sites` sites; (wall s, step totals, bytes
    of the raw, extracted and pyramid images, (objects, types, features) of jterator)."""
    log(f"{sites} sites x {CHANNELS} channels of {size}: simulating and registering")
    tmp.mkdir()
    wells = 1 if sites <= 36 else -(-sites // 36)  # at most 36 sites a well, as the target
    experiment_id = int(
        registered_plate(
            tmp, "scale", wells=wells, sites=sites // wells, size=size, channels=CHANNELS
        )  # fmt: skip
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
    return wall, totals, raw, extracted, pyramids, segmented_objects(experiment_id)


def measure(tmp: Path, sites: tuple[int, int], count_sites: tuple[int, int], count_size: str,
            writers: int, pg_url: str) -> Measurement:  # fmt: skip
    wall_a, small, *_ = run_plate(tmp / "small", sites[0])
    wall_b, large, raw, extracted, pyramids, found = run_plate(tmp / "large", sites[1])
    few = run_plate(tmp / "few", count_sites[0], count_size)[1]
    many = run_plate(tmp / "many", count_sites[1], count_size)[1]
    objects, types, features = found
    per_type = max(round(objects / sites[1] / max(types, 1)), 1)
    log(f"PostgreSQL: jterator's writes of {per_type} objects x {types} types x {features} "
        f"features per site from {writers} writers")  # fmt: skip
    rate = database_rate(per_type, max(types, 1), max(features, 1), writers, pg_url)
    return Measurement(
        sites=sites,
        workflow_wall_s=(round(wall_a, 1), round(wall_b, 1)),
        steps=fit((small, large), sites, (few, many), count_sites),
        raw_bytes_per_site=raw / sites[1],
        extracted_bytes_per_site=extracted / sites[1],
        pyramid_bytes_per_site=pyramids / sites[1],
        db_objects_per_site=objects / sites[1],
        db_objects_per_s=rate["objects_per_s"],
        db_objects_per_pg_cpu_s=rate["objects_per_pg_cpu_s"],
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
    db_cores: int


def database_objects_per_s(m: Measurement, cluster: Cluster) -> float:
    """Objects per second the cluster's database server takes: PostgreSQL's own CPU cost
    per object, measured here, on `cluster.db_cores` cores at `cluster.efficiency`; never
    less than this 2-core machine took while it also ran the writers."""
    if not m.db_objects_per_pg_cpu_s:
        return m.db_objects_per_s
    server = m.db_objects_per_pg_cpu_s * cluster.db_cores * cluster.efficiency
    return max(server, m.db_objects_per_s)


def predict(m: Measurement, cluster: Cluster, target_sites: int) -> dict:
    """Predicted seconds of each step and of the plate on `cluster`, with bottlenecks."""
    cores = cluster.nodes * cluster.cores
    storage = cluster.storage_gb_s * 1e9
    steps = []
    for cost in m.steps:
        # the automatic batch size gives about two run jobs per core: two waves
        waves = 2
        # corilla runs at most MAX_PARTS jobs a channel, whatever the cores
        used = cores
        if cost.step == "corilla":
            used = min(cores, corilla_partials(target_sites, cores))
        compute = (
            cost.run_core_s_per_site * target_sites / used / cluster.efficiency
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
            m.db_objects_per_site * target_sites / database_objects_per_s(m, cluster)
            if cost.step == "jterator" else 0.0
        )  # fmt: skip
        limits = {"compute": compute, "storage": io, "database": database}
        bottleneck = max(limits, key=limits.__getitem__)
        serial = cost.serial_s_fixed + cost.serial_s_per_site * target_sites
        if cost.serial_s_per_run_job:
            serial += cost.serial_s_per_run_job * corilla_partials(target_sites, cores)
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
    parser.add_argument("--count-sites", type=int, nargs=2, default=[16, 144],
                        help="sites of the two plates of small images whose serial parts "
                        "(init, collect) are fitted")  # fmt: skip
    parser.add_argument("--count-size", default="256x256", help="image size of those plates")
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
    parser.add_argument("--db-writers", type=int, default=2,
                        help="concurrent writer processes in the database measurement")  # fmt: skip
    parser.add_argument("--db-cores", type=int, default=16,
                        help="cores of the cluster's PostgreSQL server")  # fmt: skip
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args()
    os.environ.setdefault("TMAPS_CORES", str(os.cpu_count() or 2))
    with tempfile.TemporaryDirectory(prefix="tm-scale-") as tmp:
        m = measure(Path(tmp), tuple(args.sites), tuple(args.count_sites), args.count_size,
                    args.db_writers, args.pg_url)  # fmt: skip
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
                args.db_cores,
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
                    "db_cores": args.db_cores,
                },  # fmt: skip
                "predictions": predictions,
                "goal_minutes_100x16": GOAL_S / 60,
                "meets_goal": None if goal is None else goal["minutes"] * 60 <= GOAL_S,
                "assumptions": [
                    "compute scales linearly with sites (independent per-site jobs)",
                    "serial parts (init, collect) cost a fixed part plus a part per site, "
                    "both fitted between the two measured plates; corilla's collect a part "
                    "per partial statistic (run job), at most MAX_PARTS per channel",
                    "run jobs: core-seconds per site from the two plates; two waves per step",
                    "cluster cores as fast as this machine's",
                    "one PostgreSQL server of --db-cores cores takes jterator's writes at the "
                    "PostgreSQL CPU cost per object measured here (jterator's own write path, "
                    "benchmarks/db_writes.py), at --efficiency",
                    "storage bandwidth is the aggregate of the shared file system",
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
