"""Benchmark: the image_conversion stage (metaextract, metaconfig, imextract) end to end.

Simulates a CellVoyager plate of 2160x2560 16-bit TIFFs (default 96 images,
1.06 GB), registers it and converts it with the local backend on 2 cores,
several times, each time into a new experiment (a user's first conversion of a
plate), in two ways:

* ``tm_workflow ID submit`` of the image_conversion stage (``ours``);
* step by step as the README shows: ``metaextract ID init``, ``metaextract ID
  submit``, then the same for metaconfig and imextract (``ours_step_by_step``).

Batch sizes are the automatic defaults unless ``--batch-size`` is given.
Reports MB/s of raw pixel data, in total and per core, and the fixed cost of
each way (``fixed_s``: the wall seconds that are not run phases: program
starts, the job spawner, init and collect; see ``common.fixed_cost``).

In the same run it converts the same files with the peer users have today,
fractal-uzh-converters 0.7.1 (one process; see benchmarks/peers/), in a
virtual environment of its own that is created on first use under
``~/.cache/tissuemaps-bench/`` (or given with ``--fractal-python``; ``none``
skips the peer), and reports the ratio.

Usage::

    python benchmarks/conversion.py [--wells 4] [--sites 12] [--channels 2] [--runs 3]
                                    [--batch-size N] [--no-step-by-step]
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

from common import disk_bytes, fixed_cost, tm

HERE = Path(__file__).resolve().parent
GOAL_MBPS_PER_CORE = 100.0
CORES = 2


def raw_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.tif"))


STEPS = ("metaextract", "metaconfig", "imextract")


def environment(home: Path) -> dict[str, str]:
    """Our programs' environment: an installation in `home`, the local backend on CORES cores
    (also set in this process, whose ``common.fixed_cost`` reads the same database)."""
    env = dict(TMAPS_HOME=str(home), TMAPS_DB_URL=f"sqlite:///{home}/tm.db",
               TMAPS_CONFIG_FILE=str(home / "none.cfg"), TMAPS_CORES=str(CORES))  # fmt: skip
    os.environ.update(env)
    return dict(os.environ)


def new_experiment(
    plate: Path, env: dict[str, str], name: str, microscope_type: str = "cellvoyager"
) -> str:
    """A new experiment of user ``bench`` with plate ``p``, acquisition ``a`` and the files
    of `plate` registered; its id."""
    eid = tm(["tm_add", "experiment", "-e", name, "-u", "bench",
              "--microscope-type", microscope_type], env)  # fmt: skip
    tm(["tm_add", "plate", "-e", eid, "-p", "p"], env)
    tm(["tm_add", "acquisition", "-e", eid, "-p", "p", "-a", "a"], env)
    tm(["tm_add", "files", "-e", eid, "-p", "p", "-a", "a", "-s", str(plate)], env)
    return eid


def conversion_description(home: Path, batch_size: int | None = None) -> Path:
    """A workflow description file in `home` with the image_conversion stage alone."""
    description = home / "wf.yaml"
    given = f"\n    batch_args: {{batch_size: {batch_size}}}" if batch_size else ""
    description.write_text(
        "type: canonical\nstages:\n- name: image_conversion\n  steps:\n"
        f"  - name: metaextract\n  - name: metaconfig\n  - name: imextract{given}\n"
    )
    return description


def run_ours(plate: Path, home: Path, runs: int, batch_size: int | None) -> dict:
    """Each run converts the plate into a new experiment, as a user's first conversion does
    (a re-run of the same experiment first deletes the old planes, which is another cost)."""
    env = environment(home)
    tm(["tm_add", "user", "-n", "bench", "-p", "bench", "-e", "bench@example.org"], env)
    description = conversion_description(home, batch_size)
    seconds, fixed, cpu = [], [], 0.0
    for run in range(runs):
        eid = new_experiment(plate, env, f"conv{run}")
        tm(["tm_workflow", eid, "description", "--set", str(description)], env)
        start, wall = time.time(), time.perf_counter()
        tm(["tm_workflow", eid, "submit", "-i", "60"], env)
        seconds.append(time.perf_counter() - wall)
        fixed.append(fixed_cost(int(eid), start, time.time()))
        print(f"  ours, run {run + 1}: {seconds[-1]:.1f} s (fixed {fixed[-1]['fixed_s']:.2f} s)",
              file=sys.stderr)  # fmt: skip
        cpu = cpu_seconds(json.loads(tm(["tm_workflow", eid, "status", "--json"], env)))
    return {"seconds": seconds, "fixed": fixed, "cpu_seconds_last_run": round(cpu, 1)}


def run_step_by_step(plate: Path, home: Path, runs: int, batch_size: int | None) -> dict:
    """As :func:`run_ours`, through the step programs as the README shows: ``STEP ID init``
    then ``STEP ID submit`` for metaextract, metaconfig and imextract."""
    from tmlib.workflow import manager

    env = environment(home)
    seconds, fixed, cpu = [], [], 0.0
    for run in range(runs):
        eid = new_experiment(plate, env, f"steps{run}")
        wall, cpu, parts = time.perf_counter(), 0.0, []
        for step in STEPS:
            given = ["-b", str(batch_size)] if batch_size and step == "imextract" else []
            start = time.time()
            tm([step, eid, "init", *given], env)
            submitted = time.time()
            tm([step, eid, "submit", "-i", "60"], env)
            part = fixed_cost(int(eid), submitted, time.time(), program=step)
            part["init"] = round(submitted - start, 3)  # the init program, not a job here
            part["fixed_s"] = round(part["fixed_s"] + part["init"], 3)
            parts.append(part)
            cpu += cpu_seconds(manager.status(int(eid), step))
        seconds.append(time.perf_counter() - wall)
        total = {key: round(sum(p[key] for p in parts), 3) for key in parts[0]}
        fixed.append(total)
        print(f"  ours step by step, run {run + 1}: {seconds[-1]:.1f} s "
              f"(fixed {total['fixed_s']:.2f} s)", file=sys.stderr)  # fmt: skip
    return {"seconds": seconds, "fixed": fixed, "cpu_seconds_last_run": round(cpu, 1)}


def summarize(runs: dict, nbytes: int) -> dict:
    median_s = statistics.median(runs["seconds"])
    middle = min(range(len(runs["seconds"])), key=lambda i: abs(runs["seconds"][i] - median_s))
    return {
        "seconds_median": round(median_s, 2),
        "runs": [round(s, 2) for s in runs["seconds"]],
        "MBps_total": round(nbytes / 1e6 / median_s, 1),
        "MBps_per_core": round(nbytes / 1e6 / median_s / CORES, 1),
        "MBps_per_cpu_second": round(nbytes / 1e6 / runs["cpu_seconds_last_run"], 1),
        "fixed_cost_of_median_run": runs["fixed"][middle],
    }


def cpu_seconds(node: dict) -> float:
    """CPU seconds of the jobs in a status tree (``tm_workflow ID status --json``)."""
    own = node["cpu_time"] or 0.0 if not node["subtasks"] else 0.0
    return own + sum(cpu_seconds(child) for child in node["subtasks"])


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


def fractal_run(python: str, plate: Path, out: Path) -> dict:
    """One conversion of `plate` into `out` by the peer (its JSON result, plus the bytes it
    wrote as ``disk_bytes``); `out` is removed afterwards. Raises RuntimeError if it fails."""
    script = HERE / "peers" / "fractal_cellvoyager.py"
    proc = subprocess.run([python, str(script), str(plate), str(out)],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["disk_bytes"] = disk_bytes(out)
    subprocess.run(["rm", "-rf", str(out)], check=False)
    return result


def summarize_fractal(results: list[dict]) -> dict:
    """The peer's runs: medians of MB/s and CPU seconds (one process, one core)."""
    mbps = statistics.median(r["MBps"] for r in results)
    cpu = statistics.median(r["cpu_seconds"] for r in results)
    return {
        "peer": f"fractal-uzh-converters {results[0].get('version')}",
        "processes": 1,
        "MBps_per_process": round(mbps, 1),
        "runs": [r["seconds"] for r in results],
        "cpu_seconds": [round(r["cpu_seconds"], 2) for r in results],
        "cpu_seconds_median": round(cpu, 2),
        "MBps_per_cpu_second": round(results[0]["raw_bytes"] / 1e6 / cpu, 1),
        "disk_bytes": results[-1]["disk_bytes"],
    }


