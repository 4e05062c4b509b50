"""Storing what a pipeline found: objects, their outlines and their features.

A job computes what it stores of a site (outlines, centroids, values:
:func:`prepare_site`) without the database, then the objects of its batch of
sites go into the database in one short transaction (:func:`save_prepared`), with
bulk inserts: one Mapobject, one MapobjectSegmentation and one FeatureValues
row per object. Feature values are one float64 array per object in the order
of the type's features (:class:`tmlib.models.FeatureValues`).

On PostgreSQL the rows go in with binary COPY, in that transaction: their bytes
are made before it begins (all but the objects' ids, which come from the ids'
sequence), so that the database parses no statements and the transaction holds
its connection only while the rows stream (about twice the rows per second of
executemany INSERTs: ``benchmarks/db_writes.py``). SQLite takes the same rows
from executemany INSERTs.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import tmlib.models as tm
from tmlib import pgcopy
from tmlib.errors import InvalidInputError

if TYPE_CHECKING:  # the writing half needs neither (jobs and benchmarks that only write)
    from tmlib.jterator.pipeline import SiteResult


@dataclass
class SiteOutput:
    """A site's pipeline result, where the site lies and at which time point."""

    site_id: int
    tpoint: int
    offset: tuple[int, int]  # mosaic (row, column) of the site's top-left pixel
    result: SiteResult


def ensure_features(experiment_id: int, type_name: str, names: Sequence[str]) -> list[int]:
    """Ids of the features `names` of an object type, creating those that are missing.

    Run jobs of one submission meet here concurrently: each attempt is its own
    short transaction, and one that lost a race to create a feature tries again.

    Raises
    ------
    InvalidInputError
        When the type already has other features (the pipeline measures
        something else than it did for other sites).
    """
    for attempt in range(5):
        try:
            with tm.utils.ExperimentSession(experiment_id) as session:
                kind = session.scalar(
                    sa.select(tm.MapobjectType).where(tm.MapobjectType.name == type_name)
                )
                existing = {f.name: f.id for f in kind.features}
                if existing and set(existing) != set(names):
                    other = sorted(set(existing) ^ set(names))[0]
                    raise InvalidInputError(
                        f"objects {type_name}: feature {other!r} is measured at some sites but "
                        "not at others"
                    )
                for name in names:
                    if name not in existing:
                        feature = tm.Feature(name=name, mapobject_type_id=kind.id)
                        session.add(feature)
                        session.flush()
                        existing[name] = feature.id
                return [existing[name] for name in names]
        except IntegrityError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


@dataclass
class PreparedObjects:
    """The objects of one type at one site, ready to insert: outlines and values computed.

    What :func:`prepare_site` makes of a site's label images, without the
    database, so that a job computes them before it opens its write
    transaction (and can drop the label images at once).

    Attributes
    ----------
    site_id, tpoint : int
    name : str
        The object type.
    labels : ndarray, shape (K,), int64
        The labels present, ascending.
    outlines : list of shapely.Polygon or None
    centroids : list of shapely.Point
    columns : list of str
        The feature names, in the order of the columns of `values`.
    values : ndarray, shape (K, len(columns)), float64
    """

    site_id: int
    tpoint: int
    name: str
    labels: np.ndarray
    outlines: list
    centroids: list
    columns: list[str]
    values: np.ndarray


def prepare_site(output: SiteOutput, as_polygons: dict[str, bool]) -> list[PreparedObjects]:
    """Outlines, centroids and feature values of each object type of a site (no database)."""
    from tmlib.outlines import label_outlines

    prepared = []
    for name, polygons in as_polygons.items():
        features = output.result.features[name]
        ids_, outlines, centroids = label_outlines(
            output.result.objects[name], output.offset, polygons
        )
        values = features.reindex(ids_).to_numpy(dtype=np.float64)
        prepared.append(
            PreparedObjects(
                output.site_id,
                output.tpoint,
                name,
                ids_,
                outlines,
                centroids,
                list(features.columns),
                values,
            )  # fmt: skip
        )
    return prepared


