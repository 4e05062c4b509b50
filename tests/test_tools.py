"""Analysis tools (classification, clustering, heat map) and ``tm_tool`` on synthetic features."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.metrics import adjusted_rand_score

import tmlib.models as tm
from tmlib import registry, tools
from tmlib.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from tmlib.tools import base

FEATURES = ["Intensity_mean", "Morphology_area", "Noise"]
N_PER_GROUP = 60


def make_experiment(name: str = "exp") -> tuple[int, dict[int, int]]:
    """An experiment with an object type "Cells" of two well-separated groups.

    Features are stored in the order of their ids; "Noise" is pure noise.
    Returns the experiment id and the ground truth {mapobject_id: group}.
    """
    with contextlib.suppress(AlreadyExistsError):  # the server fixture made her
        registry.add_user("alice", "secret", "alice@example.org")
    experiment_id = registry.add_experiment(name, "alice")
    rng = np.random.default_rng(1)
    truth: dict[int, int] = {}
    with tm.utils.ExperimentSession(experiment_id) as session:
        mtype = tm.MapobjectType(name="Cells", experiment_id=experiment_id)
        other = tm.MapobjectType(name="Nuclei", experiment_id=experiment_id)
        session.add_all([mtype, other])
        session.flush()
        for feature in FEATURES:
            session.add(tm.Feature(name=feature, mapobject_type_id=mtype.id))
        session.add(tm.Feature(name="Only_nuclei", mapobject_type_id=other.id))
        session.flush()
        for group in (0, 1):
            for i in range(N_PER_GROUP):
                obj = tm.Mapobject(partition_key=7 + group, mapobject_type_id=mtype.id)
                session.add(obj)
                session.flush()
                truth[obj.id] = group
                centre = np.array([100.0, 50.0]) if group == 0 else np.array([300.0, 150.0])
                values = np.append(centre + rng.normal(0, 5, 2), rng.normal(0, 1))
                if group == 1 and i == 0:
                    values[2] = np.nan  # objects with NaN get no label
                session.add(
                    tm.FeatureValues(
                        mapobject_id=obj.id,
                        tpoint=0,
                        partition_key=obj.partition_key,
                        values=values,
                    )
                )
        nucleus = tm.Mapobject(partition_key=7, mapobject_type_id=other.id)
        session.add(nucleus)
    return experiment_id, truth


@pytest.fixture
def experiment(tmaps):
    return make_experiment()


def labels_of(experiment_id: int, result_id: int) -> dict[int, float]:
    with tm.utils.ExperimentSession(experiment_id) as session:
        rows = session.execute(sa.select(tm.LabelValues.mapobject_id, tm.LabelValues.values)).all()
    return {i: v[str(result_id)] for i, v in rows if str(result_id) in v}


def nan_object(truth: dict[int, int]) -> int:
    return [i for i, g in truth.items() if g == 1][0]


def classification_payload(truth, method="randomforest", n=10, **options):
    groups = {0: [], 1: []}
    for object_id, group in truth.items():
        if len(groups[group]) < n and object_id != nan_object(truth):
            groups[group].append(str(object_id))
    return {
        "chosen_object_type": "Cells",
        "selected_features": FEATURES,
        "training_classes": [
            {"name": "dim", "object_ids": groups[0], "color": "#0000ff"},
            {"name": "bright", "object_ids": groups[1], "color": "#ff0000"},
        ],
        "options": {"method": method, "n_fold_cv": 5, **options},
    }


def test_registry_and_descriptions():
    assert set(tools.TOOLS) == {"Classification", "Clustering", "Heatmap"}
    described = {d["name"]: d for d in tools.describe_tools()}
    assert described["Classification"]["icon"] == "SVC"
    assert described["Classification"]["methods"] == ["randomforest", "svm", "logisticregression"]
    assert described["Clustering"]["methods"] == ["kmeans"]
    with pytest.raises(NotFoundError, match="known tools: Classification, Clustering, Heatmap"):
        tools.get_tool("Aggregation")


def test_iter_features_chunks_and_order(experiment):
    experiment_id, truth = experiment
    with tm.utils.ExperimentSession(experiment_id) as session:
        type_id = session.scalar(
            sa.select(tm.MapobjectType.id).where(tm.MapobjectType.name == "Cells")
        )
        stored = {r.mapobject_id: r.values for r in session.scalars(sa.select(tm.FeatureValues))}
    chunks = list(base.iter_features(experiment_id, type_id, ["Noise", "Intensity_mean"], 7))
    assert all(len(c) <= 7 for c in chunks) and len(chunks) == -(-len(truth) // 7)
    frame = pd.concat(chunks)
    assert list(frame.columns) == ["Noise", "Intensity_mean"]
    assert frame.index.names == ["mapobject_id", "tpoint"]
    assert sorted(frame.index.get_level_values(0)) == sorted(truth)
    for (object_id, _), row in frame.iterrows():
        np.testing.assert_array_equal(row.to_numpy(), stored[object_id][[2, 0]])


def test_classification_with_as_many_objects_per_class_as_folds(experiment):
    # every fold keeps both classes (stratified), so even an SVM trains on 2 + 2 objects
    experiment_id, truth = experiment
    payload = classification_payload(truth, "svm", n=2, n_fold_cv=2)
    result_id = tools.get_tool("Classification")(experiment_id).process(12, payload)
    labels = labels_of(experiment_id, result_id)
    for cls, group in zip(payload["training_classes"], (0, 1), strict=True):
        assert all(labels[int(i)] == group for i in cls["object_ids"])


def test_more_folds_than_objects_of_a_class_is_refused(experiment):
    experiment_id, truth = experiment
    payload = classification_payload(truth, n=3, n_fold_cv=4)
    with pytest.raises(InvalidInputError, match="usable objects of training class 'dim' \\(3\\)"):
        tools.get_tool("Classification")(experiment_id).process(13, payload)


@pytest.mark.parametrize("method", ["randomforest", "svm", "logisticregression"])
def test_classification_methods(experiment, method):
    experiment_id, truth = experiment
    result_id = tools.get_tool("Classification")(experiment_id).process(
        11, classification_payload(truth, method)
    )
    labels = labels_of(experiment_id, result_id)
    # the object with a NaN feature gets no label; all others are classified correctly
    assert nan_object(truth) not in labels
    assert len(labels) == len(truth) - 1
    correct = sum(labels[i] == truth[i] for i in labels)
    assert correct / len(labels) >= 0.98
    with tm.utils.ExperimentSession(experiment_id) as session:
        result = session.get(tm.ToolResult, result_id)
        assert result.type == "SupervisedClassifierToolResult"
        assert result.name == "Classification-11" and result.submission_id == 11
        assert result.attributes["unique_labels"] == [0, 1]
        assert result.attributes["label_map"]["1"] == {"name": "bright", "color": "#ff0000"}
        assert result.attributes["method"] == method


def test_clustering_recovers_groups_and_merges_labels(experiment):
    experiment_id, truth = experiment
    payload = {
        "chosen_object_type": "Cells",
        "selected_features": ["Intensity_mean", "Morphology_area"],
        "options": {"method": "kmeans", "k": 2},
    }
    first = tools.get_tool("Clustering")(experiment_id).process(21, payload)
    payload["selected_features"] = FEATURES
    second = tools.get_tool("Clustering")(experiment_id).process(22, payload)
    a, b = labels_of(experiment_id, first), labels_of(experiment_id, second)
    assert len(a) == len(truth)  # the NaN is in a feature not used
    ids = sorted(a)
    assert adjusted_rand_score([truth[i] for i in ids], [a[i] for i in ids]) == 1.0
    assert set(b) == set(truth) - {nan_object(truth)}
    ids = sorted(b)
    assert adjusted_rand_score([truth[i] for i in ids], [b[i] for i in ids]) == 1.0
    # both results live side by side in the same rows
    with tm.utils.ExperimentSession(experiment_id) as session:
        rows = session.scalars(sa.select(tm.LabelValues)).all()
        assert len(rows) == len(truth)
        assert all(r.partition_key in (7, 8) for r in rows)
        result = session.get(tm.ToolResult, first)
        assert result.type == "ScalarToolResult" and result.attributes["unique_labels"] == [0, 1]
    # delete one: its labels go, the other's stay
    tools.delete_result(experiment_id, first)
    assert labels_of(experiment_id, first) == {}
    assert labels_of(experiment_id, second) == b
    with pytest.raises(NotFoundError):
        tools.delete_result(experiment_id, first)


def test_clustering_sample_is_bounded(experiment):
    experiment_id, truth = experiment
    tool = tools.get_tool("Clustering")(experiment_id)
    request = tool.validate(
        {
            "chosen_object_type": "Cells",
            "selected_features": ["Intensity_mean"],
            "options": {"k": 3},
        }
    )
    sample = tool.sample(request, size=25)
    assert len(sample) == 25 and sample.index.is_unique
    assert set(sample.index.get_level_values(0)) <= set(truth)


def test_heatmap_min_max(experiment):
    experiment_id, truth = experiment
    with tm.utils.ExperimentSession(experiment_id) as session:
        values = np.array([r.values[2] for r in session.scalars(sa.select(tm.FeatureValues))])
        feature_id = session.scalar(sa.select(tm.Feature.id).where(tm.Feature.name == "Noise"))
    result_id = tools.get_tool("Heatmap")(experiment_id).process(
        31, {"chosen_object_type": "Cells", "selected_feature": "Noise"}
    )
    with tm.utils.ExperimentSession(experiment_id) as session:
        result = session.get(tm.ToolResult, result_id)
        assert result.type == "HeatmapToolResult"
        assert result.attributes == {
            "feature_id": feature_id,
            "min": float(np.nanmin(values)),
            "max": float(np.nanmax(values)),
        }
    assert labels_of(experiment_id, result_id) == {}


def test_rerun_replaces_result_and_rename(experiment):
    experiment_id, truth = experiment
    payload = {
        "chosen_object_type": "Cells",
        "selected_features": FEATURES[:2],
        "options": {"k": 2},
    }
    tool = tools.get_tool("Clustering")(experiment_id)
    first = tool.process(41, payload)
    tools.rename_result(experiment_id, first, "my clusters")
    second = tool.process(41, payload)
    with tm.utils.ExperimentSession(experiment_id) as session:
        results = session.scalars(sa.select(tm.ToolResult)).all()
        assert [(r.id, r.name, r.submission_id) for r in results] == [(second, "my clusters", 41)]
    assert len(labels_of(experiment_id, second)) == len(truth)
    if first != second:
        assert labels_of(experiment_id, first) == {}
    with pytest.raises(InvalidInputError):
        tools.rename_result(experiment_id, second, "  ")
    with pytest.raises(NotFoundError):
        tools.rename_result(experiment_id, second + 100, "x")


def test_failed_run_leaves_no_result(experiment, monkeypatch):
    experiment_id, truth = experiment
    tool = tools.get_tool("Clustering")(experiment_id)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(base, "save_labels", broken)
    monkeypatch.setattr("tmlib.tools.clustering.save_labels", broken)
    payload = {
        "chosen_object_type": "Cells",
        "selected_features": FEATURES[:2],
        "options": {"k": 2},
    }
    with pytest.raises(RuntimeError):
        tool.process(51, payload)
    with tm.utils.ExperimentSession(experiment_id) as session:
        assert session.scalars(sa.select(tm.ToolResult)).all() == []


BAD_PAYLOADS = [
    (
        "Classification",
        lambda p: p.update(chosen_object_type="Bogus"),
        "unknown object type 'Bogus'",
    ),
    ("Classification", lambda p: p.update(selected_features=["Nope"]), "no feature(s) 'Nope'"),
    ("Classification", lambda p: p.update(selected_features=[]), "selected_features"),
    ("Classification", lambda p: p["training_classes"].pop(), "at least 2 classes"),
    (
        "Classification",
        lambda p: p["training_classes"][0].update(object_ids=[]),
        "non-empty list of object ids",
    ),
    (
        "Classification",
        lambda p: p["training_classes"][1].update(
            object_ids=p["training_classes"][0]["object_ids"]
        ),
        "is in training classes 'dim' and 'bright'",
    ),
    (
        "Classification",
        lambda p: p["training_classes"][0]["object_ids"].append("999999"),
        "not objects of type 'Cells': 999999",
    ),
    (
        "Classification",
        lambda p: p["options"].update(method="deeplearning"),
        "unknown Classification method",
    ),
    ("Classification", lambda p: p["options"].update(n_fold_cv=50), "n_fold_cv (50) exceeds"),
    (
        "Classification",
        lambda p: p["options"].update(n_fold_cv=1),
        "'n_fold_cv' must be at least 2",
    ),
    ("Clustering", lambda p: p["options"].update(k=1), "'k' must be at least 2"),
    ("Clustering", lambda p: p["options"].update(k=999), "cannot make 999 clusters"),
    ("Clustering", lambda p: p["options"].pop("k"), "option 'k' is required"),
    ("Heatmap", lambda p: p.pop("selected_feature"), "needs 'selected_feature'"),
    ("Heatmap", lambda p: p.update(selected_feature="Only_nuclei"), "no feature(s) 'Only_nuclei'"),
]


def payload_for(tool, truth):
    if tool == "Classification":
        return classification_payload(truth)
    if tool == "Clustering":
        return {"chosen_object_type": "Cells", "selected_features": FEATURES, "options": {"k": 2}}
    return {"chosen_object_type": "Cells", "selected_feature": "Noise"}


def test_bad_payloads(experiment):
    experiment_id, truth = experiment
    for tool, change, message in BAD_PAYLOADS:
        payload = payload_for(tool, truth)
        change(payload)
        with pytest.raises(InvalidInputError) as err:
            tools.validate_request(experiment_id, tool, payload)
        assert message in str(err.value), (tool, message)
        assert "\n" not in str(err.value)
    for payload in (None, [], "x"):
        with pytest.raises(InvalidInputError, match="must be a JSON object"):
            tools.validate_request(experiment_id, "Heatmap", payload)
    with pytest.raises(NotFoundError, match="unknown tool"):
        tools.validate_request(experiment_id, "Magic", {})


def test_empty_training_class(experiment):
    experiment_id, truth = experiment
    payload = classification_payload(truth)
    payload["training_classes"][1]["object_ids"] = [str(nan_object(truth))]
    payload["options"]["n_fold_cv"] = 2
    with pytest.raises(InvalidInputError, match="training class 'bright' is empty"):
        tools.get_tool("Classification")(experiment_id).process(61, payload)
    with tm.utils.ExperimentSession(experiment_id) as session:
        assert session.scalars(sa.select(tm.ToolResult)).all() == []


def test_payload_files(experiment):
    experiment_id, _ = experiment
    path = tools.write_payload(experiment_id, "Heatmap", 5, {"a": 1})
    assert path.name == "Heatmap_5.json" and path.parent.name == "batches"
    assert tools.read_payload(experiment_id, "Heatmap", 5) == {"a": 1}
    assert [p.name for p in path.parent.iterdir()] == ["Heatmap_5.json"]  # no temp files
    with pytest.raises(NotFoundError, match="no Heatmap request for submission 6"):
        tools.read_payload(experiment_id, "Heatmap", 6)


def test_job_tree(experiment):
    experiment_id, _ = experiment
    token = "0123456789abcdef01234567"
    tree = tools.job_tree(experiment_id, "Clustering", token)
    assert tree.job is not None and tree.job.name == f"Clustering_{token}"
    assert tree.job.command[-5:] == [str(experiment_id), "--name", "Clustering", "--request", token]
    assert tree.job.resources.walltime == 6 * 3600
    assert tree.job.log_dir.parts[-2:] == ("tools", "log")
    with pytest.raises(InvalidInputError, match="invalid request token"):
        tools.job_tree(experiment_id, "Clustering", "../../etc")


def test_submit_request_runs_in_background(experiment):
    from tmlib.workflow import manager

    experiment_id, truth = experiment
    payload = {
        "chosen_object_type": "Cells",
        "selected_features": FEATURES[:2],
        "options": {"k": 2},
    }
    with pytest.raises(InvalidInputError):  # validated before anything is submitted
        tools.submit_request(experiment_id, "Clustering", {**payload, "options": {"k": 0}})
    assert tools.tool_jobs(experiment_id) == []
    submission_id = tools.submit_request(experiment_id, "Clustering", payload)
    assert manager.wait_for_engine(submission_id, timeout=120)
    assert tools.read_payload(experiment_id, "Clustering", submission_id) == payload
    batches = tools.payload_path(experiment_id, "Clustering", submission_id).parent
    assert [p.name for p in batches.iterdir()] == [f"Clustering_{submission_id}.json"]
    jobs = tools.tool_jobs(experiment_id, submission_id=submission_id)
    assert len(jobs) == 1, jobs
    job = jobs[0]
    assert (job["state"], job["exitcode"], job["failed"]) == ("TERMINATED", 0, False)
    assert job["tool_name"] == "Clustering" and job["submission_id"] == submission_id
    assert tools.tool_jobs(experiment_id, tool_name="Heatmap") == []
    assert tools.tool_jobs(experiment_id, state="RUNNING") == []
    with tm.utils.ExperimentSession(experiment_id) as session:
        result = session.scalar(
            sa.select(tm.ToolResult).where(tm.ToolResult.submission_id == submission_id)
        )
        result_id = result.id
    log = tools.tool_job_log(experiment_id, job["id"])
    assert log["stdout"].strip() == str(result_id)
    labels = labels_of(experiment_id, result_id)
    ids = sorted(labels)
    assert adjusted_rand_score([truth[i] for i in ids], [labels[i] for i in ids]) == 1.0
    with pytest.raises(NotFoundError):
        tools.tool_job_log(experiment_id, job["id"] + 1000)


# ------------------------------------------------------------------- tm_tool


def tm_tool(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "tm_tool"), *map(str, args)],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
    )


def test_tm_tool_runs_stored_request(experiment):
    experiment_id, truth = experiment
    payload = {
        "chosen_object_type": "Cells",
        "selected_features": FEATURES[:2],
        "options": {"k": 2},
    }
    tools.write_payload(experiment_id, "Clustering", 71, payload)
    done = tm_tool(experiment_id, "--name", "Clustering", "--submission-id", 71)
    assert done.returncode == 0, done.stderr
    result_id = int(done.stdout.strip())
    labels = labels_of(experiment_id, result_id)
    ids = sorted(labels)
    assert len(ids) == len(truth)
    assert adjusted_rand_score([truth[i] for i in ids], [labels[i] for i in ids]) == 1.0
    # idempotent: running it again replaces the result
    again = tm_tool(experiment_id, "--name", "Clustering", "--submission-id", 71)
    assert again.returncode == 0, again.stderr
    with tm.utils.ExperimentSession(experiment_id) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(tm.ToolResult)) == 1


def test_tm_tool_errors(experiment):
    experiment_id, truth = experiment
    tools.write_payload(
        experiment_id,
        "Clustering",
        72,
        {"chosen_object_type": "Cells", "selected_features": ["Bogus"], "options": {"k": 2}},
    )
    cases = [
        ((experiment_id, "--name", "Clustering", "--submission-id", 72), "no feature(s) 'Bogus'"),
        ((experiment_id, "--name", "Clustering", "--submission-id", 73), "no Clustering request"),
        ((experiment_id, "--name", "Magic", "--submission-id", 72), "unknown tool 'Magic'"),
        ((experiment_id, "--submission-id", 72), "Missing option"),
        ((999, "--name", "Clustering", "--submission-id", 72), "experiment 999 does not exist"),
    ]
    for args, message in cases:
        done = tm_tool(*args)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tm_tool: error:"), done.stderr
        assert message in lines[0], lines[0]
    # a stored request that is not JSON
    path = tools.payload_path(experiment_id, "Heatmap", 74)
    path.write_text("{not json")
    done = tm_tool(experiment_id, "--name", "Heatmap", "--submission-id", 74)
    assert done.returncode == 2 and "not valid JSON" in done.stderr
    json.loads(tools.payload_path(experiment_id, "Clustering", 72).read_text())
