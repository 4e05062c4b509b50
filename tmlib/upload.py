"""Uploading microscope files into an acquisition: the resumable protocol.

The protocol (what the client and the browser do):

1. :func:`check_validity` tells which names the experiment's microscope type
   accepts (image or metadata file);
2. :func:`register_uploads` creates a ``WAITING`` row for every new name and
   answers the names that still need uploading;
3. :func:`upload_file` stores one file: it streams the bytes to a temporary
   name next to the target and renames it into place, so an interrupted
   upload leaves no partial file and the row goes to ``FAILED``; a file
   already ``COMPLETE`` is not written again;
4. the acquisition (and its plate) is ``COMPLETE`` when all its files are
   (:func:`acquisition_statuses`, :func:`plate_status`).

Running the whole protocol again after an interruption transfers only the
missing files and never adds a row twice. Instead of uploading, a directory on
the server can be registered in place (:func:`register_directory`), but only
below the directories the administrator allows (``TMAPS_REGISTER_ROOTS``) and
never in the storage of experiments.

Every name is checked by :func:`check_filename` before anything is written:
names are plain file names, never paths.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa
from sqlalchemy.orm import Session

import tmlib.models as tm
from tmlib import registry
from tmlib.config import load_settings
from tmlib.errors import InvalidInputError, NotFoundError
from tmlib.microscopes import MicroscopeType, get_microscope_type

#: longest accepted file name in UTF-8 bytes: what the file system stores (NAME_MAX)
MAX_NAME_BYTES = registry.MAX_NAME_BYTES
#: bytes copied per read while storing an upload
CHUNK_SIZE = 1 << 20
#: rows inserted per statement when registering many names
_INSERT_BATCH = 5000

_FILE_MODELS = (tm.MicroscopeImageFile, tm.MicroscopeMetadataFile)


class RegistrationRefusedError(InvalidInputError):
    """A directory that may not be registered over HTTP (403).

    The message never names the path nor says whether it exists: a caller must
    not learn about the server's file system from it.
    """

    http_status = 403


#: why registration over HTTP is off until the administrator allows directories
REGISTRATION_DISABLED = (
    "registering directories of the server is disabled; the administrator can allow "
    "directories with the setting TMAPS_REGISTER_ROOTS (directories separated by ':'), "
    "or register files with 'tm_add files' on the server"
)
#: one answer for every refused path (missing, outside the roots, in experiment storage ...)
NOT_ALLOWED = (
    "not an allowed directory: register a directory below the registration roots the "
    "administrator configured (TMAPS_REGISTER_ROOTS), outside the storage of experiments"
)
#: one answer for an allowed directory without usable files (no path, no count)
NO_MATCHING_FILES = (
    "no matching files: the directory holds no image file of the experiment's microscope "
    "type whose name can be stored"
)


def check_filename(name: object) -> str:
    """Check that `name` is a plain file name that is safe to store under.

    Parameters
    ----------
    name : object
        What the client sent as a file name.

    Returns
    -------
    str
        `name` unchanged.

    Raises
    ------
    InvalidInputError
        When `name` is no string, empty, not valid UTF-8, longer than
        :data:`MAX_NAME_BYTES` bytes in UTF-8, holds a path separator, a NUL
        or another control character, is ``.`` or ``..``, or starts with ``.``
        (hidden and temporary files).
    """
    if not isinstance(name, str):
        raise InvalidInputError(f"file name must be a string, got {type(name).__name__}")
    if not name:
        raise InvalidInputError("file name must not be empty")
    shown = repr(name[:60] + ("..." if len(name) > 60 else ""))
    registry.check_name_length(name, shown)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidInputError(f"file name {shown} contains a NUL or control character")
    if "/" in name or "\\" in name:
        raise InvalidInputError(f"file name {shown} must be a plain name, not a path")
    if name.startswith("."):
        # also excludes "." and "..", and our own ".upload-<uuid>.part" temporaries
        raise InvalidInputError(f"file name {shown} must not start with '.'")
    return name


def check_filenames(names: Iterable[object]) -> list[str]:
    """:func:`check_filename` of every name; raises for the first bad one."""
    return [check_filename(name) for name in names]


def _acquisition(session: Session, acquisition_id: int) -> tm.Acquisition:
    acquisition = session.get(tm.Acquisition, acquisition_id)
    if acquisition is None:
        raise NotFoundError(f"acquisition {acquisition_id} does not exist")
    return acquisition


def _microscope(session: Session) -> MicroscopeType:
    experiment = session.scalar(sa.select(tm.Experiment))
    if experiment is None:
        raise NotFoundError("the experiment's tables hold no experiment row")
    return get_microscope_type(experiment.microscope_type)


def _model_for(microscope: MicroscopeType, name: str) -> type | None:
    """The table a file of that name belongs in (image or metadata), None if neither."""
    if microscope.is_image(name):
        return tm.MicroscopeImageFile
    if microscope.is_metadata(name):
        return tm.MicroscopeMetadataFile
    return None


def check_validity(experiment_id: int, acquisition_id: int, names: Sequence[object]) -> list[bool]:
    """Which names the experiment's microscope type accepts as image or metadata files.

    Parameters
    ----------
    experiment_id, acquisition_id : int
        The acquisition the files are meant for.
    names : sequence of str
        File names (no directories).

    Returns
    -------
    list of bool
        One per name, in order.

    Raises
    ------
    InvalidInputError
        When a name is not a plain file name (:func:`check_filename`).
    NotFoundError
        When the acquisition does not exist.
    """
    reasons = refusals(experiment_id, acquisition_id, names, strict=True)
    return [reason is None for reason in reasons]


def refusals(
    experiment_id: int, acquisition_id: int, names: Sequence[object], strict: bool = False
) -> list[str | None]:
    """Why each name would be refused (None: accepted), in order.

    A name that is not a plain file name (:func:`check_filename`) raises with
    `strict`, else it is refused with that reason, so a client can list every
    refused file of a dropped folder (with its ``.DS_Store``) and its reason.

    Raises
    ------
    InvalidInputError
        With `strict`, for the first name that is not a plain file name.
    NotFoundError
        When the acquisition does not exist.
    """
    reasons: list[str | None] = []
    plain: list[str | None] = []
    for name in names:
        try:
            plain.append(check_filename(name))
            reasons.append(None)
        except InvalidInputError as err:
            if strict:
                raise
            plain.append(None)
            reasons.append(str(err))
    with tm.utils.ExperimentSession(experiment_id) as session:
        _acquisition(session, acquisition_id)
        microscope = _microscope(session)
        for i, name in enumerate(plain):
            if name is not None and _model_for(microscope, name) is None:
                reasons[i] = f"not a {microscope.name} image or metadata file (by its name)"
    return reasons


def _known_statuses(session: Session, acquisition_id: int) -> dict[str, str]:
    """Name → status of the files registered with an acquisition (both tables)."""
    known: dict[str, str] = {}
    for model in _FILE_MODELS:
        rows = session.execute(
            sa.select(model.name, model.status).where(model.acquisition_id == acquisition_id)
        )
        known.update((name, status) for name, status in rows)
    return known


def register_uploads(experiment_id: int, acquisition_id: int, names: Sequence[object]) -> list[str]:
    """Register files that are about to be uploaded; answer those still to upload.

    New names get a ``WAITING`` row (image or metadata, as the microscope type
    decides); names registered before keep their row and status. The upload
    directories are created.

    Parameters
    ----------
    experiment_id, acquisition_id : int
        The acquisition the files are for.
    names : sequence of str
        File names (no directories); duplicates count once.

    Returns
    -------
    list of str
        The given names whose file in this acquisition is not yet
        ``COMPLETE``, in the order given.

    Raises
    ------
    InvalidInputError
        When a name is not a plain file name or matches neither the image nor
        the metadata pattern of the microscope type (nothing is registered).
    NotFoundError
        When the acquisition does not exist.
    """
    checked = list(dict.fromkeys(check_filenames(names)))
    with tm.utils.ExperimentSession(experiment_id) as session:
        acquisition = _acquisition(session, acquisition_id)
        microscope = _microscope(session)
        models = {name: _model_for(microscope, name) for name in checked}
        rejected = [name for name, model in models.items() if model is None]
        if rejected:
            raise InvalidInputError(
                f"{len(rejected)} file name(s) match neither the image nor the metadata pattern "
                f"of microscope type {microscope.name!r}, e.g. {rejected[0]!r}"
            )
        known = _known_statuses(session, acquisition_id)
        for model in _FILE_MODELS:
            rows = [
                {"name": name, "status": "WAITING", "acquisition_id": acquisition_id}
                for name in checked
                if models[name] is model and name not in known
            ]
            for start in range(0, len(rows), _INSERT_BATCH):
                session.execute(sa.insert(model.__table__), rows[start : start + _INSERT_BATCH])
        for directory in (
            acquisition.microscope_images_location,
            acquisition.microscope_metadata_location,
        ):
            Path(directory).mkdir(parents=True, exist_ok=True)
        return [name for name in checked if known.get(name) != "COMPLETE"]


def _find_file(session: Session, acquisition_id: int, name: str):
    for model in _FILE_MODELS:
        row = session.scalar(
            sa.select(model).where(model.acquisition_id == acquisition_id, model.name == name)
        )
        if row is not None:
            return row
    return None


def _set_status(experiment_id: int, model: type, file_id: int, status: str) -> None:
    """Set a file's status; a COMPLETE file stays so (a parallel upload of it may have won)."""
    with tm.utils.ExperimentSession(experiment_id) as session:
        query = sa.update(model).where(model.id == file_id)
        if status != "COMPLETE":
            query = query.where(model.status != "COMPLETE")
        session.execute(query.values(status=status))


