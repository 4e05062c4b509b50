"""Security 13.2, 13.3, 13.14: ids are never reused, a deleted experiment stays deleted,
and reads never write.

Each test performs the attack of its item of issue 13 and fails where the
server or the library lets it through.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import USERS
from helpers import (
    cli,
    experiment_schemas,
    live_server,
    ok,
    use_fast_password_hashing,
)

import tmlib.models as tm
from tmlib import registry
from tmlib.errors import NotFoundError
from tmlib.models.session import experiment_db_path

SQLITE_ONLY = pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)


def _add_users(monkeypatch: pytest.MonkeyPatch, names=USERS) -> None:
    use_fast_password_hashing(monkeypatch)
    for name in names:
        registry.add_user(name, "secret", f"{name}@example.org")


def _location(experiment_id: int) -> Path:
    with tm.utils.MainSession() as session:
        return Path(session.get(tm.ExperimentReference, experiment_id).location)


def _leftovers(tmaps, experiment_id: int) -> list[str]:
    """What remains of a deleted experiment: directories, files, schemas."""
    found = [
        p.name
        for p in tmaps.storage_home.iterdir()
        if p.name == f"experiment_{experiment_id}" or p.name.startswith(".experiment_")
    ]
    if tmaps.dialect == "postgresql":
        found += [s for s in experiment_schemas(tmaps.db_url) if s == f"experiment_{experiment_id}"]
    return found


# --------------------------------------------------------------------- 13.2: ids


def _new_submission(experiment_id: int, user_id: int) -> int:
    with tm.utils.MainSession() as session:
        submission = tm.Submission(program="workflow", experiment_id=experiment_id, user_id=user_id)
        session.add(submission)
        session.flush()
        return submission.id


def _new_task(submission_id: int) -> int:
    with tm.utils.MainSession() as session:
        task = tm.Task(name="job", type="RunJob", submission_id=submission_id)
        session.add(task)
        session.flush()
        return task.id


def _delete_row(model: type, row_id: int) -> None:
    with tm.utils.MainSession() as session:
        session.execute(sa.delete(model).where(model.id == row_id))


def test_ids_of_deleted_newest_rows_are_never_reused(tmaps, monkeypatch) -> None:
    """SQLite hands out max(rowid)+1 without AUTOINCREMENT: the deleted newest id came back."""
    _add_users(monkeypatch, ("alice", "bob"))
    with tm.utils.MainSession() as session:
        alice = registry.find_user(session, "alice").id

    def user() -> int:
        user.n = getattr(user, "n", 0) + 1
        return registry.add_user(f"u{user.n}", "secret", f"u{user.n}@example.org")

    def experiment() -> int:
        experiment.n = getattr(experiment, "n", 0) + 1
        return registry.add_experiment(f"e{experiment.n}", "alice")

    keep = experiment()
    makers: dict[str, tuple[Callable[[], int], Callable[[int], None]]] = {
        "users": (user, lambda i: _delete_row(tm.User, i)),
        "experiment_references": (experiment, registry.delete_experiment),
        "experiment_shares": (
            lambda: registry.share_experiment(keep, "bob"),
            lambda _i: registry.unshare_experiment(keep, "bob"),
        ),
        "submissions": (
            lambda: _new_submission(keep, alice),
            lambda i: _delete_row(tm.Submission, i),
        ),
    }
    submission = _new_submission(keep, alice)
    makers["tasks"] = (lambda: _new_task(submission), lambda i: _delete_row(tm.Task, i))
    for table, (make, delete) in makers.items():
        first = make()
        delete(first)
        second = make()
        assert second > first, f"{table}: id {first} was handed out again"
        delete(second)
        assert make() > second, table


def test_id_columns_use_autoincrement_or_a_sequence(tmaps) -> None:
    engine = tm.utils.main_engine(tmaps.db_url)
    tables = ("users", "experiment_references", "experiment_shares", "submissions", "tasks")
    with engine.connect() as conn:
        for table in tables:
            if tmaps.dialect == "sqlite":
                ddl = conn.execute(
                    sa.text("SELECT sql FROM sqlite_master WHERE name = :t"), {"t": table}
                ).scalar_one()
                assert "AUTOINCREMENT" in ddl.upper(), ddl
            else:
                # a sequence (serial or identity): never rewinds, also not on rollback
                sequence = conn.execute(
                    sa.text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table}
                ).scalar_one()
                assert sequence is not None, table


@SQLITE_ONLY
def test_cached_engine_never_outlives_its_experiment(tmaps, monkeypatch) -> None:
    """Another process deletes the experiment: this process's cached engine must not serve it."""
    _add_users(monkeypatch, ("alice",))
    old = registry.add_experiment("old", "alice")
    registry.add_plate(old, "plate-of-old")
    with tm.utils.ExperimentSession(old) as session:  # this process caches the engine
        assert session.scalars(sa.select(tm.Plate.name)).all() == ["plate-of-old"]
    code = f"from tmlib import registry; registry.delete_experiment({old})"
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy())
    with pytest.raises(NotFoundError), tm.utils.ExperimentSession(old) as session:
        session.scalars(sa.select(tm.Plate.name)).all()
    assert not _location_path(tmaps, old).exists()


