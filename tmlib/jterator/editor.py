"""What the pipeline editor (jtui) and the server do with an experiment's jterator project.

A project is exchanged as one JSON-able mapping::

    {"pipeline": <pipeline.yaml as a mapping>,
     "handles": {"<module name>": <handles file as a mapping>, ...}}

where every pipeline entry names its handles file ``handles/<module>.handles.yaml``
and its source by file name only (a module of ``TMAPS_JTMODULES_PATH`` or
:mod:`jtmodules`): a project sent over the network can neither read nor run
files elsewhere on the server. :func:`save_project` checks the whole project
(:meth:`tmlib.jterator.project.Project.check`) in a temporary directory and
only then replaces the stored one.

Debug jobs run ``jterator ID debug --site S --plot`` for up to
:data:`MAX_DEBUG_JOBS` sites as a detached submission of program ``jtui``;
job *n* is the *n*-th site (1-based) ordered by id.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

import tmlib.models as tm
from tmlib.errors import InvalidInputError, NotFoundError
from tmlib.jterator.project import HANDLES_SUFFIX, PIPELINE_FILE, Project, modules_path

#: at most this many debug jobs per request
MAX_DEBUG_JOBS = 10
#: submissions of debug jobs have this program name
PROGRAM = "jtui"
#: what a module name (and so its handles file's name) may be
MODULE_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}"
#: a pipeline entry's ``handles`` and ``source`` (the OpenAPI description of the project
#: says so too: the editor checks names against these before it asks the server)
HANDLES_PATH_PATTERN = rf"^handles/{MODULE_NAME}{re.escape(HANDLES_SUFFIX)}$"
SOURCE_PATTERN = rf"^{MODULE_NAME}\.py$"
_NAME = re.compile(MODULE_NAME)
_DEBUG_JOB = re.compile(r"jterator_debug_(\d{7})")


def project_location(experiment_id: int) -> Path:
    """``<experiment>/workflow/jterator``.

    Raises
    ------
    NotFoundError
        When the experiment does not exist.
    """
    return tm.utils.experiment_location(experiment_id) / "workflow" / "jterator"


def channel_names(experiment_id: int) -> list[str]:
    """The experiment's channels, by id."""
    with tm.utils.ExperimentSession(experiment_id) as session:
        return list(session.scalars(sa.select(tm.Channel.name).order_by(tm.Channel.id)))


def object_type_names(experiment_id: int) -> list[str]:
    """Object types a pipeline can load as input objects (``input.objects``): the
    experiment's object types except the static Plates, Wells and Sites, by name."""
    from tmlib.workflow.steps.illuminati import STATIC_TYPES

    static = [name for name, _ in STATIC_TYPES]
    with tm.utils.ExperimentSession(experiment_id) as session:
        return list(
            session.scalars(
                sa.select(tm.MapobjectType.name)
                .where(tm.MapobjectType.name.not_in(static))
                .order_by(tm.MapobjectType.name)
            )
        )


def handle_types() -> list[dict[str, Any]]:
    """The handle types: ``{name, kind, accepts}`` (``accepts``: the types of keys a pipe
    input of this type may take, as the check allows them)."""
    from tmlib.jterator.handles import HANDLE_TYPES

    return [
        {"name": t.name, "kind": t.kind, "accepts": sorted(t.accepts)}
        for t in HANDLE_TYPES.values()
    ]


# ---------------------------------------------------------------- reading


def _read_project_files(location: Path) -> dict[str, Any]:
    pipeline = yaml.safe_load((location / PIPELINE_FILE).read_text()) or {}
    handles = {}
    for entry in pipeline.get("pipeline") or []:
        relative = str(entry.get("handles", ""))
        name = Path(relative).name[: -len(HANDLES_SUFFIX)]
        path = location / relative
        # only files inside the project are read (a hand-written pipeline may point anywhere)
        if path.resolve().is_relative_to(location.resolve()) and path.is_file():
            handles[name] = yaml.safe_load(path.read_text())
    return {"pipeline": pipeline, "handles": handles}


