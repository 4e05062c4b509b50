"""Writer for the Visitron VisiView layout (``.nd`` file plus TIFF stacks).

VisiView (like MetaMorph's multi-dimensional acquisition) writes one
``<prefix>.nd`` text file describing the experiment and one TIFF per
wavelength, stage position and time point:

``<prefix>_<WELL>_w<N><wave name>_s<S>[_t<T>].TIF``
    ``N`` the wavelength (1-based), ``S`` the stage position counted over
    the whole plate (1-based, one per site of every well), ``T`` the time
    point (1-based; only with more than one).  With several z-planes the
    file is a multi-page TIFF, one page per z-plane from the bottom.
``<prefix>.nd``
    ``"Key", value`` lines (CRLF) between ``"NDInfoFile", Version 1.0`` and
    ``"EndFile"``: time lapse, ``Stage<S>`` entries naming
    ``row:<letter>,column:<number>,site:<site within the well, 1-based>``,
    ``WaveName<N>``/``WaveDoZ<N>``, ``NZSteps``/``ZStepSize`` and
    ``WaveInFileName``.  There are no stage coordinates.

Wave names are :data:`WAVE_NAMES` (spinning-disc laser lines) in channel
order.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from tmlib.lazy import lazy_import
from tmlib.simulate.plate import (
    ACQUISITION_START,
    PLATE_FORMATS,
    PlaneInfo,
    PlateSpec,
    PlateWriter,
    register_writer,
    well_names,
)
from tmlib.simulate.tiff import write_tiff_plane

if TYPE_CHECKING:
    from numpy.typing import NDArray

np = lazy_import("numpy")

__all__ = ["WAVE_NAMES", "VisiViewWriter", "image_filename", "nd_text", "wave_name"]

#: Names of the first wavelengths; further ones are ``Wave<N>``.
WAVE_NAMES = ("CSU405", "CSU488", "CSU561", "CSU640")

_EOL = "\r\n"


def wave_name(channel: int) -> str:
    """Wave name of a 0-based channel, e.g. ``wave_name(1) == 'CSU488'``."""
    return WAVE_NAMES[channel] if channel < len(WAVE_NAMES) else f"Wave{channel + 1}"


def image_filename(
    prefix: str, well: str, stage: int, channel: int, tpoint: int, *, timelapse: bool
) -> str:
    """VisiView name of an image file (arguments 0-based, name 1-based).

    Examples
    --------
    >>> image_filename("Sim", "A02", stage=4, channel=0, tpoint=1, timelapse=True)
    'Sim_A02_w1CSU405_s5_t2.TIF'
    """
    time = f"_t{tpoint + 1}" if timelapse else ""
    return f"{prefix}_{well}_w{channel + 1}{wave_name(channel)}_s{stage + 1}{time}.TIF"


def _flag(value: bool) -> str:
    return "TRUE" if value else "FALSE"


def _number(value: float) -> str:
    return f"{value:g}"


def nd_text(spec: PlateSpec) -> str:
    """The ``.nd`` file of a plate (CRLF line ends)."""
    wells = well_names(spec.plate_format, spec.wells)
    lines = [
        '"NDInfoFile", Version 1.0',
        '"Description", tm_simulate synthetic plate',
        f'"StartTime1", {ACQUISITION_START:%Y%m%d %H:%M:%S}.000',
        f'"DoTimelapse", {_flag(spec.tpoints > 1)}',
        f'"NTimePoints", {spec.tpoints}',
        '"DoStage", TRUE',
        f'"NStagePositions", {spec.wells * spec.sites}',
    ]
    stage = 0
    for well in wells:
        for site in range(spec.sites):
            stage += 1
            lines.append(f'"Stage{stage}", "row:{well[0]},column:{int(well[1:])},site:{site + 1}"')
    lines += [
        '"DoWave", TRUE',
        f'"NWavelengths", {spec.channels}',
    ]
    for channel in range(spec.channels):
        lines += [
            f'"WaveName{channel + 1}", "{wave_name(channel)}"',
            f'"WaveDoZ{channel + 1}", {_flag(spec.zplanes > 1)}',
        ]
    lines += [
        f'"DoZSeries", {_flag(spec.zplanes > 1)}',
        f'"NZSteps", {spec.zplanes}',
        f'"ZStepSize", {_number(spec.z_step_um)}',
        '"WaveInFileName", TRUE',
        '"NEvents", 0',
        '"EndFile"',
    ]
    return _EOL.join(lines) + _EOL


@register_writer
class VisiViewWriter(PlateWriter):
    """Writes ``<prefix>.nd`` and one TIFF (z-stack) per wavelength, position and time."""

    name = "visiview"
    description = "Visitron VisiView: <prefix>.nd and <prefix>_<WELL>_w<N><wave>_s<S>_t<T>.TIF"

    def __init__(self, outdir: Path, spec: PlateSpec) -> None:
        super().__init__(outdir, spec)
        self._timelapse = spec.tpoints > 1
        self._nd = f"{spec.prefix}.nd"

    def write_plane(self, plane: PlaneInfo, pixels: NDArray[np.uint16] | None) -> str:
        """Write a z-plane: a new file for z-plane 0, another page otherwise."""
        stage = self._well_index(plane) * self.spec.sites + plane.site
        name = image_filename(
            self.spec.prefix,
            plane.well,
            stage,
            plane.channel,
            plane.tpoint,
            timelapse=self._timelapse,
        )
        write_tiff_plane(self.outdir / name, pixels, self.spec.shape, append=plane.zplane > 0)
        return name

    def _well_index(self, plane: PlaneInfo) -> int:
        return plane.well_row * PLATE_FORMATS[self.spec.plate_format][1] + plane.well_column

    def finish(self) -> list[str]:
        """Write ``<prefix>.nd`` (via a temporary name)."""
        part = self.outdir / (self._nd + ".part")
        with open(part, "w", encoding="utf-8", newline="") as fh:
            fh.write(nd_text(self.spec))
        os.replace(part, self.outdir / self._nd)
        return [self._nd]

    def abort(self) -> None:
        """Remove a partly written ``.nd``."""
        (self.outdir / (self._nd + ".part")).unlink(missing_ok=True)
