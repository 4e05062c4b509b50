"""One value per object, to colour the map: a feature's values or a tool result's labels.

A viewer colours the objects of a type by one number each. It fetches the
numbers of all objects of the type once (:func:`type_values`, a compact
binary array) and recolours without fetching tiles again; labeled vector
tiles (:func:`tmlib.maptiles.tile_labels`) read the same numbers for the
objects of one tile (:func:`object_values` with their ids).

Each read is one query over the type's objects: a feature's value is cut out
of the object's :class:`~tmlib.models.FeatureValues` array by the database
(``substr``), a label taken out of its :class:`~tmlib.models.LabelValues` map
(``json_extract`` on SQLite, ``->>`` on PostgreSQL), so a single number per
object reaches Python, and rows arrive a chunk at a time straight from the
driver's cursor into numpy arrays.

Examples
--------
>>> values = type_values(experiment_id, cells_id, feature_id=12)  # doctest: +SKIP
>>> values.ids[:3], values.values[:3]  # doctest: +SKIP
(array([1, 2, 3]), array([101.5, 99.25, nan], dtype=float32))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from sqlalchemy.orm import Session

import tmlib.models as tm
from tmlib.errors import InvalidInputError, NotFoundError
from tmlib.features import driver_rows, get_mapobject_type

#: rows taken from the driver's cursor at a time
_FETCH_ROWS = 50000
#: ids per ``IN (...)`` list when the values of given objects are read
_IN_CHUNK = 500
_NAN_BYTES = np.array([np.nan], "<f8").tobytes()
#: ids below this are sent as uint32, all others as float64 (exact below 2**53)
_UINT32_LIMIT = 2**32


@dataclass(frozen=True)
class ValueSource:
    """Where the values of a type's objects are read from.

    Attributes
    ----------
    mapobject_type_id : int
        The objects' type.
    feature_position : int or None
        Position of a feature in the objects' ``FeatureValues`` arrays (the
        order of the type's features by id); for features and heat maps.
    result_id : int or None
        The tool result whose ``LabelValues`` are the values.

    With neither (a heat map whose feature was deleted) every value is NaN.
    """

    mapobject_type_id: int
    feature_position: int | None = None
    result_id: int | None = None


def _feature_ids(session: Session, mapobject_type_id: int) -> list[int]:
    """Ids of a type's features in the order of their values (by id)."""
    return list(
        session.scalars(
            sa.select(tm.Feature.id)
            .where(tm.Feature.mapobject_type_id == mapobject_type_id)
            .order_by(tm.Feature.id)
        )
    )


def feature_source(session: Session, mapobject_type_id: int, feature_id: int) -> ValueSource:
    """The values of a feature of a type.

    Raises
    ------
    NotFoundError
        When the type has no feature of that id.
    """
    order = _feature_ids(session, mapobject_type_id)
    if feature_id not in order:
        raise NotFoundError(f"object type {mapobject_type_id} has no feature {feature_id}")
    return ValueSource(mapobject_type_id, feature_position=order.index(feature_id))


def result_source(session: Session, result: tm.ToolResult) -> ValueSource:
    """The values of a tool result: its labels, or for a heat map its feature's values.

    A heat map names its feature in ``attributes.feature_id``.
    """
    if result.type != "HeatmapToolResult":
        return ValueSource(result.mapobject_type_id, result_id=result.id)
    try:
        feature_id = int((result.attributes or {}).get("feature_id", -1))
    except (TypeError, ValueError):
        feature_id = -1
    order = _feature_ids(session, result.mapobject_type_id)
    position = order.index(feature_id) if feature_id in order else None
    return ValueSource(result.mapobject_type_id, feature_position=position)


def tool_result_source(
    session: Session, mapobject_type_id: int, tool_result_id: int
) -> ValueSource:
    """The values of a tool result of a type (see :func:`result_source`).

    Raises
    ------
    NotFoundError
        When the type has no tool result of that id.
    """
    result = session.get(tm.ToolResult, tool_result_id)
    if result is None or result.mapobject_type_id != mapobject_type_id:
        raise NotFoundError(f"object type {mapobject_type_id} has no tool result {tool_result_id}")
    return result_source(session, result)


def _label_of(column: sa.ColumnElement, key: str, dialect: str) -> sa.ColumnElement:
    """The entry `key` of a JSON map column, as the database holds it (number or text).

    Text, not a cast to a float: labels stored as ``"NaN"`` would become 0 on SQLite.
    """
    if dialect == "postgresql":
        return column.op("->>")(sa.literal(key))
    return sa.func.json_extract(column, f'$."{key}"')


