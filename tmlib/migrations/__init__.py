"""Schema revisions of the main database and of every experiment's tables.

Two Alembic histories, one per kind of database:

``main``
    The main database (users, experiment references, submissions, tasks);
    its version table ``alembic_version`` is beside those tables.
``experiment``
    The tables of one experiment: its SQLite file, or its PostgreSQL schema
    ``experiment_<id>`` (the version table is in that schema).

A new database is made at the newest revision (``create_all`` of the models,
then stamped), not by running every migration. A database at an older
revision is upgraded by ``tm_admin upgrade`` only (:mod:`tmlib.migrations.upgrade`);
every program that meets one stops with :class:`SchemaRevisionError`, which
names that command. The revision is read once per engine and process (see
:mod:`tmlib.models.session`), never per request.

Nothing here imports Alembic: programs that only check a revision start fast.

Adding a migration (developers): change the models, then write
``tmlib/migrations/<kind>/versions/<kind>_NNNN_<what>.py`` with
``down_revision`` the previous head (``alembic.command.revision`` with
``Config().set_main_option("script_location", ...)`` writes the file), and
set :data:`MAIN_HEAD` or :data:`EXPERIMENT_HEAD` to its revision.
``tests/test_migrations.py`` checks that a database upgraded from release 0.1
has the tables, columns and indexes the models create.
"""

from __future__ import annotations

import sqlalchemy as sa

from tmlib.errors import DatabaseError

#: newest revision of the main database's history
MAIN_HEAD = "main_0001"
#: newest revision of an experiment's history
EXPERIMENT_HEAD = "experiment_0002"
#: what the messages tell users to run
UPGRADE_COMMAND = "tm_admin upgrade"
#: Alembic's version table, as Alembic makes it
VERSION_TABLE = "alembic_version"
#: a table every main database has had since the first release
_MAIN_MARKER = "users"


class SchemaRevisionError(DatabaseError):
    """A database is at another schema revision than this release needs.

    The server answers it with 503 (Service Unavailable): the request is fine,
    the installation is not ready until ``tm_admin upgrade`` has run.
    """

    http_status = 503


def version_table(schema: str | None = None) -> sa.Table:
    """Alembic's version table (in `schema`, if given), for reading and stamping."""
    return sa.Table(
        VERSION_TABLE,
        sa.MetaData(),
        sa.Column("version_num", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
        schema=schema,
    )


def _has_table(conn: sa.Connection, name: str, schema: str | None) -> bool:
    if conn.dialect.name == "postgresql":
        qualified = f'"{schema}".{name}' if schema else name
        found = conn.execute(sa.text("SELECT to_regclass(:n)"), {"n": qualified}).scalar()
        return found is not None
    query = sa.text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :n")
    return conn.execute(query, {"n": name}).first() is not None


def read_revision(conn: sa.Connection, schema: str | None = None) -> str | None:
    """The revision a database is stamped with; None if it has no version table (or row)."""
    if not _has_table(conn, VERSION_TABLE, schema):
        return None
    table = f'"{schema}".{VERSION_TABLE}' if schema else VERSION_TABLE
    return conn.execute(sa.text(f"SELECT version_num FROM {table}")).scalar()


def main_is_empty(conn: sa.Connection) -> bool:
    """Whether the main database has none of our tables yet (a new installation)."""
    return not _has_table(conn, _MAIN_MARKER, None) and read_revision(conn) is None


def stamp(conn: sa.Connection, revision: str, schema: str | None = None) -> None:
    """Record `revision` in the version table (made if missing), in `conn`'s transaction."""
    table = version_table(schema)
    if _has_table(conn, VERSION_TABLE, schema):
        conn.execute(table.delete())
    else:
        table.create(conn)
    conn.execute(table.insert().values(version_num=revision))


def lock_for_schema_change(conn: sa.Connection, key: str) -> None:
    """Take the lock that serialises schema changes of one database (until commit).

    SQLite: the file's write lock (``BEGIN IMMEDIATE``), so that what is read
    next is what is changed. PostgreSQL: an advisory lock named by `key`.
    Call it first in a transaction.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"tmaps:{key}"})
        return
    dbapi_connection = conn.connection.dbapi_connection
    if not dbapi_connection.in_transaction:  # type: ignore[union-attr]
        dbapi_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]


def _number(revision: str) -> int | None:
    """The sequence number of a revision named ``<kind>_NNNN``; None for another name."""
    tail = revision.rpartition("_")[2]
    return int(tail) if tail.isdigit() else None


def revision_message(what: str, found: str | None, needed: str) -> str:
    """One line: which database is at which revision, and what to do."""
    if found is None:
        return (
            f"{what} has no schema revision (made by release 0.1), this release needs "
            f"{needed}: run `{UPGRADE_COMMAND}`"
        )
    number, newest = _number(found), _number(needed)
    if number is None or newest is None or number > newest:
        return (
            f"{what} is at schema revision {found}, which this release ({needed}) does not "
            "know: it was made by a newer release; use that one (there are no downgrades)"
        )
    return (
        f"{what} is at schema revision {found}, this release needs {needed}: "
        f"run `{UPGRADE_COMMAND}`"
    )


def check_main(conn: sa.Connection) -> bool:
    """Raise :class:`SchemaRevisionError` unless the main database is at :data:`MAIN_HEAD`.

    Returns
    -------
    bool
        False if the database has none of our tables yet (to be created).
    """
    found = read_revision(conn)
    if found == MAIN_HEAD:
        return True
    if found is None and not _has_table(conn, _MAIN_MARKER, None):
        return False
    raise SchemaRevisionError(revision_message("the main database", found, MAIN_HEAD))


def check_experiment(conn: sa.Connection, experiment_id: int, schema: str | None = None) -> None:
    """Raise :class:`SchemaRevisionError` unless an experiment is at :data:`EXPERIMENT_HEAD`."""
    found = read_revision(conn, schema)
    if found != EXPERIMENT_HEAD:
        what = f"experiment {experiment_id}'s database"
        raise SchemaRevisionError(revision_message(what, found, EXPERIMENT_HEAD))