def save_prepared(experiment_id: int, prepared: Sequence[PreparedObjects]) -> int:
    """Insert prepared objects in one short transaction of their own; returns how many.

    The features are made first, each in its own short transaction
    (:func:`ensure_features`); the transaction that writes the objects does
    nothing but write.
    """
    if not prepared:
        return 0
    orders = _feature_orders(experiment_id, prepared)
    with tm.utils.ExperimentSession(experiment_id) as session:
        return _write(session, prepared, orders)


def save_objects(
    session: Session,
    experiment_id: int,
    outputs: Sequence[SiteOutput],
    as_polygons: dict[str, bool],
) -> int:
    """Insert the objects of several sites (the caller's transaction); returns how many.

    Objects of the same types at these sites from an earlier run are deleted
    first, so running a job again replaces what it wrote. Jobs use
    :func:`prepare_site` and :func:`save_prepared`, which hold no transaction
    while outlines are computed.
    """
    prepared = [p for output in outputs for p in prepare_site(output, as_polygons)]
    if not prepared:
        return 0
    # features first, in their own transactions: before this one writes (and
    # on SQLite holds the database's write lock)
    return _write(session, prepared, _feature_orders(experiment_id, prepared))


def _feature_orders(
    experiment_id: int, prepared: Sequence[PreparedObjects]
) -> dict[str, np.ndarray]:
    """Per object type, the order of its value columns by feature id (creating features).

    Raises
    ------
    InvalidInputError
        When sites of a batch have different features of a type.
    """
    first: dict[str, PreparedObjects] = {}
    for item in prepared:
        reference = first.setdefault(item.name, item)
        if item.columns != reference.columns:
            raise InvalidInputError(
                f"objects {item.name}: site {item.site_id} has other features than site "
                f"{reference.site_id}"
            )
    # one read for all types; ensure_features (its own transactions) only where
    # features are missing or differ (it creates them, or explains)
    with tm.utils.ExperimentSession(experiment_id) as session:
        existing: dict[str, dict[str, int]] = {}
        for kind, feature, feature_id in session.execute(
            sa.select(tm.MapobjectType.name, tm.Feature.name, tm.Feature.id)
            .join(tm.Feature, tm.Feature.mapobject_type_id == tm.MapobjectType.id)
            .where(tm.MapobjectType.name.in_(list(first)))
        ):
            existing.setdefault(kind, {})[feature] = feature_id
    orders = {}
    for name, item in first.items():
        known = existing.get(name, {})
        if known and set(known) == set(item.columns):
            ids = [known[column] for column in item.columns]
        else:
            ids = ensure_features(experiment_id, name, item.columns)
        orders[name] = np.argsort(ids)  # FeatureValues hold values by feature id
    return orders


def _write(
    session: Session, prepared: Sequence[PreparedObjects], orders: dict[str, np.ndarray]
) -> int:
    """Replace the objects of the prepared types at their sites by the prepared ones.

    On PostgreSQL (psycopg2) the rows go in with COPY (:func:`_write_copy`),
    their bytes made before the first statement (:func:`_encode`); elsewhere
    with executemany INSERTs (:func:`_write_plain`). Both write the same rows.
    """
    if _copies(session):
        return _write_copy(session, _encode(prepared, orders))
    return _write_plain(session, prepared, orders)


def _copies(session: Session) -> bool:
    """Whether `session` writes with COPY: PostgreSQL through psycopg2 (no connection made)."""
    dialect = session.get_bind().dialect
    return dialect.name == "postgresql" and dialect.driver == "psycopg2"


