"""Exports of an experiment run as background jobs (what ``POST .../exports`` starts).

An export is one submission (program ``export``) of one job that runs
``tm_export EXPERIMENT ome-zarr OUT`` (:mod:`tmlib.cli.export`) in the
background, as analysis tools do (:func:`tmlib.tools.submit_request`). It
belongs to the user who submitted it: every function here that takes a
`user_id` sees only that user's exports, and an export of another user is
reported missing (:class:`~tmlib.errors.NotFoundError`), never refused, so
that nobody learns what others export.

Layout under the experiment's directory::

    exports/<token>/                  OUT of the export: one <plate>.zarr per plate
    exports/log/export_<token>.*      the job's output, exit record and request

The token is random (the submission id does not exist when the job is
built); the export's id is its submission id. Deleting an export stops its
processes and removes its directory, logs and records; deleting the
experiment stops every submission and removes the experiment's directory,
exports included.

Examples
--------
>>> export = submit_export(experiment_id, user_id, objects=["Nuclei"], features=True)
>>> get_export(experiment_id, int(export["id"]), user_id)["state"]
'RUNNING'
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tmlib.errors import InvalidInputError, NotFoundError
from tmlib.lazy import lazy_import

sa = lazy_import("sqlalchemy")
tm = lazy_import("tmlib.models")

logger = logging.getLogger(__name__)

__all__ = [
    "EXPORT_WALLTIME",
    "FORMATS",
    "PROGRAM",
    "delete_export",
    "delete_user_exports",
    "export_command",
    "export_log",
    "exports_location",
    "get_export",
    "list_exports",
    "submit_export",
    "validate_export",
]

#: ``submissions.program`` of exports
PROGRAM = "export"
#: formats an export can be written in
FORMATS = ("ome-zarr",)
#: wall-clock limit of an export job (a whole screen is written by one job)
EXPORT_WALLTIME = 48 * 3600
#: name of the job of an export: ``export_<token>``
_JOB_NAME = re.compile(r"export_([0-9a-f]{24})")


def exports_location(experiment_id: int) -> Path:
    """``<experiment>/exports``: the exports' directories and their logs (``log/``).

    Raises
    ------
    NotFoundError
        When the experiment does not exist.
    """
    return tm.utils.experiment_location(experiment_id) / "exports"


def _output_path(location: Path, token: str) -> Path:
    return location / token


def _log_dir(location: Path) -> Path:
    return location / "log"


def _request_path(location: Path, token: str) -> Path:
    return _log_dir(location) / f"export_{token}.json"


# ------------------------------------------------------------------ requests


def _check_flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name} must be true or false, got {value!r}")
    return value


def _check_request(
    format: str,
    version: str,
    objects: Sequence[str],
    features: bool,
    levels: int | None,
    correct: bool,
    align: bool,
) -> dict[str, Any]:
    """The request as stored and the job's options; checks what needs no database."""
    from tmlib.omezarr import layout

    if format not in FORMATS:
        raise InvalidInputError(f"unknown export format {format!r}; formats: {', '.join(FORMATS)}")
    if not isinstance(version, str):
        raise InvalidInputError(f"version must be a string, got {version!r}")
    version = layout.check_version(version)
    if isinstance(objects, str) or not all(isinstance(name, str) for name in objects):
        raise InvalidInputError("objects must be a list of object type names")
    if levels is not None:
        if isinstance(levels, bool) or not isinstance(levels, int):
            raise InvalidInputError(f"levels must be an integer, got {levels!r}")
        layout.level_count(1, 1, levels)  # in range
    return {
        "format": format,
        "version": version,
        "objects": list(dict.fromkeys(objects)),
        "features": _check_flag("features", features),
        "levels": levels,
        "correct": _check_flag("correct", correct),
        "align": _check_flag("align", align),
    }


def validate_export(
    experiment_id: int,
    format: str = "ome-zarr",
    version: str = "0.5",
    objects: Sequence[str] = (),
    features: bool = False,
    levels: int | None = None,
    correct: bool = False,
    align: bool = False,
) -> dict[str, Any]:
    """Check an export request as the export will; return the normalised request.

    The options are checked by the exporter's own planning, which reads the
    experiment but writes nothing: the experiment must have extracted images
    and plates with sites, every object type must be segmented in its sites,
    and `correct` needs corilla's statistics of every channel.

    Parameters
    ----------
    experiment_id : int
    format : str
        One of :data:`FORMATS`.
    version : str
        NGFF version, ``"0.5"`` or ``"0.4"``.
    objects : sequence of str
        Object types written as label images.
    features : bool
        Also write the objects' features as tables.
    levels : int, optional
        Pyramid levels (1 to :data:`tmlib.omezarr.layout.MAX_LEVELS`); None: down to
        512 pixels.
    correct, align : bool
        Correct illumination, align cycles.

    Returns
    -------
    dict
        ``{format, version, objects, features, levels, correct, align}``.

    Raises
    ------
    InvalidInputError
        For a request the export cannot run (the message says why).
    NotFoundError
        When the experiment does not exist.
    """
    from tmlib.omezarr import export

    request = _check_request(format, version, objects, features, levels, correct, align)
    # where no plate exists: planning checks that plates would not be overwritten
    out = exports_location(experiment_id) / f".check-{secrets.token_hex(8)}"
    export.validate(experiment_id, out, _options(request))
    return request


