"""Object types, object info and segmentation upload/download over HTTP."""

from __future__ import annotations

import base64
import csv
import io
import json
import uuid

import numpy as np
import pytest
import sqlalchemy as sa

import tmlib.models as tm
from tmlib import segmentations
from tmlib.maptiles import experiment_geometry


def _error(response, status):
    assert response.status_code == status, response.get_data()[:300]
    body = response.get_json()["error"]
    assert body["error"] is True and body["status_code"] == status and body["message"]
    return body


def _npz(array, name="segmentation") -> str:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{name: array})
    return base64.b64encode(buffer.getvalue()).decode()


def _type_rows(eid, type_id):
    """(objects, layers, features, feature values, tool results) of a type in the database."""
    with tm.utils.ExperimentSession(eid) as session:
        objects = session.scalar(
            sa.select(sa.func.count())
            .select_from(tm.Mapobject)
            .where(tm.Mapobject.mapobject_type_id == type_id)
        )
        layers = session.scalar(
            sa.select(sa.func.count())
            .select_from(tm.SegmentationLayer)
            .where(tm.SegmentationLayer.mapobject_type_id == type_id)
        )
        features = session.scalar(
            sa.select(sa.func.count())
            .select_from(tm.Feature)
            .where(tm.Feature.mapobject_type_id == type_id)
        )
        segs = session.scalar(
            sa.select(sa.func.count())
            .select_from(tm.MapobjectSegmentation)
            .join(tm.SegmentationLayer)
            .where(tm.SegmentationLayer.mapobject_type_id == type_id)
        )
        return objects, layers, features, segs


# ------------------------------------------------------------------ types


def test_mapobject_type_lifecycle(server):
    eid = server.post("/api/experiments", json={"name": "exp1"}).get_json()["data"]["id"]
    base = f"/api/experiments/{eid}/mapobject_types"
    assert server.get(base).get_json()["data"] == []
    response = server.post(base, json={"name": "Custom"})
    assert response.status_code == 200, response.get_json()
    created = response.get_json()["data"]
    assert created["name"] == "Custom" and created["ref_type"] == "Site"
    assert created["features"] == [] and created["layers"] == []
    type_id = created["id"]
    with tm.utils.ExperimentSession(int(eid)) as session:
        kind = session.get(tm.MapobjectType, int(type_id))
        assert (kind.name, kind.ref_type) == ("Custom", "Site")

    assert [t["id"] for t in server.get(base, query_string={"name": "Custom"}).get_json()["data"]]\
        == [type_id]  # fmt: skip
    assert server.get(base, query_string={"name": "nope"}).get_json()["data"] == []
    assert server.get(f"{base}/{type_id}").get_json()["data"]["name"] == "Custom"

    _error(server.post(base, json={"name": "Custom"}), 409)
    _error(server.post(base, json={"name": ""}), 400)
    _error(server.post(base, json={"name": "x" * 51}), 400)
    _error(server.post(base, json={"name": "Sites"}), 400)
    _error(server.post(base, json={}), 400)
    _error(server.post(base, json={"name": 3}), 400)

    assert server.put(f"{base}/{type_id}", json={"name": "Renamed"}).status_code == 200
    assert server.get(f"{base}/{type_id}").get_json()["data"]["name"] == "Renamed"
    other = server.post(base, json={"name": "Other"}).get_json()["data"]["id"]
    _error(server.put(f"{base}/{other}", json={"name": "Renamed"}), 409)

    # another user
    _error(server.get(base, user="bob"), 403)
    _error(server.post(base, user="bob", json={"name": "B"}), 403)
    _error(server.put(f"{base}/{type_id}", user="bob", json={"name": "B"}), 403)
    _error(server.delete(f"{base}/{type_id}", user="bob"), 403)
    assert server.get(f"{base}/{type_id}").get_json()["data"]["name"] == "Renamed"

    # unknown ids
    _error(server.get(f"{base}/999"), 404)
    _error(server.put(f"{base}/999", json={"name": "Z"}), 404)
    _error(server.delete(f"{base}/999"), 404)
    _error(server.get("/api/experiments/999/mapobject_types"), 404)

    assert server.delete(f"{base}/{type_id}").get_json() == {"message": "ok"}
    _error(server.get(f"{base}/{type_id}"), 404)
    assert [t["name"] for t in server.get(base).get_json()["data"]] == ["Other"]


