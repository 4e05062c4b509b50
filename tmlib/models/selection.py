"""Selections of objects a user made in the viewer, kept per user and experiment."""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tmlib.models.base import ExperimentModel, Timestamps


class Selection(Timestamps, ExperimentModel):
    """A named, coloured set of objects of one type, owned by one user.

    ``user_id`` is the id of a :class:`~tmlib.models.User` of the main
    database (another database: no foreign key). Deleting the object type
    deletes its selections.
    """

    __tablename__ = "selections"
    __table_args__ = (UniqueConstraint("user_id", "mapobject_type_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    mapobject_type_id: Mapped[int] = mapped_column(
        ForeignKey("mapobject_types.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    #: ``#rrggbb``
    color: Mapped[str] = mapped_column(String(7))


class SelectionMember(ExperimentModel):
    """An object in a selection, with the map point (x, -row) where the user picked it."""

    __tablename__ = "selection_members"

    selection_id: Mapped[int] = mapped_column(
        ForeignKey("selections.id", ondelete="CASCADE"), primary_key=True
    )
    mapobject_id: Mapped[int] = mapped_column(
        ForeignKey("mapobjects.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    x: Mapped[float] = mapped_column(Float)
    y: Mapped[float] = mapped_column(Float)
