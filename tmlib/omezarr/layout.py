"""What export and import share: NGFF versions, well paths, codecs and pyramid levels.

NGFF 0.5 stores a plate in Zarr v3 (metadata in ``zarr.json`` under
``attributes.ome``), 0.4 in Zarr v2 (``.zattrs``). Arrays are compressed with
Blosc (LZ4, byte shuffle), as the experiment's own HDF5 planes are
(:mod:`tmlib.storage`): lossless, about 2x on microscope images, faster to
write than the disk and read by every Zarr implementation (bit-shuffle
compresses no better and decodes three times slower; ``benchmarks/ome_zarr.py``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from tmlib.errors import InvalidInputError
from tmlib.microscopes.base import normalize_well

if TYPE_CHECKING:
    import zarr

__all__ = [
    "CHANNEL_COLORS",
    "MAX_LEVELS",
    "NGFF_VERSIONS",
    "array_options",
    "check_version",
    "downscale",
    "downscale_labels",
    "level_count",
    "ome_attributes",
    "parse_well_path",
    "single_threaded_codecs",
    "write_plane",
    "well_path",
]

#: NGFF versions we write and read, with the Zarr format of each
NGFF_VERSIONS: dict[str, int] = {"0.5": 3, "0.4": 2}

#: ``omero`` colours of channels by their order (one channel alone is grey)
CHANNEL_COLORS = ("FF0000", "00FF00", "0000FF", "FF00FF", "00FFFF", "FFFF00", "FF8000")

#: a pyramid goes down until both sides of its smallest level fit this
_SMALLEST_LEVEL = 512
#: most pyramid levels one may ask for (2**15 times smaller than a site is nothing)
MAX_LEVELS = 16


def check_version(version: str) -> str:
    """The NGFF version as written in metadata (``"0.5"``, ``"0.4"``).

    Raises
    ------
    InvalidInputError
        For a version we neither write nor read.
    """
    version = str(version)
    if version not in NGFF_VERSIONS:
        raise InvalidInputError(
            f"unsupported OME-Zarr (NGFF) version {version!r}; "
            f"supported: {', '.join(NGFF_VERSIONS)}"
        )
    return version


def parse_well_path(path: str) -> str:
    """TissueMAPS well name of an NGFF well path: ``B/03``, ``B/3``, ``b/003`` -> ``B03``.

    Parameters
    ----------
    path : str
        ``<row>/<column>``: one row letter and a column number 1..99.

    Returns
    -------
    str
        Uppercase row letter and two-digit column.

    Raises
    ------
    ValueError
        If `path` is not of that form.
    """
    parts = path.strip("/").split("/")
    if len(parts) != 2 or not parts[1].isdigit():
        raise ValueError(f"{path!r} is not a well path like B/03")
    return normalize_well(parts[0] + parts[1])


def well_path(well: str) -> str:
    """NGFF well path of a TissueMAPS well name: ``B03`` -> ``B/03``.

    Columns keep TissueMAPS' two digits, as Fractal's converters write them.

    Raises
    ------
    ValueError
        If `well` is not a well name like ``A01``.
    """
    name = normalize_well(well)
    return f"{name[0]}/{name[1:]}"


def ome_attributes(group: zarr.Group) -> dict[str, Any]:
    """The NGFF metadata of a group: ``attributes.ome`` (Zarr v3) or ``.zattrs`` (v2)."""
    attrs = dict(group.attrs)
    if int(group.metadata.zarr_format) == 3:
        ome = attrs.get("ome")
        return dict(ome) if isinstance(ome, Mapping) else {}
    return attrs


def _blosc() -> Any:
    """The one compressor of exported arrays: Blosc, LZ4 level 5, byte shuffle."""
    import numcodecs

    return numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE)


def array_options(version: str, dtype: np.dtype | type, chunks: tuple[int, ...]) -> dict[str, Any]:
    """Keyword arguments of ``zarr.Group.create_array`` for an image or label array.

    Empty chunks are written too: checking each chunk for emptiness first
    costs more than writing it (it halves the write speed of zarr 3.1).
    """
    from zarr.codecs import BloscCodec

    options: dict[str, Any] = {
        "dtype": np.dtype(dtype),
        "chunks": chunks,
        "fill_value": 0,
        "config": {"write_empty_chunks": True},
    }
    if NGFF_VERSIONS[check_version(version)] == 3:
        options["compressors"] = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
    else:  # NGFF 0.4 asks for nested chunk keys (0/0/0, not 0.0.0)
        options["compressors"] = _blosc()
        options["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    return options


def write_plane(array: zarr.Array, index: tuple[int, ...], plane: np.ndarray) -> None:
    """Write one 2D plane of an array made with :func:`array_options`, chunk by chunk.

    Equal to ``array[index] = plane``, at half its CPU for a camera image:
    zarr copies each chunk into a new buffer and hands it to its event loop's
    thread, where here each chunk is compressed as it is and stored at once
    (the tests read every exported plane back through zarr).

    Parameters
    ----------
    array : zarr.Array
        Chunks of one plane each along the leading axes.
    index : tuple of int
        Position of the plane along the leading (non-yx) axes.
    plane : ndarray, shape (M, N)
        The array's last two dimensions and dtype.
    """
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    if plane.shape != array.shape[-2:] or plane.dtype != array.dtype:
        raise ValueError(f"plane {plane.dtype} {plane.shape} does not fit array {array}")
    codec = _blosc()
    buffer = default_buffer_prototype().buffer
    store = array.store_path
    height, width = array.chunks[-2:]
    little = plane.dtype.newbyteorder("<")
    for row in range(0, plane.shape[0], height):
        for column in range(0, plane.shape[1], width):
            chunk = plane[row : row + height, column : column + width]
            if chunk.shape != (height, width):  # edge chunks are stored whole
                pad = ((0, height - chunk.shape[0]), (0, width - chunk.shape[1]))
                chunk = np.pad(chunk, pad)
            data = codec.encode(np.ascontiguousarray(chunk, dtype=little))
            key = array.metadata.encode_chunk_key((*index, row // height, column // width))
            sync((store / key).set(buffer.from_bytes(data)))


@contextlib.contextmanager
def single_threaded_codecs() -> Iterator[None]:
    """Compress in the calling thread: Blosc's and zarr's worker threads spend more CPU
    waiting for each other than they save (twice the CPU per plane measured here);
    a machine's cores are better used by exporting plates or wells side by side."""
    import numcodecs.blosc
    import zarr

    before = numcodecs.blosc.get_nthreads()
    numcodecs.blosc.set_nthreads(1)
    try:
        with zarr.config.set({"threading.max_workers": 1}):
            yield
    finally:
        numcodecs.blosc.set_nthreads(before)


