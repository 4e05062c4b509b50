"""``tm_client``: the REST API of a TissueMAPS server on the command line.

The command tree follows the original tm_client 0.5.0: global connection
options, then a resource group (most take ``-e/--experiment``), then a verb.
"""

from __future__ import annotations

import functools
import logging
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from tmclient.api import CONVERT_FORMATS, InputError, TmClient
from tmclient.auth import load_password, password_file
from tmclient.base import TmClientError
from tmlib.cli.aliases import UnderscoreCommand
from tmlib.cli.base import EXIT_FAILED, EXIT_USAGE, Program, fail, handle_errors, verbosity_option
from tmlib.progress import quiet_option

F = TypeVar("F", bound=Callable[..., Any])

PROGRAM = "tm_client"
DEFAULT_PORT = 5002
_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# --- output ----------------------------------------------------------------------


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Rows as left-aligned columns under a header line (numbers right-aligned)."""
    text_rows = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=True)]
    numeric = [
        bool(text_rows) and all(_is_number(row[i]) or row[i] in ("", "-") for row in text_rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str], header: bool = False) -> str:
        cells = [
            v.rjust(w) if numeric[i] and not header else v.ljust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return "\n".join([line(headers, header=True)] + [line(row) for row in text_rows])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _echo_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    click.echo(format_table(headers, list(rows)))


def _echo_log(log: dict) -> None:
    """A job's ``{stdout, stderr}`` under two marker lines."""
    click.echo("--- stdout ---")
    click.echo(log.get("stdout") or "")
    click.echo("--- stderr ---")
    click.echo(log.get("stderr") or "")


# --- connection and errors -----------------------------------------------------------


def _settings() -> dict[str, Any]:
    return click.get_current_context().find_root().obj


def get_client(experiment: bool = True) -> TmClient:
    """The logged-in client of this invocation (for the group's experiment)."""
    obj = _settings()
    experiment_name = obj.get("experiment") if experiment else None
    if experiment and not experiment_name:
        group = click.get_current_context().parent
        name = group.info_name if group is not None else "GROUP"
        raise InputError(f"missing option -e/--experiment: tm_client {name} -e NAME COMMAND ...")
    # urllib3 logs each retry as a warning; the one error line is ours to print
    quiet = obj.get("verbosity", 0) < 2
    logging.getLogger("urllib3").setLevel(logging.ERROR if quiet else logging.DEBUG)
    user = obj["user"]
    if not user:
        raise InputError("no user name: give -u/--user or set TM_USER")
    password = obj["password"]
    if password is None:
        password = load_password(user)
    if password is None:
        if not sys.stdin.isatty():
            raise InputError(
                f"no password for {user!r}: give -p/--password, set TM_PASSWORD or add "
                f"'{user}: PASSWORD' to {password_file()}"
            )
        password = click.prompt(f"Password of {user}", hide_input=True)
    return TmClient(obj["host"], obj["port"], user, password, experiment_name=experiment_name)


