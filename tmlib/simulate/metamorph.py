"""Writer for the MetaMorph / MetaXpress plate layout (names only, no metadata).

MetaXpress writes one TIFF per site and wavelength plus a small thumbnail:

``<prefix>_<WELL>_s<S>_w<N><GUID>.tif``
    ``S`` the site within the well and ``N`` the wavelength, both 1-based;
    ``_w<N>`` is left out when there is only one wavelength.  ``<GUID>`` is
    an uppercase UUID (here derived from the seed and the name, so runs are
    reproducible).
``<prefix>_<WELL>_s<S>_w<N>_thumb<GUID>.tif``
    A thumbnail (every k-th pixel), which readers must ignore.

The names have no place for z-planes or time points (MetaXpress puts those
in sub-directories), so this writer accepts only ``zplanes == tpoints == 1``,
and at most 9 wavelengths.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import TYPE_CHECKING

from tmlib.lazy import lazy_import
from tmlib.simulate.plate import (
    InvalidPlateSpecError,
    PlaneInfo,
    PlateSpec,
    PlateWriter,
    register_writer,
)
from tmlib.simulate.tiff import write_tiff_plane

if TYPE_CHECKING:
    from numpy.typing import NDArray

np = lazy_import("numpy")

__all__ = ["THUMBNAIL_SIZE", "MetaMorphWriter", "image_filename", "thumbnail_filename"]

#: Longest side of a thumbnail in pixels (at most).
THUMBNAIL_SIZE = 32


def _guid(seed: int, stem: str) -> str:
    digest = hashlib.sha256(f"{seed}/{stem}".encode()).digest()[:16]
    return str(uuid.UUID(bytes=digest, version=4)).upper()


def _stem(prefix: str, well: str, site: int, channel: int, channels: int) -> str:
    wave = f"_w{channel + 1}" if channels > 1 else ""
    return f"{prefix}_{well}_s{site + 1}{wave}"


def image_filename(
    prefix: str, well: str, site: int, channel: int, *, channels: int, seed: int = 0
) -> str:
    """MetaXpress name of an image (arguments 0-based, name 1-based).

    Examples
    --------
    >>> image_filename("Sim", "B03", site=0, channel=1, channels=2)[:16]
    'Sim_B03_s1_w2'
    """
    stem = _stem(prefix, well, site, channel, channels)
    return f"{stem}{_guid(seed, stem)}.tif"


def thumbnail_filename(
    prefix: str, well: str, site: int, channel: int, *, channels: int, seed: int = 0
) -> str:
    """MetaXpress name of the thumbnail of an image."""
    stem = _stem(prefix, well, site, channel, channels) + "_thumb"
    return f"{stem}{_guid(seed, stem)}.tif"


@register_writer
class MetaMorphWriter(PlateWriter):
    """Writes one TIFF and one thumbnail per site and wavelength; no metadata."""

    name = "metamorph"
    description = "MetaMorph/MetaXpress: <prefix>_<WELL>_s<S>_w<N><GUID>.tif, thumbnails"

    @classmethod
    def check(cls, spec: PlateSpec) -> None:
        """Reject z-stacks, time series and more than 9 wavelengths."""
        if spec.zplanes > 1 or spec.tpoints > 1:
            raise InvalidPlateSpecError(
                "MetaMorph file names hold no z-plane or time point; use --zplanes 1 --tpoints 1 "
                "(or another --microscope)"
            )
        if spec.channels > 9:
            raise InvalidPlateSpecError(
                f"MetaMorph file names hold at most 9 wavelengths, got {spec.channels}"
            )

    def write_plane(self, plane: PlaneInfo, pixels: NDArray[np.uint16] | None) -> str:
        """Write the image and its thumbnail (zero bytes if `pixels` is None)."""
        spec = self.spec
        args = (spec.prefix, plane.well, plane.site, plane.channel)
        name = image_filename(*args, channels=spec.channels, seed=spec.seed)
        thumb = thumbnail_filename(*args, channels=spec.channels, seed=spec.seed)
        write_tiff_plane(self.outdir / name, pixels, spec.shape)
        small = None
        if pixels is not None:
            step = max(1, -(-max(spec.shape) // THUMBNAIL_SIZE))
            small = np.ascontiguousarray(pixels[::step, ::step])
        write_tiff_plane(self.outdir / thumb, small, small.shape if small is not None else (0, 0))
        return name

    def finish(self) -> list[str]:
        """Nothing to write: the layout has no metadata files."""
        return []
