"""The upload protocol over REST (reference §7.4): register, upload, resume, register a dir."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import files_under, make_cellvoyager_dir, microscope_file_rows

import tmlib.models as tm
from tmlib import upload
from tmlib.simulate.plate import PlateSpec, simulate_plate


def _error(response, status):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()["error"]
    assert body["error"] is True and body["status_code"] == status and body["message"]
    return body


@pytest.fixture
def plate_files(tmp_path: Path) -> dict[str, bytes]:
    """A simulated CellVoyager plate: file name → bytes (images and metadata)."""
    outdir = tmp_path / "simulated"
    spec = PlateSpec(wells=2, sites=2, channels=1, height=48, width=64, seed=1)
    simulate_plate(outdir, spec)
    files = {p.name: p.read_bytes() for p in outdir.iterdir() if p.is_file()}
    assert sum(n.endswith(".tif") for n in files) == 4
    assert {"MeasurementData.mlf", "MeasurementDetail.mrf"} <= set(files)
    return files


@pytest.fixture
def acquisition(server):
    """(experiment id, acquisition id) of a new experiment, plate and acquisition of alice."""
    response = server.post("/api/experiments", json={"name": "upload-exp"})
    eid = response.get_json()["data"]["id"]
    response = server.post(f"/api/experiments/{eid}/plates", json={"name": "p1"})
    assert response.status_code == 200, response.get_json()
    response = server.post(
        f"/api/experiments/{eid}/acquisitions", json={"plate_name": "p1", "name": "a1"}
    )
    assert response.status_code == 200, response.get_json()
    return eid, response.get_json()["data"]["id"]


def _url(eid, aid, rest=""):
    return f"/api/experiments/{eid}/acquisitions/{aid}{rest}"


def _post_file(server, eid, aid, name, content, user="alice"):
    return server.post(
        _url(eid, aid, "/microscope-file"),
        user=user,
        data={"file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
    )


def _acquisition_dir(eid, aid) -> Path:
    with tm.utils.ExperimentSession(int(eid)) as session:
        return Path(session.get(tm.Acquisition, int(aid)).location)


def _stored(eid, aid) -> dict[str, bytes]:
    """Every file under the acquisition's directory: name → bytes (temporaries included)."""
    return {p.name: p.read_bytes() for p in files_under(_acquisition_dir(eid, aid))}


def _status(server, eid, aid):
    acq = server.get(_url(eid, aid)).get_json()["data"]
    plate = server.get(f"/api/experiments/{eid}/plates").get_json()["data"][0]
    return acq["status"], plate["status"]


def test_validity_check_explains_every_refusal(server, acquisition, plate_files):
    eid, aid = acquisition
    name = sorted(plate_files)[0]
    sent = [name, ".DS_Store", "a/b.tif", "notes.txt", 7]
    url = _url(eid, aid, "/upload/validity-check")
    # by default a name that is no plain file name refuses the request (as the original)
    _error(server.post(url, json={"files": [{"name": n} for n in sent]}), 400)
    answer = server.post(url, json={"files": [{"name": n} for n in sent], "explain": True})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["is_valid"] == [True, False, False, False, False]
    reasons = body["reasons"]
    assert reasons[0] is None
    assert "must not start with '.'" in reasons[1]
    assert "plain name, not a path" in reasons[2]
    assert "image or metadata file" in reasons[3]
    assert "must be a string" in reasons[4]


def test_full_upload_round(server, acquisition, plate_files):
    eid, aid = acquisition
    names = sorted(plate_files)
    check = server.post(
        _url(eid, aid, "/upload/validity-check"),
        json={"files": [{"name": n} for n in names] + [{"name": "notes.txt"}]},
    )
    assert check.status_code == 200, check.get_json()
    assert check.get_json()["is_valid"] == [True] * len(names) + [False]
    assert check.get_json()["reasons"][:-1] == [None] * len(names)
    assert "not a cellvoyager image or metadata file" in check.get_json()["reasons"][-1]
    assert _status(server, eid, aid) == ("WAITING", "WAITING")

    todo = server.post(_url(eid, aid, "/upload/register"), json={"files": names})
    assert todo.status_code == 200, todo.get_json()
    assert todo.get_json()["data"] == names
    # registering again adds no rows
    again = server.post(_url(eid, aid, "/upload/register"), json={"files": names + names[:1]})
    assert again.get_json()["data"] == names
    assert microscope_file_rows(eid) == {n: ["WAITING"] for n in names}
    # images and metadata go to their own tables, by the microscope type's patterns
    images = server.get(_url(eid, aid, "/images")).get_json()["data"]
    metadata = server.get(_url(eid, aid, "/metadata")).get_json()["data"]
    assert [f["name"] for f in images] == [n for n in names if n.endswith(".tif")]
    assert [f["name"] for f in metadata] == ["MeasurementData.mlf", "MeasurementDetail.mrf"]
    assert all(f["status"] == "WAITING" and f["id"].isdigit() for f in images + metadata)

    for name in names:
        response = _post_file(server, eid, aid, name, plate_files[name])
        assert response.status_code == 200, response.get_json()
        assert response.get_json() == {"message": "ok"}
    assert _stored(eid, aid) == plate_files
    assert microscope_file_rows(eid) == {n: ["COMPLETE"] for n in names}
    assert server.get(_url(eid, aid, "/upload/count")).get_json()["data"] == len(names)
    assert _status(server, eid, aid) == ("COMPLETE", "COMPLETE")

    # complete files are no-ops; nothing is left to upload
    response = _post_file(server, eid, aid, names[0], b"other bytes")
    assert response.get_json() == {"message": "File already uploaded"}
    assert _stored(eid, aid)[names[0]] == plate_files[names[0]]
    assert (
        server.post(_url(eid, aid, "/upload/register"), json={"files": names}).get_json()["data"]
        == []
    )


