"""Lay out a synthetic plate and write it in a microscope vendor's layout.

A plate is ``wells x sites x tpoints x channels x zplanes`` planes.  Wells
are taken in row-major order from A01 of a 96- or 384-well plate; the sites
of a well form a near-square grid (``site_grid``).  For every site and time
point the cells are drawn and rendered once (:mod:`tmlib.simulate.cells`),
then every channel and z-plane is exposed and handed to a
:class:`PlateWriter`, which writes the vendor's image file and collects the
vendor's metadata; :meth:`PlateWriter.finish` writes the metadata files.

Writers are looked up by name in :data:`WRITERS` (filled by
:func:`register_writer`; the ``tm_simulate`` command offers exactly these
names), so further vendor layouts only need a new writer module imported by
``tmlib/simulate/__init__.py``.

Conventions (shared by all writers)
-----------------------------------
* Indices in :class:`PlaneInfo` and in the ground truth are 0-based; vendor
  file names usually count from 1.
* Stage positions are in micrometres relative to the well centre.  Sites are
  numbered row by row (left to right, top to bottom, as seen in the images);
  ``stage_x_um`` grows with the grid column and ``stage_y_um`` *decreases*
  with the grid row (stage y points up, image rows go down, as on the
  CellVoyager).  Neighbouring sites are exactly one image apart (no overlap).
* Times are seconds since :data:`ACQUISITION_START`, a fixed date, so that
  equal seeds give byte-identical files.

Ground truth (vendor independent) goes to ``OUTDIR/ground_truth/``:
``cells.csv`` (``well,site,tpoint,cell_label,y,x``: nucleus centres in
pixels of the site image), ``sites.csv`` (grid and stage position of every
site), one ``nuclei_<WELL>_s<site>_t<tpoint>.tif`` and
``cells_<WELL>_s<site>_t<tpoint>.tif`` uint16 label image per site and time
point (see :func:`ground_truth_label_path`), and ``simulation.json``.
"""

from __future__ import annotations

import abc
import csv
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from tmlib.errors import InvalidInputError, UserError
from tmlib.lazy import lazy_import
from tmlib.simulate import cells as cellsim

if TYPE_CHECKING:
    from numpy.typing import NDArray

np = lazy_import("numpy")
tifffile = lazy_import("tifffile")

__all__ = [
    "ACQUISITION_START",
    "GROUND_TRUTH_DIR",
    "PLATE_FORMATS",
    "WRITERS",
    "InvalidPlateSpecError",
    "OutputDirectoryNotEmptyError",
    "PlaneInfo",
    "PlateSpec",
    "PlateWriter",
    "SimulationSummary",
    "channel_background",
    "check_plate",
    "get_writer",
    "ground_truth_label_path",
    "register_writer",
    "simulate_plate",
    "site_grid",
    "site_position",
    "well_names",
]

#: Plate format (number of wells) -> (rows, columns).
PLATE_FORMATS: dict[int, tuple[int, int]] = {96: (8, 12), 384: (16, 24)}

#: Fixed start of the simulated acquisition (no clock time ends up in files).
ACQUISITION_START = datetime(2016, 1, 1, 10, 0, 0, tzinfo=timezone(timedelta(hours=1)))

#: Name of the ground-truth directory inside OUTDIR.
GROUND_TRUTH_DIR = "ground_truth"

#: Simulated time the microscope needs per image (for the metadata clock).
SECONDS_PER_IMAGE = 0.2

#: Version of the ground-truth layout written to simulation.json.
GROUND_TRUTH_VERSION = 1

_ROW_LETTERS = "ABCDEFGHIJKLMNOP"
_BACKGROUNDS = (160.0, 220.0, 260.0, 190.0)


class InvalidPlateSpecError(InvalidInputError, ValueError):
    """A :class:`PlateSpec` is invalid or cannot be written by its writer."""


class OutputDirectoryNotEmptyError(UserError, FileExistsError):
    """OUTDIR exists and holds files, and overwriting was not allowed."""


