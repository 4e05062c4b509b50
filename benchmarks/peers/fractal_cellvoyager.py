#!/usr/bin/env python3
"""Convert a CellVoyager acquisition with the peer tool fractal-uzh-converters and time it.

This script is the peer half of ``benchmarks/conversion.py``: it runs inside a
virtual environment that has ``fractal-uzh-converters`` installed (never our
runtime environment's requirement; see ``README.md`` beside this file) and
needs nothing from ``tmlib``.

What is measured is the Yokogawa CellVoyager converter of Fractal, the same
code a Fractal user runs as the compound task "Convert CellVoyager to OME-Zarr"
(``convert_cellvoyager_init_task`` + ``image_in_plate_compute_task``), called
through its one-call Python helper
``fractal_uzh_converters.convert_cellvoyager``.  It reads
``MeasurementData.mlf`` / ``MeasurementDetail.mrf`` and the TIFFs, stitches all
fields of a well into one image and writes an OME-Zarr plate (NGFF 0.4,
Zarr v2, blosc-lz4, 5-level pyramid, FOV and well ROI tables) to
``OUT_DIR/<plate name>.zarr``.

One process, one worker by default:

* the compute tasks run one after the other (``SequentialRunner``; no thread
  or process pool executor);
* tiles are written field by field (writer mode "By FOV");
* the pyramid, which ngio builds with dask, uses dask's synchronous scheduler;
* zarr's codec thread pool gets one worker and blosc one thread.

``--threads 0`` leaves all of these at the peer's own defaults (dask threads
and zarr/blosc pools sized to the CPU count), which is how a Fractal user runs
it and how the anchor figure in shared/reference/anchors.md was taken.

Usage::

    python fractal_cellvoyager.py ACQ_DIR OUT_DIR [--plate-name NAME]
        [--threads N] [--repeat N] [--pin-cpu CPU] [--keep]

The timed span is the converter call only: the interpreter start, the imports
of the peer, counting the raw bytes, removing an earlier output and checking
the new one are outside it.  The last line printed on stdout is one JSON
object: {"peer", "version", "seconds", "raw_bytes", "MBps", "processes", ...}
where MBps is raw image bytes (pixels x bytes per pixel, 1 MB = 10**6 bytes)
per second of the median run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import sys
import time
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

PEER = "fractal-uzh-converters"
NAMESPACE = "http://www.yokogawa.co.jp/BTS/BTSSchema/1.0"
MLF_NAME = "MeasurementData.mlf"
MRF_NAME = "MeasurementDetail.mrf"

#: Environment variables that cap native thread pools; they only take effect
#: when set before numpy and friends are imported (the CLI does that).
_THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "BLOSC_NTHREADS",
)


class PeerError(RuntimeError):
    """The peer is missing, failed, or wrote something unexpected."""


# ---------------------------------------------------------------------------
# Input: what the acquisition holds
# ---------------------------------------------------------------------------


def _tag(name: str) -> str:
    return f"{{{NAMESPACE}}}{name}"


def read_image_records(acquisition_dir: Path) -> list[dict[str, str]]:
    """The ``IMG`` records of ``MeasurementData.mlf`` as dicts of plain attribute names."""
    mlf = acquisition_dir / MLF_NAME
    if not mlf.is_file():
        raise PeerError(f"{mlf} not found: not a CellVoyager acquisition directory")
    root = ET.parse(mlf).getroot()
    records = []
    for element in root.iter(_tag("MeasurementRecord")):
        attrs = {key.rsplit("}", 1)[-1]: value for key, value in element.attrib.items()}
        if attrs.get("Type") != "IMG":
            continue
        attrs["file"] = (element.text or "").strip()
        records.append(attrs)
    if not records:
        raise PeerError(f"{mlf} lists no IMG records")
    return records


def _tiff_pixel_bytes(path: Path) -> int:
    """Bytes of the pixels of the first series of a TIFF (shape x itemsize)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        return math.prod(series.shape) * series.dtype.itemsize


def measure_input(acquisition_dir: Path, image_extension: str = ".tif") -> dict[str, Any]:
    """Images, wells and raw pixel bytes that the converter will read."""
    records = read_image_records(acquisition_dir)
    raw_bytes = 0
    for record in records:
        name = record["file"]
        if name.endswith(".tif") and image_extension != ".tif":
            name = name[: -len(".tif")] + image_extension
        path = acquisition_dir / name
        if not path.is_file():
            raise PeerError(f"image {path} listed in {MLF_NAME} does not exist")
        raw_bytes += _tiff_pixel_bytes(path)
    wells = {(r.get("Row"), r.get("Column")) for r in records}
    return {"images": len(records), "wells": len(wells), "raw_bytes": raw_bytes}