def test_static_types_cannot_be_deleted_or_renamed(processed_server, processed):
    eid = processed.experiment_id
    types = processed_server.get(f"/api/experiments/{eid}/mapobject_types").get_json()["data"]
    by_name = {t["name"]: t for t in types}
    assert {"Plates", "Wells", "Sites", "Nuclei", "Cells"} <= set(by_name)
    with tm.utils.ExperimentSession(eid) as session:
        cells = session.scalar(sa.select(tm.MapobjectType).where(tm.MapobjectType.name == "Cells"))
        assert [f["name"] for f in by_name["Cells"]["features"]] == [
            f.name for f in sorted(cells.features, key=lambda f: f.id)
        ]
        assert [int(x["id"]) for x in by_name["Cells"]["layers"]] == sorted(
            x.id for x in cells.layers
        )
    for name in ("Plates", "Wells", "Sites"):
        path = f"/api/experiments/{eid}/mapobject_types/{by_name[name]['id']}"
        _error(processed_server.delete(path), 400)
        _error(processed_server.put(path, json={"name": "Mine"}), 400)
        assert processed_server.get(path).get_json()["data"]["name"] == name


# ------------------------------------------------------------------ info


def test_mapobject_info_matches_database(processed_server, processed):
    eid = processed.experiment_id
    with tm.utils.ExperimentSession(eid) as session:
        row = session.execute(
            sa.select(
                tm.Mapobject.id,
                tm.MapobjectSegmentation.label,
                tm.SegmentationLayer.tpoint,
                tm.SegmentationLayer.zplane,
                tm.Site.x,
                tm.Site.y,
                tm.Well.name,
                tm.Plate.name,
            )
            .join(tm.MapobjectType, tm.Mapobject.mapobject_type_id == tm.MapobjectType.id)
            .join(
                tm.MapobjectSegmentation, tm.MapobjectSegmentation.mapobject_id == tm.Mapobject.id
            )
            .join(tm.SegmentationLayer)
            .join(tm.Site, tm.Site.id == tm.Mapobject.partition_key)
            .join(tm.Well, tm.Site.well_id == tm.Well.id)
            .join(tm.Plate, tm.Well.plate_id == tm.Plate.id)
            .where(tm.MapobjectType.name == "Cells")
            .order_by(tm.Mapobject.id.desc())
            .limit(1)
        ).one()
        well_object = session.execute(
            sa.select(tm.Mapobject.id, tm.Well.name)
            .join(tm.MapobjectType, tm.Mapobject.mapobject_type_id == tm.MapobjectType.id)
            .join(tm.Well, tm.Well.id == tm.Mapobject.partition_key)
            .where(tm.MapobjectType.name == "Wells")
            .limit(1)
        ).one()
    mapobject_id, label, tpoint, zplane, x, y, well, plate = row
    response = processed_server.get(f"/api/experiments/{eid}/mapobjects/{mapobject_id}/info")
    assert response.status_code == 200, response.get_json()
    data = response.get_json()["data"]
    assert data.pop("mapobject_type") == "Cells"
    with tm.utils.ExperimentSession(eid) as session:
        kind = session.scalar(sa.select(tm.MapobjectType).where(tm.MapobjectType.name == "Cells"))
        names = [f.name for f in sorted(kind.features, key=lambda f: f.id)]
        stored = session.get(tm.FeatureValues, (mapobject_id, tpoint)).values
    expected = [float(v) if np.isfinite(v) else None for v in stored]
    assert names and data.pop("feature_values") == dict(zip(names, expected, strict=True))
    assert data == {
        "id": str(mapobject_id),
        "type": "Cells",
        "experiment_name": "screen",
        "plate_name": plate,
        "well_name": well,
        "well_pos_x": x,
        "well_pos_y": y,
        "tpoint": tpoint,
        "zplane": zplane,
        "label": label,
    }
    assert plate == "plate01" and label > 0
    info = processed_server.get(f"/api/experiments/{eid}/mapobjects/{well_object[0]}/info")
    data = info.get_json()["data"]
    assert (data["type"], data["plate_name"], data["well_name"], data["well_pos_x"]) == (
        "Wells", "plate01", well_object[1], None)  # fmt: skip
    _error(processed_server.get(f"/api/experiments/{eid}/mapobjects/999999999/info"), 404)
    _error(
        processed_server.get(f"/api/experiments/{eid}/mapobjects/{mapobject_id}/info", user="bob"),
        403,
    )


# ------------------------------------------------------------------ segmentations