@dataclass(frozen=True)
class PlateSpec:
    """What to simulate.

    Attributes
    ----------
    microscope : str
        Name of the writer in :data:`WRITERS`.
    plate_format : int
        96 or 384; decides the well names and the plate size in metadata.
    wells, sites, channels, zplanes, tpoints : int
        Number of wells (from A01, row-major), sites per well, channels,
        z-planes and time points.
    height, width : int
        Image size in pixels.
    seed : int
        Seed (>= 0); equal specs give byte-identical output.
    empty : bool
        Write zero-byte image files (names and metadata only, no pixels, no
        cells in the ground truth).
    prefix : str
        Plate name used in file names (letters, digits and ``-``).
    pixel_size_um : float
        Pixel size in micrometres (0.325: 20x objective on a 6.5 um sCMOS).
    z_step_um : float
        Distance between z-planes in micrometres.
    """

    microscope: str = "cellvoyager"
    plate_format: int = 384
    wells: int = 2
    sites: int = 4
    channels: int = 2
    zplanes: int = 1
    tpoints: int = 1
    height: int = 256
    width: int = 256
    seed: int = 0
    empty: bool = False
    prefix: str = "Sim"
    pixel_size_um: float = 0.325
    z_step_um: float = 1.0

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of every image."""
        return (self.height, self.width)

    @property
    def n_images(self) -> int:
        """Number of image files of the plate."""
        return self.wells * self.sites * self.channels * self.zplanes * self.tpoints

    def validate(self) -> None:
        """Raise :class:`InvalidPlateSpecError` (a ValueError) if invalid."""
        if self.plate_format not in PLATE_FORMATS:
            raise InvalidPlateSpecError(
                f"plate format must be one of {sorted(PLATE_FORMATS)}, got {self.plate_format}"
            )
        for name in ("wells", "sites", "channels", "zplanes", "tpoints"):
            if getattr(self, name) < 1:
                raise InvalidPlateSpecError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.wells > self.plate_format:
            raise InvalidPlateSpecError(
                f"{self.wells} wells do not fit a {self.plate_format}-well plate "
                f"(at most {self.plate_format})"
            )
        if not (16 <= self.height <= 16384 and 16 <= self.width <= 16384):
            raise InvalidPlateSpecError(
                f"image size must be within 16..16384 pixels per side, "
                f"got {self.height}x{self.width}"
            )
        if self.seed < 0:
            raise InvalidPlateSpecError(f"seed must be >= 0, got {self.seed}")
        if not (self.prefix and self.prefix[0].isalnum() and len(self.prefix) <= 32):
            raise InvalidPlateSpecError(
                f"prefix must start with a letter or digit, got {self.prefix!r}"
            )
        if not all(ch.isascii() and (ch.isalnum() or ch == "-") for ch in self.prefix):
            raise InvalidPlateSpecError(
                f"prefix may only hold ASCII letters, digits and '-', got {self.prefix!r}"
            )
        if not (self.pixel_size_um > 0 and self.z_step_um > 0):
            raise InvalidPlateSpecError("pixel size and z step must be positive")


@dataclass(frozen=True)
class PlaneInfo:
    """Where and when one plane was "acquired" (all indices 0-based).

    Attributes
    ----------
    well : str
        Well name, e.g. ``"B03"``.
    well_row, well_column : int
        Position of the well on the plate (A01 is ``(0, 0)``).
    site : int
        Site (field) index within the well.
    grid_row, grid_column : int
        Position of the site in the well's site grid.
    channel, zplane, tpoint : int
        Channel, z-plane and time point.
    stage_x_um, stage_y_um, stage_z_um : float
        Stage position in micrometres (x, y relative to the well centre;
        y decreases with the grid row; z from the first plane).
    elapsed_s : float
        Seconds since :data:`ACQUISITION_START`.
    """

    well: str
    well_row: int
    well_column: int
    site: int
    grid_row: int
    grid_column: int
    channel: int
    zplane: int
    tpoint: int
    stage_x_um: float
    stage_y_um: float
    stage_z_um: float
    elapsed_s: float


class PlateWriter(abc.ABC):
    """Writes one plate in a vendor's file layout.

    Life cycle: ``check(spec)`` (class method, may reject a spec the format
    cannot express), ``__init__(outdir, spec)``, ``write_plane`` once per
    plane, then ``finish()`` on success or ``abort()`` on failure.

    Parameters
    ----------
    outdir : pathlib.Path
        Existing directory to write into.
    spec : PlateSpec
        The plate being written.
    """

    #: Name under which the writer is registered (``--microscope``).
    name: ClassVar[str]
    #: One line for the help text.
    description: ClassVar[str]

    def __init__(self, outdir: Path, spec: PlateSpec) -> None:
        self.outdir = Path(outdir)
        self.spec = spec

    @classmethod
    def check(cls, spec: PlateSpec) -> None:
        """Raise :class:`InvalidPlateSpecError` if the format cannot hold `spec`."""
        return None

    @abc.abstractmethod
    def write_plane(self, plane: PlaneInfo, pixels: NDArray[np.uint16] | None) -> str:
        """Write one plane.

        Parameters
        ----------
        plane : PlaneInfo
            Where and when the plane was acquired.
        pixels : numpy.ndarray or None
            ``(H, W)`` uint16 image, or None for a zero-byte file (``empty``).
            The array may be reused by the caller after the call returns.

        Returns
        -------
        str
            File name written, relative to `outdir`.
        """

    @abc.abstractmethod
    def finish(self) -> list[str]:
        """Write the metadata files; return their names relative to `outdir`."""

    def abort(self) -> None:
        """Release resources after a failure (no metadata is written)."""
        return None


#: Registered writers by name; see :func:`register_writer`.
WRITERS: dict[str, type[PlateWriter]] = {}


def register_writer(cls: type[PlateWriter]) -> type[PlateWriter]:
    """Class decorator adding a :class:`PlateWriter` to :data:`WRITERS`."""
    if not (isinstance(cls, type) and issubclass(cls, PlateWriter)):
        raise TypeError(f"{cls!r} is not a PlateWriter subclass")
    WRITERS[cls.name] = cls
    return cls


def get_writer(name: str) -> type[PlateWriter]:
    """Return the writer class registered as `name`.

    Raises
    ------
    InvalidPlateSpecError
        If no writer of that name is registered.
    """
    try:
        return WRITERS[name]
    except KeyError:
        raise InvalidPlateSpecError(
            f"unknown microscope {name!r}; choose one of {', '.join(sorted(WRITERS))}"
        ) from None


def well_names(plate_format: int, n: int | None = None) -> list[str]:
    """Names of the first `n` wells of a plate in row-major order.

    Parameters
    ----------
    plate_format : int
        96 (A01..H12) or 384 (A01..P24).
    n : int, optional
        Number of wells; default all.

    Returns
    -------
    list of str
        E.g. ``["A01", "A02", ...]``.
    """
    if plate_format not in PLATE_FORMATS:
        raise ValueError(f"plate format must be one of {sorted(PLATE_FORMATS)}")
    rows, cols = PLATE_FORMATS[plate_format]
    names = [f"{_ROW_LETTERS[r]}{c + 1:02d}" for r in range(rows) for c in range(cols)]
    if n is None:
        return names
    if not 0 <= n <= len(names):
        raise ValueError(f"a {plate_format}-well plate has no {n} wells")
    return names[:n]


def site_grid(n_sites: int) -> tuple[int, int]:
    """Near-square ``(rows, columns)`` grid holding `n_sites` sites.

    ``columns = ceil(sqrt(n))`` and ``rows = ceil(n / columns)``: 4 -> 2x2,
    6 -> 2x3, 9 -> 3x3, 10 -> 3x4 (the last row may be incomplete).
    """
    if n_sites < 1:
        raise ValueError(f"need at least one site, got {n_sites}")
    cols = math.isqrt(n_sites - 1) + 1
    rows = -(-n_sites // cols)
    return rows, cols


def site_position(site: int, spec: PlateSpec) -> tuple[int, int, float, float]:
    """Grid position and stage position of a site.

    Parameters
    ----------
    site : int
        0-based site index (row-major in the grid).
    spec : PlateSpec
        The plate (number of sites, image size, pixel size).

    Returns
    -------
    tuple
        ``(grid_row, grid_column, stage_x_um, stage_y_um)``; x grows with the
        column, y shrinks with the row, (0, 0) is the centre of the grid.
    """
    rows, cols = site_grid(spec.sites)
    grid_row, grid_column = divmod(site, cols)
    field_w = spec.width * spec.pixel_size_um
    field_h = spec.height * spec.pixel_size_um
    x = (grid_column - (cols - 1) / 2.0) * field_w
    y = ((rows - 1) / 2.0 - grid_row) * field_h
    return grid_row, grid_column, round(x, 4), round(y, 4)


def channel_background(channel: int) -> float:
    """Background of a channel in counts at the brightest (centre) pixel."""
    return _BACKGROUNDS[channel % len(_BACKGROUNDS)]


def ground_truth_label_path(
    outdir: Path | str, kind: str, well: str, site: int, tpoint: int
) -> Path:
    """Path of a ground-truth label image.

    Parameters
    ----------
    outdir : path
        OUTDIR of the simulation.
    kind : str
        ``"nuclei"`` or ``"cells"``.
    well : str
        Well name, e.g. ``"A01"``.
    site, tpoint : int
        0-based site and time point.

    Returns
    -------
    pathlib.Path
        ``OUTDIR/ground_truth/<kind>_<well>_s<site>_t<tpoint>.tif``.
    """
    if kind not in ("nuclei", "cells"):
        raise ValueError(f"kind must be 'nuclei' or 'cells', got {kind!r}")
    return Path(outdir) / GROUND_TRUTH_DIR / f"{kind}_{well}_s{site}_t{tpoint}.tif"


@dataclass(frozen=True)
class SimulationSummary:
    """What :func:`simulate_plate` wrote.

    Attributes
    ----------
    outdir : pathlib.Path
        Output directory.
    n_images : int
        Image files written.
    n_sites : int
        Sites written (wells x sites per well).
    n_cells : int
        Cells summed over all sites and time points (0 when empty).
    seconds : float
        Wall-clock duration of the run.
    metadata_files : tuple of str
        Vendor metadata files, relative to `outdir`.
    """

    outdir: Path
    n_images: int
    n_sites: int
    n_cells: int
    seconds: float
    metadata_files: tuple[str, ...]

    @property
    def planes_per_second(self) -> float:
        """Image files written per second."""
        return self.n_images / self.seconds if self.seconds > 0 else float("inf")


def vignetting_fields(spec: PlateSpec) -> list[np.ndarray]:
    """The illumination falloff of each channel (fixed by the optics, seeded).

    Returns
    -------
    list of ndarray, shape (height, width), float
    """
    fields = []
    for c in range(spec.channels):
        vr = _rng(spec.seed, _VIGNETTE, c)
        fields.append(
            cellsim.vignetting_field(
                spec.shape,
                strength=float(vr.uniform(0.3, 0.45)),
                centre=(float(vr.uniform(0.45, 0.55)), float(vr.uniform(0.45, 0.55))),
            )
        )
    return fields


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


# Purposes of the random streams, so that every stream has its own seed.
_PLACE, _MOVE, _NOISE, _VIGNETTE, _TEXTURE, _BANK, _SPOTS = range(1, 8)


def check_plate(outdir: Path | str, spec: PlateSpec, *, force: bool = False) -> None:
    """Check everything :func:`simulate_plate` checks, without writing.

    Parameters
    ----------
    outdir : path
        Output directory (need not exist).
    spec : PlateSpec
        What would be simulated.
    force : bool
        Whether a non-empty `outdir` is acceptable.

    Raises
    ------
    InvalidPlateSpecError
        If `spec` is invalid or its writer cannot express it.
    OutputDirectoryNotEmptyError
        If `outdir` is a file, or holds files and `force` is false.
    """
    spec.validate()
    get_writer(spec.microscope).check(spec)
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise OutputDirectoryNotEmptyError(f"output path {outdir} exists and is not a directory")
    if outdir.is_dir() and not force and any(outdir.iterdir()):
        raise OutputDirectoryNotEmptyError(
            f"output directory {outdir} is not empty (use --force to write into it anyway)"
        )


class _GroundTruth:
    """Writes OUTDIR/ground_truth while the plate is being simulated."""

    def __init__(self, outdir: Path, spec: PlateSpec) -> None:
        self.outdir = outdir
        self.root = outdir / GROUND_TRUTH_DIR
        self.spec = spec
        self.n_cells = 0
        self._sites_file = open(self.root / "sites.csv", "w", newline="", encoding="ascii")  # noqa: SIM115
        self._sites = csv.writer(self._sites_file, lineterminator="\n")
        self._sites.writerow(
            ["well", "site", "grid_row", "grid_column", "stage_x_um", "stage_y_um"]
        )
        self._cells_file = None
        self._cells = None
        if not spec.empty:
            self._cells_file = open(self.root / "cells.csv", "w", newline="", encoding="ascii")  # noqa: SIM115
            self._cells = csv.writer(self._cells_file, lineterminator="\n")
            self._cells.writerow(["well", "site", "tpoint", "cell_label", "y", "x"])

    def add_site(self, well: str, site: int, grid: tuple[int, int, float, float]) -> None:
        self._sites.writerow([well, site, grid[0], grid[1], _num(grid[2]), _num(grid[3])])

    def add_cells(
        self,
        well: str,
        site: int,
        tpoint: int,
        cells: cellsim.CellPopulation,
        rendering: cellsim.SiteRendering,
    ) -> None:
        assert self._cells is not None
        for kind, labels in (("nuclei", rendering.nuclei_labels), ("cells", rendering.cell_labels)):
            path = ground_truth_label_path(self.outdir, kind, well, site, tpoint)
            tifffile.imwrite(path, labels, photometric="minisblack", metadata=None)
        centres = np.round(cells.centres, 2)
        self._cells.writerows(
            [well, site, tpoint, label, f"{y:.2f}", f"{x:.2f}"]
            for label, (y, x) in zip(cells.labels.tolist(), centres.tolist(), strict=True)
        )
        self.n_cells += len(cells)

    def close(self) -> None:
        self._sites_file.close()
        if self._cells_file is not None:
            self._cells_file.close()

    def finish(self, parameters: dict[str, object]) -> None:
        self.close()
        text = json.dumps(parameters, indent=2, sort_keys=True) + "\n"
        _atomic_write_text(self.root / "simulation.json", text)


def _num(value: float) -> str:
    """Short decimal text for a coordinate (no exponent, no '-0')."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _atomic_write_text(path: Path, text: str, newline: str = "\n") -> None:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", encoding="utf-8", newline=newline) as fh:
        fh.write(text)
    os.replace(tmp, path)