def read_project(experiment_id: int) -> dict[str, Any]:
    """The stored project, or the default one for the experiment's channels (not stored).

    Raises
    ------
    NotFoundError
        When there is no project and no channels to make the default one for.
    """
    location = project_location(experiment_id)
    if (location / PIPELINE_FILE).is_file():
        return _read_project_files(location)
    from tmlib.workflow.steps.jterator import create_project, default_inputs

    try:
        inputs = default_inputs(experiment_id)
    except InvalidInputError as err:
        raise NotFoundError(
            f"experiment {experiment_id} has no jterator project yet and none can be made: {err}"
        ) from None
    # made outside the experiment: a read never writes into it (nor brings back its
    # directory when it is being deleted)
    with tempfile.TemporaryDirectory(prefix="jterator-default-") as tmp:
        create_project(Path(tmp), inputs)
        return _read_project_files(Path(tmp))


# ---------------------------------------------------------------- checking


def _check_shape(project: Any) -> tuple[dict, dict[str, dict]]:
    """The pipeline and handles of a project mapping, checked for safe names."""
    if not isinstance(project, dict):
        raise InvalidInputError("a project is a mapping with 'pipeline' and 'handles'")
    pipeline, handles = project.get("pipeline"), project.get("handles")
    if not isinstance(pipeline, dict):
        raise InvalidInputError("project: 'pipeline' must be a mapping (pipeline.yaml)")
    if not isinstance(handles, dict):
        raise InvalidInputError("project: 'handles' must map module names to handles mappings")
    entries = pipeline.get("pipeline")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InvalidInputError("pipeline.yaml: 'pipeline' must be a list of modules")
    used = []
    for i, entry in enumerate(entries, start=1):
        source, relative = entry.get("source"), entry.get("handles")
        if (
            not isinstance(source, str)
            or not source.endswith(".py")
            or not _NAME.fullmatch(source[:-3])
        ):
            raise InvalidInputError(
                f"pipeline entry {i}: 'source' must be the file name of a module on the module "
                f"path (e.g. smooth.py), got {source!r}"
            )
        match = re.fullmatch(r"handles/(.+)" + re.escape(HANDLES_SUFFIX), str(relative or ""))
        if match is None or not _NAME.fullmatch(match.group(1)):
            raise InvalidInputError(
                f"pipeline entry {i}: 'handles' must be handles/<module>{HANDLES_SUFFIX} with a "
                f"module name of letters, digits, _ and -, got {relative!r}"
            )
        name = match.group(1)
        if name not in handles:
            raise InvalidInputError(f"pipeline entry {i}: no handles given for module {name!r}")
        used.append(name)
    extra = sorted(set(handles) - set(used))
    if extra:
        raise InvalidInputError(f"handles of module {extra[0]!r}, which is not in the pipeline")
    for name, description in handles.items():
        if not isinstance(description, dict):
            raise InvalidInputError(f"handles of module {name!r} must be a mapping")
    return pipeline, handles


def _write_project(location: Path, pipeline: dict, handles: dict[str, dict]) -> None:
    (location / "handles").mkdir(parents=True)
    (location / PIPELINE_FILE).write_text(yaml.safe_dump(pipeline, sort_keys=False))
    for name, description in handles.items():
        path = location / "handles" / f"{name}{HANDLES_SUFFIX}"
        path.write_text(yaml.safe_dump(description, sort_keys=False))


@contextlib.contextmanager
def _checked(experiment_id: int, project: Any):
    """A temporary directory with the project written and checked; removed afterwards."""
    pipeline, handles = _check_shape(project)
    location = project_location(experiment_id)
    # before metaconfig there are no channels to check against (the user guide uploads
    # the project before submitting the workflow): jterator init checks them then
    channels = channel_names(experiment_id) or None
    # outside the experiment: checking needs only read access and must not write there
    tmp = Path(tempfile.mkdtemp(prefix="jterator-edit-")) / "project"
    try:
        _write_project(tmp, pipeline, handles)
        try:
            Project.load(tmp).check(channels)
        except InvalidInputError as err:  # name the files as they will be, not the temporary
            raise InvalidInputError(str(err).replace(str(tmp), str(location))) from None
        yield tmp
    finally:
        shutil.rmtree(tmp.parent, ignore_errors=True)


def check_project(experiment_id: int, project: Any) -> None:
    """Check a project against the experiment's channels without storing it.

    Raises
    ------
    InvalidInputError
        Saying which module and handle is at fault.
    """
    with _checked(experiment_id, project):
        pass


