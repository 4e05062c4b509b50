"""Where every plate, well and site lies in the experiment's mosaic (reference §5.6).

The mosaic is the whole experiment as one image at full resolution:

* sites in their well's grid, ``(y * (height + vertical displacement), x * ...)``;
* wells in plate layout, empty rows and columns compacted away, separated by
  the well spacer; all wells of a plate take the size of its largest well;
* plates on a near-square grid (:func:`guess_stitch_dimensions`), filled
  column by column in plate-id order, separated by the plate spacer; all
  plates take the size of the largest.

Everything here but :func:`experiment_mosaic` (which reads the values from
the database) is pure arithmetic over plain values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

import tmlib.models as tm
from tmlib.errors import InvalidInputError


@dataclass(frozen=True)
class Box:
    """A rectangle in mosaic pixels: top-left corner (y, x) and size."""

    y: int
    x: int
    height: int
    width: int

    @property
    def bottom(self) -> int:
        return self.y + self.height

    @property
    def right(self) -> int:
        return self.x + self.width

    def intersects(self, other: Box) -> bool:
        return (
            self.y < other.bottom
            and other.y < self.bottom
            and self.x < other.right
            and other.x < self.right
        )


@dataclass(frozen=True)
class SiteSpec:
    """A site: its id, grid position in the well and its crop (alignment residues)."""

    id: int
    y: int
    x: int
    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0


@dataclass(frozen=True)
class WellSpec:
    """A well: its id, zero-based plate row and column, and its sites."""

    id: int
    row: int
    column: int
    sites: Sequence[SiteSpec]


@dataclass(frozen=True)
class PlateSpec:
    """A plate: its id and its wells."""

    id: int
    wells: Sequence[WellSpec]


@dataclass
class Mosaic:
    """Boxes of all plates, wells and sites, and the mosaic's size.

    Site boxes are the *aligned* images: offset by the top/left residue and
    shrunk by all four residues (all zero without alignment).
    """

    height: int
    width: int
    plates: dict[int, Box] = field(default_factory=dict)
    wells: dict[int, Box] = field(default_factory=dict)
    sites: dict[int, Box] = field(default_factory=dict)


def guess_stitch_dimensions(n: int, major_axis: str = "vertical") -> tuple[int, int]:
    """A near-square grid for `n` items: (rows, columns).

    Vertical grids have at least as many rows as columns but at most three
    times as many; among those the grid with the fewest empty cells wins, and
    then the one with fewer columns. ``horizontal`` swaps the result.

    Examples
    --------
    >>> guess_stitch_dimensions(5), guess_stitch_dimensions(22), guess_stitch_dimensions(73)
    ((3, 2), (8, 3), (15, 5))
    """
    if n < 1:
        raise ValueError(f"need at least one item to lay out, got {n}")
    if major_axis not in ("vertical", "horizontal"):
        raise ValueError(f"major axis must be 'vertical' or 'horizontal', got {major_axis!r}")
    candidates = []
    for columns in range(1, n + 1):
        rows = math.ceil(n / columns)
        if rows < columns:
            break
        if rows <= 3 * columns:
            candidates.append((rows * columns - n, columns, rows))
    _, columns, rows = min(candidates)
    return (rows, columns) if major_axis == "vertical" else (columns, rows)


def layout(
    plates: Sequence[PlateSpec],
    site_height: int,
    site_width: int,
    well_spacer: int = 500,
    plate_spacer: int = 1000,
    vertical_displacement: int = 0,
    horizontal_displacement: int = 0,
) -> Mosaic:
    """Compute the mosaic of an experiment.

    Parameters
    ----------
    plates : sequence of PlateSpec
        In plate-id order (the order they fill the plate grid).
    site_height, site_width : int
        Size of every site image in pixels.
    well_spacer, plate_spacer : int
        Gaps between wells and between plates in pixels.
    vertical_displacement, horizontal_displacement : int
        Extra gap between neighbouring sites of a well.

    Returns
    -------
    Mosaic
    """
    if not plates:
        raise ValueError("an experiment without plates has no mosaic")
    step_y = site_height + vertical_displacement
    step_x = site_width + horizontal_displacement

    def well_size(well: WellSpec) -> tuple[int, int]:
        rows = max((s.y for s in well.sites), default=-1) + 1
        columns = max((s.x for s in well.sites), default=-1) + 1
        return max(rows * step_y - vertical_displacement, 0), max(
            columns * step_x - horizontal_displacement, 0
        )

    # Per plate: the size of its wells and where each lies within the plate.
    plate_layouts = []
    for plate in plates:
        sizes = [well_size(w) for w in plate.wells]
        well_h = max((h for h, _ in sizes), default=0)
        well_w = max((w for _, w in sizes), default=0)
        rows = {r: i for i, r in enumerate(sorted({w.row for w in plate.wells}))}
        columns = {c: i for i, c in enumerate(sorted({w.column for w in plate.wells}))}
        height = len(rows) * well_h + max(len(rows) - 1, 0) * well_spacer
        width = len(columns) * well_w + max(len(columns) - 1, 0) * well_spacer
        offsets = {
            w.id: (rows[w.row] * (well_h + well_spacer), columns[w.column] * (well_w + well_spacer))
            for w in plate.wells
        }
        plate_layouts.append((height, width, well_h, well_w, offsets))

    plate_h = max(p[0] for p in plate_layouts)
    plate_w = max(p[1] for p in plate_layouts)
    grid_rows, grid_columns = guess_stitch_dimensions(len(plates))
    mosaic = Mosaic(
        height=grid_rows * plate_h + (grid_rows - 1) * plate_spacer,
        width=grid_columns * plate_w + (grid_columns - 1) * plate_spacer,
    )
    for index, (plate, (_, _, well_h, well_w, offsets)) in enumerate(
        zip(plates, plate_layouts, strict=True)
    ):
        py = (index % grid_rows) * (plate_h + plate_spacer)
        px = (index // grid_rows) * (plate_w + plate_spacer)
        mosaic.plates[plate.id] = Box(py, px, plate_h, plate_w)
        for well in plate.wells:
            wy, wx = offsets[well.id]
            mosaic.wells[well.id] = Box(py + wy, px + wx, well_h, well_w)
            for site in well.sites:
                mosaic.sites[site.id] = Box(
                    py + wy + site.y * step_y + site.top,
                    px + wx + site.x * step_x + site.left,
                    site_height - site.top - site.bottom,
                    site_width - site.left - site.right,
                )
    return mosaic


def pyramid_levels(height: int, width: int, tile_size: int = 256) -> list[tuple[int, int]]:
    """Pixel size of each pyramid level, level 0 (most zoomed out) first.

    The full-resolution size is halved (rounding up) until both sides fit in
    one tile; the last entry is the full resolution.

    Examples
    --------
    >>> pyramid_levels(1000, 600)
    [(250, 150), (500, 300), (1000, 600)]
    """
    if height < 1 or width < 1:
        raise ValueError(f"a pyramid needs a positive size, got {height}x{width}")
    levels = [(height, width)]
    while levels[-1][0] > tile_size or levels[-1][1] > tile_size:
        h, w = levels[-1]
        levels.append((-(-h // 2), -(-w // 2)))
    return levels[::-1]


def tile_grid(height: int, width: int, tile_size: int = 256) -> tuple[int, int]:
    """Number of tile (rows, columns) covering an image of that size."""
    return -(-height // tile_size), -(-width // tile_size)


def experiment_mosaic(session: Session, aligned: bool = False) -> Mosaic:
    """The mosaic layout of the experiment in `session` (aligned sites if `aligned`)."""
    experiment = session.scalars(sa.select(tm.Experiment)).one()
    plates = []
    site_size = None
    # wells and sites in two more queries, not one per plate and well: every job
    # reads the layout, and holds its connection while it does
    plates_query = (
        sa.select(tm.Plate)
        .order_by(tm.Plate.id)
        .options(selectinload(tm.Plate.wells).selectinload(tm.Well.sites))
    )
    for plate in session.scalars(plates_query):
        wells = []
        for well in sorted(plate.wells, key=lambda w: w.id):
            site_specs = []
            for s in sorted(well.sites, key=lambda s: s.id):
                site_size = site_size or (s.height, s.width)
                residues = (
                    (s.top_residue, s.bottom_residue, s.left_residue, s.right_residue)
                    if aligned
                    else (0, 0, 0, 0)
                )
                site_specs.append(SiteSpec(s.id, s.y, s.x, *residues))
            wells.append(WellSpec(well.id, well.y, well.x, site_specs))
        plates.append(PlateSpec(plate.id, wells))
    if site_size is None:
        raise InvalidInputError("the experiment has no sites; run the image_conversion stage")
    return layout(
        plates,
        *site_size,
        well_spacer=experiment.well_spacer_size,
        plate_spacer=experiment.plate_spacer_size,
        vertical_displacement=experiment.vertical_site_displacement,
        horizontal_displacement=experiment.horizontal_site_displacement,
    )


def describe_layout(session: Session) -> dict:
    """Where each plate, well and site lies in the mosaic, with their names.

    For a viewer's readout under the pointer: boxes are ``[x, y, width, height]``
    in full-resolution pixels from the mosaic's top-left corner (rows down).
    Sites come as columns (``id``, ``well``: index into ``wells``, ``x`` and
    ``y``: position in the well, ``box``) to keep a 384-well plate's answer small.

    Raises
    ------
    InvalidInputError
        When the experiment has no sites yet.
    """
    mosaic = experiment_mosaic(session)

    def box(b: Box) -> list[int]:
        return [b.x, b.y, b.width, b.height]

    plate_rows = session.execute(sa.select(tm.Plate.id, tm.Plate.name).order_by(tm.Plate.id))
    plates = [{"id": str(i), "name": name, "box": box(mosaic.plates[i])} for i, name in plate_rows]
    well_rows = session.execute(
        sa.select(tm.Well.id, tm.Well.name, tm.Well.plate_id).order_by(tm.Well.id)
    ).all()
    plate_index = {int(p["id"]): n for n, p in enumerate(plates)}
    wells = [
        {"id": str(i), "name": name, "plate": plate_index[plate_id], "box": box(mosaic.wells[i])}
        for i, name, plate_id in well_rows
    ]
    well_index = {row[0]: n for n, row in enumerate(well_rows)}
    site_rows = session.execute(
        sa.select(tm.Site.id, tm.Site.well_id, tm.Site.x, tm.Site.y).order_by(tm.Site.id)
    ).all()
    sites = {
        "id": [str(r[0]) for r in site_rows],
        "well": [well_index[r[1]] for r in site_rows],
        "x": [r[2] for r in site_rows],
        "y": [r[3] for r in site_rows],
        "box": [box(mosaic.sites[r[0]]) for r in site_rows],
    }
    return {
        "width": mosaic.width,
        "height": mosaic.height,
        "plates": plates,
        "wells": wells,
        "sites": sites,
    }
