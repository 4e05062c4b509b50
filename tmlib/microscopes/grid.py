"""Where each site lies in its well's grid of sites.

:func:`site_grid_positions` gives every site a 0-based ``(row, column)`` in
the grid of its well (:func:`plan_site_grid` also says how it chose them):

* From stage positions, when every site of the well has them.  The y and x
  positions are clustered and the clusters ranked: positions closer than
  half the field's height (for rows) or width (for columns) are one row or
  column.  The field size is the image size in pixels times the pixel size
  from the vendor metadata, the smallest over the channels (cameras) of the
  well.  Only where the metadata give no size is the step between rows
  estimated from the gaps between positions (:func:`stage_tolerance`).
  Row 0 holds the smallest ``stage_y`` (the top, as
  :class:`~tmlib.microscopes.base.PlaneRecord` has y growing downwards),
  column 0 the smallest ``stage_x``.

  The grid is *compact*: rows and columns are ranks, not distances, so two
  fields thirty field-widths apart in one row become neighbouring columns,
  in their order on the stage.  Sites at distinct positions never share a
  cell: if fields overlap by more than half their size, the clustering is
  tightened for that well until they fall apart.  Two sites at the very
  same position are an error.
* Else from the order in which the microscope took the sites (the stitch
  layout) and the grid size ``n_vertical x n_horizontal``
  (:func:`layout_position`).  Site numbers count from the lowest one that
  exists (so names numbered from 1 need no offset); without a grid size a
  near-square grid for the most sites of any well is chosen
  (:func:`tmlib.mosaic.guess_stitch_dimensions`), wider than high for the
  horizontal layouts and higher than wide for the vertical ones; a well
  with one site needs no grid size at all.

Everything here is pure: no files, no database.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tmlib.errors import InvalidInputError

__all__ = [
    "STITCH_LAYOUTS",
    "SiteGrid",
    "SiteLocation",
    "cluster_values",
    "layout_grid_size",
    "layout_position",
    "plan_site_grid",
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
    """A site, optionally its stage position and its field's size (micrometres).

    ``stage_y`` grows downwards; ``field_height``/``field_width`` are the
    physical size of the image (pixels times pixel size), None if unknown.
    """

    well: str
    site: int
    stage_y: float | None = None
    stage_x: float | None = None
    field_height: float | None = None
    field_width: float | None = None


@dataclass(frozen=True)
class SiteGrid:
    """Grid positions of the sites and how they were chosen.

    Attributes
    ----------
    positions : dict
        ``(well, site) -> (row, column)``, both 0-based.
    messages : tuple of str
        One line per decision a user may want to know about (the grid size
        chosen for wells without stage positions, the field size used,
        wells whose fields overlap); empty when there was nothing to decide.
    """

    positions: dict[tuple[str, int], tuple[int, int]]
    messages: tuple[str, ...] = ()


def _physical(pixels: Any, pixel_size: Any) -> float | None:
    if pixels is None or pixel_size is None:
        return None
    size = float(pixels) * float(pixel_size)
    return size if 0 < size < math.inf else None


def _location(item: Any) -> SiteLocation:
    if isinstance(item, SiteLocation):
        return item
    if isinstance(item, tuple):
        if len(item) in (2, 4, 6):
            return SiteLocation(str(item[0]), int(item[1]), *item[2:])
        raise TypeError(
            "expected (well, site), (well, site, stage_y, stage_x) or (well, site, stage_y, "
            f"stage_x, field_height, field_width), got {item!r}"
        )
    return SiteLocation(
        item.well,
        int(item.site),
        getattr(item, "stage_y", None),
        getattr(item, "stage_x", None),
        _physical(getattr(item, "height", None), getattr(item, "pixel_size_y", None)),
        _physical(getattr(item, "width", None), getattr(item, "pixel_size_x", None)),
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


def layout_grid_size(
    n_sites: int,
    stitch_layout: str = "horizontal",
    n_vertical: int | None = None,
    n_horizontal: int | None = None,
) -> tuple[int, int]:
    """Rows and columns of the site grid of wells without stage positions.

    Parameters
    ----------
    n_sites : int
        Sites the grid must hold (the most of any well).
    stitch_layout : str
        One of :data:`STITCH_LAYOUTS`: the horizontal layouts get a grid at
        least as wide as high, the vertical ones at least as high as wide.
    n_vertical, n_horizontal : int, optional
        The user's rows and columns.  A missing one is the fewest that hold
        `n_sites`; without both a near-square grid is chosen
        (:func:`tmlib.mosaic.guess_stitch_dimensions`).

    Returns
    -------
    tuple of int
        ``(rows, columns)``.

    Raises
    ------
    InvalidInputError
        If a given size is below 1 or the grid cannot hold `n_sites`.

    Examples
    --------
    >>> layout_grid_size(1), layout_grid_size(4), layout_grid_size(6, "vertical")
    ((1, 1), (2, 2), (3, 2))
    >>> layout_grid_size(5, n_vertical=1)
    (1, 5)
    """
    for name, value in (("n_vertical", n_vertical), ("n_horizontal", n_horizontal)):
        if value is not None and value < 1:
            raise InvalidInputError(f"{name} must be at least 1, got {value}")
    if n_vertical is None and n_horizontal is None:
        # imported here: tmlib.mosaic reads the database and the readers need not
        from tmlib.mosaic import guess_stitch_dimensions

        major = "vertical" if stitch_layout in ("vertical", "zigzag_vertical") else "horizontal"
        return guess_stitch_dimensions(max(n_sites, 1), major)
    if n_vertical is None:
        assert n_horizontal is not None
        return max(math.ceil(n_sites / n_horizontal), 1), n_horizontal
    if n_horizontal is None:
        return n_vertical, max(math.ceil(n_sites / n_vertical), 1)
    if n_vertical * n_horizontal < n_sites:
        raise InvalidInputError(
            f"a well has {n_sites} sites, more than n_vertical x n_horizontal = "
            f"{n_vertical}x{n_horizontal} = {n_vertical * n_horizontal}"
        )
    return n_vertical, n_horizontal


def plan_site_grid(
    records_or_sites: Iterable[Any],
    stitch_layout: str = "horizontal",
    n_vertical: int | None = None,
    n_horizontal: int | None = None,
    *,
    tolerance: float | None = None,
) -> SiteGrid:
    """Grid row and column of every site within its well, and how they were chosen.

    Parameters
    ----------
    records_or_sites : iterable
        :class:`~tmlib.microscopes.base.PlaneRecord` objects (several per
        site are fine; their stage positions are averaged and the smallest
        field size is used), or any objects with ``well``, ``site`` and
        optionally ``stage_y``/``stage_x``, ``height``/``width`` and
        ``pixel_size_y``/``pixel_size_x``, or :class:`SiteLocation` objects,
        or tuples ``(well, site)``, ``(well, site, stage_y, stage_x)`` or
        ``(well, site, stage_y, stage_x, field_height, field_width)``.
    stitch_layout : str
        One of :data:`STITCH_LAYOUTS`; used for wells without stage
        positions, where the order of the site numbers is the acquisition
        order.
    n_vertical, n_horizontal : int, optional
        Rows and columns of the site grid of wells without stage positions;
        see :func:`layout_grid_size` for what is chosen without them.
    tolerance : float, optional
        Stage positions closer than this (micrometres) share a row or
        column; default: half the field's height or width, else
        :func:`stage_tolerance` of the input.

    Returns
    -------
    SiteGrid
        The positions and the decisions taken.

    Raises
    ------
    InvalidInputError
        For an unknown stitch layout, a negative site number, a grid size
        that is below 1 or too small, or two sites of a well taken at the
        very same stage position.
    """
    if stitch_layout not in STITCH_LAYOUTS:
        raise InvalidInputError(
            f"unknown stitch layout {stitch_layout!r}; choose one of {', '.join(STITCH_LAYOUTS)}"
        )
    samples: dict[str, dict[int, list[SiteLocation]]] = defaultdict(lambda: defaultdict(list))
    for item in records_or_sites:
        location = _location(item)
        if location.site < 0:
            raise InvalidInputError(f"well {location.well}: negative site index {location.site}")
        samples[location.well][location.site].append(location)

    staged = {
        well: sites
        for well, sites in samples.items()
        if all(
            loc.stage_y is not None and loc.stage_x is not None for s in sites.values() for loc in s
        )
    }
    result: dict[tuple[str, int], tuple[int, int]] = {}
    messages: list[str] = []
    if staged:
        positions, staged_messages = _stage_grids(staged, tolerance)
        result.update(positions)
        messages.extend(staged_messages)
    unstaged = sorted(set(samples) - set(staged))
    if unstaged:
        positions, layout_message = _layout_grids(
            {well: sorted(samples[well]) for well in unstaged},
            stitch_layout,
            n_vertical,
            n_horizontal,
        )
        result.update(positions)
        messages.append(layout_message)
    return SiteGrid(dict(sorted(result.items())), tuple(messages))


def site_grid_positions(
    records_or_sites: Iterable[Any],
    stitch_layout: str = "horizontal",
    n_vertical: int | None = None,
    n_horizontal: int | None = None,
    *,
    tolerance: float | None = None,
) -> dict[tuple[str, int], tuple[int, int]]:
    """Grid row and column of every site within its well.

    The positions of :func:`plan_site_grid` (same parameters).

    Returns
    -------
    dict
        ``(well, site) -> (row, column)``, both 0-based.
    """
    return plan_site_grid(
        records_or_sites, stitch_layout, n_vertical, n_horizontal, tolerance=tolerance
    ).positions


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values)


def _smallest(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def _listing(wells: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(wells[:limit])
    return shown + (f" and {len(wells) - limit} more" if len(wells) > limit else "")


def _stage_grids(
    staged: Mapping[str, Mapping[int, Sequence[SiteLocation]]], tolerance: float | None
) -> tuple[dict[tuple[str, int], tuple[int, int]], list[str]]:
    """Grids of the wells whose sites all have stage positions."""
    centres: dict[str, dict[int, tuple[float, float]]] = {}
    fields: dict[str, tuple[float | None, float | None]] = {}
    for well, sites in staged.items():
        centres[well] = {
            site: (_mean(loc.stage_y for loc in locs), _mean(loc.stage_x for loc in locs))  # type: ignore[misc]
            for site, locs in sites.items()
        }
        every = [loc for locs in sites.values() for loc in locs]
        fields[well] = (
            _smallest(loc.field_height for loc in every),
            _smallest(loc.field_width for loc in every),
        )
    gap_tolerance: float | None = None
    estimated: list[str] = []
    overlapping: list[str] = []
    positions: dict[tuple[str, int], tuple[int, int]] = {}
    for well in sorted(staged):
        height, width = fields[well]
        if tolerance is not None:
            tol_y = tol_x = tolerance
        else:
            if height is None or width is None:
                estimated.append(well)
                if gap_tolerance is None:
                    gap_tolerance = stage_tolerance(
                        [p[axis] for p in sites.values()]
                        for sites in centres.values()
                        for axis in (0, 1)
                    )
            tol_y = height / 2 if height is not None else gap_tolerance
            tol_x = width / 2 if width is not None else gap_tolerance
        assert tol_y is not None and tol_x is not None
        cells, tightened = _grid_from_stage(well, centres[well], tol_y, tol_x)
        if tightened:
            overlapping.append(well)
        positions.update(((well, site), cell) for site, cell in cells.items())

    wells = sorted(staged)
    if tolerance is not None:
        basis = f"positions closer than {tolerance:g} um share a row or column"
    else:
        sizes = sorted({fields[w] for w in wells if w not in estimated})  # type: ignore[type-var]
        basis = "positions closer than half a field share a row or column"
        if sizes:
            shown = ", ".join(f"{h:g} x {w:g} um" for h, w in sizes[:3])  # type: ignore[str-format]
            basis += f" (field {shown}, from the metadata)"
    messages = [
        f"site grid of {len(wells)} well(s) from stage positions: {basis}; rows and columns "
        "are ranked, so gaps between far-apart fields are left out"
    ]
    if estimated:
        messages.append(
            f"no field size in the metadata of well(s) {_listing(estimated)}: positions closer "
            f"than {gap_tolerance:g} um (half the smallest step between positions) share a row "
            "or column"
        )
    if overlapping:
        messages.append(
            f"fields overlap by more than half their size in well(s) {_listing(overlapping)}: "
            "rows and columns there were told apart by smaller steps"
        )
    return positions, messages


def _layout_grids(
    sites: Mapping[str, Sequence[int]],
    stitch_layout: str,
    n_vertical: int | None,
    n_horizontal: int | None,
) -> tuple[dict[tuple[str, int], tuple[int, int]], str]:
    """Grids of the wells without stage positions, from the site numbers' order."""
    # Count from the lowest site number that exists: names numbered from 1
    # (s1, F001) must not leave the first grid cell empty.
    base = min(s[0] for s in sites.values())
    widest = max(sites, key=lambda w: (sites[w][-1] - base, w))
    n_sites = sites[widest][-1] - base + 1
    if n_vertical is not None and n_horizontal is not None and n_vertical * n_horizontal < n_sites:
        raise InvalidInputError(
            f"well {widest} has {n_sites} sites (site numbers {base} to {sites[widest][-1]}), "
            f"more than n_vertical x n_horizontal = {n_vertical}x{n_horizontal} = "
            f"{n_vertical * n_horizontal}"
        )
    rows, columns = layout_grid_size(n_sites, stitch_layout, n_vertical, n_horizontal)
    positions: dict[tuple[str, int], tuple[int, int]] = {}
    for well, numbers in sites.items():
        cells = {s: layout_position(s - base, stitch_layout, rows, columns) for s in numbers}
        _check_distinct(well, cells)
        positions.update(((well, site), cell) for site, cell in cells.items())
    if n_vertical is None or n_horizontal is None:
        how = (
            f"chosen for up to {n_sites} site(s) per well; give n_vertical and n_horizontal "
            "to change it"
        )
    else:
        how = "as given"
    return positions, (
        f"site grid of {len(sites)} well(s) without stage positions: {rows} row(s) x "
        f"{columns} column(s) (n_vertical={rows}, n_horizontal={columns}), {how}; "
        f"{stitch_layout} layout, first site number {base}"
    )