def test_register_answers_per_acquisition(server, acquisition, plate_files):
    """A file complete in another acquisition is still to be uploaded here (the original's bug)."""
    eid, aid = acquisition
    name = sorted(n for n in plate_files if n.endswith(".tif"))[0]
    server.post(_url(eid, aid, "/upload/register"), json={"files": [name]})
    assert _post_file(server, eid, aid, name, plate_files[name]).status_code == 200
    other = server.post(
        f"/api/experiments/{eid}/acquisitions", json={"plate_name": "p1", "name": "a2"}
    ).get_json()["data"]["id"]
    todo = server.post(_url(eid, other, "/upload/register"), json={"files": [name]})
    assert todo.get_json()["data"] == [name]
    assert server.get(_url(eid, other, "/upload/count")).get_json()["data"] == 0
    assert server.get(_url(eid, aid, "/upload/count")).get_json()["data"] == 1


class _BrokenStream(io.RawIOBase):
    """Gives `good` bytes, then fails as a dropped connection does."""

    def __init__(self, data: bytes, good: int) -> None:
        self.data, self.good, self.pos = data, good, 0

    def read(self, size: int = -1) -> bytes:
        if self.pos >= self.good:
            raise OSError("connection reset by peer")
        size = self.good - self.pos if size < 0 else min(size, self.good - self.pos)
        chunk = self.data[self.pos : self.pos + size]
        self.pos += len(chunk)
        return chunk


