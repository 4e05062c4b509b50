"""``tm_add``: create users, experiments, plates and acquisitions, and register microscope files."""

from __future__ import annotations

import click

from tmlib.cli.base import Program, handle_errors, verbosity_option
from tmlib.lazy import lazy_import
from tmlib.microscopes import MICROSCOPE_TYPES
from tmlib.plates import ACQUISITION_MODES, WORKFLOW_TYPES
from tmlib.progress import Progress, quiet_option

# the database: imported by the commands, not by --help
registry = lazy_import("tmlib.registry")

_EXPERIMENT = click.option("-e", "--experiment", required=True, help="Experiment name or id.")
_OWNER = click.option(
    "-u", "--user", default=None, help="Owner of the experiment (when several users share a name)."
)


@click.group(
    name="tm_add",
    cls=Program,
    warm=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Example, registering a CellVoyager plate:
  tm_add user -n alice -p secret -e alice@example.org
  ID=$(tm_add experiment -e screen1 -u alice --microscope-type cellvoyager)
  tm_add plate -e $ID -p plate01
  tm_add acquisition -e $ID -p plate01 -a acq01
  tm_add files -e $ID -p plate01 -a acq01 -s /data/screen1/plate01

The database is TMAPS_DB_URL (default: SQLite under TMAPS_HOME, ~/.tmaps).""",
)
@verbosity_option
def main() -> None:
    """Add users, experiments, plates, acquisitions and microscope files.

    Exit status: 0 on success, 2 for bad usage or bad input (one line on
    stderr says what and where; nothing is created then), 1 otherwise.
    """


@main.command()
@click.option("-n", "--name", required=True, help="Login name (unique).")
@click.option("-p", "--password", required=True, help="Password (stored as an argon2 hash).")
@click.option("-e", "--email", required=True, help="E-mail address (unique).")
@verbosity_option
@handle_errors
def user(name: str, password: str, email: str) -> None:
    """Create a user. Prints the new user's id."""
    click.echo(registry.add_user(name, password, email))


@main.command()
@click.option("-e", "--experiment", "name", required=True, help="Name of the new experiment.")
@click.option("-u", "--user", required=True, help="Name of the owner (must exist).")
@click.option(
    "--microscope-type",
    "--microscope_type",
    "microscope_type",
    default="cellvoyager",
    show_default=True,
    type=click.Choice(sorted(MICROSCOPE_TYPES)),
    help="Which microscope wrote the files; decides which files 'tm_add files' picks.",
)
@click.option(
    "--plate-format",
    "--plate_format",
    "plate_format",
    default="384",
    show_default=True,
    type=click.Choice(["1", "96", "384"]),
    help="Number of wells per plate.",
)
@click.option(
    "--plate-acquisition-mode",
    "--plate_acquisition_mode",
    "acquisition_mode",
    default="basic",
    show_default=True,
    type=click.Choice(ACQUISITION_MODES),
    help="'basic': acquisitions of a plate add time points; "
    "'multiplexing': each acquisition is a new staining cycle.",
)
@click.option(
    "--workflow-type",
    "--workflow_type",
    "workflow_type",
    default=None,
    type=click.Choice(WORKFLOW_TYPES),
    help="Workflow the experiment runs [default: multiplexing for multiplexing acquisitions, "
    "else canonical].",
)
@click.option("-d", "--description", default=None, help="Free text.")
@verbosity_option
@handle_errors
def experiment(
    name: str,
    user: str,
    microscope_type: str,
    plate_format: str,
    acquisition_mode: str,
    workflow_type: str | None,
    description: str | None,
) -> None:
    """Create an experiment. Prints the new experiment's id alone on stdout."""
    click.echo(
        registry.add_experiment(
            name,
            user,
            microscope_type=microscope_type,
            plate_format=int(plate_format),
            plate_acquisition_mode=acquisition_mode,
            workflow_type=workflow_type,
            description=description,
        )
    )


@main.command()
@_EXPERIMENT
@click.option("-p", "--plate", required=True, help="Name of the new plate.")
@click.option("-d", "--description", default=None, help="Free text.")
@_OWNER
@verbosity_option
@handle_errors
def plate(experiment: str, plate: str, description: str | None, user: str | None) -> None:
    """Add a plate to an experiment. Prints the new plate's id."""
    click.echo(registry.add_plate(experiment, plate, description, user=user))


@main.command()
@_EXPERIMENT
@click.option("-p", "--plate", required=True, help="Name of the plate.")
@click.option("-a", "--acquisition", required=True, help="Name of the new acquisition.")
@click.option("-d", "--description", default=None, help="Free text.")
@_OWNER
@verbosity_option
@handle_errors
def acquisition(
    experiment: str, plate: str, acquisition: str, description: str | None, user: str | None
) -> None:
    """Add an acquisition to a plate. Prints the new acquisition's id."""
    click.echo(registry.add_acquisition(experiment, plate, acquisition, description, user=user))


@main.command()
@_EXPERIMENT
@click.option("-p", "--plate", required=True, help="Name of the plate.")
@click.option("-a", "--acquisition", required=True, help="Name of the acquisition.")
@click.option(
    "-s",
    "--source",
    "--source_dir",
    "source",
    required=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Directory with the microscope's image and metadata files.",
)
@click.option(
    "--copy",
    is_flag=True,
    help="Copy the files instead of symlinking them (use when the source will go away).",
)
@_OWNER
@verbosity_option
@quiet_option
@handle_errors
def files(
    experiment: str, plate: str, acquisition: str, source: str, copy: bool, user: str | None
) -> None:
    """Register the microscope files of a directory with an acquisition.

    Files are recognised by the experiment's microscope type (e.g. for
    cellvoyager the TIFFs named like ..._B03_T0001F002L01A01Z01C02.tif and the
    .mlf/.mrf metadata). Each is symlinked (or copied with --copy) into the
    acquisition's directory. Names registered before are left alone, so running
    this twice on one directory adds nothing. Other files are listed as skipped.
    On a terminal a bar shows the files (and with --copy the bytes) done (-q: none).
    """
    with Progress("register", unit="file") as progress:
        result = registry.register_files(
            experiment, plate, acquisition, source, copy=copy, user=user, progress=progress
        )
    click.echo(
        f"registered {len(result.images)} image and {len(result.metadata)} metadata files; "
        f"{len(result.known)} known before; {len(result.skipped)} skipped"
    )
    for name in result.skipped:
        click.echo(f"skipped (matches no pattern): {name}", err=True)


@main.command()
@_EXPERIMENT
@click.option("-p", "--plate", required=True, help="Name of the plate.")
@click.option("-a", "--acquisition", required=True, help="Name of the acquisition.")
@click.option(
    "-n",
    "--name",
    "names",
    multiple=True,
    help="Label image to import (repeat for several) [default: every label image found].",
)
@_OWNER
@verbosity_option
@handle_errors
def labels(
    experiment: str, plate: str, acquisition: str, names: tuple[str, ...], user: str | None
) -> None:
    """Register the labels of an OME-Zarr plate as object types.

    For experiments of microscope type ome-zarr, after image conversion:
    each label image labels/NAME of the acquisition's field images becomes
    an object type NAME with the segmented objects of every site (Fractal's
    stitched wells are cut into their fields of view). An existing type of
    that name is reused and these sites' segmentations replaced, so running
    this twice changes nothing.
    """
    from tmlib.omezarr.read import import_labels

    counts = import_labels(experiment, plate, acquisition, names or None, user=user)
    for name, count in counts.items():
        click.echo(f"object type {name}: {count} objects registered")