def _store(stream: BinaryIO, target: Path) -> int:
    """Copy `stream` to `target` via a temporary name; returns the number of bytes.

    The temporary name is unique per call, so two uploads of one file at the
    same time cannot mix their bytes; the last rename wins with a whole file.
    It is short and of fixed length (not derived from `target`'s name), so
    every name :func:`check_filename` accepts can be stored.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".upload-{uuid.uuid4().hex}.part")
    size = 0
    try:
        with open(tmp, "wb") as handle:
            while True:
                chunk = stream.read(CHUNK_SIZE)
                if not chunk:
                    break
                handle.write(chunk)
                size += len(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return size


def upload_file(experiment_id: int, acquisition_id: int, name: object, stream: BinaryIO) -> str:
    """Store the bytes of a registered file.

    The row goes ``UPLOADING`` while the bytes are written to a temporary
    name, then ``COMPLETE`` once they are renamed into place. If writing fails
    (e.g. the client went away) the temporary file is removed, the row goes
    ``FAILED`` and the error is raised again; uploading the file again is
    allowed. A row left ``UPLOADING`` by a crashed server may be uploaded
    again as well.

    Parameters
    ----------
    experiment_id, acquisition_id : int
        The acquisition the file is registered with.
    name : str
        The registered file name.
    stream : binary file-like
        The file's bytes (read in chunks of :data:`CHUNK_SIZE`).

    Returns
    -------
    str
        ``"ok"``, or ``"File already uploaded"`` when the file was ``COMPLETE``
        (nothing is read or written then).

    Raises
    ------
    InvalidInputError
        When `name` is not a plain file name or is not registered with the
        acquisition (register it with :func:`register_uploads` first).
    NotFoundError
        When the acquisition does not exist.
    """
    name = check_filename(name)
    with tm.utils.ExperimentSession(experiment_id) as session:
        _acquisition(session, acquisition_id)
        row = _find_file(session, acquisition_id, name)
        if row is None:
            raise InvalidInputError(
                f"file {name!r} is not registered with acquisition {acquisition_id}: "
                "register it first (upload/register)"
            )
        if row.status == "COMPLETE":
            return "File already uploaded"
        model, file_id, target = type(row), row.id, Path(row.location)
        row.status = "UPLOADING"
    try:
        _store(stream, target)
    except BaseException:
        _set_status(experiment_id, model, file_id, "FAILED")
        raise
    _set_status(experiment_id, model, file_id, "COMPLETE")
    return "ok"


def count_complete(experiment_id: int, acquisition_id: int) -> int:
    """Number of ``COMPLETE`` files (images and metadata) of an acquisition.

    Raises
    ------
    NotFoundError
        When the acquisition does not exist.
    """
    with tm.utils.ExperimentSession(experiment_id) as session:
        _acquisition(session, acquisition_id)
        total = 0
        for model in _FILE_MODELS:
            total += session.scalar(
                sa.select(sa.func.count())
                .select_from(model)
                .where(model.acquisition_id == acquisition_id, model.status == "COMPLETE")
            )
        return total


def check_acquisition(experiment_id: int, acquisition_id: int) -> None:
    """Raise :class:`NotFoundError` unless the acquisition exists."""
    with tm.utils.ExperimentSession(experiment_id) as session:
        _acquisition(session, acquisition_id)


def iter_files(
    experiment_id: int, acquisition_id: int, kind: str = "images", batch_size: int = 2000
) -> Iterator[dict[str, object]]:
    """The microscope files of an acquisition as ``{id, name, status}``, by name.

    Rows are fetched `batch_size` at a time, so memory does not grow with the
    number of files. Check the acquisition first (:func:`check_acquisition`):
    an unknown one simply yields nothing.

    Parameters
    ----------
    kind : str
        ``"images"`` or ``"metadata"``.

    Raises
    ------
    InvalidInputError
        For another `kind`.
    """
    models = {"images": tm.MicroscopeImageFile, "metadata": tm.MicroscopeMetadataFile}
    if kind not in models:
        raise InvalidInputError(f"kind must be 'images' or 'metadata', got {kind!r}")
    model = models[kind]
    with tm.utils.ExperimentSession(experiment_id) as session:
        rows = session.execute(
            sa.select(model.id, model.name, model.status)
            .where(model.acquisition_id == acquisition_id)
            .order_by(model.name)
            .execution_options(yield_per=batch_size)
        )
        for file_id, name, status in rows:
            yield {"id": str(file_id), "name": name, "status": status}


def _storage_directories() -> list[Path]:
    """Where experiments and the main database live: never registrable over HTTP.

    The home (main SQLite database, secret key), the storage home, and the
    root directory of every experiment (it may predate the current storage
    home), all with symlinks resolved.
    """
    settings = load_settings()
    with tm.utils.MainSession() as session:
        roots = set(session.scalars(sa.select(tm.ExperimentReference.root_directory).distinct()))
    places = {settings.home, settings.storage_home, *map(Path, roots)}
    return [Path(os.path.realpath(place)) for place in places]


def _inside(path: Path, directories: Iterable[Path]) -> bool:
    return any(path == d or path.is_relative_to(d) for d in directories)


def allowed_directory(path: object) -> Path:
    """The real path of a directory that users may register over HTTP.

    Symlinks are resolved before anything is checked, in the path and in the
    directory's files: the real directory must lie below one of the
    registration roots (``TMAPS_REGISTER_ROOTS``), outside the storage of
    experiments and the home of the main database, and no file in it may be a
    link to a place outside. Every refusal has the same message, which never
    names the path, so a caller learns nothing about the server's files.

    Parameters
    ----------
    path : object
        What the client sent: an absolute path.

    Returns
    -------
    Path
        The resolved directory.

    Raises
    ------
    InvalidInputError
        When `path` is no absolute path.
    RegistrationRefusedError
        When no roots are configured (registration over HTTP is off), or the
        directory is missing, outside the roots or inside experiment storage.
    """
    if not isinstance(path, str) or "\x00" in path or not os.path.isabs(path):
        raise InvalidInputError("path must be an absolute directory on the server")
    roots = load_settings().register_roots
    if not roots:
        raise RegistrationRefusedError(REGISTRATION_DISABLED)
    real = Path(os.path.realpath(path))
    allowed = [Path(os.path.realpath(root)) for root in roots]
    forbidden = _storage_directories()
    if not _inside(real, allowed) or _inside(real, forbidden) or not real.is_dir():
        raise RegistrationRefusedError(NOT_ALLOWED)
    # a file may be a link, e.g. to another user's images: its target must be allowed too
    with os.scandir(real) as entries:
        for entry in entries:
            if entry.is_symlink():
                target = Path(os.path.realpath(entry.path))
                if not _inside(target, allowed) or _inside(target, forbidden):
                    raise RegistrationRefusedError(NOT_ALLOWED)
    return real


def register_directory(
    experiment_id: int, acquisition_id: int, path: object
) -> registry.Registration:
    """Register the microscope files of a directory on the server in place (over HTTP).

    This is :func:`tmlib.registry.register_files` (what ``tm_add files``
    does) addressed by ids, for directories that :func:`allowed_directory`
    accepts: the directory is linked, not copied, and its matching files
    become ``COMPLETE``. Registering the same directory again adds nothing. A
    name that was registered for upload but not yet uploaded is taken from
    the directory instead. Messages never name the path or count its files.

    Parameters
    ----------
    path : str
        Absolute path of a directory below a registration root.

    Raises
    ------
    InvalidInputError
        When `path` is not absolute, or the directory holds no image file of
        the microscope type (or a name too long to store).
    RegistrationRefusedError
        When the directory may not be registered (:func:`allowed_directory`).
    NotFoundError
        When the acquisition does not exist.
    """
    real = allowed_directory(path)
    with tm.utils.ExperimentSession(experiment_id) as session:
        acquisition = _acquisition(session, acquisition_id)
        plate_name, acquisition_name = acquisition.plate.name, acquisition.name
    try:
        result = registry.register_files(experiment_id, plate_name, acquisition_name, real)
    except InvalidInputError:
        # its messages are for the local administrator: they name the path and count files
        raise InvalidInputError(NO_MATCHING_FILES) from None
    if result.known:
        # uploads registered but never completed: take them from the directory
        link = registry.source_link_name(real)
        with tm.utils.ExperimentSession(experiment_id) as session:
            for model in _FILE_MODELS:
                session.execute(
                    sa.update(model)
                    .where(
                        model.acquisition_id == acquisition_id,
                        model.name.in_(result.known),
                        model.status != "COMPLETE",
                    )
                    .values(status="COMPLETE", source=link)
                    .execution_options(synchronize_session=False)
                )
    return result


def _derive(statuses: Counter) -> str:
    """One status from the statuses of the parts (files of an acquisition, acquisitions)."""
    if not statuses:
        return "WAITING"
    if statuses["UPLOADING"]:
        return "UPLOADING"
    if set(statuses) == {"COMPLETE"}:
        return "COMPLETE"
    return "WAITING"


def acquisition_statuses(session: Session, acquisition_ids: Iterable[int]) -> dict[int, str]:
    """The upload status of acquisitions, derived from their files' statuses.

    ``WAITING`` without files, ``UPLOADING`` while any file is, ``COMPLETE``
    when every file is, else ``WAITING``. One query per file table.

    Parameters
    ----------
    session : Session
        An experiment session.
    acquisition_ids : iterable of int

    Returns
    -------
    dict of int to str
    """
    ids = list(acquisition_ids)
    counts: dict[int, Counter] = defaultdict(Counter)
    if ids:
        for model in _FILE_MODELS:
            rows = session.execute(
                sa.select(model.acquisition_id, model.status, sa.func.count())
                .where(model.acquisition_id.in_(ids))
                .group_by(model.acquisition_id, model.status)
            )
            for acquisition_id, status, n in rows:
                counts[acquisition_id][status] += n
    return {acquisition_id: _derive(counts[acquisition_id]) for acquisition_id in ids}


def plate_status(statuses: Iterable[str]) -> str:
    """The status of a plate from its acquisitions' statuses (same rule as for files)."""
    return _derive(Counter(statuses))
