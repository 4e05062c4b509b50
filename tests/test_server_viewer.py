"""What the browser viewer needs from the server: Mapbox Vector Tiles, per-object values,
object info with feature values, the pixel size, and the web app itself at ``/``."""

from __future__ import annotations

import math

import mapbox_vector_tile
import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from conftest import TEST_SECRET

import tmlib.models as tm
from tmlib import maptiles
from tmlib.maptiles import MVT_EXTENT, TileObjects, tile_bounds
from tmlib.workflow.steps.metaconfig import _most_common

MVT = "application/vnd.mapbox-vector-tile"


def _error(response, status):
    assert response.status_code == status, response.get_data()[:300]
    body = response.get_json()["error"]
    assert body["status_code"] == status and body["message"]
    return body["message"]


# ------------------------------------------------------------------ vector tiles


def _layer_rows(eid, name):
    """(layer id, polygon and centroid thresholds, max zoom, {id: (polygon, centroid)})."""
    with tm.utils.ExperimentSession(eid) as session:
        layer = session.scalars(
            sa.select(tm.SegmentationLayer).join(tm.MapobjectType)
            .where(tm.MapobjectType.name == name)
        ).first()  # fmt: skip
        seg = tm.MapobjectSegmentation
        rows = session.execute(
            sa.select(seg.mapobject_id, seg.geom_polygon, seg.geom_centroid)
            .where(seg.segmentation_layer_id == layer.id)
        ).all()  # fmt: skip
        depth = session.scalar(sa.select(tm.Experiment.pyramid_depth))
        objects = {m: (polygon, centroid) for m, polygon, centroid in rows}
        return layer.id, layer.polygon_thresh, layer.centroid_thresh, depth - 1, objects


def _decode(data):
    """The one layer of a tile, its features by id with shapely geometries (tile-local, y down)."""
    layers = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True})
    assert len(layers) == 1
    (name, layer), = layers.items()  # fmt: skip
    features = {f["id"]: shapely.geometry.shape(f["geometry"]) for f in layer["features"]}
    assert all(f["properties"] == {} for f in layer["features"])
    return name, layer["extent"], features


def _to_map(geometry, z, x, y, max_zoom):
    """Tile-local coordinates (y down) back to map coordinates (x, -row)."""
    size = 256 * 2 ** (max_zoom - z)
    scale = size / MVT_EXTENT

    def back(coords):
        return np.column_stack([x * size + coords[:, 0] * scale,
                                -(y * size + coords[:, 1] * scale)])  # fmt: skip

    return shapely.transform(geometry, back)