def client_errors(f: F) -> F:
    """Server errors as one line on stderr: exit 2 for bad requests (4xx), else 1."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except TmClientError as err:
            if _settings().get("verbosity", 0) >= 2:
                logging.getLogger(PROGRAM).exception("request failed")
            fail(PROGRAM, str(err), EXIT_USAGE if err.is_client_error else EXIT_FAILED)
        except OSError as err:
            if _settings().get("verbosity", 0) >= 2:
                logging.getLogger(PROGRAM).exception("failed")
            where = f"{err.filename}: " if err.filename else ""
            fail(PROGRAM, f"{where}{err.strerror or err}", EXIT_USAGE)

    return handle_errors(wrapper)  # type: ignore[return-value]


def command(group: click.Group, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
    """A sub-command of `group` with -v, -q and the error handling.

    Its options also parse in the original's underscore spellings (``--plate_format``).
    """

    def decorate(f: F) -> F:
        return group.command(name, cls=UnderscoreCommand, context_settings=_CONTEXT, **kwargs)(
            quiet_option(verbosity_option(client_errors(f)))
        )

    return decorate


# --- shared options -------------------------------------------------------------------

# checked when a command connects, not by click, so that 'GROUP COMMAND --help' works without it
_experiment = click.option(
    "-e", "--experiment", metavar="NAME", help="Name of the experiment (required)."
)
_name = functools.partial(click.option, "-n", "--name", required=True)
_new_name = click.option("--new-name", required=True, help="The new name.")
_description = click.option("--description", default="", help="Free text description.")
_plate = click.option("-p", "--plate", "plate_name", required=True, help="Name of the plate.")
_well = click.option("-w", "--well", "well_name", required=True, help="Name of the well, e.g. A01.")
_x = click.option(
    "-x", "--well-pos-x", "well_pos_x", required=True, type=click.IntRange(0),
    help="Column of the site in the well (0-based).",
)  # fmt: skip
_y = click.option(
    "-y", "--well-pos-y", "well_pos_y", required=True, type=click.IntRange(0),
    help="Row of the site in the well (0-based).",
)  # fmt: skip
_acquisition = click.option(
    "-a", "--acquisition", "acquisition_name", required=True, help="Name of the acquisition."
)
_tpoint = click.option(
    "-t", "--tpoint", default=0, show_default=True, type=click.IntRange(0), help="Time point."
)
_zplane = click.option(
    "-z", "--zplane", default=0, show_default=True, type=click.IntRange(0), help="Z plane."
)
_object_type = click.option(
    "-o", "--object-type", "object_type", required=True, help="Name of the object type."
)
_directory = click.option(
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=tempfile.gettempdir(),
    show_default=True,
    help="Where to write the files.",
)


def _site(f: F) -> F:
    for option in reversed((_plate, _well, _y, _x)):
        f = option(f)
    return f


def _group(name: str, help_text: str, experiment: bool = True, epilog: str = "") -> Callable:
    def decorate(f: F) -> click.Group:
        options = [_experiment] if experiment else []
        for option in options:
            f = option(f)
        f.__doc__ = help_text
        return main.group(name, context_settings=_CONTEXT, epilog=epilog)(
            verbosity_option(click.pass_context(_store_experiment(f)))
        )

    return decorate


def _store_experiment(f: F) -> F:
    @functools.wraps(f)
    def wrapper(ctx: click.Context, **kwargs: Any) -> Any:
        ctx.find_root().obj["experiment"] = kwargs.get("experiment")
        return f()

    return wrapper  # type: ignore[return-value]


# --- the program ------------------------------------------------------------------


@click.group(
    name=PROGRAM,
    cls=Program,
    context_settings=_CONTEXT,
    epilog=f"""\b
Connection:
  The password comes from -p/--password, else $TM_PASSWORD, else the
  file ~/.tm_pass (YAML lines 'user: password', mode 600), else a prompt.
\b
Example, from microscope files to feature values:
  export TM_HOST=tissuemaps.example.org TM_USER=alice
  tm_client experiment create -n screen1 --microscope-type cellvoyager
  tm_client plate -e screen1 create -n plate01
  tm_client acquisition -e screen1 create -p plate01 -n acq01
  tm_client microscope-file -e screen1 upload -p plate01 -a acq01 --parallel 4 /data/plate01
  tm_client workflow -e screen1 submit
  tm_client workflow -e screen1 status
  tm_client feature-values -e screen1 download -o Cells --directory results/
\b
Exit status: 0 on success; 2 for bad usage or a request the server refused
(4xx: bad input, no permission, not found); 1 for any other failure
(server error, no connection). Errors are one line on stderr; -vv adds the
traceback. The server's default port is {DEFAULT_PORT}; port 443 means HTTPS.""",
)
@click.option(
    "-H", "--host", envvar="TM_HOST", default="localhost", show_default=True,
    help="Server name or address [env: TM_HOST].",
)  # fmt: skip
@click.option(
    "-P", "--port", envvar="TM_PORT", default=DEFAULT_PORT, show_default=True,
    type=click.IntRange(1, 65535), help="Server port; 443 means HTTPS [env: TM_PORT].",
)  # fmt: skip
@click.option("-u", "--user", envvar="TM_USER", help="User name [env: TM_USER].")
@click.option(
    "-p", "--password", envvar="TM_PASSWORD", default=None,
    help="Password [env: TM_PASSWORD; else ~/.tm_pass; else asked for].",
)  # fmt: skip
@verbosity_option
@quiet_option
@click.pass_context
def main(ctx: click.Context, host: str, port: int, user: str | None, password: str | None) -> None:
    """Work with the experiments on a TissueMAPS server: create them, upload
    microscope files, run the workflow and download images, segmentations
    and feature values.

    Every command is 'tm_client [connection options] GROUP [-e EXPERIMENT]
    COMMAND [options]'; 'tm_client GROUP --help' lists a group's commands.
    """
    ctx.ensure_object(dict)
    ctx.obj.update(host=host, port=port, user=user, password=password)


# --- experiment ---------------------------------------------------------------------


