"""``tm_simulate``: write synthetic microscopy plates for tests and benchmarks."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from tmlib.cli.base import Program, handle_errors, verbosity_option
from tmlib.simulate import WRITERS, PlateSpec, check_plate, simulate_plate

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
    check_plate(outdir, spec, force=force)  # fail before the progress bar starts
    total = spec.n_images
    if quiet or total < _PROGRESS_FROM:
        summary = simulate_plate(outdir, spec, force=force)
    else:
        with click.progressbar(
            length=total,
            label=f"writing {total} images",
            file=sys.stderr,
            update_min_steps=max(1, total // 400),
        ) as bar:
            summary = simulate_plate(outdir, spec, force=force, progress=bar.update)
    if not quiet:
        click.echo(
            f"wrote {summary.n_images} {'empty ' if empty else ''}images "
            f"({wells} wells x {sites} sites x {channels} channels x {zplanes} z-planes x "
            f"{tpoints} time points, {size[0]}x{size[1]} px), metadata and ground truth "
            f"to {outdir} in {summary.seconds:.1f} s ({summary.planes_per_second:.1f} images/s)"
        )