# ---------------------------------------------------------------------------
# Peer set-up
# ---------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in (PEER, "ome-zarr-converters-tools", "ngio", "zarr", "dask", "numcodecs"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = "missing"
    return found


def _import_peer() -> tuple[Any, Any]:
    try:
        from fractal_uzh_converters import CellVoyagerAcquisitionModel, convert_cellvoyager
    except ImportError as exc:
        raise PeerError(
            f"{PEER} is not importable from {sys.executable}: {exc}. "
            "Install it with: pip install fractal-uzh-converters==0.7.1"
        ) from exc
    return CellVoyagerAcquisitionModel, convert_cellvoyager


def _limit_threads(threads: int) -> dict[str, Any]:
    """Cap the peer's internal pools; returns the converter options to use.

    ``threads == 0`` changes nothing (the peer's defaults).  The zarr and
    blosc settings are process-wide and hold for the rest of the process,
    because zarr creates its thread pool once, on first use.
    """
    import zarr
    from ome_zarr_converters_tools import (
        ConverterOptions,
        RuntimeSettings,
        SynchronousScheduler,
        ThreadScheduler,
    )

    if threads == 0:
        return {"converter_options": ConverterOptions(), "settings": "peer defaults"}

    zarr.config.set({"threading.max_workers": threads})
    try:
        from numcodecs import blosc

        blosc.set_nthreads(threads)
        if threads == 1:
            blosc.use_threads = False
    except ImportError:  # pragma: no cover - numcodecs comes with zarr
        pass

    scheduler = SynchronousScheduler() if threads == 1 else ThreadScheduler(num_workers=threads)
    options = ConverterOptions(runtime_settings=RuntimeSettings(dask_scheduler=scheduler))
    settings = (
        f"SequentialRunner, writer_mode={options.writer_mode.value!r}, "
        f"dask scheduler={scheduler.type}"
        + (f"({threads})" if threads > 1 else "")
        + f", zarr threading.max_workers={threads}, blosc nthreads={threads}"
    )
    return {"converter_options": options, "settings": settings}


def _remove_previous_output(plate_zarr: Path) -> None:
    """Delete an earlier output of this script, refusing anything else."""
    if not plate_zarr.exists():
        return
    if not (
        plate_zarr.is_dir()
        and ((plate_zarr / ".zgroup").exists() or (plate_zarr / "zarr.json").exists())
    ):
        raise PeerError(f"{plate_zarr} exists and is not a zarr group; not deleting it")
    shutil.rmtree(plate_zarr)