@_group(
    "experiment",
    "Experiments you own or that are shared with you: list, create, rename,\ndelete, share.",
    experiment=False,
    epilog="\b\nExamples:\n  tm_client experiment ls\n"
    "  tm_client experiment create -n screen1 --plate-format 96\n"
    "  tm_client experiment share -n screen1 --user bob --write",
)
def experiment() -> None:
    pass


@command(experiment, "ls")
def experiment_ls() -> None:
    """List the experiments you can see."""
    rows = get_client(experiment=False).get_experiments()
    _echo_table(
        ["ID", "Name", "Owner", "Description"],
        ([e["id"], e["name"], e["user"], e.get("description", "")] for e in rows),
    )


@command(experiment, "create")
@_name(help="Name of the new experiment.")
@click.option("--workflow-type", default="canonical", show_default=True, help="Workflow type.")
@click.option(
    "--microscope-type", default="cellvoyager", show_default=True,
    help="Microscope that wrote the files (decides which uploaded files are accepted).",
)  # fmt: skip
@click.option(
    "--plate-format", default="384", show_default=True, type=click.Choice(["1", "96", "384"]),
    help="Wells per plate.",
)  # fmt: skip
@click.option(
    "--plate-acquisition-mode", default="basic", show_default=True,
    type=click.Choice(["basic", "multiplexing"]),
    help="'basic': acquisitions add time points; 'multiplexing': they add cycles.",
)  # fmt: skip
@_description
def experiment_create(
    name: str,
    workflow_type: str,
    microscope_type: str,
    plate_format: str,
    plate_acquisition_mode: str,
    description: str,
) -> None:
    """Create an experiment owned by you; prints its id."""
    client = get_client(experiment=False)
    client.experiment_name = name
    data = client.create_experiment(
        workflow_type, microscope_type, int(plate_format), plate_acquisition_mode, description
    )
    click.echo(data["id"])


@command(experiment, "rename")
@_name(help="Current name of the experiment.")
@_new_name
def experiment_rename(name: str, new_name: str) -> None:
    """Rename an experiment."""
    client = get_client(experiment=False)
    client.experiment_name = name
    client.rename_experiment(new_name)


@command(experiment, "rm")
@_name(help="Name of the experiment.")
def experiment_rm(name: str) -> None:
    """Delete an experiment with all its data and files (owner only; no undo)."""
    client = get_client(experiment=False)
    client.experiment_name = name
    client.delete_experiment()


@command(experiment, "share")
@_name(help="Name of the experiment.")
@click.option("--user", "other", required=True, help="The user to share with.")
@click.option("--write", is_flag=True, help="Allow changes too (default: read only).")
def experiment_share(name: str, other: str, write: bool) -> None:
    """Share an experiment with another user (owner only)."""
    client = get_client(experiment=False)
    client.experiment_name = name
    client.share_experiment(other, write_access=write)


@command(experiment, "shares")
@_name(help="Name of the experiment.")
def experiment_shares(name: str) -> None:
    """List who an experiment is shared with (owner only)."""
    client = get_client(experiment=False)
    client.experiment_name = name
    _echo_table(
        ["User", "Write access"],
        ([s["user"], "yes" if s["write_access"] else "no"] for s in client.get_shares()),
    )


@command(experiment, "unshare")
@_name(help="Name of the experiment.")
@click.option("--user", "other", required=True, help="The user who loses access.")
def experiment_unshare(name: str, other: str) -> None:
    """Withdraw a user's access to an experiment (owner only)."""
    client = get_client(experiment=False)
    client.experiment_name = name
    client.unshare_experiment(other)


# --- plate, well, site, acquisition ----------------------------------------------------------


@_group("plate", "Plates of an experiment: list, create, rename, delete.")
def plate() -> None:
    pass


@command(plate, "ls")
def plate_ls() -> None:
    """List the plates with their status."""
    rows = get_client().get_plates()
    _echo_table(
        ["ID", "Name", "Status", "Acquisitions", "Description"],
        (
            [p["id"], p["name"], p.get("status", ""), len(p.get("acquisitions") or []),
             p.get("description", "")]
            for p in rows
        ),
    )  # fmt: skip


@command(plate, "create")
@_name(help="Name of the new plate.")
@_description
def plate_create(name: str, description: str) -> None:
    """Create a plate; prints its id."""
    data = get_client().create_plate(name, description)
    click.echo(data.get("id", ""))


@command(plate, "rename")
@_name(help="Current name of the plate.")
@_new_name
def plate_rename(name: str, new_name: str) -> None:
    """Rename a plate."""
    get_client().rename_plate(name, new_name)