def _halved(tolerance: float, values: Iterable[float]) -> float:
    """Half `tolerance`, or 0 once that splits every distinct value anyway."""
    ordered = sorted(set(values))
    steps = [b - a for a, b in zip(ordered, ordered[1:], strict=False)]
    half = tolerance / 2.0
    return 0.0 if not steps or half < min(steps) else half


def _grid_from_stage(
    well: str, positions: Mapping[int, tuple[float, float]], tol_y: float, tol_x: float
) -> tuple[dict[int, tuple[int, int]], bool]:
    """Ranked clusters of the positions; tightened until distinct positions are distinct cells.

    Returns the cells and whether the tolerances had to be tightened.
    """
    ys = [y for y, _ in positions.values()]
    xs = [x for _, x in positions.values()]
    tightened = False
    while True:
        rows = cluster_values(ys, tol_y)
        cols = cluster_values(xs, tol_x)
        cells = {site: (rows[y], cols[x]) for site, (y, x) in positions.items()}
        clash = _clash(cells)
        if clash is None:
            return cells, tightened
        if tol_y == 0 and tol_x == 0:
            first, second = clash
            y, x = positions[first]
            raise InvalidInputError(
                f"well {well}: sites {first} and {second} were taken at the same stage position "
                f"(y {y:g}, x {x:g} um), so they cannot both have a place in the well's grid"
            )
        tightened = True
        tol_y, tol_x = _halved(tol_y, ys), _halved(tol_x, xs)


def _clash(cells: Mapping[int, tuple[int, int]]) -> tuple[int, int] | None:
    """The first two sites on one cell, None if all cells differ."""
    taken: dict[tuple[int, int], int] = {}
    for site in sorted(cells):
        other = taken.setdefault(cells[site], site)
        if other != site:
            return other, site
    return None


def _check_distinct(well: str, cells: Mapping[int, tuple[int, int]]) -> None:
    clash = _clash(cells)
    if clash is not None:
        raise InvalidInputError(
            f"well {well}: sites {clash[0]} and {clash[1]} fall on the same grid position "
            f"(row {cells[clash[0]][0]}, column {cells[clash[0]][1]})"
        )
