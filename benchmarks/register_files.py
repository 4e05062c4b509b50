"""Benchmark: register a 384-well x 36-site x 4-channel plate (55,296 files) with ``tm_add files``.

Times the real command line (a subprocess, Python start-up included) on SQLite
and on PostgreSQL, each on a fresh experiment, several times; reports the
median. The files are empty: this measures registration, not I/O of pixels.

Usage::

    python benchmarks/register_files.py [--runs 3] [--pg-url URL]

The last line of the output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import DEFAULT_PG_URL, scratch_pg_database, tm

GOAL_S = 10.0
WELLS, SITES, CHANNELS = 384, 36, 4


def make_plate(directory: Path) -> int:
    tm(
        [
            "tm_simulate", "plate", str(directory), "--microscope", "cellvoyager", "--empty",
            "--plate-format", "384", "--wells", str(WELLS), "--sites", str(SITES),
            "--channels", str(CHANNELS),
        ],
        dict(os.environ),
    )  # fmt: skip
    return sum(1 for p in directory.iterdir() if p.is_file())


def time_registration(plate_dir: Path, db_url: str, home: Path, run: int) -> tuple[float, float]:
    """Seconds for a first and for a repeated (idempotent) registration."""
    env = dict(os.environ, TMAPS_HOME=str(home), TMAPS_DB_URL=db_url)
    env["TMAPS_CONFIG_FILE"] = str(home / "none.cfg")
    if run == 0:
        tm(["tm_add", "user", "-n", "bench", "-p", "bench", "-e", "bench@example.org"], env)
    name = f"bench{run}"
    tm(["tm_add", "experiment", "-e", name, "-u", "bench", "--plate-format", "384"], env)
    tm(["tm_add", "plate", "-e", name, "-p", "p"], env)
    tm(["tm_add", "acquisition", "-e", name, "-p", "p", "-a", "a"], env)
    command = ["tm_add", "files", "-e", name, "-p", "p", "-a", "a", "-s", str(plate_dir)]
    start = time.perf_counter()
    out = tm(command, env)
    first = time.perf_counter() - start
    expected = f"registered {WELLS * SITES * CHANNELS} image"
    if not out.startswith(expected):
        sys.exit(f"unexpected output of tm_add files: {out!r}")
    start = time.perf_counter()
    out = tm(command, env)
    again = time.perf_counter() - start
    if not out.startswith("registered 0 image"):
        sys.exit(f"second registration was not idempotent: {out!r}")
    return first, again


def bench(plate_dir: Path, db_url: str, home: Path, runs: int) -> dict[str, float]:
    firsts, agains = [], []
    for run in range(runs):
        first, again = time_registration(plate_dir, db_url, home, run)
        firsts.append(first)
        agains.append(again)
        print(f"  run {run + 1}: {first:.2f} s (again: {again:.2f} s)", file=sys.stderr)
    return {
        "median_s": round(statistics.median(firsts), 3),
        "min_s": round(min(firsts), 3),
        "max_s": round(max(firsts), 3),
        "again_median_s": round(statistics.median(agains), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help="admin URL of a PostgreSQL server (a temporary database is created)",
    )
    args = parser.parse_args()

    result: dict[str, object] = {"benchmark": "register_files", "goal_s": GOAL_S}
    with tempfile.TemporaryDirectory(prefix="tm-bench-") as tmp:
        tmp_path = Path(tmp)
        plate_dir = tmp_path / "plate"
        print("writing 55,296 empty CellVoyager files ...", file=sys.stderr)
        n_files = make_plate(plate_dir)
        result["files"] = n_files  # images and the two metadata files

        print("SQLite:", file=sys.stderr)
        result["sqlite"] = bench(
            plate_dir, f"sqlite:///{tmp_path / 'sqlite' / 'tm.db'}", tmp_path / "sqlite", args.runs
        )

        with scratch_pg_database(args.pg_url) as url:
            print("PostgreSQL:", file=sys.stderr)
            result["postgresql"] = bench(plate_dir, url, tmp_path / "pg", args.runs)
    result["runs"] = args.runs
    result["meets_goal"] = all(
        result[db]["median_s"] <= GOAL_S  # type: ignore[index]
        for db in ("sqlite", "postgresql")
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