@command(plate, "rm")
@_name(help="Name of the plate.")
def plate_rm(name: str) -> None:
    """Delete a plate with its acquisitions and files."""
    get_client().delete_plate(name)


@_group("well", "Wells of an experiment (created by the workflow's metaconfig step).")
def well() -> None:
    pass


@command(well, "ls")
@click.option("-p", "--plate", "plate_name", default=None, help="Only wells of this plate.")
def well_ls(plate_name: str | None) -> None:
    """List the wells."""
    rows = get_client().get_wells(plate_name)
    _echo_table(
        ["ID", "Name", "Plate", "Dimensions", "Description"],
        (
            [w["id"], w["name"], w.get("plate_name", ""),
             "x".join(map(str, w.get("dimensions") or [])), w.get("description") or ""]
            for w in rows
        ),
    )  # fmt: skip


@_group("site", "Imaging sites of an experiment (created by the metaconfig step).")
def site() -> None:
    pass


@command(site, "ls")
@click.option("-p", "--plate", "plate_name", default=None, help="Only sites of this plate.")
@click.option("-w", "--well", "well_name", default=None, help="Only sites of this well.")
def site_ls(plate_name: str | None, well_name: str | None) -> None:
    """List the sites with their position in the well and their size."""
    rows = get_client().get_sites(plate_name, well_name)
    _echo_table(
        ["ID", "Plate", "Well", "Y", "X", "Height", "Width"],
        (
            [s["id"], s.get("plate_name", ""), s.get("well_name", ""), s["y"], s["x"],
             s.get("height", ""), s.get("width", "")]
            for s in rows
        ),
    )  # fmt: skip


@_group(
    "acquisition",
    "Acquisitions of a plate (one imaging run each): list, create, rename, delete.",
)
def acquisition() -> None:
    pass


@command(acquisition, "ls")
@click.option("-p", "--plate", "plate_name", default=None, help="Only acquisitions of this plate.")
def acquisition_ls(plate_name: str | None) -> None:
    """List the acquisitions with their upload status."""
    rows = get_client().get_acquisitions(plate_name)
    _echo_table(
        ["ID", "Name", "Plate", "Status", "Description"],
        (
            [a["id"], a["name"], a.get("plate_name", ""), a.get("status", ""),
             a.get("description", "")]
            for a in rows
        ),
    )  # fmt: skip


@command(acquisition, "create")
@_name(help="Name of the new acquisition.")
@_plate
@_description
def acquisition_create(name: str, plate_name: str, description: str) -> None:
    """Create an acquisition; prints its id."""
    data = get_client().create_acquisition(plate_name, name, description)
    click.echo(data.get("id", ""))


@command(acquisition, "rename")
@_name(help="Current name of the acquisition.")
@_plate
@_new_name
def acquisition_rename(name: str, plate_name: str, new_name: str) -> None:
    """Rename an acquisition."""
    get_client().rename_acquisition(plate_name, name, new_name)


@command(acquisition, "rm")
@_name(help="Name of the acquisition.")
@_plate
def acquisition_rm(name: str, plate_name: str) -> None:
    """Delete an acquisition with its microscope files."""
    get_client().delete_acquisition(plate_name, name)


# --- microscope files ---------------------------------------------------------------


@_group(
    "microscope-file",
    "Microscope files of an acquisition: list, upload (resumable), register\n"
    "a directory on the server.",
    epilog="\b\nUploads are resumable: run the same upload again after an interruption\n"
    "and only the files the server does not have yet are sent.\n"
    "\b\nExample:\n"
    "  tm_client microscope-file -e screen1 upload -p plate01 -a acq01 --parallel 4 DIR",
)
def microscope_file() -> None:
    pass


@command(microscope_file, "ls")
@_plate
@_acquisition
def microscope_file_ls(plate_name: str, acquisition_name: str) -> None:
    """List an acquisition's image and metadata files with their upload status."""
    rows = get_client().get_microscope_files(plate_name, acquisition_name)
    _echo_table(["ID", "Status", "Name"], ([f.get("id", ""), f["status"], f["name"]] for f in rows))


