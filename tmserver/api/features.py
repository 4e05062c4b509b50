"""Features of object types: list, rename, delete, upload values, CSV downloads."""

from __future__ import annotations

from flask import Response

import tmlib.models as tm
from tmlib import features as lib
from tmlib.site_images import find_site
from tmserver.api import api
from tmserver.routing import Param, content_disposition

TAG = "features"

_LOCATION = {
    "plate_name": Param(str, description="only objects of this plate"),
    "well_name": Param(str, description="only objects of this well"),
    "well_pos_x": Param(int, minimum=0, description="only objects of sites in this column"),
    "well_pos_y": Param(int, minimum=0, description="only objects of sites in this row"),
    "tpoint": Param(int, minimum=0, description="only values at this time point"),
}


@api.route(
    "GET",
    "/experiments/{experiment_id}/mapobject_types/{mapobject_type_id}/features",
    summary="Features of an object type",
    tag=TAG,
    query={"name": Param(str, description="only the feature of this name")},
)
def get_features(experiment_id: int, mapobject_type_id: int, name: str | None) -> dict:
    with tm.utils.ExperimentSession(experiment_id) as session:
        kind = lib.get_mapobject_type(session, mapobject_type_id)
        found = [f for f in lib.sorted_features(kind) if name is None or f.name == name]
        return {"data": [{"id": str(f.id), "name": f.name} for f in found]}


@api.route(
    "PUT",
    "/experiments/{experiment_id}/features/{feature_id}",
    summary="Rename a feature",
    tag=TAG,
    permission="write",
    body={"name": Param(str, required=True)},
)
def rename_feature(experiment_id: int, feature_id: int, name: str) -> dict:
    lib.rename_feature(experiment_id, feature_id, name)
    return {"message": "ok"}


@api.route(
    "DELETE",
    "/experiments/{experiment_id}/features/{feature_id}",
    summary="Delete a feature and its values",
    tag=TAG,
    permission="write",
)
def delete_feature(experiment_id: int, feature_id: int) -> dict:
    lib.delete_feature(experiment_id, feature_id)
    return {"message": "ok"}


@api.route(
    "POST",
    "/experiments/{experiment_id}/mapobject_types/{mapobject_type_id}/feature-values",
    summary="Upload feature values of the objects of a site (features are created)",
    tag=TAG,
    permission="write",
    bulk_json=True,
    body={
        "plate_name": Param(str, required=True),
        "well_name": Param(str, required=True),
        "well_pos_x": Param(int, required=True, minimum=0),
        "well_pos_y": Param(int, required=True, minimum=0),
        "tpoint": Param(int, default=0, minimum=0),
        "names": Param(list, required=True, items=str, description="p feature names"),
        "labels": Param(list, required=True, items=int, description="n object labels"),
        "values": Param(list, required=True, items=list, description="n × p numbers"),
    },
)
def add_feature_values(
    experiment_id: int,
    mapobject_type_id: int,
    plate_name: str,
    well_name: str,
    well_pos_x: int,
    well_pos_y: int,
    tpoint: int,
    names: list,
    labels: list,
    values: list,
) -> dict:
    with tm.utils.ExperimentSession(experiment_id) as session:
        site_id = find_site(session, plate_name, well_name, well_pos_x, well_pos_y).id
    lib.add_feature_values(experiment_id, mapobject_type_id, site_id, tpoint, names, labels, values)
    return {"message": "ok"}


def _csv_response(chunks, filename: str) -> Response:
    response = Response(chunks, mimetype="text/csv")
    response.headers["Content-Disposition"] = content_disposition(filename)
    return response


@api.route(
    "GET",
    "/experiments/{experiment_id}/mapobject_types/{mapobject_type_id}/feature-values",
    summary="Feature values as streamed CSV: mapobject_id and the features by id",
    tag=TAG,
    query=_LOCATION,
    produces="text/csv",
)
def get_feature_values(experiment_id: int, mapobject_type_id: int, **location) -> Response:
    names = _names(experiment_id, mapobject_type_id, location)
    return _csv_response(
        lib.feature_values_csv(experiment_id, mapobject_type_id, **location),
        lib.export_filename(*names, "feature-values", **_file_parts(location)),
    )


@api.route(
    "GET",
    "/experiments/{experiment_id}/mapobject_types/{mapobject_type_id}/metadata",
    summary="Object metadata as streamed CSV: where each object is and its tool results",
    tag=TAG,
    query=_LOCATION,
    produces="text/csv",
)
def get_metadata(experiment_id: int, mapobject_type_id: int, **location) -> Response:
    names = _names(experiment_id, mapobject_type_id, location)
    return _csv_response(
        lib.metadata_csv(experiment_id, mapobject_type_id, **location),
        lib.export_filename(*names, "metadata", **_file_parts(location)),
    )


def _names(experiment_id: int, mapobject_type_id: int, location: dict) -> tuple[str, str]:
    # validate before the response starts: errors after it cannot change the status
    return lib.check_export(
        experiment_id,
        mapobject_type_id,
        location["plate_name"],
        location["well_name"],
        location["well_pos_x"],
        location["well_pos_y"],
    )


def _file_parts(location: dict) -> dict:
    return {k: location[k] for k in ("plate_name", "well_name", "well_pos_y", "well_pos_x",
                                     "tpoint")}  # fmt: skip
