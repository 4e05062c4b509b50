"""Benchmark: illuminati end to end (16-bit planes to a 256-px JPEG pyramid) against libvips.

Simulates a CellVoyager plate of 2160x2560 16-bit sites in one channel
(default 4 wells x 20 sites, 442 Mpx of image pixels), converts it (the
image_conversion stage, not timed) and then times, several times per batch
size (``auto``: the automatic default), ``tm_workflow ID resubmit --stage
pyramid_creation`` (illuminati with ``--clip --clip-value V -b B``) with the
local backend on all cores: init, clip, rescale to 8 bit, tile, all levels,
collect. Reports image Mpx (the 16-bit input) per second, in total and per
core, with the run jobs', collect job's and engine's share of the time and the
fixed cost (``fixed_s``: all but the run phase, see ``common.fixed_cost``).

In the same run it renders the same 8-bit mosaic once into memory and times
libvips (pyvips with its binary wheel) building a 256-px JPEG pyramid of it
with ``dzsave`` (Q 90, no overlap, down to one tile), once into a directory
of tile files and once into one uncompressed zip, on one thread and with
libvips' default concurrency. Its Mpx are mosaic Mpx (spacers included):
the pixels it tiles. Per core ratio: our mosaic Mpx/s per core over libvips'
one-thread zip Mpx/s (the same pixels out, one core each).

Finally it runs every job of the best batch size in this process with timers
around each part (HDF5 read, LUT, paste, halving, JPEG encoding, SQLite,
collect) and reports where the time goes.

Usage::

    python benchmarks/pyramid.py [--wells 4] [--sites 20] [--runs 3] [--batch-sizes auto,100]

The last line of the output is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

from common import fixed_cost, job_times, registered_plate, tm

GOAL_MPX_PER_S_PER_CORE = 60.0
CORES = os.cpu_count() or 1


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def set_up(tmp: Path, args: argparse.Namespace) -> int:
    """Simulate the plate, register it and convert it; the experiment's id."""
    eid = registered_plate(tmp, "pyramid", args.wells, args.sites, args.size)
    os.environ["TMAPS_CORES"] = str(CORES)
    describe(int(eid), args.batch_sizes.split(",")[0], args.clip_value)
    tm(["tm_workflow", eid, "submit", "-i", "60"])  # converts, and builds pyramids once
    shutil.rmtree(tmp / "plate")  # the planes are in the experiment now
    return int(eid)


def describe(eid: int, batch_size: int | str, clip_value: int) -> None:
    """Store a workflow description of image_conversion and pyramid_creation."""
    path = Path(os.environ["TMAPS_HOME"]) / "wf.yaml"
    path.write_text(
        "type: canonical\nstages:\n- name: image_conversion\n  steps:\n"
        "  - name: metaextract\n  - name: metaconfig\n  - name: imextract\n"
        "- name: pyramid_creation\n  steps:\n  - name: illuminati\n    batch_args:\n"
        f"      clip: true\n      clip_value: {clip_value}\n"
        + ("" if batch_size == "auto" else f"      batch_size: {batch_size}\n")
    )
    tm(["tm_workflow", str(eid), "description", "--set", str(path)])


def experiment_facts(eid: int) -> dict:
    """Number and pixels of the image planes, and the pyramid's size (after a run)."""
    import sqlalchemy as sa

    import tmlib.models as tm_models

    with tm_models.utils.ExperimentSession(eid) as session:
        experiment = session.scalars(sa.select(tm_models.Experiment)).one()
        sites = session.scalars(sa.select(tm_models.Site)).all()
        n_files = session.scalar(sa.select(sa.func.count(tm_models.ChannelImageFile.id)))
        return {
            "images": n_files,
            "image_px": sum(s.height * s.width for s in sites),
            "site_size": [sites[0].height, sites[0].width],
            "mosaic": [experiment.pyramid_height, experiment.pyramid_width],
            "depth": experiment.pyramid_depth,
        }


# ------------------------------------------------------------------------ ours


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def init_args(batch_size: int | str, clip_value: int) -> list[str]:
    given = [] if batch_size == "auto" else ["-b", str(batch_size)]
    return ["init", "--clip", "--clip-value", str(clip_value), *given]


