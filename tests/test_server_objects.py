"""Features over HTTP against the processed plate: CSV downloads equal the database."""

from __future__ import annotations

import csv
import io

import numpy as np
import sqlalchemy as sa

import tmlib.models as tm


def _error(response, status):
    assert response.status_code == status, response.get_data()[:300]
    assert response.get_json()["error"]["status_code"] == status


def _cells(eid):
    with tm.utils.ExperimentSession(eid) as session:
        kind = session.scalar(sa.select(tm.MapobjectType).where(tm.MapobjectType.name == "Cells"))
        features = [(f.id, f.name) for f in sorted(kind.features, key=lambda f: f.id)]
        values = {
            m: v
            for m, v in session.execute(
                sa.select(tm.FeatureValues.mapobject_id, tm.FeatureValues.values)
                .join(tm.Mapobject)
                .where(tm.Mapobject.mapobject_type_id == kind.id)
            )
        }
        return kind.id, features, values


def test_features_and_feature_values_csv(processed_server, processed):
    eid = processed.experiment_id
    type_id, features, values = _cells(eid)
    listed = processed_server.get(
        f"/api/experiments/{eid}/mapobject_types/{type_id}/features"
    ).get_json()["data"]
    assert listed == [{"id": str(i), "name": n} for i, n in features]
    response = processed_server.get(
        f"/api/experiments/{eid}/mapobject_types/{type_id}/feature-values"
    )
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].endswith(
        'filename="screen_Cells_feature-values.csv"'
    )
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["mapobject_id", *(n for _, n in features)]
    got = {int(r[0]): np.array(r[1:], float) for r in rows[1:]}
    assert set(got) == set(values)
    for m, v in values.items():
        np.testing.assert_array_equal(got[m], v)  # exact: shortest round-trip floats
    # one well only
    response = processed_server.get(
        f"/api/experiments/{eid}/mapobject_types/{type_id}/feature-values"
        "?plate_name=plate01&well_name=A01&well_pos_y=0&well_pos_x=0"
    )
    assert (
        'filename="screen_plate01_A01_y0_x0_Cells_feature-values.csv"'
        in (response.headers["Content-Disposition"])
    )
    part = list(csv.reader(io.StringIO(response.get_data(as_text=True))))[1:]
    assert 0 < len(part) < len(values)
    base = f"/api/experiments/{eid}/mapobject_types/{type_id}"
    _error(processed_server.get(f"{base}/feature-values?plate_name=nope"), 404)
    _error(processed_server.get(f"{base}/feature-values?well_pos_x=a"), 400)
    _error(processed_server.get(f"{base}/feature-values", user="bob"), 403)
    _error(processed_server.get(f"/api/experiments/{eid}/mapobject_types/999/feature-values"), 404)


def test_metadata_csv(processed_server, processed):
    eid = processed.experiment_id
    type_id, _, values = _cells(eid)
    response = processed_server.get(f"/api/experiments/{eid}/mapobject_types/{type_id}/metadata")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert {int(r["mapobject_id"]) for r in rows} == set(values)
    with tm.utils.ExperimentSession(eid) as session:
        labels = dict(
            session.execute(
                sa.select(tm.MapobjectSegmentation.mapobject_id, tm.MapobjectSegmentation.label)
            ).all()
        )
    assert all(int(r["label"]) == labels[int(r["mapobject_id"])] for r in rows)
    assert {r["plate_name"] for r in rows} == {"plate01"}
    assert {r["is_border"] for r in rows} <= {"0", "1"} and any(r["is_border"] == "1" for r in rows)


def test_feature_csv_in_chunks_on_both_databases(server, monkeypatch):
    # more objects than one fetch, with NaN and infinities, values exact after the round trip
    import tmlib.features

    monkeypatch.setattr(tmlib.features, "_FETCH_ROWS", 7)
    eid = int(server.post("/api/experiments", json={"name": "csv"}).get_json()["data"]["id"])
    rng = np.random.default_rng(1)
    values = rng.normal(100, 30, size=(40, 3))
    values[3, 1], values[5, 2], values[6, 0] = np.nan, np.inf, -np.inf
    with tm.utils.ExperimentSession(eid) as session:
        plate = tm.Plate(name="p", experiment_id=eid)
        well = tm.Well(name="A01", plate=plate)
        sites = [tm.Site(y=0, x=i, height=10, width=10, well=well) for i in range(2)]
        kind = tm.MapobjectType(name="Blobs", ref_type="Site", experiment_id=eid)
        session.add_all([plate, well, *sites, kind])
        session.flush()
        session.add_all([tm.Feature(name=f"f{j}", mapobject_type_id=kind.id) for j in range(3)])
        for i, row in enumerate(values):
            site = sites[i % 2].id
            session.add(tm.Mapobject(id=i + 1, partition_key=site, mapobject_type_id=kind.id))
            session.flush()
            session.add(tm.FeatureValues(mapobject_id=i + 1, partition_key=site, values=row))
        type_id = kind.id
    path = f"/api/experiments/{eid}/mapobject_types/{type_id}/feature-values"
    response = server.get(path)
    assert response.status_code == 200
    table = np.genfromtxt(io.StringIO(response.get_data(as_text=True)), delimiter=",", names=True)
    assert table.dtype.names == ("mapobject_id", "f0", "f1", "f2")
    assert table["mapobject_id"].tolist() == list(range(1, 41))
    got = np.column_stack([table["f0"], table["f1"], table["f2"]])
    np.testing.assert_array_equal(got, values)  # exact, NaN and infinities included
    # a feature added later: older objects have no value for it (NaN), newer ones have all
    with tm.utils.ExperimentSession(eid) as session:
        session.add(tm.Feature(name="f3", mapobject_type_id=type_id))
        session.flush()
        for i in range(40, 45):
            session.add(
                tm.Mapobject(id=i + 1, partition_key=sites[0].id, mapobject_type_id=type_id)
            )
            session.flush()
            session.add(tm.FeatureValues(mapobject_id=i + 1, partition_key=sites[0].id,
                                         values=np.arange(4.0) + i))  # fmt: skip
    table = np.genfromtxt(io.StringIO(server.get(path).get_data(as_text=True)), delimiter=",",
                          names=True)  # fmt: skip
    assert table["mapobject_id"].tolist() == list(range(1, 46))
    assert np.isnan(table["f3"][:40]).all()
    np.testing.assert_array_equal(table["f3"][40:], np.arange(40, 45) + 3.0)
    np.testing.assert_array_equal(table["f0"][:40], values[:, 0])
    # a download abandoned after its first chunk leaves the server able to answer
    response = server.get(path, buffered=False)
    next(response.response)
    response.close()
    assert server.get(path).status_code == 200
    one_site = server.get(path, query_string={"plate_name": "p", "well_name": "A01",
                                              "well_pos_y": 0, "well_pos_x": 1})  # fmt: skip
    rows = list(csv.reader(io.StringIO(one_site.get_data(as_text=True))))[1:]
    assert [int(r[0]) for r in rows] == list(range(2, 41, 2))