def _first_site(eid):
    with tm.utils.ExperimentSession(eid) as session:
        site, well, plate = session.execute(
            sa.select(tm.Site, tm.Well.name, tm.Plate.name)
            .join(tm.Well, tm.Site.well_id == tm.Well.id)
            .join(tm.Plate, tm.Well.plate_id == tm.Plate.id)
            .order_by(tm.Site.id)
            .limit(1)
        ).one()
        address = {"plate_name": plate, "well_name": well, "well_pos_x": site.x,
                   "well_pos_y": site.y}  # fmt: skip
        return site.id, (site.height, site.width), address


def _disk(shape, row, column, radius):
    rr, cc = np.ogrid[: shape[0], : shape[1]]
    return (rr - row) ** 2 + (cc - column) ** 2 <= radius**2


def _labels_by_object(eid, type_id, site_id):
    """{(label, tpoint, zplane): mapobject_id} of a type at a site."""
    with tm.utils.ExperimentSession(eid) as session:
        rows = session.execute(
            sa.select(
                tm.MapobjectSegmentation.label,
                tm.SegmentationLayer.tpoint,
                tm.SegmentationLayer.zplane,
                tm.MapobjectSegmentation.mapobject_id,
            )
            .join(tm.SegmentationLayer)
            .where(
                tm.SegmentationLayer.mapobject_type_id == type_id,
                tm.MapobjectSegmentation.partition_key == site_id,
            )
        ).all()
    return {(r[0], r[1], r[2]): r[3] for r in rows}


@pytest.fixture
def upload_type(processed_server, processed):
    """A fresh object type on the processed plate, deleted (and checked gone) afterwards."""
    eid = processed.experiment_id
    name = f"Uploaded_{uuid.uuid4().hex[:8]}"
    response = processed_server.post(f"/api/experiments/{eid}/mapobject_types", json={"name": name})
    assert response.status_code == 200, response.get_json()
    type_id = response.get_json()["data"]["id"]
    before = _value_rows(eid)
    yield name, type_id
    with tm.utils.ExperimentSession(eid) as session:  # a tool result goes with its type
        session.add(tm.ScalarToolResult(name="clusters", tool_name="Clustering",
                                        submission_id=10**12 + int(type_id),
                                        mapobject_type_id=int(type_id)))  # fmt: skip
    response = processed_server.delete(f"/api/experiments/{eid}/mapobject_types/{type_id}")
    assert response.status_code == 200, response.get_json()
    assert _type_rows(eid, int(type_id)) == (0, 0, 0, 0)
    assert _value_rows(eid) == before


def _value_rows(eid):
    """Numbers of feature values and tool results in the experiment."""
    with tm.utils.ExperimentSession(eid) as session:
        return tuple(
            session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (tm.FeatureValues, tm.ToolResult)
        )


