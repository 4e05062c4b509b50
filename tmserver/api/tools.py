"""Analysis tools: the list of tools, tool requests (jobs), their results and logs."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import g

import tmlib.models as tm
from tmlib import tools
from tmlib.errors import NotFoundError
from tmserver.api import api
from tmserver.routing import ID, Param

TAG = "tools"
_JOB_STATES = ("NEW", "SUBMITTED", "RUNNING", "TERMINATED")


def serialize_tool_result(result: tm.ToolResult, layers: list[tm.SegmentationLayer]) -> dict:
    """``{id, name, submission_id, tool_name, type, attributes, layers, plots}``.

    ``layers`` are the segmentation layers of the result's object type, whose
    ``labeled_tiles`` show the result.
    """
    return {
        "id": str(result.id),
        "name": result.name,
        "submission_id": str(result.submission_id),
        "tool_name": result.tool_name,
        "type": result.type,
        "attributes": result.attributes or {},
        "layers": [
            {"id": str(layer.id), "tpoint": layer.tpoint, "zplane": layer.zplane}
            for layer in layers
        ],
        "plots": [
            {
                "id": str(plot.id),
                "type": (plot.attributes or {}).get("type"),
                "attributes": plot.attributes,
            }
            for plot in result.plots
        ],
    }


def _serialize_job(job: dict[str, Any]) -> dict[str, Any]:
    return {**job, "id": str(job["id"]), "submission_id": str(job["submission_id"])}


def _results(experiment_id: int, query: sa.Select) -> list[dict]:
    with tm.utils.ExperimentSession(experiment_id) as session:
        results = session.scalars(query.order_by(tm.ToolResult.id)).all()
        type_ids = {r.mapobject_type_id for r in results}
        layers: dict[int, list[tm.SegmentationLayer]] = {}
        if type_ids:
            for layer in session.scalars(
                sa.select(tm.SegmentationLayer)
                .where(tm.SegmentationLayer.mapobject_type_id.in_(type_ids))
                .order_by(tm.SegmentationLayer.id)
            ):
                layers.setdefault(layer.mapobject_type_id, []).append(layer)
        return [serialize_tool_result(r, layers.get(r.mapobject_type_id, [])) for r in results]


@api.route("GET", "/tools", summary="The analysis tools", tag=TAG, permission=None)
def get_tools() -> dict:
    return {"data": tools.describe_tools()}


@api.route(
    "POST",
    "/experiments/{experiment_id}/tools/request",
    summary="Validate a tool request and submit its job; returns the submission id",
    tag=TAG,
    permission="write",
    body={
        "tool_name": Param(str, required=True, enum=tuple(tools.TOOLS), description="the tool"),
        "payload": Param(dict, required=True, description="the tool's request (see /tools)"),
        "session_uuid": Param(str, description="the viewer session (informative)"),
    },
)
def request_tool(
    experiment_id: int, tool_name: str, payload: dict, session_uuid: str | None
) -> dict:
    submission_id = tools.submit_request(experiment_id, tool_name, payload, user_id=g.user_id)
    return {"data": {"submission_id": str(submission_id)}}


@api.route(
    "GET",
    "/experiments/{experiment_id}/tools/results",
    summary="Tool results of the experiment",
    tag=TAG,
    query={
        "name": Param(str, description="only results of this name"),
        "submission_id": Param(ID, description="only the result of this submission"),
    },
)
def get_tool_results(experiment_id: int, name: str | None, submission_id: int | None) -> dict:
    query = sa.select(tm.ToolResult)
    if name is not None:
        query = query.where(tm.ToolResult.name == name)
    if submission_id is not None:
        query = query.where(tm.ToolResult.submission_id == submission_id)
    return {"data": _results(experiment_id, query)}


def _one_result(experiment_id: int, tool_result_id: int) -> dict:
    found = _results(
        experiment_id, sa.select(tm.ToolResult).where(tm.ToolResult.id == tool_result_id)
    )
    if not found:
        raise NotFoundError(
            f"tool result {tool_result_id} does not exist in experiment {experiment_id}"
        )
    return found[0]


@api.route(
    "GET",
    "/experiments/{experiment_id}/tools/results/{tool_result_id}",
    summary="A tool result",
    tag=TAG,
)
def get_tool_result(experiment_id: int, tool_result_id: int) -> dict:
    return {"data": _one_result(experiment_id, tool_result_id)}


@api.route(
    "PUT",
    "/experiments/{experiment_id}/tools/results/{tool_result_id}",
    summary="Rename a tool result",
    tag=TAG,
    permission="write",
    body={"name": Param(str, required=True)},
)
def rename_tool_result(experiment_id: int, tool_result_id: int, name: str) -> dict:
    tools.rename_result(experiment_id, tool_result_id, name)
    return {"message": "ok"}


@api.route(
    "DELETE",
    "/experiments/{experiment_id}/tools/results/{tool_result_id}",
    summary="Delete a tool result and its labels",
    tag=TAG,
    permission="write",
)
def delete_tool_result(experiment_id: int, tool_result_id: int) -> dict:
    tools.delete_result(experiment_id, tool_result_id)
    return {"message": "ok"}


@api.route(
    "GET",
    "/experiments/{experiment_id}/tools/jobs",
    summary="Jobs of the experiment's tool requests, newest first",
    tag=TAG,
    query={
        "tool_name": Param(str, description="only jobs of this tool"),
        "state": Param(str, enum=_JOB_STATES, description="only jobs in this state"),
        "submission_id": Param(ID, description="only the job of this submission"),
    },
)
def get_tool_jobs(
    experiment_id: int, tool_name: str | None, state: str | None, submission_id: int | None
) -> dict:
    jobs = tools.tool_jobs(experiment_id, tool_name, state, submission_id)
    return {"data": [_serialize_job(job) for job in jobs]}


@api.route(
    "GET",
    "/experiments/{experiment_id}/tools/jobs/{job_id}/log",
    summary="Output of a tool job",
    tag=TAG,
)
def get_tool_job_log(experiment_id: int, job_id: int) -> dict:
    return {"data": tools.tool_job_log(experiment_id, job_id)}
