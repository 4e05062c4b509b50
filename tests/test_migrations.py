"""Schema revisions: new databases are made at the head, old ones upgraded by ``tm_admin upgrade``.

The release 0.1 experiment comes from ``tests/fixtures/release_0_1`` (dumps
made by that release; see its ``generate.py``).
"""

from __future__ import annotations

import importlib.util
import re
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import TEST_SECRET, Env, make_server
from helpers import cli, ok, one_error_line, use_fast_password_hashing

import tmlib.models as tm
from tmlib import migrations, registry
from tmlib.migrations import EXPERIMENT_HEAD, MAIN_HEAD, SchemaRevisionError
from tmlib.migrations import upgrade as migrate
from tmlib.models.session import dispose_engines, experiment_schema, get_engine, main_engine

FIXTURES = Path(__file__).parent / "fixtures" / "release_0_1"
#: where tm_add linked the plate's directory into the fixture's acquisition
SOURCES = "plates/plate_1/acquisitions/acquisition_1/sources"
UPGRADE_HINT = "run `tm_admin upgrade`"


def _generator():
    spec = importlib.util.spec_from_file_location("release_0_1", FIXTURES / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def plate_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated plate the fixture's experiment was made from (made again: same seed)."""
    plate = tmp_path_factory.mktemp("release_0_1") / "plate"
    ok(cli("tm_simulate", "plate", plate, *_generator().SIMULATE))
    return plate


def load_release_0_1(env: Env, plate: Path) -> None:
    """Make `env`'s database the release 0.1 installation of the fixture (experiment 1)."""

    def text(name: str) -> str:
        dump = (FIXTURES / name).read_text()
        return dump.replace("@ROOT@", str(env.home)).replace("@PLATE@", str(plate))

    location = env.storage_home / "experiment_1"
    dump = "sqlite_experiment.sql" if env.dialect == "sqlite" else "postgresql.sql"
    source = re.search(r"'(plate-[0-9a-f]+)'", (FIXTURES / dump).read_text())
    link = location / SOURCES / source.group(1)
    link.parent.mkdir(parents=True)
    link.symlink_to(plate, target_is_directory=True)
    if env.dialect == "sqlite":
        for path, name in (
            (env.home / "tissuemaps.db", "sqlite_main.sql"),
            (location / "experiment.db", "sqlite_experiment.sql"),
        ):
            connection = sqlite3.connect(path)
            connection.executescript(text(name))
            connection.close()
        return
    engine = sa.create_engine(env.db_url)
    raw = engine.raw_connection()
    try:
        raw.cursor().execute(text("postgresql.sql"))
        raw.commit()
    finally:
        raw.close()
        engine.dispose()


def _revisions(env: Env) -> tuple[str | None, str | None]:
    engine = sa.create_engine(env.db_url)
    try:
        with engine.connect() as conn:
            main = migrations.read_revision(conn)
            if env.dialect == "postgresql":
                return main, migrations.read_revision(conn, experiment_schema(1))
        location = env.storage_home / "experiment_1"
        return main, migrate.experiment_revision(engine, 1, str(location.parent))
    finally:
        engine.dispose()


# --- new databases ---------------------------------------------------------


def test_the_heads_named_in_the_code_are_those_of_the_scripts() -> None:
    assert migrate.script_head("main") == MAIN_HEAD
    assert migrate.script_head("experiment") == EXPERIMENT_HEAD


def _default(default: str | None, schema: str | None) -> str | None:
    """A column default with the schema's name left out (sequences are named by it)."""
    return default.replace(f"{schema}.", "") if default and schema else default


def _schema(conn: sa.Connection, schema: str | None) -> dict[str, object]:
    """Everything about the tables of `schema` that the models decide."""
    inspector = sa.inspect(conn)
    found: dict[str, object] = {}
    for table in inspector.get_table_names(schema=schema):
        found[table] = (
            [
                (c["name"], str(c["type"]), c["nullable"], _default(c["default"], schema))
                for c in inspector.get_columns(table, schema=schema)
            ],
            inspector.get_pk_constraint(table, schema=schema)["constrained_columns"],
            sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table, schema=schema)
            ),
            sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(table, schema)
            )
            if conn.dialect.name == "postgresql"
            else None,
            sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], f["options"].get("ondelete"))
                for f in inspector.get_foreign_keys(table, schema=schema)
            ),
            sorted(c["sqltext"] for c in inspector.get_check_constraints(table, schema=schema)),
        )
    if conn.dialect.name == "sqlite":  # the statements themselves (AUTOINCREMENT and all)
        query = "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
        found["sqlite_master"] = [
            (name, " ".join(sql.split())) for name, sql in conn.exec_driver_sql(query)
        ]
    return found