def run_fractal(python: str, plate: Path, workdir: Path, runs: int) -> dict:
    results = []
    for run in range(runs):
        try:
            results.append(fractal_run(python, plate, workdir / f"fractal_{run}"))
        except RuntimeError as err:
            return {"error": str(err)}
        print(f"  fractal, run {run + 1}: {results[-1]['seconds']:.1f} s", file=sys.stderr)
    return summarize_fractal(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wells", type=int, default=4)
    parser.add_argument("--sites", type=int, default=12)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--size", default="2160x2560")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="imextract planes per job (default: automatic)"
    )
    parser.add_argument(
        "--no-step-by-step",
        action="store_true",
        help="only tm_workflow, not the step programs one by one",
    )
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
        result = {
            "benchmark": "conversion",
            "images": n_images,
            "raw_MB": round(nbytes / 1e6, 1),
            "cores": CORES,
            "batch_size": args.batch_size or "automatic",
            "load_average_before": round(os.getloadavg()[0], 2),
            "ours": summarize(ours, nbytes),
            "goal_MBps_per_core": GOAL_MBPS_PER_CORE,
        }
        if not args.no_step_by_step:
            steps = run_step_by_step(plate, tmp_path / "home", args.runs, args.batch_size)
            result["ours_step_by_step"] = summarize(steps, nbytes)
        python = fractal_python(args.fractal_python)
        if python:
            result["peer"] = run_fractal(python, plate, tmp_path, args.runs)
            peer = result["peer"].get("MBps_per_process")
            if peer:
                result["ratio_per_core_vs_peer"] = round(result["ours"]["MBps_per_core"] / peer, 2)
        else:
            result["peer"] = {"skipped": "give --fractal-python (see benchmarks/peers/README.md)"}
        ways = [result[k] for k in ("ours", "ours_step_by_step") if k in result]
        result["meets_goal"] = all(w["MBps_per_core"] >= GOAL_MBPS_PER_CORE for w in ways)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
