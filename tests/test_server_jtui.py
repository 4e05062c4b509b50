"""The pipeline editor's routes under /jtui: project, modules, channels, debug jobs, figures."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from test_server_workflow import _add_plate, _error, _experiment, _ok, _run

import jtmodules
import tmlib.models as tm
from tmlib.workflow import manager

SQLITE_ONLY = pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)
LIBRARY = Path(jtmodules.__file__).parent

SLEEPY = """
import collections
import time

VERSION = "1.0.0"
Output = collections.namedtuple("Output", ["slept_image"])


def main(image, seconds):
    time.sleep(seconds)
    return Output(image)
"""
SLEEPY_HANDLES = {
    "version": "1.0.0",
    "input": [
        {"name": "image", "type": "IntensityImage", "key": "CHANNEL"},
        {"name": "seconds", "type": "Numeric", "value": 60},
    ],
    "output": [{"name": "slept_image", "type": "IntensityImage", "key": "sleepy.slept_image"}],
}


def _user_modules(tmp_path: Path, monkeypatch) -> Path:
    directory = tmp_path / "modules"
    directory.mkdir()
    (directory / "sleepy.py").write_text(SLEEPY)
    (directory / "sleepy.handles.yaml").write_text(yaml.safe_dump(SLEEPY_HANDLES))
    monkeypatch.setenv("TMAPS_JTMODULES_PATH", str(directory))
    return directory


def test_available_modules_and_source_code(server, tmp_path, monkeypatch):
    directory = _user_modules(tmp_path, monkeypatch)
    modules = {m["name"]: m for m in _ok(server.get("/jtui/available_modules"))["data"]}
    library = {p.name[: -len(".handles.yaml")] for p in LIBRARY.glob("*.handles.yaml")}
    assert set(modules) == library | {"sleepy"}
    smooth = yaml.safe_load((LIBRARY / "smooth.handles.yaml").read_text())
    assert modules["smooth"] == {"name": "smooth", "source": "smooth.py", "description": smooth}
    assert modules["sleepy"]["description"] == SLEEPY_HANDLES

    source = server.get("/jtui/module_source_code?module_name=smooth")
    assert source.status_code == 200
    assert source.get_data(as_text=True) == (LIBRARY / "smooth.py").read_text()
    for name in ("sleepy", "sleepy.py"):
        response = server.get(f"/jtui/module_source_code?module_name={name}")
        assert response.get_data(as_text=True) == (directory / "sleepy.py").read_text()
    # only modules on the module path, by name
    (tmp_path / "secret.py").write_text("password = 1\n")
    for name in ("../secret", "../../etc/passwd", "/etc/passwd", str(tmp_path / "secret.py"),
                 "smooth/../smooth", "__init__", "_plots", "no_such_module", ".."):  # fmt: skip
        _error(server.get("/jtui/module_source_code", query_string={"module_name": name}), 404)
    _error(server.get("/jtui/module_source_code"), 400)
    _error(server.get("/jtui/module_source_code?module_name=smooth", user=None), 401)
    _error(server.get("/jtui/available_modules", user=None), 401)


def test_other_users_get_403(server):
    eid = _experiment(server)
    base = f"/jtui/experiments/{eid}"
    for method, path in [
        ("get", "project"), ("post", "project"), ("delete", "project"), ("post", "project/check"),
        ("get", "available_channels"), ("get", "available_objects"),
        ("get", "figure?module_name=x&job_id=1"),
        ("post", "joblist"), ("post", "jobs/run"), ("post", "jobs/status"),
        ("post", "jobs/output"), ("post", "jobs/kill"),
    ]:  # fmt: skip
        body = _error(getattr(server, method)(f"{base}/{path}", user="bob", json={}), 403)
        assert body["type"] == "ForbiddenError"
    _error(server.get("/jtui/experiments/999/available_channels"), 404)
    # no channels yet: no default project either
    _error(server.get(f"{base}/project"), 404)
    assert _ok(server.post(f"{base}/jobs/status"))["data"] is None
    assert _ok(server.post(f"{base}/jobs/output", json={}))["data"] == []


def test_handle_types_input_objects_and_the_name_rule(server):
    """What the editor takes from the server: the handle types' rules, the object types a
    pipeline can load, and the module-name rule (in the OpenAPI description)."""
    from tmlib.jterator.handles import HANDLE_TYPES

    types = {t["name"]: t for t in _ok(server.get("/jtui/handle_types"))["data"]}
    assert set(types) == set(HANDLE_TYPES)
    for name, kind in HANDLE_TYPES.items():
        assert types[name] == {"name": name, "kind": kind.kind, "accepts": sorted(kind.accepts)}
    assert "SegmentedObjects" in types["LabelImage"]["accepts"]  # input objects are labels
    _error(server.get("/jtui/handle_types", user=None), 401)

    eid = _experiment(server, "objects")
    base = f"/jtui/experiments/{eid}"
    assert _ok(server.get(f"{base}/available_objects"))["data"] == []
    for name in ("Nuclei", "Cells"):
        _ok(server.post(f"/api/experiments/{eid}/mapobject_types", json={"name": name}))
    assert _ok(server.get(f"{base}/available_objects"))["data"] == ["Cells", "Nuclei"]

    spec = server.get("/api/openapi.json").get_json()
    body = spec["paths"]["/jtui/experiments/{experiment_id}/project"]["post"]["requestBody"]
    project = body["content"]["application/json"]["schema"]["properties"]["project"]
    entry = project["properties"]["pipeline"]["properties"]["pipeline"]["items"]
    pattern = entry["properties"]["handles"]["pattern"]
    assert re.fullmatch(pattern, "handles/label_2.handles.yaml")
    # the server refuses what its description refuses
    for name in ("_label", "la bel", "x" * 101, "label.1"):
        assert not re.fullmatch(pattern, f"handles/{name}.handles.yaml")
        bad = {
            "pipeline": {"pipeline": [{"source": "label.py",
                                       "handles": f"handles/{name}.handles.yaml"}]},
            "handles": {name: {}},
        }  # fmt: skip
        message = _error(server.post(f"{base}/project/check", json={"project": bad}), 400)
        assert "module name of letters, digits, _ and -" in message["message"]
    assert re.fullmatch(entry["properties"]["source"]["pattern"], "smooth.py")


def _wait_jobs(server, eid: int, submission_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        tree = _ok(server.post(f"/jtui/experiments/{eid}/jobs/status"))["data"]
        assert tree["submission_id"] == submission_id
        if tree["state"] == "TERMINATED" and manager.wait_for_engine(int(submission_id), 30):
            return _ok(server.post(f"/jtui/experiments/{eid}/jobs/status"))["data"]
        assert time.monotonic() < deadline, "the debug jobs did not end"
        time.sleep(0.3)


@SQLITE_ONLY
@pytest.mark.slow
def test_project_and_debug_jobs(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TMAPS_CORES", "2")
    _user_modules(tmp_path, monkeypatch)
    eid = _experiment(server)
    _add_plate(eid, tmp_path, wells=1, sites=2)
    description = manager.load_description(eid).to_dict()
    for stage in description["stages"]:
        stage["active"] = stage["name"] == "image_conversion"
    manager.save_description(eid, description)
    _run("tm_workflow", eid, "submit")
    base = f"/jtui/experiments/{eid}"
    location = manager.description_path(eid).parent / "jterator"

    with tm.utils.ExperimentSession(eid) as session:
        channels = list(session.scalars(sa.select(tm.Channel.name).order_by(tm.Channel.id)))
        sites = session.execute(
            sa.select(tm.Site.id, tm.Site.x, tm.Site.y, tm.Well.name)
            .join(tm.Well, tm.Site.well_id == tm.Well.id)
            .order_by(tm.Site.id)
        ).all()
    assert len(channels) == 2 and len(sites) == 2
    assert _ok(server.get(f"{base}/available_channels"))["data"] == channels

    # the default project is offered, not written
    default = _ok(server.get(f"{base}/project"))["data"]
    assert default["pipeline"]["input"]["channels"][0]["name"] == channels[0]
    assert "smooth" in default["handles"]
    assert not (location / "pipeline.yaml").exists()
    project = {"project": default}
    assert _ok(server.post(f"{base}/project/check", json=project))["message"] == "ok"
    assert not (location / "pipeline.yaml").exists()
    broken = yaml.safe_load(yaml.safe_dump(default))
    broken["pipeline"]["input"]["channels"][0]["name"] = "NoSuchChannel"
    body = _error(server.post(f"{base}/project/check", json={"project": broken}), 400)
    assert "NoSuchChannel" in body["message"]
    _error(server.post(f"{base}/project", json={"project": broken}), 400)
    _error(server.post(f"{base}/project", json={"project": "x"}), 400)
    assert not (location / "pipeline.yaml").exists()
    _error(server.delete(f"{base}/project"), 404)

    assert _ok(server.post(f"{base}/project", json=project))["message"] == "ok"
    assert yaml.safe_load((location / "pipeline.yaml").read_text()) == default["pipeline"]
    assert _ok(server.get(f"{base}/project"))["data"] == default

    # the job list: one job per site, by site id
    jobs = _ok(server.post(f"{base}/joblist", json={}))["data"]
    assert jobs == [
        {"id": i + 1, "site_id": str(s), "plate": "plate01", "well": w, "x": x, "y": y}
        for i, (s, x, y, w) in enumerate(sites)
    ]
    assert (
        _ok(server.post(f"{base}/joblist", json={"index": 1, "batch_size": 5}))["data"]
        == (jobs[1:])
    )

    # bad job ids
    for job_ids in ([], [0], [3], [1, 1], list(range(1, 12)), ["x"]):
        _error(server.post(f"{base}/jobs/run", json={"job_ids": job_ids}), 400)
    _error(server.post(f"{base}/jobs/run", json={}), 400)

    # a slow pipeline: a second run is refused while it runs, and kill stops it
    slow = {
        "pipeline": {
            "input": {"channels": [{"name": channels[0], "correct": False}], "objects": []},
            "pipeline": [{"source": "sleepy.py", "handles": "handles/sleepy.handles.yaml"}],
            "output": {"objects": []},
        },
        "handles": {"sleepy": {**SLEEPY_HANDLES, "input": [
            {"name": "image", "type": "IntensityImage", "key": channels[0]},
            {"name": "seconds", "type": "Numeric", "value": 60},
        ]}},
    }  # fmt: skip
    started = _ok(server.post(f"{base}/jobs/run", json={"job_ids": [1], "project": slow}))
    submission = started["data"]["submission_id"]
    assert yaml.safe_load((location / "pipeline.yaml").read_text()) == slow["pipeline"]
    body = _error(server.post(f"{base}/jobs/run", json={"job_ids": [2]}), 409)
    assert "still running" in body["message"]
    # nor is the project of running jobs replaced
    _error(server.post(f"{base}/jobs/run", json={"job_ids": [2], "project": default}), 409)
    assert yaml.safe_load((location / "pipeline.yaml").read_text()) == slow["pipeline"]
    deadline = time.monotonic() + 60
    while True:  # until the job runs (sleeping in the module)
        tree = _ok(server.post(f"{base}/jobs/status"))["data"]
        if tree["subtasks"][0]["state"] == "RUNNING":
            break
        assert time.monotonic() < deadline, tree
        time.sleep(0.1)
    _error(server.post(f"{base}/jobs/kill", json={"task_id": "999999"}), 404)
    assert _ok(server.post(f"{base}/jobs/kill", json={"task_id": tree["id"]}))["message"] == "ok"
    killed = _wait_jobs(server, eid, submission, timeout=30)
    assert killed["state"] == "TERMINATED" and killed["exitcode"] != 0
    (output,) = _ok(server.post(f"{base}/jobs/output", json={}))["data"]
    assert output["id"] == 1 and output["failed"] and output["exitcode"] < 0

    # the real pipeline on both sites, with figures
    started = _ok(server.post(f"{base}/jobs/run", json={"job_ids": [2, 1], "project": default}))
    tree = _wait_jobs(server, eid, started["data"]["submission_id"])
    assert tree["exitcode"] == 0, _ok(server.post(f"{base}/jobs/output", json={}))
    assert sorted(s["name"] for s in tree["subtasks"]) == [
        "jterator_debug_0000001", "jterator_debug_0000002"
    ]  # fmt: skip
    outputs = _ok(server.post(f"{base}/jobs/output", json={"job_ids": [2]}))["data"]
    assert [o["id"] for o in outputs] == [2]
    assert not outputs[0]["failed"] and outputs[0]["exitcode"] == 0
    assert "Nuclei:" in outputs[0]["stdout"] and "Cells:" in outputs[0]["stdout"]
    # debug jobs save nothing
    with tm.utils.ExperimentSession(eid) as session:
        assert session.scalar(sa.select(sa.func.count(tm.Mapobject.id))) == 0
    for job_id, (site_id, *_) in enumerate(sites, start=1):
        figure = _ok(server.get(f"{base}/figure?module_name=smooth&job_id={job_id}"))["data"]
        path = location / "figures" / f"smooth_{site_id}.json"
        assert figure == json.loads(path.read_text())
        assert figure["data"]  # a Plotly figure
    _error(server.get(f"{base}/figure?module_name=no_module&job_id=1"), 404)
    _error(server.get(f"{base}/figure?module_name=../smooth&job_id=1"), 404)
    _error(server.get(f"{base}/figure?module_name=smooth&job_id=3"), 404)
    _error(server.get(f"{base}/figure?module_name=smooth&job_id=0"), 400)
    _error(server.get(f"{base}/figure?module_name=smooth"), 400)

    # delete
    assert _ok(server.delete(f"{base}/project"))["message"] == "ok"
    assert not (location / "pipeline.yaml").exists() and not (location / "handles").exists()
