"""Benchmark: ``tm_export ID ome-zarr`` of a plate, beside Fractal's converter, and its import.

Simulates a CellVoyager plate of 2160x2560 16-bit TIFFs (default 4 wells x 12
sites x 2 channels = 96 planes, 1.06 GB of raw pixels), registers it and
converts it once with the image_conversion stage (not timed: that is
``benchmarks/conversion.py``'s subject). Then, each into a new directory:

* ``export``: ``tm_export ID ome-zarr OUT`` with the default options (NGFF 0.5,
  the full pyramid), ``--runs`` times; wall seconds and CPU seconds of the
  ``tm_export`` process (all its threads and waited-for children, from
  ``wait4``), MB/s of raw pixel bytes (1 MB = 10^6 bytes)
  and MB/s per core = MB per CPU second (= MB/s over the cores it kept busy),
  medians of the runs; the plate's size on disk;
* ``export_v04``: one run with ``--version 0.4``;
* ``peer``: Fractal's CellVoyager converter (fractal-uzh-converters 0.7.1, one
  process, one thread; see benchmarks/peers/) writing the same kind of plate
  from the same TIFFs, ``--runs`` times, in a virtual environment of its own
  created on first use under ``~/.cache/tissuemaps-bench/`` (or given with
  ``--fractal-python``; ``none`` skips it). ``ratio_per_core`` = our MB per CPU
  second of the whole ``tm_export`` process over the peer's per CPU second of
  its converter call (goal: 3; the peer's interpreter start and imports are not
  counted, ours are); ``ratio_per_core_in_call`` counts both the same way (the
  CPU seconds ``tm_export -v`` reports for the export itself);
  ``ratio_per_core_vs_peer_wall`` divides by the peer's MB/s of wall time
  instead, as ``conversion.py`` does;
* ``import``: the exported plate into a new experiment of microscope type
  ``ome-zarr`` (``tm_add files -s PLATE.zarr``, then ``tm_workflow ID submit``
  of the image_conversion stage as conversion.py runs it), timed, with a check
  that it extracted as many planes as the plate has and the same pixels.
  Skipped while ``tm_add experiment`` knows no ``ome-zarr`` microscope type.

Usage::

    python benchmarks/ome_zarr.py [--wells 4] [--sites 12] [--channels 2]
                                  [--size 2160x2560] [--runs 3] [--no-import]
                                  [--fractal-python /path/to/venv/bin/python]

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import BIN, disk_bytes, fixed_cost, tm
from conversion import (
    CORES,
    conversion_description,
    cpu_seconds,
    environment,
    fractal_python,
    fractal_run,
    new_experiment,
    summarize_fractal,
)

GOAL_RATIO_PER_CORE = 3.0


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


#: the line ``tm_export -v`` logs at the end of an export
SUMMARY = re.compile(r"exported \d+ planes .* in [\d.]+ s, (?P<cpu>[\d.]+) CPU s")


def timed_export(eid: str, out: Path, env: dict[str, str], *options: str) -> dict:
    """Run ``tm_export EID ome-zarr OUT [options]``: wall and CPU seconds (all threads and
    waited-for children, from ``wait4``), peak memory, the plates it wrote and its stderr."""
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [str(BIN / "tm_export"), "-v", eid, "ome-zarr", str(out), *options],
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        printed, said = stdout.read(), stderr.read()
    if proc.returncode != 0:
        sys.exit(f"tm_export failed ({proc.returncode}): {said.strip()[-2000:]}")
    # -v: the export's own account of its CPU, without the interpreter's start and imports
    summary = SUMMARY.search(said)
    return {
        "seconds": wall,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "cpu_seconds_in_call": float(summary["cpu"]) if summary else None,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "plates": [Path(line) for line in printed.splitlines() if line.strip()],
        "stderr": [line for line in said.splitlines() if line.strip() and " INFO " not in line],
    }


def run_exports(
    eid: str, env: dict[str, str], workdir: Path, runs: int, label: str, *options: str
) -> list:
    """`runs` exports into new directories; all but the last run's plate are removed."""
    results = []
    for run in range(runs):
        out = workdir / f"{label}_{run}"
        result = timed_export(eid, out, env, *options)
        result["disk_bytes"] = disk_bytes(out)
        result["files"] = sum(1 for p in out.rglob("*") if p.is_file())
        wall, cpu = result["seconds"], result["cpu_seconds"]
        say(f"  {label}, run {run + 1}: {wall:.1f} s, {cpu:.1f} CPU s")
        for line in result["stderr"][:5]:
            say(f"    tm_export said: {line}")
        if run < runs - 1:
            subprocess.run(["rm", "-rf", str(out)], check=False)
        results.append(result)
    return results