def test_new_databases_are_made_at_the_head_as_the_migrations_make_them(
    tmaps: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """create_all + stamp (the fast path for new databases) == every migration from nothing."""
    use_fast_password_hashing(monkeypatch)
    registry.add_user("alice", "secret", "alice@example.org")
    eid = registry.add_experiment("new", "alice")
    assert _revisions(tmaps) == (MAIN_HEAD, EXPERIMENT_HEAD)

    # the same, made by the migrations: a second main database / experiment schema
    if tmaps.dialect == "sqlite":
        other_main = sa.create_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
        other_experiment = sa.create_engine(f"sqlite:///{tmp_path / 'migrated_experiment.db'}")
        translate = None
    else:
        other_main = None  # the main tables exist in this database already: compared below
        other_experiment = main_engine()
        translate = "experiment_999"
        with other_experiment.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{translate}"')
    if other_main is not None:
        with migrate._schema_change(other_main, "main") as conn:
            assert migrate._migrate(conn, "main", "main", None).after == MAIN_HEAD
    with migrate._schema_change(other_experiment, "experiment", translate=translate) as conn:
        assert migrate._migrate(conn, "experiment", "e", translate).after == EXPERIMENT_HEAD

    made = main_engine()
    if tmaps.dialect == "sqlite":
        with made.connect() as a, other_main.connect() as b:
            assert _schema(a, None) == _schema(b, None)
        path = tmaps.storage_home / f"experiment_{eid}" / "experiment.db"
        with sa.create_engine(f"sqlite:///{path}").connect() as a, other_experiment.connect() as b:
            assert _schema(a, None) == _schema(b, None)
        other_main.dispose()
        other_experiment.dispose()
    else:
        with made.connect() as conn:
            assert _schema(conn, experiment_schema(eid)) == _schema(conn, translate)
            # the main tables: a database upgraded from release 0.1 is compared in
            # test_release_0_1_is_upgraded_and_works; here: they are the models'
            assert set(_schema(conn, None)) == {*tm.MainModel.metadata.tables, "alembic_version"}


def test_revision_checks_are_made_once_per_engine_not_per_request(
    tmaps: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server(monkeypatch)
    eid = server.post("/api/experiments", json={"name": "e"}).get_json()["data"]["id"]
    assert server.get(f"/api/experiments/{eid}/mapobject_types").status_code == 200
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
    try:
        for _ in range(5):
            assert server.get("/api/experiments").status_code == 200
            assert server.get(f"/api/experiments/{eid}/mapobject_types").status_code == 200
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)
    assert statements  # the requests did query
    assert not [s for s in statements if "alembic_version" in s or "sqlite_master" in s]


def test_a_database_of_a_newer_release_is_refused(tmaps: Env) -> None:
    main_engine()
    with sa.create_engine(tmaps.db_url).begin() as conn:
        migrations.stamp(conn, "main_9999")
    dispose_engines()
    with pytest.raises(SchemaRevisionError, match="newer release"):
        main_engine()
    result = cli("tm_admin", "upgrade")
    assert "newer release" in one_error_line(result)


# --- release 0.1 -----------------------------------------------------------


@pytest.mark.slow
def test_release_0_1_is_upgraded_and_works(
    tmaps: Env, plate_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tmserver.app import create_app
    from tmserver.config import ServerConfig

    load_release_0_1(tmaps, plate_dir)
    assert _revisions(tmaps) == (None, None)

    # every program refuses the old database with one line naming the command
    for program in ("jterator", "tm_workflow"):
        command = ("init",) if program == "jterator" else ("status",)
        line = one_error_line(cli(program, 1, *command))
        assert "the main database has no schema revision" in line and UPGRADE_HINT in line
    client = create_app(ServerConfig(secret_key=TEST_SECRET), TESTING=True).test_client()
    response = client.post("/auth", json={"username": "alice", "password": "secret"})
    assert response.status_code == 503, response.get_data()
    assert UPGRADE_HINT in response.get_json()["error"]["message"]

    # the main database alone upgraded: the experiment is refused
    assert migrate.upgrade_main(get_engine(tmaps.db_url)).changed
    dispose_engines()
    line = one_error_line(cli("jterator", 1, "init"))
    assert line.endswith(
        f"experiment 1's database has no schema revision (made by release 0.1), "
        f"this release needs {EXPERIMENT_HEAD}: {UPGRADE_HINT}"
    )
    server = make_server(monkeypatch)
    response = server.get("/api/experiments/1/mapobject_types")
    assert response.status_code == 503
    assert UPGRADE_HINT in response.get_json()["error"]["message"]

    check = cli("tm_admin", "upgrade", "--check")
    assert check.returncode == 1, check.stderr
    assert "experiment 1: at release 0.1, needs" in check.stdout
    done = ok(cli("tm_admin", "upgrade"))
    assert f"experiment 1: upgraded from release 0.1 to {EXPERIMENT_HEAD}" in done.stdout
    again = ok(cli("tm_admin", "upgrade"))
    assert f"experiment 1: at {EXPERIMENT_HEAD}, nothing to do" in again.stdout
    assert "0 upgraded, 2 unchanged, 0 failed" in again.stdout
    ok(cli("tm_admin", "upgrade", "--check"))
    assert _revisions(tmaps) == (MAIN_HEAD, EXPERIMENT_HEAD)

    # the server reads what release 0.1 stored
    types = server.get("/api/experiments/1/mapobject_types")
    assert types.status_code == 200, types.get_json()
    by_name = {t["name"]: t for t in types.get_json()["data"]}
    assert {"Cells", "Nuclei"} <= set(by_name)
    cells = by_name["Cells"]["id"]
    features = server.get(f"/api/experiments/1/mapobject_types/{cells}/features")
    assert len(features.get_json()["data"]) > 0
    values = server.get(f"/api/experiments/1/mapobject_types/{cells}/feature-values")
    assert values.status_code == 200
    assert len(values.get_data(as_text=True).strip().splitlines()) > 1
    # a token issued now works; users keep their passwords
    assert server.get("/api/experiments").get_json()["data"][0]["name"] == "screen"

    # and the workflow runs on the upgraded experiment
    ok(cli("tm_workflow", 1, "submit", timeout=600))
    with tm.utils.ExperimentSession(1) as session:
        layer = session.scalars(sa.select(tm.ChannelLayer.id)).first()
    tile = server.get(f"/api/experiments/1/channel_layers/{layer}/tiles?x=0&y=0&z=0")
    assert tile.status_code == 200 and tile.mimetype == "image/jpeg"


def test_an_upgrade_that_fails_midway_leaves_the_experiment_as_it_was_and_resumes(
    tmaps: Env, plate_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_release_0_1(tmaps, plate_dir)
    use_fast_password_hashing(monkeypatch)
    real = migrate._migrate

    def fail_after_the_work(conn, kind, what, schema):
        outcome = real(conn, kind, what, schema)
        if kind == "experiment":
            assert migrations.read_revision(conn, schema) == EXPERIMENT_HEAD
            raise RuntimeError("killed")  # everything done but the commit
        return outcome

    monkeypatch.setattr(migrate, "_migrate", fail_after_the_work)
    outcomes = migrate.upgrade_all(tmaps.db_url)
    assert [o.line() for o in outcomes] == [
        f"main database: upgraded from release 0.1 to {MAIN_HEAD}",
        "experiment 1: failed, left at release 0.1: killed",
    ]
    assert _revisions(tmaps) == (MAIN_HEAD, None)
    monkeypatch.setattr(migrate, "_migrate", real)

    # an experiment made now is at the head already; the run carries on
    new = registry.add_experiment("new", "alice")
    lines = [o.line() for o in migrate.upgrade_all(tmaps.db_url)]
    assert lines == [
        f"main database: at {MAIN_HEAD}, nothing to do",
        f"experiment 1: upgraded from release 0.1 to {EXPERIMENT_HEAD}",
        f"experiment {new}: at {EXPERIMENT_HEAD}, nothing to do",
    ]
    with tm.utils.ExperimentSession(1) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(tm.Mapobject)) == 88


@pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)
def test_a_sqlite_database_older_than_release_0_1_is_upgraded(tmaps: Env, plate_dir: Path) -> None:
    """No AUTOINCREMENT, no users.token_epoch, no login_failures: what the ad-hoc upgrades fixed."""
    load_release_0_1(tmaps, plate_dir)
    path = tmaps.home / "tissuemaps.db"
    connection = sqlite3.connect(path)
    dump = "\n".join(connection.iterdump())
    connection.close()
    path.unlink()
    older = dump.replace(" AUTOINCREMENT", "").replace('DELETE FROM "sqlite_sequence";', "")
    older = "\n".join(line for line in older.splitlines() if "sqlite_sequence" not in line)
    connection = sqlite3.connect(path)
    connection.executescript(older)
    connection.executescript(
        "DROP TABLE login_failures; ALTER TABLE users DROP COLUMN token_epoch;"
    )
    connection.close()

    ok(cli("tm_admin", "upgrade"))
    connection = sqlite3.connect(path)
    try:
        for table in (
            "users",
            "experiment_references",
            "experiment_shares",
            "submissions",
            "tasks",
        ):
            sql = connection.execute(
                "SELECT sql FROM sqlite_master WHERE name = ?", (table,)
            ).fetchone()[0]
            assert "AUTOINCREMENT" in sql, sql
        epochs = connection.execute("SELECT name, token_epoch FROM users ORDER BY id").fetchall()
        assert [name for name, _ in epochs] == ["alice", "bob", "carol"]
        assert len({epoch for _, epoch in epochs}) == 3  # random, not all 0
        assert connection.execute("SELECT count(*) FROM login_failures").fetchone() == (0,)
        assert connection.execute("SELECT count(*) FROM tasks").fetchone()[0] > 0
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        connection.close()
    assert _revisions(tmaps) == (MAIN_HEAD, EXPERIMENT_HEAD)
