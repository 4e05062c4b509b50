"""Results of the interactive analysis tools: labels per object and plots."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tmlib.models.base import ExperimentModel, FloatMap, JSONType


class ToolResult(ExperimentModel):
    """A result of a tool run, shown as a layer of labels on the map.

    Subclasses (single-table, by ``type``) tell the viewer how to colour it.
    ``attributes`` holds e.g. ``unique_labels``, ``label_map``, ``min``/``max``.
    """

    __tablename__ = "tool_results"
    __table_args__ = (UniqueConstraint("name", "mapobject_type_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    tool_name: Mapped[str] = mapped_column(String(50))
    submission_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    type: Mapped[str] = mapped_column(String(50))
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    mapobject_type_id: Mapped[int] = mapped_column(
        ForeignKey("mapobject_types.id", ondelete="CASCADE"), index=True
    )

    plots: Mapped[list[Plot]] = relationship(cascade="all, delete-orphan", passive_deletes=True)

    __mapper_args__ = {"polymorphic_on": "type", "polymorphic_identity": "ToolResult"}


class ScalarToolResult(ToolResult):
    """Discrete labels (e.g. cluster ids)."""

    __mapper_args__ = {"polymorphic_identity": "ScalarToolResult"}


class SupervisedClassifierToolResult(ScalarToolResult):
    """Class labels predicted by a trained classifier, with names and colours."""

    __mapper_args__ = {"polymorphic_identity": "SupervisedClassifierToolResult"}


class ContinuousToolResult(ToolResult):
    """Continuous values shown with a colour scale."""

    __mapper_args__ = {"polymorphic_identity": "ContinuousToolResult"}


class HeatmapToolResult(ContinuousToolResult):
    """A feature shown as a heat map."""

    __mapper_args__ = {"polymorphic_identity": "HeatmapToolResult"}


class LabelValues(ExperimentModel):
    """Labels of one object at one time point: ``{tool_result_id: label}``."""

    __tablename__ = "label_values"
    __table_args__ = (Index("ix_label_values_partition_key", "partition_key"),)

    mapobject_id: Mapped[int] = mapped_column(
        ForeignKey("mapobjects.id", ondelete="CASCADE"), primary_key=True
    )
    tpoint: Mapped[int] = mapped_column(Integer, primary_key=True, default=0)
    partition_key: Mapped[int] = mapped_column(Integer)
    values: Mapped[dict[str, float]] = mapped_column(FloatMap)


class Plot(ExperimentModel):
    """A plot specification that belongs to a tool result (interpreted by the client)."""

    __tablename__ = "plots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONType)
    result_id: Mapped[int] = mapped_column(
        ForeignKey("tool_results.id", ondelete="CASCADE"), index=True
    )