def summarize(results: list[dict], nbytes: int) -> dict:
    seconds = [r["seconds"] for r in results]
    cpu = [r["cpu_seconds"] for r in results]
    median_s = statistics.median(seconds)
    per_cpu_second = statistics.median(nbytes / 1e6 / c for c in cpu)
    last = results[-1]
    return {
        "seconds_median": round(median_s, 2),
        "runs": [round(s, 2) for s in seconds],
        "cpu_seconds": [round(c, 2) for c in cpu],
        "MBps": round(nbytes / 1e6 / median_s, 1),
        "cores_used": round(statistics.median(c / s for c, s in zip(cpu, seconds, strict=True)), 2),
        "MBps_per_core": round(per_cpu_second, 1),
        # as the peer is timed: the converter call, without start and imports
        "MBps_per_core_in_call": round(
            statistics.median(nbytes / 1e6 / r["cpu_seconds_in_call"] for r in results), 1
        )
        if all(r["cpu_seconds_in_call"] for r in results)
        else None,
        "MBps_per_machine_core": round(nbytes / 1e6 / median_s / CORES, 1),
        "peak_rss_mb": last["peak_rss_mb"],
        "disk_bytes": last["disk_bytes"],
        "disk_MB": round(last["disk_bytes"] / 1e6, 1),
        "compression": round(nbytes / last["disk_bytes"], 2),
        "files": last["files"],
        "stderr": last["stderr"][-10:],
    }


def plane_digests(eid: str) -> dict[tuple, str]:
    """(well, site row, site column, channel, tpoint, zplane) -> digest of the plane's pixels."""
    import sqlalchemy as sa

    import tmlib.models as tmm
    from tmlib import storage

    digests = {}
    with tmm.utils.ExperimentSession(int(eid)) as session:
        for f in session.scalars(sa.select(tmm.ChannelImageFile)):
            key = (f.site.well.name, f.site.y, f.site.x, f.channel.name, f.tpoint, f.zplane)
            pixels = storage.read_plane(f.location)
            digests[key] = hashlib.blake2b(pixels.tobytes(), digest_size=16).hexdigest()
    return digests


