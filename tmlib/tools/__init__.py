"""Interactive analysis tools: classification, clustering and heat maps.

A request (tool name + payload) is validated and submitted by
:func:`submit_request`: the payload is stored as
``<experiment>/tools/batches/<Tool>_<submission>.json`` and a one-job
submission (program = the tool name) runs ``tm_tool`` in the background,
which calls :func:`run_tool`. ``tm_tool EXPERIMENT --name TOOL
--submission-id ID`` runs (or re-runs) a stored request by hand.

Examples
--------
>>> tool = get_tool("Clustering")(experiment_id)
>>> result_id = tool.process(submission_id, {"chosen_object_type": "Cells",
...     "selected_features": ["Morphology_area"], "options": {"k": 3}})
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Any

from tmlib.errors import InvalidInputError, NotFoundError
from tmlib.lazy import lazy_import
from tmlib.tools.base import (
    Tool,
    delete_result,
    payload_path,
    read_payload,
    rename_result,
    tools_location,
    write_payload,
)
from tmlib.tools.classification import Classification
from tmlib.tools.clustering import Clustering
from tmlib.tools.heatmap import Heatmap

sa = lazy_import("sqlalchemy")
tm = lazy_import("tmlib.models")

#: registered tools by name
TOOLS: dict[str, type[Tool]] = {cls.name: cls for cls in (Classification, Clustering, Heatmap)}

#: wall-clock limit of a tool job (as in the original)
TOOL_WALLTIME = 6 * 3600

__all__ = [
    "TOOLS",
    "Tool",
    "delete_result",
    "describe_tools",
    "get_tool",
    "job_tree",
    "payload_path",
    "read_payload",
    "rename_result",
    "resolve_request",
    "run_request",
    "run_tool",
    "submit_request",
    "tool_job_log",
    "tool_jobs",
    "validate_request",
    "write_payload",
]


def get_tool(name: str) -> type[Tool]:
    """The tool class registered as `name`.

    Raises
    ------
    NotFoundError
        When no tool has that name (the message lists the known ones).
    """
    try:
        return TOOLS[name]
    except (KeyError, TypeError):
        raise NotFoundError(f"unknown tool {name!r}; known tools: {', '.join(TOOLS)}") from None


def describe_tools() -> list[dict[str, Any]]:
    """``[{name, icon, description, methods}]`` of the registered tools."""
    return [
        {
            "name": cls.name,
            "icon": cls.icon,
            "description": cls.description,
            "methods": list(cls.methods),
        }
        for cls in TOOLS.values()
    ]


def validate_request(experiment_id: int, tool_name: str, payload: Any) -> dict[str, Any]:
    """Check a request before it is submitted; return the normalised request.

    Raises
    ------
    NotFoundError
        For an unknown tool or experiment.
    InvalidInputError
        For a payload the tool cannot run.
    """
    return get_tool(tool_name)(experiment_id).validate(payload)


def run_tool(experiment_id: int, tool_name: str, submission_id: int) -> int:
    """Run the stored request of a submission; return the id of its result.

    Re-running a submission replaces its result.
    """
    tool = get_tool(tool_name)(experiment_id)
    return tool.process(submission_id, read_payload(experiment_id, tool_name, submission_id))


def tool_command(experiment_id: int, tool_name: str, request_token: str) -> list[str]:
    """The command line of a tool job (``tm_tool``, run through this interpreter)."""
    return [
        sys.executable,
        "-m",
        "tmlib.tools.cli",
        str(int(experiment_id)),
        "--name",
        tool_name,
        "--request",
        request_token,
    ]


def job_name(tool_name: str, request_token: str) -> str:
    """``<Tool>_<token>``: the name of the job of a request (unique: the token is random)."""
    return f"{tool_name}_{request_token}"


def job_tree(experiment_id: int, tool_name: str, request_token: str) -> Any:
    """The one-job :class:`~tmlib.workflow.jobs.engine.TaskSpec` of a staged request.

    The job asks for ``TMAPS_TOOL_CORES`` cores (default 1; the tool uses no
    more) and a walltime of 6 h, so that tool requests of several users share
    the machine instead of each claiming all of it;
    its log goes to ``<experiment>/tools/log/``. The submission id does not
    exist yet when the tree is built, so the job names the request by its
    token and looks its submission up when it starts (:func:`resolve_request`).
    """
    from tmlib.config import load_settings
    from tmlib.workflow.jobs.engine import TaskSpec
    from tmlib.workflow.jobs.job import JobSpec, Resources

    get_tool(tool_name)
    name = job_name(tool_name, _check_token(request_token))
    job = JobSpec(
        name=name,
        command=tool_command(experiment_id, tool_name, request_token),
        resources=Resources(cores=load_settings().tool_cores, walltime=TOOL_WALLTIME),
        log_dir=tools_location(experiment_id) / "log",
    )
    return TaskSpec(name, "ToolJob", job=job)


def _check_token(request_token: str) -> str:
    if not isinstance(request_token, str) or not re.fullmatch(r"[0-9a-f]{16,64}", request_token):
        raise InvalidInputError(f"invalid request token {request_token!r}")
    return request_token


def staged_payload_path(experiment_id: int, tool_name: str, request_token: str) -> Path:
    """Where a request waits for its submission id: ``batches/<Tool>_request-<token>.json``."""
    _check_token(request_token)
    return tools_location(experiment_id) / "batches" / f"{tool_name}_request-{request_token}.json"


def promote_payload(
    experiment_id: int, tool_name: str, request_token: str, submission_id: int
) -> Path:
    """Move a staged payload to ``<Tool>_<submission>.json`` (idempotent; safe to race)."""
    target = payload_path(experiment_id, tool_name, submission_id)
    with contextlib.suppress(FileNotFoundError):  # the other party moved it already
        os.replace(staged_payload_path(experiment_id, tool_name, request_token), target)
    return target


def resolve_request(experiment_id: int, tool_name: str, request_token: str) -> int:
    """The submission id of the job ``<Tool>_<token>`` of the experiment.

    Raises
    ------
    NotFoundError
        When no submission of the tool holds that job.
    """
    name = job_name(tool_name, _check_token(request_token))
    with tm.utils.MainSession() as session:
        submission_id = session.scalar(
            sa.select(tm.Task.submission_id)
            .join(tm.Submission, tm.Submission.id == tm.Task.submission_id)
            .where(
                tm.Task.name == name,
                tm.Submission.experiment_id == experiment_id,
                tm.Submission.program == tool_name,
            )
        )
    if submission_id is None:
        raise NotFoundError(
            f"experiment {experiment_id} has no {tool_name} request {request_token}"
        )
    return int(submission_id)


def run_request(experiment_id: int, tool_name: str, request_token: str) -> tuple[int, int]:
    """Run the request a job was submitted with; returns (submission id, result id)."""
    submission_id = resolve_request(experiment_id, tool_name, request_token)
    promote_payload(experiment_id, tool_name, request_token, submission_id)
    return submission_id, run_tool(experiment_id, tool_name, submission_id)


def submit_request(
    experiment_id: int, tool_name: str, payload: Any, user_id: int | None = None
) -> int:
    """Validate a request, store it and submit its ``tm_tool`` job; return the submission id.

    The job runs in the background (see
    :func:`tmlib.workflow.manager.start_detached`); several tool
    submissions may run at once, up to the quotas of the user and the
    experiment (``TMAPS_MAX_SUBMISSIONS_PER_USER``, ``..._PER_EXPERIMENT``).
    The payload is stored as ``<experiment>/tools/batches/<Tool>_<submission>.json``.

    Raises
    ------
    NotFoundError
        For an unknown tool or experiment.
    InvalidInputError
        For a payload the tool cannot run (nothing is submitted).
    QuotaExceededError
        When the user or the experiment runs as many submissions as allowed.
    """
    from tmlib.workflow import manager

    validate_request(experiment_id, tool_name, payload)
    token = secrets.token_hex(12)
    staged = staged_payload_path(experiment_id, tool_name, token)
    staged.parent.mkdir(parents=True, exist_ok=True)
    tmp = staged.with_name(f".{staged.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, staged)
    try:
        submission_id = manager.start_detached(
            experiment_id,
            tool_name,
            job_tree(experiment_id, tool_name, token),
            exclusive=False,
            user_id=user_id,
        )
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    promote_payload(experiment_id, tool_name, token, submission_id)
    return submission_id


#: what :func:`tool_jobs` reports of a job
_JOB_FIELDS = ("state", "exitcode", "time", "cpu_time", "memory")


def tool_jobs(
    experiment_id: int,
    tool_name: str | None = None,
    state: str | None = None,
    submission_id: int | None = None,
) -> list[dict[str, Any]]:
    """The jobs of the experiment's tool submissions, newest first.

    Each: ``{id, name, tool_name, submission_id, state, exitcode, failed, time,
    cpu_time, memory, created_at, updated_at}``.

    Raises
    ------
    NotFoundError
        For an unknown tool name.
    """
    programs = [get_tool(tool_name).name] if tool_name is not None else list(TOOLS)
    query = (
        sa.select(tm.Task, tm.Submission.program)
        .join(tm.Submission, tm.Submission.id == tm.Task.submission_id)
        .where(
            tm.Submission.experiment_id == experiment_id,
            tm.Submission.program.in_(programs),
            tm.Task.is_collection.is_(False),
        )
        .order_by(tm.Task.id.desc())
    )
    if state is not None:
        query = query.where(tm.Task.state == state)
    if submission_id is not None:
        query = query.where(tm.Task.submission_id == submission_id)
    with tm.utils.MainSession() as session:
        return [
            {
                "id": task.id,
                "name": task.name,
                "tool_name": program,
                "submission_id": task.submission_id,
                **{k: getattr(task, k) for k in _JOB_FIELDS},
                "failed": task.state == "TERMINATED" and task.exitcode not in (0, None),
                "created_at": task.created_at.isoformat() if task.created_at else None,
                "updated_at": task.updated_at.isoformat() if task.updated_at else None,
            }
            for task, program in session.execute(query)
        ]


def tool_job_log(experiment_id: int, job_id: int) -> dict[str, str]:
    """``{stdout, stderr}`` of a tool job of the experiment.

    Raises
    ------
    NotFoundError
        When the experiment has no tool job `job_id`.
    """
    from tmlib.workflow import manager

    with tm.utils.MainSession() as session:
        task = session.get(tm.Task, job_id)
        program = task.submission.program if task is not None else None
    if program not in TOOLS:
        raise NotFoundError(f"experiment {experiment_id} has no tool job {job_id}")
    return manager.job_log(experiment_id, job_id)