def save_project(experiment_id: int, project: Any) -> None:
    """Check a project and store it in place of the experiment's (pipeline.yaml, handles/).

    Nothing is written when the check fails.

    Raises
    ------
    InvalidInputError
    """
    location = project_location(experiment_id)
    with _checked(experiment_id, project) as tmp:
        location.mkdir(parents=True, exist_ok=True)
        # copied beside the stored ones first (the checked copy may be on another file system)
        staged = location / f".handles-new-{uuid.uuid4().hex}"
        shutil.copytree(tmp / "handles", staged)
        shutil.copyfile(tmp / PIPELINE_FILE, staged / PIPELINE_FILE)
        old = location / f".handles-old-{uuid.uuid4().hex}"
        if (location / "handles").exists():
            (location / "handles").rename(old)
        (staged / PIPELINE_FILE).replace(location / PIPELINE_FILE)
        staged.rename(location / "handles")
        shutil.rmtree(old, ignore_errors=True)


def delete_project(experiment_id: int) -> None:
    """Remove pipeline.yaml and handles/ (the next run writes the default pipeline).

    Raises
    ------
    NotFoundError
        When there is no project.
    """
    location = project_location(experiment_id)
    if not (location / PIPELINE_FILE).is_file():
        raise NotFoundError(f"experiment {experiment_id} has no jterator project")
    (location / PIPELINE_FILE).unlink()
    shutil.rmtree(location / "handles", ignore_errors=True)


# ---------------------------------------------------------------- modules


def _module_files() -> dict[str, tuple[Path, Path]]:
    """Module name -> (code, handles template); user directories before jtmodules."""
    import jtmodules

    found: dict[str, tuple[Path, Path]] = {}
    for directory in [*modules_path(), Path(jtmodules.__file__).parent]:
        if not directory.is_dir():
            continue
        for handles in sorted(directory.glob(f"*{HANDLES_SUFFIX}")):
            name = handles.name[: -len(HANDLES_SUFFIX)]
            code = directory / f"{name}.py"
            if name not in found and _NAME.fullmatch(name) and code.is_file():
                found[name] = (code, handles)
    return found


def available_modules() -> list[dict[str, Any]]:
    """Every module on the module path: ``{name, source, description}`` (handles template)."""
    modules = []
    for name, (code, handles) in sorted(_module_files().items()):
        try:
            description = yaml.safe_load(handles.read_text())
        except yaml.YAMLError:
            continue  # a broken template is not offered
        modules.append({"name": name, "source": code.name, "description": description})
    return modules


def module_source(module_name: str) -> str:
    """The code of a module on the module path (a name, never a path).

    Raises
    ------
    NotFoundError
        When no module has that name.
    """
    name = module_name[:-3] if module_name.endswith(".py") else module_name
    files = _module_files() if _NAME.fullmatch(name) else {}
    if name not in files:
        raise NotFoundError(f"no module {module_name!r} on the module path")
    return files[name][0].read_text()


# ---------------------------------------------------------------- debug jobs


def _site_ids(session: Any) -> list[int]:
    return list(
        session.scalars(
            sa.select(tm.Site.id).where(tm.Site.omitted.is_(False)).order_by(tm.Site.id)
        )
    )


def job_list(experiment_id: int, index: int = 0, batch_size: int | None = None) -> list[dict]:
    """The sites debug jobs can run on: ``{id (job id), site_id, plate, well, x, y}``.

    Raises
    ------
    InvalidInputError
        For a negative index or batch size.
    """
    if index < 0 or (batch_size is not None and batch_size < 0):
        raise InvalidInputError("index and batch_size must not be negative")
    with tm.utils.ExperimentSession(experiment_id) as session:
        query = (
            sa.select(tm.Site.id, tm.Site.x, tm.Site.y, tm.Well.name, tm.Plate.name)
            .join(tm.Well, tm.Site.well_id == tm.Well.id)
            .join(tm.Plate, tm.Well.plate_id == tm.Plate.id)
            .where(tm.Site.omitted.is_(False))
            .order_by(tm.Site.id)
            .offset(index)
        )
        if batch_size is not None:
            query = query.limit(batch_size)
        return [
            {"id": index + i + 1, "site_id": site_id, "plate": plate, "well": well, "x": x, "y": y}
            for i, (site_id, x, y, well, plate) in enumerate(session.execute(query))
        ]


