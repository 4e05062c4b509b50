"""The workflow of an experiment: submit, resubmit, status, jobs and logs, description,
kill, and the jterator project (reference §7.2).

Submissions run in a background engine of their own
(:func:`tmlib.workflow.manager.start_detached`): they go on when the server
restarts, and any server process reports their status from the database.
"""

from __future__ import annotations

from typing import Any

from tmlib.jterator import editor
from tmlib.workflow import manager
from tmlib.workflow.description import WorkflowDescription
from tmserver.api import api
from tmserver.routing import Param

TAG = "workflow"


def serialize_status(node: dict[str, Any] | None) -> dict[str, Any] | None:
    """A status tree with its ids as decimal strings."""
    if node is None:
        return None
    out = dict(node)
    out["id"] = str(node["id"])
    if "submission_id" in node:
        out["submission_id"] = str(node["submission_id"])
    out["subtasks"] = [serialize_status(s) for s in node.get("subtasks", [])]
    return out


def _description(experiment_id: int, description: dict | None) -> WorkflowDescription | None:
    """Store a given description first (validated), as the original did."""
    if description is None:
        return None
    manager.refuse_if_running(experiment_id)  # a running workflow keeps its description
    return manager.save_description(experiment_id, description)


@api.route(
    "POST",
    "/experiments/{experiment_id}/workflow/submit",
    summary="Submit the workflow (optionally storing a new description first)",
    tag=TAG,
    permission="write",
    body={"description": Param(dict, description="workflow description to store and run")},
)
def submit_workflow(experiment_id: int, description: dict | None) -> dict:
    stored = _description(experiment_id, description)
    submission_id = manager.submit_workflow_detached(experiment_id, stored)
    return {"message": "ok", "submission_id": str(submission_id)}


@api.route(
    "POST",
    "/experiments/{experiment_id}/workflow/resubmit",
    summary="Submit the workflow again from a stage on (by name or index; default the first)",
    tag=TAG,
    permission="write",
    body={
        "description": Param(dict, description="workflow description to store and run"),
        "stage_name": Param(str, description="e.g. image_preprocessing"),
        "index": Param(int, minimum=0, description="index of the stage among the active ones"),
    },
)
def resubmit_workflow(
    experiment_id: int, description: dict | None, stage_name: str | None, index: int | None
) -> dict:
    stored = _description(experiment_id, description)
    start: str | int = stage_name if stage_name is not None else (index or 0)
    submission_id = manager.submit_workflow_detached(experiment_id, stored, start_stage=start)
    return {"message": "ok", "submission_id": str(submission_id)}


@api.route(
    "GET",
    "/experiments/{experiment_id}/workflow/status",
    summary="Status tree of the last workflow submission (null before the first)",
    tag=TAG,
    query={"depth": Param(int, default=2, minimum=0, description="levels below the workflow")},
)
def get_workflow_status(experiment_id: int, depth: int) -> dict:
    return {"data": serialize_status(manager.status_or_none(experiment_id, depth=depth))}


@api.route(
    "GET",
    "/experiments/{experiment_id}/workflow/jobs",
    summary="Jobs of a step in the last workflow submission, in order (paged, filtered by "
    "state); `total` counts the jobs that pass the filters",
    tag=TAG,
    query={
        "step_name": Param(str, required=True),
        "phase": Param(str, enum=("init", "run", "collect")),
        "name": Param(str, description="only the job of this name"),
        # checked by the library (an InvalidInputError that lists the allowed values)
        "state": Param(
            str,
            description="only jobs in this state: "
            + ", ".join(manager.JOB_STATE_FILTERS)
            + " (FAILED: terminated with an exit code other than 0; SUCCEEDED: terminated "
            "otherwise)",
        ),
        "index": Param(int, default=0, description="first job; negative: from the end"),
        "batch_size": Param(int, minimum=0, description="at most this many jobs"),
    },
)
def get_workflow_jobs(
    experiment_id: int,
    step_name: str,
    phase: str | None,
    name: str | None,
    state: str | None,
    index: int,
    batch_size: int | None,
) -> dict:
    jobs = manager.list_jobs(experiment_id, step_name, phase, name, index, batch_size, state=state)
    # the count lets a table size its scroll range for a filter it has not read
    total = manager.count_jobs(experiment_id, step_name, phase, name, state=state)
    return {"data": [serialize_status(job) for job in jobs], "total": total}


@api.route(
    "GET",
    "/experiments/{experiment_id}/workflow/jobs/{job_id}/log",
    summary="Output of a job (the end of large logs)",
    tag=TAG,
)
def get_workflow_job_log(experiment_id: int, job_id: int) -> dict:
    return {"data": manager.job_log(experiment_id, job_id)}


@api.route(
    "GET",
    "/experiments/{experiment_id}/workflow/description",
    summary="The workflow description (the default one is stored if there is none); each "
    "argument with value, default, required, help, choices, type (integer, number, string or "
    "boolean) and minimum/maximum (null: unbounded)",
    tag=TAG,
)
def get_workflow_description(experiment_id: int) -> dict:
    return {"data": manager.describe(manager.load_description(experiment_id))}


@api.route(
    "POST",
    "/experiments/{experiment_id}/workflow/description",
    summary="Store a workflow description (after validation)",
    tag=TAG,
    permission="write",
    body={"description": Param(dict, required=True)},
)
def save_workflow_description(experiment_id: int, description: dict) -> dict:
    manager.save_description(experiment_id, description)
    return {"message": "ok"}


@api.route(
    "POST",
    "/experiments/{experiment_id}/workflow/kill",
    summary="Stop the last workflow submission",
    tag=TAG,
    permission="write",
)
def kill_workflow(experiment_id: int) -> dict:
    manager.kill(experiment_id)
    return {"message": "ok"}


@api.route(
    "GET",
    "/experiments/{experiment_id}/workflow/jtproject",
    summary="The jterator project {pipeline, handles} (the default one if none is stored)",
    tag=TAG,
)
def get_jterator_project(experiment_id: int) -> dict:
    return {"data": editor.read_project(experiment_id)}


@api.route(
    "PUT",
    "/experiments/{experiment_id}/workflow/jtproject",
    summary="Store a jterator project {pipeline, handles} (checked first)",
    tag=TAG,
    permission="write",
    body={"pipeline": Param(dict, required=True), "handles": Param(dict, required=True)},
)
def put_jterator_project(experiment_id: int, pipeline: dict, handles: dict) -> dict:
    editor.save_project(experiment_id, {"pipeline": pipeline, "handles": handles})
    return {"message": "ok"}
