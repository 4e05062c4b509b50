"""Reader for the Yokogawa CellVoyager (CV7000/CV8000) layout.

Files
-----
Images are single-plane TIFFs named
``<prefix>_<WELL>_T<tttt>F<fff>L<ll>A<aa>Z<zz>C<cc>.tif`` (1-based time
point, field, timeline, action, z-plane and channel).  A client that
converted them may have renamed them to ``.png`` or ``.jpg``; records are
matched to registered files by file stem in that case.

``MeasurementData.mlf`` (XML, namespace ``bts``) holds one
``MeasurementRecord`` per image, its text the image file name, with the
attributes ``Type`` (``IMG``; ``ERR`` marks a failed acquisition and is
skipped), ``Row``/``Column`` (1-based plate position), ``FieldIndex``,
``TimePoint``, ``ZIndex``, ``ActionIndex``, ``Ch`` (1-based) and the stage
position ``X``/``Y`` in micrometres.  ``MeasurementDetail.mrf`` holds one
``MeasurementChannel`` per channel (``Ch``, ``HorizontalPixels``,
``VerticalPixels``, ``InputBitDepth`` and the pixel size in micrometres
``HorizontalPixelDimension``/``VerticalPixelDimension``; channels taken by
different cameras or binnings may differ).

Conventions of the records
--------------------------
* site = ``FieldIndex - 1``, tpoint = ``TimePoint - 1``, zplane =
  ``ZIndex - 1``.
* channel = ``A<aa>_C<cc>`` (action index and ``Ch``, two digits each), e.g.
  ``A01_C02``; the same at every time point.
* ``stage_x = X`` and ``stage_y = -Y``: the CellVoyager's y axis points up,
  records use the image-row direction (see :class:`PlaneRecord`).
* height, width, bit depth and pixel size come from the ``.mrf`` channel
  of ``Ch`` (None without an ``.mrf``; a pixel size that is not positive
  counts as unknown).

Without an ``.mlf`` every field comes from the file name through the named
regex (:data:`DEFAULT_REGEX`, 1-based numbers; an optional group ``a``
holding ``A<aa>`` makes the channel ``A<aa>_<c>``) and there are no stage
positions.
"""

from __future__ import annotations

import logging
import math
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tmlib.errors import InvalidInputError
from tmlib.microscopes.base import MetadataReader, PlaneRecord, sort_records
from tmlib.plates import well_name

__all__ = [
    "DEFAULT_REGEX",
    "NAMESPACE",
    "CellVoyagerReader",
    "ChannelInfo",
    "MlfRecord",
    "channel_name",
    "read_mlf",
    "read_mrf",
]

logger = logging.getLogger(__name__)

#: XML namespace of CellVoyager metadata (prefix ``bts``).
NAMESPACE = "http://www.yokogawa.co.jp/BTS/BTSSchema/1.0"

_QUALIFIED = {
    key: f"{{{NAMESPACE}}}{key}"
    for key in ("Type", "Row", "Column", "FieldIndex", "Ch", "TimePoint", "ZIndex", "ActionIndex")
    + ("TimelineIndex", "X", "Y", "HorizontalPixels", "VerticalPixels", "InputBitDepth")
    + ("HorizontalPixelDimension", "VerticalPixelDimension")
}

#: Default named regex for CellVoyager image names (used without an .mlf).
DEFAULT_REGEX = (
    r"_(?P<w>[A-Z]\d{2})_T(?P<t>\d{4})F(?P<s>\d{3})L\d{2}(?P<a>A\d{2})Z(?P<z>\d{2})"
    r"(?P<c>C\d{2})\.(?i:tiff?|png|jpe?g)$"
)


