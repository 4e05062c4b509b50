"""Shared fixtures: an isolated TMAPS_HOME and a database, on SQLite and on PostgreSQL.

PostgreSQL tests use the server named by ``TMAPS_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``); each test gets a database of
its own, dropped afterwards. Where no server answers the tests are skipped,
unless ``TMAPS_TEST_REQUIRE_PG=1`` (set by CI), where they fail.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from tmlib.models.session import dispose_engines

DEFAULT_PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"

# Programs run in processes of their own here, so that each test's environment
# and timing stay its own; tests/test_warm_start.py runs them through the
# warm-start server (TMAPS_WARM_START=1 runs every test so).
os.environ.setdefault("TMAPS_WARM_START", "0")


def pg_admin_url() -> str:
    return os.environ.get("TMAPS_TEST_PG_URL", DEFAULT_PG_URL)


def _pg_unavailable_reason() -> str | None:
    url = pg_admin_url()
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
    except Exception as err:  # any failure means: no usable server
        first = str(getattr(err, "orig", err)).strip().splitlines()[0]
        return (
            f"PostgreSQL not reachable at {url} ({first}); set TMAPS_TEST_PG_URL to an admin URL "
            "of a server that allows CREATE DATABASE to run these tests"
        )
    return None


@pytest.fixture(scope="session")
def pg_server() -> str:
    """Admin URL of a reachable PostgreSQL server (or skip / fail, see module doc)."""
    reason = _pg_unavailable_reason()
    if reason is not None:
        if os.environ.get("TMAPS_TEST_REQUIRE_PG") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return pg_admin_url()


@pytest.fixture
def pg_database(pg_server: str) -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    name = f"tmaps_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(pg_server).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@dataclass
class Env:
    """An isolated TissueMAPS installation for one test."""

    home: Path
    db_url: str
    dialect: str

    @property
    def storage_home(self) -> Path:
        return self.home / "experiments"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def tmaps(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Env]:
    """A TMAPS_HOME in tmp_path and an empty database; runs once per database kind."""
    home = tmp_path / "tmaps"
    if request.param == "postgresql":
        db_url = request.getfixturevalue("pg_database")
    else:
        db_url = f"sqlite:///{home / 'tissuemaps.db'}"
    monkeypatch.setenv("TMAPS_HOME", str(home))
    monkeypatch.setenv("TMAPS_DB_URL", db_url)
    monkeypatch.setenv("TMAPS_CONFIG_FILE", str(tmp_path / "no-such.cfg"))
    monkeypatch.delenv("TMAPS_STORAGE_HOME", raising=False)
    yield Env(home=home, db_url=db_url, dialect=request.param)
    dispose_engines()


# --- the server ------------------------------------------------------------


@dataclass
class Server:
    """A server app on the test's database with users ``alice``, ``bob`` and ``carol``.

    ``alice`` owns what the tests create unless they say otherwise; ``bob``
    and ``carol`` are other users (for permission tests). Every password is
    ``secret``.
    """

    app: object
    client: object
    tokens: dict[str, str]

    def headers(self, user: str | None = "alice") -> dict[str, str]:
        """The Authorization header of `user` (none for None)."""
        return {} if user is None else {"Authorization": f"JWT {self.tokens[user]}"}

    def get(self, path: str, user: str | None = "alice", **kwargs):
        return self.client.get(path, headers=self.headers(user), **kwargs)

    def post(self, path: str, user: str | None = "alice", **kwargs):
        return self.client.post(path, headers=self.headers(user), **kwargs)

    def put(self, path: str, user: str | None = "alice", **kwargs):
        return self.client.put(path, headers=self.headers(user), **kwargs)

    def delete(self, path: str, user: str | None = "alice", **kwargs):
        return self.client.delete(path, headers=self.headers(user), **kwargs)


USERS = ("alice", "bob", "carol")
#: what the test servers sign tokens with
TEST_SECRET = "test-secret-key-of-thirty-two-bytes"


def make_server(monkeypatch: pytest.MonkeyPatch) -> Server:
    """A :class:`Server` on the database the environment names; users are created if missing."""
    from helpers import use_fast_password_hashing

    from tmlib import registry
    from tmlib.errors import AlreadyExistsError
    from tmserver.app import create_app
    from tmserver.config import ServerConfig

    use_fast_password_hashing(monkeypatch)
    for name in USERS:
        with contextlib.suppress(AlreadyExistsError):
            registry.add_user(name, "secret", f"{name}@example.org")
    app = create_app(ServerConfig(secret_key=TEST_SECRET), TESTING=True)
    client = app.test_client()
    tokens = {}
    for name in USERS:
        response = client.post("/auth", json={"username": name, "password": "secret"})
        assert response.status_code == 200, response.get_json()
        tokens[name] = response.get_json()["access_token"]
    return Server(app=app, client=client, tokens=tokens)


@pytest.fixture
def server(tmaps: Env, monkeypatch: pytest.MonkeyPatch) -> Server:
    """A server on an empty database (SQLite and PostgreSQL), see :class:`Server`."""
    return make_server(monkeypatch)


@dataclass
class Processed:
    """A small simulated plate taken through the whole workflow (SQLite), shared by tests.

    Tests must treat it as read-only: it is built once per test session.
    ``experiment_id`` belongs to user ``alice``; ``plate_dir`` holds the
    simulated microscope files and their ground truth.
    """

    home: Path
    db_url: str
    experiment_id: int
    plate_dir: Path


def build_processed(root: Path) -> Processed:
    """Simulate a small plate under `root` and take it through the whole workflow."""
    import subprocess
    import sys

    home = root / "tmaps"
    plate_dir = root / "plate"
    db_url = f"sqlite:///{home / 'tissuemaps.db'}"
    environ = {
        **os.environ,
        "TMAPS_HOME": str(home),
        "TMAPS_DB_URL": db_url,
        "TMAPS_CONFIG_FILE": str(root / "no-such.cfg"),
        "TMAPS_CORES": "2",
    }
    environ.pop("TMAPS_STORAGE_HOME", None)
    bin_dir = Path(sys.executable).parent

    def run(*args: object) -> str:
        result = subprocess.run(
            [str(bin_dir / str(args[0])), *map(str, args[1:])],
            env=environ,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    run("tm_simulate", "plate", plate_dir, "--microscope", "cellvoyager", "--plate-format", 384,
        "--wells", 2, "--sites", 4, "--channels", 2, "--size", "384x512", "--seed", 3)  # fmt: skip
    for name in USERS:
        run("tm_add", "user", "-n", name, "-p", "secret", "-e", f"{name}@example.org")
    experiment_id = int(run("tm_add", "experiment", "-e", "screen", "-u", "alice").strip())
    run("tm_add", "plate", "-e", experiment_id, "-p", "plate01")
    run("tm_add", "acquisition", "-e", experiment_id, "-p", "plate01", "-a", "acq01")
    run("tm_add", "files", "-e", experiment_id, "-p", "plate01", "-a", "acq01", "-s", plate_dir)
    run("tm_workflow", experiment_id, "submit")
    return Processed(home=home, db_url=db_url, experiment_id=experiment_id, plate_dir=plate_dir)


@pytest.fixture(scope="session")
def processed_plate(tmp_path_factory: pytest.TempPathFactory) -> Processed:
    return build_processed(tmp_path_factory.mktemp("processed"))


def use_processed(processed: Processed, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point the library's settings at a :class:`Processed` installation."""
    monkeypatch.setenv("TMAPS_HOME", str(processed.home))
    monkeypatch.setenv("TMAPS_DB_URL", processed.db_url)
    monkeypatch.setenv("TMAPS_CONFIG_FILE", str(tmp_path / "no-such.cfg"))
    monkeypatch.delenv("TMAPS_STORAGE_HOME", raising=False)


@pytest.fixture
def processed(
    processed_plate: Processed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Processed]:
    """The environment of :func:`processed_plate` for one test."""
    use_processed(processed_plate, monkeypatch, tmp_path)
    yield processed_plate
    dispose_engines()


@pytest.fixture
def processed_server(processed: Processed, monkeypatch: pytest.MonkeyPatch) -> Server:
    """A server on the processed plate (see :class:`Processed`)."""
    return make_server(monkeypatch)