def _options(request: dict[str, Any]) -> Any:
    from tmlib.omezarr.export import ExportOptions

    return ExportOptions(
        version=request["version"],
        objects=tuple(request["objects"]),
        features=request["features"],
        levels=request["levels"],
        correct=request["correct"],
        align=request["align"],
    )


def export_command(experiment_id: int, out: Path, request: dict[str, Any]) -> list[str]:
    """The command line of an export job (``tm_export``, run through this interpreter).

    Object type names are passed as ``--objects=NAME``, so that a name that
    looks like an option stays a name.
    """
    command = [
        sys.executable,
        "-m",
        "tmlib.cli.export",
        "-q",
        str(int(experiment_id)),
        "ome-zarr",
        str(out),
        "--version",
        request["version"],
    ]
    command += [f"--objects={name}" for name in request["objects"]]
    if request["features"]:
        command.append("--features")
    if request["levels"] is not None:
        command += ["--levels", str(int(request["levels"]))]
    if request["correct"]:
        command.append("--correct")
    if request["align"]:
        command.append("--align")
    return command


def _job_tree(experiment_id: int, location: Path, token: str, request: dict[str, Any]) -> Any:
    from tmlib.workflow.jobs.engine import TaskSpec
    from tmlib.workflow.jobs.job import JobSpec, Resources

    name = f"export_{token}"
    job = JobSpec(
        name=name,
        command=export_command(experiment_id, _output_path(location, token), request),
        resources=Resources(cores=1, walltime=EXPORT_WALLTIME),
        log_dir=_log_dir(location),
    )
    return TaskSpec(name, "ExportJob", job=job)


def submit_export(
    experiment_id: int,
    user_id: int,
    format: str = "ome-zarr",
    version: str = "0.5",
    objects: Sequence[str] = (),
    features: bool = False,
    levels: int | None = None,
    correct: bool = False,
    align: bool = False,
) -> dict[str, Any]:
    """Validate an export request and start its job in the background.

    The arguments are those of :func:`validate_export`; nothing is submitted
    when they are bad. The job writes into ``<experiment>/exports/<token>/``
    (see the module docstring), which it creates. The export belongs to
    `user_id`. Up to the quotas of the user and the experiment
    (``TMAPS_MAX_SUBMISSIONS_PER_USER``, ``..._PER_EXPERIMENT``) exports and
    other background submissions run at once.

    Returns
    -------
    dict
        The export, as :func:`get_export` describes it.

    Raises
    ------
    InvalidInputError
        For a bad request.
    NotFoundError
        When the experiment does not exist.
    QuotaExceededError
        When the user or the experiment runs as many submissions as allowed.
    """
    from tmlib.workflow import manager

    request = validate_export(
        experiment_id, format, version, objects, features, levels, correct, align
    )
    location = exports_location(experiment_id)
    token = secrets.token_hex(12)
    stored = _request_path(location, token)
    stored.parent.mkdir(parents=True, exist_ok=True)
    tmp = stored.with_name(f".{stored.name}.tmp")
    tmp.write_text(json.dumps(request, indent=1))
    os.replace(tmp, stored)
    try:
        submission_id = manager.start_detached(
            experiment_id,
            PROGRAM,
            _job_tree(experiment_id, location, token, request),
            exclusive=False,
            user_id=user_id,
        )
    except BaseException:
        stored.unlink(missing_ok=True)
        raise
    return get_export(experiment_id, submission_id, user_id)


# ------------------------------------------------------------------- reports


def _exports_query(experiment_id: int, user_id: int | None) -> Any:
    query = (
        sa.select(tm.Submission, tm.Task)
        .join(tm.Task, tm.Task.submission_id == tm.Submission.id)
        .where(
            tm.Submission.experiment_id == experiment_id,
            tm.Submission.program == PROGRAM,
            tm.Task.is_collection.is_(False),
        )
        .order_by(tm.Submission.id.desc())
    )
    if user_id is not None:
        query = query.where(tm.Submission.user_id == user_id)
    return query


def _plates(path: Path) -> list[str]:
    """The plates in an export's directory (not the hidden ones being written)."""
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError:
        return []
    return [
        str(path / e.name)
        for e in entries
        if e.name.endswith(".zarr") and not e.name.startswith(".") and e.is_dir()
    ]


