"""The tools API: request a tool over HTTP, watch its job, fetch, rename and delete results."""

from __future__ import annotations

import time

import numpy as np
import pytest
import sqlalchemy as sa
from sklearn.metrics import adjusted_rand_score
from test_tools import FEATURES, classification_payload, labels_of, make_experiment

import tmlib.models as tm


def _error(response, status):
    assert response.status_code == status, response.get_json()
    body = response.get_json()["error"]
    assert body["error"] is True and body["status_code"] == status and body["message"]
    return body


def _wait_for_job(server, experiment_id, submission_id, timeout=180):
    deadline = time.monotonic() + timeout
    while True:
        response = server.get(
            f"/api/experiments/{experiment_id}/tools/jobs?submission_id={submission_id}"
        )
        assert response.status_code == 200, response.get_json()
        jobs = response.get_json()["data"]
        if jobs and jobs[0]["state"] == "TERMINATED":
            return jobs[0]
        assert time.monotonic() < deadline, jobs
        time.sleep(0.3)


def _request(server, experiment_id, tool_name, payload, user="alice"):
    return server.post(
        f"/api/experiments/{experiment_id}/tools/request",
        user=user,
        json={"tool_name": tool_name, "payload": payload, "session_uuid": "abc"},
    )


def test_list_tools(server):
    response = server.get("/api/tools")
    assert response.status_code == 200
    tools = {t["name"]: t for t in response.get_json()["data"]}
    assert set(tools) == {"Classification", "Clustering", "Heatmap"}
    assert tools["Clustering"] == {
        "name": "Clustering",
        "icon": "CLU",
        "description": tools["Clustering"]["description"],
        "methods": ["kmeans"],
    }
    _error(server.get("/api/tools", user=None), 401)


def test_classification_over_http(server):
    experiment_id, truth = make_experiment()
    base = f"/api/experiments/{experiment_id}/tools"
    payload = classification_payload(truth, "svm")
    response = _request(server, experiment_id, "Classification", payload)
    assert response.status_code == 200, response.get_json()
    submission_id = response.get_json()["data"]["submission_id"]
    assert submission_id.isdigit()
    job = _wait_for_job(server, experiment_id, submission_id)
    assert job["exitcode"] == 0 and job["tool_name"] == "Classification", job
    assert job["submission_id"] == submission_id

    log = server.get(f"{base}/jobs/{job['id']}/log").get_json()["data"]
    assert set(log) == {"stdout", "stderr"}

    results = server.get(f"{base}/results?submission_id={submission_id}").get_json()["data"]
    assert len(results) == 1
    result = results[0]
    assert result["name"] == f"Classification-{submission_id}"
    assert result["tool_name"] == "Classification"
    assert result["type"] == "SupervisedClassifierToolResult"
    assert result["attributes"]["label_map"] == {
        "0": {"name": "dim", "color": "#0000ff"},
        "1": {"name": "bright", "color": "#ff0000"},
    }
    assert result["plots"] == [] and result["layers"] == []
    assert log["stdout"].strip() == result["id"]
    labels = labels_of(experiment_id, int(result["id"]))
    assert sum(labels[i] == truth[i] for i in labels) / len(labels) >= 0.98
    assert server.get(f"{base}/results/{result['id']}").get_json()["data"] == result
    assert server.get(f"{base}/results?name={result['name']}").get_json()["data"] == [result]
    assert server.get(f"{base}/results?name=nothing").get_json()["data"] == []

    # rename, then delete (with its labels)
    assert (
        server.put(f"{base}/results/{result['id']}", json={"name": "cells by class"}).status_code
        == 200
    )
    assert (
        server.get(f"{base}/results/{result['id']}").get_json()["data"]["name"] == "cells by class"
    )
    _error(server.put(f"{base}/results/{result['id']}", json={"name": ""}), 400)
    _error(server.put(f"{base}/results/{result['id']}", json={}), 400)
    _error(server.put(f"{base}/results/{result['id']}", user="bob", json={"name": "x"}), 403)
    _error(server.delete(f"{base}/results/{result['id']}", user="bob"), 403)
    assert server.delete(f"{base}/results/{result['id']}").get_json() == {"message": "ok"}
    _error(server.get(f"{base}/results/{result['id']}"), 404)
    _error(server.delete(f"{base}/results/{result['id']}"), 404)
    assert labels_of(experiment_id, int(result["id"])) == {}