def _values_query(source: ValueSource, tpoint: int, dialect: str) -> sa.Select:
    """(mapobject id, raw value) of every object of the source's type, by id."""
    mo = tm.Mapobject.__table__
    if source.feature_position is not None:
        fv = tm.FeatureValues.__table__
        start = 8 * source.feature_position + 1  # substr counts from 1
        value = sa.func.substr(sa.type_coerce(fv.c["values"], sa.LargeBinary), start, 8)
        joined = mo.outerjoin(fv, (fv.c.mapobject_id == mo.c.id) & (fv.c.tpoint == tpoint))
    elif source.result_id is not None:
        lv = tm.LabelValues.__table__
        value = _label_of(lv.c["values"], str(source.result_id), dialect)
        joined = mo.outerjoin(lv, (lv.c.mapobject_id == mo.c.id) & (lv.c.tpoint == tpoint))
    else:
        value, joined = sa.null(), mo
    return (
        sa.select(mo.c.id, value)
        .select_from(joined)
        .where(mo.c.mapobject_type_id == source.mapobject_type_id)
        .order_by(mo.c.id)
    )


def _decode(raw: Sequence[object], source: ValueSource) -> np.ndarray:
    """float64 values of the raw column (8-byte slices, or JSON numbers and texts)."""
    if source.feature_position is not None:
        # no row, or one written before the feature was added (too short): no value
        slices = [
            v if isinstance(v, bytes | memoryview) and len(v) == 8 else _NAN_BYTES for v in raw
        ]
        return np.frombuffer(b"".join(slices), "<f8").copy()
    # None (no label) is NaN; so are "NaN" and the infinities as text
    return np.array(raw, dtype=np.float64)


def object_values(
    session: Session, source: ValueSource, tpoint: int = 0, ids: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Ids and values of the objects of the source's type at a time point.

    Parameters
    ----------
    session : Session
        A session of the experiment.
    source : ValueSource
        What the values are.
    tpoint : int
        The time point of feature values and labels.
    ids : sequence of int, optional
        Only these objects (those not of the type are left out); all if None.

    Returns
    -------
    ids : ndarray of int64
        Ascending.
    values : ndarray of float64
        NaN where an object has no value.
    """
    dialect = session.connection().dialect.name
    query = _values_query(source, tpoint, dialect)
    mo = tm.Mapobject.__table__
    if ids is None:
        queries = [query]
    else:
        ids = list(ids)
        queries = [
            query.where(mo.c.id.in_(ids[i : i + _IN_CHUNK])) for i in range(0, len(ids), _IN_CHUNK)
        ]
    id_parts, value_parts = [np.zeros(0, np.int64)], [np.zeros(0, np.float64)]
    for part in queries:
        for rows in driver_rows(session, part, _FETCH_ROWS):
            found, raw = zip(*rows, strict=True)
            id_parts.append(np.fromiter(found, np.int64, len(found)))
            value_parts.append(_decode(raw, source))
    all_ids, all_values = np.concatenate(id_parts), np.concatenate(value_parts)
    if len(queries) > 1:
        order = np.argsort(all_ids, kind="stable")
        all_ids, all_values = all_ids[order], all_values[order]
    return all_ids, all_values


@dataclass(frozen=True)
class TypeValues:
    """The values of all objects of a type, for the wire (see :meth:`to_bytes`)."""

    ids: np.ndarray
    values: np.ndarray

    @property
    def count(self) -> int:
        return len(self.ids)

    @property
    def id_dtype(self) -> str:
        """``uint32`` when every id fits (the usual case), else ``float64``."""
        if self.count == 0 or int(self.ids[-1]) < _UINT32_LIMIT:
            return "uint32"
        return "float64"

    def to_bytes(self) -> bytes:
        """Little-endian: the ids (as :attr:`id_dtype`), then the values as float32."""
        kind = "<u4" if self.id_dtype == "uint32" else "<f8"
        return self.ids.astype(kind).tobytes() + self.values.astype("<f4").tobytes()


def type_values(
    experiment_id: int,
    mapobject_type_id: int,
    feature_id: int | None = None,
    tool_result_id: int | None = None,
    tpoint: int = 0,
) -> TypeValues:
    """The values of a feature, or of a tool result, for every object of a type.

    Exactly one of `feature_id` and `tool_result_id` is given.

    Raises
    ------
    InvalidInputError
        When neither or both are given.
    NotFoundError
        When the type, or its feature or tool result, does not exist.
    """
    if (feature_id is None) == (tool_result_id is None):
        raise InvalidInputError("give exactly one of feature_id and tool_result_id")
    with tm.utils.ExperimentSession(experiment_id) as session:
        get_mapobject_type(session, mapobject_type_id)
        if feature_id is not None:
            source = feature_source(session, mapobject_type_id, feature_id)
        else:
            assert tool_result_id is not None
            source = tool_result_source(session, mapobject_type_id, tool_result_id)
        ids, values = object_values(session, source, tpoint)
    return TypeValues(ids, values)
