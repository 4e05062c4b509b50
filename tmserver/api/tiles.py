"""Map tiles: raster tiles of channel layers, vector tiles of segmentation layers.

Tile routes accept the token also as ``?access_token=`` (browsers' tile
loaders send no headers). The work is in :mod:`tmlib.maptiles`.
"""

from __future__ import annotations

import sqlalchemy as sa

import tmlib.models as tm
from tmlib import maptiles
from tmserver.api import api
from tmserver.routing import Blob, Param

TAG = "tiles"
#: tiles change only when a pyramid or a segmentation is rebuilt
_CACHE_CONTROL = "private, max-age=3600"

_XYZ = {
    "x": Param(int, required=True, minimum=0, description="tile column"),
    "y": Param(int, required=True, minimum=0, description="tile row"),
    "z": Param(int, required=True, minimum=0, description="zoom level (0 = overview)"),
}


@api.route(
    "GET",
    "/experiments/{experiment_id}/channel_layers/{channel_layer_id}/tiles",
    summary="A raster tile of a channel layer (JPEG; black where nothing is stored)",
    tag=TAG,
    query=_XYZ,
    produces="image/jpeg",
    token_in_query=True,
    fast=True,
)
def get_channel_layer_tile(
    experiment_id: int, channel_layer_id: int, x: int, y: int, z: int
) -> Blob:
    data = maptiles.raster_tile(experiment_id, channel_layer_id, z, x, y)
    version = maptiles.raster_tile_version(experiment_id, channel_layer_id)
    etag = f"{channel_layer_id}-{version}-{z}-{x}-{y}"
    return Blob(data, "image/jpeg", _CACHE_CONTROL, etag)


def serialize_segmentation_layer(layer: tm.SegmentationLayer, image_size: dict) -> dict:
    """``{id, tpoint, zplane, image_size}``."""
    return {
        "id": str(layer.id),
        "tpoint": layer.tpoint,
        "zplane": layer.zplane,
        "image_size": image_size,
    }


def image_size(session) -> dict:
    """``{width, height}`` of the mosaic at full resolution."""
    experiment = session.scalars(sa.select(tm.Experiment)).one()
    if experiment.pyramid_height is None:
        from tmlib.mosaic import experiment_mosaic

        try:
            mosaic = experiment_mosaic(session)
        except Exception:  # no sites yet
            return {"width": 0, "height": 0}
        return {"width": mosaic.width, "height": mosaic.height}
    return {"width": experiment.pyramid_width, "height": experiment.pyramid_height}


@api.route(
    "GET",
    "/experiments/{experiment_id}/segmentation_layers",
    summary="Segmentation layers (vector-tile sources)",
    tag=TAG,
    query={
        "mapobject_type_name": Param(str),
        "tpoint": Param(int, minimum=0),
        "zplane": Param(int, minimum=0),
    },
)
def get_segmentation_layers(
    experiment_id: int, mapobject_type_name: str | None, tpoint: int | None, zplane: int | None
) -> dict:
    with tm.utils.ExperimentSession(experiment_id) as session:
        query = (
            sa.select(tm.SegmentationLayer).join(tm.MapobjectType).order_by(tm.SegmentationLayer.id)
        )
        if mapobject_type_name is not None:
            query = query.where(tm.MapobjectType.name == mapobject_type_name)
        if tpoint is not None:
            query = query.where(tm.SegmentationLayer.tpoint == tpoint)
        if zplane is not None:
            query = query.where(tm.SegmentationLayer.zplane == zplane)
        size = image_size(session)
        return {"data": [serialize_segmentation_layer(x, size) for x in session.scalars(query)]}


def _geojson(data: bytes) -> Blob:
    return Blob(data, "application/geo+json", "private, no-cache")


@api.route(
    "GET",
    "/experiments/{experiment_id}/segmentation_layers/{segmentation_layer_id}/tiles",
    summary="A vector tile of objects (GeoJSON FeatureCollection)",
    tag=TAG,
    query=_XYZ,
    produces="application/geo+json",
    token_in_query=True,
    fast=True,
)
def get_segmentation_layer_tile(
    experiment_id: int, segmentation_layer_id: int, x: int, y: int, z: int
) -> Blob:
    return _geojson(maptiles.vector_tile(experiment_id, segmentation_layer_id, z, x, y))


#: the media type of Mapbox Vector Tiles
MVT_TYPE = "application/vnd.mapbox-vector-tile"


@api.route(
    "GET",
    "/experiments/{experiment_id}/segmentation_layers/{segmentation_layer_id}/tiles.mvt",
    summary="A vector tile of objects as Mapbox Vector Tile (one layer named by the object "
    "type; feature id = object id; extent 4096; tile-local y down from the top-left)",
    tag=TAG,
    query=_XYZ,
    produces=MVT_TYPE,
    token_in_query=True,
    fast=True,
)
def get_segmentation_layer_mvt(
    experiment_id: int, segmentation_layer_id: int, x: int, y: int, z: int
) -> Blob:
    data = maptiles.mvt_tile(experiment_id, segmentation_layer_id, z, x, y)
    return Blob(data, MVT_TYPE, "private, no-cache")


@api.route(
    "GET",
    "/experiments/{experiment_id}/segmentation_layers/{segmentation_layer_id}/labeled_tiles",
    summary="A vector tile of objects with the labels of a tool result",
    tag=TAG,
    query={**_XYZ, "result_name": Param(str, required=True)},
    produces="application/geo+json",
    token_in_query=True,
    fast=True,
)
def get_segmentation_layer_labeled_tile(
    experiment_id: int, segmentation_layer_id: int, x: int, y: int, z: int, result_name: str
) -> Blob:
    objects = maptiles.tile_objects(experiment_id, segmentation_layer_id, z, x, y)
    labels = maptiles.tile_labels(experiment_id, objects.type_name, result_name, objects)
    return _geojson(maptiles.feature_collection(objects, labels))
