"""Attacks on login, tokens and request parsing (issue 13, items 5, 7, 8, 11, 12, 16).

Each test performs the attack as a hostile client would and checks that the
server refuses it with a clear 4xx (never a 500) and without side effects.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import logging
import os
import statistics
import subprocess
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from conftest import TEST_SECRET
from helpers import BIN, env, live_server, use_fast_password_hashing

import tmlib.models as tm
from tmlib import registry
from tmlib.errors import ConfigError
from tmlib.models.session import dispose_engines
from tmserver.app import create_app
from tmserver.config import ServerConfig, load_server_config

SQLITE_ONLY = pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)


def _error(response, status: int) -> str:
    """The message of a JSON error answer with `status`."""
    assert response.status_code == status, (response.status_code, response.get_data()[:300])
    body = response.get_json()["error"]
    assert body["status_code"] == status and body["message"]
    return body["message"]


def _app(**settings):
    """An in-process app with the test secret and `settings` (see :class:`ServerConfig`)."""
    return create_app(ServerConfig(secret_key=TEST_SECRET, **settings), TESTING=True)


def _login(client, name: str, password: str = "secret", address: str = "127.0.0.1"):
    return client.post(
        "/auth",
        json={"username": name, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"JWT {token}"}


def _add_user_with_real_hash(name: str) -> None:
    """A user whose password hash has the production cost (``tm_add`` in a subprocess)."""
    result = subprocess.run(
        [str(BIN / "tm_add"), "user", "-n", name, "-p", "secret", "-e", f"{name}@example.org"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


# --- item 5: tokens are bound to a per-user epoch ---------------------------


def test_token_of_deleted_user_does_not_work_for_new_user_with_its_id(server):
    """A new user given a deleted user's id must not inherit the old user's tokens."""
    registry.add_user("dave", "secret", "dave@example.org")
    token = _login(server.client, "dave").get_json()["access_token"]
    with tm.utils.MainSession() as session:
        dave = session.scalar(sa.select(tm.User).where(tm.User.name == "dave"))
        dave_id = dave.id
        session.delete(dave)
    # as if the database handed the freed id out again (SQLite did before autoincrement)
    with tm.utils.MainSession() as session:
        eve = tm.User(name="eve", email="eve@example.org", password="secret")
        eve.id = dave_id
        session.add(eve)
    _error(server.client.get("/api/experiments", headers=_auth(token)), 401)
    fresh = _login(server.client, "eve").get_json()["access_token"]
    assert server.client.get("/api/experiments", headers=_auth(fresh)).status_code == 200


def test_logout_all_invalidates_every_old_token(server):
    old = server.tokens["alice"]
    other = _login(server.client, "alice").get_json()["access_token"]
    assert server.client.get("/api/experiments", headers=_auth(old)).status_code == 200
    assert server.client.post("/auth/logout_all", headers=_auth(other)).status_code == 200
    for token in (old, other):
        _error(server.client.get("/api/experiments", headers=_auth(token)), 401)
        _error(server.client.post("/auth/logout_all", headers=_auth(token)), 401)
    new = _login(server.client, "alice").get_json()["access_token"]
    assert server.client.get("/api/experiments", headers=_auth(new)).status_code == 200
    # bob's tokens are untouched
    assert server.get("/api/experiments", user="bob").status_code == 200
    _error(server.client.post("/auth/logout_all"), 401)


def test_database_made_before_token_epochs_gains_the_column(tmaps, monkeypatch):
    use_fast_password_hashing(monkeypatch)
    tmaps.home.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(tmaps.db_url)
    key = "SERIAL" if tmaps.dialect == "postgresql" else "INTEGER"
    with engine.begin() as conn:  # the users table as earlier versions created it
        conn.exec_driver_sql(
            f"CREATE TABLE users (id {key} PRIMARY KEY, name VARCHAR(255) UNIQUE, "
            "email VARCHAR(255) UNIQUE, password_hash VARCHAR(255), "
            "created_at TIMESTAMP, updated_at TIMESTAMP)"
        )
    engine.dispose()
    from tmlib.migrations.upgrade import upgrade_all

    upgrade_all(tmaps.db_url)  # what `tm_admin upgrade` does
    registry.add_user("old", "secret", "old@example.org")
    client = _app().test_client()
    token = _login(client, "old").get_json()["access_token"]
    assert client.get("/api/experiments", headers=_auth(token)).status_code == 200
    dispose_engines()  # a second process: the column is there already
    assert client.get("/api/experiments", headers=_auth(token)).status_code == 200


# --- item 7: body size and concurrent password checks -----------------------


def test_large_json_body_is_refused_before_parsing(server):
    body = b'{"username": "' + b"a" * (38 * 1024 * 1024) + b'", "password": "x"}'
    for path in ("/auth", "/api/experiments"):
        started = time.perf_counter()
        response = server.client.post(
            path, data=body, content_type="application/json", headers=server.headers()
        )
        _error(response, 413)
        assert time.perf_counter() - started < 1.0
    # chunked (no Content-Length, as gunicorn passes it on): stopped while it is read
    response = server.client.post(
        "/auth",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )
    _error(response, 413)
    # feature values are data: their own, larger limit, after the token is checked
    eid = server.post("/api/experiments", json={"name": "e"}).get_json()["data"]["id"]
    url = f"/api/experiments/{eid}/mapobject_types/1/feature-values"
    values = {"names": ["f"], "labels": list(range(10**6)), "values": [[0.5]] * 10**6}
    data = json.dumps({"plate_name": "p", "well_name": "A01", "well_pos_x": 0,
                       "well_pos_y": 0, **values}).encode()  # fmt: skip
    assert len(data) > 8 * 1024 * 1024
    _error(server.post(url, data=data, content_type="application/json", user=None), 401)
    assert server.post(url, data=data, content_type="application/json").status_code == 404
    names = [f"plate_A01_T0001F{i:06d}L01A01Z01C01.tif" for i in range(10**5)]
    for route in ("register", "validity-check"):
        files = names if route == "register" else [{"name": name} for name in names]
        url = f"/api/experiments/{eid}/acquisitions/1/upload/{route}"
        assert server.post(url, json={"files": files}).status_code == 404
    # a body just under the limit is still parsed
    small = server.post("/api/experiments", json={"name": "x" * 100})
    assert small.status_code == 200


@pytest.mark.slow
@SQLITE_ONLY
def test_concurrent_wrong_logins_have_bounded_memory(tmaps):
    _add_user_with_real_hash("alice")
    settings = {"TMAPS_PASSWORD_CHECKS": "1", "TMAPS_LOGIN_MAX_FAILURES": "1000"}
    with live_server(workers=2, threads=8, extra_env=settings) as server:
        workers = server.worker_pids()
        before = {pid: _peak_rss_mb(pid) for pid in workers}

        def wrong_login(i: int) -> int:
            response = requests.post(
                f"{server.url}/auth",
                json={"username": "alice" if i % 2 else f"nobody{i}", "password": "wrong"},
                headers={"Connection": "close"},
                timeout=60,
            )
            return response.status_code

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            codes = list(pool.map(wrong_login, range(16)))
        assert set(codes) <= {401, 503}, codes
        assert 401 in codes
        growth = {pid: _peak_rss_mb(pid) - before[pid] for pid in workers}
        started = time.perf_counter()
        huge = requests.post(
            f"{server.url}/auth",
            data=b'{"username": "' + b"a" * (38 * 1024 * 1024) + b'"}',
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        assert huge.status_code == 413 and time.perf_counter() - started < 5
    # argon2 takes 64 MB per check: one check at a time per worker, not eight
    assert max(growth.values()) < 160, growth


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


def test_busy_password_checks_answer_503_with_retry_after(server, monkeypatch):
    import tmserver.auth

    app = _app(password_checks=1, password_wait_seconds=0.05)
    gate = tmserver.auth.password_gate(app)
    assert gate.acquire(timeout=1)  # another request is checking a password
    try:
        response = _login(app.test_client(), "alice")
        _error(response, 503)
        assert int(response.headers["Retry-After"]) >= 1
    finally:
        gate.release()
    assert _login(app.test_client(), "alice").status_code == 200


# --- item 8: login timing and failure limits --------------------------------


@pytest.mark.slow
@SQLITE_ONLY
def test_login_time_does_not_reveal_whether_the_user_exists(tmaps):
    registry.add_user("alice", "secret", "alice@example.org")  # real argon2 cost
    client = _app(login_max_failures=1000).test_client()

    def seconds(name: str) -> float:
        started = time.perf_counter()
        _error(_login(client, name, "wrong"), 401)
        return time.perf_counter() - started

    seconds("alice"), seconds("nobody")  # warm up
    known = statistics.median(seconds("alice") for _ in range(5))
    unknown = statistics.median(seconds("nobody") for _ in range(5))
    assert known > 0.01  # a real hash was checked
    assert 0.5 < unknown / known < 2, (known, unknown)


def test_failures_lock_the_name_and_the_window_ends(server):
    app = _app(login_max_failures=3, login_window_seconds=1.0)
    client = app.test_client()
    for i in range(3):
        _error(_login(client, "alice", "wrong", address=f"10.0.0.{i}"), 401)
    response = _login(client, "alice", address="10.0.1.1")  # right password, other address
    _error(response, 429)
    retry = int(response.headers["Retry-After"])
    assert 1 <= retry <= 2
    assert _login(client, "bob").status_code == 200  # other names are not locked
    time.sleep(1.05)  # the configured window: nothing to wait for but the clock
    assert _login(client, "alice").status_code == 200


def test_failures_lock_the_address_and_success_does_not_reset_it(server):
    client = _app(login_max_failures=3, login_window_seconds=60).test_client()
    _error(_login(client, "nobody1", "x", address="10.9.9.9"), 401)
    _error(_login(client, "nobody2", "x", address="10.9.9.9"), 401)
    assert _login(client, "bob", address="10.9.9.9").status_code == 200
    _error(_login(client, "nobody3", "x", address="10.9.9.9"), 401)
    _error(_login(client, "carol", address="10.9.9.9"), 429)
    assert _login(client, "carol", address="10.9.9.10").status_code == 200


def test_behind_a_trusted_proxy_clients_are_told_apart(server):
    client = _app(login_max_failures=2, login_window_seconds=60, trusted_proxies=1).test_client()

    def login(name: str, password: str, client_address: str):
        return client.post(
            "/auth",
            json={"username": name, "password": password},
            headers={"X-Forwarded-For": client_address},
            environ_base={"REMOTE_ADDR": "127.0.0.1"},  # the proxy
        )

    _error(login("nobody1", "x", "10.1.1.1"), 401)
    _error(login("nobody2", "x", "10.1.1.2"), 401)
    assert login("bob", "secret", "10.1.1.3").status_code == 200
    _error(login("nobody3", "x", "10.1.1.3"), 401)
    _error(login("nobody4", "x", "10.1.1.3"), 401)
    _error(login("bob", "secret", "10.1.1.3"), 429)


@pytest.mark.slow
def test_failure_limit_holds_across_workers_and_restarts(tmaps, monkeypatch):
    use_fast_password_hashing(monkeypatch)
    registry.add_user("alice", "secret", "alice@example.org")
    settings = {"TMAPS_LOGIN_MAX_FAILURES": "4", "TMAPS_LOGIN_WINDOW_SECONDS": "120"}

    def login(server, password: str) -> requests.Response:
        # a new connection each time, so that both workers answer
        return requests.post(
            f"{server.url}/auth",
            json={"username": "alice", "password": password},
            headers={"Connection": "close"},
            timeout=30,
        )

    with live_server(workers=2, extra_env=settings) as server:
        codes = [login(server, "wrong").status_code for _ in range(4)]
        assert codes == [401] * 4
        locked = [login(server, "secret") for _ in range(4)]
        assert {r.status_code for r in locked} == {429}
        assert all(int(r.headers["Retry-After"]) > 0 for r in locked)
    with live_server(workers=2, extra_env=settings) as server:
        assert login(server, "secret").status_code == 429


# --- item 11: malformed input is a 400, not a 500 ---------------------------


def test_deeply_nested_json_is_a_400(server):
    nested = b"[" * 100_000 + b"]" * 100_000
    for path in ("/auth", "/api/experiments"):
        _error(server.post(path, data=nested, content_type="application/json"), 400)
    deep_object = b'{"name": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001
    _error(server.post("/api/experiments", data=deep_object, content_type="application/json"), 400)


def test_lone_surrogates_are_a_400(server):
    for body in (b'{"name": "x\\ud800"}', b'{"name": "x\\udfff y"}'):
        message = _error(
            server.post("/api/experiments", data=body, content_type="application/json"), 400
        )
        assert "surrogate" in message
    _error(
        server.post(
            "/auth",
            data=b'{"username": "\\ud800", "password": "x"}',
            content_type="application/json",
            user=None,
        ),
        400,
    )
    # a proper pair (an emoji) is fine
    ok = server.post("/api/experiments", data=b'{"name": "x\\ud83d\\ude00"}',
                     content_type="application/json")  # fmt: skip
    assert ok.status_code == 200 and ok.get_json()["data"]["name"] == "x\U0001f600"


def test_huge_decimal_id_is_a_400(server):
    _error(server.get("/api/experiments/" + "9" * 5000), 400)
    _error(server.get("/api/experiments/1/plates/" + "1" * 5000), 400)


def test_non_string_argument_name_is_a_400(server):
    eid = server.post("/api/experiments", json={"name": "e"}).get_json()["data"]["id"]
    url = f"/api/experiments/{eid}/workflow/description"
    description = server.get(url).get_json()["data"]
    for bad_name in ({"a": 1}, ["x"], 5):
        description["stages"][0]["steps"][0]["batch_args"] = [{"name": bad_name, "value": 1}]
        _error(server.post(url, json={"description": description}), 400)


def test_content_disposition_is_quoted(processed_server, processed):
    eid = processed.experiment_id
    name = 'evil"\r\nX-Injected: 1; é'
    registry.rename_experiment(eid, name)
    try:
        mapobject_type_id = _mapobject_type_id(processed_server, eid)
        response = processed_server.get(
            f"/api/experiments/{eid}/mapobject_types/{mapobject_type_id}/metadata"
        )
        assert response.status_code == 200
        response.get_data()
        channel = processed_server.get(f"/api/experiments/{eid}/channels").get_json()["data"][0]
        image = processed_server.get(
            f"/api/experiments/{eid}/channels/{channel['id']}/image-file",
            query_string={"plate_name": "plate01", "well_name": "A02", "well_pos_x": 0,
                          "well_pos_y": 0},
        )  # fmt: skip
        assert image.status_code == 200, image.get_json()
    finally:
        registry.rename_experiment(eid, "screen")
    assert "X-Injected" not in response.headers
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="evil___X-Injected: 1_ __Cells_metadata.csv"; '
        "filename*=UTF-8''evil%22%0D%0AX-Injected%3A%201%3B%20%C3%A9_Cells_metadata.csv"
    )
    png = f"_plate01_A02_y000_x000_z000_t000_{channel['name']}.png"
    assert image.headers["Content-Disposition"] == (
        f'attachment; filename="evil___X-Injected: 1_ _{png}"; '
        f"filename*=UTF-8''evil%22%0D%0AX-Injected%3A%201%3B%20%C3%A9{png}"
    )


def _mapobject_type_id(server, eid: int) -> str:
    types = server.get(f"/api/experiments/{eid}/mapobject_types").get_json()["data"]
    return next(t["id"] for t in types if t["name"] == "Cells")


# --- item 12: tokens in URLs -------------------------------------------------


def _tile_token(client, token: str) -> str:
    response = client.post("/auth/tile_token", headers=_auth(token))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert 0 < body["expires_in"] <= 3600
    return body["access_token"]


def test_tile_tokens_are_for_tiles_only(processed_server, processed):
    eid = processed.experiment_id
    client, normal = processed_server.client, processed_server.tokens["alice"]
    tiles = _tile_url(processed_server, eid)
    tile_token = _tile_token(client, normal)
    assert client.get(f"{tiles}&access_token={tile_token}").status_code == 200
    assert client.get(tiles, headers=_auth(tile_token)).status_code == 200
    assert client.get(tiles, headers=_auth(normal)).status_code == 200
    _error(client.get(f"{tiles}&access_token={normal}"), 401)
    _error(client.get("/api/experiments", headers=_auth(tile_token)), 401)
    _error(client.get(f"/api/experiments?access_token={tile_token}"), 401)
    _error(client.post("/auth/tile_token", headers=_auth(tile_token)), 401)
    _error(client.post("/auth/logout_all", headers=_auth(tile_token)), 401)


def _tile_url(server, eid: int) -> str:
    layers = server.get(f"/api/experiments/{eid}/channel_layers").get_json()["data"]
    return f"/api/experiments/{eid}/channel_layers/{layers[0]['id']}/tiles?x=0&y=0&z=0"


@pytest.mark.slow
@SQLITE_ONLY
def test_access_log_has_no_tokens(tmaps, monkeypatch):
    use_fast_password_hashing(monkeypatch)
    registry.add_user("alice", "secret", "alice@example.org")
    with live_server(workers=2) as server:
        token = server.login("alice")
        tile_token = server.call("POST", "/auth/tile_token", token).json()["access_token"]
        for sent in (token, tile_token):
            url = f"/api/experiments/1/channel_layers/1/tiles?x=0&y=0&access_token={sent}&z=0"
            assert server.call("GET", url).status_code in (401, 404)
        server.call("GET", f"/api/experiments?access_token={tile_token}")
    log = server.log.read_text()
    assert "channel_layers/1/tiles?x=0&y=0&access_token=[redacted]&z=0" in log
    for sent in (token, tile_token):
        assert sent not in log
        assert sent.split(".")[2] not in log  # not even the signature


def test_dev_server_request_log_has_no_tokens(caplog):
    from tmserver.app import redact_tokens_in_log_records

    record = logging.LogRecord(
        "werkzeug", logging.INFO, __file__, 1, '%s - - [%s] "%s" %s %s',
        ("127.0.0.1", "now", "GET /tiles?x=1&access_token=abc.def.ghi&z=0 HTTP/1.1", 200, 5),
        None,
    )  # fmt: skip
    assert redact_tokens_in_log_records(record)
    assert "abc.def" not in record.getMessage()
    assert "access_token=[redacted]&z=0" in record.getMessage()


# --- item 16: the secret key file -------------------------------------------


def test_secret_key_symlink_is_refused(tmaps, tmp_path):
    chosen = tmp_path / "attacker-chosen"
    chosen.write_text("known-to-the-attacker")
    tmaps.home.mkdir(parents=True, exist_ok=True)
    (tmaps.home / "secret_key").symlink_to(chosen)
    with pytest.raises(ConfigError, match="symbolic link"):
        load_server_config({})
    assert chosen.read_text() == "known-to-the-attacker"
    (tmaps.home / "secret_key").unlink()
    dangling = tmp_path / "not-yet"
    (tmaps.home / "secret_key").symlink_to(dangling)
    with pytest.raises(ConfigError, match="symbolic link"):
        load_server_config({})
    assert not dangling.exists()


def test_secret_key_is_not_written_through_a_planted_link(tmaps, tmp_path):
    chosen = tmp_path / "attacker-chosen"
    chosen.write_text("precious")
    tmaps.home.mkdir(parents=True, exist_ok=True)
    for name in (f".secret_key.{os.getpid()}", ".secret_key.tmp"):
        (tmaps.home / name).symlink_to(chosen)
    secret = load_server_config({}).secret_key
    assert chosen.read_text() == "precious"
    path = tmaps.home / "secret_key"
    assert not path.is_symlink() and path.read_text().strip() == secret
    assert len(secret) >= 32
    assert (path.stat().st_mode & 0o077) == 0
    assert load_server_config({}).secret_key == secret
    json.dumps(secret)
