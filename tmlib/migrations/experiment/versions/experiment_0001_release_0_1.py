"""Release 0.1: an experiment's tables as that release made them (the baseline).

An experiment stamped with no revision was made by release 0.1 or before;
tables added to the models after it was made are made now (release 0.1
made them on the experiment's first use in each process).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from tmlib.migrations.ops import create_missing_tables

revision = "experiment_0001"
down_revision = None
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def tables(metadata: sa.MetaData) -> None:
    """The tables of release 0.1 (frozen: never change them, add a migration)."""
    sa.Table(
        "experiment",
        metadata,
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("location", sa.String(length=4096), nullable=False),
        sa.Column("microscope_type", sa.String(length=50), nullable=False),
        sa.Column("workflow_type", sa.String(length=50), nullable=False),
        sa.Column("plate_format", sa.Integer(), nullable=False),
        sa.Column("plate_acquisition_mode", sa.String(length=20), nullable=False),
        sa.Column("pyramid_height", sa.Integer(), nullable=True),
        sa.Column("pyramid_width", sa.Integer(), nullable=True),
        sa.Column("pyramid_depth", sa.Integer(), nullable=True),
        sa.Column("zoom_factor", sa.Integer(), nullable=False),
        sa.Column("vertical_site_displacement", sa.Integer(), nullable=False),
        sa.Column("horizontal_site_displacement", sa.Integer(), nullable=False),
        sa.Column("well_spacer_size", sa.Integer(), nullable=False),
        sa.CheckConstraint("plate_format IN (1, 96, 384)", name="plate_format_valid"),
        sa.CheckConstraint(
            "plate_acquisition_mode IN ('basic', 'multiplexing')", name="acquisition_mode_valid"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Table(
        "channels",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("wavelength", sa.String(length=255), nullable=False),
        sa.Column("bit_depth", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.UniqueConstraint("name"),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiment.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Table(
        "cycles",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.UniqueConstraint("index"),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiment.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Table(
        "mapobject_types",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("ref_type", sa.String(length=10), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.UniqueConstraint("name"),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiment.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Table(
        "plates",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.UniqueConstraint("name"),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiment.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Table(
        "acquisitions",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("plate_id", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.UniqueConstraint("name", "plate_id"),
        sa.ForeignKeyConstraint(["plate_id"], ["plates.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Index("ix_acquisitions_plate_id", metadata.tables["acquisitions"].c["plate_id"])
    sa.Table(
        "channel_layers",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tpoint", sa.Integer(), nullable=False),
        sa.Column("zplane", sa.Integer(), nullable=False),
        sa.Column("min_intensity", sa.Float(), nullable=True),
        sa.Column("max_intensity", sa.Float(), nullable=True),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.UniqueConstraint("zplane", "tpoint", "channel_id"),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Index("ix_channel_layers_channel_id", metadata.tables["channel_layers"].c["channel_id"])
    sa.Table(
        "features",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("is_aggregate", sa.Boolean(), nullable=False),
        sa.Column("mapobject_type_id", sa.Integer(), nullable=False),
        sa.UniqueConstraint("name", "mapobject_type_id"),
        sa.ForeignKeyConstraint(["mapobject_type_id"], ["mapobject_types.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Index("ix_features_mapobject_type_id", metadata.tables["features"].c["mapobject_type_id"])
    sa.Table(
        "illumstats_files",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.UniqueConstraint("channel_id"),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Table(
        "mapobjects",
        metadata,
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("partition_key", sa.Integer(), nullable=False),
        sa.Column("mapobject_type_id", sa.Integer(), nullable=False),
        sa.Column("ref_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["mapobject_type_id"], ["mapobject_types.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Index(
        "ix_mapobjects_mapobject_type_id", metadata.tables["mapobjects"].c["mapobject_type_id"]
    )
    sa.Index("ix_mapobjects_partition_key", metadata.tables["mapobjects"].c["partition_key"])
    sa.Table(
        "segmentation_layers",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tpoint", sa.Integer(), nullable=True),
        sa.Column("zplane", sa.Integer(), nullable=True),
        sa.Column("polygon_thresh", sa.Integer(), nullable=True),
        sa.Column("centroid_thresh", sa.Integer(), nullable=True),
        sa.Column("mapobject_type_id", sa.Integer(), nullable=False),
        sa.UniqueConstraint("tpoint", "zplane", "mapobject_type_id"),
        sa.ForeignKeyConstraint(["mapobject_type_id"], ["mapobject_types.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Index(
        "ix_segmentation_layers_mapobject_type_id",
        metadata.tables["segmentation_layers"].c["mapobject_type_id"],
    )
    sa.Table(
        "tool_results",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("tool_name", sa.String(length=50), nullable=False),
        sa.Column("submission_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column("attributes", JSON_TYPE, nullable=True),
        sa.Column("mapobject_type_id", sa.Integer(), nullable=False),
        sa.UniqueConstraint("name", "mapobject_type_id"),
        sa.UniqueConstraint("submission_id"),
        sa.ForeignKeyConstraint(["mapobject_type_id"], ["mapobject_types.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Index(
        "ix_tool_results_mapobject_type_id", metadata.tables["tool_results"].c["mapobject_type_id"]
    )
    sa.Table(
        "wells",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=3), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("plate_id", sa.Integer(), nullable=False),
        sa.UniqueConstraint("name", "plate_id"),
        sa.ForeignKeyConstraint(["plate_id"], ["plates.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Index("ix_wells_plate_id", metadata.tables["wells"].c["plate_id"])
    sa.Table(
        "feature_values",
        metadata,
        sa.Column("mapobject_id", BIG_ID, nullable=False),
        sa.Column("tpoint", sa.Integer(), nullable=False),
        sa.Column("partition_key", sa.Integer(), nullable=False),
        sa.Column("values", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["mapobject_id"], ["mapobjects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("mapobject_id", "tpoint"),
    )
    sa.Index(
        "ix_feature_values_partition_key", metadata.tables["feature_values"].c["partition_key"]
    )
    sa.Table(
        "label_values",
        metadata,
        sa.Column("mapobject_id", BIG_ID, nullable=False),
        sa.Column("tpoint", sa.Integer(), nullable=False),
        sa.Column("partition_key", sa.Integer(), nullable=False),
        sa.Column("values", JSON_TYPE, nullable=False),
        sa.ForeignKeyConstraint(["mapobject_id"], ["mapobjects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("mapobject_id", "tpoint"),
    )
    sa.Index("ix_label_values_partition_key", metadata.tables["label_values"].c["partition_key"])
    sa.Table(
        "mapobject_segmentations",
        metadata,
        sa.Column("mapobject_id", BIG_ID, nullable=False),
        sa.Column("segmentation_layer_id", sa.Integer(), nullable=False),
        sa.Column("partition_key", sa.Integer(), nullable=False),
        sa.Column("geom_polygon", sa.LargeBinary(), nullable=True),
        sa.Column("geom_centroid", sa.LargeBinary(), nullable=False),
        sa.Column("label", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["mapobject_id"], ["mapobjects.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["segmentation_layer_id"], ["segmentation_layers.id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("mapobject_id", "segmentation_layer_id"),
    )
    sa.Index(
        "ix_mapobject_segmentations_partition_key",
        metadata.tables["mapobject_segmentations"].c["partition_key"],
    )
    sa.Table(
        "microscope_image_files",
        metadata,
        sa.Column("image_info", JSON_TYPE, nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=True),
        sa.Column("acquisition_id", sa.Integer(), nullable=False),
        sa.UniqueConstraint("name", "acquisition_id"),
        sa.ForeignKeyConstraint(["acquisition_id"], ["acquisitions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Index(
        "ix_microscope_image_files_acquisition_id",
        metadata.tables["microscope_image_files"].c["acquisition_id"],
    )
    sa.Table(
        "microscope_metadata_files",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("source", sa.String(length=300), nullable=True),
        sa.Column("acquisition_id", sa.Integer(), nullable=False),
        sa.UniqueConstraint("name", "acquisition_id"),
        sa.ForeignKeyConstraint(["acquisition_id"], ["acquisitions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Index(
        "ix_microscope_metadata_files_acquisition_id",
        metadata.tables["microscope_metadata_files"].c["acquisition_id"],
    )
    sa.Table(
        "plots",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("attributes", JSON_TYPE, nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["result_id"], ["tool_results.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Index("ix_plots_result_id", metadata.tables["plots"].c["result_id"])
    sa.Table(
        "sites",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("y", sa.Integer(), nullable=False),
        sa.Column("x", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("omitted", sa.Boolean(), nullable=False),
        sa.Column("top_residue", sa.Integer(), nullable=False),
        sa.Column("bottom_residue", sa.Integer(), nullable=False),
        sa.Column("left_residue", sa.Integer(), nullable=False),
        sa.Column("right_residue", sa.Integer(), nullable=False),
        sa.Column("well_id", sa.Integer(), nullable=False),
        sa.UniqueConstraint("x", "y", "well_id"),
        sa.ForeignKeyConstraint(["well_id"], ["wells.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Index("ix_sites_well_id", metadata.tables["sites"].c["well_id"])
    sa.Table(
        "channel_image_files",
        metadata,
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tpoint", sa.Integer(), nullable=False),
        sa.Column("zplane", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("acquisition_id", sa.Integer(), nullable=False),
        sa.Column("file_map", JSON_TYPE, nullable=False),
        sa.UniqueConstraint(
            "tpoint", "zplane", "site_id", "cycle_id", "channel_id", "acquisition_id"
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["cycle_id"], ["cycles.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["acquisition_id"], ["acquisitions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    sa.Index(
        "ix_channel_image_files_acquisition_id",
        metadata.tables["channel_image_files"].c["acquisition_id"],
    )
    sa.Index(
        "ix_channel_image_files_channel_id", metadata.tables["channel_image_files"].c["channel_id"]
    )
    sa.Index(
        "ix_channel_image_files_cycle_id", metadata.tables["channel_image_files"].c["cycle_id"]
    )
    sa.Index("ix_channel_image_files_site_id", metadata.tables["channel_image_files"].c["site_id"])
    sa.Table(
        "site_shifts",
        metadata,
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("cycle_id", sa.Integer(), nullable=False),
        sa.Column("y", sa.Integer(), nullable=False),
        sa.Column("x", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["cycle_id"], ["cycles.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("site_id", "cycle_id"),
    )


def upgrade() -> None:
    metadata = sa.MetaData()
    tables(metadata)
    create_missing_tables(op.get_bind(), metadata)


def downgrade() -> None:
    raise NotImplementedError("there is nothing before release 0.1")