@command(microscope_file, "upload")
@_plate
@_acquisition
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--parallel", default=1, show_default=True, type=click.IntRange(1, 64),
    help="Files sent at the same time.",
)  # fmt: skip
@click.option(
    "--retries", default=5, show_default=True, type=click.IntRange(0),
    help="Rounds of retries for files that failed.",
)  # fmt: skip
@click.option("--no-retry", is_flag=True, help="Do not retry failed files (--retries 0).")
@click.option(
    "--convert", type=click.Choice(CONVERT_FORMATS), default=None,
    help="Convert image files to this format before sending (pixel values kept).",
)  # fmt: skip
@click.option("--delete", is_flag=True, help="Delete each local file once it is uploaded.")
@click.option(
    "--directory", default=None, hidden=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The original's spelling of PATH (the user guide's '--directory DIR').",
)  # fmt: skip
def microscope_file_upload(
    plate_name: str,
    acquisition_name: str,
    path: Path | None,
    parallel: int,
    retries: int,
    no_retry: bool,
    convert: str | None,
    delete: bool,
    directory: Path | None,
) -> None:
    """Upload the files of directory PATH (or the one file PATH).

    All names are registered first; only files the server does not have
    yet are sent. Prints the number of files sent. On a terminal a bar
    shows the files and bytes sent, the rate and the time left (-q: none).
    """
    if path is not None and directory is not None and path != directory:
        raise InputError("give the directory once: PATH or --directory DIR")
    path = path or directory
    if path is None:
        raise InputError("missing the directory to upload: give PATH (or --directory DIR)")
    sent = get_client().upload_microscope_files(
        plate_name,
        acquisition_name,
        path,
        parallel=parallel,
        retry=0 if no_retry else retries,
        convert=convert,
        delete_after_upload=delete,
        progress=True,
    )
    click.echo(f"{len(sent)} files uploaded")


@command(microscope_file, "register")
@_plate
@_acquisition
@click.argument("directory")
def microscope_file_register(plate_name: str, acquisition_name: str, directory: str) -> None:
    """Use DIRECTORY on the server's file system as the acquisition's files (no copy)."""
    get_client().register_microscope_files(plate_name, acquisition_name, directory)


# --- channels, object types, objects --------------------------------------------------------


@_group("channel", "Channels of an experiment (created by the metaconfig step).")
def channel() -> None:
    pass


@command(channel, "ls")
def channel_ls() -> None:
    """List the channels."""
    rows = get_client().get_channels()
    _echo_table(
        ["ID", "Name", "Bit depth", "Layers"],
        ([c["id"], c["name"], c.get("bit_depth", ""), len(c.get("layers") or [])] for c in rows),
    )


@command(channel, "rename")
@_name(help="Current name of the channel.")
@_new_name
def channel_rename(name: str, new_name: str) -> None:
    """Rename a channel."""
    get_client().rename_channel(name, new_name)


@_group("object-type", "Object types (Cells, Nuclei, ...): list, create, rename, delete.")
def object_type() -> None:
    pass


@command(object_type, "ls")
def object_type_ls() -> None:
    """List the object types with their number of features."""
    rows = get_client().get_mapobject_types()
    _echo_table(
        ["ID", "Name", "Features"],
        ([t["id"], t["name"], len(t.get("features") or [])] for t in rows),
    )


@command(object_type, "create")
@_name(help="Name of the new object type.")
def object_type_create(name: str) -> None:
    """Create an object type (for segmentations you upload); prints its id."""
    data = get_client().create_mapobject_type(name)
    click.echo(data.get("id", "") if isinstance(data, dict) else "")


@command(object_type, "rename")
@_name(help="Current name of the object type.")
@_new_name
def object_type_rename(name: str, new_name: str) -> None:
    """Rename an object type."""
    get_client().rename_mapobject_type(name, new_name)


@command(object_type, "rm")
@_name(help="Name of the object type.")
def object_type_rm(name: str) -> None:
    """Delete an object type with its objects and feature values."""
    get_client().delete_mapobject_type(name)


@_group("mapobject", "Single objects: where they are, and crops around them.")
def mapobject() -> None:
    pass


_INFO_KEYS = ("id", "type", "plate_name", "well_name", "well_pos_y", "well_pos_x", "tpoint",
              "zplane", "label")  # fmt: skip


@command(mapobject, "info")
@click.argument("ids", nargs=-1, required=True, type=click.IntRange(0))
def mapobject_info(ids: tuple[int, ...]) -> None:
    """Show the site and label of the objects IDS."""
    client = get_client()
    rows = [client.get_mapobject(i) for i in ids]
    _echo_table(
        ["ID", "Type", "Plate", "Well", "Y", "X", "Tpoint", "Zplane", "Label"],
        ([r.get(k, "") for k in _INFO_KEYS] for r in rows),
    )


