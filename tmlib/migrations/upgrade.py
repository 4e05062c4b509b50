"""Bring the main database and every experiment's tables to this release's revisions.

``tm_admin upgrade`` runs :func:`upgrade_all`. The main database goes first,
then each experiment, each in a transaction of its own that also stamps its new
revision: a run that is killed leaves every database either at its old
revision or at the new one, and the next run skips those done. A lock per
database (SQLite's write lock, a PostgreSQL advisory lock) keeps two runs, or
a run and a new experiment, from changing the same tables at once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tmlib.errors import DatabaseError
from tmlib.migrations import (
    EXPERIMENT_HEAD,
    MAIN_HEAD,
    SchemaRevisionError,
    lock_for_schema_change,
    main_is_empty,
    read_revision,
    revision_message,
    stamp,
)

HERE = Path(__file__).parent
#: history name -> newest revision this release knows
HEADS = {"main": MAIN_HEAD, "experiment": EXPERIMENT_HEAD}


@dataclass(frozen=True)
class Outcome:
    """What the upgrade of one database did.

    ``before`` is None for a database without a revision (release 0.1);
    ``error`` is set when it failed (the database is unchanged).
    """

    what: str
    before: str | None
    after: str | None
    error: str | None = None
    skipped: str | None = None

    @property
    def changed(self) -> bool:
        return self.error is None and self.skipped is None and self.before != self.after

    def line(self) -> str:
        """One line for the terminal."""
        if self.error is not None:
            return f"{self.what}: failed, left at {self.before or 'release 0.1'}: {self.error}"
        if self.skipped is not None:
            return f"{self.what}: skipped ({self.skipped})"
        if not self.changed:
            return f"{self.what}: at {self.after}, nothing to do"
        return f"{self.what}: upgraded from {self.before or 'release 0.1'} to {self.after}"


def alembic_config(kind: str, **attributes: Any) -> Any:
    """An Alembic ``Config`` for history `kind` (``main`` or ``experiment``), no ini file."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE / kind))
    config.attributes.update(attributes, kind=kind)
    return config


def script_head(kind: str) -> str:
    """The newest revision of history `kind` among the migration scripts."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(kind)).get_current_head()
    assert head is not None
    return head


def run_env(context: Any) -> None:
    """Body of both ``env.py``: run the migrations on the connection ``tm_admin`` passes.

    Without one (``alembic`` run by hand) it connects to ``TMAPS_DB_URL``; that
    works for the main database only.
    """
    import tmlib.models as tm

    attributes = context.config.attributes
    kind = attributes.get("kind", "main")
    metadata = tm.MainModel.metadata if kind == "main" else tm.ExperimentModel.metadata
    connection = attributes.get("connection")
    if connection is None:
        from tmlib.models.session import get_engine

        if kind != "main":
            raise DatabaseError("experiment tables are upgraded by tm_admin upgrade only")
        with get_engine(os.environ["TMAPS_DB_URL"]).connect() as conn:
            _configure_and_run(context, conn, metadata, None)
            conn.commit()
        return
    _configure_and_run(context, connection, metadata, attributes.get("schema"))


def _configure_and_run(
    context: Any, conn: sa.Connection, metadata: sa.MetaData, schema: Any
) -> None:
    context.configure(
        connection=conn,
        target_metadata=metadata,
        version_table_schema=schema,
        transactional_ddl=True,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


@contextlib.contextmanager
def _schema_change(
    engine: Engine, key: str, translate: str | None = None
) -> Iterator[sa.Connection]:
    """A connection in a locked transaction; SQLite's foreign keys off meanwhile.

    Foreign keys are checked (``PRAGMA foreign_key_check``) before the commit.
    """
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if translate is not None:
            conn = conn.execution_options(schema_translate_map={None: translate})
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction
            conn.commit()
        try:
            with conn.begin():
                lock_for_schema_change(conn, key)
                yield conn
                if sqlite and conn.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise DatabaseError(f"the upgrade of {key} broke its foreign keys")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def _migrate(conn: sa.Connection, kind: str, what: str, schema: str | None) -> Outcome:
    """Upgrade the database of `conn` (in its transaction) to this release's head."""
    from alembic import command

    before = read_revision(conn, schema)
    head = HEADS[kind]
    if before == head:
        return Outcome(what, before, before)
    if before is not None and before not in _known(kind):
        raise SchemaRevisionError(revision_message(what, before, head))
    command.upgrade(alembic_config(kind, connection=conn, schema=schema), head)
    after = read_revision(conn, schema)
    if after != head:
        raise DatabaseError(f"{what} ended at revision {after}, not {head}")
    return Outcome(what, before, after)


def _known(kind: str) -> set[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(kind))
    return {revision.revision for revision in script.walk_revisions()}


