"""Benchmark: the default jterator pipeline on 2-channel 2160x2560 16-bit sites.

1. End to end: ``tm_workflow ID resubmit --stage image_analysis`` (init, run
   jobs on all cores, collect) on a simulated, converted and corrected plate:
   seconds per site per core = wall seconds x cores / sites; once with the
   description's ``--batch-size`` (``end_to_end``) and once with the default
   description, whose batch size is automatic (``default_description``: what
   ``tm_workflow ID submit`` runs for a user who changed nothing). Each with
   the fixed cost of its median run (``common.fixed_cost``).
2. Where a site's time goes, in this process on one core: loading (with
   illumination correction), the pipeline's modules, saving.
3. Saving alone: objects with outlines and 100 features each into SQLite and
   PostgreSQL (a scratch database), objects + feature values per second.

4. The peer, CellProfiler 5 (nightly build 5.0.0.dev784, headless, one
   process pinned to one core), on the same simulated plate's TIFFs with a
   comparable pipeline (``benchmarks/peers/cellprofiler_pipeline.cppipe``:
   primary, secondary and tertiary objects, intensity, size and shape,
   texture, CSV export): seconds per site (image set) on one core, objects
   per site, and ``ratio_vs_cellprofiler`` = its s/site/core / ours. It runs
   from a virtual environment of its own, created on first use under
   ``~/.cache/tissuemaps-bench/cellprofiler`` (see benchmarks/peers/cellprofiler.py);
   if that cannot be installed, the result says why under ``"cellprofiler"``.

Goal: <= 4 s per site per core. The anchor figure for CellProfiler, 20.5 s per
site on this kind of machine (reference/anchors.md), is reported beside the
measured one.

Usage::

    python benchmarks/jterator.py [--wells 2] [--sites 4] [--runs 3] [--no-peer]

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

from common import (
    DEFAULT_PG_URL,
    fixed_cost,
    job_times,
    registered_plate,
    scratch_pg_database,
    tm,
)

GOAL_S_PER_SITE_PER_CORE = 4.0
CELLPROFILER_S_PER_SITE = 20.5  # reference/anchors.md, measured on a machine like this one
CORES = os.cpu_count() or 1


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def set_up(tmp: Path, args: argparse.Namespace) -> int:
    eid = registered_plate(tmp, "jterator", args.wells, args.sites, args.size, channels=2)
    os.environ["TMAPS_CORES"] = str(CORES)
    path = tmp / "home" / "wf.yaml"
    path.write_text(
        "type: canonical\nstages:\n- name: image_conversion\n  steps:\n"
        "  - name: metaextract\n  - name: metaconfig\n  - name: imextract\n"
        "- name: image_preprocessing\n  steps:\n  - name: corilla\n"
        "- name: image_analysis\n  steps:\n  - name: jterator\n"
        f"    batch_args:\n      batch_size: {args.batch_size}\n"
    )
    tm(["tm_workflow", eid, "description", "--set", str(path)])
    tm(["tm_workflow", eid, "submit", "-i", "60"])  # also runs the pipeline once
    return int(eid)


def end_to_end(eid: int, runs: int) -> tuple[list[float], dict, dict]:
    """Wall seconds of each run, the jobs' times of the last one, and the fixed cost
    of the median run."""
    seconds, fixed = [], []
    for run in range(runs):
        start, wall = time.time(), time.perf_counter()
        tm(["tm_workflow", str(eid), "resubmit", "--stage", "image_analysis", "-i", "60"])
        seconds.append(time.perf_counter() - wall)
        fixed.append(fixed_cost(eid, start, time.time()))
        log(f"  run {run + 1}: {seconds[-1]:.2f} s (fixed {fixed[-1]['fixed_s']:.2f} s)")
    jobs = job_times(eid)
    jobs.pop("first_start"), jobs.pop("last_end")
    median = statistics.median(seconds)
    middle = min(range(runs), key=lambda i: abs(seconds[i] - median))
    return seconds, {k: round(v, 2) for k, v in jobs.items()}, fixed[middle]


def use_default_description(eid: int) -> None:
    """Store the default description (automatic batch sizes), as a user who changed nothing."""
    import yaml

    from tmlib.workflow.description import WorkflowDescription

    path = Path(os.environ["TMAPS_HOME"]) / "default.yaml"
    path.write_text(yaml.safe_dump(WorkflowDescription.default().to_dict(), sort_keys=False))
    tm(["tm_workflow", str(eid), "description", "--set", str(path)])


def summarize(runs: list[float], jobs: dict, fixed: dict, n_sites: int) -> dict:
    median = statistics.median(runs)
    return {"runs": [round(r, 2) for r in runs], "seconds_median": round(median, 2),
            "s_per_site_per_core": round(median * CORES / n_sites, 2),
            "jobs_of_last_run": jobs, "fixed_cost_of_median_run": fixed}  # fmt: skip


def split_one_core(eid: int) -> dict:
    """Load, pipeline and save of every site in this process, timed."""
    import sqlalchemy as sa

    import tmlib.models as tm_models
    from tmlib.jterator.pipeline import run_pipeline
    from tmlib.jterator.saving import SiteOutput, save_objects
    from tmlib.workflow.steps.jterator import Jterator, SiteLoader

    step = Jterator(eid)
    times = {"load": 0.0, "pipeline": 0.0, "save": 0.0}
    outputs = []
    with tm_models.utils.ExperimentSession(eid) as session:
        project = step.load_project(session)
        loader = SiteLoader(session, project)
        sites = list(session.scalars(sa.select(tm_models.Site.id)))
        for site_id in sites:
            start = time.process_time()
            images = loader.images(site_id, 0)
            loaded = time.process_time()
            result = run_pipeline(project, images)
            times["load"] += loaded - start
            times["pipeline"] += time.process_time() - loaded
            outputs.append(SiteOutput(site_id, 0, loader.offset(site_id), result))
        start = time.process_time()
        polygons = {o.name: o.as_polygons for o in project.output_objects}
        objects = save_objects(session, eid, outputs, polygons)
        times["save"] = time.process_time() - start
    features = sum(o.result.features[n].shape[1] * len(o.result.features[n])
                   for o in outputs for n in polygons)  # fmt: skip
    return {
        "sites": len(sites),
        "cpu_s_per_site": {k: round(v / len(sites), 3) for k, v in times.items()},
        "objects_per_site": round(objects / len(sites), 1),
        "features_per_object": round(features / max(objects, 1), 1),
    }


def save_rate(db_url: str, n_sites: int = 10, n_objects: int = 1000, n_features: int = 100):
    """Objects (with outlines) and feature values saved per second into `db_url`."""
    import numpy as np
    import pandas as pd

    import tmlib.models as tm_models
    from tmlib import registry
    from tmlib.jterator.pipeline import SiteResult
    from tmlib.jterator.saving import SiteOutput, save_objects
    from tmlib.models.session import dispose_engines

    os.environ["TMAPS_DB_URL"] = db_url
    dispose_engines()
    registry.add_user("rate", "rate", "rate@example.org")
    eid = registry.add_experiment("rate", "rate")
    rng = np.random.default_rng(0)
    side = int(np.ceil(np.sqrt(n_objects)))
    labels = np.zeros((side * 20, side * 20), np.int32)
    for i in range(n_objects):  # a grid of 12x12 squares
        r, c = divmod(i, side)
        labels[r * 20 + 4 : r * 20 + 16, c * 20 + 4 : c * 20 + 16] = i + 1
    index = pd.Index(np.arange(1, n_objects + 1), name="label")
    with tm_models.utils.ExperimentSession(eid) as session:
        kind = tm_models.MapobjectType(name="Cells", ref_type="Site", experiment_id=eid)
        session.add_all([kind, tm_models.SegmentationLayer(mapobject_type=kind, tpoint=0,
                                                           zplane=0)])  # fmt: skip
    outputs = []
    for site in range(n_sites):
        frame = pd.DataFrame(rng.normal(size=(n_objects, n_features)), index=index,
                             columns=[f"Feature_{j}" for j in range(n_features)])  # fmt: skip
        result = SiteResult(objects={"Cells": labels}, features={"Cells": frame})
        outputs.append(SiteOutput(site + 1, 0, (0, 0), result))
    start = time.perf_counter()
    with tm_models.utils.ExperimentSession(eid) as session:
        saved = save_objects(session, eid, outputs, {"Cells": True})
    seconds = time.perf_counter() - start
    dispose_engines()
    return {
        "objects": saved,
        "features_per_object": n_features,
        "seconds": round(seconds, 2),
        "objects_per_s": round(saved / seconds),
        "values_per_s": round(saved * n_features / seconds),
    }


def cellprofiler(plate: Path, workdir: Path) -> dict:
    """CellProfiler on the plate's TIFFs, one core; ``{"skipped": why}`` if it cannot run."""
    from peers import cellprofiler as peer

    n_tiffs = len(list(plate.glob("*.tif")))
    if n_tiffs == 0:
        return {"skipped": f"no TIFFs left in {plate}"}
    try:
        result = peer.run(plate, workdir / "cellprofiler-out", python=peer.ensure_installed())
    except peer.PeerError as err:
        return {"skipped": str(err)}
    return {
        "peer": f"CellProfiler {result['version']}",
        "s_per_site_1core": result["s_per_image_set"],
        "sites": result["image_sets"],
        "wall_s": result["wall_s"],
        "wall_s_per_site": result["wall_s_per_image_set"],
        "objects_per_site": result["objects_per_image_set"],
        "s_per_site_by_module": {k: v for k, v in result["module_s_per_image_set"].items() if v},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wells", type=int, default=2)
    parser.add_argument("--sites", type=int, default=4)
    parser.add_argument("--size", default="2160x2560")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4, help="sites per run job")
    parser.add_argument("--no-peer", action="store_true", help="do not run CellProfiler")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tm-jterator-") as tmp:
        tmp_path = Path(tmp)
        log(f"simulating, converting and correcting {args.wells} wells x {args.sites} sites ...")
        eid = set_up(tmp_path, args)
        n_sites = args.wells * args.sites
        log(f"end to end: tm_workflow resubmit --stage image_analysis (-b {args.batch_size})")
        explicit = summarize(*end_to_end(eid, args.runs), n_sites)
        log("end to end with the default description (automatic batch size)")
        use_default_description(eid)
        default = summarize(*end_to_end(eid, args.runs), n_sites)
        log("one core, by part ...")
        split = split_one_core(eid)
        log("saving rate: SQLite ...")
        os.environ["TMAPS_HOME"] = str(tmp_path / "rate-sqlite")
        sqlite = save_rate(f"sqlite:///{tmp_path}/rate.db")
        log("saving rate: PostgreSQL ...")
        os.environ["TMAPS_HOME"] = str(tmp_path / "rate-postgresql")
        try:
            with scratch_pg_database(DEFAULT_PG_URL) as url:
                postgresql = save_rate(url)
        except Exception as err:  # no server: say so in the result
            postgresql = {"skipped": f"{type(err).__name__}: {err}"[:200]}
        if args.no_peer:
            peer = {"skipped": "--no-peer"}
        else:
            log("peer: CellProfiler on the same TIFFs, one core ...")
            peer = cellprofiler(tmp_path / "plate", tmp_path)
    per_site_per_core = explicit["s_per_site_per_core"]
    peer_s = peer.get("s_per_site_1core")
    print(json.dumps({
        "benchmark": "jterator",
        "cores": CORES,
        "sites": n_sites,
        "site_shape": [int(v) for v in args.size.split("x")],
        "batch_size": args.batch_size,
        "end_to_end": explicit,
        "default_description": default,
        "one_core": split,
        "saving": {"sqlite": sqlite, "postgresql": postgresql},
        "goal_s_per_site_per_core": GOAL_S_PER_SITE_PER_CORE,
        "cellprofiler": peer,
        "ratio_vs_cellprofiler": round(peer_s / per_site_per_core, 1) if peer_s else None,
        "cellprofiler_s_per_site_anchor": CELLPROFILER_S_PER_SITE,
        "ratio_vs_cellprofiler_anchor": round(CELLPROFILER_S_PER_SITE / per_site_per_core, 1),
        "meets_goal": max(per_site_per_core, default["s_per_site_per_core"])
        <= GOAL_S_PER_SITE_PER_CORE,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
