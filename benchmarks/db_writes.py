"""How fast jterator's writes go into PostgreSQL: W writer processes, each saving sites.

The write path of a jterator job (:func:`tmlib.jterator.saving.save_prepared`) on a
scratch PostgreSQL database with a real experiment schema: ``--writers`` processes
(each a job: no connection kept between sessions) call ``save_prepared`` ``--calls``
times, each time with ``--sites-per-call`` new sites of synthetic objects shaped like a
real site's (``--types`` object types of ``--objects`` objects each, outlines of
``--vertices`` vertices, ``--features`` feature values). They start together; the rate
is all their rows over the time until the last one finished. Each writer count runs
``--runs`` times; the medians are reported.

Per call the time is split into what ``save_prepared`` does:

* ``features_s``: making sure the features exist (their own short transactions);
* ``prepare_s``: Python-side work before the write transaction (encoding rows);
* ``txn_s``: the write transaction, connect to commit, of which ``db_s`` is spent in
  the database driver (statements and COPY) and the rest in Python.

``--path plain`` forces the executemany path (what SQLite takes), ``--path copy`` the
COPY path (``auto``: what ``save_prepared`` chooses); ``--path copy plain`` runs both in
turns, so that both meet the same load of the machine. The summary has, per writer
count and path, the medians over the runs.

Usage::

    python benchmarks/db_writes.py [--writers 1 2 4] [--objects 300] [--path auto]

The last line of the output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_PG_URL, scratch_pg_database  # noqa: E402

#: site ids of writer w in run r start at (r * 64 + w) * SITE_STRIDE
SITE_STRIDE = 100_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def synthetic_site(rng, site_id: int, args: argparse.Namespace) -> list:
    """Prepared objects of one site: star-shaped outlines around random centres."""
    import numpy as np
    import shapely

    from tmlib.jterator.saving import PreparedObjects

    lo, hi = args.vertices
    prepared = []
    for t in range(args.types):
        outlines, centroids = [], []
        for _ in range(args.objects):
            cx, cy = rng.uniform(0, 2560), -rng.uniform(0, 2160)
            n = int(rng.integers(lo, hi + 1))
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            radii = rng.uniform(8, 20) * rng.uniform(0.8, 1.2, n)
            ring = np.column_stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)])
            polygon = shapely.Polygon(np.round(ring))
            outlines.append(polygon)
            centroids.append(polygon.centroid)
        values = rng.normal(size=(args.objects, args.features))
        prepared.append(
            PreparedObjects(
                site_id=site_id,
                tpoint=0,
                name=f"Objects{t}",
                labels=np.arange(1, args.objects + 1, dtype=np.int64),
                outlines=outlines,
                centroids=centroids,
                columns=[f"Feature_{i:03d}" for i in range(args.features)],
                values=values,
            )
        )
    return prepared


def writer(
    index: int, run: int, args: argparse.Namespace, eid: int, barrier, results
) -> None:  # a process of its own
    import dataclasses

    import numpy as np
    import sqlalchemy as sa

    import tmlib.models as tm
    from tmlib.jterator import saving

    tm.utils.use_job_connections()
    rng = np.random.default_rng(1000 * run + index)
    templates = [synthetic_site(rng, 0, args) for _ in range(3)]
    base = (run * 64 + index) * SITE_STRIDE

    timed = {"features": 0.0, "prepare": 0.0, "db": 0.0}

    def timing(name, function):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                timed[name] += time.perf_counter() - t0

        return wrapper

    orders = saving._feature_orders

    def features(*a, **k):  # its statements are not the write's
        db = timed["db"]
        try:
            return timing("features", orders)(*a, **k)
        finally:
            timed["db"] = db

    saving._feature_orders = features
    saving._encode = timing("prepare", saving._encode)
    saving._copy = timing("db", saving._copy)
    if args.path == "plain":
        saving._copies = lambda session: False

    engine = tm.utils.experiment_engine(eid)
    started: dict[int, float] = {}

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        started[id(cursor)] = time.perf_counter()

    @sa.event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        timed["db"] += time.perf_counter() - started.pop(id(cursor))

    def batch(call: int) -> list:
        return [
            dataclasses.replace(p, site_id=base + call * args.sites_per_call + s)
            for s in range(args.sites_per_call)
            for p in templates[(call + s) % len(templates)]
        ]

    saving.save_prepared(eid, batch(args.calls))  # warm up: imports, caches, connection path
    batches = [batch(c) for c in range(args.calls)]
    calls = []
    barrier.wait()
    begin = time.perf_counter()
    for prepared in batches:
        for key in timed:
            timed[key] = 0.0
        t0 = time.perf_counter()
        saved = saving.save_prepared(eid, prepared)
        total = time.perf_counter() - t0
        calls.append({"objects": saved, "total": total, **timed})
    results.put({"begin": begin, "end": time.perf_counter(), "calls": calls})


def one_run(run: int, writers: int, args: argparse.Namespace, eid: int) -> dict:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(writers)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=writer, args=(w, run, args, eid, barrier, results))
        for w in range(writers)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            sys.exit(f"a writer failed ({p.exitcode})")
    wall = max(o["end"] for o in outcomes) - min(o["begin"] for o in outcomes)
    calls = [c for o in outcomes for c in o["calls"]]
    objects = sum(c["objects"] for c in calls)
    sites = len(calls) * args.sites_per_call
    per_site = {
        key: statistics.median(c[key] for c in calls) / args.sites_per_call
        for key in ("total", "features", "prepare", "db")
    }
    txn = statistics.median(c["total"] - c["features"] - c["prepare"] for c in calls)
    return {
        "wall_s": wall,
        "objects_per_s": objects / wall,
        "rows_per_s": 3 * objects / wall,
        "sites_per_s": sites / wall,
        "site_s": per_site["total"],
        "features_s": per_site["features"],
        "prepare_s": per_site["prepare"],
        "txn_s": txn / args.sites_per_call,
        "db_s": per_site["db"],
    }


def setup_experiment(args: argparse.Namespace) -> int:
    """A user, an experiment and its object types with a segmentation layer each."""
    import sqlalchemy as sa

    import tmlib.models as tm
    import tmlib.models.main
    from tmlib import registry

    try:  # a cheap password hash: the benchmark measures something else
        from argon2 import PasswordHasher

        tmlib.models.main._hasher = PasswordHasher(time_cost=1, memory_cost=256, parallelism=1)
    except (ImportError, AttributeError):
        pass
    registry.add_user("bench", "bench", "bench@example.org")
    eid = registry.add_experiment("writes", "bench")
    with tm.utils.ExperimentSession(eid) as session:
        experiment = session.scalars(sa.select(tm.Experiment)).one()
        for t in range(args.types):
            kind = tm.MapobjectType(
                name=f"Objects{t}", ref_type="Site", experiment_id=experiment.id
            )
            session.add(kind)
            session.add(tm.SegmentationLayer(mapobject_type=kind, tpoint=0, zplane=0))
    tm.utils.dispose_engines()
    return eid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--objects", type=int, default=300, help="objects per type and site")
    parser.add_argument("--types", type=int, default=2, help="object types per site")
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--vertices", type=int, nargs=2, default=[30, 60], metavar=("MIN", "MAX"))
    parser.add_argument("--sites-per-call", type=int, default=1)
    parser.add_argument("--calls", type=int, default=10, help="save_prepared calls per writer")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--path",
        choices=["auto", "copy", "plain"],
        nargs="+",
        default=["auto"],
        help="which write path; several run in turns",
    )
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    args = parser.parse_args()

    summary: dict = {
        "benchmark": "db_writes",
        "path": args.path,
        "objects_per_site": args.objects * args.types,
        "rows_per_site": 3 * args.objects * args.types,
        "features": args.features,
        "vertices": args.vertices,
        "sites_per_call": args.sites_per_call,
        "calls_per_writer": args.calls,
        "runs": args.runs,
        "writers": {},
    }
    with tempfile.TemporaryDirectory() as tmp, scratch_pg_database(args.pg_url) as url:
        os.environ.update(TMAPS_HOME=str(Path(tmp) / "home"), TMAPS_DB_URL=url,
                          TMAPS_CONFIG_FILE=str(Path(tmp) / "none.cfg"))  # fmt: skip
        eid = setup_experiment(args)
        run = 0
        for writers in args.writers:
            outcomes: dict[str, list[dict]] = {path: [] for path in args.path}
            for _ in range(args.runs):
                for path in args.path:  # in turns: each path meets the machine's other load
                    outcome = one_run(
                        run, writers, argparse.Namespace(**{**vars(args), "path": path}), eid
                    )
                    outcomes[path].append(outcome)
                    run += 1
                    rounded = {k: round(v, 4) for k, v in outcome.items()}
                    log(f"{writers} writers, {path}: {json.dumps(rounded)}")
            summary["writers"][str(writers)] = {
                path: {key: round(statistics.median(o[key] for o in runs), 5) for key in runs[0]}
                for path, runs in outcomes.items()
            }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
