"""``tm_export``: write an experiment's data in formats other tools read."""

from __future__ import annotations

from pathlib import Path

import click

from tmlib.cli.base import Program, handle_errors, verbosity_option
from tmlib.lazy import lazy_import
from tmlib.progress import quiet_option

# numpy, zarr and the database: imported by the command, not by --help
export = lazy_import("tmlib.omezarr.export")


@click.group(
    name="tm_export",
    cls=Program,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  tm_export 1 ome-zarr /data/exports/screen1
  tm_export 1 ome-zarr /data/exports/screen1 --objects Nuclei --objects Cells --features
  tm_export 1 ome-zarr /tmp/old-viewer --version 0.4 --correct --align --overwrite""",
)
@click.argument("experiment_id", metavar="EXPERIMENT_ID", type=int)
@verbosity_option
@quiet_option
@click.pass_context
def main(ctx: click.Context, experiment_id: int) -> None:
    """Export the experiment EXPERIMENT_ID.

    Exit status: 0 on success, 2 for bad usage or bad input (one line on
    stderr says what and where; nothing is written then), 1 otherwise.
    """
    ctx.ensure_object(dict)
    ctx.obj["experiment_id"] = experiment_id


@main.command("ome-zarr")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--version",
    "version",
    type=click.Choice(["0.5", "0.4"]),
    default="0.5",
    show_default=True,
    help="NGFF version: 0.5 (Zarr v3) or 0.4 (Zarr v2, for viewers that do not read 0.5).",
)
@click.option(
    "--objects",
    "objects",
    multiple=True,
    metavar="TYPE",
    help="Write this object type as label images beside each field (repeat for several).",
)
@click.option(
    "--features",
    is_flag=True,
    help="Also write the features of the object types as tables (tables/<type>, Fractal's "
    "feature_table layout); all types unless --objects names some.",
)
@click.option(
    "--levels",
    type=int,
    default=None,
    help="Pyramid levels of each field [default: halve until both sides are at most 512].",
)
@click.option("--correct", is_flag=True, help="Correct illumination (needs corilla's statistics).")
@click.option("--align", is_flag=True, help="Align cycles (align's shifts; crops to the overlap).")
@click.option("--overwrite", is_flag=True, help="Replace plates that exist in OUT.")
@verbosity_option
@quiet_option
@handle_errors
@click.pass_context
def ome_zarr(
    ctx: click.Context,
    out: Path,
    version: str,
    objects: tuple[str, ...],
    features: bool,
    levels: int | None,
    correct: bool,
    align: bool,
    overwrite: bool,
) -> None:
    """Write each plate as an OME-Zarr HCS plate OUT/<plate>.zarr.

    One field per site (in grid order), axes (t) c (z) y x with a pyramid,
    the physical pixel size where known and the channels' names, colours and
    display windows (from corilla's percentiles). Raw pixels unless --correct
    or --align. Object types become label images (labels/<type>) whose values
    are the objects' labels.

    A plate is written site by site into a hidden temporary directory in OUT
    and renamed when complete: an interrupted export leaves no half plate.
    Prints the paths of the plates written.
    """
    options = export.ExportOptions(
        version=version,
        objects=objects,
        features=features,
        levels=levels,
        correct=correct,
        align=align,
        overwrite=overwrite,
    )
    for path in export.export_experiment(ctx.obj["experiment_id"], out, options):
        click.echo(path)


if __name__ == "__main__":
    main(prog_name="tm_export")
