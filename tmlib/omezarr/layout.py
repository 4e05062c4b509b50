"""What export and import share: NGFF versions, well paths, codecs and pyramid levels.

NGFF 0.5 stores a plate in Zarr v3 (metadata in ``zarr.json`` under
``attributes.ome``), 0.4 in Zarr v2 (``.zattrs``). Arrays are compressed with
Blosc (LZ4, bit-shuffle): lossless, as fast to write as the disk, and read by
every Zarr implementation (``benchmarks/ome_zarr.py``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from tmlib.errors import InvalidInputError
from tmlib.plates import well_coordinates

if TYPE_CHECKING:
    import zarr
    from ome_zarr.format import Format

__all__ = [
    "CHANNEL_COLORS",
    "NGFF_VERSIONS",
    "array_options",
    "check_version",
    "downscale",
    "downscale_labels",
    "level_count",
    "ngff_format",
    "set_ome_attributes",
    "split_well_name",
]

#: NGFF versions we write and read, with the Zarr format of each
NGFF_VERSIONS: dict[str, int] = {"0.5": 3, "0.4": 2}

#: ``omero`` colours of channels by their order (one channel alone is grey)
CHANNEL_COLORS = ("FF0000", "00FF00", "0000FF", "FF00FF", "00FFFF", "FFFF00", "FF8000")

#: a pyramid goes down until both sides of its smallest level fit this
_SMALLEST_LEVEL = 512


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


def ngff_format(version: str) -> Format:
    """ome-zarr-py's format object of an NGFF version."""
    from ome_zarr.format import FormatV04, FormatV05

    return FormatV05() if check_version(version) == "0.5" else FormatV04()


def split_well_name(name: str) -> tuple[str, str]:
    """Row and column names of a well: ``B03`` → (``"B"``, ``"03"``), its path ``B/03``.

    Columns keep TissueMAPS' two digits, as Fractal's converters write them.

    Raises
    ------
    InvalidInputError
        For a name that is no well name.
    """
    try:
        well_coordinates(name)
    except ValueError as err:
        raise InvalidInputError(str(err)) from None
    return name[0], name[1:]


def set_ome_attributes(group: zarr.Group, version: str, **values: Any) -> None:
    """Set NGFF attributes of a group: under ``ome`` with the version (0.5), at the top (0.4)."""
    if check_version(version) == "0.4":
        group.attrs.update(values)
    else:
        group.attrs["ome"] = {**group.attrs.get("ome", {}), "version": version, **values}


def array_options(version: str, dtype: np.dtype | type, chunks: tuple[int, ...]) -> dict[str, Any]:
    """Keyword arguments of ``zarr.Group.create_array`` for an image or label array.

    Empty chunks are written too: checking each chunk for emptiness first
    costs more than writing it (it halves the write speed of zarr 3.1).
    """
    import numcodecs
    from zarr.codecs import BloscCodec

    options: dict[str, Any] = {
        "dtype": np.dtype(dtype),
        "chunks": chunks,
        "fill_value": 0,
        "config": {"write_empty_chunks": True},
    }
    if NGFF_VERSIONS[check_version(version)] == 3:
        options["compressors"] = BloscCodec(cname="lz4", clevel=1, shuffle="bitshuffle")
    else:  # NGFF 0.4 asks for nested chunk keys (0/0/0, not 0.0.0)
        options["compressors"] = numcodecs.Blosc(
            cname="lz4", clevel=1, shuffle=numcodecs.Blosc.BITSHUFFLE
        )
        options["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    return options


def level_count(height: int, width: int, levels: int | None = None) -> int:
    """Number of pyramid levels of a plane: `levels`, else until both sides are ≤ 512.

    Raises
    ------
    InvalidInputError
        When `levels` is less than 1.
    """
    if levels is not None:
        if levels < 1:
            raise InvalidInputError(f"--levels must be at least 1, got {levels}")
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
