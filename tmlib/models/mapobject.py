"""Segmented and static objects on the map, their outlines and feature values."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tmlib.models.base import BigIdType, ExperimentModel, FloatArray, Geometry

REF_TYPES = ("Plate", "Well", "Site")


class MapobjectType(ExperimentModel):
    """A kind of object (``Cells``, ``Nuclei``, or the static ``Plates``/``Wells``/``Sites``)."""

    __tablename__ = "mapobject_types"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    ref_type: Mapped[str] = mapped_column(String(10), default="Site")
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiment.id", ondelete="CASCADE"))

    features: Mapped[list[Feature]] = relationship(
        back_populates="mapobject_type", cascade="all, delete-orphan", passive_deletes=True
    )
    layers: Mapped[list[SegmentationLayer]] = relationship(
        back_populates="mapobject_type", cascade="all, delete-orphan", passive_deletes=True
    )


class Mapobject(ExperimentModel):
    """One object. ``partition_key`` is the site (or plate/well) id it belongs to."""

    __tablename__ = "mapobjects"

    id: Mapped[int] = mapped_column(BigIdType, primary_key=True)
    partition_key: Mapped[int] = mapped_column(Integer, index=True)
    mapobject_type_id: Mapped[int] = mapped_column(
        ForeignKey("mapobject_types.id", ondelete="CASCADE"), index=True
    )
    ref_id: Mapped[int | None] = mapped_column(Integer)


class SegmentationLayer(ExperimentModel):
    """Outlines of one object type at one time point and z-plane (a vector-tile source)."""

    __tablename__ = "segmentation_layers"
    __table_args__ = (UniqueConstraint("tpoint", "zplane", "mapobject_type_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tpoint: Mapped[int | None] = mapped_column(Integer)
    zplane: Mapped[int | None] = mapped_column(Integer)
    polygon_thresh: Mapped[int | None] = mapped_column(Integer)
    centroid_thresh: Mapped[int | None] = mapped_column(Integer)
    mapobject_type_id: Mapped[int] = mapped_column(
        ForeignKey("mapobject_types.id", ondelete="CASCADE"), index=True
    )

    mapobject_type: Mapped[MapobjectType] = relationship(back_populates="layers")


class MapobjectSegmentation(ExperimentModel):
    """Outline (polygon, optional) and centroid of an object in one segmentation layer."""

    __tablename__ = "mapobject_segmentations"
    __table_args__ = (Index("ix_mapobject_segmentations_partition_key", "partition_key"),)

    mapobject_id: Mapped[int] = mapped_column(
        ForeignKey("mapobjects.id", ondelete="CASCADE"), primary_key=True
    )
    segmentation_layer_id: Mapped[int] = mapped_column(
        ForeignKey("segmentation_layers.id", ondelete="CASCADE"), primary_key=True
    )
    partition_key: Mapped[int] = mapped_column(Integer)
    geom_polygon: Mapped[Any | None] = mapped_column(Geometry)
    geom_centroid: Mapped[Any] = mapped_column(Geometry)
    label: Mapped[int | None] = mapped_column(Integer)


class Feature(ExperimentModel):
    """A measured feature of an object type (e.g. ``Intensity_mean_DAPI``)."""

    __tablename__ = "features"
    __table_args__ = (UniqueConstraint("name", "mapobject_type_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    is_aggregate: Mapped[bool] = mapped_column(Boolean, default=False)
    mapobject_type_id: Mapped[int] = mapped_column(
        ForeignKey("mapobject_types.id", ondelete="CASCADE"), index=True
    )

    mapobject_type: Mapped[MapobjectType] = relationship(back_populates="features")


class FeatureValues(ExperimentModel):
    """All feature values of an object at one time point.

    ``values`` is a float64 array in the order of the object type's features
    sorted by :attr:`Feature.id` (all objects of a type have the same features:
    one pipeline measures them, and re-running it replaces the objects).
    """

    __tablename__ = "feature_values"
    __table_args__ = (Index("ix_feature_values_partition_key", "partition_key"),)

    mapobject_id: Mapped[int] = mapped_column(
        ForeignKey("mapobjects.id", ondelete="CASCADE"), primary_key=True
    )
    tpoint: Mapped[int] = mapped_column(Integer, primary_key=True, default=0)
    partition_key: Mapped[int] = mapped_column(Integer)
    # a 1D float64 numpy array; typed Any because SQLAlchemy evaluates the
    # annotation when the class is made, and models must not import numpy
    values: Mapped[Any] = mapped_column(FloatArray)
