"""Selections of objects kept on the server, per user and experiment (both databases)."""

from __future__ import annotations

import csv
import io

import sqlalchemy as sa
from test_server_viewer import make_values_experiment

import tmlib.models as tm


def _error(response, status):
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    body = response.get_json()["error"]
    assert body["status_code"] == status and body["message"]
    return body["message"]


def _ok(response, status=200):
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    return response.get_json()


def _rows(experiment_id, model):
    with tm.utils.ExperimentSession(experiment_id) as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model))


def test_selection_lifecycle(server):
    made = make_values_experiment(server)
    eid, cells, ids = made["experiment_id"], made["cells"], made["ids"]
    base = f"/api/experiments/{eid}/selections"

    created = _ok(server.post(base, json={"mapobject_type_id": cells, "name": "bright",
                                          "color": "#FF8800"}), 201)["data"]  # fmt: skip
    assert created["name"] == "bright" and created["color"] == "#ff8800"
    assert created["mapobject_type_id"] == str(cells) and created["count"] == 0
    assert created["created_at"].endswith("Z")
    sid = created["id"]
    # ids as text work too; another type may have a selection of the same name
    same_name = {"mapobject_type_id": str(made["nuclei"]), "name": "bright", "color": "#00ff00"}
    other = _ok(server.post(base, json=same_name), 201)["data"]
    taken = {"mapobject_type_id": cells, "name": "bright", "color": "#000000"}
    assert "already" in _error(server.post(base, json=taken), 409)

    listed = _ok(server.get(base))["data"]
    assert [s["id"] for s in listed] == [sid, other["id"]]
    assert set(listed[0]) >= {"id", "mapobject_type_id", "name", "color", "count"}
    of_cells = _ok(server.get(f"{base}?mapobject_type_id={cells}"))["data"]
    assert [s["id"] for s in of_cells] == [sid]

    # members: add (twice is once), the marker point, remove
    members = f"{base}/{sid}/members"
    add = [{"mapobject_id": ids[0], "x": 5.5, "y": -5.0}, {"mapobject_id": str(ids[3]), "x": 35,
                                                          "y": -20}]  # fmt: skip
    assert _ok(server.post(members, json={"add": add}))["data"] == {"count": 2}
    moved = [{"mapobject_id": ids[0], "x": 6.0, "y": -7.5}, {"mapobject_id": ids[0], "x": 6.5,
                                                            "y": -8.0}]  # fmt: skip
    assert _ok(server.post(members, json={"add": moved, "remove": []}))["data"]["count"] == 2
    one = _ok(server.get(f"{base}/{sid}"))["data"]
    assert one["count"] == 2 and one["name"] == "bright"
    assert one["members"] == [
        {"mapobject_id": str(ids[0]), "x": 6.5, "y": -8.0},
        {"mapobject_id": str(ids[3]), "x": 35.0, "y": -20.0},
    ]
    change = {"add": [{"mapobject_id": ids[5], "x": 1, "y": -1}], "remove": [ids[3], 999999]}
    assert _ok(server.post(members, json=change))["data"]["count"] == 2
    got = [m["mapobject_id"] for m in _ok(server.get(f"{base}/{sid}"))["data"]["members"]]
    assert got == [str(ids[0]), str(ids[5])]
    assert [s["count"] for s in _ok(server.get(base))["data"]] == [2, 0]

    # the CSV: where each member is, its label and point
    response = server.get(f"{members}.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "bright" in response.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["mapobject_id"] for r in table] == [str(ids[0]), str(ids[5])]
    assert table[0] == {"mapobject_id": str(ids[0]), "plate_name": "p1", "well_name": "B03",
                        "well_pos_y": "0", "well_pos_x": "0", "label": "1", "x": "6.5",
                        "y": "-8.0"}  # fmt: skip
    assert (table[1]["well_pos_x"], table[1]["label"]) == ("1", "6")

    # rename and recolour
    renamed = _ok(server.put(f"{base}/{sid}", json={"name": "dim"}))["data"]
    assert (renamed["name"], renamed["color"], renamed["count"]) == ("dim", "#ff8800", 2)
    assert _ok(server.put(f"{base}/{sid}", json={"color": "#0000aa"}))["data"]["color"] == (
        "#0000aa"
    )
    assert _ok(server.put(f"{base}/{sid}", json={"name": "dim"}))["data"]["name"] == "dim"
    _ok(server.post(base, json={"mapobject_type_id": cells, "name": "other", "color": "#111111"}),
        201)  # fmt: skip
    _error(server.put(f"{base}/{sid}", json={"name": "other"}), 409)

    # objects removed by a new analysis leave the selection
    with tm.utils.ExperimentSession(eid) as session:
        session.execute(sa.delete(tm.Mapobject).where(tm.Mapobject.id == ids[5]))
    assert _ok(server.get(f"{base}/{sid}"))["data"]["count"] == 1

    assert _ok(server.delete(f"{base}/{sid}")) == {"message": "ok"}
    _error(server.get(f"{base}/{sid}"), 404)
    _error(server.delete(f"{base}/{sid}"), 404)
    _error(server.post(members, json={"add": add}), 404)
    _error(server.get(f"{members}.csv"), 404)
    assert _rows(eid, tm.SelectionMember) == 0


def test_bad_bodies_get_4xx(server):
    made = make_values_experiment(server)
    eid, cells, ids = made["experiment_id"], made["cells"], made["ids"]
    base = f"/api/experiments/{eid}/selections"
    good = {"mapobject_type_id": cells, "name": "s", "color": "#123456"}
    for body in (
        {},
        {**good, "color": "red"},
        {**good, "color": "#12345"},
        {**good, "color": "#1234567"},
        {**good, "color": "#ggg000"},
        {**good, "color": 123},
        {**good, "name": ""},
        {**good, "name": "   "},
        {**good, "name": "x" * 256},
        {**good, "name": None},
        {**good, "mapobject_type_id": "cells"},
        {**good, "mapobject_type_id": -1},
        {**good, "mapobject_type_id": None},
        {"name": "s", "color": "#123456"},
    ):
        _error(server.post(base, json=body), 400)
    _error(server.post(base, json={**good, "mapobject_type_id": 999999}), 404)
    _error(server.post(base, data="not json", content_type="application/json"), 400)
    _error(server.post(base, json=[good]), 400)
    _error(server.get(f"{base}?mapobject_type_id=abc"), 400)

    sid = _ok(server.post(base, json=good), 201)["data"]["id"]
    members = f"{base}/{sid}/members"
    point = {"mapobject_id": ids[0], "x": 1.0, "y": -1.0}
    for body in (
        {"add": "everything"},
        {"add": [ids[0]]},
        {"add": [{"mapobject_id": ids[0], "x": 1.0}]},
        {"add": [{**point, "x": "1"}]},
        {"add": [{**point, "y": True}]},
        {"add": [{**point, "x": float("inf")}]},
        {"add": [{**point, "mapobject_id": "x1"}]},
        {"add": [{**point, "mapobject_id": -4}]},
        {"add": [{**point, "mapobject_id": 1.5}]},
        {"add": [{**point, "mapobject_id": made["nucleus"]}]},  # another type's object
        {"add": [{**point, "mapobject_id": 999999}]},  # no such object
        {"remove": "all"},
        {"remove": [{"mapobject_id": 1}]},
        {"remove": ["abc"]},
    ):
        message = _error(server.post(members, json=body), 400)
        assert "Traceback" not in message
    mixed = {"add": [point, {**point, "mapobject_id": made["nucleus"]}]}
    message = _error(server.post(members, json=mixed), 400)
    assert "not objects of the selection's type" in message and str(made["nucleus"]) in message
    assert _ok(server.get(f"{base}/{sid}"))["data"]["count"] == 0  # nothing of it was added
    for body in ({"name": ""}, {"color": "blue"}, {"name": 3}):
        _error(server.put(f"{base}/{sid}", json=body), 400)
    _error(server.get(f"{base}/abc"), 400)
    _error(server.get(f"{base}/999999"), 404)


def test_users_see_only_their_own_selections(server):
    made = make_values_experiment(server)
    eid, cells, ids = made["experiment_id"], made["cells"], made["ids"]
    base = f"/api/experiments/{eid}/selections"
    body = {"mapobject_type_id": cells, "name": "mine", "color": "#123456"}
    sid = _ok(server.post(base, json=body), 201)["data"]["id"]
    add = {"add": [{"mapobject_id": ids[0], "x": 1, "y": -1}]}

    # carol has no access at all
    _error(server.get(base, user="carol"), 403)
    _error(server.post(base, user="carol", json=body), 403)
    _error(server.get(f"{base}/{sid}", user="carol"), 403)
    _error(server.delete(f"{base}/{sid}", user="carol"), 403)
    _error(server.get(base, user=None), 401)

    # bob may read: he lists (his own: none) but writes nothing, and never sees alice's
    _ok(server.post(f"/api/experiments/{eid}/shares", json={"user": "bob"}))
    assert _ok(server.get(base, user="bob"))["data"] == []
    _error(server.post(base, user="bob", json=body), 403)
    _error(server.get(f"{base}/{sid}", user="bob"), 404)
    _error(server.get(f"{base}/{sid}/members.csv", user="bob"), 404)
    _error(server.put(f"{base}/{sid}", user="bob", json={"name": "his"}), 403)
    _error(server.post(f"{base}/{sid}/members", user="bob", json=add), 403)
    _error(server.delete(f"{base}/{sid}", user="bob"), 403)

    # with write access he has selections of his own, even of the same name
    _ok(server.post(f"/api/experiments/{eid}/shares", json={"user": "bob", "write_access": True}))
    his = _ok(server.post(base, user="bob", json=body), 201)["data"]["id"]
    assert [s["id"] for s in _ok(server.get(base, user="bob"))["data"]] == [his]
    assert [s["id"] for s in _ok(server.get(base))["data"]] == [sid]
    _error(server.put(f"{base}/{sid}", user="bob", json={"name": "his"}), 404)
    _error(server.post(f"{base}/{sid}/members", user="bob", json=add), 404)
    _error(server.delete(f"{base}/{sid}", user="bob"), 404)
    _error(server.get(f"{base}/{his}"), 404)  # and alice does not see his
    assert _ok(server.get(f"{base}/{sid}"))["data"]["name"] == "mine"


def test_deleting_the_type_or_the_experiment_removes_selections(server):
    made = make_values_experiment(server)
    eid, cells, ids = made["experiment_id"], made["cells"], made["ids"]
    base = f"/api/experiments/{eid}/selections"
    for name in ("a", "b"):
        sid = _ok(server.post(base, json={"mapobject_type_id": cells, "name": name,
                                          "color": "#123456"}), 201)["data"]["id"]  # fmt: skip
        add = {"add": [{"mapobject_id": i, "x": 0, "y": 0} for i in ids[:3]]}
        assert _ok(server.post(f"{base}/{sid}/members", json=add))["data"]["count"] == 3
    kept = _ok(server.post(base, json={"mapobject_type_id": made["nuclei"], "name": "n",
                                       "color": "#123456"}), 201)["data"]["id"]  # fmt: skip
    assert (_rows(eid, tm.Selection), _rows(eid, tm.SelectionMember)) == (3, 6)
    _ok(server.delete(f"/api/experiments/{eid}/mapobject_types/{cells}"))
    assert [s["id"] for s in _ok(server.get(base))["data"]] == [kept]
    assert (_rows(eid, tm.Selection), _rows(eid, tm.SelectionMember)) == (1, 0)
    _ok(server.delete(f"/api/experiments/{eid}"))
    _error(server.get(base), 404)
    again = make_values_experiment(server, "again")  # a new experiment starts without any
    assert _ok(server.get(f"/api/experiments/{again['experiment_id']}/selections"))["data"] == []
