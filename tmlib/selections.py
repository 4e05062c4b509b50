"""Selections of objects made in the viewer, stored per user and experiment.

A :class:`~tmlib.models.Selection` is a named, coloured set of objects of one
type; each member keeps the map point (x = column, y = -row) where the user
picked it, so the viewer can put its marker there. A user only ever sees and
changes their own selections: every function takes the caller's user id and
treats another user's selection as one that does not exist.

Selections live in the experiment's tables: deleting the experiment deletes
them, deleting an object type deletes its selections, and deleting objects
(a new analysis run) removes them from selections (``ON DELETE CASCADE``).

Examples
--------
>>> s = create_selection(experiment_id, user_id, cells_id, "bright", "#ff0000")  # doctest: +SKIP
>>> change_members(experiment_id, user_id, s["id"], add=[{"mapobject_id": 7, "x": 10.5,
...                "y": -20.0}], remove=[])  # doctest: +SKIP
1
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.orm import Session

import tmlib.models as tm
from tmlib.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from tmlib.features import get_mapobject_type, partitions

_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_MAX_NAME = 255
#: ids per ``IN (...)`` list
_CHUNK = 500
#: columns of the members' CSV
CSV_COLUMNS = ("mapobject_id", "plate_name", "well_name", "well_pos_y", "well_pos_x", "label",
               "x", "y")  # fmt: skip


# ------------------------------------------------------------------ validation


def check_name(name: object) -> str:
    """A selection's name: 1 to 255 characters, not only blanks.

    Raises
    ------
    InvalidInputError
    """
    if not isinstance(name, str) or not name.strip() or len(name) > _MAX_NAME:
        raise InvalidInputError(f"a selection's name must have 1 to {_MAX_NAME} characters")
    return name


def check_color(color: object) -> str:
    """A colour ``#rrggbb`` (hexadecimal digits), returned in lower case.

    Raises
    ------
    InvalidInputError
    """
    if not isinstance(color, str) or _COLOR.fullmatch(color) is None:
        raise InvalidInputError(f"a colour must be written #rrggbb (e.g. #ff8800), got {color!r}")
    return color.lower()


def _object_id(value: object, where: str) -> int:
    """An object id given as an integer or its decimal text."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,18}", value):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    raise InvalidInputError(f"{where} must be an object id (a whole number >= 0)")


def _coordinate(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"{where} must be a finite number")
    return float(value)


def parse_additions(add: Sequence[object]) -> dict[int, tuple[float, float]]:
    """``[{mapobject_id, x, y}]`` as {id: (x, y)} (the last of repeated ids counts).

    Raises
    ------
    InvalidInputError
        For an item that is not an object with an id and finite ``x`` and ``y``.
    """
    points: dict[int, tuple[float, float]] = {}
    for i, item in enumerate(add):
        where = f"add[{i}]"
        if not isinstance(item, dict):
            raise InvalidInputError(f"{where} must be an object {{mapobject_id, x, y}}")
        for key in ("mapobject_id", "x", "y"):
            if key not in item:
                raise InvalidInputError(f"{where} lacks {key!r}")
        mapobject_id = _object_id(item["mapobject_id"], f"{where}.mapobject_id")
        x = _coordinate(item["x"], f"{where}.x")
        points[mapobject_id] = (x, _coordinate(item["y"], f"{where}.y"))
    return points


def parse_removals(remove: Sequence[object]) -> list[int]:
    """The object ids of ``remove`` (integers or decimal texts).

    Raises
    ------
    InvalidInputError
    """
    return sorted({_object_id(value, f"remove[{i}]") for i, value in enumerate(remove)})


# ------------------------------------------------------------------ reading


def _count(session: Session, selection_id: int) -> int:
    member = tm.SelectionMember
    query = sa.select(sa.func.count()).where(member.selection_id == selection_id)
    return session.scalar(query) or 0


def _as_dict(selection: tm.Selection, count: int) -> dict[str, Any]:
    return {
        "id": str(selection.id),
        "mapobject_type_id": str(selection.mapobject_type_id),
        "name": selection.name,
        "color": selection.color,
        "count": count,
        "created_at": selection.created_at.isoformat(timespec="seconds") + "Z",
    }


def serialize(session: Session, selection: tm.Selection) -> dict[str, Any]:
    """``{id, mapobject_type_id, name, color, count, created_at}``.

    Ids are decimal texts (as everywhere in the API), ``count`` the number of
    members, ``created_at`` UTC in ISO 8601 (``2024-05-01T12:00:00Z``).
    """
    return _as_dict(selection, _count(session, selection.id))


def _own(session: Session, user_id: int, selection_id: int) -> tm.Selection:
    """The caller's selection of that id.

    Raises
    ------
    NotFoundError
        When there is none, or it is another user's.
    """
    selection = session.get(tm.Selection, selection_id)
    if selection is None or selection.user_id != user_id:
        raise NotFoundError(f"selection {selection_id} does not exist")
    return selection


