"""``tm_simulate``: write synthetic microscopy plates for tests and benchmarks."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import click

from tmlib.cli.base import Program, handle_errors, verbosity_option
from tmlib.progress import Progress
from tmlib.simulate import WRITERS, PlateSpec, SimulationSummary, check_plate, simulate_plate
from tmlib.simulate.multiplex import (
    DEFAULT_MAX_SHIFT,
    check_cycles,
    default_max_shift,
    simulate_cycles,
)

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")

#: Show a progress bar from this many image files on.
_PROGRESS_FROM = 9


def _parse_size(
    _ctx: click.Context, _param: click.Parameter, value: str | tuple[int, int]
) -> tuple[int, int]:
    if isinstance(value, tuple):
        return value
    match = _SIZE.match(value)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise click.BadParameter(f"expected HEIGHTxWIDTH in pixels, e.g. 2160x2560, got {value!r}")
    return int(match.group(1)), int(match.group(2))


@click.group(
    name="tm_simulate",
    cls=Program,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@verbosity_option
def main() -> None:
    """Write synthetic microscopy data for tests and benchmarks.

    Exit status: 0 on success, 2 for bad usage (one line on stderr says
    what), 1 if writing failed.  Run 'tm_simulate plate -h' for details.
    """


@main.command(
    epilog="""\b
EXAMPLES
  tm_simulate plate /tmp/plate
      2 wells (A01, A02) x 4 sites x 2 channels of 256x256 pixels: 16 TIFFs.
  tm_simulate plate /data/big --wells 24 --sites 9 --channels 3 --size 2160x2560
      a camera-sized plate of 648 images (~7 GB) for benchmarks.
  tm_simulate plate /tmp/names --empty --plate-format 384 --wells 384 \\
      --sites 9 --channels 4 --zplanes 4
      55,296 zero-byte files plus full metadata, to benchmark registration.
  tm_simulate plate /tmp/mx --cycles 3 --max-shift 15
      a multiplexing experiment: /tmp/mx/cycle_1 .. cycle_3 (one acquisition
      each), sites of cycles 2 and 3 displaced by up to 15 px, true shifts in
      /tmp/mx/ground_truth/shifts.csv.
