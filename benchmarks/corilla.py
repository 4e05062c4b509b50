"""Benchmark: corilla (illumination statistics) per core, on 2160x2560 16-bit images.

Simulates a CellVoyager plate (default 2 wells x 24 sites, one channel: 48
images of 2160x2560 uint16), registers and converts it (the image_conversion
stage via ``tm_workflow submit``, not timed), all in a temporary directory.
Then, in this process, pinned to one CPU (``sched_setaffinity``; Blosc and
OpenCV each on one thread), it measures several times:

(a) kernel: :meth:`IlluminationStats.add` on images held in memory (the
    experiment's own planes, read once), plus the final mean/std/percentiles;
    for comparison the float64 kernel this replaced (two float64 table
    gathers and ``np.bincount`` per image);
(b) end to end: ``corilla init`` with one run job for all images, then that
    run job as its command runs it (``Corilla.run``: database query, reading
    every plane from HDF5 through ``ChannelImageFile.get()``, the statistics,
    writing the partial file); and the collect job once per run.

The headline ``images_per_s_per_core`` is (b), the median of the runs (wall
time on the one CPU). ``images_per_cpu_s`` divides by the job's CPU time
instead, which other processes sharing the CPU do not inflate. The planes were
just written, so they are read from the page cache: this measures
decompression and HDF5, not a disk or network file system.

Usage::

    python benchmarks/corilla.py [--wells 2] [--sites 24] [--runs 3] [--size 2160x2560]

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

# per-core figures: one Blosc thread (set before the HDF5 filter loads)
os.environ["BLOSC_NTHREADS"] = "1"

from common import registered_plate, tm  # noqa: E402

GOAL_IMAGES_PER_S_PER_CORE = 20.0
#: images added per kernel run (cycling through the in-memory planes)
KERNEL_ADDS = 64


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def pin_to_one_core() -> int:
    """Run this process (and OpenCV) on one CPU; returns the CPU."""
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    import cv2

    cv2.setNumThreads(1)
    return cpu


def set_up(tmp: Path, args: argparse.Namespace) -> int:
    """Simulate, register and convert the plate; the experiment's id."""
    eid = registered_plate(tmp, "corilla", args.wells, args.sites, args.size)
    home = tmp / "home"
    description = home / "wf.yaml"
    description.write_text(
        "type: canonical\nstages:\n- name: image_conversion\n  steps:\n"
        "  - name: metaextract\n  - name: metaconfig\n  - name: imextract\n"
    )
    tm(["tm_workflow", eid, "description", "--set", str(description)])
    tm(["tm_workflow", eid, "submit", "-i", "60"])
    return int(eid)


def planes(eid: int, limit: int | None = None) -> list:
    """The experiment's planes (pixels), in id order."""
    import sqlalchemy as sa

    import tmlib.models as tm_models

    with tm_models.utils.ExperimentSession(eid) as session:
        query = sa.select(tm_models.ChannelImageFile).order_by(tm_models.ChannelImageFile.id)
        return [p.get() for p in session.scalars(query.limit(limit))]


def previous_kernel_rate(images: list, adds: int) -> float:
    """Images/s of the float64 kernel corilla used before (for comparison only)."""
    import numpy as np

    table = np.zeros(65536)
    np.log10(np.arange(1, 65536, dtype=np.float64), out=table[1:])
    squares = table * table
    total = np.zeros(images[0].shape)
    total_sq = np.zeros(images[0].shape)
    histogram = np.zeros(65536, np.int64)
    start = time.perf_counter()
    for i in range(adds):
        image = images[i % len(images)]
        total += table[image]
        total_sq += squares[image]
        histogram += np.bincount(image.ravel(), minlength=65536)
    return adds / (time.perf_counter() - start)