def test_clustering_and_job_filters(server):
    experiment_id, truth = make_experiment()
    base = f"/api/experiments/{experiment_id}/tools"
    payload = {
        "chosen_object_type": "Cells",
        "selected_features": FEATURES[:2],
        "options": {"method": "kmeans", "k": 2},
    }
    first = _request(server, experiment_id, "Clustering", payload).get_json()["data"][
        "submission_id"
    ]
    second = _request(
        server,
        experiment_id,
        "Heatmap",
        {"chosen_object_type": "Cells", "selected_feature": "Morphology_area"},
    ).get_json()["data"]["submission_id"]
    for submission_id in (first, second):
        assert _wait_for_job(server, experiment_id, submission_id)["exitcode"] == 0
    jobs = server.get(f"{base}/jobs").get_json()["data"]
    assert {j["submission_id"] for j in jobs} == {first, second}
    assert [
        j["submission_id"] for j in server.get(f"{base}/jobs?tool_name=Heatmap").get_json()["data"]
    ] == [second]
    assert server.get(f"{base}/jobs?state=RUNNING").get_json()["data"] == []
    _error(server.get(f"{base}/jobs?state=BORED"), 400)
    _error(server.get(f"{base}/jobs?tool_name=Magic"), 404)
    _error(server.get(f"{base}/jobs/999999/log"), 404)

    clusters = server.get(f"{base}/results?submission_id={first}").get_json()["data"][0]
    assert clusters["type"] == "ScalarToolResult"
    assert clusters["attributes"]["unique_labels"] == [0, 1]
    labels = labels_of(experiment_id, int(clusters["id"]))
    ids = sorted(labels)
    assert len(ids) == len(truth)
    assert adjusted_rand_score([truth[i] for i in ids], [labels[i] for i in ids]) == 1.0

    heatmap = server.get(f"{base}/results?submission_id={second}").get_json()["data"][0]
    with tm.utils.ExperimentSession(experiment_id) as session:
        values = [r.values[1] for r in session.scalars(sa.select(tm.FeatureValues))]
    assert heatmap["type"] == "HeatmapToolResult"
    assert heatmap["attributes"]["min"] == float(np.min(values))
    assert heatmap["attributes"]["max"] == float(np.max(values))


def test_bad_requests(server):
    experiment_id, truth = make_experiment()
    base = f"/api/experiments/{experiment_id}"
    good = {"chosen_object_type": "Cells", "selected_features": FEATURES, "options": {"k": 2}}
    _error(_request(server, experiment_id, "Clustering", good, user="bob"), 403)
    cases = [
        (
            {"chosen_object_type": "Bogus", "selected_features": FEATURES, "options": {"k": 2}},
            "unknown object type",
        ),
        (
            {"chosen_object_type": "Cells", "selected_features": ["X"], "options": {"k": 2}},
            "no feature(s) 'X'",
        ),
        (
            {"chosen_object_type": "Cells", "selected_features": FEATURES, "options": {"k": 1}},
            "'k' must be at least 2",
        ),
    ]
    for payload, message in cases:
        body = _error(_request(server, experiment_id, "Clustering", payload), 400)
        assert message in body["message"]
    payload = classification_payload(truth)
    payload["training_classes"] = payload["training_classes"][:1]
    assert (
        "at least 2 classes"
        in _error(_request(server, experiment_id, "Classification", payload), 400)["message"]
    )
    _error(_request(server, experiment_id, "Magic", good), 400)
    _error(server.post(f"{base}/tools/request", json={"tool_name": "Clustering"}), 400)
    _error(
        server.post(f"{base}/tools/request", json={"tool_name": "Clustering", "payload": [1]}), 400
    )
    _error(_request(server, 999999, "Clustering", good), 404)
    # nothing was submitted
    assert server.get(f"{base}/tools/jobs").get_json()["data"] == []
    assert server.get(f"{base}/tools/results").get_json()["data"] == []
    _error(server.get(f"{base}/tools/results", user="bob"), 403)
    _error(server.get(f"{base}/tools/jobs", user="bob"), 403)
    _error(server.get(f"{base}/tools/results/12345"), 404)
    _error(server.get(f"{base}/tools/results?submission_id=abc"), 400)


@pytest.mark.slow
def test_heatmap_on_processed_plate(processed_server, processed):
    """The processed plate's real features; the result is deleted again (shared data)."""
    server, experiment_id = processed_server, processed.experiment_id
    base = f"/api/experiments/{experiment_id}/tools"
    with tm.utils.ExperimentSession(experiment_id) as session:
        mtype = session.scalar(sa.select(tm.MapobjectType).where(tm.MapobjectType.name == "Nuclei"))
        features = session.scalars(
            sa.select(tm.Feature)
            .where(tm.Feature.mapobject_type_id == mtype.id)
            .order_by(tm.Feature.id)
        ).all()
        position, feature = next((i, f) for i, f in enumerate(features) if "area" in f.name.lower())
        values = [
            r.values[position]
            for r in session.scalars(
                sa.select(tm.FeatureValues)
                .join(tm.Mapobject, tm.Mapobject.id == tm.FeatureValues.mapobject_id)
                .where(tm.Mapobject.mapobject_type_id == mtype.id)
            )
        ]
        layer_ids = [str(layer.id) for layer in mtype.layers]
    response = _request(
        server,
        experiment_id,
        "Heatmap",
        {"chosen_object_type": "Nuclei", "selected_feature": feature.name},
    )
    assert response.status_code == 200, response.get_json()
    submission_id = response.get_json()["data"]["submission_id"]
    try:
        assert _wait_for_job(server, experiment_id, submission_id)["exitcode"] == 0
        result = server.get(f"{base}/results?submission_id={submission_id}").get_json()["data"][0]
        assert result["attributes"] == {
            "feature_id": feature.id,
            "min": float(np.nanmin(values)),
            "max": float(np.nanmax(values)),
        }
        assert sorted(layer["id"] for layer in result["layers"]) == sorted(layer_ids)
    finally:
        for result in server.get(f"{base}/results?submission_id={submission_id}").get_json()[
            "data"
        ]:
            server.delete(f"{base}/results/{result['id']}")