def _parameters(spec: PlateSpec, nucleus_radius: float) -> dict[str, object]:
    rows, cols = site_grid(spec.sites)
    wells = well_names(spec.plate_format, spec.wells)
    return {
        "ground_truth_version": GROUND_TRUTH_VERSION,
        "spec": asdict(spec),
        "wells": wells,
        "site_grid": {"rows": rows, "columns": cols},
        "n_images": spec.n_images,
        "index_base": 0,
        "acquisition_start": ACQUISITION_START.isoformat(),
        "nucleus_radius_px": round(nucleus_radius, 4),
        "channels": [
            {
                "index": c,
                "stain": ("nuclei", "cytoplasm")[c] if c < 2 else "spots",
                "background": channel_background(c),
            }
            for c in range(spec.channels)
        ],
        "camera": {"gain": 1.0, "read_noise": 5.0, "dtype": "uint16"},
        "files": {
            "cells_csv": "cells.csv" if not spec.empty else None,
            "sites_csv": "sites.csv",
            "labels": "{kind}_{well}_s{site}_t{tpoint}.tif" if not spec.empty else None,
        },
    }


def simulate_plate(
    outdir: Path | str,
    spec: PlateSpec,
    *,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> SimulationSummary:
    """Simulate a plate and write it into `outdir`.

    Parameters
    ----------
    outdir : path
        Output directory; created if missing.
    spec : PlateSpec
        What to simulate.
    force : bool
        Write into an existing non-empty directory (files of the same name
        are replaced, other files are left alone).
    progress : callable, optional
        Called with the number of planes just written (1) after each plane.

    Returns
    -------
    SimulationSummary
        Counts and timing.

    Raises
    ------
    InvalidPlateSpecError
        If `spec` is invalid or the writer cannot express it (a ValueError).
    OutputDirectoryNotEmptyError
        If `outdir` holds files and `force` is false, or is a file.
    """
    started = time.perf_counter()
    check_plate(outdir, spec, force=force)
    writer_cls = get_writer(spec.microscope)
    outdir = Path(outdir)
    (outdir / GROUND_TRUTH_DIR).mkdir(parents=True, exist_ok=True)

    shape = spec.shape
    wells = well_names(spec.plate_format, spec.wells)
    n_cols = PLATE_FORMATS[spec.plate_format][1]
    radius = cellsim.default_nucleus_radius(shape)
    per_tpoint = spec.wells * spec.sites * spec.zplanes * spec.channels
    interval = 60.0 * math.ceil((per_tpoint * SECONDS_PER_IMAGE + 60.0) / 60.0)

    if not spec.empty:
        renderer = cellsim.SiteRenderer(shape, cellsim.texture_tile(_rng(spec.seed, _TEXTURE)))
        vignettes = vignetting_fields(spec)
        bank = cellsim.NoiseBank(spec.height * spec.width, [spec.seed, _BANK])
        frame = np.empty(shape, dtype=np.uint16)
        extra = np.empty(shape, dtype=np.float32) if spec.channels > 2 else None

    writer = writer_cls(outdir, spec)
    truth = _GroundTruth(outdir, spec)
    try:
        for wi, well in enumerate(wells):
            well_row, well_column = divmod(wi, n_cols)
            for site in range(spec.sites):
                grid = site_position(site, spec)
                truth.add_site(well, site, grid)
                population = None
                for t in range(spec.tpoints):
                    if not spec.empty:
                        if population is None:
                            population = cellsim.place_cells(
                                _rng(spec.seed, _PLACE, wi, site), shape, nucleus_radius=radius
                            )
                        else:
                            population = cellsim.move_cells(
                                _rng(spec.seed, _MOVE, wi, site, t), population, shape
                            )
                        rendering = renderer.render(population)
                        truth.add_cells(well, site, t, population, rendering)
                    for c in range(spec.channels):
                        if not spec.empty:
                            signal = cellsim.channel_signal(
                                _rng(spec.seed, _SPOTS, wi, site, t, c),
                                population,
                                rendering,
                                c,
                                out=extra,
                            )
                        for z in range(spec.zplanes):
                            k = ((wi * spec.sites + site) * spec.zplanes + z) * spec.channels + c
                            plane = PlaneInfo(
                                well=well,
                                well_row=well_row,
                                well_column=well_column,
                                site=site,
                                grid_row=grid[0],
                                grid_column=grid[1],
                                channel=c,
                                zplane=z,
                                tpoint=t,
                                stage_x_um=grid[2],
                                stage_y_um=grid[3],
                                stage_z_um=round(z * spec.z_step_um, 4),
                                elapsed_s=round(t * interval + k * SECONDS_PER_IMAGE, 3),
                            )
                            pixels = None
                            if not spec.empty:
                                focused = cellsim.defocus(
                                    signal, z - (spec.zplanes - 1) / 2.0, radius
                                )
                                pixels = cellsim.expose(
                                    focused,
                                    vignettes[c],
                                    bank.window(_rng(spec.seed, _NOISE, wi, site, t, z, c)),
                                    background=channel_background(c),
                                    out=frame,
                                )
                            writer.write_plane(plane, pixels)
                            if progress is not None:
                                progress(1)
        metadata = writer.finish()
        truth.finish(_parameters(spec, radius))
    except BaseException:
        writer.abort()
        truth.close()
        raise
    return SimulationSummary(
        outdir=outdir,
        n_images=spec.n_images,
        n_sites=spec.wells * spec.sites,
        n_cells=truth.n_cells,
        seconds=time.perf_counter() - started,
        metadata_files=tuple(metadata),
    )
