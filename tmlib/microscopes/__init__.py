"""Microscope types: which files belong to an acquisition, and how to read them.

Each type names a regular expression for its image files and one for its
metadata files. ``tm_add files`` uses them to pick the files of a directory.
Each type also has a :class:`~tmlib.microscopes.base.MetadataReader` that
turns an acquisition's files into one
:class:`~tmlib.microscopes.base.PlaneRecord` per image plane::

    mtype = get_microscope_type("cellvoyager")
    records = mtype.read(image_paths, metadata_paths, regex=None)
    grid = site_grid_positions(records, "horizontal", n_vertical, n_horizontal)

Modules: :mod:`~tmlib.microscopes.base` (records, regex helpers),
:mod:`~tmlib.microscopes.cellvoyager`, :mod:`~tmlib.microscopes.visiview`,
:mod:`~tmlib.microscopes.metamorph`, :mod:`~tmlib.microscopes.tiff`,
:mod:`~tmlib.microscopes.omezarr` (one reader each, with that type's
conventions) and :mod:`~tmlib.microscopes.grid` (site grid positions).

Which names of a source directory a type registers is
:meth:`MicroscopeType.list_files`: the regular files matching its patterns,
unless its reader lists them itself (:meth:`MetadataReader.list_source`, as
``ome-zarr`` does for the field images of a plate).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tmlib.errors import InvalidInputError
from tmlib.microscopes.base import MetadataReader, PlaneRecord, SourceFiles
from tmlib.microscopes.cellvoyager import CellVoyagerReader
from tmlib.microscopes.grid import STITCH_LAYOUTS, site_grid_positions
from tmlib.microscopes.metamorph import MetaMorphReader
from tmlib.microscopes.omezarr import OmeZarrReader
from tmlib.microscopes.tiff import TiffReader
from tmlib.microscopes.visiview import VisiViewReader

__all__ = [
    "MICROSCOPE_TYPES",
    "STITCH_LAYOUTS",
    "MetadataReader",
    "MicroscopeType",
    "PlaneRecord",
    "SourceFiles",
    "get_microscope_type",
    "site_grid_positions",
]


@dataclass(frozen=True)
class MicroscopeType:
    """File patterns of one microscope type.

    Attributes
    ----------
    name : str
        Name used by ``--microscope-type``.
    description : str
        One line shown in ``--help``.
    image_pattern : re.Pattern
        Matches the names of image files (searched from the start of the name).
    metadata_pattern : re.Pattern or None
        Matches the names of vendor metadata files, if the type has any.
    reader : type of MetadataReader
        Reads the plane records of an acquisition (keyword only).
    """

    name: str
    description: str
    image_pattern: re.Pattern[str]
    metadata_pattern: re.Pattern[str] | None = None
    reader: type[MetadataReader] = field(kw_only=True)

    @property
    def default_regex(self) -> str:
        """Named regex applied to image file names where metadata lack a field."""
        return self.reader.default_regex

    def read(
        self,
        image_files: Sequence[Path | str],
        metadata_files: Sequence[Path | str],
        regex: str | None = None,
    ) -> list[PlaneRecord]:
        """One :class:`PlaneRecord` per plane; see :meth:`MetadataReader.read`."""
        return self.reader().read(image_files, metadata_files, regex)

    def list_files(self, directory: Path) -> SourceFiles:
        """The image and metadata names this type registers from `directory`.

        Parameters
        ----------
        directory : Path
            The source directory.

        Returns
        -------
        SourceFiles
            The reader's own listing (:meth:`MetadataReader.list_source`)
            where it has one, else the directory's regular files (no dot
            files) sorted into those matching the image pattern, the
            metadata pattern, and neither.

        Raises
        ------
        InvalidInputError
            When the reader finds the directory invalid.
        """
        listing = self.reader.list_source(directory)
        if listing is not None:
            return listing
        found = SourceFiles([], [], [])
        for name in sorted(_regular_files(directory)):
            if self.is_image(name):
                found.images.append(name)
            elif self.is_metadata(name):
                found.metadata.append(name)
            else:
                found.skipped.append(name)
        return found

    def is_image(self, filename: str) -> bool:
        return self.image_pattern.fullmatch(filename) is not None

    def is_metadata(self, filename: str) -> bool:
        return self.metadata_pattern is not None and (
            self.metadata_pattern.fullmatch(filename) is not None
        )


def _regular_files(directory: Path) -> Iterator[str]:
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_file() and not entry.name.startswith("."):
                yield entry.name


_IMAGE_EXT = r"\.(?:tiff?|png|jpe?g)"

MICROSCOPE_TYPES: dict[str, MicroscopeType] = {
    t.name: t
    for t in (
        MicroscopeType(
            "cellvoyager",
            "Yokogawa CellVoyager CV7000/CV8000 (MeasurementData.mlf + MeasurementDetail.mrf)",
            re.compile(r".+_[A-Z]\d{2}_T\d{4}F\d{3}L\d{2}A\d{2}Z\d{2}C\d{2}" + _IMAGE_EXT, re.I),
            re.compile(r".+\.(?:mlf|mrf)", re.I),
            reader=CellVoyagerReader,
        ),
        MicroscopeType(
            "visiview",
            "Visitron VisiView (.nd files; <name>_w<N><channel>_s<site>[_t<t>])",
            re.compile(r".+_w\d[^_]*_s\d+(?:_t\d+)?" + r"\.(?:tiff?|stk|png)", re.I),
            re.compile(r".+\.nd", re.I),
            reader=VisiViewReader,
        ),
        MicroscopeType(
            "metamorph",
            "MetaMorph / MetaXpress (<name>_<WELL>_s<site>[_w<N>], thumbnails ignored)",
            re.compile(r"(?!.*_thumb).+_[A-Z]\d{2}_s\d+(?:_w\d)?(?:[0-9A-F-]{36})?\.tiff?", re.I),
            reader=MetaMorphReader,
        ),
        MicroscopeType(
            "tiff",
            "Generic TIFF/PNG files; well, site and channel come from a named regex",
            re.compile(r".+" + _IMAGE_EXT, re.I),
            reader=TiffReader,
        ),
        MicroscopeType(
            "ome-zarr",
            "OME-Zarr HCS plate (NGFF 0.4/0.5; fields or Fractal's stitched wells + FOV_ROI_table)",
            re.compile(r"[^/]+/[^/]+/[^/]+"),
            re.compile(r"zarr\.json|\.zattrs"),
            reader=OmeZarrReader,
        ),
    )
}


def get_microscope_type(name: str) -> MicroscopeType:
    """Look up a microscope type by name.

    Raises
    ------
    InvalidInputError
        When `name` is not a known type.
    """
    try:
        return MICROSCOPE_TYPES[name]
    except KeyError:
        raise InvalidInputError(
            f"unknown microscope type {name!r}; choose one of {', '.join(MICROSCOPE_TYPES)}"
        ) from None
