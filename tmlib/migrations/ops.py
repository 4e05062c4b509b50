"""Operations the migration scripts share (they run inside ``tm_admin upgrade``'s transaction)."""

from __future__ import annotations

import sqlalchemy as sa


def target_schema() -> str | None:
    """Schema of the tables being migrated: ``experiment_<id>`` on PostgreSQL, else None."""
    from alembic import op

    return op.get_context().version_table_schema


def create_missing_tables(conn: sa.Connection, metadata: sa.MetaData) -> list[str]:
    """Create the tables of `metadata` (with their indexes) that the database lacks.

    Earlier releases made tables added to the models on the first use of a
    database, so an old database may lack any of them. `conn` maps the
    default schema to the experiment's (PostgreSQL), so the tables are made
    there; whether they exist is asked of that schema.
    """
    existing = set(sa.inspect(conn).get_table_names(schema=target_schema()))
    missing = [table for table in metadata.sorted_tables if table.name not in existing]
    metadata.create_all(conn, tables=missing, checkfirst=False)
    return [table.name for table in missing]


def column_names(conn: sa.Connection, table: str) -> set[str]:
    """Names of the columns `table` has in the database."""
    columns = sa.inspect(conn).get_columns(table, schema=target_schema())
    return {column["name"] for column in columns}


def sqlite_table_sql(conn: sa.Connection, table: str) -> str:
    """The ``CREATE TABLE`` statement SQLite keeps for `table` ('' if there is none)."""
    query = sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :n")
    return conn.execute(query, {"n": table}).scalar() or ""


def sqlite_rebuild(
    conn: sa.Connection, table: sa.Table, fill: dict[str, str] | None = None
) -> None:
    """Replace a SQLite table by one made from `table`'s definition, keeping its rows.

    SQLite cannot change a table's key or options in place. Columns the old
    table lacks take the SQL expressions in `fill` (or their default). Run
    with foreign keys off (``tm_admin upgrade`` does): dropping a table they
    point to would otherwise delete the rows that point to it.
    """
    from sqlalchemy.schema import CreateIndex, CreateTable

    fill = fill or {}
    new = f"{table.name}__rebuilt"
    ddl = str(CreateTable(table).compile(dialect=conn.dialect)).strip()
    head = f"CREATE TABLE {table.name} ("
    assert ddl.startswith(head), ddl
    conn.exec_driver_sql(f'CREATE TABLE "{new}" (' + ddl[len(head) :])
    present = {row[1] for row in conn.exec_driver_sql(f'PRAGMA table_info("{table.name}")')}
    names = [c.name for c in table.columns if c.name in present or c.name in fill]
    values = [f'"{name}"' if name in present else fill[name] for name in names]
    conn.exec_driver_sql(
        f'INSERT INTO "{new}" ({", ".join(f"{chr(34)}{n}{chr(34)}" for n in names)}) '
        f'SELECT {", ".join(values)} FROM "{table.name}"'
    )
    conn.exec_driver_sql(f'DROP TABLE "{table.name}"')
    conn.exec_driver_sql(f'ALTER TABLE "{new}" RENAME TO "{table.name}"')
    for index in table.indexes:
        conn.execute(CreateIndex(index))
