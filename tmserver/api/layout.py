"""The mosaic layout: where plates, wells and sites lie on the map (for the viewer's readout)."""

from __future__ import annotations

import tmlib.models as tm
from tmlib.mosaic import describe_layout
from tmserver.api import api

TAG = "tiles"


@api.route(
    "GET",
    "/experiments/{experiment_id}/layout",
    summary="Boxes [x, y, width, height] of the plates, wells and sites in the map (pixels)",
    tag=TAG,
)
def get_layout(experiment_id: int) -> dict:
    with tm.utils.ExperimentSession(experiment_id) as session:
        return {"data": describe_layout(session)}
