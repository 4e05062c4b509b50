"""Writer for generic TIFF files whose names carry every index.

Files are named ``<prefix>_<WELL>_s<site>_c<channel>_z<zplane>_t<tpoint>.tif``
with 0-based site, channel, z-plane and time point (the channel "name" is
its index), which the default regex of the ``tiff`` microscope type
(:data:`tmlib.microscopes.tiff.DEFAULT_REGEX`) reads back.  There are no
metadata files and no stage positions.

:func:`write_tiff_plane` is also used by the other single-file-per-plane
writers of this package.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from tmlib.lazy import lazy_import
from tmlib.simulate.plate import PlaneInfo, PlateSpec, PlateWriter, register_writer

if TYPE_CHECKING:
    from numpy.typing import NDArray

np = lazy_import("numpy")
tifffile = lazy_import("tifffile")

__all__ = ["TiffWriter", "image_filename", "write_tiff_plane"]


def image_filename(
    prefix: str, well: str, site: int, channel: int, zplane: int, tpoint: int
) -> str:
    """Name of a generic TIFF (all indices 0-based).

    Examples
    --------
    >>> image_filename("Sim", "B03", site=1, channel=0, zplane=2, tpoint=0)
    'Sim_B03_s1_c0_z2_t0.tif'
    """
    return f"{prefix}_{well}_s{site}_c{channel}_z{zplane}_t{tpoint}.tif"


def write_tiff_plane(
    path: Path | str,
    pixels: NDArray[np.uint16] | None,
    shape: tuple[int, int],
    *,
    append: bool = False,
) -> None:
    """Write one plane as an uncompressed TIFF page.

    Parameters
    ----------
    path : path
        File to write.
    pixels : numpy.ndarray or None
        ``shape`` uint16 image; None writes a zero-byte file (or leaves an
        existing one alone when `append`).
    shape : tuple of int
        Expected ``(height, width)``.
    append : bool
        Add a page to an existing file instead of replacing it.

    Raises
    ------
    ValueError
        If `pixels` is not a uint16 image of `shape`.
    """
    if pixels is None:
        if not append:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666))
        return
    if pixels.dtype != np.uint16 or pixels.shape != shape:
        raise ValueError(f"expected a {shape} uint16 image, got {pixels.shape} {pixels.dtype}")
    tifffile.imwrite(path, pixels, photometric="minisblack", metadata=None, append=append)


@register_writer
class TiffWriter(PlateWriter):
    """Writes one TIFF per plane with every index in the name; no metadata."""

    name = "tiff"
    description = "Generic TIFFs named <prefix>_<WELL>_s<site>_c<channel>_z<z>_t<t>.tif"

    def write_plane(self, plane: PlaneInfo, pixels: NDArray[np.uint16] | None) -> str:
        """Write one TIFF (zero bytes if `pixels` is None)."""
        name = image_filename(
            self.spec.prefix, plane.well, plane.site, plane.channel, plane.zplane, plane.tpoint
        )
        write_tiff_plane(self.outdir / name, pixels, self.spec.shape)
        return name

    def finish(self) -> list[str]:
        """Nothing to write: the format has no metadata files."""
        return []

    @classmethod
    def check(cls, spec: PlateSpec) -> None:
        """Every spec fits."""
        return None