@SQLITE_ONLY
def test_an_older_sqlite_database_is_upgraded_to_never_reuse_ids(tmaps, monkeypatch) -> None:
    """A main database made before AUTOINCREMENT keeps its rows and stops reusing ids."""
    old = sa.MetaData()
    for table in tm.MainModel.metadata.sorted_tables:
        copy = table.to_metadata(old)
        copy.dialect_options["sqlite"]["autoincrement"] = False
    engine = sa.create_engine(tmaps.db_url)
    tmaps.home.mkdir(parents=True)
    old.create_all(engine)
    with engine.begin() as conn:
        for n in (1, 2, 3):
            conn.execute(
                old.tables["users"].insert(),
                {"id": n, "name": f"u{n}", "email": f"u{n}@x", "password_hash": "x"},
            )
        conn.execute(
            old.tables["experiment_references"].insert(),
            {"id": 1, "name": "e", "root_directory": "/nowhere", "user_id": 2},
        )
    engine.dispose()
    from tmlib.migrations.upgrade import upgrade_all

    upgrade_all(tmaps.db_url)  # what `tm_admin upgrade` does

    assert_never_reused = test_id_columns_use_autoincrement_or_a_sequence
    assert_never_reused(tmaps)  # the upgrade rebuilt the tables
    with tm.utils.MainSession() as session:
        assert session.scalars(sa.select(tm.User.name).order_by(tm.User.id)).all() == [
            "u1",
            "u2",
            "u3",
        ]
        assert session.get(tm.ExperimentReference, 1).user_id == 2
    _delete_row(tm.User, 3)
    use_fast_password_hashing(monkeypatch)
    assert registry.add_user("u4", "secret", "u4@x") == 4
    # foreign keys still cascade
    _delete_row(tm.User, 2)
    with tm.utils.MainSession() as session:
        assert session.get(tm.ExperimentReference, 1) is None


def test_a_deleted_tile_container_is_let_go(monkeypatch, tmp_path) -> None:
    """A tile reader kept open would hold a deleted experiment's container on disk."""
    from tmlib import maptiles

    key = maptiles._layer_key(7, 1)
    monkeypatch.setitem(maptiles._paths, key, (str(tmp_path / "gone.tiles"), 3))
    monkeypatch.setitem(maptiles._readers, key, (str(tmp_path / "gone.tiles"), 1, object()))
    with pytest.raises(NotFoundError):
        maptiles.raster_tile(7, 1, 0, 0, 0)
    assert key not in maptiles._readers


def _location_path(tmaps, experiment_id: int) -> Path:
    return tmaps.storage_home.resolve() / f"experiment_{experiment_id}"


def _spread(calls: list[Callable[[object], object]]) -> list[object]:
    """Each call once, on a fresh connection, from 8 threads (more than a worker's 4, so
    that both workers serve some of them); the results in order."""
    import requests

    results: list[object] = [None] * len(calls)

    def work(offset: int) -> None:
        for i in range(offset, len(calls), 8):
            with requests.Session() as http:
                results[i] = calls[i](http)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def _served_by(server, path: str) -> set[int]:
    """Pids of the workers whose access log lines name `path`."""
    lines = server.log.read_text().splitlines()
    return {int(line.split()[0].strip("<>")) for line in lines if f" {path} " in line}


