"""Where each site lies in its well's grid of sites.

:func:`site_grid_positions` gives every site a 0-based ``(row, column)`` in
the grid of its well:

* From stage positions, when every site of the well has them: the distinct
  y and x positions are clustered (stage positions jitter by a fraction of a
  micrometre; see :func:`stage_tolerance`) and ranked.  Row 0 holds the
  smallest ``stage_y`` (the top, as :class:`~tmlib.microscopes.base.PlaneRecord`
  has y growing downwards), column 0 the smallest ``stage_x``.
* Else from the order in which the microscope took the sites (the stitch
  layout) and the grid size ``n_vertical x n_horizontal``
  (:func:`layout_position`).

Everything here is pure: no files, no database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tmlib.errors import InvalidInputError

__all__ = [
    "STITCH_LAYOUTS",
    "SiteLocation",
    "cluster_values",
    "layout_position",
    "site_grid_positions",
    "stage_tolerance",
]

#: Orders in which a microscope may have taken the sites of a well:
#: row by row, row by row with every other row right to left, column by
#: column, column by column with every other column bottom to top.
STITCH_LAYOUTS = ("horizontal", "zigzag_horizontal", "vertical", "zigzag_vertical")

#: Gaps at least this fraction of the largest gap count as steps between
#: grid rows/columns when the tolerance is estimated.
_STEP_FRACTION = 0.25


@dataclass(frozen=True)
class SiteLocation:
    """A site and (optionally) its stage position in micrometres (y downwards)."""

    well: str
    site: int
    stage_y: float | None = None
    stage_x: float | None = None


def _location(item: Any) -> SiteLocation:
    if isinstance(item, SiteLocation):
        return item
    if isinstance(item, tuple):
        if len(item) == 2:
            return SiteLocation(str(item[0]), int(item[1]))
        if len(item) == 4:
            return SiteLocation(str(item[0]), int(item[1]), item[2], item[3])
        raise TypeError(f"expected (well, site) or (well, site, stage_y, stage_x), got {item!r}")
    return SiteLocation(
        item.well, int(item.site), getattr(item, "stage_y", None), getattr(item, "stage_x", None)
    )


def layout_position(
    site: int, stitch_layout: str, n_vertical: int, n_horizontal: int
) -> tuple[int, int]:
    """Grid ``(row, column)`` of the `site`-th site taken in `stitch_layout` order.

    Parameters
    ----------
    site : int
        0-based acquisition index of the site within its well.
    stitch_layout : str
        One of :data:`STITCH_LAYOUTS`.
    n_vertical, n_horizontal : int
        Rows and columns of the grid.

    Returns
    -------
    tuple of int
        0-based row and column.

    Raises
    ------
    ValueError
        If `site` does not fit the grid or the layout is unknown.

    Examples
    --------
    >>> [layout_position(s, "zigzag_horizontal", 2, 3) for s in range(6)]
    [(0, 0), (0, 1), (0, 2), (1, 2), (1, 1), (1, 0)]
    """
    if not 0 <= site < n_vertical * n_horizontal:
        raise ValueError(f"site {site} does not fit a {n_vertical}x{n_horizontal} grid")
    if stitch_layout in ("horizontal", "zigzag_horizontal"):
        row, column = divmod(site, n_horizontal)
        if stitch_layout == "zigzag_horizontal" and row % 2 == 1:
            column = n_horizontal - 1 - column
    elif stitch_layout in ("vertical", "zigzag_vertical"):
        column, row = divmod(site, n_vertical)
        if stitch_layout == "zigzag_vertical" and column % 2 == 1:
            row = n_vertical - 1 - row
    else:
        raise ValueError(f"unknown stitch layout {stitch_layout!r}")
    return row, column


def cluster_values(values: Iterable[float], tolerance: float) -> dict[float, int]:
    """Rank values, treating values closer than `tolerance` as one.

    Sorted values start a new cluster where the step from the previous value
    exceeds `tolerance`.

    Returns
    -------
    dict
        Value -> 0-based index of its cluster (ascending).
    """
    ranks: dict[float, int] = {}
    previous = None
    rank = -1
    for value in sorted(set(values)):
        if previous is None or value - previous > tolerance:
            rank += 1
        ranks[value] = rank
        previous = value
    return ranks


def stage_tolerance(axes: Iterable[Sequence[float]]) -> float:
    """How far apart two stage positions may be and still be one row/column.

    Parameters
    ----------
    axes : iterable of sequences of float
        The site positions along one axis of one well, for every axis and
        well (pooling them gives the grid step even for one-row wells).

    Returns
    -------
    float
        Half the smallest gap between neighbouring distinct positions that
        is at least a quarter of the largest gap (smaller gaps are taken to
        be jitter); 0 when no two positions differ.
    """
    gaps = []
    for values in axes:
        ordered = sorted(values)
        gaps.extend(b - a for a, b in zip(ordered, ordered[1:], strict=False) if b > a)
    if not gaps:
        return 0.0
    largest = max(gaps)
    return min(g for g in gaps if g >= _STEP_FRACTION * largest) / 2.0


def _check_layout(
    stitch_layout: str, n_vertical: int | None, n_horizontal: int | None, well: str, n_sites: int
) -> tuple[int, int]:
    missing = [
        name
        for name, value in (("n_vertical", n_vertical), ("n_horizontal", n_horizontal))
        if value is None
    ]
    if missing:
        raise InvalidInputError(
            f"well {well} has sites without stage positions; give {' and '.join(missing)} "
            f"(the site grid: rows and columns) and the stitch layout"
        )
    assert n_vertical is not None and n_horizontal is not None
    if n_vertical < 1 or n_horizontal < 1:
        raise InvalidInputError(
            f"n_vertical and n_horizontal must be at least 1, got {n_vertical}x{n_horizontal}"
        )
    if n_vertical * n_horizontal < n_sites:
        raise InvalidInputError(
            f"well {well} has {n_sites} sites (highest site index {n_sites - 1}), more than "
            f"n_vertical x n_horizontal = {n_vertical}x{n_horizontal} = "
            f"{n_vertical * n_horizontal}"
        )
    return n_vertical, n_horizontal


def site_grid_positions(
    records_or_sites: Iterable[Any],
    stitch_layout: str = "horizontal",
    n_vertical: int | None = None,
    n_horizontal: int | None = None,
    *,
    tolerance: float | None = None,
) -> dict[tuple[str, int], tuple[int, int]]:
    """Grid row and column of every site within its well.

    Parameters
    ----------
    records_or_sites : iterable
        :class:`~tmlib.microscopes.base.PlaneRecord` objects (several per
        site are fine; their stage positions are averaged), or any objects
        with ``well``, ``site`` and optionally ``stage_y``/``stage_x``, or
        tuples ``(well, site)`` / ``(well, site, stage_y, stage_x)``.
    stitch_layout : str
        One of :data:`STITCH_LAYOUTS`; used for wells without stage
        positions, where the site index is the acquisition order.
    n_vertical, n_horizontal : int, optional
        Rows and columns of the site grid; needed for wells without stage
        positions.
    tolerance : float, optional
        Stage positions closer than this (micrometres) share a row or
        column; default :func:`stage_tolerance` of the input.

    Returns
    -------
    dict
        ``(well, site) -> (row, column)``, both 0-based.

    Raises
    ------
    InvalidInputError
        For an unknown stitch layout, a well without stage positions when
        the grid size is missing or too small, or two sites of a well that
        fall on one grid position.
    """
    if stitch_layout not in STITCH_LAYOUTS:
        raise InvalidInputError(
            f"unknown stitch layout {stitch_layout!r}; choose one of {', '.join(STITCH_LAYOUTS)}"
        )
    samples: dict[str, dict[int, list[tuple[float | None, float | None]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for item in records_or_sites:
        location = _location(item)
        if location.site < 0:
            raise InvalidInputError(f"well {location.well}: negative site index {location.site}")
        samples[location.well][location.site].append((location.stage_y, location.stage_x))

    staged: dict[str, dict[int, tuple[float, float]]] = {}
    for well, sites in samples.items():
        if all(y is not None and x is not None for s in sites.values() for y, x in s):
            staged[well] = {
                site: (
                    sum(y for y, _ in s) / len(s),  # type: ignore[misc]
                    sum(x for _, x in s) / len(s),  # type: ignore[misc]
                )
                for site, s in sites.items()
            }
    if tolerance is None:
        tolerance = stage_tolerance(
            [p[axis] for p in positions.values()]
            for positions in staged.values()
            for axis in (0, 1)
        )

    result: dict[tuple[str, int], tuple[int, int]] = {}
    for well in sorted(samples):
        if well in staged:
            cells = _grid_from_stage(staged[well], tolerance)
        else:
            sites = sorted(samples[well])
            rows, cols = _check_layout(stitch_layout, n_vertical, n_horizontal, well, sites[-1] + 1)
            cells = {s: layout_position(s, stitch_layout, rows, cols) for s in sites}
        _check_distinct(well, cells)
        result.update(((well, site), cell) for site, cell in cells.items())
    return result


def _grid_from_stage(
    positions: Mapping[int, tuple[float, float]], tolerance: float
) -> dict[int, tuple[int, int]]:
    rows = cluster_values((y for y, _ in positions.values()), tolerance)
    cols = cluster_values((x for _, x in positions.values()), tolerance)
    return {site: (rows[y], cols[x]) for site, (y, x) in positions.items()}


def _check_distinct(well: str, cells: Mapping[int, tuple[int, int]]) -> None:
    taken: dict[tuple[int, int], int] = {}
    for site in sorted(cells):
        other = taken.setdefault(cells[site], site)
        if other != site:
            raise InvalidInputError(
                f"well {well}: sites {other} and {site} fall on the same grid position "
                f"(row {cells[site][0]}, column {cells[site][1]}); are their stage positions equal?"
            )
