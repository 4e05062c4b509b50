"""Plate formats, well names and the kinds of experiments.

Plain values and functions, kept apart from the database models so that the
vendor readers and the command lines (whose ``--help`` lists these choices) use
them without importing SQLAlchemy. :mod:`tmlib.models.experiment` re-exports them.
"""

from __future__ import annotations

import re

PLATE_FORMATS = (1, 96, 384)
ACQUISITION_MODES = ("basic", "multiplexing")
WORKFLOW_TYPES = ("canonical", "multiplexing")
FILE_STATUSES = ("WAITING", "UPLOADING", "COMPLETE", "FAILED")

#: (rows, columns) of each plate format
PLATE_DIMENSIONS = {1: (1, 1), 96: (8, 12), 384: (16, 24)}

_WELL_NAME = re.compile(r"^([A-Z])(\d{2})$")


def well_coordinates(name: str) -> tuple[int, int]:
    """Zero-based (row, column) of a well name such as ``B03`` → (1, 2).

    Raises
    ------
    ValueError
        When `name` is not an uppercase letter followed by two digits.
    """
    match = _WELL_NAME.match(name)
    if match is None:
        raise ValueError(f"invalid well name {name!r}: expected e.g. 'A01'")
    return ord(match.group(1)) - ord("A"), int(match.group(2)) - 1


def well_name(row: int, column: int) -> str:
    """Well name of a zero-based (row, column): (1, 2) → ``B03``.

    Raises
    ------
    ValueError
        If row is outside 0..25 or column outside 0..98.
    """
    if not (0 <= row < 26 and 0 <= column < 99):
        raise ValueError(f"no well at row {row + 1}, column {column + 1}")
    return f"{chr(ord('A') + row)}{column + 1:02d}"