def list_selections(
    experiment_id: int, user_id: int, mapobject_type_id: int | None = None
) -> list[dict[str, Any]]:
    """The caller's selections (of one type if given), by id (see :func:`serialize`)."""
    member = tm.SelectionMember
    counts = (
        sa.select(member.selection_id, sa.func.count().label("n"))
        .group_by(member.selection_id)
        .subquery()
    )
    query = (
        sa.select(tm.Selection, counts.c.n)
        .outerjoin(counts, counts.c.selection_id == tm.Selection.id)
        .where(tm.Selection.user_id == user_id)
        .order_by(tm.Selection.id)
    )
    if mapobject_type_id is not None:
        query = query.where(tm.Selection.mapobject_type_id == mapobject_type_id)
    with tm.utils.ExperimentSession(experiment_id) as session:
        return [_as_dict(s, n or 0) for s, n in session.execute(query)]


def get_selection(experiment_id: int, user_id: int, selection_id: int) -> dict[str, Any]:
    """The caller's selection with ``members: [{mapobject_id, x, y}]`` (by object id).

    Raises
    ------
    NotFoundError
    """
    member = tm.SelectionMember
    with tm.utils.ExperimentSession(experiment_id) as session:
        selection = _own(session, user_id, selection_id)
        rows = session.execute(
            sa.select(member.mapobject_id, member.x, member.y)
            .where(member.selection_id == selection.id)
            .order_by(member.mapobject_id)
        )
        members = [{"mapobject_id": str(m), "x": x, "y": y} for m, x, y in rows]
        return {**serialize(session, selection), "members": members}


# ------------------------------------------------------------------ writing


def _taken(name: str) -> AlreadyExistsError:
    return AlreadyExistsError(
        f"you have a selection {name!r} of these objects already: choose another name"
    )


def _check_unique(
    session: Session, user_id: int, mapobject_type_id: int, name: str, own_id: int | None = None
) -> None:
    """Raise AlreadyExistsError if the user has another selection `name` of the type."""
    query = sa.select(tm.Selection.id).where(
        tm.Selection.user_id == user_id,
        tm.Selection.mapobject_type_id == mapobject_type_id,
        tm.Selection.name == name,
    )
    if own_id is not None:
        query = query.where(tm.Selection.id != own_id)
    if session.scalar(query) is not None:
        raise _taken(name)


def _flush_unique(session: Session, selection: tm.Selection) -> None:
    """Write the selection; a name taken meanwhile by a concurrent request is a conflict."""
    try:
        session.flush()
    except exc.IntegrityError:
        session.rollback()
        raise _taken(selection.name) from None


def create_selection(
    experiment_id: int, user_id: int, mapobject_type_id: int, name: object, color: object
) -> dict[str, Any]:
    """Create an empty selection of the caller's; returns it (:func:`serialize`).

    Raises
    ------
    NotFoundError
        Unknown object type.
    InvalidInputError
        Bad name or colour.
    AlreadyExistsError
        The caller has a selection of that name for that type.
    """
    name, color = check_name(name), check_color(color)
    with tm.utils.ExperimentSession(experiment_id) as session:
        get_mapobject_type(session, mapobject_type_id)
        _check_unique(session, user_id, mapobject_type_id, name)
        selection = tm.Selection(
            user_id=user_id, mapobject_type_id=mapobject_type_id, name=name, color=color
        )
        session.add(selection)
        _flush_unique(session, selection)
        return serialize(session, selection)


def update_selection(
    experiment_id: int,
    user_id: int,
    selection_id: int,
    name: object | None = None,
    color: object | None = None,
) -> dict[str, Any]:
    """Rename or recolour the caller's selection; returns it (:func:`serialize`).

    Raises
    ------
    NotFoundError, InvalidInputError, AlreadyExistsError
    """
    with tm.utils.ExperimentSession(experiment_id) as session:
        selection = _own(session, user_id, selection_id)
        if name is not None:
            name = check_name(name)
            _check_unique(session, user_id, selection.mapobject_type_id, name, selection.id)
            selection.name = name
        if color is not None:
            selection.color = check_color(color)
        _flush_unique(session, selection)
        return serialize(session, selection)


def delete_selection(experiment_id: int, user_id: int, selection_id: int) -> None:
    """Delete the caller's selection with its members.

    Raises
    ------
    NotFoundError
    """
    with tm.utils.ExperimentSession(experiment_id) as session:
        selection = _own(session, user_id, selection_id)
        session.execute(sa.delete(tm.Selection).where(tm.Selection.id == selection.id))


def _check_members(session: Session, mapobject_type_id: int, ids: Sequence[int]) -> None:
    """Raise InvalidInputError unless every id is an object of the type."""
    mo = tm.Mapobject
    found: set[int] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = list(ids[start : start + _CHUNK])
        found.update(
            session.scalars(
                sa.select(mo.id).where(mo.id.in_(chunk), mo.mapobject_type_id == mapobject_type_id)
            )
        )
    missing = [i for i in ids if i not in found]
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
        raise InvalidInputError(
            f"{len(missing)} of the objects to add are not objects of the selection's type "
            f"({shown})"
        )