def test_mvt_tiles_place_objects_where_the_raster_tiles_show_them(processed_server, processed):
    eid = processed.experiment_id
    layer_id, polygon_thresh, centroid_thresh, max_zoom, objects = _layer_rows(eid, "Cells")
    url = f"/api/experiments/{eid}/segmentation_layers/{layer_id}/tiles.mvt"
    geojson_url = f"/api/experiments/{eid}/segmentation_layers/{layer_id}/tiles"
    z = max_zoom
    size = 256
    # a known object: the tile whose column and row hold its centroid (rows counted down)
    known, (polygon, centroid) = next(iter(sorted(objects.items())))
    x, y = int(centroid.x // size), int(-centroid.y // size)
    response = processed_server.get(f"{url}?x={x}&y={y}&z={z}")
    assert response.status_code == 200, response.get_data()[:300]
    assert response.mimetype == MVT
    name, extent, features = _decode(response.get_data())
    assert (name, extent) == ("Cells", MVT_EXTENT)
    assert known in features
    # the same objects as the GeoJSON tile
    body = processed_server.get(f"{geojson_url}?x={x}&y={y}&z={z}").get_json()
    assert set(features) == {int(f["id"]) for f in body["features"]}
    # the outline maps back onto the object's: simplification (1 px) and quantisation (1/16 px)
    shown = features[known]
    assert shown.geom_type == "Polygon"
    assert shapely.LinearRing(shown.exterior.coords).is_ccw  # positive area, y down (the spec)
    assert shapely.hausdorff_distance(_to_map(shown, z, x, y, max_zoom), polygon) <= 1.5
    assert _to_map(shown, z, x, y, max_zoom).centroid.distance(centroid) <= 1.0
    # pixels: the tile-local position is the object's pixel in the tile (16 units a pixel)
    expected = ((centroid.x - x * size) * 16, (-centroid.y - y * size) * 16)
    assert math.dist(expected, (shown.centroid.x, shown.centroid.y)) <= 16

    # at the centroid threshold: points, each within half a unit of its centroid
    if centroid_thresh < polygon_thresh:
        z = centroid_thresh
        name, _, points = _decode(processed_server.get(f"{url}?x=0&y=0&z={z}").get_data())
        assert set(points) == set(objects)
        scale = MVT_EXTENT / (256 * 2 ** (max_zoom - z))
        for mapobject_id, point in points.items():
            c = objects[mapobject_id][1]
            assert point.geom_type == "Point"
            assert abs(point.x - c.x * scale) <= 0.5 and abs(point.y + c.y * scale) <= 0.5
    if centroid_thresh > 0:  # below it: nothing
        _, _, none = _decode(processed_server.get(f"{url}?x=0&y=0&z=0").get_data())
        assert none == {}


def test_mvt_tiles_checks_and_tokens(processed_server, processed):
    eid = processed.experiment_id
    layer_id, *_ = _layer_rows(eid, "Cells")
    url = f"/api/experiments/{eid}/segmentation_layers/{layer_id}/tiles.mvt"
    token = processed_server.post("/auth/tile_token").get_json()["access_token"]
    by_token = processed_server.client.get(f"{url}?x=0&y=0&z=0&access_token={token}")
    assert by_token.status_code == 200 and by_token.mimetype == MVT
    assert by_token.get_data() == processed_server.get(f"{url}?x=0&y=0&z=0").get_data()
    assert by_token.headers["Cache-Control"] == "private, no-cache"
    _error(processed_server.get(f"{url}?x=0&y=0&z=99"), 400)
    _error(processed_server.get(f"{url}?x=-1&y=0&z=0"), 400)
    _error(processed_server.get(f"{url}?x=0&y=0"), 400)
    _error(processed_server.get(f"{url}?x=0&y=0&z=0", user="bob"), 403)
    _error(processed_server.get(f"{url}?x=0&y=0&z=0", user=None), 401)
    missing = f"/api/experiments/{eid}/segmentation_layers/999999/tiles.mvt?x=0&y=0&z=0"
    _error(processed_server.get(missing), 404)
    # the plates' layer: one polygon at zoom 0
    plates_id, *_ = _layer_rows(eid, "Plates")
    plates = f"/api/experiments/{eid}/segmentation_layers/{plates_id}/tiles.mvt?x=0&y=0&z=0"
    name, _, features = _decode(processed_server.get(plates).get_data())
    assert name == "Plates" and len(features) == 1
    assert next(iter(features.values())).geom_type == "Polygon"


def test_mvt_tiles_share_the_rendered_tile_cache(processed, monkeypatch):
    eid = processed.experiment_id
    layer_id, *_ = _layer_rows(eid, "Cells")
    maptiles.forget_objects(eid)
    renders = []
    real = maptiles._RENDERERS["mvt"]

    def counted(*args):
        renders.append(args)
        return real(*args)

    monkeypatch.setitem(maptiles._RENDERERS, "mvt", counted)
    first = maptiles.mvt_tile(eid, layer_id, 0, 0, 0)
    assert maptiles.mvt_tile(eid, layer_id, 0, 0, 0) == first
    assert len(renders) == 1  # served from the cache
    geojson = maptiles.vector_tile(eid, layer_id, 0, 0, 0)
    assert geojson != first and geojson.startswith(b'{"type":"FeatureCollection"')
    assert len(renders) == 1  # another encoding, another entry
    maptiles.forget_objects(eid)
    maptiles.mvt_tile(eid, layer_id, 0, 0, 0)
    assert len(renders) == 2


def test_encode_mvt_of_known_shapes():
    # a tile (z=1, x=1, y=0) of a pyramid of max zoom 2: columns 512..1023, rows 0..511
    bounds = tile_bounds(1, 1, 0, 2)
    square = shapely.box(600, -200, 700, -100)  # columns 600..700, rows 100..200
    point = shapely.Point(1000, -500)
    objects = TileObjects(np.array([7, 2**40]), np.array([square, point], dtype=object),
                          "Nuclei", 0, None, bounds)  # fmt: skip
    name, extent, features = _decode(maptiles.encode_mvt(objects))
    assert (name, extent) == ("Nuclei", 4096)
    assert set(features) == {7, 2**40}
    assert features[7].bounds == (88 * 8, 100 * 8, 188 * 8, 200 * 8)  # 8 units a pixel
    assert (features[2**40].x, features[2**40].y) == (488 * 8, 500 * 8)


# ------------------------------------------------------------------ values


def make_values_experiment(server, name="values") -> dict:
    """An experiment with objects "Cells" (6, two features, labels) and "Nuclei" (1)."""
    eid = int(server.post("/api/experiments", json={"name": name}).get_json()["data"]["id"])
    with tm.utils.ExperimentSession(eid) as session:
        plate = tm.Plate(name="p1", experiment_id=eid)
        well = tm.Well(name="B03", plate=plate)
        sites = [tm.Site(y=0, x=i, height=100, width=100, well=well) for i in range(2)]
        cells = tm.MapobjectType(name="Cells", ref_type="Site", experiment_id=eid)
        nuclei = tm.MapobjectType(name="Nuclei", ref_type="Site", experiment_id=eid)
        session.add_all([plate, well, *sites, cells, nuclei])
        session.flush()
        features = [tm.Feature(name=n, mapobject_type_id=cells.id) for n in ("area", "mean")]
        session.add_all(features)
        layer = tm.SegmentationLayer(tpoint=0, zplane=0, mapobject_type_id=cells.id)
        session.add(layer)
        session.flush()
        rows = [[1.5, 10.0], [np.nan, 20.0], [3.25], None, [np.inf, -1.0], [5.0, 6.0]]
        ids = []
        for i, row in enumerate(rows):
            site = sites[i % 2]
            obj = tm.Mapobject(partition_key=site.id, ref_id=site.id, mapobject_type_id=cells.id)
            session.add(obj)
            session.flush()
            ids.append(obj.id)
            session.add(tm.MapobjectSegmentation(
                mapobject_id=obj.id, segmentation_layer_id=layer.id, partition_key=site.id,
                geom_centroid=shapely.Point(10 * i + 5, -5 * i - 5), label=i + 1,
            ))  # fmt: skip
            if row is not None:
                session.add(tm.FeatureValues(mapobject_id=obj.id, partition_key=site.id,
                                             values=np.array(row)))  # fmt: skip
        nucleus = tm.Mapobject(partition_key=sites[0].id, ref_id=sites[0].id,
                               mapobject_type_id=nuclei.id)  # fmt: skip
        clusters = tm.ScalarToolResult(
            name="clusters", tool_name="Clustering", submission_id=10**12 + eid,
            mapobject_type_id=cells.id,
        )  # fmt: skip
        heatmap = tm.HeatmapToolResult(
            name="heat", tool_name="Heatmap", submission_id=2 * 10**12 + eid,
            mapobject_type_id=cells.id, attributes={"feature_id": features[1].id},
        )  # fmt: skip
        session.add_all([nucleus, clusters, heatmap])
        session.flush()
        key = str(clusters.id)
        labels = {0: {key: 1}, 1: {key: np.nan}, 2: {key: 0, "999999": 5}, 4: {"999999": 3},
                  5: {key: 2.5}}  # fmt: skip
        for i, values in labels.items():
            session.add(tm.LabelValues(mapobject_id=ids[i], partition_key=sites[i % 2].id,
                                       values=values))  # fmt: skip
        return {
            "experiment_id": eid, "cells": cells.id, "nuclei": nuclei.id, "ids": ids,
            "nucleus": nucleus.id, "features": [f.id for f in features],
            "clusters": clusters.id, "heatmap": heatmap.id, "sites": [s.id for s in sites],
        }  # fmt: skip


def _values(response):
    assert response.status_code == 200, response.get_data()[:300]
    assert response.mimetype == "application/octet-stream"
    n = int(response.headers["X-Count"])
    dtype = {"uint32": "<u4", "float64": "<f8"}[response.headers["X-Id-Dtype"]]
    data = response.get_data()
    width = np.dtype(dtype).itemsize
    assert len(data) == n * (width + 4)
    ids = np.frombuffer(data[: n * width], dtype)
    return ids, np.frombuffer(data[n * width :], "<f4"), response.headers["X-Id-Dtype"]


def _same(got, expected):
    np.testing.assert_array_equal(got, np.array(expected, np.float32))


def test_values_of_features_and_tool_results(server):
    made = make_values_experiment(server)
    eid, cells, ids = made["experiment_id"], made["cells"], made["ids"]
    url = f"/api/experiments/{eid}/mapobject_types/{cells}/values"
    nan, inf = np.nan, np.inf

    got_ids, values, dtype = _values(server.get(f"{url}?feature_id={made['features'][0]}"))
    assert dtype == "uint32" and got_ids.tolist() == sorted(ids)
    _same(values, [1.5, nan, 3.25, nan, inf, 5.0])
    _, values, _ = _values(server.get(f"{url}?feature_id={made['features'][1]}"))
    _same(values, [10.0, 20.0, nan, nan, -1.0, 6.0])  # the short row has no second value
    _, values, _ = _values(server.get(f"{url}?tool_result_id={made['clusters']}"))
    _same(values, [1, nan, 0, nan, nan, 2.5])
    _, values, _ = _values(server.get(f"{url}?tool_result_id={made['heatmap']}"))
    _same(values, [10.0, 20.0, nan, nan, -1.0, 6.0])  # a heat map: its feature's values
    _, values, _ = _values(server.get(f"{url}?feature_id={made['features'][0]}&tpoint=3"))
    assert np.isnan(values).all() and len(values) == 6
    # another type: its own objects only
    nuclei = f"/api/experiments/{eid}/mapobject_types/{made['nuclei']}/values"
    with tm.utils.ExperimentSession(eid) as session:
        session.add(tm.Feature(name="n", mapobject_type_id=made["nuclei"]))
        session.flush()
        nucleus_feature = session.scalar(
            sa.select(tm.Feature.id).where(tm.Feature.mapobject_type_id == made["nuclei"])
        )
    got_ids, values, _ = _values(server.get(f"{nuclei}?feature_id={nucleus_feature}"))
    assert got_ids.tolist() == [made["nucleus"]] and np.isnan(values).all()

    # the labeled tiles read the same values
    objects = TileObjects(np.array(ids[::-1]), np.zeros(6, object), "Cells", 0)
    labels = maptiles.tile_labels(eid, "Cells", "clusters", objects)
    assert labels[ids[0]] == 1 and labels[ids[5]] == 2.5 and labels[ids[2]] == 0
    assert math.isnan(labels[ids[1]]) and math.isnan(labels[ids[3]])
    assert maptiles.tile_labels(eid, "Cells", "heat", objects)[ids[4]] == -1.0


def test_values_requests_that_fail(server):
    made = make_values_experiment(server)
    eid, cells = made["experiment_id"], made["cells"]
    url = f"/api/experiments/{eid}/mapobject_types/{cells}/values"
    feature, result = made["features"][0], made["clusters"]
    assert "exactly one" in _error(server.get(url), 400)
    assert "exactly one" in _error(server.get(f"{url}?feature_id={feature}&tool_result_id="
                                              f"{result}"), 400)  # fmt: skip
    _error(server.get(f"{url}?feature_id=abc"), 400)
    _error(server.get(f"{url}?feature_id={feature}&tpoint=-1"), 400)
    _error(server.get(f"{url}?feature_id=999999"), 404)
    _error(server.get(f"{url}?tool_result_id=999999"), 404)
    other = f"/api/experiments/{eid}/mapobject_types/{made['nuclei']}/values"
    _error(server.get(f"{other}?feature_id={feature}"), 404)  # a feature of another type
    _error(server.get(f"{other}?tool_result_id={result}"), 404)
    _error(server.get(f"/api/experiments/{eid}/mapobject_types/999999/values"
                      f"?feature_id={feature}"), 404)  # fmt: skip
    _error(server.get(f"{url}?feature_id={feature}", user="bob"), 403)
    _error(server.get(f"{url}?feature_id={feature}", user=None), 401)
    server.post(f"/api/experiments/{eid}/shares", json={"user": "bob"})
    assert _values(server.get(f"{url}?feature_id={feature}", user="bob"))[0].size == 6


def test_values_with_ids_beyond_32_bits(server):
    made = make_values_experiment(server)
    eid, cells = made["experiment_id"], made["cells"]
    big = 2**32 + 5
    with tm.utils.ExperimentSession(eid) as session:
        session.add(tm.Mapobject(id=big, partition_key=made["sites"][0], mapobject_type_id=cells))
        session.flush()
        session.add(tm.FeatureValues(mapobject_id=big, partition_key=made["sites"][0],
                                     values=np.array([7.0, 8.0])))  # fmt: skip
    url = f"/api/experiments/{eid}/mapobject_types/{cells}/values"
    ids, values, dtype = _values(server.get(f"{url}?feature_id={made['features'][0]}"))
    assert dtype == "float64"
    assert ids.tolist() == [*sorted(made["ids"]), big]
    assert values[-1] == 7.0


# ------------------------------------------------------------------ object info


def test_info_has_the_type_and_feature_values(server):
    made = make_values_experiment(server)
    eid, ids = made["experiment_id"], made["ids"]

    def info(mapobject_id):
        response = server.get(f"/api/experiments/{eid}/mapobjects/{mapobject_id}/info")
        assert response.status_code == 200, response.get_json()
        return response.get_json()["data"]

    first = info(ids[0])
    assert first["mapobject_type"] == first["type"] == "Cells"
    assert first["feature_values"] == {"area": 1.5, "mean": 10.0}
    assert (first["plate_name"], first["well_name"], first["label"]) == ("p1", "B03", 1)
    assert info(ids[1])["feature_values"] == {"area": None, "mean": 20.0}  # NaN: null
    assert info(ids[2])["feature_values"] == {"area": 3.25, "mean": None}  # a short row
    assert info(ids[3])["feature_values"] == {"area": None, "mean": None}  # no values
    assert info(ids[4])["feature_values"] == {"area": None, "mean": -1.0}  # infinity: null
    assert info(made["nucleus"])["feature_values"] == {}


# ------------------------------------------------------------------ pixel size


def test_pixel_size_of_a_cellvoyager_plate(processed_server, processed):
    eid = processed.experiment_id
    data = processed_server.get(f"/api/experiments/{eid}").get_json()["data"]
    assert data["pixel_size_um"] == pytest.approx(0.325)  # tm_simulate's default
    assert data["name"] == "screen"
    channels = processed_server.get(f"/api/experiments/{eid}/channels").get_json()["data"]
    assert channels and all(c["pixel_size_um"] == pytest.approx(0.325) for c in channels)


def test_layout_names_the_boxes_of_plates_wells_and_sites(processed_server, processed):
    eid = processed.experiment_id
    layout = processed_server.get(f"/api/experiments/{eid}/layout").get_json()["data"]
    with tm.utils.ExperimentSession(eid) as session:
        experiment = session.scalars(sa.select(tm.Experiment)).one()
        size = (experiment.pyramid_width, experiment.pyramid_height)
        wells = dict(session.execute(sa.select(tm.Well.id, tm.Well.name)).all())
        sites = {s.id: (s.well_id, s.x, s.y, s.width, s.height) for s in session.scalars(
            sa.select(tm.Site))}  # fmt: skip
    assert (layout["width"], layout["height"]) == size
    assert [w["name"] for w in layout["wells"]] == [wells[i] for i in sorted(wells)]
    columns = layout["sites"]
    assert sorted(map(int, columns["id"])) == sorted(sites)
    for n, site_id in enumerate(columns["id"]):
        well_id, x, y, width, height = sites[int(site_id)]
        assert layout["wells"][columns["well"][n]]["name"] == wells[well_id]
        assert (columns["x"][n], columns["y"][n]) == (x, y)
        bx, by, bw, bh = columns["box"][n]
        assert (bw, bh) == (width, height)
        # a site lies in its well, the well in its plate, all in the mosaic
        wx, wy, ww, wh = layout["wells"][columns["well"][n]]["box"]
        assert wx <= bx and wy <= by and bx + bw <= wx + ww and by + bh <= wy + wh
    for plate in layout["plates"]:
        px, py, pw, ph = plate["box"]
        assert px >= 0 and py >= 0 and px + pw <= size[0] and py + ph <= size[1]
    # boxes do not overlap: a point names one site
    boxes = columns["box"]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert (
                a[0] + a[2] <= b[0]
                or b[0] + b[2] <= a[0]
                or a[1] + a[3] <= b[1]
                or (b[1] + b[3] <= a[1])
            )
    _error(processed_server.get(f"/api/experiments/{eid}/layout", user="bob"), 403)
    _error(processed_server.get(f"/api/experiments/{eid}/layout", user=None), 401)


def test_layout_of_an_experiment_without_sites(server):
    eid = server.post("/api/experiments", json={"name": "empty"}).get_json()["data"]["id"]
    assert "no sites" in _error(server.get(f"/api/experiments/{eid}/layout"), 400)


def test_pixel_size_unknown_without_metadata(server):
    eid = server.post("/api/experiments", json={"name": "new"}).get_json()["data"]["id"]
    assert server.get(f"/api/experiments/{eid}").get_json()["data"]["pixel_size_um"] is None


def test_most_common_pixel_size():
    assert _most_common([None, None]) is None
    assert _most_common([]) is None
    assert _most_common([0.65, 0.325, 0.325, None]) == 0.325
    assert _most_common([0.65, 0.325]) == 0.325  # a tie: the finer


# ------------------------------------------------------------------ OpenAPI


def test_the_new_routes_are_described(server):
    paths = server.client.get("/api/openapi.json").get_json()["paths"]
    mvt = paths["/api/experiments/{experiment_id}/segmentation_layers/{segmentation_layer_id}"
                "/tiles.mvt"]["get"]  # fmt: skip
    assert MVT in mvt["responses"]["200"]["content"]
    assert {p["name"] for p in mvt["parameters"]} >= {"x", "y", "z"}
    values = paths["/api/experiments/{experiment_id}/mapobject_types/{mapobject_type_id}/values"]
    assert "application/octet-stream" in values["get"]["responses"]["200"]["content"]
    selections = paths["/api/experiments/{experiment_id}/selections"]
    assert "201" in selections["post"]["responses"]
    assert set(selections["post"]["requestBody"]["content"]["application/json"]["schema"][
        "required"]) == {"mapobject_type_id", "name", "color"}  # fmt: skip
    members = "/api/experiments/{experiment_id}/selections/{selection_id}/members.csv"
    assert "text/csv" in paths[members]["get"]["responses"]["200"]["content"]


# ------------------------------------------------------------------ the web app


CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "worker-src 'self' blob:; connect-src 'self'"
)
INDEX = b"<!doctype html><title>TissueMAPS</title><script src=/assets/app-1a2b.js></script>"