def _check_output(updates: list[dict[str, Any]], wells: int, raw_bytes: int) -> dict[str, Any]:
    """Each well became one image whose full-resolution level holds all raw pixels."""
    import zarr

    urls = [item["zarr_url"] for update in updates for item in update["image_list_updates"]]
    if len(urls) != wells:
        raise PeerError(f"peer wrote {len(urls)} images for {wells} wells")
    level0_bytes = 0
    levels = set()
    for url in urls:
        group = zarr.open_group(url, mode="r")
        attrs = group.attrs.asdict()
        multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
        if not multiscales:
            raise PeerError(f"{url} has no multiscales metadata")
        datasets = multiscales[0]["datasets"]
        levels.add(len(datasets))
        level0 = group[datasets[0]["path"]]
        level0_bytes += math.prod(level0.shape) * level0.dtype.itemsize
    if level0_bytes < raw_bytes:
        raise PeerError(
            f"full-resolution levels hold {level0_bytes} bytes, less than the {raw_bytes} raw bytes"
        )
    return {"output_images": len(urls), "pyramid_levels": sorted(levels)}


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def convert(
    acquisition_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    plate_name: str | None = None,
    threads: int = 1,
    repeat: int = 1,
    keep: bool = True,
) -> dict[str, Any]:
    """Convert `acquisition_dir` to ``output_dir/<plate_name>.zarr`` with the peer and time it.

    Parameters
    ----------
    acquisition_dir
        Directory with ``MeasurementData.mlf``, ``MeasurementDetail.mrf`` and the TIFFs.
    output_dir
        Directory that receives ``<plate_name>.zarr`` (created if missing).  An
        earlier ``<plate_name>.zarr`` there is deleted before the timer starts.
    plate_name
        Name of the OME-Zarr plate; default the acquisition directory's name.
    threads
        1 (default): one worker everywhere; N > 1: dask/zarr/blosc pools of N;
        0: the peer's defaults.  The compute tasks always run sequentially.
    repeat
        Convert this many times (each into a fresh output); ``seconds`` is the median.
    keep
        Keep the output of the last run (earlier runs' outputs are always removed).

    Returns
    -------
    dict
        ``peer, version, seconds, raw_bytes, MBps, processes`` and details
        (``runs``, ``images``, ``wells``, ``cpu_seconds``, ``peak_rss_mb``, ...).
    """
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    if threads < 0:
        raise ValueError("threads must be 0 (peer defaults) or more")
    acq = Path(acquisition_dir).resolve()
    out = Path(output_dir).resolve()
    if not acq.is_dir():
        raise PeerError(f"{acq} is not a directory")
    if not (acq / MRF_NAME).is_file():
        raise PeerError(f"{acq / MRF_NAME} not found")

    t_import = time.perf_counter()
    acquisition_model_cls, convert_cellvoyager = _import_peer()
    import_seconds = time.perf_counter() - t_import
    setup = _limit_threads(threads)
    versions = _versions()

    name = plate_name or acq.name
    acquisition = acquisition_model_cls(path=str(acq), plate_name=name)
    plate_zarr = out / f"{name}.zarr"
    out.mkdir(parents=True, exist_ok=True)
    inputs = measure_input(acq, acquisition.image_extension)

    runs: list[float] = []
    cpu: list[float] = []
    check: dict[str, Any] = {}
    with warnings.catch_warnings():
        # anndata announces its future switch to zarr v3 once per table.
        warnings.filterwarnings("ignore", message="Writing zarr v2 data", category=UserWarning)
        for index in range(repeat):
            _remove_previous_output(plate_zarr)
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            try:
                updates = convert_cellvoyager(
                    zarr_dir=str(out),
                    acquisitions=[acquisition],
                    converter_options=setup["converter_options"],
                )
            except Exception as exc:
                raise PeerError(f"{PEER} failed on {acq}: {type(exc).__name__}: {exc}") from exc
            runs.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - cpu0)
            check = _check_output(updates, inputs["wells"], inputs["raw_bytes"])
            if index == repeat - 1 and not keep:
                _remove_previous_output(plate_zarr)

    seconds = statistics.median(runs)
    raw_bytes = inputs["raw_bytes"]
    return {
        "peer": PEER,
        "version": versions[PEER],
        "seconds": round(seconds, 4),
        "raw_bytes": raw_bytes,
        "MBps": round(raw_bytes / 1e6 / seconds, 2),
        "processes": 1,
        "threads": threads,
        "runs": [round(s, 4) for s in runs],
        "cpu_seconds": round(statistics.median(cpu), 4),
        "images": inputs["images"],
        "wells": inputs["wells"],
        "images_per_s": round(inputs["images"] / seconds, 3),
        "import_seconds": round(import_seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "output": str(plate_zarr) if keep else None,
        **check,
        "settings": setup["settings"],
        "versions": versions,
        "python": sys.version.split()[0],
    }


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Convert a CellVoyager acquisition to OME-Zarr with fractal-uzh-converters "
        "and print the timing as JSON on the last line.",
    )
    parser.add_argument("acquisition_dir", help="directory with MeasurementData.mlf and TIFFs")
    parser.add_argument("output_dir", help="directory that receives <plate>.zarr")
    parser.add_argument("--plate-name", help="plate name (default: acquisition dir name)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="worker threads inside the process: 1 (default), N, or 0 = peer defaults",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs; reports the median")
    parser.add_argument(
        "--pin-cpu", type=int, default=None, help="pin the process to this CPU (Linux)"
    )
    parser.add_argument(
        "--no-keep", dest="keep", action="store_false", help="delete the output afterwards"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.threads >= 1:
        for var in _THREAD_ENV:
            os.environ.setdefault(var, str(args.threads))
    if args.pin_cpu is not None:
        os.sched_setaffinity(0, {args.pin_cpu})
    try:
        result = convert(
            args.acquisition_dir,
            args.output_dir,
            plate_name=args.plate_name,
            threads=args.threads,
            repeat=args.repeat,
            keep=args.keep,
        )
    except (PeerError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(json.dumps({"peer": PEER, "error": str(exc)}))
        return 1
    if args.pin_cpu is not None:
        result["pinned_cpu"] = args.pin_cpu
    print(
        f"{PEER} {result['version']}: {result['images']} images, "
        f"{result['raw_bytes'] / 1e6:.1f} MB in {result['seconds']:.2f} s "
        f"(runs {result['runs']}) = {result['MBps']:.1f} MB/s",
        file=sys.stderr,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
