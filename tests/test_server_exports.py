"""Exports over HTTP: start an OME-Zarr export as a job, watch it, read its log, delete it.

An export is its submitter's alone: other users, even those the experiment
is shared with, get 404 for it and list none. Deleting an export or its
experiment stops its job and removes what it wrote.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from helpers import run_step

import tmlib.models as tm
from tmlib import exports, registry, segmentations
from tmlib.simulate import PlateSpec, simulate_plate
from tmlib.workflow.jobs import procs

PLATE = "plate01"
#: what a job must do before a test gives up on it (seconds)
TIMEOUT = 120


def _error(response, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.get_data(True))
    body = response.get_json()["error"]
    assert body["error"] is True and body["status_code"] == status and body["message"]
    return body["message"]


def _blobs(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Square objects with distinct labels."""
    labels = np.zeros(shape, np.int32)
    rng = np.random.default_rng(seed)
    for label in range(1, 9):
        y, x = rng.integers(0, shape[0] - 12), rng.integers(0, shape[1] - 12)
        labels[y : y + 10, x : x + 10] = label
    return labels


@pytest.fixture
def experiment(server, tmp_path: Path) -> int:
    """alice's experiment of one well with two 256x256 sites, images extracted, "Nuclei"."""
    source = tmp_path / "plate"
    spec = PlateSpec(plate_format=96, wells=1, sites=2, channels=1, height=256, width=256, seed=5)
    simulate_plate(source, spec)
    experiment_id = registry.add_experiment("export-me", "alice", plate_format=96)
    registry.add_plate(experiment_id, PLATE)
    registry.add_acquisition(experiment_id, PLATE, "acq01")
    registry.register_files(experiment_id, PLATE, "acq01", source)
    for step in ("metaextract", "metaconfig", "imextract"):
        run_step(experiment_id, step)
    type_id = segmentations.create_mapobject_type(experiment_id, "Nuclei")
    with tm.utils.ExperimentSession(experiment_id) as session:
        sites = session.scalars(sa.select(tm.Site.id).order_by(tm.Site.id)).all()
    for index, site_id in enumerate(sites):
        labels = _blobs((256, 256), index)
        segmentations.add_segmentation(experiment_id, type_id, site_id, 0, 0, labels)
    return experiment_id


