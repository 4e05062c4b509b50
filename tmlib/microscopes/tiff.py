"""Reader for generic TIFF/PNG files: everything comes from the file names.

The named regex (default :data:`DEFAULT_REGEX`, matching names like
``Plate_B03_s0_cDAPI_z0_t0.tif``) must define the groups ``s`` (site) and
``c`` (channel); ``w`` (well, default ``A01``), ``z`` and ``t`` (default 0)
are optional.  Numbers are taken as written and count from 0.  One plane
per file; no stage positions, sizes or bit depths.
"""

from __future__ import annotations

from tmlib.microscopes.base import FileNameReader

__all__ = ["DEFAULT_REGEX", "TiffReader"]

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