@pytest.fixture
def webapp_dir(tmp_path):
    root = tmp_path / "web"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_bytes(INDEX)
    (root / "assets" / "app-1a2b.js").write_text("console.log('app');\n")
    (root / "assets" / "style-9f.css").write_text("body{}\n")
    (root / "favicon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    return root


def _client(directory):
    from tmserver.app import create_app
    from tmserver.config import ServerConfig

    config = ServerConfig(secret_key=TEST_SECRET, webapp_dir=str(directory))
    return create_app(config, TESTING=True).test_client()


def _is_index(response):
    assert response.status_code == 200, response.get_data()[:300]
    assert response.get_data() == INDEX and response.mimetype == "text/html"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["Content-Security-Policy"] == CSP


@pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)
def test_the_web_app_is_served_with_its_routes(tmaps, webapp_dir):
    client = _client(webapp_dir)
    for path in ("/", "/experiments", "/viewer/3", "/viewer/3/", "/index.html", "/apix"):
        _is_index(client.get(path))
    script = client.get("/assets/app-1a2b.js")
    assert script.status_code == 200 and script.get_data() == b"console.log('app');\n"
    assert "javascript" in script.mimetype
    assert script.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "Content-Security-Policy" not in script.headers
    assert client.get("/assets/style-9f.css").mimetype == "text/css"
    icon = client.get("/favicon.svg")
    assert icon.status_code == 200 and icon.headers["Cache-Control"] == "no-cache"
    _error(client.get("/assets/missing-00.js"), 404)  # never the page for a missing asset
    assert client.head("/").status_code == 200


@pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)
def test_the_server_s_own_paths_stay_its_own(tmaps, webapp_dir):
    client = _client(webapp_dir)
    for path in ("/api/nothing", "/api", "/api/experiments/1/nothing", "/jtui/nothing", "/jtui",
                 "/auth/nothing"):  # fmt: skip
        response = client.get(path)
        assert response.status_code == 404 and response.is_json, path
        assert response.get_json()["error"]["status_code"] == 404
    assert client.get("/auth").status_code == 405  # POST only, as before
    assert client.get("/api/openapi.json").status_code == 200
    assert client.get("/api/experiments").status_code == 401


@pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/../../secret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/assets/..%2f..%2fsecret.txt",
        "/x/%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "//etc/passwd",
        "/%2fetc/passwd",
        "/link.txt",
        "/..",
    ],
)
def test_paths_never_leave_the_web_app(tmaps, webapp_dir, path):
    response = _client(webapp_dir).get(path)
    data = response.get_data()
    assert b"TOP SECRET" not in data and b"root:" not in data
    if response.status_code == 200:
        assert data == INDEX  # a client route, falling back to the app
    else:
        assert response.status_code in (308, 404), response.status_code


@pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)
def test_a_web_app_not_built(tmaps, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    client = _client(empty)
    assert "not built" in _error(client.get("/"), 404)
    assert "not built" in _error(client.get("/viewer/1"), 404)
    assert client.get("/api/openapi.json").status_code == 200


def test_the_package_directory_is_the_default():
    from tmserver.config import ServerConfig, load_server_config
    from tmserver.webapp import WEBAPP_DIR

    assert ServerConfig(secret_key="x").webapp_dir is None
    assert WEBAPP_DIR.name == "webapp" and WEBAPP_DIR.parent.name == "tmserver"
    env = {"TMAPS_SECRET_KEY": "k", "TMAPS_WEBAPP_DIR": "/srv/app"}
    assert load_server_config(env).webapp_dir == "/srv/app"