def kernel_run(images: list, adds: int) -> dict:
    """One run of (a): add `adds` images, then compute the results."""
    from tmlib.illumination import IlluminationStats

    stats = IlluminationStats.empty(images[0].shape, images[0].dtype)
    cpu0, start = time.process_time(), time.perf_counter()
    for i in range(adds):
        stats.add(images[i % len(images)])
    added = time.perf_counter()
    stats.mean, stats.std, stats.percentiles()  # noqa: B018 - the final arithmetic
    finished, cpu = time.perf_counter(), time.process_time() - cpu0
    return {
        "images_per_s": round(adds / (finished - start), 2),
        "images_per_cpu_s": round(adds / cpu, 2),
        "add_ms_per_image": round((added - start) / adds * 1e3, 2),
        "results_s": round(finished - added, 3),
    }


def end_to_end_run(eid: int, n_images: int) -> dict:
    """One run of (b): init with one run job, time that job and the collect job."""
    from tmlib.workflow.steps.corilla import Corilla

    step = Corilla(eid)
    assert step.init({"batch_size": n_images}) == 1
    cpu0, start = time.process_time(), time.perf_counter()
    step.run(1)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    start = time.perf_counter()
    step.collect()
    collect = time.perf_counter() - start
    return {
        "images_per_s": round(n_images / seconds, 2),
        "images_per_cpu_s": round(n_images / cpu, 2),
        "run_job_s": round(seconds, 3),
        "run_job_cpu_s": round(cpu, 3),
        "collect_s": round(collect, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wells", type=int, default=2)
    parser.add_argument("--sites", type=int, default=24)
    parser.add_argument("--size", default="2160x2560")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = max(3, args.runs)
    with tempfile.TemporaryDirectory(prefix="tm-corilla-") as tmp:
        log(f"simulating and converting {args.wells} x {args.sites} images of {args.size} ...")
        eid = set_up(Path(tmp), args)
        cpu = pin_to_one_core()
        log(f"pinned to CPU {cpu} ({cpu_model()})")

        kernel_images = planes(eid, limit=8)
        n_images = len(planes(eid))
        shape = list(kernel_images[0].shape)
        log(f"(a) kernel: {KERNEL_ADDS} adds of {len(kernel_images)} in-memory images")
        kernel = []
        for run in range(runs):
            kernel.append(kernel_run(kernel_images, KERNEL_ADDS))
            log(f"  run {run + 1}: {kernel[-1]}")
        previous = [previous_kernel_rate(kernel_images, 16) for _ in range(runs)]
        log(f"  previous float64 kernel: {[round(r, 2) for r in previous]} images/s")
        del kernel_images

        log(f"(b) end to end: one corilla run job over {n_images} HDF5 planes")
        end_to_end = []
        for run in range(runs):
            end_to_end.append(end_to_end_run(eid, n_images))
            log(f"  run {run + 1}: {end_to_end[-1]}")

    rate = statistics.median(r["images_per_s"] for r in end_to_end)
    cpu_rate = statistics.median(r["images_per_cpu_s"] for r in end_to_end)
    kernel_rate = statistics.median(r["images_per_s"] for r in kernel)
    result = {
        "benchmark": "corilla",
        "images": n_images,
        "image_shape": shape,
        "dtype": "uint16",
        "cores": 1,
        "cpu": cpu_model(),
        "images_per_s_per_core": rate,
        "runs": [r["images_per_s"] for r in end_to_end],
        # CPU seconds of the job: robust where other processes share the core
        "images_per_cpu_s": cpu_rate,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "end_to_end": end_to_end,
        "kernel": {
            "images_per_s_per_core": kernel_rate,
            "images_per_cpu_s": statistics.median(r["images_per_cpu_s"] for r in kernel),
            "runs": kernel,
            "previous_float64_kernel_images_per_s": round(statistics.median(previous), 2),
        },
        "goal_images_per_s_per_core": GOAL_IMAGES_PER_S_PER_CORE,
        "meets_goal": rate >= GOAL_IMAGES_PER_S_PER_CORE,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