@SQLITE_ONLY
@pytest.mark.slow
def test_two_workers_never_serve_a_deleted_experiment(tmaps, monkeypatch) -> None:
    """The attack of 13.2 under gunicorn with 2 workers: alice deletes her newest experiment,
    bob's new one got its id, and a worker that had cached alice's engine wrote bob's data into
    the deleted file."""
    _add_users(monkeypatch, ("alice", "bob"))
    extra = {"GUNICORN_CMD_ARGS": "--access-logformat '%(p)s %(m)s %(U)s %(s)s'"}
    with live_server(workers=2, extra_env=extra) as server:
        alice, bob = server.login("alice"), server.login("bob")

        def call(method: str, path: str, token: str, **kwargs) -> Callable[[object], object]:
            def run(http):
                headers = {"Authorization": f"JWT {token}", "Connection": "close"}
                return http.request(method, f"{server.url}{path}", headers=headers, **kwargs)

            return run

        created = server.call("POST", "/api/experiments", alice, json={"name": "a"})
        victim = int(created.json()["data"]["id"])
        plates = f"/api/experiments/{victim}/plates"
        # every worker opens (and caches) the engine of alice's experiment
        workers = set(server.worker_pids())
        for _ in range(20):
            responses = _spread([call("GET", plates, alice)] * 32)
            assert [r.status_code for r in responses] == [200] * 32
            if workers <= _served_by(server, plates):
                break
        assert workers <= _served_by(server, plates)
        assert server.call("DELETE", f"/api/experiments/{victim}", alice).status_code == 200

        created = server.call("POST", "/api/experiments", bob, json={"name": "b"})
        assert created.status_code == 200, created.text
        mine = int(created.json()["data"]["id"])
        assert mine > victim, "the deleted experiment's id was handed out again"

        plates = f"/api/experiments/{mine}/plates"
        names = {f"p{n}" for n in range(10)}
        writes = _spread([call("POST", plates, bob, json={"name": name}) for name in names])
        assert [w.status_code for w in writes] == [200] * 10, [w.text for w in writes]
        for _ in range(20):
            for response in _spread([call("GET", plates, bob)] * 32):
                assert response.status_code == 200
                assert {p["name"] for p in response.json()["data"]} == names
            if workers <= _served_by(server, plates):
                break
        assert workers <= _served_by(server, plates)
        assert set(server.worker_pids()) == workers  # no worker died on the way
    with tm.utils.ExperimentSession(mine) as session:
        assert set(session.scalars(sa.select(tm.Plate.name))) == names
    assert not _location_path(tmaps, victim).exists()


# --------------------------------------------------------------------- 13.3: delete races


def _read_routes(experiment_id: int) -> list[tuple[str, str, dict | None]]:
    """Reads of an experiment: (method, path, JSON body); the POSTs need read access only."""
    base = f"/api/experiments/{experiment_id}"
    jtui = f"/jtui/experiments/{experiment_id}"
    gets = [
        base,
        f"{base}/plates",
        f"{base}/acquisitions",
        f"{base}/channels",
        f"{base}/channel_layers",
        f"{base}/mapobject_types",
        f"{base}/cycles",
        f"{base}/wells",
        f"{base}/sites",
        f"{base}/tools/results",
        f"{base}/workflow/status",
        f"{base}/workflow/description",
        f"{base}/workflow/jtproject",
        f"{jtui}/project",
        f"{jtui}/available_channels",
    ]
    posts = [(f"{jtui}/joblist", {}), (f"{jtui}/jobs/status", None)]
    return [("GET", path, None) for path in gets] + [("POST", p, b) for p, b in posts]


def _race_delete(
    read: Callable[[str, str, dict | None], int], delete: Callable[[], int], routes: list
) -> list[tuple[str, int]]:
    """Reads from 4 threads, before, during and after `delete`; their (path, status)."""
    results: list[tuple[str, int]] = []
    started = threading.Barrier(5)
    deleted = threading.Event()

    def work(offset: int) -> None:
        order = routes[offset:] + routes[:offset]
        started.wait()
        rounds_after = 0
        while rounds_after < 2:
            after = deleted.is_set()
            for method, path, body in order:
                results.append((path, read(method, path, body)))
            rounds_after += after

    threads = [threading.Thread(target=work, args=(n * 4,)) for n in range(4)]
    for thread in threads:
        thread.start()
    started.wait()
    try:
        assert delete() == 200
    finally:
        deleted.set()
        for thread in threads:
            thread.join()
    return results


