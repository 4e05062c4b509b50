#!/usr/bin/env python3
"""Run the peer CellProfiler headless on a simulated CellVoyager plate and time it.

This script is the peer half of ``benchmarks/jterator.py``. It needs only the
standard library where it is started; CellProfiler itself lives in a virtual
environment of its own, ``~/.cache/tissuemaps-bench/cellprofiler`` (under
``$XDG_CACHE_HOME`` when set), created on first use (about a minute with a
warm package index). It is never a dependency of tmlib.

Install recipe (shared/reference/anchors.md, section 2.1): ``pip install
cellprofiler`` does not install on Python 3.11; the 5.0 nightly builds do, when
the four packages are installed with ``--no-deps`` and their dependencies by
hand, without ``wxPython`` (GUI only, no Linux wheels on PyPI) and
``mysqlclient`` (ExportToDatabase to MySQL only; its sdist needs ``mysql_config``).

Headless run (same section)::

    cellprofiler -c -r -p PIPELINE -i INPUT_DIR -o OUTPUT_DIR -e imageio_reader

``-e imageio_reader`` keeps the Bio-Formats reader, which resolves Maven
artifacts over the network at run time, out of the run. The TIFFs are read
where they are (``-i`` is the simulator's plate folder); nothing is copied.

The pipeline is ``cellprofiler_pipeline.cppipe`` beside this file. It was
written from the settings that CellProfiler's own API dumps for these modules
(``Pipeline.dump`` of default instances; loading it with ``Pipeline.load`` and
dumping it again gives the same file), with the settings of our default
jterator pipeline where there is a counterpart:

* Images (every image of ``-i``), Metadata (well and site from the CellVoyager
  file name ``Sim_A01_T0001F001L01A01Z01C01.tif``), NamesAndTypes
  (``...C01.tif`` = DNA, the nuclear stain; ``...C02.tif`` = Stain, the
  cytoplasmic stain; one image set per well and site, matched by metadata);
* IdentifyPrimaryObjects -> Nuclei: global Otsu threshold of the smoothed DNA
  image lowered by a fifth (correction factor 0.8, as ours), holes filled, no
  declumping, no size or border filter (ours has none of these);
* IdentifySecondaryObjects -> Cells: propagation from Nuclei over Stain,
  global Otsu threshold;
* IdentifyTertiaryObjects -> Cytoplasm (Cells minus Nuclei);
* MeasureObjectIntensity (DNA and Stain, Cells), MeasureObjectSizeShape (Cells
  and Nuclei, no Zernike moments, as ours), MeasureTexture (Stain, Cells,
  scale 3, 256 grey levels, objects only);
* ExportToSpreadsheet: per-image and per-object CSV files into ``-o`` (ours
  saves objects and features too), also the source of the object counts.

One worker: headless ``-c -r`` analyses the image sets one after another in one
process; the process is pinned to one CPU and the BLAS/OpenMP pools get one
thread.

Usage::

    python cellprofiler.py install                       # create the venv (idempotent)
    python cellprofiler.py run INPUT_DIR OUTPUT_DIR      # last stdout line: JSON

``run`` prints one JSON object: ``peer``, ``version``, ``image_sets``,
``wall_s`` (the whole command: CellProfiler's start, the image sets, the CSV
export at the end), ``modules_s`` (the modules' wall times that CellProfiler
logs for each image set, summed), ``s_per_image_set`` (= ``modules_s`` / image
sets: the analysis without the start and the final export, as the anchor
figure), ``wall_s_per_image_set``, ``module_s_per_image_set`` and
``objects_per_image_set`` (Nuclei, Cells, Cytoplasm, from ``Image.csv``).
CellProfiler's log is kept as ``OUTPUT_DIR/cellprofiler.log``. On failure the
JSON is ``{"peer": "CellProfiler", "error": ...}`` and the exit status is 1.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PIPELINE = HERE / "cellprofiler_pipeline.cppipe"
VERSION = "5.0.0.dev784"
#: the four CellProfiler packages, installed with --no-deps
PACKAGES = [
    f"cellprofiler-nightly=={VERSION}",
    f"cellprofiler-core-nightly=={VERSION}",
    f"cellprofiler-library-nightly=={VERSION}",
    f"centriole-nightly=={VERSION}",
]
#: their dependencies without wxPython and mysqlclient; numpy < 2 and scipy < 1.11
#: are their pins, the rest are the versions that worked in anchors.md
DEPENDENCIES = [
    "numpy==1.26.4",
    "scipy==1.10.1",
    "scikit-image>=0.24,<0.25",
    "zarr>=2.18,<3",
    "pillow>=10,<12",
    "matplotlib>=3.9,<3.10",
    "scikit-learn>=1.3,<1.6",
    "scyjava>=1.9.1",
    "pydantic>=2.11.4",
    "mahotas>=1.4.13",
    "deprecation",
    "boto3>=1.28.41",
    "docutils==0.15.2",
    "future>=0.18.2",
    "fsspec>=2021.11.0",
    "h5py>=3.7.0",
    "lxml>=4.6.4",
    "psutil>=5.9.5",
    "pyzmq>=22.3.0",
    "google-cloud-storage~=2.10.0",
    "packaging>=20.0",
    "importlib_metadata",
    "imageio>=2.31.3",
    "Jinja2>=3.1.2",
    "joblib>=1.3.2",
    "sentry-sdk~=2.8.0",
    "requests>=2.31.0",
    "six>=1.16.0",
    "tifffile>=2022.4.8",
    "rapidfuzz>=3.0.0",
]
#: environment variables that cap native thread pools to one thread
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "NUMEXPR_NUM_THREADS", "BLOSC_NTHREADS")  # fmt: skip


class PeerError(RuntimeError):
    """CellProfiler could not be installed or run; the message is one line."""


def log(message: str) -> None:
    print(f"[cellprofiler] {message}", file=sys.stderr, flush=True)


def venv_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "tissuemaps-bench" / "cellprofiler"


def _one_line(proc: subprocess.CompletedProcess) -> str:
    lines = [ln.strip() for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return (errors or lines or [f"exit status {proc.returncode}"])[-1][:300]


def _pip(python: Path, args: list[str], what: str) -> None:
    log(f"pip install {what} ...")
    command = [str(python), "-m", "pip", "install", "-q", "--no-cache-dir", *args]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PeerError(f"pip install {what} failed: {_one_line(proc)}")


def ensure_installed(base_python: str | None = None) -> Path:
    """The python of the CellProfiler venv; create and fill the venv if it is not complete.

    A venv whose install finished has a marker file ``.installed`` with the
    version; anything else at that path is removed and built anew. Raises
    :class:`PeerError` with one line if it cannot be installed.
    """
    venv = venv_dir()
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.is_file() and marker.read_text().strip() == VERSION and python.exists():
        return python
    base = base_python or shutil.which("python3.11") or sys.executable
    log(f"creating CellProfiler {VERSION} in {venv} (first use; several minutes) ...")
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([base, "-m", "venv", str(venv)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise PeerError(f"{base} -m venv {venv} failed: {_one_line(proc)}")
    version = subprocess.run([str(python), "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
    if version != "(3, 11)":
        raise PeerError(f"{base} is Python {version}, the recipe is for 3.11")
    _pip(python, ["--no-deps", *PACKAGES], "--no-deps " + " ".join(PACKAGES))
    _pip(python, DEPENDENCIES, f"{len(DEPENDENCIES)} dependencies (no wxPython, no mysqlclient)")
    check = subprocess.run(
        [str(python), "-c", "import cellprofiler_core.pipeline, cellprofiler.__main__"],
        capture_output=True, text=True,
    )  # fmt: skip
    if check.returncode != 0:
        raise PeerError(f"installed CellProfiler does not import: {_one_line(check)}")
    marker.write_text(VERSION + "\n")
    log(f"installed CellProfiler {VERSION} in {venv}")
    return python


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------

MODULE_TIME = re.compile(r"Image # (\d+), module (\w+) # (\d+): .*Wall_time = ([0-9.]+) secs")


def run(
    input_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    pipeline: Path = PIPELINE,
    python: Path | None = None,
    cpu: int | None = -1,
) -> dict[str, Any]:
    """Analyse every image set in `input_dir` headless with one worker; timings and counts.

    `cpu`: the CPU to pin CellProfiler to; -1 (default): the first one this
    process may use; None: no pinning (the thread pools still get one thread).
    """
    python = python or ensure_installed()
    cellprofiler = python.parent / "cellprofiler"
    inp, out = Path(input_dir).resolve(), Path(output_dir).resolve()
    if not inp.is_dir():
        raise PeerError(f"{inp} is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    # matplotlib's cache goes into the venv, not the home folder
    env = dict(os.environ, **dict.fromkeys(THREAD_ENV, "1"), MPLBACKEND="Agg",
               MPLCONFIGDIR=str(python.parent.parent / "mplconfig"))  # fmt: skip
    env.pop("PYTHONPATH", None)
    command = [str(cellprofiler), "-c", "-r", "-p", str(pipeline), "-i", str(inp), "-o", str(out),
               "-e", "imageio_reader", "-L", "INFO"]  # fmt: skip
    if cpu == -1:
        cpu = min(os.sched_getaffinity(0))
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    log(" ".join(command))
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    (out / "cellprofiler.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise PeerError(f"cellprofiler failed ({proc.returncode}): {_one_line(proc)}")
    modules: dict[str, float] = defaultdict(float)
    sets = set()
    for match in MODULE_TIME.finditer(proc.stdout + proc.stderr):
        sets.add(int(match[1]))
        modules[match[2]] += float(match[4])
    counts = _object_counts(out / "Image.csv")
    n = len(counts["sets"]) or len(sets)
    if n == 0:
        raise PeerError(f"cellprofiler analysed no image set (log: {out / 'cellprofiler.log'})")
    total = sum(modules.values())
    return {
        "peer": "CellProfiler",
        "version": _version(python),
        "image_sets": n,
        "wall_s": round(wall, 2),
        "modules_s": round(total, 2),
        "s_per_image_set": round(total / n, 2) if total else round(wall / n, 2),
        "wall_s_per_image_set": round(wall / n, 2),
        "module_s_per_image_set": {k: round(v / n, 2) for k, v in modules.items()},
        "objects_per_image_set": {k: round(v / n, 1) for k, v in counts["objects"].items()},
        "cpu": cpu,
    }


def _object_counts(image_csv: Path) -> dict[str, Any]:
    if not image_csv.is_file():
        raise PeerError(f"cellprofiler wrote no {image_csv.name}")
    objects: dict[str, float] = defaultdict(float)
    sets = []
    with image_csv.open(newline="") as f:
        for row in csv.DictReader(f):
            sets.append(row.get("ImageNumber"))
            for key, value in row.items():
                if key.startswith("Count_") and value:
                    objects[key.removeprefix("Count_")] += float(value)
    return {"sets": sets, "objects": dict(objects)}


def _version(python: Path) -> str:
    proc = subprocess.run(
        [str(python), "-c", "from importlib.metadata import version as v; "
         "print(v('cellprofiler-nightly'))"], capture_output=True, text=True,
    )  # fmt: skip
    return proc.stdout.strip() or VERSION


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("install", help="create the CellProfiler venv if needed; print its python")
    p_run = sub.add_parser("run", help="analyse INPUT_DIR headless; last stdout line is JSON")
    p_run.add_argument("input_dir")
    p_run.add_argument("output_dir")
    p_run.add_argument("--pipeline", type=Path, default=PIPELINE)
    p_run.add_argument(
        "--cpu", type=int, default=-1, help="CPU to pin to (default: the first allowed one)"
    )
    p_run.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            print(ensure_installed())
        else:
            cpu = None if args.no_pin else args.cpu
            print(json.dumps(run(args.input_dir, args.output_dir, args.pipeline, cpu=cpu)))
    except PeerError as err:
        print(f"cellprofiler peer: {err}", file=sys.stderr)
        if args.command == "run":
            print(json.dumps({"peer": "CellProfiler", "error": str(err)}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