def _start(server, experiment_id: int, user: str = "alice", **body) -> dict:
    response = server.post(
        f"/api/experiments/{experiment_id}/exports",
        user=user,
        json={"format": "ome-zarr", **body},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"]


def _wait(server, experiment_id: int, export_id: str, until, user: str = "alice") -> dict:
    """Poll an export (as its owner `user`) until `until(export)` holds."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        response = server.get(f"/api/experiments/{experiment_id}/exports/{export_id}", user=user)
        assert response.status_code == 200, response.get_json()
        export = response.get_json()["data"]
        if until(export):
            return export
        assert time.monotonic() < deadline, export
        time.sleep(0.2)


def _finished(export: dict) -> bool:
    return export["state"] == "TERMINATED"


def _sleeper(experiment_id: int, out: Path, request: dict) -> list[str]:
    """An export job that writes a plate and its pid into OUT, then runs until killed."""
    script = (
        "import os, pathlib, sys, time\n"
        "out = pathlib.Path(sys.argv[1])\n"
        "(out / 'slow.zarr').mkdir(parents=True)\n"
        "(out / 'pid').write_text(str(os.getpid()))\n"
        "time.sleep(300)\n"
    )
    return [sys.executable, "-c", script, str(out)]


def _running_sleeper(
    server, monkeypatch, experiment_id: int, user: str = "alice"
) -> tuple[dict, int]:
    """Start a sleeping export of `user`; returns it (running) and its job's pid."""
    monkeypatch.setattr(exports, "export_command", _sleeper)
    export = _start(server, experiment_id, user=user)
    pid_file = Path(export["path"]) / "pid"
    running = _wait(
        server,
        experiment_id,
        export["id"],
        lambda e: e["state"] == "RUNNING" and pid_file.is_file() and pid_file.read_text(),
        user=user,
    )
    return running, int(pid_file.read_text())


def _ended(pid: int) -> bool:
    """Whether process `pid` is gone (or a zombie), waiting a little for it."""
    deadline = time.monotonic() + 10
    while procs.is_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_owner_exports_and_nobody_else_sees_it(server, experiment):
    base = f"/api/experiments/{experiment}/exports"
    registry.share_experiment(experiment, "bob", write_access=False)
    registry.share_experiment(experiment, "carol", write_access=True)
    started = _start(server, experiment, version="0.5", objects=["Nuclei"], levels=2)
    assert started["id"] == started["submission_id"] and started["id"].isdigit()
    assert started["state"] in ("NEW", "SUBMITTED", "RUNNING")
    path = Path(started["path"])
    assert path.parent == exports.exports_location(experiment)

    export = _wait(server, experiment, started["id"], _finished)
    log = server.get(f"{base}/{started['id']}/log").get_json()["data"]
    assert export["exitcode"] == 0 and export["failed"] is False, log
    plate = path / f"{PLATE}.zarr"
    assert export["plates"] == [str(plate)]
    assert export["request"] == {
        "format": "ome-zarr", "version": "0.5", "objects": ["Nuclei"], "features": False,
        "levels": 2, "correct": False, "align": False,
    }  # fmt: skip
    root = json.loads((plate / "zarr.json").read_text())
    assert root["attributes"]["ome"]["version"] == "0.5"
    field = plate / "A" / "01" / "0"
    assert (field / "1" / "zarr.json").is_file() and not (field / "2").exists()
    assert (field / "labels" / "Nuclei" / "zarr.json").is_file()
    assert set(log) == {"stdout", "stderr"} and str(plate) in log["stdout"]
    assert server.get(base).get_json()["data"] == [export]

    # shared users (read and write) and a stranger: as if there were no export
    for user in ("bob", "carol"):
        assert server.get(base, user=user).get_json()["data"] == []
        _error(server.get(f"{base}/{started['id']}", user=user), 404)
        _error(server.get(f"{base}/{started['id']}/log", user=user), 404)
        _error(server.delete(f"{base}/{started['id']}", user=user), 404 if user == "carol" else 403)
    registry.unshare_experiment(experiment, "carol")
    _error(server.get(base, user="carol"), 403)
    _error(server.get(f"{base}/{started['id']}", user="carol"), 403)
    _error(server.delete(f"{base}/{started['id']}", user="carol"), 403)
    _error(server.post(base, user="bob", json={"format": "ome-zarr"}), 403)
    assert (plate / "zarr.json").is_file()
    assert server.get(f"{base}/{started['id']}").get_json()["data"] == export

    # carol's own export is hers: alice does not see it
    registry.share_experiment(experiment, "carol", write_access=True)
    hers = _start(server, experiment, user="carol", version="0.4")
    _error(server.get(f"{base}/{hers['id']}"), 404)
    assert [e["id"] for e in server.get(base).get_json()["data"]] == [started["id"]]
    theirs = _wait(server, experiment, started["id"], _finished)  # alice polls her own
    assert theirs == export
    hers = _wait(server, experiment, hers["id"], _finished, user="carol")
    assert hers["exitcode"] == 0
    assert (Path(hers["path"]) / f"{PLATE}.zarr" / ".zattrs").is_file()

    # the owner deletes hers: directory, log and records go
    assert server.delete(f"{base}/{started['id']}").get_json() == {"message": "ok"}
    assert not path.exists()
    assert not list((path.parent / "log").glob(f"export_{path.name}*"))
    _error(server.get(f"{base}/{started['id']}"), 404)
    _error(server.get(f"{base}/{started['id']}/log"), 404)
    _error(server.delete(f"{base}/{started['id']}"), 404)
    assert server.get(base).get_json()["data"] == []
    assert Path(hers["path"]).is_dir()


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"format": "tiff"}, "format"),
        ({}, "format"),
        ({"format": "ome-zarr", "version": "0.3"}, "0.3"),
        ({"format": "ome-zarr", "version": 5}, "version"),
        ({"format": "ome-zarr", "objects": ["Cells"]}, "'Cells'"),
        ({"format": "ome-zarr", "objects": "Nuclei"}, "objects"),
        ({"format": "ome-zarr", "objects": [3]}, "objects"),
        ({"format": "ome-zarr", "levels": 0}, "levels"),
        ({"format": "ome-zarr", "levels": 17}, "levels"),
        ({"format": "ome-zarr", "levels": "2"}, "levels"),
        ({"format": "ome-zarr", "features": "yes please"}, "features"),
        ({"format": "ome-zarr", "correct": True}, "corilla"),
        (["ome-zarr"], "JSON object"),
    ],
)
def test_bad_requests_get_400_and_start_nothing(server, experiment, body, words):
    base = f"/api/experiments/{experiment}/exports"
    message = _error(server.post(base, json=body), 400)
    assert words in message
    assert server.get(base).get_json()["data"] == []
    location = exports.exports_location(experiment)
    assert not location.exists() or not [p for p in location.iterdir() if p.name != "log"]