def _upsert(session: Session, selection_id: int, points: dict[int, tuple[float, float]]) -> None:
    """Add members; one already there gets the new point (adding twice keeps one)."""
    if not points:
        return
    if session.connection().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = tm.SelectionMember.__table__
    statement = insert(table)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.selection_id, table.c.mapobject_id],
        set_={"x": statement.excluded.x, "y": statement.excluded.y},
    )
    rows = [
        {"selection_id": selection_id, "mapobject_id": m, "x": x, "y": y}
        for m, (x, y) in points.items()
    ]
    for start in range(0, len(rows), 5000):
        session.execute(statement, rows[start : start + 5000])


def change_members(
    experiment_id: int,
    user_id: int,
    selection_id: int,
    add: Sequence[object] = (),
    remove: Sequence[object] = (),
) -> int:
    """Add (``[{mapobject_id, x, y}]``) and remove (``[mapobject_id]``) members of the
    caller's selection, in one transaction; returns the new number of members.

    Adding a member again keeps one (with the new point); removing one that is
    not there does nothing. An id in both lists ends up removed.

    Raises
    ------
    NotFoundError
        Unknown selection (or another user's).
    InvalidInputError
        A malformed item, or an object that is not of the selection's type.
    """
    points, removals = parse_additions(add), parse_removals(remove)
    member = tm.SelectionMember
    with tm.utils.ExperimentSession(experiment_id) as session:
        selection = _own(session, user_id, selection_id)
        _check_members(session, selection.mapobject_type_id, list(points))
        _upsert(session, selection.id, points)
        for start in range(0, len(removals), _CHUNK):
            session.execute(
                sa.delete(member).where(
                    member.selection_id == selection.id,
                    member.mapobject_id.in_(removals[start : start + _CHUNK]),
                )
            )
        return _count(session, selection.id)


# ------------------------------------------------------------------ export


def export_names(experiment_id: int, user_id: int, selection_id: int) -> tuple[str, str, str]:
    """(experiment name, object type name, selection name) of the caller's selection.

    For the export's file name, and to fail before a streamed answer starts.

    Raises
    ------
    NotFoundError
    """
    with tm.utils.ExperimentSession(experiment_id) as session:
        selection = _own(session, user_id, selection_id)
        type_name = get_mapobject_type(session, selection.mapobject_type_id).name
        name = selection.name
    with tm.utils.MainSession() as session:
        reference = session.get(tm.ExperimentReference, experiment_id)
        if reference is None:
            raise NotFoundError(f"experiment {experiment_id} does not exist")
        return reference.name, type_name, name


def _first_labels(session: Session, ids: list[int]) -> dict[int, int | None]:
    """Each object's label in its first segmentation (lowest time point, then z-plane)."""
    seg, layer = tm.MapobjectSegmentation, tm.SegmentationLayer
    rows = session.execute(
        sa.select(seg.mapobject_id, seg.label)
        .join(layer, seg.segmentation_layer_id == layer.id)
        .where(seg.mapobject_id.in_(ids))
        .order_by(seg.mapobject_id, layer.tpoint, layer.zplane, layer.id)
    )
    labels: dict[int, int | None] = {}
    for mapobject_id, label in rows:
        labels.setdefault(mapobject_id, label)
    return labels


def _csv_lines(rows: list[list[object]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def members_csv(experiment_id: int, user_id: int, selection_id: int) -> Iterator[bytes]:
    """The members of the caller's selection as CSV (:data:`CSV_COLUMNS`), streamed.

    One row per member, by object id: where the object is (plate, well, site
    position in its well; empty where its type's reference does not have them),
    its label (first segmentation) and the picked map point.

    Raises
    ------
    NotFoundError
        At the first ``next()``; call :func:`export_names` first.
    """
    member, mo = tm.SelectionMember, tm.Mapobject
    with tm.utils.ExperimentSession(experiment_id) as session:
        selection = _own(session, user_id, selection_id)
        kind = get_mapobject_type(session, selection.mapobject_type_id)
        places = partitions(session, kind.ref_type)
        yield _csv_lines([list(CSV_COLUMNS)])
        rows = session.execute(
            sa.select(member.mapobject_id, member.x, member.y, mo.partition_key, mo.ref_id)
            .join(mo, mo.id == member.mapobject_id)
            .where(member.selection_id == selection.id)
            .order_by(member.mapobject_id)
        ).all()
        for start in range(0, len(rows), _CHUNK):
            chunk = rows[start : start + _CHUNK]
            labels = _first_labels(session, [r[0] for r in chunk])
            lines = []
            for mapobject_id, x, y, key, ref_id in chunk:
                place = places.get(ref_id if ref_id is not None else key)
                where = (
                    [place.plate_name, place.well_name, place.well_pos_y, place.well_pos_x]
                    if place is not None
                    else [None] * 4
                )
                lines.append([mapobject_id, *where, labels.get(mapobject_id), x, y])
            yield _csv_lines(lines)
