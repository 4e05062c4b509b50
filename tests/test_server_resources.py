"""Plates, acquisitions, cycles, wells, sites, channels, site images and layers over REST."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
import sqlalchemy as sa
from helpers import files_under

import tmlib.models as tm
from tmlib.alignment import shift_and_crop
from tmlib.illumination import Correction


def _error(response, status):
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()["error"]
    assert body["error"] is True and body["status_code"] == status and body["message"]
    return body


def _data(response):
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["data"]


# --- plates and acquisitions (own experiment, both databases) ----------------------


@pytest.fixture
def eid(server):
    return _data(server.post("/api/experiments", json={"name": "resources"}))["id"]


def test_plate_lifecycle(server, eid):
    base = f"/api/experiments/{eid}/plates"
    created = _data(server.post(base, json={"name": "p1", "description": "first"}))
    assert created["name"] == "p1" and created["description"] == "first"
    assert created["acquisitions"] == [] and created["status"] == "WAITING"
    assert created["id"].isdigit()
    _data(server.post(base, json={"name": "p2"}))
    _error(server.post(base, json={"name": "p1"}), 409)
    _error(server.post(base, json={"name": ""}), 400)
    _error(server.post(base, json={}), 400)
    _error(server.post(base, json={"name": 5}), 400)
    assert [p["name"] for p in _data(server.get(base))] == ["p1", "p2"]
    assert [p["name"] for p in _data(server.get(base, query_string={"name": "p2"}))] == ["p2"]
    assert _data(server.get(base, query_string={"name": "nope"})) == []
    pid = created["id"]
    assert _data(server.get(f"{base}/{pid}"))["name"] == "p1"
    assert server.put(f"{base}/{pid}", json={"name": "renamed"}).get_json() == {"message": "ok"}
    with tm.utils.ExperimentSession(int(eid)) as session:
        assert session.get(tm.Plate, int(pid)).name == "renamed"
    _error(server.put(f"{base}/{pid}", json={"name": "p2"}), 409)
    _error(server.get(f"{base}/9999"), 404)
    _error(server.put(f"{base}/9999", json={"name": "x"}), 404)
    _error(server.delete(f"{base}/9999"), 404)
    _error(server.get(base, user="bob"), 403)
    _error(server.post(base, user="bob", json={"name": "b"}), 403)
    _error(server.delete(f"{base}/{pid}", user="bob"), 403)
    _error(server.get(f"{base}/abc"), 400)


def test_acquisition_lifecycle_and_deletes(server, eid):
    plates = f"/api/experiments/{eid}/plates"
    base = f"/api/experiments/{eid}/acquisitions"
    pid = _data(server.post(plates, json={"name": "p1"}))["id"]
    _data(server.post(plates, json={"name": "p2"}))
    a1 = _data(server.post(base, json={"plate_name": "p1", "name": "a1", "description": "d"}))
    assert {k: a1[k] for k in ("name", "description", "status", "plate_name")} == {
        "name": "a1", "description": "d", "status": "WAITING", "plate_name": "p1"
    }  # fmt: skip
    a2 = _data(server.post(base, json={"plate_name": "p1", "name": "a2"}))
    a3 = _data(server.post(base, json={"plate_name": "p2", "name": "a1"}))
    _error(server.post(base, json={"plate_name": "p1", "name": "a1"}), 409)
    _error(server.post(base, json={"plate_name": "nope", "name": "a9"}), 404)
    _error(server.post(base, json={"name": "a9"}), 400)
    assert [a["id"] for a in _data(server.get(base))] == [a1["id"], a2["id"], a3["id"]]
    listed = _data(server.get(base, query_string={"plate_name": "p1", "name": "a1"}))
    assert [a["id"] for a in listed] == [a1["id"]]
    _error(server.get(base, query_string={"plate_name": "nope"}), 404)
    plate = _data(server.get(f"{plates}/{pid}"))
    assert [a["name"] for a in plate["acquisitions"]] == ["a1", "a2"]

    _error(server.put(f"{base}/{a1['id']}", json={"name": "a2"}), 409)
    server.put(f"{base}/{a1['id']}", json={"name": "first"})
    assert _data(server.get(f"{base}/{a1['id']}"))["name"] == "first"
    _error(server.get(f"{base}/9999"), 404)
    _error(server.get(f"{base}/{a1['id']}", user="bob"), 403)

    # files uploaded into a2 disappear with it; a1 stays
    upload = f"{base}/{a2['id']}"
    name = "Plate_A01_T0001F001L01A01Z01C01.tif"
    server.post(f"{upload}/upload/register", json={"files": [name]})
    response = server.post(
        f"{upload}/microscope-file",
        data={"file": (io.BytesIO(b"pixels"), name)},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.get_json()
    with tm.utils.ExperimentSession(int(eid)) as session:
        a2_dir = Path(session.get(tm.Acquisition, int(a2["id"])).location)
        p1_dir = Path(session.get(tm.Plate, int(pid)).location)
    assert [p.name for p in files_under(a2_dir)] == [name]
    assert server.delete(upload).get_json() == {"message": "ok"}
    assert not a2_dir.exists()
    _error(server.get(upload), 404)
    with tm.utils.ExperimentSession(int(eid)) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(tm.MicroscopeImageFile)) == 0

    # deleting a plate deletes its acquisitions (rows and directory), not the other plate's
    assert server.delete(f"{plates}/{pid}").get_json() == {"message": "ok"}
    assert not p1_dir.exists()
    assert [a["id"] for a in _data(server.get(base))] == [a3["id"]]
    assert [p["name"] for p in _data(server.get(plates))] == ["p2"]


# --- the processed plate (read-only; changes are undone) ----------------------------


@pytest.fixture
def ps(processed_server, processed):
    """(server, experiment id as string)."""
    return processed_server, str(processed.experiment_id)


def _db(experiment_id: str):
    return tm.utils.ExperimentSession(int(experiment_id))


def test_plates_of_processed_experiment(ps):
    server, eid = ps
    plates = _data(server.get(f"/api/experiments/{eid}/plates"))
    assert [p["name"] for p in plates] == ["plate01"]
    assert plates[0]["status"] == "COMPLETE"
    assert [(a["name"], a["status"], a["plate_name"]) for a in plates[0]["acquisitions"]] == [
        ("acq01", "COMPLETE", "plate01")
    ]
    aid = plates[0]["acquisitions"][0]["id"]
    images = _data(server.get(f"/api/experiments/{eid}/acquisitions/{aid}/images"))
    with _db(eid) as session:
        names = sorted(session.scalars(sa.select(tm.MicroscopeImageFile.name)))
    assert [f["name"] for f in images] == names and len(names) == 16
    count = _data(server.get(f"/api/experiments/{eid}/acquisitions/{aid}/upload/count"))
    assert count == 16 + 2


def test_cycles(ps):
    server, eid = ps
    base = f"/api/experiments/{eid}/cycles"
    with _db(eid) as session:
        expected = [(str(c.id), c.index) for c in session.scalars(sa.select(tm.Cycle))]
    cycles = _data(server.get(base))
    assert [(c["id"], c["index"]) for c in cycles] == expected == [(expected[0][0], 0)]
    assert cycles[0]["tpoint"] == 0
    assert _data(server.get(base, query_string={"plate_name": "plate01", "index": 0})) == cycles
    assert _data(server.get(base, query_string={"index": 3})) == []
    assert _data(server.get(f"{base}/{expected[0][0]}")) == cycles[0]
    _error(server.get(base, query_string={"plate_name": "nope"}), 404)
    _error(server.get(base, query_string={"index": "x"}), 400)
    _error(server.get(f"{base}/9999"), 404)
    _error(server.get(base, user="bob"), 403)


def test_wells_and_description(ps):
    server, eid = ps
    base = f"/api/experiments/{eid}/wells"
    with _db(eid) as session:
        expected = {}
        for well in session.scalars(sa.select(tm.Well)):
            ys = [s.y for s in well.sites]
            xs = [s.x for s in well.sites]
            expected[str(well.id)] = (well.name, [max(ys) + 1, max(xs) + 1])
    wells = _data(server.get(base))
    assert {w["id"]: (w["name"], w["dimensions"]) for w in wells} == expected
    assert [w["name"] for w in wells] == ["A01", "A02"]
    assert all(w["plate_name"] == "plate01" and w["description"] == {} for w in wells)
    assert wells[0]["dimensions"] == [2, 2]
    only = _data(server.get(base, query_string={"plate_name": "plate01", "name": "A02"}))
    assert [w["name"] for w in only] == ["A02"]
    _error(server.get(base, query_string={"plate_name": "nope"}), 404)
    wid = wells[0]["id"]
    description = {"compound": "DMSO", "dose_um": 0.5, "genes": ["TP53"]}
    try:
        response = server.put(f"{base}/{wid}", json={"description": description})
        assert response.get_json() == {"message": "ok"}
        assert _data(server.get(f"{base}/{wid}"))["description"] == description
        with _db(eid) as session:
            assert '"compound": "DMSO"' in session.get(tm.Well, int(wid)).description
        _error(server.put(f"{base}/{wid}", json={"description": "text"}), 400)
        _error(server.put(f"{base}/{wid}", json={}), 400)
        _error(server.put(f"{base}/9999", json={"description": {}}), 404)
        _error(server.put(f"{base}/{wid}", user="bob", json={"description": {}}), 403)
        assert _data(server.get(f"{base}/{wid}"))["description"] == description
    finally:
        with _db(eid) as session:
            session.get(tm.Well, int(wid)).description = None
    _error(server.get(f"{base}/9999"), 404)


def test_sites(ps):
    server, eid = ps
    base = f"/api/experiments/{eid}/sites"
    with _db(eid) as session:
        expected = {
            str(s.id): (s.well.name, s.y, s.x, s.height, s.width)
            for s in session.scalars(sa.select(tm.Site))
        }
    sites = _data(server.get(base))
    assert len(sites) == 8
    assert {s["id"]: (s["well_name"], s["y"], s["x"], s["height"], s["width"]) for s in sites} == (
        expected
    )
    assert all(s["plate_name"] == "plate01" and (s["height"], s["width"]) == (384, 512)
               for s in sites)  # fmt: skip
    query = {"plate_name": "plate01", "well_name": "A02", "well_pos_x": 1, "well_pos_y": 0}
    one = _data(server.get(base, query_string=query))
    assert len(one) == 1 and (one[0]["well_name"], one[0]["y"], one[0]["x"]) == ("A02", 0, 1)
    assert len(_data(server.get(base, query_string={"well_name": "A01"}))) == 4
    assert len(_data(server.get(base, query_string={"well_pos_y": 1}))) == 4
    assert _data(server.get(f"{base}/{one[0]['id']}")) == one[0]
    _error(server.get(base, query_string={"well_pos_x": "one"}), 400)
    _error(server.get(base, query_string={"well_pos_x": -1}), 400)
    _error(server.get(base, query_string={"plate_name": "nope"}), 404)
    _error(server.get(f"{base}/9999"), 404)
    _error(server.get(base, user="bob"), 403)


def test_channels_and_layers(ps):
    server, eid = ps
    base = f"/api/experiments/{eid}/channels"
    with _db(eid) as session:
        experiment = session.scalars(sa.select(tm.Experiment)).one()
        channels = {
            str(c.id): (c.name, c.bit_depth, sorted(str(layer.id) for layer in c.layers))
            for c in session.scalars(sa.select(tm.Channel))
        }
        layer_rows = {
            str(layer.id): (layer.tpoint, layer.zplane, layer.min_intensity, layer.max_intensity)
            for layer in session.scalars(sa.select(tm.ChannelLayer))
        }
        depth, height, width = (
            experiment.pyramid_depth, experiment.pyramid_height, experiment.pyramid_width
        )  # fmt: skip
    listed = _data(server.get(base))
    assert len(listed) == 2 and depth
    assert {
        c["id"]: (c["name"], c["bit_depth"], sorted(layer["id"] for layer in c["layers"]))
        for c in listed
    } == channels
    layers = _data(server.get(f"/api/experiments/{eid}/channel_layers"))
    assert len(layers) == 2
    for layer in layers:
        assert set(layer) == {"id", "max_zoom", "tpoint", "zplane", "min_intensity",
                              "max_intensity", "image_size"}  # fmt: skip
        assert (layer["tpoint"], layer["zplane"], layer["min_intensity"],
                layer["max_intensity"]) == layer_rows[layer["id"]]  # fmt: skip
        assert layer["max_zoom"] == depth - 1
        assert layer["image_size"] == {"width": width, "height": height}
        assert _data(server.get(f"/api/experiments/{eid}/channel_layers/{layer['id']}")) == layer
    first = listed[0]
    assert _data(server.get(base, query_string={"name": first["name"]})) == [first]
    assert _data(server.get(f"{base}/{first['id']}")) == first
    by_channel = _data(
        server.get(
            f"/api/experiments/{eid}/channel_layers",
            query_string={"channel_name": first["name"], "tpoint": 0, "zplane": 0},
        )
    )
    assert [layer["id"] for layer in by_channel] == [first["layers"][0]["id"]]
    assert (
        _data(server.get(f"/api/experiments/{eid}/channel_layers", query_string={"zplane": 4}))
        == []
    )
    _error(
        server.get(f"/api/experiments/{eid}/channel_layers", query_string={"channel_name": "x"}),
        404,
    )
    _error(server.get(f"/api/experiments/{eid}/channel_layers/9999"), 404)
    _error(server.get(f"/api/experiments/{eid}/channel_layers", user="bob"), 403)
    _error(server.get(f"{base}/9999"), 404)

    # rename, conflicts, then back
    old = first["name"]
    try:
        assert server.put(f"{base}/{first['id']}", json={"name": "DAPI"}).status_code == 200
        assert _data(server.get(f"{base}/{first['id']}"))["name"] == "DAPI"
        _error(server.put(f"{base}/{first['id']}", json={"name": listed[1]["name"]}), 409)
        _error(server.put(f"{base}/{first['id']}", json={"name": ""}), 400)
        _error(server.put(f"{base}/{first['id']}", user="bob", json={"name": "x"}), 403)
    finally:
        with _db(eid) as session:
            session.get(tm.Channel, int(first["id"])).name = old
    assert _data(server.get(f"{base}/{first['id']}"))["name"] == old


def _site_query(**extra):
    return {"plate_name": "plate01", "well_name": "A02", "well_pos_x": 1, "well_pos_y": 1, **extra}


def _png(response) -> np.ndarray:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "image/png"
    image = cv2.imdecode(np.frombuffer(response.data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image


def _stored_plane(eid, channel_id):
    with _db(eid) as session:
        site = session.scalar(
            sa.select(tm.Site)
            .join(tm.Well)
            .where(tm.Well.name == "A02", tm.Site.x == 1, tm.Site.y == 1)
        )
        plane = session.scalar(
            sa.select(tm.ChannelImageFile).where(
                tm.ChannelImageFile.site_id == site.id,
                tm.ChannelImageFile.channel_id == int(channel_id),
            )
        )
        stats = plane.channel.illumstats_file.get()
        return site.id, plane.cycle_id, plane.get(), stats


def test_site_image_download(ps):
    server, eid = ps
    channels = _data(server.get(f"/api/experiments/{eid}/channels"))
    channel = channels[1]
    url = f"/api/experiments/{eid}/channels/{channel['id']}/image-file"
    site_id, cycle_id, raw, stats = _stored_plane(eid, channel["id"])
    assert raw.dtype == np.uint16

    response = server.get(url, query_string=_site_query())
    image = _png(response)
    assert image.dtype == np.uint16 and np.array_equal(image, raw)
    name = f"screen_plate01_A02_y001_x001_z000_t000_{channel['name']}.png"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{name}"'

    corrected = _png(server.get(url, query_string=_site_query(correct="true")))
    expected = Correction.from_stats(stats.smoothed())(raw)
    assert np.array_equal(corrected, expected) and not np.array_equal(corrected, raw)

    # no align step ran: aligning is the identity
    assert np.array_equal(_png(server.get(url, query_string=_site_query(align="yes"))), raw)

    # with a shift and residues (undone afterwards) the image is shifted and cropped
    try:
        with _db(eid) as session:
            session.add(tm.SiteShift(site_id=site_id, cycle_id=cycle_id, y=2, x=-3))
            site = session.get(tm.Site, site_id)
            site.bottom_residue, site.left_residue, site.top_residue = 2, 3, 1
        aligned = _png(server.get(url, query_string=_site_query(align="1", correct="1")))
        assert np.array_equal(aligned, shift_and_crop(expected, 2, -3, 1, 2, 3, 0))
        assert aligned.shape == (384 - 3, 512 - 3)
    finally:
        with _db(eid) as session:
            session.execute(sa.delete(tm.SiteShift).where(tm.SiteShift.site_id == site_id))
            site = session.get(tm.Site, site_id)
            site.bottom_residue = site.left_residue = site.top_residue = 0

    # bad input
    for missing in ("plate_name", "well_name", "well_pos_x", "well_pos_y"):
        query = _site_query()
        del query[missing]
        body = _error(server.get(url, query_string=query), 400)
        assert missing in body["message"]
    _error(server.get(url, query_string=_site_query(correct="maybe")), 400)
    _error(server.get(url, query_string=_site_query(well_pos_x="a")), 400)
    _error(server.get(url, query_string=_site_query(well_pos_x=7)), 404)
    _error(server.get(url, query_string=_site_query(well_name="H12")), 404)
    _error(server.get(url, query_string=_site_query(plate_name="nope")), 404)
    _error(server.get(url, query_string=_site_query(cycle_index=2)), 404)
    _error(server.get(url, query_string=_site_query(zplane=3)), 404)
    _error(server.get(f"/api/experiments/{eid}/channels/9999/image-file",
                      query_string=_site_query()), 404)  # fmt: skip
    _error(server.get(url, user="bob", query_string=_site_query()), 403)


def test_correcting_without_statistics_is_a_clear_error(ps):
    server, eid = ps
    channel = _data(server.get(f"/api/experiments/{eid}/channels"))[0]
    url = f"/api/experiments/{eid}/channels/{channel['id']}/image-file"
    channel_id = int(channel["id"])
    # take the statistics' row away for a moment (its file stays), then put it back
    with _db(eid) as session:
        stats_id = session.scalar(
            sa.select(tm.IllumstatsFile.id).where(tm.IllumstatsFile.channel_id == channel_id)
        )
        session.execute(sa.delete(tm.IllumstatsFile).where(tm.IllumstatsFile.id == stats_id))
    try:
        body = _error(server.get(url, query_string=_site_query(correct="true")), 400)
        assert "corilla" in body["message"]
        assert server.get(url, query_string=_site_query()).status_code == 200
    finally:
        with _db(eid) as session:
            session.add(tm.IllumstatsFile(id=stats_id, channel_id=channel_id))