def _check_gone_and_creatable(tmaps, experiment_id: int, create: Callable[[str], int]) -> None:
    assert _leftovers(tmaps, experiment_id) == []
    assert not _location_path(tmaps, experiment_id).exists()
    with tm.utils.MainSession() as session:
        assert session.get(tm.ExperimentReference, experiment_id) is None
    # experiments can be made as before, over HTTP and with tm_add
    assert create("after-delete") > experiment_id
    made = ok(cli("tm_add", "experiment", "-e", "by-tm-add", "-u", "alice"))
    new = int(made.stdout.strip())
    assert new > experiment_id
    assert experiment_db_path(_location(new)).is_file() or tmaps.dialect == "postgresql"


def test_reads_during_delete_get_404_and_recreate_nothing(tmaps, server) -> None:
    """Reads racing DELETE recreated the experiment's directory and database (SQLite file,
    PostgreSQL schema), after which every experiment creation failed with 409."""
    created = server.post("/api/experiments", json={"name": "doomed"})
    experiment_id = int(created.get_json()["data"]["id"])
    assert (
        server.post(f"/api/experiments/{experiment_id}/plates", json={"name": "p"}).status_code
        == 200
    )
    headers = server.headers("alice")

    def read(method: str, path: str, body: dict | None) -> int:
        client = server.app.test_client()
        return client.open(path, method=method, headers=headers, json=body).status_code

    routes = _read_routes(experiment_id)
    results = _race_delete(
        read, lambda: server.delete(f"/api/experiments/{experiment_id}").status_code, routes
    )
    bad = sorted({(path, status) for path, status in results if status not in (200, 404)})
    assert bad == []
    assert (f"/api/experiments/{experiment_id}", 404) in results  # the reads went on after

    def create(name: str) -> int:
        response = server.post("/api/experiments", json={"name": name})
        assert response.status_code == 200, response.get_json()
        return int(response.get_json()["data"]["id"])

    _check_gone_and_creatable(tmaps, experiment_id, create)


@SQLITE_ONLY
@pytest.mark.slow
def test_reads_during_delete_under_two_workers(tmaps, monkeypatch) -> None:
    """The race of 13.3 under gunicorn with 2 workers, each with cached engines."""
    _add_users(monkeypatch, ("alice",))
    with live_server(workers=2) as server:
        token = server.login("alice")
        created = server.call("POST", "/api/experiments", token, json={"name": "doomed"})
        experiment_id = int(created.json()["data"]["id"])
        plates = f"/api/experiments/{experiment_id}/plates"
        assert server.call("POST", plates, token, json={"name": "p"}).status_code == 200
        import requests

        local = threading.local()

        def read(method: str, path: str, body: dict | None) -> int:
            if not hasattr(local, "http"):
                local.http = requests.Session()
            headers = {"Authorization": f"JWT {token}"}
            return local.http.request(
                method, f"{server.url}{path}", headers=headers, json=body, timeout=60
            ).status_code

        def delete() -> int:
            return server.call("DELETE", f"/api/experiments/{experiment_id}", token).status_code

        results = _race_delete(read, delete, _read_routes(experiment_id))
        bad = sorted({(path, status) for path, status in results if status not in (200, 404)})
        assert bad == []

        def create(name: str) -> int:
            response = server.call("POST", "/api/experiments", token, json={"name": name})
            assert response.status_code == 200, response.text
            return int(response.json()["data"]["id"])

        _check_gone_and_creatable(tmaps, experiment_id, create)
        assert " 500 " not in server.log.read_text()


# --------------------------------------------------------------------- 13.14: reads write


def _tree(location: Path) -> dict[str, tuple[bool, int, int]]:
    """Every file and directory below `location`: (is directory, size, mtime in ns)."""
    found = {}
    for path in [location, *location.rglob("*")]:
        info = path.lstat()
        found[str(path.relative_to(location))] = (path.is_dir(), info.st_size, info.st_mtime_ns)
    return found


def _rows(engine: sa.Engine, metadata: sa.MetaData) -> dict[str, str]:
    """A digest of every table's rows."""
    digests = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = conn.execute(sa.select(table).order_by(*table.primary_key.columns)).all()
            digests[table.name] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return digests


