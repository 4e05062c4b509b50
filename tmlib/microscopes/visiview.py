"""Reader for the Visitron VisiView layout (MetaMorph-style ``.nd`` files).

Files
-----
Image files are named ``<name>[_<WELL>]_w<N><wave name>_s<S>[_t<T>].TIF``
(or ``.stk``): wavelength ``N``, stage position ``S`` and time point ``T``,
all 1-based.  A file holds the z-stack of one wavelength, stage position and
time point, one page per z-plane.

``<name>.nd`` is a text file of ``"Key", value`` lines between
``"NDInfoFile", Version 1.0`` and ``"EndFile"``, e.g.::

    "DoTimelapse", TRUE
    "NTimePoints", 2
    "DoStage", TRUE
    "NStagePositions", 8
    "Stage1", "row:A,column:1,site:1"
    "DoWave", TRUE
    "NWavelengths", 2
    "WaveName1", "CSU405"
    "WaveDoZ1", TRUE
    "DoZSeries", TRUE
    "NZSteps", 3
    "WaveInFileName", TRUE

``Stage<S>`` names the well and site of stage position ``S``: either
``row:<R>,column:<C>,site:<K>`` (row as a letter or a 1-based number) or a
text starting with a well name (``"B03"``, ``"B03 : 2"``).  The ``.nd``
holds no stage coordinates.

Conventions of the records
--------------------------
* well: from the ``Stage<S>`` entry, else the ``w`` group of the file name,
  else ``A01``.
* site: the rank of the stage position among the well's positions, ordered
  by their ``site:`` number (so per-well and plate-wide site numbering both
  give 0, 1, 2 ... within each well); without a usable ``Stage<S>`` entry
  ``S - 1``.
* channel: the text after ``w<N>`` in the name (``w1DAPI`` -> ``DAPI``), or
  ``w<N>`` when there is none.
* tpoint = ``T - 1`` (0 without ``_t``).
* z-planes: when the ``.nd`` says ``DoZSeries`` and ``WaveDoZ<N>`` are TRUE,
  each file holds ``NZSteps`` planes (``plane`` = ``zplane`` = page index);
  else one.  A user regex with a ``z`` group (1-based) makes every file a
  single plane at that z-plane.
* No stage positions, sizes or bit depths.

Without any ``.nd`` file everything comes from the names (one plane per file).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tmlib.errors import InvalidInputError
from tmlib.microscopes.base import (
    MetadataReader,
    PlaneRecord,
    normalize_well,
    sort_records,
)
from tmlib.plates import well_name

__all__ = [
    "DEFAULT_REGEX",
    "NdFile",
    "VisiViewReader",
    "parse_stage_name",
    "read_nd",
]

#: Default named regex for VisiView image names (``wave``: the wavelength number).
DEFAULT_REGEX = (
    r"^(?P<name>.+?)(?:_(?P<w>[A-Z]\d{2}))?_w(?P<wave>\d+)(?P<c>.*?)_s(?P<s>\d+)"
    r"(?:_t(?P<t>\d+))?\.(?i:tiff?|stk|png)$"
)

_LINE = re.compile(r'^"([^"]*)"\s*(?:,\s*(.*?))?\s*$')
_ROW_COLUMN = re.compile(
    r"row\s*:\s*([A-Za-z]|\d+)\s*,\s*column\s*:\s*(\d+)(?:\s*,\s*site\s*:\s*(\d+))?",
    re.IGNORECASE,
)
_WELL_FIRST = re.compile(r"^\s*([A-Za-z]\d{2})(?!\d)(?:\D+(\d+))?")


@dataclass(frozen=True)
class NdFile:
    """The content of a ``.nd`` file.

    Attributes
    ----------
    path : pathlib.Path
        Where it was read from.
    values : dict
        Key -> value text, quotes removed, in file order.
    """

    path: Path
    values: dict[str, str]

    @property
    def stem(self) -> str:
        """Name of the data set: image names start with ``<stem>_``."""
        return self.path.stem

    def flag(self, key: str) -> bool:
        """Whether `key` is ``TRUE`` (absent keys are false)."""
        return self.values.get(key, "").strip().upper() == "TRUE"

    def integer(self, key: str, default: int) -> int:
        """Integer value of `key`, `default` if absent."""
        text = self.values.get(key)
        if text is None or not text.strip():
            return default
        try:
            return int(text)
        except ValueError:
            raise InvalidInputError(
                f"{self.path}: {key} is {text!r}, expected a whole number"
            ) from None

    @property
    def n_stages(self) -> int:
        """Number of stage positions (1 without ``DoStage``)."""
        return self.integer("NStagePositions", 1) if self.flag("DoStage") else 1

    @property
    def n_tpoints(self) -> int:
        """Number of time points (1 without ``DoTimelapse``)."""
        return self.integer("NTimePoints", 1) if self.flag("DoTimelapse") else 1

    @property
    def n_waves(self) -> int:
        """Number of wavelengths (1 without ``DoWave``)."""
        return self.integer("NWavelengths", 1) if self.flag("DoWave") else 1

    def planes_per_file(self, wave: int | None) -> int:
        """Pages of a file of wavelength `wave` (1-based; None: unknown)."""
        if not self.flag("DoZSeries"):
            return 1
        key = f"WaveDoZ{wave}"
        if wave is not None and key in self.values and not self.flag(key):
            return 1
        return max(1, self.integer("NZSteps", 1))

    def stage_sites(self) -> dict[int, tuple[str, int]]:
        """Stage position (1-based) -> (well, 0-based site within the well).

        Positions whose name holds no well are left out.
        """
        by_well: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for stage in range(1, self.n_stages + 1):
            text = self.values.get(f"Stage{stage}")
            if text is None:
                continue
            try:
                well, site = parse_stage_name(text)
            except ValueError as err:
                raise InvalidInputError(f"{self.path}: Stage{stage} {err}") from None
            if well is not None:
                by_well[well].append((stage if site is None else site, stage))
        result = {}
        for well, stages in by_well.items():
            for rank, (_, stage) in enumerate(sorted(stages)):
                result[stage] = (well, rank)
        return result


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_nd(path: Path | str) -> NdFile:
    """Parse a ``.nd`` file.

    Raises
    ------
    InvalidInputError
        If the file cannot be read, does not start with ``"NDInfoFile"`` or
        has a line that is not ``"Key", value``.
    """
    path = Path(path)
    try:
        text = _decode(path.read_bytes())
    except OSError as err:
        raise InvalidInputError(f"cannot read {path}: {err.strerror}") from None
    values: dict[str, str] = {}
    seen_header = False
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _LINE.match(line.strip())
        if match is None:
            raise InvalidInputError(
                f'{path}: line {number} is not "Key", value: {line.strip()[:60]!r}'
            )
        key, value = match.group(1), match.group(2) or ""
        if not seen_header:
            if key != "NDInfoFile":
                raise InvalidInputError(
                    f'{path}: not a .nd file (line {number} should be "NDInfoFile", Version ...)'
                )
            seen_header = True
            continue
        if key == "EndFile":
            break
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        values[key] = value
    if not seen_header:
        raise InvalidInputError(f'{path}: not a .nd file (no "NDInfoFile" line)')
    return NdFile(path=path, values=values)


def parse_stage_name(text: str) -> tuple[str | None, int | None]:
    """Well and site number named by a ``Stage<N>`` entry.

    Parameters
    ----------
    text : str
        E.g. ``"row:B,column:3,site:2"``, ``"row:2,column:3,site:2"``,
        ``"B03 : 2"``, ``"B03"`` or a free name (``"Position 1"``).

    Returns
    -------
    tuple
        ``(well, site)``: the well name (None if the text names none) and
        the site number as written (None if absent).

    Raises
    ------
    ValueError
        If a row/column is given but names no well.
    """
    match = _ROW_COLUMN.search(text)
    if match is not None:
        row_text, column, site = match.groups()
        row = int(row_text) if row_text.isdigit() else ord(row_text.upper()) - ord("A") + 1
        try:
            well = well_name(row - 1, int(column) - 1)  # 1-based in the .nd
        except ValueError:
            raise ValueError(f"{text!r} names no well") from None
        return well, int(site) if site is not None else None
    match = _WELL_FIRST.match(text)
    if match is not None:
        try:
            well = normalize_well(match.group(1))
        except ValueError:
            return None, None
        return well, int(match.group(2)) if match.group(2) else None
    return None, None


def _nd_for(name: str, nd_files: Sequence[NdFile]) -> NdFile | None:
    """The ``.nd`` whose stem starts `name` (the longest such stem)."""
    best = None
    for nd in nd_files:
        if name.startswith(nd.stem + "_") and (best is None or len(nd.stem) > len(best.stem)):
            best = nd
    return best


class VisiViewReader(MetadataReader):
    """Planes of a VisiView acquisition from ``.nd`` files and file names."""

    name = "visiview"
    default_regex = DEFAULT_REGEX
    required_groups = frozenset({"s", "c"})
    index_base = 1

    def read(
        self,
        image_files: Sequence[Path | str],
        metadata_files: Sequence[Path | str],
        regex: str | None = None,
    ) -> list[PlaneRecord]:
        """Records of every plane (see the module docstring for conventions)."""
        pattern = self.pattern(regex)
        nd_files = [read_nd(p) for p in metadata_files if Path(p).suffix.lower() == ".nd"]
        stage_sites = {id(nd): nd.stage_sites() for nd in nd_files}
        records: list[PlaneRecord] = []
        for path in image_files:
            name = Path(path).name
            fields = self.fields(name, pattern)
            wave_text = fields.groups.get("wave")
            wave = int(wave_text) if wave_text else None
            channel = fields.groups.get("c") or (f"w{wave}" if wave is not None else "1")
            well, site, n_planes = fields.well, fields.site, 1
            nd = _nd_for(name, nd_files)
            if nd_files and nd is None:
                raise InvalidInputError(
                    f"no metadata record for {name}: no .nd file is named after the start of "
                    f"its name (have {', '.join(n.path.name for n in nd_files)})"
                )
            if nd is not None:
                self._check_ranges(nd, name, fields.site + 1, wave, fields.tpoint + 1)
                named = stage_sites[id(nd)].get(fields.site + 1)
                if named is not None:
                    if fields.groups.get("w") and named[0] != well:
                        raise InvalidInputError(
                            f"{name}: the name says well {well}, but {nd.path.name} puts stage "
                            f"position {fields.site + 1} into well {named[0]}"
                        )
                    well, site = named
                if not fields.groups.get("z"):
                    n_planes = nd.planes_per_file(wave)
            records.extend(
                PlaneRecord(
                    filename=name,
                    well=well,
                    site=site,
                    channel=channel,
                    tpoint=fields.tpoint,
                    zplane=z if n_planes > 1 else fields.zplane,
                    plane=z,
                )
                for z in range(n_planes)
            )
        return sort_records(records)

    @staticmethod
    def _check_ranges(nd: NdFile, name: str, stage: int, wave: int | None, tpoint: int) -> None:
        for what, value, limit in (
            ("stage position", stage, nd.n_stages),
            ("wavelength", wave, nd.n_waves),
            ("time point", tpoint, nd.n_tpoints),
        ):
            if value is not None and value > limit:
                raise InvalidInputError(
                    f"no metadata record for {name}: its {what} {value} is beyond the "
                    f"{limit} of {nd.path.name}"
                )