def _sites_of_jobs(experiment_id: int, job_ids: list[int]) -> dict[int, int]:
    if not job_ids or len(job_ids) > MAX_DEBUG_JOBS:
        raise InvalidInputError(f"give 1 to {MAX_DEBUG_JOBS} job ids, got {len(job_ids)}")
    if len(set(job_ids)) != len(job_ids):
        raise InvalidInputError("job ids must not repeat")
    with tm.utils.ExperimentSession(experiment_id) as session:
        sites = _site_ids(session)
    bad = [j for j in job_ids if not 1 <= j <= len(sites)]
    if bad:
        raise InvalidInputError(f"no job {bad[0]}: job ids go from 1 to {len(sites)} (sites)")
    return {j: sites[j - 1] for j in job_ids}


def debug_job_name(job_id: int) -> str:
    return f"jterator_debug_{job_id:07d}"


def submit_debug_jobs(experiment_id: int, job_ids: list[int], project: Any = None) -> int:
    """Run the pipeline with figures on the sites of `job_ids`, in the background.

    `project`, when given, is checked and stored first. Returns the submission id.

    Raises
    ------
    InvalidInputError
        For bad job ids or an invalid project (nothing is started then).
    SubmissionRunningError
        While earlier debug jobs of the experiment run.
    """
    from tmlib.workflow import manager
    from tmlib.workflow.jobs.engine import PARALLEL, TaskSpec
    from tmlib.workflow.jobs.job import JobSpec, Resources
    from tmlib.workflow.step import COMMAND_PREFIX

    sites = _sites_of_jobs(experiment_id, job_ids)
    if project is not None:
        manager.refuse_if_running(experiment_id, PROGRAM)  # running jobs keep their project
        save_project(experiment_id, project)
    location = project_location(experiment_id)
    if not (location / PIPELINE_FILE).is_file():
        raise NotFoundError(f"experiment {experiment_id} has no jterator project; save one first")
    jobs = [
        TaskSpec(
            debug_job_name(job_id),
            "DebugRunJob",
            job=JobSpec(
                debug_job_name(job_id),
                [
                    *COMMAND_PREFIX,
                    "jterator",
                    str(experiment_id),
                    "debug",
                    "--site",
                    str(site_id),
                    "--plot",
                ],  # fmt: skip
                Resources(cores=1, memory=2500, walltime=3600),
                location / "debug_log",
            ),
        )
        for job_id, site_id in sites.items()
    ]
    tree = TaskSpec("jtui", "JtuiDebugJobs", mode=PARALLEL, children=jobs)
    return manager.start_detached(experiment_id, PROGRAM, tree)


def debug_output(experiment_id: int, job_ids: list[int] | None = None) -> list[dict]:
    """Output of the last debug jobs: ``{id, name, task_id, state, exitcode, failed, stdout,
    stderr}`` per job (only those of `job_ids` if given)."""
    from tmlib.workflow import manager

    tree = manager.status_or_none(experiment_id, PROGRAM)
    if tree is None:
        return []
    out = []
    for node in tree["subtasks"]:
        match = _DEBUG_JOB.fullmatch(node["name"])
        if match is None:
            continue
        job_id = int(match.group(1))
        if job_ids is not None and job_id not in job_ids:
            continue
        log = manager.job_log(experiment_id, node["id"])
        out.append(
            {
                "id": job_id,
                "name": node["name"],
                "task_id": node["id"],
                "state": node["state"],
                "exitcode": node["exitcode"],
                "failed": bool(node["failed"]),
                **log,
            }
        )
    return out


def read_figure(experiment_id: int, module_name: str, job_id: int) -> Any:
    """The figure (Plotly JSON) a module made in debug job `job_id`.

    Raises
    ------
    NotFoundError
        When there is no such figure.
    """
    if not _NAME.fullmatch(module_name):
        raise NotFoundError(f"no module {module_name!r}")
    with tm.utils.ExperimentSession(experiment_id) as session:
        sites = _site_ids(session)
    if not 1 <= job_id <= len(sites):
        raise NotFoundError(f"no job {job_id}: job ids go from 1 to {len(sites)}")
    path = project_location(experiment_id) / "figures" / f"{module_name}_{sites[job_id - 1]}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFoundError(
            f"module {module_name} made no figure in job {job_id} (is its plot handle on, "
            "and has the job ended?)"
        ) from None