def _state(experiment_id: int) -> tuple:
    location = _location(experiment_id)
    return (
        _tree(location),
        _rows(tm.utils.experiment_engine(experiment_id), tm.ExperimentModel.metadata),
        _rows(tm.utils.main_engine(), tm.MainModel.metadata),
    )


def _first_ids(experiment_id: int) -> dict[str, object]:
    """Ids and names of the first object of each kind in the experiment (path and query values)."""
    kinds = {
        "channel_id": tm.Channel,
        "channel_layer_id": tm.ChannelLayer,
        "segmentation_layer_id": tm.SegmentationLayer,
        "mapobject_type_id": tm.MapobjectType,
        "mapobject_id": tm.Mapobject,
        "plate_id": tm.Plate,
        "acquisition_id": tm.Acquisition,
        "cycle_id": tm.Cycle,
        "well_id": tm.Well,
        "site_id": tm.Site,
        "tool_result_id": tm.ToolResult,
        "selection_id": tm.Selection,
    }
    with tm.utils.ExperimentSession(experiment_id) as session:
        ids = {
            name: session.scalar(sa.select(sa.func.min(model.id))) or 1
            for name, model in kinds.items()
        }
        ids["plate_name"] = session.scalar(sa.select(tm.Plate.name).limit(1))
        ids["well_name"] = session.scalar(sa.select(tm.Well.name).order_by(tm.Well.id).limit(1))
    with tm.utils.MainSession() as session:
        ids["job_id"] = session.scalar(
            sa.select(sa.func.max(tm.Task.id)).where(tm.Task.is_collection.is_(False))
        )
        # an export is its submitter's: a read share gets 404 for any of them
        ids["export_id"] = session.scalar(sa.select(sa.func.max(tm.Submission.id))) or 1
    return ids


#: values of the required query parameters of the read routes
_QUERY = {
    "well_pos_x": 0,
    "well_pos_y": 0,
    "tpoint": 0,
    "zplane": 0,
    "x": 0,
    "y": 0,
    "z": 0,
    "result_name": "x",
    "step_name": "jterator",
    "module_name": "smooth",
    "job_id": 1,
}


def _read_requests(experiment_id: int) -> list[tuple[str, str, dict]]:
    """Every route a read share may call (all GETs, and POSTs that need only read access),
    with values from the experiment: (method, URL, JSON body)."""
    from urllib.parse import urlencode

    from tmserver.api import api
    from tmserver.jtui import jtui

    values = {"experiment_id": experiment_id, **_first_ids(experiment_id)}
    requests = []
    for routes in (api, jtui):
        for endpoint in routes.endpoints:
            if endpoint.method != "GET" and endpoint.permission != "read":
                continue
            path = routes.url_prefix + endpoint.path.format(**values)
            query = {
                name: values.get(name, _QUERY.get(name))
                for name, param in endpoint.query.items()
                if param.required
            }
            url = f"{path}?{urlencode(query)}" if query else path
            requests.append((endpoint.method, url, {}))
    return requests


def test_a_read_share_changes_nothing(processed, processed_server) -> None:
    """bob may only read alice's experiment, yet GET workflow/description saved a default
    description into it. Every read route, called by bob, leaves files and rows as they were."""
    server, experiment_id = processed_server, processed.experiment_id
    registry.share_experiment(experiment_id, "bob", write_access=False)
    try:
        requests = _read_requests(experiment_id)
        project = server.get(f"/jtui/experiments/{experiment_id}/project", user="bob")
        before = _state(experiment_id)
        answers = {}
        for method, url, body in requests:
            if url.endswith("/project/check"):
                body = {"project": project.get_json()["data"]}
            response = server.client.open(
                url, method=method, headers=server.headers("bob"), json=body
            )
            response.get_data()  # streamed bodies run to their end, as for a real client
            response.close()
            answers[f"{method} {url}"] = response.status_code
        after = _state(experiment_id)
    finally:
        registry.unshare_experiment(experiment_id, "bob")
    assert len(answers) > 40
    failed = {route: status for route, status in answers.items() if status >= 500}
    assert failed == {}
    assert sum(status == 200 for status in answers.values()) > 30, answers
    for part, old, new in zip(
        ("files", "experiment rows", "main rows"), before, after, strict=True
    ):
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        assert changed == [], part