def run_ours(eid: int, batch_size: int, clip_value: int, runs: int) -> list[dict]:
    """Each run: ``tm_workflow ID resubmit --stage pyramid_creation``, wall-clock.

    That is how users run it: the init job (which removes the previous
    pyramid), the run jobs and the collect job on the local backend. CPU
    seconds too, which other load on the machine hardly changes: of the
    program and of every job (as the local backend measured them; not
    counted: the job spawner's one-off imports).
    """
    describe(eid, batch_size, clip_value)
    results = []
    for run in range(runs):
        cpu = children_cpu()
        submit_start = time.time()
        start = time.perf_counter()
        tm(["tm_workflow", str(eid), "resubmit", "--stage", "pyramid_creation", "-i", "60"])
        total = time.perf_counter() - start
        submit_end = time.time()
        jobs = job_times(eid)
        fixed = fixed_cost(eid, submit_start, submit_end)
        first_start, last_end = jobs.pop("first_start"), jobs.pop("last_end")
        results.append({
            "seconds": total, **jobs,
            # the program's and the job spawner's start-up
            "submit_to_first_job": first_start - submit_start,
            "first_to_last_job": last_end - first_start,
            # the engine noticing the end, the last status, the program's exit
            "after_last_job": submit_end - last_end,
            "programs_cpu": children_cpu() - cpu,
            # all but the run phase: program start, spawner, init, collect, exit
            "fixed_s": fixed["fixed_s"],
        })  # fmt: skip
        log(f"  ours -b {batch_size}, run {run + 1}: {total:.2f} s (init {jobs['init']:.2f} s, "
            f"{jobs['jobs']} run jobs {jobs['run_jobs_sum']:.2f} s in all, "
            f"collect {jobs['collect']:.2f} s)")  # fmt: skip
    return results


#: what the summary shows of a run: wall seconds, then CPU seconds
SPLIT_KEYS = ("fixed_s", "init", "submit_to_first_job", "first_to_last_job", "after_last_job",
              "run_jobs_sum", "run_job_max", "collect", "programs_cpu", "init_cpu",
              "run_jobs_cpu", "collect_cpu")  # fmt: skip


def summarize_ours(batch_size: int, runs: list[dict], image_mpx: float, mosaic_mpx: float):
    median_s = statistics.median(r["seconds"] for r in runs)
    middle = min(runs, key=lambda r: abs(r["seconds"] - median_s))
    cpu = (
        middle["programs_cpu"] + middle["init_cpu"] + middle["run_jobs_cpu"] + middle["collect_cpu"]
    )
    return {
        "batch_size": batch_size,
        "seconds_median": round(median_s, 2),
        "runs": [round(r["seconds"], 2) for r in runs],
        "Mpx_per_s": round(image_mpx / median_s, 1),
        "Mpx_per_s_per_core": round(image_mpx / median_s / CORES, 1),
        "mosaic_Mpx_per_s_per_core": round(mosaic_mpx / median_s / CORES, 1),
        "Mpx_per_cpu_s": round(image_mpx / cpu, 1),
        "run_jobs": middle["jobs"],
        "split_s_of_median_run": {key: round(middle[key], 2) for key in SPLIT_KEYS},
    }


# --------------------------------------------------------------------- profile