@dataclass(frozen=True)
class MlfRecord:
    """One ``MeasurementRecord`` of an ``.mlf`` file (indices as in the file, 1-based).

    Attributes
    ----------
    number : int
        Position of the record in the file, from 1 (for messages).
    filename : str
        Element text: the image file name (or an error text for ERR).
    type : str
        ``IMG``, ``ERR`` ...
    row, column, field, channel, tpoint, zindex, action, timeline : int
        1-based plate row and column, field, ``Ch``, time point, z index,
        action and timeline (0 for an ERR record that lacks them).
    x, y : float or None
        Stage position in micrometres (y pointing up), None if absent.
    """

    number: int
    filename: str
    type: str
    row: int
    column: int
    field: int
    channel: int
    tpoint: int
    zindex: int
    action: int
    timeline: int
    x: float | None
    y: float | None


@dataclass(frozen=True)
class ChannelInfo:
    """One ``MeasurementChannel`` of an ``.mrf`` file (pixel sizes in micrometres)."""

    channel: int
    width: int | None
    height: int | None
    bit_depth: int | None
    pixel_size_x: float | None = None
    pixel_size_y: float | None = None


def channel_name(action: int, channel: int) -> str:
    """CellVoyager channel name, e.g. ``channel_name(1, 2) == 'A01_C02'``."""
    return f"A{action:02d}_C{channel:02d}"


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _xml_error(path: Path, err: ET.ParseError) -> InvalidInputError:
    line, column = err.position
    reason = str(err).split(":")[0]
    return InvalidInputError(
        f"{path}: not valid XML at line {line}, column {column + 1} ({reason}); "
        "is the file truncated or corrupt?"
    )


def _iter_elements(path: Path, root_name: str) -> Iterator[ET.Element]:
    """Yield the closed child elements of the root, checking the root's name."""
    depth = 0
    try:
        for event, element in ET.iterparse(path, events=("start", "end")):
            if event == "start":
                if depth == 0 and _local(element.tag) != root_name:
                    raise InvalidInputError(
                        f"{path}: root element is {_local(element.tag)!r}, expected {root_name!r}"
                    )
                depth += 1
                continue
            depth -= 1
            if depth == 1:
                yield element
                element.clear()
    except ET.ParseError as err:
        raise _xml_error(path, err) from None
    except OSError as err:
        raise InvalidInputError(f"cannot read {path}: {err.strerror or err}") from None


class _Attributes:
    """Typed access to the attributes of one record, with messages naming it.

    Attributes are looked up in the ``bts`` namespace, then without one.
    """

    def __init__(self, path: Path, number: int, element: ET.Element, lenient: bool) -> None:
        self.path = path
        self.number = number
        self.attrib = element.attrib
        self.lenient = lenient

    def get(self, key: str) -> str | None:
        """Raw text of `key`, None if absent."""
        text = self.attrib.get(_QUALIFIED[key])
        return self.attrib.get(key) if text is None else text

    def _text(self, key: str) -> str | None:
        text = self.get(key)
        return text if text is not None and text.strip() else None

    def _bad(self, key: str, text: str) -> InvalidInputError:
        return InvalidInputError(
            f"{self.path}: record {self.number} has {key}={text!r}, expected a number"
        )

    def integer(self, key: str, default: int | None = None) -> int:
        """Value of `key`; `default` if absent (an error if no default, unless lenient)."""
        text = self._text(key)
        if text is None:
            if default is not None:
                return default
            if self.lenient:
                return 0
            raise InvalidInputError(f"{self.path}: record {self.number} has no attribute {key}")
        try:
            return int(text)
        except ValueError:
            raise self._bad(key, text) from None

    def optional_integer(self, key: str) -> int | None:
        """Value of `key`, None if absent."""
        return None if self._text(key) is None else self.integer(key)

    def real(self, key: str) -> float | None:
        """Value of `key` as a float, None if absent."""
        text = self._text(key)
        if text is None:
            return None
        try:
            return float(text)
        except ValueError:
            raise self._bad(key, text) from None