@command(mapobject, "exhibit")
@click.argument("ids", nargs=-1, required=True, type=click.IntRange(0))
@click.option(
    "--object-types", multiple=True,
    help="Object types whose outlines are drawn (repeatable; default: the object's own).",
)  # fmt: skip
@click.option("--channels", multiple=True, required=True, help="Channels to show (repeatable).")
@click.option("--save/--no-save", default=True, show_default=True, help="Write PNG files.")
@click.option("--show/--no-show", default=False, show_default=True, help="Open a window.")
@click.option("--margin", default=0, show_default=True, type=click.IntRange(0),
              help="Pixels around the object.")  # fmt: skip
@click.option(
    "--file-name-format", default="{mapobject_id}_{channel_name}.png", show_default=True,
    help="Names of the written files.",
)  # fmt: skip
@click.option("--columns", default=1, show_default=True, type=click.IntRange(1),
              help="Images per row in the window.")  # fmt: skip
@_directory
def mapobject_exhibit(
    ids: tuple[int, ...],
    object_types: tuple[str, ...],
    channels: tuple[str, ...],
    save: bool,
    show: bool,
    margin: int,
    file_name_format: str,
    columns: int,
    directory: Path,
) -> None:
    """Crop each channel around the objects IDS and draw object outlines."""
    import cv2

    client = get_client()
    crops = []
    for mapobject_id in ids:
        images = client.exhibit_mapobject(mapobject_id, channels, object_types or None, margin)
        for channel_name, rgb in images.items():
            crops.append((f"{mapobject_id} {channel_name}", rgb))
            if save:
                try:
                    name = file_name_format.format(
                        mapobject_id=mapobject_id, channel_name=channel_name
                    )
                except (KeyError, IndexError, ValueError) as err:
                    raise InputError(f"--file-name-format: {err}") from err
                directory.mkdir(parents=True, exist_ok=True)
                target = directory / Path(name).name
                cv2.imwrite(str(target), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                click.echo(target)
    if show:
        try:
            import matplotlib.pyplot as plt
        except ImportError as err:
            raise InputError("--show needs matplotlib; use --save") from err
        rows = -(-len(crops) // columns)
        fig, axes = plt.subplots(rows, columns, squeeze=False)
        for ax, (title, rgb) in zip(axes.flat, crops, strict=False):
            ax.imshow(rgb)
            ax.set_title(title)
            ax.axis("off")
        plt.show()


# --- features ----------------------------------------------------------------------


@_group("feature", "Features of an object type: list, rename, delete.")
def feature() -> None:
    pass


@command(feature, "ls")
@_object_type
def feature_ls(object_type: str) -> None:
    """List the features of an object type."""
    rows = get_client().get_features(object_type)
    _echo_table(["ID", "Name"], ([f["id"], f["name"]] for f in rows))


@command(feature, "rename")
@_name(help="Current name of the feature.")
@_object_type
@_new_name
def feature_rename(name: str, object_type: str, new_name: str) -> None:
    """Rename a feature."""
    get_client().rename_feature(object_type, name, new_name)


@command(feature, "rm")
@_name(help="Name of the feature.")
@_object_type
def feature_rm(name: str, object_type: str) -> None:
    """Delete a feature with its values."""
    get_client().delete_feature(object_type, name)


@_group(
    "feature-values",
    "Feature values of objects: download (two CSV files per well: values and\n"
    "metadata), upload your own from a CSV file.",
)
def feature_values() -> None:
    pass


@command(feature_values, "download")
@_object_type
@_directory
@click.option("--parallel", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Downloads at the same time.")  # fmt: skip
def feature_values_download(object_type: str, directory: Path, parallel: int) -> None:
    """Write <..>_feature-values.csv and <..>_metadata.csv per well; prints the paths.

    On a terminal a bar shows the files done, the bytes, the rate and the time left.
    """
    paths = get_client().download_feature_values_and_metadata_files(
        object_type, directory, parallel, progress=True
    )
    for path in paths:
        click.echo(path)


@command(feature_values, "upload")
@_object_type
@_site
@_tpoint
@click.option(
    "--filename", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV file: one row per object, one column per feature.",
)  # fmt: skip
@click.option(
    "--index-col", default="0", show_default=True,
    help="Column with the object labels: a name or a 0-based position.",
)  # fmt: skip
def feature_values_upload(
    object_type: str,
    plate_name: str,
    well_name: str,
    well_pos_y: int,
    well_pos_x: int,
    tpoint: int,
    filename: Path,
    index_col: str,
) -> None:
    """Upload the feature values of one site's objects (features are created as needed)."""
    column: str | int = int(index_col) if index_col.isdigit() else index_col
    get_client().upload_feature_value_file(
        object_type, plate_name, well_name, well_pos_y, well_pos_x, tpoint, filename, column
    )


# --- segmentations and images --------------------------------------------------------------


@_group("segmentation", "Label images of objects: upload your own, download them.")
def segmentation() -> None:
    pass


@command(segmentation, "upload")
@_site
@_tpoint
@_zplane
@_object_type
@click.option(
    "--filename", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Label image: PNG/TIFF, .npy, or .npz with an array 'segmentation'.",
)  # fmt: skip
def segmentation_upload(
    plate_name: str,
    well_name: str,
    well_pos_y: int,
    well_pos_x: int,
    tpoint: int,
    zplane: int,
    object_type: str,
    filename: Path,
) -> None:
    """Upload the label image of one site (0 = background, one label per object)."""
    get_client().upload_segmentation_image_file(
        object_type, plate_name, well_name, well_pos_y, well_pos_x, tpoint, zplane, filename
    )


@command(segmentation, "download")
@_site
@_tpoint
@_zplane
@_object_type
@_directory
@click.option("--align", is_flag=True, help="Aligned between cycles (multiplexing).")
def segmentation_download(
    plate_name: str,
    well_name: str,
    well_pos_y: int,
    well_pos_x: int,
    tpoint: int,
    zplane: int,
    object_type: str,
    directory: Path,
    align: bool,
) -> None:
    """Save the label image of one site as a PNG; prints its path."""
    path = get_client().download_segmentation_image_file(
        object_type, plate_name, well_name, well_pos_y, well_pos_x, tpoint, zplane, align,
        directory, progress=True,
    )  # fmt: skip
    click.echo(path)


@_group("channel-image", "Pixels of one site's channel image, at the original bit depth.")
def channel_image() -> None:
    pass


@command(channel_image, "download")
@_site
@_tpoint
@_zplane
@click.option("-c", "--channel", "channel_name", required=True, help="Name of the channel.")
@click.option("-i", "--cycle-index", default=0, show_default=True, type=click.IntRange(0),
              help="Cycle (multiplexing).")  # fmt: skip
@click.option("--correct", is_flag=True, help="Correct for illumination (corilla statistics).")
@click.option("--align", is_flag=True, help="Align between cycles (multiplexing).")
@_directory
def channel_image_download(
    plate_name: str,
    well_name: str,
    well_pos_y: int,
    well_pos_x: int,
    tpoint: int,
    zplane: int,
    channel_name: str,
    cycle_index: int,
    correct: bool,
    align: bool,
    directory: Path,
) -> None:
    """Save one site's channel image as a PNG; prints its path."""
    path = get_client().download_channel_image_file(
        channel_name, plate_name, well_name, well_pos_y, well_pos_x, cycle_index, tpoint,
        zplane, correct, align, directory, progress=True,
    )  # fmt: skip
    click.echo(path)


# --- workflow and jterator project --------------------------------------------------------------


@_group(
    "workflow",
    "The processing workflow: its description, submission, status, logs.",
    epilog="\b\nExample, changing a step's arguments:\n"
    "  tm_client workflow -e screen1 download --file wf.yaml\n"
    "  $EDITOR wf.yaml\n"
    "  tm_client workflow -e screen1 upload --file wf.yaml\n"
    "  tm_client workflow -e screen1 submit\n"
    "  tm_client workflow -e screen1 status",
)
def workflow() -> None:
    pass


@command(workflow, "download")
@click.option("--file", "filename", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="YAML file to write.")  # fmt: skip
def workflow_download(filename: Path) -> None:
    """Save the workflow description as YAML."""
    get_client().download_workflow_description_file(filename)


@command(workflow, "upload")
@click.option(
    "--file", "filename", required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML file (.yaml or .yml) to read.",
)  # fmt: skip
def workflow_upload(filename: Path) -> None:
    """Replace the workflow description with a YAML file."""
    get_client().upload_workflow_description_file(filename)


@command(workflow, "submit")
def workflow_submit() -> None:
    """Submit the workflow; prints the submission id. Follow it with 'status'."""
    click.echo(get_client().submit_workflow())


@command(workflow, "resubmit")
@click.option("-s", "--stage", default=None, help="Stage to start from (default: the first).")
def workflow_resubmit(stage: str | None) -> None:
    """Run the workflow again from a stage; prints the submission id."""
    click.echo(get_client().resubmit_workflow(stage))


@command(workflow, "kill")
def workflow_kill() -> None:
    """Stop the running workflow."""
    get_client().kill_workflow()


def _clock(seconds: Any) -> str:
    if seconds is None:
        return ""
    seconds = int(round(float(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _stamp(value: Any) -> str:
    return "" if not value else str(value).replace("T", " ")[:19]


def status_rows(tree: dict, depth: int) -> list[list[Any]]:
    """Table rows of a workflow status tree, names indented by level."""
    rows: list[list[Any]] = []

    def walk(node: dict, level: int) -> None:
        done = node.get("state") == "TERMINATED"
        memory = node.get("memory")
        rows.append(
            [
                node.get("id", ""),
                "  " * level + str(node.get("name", "")),
                node.get("type", ""),
                _stamp(node.get("created_at")),
                _stamp(node.get("updated_at")) if done else "",
                node.get("state", ""),
                f"{float(node.get('percent_done') or 0):.1f}",
                "" if node.get("exitcode") is None else node["exitcode"],
                _clock(node.get("time")),
                _clock(node.get("cpu_time")),
                "" if memory is None else f"{float(memory):.0f}",
            ]
        )
        if level < depth:
            for child in node.get("subtasks") or []:
                walk(child, level + 1)

    walk(tree, 0)
    return rows


STATUS_HEADERS = ["ID", "Name", "Type", "Created", "Finished", "State", "Done (%)", "Exitcode",
                  "Wall Time", "CPU Time", "Memory (MB)"]  # fmt: skip


@command(workflow, "status")
@click.option("--depth", default=2, show_default=True, type=click.IntRange(0),
              help="Levels shown: 1 stages, 2 steps, 3 phases, 4 jobs.")  # fmt: skip
def workflow_status(depth: int) -> None:
    """Show the status of the last submission, one row per stage and step."""
    tree = get_client().get_workflow_status(depth)
    if not tree:
        raise TmClientError(404, "the workflow was never submitted")
    _echo_table(STATUS_HEADERS, status_rows(tree, depth))


@command(workflow, "log")
@click.option("-s", "--step", required=True, help="Name of the step, e.g. jterator.")
@click.option("-n", "--name", "job_name", required=True, help="Name of the job.")
def workflow_log(step: str, job_name: str) -> None:
    """Print a job's standard output and standard error."""
    _echo_log(get_client().get_workflow_job_log(step, job_name))


@_group(
    "jtproject",
    "The jterator project: pipeline.yaml and handles/<module>.handles.yaml.",
)
def jtproject() -> None:
    pass


@command(jtproject, "download")
@_directory
def jtproject_download(directory: Path) -> None:
    """Write the project files to a directory; prints their paths."""
    for path in get_client().download_jterator_project_files(directory):
        click.echo(path)


@command(jtproject, "upload")
@_directory
def jtproject_upload(directory: Path) -> None:
    """Replace the project with the files of a directory."""
    get_client().upload_jterator_project_files(directory)


# --- tools ---------------------------------------------------------------------------


@_group("tools", "Analysis tools (classification, clustering, heatmap): results and jobs.")
def tools() -> None:
    pass


@command(tools, "ls")
def tools_ls() -> None:
    """List the results of tool runs."""
    rows = get_client().get_tool_results()
    _echo_table(
        ["ID", "Name", "Tool", "Type", "Submission"],
        (
            [r["id"], r.get("name", ""), r.get("tool_name", ""), r.get("type", ""),
             r.get("submission_id", "")]
            for r in rows
        ),
    )  # fmt: skip


@command(tools, "status")
@click.option("--tool", "tool_name", default=None, help="Only jobs of this tool.")
def tools_status(tool_name: str | None) -> None:
    """List the tool jobs and their state."""
    rows = get_client().get_tools_status(tool_name)
    _echo_table(
        ["ID", "Name", "Submission", "State", "Exitcode", "Created", "Wall Time"],
        (
            [j.get("id", ""), j.get("name", ""), j.get("submission_id", ""), j.get("state", ""),
             "" if j.get("exitcode") is None else j["exitcode"], _stamp(j.get("created_at")),
             _clock(j.get("time"))]
            for j in rows
        ),
    )  # fmt: skip


@command(tools, "log")
@click.option("--name", "tool_name", required=True, help="Name of the tool.")
@click.option("--submission", "submission_id", required=True, type=click.IntRange(0),
              help="Submission id of the run.")  # fmt: skip
def tools_log(tool_name: str, submission_id: int) -> None:
    """Print a tool job's standard output and standard error."""
    _echo_log(get_client().get_tool_job_log(tool_name, submission_id))
