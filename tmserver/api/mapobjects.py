"""Object types, one object's whereabouts, and user-provided segmentations of sites.

The work is in :mod:`tmlib.segmentations`.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Response

import tmlib.models as tm
from tmlib import segmentations as lib
from tmlib import values
from tmlib.features import get_mapobject_type, sorted_features
from tmlib.site_images import find_site
from tmserver.api import api
from tmserver.api.tiles import image_size, serialize_segmentation_layer
from tmserver.routing import ID, Param

TAG = "mapobjects"

_SITE = {
    "plate_name": Param(str, required=True),
    "well_name": Param(str, required=True),
    "well_pos_x": Param(int, required=True, minimum=0, description="column of the site"),
    "well_pos_y": Param(int, required=True, minimum=0, description="row of the site"),
}
_ALIGN = Param(bool, default=False, description="the label image is of the aligned site")


def serialize_mapobject_type(kind: tm.MapobjectType, size: dict) -> dict:
    """``{id, name, ref_type, features: [{id, name}], layers: [segmentation layer]}``."""
    return {
        "id": str(kind.id),
        "name": kind.name,
        "ref_type": kind.ref_type,
        "features": [{"id": str(f.id), "name": f.name} for f in sorted_features(kind)],
        "layers": [
            serialize_segmentation_layer(layer, size)
            for layer in sorted(kind.layers, key=lambda x: x.id)
        ],
    }


def _mapobject_type_response(experiment_id: int, mapobject_type_id: int) -> dict:
    with tm.utils.ExperimentSession(experiment_id) as session:
        kind = get_mapobject_type(session, mapobject_type_id)
        return {"data": serialize_mapobject_type(kind, image_size(session))}


@api.route(
    "GET",
    "/experiments/{experiment_id}/mapobject_types",
    summary="Object types with their features and segmentation layers",
    tag=TAG,
    query={"name": Param(str, description="only the type of this name")},
)
def get_mapobject_types(experiment_id: int, name: str | None) -> dict:
    with tm.utils.ExperimentSession(experiment_id) as session:
        query = sa.select(tm.MapobjectType).order_by(tm.MapobjectType.id)
        if name is not None:
            query = query.where(tm.MapobjectType.name == name)
        size = image_size(session)
        return {"data": [serialize_mapobject_type(k, size) for k in session.scalars(query)]}


@api.route(
    "POST",
    "/experiments/{experiment_id}/mapobject_types",
    summary="Create an object type for user-provided segmentations",
    tag=TAG,
    permission="write",
    body={"name": Param(str, required=True, description="1 to 50 characters")},
)
def create_mapobject_type(experiment_id: int, name: str) -> dict:
    type_id = lib.create_mapobject_type(experiment_id, name)
    return _mapobject_type_response(experiment_id, type_id)


@api.route(
    "GET",
    "/experiments/{experiment_id}/mapobject_types/{mapobject_type_id}",
    summary="An object type",
    tag=TAG,
)
def get_mapobject_type_by_id(experiment_id: int, mapobject_type_id: int) -> dict:
    return _mapobject_type_response(experiment_id, mapobject_type_id)


@api.route(
    "PUT",
    "/experiments/{experiment_id}/mapobject_types/{mapobject_type_id}",
    summary="Rename an object type",
    tag=TAG,
    permission="write",
    body={"name": Param(str, required=True)},
)
def rename_mapobject_type(experiment_id: int, mapobject_type_id: int, name: str) -> dict:
    lib.rename_mapobject_type(experiment_id, mapobject_type_id, name)
    return {"message": "ok"}


@api.route(
    "DELETE",
    "/experiments/{experiment_id}/mapobject_types/{mapobject_type_id}",
    summary="Delete an object type with its objects, features, values and tool results",
    tag=TAG,
    permission="write",
)
def delete_mapobject_type(experiment_id: int, mapobject_type_id: int) -> dict:
    lib.delete_mapobject_type(experiment_id, mapobject_type_id)
    return {"message": "ok"}


@api.route(
    "GET",
    "/experiments/{experiment_id}/mapobjects/{mapobject_id}/info",
    summary="Where an object is: plate, well, site, time point, z-plane and label",
    tag=TAG,
)
def get_mapobject_info(experiment_id: int, mapobject_id: int) -> dict:
    return {"data": lib.mapobject_info(experiment_id, mapobject_id)}


@api.route(
    "GET",
    "/experiments/{experiment_id}/mapobject_types/{mapobject_type_id}/values",
    summary="One value per object of the type, to colour them: a feature's values or a tool "
    "result's labels (binary: ids ascending, then float32 values, little-endian)",
    tag=TAG,
    query={
        "feature_id": Param(ID, description="the values of this feature of the type"),
        "tool_result_id": Param(
            ID, description="the labels of this tool result (a heat map: its feature's values)"
        ),
        "tpoint": Param(int, default=0, minimum=0, description="time point of the values"),
    },
    produces="application/octet-stream",
)
def get_mapobject_values(
    experiment_id: int,
    mapobject_type_id: int,
    feature_id: int | None,
    tool_result_id: int | None,
    tpoint: int,
) -> Response:
    found = values.type_values(experiment_id, mapobject_type_id, feature_id, tool_result_id, tpoint)
    response = Response(found.to_bytes(), mimetype="application/octet-stream")
    response.headers["X-Id-Dtype"] = found.id_dtype
    response.headers["X-Count"] = str(found.count)
    response.headers["Cache-Control"] = "private, no-cache"
    return response


def _site_id(experiment_id: int, site: dict) -> int:
    with tm.utils.ExperimentSession(experiment_id) as session:
        return find_site(
            session, site["plate_name"], site["well_name"], site["well_pos_x"], site["well_pos_y"]
        ).id


@api.route(
    "POST",
    "/experiments/{experiment_id}/mapobject_types/{mapobject_type_id}/segmentations",
    summary="Upload the label image of a site (replaces the one of that tpoint and zplane)",
    tag=TAG,
    permission="write",
    query={"align": _ALIGN},
    body={
        **_SITE,
        "tpoint": Param(int, default=0, minimum=0),
        "zplane": Param(int, default=0, minimum=0),
        "npz_file": Param(
            str, required=True, description="base64 of an .npz with the array 'segmentation'"
        ),
    },
)
def add_segmentations(
    experiment_id: int,
    mapobject_type_id: int,
    align: bool,
    tpoint: int,
    zplane: int,
    npz_file: str,
    **site,
) -> dict:
    site_id = _site_id(experiment_id, site)
    lib.upload_segmentation(
        experiment_id, mapobject_type_id, site_id, tpoint, zplane, npz_file, align
    )
    return {"message": "ok"}


@api.route(
    "GET",
    "/experiments/{experiment_id}/mapobject_types/{mapobject_type_id}/segmentations",
    summary="The label image of a site, rasterised from the stored outlines",
    tag=TAG,
    query={
        **_SITE,
        "tpoint": Param(int, required=True, minimum=0),
        "zplane": Param(int, required=True, minimum=0),
        "align": _ALIGN,
    },
)
def get_segmentations(
    experiment_id: int, mapobject_type_id: int, tpoint: int, zplane: int, align: bool, **site
) -> dict:
    site_id = _site_id(experiment_id, site)
    labels = lib.get_segmentation(experiment_id, mapobject_type_id, site_id, tpoint, zplane, align)
    return {"data": labels.tolist()}