def upgrade_main(engine: Engine) -> Outcome:
    """Upgrade the main database; a new (empty) one is made at the head revision."""
    import tmlib.models as tm

    with _schema_change(engine, "the main database") as conn:
        if main_is_empty(conn):
            tm.MainModel.metadata.create_all(conn)
            stamp(conn, MAIN_HEAD)
            return Outcome("main database", MAIN_HEAD, MAIN_HEAD)
        return _migrate(conn, "main", "main database", None)


def upgrade_experiment(engine: Engine, experiment_id: int, root_directory: str) -> Outcome:
    """Upgrade the tables of one experiment (its SQLite file or its PostgreSQL schema).

    Parameters
    ----------
    engine
        Engine of the main database.
    experiment_id, root_directory
        From the experiment's reference.
    """
    from tmlib.models.session import (
        _schema_exists,
        _sqlite_file_engine,
        experiment_db_path,
        experiment_schema,
    )

    what = f"experiment {experiment_id}"
    if engine.dialect.name == "postgresql":
        schema = experiment_schema(experiment_id)
        with engine.connect() as conn:
            if not _schema_exists(conn, schema):
                return Outcome(what, None, None, skipped=f"its schema {schema} is missing")
        with _schema_change(engine, schema, translate=schema) as conn:
            return _migrate(conn, "experiment", what, schema)
    path = experiment_db_path(os.path.join(root_directory, f"experiment_{experiment_id}"))
    if not path.exists():
        return Outcome(what, None, None, skipped=f"its database {path} is missing")
    file_engine = _sqlite_file_engine(path)
    try:
        with _schema_change(file_engine, str(path)) as conn:
            return _migrate(conn, "experiment", what, None)
    finally:
        file_engine.dispose()


def experiments(engine: Engine) -> list[tuple[int, str]]:
    """(id, root directory) of every experiment the main database references."""
    query = sa.text("SELECT id, root_directory FROM experiment_references ORDER BY id")
    with engine.connect() as conn:
        return [(int(row[0]), str(row[1])) for row in conn.execute(query)]


def upgrade_all(
    url: str, report: Callable[[Outcome], None] = lambda _outcome: None
) -> list[Outcome]:
    """Upgrade the main database at `url`, then every experiment; `report` hears each outcome.

    An experiment that fails is left as it was and the others go on; the main
    database failing stops the run (nothing else can be read before it).
    """
    from tmlib.models.session import dispose_engines, get_engine

    engine = get_engine(url)
    outcomes = [upgrade_main(engine)]
    report(outcomes[0])
    for experiment_id, root in experiments(engine):
        try:
            outcome = upgrade_experiment(engine, experiment_id, root)
        except Exception as err:  # reported; the others go on
            before = _revision_or_none(engine, experiment_id, root)
            reason = str(getattr(err, "orig", err)).strip().splitlines()
            outcome = Outcome(
                f"experiment {experiment_id}",
                before,
                None,
                error=reason[0] if reason else repr(err),
            )
        outcomes.append(outcome)
        report(outcome)
    dispose_engines()  # engines of this process made before the upgrade cached old revisions
    return outcomes


def _revision_or_none(engine: Engine, experiment_id: int, root: str) -> str | None:
    try:
        return experiment_revision(engine, experiment_id, root)
    except Exception:  # only for the message
        return None


def experiment_revision(engine: Engine, experiment_id: int, root_directory: str) -> str | None:
    """The revision an experiment's tables are stamped with (None: release 0.1)."""
    from tmlib.models.session import _sqlite_file_engine, experiment_db_path, experiment_schema

    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            return read_revision(conn, experiment_schema(experiment_id))
    path = experiment_db_path(os.path.join(root_directory, f"experiment_{experiment_id}"))
    file_engine = _sqlite_file_engine(path)
    try:
        with file_engine.connect() as conn:
            return read_revision(conn)
    finally:
        file_engine.dispose()


def pending(url: str) -> list[tuple[str, str | None, str]]:
    """(what, revision, head) of every database that needs an upgrade; for ``--check``."""
    from tmlib.models.session import get_engine

    engine = get_engine(url)
    with engine.connect() as conn:
        if main_is_empty(conn):  # a new installation: made at the head on first use
            return []
        found = read_revision(conn)
    todo = [] if found == MAIN_HEAD else [("main database", found, MAIN_HEAD)]
    for experiment_id, root in experiments(engine):
        try:
            found = experiment_revision(engine, experiment_id, root)
        except sa.exc.OperationalError:  # its file is gone (being deleted): skipped
            continue
        if (
            found is None
            and engine.dialect.name == "postgresql"
            and not _has_schema(engine, experiment_id)
        ):
            continue  # as upgrade_experiment does
        if found != EXPERIMENT_HEAD:
            todo.append((f"experiment {experiment_id}", found, EXPERIMENT_HEAD))
    return todo


def _has_schema(engine: Engine, experiment_id: int) -> bool:
    from tmlib.models.session import _schema_exists, experiment_schema

    with engine.connect() as conn:
        return _schema_exists(conn, experiment_schema(experiment_id))