def test_interrupted_uploads_leave_nothing_and_resume(
    server, acquisition, plate_files, monkeypatch
):
    eid, aid = acquisition
    names = sorted(plate_files)
    server.post(_url(eid, aid, "/upload/register"), json={"files": names})
    first, broken, cut, failing = names[0], names[1], names[2], names[3]
    assert _post_file(server, eid, aid, first, plate_files[first]).status_code == 200

    # 1. the connection drops in the middle of the file (small chunks: several writes happen)
    data = plate_files[broken]
    with monkeypatch.context() as patch, pytest.raises(OSError, match="connection reset"):
        patch.setattr(upload, "CHUNK_SIZE", 100)
        upload.upload_file(int(eid), int(aid), broken, _BrokenStream(data, len(data) // 2))
    assert broken not in _stored(eid, aid) and microscope_file_rows(eid)[broken] == ["FAILED"]

    # 2. the request body is cut short: the multipart body never ends
    boundary = "XyZboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{cut}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + plate_files[cut][:200]
    response = server.post(
        _url(eid, aid, "/microscope-file"),
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert response.status_code == 400, response.get_data(as_text=True)
    assert cut not in _stored(eid, aid) and microscope_file_rows(eid)[cut] == ["WAITING"]

    # 3. the disk fails after the bytes were written, before the rename
    def no_disk(fd):
        raise OSError("no space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(upload.os, "fsync", no_disk)
        response = _post_file(server, eid, aid, failing, plate_files[failing])
    assert response.status_code == 500
    assert failing not in _stored(eid, aid) and microscope_file_rows(eid)[failing] == ["FAILED"]

    # no partial or temporary file anywhere; the acquisition is not complete
    assert _stored(eid, aid) == {first: plate_files[first]}
    assert _status(server, eid, aid) == ("WAITING", "WAITING")

    # the second round uploads exactly what is missing, each file once
    todo = server.post(_url(eid, aid, "/upload/register"), json={"files": names}).get_json()
    assert todo["data"] == names[1:]
    for name in todo["data"]:
        assert _post_file(server, eid, aid, name, plate_files[name]).get_json()["message"] == "ok"
    assert _stored(eid, aid) == plate_files
    assert microscope_file_rows(eid) == {n: ["COMPLETE"] for n in names}
    assert _status(server, eid, aid) == ("COMPLETE", "COMPLETE")


@pytest.mark.parametrize(
    "name", ["../x_A01_T0001F001L01A01Z01C01.tif", "a/b.tif", "/abs.tif", "", "x" * 257, ".hidden"]
)
def test_unsafe_names_are_refused(server, acquisition, name, tmp_path):
    eid, aid = acquisition
    for route, payload in (
        ("/upload/register", {"files": [name]}),
        ("/upload/validity-check", {"files": [{"name": name}]}),
    ):
        _error(server.post(_url(eid, aid, route), json=payload), 400)
    if name:  # an empty multipart file name is no file at all (400 as well)
        _error(_post_file(server, eid, aid, name, b"evil"), 400)
    assert microscope_file_rows(eid) == {}
    assert files_under(_acquisition_dir(eid, aid)) == []
    assert not (_acquisition_dir(eid, aid).parent / "x_A01_T0001F001L01A01Z01C01.tif").exists()


def test_bad_requests(server, acquisition, plate_files):
    eid, aid = acquisition
    image = sorted(plate_files)[0]
    # NUL and non-string names, no list, a missing field
    _error(server.post(_url(eid, aid, "/upload/register"), json={"files": ["a\x00b.tif"]}), 400)
    _error(server.post(_url(eid, aid, "/upload/register"), json={"files": [3]}), 400)
    _error(server.post(_url(eid, aid, "/upload/register"), json={"files": "x.tif"}), 400)
    _error(server.post(_url(eid, aid, "/upload/register"), json={}), 400)
    _error(server.post(_url(eid, aid, "/upload/validity-check"), json={"files": [{}]}), 400)
    # names of neither pattern are not registered (none of the batch is)
    body = _error(
        server.post(_url(eid, aid, "/upload/register"), json={"files": [image, "notes.txt"]}), 400
    )
    assert "notes.txt" in body["message"]
    assert microscope_file_rows(eid) == {}
    # uploading needs a registered name and a file field
    body = _error(_post_file(server, eid, aid, image, b"x"), 400)
    assert "not registered" in body["message"]
    _error(server.post(_url(eid, aid, "/microscope-file"), data={}), 400)
    # unknown acquisition, another user's experiment
    _error(server.post(_url(eid, 9999, "/upload/register"), json={"files": [image]}), 404)
    _error(server.get(_url(eid, 9999, "/images")), 404)
    _error(server.get(_url(eid, 9999, "/upload/count")), 404)
    _error(
        server.post(_url(eid, aid, "/upload/register"), user="bob", json={"files": [image]}), 403
    )
    _error(_post_file(server, eid, aid, image, b"x", user="bob"), 403)
    _error(server.get(_url(eid, aid, "/images"), user="bob"), 403)
    assert microscope_file_rows(eid) == {}


def test_register_server_directory(server, acquisition, tmp_path, monkeypatch):
    monkeypatch.setenv("TMAPS_REGISTER_ROOTS", str(tmp_path))  # off unless configured
    eid, aid = acquisition
    source = tmp_path / "on-server"
    images, metas, _ = make_cellvoyager_dir(source, extra=["notes.txt"], content=True)
    # a name registered for upload but never uploaded is taken from the directory
    server.post(_url(eid, aid, "/upload/register"), json={"files": [images[0]]})
    response = server.post(_url(eid, aid, "/register"), json={"path": str(source)})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"] == {
        "images": len(images) - 1, "metadata": len(metas), "known": 1, "skipped": 1
    }  # fmt: skip
    assert microscope_file_rows(eid) == {n: ["COMPLETE"] for n in images + metas}
    with tm.utils.ExperimentSession(int(eid)) as session:
        for row in session.scalars(sa.select(tm.MicroscopeImageFile)):
            assert Path(row.location).read_bytes() == (source / row.name).read_bytes()
    # the same directory again: nothing changes
    again = server.post(_url(eid, aid, "/register"), json={"path": str(source)}).get_json()
    assert again["data"]["images"] == 0 and again["data"]["known"] == len(images) + len(metas)
    assert microscope_file_rows(eid) == {n: ["COMPLETE"] for n in images + metas}
    assert server.get(_url(eid, aid, "/upload/count")).get_json()["data"] == len(images + metas)
    assert _status(server, eid, aid) == ("COMPLETE", "COMPLETE")
    # bad paths
    _error(server.post(_url(eid, aid, "/register"), json={"path": "relative/dir"}), 400)
    _error(server.post(_url(eid, aid, "/register"), json={"path": str(tmp_path / "no")}), 403)
    _error(server.post(_url(eid, aid, "/register"), json={}), 400)
    _error(server.post(_url(eid, aid, "/register"), user="bob", json={"path": str(source)}), 403)
    # deleting the acquisition removes the link, never the source files
    assert server.delete(_url(eid, aid)).status_code == 200
    assert sorted(p.name for p in source.iterdir()) == sorted([*images, *metas, "notes.txt"])
    assert not _acquisition_dir_exists(eid, aid)


def _acquisition_dir_exists(eid, aid) -> bool:
    with tm.utils.MainSession() as session:
        location = Path(session.get(tm.ExperimentReference, int(eid)).location)
    return any(p.name == f"acquisition_{aid}" for p in location.rglob("acquisition_*"))
