"""What every microscope metadata reader shares.

A reader turns the registered files of one acquisition into one
:class:`PlaneRecord` per 2D image plane.  It looks at file *names* and at the
vendor's metadata files only; it never opens the pixels (image sizes and bit
depths that the vendor metadata does not give are left ``None`` and come from
the TIFF headers, read elsewhere).

Fields that a vendor's metadata does not give are taken from the file name
with a *named regular expression* (:func:`apply_regex`): the groups ``w``
(well, e.g. ``B03``), ``s`` (site), ``c`` (channel), ``z`` (z-plane) and ``t``
(time point).  A group that is absent from the expression, or that matched
the empty string, takes its default: well ``A01``, channel ``"1"`` and 0 for
site, z-plane and time point.  Each reader has a default expression and the
groups it cannot do without (:attr:`MetadataReader.required_groups`); the
user may pass another expression.

Numbers in file names count from 0 or 1 depending on the vendor
(:attr:`MetadataReader.index_base`); records always count from 0.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, NamedTuple

from tmlib.errors import InvalidInputError

__all__ = [
    "REGEX_DEFAULTS",
    "REGEX_GROUPS",
    "FileNameReader",
    "MetadataReader",
    "NameFields",
    "PlaneRecord",
    "SourceFiles",
    "apply_regex",
    "check_unique_planes",
    "compile_regex",
    "normalize_well",
    "parse_filename",
    "sort_records",
]

#: The named groups a file-name regex may use, with their meaning.
REGEX_GROUPS: Mapping[str, str] = {
    "w": "well name, e.g. B03",
    "s": "site (field) number within the well",
    "c": "channel name",
    "z": "z-plane number",
    "t": "time point number",
}

#: Values of the groups that a regex does not have or that matched nothing
#: (final values: site, z-plane and time point already 0-based).
REGEX_DEFAULTS: Mapping[str, str] = {"w": "A01", "s": "0", "c": "1", "z": "0", "t": "0"}

_INDEX_LABELS = {"s": "site", "z": "z-plane", "t": "time point"}
_WELL = re.compile(r"([A-Za-z])0*(\d{1,2})")


@dataclass(frozen=True)
class PlaneRecord:
    """One 2D image plane of an acquisition.

    Attributes
    ----------
    filename : str
        Name (no directory) of the registered microscope image file holding
        the plane.
    well : str
        Well name: an uppercase row letter and a two-digit column (``A01``).
    site : int
        The vendor's site (field) index within the well, 0-based.
    channel : str
        Channel name (its form depends on the microscope type).
    tpoint, zplane : int
        Time point and z-plane, 0-based.
    stage_y, stage_x : float or None
        Stage position of the site in micrometres, or None when the format
        records none.  The axes follow the image: ``stage_y`` grows
        *downwards* like image rows and ``stage_x`` grows rightwards like
        image columns (readers flip a vendor's upward y axis), so the site
        with the smallest ``stage_y`` is in the top grid row.
    height, width : int or None
        Plane size in pixels, None when the vendor metadata does not say.
    bit_depth : int or None
        Bits per pixel as recorded by the vendor, None when unknown.
    series : int
        Index of the series (page group) in a multi-image file.
    plane : int
        Index of the page within the file (0 for single-plane files).
    pixel_size_y, pixel_size_x : float or None
        Size of one pixel in micrometres along image rows (y) and columns
        (x), None when the vendor metadata does not say.  With `height` and
        `width` they give the field's physical size, which decides what is
        one row or column of the site grid
        (:func:`~tmlib.microscopes.grid.site_grid_positions`).
    """

    filename: str
    well: str
    site: int
    channel: str
    tpoint: int = 0
    zplane: int = 0
    stage_y: float | None = None
    stage_x: float | None = None
    height: int | None = None
    width: int | None = None
    bit_depth: int | None = None
    series: int = 0
    plane: int = 0
    pixel_size_y: float | None = None
    pixel_size_x: float | None = None


class SourceFiles(NamedTuple):
    """The names a microscope type registers from a source directory.

    Attributes
    ----------
    images, metadata : list of str
        Names (relative paths) of the image and metadata files, sorted.
    skipped : list of str
        Names found in the directory that are neither.
    """

    images: list[str]
    metadata: list[str]
    skipped: list[str]


@dataclass(frozen=True)
class NameFields:
    """Plane coordinates read from a file name (see :func:`parse_filename`).

    Attributes
    ----------
    well : str
        Normalised well name.
    site, zplane, tpoint : int
        0-based indices.
    channel : str
        Channel name.
    groups : dict
        All named groups of the match (None where a group did not take part),
        for type-specific groups such as CellVoyager's action ``a``.
    """

    well: str
    site: int
    channel: str
    zplane: int
    tpoint: int
    groups: Mapping[str, str | None]


def compile_regex(regex: str | re.Pattern[str], required_groups: Iterable[str]) -> re.Pattern[str]:
    """Compile a file-name regex and check that it has the groups a type needs.

    Parameters
    ----------
    regex : str or re.Pattern
        Regular expression with named groups (see :data:`REGEX_GROUPS`).
    required_groups : iterable of str
        Names of the groups the expression must define.

    Returns
    -------
    re.Pattern
        The compiled expression.

    Raises
    ------
    InvalidInputError
        If `regex` is not a valid expression or lacks a required group.
    """
    if isinstance(regex, re.Pattern):
        pattern = regex
    else:
        try:
            pattern = re.compile(regex)
        except re.error as err:
            raise InvalidInputError(f"invalid regular expression {regex!r}: {err}") from None
    missing = sorted(set(required_groups) - set(pattern.groupindex))
    if missing:
        names = ", ".join(f"'{g}' ({REGEX_GROUPS.get(g, g)})" for g in missing)
        raise InvalidInputError(
            f"regular expression {pattern.pattern!r} lacks the named group(s) {names}; "
            f"write them as (?P<{missing[0]}>...)"
        )
    return pattern


def apply_regex(filename: str, regex: str | re.Pattern[str]) -> dict[str, str | None]:
    """Match a file-name regex anywhere in `filename`.

    Parameters
    ----------
    filename : str
        File name (a directory part is ignored).
    regex : str or re.Pattern
        Expression with named groups; searched, not anchored (anchor it with
        ``^``/``$`` where needed).

    Returns
    -------
    dict
        Every named group of the expression; None for groups that did not
        take part in the match, ``""`` for groups that matched nothing.

    Raises
    ------
    InvalidInputError
        If the expression is invalid or does not match the name.
    """
    pattern = compile_regex(regex, ())
    name = Path(filename).name
    match = pattern.search(name)
    if match is None:
        raise InvalidInputError(
            f"file name {name!r} does not match the regular expression {pattern.pattern!r}"
        )
    return match.groupdict()


def normalize_well(text: str) -> str:
    """Normalise a well name: ``'b3'``, ``'B3'``, ``'B003'`` -> ``'B03'``.

    Raises
    ------
    ValueError
        If `text` is not a row letter followed by a column number 1..99.
    """
    match = _WELL.fullmatch(text.strip())
    if match is None or int(match.group(2)) == 0:
        raise ValueError(f"{text!r} is not a well name like A01")
    return f"{match.group(1).upper()}{int(match.group(2)):02d}"


def _index(value: str | None, default: str, base: int, group: str, filename: str) -> int:
    if not value:
        return int(default)
    index = int(value) - base
    if index < 0:
        raise InvalidInputError(
            f"{filename}: {_INDEX_LABELS[group]} number {value} is below {base}, "
            f"where this microscope type counts from {base}"
        )
    return index


def parse_filename(filename: str, pattern: re.Pattern[str], index_base: int = 0) -> NameFields:
    """Read well, site, channel, z-plane and time point from a file name.

    Parameters
    ----------
    filename : str
        File name.
    pattern : re.Pattern
        Compiled expression (see :func:`compile_regex`).
    index_base : int
        0 or 1: what the first site, z-plane and time point are called in
        the file names; the result counts from 0 either way.

    Returns
    -------
    NameFields
        The values, with :data:`REGEX_DEFAULTS` for absent or empty groups.

    Raises
    ------
    InvalidInputError
        If the name does not match, a number is below `index_base`, or the
        well group holds no well name.
    """
    groups = apply_regex(filename, pattern)
    name = Path(filename).name
    well_text = groups.get("w") or REGEX_DEFAULTS["w"]
    try:
        well = normalize_well(well_text)
    except ValueError:
        raise InvalidInputError(
            f"{name}: group 'w' of the regular expression gave {well_text!r}, not a well name "
            "like A01"
        ) from None
    values = {
        g: _index(groups.get(g), REGEX_DEFAULTS[g], index_base, g, name) for g in ("s", "z", "t")
    }
    return NameFields(
        well=well,
        site=values["s"],
        channel=groups.get("c") or REGEX_DEFAULTS["c"],
        zplane=values["z"],
        tpoint=values["t"],
        groups=groups,
    )


def check_unique_planes(records: Iterable[PlaneRecord]) -> None:
    """Raise if two records claim the same well, site, channel, time point and z-plane.

    Raises
    ------
    InvalidInputError
        Naming both files; usually a regex that does not capture every index.
    """
    seen: dict[tuple[str, int, str, int, int], PlaneRecord] = {}
    for record in records:
        key = (record.well, record.site, record.channel, record.tpoint, record.zplane)
        other = seen.setdefault(key, record)
        if other is not record:
            raise InvalidInputError(
                f"{other.filename} and {record.filename} both hold well {key[0]}, site {key[1]}, "
                f"channel {key[2]}, time point {key[3]}, z-plane {key[4]}; does the regular "
                "expression capture every index (groups w, s, c, z, t)?"
            )


class MetadataReader(abc.ABC):
    """Reads the plane records of one acquisition of one microscope type.

    Subclasses set the class attributes and implement :meth:`read`.
    """

    #: Microscope type name (as in :data:`tmlib.microscopes.MICROSCOPE_TYPES`).
    name: ClassVar[str]
    #: Named regex applied to image file names where the metadata lack a field.
    default_regex: ClassVar[str]
    #: Groups a user-supplied regex must define.
    required_groups: ClassVar[frozenset[str]]
    #: What the first site, z-plane and time point are called in file names.
    index_base: ClassVar[int] = 0

    @classmethod
    def list_source(cls, directory: Path) -> SourceFiles | None:
        """The image and metadata names of a source directory, if this type lists them itself.

        The default, None, lets :meth:`tmlib.microscopes.MicroscopeType.list_files`
        match the names of the directory's regular files against the type's
        patterns. A type whose "files" are not plain files of the directory
        (e.g. the field images of an OME-Zarr plate) overrides this; it may
        validate the directory and raise ``InvalidInputError``.
        """
        return None

    def pattern(self, regex: str | None = None) -> re.Pattern[str]:
        """Compiled `regex`, or the type's default; checks the required groups."""
        return compile_regex(
            regex if regex is not None else self.default_regex, self.required_groups
        )

    def fields(self, filename: str, pattern: re.Pattern[str]) -> NameFields:
        """:func:`parse_filename` with this type's index base."""
        return parse_filename(filename, pattern, self.index_base)

    @abc.abstractmethod
    def read(
        self,
        image_files: Sequence[Path | str],
        metadata_files: Sequence[Path | str],
        regex: str | None = None,
    ) -> list[PlaneRecord]:
        """Return one record per image plane.

        Parameters
        ----------
        image_files : sequence of path
            The acquisition's registered image files (only names are used).
        metadata_files : sequence of path
            The acquisition's registered vendor metadata files (read).
        regex : str, optional
            Named regex overriding :attr:`default_regex`.

        Returns
        -------
        list of PlaneRecord
            Sorted by file name, series and plane.

        Raises
        ------
        InvalidInputError
            For a bad regex, a name it does not match, unreadable or
            inconsistent metadata, or two files claiming one plane.
        """


def sort_records(records: Iterable[PlaneRecord]) -> list[PlaneRecord]:
    """Records in the documented order, checked for duplicate planes."""
    ordered = sorted(records, key=lambda r: (r.filename, r.series, r.plane))
    check_unique_planes(ordered)
    return ordered


class FileNameReader(MetadataReader):
    """A reader that takes every field from the file names (no metadata files).

    Subclasses set the class attributes of :class:`MetadataReader` and may
    override :meth:`skip` to leave out files that hold no planes.
    """

    def skip(self, filename: str) -> bool:
        """Whether `filename` holds no plane of the acquisition (default: never)."""
        return False

    def read(
        self,
        image_files: Sequence[Path | str],
        metadata_files: Sequence[Path | str],
        regex: str | None = None,
    ) -> list[PlaneRecord]:
        """One single-plane record per image file, from its name alone.

        `metadata_files` are ignored.
        """
        pattern = self.pattern(regex)
        records = []
        for path in image_files:
            name = Path(path).name
            if self.skip(name):
                continue
            fields = self.fields(name, pattern)
            records.append(
                PlaneRecord(
                    filename=name,
                    well=fields.well,
                    site=fields.site,
                    channel=fields.channel,
                    tpoint=fields.tpoint,
                    zplane=fields.zplane,
                )
            )
        return sort_records(records)