def _describe(location: Path, submission: Any, task: Any) -> dict[str, Any]:
    match = _JOB_NAME.fullmatch(task.name)
    token = match.group(1) if match else None
    path = _output_path(location, token) if token else None
    request: dict[str, Any] = {}
    if token is not None:
        with contextlib.suppress(OSError, ValueError):
            request = json.loads(_request_path(location, token).read_text())
    done = task.state == "TERMINATED"
    failed = done and task.exitcode != 0
    return {
        "id": submission.id,
        "submission_id": submission.id,
        "job_id": task.id,
        "user_id": submission.user_id,
        "state": task.state,
        "failed": failed,
        "exitcode": task.exitcode,
        "path": str(path) if path is not None else None,
        "plates": _plates(path) if done and not failed and path is not None else [],
        "request": request,
        "time": task.time,
        "created_at": submission.created_at.isoformat() if submission.created_at else None,
        "updated_at": task.updated_at.isoformat() if task.updated_at else None,
    }


def list_exports(experiment_id: int, user_id: int | None) -> list[dict[str, Any]]:
    """The exports of an experiment that `user_id` submitted, newest first.

    Parameters
    ----------
    experiment_id : int
    user_id : int or None
        Whose exports; None: everybody's (for administrators only).

    Returns
    -------
    list of dict
        ``{id, submission_id, job_id, user_id, state, failed, exitcode, path,
        plates, request, time, created_at, updated_at}`` each: `state` is the
        job's (``NEW``, ``SUBMITTED``, ``RUNNING``, ``TERMINATED``), `path` the
        export's directory on the server and `plates` the ``<plate>.zarr``
        directories in it once the job succeeded (else empty).

    Raises
    ------
    NotFoundError
        When the experiment does not exist.
    """
    location = exports_location(experiment_id)
    with tm.utils.MainSession() as session:
        rows = session.execute(_exports_query(experiment_id, user_id)).all()
        return [_describe(location, submission, task) for submission, task in rows]


def get_export(experiment_id: int, export_id: int, user_id: int | None) -> dict[str, Any]:
    """An export of `user_id` (None: of anyone), as :func:`list_exports` describes it.

    Raises
    ------
    NotFoundError
        When the experiment has no export `export_id` of that user (an
        export of another user is reported in the same words).
    """
    location = exports_location(experiment_id)
    query = _exports_query(experiment_id, user_id).where(tm.Submission.id == export_id)
    with tm.utils.MainSession() as session:
        row = session.execute(query).first()
        if row is None:
            raise NotFoundError(f"experiment {experiment_id} has no export {export_id}")
        return _describe(location, *row)


def export_log(experiment_id: int, export_id: int, user_id: int | None) -> dict[str, str]:
    """``{stdout, stderr}`` of an export's job (their last MiB each).

    Raises
    ------
    NotFoundError
        As :func:`get_export`.
    """
    from tmlib.workflow import manager

    export = get_export(experiment_id, export_id, user_id)
    return manager.job_log(experiment_id, export["job_id"])


def delete_export(experiment_id: int, export_id: int, user_id: int | None) -> None:
    """Stop an export if it runs and remove its directory, its logs and its records.

    Returns once the job's processes have ended (SIGKILL after
    :data:`tmlib.workflow.manager.STOP_TIMEOUT` seconds), so that nothing
    writes into the directory after it is gone.

    Raises
    ------
    NotFoundError
        As :func:`get_export`.
    RuntimeError
        When the job's processes survive SIGKILL (nothing is removed then).
    """
    from tmlib.workflow import manager

    export = get_export(experiment_id, export_id, user_id)
    manager.stop_submissions([export_id], what=f"export {export_id}")
    location = tm.utils.experiment_location(experiment_id)
    with tm.utils.MainSession() as session:
        session.execute(sa.delete(tm.Task).where(tm.Task.submission_id == export_id))
        session.execute(sa.delete(tm.Submission).where(tm.Submission.id == export_id))
    manager.engine_log_path(location, PROGRAM, export_id).unlink(missing_ok=True)
    if export["path"] is None:
        return
    path = Path(export["path"])
    for suffix in (".out", ".err", ".exit", ".pid", ".json"):
        (_log_dir(path.parent) / f"export_{path.name}{suffix}").unlink(missing_ok=True)
    for _ in range(3):  # as registry.delete_experiment: again if something wrote meanwhile
        if not os.path.lexists(path):
            break
        shutil.rmtree(path, ignore_errors=True)
    logger.info("deleted export %d of experiment %d", export_id, experiment_id)


def delete_user_exports(experiment_id: int, user_id: int) -> int:
    """Stop and remove every export of the experiment that `user_id` submitted.

    What withdrawing a user's access does to the exports nobody can reach
    any more (:func:`tmlib.registry.unshare_experiment`).

    Returns
    -------
    int
        How many exports were removed.
    """
    found = list_exports(experiment_id, user_id)
    for export in found:
        delete_export(experiment_id, int(export["id"]), user_id)
    return len(found)