def test_segmentation_round_trip_tiles_and_features(processed_server, processed, upload_type):
    eid = processed.experiment_id
    name, type_id = upload_type
    path = f"/api/experiments/{eid}/mapobject_types/{type_id}/segmentations"
    site_id, shape, address = _first_site(eid)
    assert shape == (384, 512)
    labels = np.zeros(shape, np.uint16)
    labels[_disk(shape, 60, 80, 25)] = 3
    labels[100:160, 200:300] = 7
    labels[_disk(shape, 300, 400, 40)] = 1000
    labels[_disk(shape, 300, 400, 12)] = 0  # a hole
    labels[_disk(shape, 300, 400, 6)] = 12  # with an object in it

    response = processed_server.post(path, json={**address, "tpoint": 0, "zplane": 0,
                                                 "npz_file": _npz(labels)})  # fmt: skip
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"message": "ok"}
    query = {**address, "tpoint": 0, "zplane": 0}
    got = processed_server.get(path, query_string=query)
    assert got.status_code == 200, got.get_json()
    downloaded = np.array(got.get_json()["data"])
    assert downloaded.shape == shape
    assert set(np.unique(downloaded)) == {0, 3, 7, 12, 1000}
    assert np.array_equal(downloaded, labels)
    aligned = processed_server.get(path, query_string={**query, "align": "true"}).get_json()
    assert np.array_equal(np.array(aligned["data"]), downloaded)  # no alignment: same frame

    ids = _labels_by_object(eid, int(type_id), site_id)
    assert sorted(ids) == [(3, 0, 0), (7, 0, 0), (12, 0, 0), (1000, 0, 0)]
    assert _type_rows(eid, int(type_id))[:2] == (4, 1)

    # the objects are in the vector tiles of the new layer, at max zoom
    listed = processed_server.get(f"/api/experiments/{eid}/mapobject_types/{type_id}")
    layers = listed.get_json()["data"]["layers"]
    assert [(x["tpoint"], x["zplane"]) for x in layers] == [(0, 0)]
    with tm.utils.ExperimentSession(eid) as session:
        max_zoom = experiment_geometry(session, eid).max_zoom
        (row0, col0), _ = segmentations.site_frame(session, eid, session.get(tm.Site, site_id))
    tile = processed_server.get(
        f"/api/experiments/{eid}/segmentation_layers/{layers[0]['id']}/tiles",
        query_string={"z": max_zoom, "x": (col0 + 250) // 256, "y": (row0 + 130) // 256},
    )
    assert tile.status_code == 200
    features = json.loads(tile.get_data())["features"]
    assert str(ids[(7, 0, 0)]) in {f["id"] for f in features}
    assert {f["properties"]["type"] for f in features} == {name}
    polygon = next(f for f in features if f["id"] == str(ids[(7, 0, 0)]))["geometry"]
    assert polygon["type"] == "Polygon"
    xs = [p[0] for p in polygon["coordinates"][0]]
    assert min(xs) == col0 + 200 and max(xs) == col0 + 299

    # feature values attach to the uploaded labels
    values_path = f"/api/experiments/{eid}/mapobject_types/{type_id}/feature-values"
    response = processed_server.post(values_path, json={
        **address, "tpoint": 0, "names": ["area", "score"], "labels": [7, 3, 1000],
        "values": [[6000, 0.5], [1961, 1.5], [4573, 2.5]]})  # fmt: skip
    assert response.status_code == 200, response.get_json()
    rows = list(csv.reader(io.StringIO(processed_server.get(values_path).get_data(as_text=True))))
    assert rows[0] == ["mapobject_id", "area", "score"]
    table = {int(r[0]): (float(r[1]), float(r[2])) for r in rows[1:]}
    assert table == {ids[(7, 0, 0)]: (6000, 0.5), ids[(3, 0, 0)]: (1961, 1.5),
                     ids[(1000, 0, 0)]: (4573, 2.5)}  # fmt: skip

    # another z-plane: labels already at the site keep their object
    other = np.zeros(shape, np.int32)
    other[_disk(shape, 62, 82, 20)] = 3
    other[200:220, 10:40] = 5
    response = processed_server.post(path, json={**address, "zplane": 1, "npz_file": _npz(other)})
    assert response.status_code == 200, response.get_json()
    ids1 = _labels_by_object(eid, int(type_id), site_id)
    assert ids1[(3, 0, 1)] == ids[(3, 0, 0)]
    assert ids1[(5, 0, 1)] not in ids.values()
    zplane1 = processed_server.get(path, query_string={**query, "zplane": 1}).get_json()["data"]
    assert np.array_equal(np.array(zplane1), other)

    # uploading again replaces that layer only; the same upload twice changes nothing
    replacement = np.zeros(shape, np.int64)
    replacement[10:50, 10:50] = 3
    replacement[300:350, 20:90] = 8
    for _ in range(2):
        body = {**address, "tpoint": 0, "zplane": 0, "npz_file": _npz(replacement)}
        assert processed_server.post(path, json=body).status_code == 200
        downloaded = np.array(processed_server.get(path, query_string=query).get_json()["data"])
        assert np.array_equal(downloaded, replacement)
        ids2 = _labels_by_object(eid, int(type_id), site_id)
        assert sorted(ids2) == [(3, 0, 0), (3, 0, 1), (5, 0, 1), (8, 0, 0)]
        assert ids2[(3, 0, 0)] == ids[(3, 0, 0)]
        assert _type_rows(eid, int(type_id))[:2] == (3, 2)  # 3, 5 and 8; 7, 12, 1000 gone
    rows = list(csv.reader(io.StringIO(processed_server.get(values_path).get_data(as_text=True))))
    assert {int(r[0]) for r in rows[1:]} == {ids[(3, 0, 0)]}  # values of deleted objects gone

    # renaming and deleting a feature: the other feature's values stay in place
    features = processed_server.get(f"/api/experiments/{eid}/mapobject_types/{type_id}/features")
    by_name = {f["name"]: f["id"] for f in features.get_json()["data"]}
    feature_path = f"/api/experiments/{eid}/features/{by_name['area']}"
    assert processed_server.put(feature_path, json={"name": "size"}).status_code == 200
    assert (
        processed_server.delete(f"/api/experiments/{eid}/features/{by_name['score']}").status_code
        == 200
    )
    rows = list(csv.reader(io.StringIO(processed_server.get(values_path).get_data(as_text=True))))
    assert rows == [["mapobject_id", "size"], [str(ids[(3, 0, 0)]), "1961.0"]]

    info = processed_server.get(f"/api/experiments/{eid}/mapobjects/{ids[(3, 0, 0)]}/info")
    assert info.get_json()["data"] | {"id": None} == {
        **address, "id": None, "type": name, "experiment_name": "screen", "tpoint": 0,
        "zplane": 0, "label": 3, "mapobject_type": name,
        "feature_values": {"size": 1961.0}}  # fmt: skip

    # an empty image clears the layer at that site
    body = {**address, "zplane": 1, "npz_file": _npz(np.zeros(shape, np.uint8))}
    assert processed_server.post(path, json=body).status_code == 200
    assert sorted(_labels_by_object(eid, int(type_id), site_id)) == [(3, 0, 0), (8, 0, 0)]
    assert _type_rows(eid, int(type_id))[0] == 2


def test_bad_segmentation_uploads_write_nothing(processed_server, processed, upload_type):
    eid = processed.experiment_id
    _, type_id = upload_type
    path = f"/api/experiments/{eid}/mapobject_types/{type_id}/segmentations"
    _, shape, address = _first_site(eid)
    good = np.zeros(shape, np.int32)
    good[10:20, 10:20] = 1
    negative = good.copy()
    negative[0, 0] = -1
    not_npz = base64.b64encode(b"certainly not a zip file").decode()
    npy = io.BytesIO()
    np.save(npy, good)
    bad = {
        "not base64": "@@@ not base64 @@@",
        "not npz": not_npz,
        "plain npy": base64.b64encode(npy.getvalue()).decode(),
        "other array name": _npz(good, name="labels"),
        "wrong shape": _npz(good[:-1]),
        "transposed": _npz(np.ascontiguousarray(good[:, : shape[0]].T)),
        "negative": _npz(negative),
        "float": _npz(good.astype(np.float64)),
        "3D": _npz(good[None]),
        "object": _npz(np.array([[1, 2]], dtype=object)),
        "too large": _npz(good.astype(np.int64) * 2**40),
    }
    for what, npz_file in bad.items():
        response = processed_server.post(path, json={**address, "npz_file": npz_file})
        assert _error(response, 400), what
    _error(processed_server.post(path, json={**address}), 400)  # no npz_file
    _error(processed_server.post(path, json={**address, "npz_file": 5}), 400)
    no_plate = {k: v for k, v in address.items() if k != "plate_name"}
    _error(processed_server.post(path, json={**no_plate, "npz_file": _npz(good)}), 400)
    _error(processed_server.post(path, json={**address, "tpoint": -1, "npz_file": _npz(good)}),
           400)  # fmt: skip
    assert _type_rows(eid, int(type_id)) == (0, 0, 0, 0)

    # unknown things, other users
    unknown_well = {**address, "well_name": "P24", "npz_file": _npz(good)}
    _error(processed_server.post(path, json=unknown_well), 404)
    _error(processed_server.post(path, json={**address, "well_pos_x": 99, "npz_file": _npz(good)}),
           404)  # fmt: skip
    unknown_type = f"/api/experiments/{eid}/mapobject_types/999999/segmentations"
    _error(processed_server.post(unknown_type, json={**address, "npz_file": _npz(good)}), 404)
    _error(processed_server.get(unknown_type, query_string={**address, "tpoint": 0, "zplane": 0}),
           404)  # fmt: skip
    _error(processed_server.post(path, user="bob", json={**address, "npz_file": _npz(good)}), 403)
    query = {**address, "tpoint": 0, "zplane": 0}
    _error(processed_server.get(path, user="bob", query_string=query), 403)
    _error(processed_server.get(path, query_string=query), 404)  # no layer yet
    _error(processed_server.get(path, query_string={**address, "tpoint": 0}), 400)
    assert _type_rows(eid, int(type_id)) == (0, 0, 0, 0)

    # static types take no segmentations
    with tm.utils.ExperimentSession(eid) as session:
        sites_id = session.scalar(
            sa.select(tm.MapobjectType.id).where(tm.MapobjectType.name == "Sites")
        )
    static = f"/api/experiments/{eid}/mapobject_types/{sites_id}/segmentations"
    _error(processed_server.post(static, json={**address, "npz_file": _npz(good)}), 400)

    # and a good one goes through
    assert processed_server.post(path, json={**address, "npz_file": _npz(good)}).status_code == 200
    assert _type_rows(eid, int(type_id))[:2] == (1, 1)
