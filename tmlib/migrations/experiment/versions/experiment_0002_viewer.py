"""The viewer's additions: users' selections of objects, and the experiment's pixel size.

Adds the tables ``selections`` and ``selection_members`` and the column
``experiment.pixel_size_um`` (micrometres per pixel, None until metaconfig
runs again on metadata that tell it).
"""

import sqlalchemy as sa
from alembic import op

from tmlib.migrations.ops import column_names, target_schema

revision = "experiment_0002"
down_revision = "experiment_0001"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def tables(metadata: sa.MetaData) -> list[sa.Table]:
    """The tables this revision adds (frozen: never change them, add a migration)."""
    # the keys the new tables refer to (those tables exist; they are not made here)
    sa.Table("mapobject_types", metadata, sa.Column("id", sa.Integer(), primary_key=True))
    sa.Table("mapobjects", metadata, sa.Column("id", BIG_ID, primary_key=True))
    selections = sa.Table(
        "selections",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("mapobject_type_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("color", sa.String(length=7), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.UniqueConstraint("user_id", "mapobject_type_id", "name"),
        sa.ForeignKeyConstraint(["mapobject_type_id"], ["mapobject_types.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Index("ix_selections_user_id", selections.c["user_id"])
    sa.Index("ix_selections_mapobject_type_id", selections.c["mapobject_type_id"])
    members = sa.Table(
        "selection_members",
        metadata,
        sa.Column("selection_id", sa.Integer(), nullable=False),
        sa.Column("mapobject_id", BIG_ID, nullable=False),
        sa.Column("x", sa.Float(), nullable=False),
        sa.Column("y", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["selection_id"], ["selections.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["mapobject_id"], ["mapobjects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("selection_id", "mapobject_id"),
    )
    sa.Index("ix_selection_members_mapobject_id", members.c["mapobject_id"])
    return [selections, members]


def upgrade() -> None:
    conn = op.get_bind()
    metadata = sa.MetaData()
    new = tables(metadata)
    existing = set(sa.inspect(conn).get_table_names(schema=target_schema()))
    metadata.create_all(conn, tables=[t for t in new if t.name not in existing], checkfirst=False)
    if "pixel_size_um" not in column_names(conn, "experiment"):
        column = sa.Column("pixel_size_um", sa.Float(), nullable=True)
        op.add_column("experiment", column, schema=target_schema())


def downgrade() -> None:
    raise NotImplementedError("there are no downgrades")
