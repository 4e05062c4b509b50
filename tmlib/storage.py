"""Pixel storage: 2D planes and their statistics in HDF5 files.

Only the models' ``get()``/``put()`` call these functions. Files are written to
a temporary name in the same directory and renamed into place, so a reader
never sees half a file and a killed writer leaves the old file intact.

A temporary's name says who writes it (host, pid and the process's start
time: :func:`temporary_file`), so that the half-written file a killed job left
behind can be told from one that a running job is writing, and removed
(:func:`remove_stale_temporaries`, which each step job calls before it runs).

Compression settings were chosen by ``benchmarks/hdf5_settings.py`` (see
README): Blosc with LZ4 and byte-shuffle (from ``hdf5plugin``), in chunks of
whole-row bands. It is lossless, compresses 16-bit microscope images as well as
gzip level 4 and writes more than ten times faster than gzip or h5py's own LZF,
so writing planes never becomes the bottleneck of image conversion. Other
programs reading these files need ``import hdf5plugin`` before ``h5py``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np

# re-exported: part of this module's interface
from tmlib.temporaries import is_temporary as is_temporary
from tmlib.temporaries import remove_stale_temporaries as remove_stale_temporaries
from tmlib.temporaries import temporary_file as temporary_file

#: h5py dataset options for image planes.
PLANE_OPTIONS = hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)

#: Target number of pixels per chunk: small enough for cheap partial reads,
#: large enough that per-chunk overhead does not matter.
_CHUNK_PIXELS = 256 * 1024


def plane_chunks(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """Chunk shape for an array: bands of whole rows of about 256k pixels.

    Parameters
    ----------
    shape : tuple of int
        Shape of the array to store; 2D planes are chunked, others are not.

    Returns
    -------
    tuple of int or None
    """
    if len(shape) != 2 or 0 in shape:
        return None
    rows = max(1, min(shape[0], _CHUNK_PIXELS // max(shape[1], 1)))
    return (rows, shape[1])


def write_datasets(path: str | os.PathLike, datasets: Mapping[str, np.ndarray]) -> None:
    """Write named arrays to an HDF5 file atomically (temp file + rename).

    Parameters
    ----------
    path : path-like
        Destination file; its directory is created if needed.
    datasets : mapping of str to ndarray
        Dataset name (may contain ``/`` for groups) to array. 2D arrays are
        chunked and compressed with :data:`PLANE_OPTIONS`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_file(path)
    try:
        with h5py.File(tmp, "w") as f:
            for name, array in datasets.items():
                array = np.asarray(array)
                chunks = plane_chunks(array.shape)
                options = PLANE_OPTIONS if chunks else {}
                f.create_dataset(name, data=array, chunks=chunks, **options)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_dataset(path: str | os.PathLike, name: str = "array") -> np.ndarray:
    """Read one dataset of an HDF5 file into memory.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    KeyError
        When the file has no dataset `name`.
    """
    with h5py.File(path, "r") as f:
        return f[name][()]


def write_plane(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a 2D image plane (dataset ``array``) atomically.

    Parameters
    ----------
    path : path-like
        Destination ``.h5`` file.
    array : ndarray, shape (M, N), dtype uint8 or uint16
    """
    if array.ndim != 2:
        raise ValueError(f"an image plane must be 2D, got shape {array.shape}")
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"an image plane must be uint8 or uint16, got {array.dtype}")
    write_datasets(path, {"array": array})


def read_plane(path: str | os.PathLike, rows: slice | None = None) -> np.ndarray:
    """Read a 2D image plane written by :func:`write_plane`.

    Parameters
    ----------
    path : path-like
    rows : slice, optional
        Only these rows; only the chunks (row bands) they touch are decoded.

    Returns
    -------
    ndarray, shape (M, N) or (len(rows), N), dtype uint8 or uint16
    """
    if rows is None:
        return read_dataset(path, "array")
    with h5py.File(path, "r") as f:
        return f["array"][rows]
