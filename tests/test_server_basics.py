"""The server's foundation: login, tokens, permissions, ids, the error format, OpenAPI."""

from __future__ import annotations

import datetime as dt

import jwt
import pytest
from conftest import TEST_SECRET

from tmserver.ids import decode_id, encode_legacy_id


def _create(server, name="exp1", user="alice"):
    response = server.post("/api/experiments", user=user, json={"name": name})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["data"]


def _error(response, status):
    assert response.status_code == status, response.get_json()
    body = response.get_json()["error"]
    assert body["error"] is True and body["status_code"] == status and body["message"]
    return body


def test_login_and_experiment_lifecycle(server):
    created = _create(server)
    assert created["name"] == "exp1" and created["user"] == "alice"
    assert created["id"].isdigit()
    listed = server.get("/api/experiments").get_json()["data"]
    assert [e["name"] for e in listed] == ["exp1"]
    assert server.get("/api/experiments", user="bob").get_json()["data"] == []
    eid = created["id"]
    assert server.put(f"/api/experiments/{eid}", json={"name": "renamed"}).status_code == 200
    assert server.get(f"/api/experiments/{eid}").get_json()["data"]["name"] == "renamed"
    assert server.delete(f"/api/experiments/{eid}").status_code == 200
    _error(server.get(f"/api/experiments/{eid}"), 404)


def test_wrong_password_and_missing_fields(server):
    _error(server.client.post("/auth", json={"username": "alice", "password": "no"}), 401)
    _error(server.client.post("/auth", json={"username": "nobody", "password": "x"}), 401)
    _error(server.client.post("/auth", json={"username": "alice"}), 400)
    _error(server.client.post("/auth", data="not json"), 400)


@pytest.mark.parametrize(
    "header",
    [None, "JWT", "JWT not.a.token", "Basic abc", "JWT {forged}", "JWT {expired}", "JWT {nbf}"],
)
def test_bad_tokens_get_401(server, header):
    now = dt.datetime.now(dt.UTC)
    payload = {"uid": 1, "uname": "alice", "iat": now, "nbf": now, "exp": now + dt.timedelta(1)}
    forged = jwt.encode(payload, "another-secret", algorithm="HS256")
    expired = jwt.encode(
        {**payload, "exp": now - dt.timedelta(seconds=1)}, TEST_SECRET, algorithm="HS256"
    )
    future = jwt.encode({**payload, "nbf": now + dt.timedelta(1)}, TEST_SECRET, "HS256")
    headers = {}
    if header is not None:
        headers["Authorization"] = header.format(forged=forged, expired=expired, nbf=future)
    body = _error(server.client.get("/api/experiments", headers=headers), 401)
    assert body["type"] == "NotAuthorizedError"


def test_token_of_a_deleted_user_is_refused(server):
    import sqlalchemy as sa

    import tmlib.models as tm

    with tm.utils.MainSession() as session:
        session.execute(sa.delete(tm.User).where(tm.User.name == "carol"))
    _error(server.get("/api/experiments", user="carol"), 401)


def test_permissions_and_shares(server):
    eid = _create(server)["id"]
    _error(server.get(f"/api/experiments/{eid}", user="bob"), 403)
    _error(server.put(f"/api/experiments/{eid}", user="bob", json={"name": "x"}), 403)
    _error(server.delete(f"/api/experiments/{eid}", user="bob"), 403)
    # read-only share: bob reads, cannot write
    response = server.post(f"/api/experiments/{eid}/shares", json={"user": "bob"})
    assert response.status_code == 200, response.get_json()
    assert server.get(f"/api/experiments/{eid}", user="bob").status_code == 200
    assert [e["id"] for e in server.get("/api/experiments", user="bob").get_json()["data"]] == [eid]
    _error(server.put(f"/api/experiments/{eid}", user="bob", json={"name": "x"}), 403)
    # only the owner shares
    _error(server.post(f"/api/experiments/{eid}/shares", user="bob", json={"user": "carol"}), 403)
    # write share: bob renames but cannot delete or share
    server.post(f"/api/experiments/{eid}/shares", json={"user": "bob", "write_access": True})
    assert server.put(f"/api/experiments/{eid}", user="bob", json={"name": "b"}).status_code == 200
    _error(server.delete(f"/api/experiments/{eid}", user="bob"), 403)
    shares = server.get(f"/api/experiments/{eid}/shares").get_json()["data"]
    assert [(s["user"], s["write_access"]) for s in shares] == [("bob", True)]
    assert server.delete(f"/api/experiments/{eid}/shares?user=bob").status_code == 200
    _error(server.get(f"/api/experiments/{eid}", user="bob"), 403)
    _error(server.post(f"/api/experiments/{eid}/shares", json={"user": "alice"}), 400)
    _error(server.post(f"/api/experiments/{eid}/shares", json={"user": "nobody"}), 404)


def test_ids_decimal_and_legacy(server):
    eid = int(_create(server)["id"])
    assert decode_id(encode_legacy_id(eid)) == eid
    assert decode_id("dG1hcHM0") == 4
    legacy = server.get(f"/api/experiments/{encode_legacy_id(eid)}")
    assert legacy.get_json()["data"]["id"] == str(eid)
    for bad in ("abc", "MQ==", "-1", "1.5", "9" * 30):
        _error(server.get(f"/api/experiments/{bad}"), 400)


def test_malformed_bodies_and_parameters(server):
    _error(server.post("/api/experiments", json={}), 400)  # missing name
    _error(server.post("/api/experiments", json={"name": 5}), 400)
    _error(server.post("/api/experiments", json={"name": "a", "plate_format": 7}), 400)
    _error(server.post("/api/experiments", json={"name": "a", "plate_format": "x"}), 400)
    _error(server.post("/api/experiments", json=["name"]), 400)
    _error(server.post("/api/experiments", json={"name": "a", "microscope_type": "zeiss"}), 400)
    _create(server, "dup")
    _error(server.post("/api/experiments", json={"name": "dup"}), 409)
    _error(server.get("/api/no-such-route"), 404)


def test_openapi_describes_every_route(server):
    spec = server.client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    rules = {
        rule.rule.replace("<", "{").replace(">", "}")
        for rule in server.app.url_map.iter_rules()
        if rule.endpoint.startswith(("api.", "jtui."))
    }
    assert rules and rules <= set(spec["paths"])
    experiments = spec["paths"]["/api/experiments"]["post"]
    schema = experiments["requestBody"]["content"]["application/json"]["schema"]
    assert "name" in schema["required"]
