"""Reader for generic TIFF/PNG files: everything comes from the file names.

The named regex (default :data:`DEFAULT_REGEX`, matching names like
``Plate_B03_s0_cDAPI_z0_t0.tif``) must define the groups ``s`` (site) and
``c`` (channel); ``w`` (well, default ``A01``), ``z`` and ``t`` (default 0)
are optional.  Numbers are taken as written (a plate numbering its sites
from 1 is fine: the site grid counts from the lowest site that exists).
One plane per file; no stage positions, sizes or bit depths.

A single image named freely (``cells.tif``): when an acquisition is one
file whose name the default regex does not match and the user gave no
regex, it is the one site of well ``A01``, its channel named by the file
stem (``cells``), and a warning says so.  Several such files are an error
naming the first: only a ``--regex`` can tell their wells, sites and
channels apart.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from tmlib.microscopes.base import FileNameReader, PlaneRecord

__all__ = ["DEFAULT_REGEX", "TiffReader"]

logger = logging.getLogger(__name__)

#: Default named regex for generic image names.
DEFAULT_REGEX = (
    r"(?P<w>[A-Z]\d{2})_s(?P<s>\d+)_c(?P<c>\w+?)(?:_z(?P<z>\d+))?(?:_t(?P<t>\d+))?"
    r"\.(?i:tiff?|png|jpe?g)$"
)


class TiffReader(FileNameReader):
    """Planes of generic image files, from their names alone."""

    name = "tiff"
    default_regex = DEFAULT_REGEX
    required_groups = frozenset({"s", "c"})
    index_base = 0

    def read(
        self,
        image_files: Sequence[Path | str],
        metadata_files: Sequence[Path | str],
        regex: str | None = None,
    ) -> list[PlaneRecord]:
        """Records from the names; one freely named file is one site (see the module doc)."""
        names = [Path(p).name for p in image_files]
        if regex is None and len(names) == 1 and not self.pattern().search(names[0]):
            return [_single_image(names[0])]
        return super().read(image_files, metadata_files, regex)


def _single_image(name: str) -> PlaneRecord:
    """The one image of an acquisition as site 0 of well A01, channel named by its stem."""
    logger.warning(
        "%s does not match the default pattern %s; taking it as the one site of well A01, "
        "channel %r (give --regex to say otherwise)",
        name,
        DEFAULT_REGEX,
        Path(name).stem,
    )
    return PlaneRecord(filename=name, well="A01", site=0, channel=Path(name).stem)
