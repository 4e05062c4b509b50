"""Reading pixels from microscope image files (TIFF via tifffile; PNG/JPEG via imageio).

Only headers are read by :func:`read_header` (for ``metaextract``); pixel
data by :func:`read_plane` (for ``imextract``). An image "file" that is a
directory is an OME-Zarr field image (:mod:`tmlib.omezarr.read`): its planes
are flat indices over its non-yx axes, its series the ROIs of a stitched image.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from tmlib.errors import InvalidInputError

_TIFF_SUFFIXES = (".tif", ".tiff", ".stk")


@dataclass(frozen=True)
class ImageHeader:
    """What a microscope image file holds.

    Attributes
    ----------
    planes : int
        Number of 2D planes (TIFF pages).
    height, width : int
    dtype : str
        numpy dtype name of the pixels, e.g. ``uint16``.
    """

    planes: int
    height: int
    width: int
    dtype: str

    @property
    def bit_depth(self) -> int:
        return np.dtype(self.dtype).itemsize * 8

    def to_dict(self) -> dict:
        return {"planes": self.planes, "height": self.height, "width": self.width,
                "dtype": self.dtype}  # fmt: skip


def read_header(path: str | os.PathLike) -> ImageHeader:
    """Read the header of an image file and check that its pixel data are all there.

    Raises
    ------
    InvalidInputError
        When the file is missing, not an image, or truncated (names the file).
    """
    path = Path(path)
    if path.is_dir():
        from tmlib.omezarr.read import read_header as zarr_header

        return ImageHeader(*zarr_header(path))
    try:
        if path.suffix.lower() in _TIFF_SUFFIXES:
            return _tiff_header(path)
        import imageio.v3 as iio

        props = iio.improps(path)
        shape = props.shape
        return ImageHeader(1, int(shape[0]), int(shape[1]), str(props.dtype))
    except InvalidInputError:
        raise
    except FileNotFoundError:
        raise InvalidInputError(f"image file {path} does not exist") from None
    except Exception as err:  # every reader has its own exceptions for corrupt files
        raise InvalidInputError(f"cannot read image file {path}: {err}") from None


def _tiff_header(path: Path) -> ImageHeader:
    size = path.stat().st_size
    with tifffile.TiffFile(path) as tif:
        pages = tif.pages
        first = pages.first
        if len(first.shape) != 2:
            raise InvalidInputError(
                f"image file {path}: expected 2D grayscale planes, got shape {first.shape}"
            )
        for page in pages:
            ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=False)]
            if not ends or max(ends) > size:
                raise InvalidInputError(f"image file {path} is truncated (pixel data missing)")
        return ImageHeader(len(pages), int(first.shape[0]), int(first.shape[1]), str(first.dtype))


def read_plane(path: str | os.PathLike, plane: int = 0, series: int = 0) -> np.ndarray:
    """Read one 2D plane of an image file.

    Parameters
    ----------
    path : path-like
    plane : int
        Page index within the file (for an OME-Zarr field image: the C-order
        flat index over its non-yx axes).
    series : int
        Ignored for TIFF/PNG/JPEG; for an OME-Zarr field image the ROI of a
        stitched image (only that box is read).

    Returns
    -------
    ndarray, shape (M, N), dtype uint8 or uint16

    Raises
    ------
    InvalidInputError
        When the file cannot be read (names the file).
    """
    path = Path(path)
    if path.is_dir():
        from tmlib.omezarr.read import read_plane as zarr_plane

        return zarr_plane(path, plane, series)
    try:
        if path.suffix.lower() in _TIFF_SUFFIXES:
            pixels = tifffile.imread(path, key=plane)
        else:
            import imageio.v3 as iio

            pixels = iio.imread(path)
    except FileNotFoundError:
        raise InvalidInputError(f"image file {path} does not exist") from None
    except Exception as err:
        raise InvalidInputError(f"cannot read plane {plane} of image file {path}: {err}") from None
    if pixels.ndim != 2:
        raise InvalidInputError(f"image file {path}: expected a 2D plane, got shape {pixels.shape}")
    if pixels.dtype not in (np.uint8, np.uint16):
        raise InvalidInputError(f"image file {path}: unsupported pixel type {pixels.dtype}")
    return pixels