class Sections:
    """Exclusive CPU seconds per named section: a section inside another pauses the outer.

    CPU, not wall time, so that other load on the machine does not blur the split
    (our jobs are single-threaded: ``cv2.setNumThreads(1)``, Blosc on one thread).
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list] = []  # [name, start of the current stretch]
        self._wrapped: list[tuple[object, str, Callable]] = []

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        now = time.process_time()
        if self._stack:
            outer = self._stack[-1]
            self.seconds[outer[0]] += now - outer[1]
        self._stack.append([name, now])
        try:
            yield
        finally:
            now = time.process_time()
            self.seconds[name] += now - self._stack.pop()[1]
            self.calls[name] += 1
            if self._stack:
                self._stack[-1][1] = now

    def wrap(self, owner: object, attribute: str, name: str) -> None:
        """Time every call of ``owner.attribute`` as section `name`."""
        function = getattr(owner, attribute)
        self._wrapped.append((owner, attribute, function))

        def timed(*args, **kwargs):
            with self.section(name):
                return function(*args, **kwargs)

        setattr(owner, attribute, timed)

    def unwrap(self) -> None:
        for owner, attribute, function in reversed(self._wrapped):
            setattr(owner, attribute, function)
        self._wrapped.clear()


def profile_ours(eid: int, batch_size: int, clip_value: int) -> dict:
    """Every run job and the collect job in this process (one core), timed by part."""
    import tmlib.models as tm_models
    from tmlib import pyramid
    from tmlib.tiles import TileWriter
    from tmlib.workflow.steps import illuminati

    tm(["illuminati", str(eid), *init_args(batch_size, clip_value)])
    timer = Sections()
    for owner, attribute, name in [
        (tm_models.ChannelImageFile, "get", "hdf5_read"),
        (pyramid, "to_display", "lut"),
        (pyramid, "halve", "halve"),
        (pyramid, "encode_tile", "jpeg_encode"),
        (TileWriter, "put", "sqlite_write"),
        (TileWriter, "put_many", "sqlite_write"),
        (TileWriter, "close", "sqlite_write"),
        (illuminati, "_save_array", "top_npy"),
        (TileWriter, "add_container", "collect_merge"),
        (illuminati, "_top_levels", "collect_top_levels"),
        (illuminati, "_add_static_objects", "collect_static_objects"),
    ]:
        timer.wrap(owner, attribute, name)
    step = illuminati.Illuminati(eid)
    start = time.perf_counter()
    try:
        with timer.section("run_other"):  # the jobs' database query, cutting tiles, ...
            for job_id in step.run_job_ids():
                step.run(job_id)
        with timer.section("collect_other"):
            step.collect()
    finally:
        timer.unwrap()
    return {"cpu": dict(timer.seconds), "calls": dict(timer.calls),
            "wall": time.perf_counter() - start}  # fmt: skip


def profile_summary(profile: dict, best: dict, image_mpx: float) -> dict:
    """The split in CPU seconds, and what a forked job costs beyond its work."""
    cpu = profile["cpu"]
    run_cpu = sum(v for k, v in cpu.items() if not k.startswith("collect_"))
    jobs, tiles = best["run_jobs"], profile["calls"]["jpeg_encode"]
    per_job = (best["split_s_of_median_run"]["run_jobs_cpu"] - run_cpu) / jobs
    return {
        "cpu_seconds": round(sum(cpu.values()), 2),
        "wall_seconds": round(profile["wall"], 2),
        "image_Mpx_per_cpu_s": round(image_mpx / sum(cpu.values()), 1),
        "run_jobs_image_Mpx_per_cpu_s": round(image_mpx / run_cpu, 1),
        "split_cpu_s": {k: round(v, 3) for k, v in sorted(cpu.items(), key=lambda i: -i[1])},
        "job_overhead_cpu_s_per_job": round(per_job, 3),
        "images": profile["calls"]["hdf5_read"],
        "tiles": tiles,
        "jpeg_encode_us_per_tile": round(cpu["jpeg_encode"] / tiles * 1e6),
    }


# ------------------------------------------------------------------------ peer


def render_mosaic(eid: int, clip_value: int):
    """The 8-bit mosaic our pyramid's base level shows, rendered with our functions."""
    import numpy as np
    import sqlalchemy as sa

    import tmlib.models as tm_models
    from tmlib import pyramid
    from tmlib.mosaic import experiment_mosaic

    with tm_models.utils.ExperimentSession(eid) as session:
        layout = experiment_mosaic(session)
        files = session.scalars(sa.select(tm_models.ChannelImageFile)).all()
        bit_depth = files[0].channel.bit_depth
        window = pyramid.intensity_window(bit_depth, True, clip_value)
        canvas = np.zeros((layout.height, layout.width), np.uint8)
        for f in files:
            box = layout.sites[f.site_id]
            canvas[box.y : box.bottom, box.x : box.right] = pyramid.to_display(f.get(), *window)
    return canvas


