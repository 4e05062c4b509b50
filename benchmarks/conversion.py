"""Benchmark: the image_conversion stage (metaextract, metaconfig, imextract) end to end.

Simulates a CellVoyager plate of 2160x2560 16-bit TIFFs (default 96 images,
1.06 GB), registers it and runs ``tm_workflow ID submit`` with the local
backend on 2 cores, several times, each time into a new experiment (a user's
first conversion of a plate). Reports MB/s of raw pixel data, in total and per core.

In the same run it converts the same files with the peer users have today,
fractal-uzh-converters 0.7.1 (one process; see benchmarks/peers/), in a
virtual environment of its own that is created on first use under
``~/.cache/tissuemaps-bench/`` (or given with ``--fractal-python``; ``none``
skips the peer), and reports the ratio.

Usage::

    python benchmarks/conversion.py [--wells 4] [--sites 12] [--channels 2] [--runs 3]
                                    [--fractal-python /path/to/venv/bin/python]

The last line of the output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import tm

HERE = Path(__file__).resolve().parent
GOAL_MBPS_PER_CORE = 100.0
CORES = 2


def raw_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.tif"))


def run_ours(plate: Path, home: Path, runs: int, batch_size: int) -> dict:
    """Each run converts the plate into a new experiment, as a user's first conversion does
    (a re-run of the same experiment first deletes the old planes, which is another cost)."""
    env = dict(os.environ, TMAPS_HOME=str(home), TMAPS_DB_URL=f"sqlite:///{home}/tm.db",
               TMAPS_CONFIG_FILE=str(home / "none.cfg"), TMAPS_CORES=str(CORES))  # fmt: skip
    tm(["tm_add", "user", "-n", "bench", "-p", "bench", "-e", "bench@example.org"], env)
    description = home / "wf.yaml"
    description.write_text(
        "type: canonical\nstages:\n- name: image_conversion\n  steps:\n"
        "  - name: metaextract\n  - name: metaconfig\n"
        f"  - name: imextract\n    batch_args: {{batch_size: {batch_size}}}\n"
    )
    seconds, cpu = [], 0.0
    for run in range(runs):
        eid = tm(["tm_add", "experiment", "-e", f"conv{run}", "-u", "bench"], env)
        tm(["tm_add", "plate", "-e", eid, "-p", "p"], env)
        tm(["tm_add", "acquisition", "-e", eid, "-p", "p", "-a", "a"], env)
        tm(["tm_add", "files", "-e", eid, "-p", "p", "-a", "a", "-s", str(plate)], env)
        tm(["tm_workflow", eid, "description", "--set", str(description)], env)
        start = time.perf_counter()
        tm(["tm_workflow", eid, "submit", "-i", "60"], env)
        seconds.append(time.perf_counter() - start)
        print(f"  ours, run {run + 1}: {seconds[-1]:.1f} s", file=sys.stderr)
        cpu = _cpu_seconds(json.loads(tm(["tm_workflow", eid, "status", "--json"], env)))
    return {"seconds": seconds, "cpu_seconds_last_run": round(cpu, 1)}


def _cpu_seconds(node: dict) -> float:
    own = node["cpu_time"] or 0.0 if not node["subtasks"] else 0.0
    return own + sum(_cpu_seconds(child) for child in node["subtasks"])


FRACTAL = "fractal-uzh-converters==0.7.1"


def fractal_python(choice: str) -> str | None:
    """The python of the peer's venv; with 'auto', create it once (needs network to PyPI)."""
    if choice == "none":
        return None
    if choice != "auto":
        return choice
    venv = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tissuemaps-bench"
    python = venv / "fractal" / "bin" / "python"
    if not python.exists():
        print(f"creating the peer's environment ({FRACTAL}) in {python.parent.parent}",
              file=sys.stderr)  # fmt: skip
        subprocess.run([sys.executable, "-m", "venv", str(python.parent.parent)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", FRACTAL], check=True)
    return str(python)


def run_fractal(python: str, plate: Path, workdir: Path, runs: int) -> dict:
    script = HERE / "peers" / "fractal_cellvoyager.py"
    results = []
    for run in range(runs):
        out = workdir / f"fractal_{run}"
        proc = subprocess.run([python, str(script), str(plate), str(out)],
                              capture_output=True, text=True)  # fmt: skip
        if proc.returncode != 0:
            return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(f"  fractal, run {run + 1}: {results[-1]['seconds']:.1f} s", file=sys.stderr)
        subprocess.run(["rm", "-rf", str(out)], check=False)
    mbps = statistics.median(r["MBps"] for r in results)
    return {
        "peer": f"fractal-uzh-converters {results[0].get('version')}",
        "processes": 1,
        "MBps_per_process": round(mbps, 1),
        "runs": [r["seconds"] for r in results],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wells", type=int, default=4)
    parser.add_argument("--sites", type=int, default=12)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--size", default="2160x2560")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=12, help="imextract planes per job")
    parser.add_argument(
        "--fractal-python",
        default=os.environ.get("TMAPS_BENCH_FRACTAL_PYTHON", "auto"),
        help="python of a venv with the peer; 'auto' creates one; 'none' skips the peer",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tm-conv-") as tmp:
        tmp_path = Path(tmp)
        plate = tmp_path / "plate"
        tm(["tm_simulate", "plate", str(plate), "--wells", str(args.wells), "--sites",
            str(args.sites), "--channels", str(args.channels), "--size", args.size, "-q"],
           dict(os.environ))  # fmt: skip
        nbytes = raw_bytes(plate)
        n_images = len(list(plate.glob("*.tif")))
        print(f"plate: {n_images} images, {nbytes / 1e9:.2f} GB", file=sys.stderr)
        ours = run_ours(plate, tmp_path / "home", args.runs, args.batch_size)
        median_s = statistics.median(ours["seconds"])
        result = {
            "benchmark": "conversion",
            "images": n_images,
            "raw_MB": round(nbytes / 1e6, 1),
            "cores": CORES,
            "ours": {
                "seconds_median": round(median_s, 2),
                "runs": [round(s, 2) for s in ours["seconds"]],
                "MBps_total": round(nbytes / 1e6 / median_s, 1),
                "MBps_per_core": round(nbytes / 1e6 / median_s / CORES, 1),
                "MBps_per_cpu_second": round(nbytes / 1e6 / ours["cpu_seconds_last_run"], 1),
            },
            "goal_MBps_per_core": GOAL_MBPS_PER_CORE,
        }
        python = fractal_python(args.fractal_python)
        if python:
            result["peer"] = run_fractal(python, plate, tmp_path, args.runs)
            peer = result["peer"].get("MBps_per_process")
            if peer:
                result["ratio_per_core_vs_peer"] = round(result["ours"]["MBps_per_core"] / peer, 2)
        else:
            result["peer"] = {"skipped": "give --fractal-python (see benchmarks/peers/README.md)"}
        result["meets_goal"] = result["ours"]["MBps_per_core"] >= GOAL_MBPS_PER_CORE
    print(json.dumps(result))


if __name__ == "__main__":
    main()
