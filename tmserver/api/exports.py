"""Exports of an experiment (OME-Zarr), run as background jobs; each is its submitter's alone.

The logic is :mod:`tmlib.exports`; these routes add the caller. Another user,
even one the experiment is shared with, gets 404 for an export and does not
see it listed.
"""

from __future__ import annotations

from typing import Any

from flask import g

from tmlib import exports
from tmlib.omezarr.layout import MAX_LEVELS
from tmserver.api import api
from tmserver.routing import Param

TAG = "exports"

_PATH = "/experiments/{experiment_id}/exports"


def serialize_export(export: dict[str, Any]) -> dict[str, Any]:
    """An export of :func:`tmlib.exports.get_export` with its ids as strings."""
    return {
        **export,
        **{key: str(export[key]) for key in ("id", "submission_id", "job_id", "user_id")},
    }


@api.route(
    "POST",
    _PATH,
    summary="Export the experiment (OME-Zarr plates) in a background job of the caller's",
    tag=TAG,
    permission="write",
    status=201,
    body={
        "format": Param(str, required=True, enum=exports.FORMATS, description="the format"),
        "version": Param(str, default="0.5", description="NGFF version: 0.5 or 0.4"),
        "objects": Param(
            list, items=str, default=[], description="object types written as label images"
        ),
        "features": Param(bool, default=False, description="also write feature tables"),
        "levels": Param(
            int,
            minimum=1,
            schema={"maximum": MAX_LEVELS},
            description="pyramid levels (default: halve until both sides are at most 512)",
        ),
        "correct": Param(bool, default=False, description="correct illumination (corilla)"),
        "align": Param(bool, default=False, description="align cycles (align)"),
    },
)
def create_export(
    experiment_id: int,
    format: str,
    version: str,
    objects: list[str],
    features: bool,
    levels: int | None,
    correct: bool,
    align: bool,
) -> dict:
    export = exports.submit_export(
        experiment_id,
        g.user_id,
        format=format,
        version=version,
        objects=objects,
        features=features,
        levels=levels,
        correct=correct,
        align=align,
    )
    return {"data": serialize_export(export)}


@api.route("GET", _PATH, summary="The caller's exports of the experiment, newest first", tag=TAG)
def get_exports(experiment_id: int) -> dict:
    return {"data": [serialize_export(e) for e in exports.list_exports(experiment_id, g.user_id)]}


@api.route(
    "GET",
    _PATH + "/{export_id}",
    summary="An export of the caller's: its state and where it was written on the server",
    tag=TAG,
)
def get_export(experiment_id: int, export_id: int) -> dict:
    return {"data": serialize_export(exports.get_export(experiment_id, export_id, g.user_id))}


@api.route(
    "GET",
    _PATH + "/{export_id}/log",
    summary="Output of the job of an export of the caller's",
    tag=TAG,
)
def get_export_log(experiment_id: int, export_id: int) -> dict:
    return {"data": exports.export_log(experiment_id, export_id, g.user_id)}


@api.route(
    "DELETE",
    _PATH + "/{export_id}",
    summary="Delete an export of the caller's: stop its job and remove what it wrote",
    tag=TAG,
    permission="write",
)
def delete_export(experiment_id: int, export_id: int) -> dict:
    exports.delete_export(experiment_id, export_id, g.user_id)
    return {"message": "ok"}