def read_mlf(path: Path | str) -> list[MlfRecord]:
    """Parse the ``MeasurementRecord`` elements of an ``.mlf`` file.

    ERR records are returned too (with 0 for indices they lack); callers
    skip them.

    Raises
    ------
    InvalidInputError
        If the file is not well-formed XML, has another root element, or an
        IMG record lacks or garbles a required attribute.
    """
    path = Path(path)
    records = []
    number = 0
    for element in _iter_elements(path, "MeasurementData"):
        if _local(element.tag) != "MeasurementRecord":
            continue
        number += 1
        attrs = _Attributes(path, number, element, lenient=False)
        kind = attrs.get("Type") or "IMG"
        attrs.lenient = kind == "ERR"
        records.append(
            MlfRecord(
                number=number,
                filename=(element.text or "").strip(),
                type=kind,
                row=attrs.integer("Row"),
                column=attrs.integer("Column"),
                field=attrs.integer("FieldIndex"),
                channel=attrs.integer("Ch"),
                tpoint=attrs.integer("TimePoint", 1),
                zindex=attrs.integer("ZIndex", 1),
                action=attrs.integer("ActionIndex", 1),
                timeline=attrs.integer("TimelineIndex", 1),
                x=attrs.real("X"),
                y=attrs.real("Y"),
            )
        )
    return records


def read_mrf(path: Path | str) -> dict[int, ChannelInfo]:
    """Parse the ``MeasurementChannel`` elements of an ``.mrf`` file.

    Returns
    -------
    dict
        ``Ch`` -> :class:`ChannelInfo`.

    Raises
    ------
    InvalidInputError
        If the file is not well-formed XML or has another root element, a
        channel lacks ``Ch`` or a number is garbled, or the channels have
        different bit depths.
    """
    path = Path(path)
    channels: dict[int, ChannelInfo] = {}
    number = 0
    for element in _iter_elements(path, "MeasurementDetail"):
        if _local(element.tag) != "MeasurementChannel":
            continue
        number += 1
        attrs = _Attributes(path, number, element, lenient=False)
        ch = attrs.integer("Ch")
        channels[ch] = ChannelInfo(
            channel=ch,
            width=attrs.optional_integer("HorizontalPixels"),
            height=attrs.optional_integer("VerticalPixels"),
            bit_depth=attrs.optional_integer("InputBitDepth"),
            pixel_size_x=_positive(attrs.real("HorizontalPixelDimension")),
            pixel_size_y=_positive(attrs.real("VerticalPixelDimension")),
        )
    depths = sorted({c.bit_depth for c in channels.values() if c.bit_depth is not None})
    if len(depths) > 1:
        raise InvalidInputError(
            f"{path}: channels have different bit depths ({', '.join(map(str, depths))}); "
            "all channels of an experiment must share one bit depth"
        )
    return channels


def _positive(value: float | None) -> float | None:
    # A zero or negative pixel size is no size at all: the grid falls back
    # to the gaps between stage positions.
    return value if value is not None and 0 < value < math.inf else None


def _pick_one(files: Sequence[Path], suffix: str) -> Path | None:
    matching = [p for p in files if p.suffix.lower() == suffix]
    if len(matching) > 1:
        raise InvalidInputError(
            f"expected at most one {suffix} file per acquisition, got "
            f"{', '.join(p.name for p in matching)}"
        )
    return matching[0] if matching else None


