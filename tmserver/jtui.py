"""Routes of the pipeline editor under ``/jtui`` (reference §7.2, JTUI).

A project is ``{pipeline: <pipeline.yaml mapping>, handles: {module: <handles mapping>}}``
(see :mod:`tmlib.jterator.editor`). Debug jobs run the pipeline with figures on
one site each (job *n* = the *n*-th site by id) in a background submission
of program ``jtui``.
"""

from __future__ import annotations

from flask import Response

from tmlib.errors import NotFoundError
from tmlib.jterator import editor
from tmlib.workflow import manager
from tmserver.api.workflow import serialize_status
from tmserver.routing import ID, Api, Param

jtui = Api("jtui", "/jtui")

TAG = "jtui"
#: the project's pipeline entries as the check wants them (the editor takes the name rule
#: from here)
_ENTRY_SCHEMA = {
    "type": "object",
    "required": ["source", "handles"],
    "properties": {
        "source": {"type": "string", "pattern": editor.SOURCE_PATTERN},
        "handles": {"type": "string", "pattern": editor.HANDLES_PATH_PATTERN},
        "active": {"type": "boolean"},
    },
}
_PROJECT = Param(
    dict,
    required=True,
    description="{pipeline, handles}",
    schema={
        "required": ["pipeline", "handles"],
        "properties": {
            "pipeline": {
                "type": "object",
                "description": "pipeline.yaml: {input: {channels, objects}, pipeline, output}",
                "properties": {"pipeline": {"type": "array", "items": _ENTRY_SCHEMA}},
            },
            "handles": {
                "type": "object",
                "description": "handles of each module, by module name",
                "additionalProperties": {"type": "object"},
            },
        },
    },
)


@jtui.route(
    "GET",
    "/experiments/{experiment_id}/project",
    summary="The jterator project (the default one if none is stored)",
    tag=TAG,
)
def jtui_get_project(experiment_id: int) -> dict:
    return {"data": editor.read_project(experiment_id)}


@jtui.route(
    "POST",
    "/experiments/{experiment_id}/project",
    summary="Store the jterator project (checked first)",
    tag=TAG,
    permission="write",
    body={"project": _PROJECT},
)
def jtui_save_project(experiment_id: int, project: dict) -> dict:
    editor.save_project(experiment_id, project)
    return {"message": "ok"}


@jtui.route(
    "DELETE",
    "/experiments/{experiment_id}/project",
    summary="Delete the jterator project",
    tag=TAG,
    permission="write",
)
def jtui_delete_project(experiment_id: int) -> dict:
    editor.delete_project(experiment_id)
    return {"message": "ok"}


@jtui.route(
    "POST",
    "/experiments/{experiment_id}/project/check",
    summary="Check a jterator project without storing it",
    tag=TAG,
    body={"project": _PROJECT},
)
def jtui_check_project(experiment_id: int, project: dict) -> dict:
    editor.check_project(experiment_id, project)
    return {"message": "ok"}


@jtui.route(
    "GET",
    "/available_modules",
    summary="Modules on the module path with their handles templates",
    tag=TAG,
    permission=None,
)
def jtui_available_modules() -> dict:
    return {"data": editor.available_modules()}


@jtui.route(
    "GET",
    "/experiments/{experiment_id}/available_channels",
    summary="Channels the pipeline can load",
    tag=TAG,
)
def jtui_available_channels(experiment_id: int) -> dict:
    return {"data": editor.channel_names(experiment_id)}


@jtui.route(
    "GET",
    "/experiments/{experiment_id}/available_objects",
    summary="Object types the pipeline can load as input objects (not Plates, Wells, Sites)",
    tag=TAG,
)
def jtui_available_objects(experiment_id: int) -> dict:
    return {"data": editor.object_type_names(experiment_id)}


@jtui.route(
    "GET",
    "/handle_types",
    summary="Handle types {name, kind, accepts}: which keys a piped input may take",
    tag=TAG,
    permission=None,
)
def jtui_handle_types() -> dict:
    return {"data": editor.handle_types()}


@jtui.route(
    "GET",
    "/module_source_code",
    summary="Code of a module on the module path",
    tag=TAG,
    permission=None,
    query={"module_name": Param(str, required=True, description="e.g. smooth")},
    produces="text/x-python",
)
def jtui_module_source_code(module_name: str) -> Response:
    return Response(editor.module_source(module_name), mimetype="text/x-python")


@jtui.route(
    "GET",
    "/experiments/{experiment_id}/figure",
    summary="Figure (Plotly JSON) a module made in a debug job",
    tag=TAG,
    query={
        "module_name": Param(str, required=True),
        "job_id": Param(int, required=True, minimum=1),
    },
)
def jtui_figure(experiment_id: int, module_name: str, job_id: int) -> dict:
    return {"data": editor.read_figure(experiment_id, module_name, job_id)}


@jtui.route(
    "POST",
    "/experiments/{experiment_id}/joblist",
    summary="Sites debug jobs can run on: {id, site_id, plate, well, x, y} (paged)",
    tag=TAG,
    body={
        "index": Param(int, default=0, minimum=0),
        "batch_size": Param(int, minimum=0, description="at most this many (default all)"),
    },
)
def jtui_joblist(experiment_id: int, index: int, batch_size: int | None) -> dict:
    jobs = editor.job_list(experiment_id, index, batch_size)
    return {"data": [{**j, "site_id": str(j["site_id"])} for j in jobs]}


@jtui.route(
    "POST",
    "/experiments/{experiment_id}/jobs/run",
    summary=f"Run the pipeline with figures on up to {editor.MAX_DEBUG_JOBS} sites",
    tag=TAG,
    permission="write",
    body={
        "job_ids": Param(list, required=True, items=int, description="1-based site indices"),
        "project": Param(dict, description="{pipeline, handles}, stored first"),
    },
)
def jtui_run_jobs(experiment_id: int, job_ids: list[int], project: dict | None) -> dict:
    submission_id = editor.submit_debug_jobs(experiment_id, job_ids, project)
    return {"message": "ok", "data": {"submission_id": str(submission_id)}}


@jtui.route(
    "POST",
    "/experiments/{experiment_id}/jobs/status",
    summary="Status of the last debug jobs (null before the first)",
    tag=TAG,
)
def jtui_job_status(experiment_id: int) -> dict:
    return {"data": serialize_status(manager.status_or_none(experiment_id, editor.PROGRAM))}


@jtui.route(
    "POST",
    "/experiments/{experiment_id}/jobs/output",
    summary="Output (stdout, stderr, exit code) of the last debug jobs",
    tag=TAG,
    body={"job_ids": Param(list, items=int, description="only these jobs")},
)
def jtui_job_output(experiment_id: int, job_ids: list[int] | None) -> dict:
    jobs = editor.debug_output(experiment_id, job_ids)
    return {"data": [{**j, "task_id": str(j["task_id"])} for j in jobs]}


@jtui.route(
    "POST",
    "/experiments/{experiment_id}/jobs/kill",
    summary="Stop the debug jobs (the last submission, or the one of task_id)",
    tag=TAG,
    permission="write",
    body={"task_id": Param(ID, description="top task of a debug submission")},
)
def jtui_kill_jobs(experiment_id: int, task_id: int | None) -> dict:
    if task_id is None:
        manager.kill(experiment_id, editor.PROGRAM)
        return {"message": "ok"}
    submission_id = manager.submission_of_task(experiment_id, task_id, editor.PROGRAM)
    if submission_id is None:
        raise NotFoundError(f"experiment {experiment_id} has no debug job task {task_id}")
    manager.kill_submission(submission_id)
    return {"message": "ok"}
