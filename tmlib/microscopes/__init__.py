"""Microscope types: which files belong to an acquisition, and (later) how to read them.

Each type names a regular expression for its image files and one for its
metadata files. ``tm_add files`` uses them to pick the files of a directory;
the metadata readers of the image conversion stage are registered here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tmlib.errors import InvalidInputError


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
    """

    name: str
    description: str
    image_pattern: re.Pattern[str]
    metadata_pattern: re.Pattern[str] | None = None

    def is_image(self, filename: str) -> bool:
        return self.image_pattern.fullmatch(filename) is not None

    def is_metadata(self, filename: str) -> bool:
        return self.metadata_pattern is not None and (
            self.metadata_pattern.fullmatch(filename) is not None
        )


_IMAGE_EXT = r"\.(?:tiff?|png|jpe?g)"

MICROSCOPE_TYPES: dict[str, MicroscopeType] = {
    t.name: t
    for t in (
        MicroscopeType(
            "cellvoyager",
            "Yokogawa CellVoyager CV7000/CV8000 (MeasurementData.mlf + MeasurementDetail.mrf)",
            re.compile(r".+_[A-Z]\d{2}_T\d{4}F\d{3}L\d{2}A\d{2}Z\d{2}C\d{2}" + _IMAGE_EXT, re.I),
            re.compile(r".+\.(?:mlf|mrf)", re.I),
        ),
        MicroscopeType(
            "visiview",
            "Visitron VisiView (.nd files; <name>_w<N><channel>_s<site>[_t<t>])",
            re.compile(r".+_w\d[^_]*_s\d+(?:_t\d+)?" + r"\.(?:tiff?|stk|png)", re.I),
            re.compile(r".+\.nd", re.I),
        ),
        MicroscopeType(
            "metamorph",
            "MetaMorph / MetaXpress (<name>_<WELL>_s<site>[_w<N>], thumbnails ignored)",
            re.compile(r"(?!.*_thumb).+_[A-Z]\d{2}_s\d+(?:_w\d)?(?:[0-9A-F-]{36})?\.tiff?", re.I),
        ),
        MicroscopeType(
            "tiff",
            "Generic TIFF/PNG files; well, site and channel come from a named regex",
            re.compile(r".+" + _IMAGE_EXT, re.I),
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
