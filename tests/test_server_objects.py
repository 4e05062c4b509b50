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