def level_count(height: int, width: int, levels: int | None = None) -> int:
    """Number of pyramid levels of a plane: `levels`, else until both sides are ≤ 512.

    Raises
    ------
    InvalidInputError
        When `levels` is outside 1 .. :data:`MAX_LEVELS`.
    """
    if levels is not None:
        if not 1 <= levels <= MAX_LEVELS:
            raise InvalidInputError(
                f"levels must be between 1 and {MAX_LEVELS}, got {levels}; leave them out "
                "for levels down to 512 pixels"
            )
        return levels
    halvings = math.ceil(math.log2(max(height, width, 1) / _SMALLEST_LEVEL))
    return 1 + max(halvings, 0)


def downscale(plane: np.ndarray) -> np.ndarray:
    """Halve a plane with area interpolation.

    Parameters
    ----------
    plane : ndarray, shape (M, N), dtype uint8 or uint16

    Returns
    -------
    ndarray, shape (ceil(M/2), ceil(N/2)), same dtype
    """
    height, width = (plane.shape[0] + 1) // 2, (plane.shape[1] + 1) // 2
    return cv2.resize(plane, (width, height), interpolation=cv2.INTER_AREA)


def downscale_labels(labels: np.ndarray) -> np.ndarray:
    """Halve a label image by nearest neighbour (labels are never mixed).

    Parameters
    ----------
    labels : ndarray, shape (M, N), integer dtype

    Returns
    -------
    ndarray, shape (ceil(M/2), ceil(N/2)), same dtype
    """
    return np.ascontiguousarray(labels[::2, ::2])
