"""Writer for the Yokogawa CellVoyager (CV7000/CV8000) file layout.

A CellVoyager acquisition directory holds one single-plane 16-bit TIFF per
image plus two XML files in the namespace
``http://www.yokogawa.co.jp/BTS/BTSSchema/1.0`` (prefix ``bts``):

``MeasurementData.mlf``
    Root ``bts:MeasurementData``; one ``bts:MeasurementRecord`` per image
    with ``bts:Type="IMG"`` and the attributes ``Time, Column, Row,
    FieldIndex, TimePoint, ZIndex, TimelineIndex, ActionIndex, Action, X, Y,
    Z, Ch`` (all indices 1-based; X/Y/Z stage position in micrometres); the
    element text is the image file name.  Failed acquisitions would be
    ``bts:Type="ERR"`` records; the simulator writes none.
``MeasurementDetail.mrf``
    Root ``bts:MeasurementDetail`` with the plate's ``Title``, ``RowCount``
    and ``ColumnCount`` (of the plate format, not of the imaged wells), a
    ``bts:MeasurementSamplePlate`` and one ``bts:MeasurementChannel`` per
    channel (``Ch``, pixel size, camera, bit depth, image size, ...).

Image files are named ``<prefix>_<WELL>_T<tttt>F<fff>L<ll>A<aa>Z<zz>C<cc>.tif``
(time point, field, timeline, action, z-plane and channel, 1-based).  The
simulator uses one timeline and one action (``L01A01``) for all channels.

Stage positions: ``bts:X`` grows with the site's grid column and ``bts:Y``
decreases with its grid row (the CellVoyager's y axis points up while image
rows go down), both relative to the well centre; see
:func:`tmlib.simulate.plate.site_position`.  Like the instrument, the files
use CRLF line ends.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from tmlib.lazy import lazy_import
from tmlib.simulate.plate import (
    ACQUISITION_START,
    PLATE_FORMATS,
    InvalidPlateSpecError,
    PlaneInfo,
    PlateSpec,
    PlateWriter,
    register_writer,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

np = lazy_import("numpy")
tifffile = lazy_import("tifffile")

__all__ = [
    "MLF_NAME",
    "MRF_NAME",
    "NAMESPACE",
    "CellVoyagerWriter",
    "image_filename",
]

#: XML namespace of all CellVoyager metadata (prefix ``bts``).
NAMESPACE = "http://www.yokogawa.co.jp/BTS/BTSSchema/1.0"
#: Per-image metadata file.
MLF_NAME = "MeasurementData.mlf"
#: Per-acquisition metadata file.
MRF_NAME = "MeasurementDetail.mrf"

_EOL = "\r\n"
_XML_DECLARATION = '<?xml version="1.0" encoding="utf-8"?>'


def image_filename(
    prefix: str,
    well: str,
    site: int,
    channel: int,
    zplane: int,
    tpoint: int,
    *,
    timeline: int = 0,
    action: int = 0,
) -> str:
    """CellVoyager name of an image file (arguments 0-based, name 1-based).

    Examples
    --------
    >>> image_filename("Sim", "B03", site=1, channel=1, zplane=0, tpoint=0)
    'Sim_B03_T0001F002L01A01Z01C02.tif'
    """
    return (
        f"{prefix}_{well}_T{tpoint + 1:04d}F{site + 1:03d}L{timeline + 1:02d}"
        f"A{action + 1:02d}Z{zplane + 1:02d}C{channel + 1:02d}.tif"
    )


def _time(elapsed_s: float) -> str:
    return (ACQUISITION_START + timedelta(seconds=elapsed_s)).isoformat(timespec="milliseconds")


def _num(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@register_writer
class CellVoyagerWriter(PlateWriter):
    """Writes ``MeasurementData.mlf``, ``MeasurementDetail.mrf`` and TIFFs.

    The ``.mlf`` is streamed to ``MeasurementData.mlf.part`` while planes are
    written and renamed by :meth:`finish`, which also writes the ``.mrf``; an
    interrupted run therefore leaves no complete-looking metadata behind.
    """

    name = "cellvoyager"
    description = "Yokogawa CellVoyager CV7000: MeasurementData.mlf, MeasurementDetail.mrf, TIFFs"

    @classmethod
    def check(cls, spec: PlateSpec) -> None:
        """Reject specs whose indices do not fit the fixed-width file names."""
        limits = {"sites": 999, "channels": 99, "zplanes": 99, "tpoints": 9999}
        for name, limit in limits.items():
            if getattr(spec, name) > limit:
                raise InvalidPlateSpecError(
                    f"CellVoyager file names hold at most {limit} {name}, got {getattr(spec, name)}"
                )
        if "_" in spec.prefix:
            raise InvalidPlateSpecError(
                f"CellVoyager prefix must not contain '_', got {spec.prefix!r}"
            )

    def __init__(self, outdir: Path, spec: PlateSpec) -> None:
        super().__init__(outdir, spec)
        self.check(spec)
        self._action = "3D" if spec.zplanes > 1 else "2D"
        self._dir = os.fspath(self.outdir)
        self._last_elapsed = 0.0
        self._mlf_part = self.outdir / (MLF_NAME + ".part")
        self._mlf = open(self._mlf_part, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._mlf.write(
            f"{_XML_DECLARATION}{_EOL}"
            f'<bts:MeasurementData xmlns:bts="{NAMESPACE}" bts:Version="1.0">{_EOL}'
        )

    def write_plane(self, plane: PlaneInfo, pixels: NDArray[np.uint16] | None) -> str:
        """Write one TIFF (zero bytes if `pixels` is None) and its mlf record."""
        name = image_filename(
            self.spec.prefix, plane.well, plane.site, plane.channel, plane.zplane, plane.tpoint
        )
        path = os.path.join(self._dir, name)
        if pixels is None:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666))
        else:
            if pixels.dtype != np.uint16 or pixels.shape != self.spec.shape:
                raise ValueError(
                    f"expected a {self.spec.shape} uint16 image, got {pixels.shape} {pixels.dtype}"
                )
            tifffile.imwrite(path, pixels, photometric="minisblack", metadata=None)
        self._last_elapsed = max(self._last_elapsed, plane.elapsed_s)
        self._mlf.write(
            '<bts:MeasurementRecord bts:Type="IMG"'
            f' bts:Time="{_time(plane.elapsed_s)}"'
            f' bts:Column="{plane.well_column + 1}"'
            f' bts:Row="{plane.well_row + 1}"'
            f' bts:FieldIndex="{plane.site + 1}"'
            f' bts:TimePoint="{plane.tpoint + 1}"'
            f' bts:ZIndex="{plane.zplane + 1}"'
            ' bts:TimelineIndex="1" bts:ActionIndex="1"'
            f' bts:Action="{self._action}"'
            f' bts:X="{_num(plane.stage_x_um)}"'
            f' bts:Y="{_num(plane.stage_y_um)}"'
            f' bts:Z="{_num(plane.stage_z_um)}"'
            f' bts:Ch="{plane.channel + 1}">{name}</bts:MeasurementRecord>{_EOL}'
        )
        return name

    def _mrf_text(self) -> str:
        spec = self.spec
        rows, cols = PLATE_FORMATS[spec.plate_format]
        begin = _time(0.0)
        end = _time(self._last_elapsed + 1.0)
        lines = [
            _XML_DECLARATION,
            f'<bts:MeasurementDetail xmlns:bts="{NAMESPACE}" bts:Version="1.0"'
            f' bts:OperatorName="tm_simulate" bts:Title="{spec.prefix}"'
            ' bts:Application="Cell Voyager Measurement System"'
            f' bts:BeginTime="{begin}" bts:EndTime="{end}"'
            f' bts:MeasurementSettingFileName="{spec.prefix}.mes"'
            f' bts:ColumnCount="{cols}" bts:RowCount="{rows}"'
            f' bts:TimePointCount="{spec.tpoints}" bts:FieldCount="{spec.sites}"'
            f' bts:ZCount="{spec.zplanes}" bts:TargetSystem="CV7000"'
            ' bts:ReleaseNumber="R1.17.06" bts:Status="Completed">',
            f'  <bts:MeasurementSamplePlate bts:Name="{spec.prefix}"'
            f' bts:WellPlateFileName="{spec.prefix}.wpi"'
            f' bts:WellPlateProductFileName="Simulated_{spec.plate_format}.wpp" />',
        ]
        pixel = _num(spec.pixel_size_um)
        for c in range(spec.channels):
            lines.append(
                f'  <bts:MeasurementChannel bts:Ch="{c + 1}"'
                f' bts:HorizontalPixelDimension="{pixel}" bts:VerticalPixelDimension="{pixel}"'
                ' bts:CameraNumber="1" bts:InputBitDepth="16" bts:InputLevel="65535"'
                f' bts:HorizontalPixels="{spec.width}" bts:VerticalPixels="{spec.height}"'
                f' bts:FilterWheelPosition="{c + 1}" bts:FilterPosition="{c + 1}"'
                ' bts:ShadingCorrectionSource="" />'
            )
        lines.append("</bts:MeasurementDetail>")
        return _EOL.join(lines) + _EOL

    def finish(self) -> list[str]:
        """Complete the ``.mlf`` and write the ``.mrf``."""
        self._mlf.write(f"</bts:MeasurementData>{_EOL}")
        self._mlf.close()
        os.replace(self._mlf_part, self.outdir / MLF_NAME)
        mrf_part = self.outdir / (MRF_NAME + ".part")
        with open(mrf_part, "w", encoding="utf-8", newline="") as fh:
            fh.write(self._mrf_text())
        os.replace(mrf_part, self.outdir / MRF_NAME)
        return [MLF_NAME, MRF_NAME]

    def abort(self) -> None:
        """Close and delete the partial ``.mlf``."""
        if not self._mlf.closed:
            self._mlf.close()
        self._mlf_part.unlink(missing_ok=True)
