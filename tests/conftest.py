"""Shared fixtures: an isolated TMAPS_HOME and a database, on SQLite and on PostgreSQL.

PostgreSQL tests use the server named by ``TMAPS_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``); each test gets a database of
its own, dropped afterwards. Where no server answers the tests are skipped,
unless ``TMAPS_TEST_REQUIRE_PG=1`` (set by CI), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from tmlib.models.session import dispose_engines

DEFAULT_PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


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