def run_import(plate_zarr: Path, env: dict[str, str], home: Path, source: str, nbytes: int) -> dict:
    """Import the exported plate into a new experiment and compare its planes with `source`'s."""
    if "ome-zarr" not in tm(["tm_add", "experiment", "--help"], env):
        return {"skipped": "tm_add experiment has no microscope type 'ome-zarr' yet"}
    start = time.perf_counter()
    eid = new_experiment(plate_zarr, env, "imported", microscope_type="ome-zarr")
    register_s = time.perf_counter() - start
    tm(["tm_workflow", eid, "description", "--set", str(conversion_description(home))], env)
    start, wall = time.time(), time.perf_counter()
    tm(["tm_workflow", eid, "submit", "-i", "60"], env)
    seconds = time.perf_counter() - wall
    fixed = fixed_cost(int(eid), start, time.time())
    cpu = cpu_seconds(json.loads(tm(["tm_workflow", eid, "status", "--json"], env)))
    say(f"  import: {seconds:.1f} s, {cpu:.1f} CPU s in jobs (registering {register_s:.1f} s)")
    expected, got = plane_digests(source), plane_digests(eid)
    differ = sorted(str(k) for k in expected.keys() & got.keys() if expected[k] != got[k])
    return {
        "experiment_id": int(eid),
        "register_seconds": round(register_s, 2),
        "seconds": round(seconds, 2),
        "cpu_seconds_jobs": round(cpu, 1),
        "MBps": round(nbytes / 1e6 / seconds, 1),
        "MBps_per_machine_core": round(nbytes / 1e6 / seconds / CORES, 1),
        "MBps_per_cpu_second": round(nbytes / 1e6 / cpu, 1) if cpu else None,
        "fixed_cost": fixed,
        "planes": len(got),
        "planes_expected": len(expected),
        "planes_match": len(got) == len(expected),
        "pixels_match": expected == got,
        "pixels_differ": differ[:5],
        "missing": sorted(str(k) for k in expected.keys() - got.keys())[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wells", type=int, default=4)
    parser.add_argument("--sites", type=int, default=12)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--size", default="2160x2560", help="HEIGHTxWIDTH of a plane")
    parser.add_argument("--runs", type=int, default=3, help="timed exports (and peer runs)")
    parser.add_argument("--no-import", action="store_true", help="skip the import")
    parser.add_argument(
        "--fractal-python",
        default=os.environ.get("TMAPS_BENCH_FRACTAL_PYTHON", "auto"),
        help="python of a venv with the peer; 'auto' creates one; 'none' skips the peer",
    )
    args = parser.parse_args()
    height, width = (int(n) for n in args.size.lower().split("x"))
    planes = args.wells * args.sites * args.channels
    nbytes = planes * height * width * 2
    with tempfile.TemporaryDirectory(prefix="tm-omezarr-") as tmp:
        tmp_path = Path(tmp)
        plate, home = tmp_path / "plate", tmp_path / "home"
        home.mkdir()
        env = environment(home)
        say(f"plate: {planes} planes of {args.size}, {nbytes / 1e9:.2f} GB; converting it once")
        tm(["tm_simulate", "plate", str(plate), "--wells", str(args.wells), "--sites",
            str(args.sites), "--channels", str(args.channels), "--size", args.size, "-q"],
           env)  # fmt: skip
        tm(["tm_add", "user", "-n", "bench", "-p", "bench", "-e", "bench@example.org"], env)
        eid = new_experiment(plate, env, "source")
        tm(["tm_workflow", eid, "description", "--set", str(conversion_description(home))], env)
        tm(["tm_workflow", eid, "submit", "-i", "60"], env)
        env_export = {**env, "TMAPS_WARM_START": "0"}  # its own process, whose CPU we count
        result = {
            "benchmark": "ome_zarr",
            "plate": {
                "bytes": nbytes,
                "MB": round(nbytes / 1e6, 1),
                "planes": planes,
                "size": args.size,
                "wells": args.wells,
                "sites_per_well": args.sites,
                "channels": args.channels,
                "dtype": "uint16",
            },
            "cores": CORES,
            "load_average_before": round(os.getloadavg()[0], 2),
        }
        python = fractal_python(args.fractal_python)
        # ours and the peer's runs take turns, so that both meet the same machine
        # (the disk's write-back of the previous run, other load)
        say("export (NGFF 0.5, default options), and the peer: fractal-uzh-converters")
        exports, peer_runs = [], []
        for run in range(args.runs):
            exports.extend(run_exports(eid, env_export, tmp_path, 1, f"export{run}"))
            if len(exports) > 1:  # only the last run's plate is kept (for the import)
                subprocess.run(["rm", "-rf", str(exports[-2]["plates"][0].parent)], check=False)
            if python:
                try:
                    peer_runs.append(fractal_run(python, plate, tmp_path / f"fractal_{run}"))
                except RuntimeError as err:
                    result["peer"] = {"error": str(err)}
                    python = None
                else:
                    say(f"  fractal, run {run + 1}: {peer_runs[-1]['seconds']:.1f} s, "
                        f"{peer_runs[-1]['cpu_seconds']:.1f} CPU s")  # fmt: skip
        result["export"] = summarize(exports, nbytes)
        say("export --version 0.4")
        result["export_v04"] = summarize(
            run_exports(eid, env_export, tmp_path, 1, "export_v04", "--version", "0.4"), nbytes
        )
        if peer_runs:
            result["peer"] = summarize_fractal(peer_runs)
            peer_cpu = result["peer"]["MBps_per_cpu_second"]
            peer_wall = result["peer"]["MBps_per_process"]
            ours = result["export"]["MBps_per_core"]
            result["ratio_per_core"] = round(ours / peer_cpu, 2)
            result["ratio_per_core_vs_peer_wall"] = round(ours / peer_wall, 2)
            in_call = result["export"]["MBps_per_core_in_call"]
            if in_call:  # both timed the same way: the call, without start and imports
                result["ratio_per_core_in_call"] = round(in_call / peer_cpu, 2)
        elif "peer" not in result:
            result["peer"] = {"skipped": "give --fractal-python (see benchmarks/peers/README.md)"}
        result["ratio_per_core"] = result.get("ratio_per_core")
        result["goal"] = GOAL_RATIO_PER_CORE
        result["goal_met"] = (result["ratio_per_core"] or 0.0) >= GOAL_RATIO_PER_CORE
        if args.no_import:
            result["import"] = {"skipped": "--no-import"}
        else:
            say("import of the exported plate (microscope type ome-zarr)")
            plate_zarr = exports[-1]["plates"][0]
            result["import"] = run_import(plate_zarr, env, home, eid, nbytes)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