def test_non_json_bodies_and_unknown_ids(server, experiment):
    base = f"/api/experiments/{experiment}/exports"
    headers = {**server.headers(), "Content-Type": "application/json"}
    _error(server.client.post(base, headers=headers, data=b"{not json"), 400)
    _error(server.client.post(base, headers=server.headers(), data=b"format=ome-zarr"), 400)
    for path in ("999999", "999999/log"):
        _error(server.get(f"{base}/{path}"), 404)
    _error(server.delete(f"{base}/999999"), 404)
    _error(server.get(f"{base}/x1!"), 400)
    _error(server.get("/api/experiments/999999/exports"), 404)
    assert server.get(base).get_json()["data"] == []


def test_deleting_a_running_export_stops_it(server, experiment, monkeypatch):
    base = f"/api/experiments/{experiment}/exports"
    registry.share_experiment(experiment, "bob", write_access=True)
    export, pid = _running_sleeper(server, monkeypatch, experiment)
    assert export["plates"] == []  # not done: no plates reported
    _error(server.delete(f"{base}/{export['id']}", user="bob"), 404)
    assert procs.is_alive(pid)

    assert server.delete(f"{base}/{export['id']}").get_json() == {"message": "ok"}
    assert _ended(pid)
    path = Path(export["path"])
    assert not path.exists()
    assert not list((path.parent / "log").glob(f"export_{path.name}*"))
    _error(server.get(f"{base}/{export['id']}"), 404)
    with tm.utils.MainSession() as session:
        assert session.get(tm.Submission, int(export["id"])) is None


def test_deleting_the_experiment_stops_and_removes_its_exports(server, experiment, monkeypatch):
    done = _start(server, experiment)
    _wait(server, experiment, done["id"], _finished)
    export, pid = _running_sleeper(server, monkeypatch, experiment)
    location = exports.exports_location(experiment)
    assert Path(done["path"]).is_dir() and Path(export["path"]).is_dir()

    assert server.delete(f"/api/experiments/{experiment}").status_code == 200
    assert _ended(pid)
    assert not location.exists()
    with tm.utils.MainSession() as session:
        ids = [int(done["id"]), int(export["id"])]
        left = session.scalars(sa.select(tm.Submission).where(tm.Submission.id.in_(ids))).all()
    assert left == []
    _error(server.get(f"/api/experiments/{experiment}/exports/{done['id']}"), 404)


def test_withdrawing_access_stops_and_removes_the_users_exports(server, experiment, monkeypatch):
    """carol's exports go with her access; alice's stay."""
    registry.share_experiment(experiment, "carol", write_access=True)
    real_export = exports.export_command
    hers, pid = _running_sleeper(server, monkeypatch, experiment, user="carol")
    monkeypatch.setattr(exports, "export_command", real_export)
    mine = _wait(server, experiment, _start(server, experiment, levels=1)["id"], _finished)
    registry.unshare_experiment(experiment, "carol")
    assert _ended(pid)
    assert not Path(hers["path"]).exists()
    assert [str(e["id"]) for e in exports.list_exports(experiment, None)] == [mine["id"]]
    assert Path(mine["plates"][0]).is_dir()