def _replace(
    session: Session, prepared: Sequence[PreparedObjects], names: Sequence[str]
) -> tuple[dict[str, tm.MapobjectType], dict[tuple[int, int | None], int]]:
    """Delete the objects of types `names` at the prepared sites; the types and their layers."""
    kinds: dict[str, tm.MapobjectType] = {}
    layers: dict[tuple[int, int | None], int] = {}
    for kind, tpoint, layer in session.execute(
        sa.select(tm.MapobjectType, tm.SegmentationLayer.tpoint, tm.SegmentationLayer.id)
        .outerjoin(
            tm.SegmentationLayer, tm.SegmentationLayer.mapobject_type_id == tm.MapobjectType.id
        )
        .where(tm.MapobjectType.name.in_(list(names)))
    ):
        kinds[kind.name] = kind
        if layer is not None:
            layers[(kind.id, tpoint)] = layer
    session.execute(
        sa.delete(tm.Mapobject).where(
            tm.Mapobject.mapobject_type_id.in_([k.id for k in kinds.values()]),
            tm.Mapobject.partition_key.in_(sorted({p.site_id for p in prepared})),
        )
    )
    return kinds, layers


def _write_plain(
    session: Session, prepared: Sequence[PreparedObjects], orders: dict[str, np.ndarray]
) -> int:
    """:func:`_write` with executemany INSERTs (any database)."""
    kinds, layers = _replace(session, prepared, list(orders))
    total = 0
    for item in prepared:
        if not len(item.labels):
            continue
        kind = kinds[item.name]
        mapobject_ids = session.scalars(
            sa.insert(tm.Mapobject).returning(tm.Mapobject.id, sort_by_parameter_order=True),
            [{"partition_key": item.site_id, "mapobject_type_id": kind.id,
              "ref_id": item.site_id}] * len(item.labels),
        ).all()  # fmt: skip
        layer_id = layers[(kind.id, item.tpoint)]
        session.execute(
            sa.insert(tm.MapobjectSegmentation),
            [
                {
                    "mapobject_id": m,
                    "segmentation_layer_id": layer_id,
                    "partition_key": item.site_id,
                    "geom_polygon": polygon,
                    "geom_centroid": centroid,
                    "label": int(label),
                }  # fmt: skip
                for m, label, polygon, centroid in zip(
                    mapobject_ids, item.labels, item.outlines, item.centroids, strict=True
                )
            ],
        )
        values = item.values[:, orders[item.name]]
        session.execute(
            sa.insert(tm.FeatureValues),
            [
                {
                    "mapobject_id": m,
                    "tpoint": item.tpoint,
                    "partition_key": item.site_id,
                    "values": row,
                }  # fmt: skip
                for m, row in zip(mapobject_ids, values, strict=True)
            ],
        )
        total += len(item.labels)
    return total


# --- COPY (PostgreSQL) -------------------------------------------------------
#
# Binary COPY (tmlib.pgcopy): bytea fields are the bytes the plain path binds
# (WKB of shapely, float64 little-endian of FloatArray). Column types: ids
# BIGINT, the other integers INTEGER (tmlib.models.mapobject).

_INT32 = (-(2**31), 2**31 - 1)

#: a row of mapobjects: (id, partition_key, mapobject_type_id, ref_id)
_MAPOBJECT_ROW = np.dtype(
    [("n", ">i2"), ("l_id", ">i4"), ("id", ">i8"), ("l_key", ">i4"), ("key", ">i4"),
     ("l_type", ">i4"), ("type", ">i4"), ("l_ref", ">i4"), ("ref", ">i4")]
)  # fmt: skip
#: the start of a row of mapobject_segmentations, up to the length of geom_polygon:
#: (mapobject_id, segmentation_layer_id, partition_key, geom_polygon, ...)
_SEGMENTATION_HEAD = np.dtype(
    [("n", ">i2"), ("l_id", ">i4"), ("id", ">i8"), ("l_layer", ">i4"), ("layer", ">i4"),
     ("l_key", ">i4"), ("key", ">i4"), ("l_polygon", ">i4")]
)  # fmt: skip
#: the end of a row of mapobject_segmentations, after geom_centroid: (..., label)
_SEGMENTATION_TAIL = np.dtype([("l_label", ">i4"), ("label", ">i4")])


