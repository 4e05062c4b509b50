"""Channels, their site images (PNG download) and their display layers (reference §7.2)."""

from __future__ import annotations

import io

import sqlalchemy as sa
from flask import Response, send_file

import tmlib.models as tm
from tmlib import registry, site_images
from tmlib.errors import NotFoundError
from tmserver.api import api
from tmserver.routing import Param, content_disposition

TAG = "channels"


def serialize_layer(layer: tm.ChannelLayer, experiment: tm.Experiment) -> dict:
    """``{id, max_zoom, tpoint, zplane, min_intensity, max_intensity, image_size}``.

    ``max_zoom`` and ``image_size`` are those of the experiment's pyramid
    (None before illuminati built it).
    """
    depth = experiment.pyramid_depth
    return {
        "id": str(layer.id),
        "max_zoom": depth - 1 if depth else None,
        "tpoint": layer.tpoint,
        "zplane": layer.zplane,
        "min_intensity": layer.min_intensity,
        "max_intensity": layer.max_intensity,
        "image_size": {"width": experiment.pyramid_width, "height": experiment.pyramid_height},
    }


def _experiment(session) -> tm.Experiment:
    return session.scalars(sa.select(tm.Experiment)).one()


def _serialize_channels(session, channels: list[tm.Channel]) -> list[dict]:
    """``{id, name, bit_depth, pixel_size_um, layers}``.

    ``pixel_size_um`` is the experiment's (micrometres per pixel at full
    resolution; None where the microscope's metadata do not tell it).
    """
    experiment = _experiment(session)
    layers: dict[int, list[dict]] = {c.id: [] for c in channels}
    if channels:
        query = (
            sa.select(tm.ChannelLayer)
            .where(tm.ChannelLayer.channel_id.in_(list(layers)))
            .order_by(tm.ChannelLayer.tpoint, tm.ChannelLayer.zplane)
        )
        for layer in session.scalars(query):
            layers[layer.channel_id].append(serialize_layer(layer, experiment))
    return [
        {
            "id": str(c.id),
            "name": c.name,
            "bit_depth": c.bit_depth,
            "pixel_size_um": experiment.pixel_size_um,
            "layers": layers[c.id],
        }
        for c in channels
    ]


@api.route(
    "GET",
    "/experiments/{experiment_id}/channels",
    summary="Channels of an experiment, with their layers",
    tag=TAG,
    query={"name": Param(str, description="only the channel of this name")},
)
def get_channels(experiment_id: int, name: str | None) -> dict:
    with tm.utils.ExperimentSession(experiment_id) as session:
        query = sa.select(tm.Channel).order_by(tm.Channel.id)
        if name is not None:
            query = query.where(tm.Channel.name == name)
        return {"data": _serialize_channels(session, list(session.scalars(query)))}


@api.route(
    "GET", "/experiments/{experiment_id}/channels/{channel_id}", summary="A channel", tag=TAG
)
def get_channel(experiment_id: int, channel_id: int) -> dict:
    with tm.utils.ExperimentSession(experiment_id) as session:
        channel = session.get(tm.Channel, channel_id)
        if channel is None:
            raise NotFoundError(f"channel {channel_id} does not exist")
        return {"data": _serialize_channels(session, [channel])[0]}


@api.route(
    "PUT",
    "/experiments/{experiment_id}/channels/{channel_id}",
    summary="Rename a channel",
    tag=TAG,
    permission="write",
    body={"name": Param(str, required=True)},
)
def rename_channel(experiment_id: int, channel_id: int, name: str) -> dict:
    registry.rename_channel(experiment_id, channel_id, name)
    return {"message": "ok"}


@api.route(
    "GET",
    "/experiments/{experiment_id}/channels/{channel_id}/image-file",
    summary="A site's image of the channel as PNG at its original bit depth",
    tag=TAG,
    produces="image/png",
    query={
        "plate_name": Param(str, required=True),
        "well_name": Param(str, required=True),
        "well_pos_x": Param(int, required=True, minimum=0),
        "well_pos_y": Param(int, required=True, minimum=0),
        "cycle_index": Param(int, default=0, minimum=0),
        "tpoint": Param(int, default=0, minimum=0),
        "zplane": Param(int, default=0, minimum=0),
        "correct": Param(bool, default=False, description="correct for illumination"),
        "align": Param(bool, default=False, description="align to the reference cycle"),
    },
)
def get_channel_image_file(
    experiment_id: int,
    channel_id: int,
    plate_name: str,
    well_name: str,
    well_pos_x: int,
    well_pos_y: int,
    cycle_index: int,
    tpoint: int,
    zplane: int,
    correct: bool,
    align: bool,
) -> Response:
    with tm.utils.MainSession() as session:
        experiment_name = session.get(tm.ExperimentReference, experiment_id).name
    with tm.utils.ExperimentSession(experiment_id) as session:
        channel = session.get(tm.Channel, channel_id)
        if channel is None:
            raise NotFoundError(f"channel {channel_id} does not exist")
        site = site_images.find_site(session, plate_name, well_name, well_pos_x, well_pos_y)
        pixels = site_images.site_image(
            session, channel_id, site.id, cycle_index, tpoint, zplane, correct, align
        )
        filename = site_images.site_image_filename(
            experiment_name, plate_name, well_name, well_pos_y, well_pos_x, zplane, tpoint,
            channel.name,
        )  # fmt: skip
    response = send_file(io.BytesIO(site_images.encode_png(pixels)), mimetype="image/png")
    # the names are the user's: quoted, never raw (CR/LF in them would be a 500)
    response.headers["Content-Disposition"] = content_disposition(filename)
    return response


# --- channel layers ---------------------------------------------------------------


@api.route(
    "GET",
    "/experiments/{experiment_id}/channel_layers",
    summary="Display layers (one per channel, time point and z-plane)",
    tag=TAG,
    query={
        "channel_name": Param(str, description="only layers of this channel"),
        "tpoint": Param(int, minimum=0),
        "zplane": Param(int, minimum=0),
    },
)
def get_channel_layers(
    experiment_id: int, channel_name: str | None, tpoint: int | None, zplane: int | None
) -> dict:
    with tm.utils.ExperimentSession(experiment_id) as session:
        query = sa.select(tm.ChannelLayer).order_by(tm.ChannelLayer.id)
        if channel_name is not None:
            channel_id = session.scalar(
                sa.select(tm.Channel.id).where(tm.Channel.name == channel_name)
            )
            if channel_id is None:
                raise NotFoundError(f"channel {channel_name!r} does not exist")
            query = query.where(tm.ChannelLayer.channel_id == channel_id)
        if tpoint is not None:
            query = query.where(tm.ChannelLayer.tpoint == tpoint)
        if zplane is not None:
            query = query.where(tm.ChannelLayer.zplane == zplane)
        experiment = _experiment(session)
        return {"data": [serialize_layer(layer, experiment) for layer in session.scalars(query)]}


@api.route(
    "GET",
    "/experiments/{experiment_id}/channel_layers/{channel_layer_id}",
    summary="A display layer",
    tag=TAG,
)
def get_channel_layer(experiment_id: int, channel_layer_id: int) -> dict:
    with tm.utils.ExperimentSession(experiment_id) as session:
        layer = session.get(tm.ChannelLayer, channel_layer_id)
        if layer is None:
            raise NotFoundError(f"channel layer {channel_layer_id} does not exist")
        return {"data": serialize_layer(layer, _experiment(session))}
