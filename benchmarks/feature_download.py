"""Benchmark: feature values of 10^6 objects x 50 features as CSV through the API, with tmclient.

Fills an experiment (embedded SQLite by default, ``--db postgresql`` for a
scratch PostgreSQL database) with one object type, ``Cells``, of N objects
spread over 100 sites, each with 50 random feature values, written straight
into the tables (the set-up is not timed). Starts gunicorn as in production
and times ``TmClient.download_feature_values("Cells")``: the server streams
the CSV, the client parses it into a pandas DataFrame, which is checked
against the database. Reports the median seconds of several downloads and
the server workers' peak resident memory, at a small and at the full object
count, to show that the server's memory does not grow with the objects.

Goal: ≤ 10 s for 10^6 objects, server memory independent of the object count.

Usage::

    python benchmarks/feature_download.py [--objects 1000000] [--features 50] [--runs 3]
                                          [--db sqlite|postgresql]

The last line of the output is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import gunicorn_server, process_tree_peak_rss_mb, scratch_pg_database

GOAL_SECONDS = 10.0
SITES = 100
CHUNK = 50_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fill(objects: int, features: int) -> int:
    """An experiment of user ``bench`` with `objects` Cells of `features` values each."""
    import sqlalchemy as sa

    import tmlib.models as tm
    from tmlib import registry

    registry.add_user("bench", "bench", "bench@example.org")
    eid = registry.add_experiment("features", "bench")
    with tm.utils.ExperimentSession(eid) as session:
        plate = tm.Plate(name="p", experiment_id=eid)
        well = tm.Well(name="A01", plate=plate)
        sites = [
            tm.Site(y=i // 10, x=i % 10, height=1000, width=1000, well=well) for i in range(SITES)
        ]
        kind = tm.MapobjectType(name="Cells", ref_type="Site", experiment_id=eid)
        session.add_all([plate, well, *sites, kind])
        session.flush()
        session.add_all(
            [
                tm.Feature(name=f"feature_{j:02d}", mapobject_type_id=kind.id)
                for j in range(features)
            ]
        )
        site_ids, type_id = [s.id for s in sites], kind.id
    rng = np.random.default_rng(0)
    with tm.utils.ExperimentSession(eid) as session:
        for start in range(0, objects, CHUNK):
            ids = range(start + 1, min(objects, start + CHUNK) + 1)
            keys = [site_ids[(i - 1) * SITES // objects] for i in ids]
            session.execute(
                sa.insert(tm.Mapobject),
                [
                    {"id": i, "partition_key": k, "mapobject_type_id": type_id}
                    for i, k in zip(ids, keys, strict=True)
                ],
            )
            values = rng.normal(100, 30, size=(len(ids), features))
            session.execute(
                sa.insert(tm.FeatureValues),
                [
                    {"mapobject_id": i, "tpoint": 0, "partition_key": k, "values": v}
                    for i, k, v in zip(ids, keys, values, strict=True)
                ],
            )
    return eid


def download(url: str, features: int, objects: int) -> float:
    from tmclient import TmClient

    host, port = url.removeprefix("http://").split(":")
    client = TmClient(host, int(port), "bench", "bench", experiment_name="features")
    start = time.perf_counter()
    frame = client.download_feature_values("Cells")
    seconds = time.perf_counter() - start
    if frame.shape != (objects, features + 1):  # the mapobject_id column and the features
        sys.exit(f"downloaded {frame.shape}, expected {(objects, features + 1)}")
    return seconds


def measure(objects: int, features: int, runs: int, db: str) -> dict:
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tm_bench_fdl_")))
        os.environ.update(TMAPS_HOME=str(tmp), TMAPS_CONFIG_FILE=str(tmp / "none.cfg"))
        if db == "postgresql":
            os.environ["TMAPS_DB_URL"] = stack.enter_context(scratch_pg_database())
        else:
            os.environ["TMAPS_DB_URL"] = f"sqlite:///{tmp}/tm.db"
        from tmlib.models.session import dispose_engines

        dispose_engines()
        log(f"filling {objects} objects x {features} features ({db}) ...")
        started = time.perf_counter()
        fill(objects, features)
        log(f"  filled in {time.perf_counter() - started:.1f} s")
        with gunicorn_server(workers=2, threads=4) as (url, pid):
            times = [download(url, features, objects) for _ in range(runs)]
            peaks = process_tree_peak_rss_mb(pid)
        dispose_engines()
    workers = {p: mb for p, mb in peaks.items() if p != str(pid)}
    return {
        "objects": objects,
        "features": features,
        "runs": [round(t, 2) for t in times],
        "seconds_median": round(statistics.median(times), 2),
        "server_worker_peak_rss_mb": round(max(workers.values()), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    small = measure(args.objects // 10, args.features, args.runs, args.db)
    log(json.dumps(small))
    full = measure(args.objects, args.features, args.runs, args.db)
    log(json.dumps(full))
    print(json.dumps({
        "benchmark": "feature_download",
        "db": args.db,
        "cores": os.cpu_count(),
        "small": small,
        "full": full,
        "memory_ratio_full_vs_small": round(
            full["server_worker_peak_rss_mb"] / small["server_worker_peak_rss_mb"], 2
        ),
        "goal_seconds": GOAL_SECONDS,
        "meets_goal": full["seconds_median"] <= GOAL_SECONDS,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
