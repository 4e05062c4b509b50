"""The caller's selections of objects (the viewer's), kept on the server.

Reading needs read access to the experiment, changing write access; every
user sees and changes only their own selections (another user's is a 404).
The work is in :mod:`tmlib.selections`.
"""

from __future__ import annotations

from flask import Response, g

from tmlib import selections as lib
from tmserver.api import api
from tmserver.routing import ID, Param, content_disposition

TAG = "selections"
_BASE = "/experiments/{experiment_id}/selections"
_ONE = _BASE + "/{selection_id}"


@api.route(
    "GET",
    _BASE,
    summary="The caller's selections: [{id, mapobject_type_id, name, color, count, created_at}]",
    tag=TAG,
    query={"mapobject_type_id": Param(ID, description="only selections of this object type")},
)
def get_selections(experiment_id: int, mapobject_type_id: int | None) -> dict:
    return {"data": lib.list_selections(experiment_id, g.user_id, mapobject_type_id)}


@api.route(
    "POST",
    _BASE,
    summary="Create an empty selection (name unique per user and object type; 409 if taken)",
    tag=TAG,
    permission="write",
    status=201,
    body={
        "mapobject_type_id": Param(ID, required=True),
        "name": Param(str, required=True, description="1 to 255 characters"),
        "color": Param(str, required=True, description="#rrggbb"),
    },
)
def create_selection(experiment_id: int, mapobject_type_id: int, name: str, color: str) -> dict:
    data = lib.create_selection(experiment_id, g.user_id, mapobject_type_id, name, color)
    return {"data": data}


@api.route(
    "GET",
    _ONE,
    summary="A selection of the caller's with its members: [{mapobject_id, x, y}]",
    tag=TAG,
)
def get_selection(experiment_id: int, selection_id: int) -> dict:
    return {"data": lib.get_selection(experiment_id, g.user_id, selection_id)}


@api.route(
    "PUT",
    _ONE,
    summary="Rename or recolour a selection of the caller's",
    tag=TAG,
    permission="write",
    body={"name": Param(str), "color": Param(str, description="#rrggbb")},
)
def update_selection(
    experiment_id: int, selection_id: int, name: str | None, color: str | None
) -> dict:
    return {"data": lib.update_selection(experiment_id, g.user_id, selection_id, name, color)}


@api.route(
    "DELETE",
    _ONE,
    summary="Delete a selection of the caller's",
    tag=TAG,
    permission="write",
)
def delete_selection(experiment_id: int, selection_id: int) -> dict:
    lib.delete_selection(experiment_id, g.user_id, selection_id)
    return {"message": "ok"}


@api.route(
    "POST",
    _ONE + "/members",
    summary="Add and remove members of a selection of the caller's; returns {count}",
    tag=TAG,
    permission="write",
    body={
        "add": Param(
            list,
            default=[],
            items=dict,
            description="[{mapobject_id, x, y}]: objects of the selection's type and the map "
            "points (x, -row) where they were picked; adding one again keeps one",
        ),
        "remove": Param(list, default=[], items=ID, description="object ids"),
    },
)
def change_selection_members(
    experiment_id: int, selection_id: int, add: list, remove: list
) -> dict:
    count = lib.change_members(experiment_id, g.user_id, selection_id, add, remove)
    return {"data": {"count": count}}


@api.route(
    "GET",
    _ONE + "/members.csv",
    summary="The members of a selection of the caller's as streamed CSV: mapobject_id, "
    "plate_name, well_name, well_pos_y, well_pos_x, label, x, y",
    tag=TAG,
    produces="text/csv",
)
def get_selection_members_csv(experiment_id: int, selection_id: int) -> Response:
    # checked before the answer starts: an error later could not change its status
    experiment, type_name, name = lib.export_names(experiment_id, g.user_id, selection_id)
    user_id = g.user_id  # the generator runs after the request's context
    response = Response(lib.members_csv(experiment_id, user_id, selection_id), mimetype="text/csv")
    filename = f"{experiment}_{type_name}_{name}_selection.csv"
    response.headers["Content-Disposition"] = content_disposition(filename)
    return response