def run_vips(canvas, out: Path, runs: int, mosaic_mpx: float) -> dict:
    """libvips' dzsave of the mosaic into tile files and into one zip, 1 thread and default.

    Medians of wall and CPU seconds (the process's, all threads).
    """
    try:
        import pyvips
    except ImportError:
        return {"skipped": "pyvips is not installed: pip install -e '.[bench]'"}
    height, width = canvas.shape
    image = pyvips.Image.new_from_memory(canvas.data, width, height, 1, "uchar")
    options = {"tile_size": 256, "overlap": 0, "suffix": ".jpg[Q=90]", "depth": "onetile",
               "layout": "dz"}  # fmt: skip
    default_threads = pyvips.concurrency_get()
    version = ".".join(str(pyvips.version(i)) for i in range(3))
    peer = {"peer": f"libvips {version} (pyvips {pyvips.__version__})", "Mpx": "mosaic Mpx",
            "options": "dzsave tile_size=256 overlap=0 suffix=.jpg[Q=90] depth=onetile "
            "layout=dz; container: container=zip compression=0",
            "default_threads": default_threads}  # fmt: skip
    for threads in (1, default_threads):
        pyvips.concurrency_set(threads)
        label = "1thread" if threads == 1 else "default_threads"
        for kind, extra in (("files", {}), ("container", {"container": "zip", "compression": 0})):
            walls, cpus = [], []
            for run in range(runs):
                target = out / f"vips_{kind}_{run}"
                cpu, start = time.process_time(), time.perf_counter()
                image.dzsave(str(target), **options, **extra)
                walls.append(time.perf_counter() - start)
                cpus.append(time.process_time() - cpu)
                for written in out.glob(f"{target.name}*"):  # .dzi and _files/, or .zip
                    shutil.rmtree(written) if written.is_dir() else written.unlink()
            wall, cpu = statistics.median(walls), statistics.median(cpus)
            peer[f"{kind}_seconds_{label}"] = round(wall, 2)
            peer[f"{kind}_cpu_seconds_{label}"] = round(cpu, 2)
            peer[f"{kind}_Mpx_per_s_{label}"] = round(mosaic_mpx / wall, 1)
            log(f"  libvips {kind}, {threads} thread(s): {[round(w, 2) for w in walls]} s")
    pyvips.concurrency_set(default_threads)
    return peer


# ------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wells", type=int, default=4)
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--size", default="2160x2560")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--batch-sizes",
        default="auto,100",
        help="illuminati -b values to try ('auto': the default, automatic)",
    )
    parser.add_argument("--clip-value", type=int, default=4000)
    parser.add_argument("--no-profile", action="store_true", help="skip the split by part")
    args = parser.parse_args()
    batch_sizes = [b if b == "auto" else int(b) for b in args.batch_sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="tm-pyramid-") as tmp:
        tmp_path = Path(tmp)
        log(f"simulating and converting {args.wells} wells x {args.sites} sites ...")
        eid = set_up(tmp_path, args)
        load_before = round(os.getloadavg()[0], 2)  # other work on the machine blurs the times
        ours_runs = {b: run_ours(eid, b, args.clip_value, args.runs) for b in batch_sizes}
        facts = experiment_facts(eid)
        image_mpx = facts["image_px"] / 1e6
        mosaic_mpx = facts["mosaic"][0] * facts["mosaic"][1] / 1e6
        log(f"{facts['images']} images, {image_mpx:.0f} Mpx; mosaic {facts['mosaic']}, "
            f"{mosaic_mpx:.0f} Mpx, {facts['depth']} levels")  # fmt: skip
        tried = [summarize_ours(b, r, image_mpx, mosaic_mpx) for b, r in ours_runs.items()]
        best = min(tried, key=lambda t: t["seconds_median"])

        log("rendering the 8-bit mosaic for libvips ...")
        canvas = render_mosaic(eid, args.clip_value)
        peer = run_vips(canvas, tmp_path, args.runs, mosaic_mpx)
        del canvas

        result = {
            "benchmark": "pyramid",
            "cores": CORES,
            "load_average_before": load_before,
            "images": facts["images"],
            "site_size": facts["site_size"],
            "image_Mpx": round(image_mpx, 1),
            "mosaic_Mpx": round(mosaic_mpx, 1),
            "mosaic_size": facts["mosaic"],
            "levels": facts["depth"],
            "clip_value": args.clip_value,
            "ours": best,
            "ours_tried": tried,
            "peer": peer,
            "goal_Mpx_per_s_per_core": GOAL_MPX_PER_S_PER_CORE,
            "meets_goal": best["Mpx_per_s_per_core"] >= GOAL_MPX_PER_S_PER_CORE,
        }
        if "skipped" not in peer:
            # the same pixels out (mosaic Mpx) per core: ours on all cores, libvips on one thread
            for kind in ("container", "files"):
                result[f"ratio_per_core_vs_vips_{kind}"] = round(
                    best["mosaic_Mpx_per_s_per_core"] / peer[f"{kind}_Mpx_per_s_1thread"], 2
                )
        if not args.no_profile:
            log(f"profiling every job of -b {best['batch_size']} in one process ...")
            result["profile_one_core"] = profile_summary(
                profile_ours(eid, best["batch_size"], args.clip_value), best, image_mpx
            )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