@dataclass
class _Encoded:
    """What :func:`_write_copy` writes of one :class:`PreparedObjects`, but for ids.

    Made before the write transaction: outlines and centroids as WKB, the
    values in the order of the feature ids.
    """

    item: PreparedObjects
    polygons: list  # bytes or None
    centroids: list  # bytes
    values: np.ndarray  # (K, F) float64, C order


def _encode(prepared: Sequence[PreparedObjects], orders: dict[str, np.ndarray]) -> list[_Encoded]:
    """The bytes of the prepared objects that do not depend on the database (no connection).

    Raises
    ------
    ValueError
        When a label, site id or time point does not fit the INTEGER columns
        (the plain path's INSERT would fail on them too).
    """
    import shapely

    encoded = []
    for item in prepared:
        labels = np.asarray(item.labels, dtype=np.int64)
        count = len(labels)
        if len(item.outlines) != count or len(item.centroids) != count:
            raise ValueError(
                f"objects {item.name} of site {item.site_id}: {count} labels but "
                f"{len(item.outlines)} outlines and {len(item.centroids)} centroids"
            )
        for what, low, high in (("label", labels.min(initial=0), labels.max(initial=0)),
                                ("site id", item.site_id, item.site_id),
                                ("time point", item.tpoint, item.tpoint)):  # fmt: skip
            if low < _INT32[0] or high > _INT32[1]:
                raise ValueError(f"objects {item.name}: {what} out of the range of INTEGER")
        if count:  # as the plain path, which never looks at the values of an empty site
            values = np.ascontiguousarray(
                np.asarray(item.values, dtype=np.float64)[:, orders[item.name]]
            )
            if len(values) != count:
                raise ValueError(
                    f"objects {item.name} of site {item.site_id}: {count} labels but "
                    f"{len(values)} rows of values"
                )
        else:
            values = np.empty((0, 0))
        encoded.append(
            _Encoded(item, _wkb(shapely, item.outlines), _wkb(shapely, item.centroids), values)
        )
    return encoded


def _wkb(shapely, geometries: list) -> list:  # type: ignore[no-untyped-def]
    """WKB of each geometry (None for None), as :class:`tmlib.models.base.Geometry` binds them."""
    array = np.empty(len(geometries), dtype=object)
    array[:] = geometries
    return shapely.to_wkb(array).tolist()


