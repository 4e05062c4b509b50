"""Issue 13, items 1, 6, 9, 10 and 13: attacks on input, registration, quotas and file modes.

Each test performs the attack that the issue reproduced against the server (or a
command line) and checks that it is refused with one clear message.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import files_under, make_cellvoyager_dir

import tmlib.models as tm


def _error(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()["error"]
    assert body["error"] is True and body["status_code"] == status and body["message"]
    return body


def _url(eid, aid, rest: str = "") -> str:
    return f"/api/experiments/{eid}/acquisitions/{aid}{rest}"


def _new_acquisition(server, user: str = "alice", name: str = "sec-exp") -> tuple[str, str]:
    """(experiment id, acquisition id): a new experiment of `user`, plate p1, acquisition a1."""
    response = server.post("/api/experiments", user=user, json={"name": name})
    assert response.status_code == 200, response.get_json()
    eid = response.get_json()["data"]["id"]
    response = server.post(f"/api/experiments/{eid}/plates", user=user, json={"name": "p1"})
    assert response.status_code == 200, response.get_json()
    response = server.post(
        f"/api/experiments/{eid}/acquisitions", user=user, json={"plate_name": "p1", "name": "a1"}
    )
    assert response.status_code == 200, response.get_json()
    return eid, response.get_json()["data"]["id"]


@pytest.fixture
def acquisition(server) -> tuple[str, str]:
    return _new_acquisition(server)


def _rows(eid) -> dict[str, list[str]]:
    """Name → statuses of every microscope file row (both tables)."""
    rows: dict[str, list[str]] = {}
    with tm.utils.ExperimentSession(int(eid)) as session:
        for model in (tm.MicroscopeImageFile, tm.MicroscopeMetadataFile):
            for name, status in session.execute(sa.select(model.name, model.status)):
                rows.setdefault(name, []).append(status)
    return rows


def _experiment_dir(eid) -> Path:
    with tm.utils.MainSession() as session:
        return Path(session.get(tm.ExperimentReference, int(eid)).location)


# --- item 10: names are limited by bytes, and any accepted name can be stored ---------


def _image_name_of_bytes(total: int, filler: str = "x") -> str:
    """A CellVoyager image name of exactly `total` UTF-8 bytes (`filler` pads the plate part)."""
    tail = "_A01_T0001F001L01A01Z01C01.tif"
    width = len(filler.encode())
    room = total - len(tail.encode())
    assert room % width == 0, "choose a total that the filler fills exactly"
    name = filler * (room // width) + tail
    assert len(name.encode()) == total
    return name


def _upload(server, eid, aid, name: str, content: bytes):
    return server.post(
        _url(eid, aid, "/microscope-file"),
        data={"file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
    )


@pytest.mark.parametrize("filler", ["x", "é", "日"])
def test_longest_name_by_bytes_uploads(server, acquisition, filler):
    eid, aid = acquisition
    total = 255 - (255 - len(b"_A01_T0001F001L01A01Z01C01.tif")) % len(filler.encode())
    name = _image_name_of_bytes(total, filler)
    response = server.post(_url(eid, aid, "/upload/register"), json={"files": [name]})
    assert response.status_code == 200, response.get_json()
    response = _upload(server, eid, aid, name, b"pixels")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert _rows(eid) == {name: ["COMPLETE"]}
    stored = [p for p in files_under(_experiment_dir(eid)) if p.name == name]
    assert len(stored) == 1 and stored[0].read_bytes() == b"pixels"
    # no temporary file is left behind
    assert [p for p in files_under(_experiment_dir(eid)) if p.name.endswith(".part")] == []


@pytest.mark.parametrize("filler", ["x", "é"])
def test_name_over_255_bytes_is_refused_at_register(server, acquisition, filler):
    eid, aid = acquisition
    # 256 bytes; with "é" the name has far fewer than 256 characters
    name = _image_name_of_bytes(256, filler)
    body = _error(server.post(_url(eid, aid, "/upload/register"), json={"files": [name]}), 400)
    assert "255 bytes" in body["message"]
    _error(
        server.post(_url(eid, aid, "/upload/validity-check"), json={"files": [{"name": name}]}),
        400,
    )
    assert _rows(eid) == {}


def test_register_files_measures_names_in_bytes(tmaps, tmp_path):
    from tmlib import registry, upload

    assert upload.MAX_NAME_BYTES == registry.MAX_NAME_BYTES == 255
    with pytest.raises(Exception, match="255 bytes"):
        registry.check_name_length(_image_name_of_bytes(256, "é"))
    registry.check_name_length(_image_name_of_bytes(255, "x"))