"""
)
@click.argument("outdir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--microscope",
    type=click.Choice(sorted(WRITERS)),
    default="cellvoyager",
    show_default=True,
    help="Vendor file layout to write.",
)
@click.option(
    "--plate-format",
    type=click.Choice(["96", "384"]),
    default="384",
    show_default=True,
    help="Wells of the plate: 96 (A01..H12) or 384 (A01..P24).",
)
@click.option(
    "--wells",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Number of wells, taken row by row from A01; at most the plate format.",
)
@click.option(
    "--sites",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Sites (fields) per well, laid out as a near-square grid.",
)
@click.option(
    "--channels",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Channels: 1 nuclei, 2 cytoplasm, 3 and up spotty stains.",
)
@click.option(
    "--zplanes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Z-planes per site; planes away from the middle one are out of focus.",
)
@click.option(
    "--tpoints",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Time points; cells keep their labels and move a little between them.",
)
@click.option(
    "--size",
    default="256x256",
    show_default=True,
    callback=_parse_size,
    metavar="HxW",
    help="Image height x width in pixels.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Random seed; the same seed and options give byte-identical files.",
)
@click.option(
    "--cycles",
    type=click.IntRange(min=1, max=99),
    default=None,
    help="Multiplexing: image the plate N times (OUTDIR/cycle_1 .. cycle_N), each cycle's "
    "sites displaced by a known stage error. Default: one plate directly in OUTDIR.",
)
@click.option(
    "--max-shift",
    type=click.IntRange(min=0),
    default=None,
    metavar="PX",
    help=f"Largest displacement per axis in pixels of a site in cycles 2..N (with --cycles; "
    f"default {DEFAULT_MAX_SHIFT}, at most a quarter of the smaller image side).",
)
@click.option(
    "--prefix",
    default="Sim",
    show_default=True,
    help="Plate name at the start of every file name (letters, digits, '-').",
)
@click.option(
    "--empty",
    is_flag=True,
    help="Write zero-byte image files (correct names, full metadata, no pixels, no cells).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Write into OUTDIR even if it is not empty (files of the same name are replaced, "
    "others are kept).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line.")
@handle_errors
def plate(
    outdir: Path,
    microscope: str,
    plate_format: str,
    wells: int,
    sites: int,
    channels: int,
    zplanes: int,
    tpoints: int,
    size: tuple[int, int],
    seed: int,
    cycles: int | None,
    max_shift: int | None,
    prefix: str,
    empty: bool,
    force: bool,
    quiet: bool,
) -> None:
    """Write a synthetic plate in a microscope vendor's file layout.

    OUTDIR receives wells x sites x channels x zplanes x tpoints 16-bit
    images of cells, exactly as the microscope would write them, plus the
    ground truth under OUTDIR/ground_truth.  OUTDIR is created if missing and
    must be empty unless --force is given.

    \b
    IMAGES
      Channel 1 shows nuclei (bright blobs, up to several thousand counts),
      channel 2 the cytoplasm (larger, dimmer regions around each nucleus),
      channels 3 and up spots inside the cells on a dim cytoplasmic stain.
      Cells form clusters in which they touch.  Every channel has its own
      illumination field (darker corners), the same at every site, on a
      background of 100-300 counts, with shot and camera noise and slightly
      soft edges.  Images never saturate.

    \b
    LAYOUT (--microscope cellvoyager)
      OUTDIR/<prefix>_<WELL>_T<tttt>F<fff>L01A01Z<zz>C<cc>.tif
          one uncompressed TIFF per plane; T time point, F site (field),
          Z z-plane, C channel, all counted from 1
      OUTDIR/MeasurementData.mlf
          one bts:MeasurementRecord per image: well Row/Column, FieldIndex,
          TimePoint, ZIndex, Ch and the stage position X/Y/Z in micrometres
          (X grows to the right, Y grows upwards, relative to the well centre;
          sites are one image apart without overlap)
      OUTDIR/MeasurementDetail.mrf
          plate size (RowCount/ColumnCount of the plate format) and one
          bts:MeasurementChannel per channel (pixel size, image size)

    \b
    GROUND TRUTH (OUTDIR/ground_truth, indices counted from 0)
      cells.csv            well,site,tpoint,cell_label,y,x: nucleus centres
                           in pixels of the site's image
      nuclei_<WELL>_s<site>_t<tpoint>.tif
      cells_<WELL>_s<site>_t<tpoint>.tif
                           uint16 label images; cell_label is the pixel value
                           of the cell's nucleus and of the whole cell
      sites.csv            grid row/column and stage position of every site
      simulation.json      the parameters used
    With --empty only sites.csv and simulation.json are written.

    \b
    MULTIPLEXING (--cycles N, N > 1)
      OUTDIR/cycle_1 .. OUTDIR/cycle_N
          one complete plate directory per cycle in the chosen layout, each
          with its own ground_truth (cells keep their labels in every cycle);
          register them in order as one acquisition each of a multiplexing
          experiment (cycle_k becomes cycle index k-1)
      OUTDIR/ground_truth/shifts.csv
          cycle,well,site_y,site_x,y,x: cycle index from 0 (cycle_1 is 0, the
          reference, with shift 0,0), the site's grid row/column in its well,
          and its displacement in pixels: cycle[r + y, c + x] = reference[r, c]
          (+ = down/right, the convention of the align step)
      OUTDIR/ground_truth/simulation.json
          the parameters, including --cycles and --max-shift
      Channel 1 (nuclei) and channel 2 show the same stains in every cycle,
      channels 3 and up a new spot pattern per cycle.  Illumination is fixed
      to the optics (not shifted); every cycle has its own noise.

    Timestamps in the metadata start at a fixed date, so runs are
    reproducible byte for byte.
    """
    spec = PlateSpec(
        microscope=microscope,
        plate_format=int(plate_format),
        wells=wells,
        sites=sites,
        channels=channels,
        zplanes=zplanes,
        tpoints=tpoints,
        height=size[0],
        width=size[1],
        seed=seed,
        empty=empty,
        prefix=prefix,
    )
    multiplexing = cycles is not None and cycles > 1
    if not multiplexing and max_shift:
        raise click.BadParameter(
            "--max-shift needs --cycles N with N > 1", param_hint="--max-shift"
        )
    if multiplexing:
        shift = default_max_shift(spec) if max_shift is None else max_shift

        def write(progress: Callable[[int], None] | None = None) -> SimulationSummary:
            return simulate_cycles(outdir, spec, cycles, shift, force=force, progress=progress)

        check_cycles(outdir, spec, cycles, shift, force=force)
        total = spec.n_images * cycles
    else:

        def write(progress: Callable[[int], None] | None = None) -> SimulationSummary:
            return simulate_plate(outdir, spec, force=force, progress=progress)

        check_plate(outdir, spec, force=force)  # fail before the progress bar starts
        total = spec.n_images
    if quiet or total < _PROGRESS_FROM:
        summary = write()
    else:
        with Progress("writing", files=total, unit="image") as bar:
            summary = write(lambda n: bar.advance(n))
    if not quiet:
        per_cycle = f"{cycles} cycles x " if multiplexing else ""
        click.echo(
            f"wrote {summary.n_images} {'empty ' if empty else ''}images "
            f"({per_cycle}{wells} wells x {sites} sites x {channels} channels x {zplanes} "
            f"z-planes x {tpoints} time points, {size[0]}x{size[1]} px), metadata and ground "
            f"truth to {outdir} in {summary.seconds:.1f} s "
            f"({summary.planes_per_second:.1f} images/s)"
        )
