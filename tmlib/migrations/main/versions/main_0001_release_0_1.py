"""Release 0.1: the main database as that release made it (the baseline).

A database stamped with no revision was made by release 0.1 or before: its
missing tables are made (e.g. ``login_failures``); on SQLite, tables whose
ids were not AUTOINCREMENT yet are rebuilt (a deleted newest id would be
handed out again); ``users.token_epoch`` is added where missing, with a
random epoch per user (tokens issued before carry none and stop working).
A new database gets the tables as they were in release 0.1.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from tmlib.migrations.ops import (
    column_names,
    create_missing_tables,
    sqlite_rebuild,
    sqlite_table_sql,
)

revision = "main_0001"
down_revision = None
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
#: a random 31-bit token epoch per row
RANDOM_EPOCH = {
    "sqlite": "abs(random()) % 2147483648",
    "postgresql": "floor(random() * 2147483647)::integer",
}


def tables(metadata: sa.MetaData) -> None:
    """The tables of release 0.1 (frozen: never change them, add a migration)."""
    sa.Table(
        "login_failures",
        metadata,
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.Float(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "value"),
    )
    sa.Index("ix_login_failures_window_start", metadata.tables["login_failures"].c["window_start"])
    sa.Table(
        "users",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("token_epoch", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
        sa.UniqueConstraint("email"),
        sqlite_autoincrement=True,
    )
    sa.Table(
        "experiment_references",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("root_directory", sa.String(length=4096), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.UniqueConstraint("name", "user_id"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    sa.Index("ix_experiment_references_name", metadata.tables["experiment_references"].c["name"])
    sa.Index(
        "ix_experiment_references_user_id", metadata.tables["experiment_references"].c["user_id"]
    )
    sa.Table(
        "experiment_shares",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("write_access", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("experiment_id", "user_id"),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["experiment_references.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    sa.Index(
        "ix_experiment_shares_experiment_id",
        metadata.tables["experiment_shares"].c["experiment_id"],
    )
    sa.Index("ix_experiment_shares_user_id", metadata.tables["experiment_shares"].c["user_id"])
    sa.Table(
        "submissions",
        metadata,
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("program", sa.String(length=50), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("top_task_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["experiment_references.id"], ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    sa.Index("ix_submissions_experiment_id", metadata.tables["submissions"].c["experiment_id"])
    sa.Index("ix_submissions_program", metadata.tables["submissions"].c["program"])
    sa.Index("ix_submissions_user_id", metadata.tables["submissions"].c["user_id"])
    sa.Table(
        "tasks",
        metadata,
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("exitcode", sa.Integer(), nullable=True),
        sa.Column("time", sa.Float(), nullable=True),
        sa.Column("cpu_time", sa.Float(), nullable=True),
        sa.Column("memory", sa.Float(), nullable=True),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column("is_collection", sa.Boolean(), nullable=False),
        sa.Column("parent_id", BIG_ID, nullable=True),
        sa.Column("submission_id", BIG_ID, nullable=False),
        sa.Column("data", JSON_TYPE, nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(["parent_id"], ["tasks.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    sa.Index("ix_tasks_name", metadata.tables["tasks"].c["name"])
    sa.Index("ix_tasks_parent_id", metadata.tables["tasks"].c["parent_id"])
    sa.Index("ix_tasks_state", metadata.tables["tasks"].c["state"])
    sa.Index("ix_tasks_submission_id", metadata.tables["tasks"].c["submission_id"])


def upgrade() -> None:
    conn = op.get_bind()
    metadata = sa.MetaData()
    tables(metadata)
    create_missing_tables(conn, metadata)
    dialect = conn.dialect.name
    if dialect == "sqlite":
        for table in metadata.sorted_tables:
            lacks_epoch = table.name == "users" and "token_epoch" not in column_names(conn, "users")
            sql = sqlite_table_sql(conn, table.name).upper()
            if lacks_epoch or (
                table.dialect_options["sqlite"]["autoincrement"] and "AUTOINCREMENT" not in sql
            ):
                sqlite_rebuild(conn, table, fill={"token_epoch": RANDOM_EPOCH[dialect]})
    elif "token_epoch" not in column_names(conn, "users"):
        op.add_column(
            "users", sa.Column("token_epoch", sa.Integer(), nullable=False, server_default="0")
        )
        op.execute(f"UPDATE users SET token_epoch = {RANDOM_EPOCH[dialect]}")
        op.alter_column("users", "token_epoch", server_default=None)


def downgrade() -> None:
    raise NotImplementedError("there is nothing before release 0.1")