class _ImageIndex:
    """Finds the registered file of an mlf record (by name, else by stem)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = set(names)
        self.by_stem: dict[str, str] = {}
        for name in sorted(names):
            self.by_stem.setdefault(os.path.splitext(name)[0], name)

    def find(self, filename: str) -> str | None:
        if filename in self.names:
            return filename
        return self.by_stem.get(os.path.splitext(os.path.basename(filename))[0])


class CellVoyagerReader(MetadataReader):
    """Planes of a CellVoyager acquisition from ``.mlf``/``.mrf`` (or names)."""

    name = "cellvoyager"
    default_regex = DEFAULT_REGEX
    required_groups = frozenset({"w", "s", "c"})
    index_base = 1

    def read(
        self,
        image_files: Sequence[Path | str],
        metadata_files: Sequence[Path | str],
        regex: str | None = None,
    ) -> list[PlaneRecord]:
        """One record per image file (see the module docstring for conventions)."""
        pattern = self.pattern(regex)
        names = [os.path.basename(os.fspath(p)) for p in image_files]
        metadata = [Path(p) for p in metadata_files]
        mlf = _pick_one(metadata, ".mlf")
        mrf = _pick_one(metadata, ".mrf")
        channels = read_mrf(mrf) if mrf is not None else {}
        if mlf is None:
            return sort_records(self._from_names(names, pattern, channels))
        return sort_records(self._from_mlf(mlf, names, channels))

    def _from_names(
        self, names: Sequence[str], pattern: re.Pattern[str], channels: dict[int, ChannelInfo]
    ) -> list[PlaneRecord]:
        records = []
        for name in names:
            fields = self.fields(name, pattern)
            channel = fields.channel
            action = fields.groups.get("a")
            if action:
                channel = f"{action}_{channel}"
            digits = re.search(r"(\d+)$", fields.channel)
            info = channels.get(int(digits.group(1))) if digits else None
            records.append(
                PlaneRecord(
                    filename=name,
                    well=fields.well,
                    site=fields.site,
                    channel=channel,
                    tpoint=fields.tpoint,
                    zplane=fields.zplane,
                    height=info.height if info else None,
                    width=info.width if info else None,
                    bit_depth=info.bit_depth if info else None,
                    pixel_size_y=info.pixel_size_y if info else None,
                    pixel_size_x=info.pixel_size_x if info else None,
                )
            )
        return records

    def _from_mlf(
        self, mlf: Path, names: Sequence[str], channels: dict[int, ChannelInfo]
    ) -> list[PlaneRecord]:
        index = _ImageIndex(names)
        records: dict[str, PlaneRecord] = {}
        failed: set[str] = set()
        for rec in read_mlf(mlf):
            registered = index.find(rec.filename)
            if rec.type == "ERR":
                if registered is not None:
                    failed.add(registered)
                continue
            if registered is None:
                raise InvalidInputError(
                    f"{mlf}: record {rec.number} names image file {rec.filename!r}, which is "
                    "not registered with the acquisition (missing from the source directory?)"
                )
            if registered in records:
                raise InvalidInputError(
                    f"{mlf}: record {rec.number} describes {rec.filename} a second time"
                )
            records[registered] = self._plane(mlf, rec, registered, channels)
        for name in names:
            if name in records:
                continue
            if name in failed:
                logger.warning("%s: skipping %s, its only record is of Type ERR", mlf, name)
                continue
            raise InvalidInputError(f"no metadata record for {name} in {mlf}")
        return list(records.values())

    @staticmethod
    def _plane(
        mlf: Path, rec: MlfRecord, filename: str, channels: dict[int, ChannelInfo]
    ) -> PlaneRecord:
        def index(value: int, what: str) -> int:
            if value < 1:
                raise InvalidInputError(
                    f"{mlf}: record {rec.number} ({rec.filename}) has {what}={value}, "
                    "expected a number from 1"
                )
            return value - 1

        try:
            well = well_name(rec.row - 1, rec.column - 1)  # 1-based in the .mlf
        except ValueError:
            raise InvalidInputError(
                f"{mlf}: record {rec.number} ({rec.filename}) has Row={rec.row}, "
                f"Column={rec.column}: no such well"
            ) from None
        info = channels.get(rec.channel)
        return PlaneRecord(
            filename=filename,
            well=well,
            site=index(rec.field, "FieldIndex"),
            channel=channel_name(rec.action, rec.channel),
            tpoint=index(rec.tpoint, "TimePoint"),
            zplane=index(rec.zindex, "ZIndex"),
            stage_y=None if rec.y is None else 0.0 - rec.y,
            stage_x=rec.x,
            height=info.height if info else None,
            width=info.width if info else None,
            bit_depth=info.bit_depth if info else None,
            pixel_size_y=info.pixel_size_y if info else None,
            pixel_size_x=info.pixel_size_x if info else None,
        )
