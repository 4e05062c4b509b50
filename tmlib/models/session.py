"""Engines and sessions for the main database and the per-experiment tables.

One code path for both databases:

* PostgreSQL: the experiment tables live in schema ``experiment_<id>`` of the
  main database; the experiment engine is the main engine with a
  ``schema_translate_map`` (so both share one connection pool).
* SQLite: the experiment tables live in ``<experiment dir>/experiment.db``, so
  that deleting an experiment is deleting its directory and parallel jobs of
  different experiments never wait for each other's locks.

Tables are created with the main database or the experiment, at the newest
schema revision (:mod:`tmlib.migrations`); an engine checks the revision on
its first use in a process.

Connections (:mod:`tmlib.models.connect`): a PostgreSQL engine retries a
refused connection with back-off (``TMAPS_DB_CONNECT_RETRIES``,
``TMAPS_DB_CONNECT_TIMEOUT``); a job (:func:`use_job_connections`) keeps no
connection between its sessions, so it holds one only while it talks to the
database. Nothing here sets state on a connection beyond its transaction
(schemas are named in the SQL, locks are ``pg_advisory_xact_lock``, search
paths ``SET LOCAL``), so every engine works behind PgBouncer in transaction
pooling.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from tmlib.config import load_settings
from tmlib.errors import DatabaseError, NotFoundError, UserError
from tmlib.migrations import EXPERIMENT_HEAD, SchemaRevisionError, check_experiment, stamp
from tmlib.models.base import ExperimentModel, MainModel
from tmlib.models.connect import RetryPolicy, connect_with_retries, first_line, keeps_pool

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_ready: set[str] = set()  # main databases whose tables exist
_experiment_engines: dict[tuple[str, int], _Cached] = {}
_job_process = False  # set by use_job_connections


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return url


_READ_ONLY = re.compile(r"\s*(SELECT|PRAGMA|EXPLAIN)\b", re.IGNORECASE)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    # Transactions begin at their first write, with BEGIN IMMEDIATE. A
    # transaction that read first and then writes cannot wait for a concurrent
    # writer in WAL mode (SQLite fails it with "database is locked" at once),
    # and parallel jobs write to the same file. Reads outside a transaction see
    # the latest commit, like PostgreSQL's READ COMMITTED.
    @event.listens_for(engine, "before_cursor_execute")
    def _on_execute(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        dbapi_connection = conn.connection.dbapi_connection
        if not dbapi_connection.in_transaction and not _READ_ONLY.match(statement):
            dbapi_connection.execute("BEGIN IMMEDIATE")


def get_engine(url: str) -> Engine:
    """A cached engine for `url`; SQLite files get WAL mode and foreign keys.

    Raises
    ------
    DatabaseError
        When the URL cannot be parsed or names an unknown driver.
    """
    with _lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        try:
            parsed = make_url(url)
            if parsed.get_backend_name() == "sqlite":
                if parsed.database and parsed.database != ":memory:":
                    directory = Path(parsed.database).parent
                    try:
                        directory.mkdir(parents=True, exist_ok=True)
                    except OSError as err:
                        raise DatabaseError(
                            f"cannot create directory {directory} for the SQLite database "
                            f"{safe_url(url)}: {err.strerror} (check TMAPS_DB_URL / TMAPS_HOME)"
                        ) from err
                engine = sa.create_engine(url)
                _configure_sqlite(engine)
            elif parsed.get_backend_name() == "postgresql":
                if parsed.drivername == "postgresql":
                    # SQLAlchemy 2.1 would pick psycopg 3; we ship psycopg2 (COPY support).
                    parsed = parsed.set(drivername="postgresql+psycopg2")
                engine = _postgresql_engine(parsed, safe_url(url))
            else:
                raise DatabaseError(
                    f"unsupported database URL {safe_url(url)}: use sqlite:///PATH or "
                    "postgresql://USER@HOST:PORT/DBNAME (TMAPS_DB_URL)"
                )
        except (exc.ArgumentError, exc.NoSuchModuleError) as err:
            raise DatabaseError(
                f"invalid database URL {safe_url(url)}: {err} (check TMAPS_DB_URL)"
            ) from err
        _engines[url] = engine
        return engine


def _postgresql_engine(url: URL, where: str) -> Engine:
    """An engine that retries refused connections and pools them as configured.

    `where` names the database in messages (as configured, password masked).

    A pool keeps few connections (the server's threads, the workflow engine);
    without one (jobs) each session opens its own and closes it at its end.
    """
    settings = load_settings()
    policy = RetryPolicy(
        retries=settings.db_connect_retries, timeout=float(settings.db_connect_timeout)
    )
    if keeps_pool(settings.db_pool, _job_process):
        # pre-ping: a pooled connection may have died with a restart of the server
        engine = sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    else:
        engine = sa.create_engine(url, poolclass=NullPool)
    _retry_connections(engine, where, policy)
    return engine


def _retry_connections(engine: Engine, where: str, policy: RetryPolicy) -> None:
    """Make every new connection of `engine` through :func:`connect_with_retries`."""

    @event.listens_for(engine, "do_connect")
    def _on_connect(dialect, _record, cargs, cparams):  # type: ignore[no-untyped-def]
        # a connect_timeout in the URL bounds each attempt in place of the policy's
        limit = float(cparams.get("connect_timeout") or policy.attempt_timeout)

        def attempt(seconds: float) -> Any:
            timeout = max(2, math.ceil(min(seconds, limit)))  # libpq's least is 2 s
            return dialect.connect(*cargs, **{**cparams, "connect_timeout": timeout})

        return connect_with_retries(attempt, where, policy)


def use_job_connections() -> None:
    """Make this process a job's: from now on it keeps no idle connection.

    Each session then opens a connection and closes it when it ends, so a job
    that reads its inputs, computes and writes its results holds a connection
    only while it reads and while it writes (``TMAPS_DB_POOL=pool`` keeps a
    pool anyway). Engines made before are dropped.
    """
    global _job_process
    if _job_process:
        return
    _job_process = True
    if _engines:
        dispose_engines()


def dispose_engines() -> None:
    """Close all pooled connections (call after ``fork`` and in tests)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        for cached in _experiment_engines.values():
            if cached.path is not None:
                cached.engine.dispose()
        _engines.clear()
        _ready.clear()
        _experiment_engines.clear()


def _connect_error(url: str, err: Exception) -> DatabaseError:
    reason = first_line(getattr(err, "orig", err))
    return DatabaseError(
        f"cannot use database {safe_url(url)}: {reason} "
        "(check TMAPS_DB_URL and that the server is running)"
    )


def main_engine(url: str | None = None) -> Engine:
    """Engine of the main database, checked to be at this release's schema revision.

    The check is made on the first use of a URL in a process (a new database
    gets its tables then, stamped with the newest revision), not per session.

    Parameters
    ----------
    url : str, optional
        Database URL; default: the configured ``TMAPS_DB_URL``.

    Raises
    ------
    tmlib.migrations.SchemaRevisionError
        When the database is at another revision (``tm_admin upgrade``).
    """
    url = url or load_settings().db_url
    engine = get_engine(url)
    if url not in _ready:
        try:
            _check_or_create_main(engine)
        except exc.OperationalError as err:
            raise _connect_error(url, err) from err
        _ready.add(url)
    return engine


def _check_or_create_main(engine: Engine) -> None:
    from tmlib import migrations

    with engine.connect() as conn:
        if migrations.check_main(conn):
            return
    with engine.begin() as conn:
        migrations.lock_for_schema_change(conn, "the main database")
        if migrations.check_main(conn):  # another process made it meanwhile
            return
        MainModel.metadata.create_all(conn)
        migrations.stamp(conn, migrations.MAIN_HEAD)


def experiment_schema(experiment_id: int) -> str:
    """Name of the PostgreSQL schema of an experiment."""
    return f"experiment_{int(experiment_id)}"


def experiment_db_path(location: str | os.PathLike) -> Path:
    """Path of the SQLite file of the experiment whose directory is `location`."""
    return Path(location) / "experiment.db"


def experiment_location(experiment_id: int, url: str | None = None) -> Path:
    """The experiment's directory (``ExperimentReference.location``).

    Raises
    ------
    NotFoundError
        When the experiment does not exist.
    """
    from tmlib.models.main import ExperimentReference

    with Session(main_engine(url)) as session:
        ref = session.get(ExperimentReference, experiment_id)
        if ref is None:
            raise NotFoundError(f"experiment {experiment_id} does not exist")
        return Path(ref.location)


def _gone(experiment_id: int) -> NotFoundError:
    return NotFoundError(f"experiment {experiment_id} does not exist (any more)")


def _file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of a file; None if there is none."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


def _sqlite_file_engine(path: Path, create: bool = False) -> Engine:
    """An engine on an experiment's SQLite file, which it never creates unless `create`.

    SQLite creates a missing file on connect; opened with ``mode=rw`` it fails
    instead, so a reader that meets a deleted experiment cannot bring it back.
    """
    uri = f"file:{quote(os.path.abspath(path))}"
    mode = "rwc" if create else "rw"
    url = URL.create("sqlite", database=uri, query={"mode": mode, "uri": "true"})
    engine = sa.create_engine(url)
    _configure_sqlite(engine)
    return engine


@dataclass(frozen=True)
class _Cached:
    """An experiment engine and what it was made for.

    On SQLite, `identity` is the (device, inode) of the experiment's file when
    the engine was made; a file that is gone or another one at the same path
    is never served by it.
    """

    engine: Engine
    path: Path | None = None
    identity: tuple[int, int] | None = None

    def current(self) -> bool:
        return self.path is None or _file_identity(self.path) == self.identity


def forget_experiment_engine(experiment_id: int, url: str | None = None) -> None:
    """Drop this process's engine of an experiment (and close its pooled connections)."""
    url = url or load_settings().db_url
    with _lock:
        cached = _experiment_engines.pop((url, int(experiment_id)), None)
    if cached is not None and cached.path is not None:
        cached.engine.dispose()


def experiment_engine(experiment_id: int, url: str | None = None) -> Engine:
    """Engine for the tables of one experiment, made on first use in a process.

    It never creates the experiment's schema, file or tables (only
    :func:`new_experiment_database` does); it checks once that they are at
    this release's schema revision. A cached SQLite engine is checked on every call against the file
    it was made for (one ``stat``): when the file is gone or is another one it
    is dropped. On PostgreSQL the schema's name is the identity: ids are never
    reused and nothing but :func:`new_experiment_database` creates a schema,
    so a cached engine can only meet its own experiment or none; queries on a
    dropped schema fail, and :class:`ExperimentSession` then answers
    NotFoundError after a look at the reference.

    Raises
    ------
    NotFoundError
        When no experiment reference with that id exists, or its tables are
        gone (the experiment is being deleted).
    tmlib.migrations.SchemaRevisionError
        When its tables are at another revision (``tm_admin upgrade``).
    """
    url = url or load_settings().db_url
    key = (url, int(experiment_id))
    cached = _experiment_engines.get(key)
    if cached is not None:
        if cached.current():
            return cached.engine
        forget_experiment_engine(experiment_id, url)
    base = main_engine(url)
    location = experiment_location(experiment_id, url)
    if base.dialect.name == "postgresql":
        schema = experiment_schema(experiment_id)
        cached = _Cached(base.execution_options(schema_translate_map={None: schema}))
    else:
        path = experiment_db_path(location)
        identity = _file_identity(path)
        if identity is None:
            raise _gone(experiment_id)
        cached = _Cached(_sqlite_file_engine(path), path, identity)
    try:
        with cached.engine.begin() as conn:
            if base.dialect.name == "postgresql" and not _schema_exists(conn, schema):
                raise _gone(experiment_id)
            check_experiment(conn, experiment_id, schema if cached.path is None else None)
    except exc.DBAPIError as err:
        if cached.path is not None:
            cached.engine.dispose()
        if not _reference_exists(url, experiment_id) or not cached.current():
            raise _gone(experiment_id) from err
        raise
    except (NotFoundError, SchemaRevisionError):
        if cached.path is not None:
            cached.engine.dispose()
        raise
    with _lock:
        kept = _experiment_engines.setdefault(key, cached)
    if kept is not cached and cached.path is not None:  # another thread was faster
        cached.engine.dispose()
    return kept.engine


def _schema_exists(conn: sa.Connection, schema: str) -> bool:
    query = sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s")
    return conn.execute(query, {"s": schema}).first() is not None


def _reference_exists(url: str, experiment_id: int) -> bool:
    try:
        experiment_location(experiment_id, url)
    except NotFoundError:
        return False
    return True


@contextlib.contextmanager
def new_experiment_database(
    experiment_id: int, location: str | os.PathLike, main_connection: sa.Connection
) -> Iterator[sa.Connection]:
    """Create the tables of a new experiment; yields a connection to them in a transaction.

    The only place that makes an experiment's schema or SQLite file. On
    PostgreSQL the schema is made in `main_connection`'s transaction, so it
    commits with the experiment's reference (or not at all); on SQLite the
    file ``<location>/experiment.db`` is made and committed when the block
    ends (the caller removes `location` if its own commit fails).
    """
    if main_connection.dialect.name == "postgresql":
        schema = experiment_schema(experiment_id)
        main_connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        conn = main_connection.execution_options(schema_translate_map={None: schema})
        ExperimentModel.metadata.create_all(conn)
        stamp(conn, EXPERIMENT_HEAD, schema)
        yield conn
        return
    engine = _sqlite_file_engine(experiment_db_path(location), create=True)
    try:
        with engine.begin() as conn:
            ExperimentModel.metadata.create_all(conn)
            stamp(conn, EXPERIMENT_HEAD)
            yield conn
    finally:
        engine.dispose()


def experiment_storage_taken(
    experiment_id: int, location: str | os.PathLike, main_connection: sa.Connection
) -> bool:
    """Whether a directory or schema of that experiment id exists already (a leftover)."""
    if os.path.lexists(location):
        return True
    if main_connection.dialect.name == "postgresql":
        return _schema_exists(main_connection, experiment_schema(experiment_id))
    return False


def drop_experiment_tables(experiment_id: int, location: str, url: str | None = None) -> None:
    """Remove an experiment's tables: its schema (PostgreSQL) or its SQLite file in `location`."""
    url = url or load_settings().db_url
    forget_experiment_engine(experiment_id, url)
    base = main_engine(url)
    if base.dialect.name == "postgresql":
        with base.begin() as conn:
            conn.exec_driver_sql(
                f'DROP SCHEMA IF EXISTS "{experiment_schema(experiment_id)}" CASCADE'
            )
    else:
        path = experiment_db_path(location)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


class _SessionContext:
    """Context manager: yields a session, commits on success, rolls back on error."""

    def __init__(self) -> None:
        self._session: Session | None = None

    def _engine(self) -> Engine:
        raise NotImplementedError

    def __enter__(self) -> Session:
        self._session = Session(self._engine(), expire_on_commit=False)
        return self._session

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._session is not None
        try:
            if exc_type is None:
                self._session.commit()
            else:
                self._session.rollback()
        finally:
            self._session.close()
            self._session = None


class MainSession(_SessionContext):
    """Session on the main database.

    Examples
    --------
    >>> with MainSession() as session:  # doctest: +SKIP
    ...     users = session.scalars(sa.select(User)).all()
    """

    def __init__(self, db_url: str | None = None) -> None:
        super().__init__()
        self.db_url = db_url or load_settings().db_url

    def _engine(self) -> Engine:
        try:
            return main_engine(self.db_url)
        except exc.DBAPIError as err:
            raise _connect_error(self.db_url, err) from err


class ExperimentSession(_SessionContext):
    """Session on the tables of one experiment.

    Parameters
    ----------
    experiment_id : int
        Id of the experiment (its ``ExperimentReference``).
    db_url : str, optional
        Main database URL; default: the configured one.
    """

    def __init__(self, experiment_id: int, db_url: str | None = None) -> None:
        super().__init__()
        self.experiment_id = int(experiment_id)
        self.db_url = db_url or load_settings().db_url

    def _engine(self) -> Engine:
        try:
            return experiment_engine(self.experiment_id, self.db_url)
        except exc.DBAPIError as err:
            raise _connect_error(self.db_url, err) from err

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            super().__exit__(exc_type, exc_value, traceback)
        except Exception as err:  # the commit failed
            self._raise_if_vanished(err)
            raise
        if exc_value is not None:
            self._raise_if_vanished(exc_value)

    def _raise_if_vanished(self, err: BaseException) -> None:
        """NotFoundError in place of `err` when the experiment was deleted meanwhile.

        A missing table, schema, file or directory is what a request meets
        when the experiment is deleted under it; it is asked only then (one
        query), so the sessions of existing experiments cost nothing more.
        """
        if not isinstance(err, Exception) or isinstance(err, UserError):
            return
        cached = _experiment_engines.get((self.db_url, self.experiment_id))
        try:
            exists = _reference_exists(self.db_url, self.experiment_id)
        except Exception:  # e.g. the database is unreachable: `err` says more
            return
        if exists and (cached is None or cached.current()):
            return
        forget_experiment_engine(self.experiment_id, self.db_url)
        raise _gone(self.experiment_id) from err
