"""Reader for MetaMorph / MetaXpress plate layouts (no metadata files).

Image files are named ``<name>_<WELL>_s<site>[_w<N>][<GUID>].tif``: the
well, the 1-based site and, with more than one wavelength, the 1-based
wavelength number ``N``; MetaXpress appends a GUID.  Thumbnails
(``..._thumb<GUID>.tif``) hold no planes and are left out.

Conventions of the records: site = ``s - 1``; channel = ``N`` as written
(``"1"`` when the name has no ``_w``); one plane per file, time point and
z-plane 0 (the layout has no place for them; a user regex with groups ``z``
and ``t``, counted from 1, can supply them); no stage positions, sizes or
bit depths.
"""

from __future__ import annotations

import re

from tmlib.microscopes.base import FileNameReader

__all__ = ["DEFAULT_REGEX", "MetaMorphReader"]

#: Default named regex for MetaMorph image names.
DEFAULT_REGEX = (
    r"^(?P<name>.+)_(?P<w>[A-Z]\d{2})_s(?P<s>\d+)(?:_w(?P<c>\d+))?"
    r"(?:[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12})?\.(?i:tiff?)$"
)

_THUMBNAIL = re.compile(r"_thumb", re.IGNORECASE)


class MetaMorphReader(FileNameReader):
    """Planes of a MetaMorph acquisition, from the file names."""

    name = "metamorph"
    default_regex = DEFAULT_REGEX
    required_groups = frozenset({"w", "s"})
    index_base = 1

    def skip(self, filename: str) -> bool:
        """Thumbnails (``_thumb`` in the name) hold no planes."""
        return _THUMBNAIL.search(filename) is not None
