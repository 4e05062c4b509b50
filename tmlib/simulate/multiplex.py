"""Simulate a multiplexing experiment: the same plate imaged in several cycles.

In a multiplexing (cyclic immunofluorescence) experiment the plate is stained,
imaged, bleached or eluted and stained again, so every cycle images the same
cells at the same sites, usually with one reference stain (nuclei, channel 0)
in every cycle.  Putting the plate back on the stage is never exact: every
site of a later cycle is displaced by a few pixels.

:func:`simulate_cycles` writes one complete plate directory per cycle,
``OUTDIR/cycle_1`` ... ``OUTDIR/cycle_N`` (each in the chosen vendor layout,
to be registered as one acquisition each, in this order), and the true
displacements to ``OUTDIR/ground_truth/shifts.csv``.

How the pixels are made (fast: cells are drawn and rendered once per site)
------------------------------------------------------------------------
The cells of a site are placed and rendered on a field ``2 * max_shift``
pixels larger than the image in both directions.  Cycle 1 (the reference)
sees the centre window of that field; a cycle with shift ``(y, x)`` sees the
window moved by ``(-y, -x)``, so that its content appears displaced by
``(y, x)``::

    cycle_k[r + y, c + x] == cycle_1[r, c]      (noise-free content)

which is the convention of :class:`tmlib.models.SiteShift` and
:mod:`tmlib.alignment` (+ = down/right).  The illumination field (vignetting)
belongs to the optics and does not move; every cycle has its own noise.
Channels 0 (nuclei) and 1 (cytoplasm) show the same stains in every cycle;
channels 2 and up show another spot pattern per cycle (a new antibody).

Ground truth (indices from 0)
-----------------------------
``OUTDIR/ground_truth/shifts.csv``
    ``cycle,well,site_y,site_x,y,x``: one row per cycle and site, cycle 0
    (directory ``cycle_1``) included with ``0,0``; ``site_y``/``site_x`` are
    the site's row and column in its well's grid (``Site.y``/``Site.x`` after
    metaconfig); cycle ``c`` is ``Cycle.index`` ``c`` when the cycle
    directories are registered in order.
``OUTDIR/ground_truth/simulation.json``
    the parameters, the cycle directories and the shift convention.
``OUTDIR/cycle_<k>/ground_truth/``
    the usual per-plate ground truth of that cycle (``cells.csv``,
    ``sites.csv``, label images, ``simulation.json``); cells keep their label
    in every cycle, and ``cells.csv`` lists every cell with a pixel in the
    image (a centre may lie just outside the image for cells cut by a border).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from tmlib.lazy import lazy_import
from tmlib.simulate import cells as cellsim
from tmlib.simulate.plate import (
    _BANK,
    _PLACE,
    _TEXTURE,
    ACQUISITION_START,
    GROUND_TRUTH_DIR,
    PLATE_FORMATS,
    SECONDS_PER_IMAGE,
    InvalidPlateSpecError,
    PlaneInfo,
    PlateSpec,
    SimulationSummary,
    _atomic_write_text,
    _GroundTruth,
    _parameters,
    _rng,
    channel_background,
    check_plate,
    get_writer,
    ground_truth_label_path,
    site_grid,
    site_position,
    vignetting_fields,
    well_names,
)

np = lazy_import("numpy")
tifffile = lazy_import("tifffile")

__all__ = [
    "CYCLE_INTERVAL_S",
    "DEFAULT_MAX_SHIFT",
    "SHIFTS_FILE",
    "check_cycles",
    "cycle_directory",
    "cycle_shifts",
    "default_max_shift",
    "read_shifts",
    "simulate_cycles",
]

#: Largest shift (pixels, per axis) when none is given.
DEFAULT_MAX_SHIFT = 20

#: Name of the shifts file in OUTDIR/ground_truth.
SHIFTS_FILE = "shifts.csv"

#: Simulated time between the starts of two cycles (staining, washing, imaging).
CYCLE_INTERVAL_S = 86400.0

# Random stream purposes beyond those of tmlib.simulate.plate (1..7).
_SHIFT = 101
_SPOTS_CYCLE = 102
_NOISE_CYCLE = 103


def default_max_shift(spec: PlateSpec) -> int:
    """:data:`DEFAULT_MAX_SHIFT`, at most a quarter of the smaller image side."""
    return min(DEFAULT_MAX_SHIFT, min(spec.height, spec.width) // 4)


def cycle_directory(outdir: Path | str, cycle: int) -> Path:
    """Plate directory of a 0-based cycle: ``OUTDIR/cycle_<cycle + 1>``."""
    return Path(outdir) / f"cycle_{cycle + 1}"


def _check_cycle_options(spec: PlateSpec, cycles: int, max_shift: int) -> None:
    if cycles < 2:
        raise InvalidPlateSpecError(f"a multiplexing plate needs at least 2 cycles, got {cycles}")
    if cycles > 99:
        raise InvalidPlateSpecError(f"at most 99 cycles, got {cycles}")
    if spec.tpoints > 1:
        raise InvalidPlateSpecError(
            "--cycles cannot be combined with --tpoints (in multiplexing mode every time point "
            "is a cycle of its own); use --tpoints 1"
        )
    limit = min(spec.height, spec.width) // 4
    if not 0 <= max_shift <= limit:
        raise InvalidPlateSpecError(
            f"--max-shift must be within 0..{limit} (a quarter of the smaller image side, so "
            f"that the cycles of a site overlap), got {max_shift}"
        )


def check_cycles(
    outdir: Path | str, spec: PlateSpec, cycles: int, max_shift: int, *, force: bool = False
) -> None:
    """Check everything :func:`simulate_cycles` checks, without writing.

    Raises
    ------
    InvalidPlateSpecError
        If `spec`, `cycles` or `max_shift` are invalid.
    OutputDirectoryNotEmptyError
        If `outdir` is a file, or holds files and `force` is false.
    """
    check_plate(outdir, spec, force=force)
    _check_cycle_options(spec, cycles, max_shift)


def cycle_shifts(
    spec: PlateSpec, cycles: int, max_shift: int
) -> dict[tuple[int, int, int], tuple[int, int]]:
    """The displacement of every site in every cycle.

    Parameters
    ----------
    spec : PlateSpec
        The plate (seed, wells, sites).
    cycles : int
        Number of cycles.
    max_shift : int
        Largest displacement per axis in pixels.

    Returns
    -------
    dict
        ``(cycle, well index, site) -> (y, x)``, integers within
        ``[-max_shift, max_shift]``; ``(0, 0)`` for cycle 0.
    """
    shifts = {}
    for cycle in range(cycles):
        for wi in range(spec.wells):
            for site in range(spec.sites):
                if cycle == 0:
                    shifts[(cycle, wi, site)] = (0, 0)
                    continue
                rng = _rng(spec.seed, _SHIFT, cycle, wi, site)
                y, x = rng.integers(-max_shift, max_shift + 1, size=2).tolist()
                shifts[(cycle, wi, site)] = (int(y), int(x))
    return shifts


def read_shifts(outdir: Path | str) -> dict[tuple[int, str, int, int], tuple[int, int]]:
    """Read ``OUTDIR/ground_truth/shifts.csv``.

    Returns
    -------
    dict
        ``(cycle, well, site_y, site_x) -> (y, x)``.
    """
    path = Path(outdir) / GROUND_TRUTH_DIR / SHIFTS_FILE
    with open(path, newline="", encoding="ascii") as fh:
        return {
            (int(r["cycle"]), r["well"], int(r["site_y"]), int(r["site_x"])): (
                int(r["y"]),
                int(r["x"]),
            )
            for r in csv.DictReader(fh)
        }


class _CycleTruth(_GroundTruth):
    """Per-cycle ground truth: cells cut out of the larger rendered field."""

    def add_window(
        self,
        well: str,
        site: int,
        cells: cellsim.CellPopulation,
        rendering: cellsim.SiteRendering,
        window: tuple[slice, slice],
    ) -> None:
        assert self._cells is not None
        cell_labels = rendering.cell_labels[window]
        for kind, labels in (("nuclei", rendering.nuclei_labels[window]), ("cells", cell_labels)):
            path = ground_truth_label_path(self.outdir, kind, well, site, 0)
            _write_labels(path, labels)
        present = np.unique(cell_labels)
        present = present[present > 0]
        origin = np.array([window[0].start, window[1].start], dtype=np.float64)
        centres = np.round(cells.centres[present - 1] - origin, 2)
        self._cells.writerows(
            [well, site, 0, label, f"{y:.2f}", f"{x:.2f}"]
            for label, (y, x) in zip(present.tolist(), centres.tolist(), strict=True)
        )
        self.n_cells += len(present)


def _write_labels(path: Path, labels: np.ndarray) -> None:
    tifffile.imwrite(path, np.ascontiguousarray(labels), photometric="minisblack", metadata=None)


def _shifts_text(
    spec: PlateSpec, shifts: dict[tuple[int, int, int], tuple[int, int]], cycles: int
) -> str:
    wells = well_names(spec.plate_format, spec.wells)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["cycle", "well", "site_y", "site_x", "y", "x"])
    for cycle in range(cycles):
        for wi, well in enumerate(wells):
            for site in range(spec.sites):
                grid_row, grid_column, _, _ = site_position(site, spec)
                y, x = shifts[(cycle, wi, site)]
                writer.writerow([cycle, well, grid_row, grid_column, y, x])
    return buffer.getvalue()


def simulate_cycles(
    outdir: Path | str,
    spec: PlateSpec,
    cycles: int,
    max_shift: int | None = None,
    *,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> SimulationSummary:
    """Simulate a plate imaged in `cycles` cycles with known stage errors.

    Parameters
    ----------
    outdir : path
        Output directory; created if missing.  Receives ``cycle_1`` ...
        ``cycle_<cycles>`` and ``ground_truth`` (see the module docstring).
    spec : PlateSpec
        The plate of every cycle (``tpoints`` must be 1).
    cycles : int
        Number of cycles, at least 2.
    max_shift : int, optional
        Largest displacement of a site per axis in pixels (seeded, uniform
        integers in ``[-max_shift, max_shift]``); default
        :func:`default_max_shift`.
    force : bool
        Write into an existing non-empty directory.
    progress : callable, optional
        Called with 1 after each image file written.

    Returns
    -------
    SimulationSummary
        Counts over all cycles (``n_sites`` counts each site once).

    Raises
    ------
    InvalidPlateSpecError
        If the options are invalid (a ValueError).
    OutputDirectoryNotEmptyError
        If `outdir` holds files and `force` is false, or is a file.
    """
    started = time.perf_counter()
    if max_shift is None:
        max_shift = default_max_shift(spec)
    check_cycles(outdir, spec, cycles, max_shift, force=force)
    writer_cls = get_writer(spec.microscope)
    outdir = Path(outdir)
    (outdir / GROUND_TRUTH_DIR).mkdir(parents=True, exist_ok=True)
    directories = [cycle_directory(outdir, k) for k in range(cycles)]
    for directory in directories:
        (directory / GROUND_TRUTH_DIR).mkdir(parents=True, exist_ok=True)

    shape = spec.shape
    margin = max_shift
    field = (spec.height + 2 * margin, spec.width + 2 * margin)
    wells = well_names(spec.plate_format, spec.wells)
    n_cols = PLATE_FORMATS[spec.plate_format][1]
    radius = cellsim.default_nucleus_radius(shape)  # cells as large as on a normal plate
    shifts = cycle_shifts(spec, cycles, max_shift)

    if not spec.empty:
        renderer = cellsim.SiteRenderer(field, cellsim.texture_tile(_rng(spec.seed, _TEXTURE)))
        vignettes = vignetting_fields(spec)
        bank = cellsim.NoiseBank(spec.height * spec.width, [spec.seed, _BANK])
        frame = np.empty(shape, dtype=np.uint16)
        spot_buffers = (
            [np.empty(field, dtype=np.float32) for _ in range(cycles)] if spec.channels > 2 else []
        )

    writers = []
    truths: list[_CycleTruth] = []
    try:
        for directory in directories:
            writers.append(writer_cls(directory, spec))
            truths.append(_CycleTruth(directory, spec))
        for wi, well in enumerate(wells):
            well_row, well_column = divmod(wi, n_cols)
            for site in range(spec.sites):
                grid = site_position(site, spec)
                windows = []
                for k in range(cycles):
                    dy, dx = shifts[(k, wi, site)]
                    # content displaced by (+dy, +dx) = the window moved by (-dy, -dx)
                    top, left = margin - dy, margin - dx
                    windows.append((slice(top, top + spec.height), slice(left, left + spec.width)))
                for truth in truths:
                    truth.add_site(well, site, grid)
                if not spec.empty:
                    population = cellsim.place_cells(
                        _rng(spec.seed, _PLACE, wi, site), field, nucleus_radius=radius
                    )
                    rendering = renderer.render(population)
                    for k, truth in enumerate(truths):
                        truth.add_window(well, site, population, rendering, windows[k])
                for c in range(spec.channels):
                    signals: list[np.ndarray | None] = [None] * cycles
                    if not spec.empty:
                        for k in range(cycles):
                            if c < 2 and k > 0:
                                signals[k] = signals[0]  # the same stain in every cycle
                            else:
                                signals[k] = cellsim.channel_signal(
                                    _rng(spec.seed, _SPOTS_CYCLE, wi, site, c, k),
                                    population,
                                    rendering,
                                    c,
                                    out=spot_buffers[k] if c >= 2 else None,
                                )
                    for z in range(spec.zplanes):
                        k_plane = ((wi * spec.sites + site) * spec.zplanes + z) * spec.channels + c
                        focused: dict[int, np.ndarray] = {}
                        for k in range(cycles):
                            plane = PlaneInfo(
                                well=well,
                                well_row=well_row,
                                well_column=well_column,
                                site=site,
                                grid_row=grid[0],
                                grid_column=grid[1],
                                channel=c,
                                zplane=z,
                                tpoint=0,
                                stage_x_um=grid[2],
                                stage_y_um=grid[3],
                                stage_z_um=round(z * spec.z_step_um, 4),
                                elapsed_s=round(
                                    k * CYCLE_INTERVAL_S + k_plane * SECONDS_PER_IMAGE, 3
                                ),
                            )
                            pixels = None
                            if not spec.empty:
                                signal = signals[k]
                                assert signal is not None
                                # blur the whole field once per stain, then cut windows out
                                blurred = focused.get(id(signal))
                                if blurred is None:
                                    blurred = focused[id(signal)] = cellsim.defocus(
                                        signal, z - (spec.zplanes - 1) / 2.0, radius
                                    )
                                pixels = cellsim.expose(
                                    blurred[windows[k]],
                                    vignettes[c],
                                    bank.window(_rng(spec.seed, _NOISE_CYCLE, wi, site, z, c, k)),
                                    background=channel_background(c),
                                    out=frame,
                                )
                            writers[k].write_plane(plane, pixels)
                            if progress is not None:
                                progress(1)
        metadata: list[str] = []
        for k, (writer, truth) in enumerate(zip(writers, truths, strict=True)):
            names = writer.finish()
            metadata.extend(f"{directories[k].name}/{name}" for name in names)
            parameters = _parameters(spec, radius)
            parameters["cycle"] = {
                "index": k,
                "of": cycles,
                "shifts": f"../../{GROUND_TRUTH_DIR}/{SHIFTS_FILE}",
            }
            truth.finish(parameters)
        _atomic_write_text(
            outdir / GROUND_TRUTH_DIR / SHIFTS_FILE, _shifts_text(spec, shifts, cycles)
        )
        _atomic_write_text(
            outdir / GROUND_TRUTH_DIR / "simulation.json",
            json.dumps(_top_parameters(spec, cycles, max_shift), indent=2, sort_keys=True) + "\n",
        )
    except BaseException:
        for writer in writers:
            writer.abort()
        for truth in truths:
            truth.close()
        raise
    return SimulationSummary(
        outdir=outdir,
        n_images=spec.n_images * cycles,
        n_sites=spec.wells * spec.sites,
        n_cells=sum(t.n_cells for t in truths),
        seconds=time.perf_counter() - started,
        metadata_files=tuple(metadata),
    )


def _top_parameters(spec: PlateSpec, cycles: int, max_shift: int) -> dict[str, object]:
    rows, cols = site_grid(spec.sites)
    return {
        "ground_truth_version": 1,
        "spec": asdict(spec),
        "cycles": cycles,
        "max_shift_px": max_shift,
        "cycle_directories": [cycle_directory(Path("."), k).name for k in range(cycles)],
        "reference_cycle": 0,
        "shift_convention": (
            "cycle_k[r + y, c + x] == reference[r, c]; + = down/right (as SiteShift)"
        ),
        "shifts_csv": SHIFTS_FILE,
        "site_grid": {"rows": rows, "columns": cols},
        "wells": well_names(spec.plate_format, spec.wells),
        "n_images": spec.n_images * cycles,
        "index_base": 0,
        "acquisition_start": ACQUISITION_START.isoformat(),
        "cycle_interval_s": CYCLE_INTERVAL_S,
        "stains": "channels 0 and 1 identical in every cycle; channels >= 2 differ per cycle",
        "nucleus_radius_px": round(cellsim.default_nucleus_radius(spec.shape), 4),
        "images_per_cycle": spec.n_images,
    }