def _write_copy(session: Session, encoded: Sequence[_Encoded]) -> int:
    """:func:`_write` with COPY, in `session`'s transaction (PostgreSQL, psycopg2).

    The objects' ids come from the mapobjects id sequence (one query), ascending
    with the labels as the plain path's INSERTs give them; then one COPY per
    table. Nothing outlives the transaction (works behind PgBouncer).
    """
    names = list(dict.fromkeys(e.item.name for e in encoded))
    kinds, layers = _replace(session, [e.item for e in encoded], names)
    encoded = [e for e in encoded if len(e.centroids)]
    total = sum(len(e.centroids) for e in encoded)
    if not total:
        return 0
    connection = session.connection()
    translate = connection.get_execution_options().get("schema_translate_map") or {}
    preparer = connection.dialect.identifier_preparer

    def table_name(model: type) -> str:
        table = model.__table__  # type: ignore[attr-defined]
        schema = translate.get(table.schema, table.schema)
        name = preparer.quote(table.name)
        return f"{preparer.quote_schema(schema)}.{name}" if schema else name

    mapobjects = table_name(tm.Mapobject)
    ids = np.sort(
        np.fromiter(
            session.execute(
                sa.text(
                    "SELECT nextval(s.seq) FROM (SELECT pg_get_serial_sequence(:t, 'id')"
                    "::regclass AS seq) AS s, generate_series(1, :n)"
                ),
                {"t": mapobjects, "n": total},
            ).scalars(),
            dtype=np.int64,
            count=total,
        )
    )
    objects = np.zeros(total, _MAPOBJECT_ROW)
    objects["n"], objects["l_id"] = 4, 8
    objects["l_key"] = objects["l_type"] = objects["l_ref"] = 4
    objects["id"] = ids
    segmentations, values = [pgcopy.HEADER], [pgcopy.HEADER]
    start = 0
    for e in encoded:
        item, count = e.item, len(e.centroids)
        kind = kinds[item.name]
        part = slice(start, start + count)
        start += count
        objects["key"][part] = objects["ref"][part] = item.site_id
        objects["type"][part] = kind.id
        values.append(_feature_values_bytes(e, ids[part]))
        segmentations.append(_segmentation_bytes(e, ids[part], layers[(kind.id, item.tpoint)]))
    segmentations.append(pgcopy.TRAILER)
    values.append(pgcopy.TRAILER)
    cursor = connection.connection.driver_connection.cursor()
    try:
        _copy(cursor, mapobjects, "id, partition_key, mapobject_type_id, ref_id",
              pgcopy.HEADER + objects.tobytes() + pgcopy.TRAILER)  # fmt: skip
        _copy(cursor, table_name(tm.MapobjectSegmentation),
              "mapobject_id, segmentation_layer_id, partition_key, geom_polygon, "
              "geom_centroid, label", b"".join(segmentations))  # fmt: skip
        _copy(cursor, table_name(tm.FeatureValues),
              "mapobject_id, partition_key, tpoint, values", b"".join(values))  # fmt: skip
    finally:
        cursor.close()
    return total


def _feature_values_bytes(e: _Encoded, ids: np.ndarray) -> bytes:
    count, width = e.values.shape
    rows = np.zeros(count, pgcopy.feature_values_row(width))
    rows["n"], rows["l0"], rows["l1"], rows["l2"], rows["l3"] = 4, 8, 4, 4, 8 * width
    rows["id"], rows["key"], rows["t"] = ids, e.item.site_id, e.item.tpoint
    rows["v"] = e.values
    return rows.tobytes()


def _segmentation_bytes(e: _Encoded, ids: np.ndarray, layer: int) -> bytes:
    count = len(ids)
    heads = np.zeros(count, _SEGMENTATION_HEAD)
    heads["n"], heads["l_id"], heads["l_layer"], heads["l_key"] = 6, 8, 4, 4
    heads["id"], heads["layer"], heads["key"] = ids, layer, e.item.site_id
    heads["l_polygon"] = [-1 if p is None else len(p) for p in e.polygons]
    tails = np.zeros(count, _SEGMENTATION_TAIL)
    tails["l_label"], tails["label"] = 4, e.item.labels
    lengths = np.array([len(c) for c in e.centroids], dtype=">i4").tobytes()
    head_bytes, tail_bytes = heads.tobytes(), tails.tobytes()
    h, t = _SEGMENTATION_HEAD.itemsize, _SEGMENTATION_TAIL.itemsize
    parts = []
    for i, (polygon, centroid) in enumerate(zip(e.polygons, e.centroids, strict=True)):
        parts.append(head_bytes[i * h : (i + 1) * h])
        if polygon is not None:
            parts.append(polygon)
        parts.append(lengths[4 * i : 4 * i + 4])
        parts.append(centroid)
        parts.append(tail_bytes[i * t : (i + 1) * t])
    return b"".join(parts)


def _copy(cursor, table: str, columns: str, data: bytes) -> None:  # type: ignore[no-untyped-def]
    """COPY `data` (binary format) into `columns` of `table` through a psycopg2 cursor."""
    cursor.copy_expert(
        f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT binary)", io.BytesIO(data), 1 << 20
    )
