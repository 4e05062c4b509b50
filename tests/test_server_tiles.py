"""Map tiles over HTTP against the processed plate: raster bytes, vector objects by zoom."""

from __future__ import annotations

import numpy as np
import shapely
import sqlalchemy as sa

import tmlib.models as tm
from tmlib.maptiles import black_tile, tile_bounds


def _error(response, status):
    assert response.status_code == status, response.get_data()[:300]
    assert response.get_json()["error"]["status_code"] == status


def _layer(eid):
    with tm.utils.ExperimentSession(eid) as session:
        layer = session.scalars(sa.select(tm.ChannelLayer).order_by(tm.ChannelLayer.id)).first()
        experiment = session.scalars(sa.select(tm.Experiment)).one()
        with layer.open_tiles() as reader:
            stored = list(reader.tiles())
        return layer.id, experiment.pyramid_depth - 1, stored


def test_raster_tiles_are_the_containers_bytes(processed_server, processed):
    eid = processed.experiment_id
    layer_id, max_zoom, stored = _layer(eid)
    assert stored
    url = f"/api/experiments/{eid}/channel_layers/{layer_id}/tiles"
    for level, row, column, data in stored[:: max(1, len(stored) // 8)]:
        response = processed_server.get(f"{url}?x={column}&y={row}&z={level}")
        assert response.status_code == 200
        assert response.mimetype == "image/jpeg"
        assert response.get_data() == data
        assert "max-age" in response.headers["Cache-Control"]
    # a tile token in the query instead of the header
    level, row, column, data = stored[0]
    token = processed_server.post("/auth/tile_token").get_json()["access_token"]
    response = processed_server.client.get(
        f"{url}?x={column}&y={row}&z={level}&access_token={token}"
    )
    assert response.get_data() == data
    etag = response.headers["ETag"]
    again = processed_server.client.get(
        f"{url}?x={column}&y={row}&z={level}&access_token={token}",
        headers={"If-None-Match": etag},
    )
    assert again.status_code == 304
    # not stored: black
    keys = {(lv, r, c) for lv, r, c, _ in stored}
    missing = next((x, max_zoom) for x in range(10**6) if (max_zoom, 0, x) not in keys)
    response = processed_server.get(f"{url}?x={missing[0]}&y=0&z={max_zoom}")
    assert response.get_data() == black_tile()
    _error(processed_server.get(f"{url}?x=0&y=0&z={max_zoom + 1}"), 400)
    _error(processed_server.get(f"{url}?x=-1&y=0&z=0"), 400)
    _error(processed_server.get(f"{url}?x=0&z=0"), 400)
    _error(processed_server.get(f"/api/experiments/{eid}/channel_layers/999/tiles?x=0&y=0&z=0"),
           404)  # fmt: skip
    _error(processed_server.get(f"{url}?x=0&y=0&z=0", user="bob"), 403)
    _error(processed_server.get(f"{url}?x=0&y=0&z=0", user=None), 401)


def _segmented_layer(eid, name):
    with tm.utils.ExperimentSession(eid) as session:
        layer = session.scalars(
            sa.select(tm.SegmentationLayer).join(tm.MapobjectType)
            .where(tm.MapobjectType.name == name)
        ).first()  # fmt: skip
        rows = session.execute(
            sa.select(tm.MapobjectSegmentation.mapobject_id,
                      tm.MapobjectSegmentation.geom_polygon,
                      tm.MapobjectSegmentation.geom_centroid)
            .where(tm.MapobjectSegmentation.segmentation_layer_id == layer.id)
        ).all()  # fmt: skip
        depth = session.scalar(sa.select(tm.Experiment.pyramid_depth))
        return layer.id, layer.polygon_thresh, layer.centroid_thresh, depth - 1, rows


def test_vector_tiles_hold_the_objects_in_the_box(processed_server, processed):
    eid = processed.experiment_id
    layer_id, polygon_thresh, centroid_thresh, max_zoom, rows = _segmented_layer(eid, "Cells")
    listed = processed_server.get(
        f"/api/experiments/{eid}/segmentation_layers?mapobject_type_name=Cells"
    ).get_json()["data"]
    assert [x["id"] for x in listed] == [str(layer_id)]
    assert listed[0]["image_size"]["width"] > 0
    url = f"/api/experiments/{eid}/segmentation_layers/{layer_id}/tiles"
    z = max_zoom
    seen = set()
    for x in range(4):
        for y in range(4):
            body = processed_server.get(f"{url}?x={x}&y={y}&z={z}").get_json()
            box = shapely.box(*tile_bounds(z, x, y, max_zoom))
            expected = {str(m) for m, polygon, _ in rows if polygon.intersects(box)}
            got = {f["id"] for f in body["features"]}
            assert got == expected
            assert all(f["geometry"]["type"] == "Polygon" for f in body["features"])
            assert all(f["properties"]["type"] == "Cells" for f in body["features"])
            seen |= got
    assert seen
    if centroid_thresh < polygon_thresh:
        body = processed_server.get(f"{url}?x=0&y=0&z={centroid_thresh}").get_json()
        assert {f["geometry"]["type"] for f in body["features"]} == {"Point"}
        assert len(body["features"]) == len(rows)
    if centroid_thresh > 0:
        body = processed_server.get(f"{url}?x=0&y=0&z=0").get_json()
        assert body["features"] == []
    # the static plates are polygons at every zoom
    plates_id = _segmented_layer(eid, "Plates")[0]
    body = processed_server.get(
        f"/api/experiments/{eid}/segmentation_layers/{plates_id}/tiles?x=0&y=0&z=0"
    ).get_json()
    assert len(body["features"]) == 1 and body["features"][0]["geometry"]["type"] == "Polygon"
    _error(processed_server.get(f"{url}?x=0&y=0&z=0", user="bob"), 403)
    _error(processed_server.get(f"/api/experiments/{eid}/segmentation_layers/999/tiles"
                                "?x=0&y=0&z=0"), 404)  # fmt: skip
    _error(processed_server.get(f"{url.replace('tiles', 'labeled_tiles')}?x=0&y=0&z=0"
                                "&result_name=nope"), 404)  # fmt: skip
    assert np.isfinite(max_zoom)


def test_vector_tiles_are_rendered_again_only_when_their_objects_change(processed, monkeypatch):
    """A cached vector tile outlives CACHE_SECONDS while the layer's signature stays
    (no re-rendering of every tile every 10 s); a changed signature renders it anew."""
    from tmlib import maptiles

    eid = processed.experiment_id
    layer_id = _segmented_layer(eid, "Cells")[0]
    maptiles.forget_objects(eid)
    renders: list[tuple] = []
    real = maptiles.tile_objects

    def counted(*args):
        renders.append(args)
        return real(*args)

    monkeypatch.setattr(maptiles, "tile_objects", counted)
    monkeypatch.setattr(maptiles, "CACHE_SECONDS", 0.0)  # every entry and signature stale
    first = maptiles.vector_tile(eid, layer_id, 0, 0, 0)
    signature = maptiles.layer_signature(eid, layer_id)
    count, smallest, largest, _, thresholds = signature
    assert count == len(_segmented_layer(eid, "Cells")[4]) and smallest <= largest
    assert thresholds == _segmented_layer(eid, "Cells")[1:3]
    assert maptiles.vector_tile(eid, layer_id, 0, 0, 0) == first
    assert len(renders) == 1  # read again, found unchanged: not rendered again
    # another process re-ran the analysis: the signature differs, the tile is new
    monkeypatch.setattr(maptiles, "layer_signature", lambda *_: (*signature[:-1], "changed"))
    maptiles.vector_tile(eid, layer_id, 0, 0, 0)
    assert len(renders) == 2
    # and however unchanged it looks, a tile is rendered anew after RENDERED_MAX_AGE
    monkeypatch.setattr(maptiles, "RENDERED_MAX_AGE", 0.0)
    maptiles.vector_tile(eid, layer_id, 0, 0, 0)
    assert len(renders) == 3
    maptiles.forget_objects(eid)
