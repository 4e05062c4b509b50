"""Benchmark: HDF5 settings for extracted image planes (speed of write and read, size on disk).

Simulates a few 2160x2560 16-bit CellVoyager planes with ``tm_simulate``, then
writes and reads each plane with several h5py settings, through the same code
path the models use (:func:`tmlib.storage.write_datasets`, temp file + rename).
Blosc runs single-threaded here (``BLOSC_NTHREADS=1``) so that the figures are
per core. Reports the median over repetitions of MB/s (of raw pixel bytes) and the
compression ratio. The last line of the output is one JSON object.

Usage::

    python benchmarks/hdf5_settings.py [--planes 8] [--repeats 3]
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
from unittest import mock

os.environ.setdefault("BLOSC_NTHREADS", "1")  # per-core figures; set before the filter loads

import hdf5plugin  # noqa: E402
import numpy as np  # noqa: E402
import tifffile  # noqa: E402

from tmlib import storage  # noqa: E402

CANDIDATES: dict[str, dict] = {
    "none": {},
    "gzip4": {"compression": "gzip", "compression_opts": 4},
    "gzip1+shuffle": {"compression": "gzip", "compression_opts": 1, "shuffle": True},
    "lzf": {"compression": "lzf"},
    "lzf+shuffle": {"compression": "lzf", "shuffle": True},
    "zstd1": hdf5plugin.Zstd(clevel=1),
    "blosc-lz4+bitshuffle": hdf5plugin.Blosc("lz4", 5, hdf5plugin.Blosc.BITSHUFFLE),
    "blosc-lz4+shuffle": hdf5plugin.Blosc("lz4", 5, hdf5plugin.Blosc.SHUFFLE),
}


def simulated_planes(directory: Path, n_planes: int) -> list[np.ndarray]:
    sites = max(1, n_planes // 2)
    subprocess.run(
        [
            str(Path(sys.executable).parent / "tm_simulate"), "plate", str(directory),
            "--wells", "1", "--sites", str(sites), "--channels", "2", "--size", "2160x2560",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    files = sorted(directory.glob("*.tif"))[:n_planes]
    return [tifffile.imread(f) for f in files]


def measure(planes: list[np.ndarray], options: dict, workdir: Path, repeats: int) -> dict:
    raw = sum(p.nbytes for p in planes)
    writes, reads = [], []
    size = 0
    with mock.patch.object(storage, "PLANE_OPTIONS", options):
        for rep in range(repeats):
            paths = [workdir / f"plane_{rep}_{i}.h5" for i in range(len(planes))]
            start = time.perf_counter()
            for path, plane in zip(paths, planes, strict=True):
                storage.write_plane(path, plane)
            writes.append(raw / (time.perf_counter() - start) / 1e6)
            size = sum(p.stat().st_size for p in paths)
            start = time.perf_counter()
            for path, plane in zip(paths, planes, strict=True):
                if not np.array_equal(storage.read_plane(path), plane):
                    sys.exit(f"round trip failed with {options}")
            reads.append(raw / (time.perf_counter() - start) / 1e6)
            for path in paths:
                path.unlink()
    return {
        "write_MBps": round(statistics.median(writes), 1),
        "read_MBps": round(statistics.median(reads), 1),
        "ratio": round(raw / size, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tm-hdf5-") as tmp:
        planes = simulated_planes(Path(tmp) / "plate", args.planes)
        results = {}
        for name, options in CANDIDATES.items():
            results[name] = measure(planes, options, Path(tmp), args.repeats)
            print(f"{name:>15}: {results[name]}", file=sys.stderr)
    chosen = next(n for n, o in CANDIDATES.items() if o == storage.PLANE_OPTIONS)
    print(
        json.dumps(
            {
                "benchmark": "hdf5_settings",
                "planes": len(planes),
                "shape": list(planes[0].shape),
                "dtype": str(planes[0].dtype),
                "repeats": args.repeats,
                "chosen": chosen,
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
