"""Features of object types: upload, rename, delete, and fast streamed CSV export.

Exporting a plate's objects is the bulk download of a screen (10^6 objects ×
50 features is 50 million numbers), so the CSV is produced without a Python
call per value: rows are read from the database in chunks of raw
:class:`~tmlib.models.FeatureValues` arrays and formatted a chunk at a time
by polars' CSV writer (:func:`format_rows`). Memory is bounded by a chunk
whatever the number of objects.

Numbers are written in the shortest form that reads back as the same
float64, so a download loses no precision (the original kept 6 decimals).
"""

from __future__ import annotations

import contextlib
import csv
import io
import queue
import struct
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import sqlalchemy as sa
from sqlalchemy.orm import Session

import tmlib.models as tm
from tmlib import pgcopy
from tmlib.errors import InvalidInputError, NotFoundError

#: rows fetched from the database per round trip (and formatted at once)
_FETCH_ROWS = 20000

Column = np.ndarray | bytes


def format_rows(columns: Sequence[Column]) -> bytes:
    """CSV lines of a table given by columns, formatted by polars' CSV writer.

    Floats are written in the shortest form that reads back as the same
    float64 (so downloads are exact); NaN as ``NaN``, infinities as ``inf``.

    Parameters
    ----------
    columns : sequence
        Each either a 1D integer array, a 1D or 2D float array (2D: several
        columns at once, shape (n, k)) or ``bytes`` (the same already escaped
        text in every row). All arrays have the same number of rows n.

    Returns
    -------
    bytes
        n lines, each ending with ``\\n``.
    """
    n = next((len(c) for c in columns if not isinstance(c, bytes)), None)
    if n is None:
        raise ValueError("format_rows needs at least one array column")
    if n == 0:
        return b""
    series = []
    for i, column in enumerate(columns):
        if isinstance(column, bytes):
            series.append(pl.repeat(column.decode(), n, eager=True).alias(f"c{i}"))
            continue
        table = np.asarray(column).reshape(n, -1)
        series += [pl.Series(f"c{i}_{j}", table[:, j]) for j in range(table.shape[1])]
    buffer = io.BytesIO()
    # the text columns are escaped already; nothing else needs quotes
    pl.DataFrame(series).write_csv(buffer, include_header=False, quote_style="never")
    return buffer.getvalue()


def _csv_text(value: object) -> bytes:
    """One CSV field (quoted where needed) as bytes."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([value])
    return out.getvalue().encode()


def csv_header(names: Sequence[str]) -> bytes:
    """The header line of a CSV with these column names."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(names)
    return out.getvalue().encode()


# ------------------------------------------------------------------ lookups


def get_mapobject_type(session: Session, mapobject_type_id: int) -> tm.MapobjectType:
    """The object type with that id.

    Raises
    ------
    NotFoundError
    """
    kind = session.get(tm.MapobjectType, mapobject_type_id)
    if kind is None:
        raise NotFoundError(f"object type {mapobject_type_id} does not exist")
    return kind


def sorted_features(kind: tm.MapobjectType) -> list[tm.Feature]:
    """The features of a type in the order of :attr:`FeatureValues.values` (by id)."""
    return sorted(kind.features, key=lambda f: f.id)


@dataclass(frozen=True)
class SiteInfo:
    """Where a partition (site, well or plate) is: names and grid position."""

    plate_name: str
    well_name: str | None = None
    well_pos_y: int | None = None
    well_pos_x: int | None = None


def partitions(
    session: Session,
    ref_type: str,
    plate_name: str | None = None,
    well_name: str | None = None,
    well_pos_x: int | None = None,
    well_pos_y: int | None = None,
) -> dict[int, SiteInfo]:
    """The partition keys of objects of a reference type, filtered by location.

    Objects of ``Site`` types have the site id as partition key, ``Well``
    types the well id, ``Plate`` types the plate id. Filters that do not
    apply to the type (a well position for wells) are ignored.

    Returns
    -------
    dict
        Partition key to its :class:`SiteInfo`, in plate, well, y, x order.

    Raises
    ------
    NotFoundError
        When a named plate or well does not exist.
    """
    if plate_name is not None and not session.scalar(
        sa.select(tm.Plate.id).where(tm.Plate.name == plate_name)
    ):
        raise NotFoundError(f"plate {plate_name!r} does not exist")
    if ref_type == "Plate":
        query = sa.select(tm.Plate.id, tm.Plate.name).order_by(tm.Plate.name)
        if plate_name is not None:
            query = query.where(tm.Plate.name == plate_name)
        return {pid: SiteInfo(name) for pid, name in session.execute(query)}
    if well_name is not None and not session.scalar(
        sa.select(tm.Well.id).where(tm.Well.name == well_name)
    ):
        raise NotFoundError(f"well {well_name!r} does not exist")
    if ref_type == "Well":
        query = (
            sa.select(tm.Well.id, tm.Plate.name, tm.Well.name)
            .join(tm.Plate, tm.Well.plate_id == tm.Plate.id)
            .order_by(tm.Plate.name, tm.Well.name)
        )
    else:
        query = (
            sa.select(tm.Site.id, tm.Plate.name, tm.Well.name, tm.Site.y, tm.Site.x)
            .join(tm.Well, tm.Site.well_id == tm.Well.id)
            .join(tm.Plate, tm.Well.plate_id == tm.Plate.id)
            .order_by(tm.Plate.name, tm.Well.name, tm.Site.y, tm.Site.x)
        )
        if well_pos_x is not None:
            query = query.where(tm.Site.x == well_pos_x)
        if well_pos_y is not None:
            query = query.where(tm.Site.y == well_pos_y)
    if plate_name is not None:
        query = query.where(tm.Plate.name == plate_name)
    if well_name is not None:
        query = query.where(tm.Well.name == well_name)
    return {row[0]: SiteInfo(*row[1:]) for row in session.execute(query)}


def export_filename(
    experiment_name: str,
    type_name: str,
    suffix: str,
    plate_name: str | None = None,
    well_name: str | None = None,
    well_pos_y: int | None = None,
    well_pos_x: int | None = None,
    tpoint: int | None = None,
) -> str:
    """``<exp>[_<plate>][_<well>][_y<y>][_x<x>][_t<t>]_<type>_<suffix>.csv`` (reference §7.2)."""
    parts = [experiment_name]
    if plate_name is not None:
        parts.append(plate_name)
    if well_name is not None:
        parts.append(well_name)
    if well_pos_y is not None:
        parts.append(f"y{well_pos_y}")
    if well_pos_x is not None:
        parts.append(f"x{well_pos_x}")
    if tpoint is not None:
        parts.append(f"t{tpoint}")
    parts += [type_name, suffix]
    return "_".join(parts) + ".csv"


# ------------------------------------------------------------------ reading


def _values_matrix(blobs: Sequence[bytes], n_features: int) -> np.ndarray:
    """(rows, n_features) float64 of raw FeatureValues arrays (short rows padded with NaN)."""
    joined = b"".join(blobs)
    if len(joined) == 8 * n_features * len(blobs):
        return np.frombuffer(joined, "<f8").reshape(len(blobs), n_features)
    out = np.full((len(blobs), n_features), np.nan)
    for i, blob in enumerate(blobs):  # rows written before a feature was added
        row = np.frombuffer(blob, "<f8")[:n_features]
        out[i, : row.size] = row
    return out


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _driver_sql(session: Session, query: sa.Select) -> tuple[Any, str]:
    """The DBAPI connection of a session and a query of integer parameters as SQL text.

    On PostgreSQL the experiment's schema is put on the transaction's search
    path, since the text bypasses SQLAlchemy's schema translation.
    """
    connection = session.connection()
    sql = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    raw = connection.connection.dbapi_connection
    if connection.dialect.name == "postgresql":
        translate = connection.get_execution_options().get("schema_translate_map") or {}
        if translate.get(None):
            with raw.cursor() as setup:  # for this transaction only
                setup.execute("SET LOCAL search_path TO %s, public", (translate[None],))
    return raw, sql


def driver_rows(session: Session, query: sa.Select, size: int) -> Iterator[list[tuple]]:
    """Rows of a query of integer parameters, `size` at a time, from the driver's cursor.

    For bulk exports: SQLAlchemy's result rows cost more than the database
    itself. On PostgreSQL the cursor is a server-side one (rows arrive in
    batches, memory stays bounded).
    """
    raw, sql = _driver_sql(session, query)
    if session.connection().dialect.name == "postgresql":
        cursor = raw.cursor(name=f"tm_rows_{uuid.uuid4().hex}")
        cursor.itersize = size
    else:
        cursor = raw.cursor()
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(size):
            yield rows
    finally:
        cursor.close()


class _CopyParser:
    """Rows of PostgreSQL's binary COPY of (mapobject_id, partition_key, tpoint, values).

    Rows whose values have the type's full length are read by numpy in place;
    others (written before a feature was added) field by field.
    """

    _HEADER = len(pgcopy.HEADER)  # signature, flags, length of the header extension

    def __init__(self, n_features: int) -> None:
        self.n_features = n_features
        self.dtype = pgcopy.feature_values_row(n_features)
        self.buffer = bytearray()
        self.started = False
        self.done = False
        self.rows: list[tuple[np.ndarray, ...]] = []
        self.n_rows = 0

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if not self.started:
            if len(self.buffer) < self._HEADER:
                return
            (extension,) = struct.unpack_from(">i", self.buffer, self._HEADER - 4)
            if len(self.buffer) < self._HEADER + extension:
                return
            del self.buffer[: self._HEADER + extension]
            self.started = True
        offset = 0
        while not self.done:
            whole = (len(self.buffer) - offset) // self.dtype.itemsize
            if whole:
                size = whole * self.dtype.itemsize
                # a slice is a copy: a view would pin the bytearray, which is cut below
                rows = np.frombuffer(self.buffer[offset : offset + size], self.dtype)
                regular = (
                    (rows["n"] == 4) & (rows["l0"] == 8) & (rows["l1"] == 4)
                    & (rows["l2"] == 4) & (rows["l3"] == 8 * self.n_features)
                )  # fmt: skip
                k = whole if regular.all() else int(np.argmin(regular))
                if k:
                    rows = rows[:k]
                    self._add(rows["id"], rows["key"], rows["t"], rows["v"])
                    offset += k * self.dtype.itemsize
                    continue
            consumed = self._one_row(offset)
            if consumed == 0:
                break  # wait for more data
            offset += consumed
        del self.buffer[:offset]

    def _one_row(self, offset: int) -> int:
        """Parse one irregular row (or the trailer) at `offset`; bytes used, 0 if incomplete."""
        end = len(self.buffer)
        if offset + 2 > end:
            return 0
        (count,) = struct.unpack_from(">h", self.buffer, offset)
        if count == -1:
            self.done = True
            return 2
        position, fields = offset + 2, []
        for _ in range(count):
            if position + 4 > end:
                return 0
            (length,) = struct.unpack_from(">i", self.buffer, position)
            position += 4
            if position + max(length, 0) > end:
                return 0
            fields.append(bytes(self.buffer[position : position + max(length, 0)]))
            position += max(length, 0)
        number = [int.from_bytes(f, "big", signed=True) for f in fields[:3]]
        self._add(*(np.array([v]) for v in number), _values_matrix([fields[3]], self.n_features))
        return position - offset

    def _add(self, *columns: np.ndarray) -> None:
        # to native byte order (a copy only where the COPY's big-endian needs one)
        self.rows.append(tuple(np.asarray(c, dtype=np.int64 if c.ndim == 1 else np.float64)
                               for c in columns))  # fmt: skip
        self.n_rows += len(columns[0])

    def take(self, at_least: int) -> Iterator[tuple[np.ndarray, ...]]:
        """The rows parsed so far, once there are `at_least` of them, as one chunk."""
        if self.rows and self.n_rows >= at_least:
            yield tuple(np.concatenate(parts) for parts in zip(*self.rows, strict=True))
            self.rows, self.n_rows = [], 0


def _copy_chunks(
    session: Session, query: sa.Select, n_features: int
) -> Iterator[tuple[np.ndarray, ...]]:
    """Chunks of (mapobject_id, partition_key, tpoint, values) by binary COPY (PostgreSQL).

    psycopg2 receives ``bytea`` as hex text, which took half the time of a
    whole type's export; a binary COPY carries the raw bytes. The COPY runs in
    a thread that hands its data over through a short queue, so memory stays
    bounded by a few megabytes whatever the number of objects.
    """
    raw, sql = _driver_sql(session, query)
    handover: queue.Queue = queue.Queue(maxsize=8)
    stop = threading.Event()

    class Sink:
        """Collects the rows (psycopg2 writes one at a time) into blocks of a megabyte."""

        def __init__(self) -> None:
            self.block = bytearray()

        def write(self, data: bytes) -> int:
            self.block += data
            if len(self.block) >= 1 << 20:
                self.flush()
            return len(data)

        def flush(self) -> None:
            if stop.is_set():
                raise RuntimeError("export stopped by its reader")
            handover.put(bytes(self.block))
            self.block.clear()

    def produce() -> None:
        try:
            sink = Sink()
            with raw.cursor() as cursor:
                cursor.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT binary)", sink)
            sink.flush()
            handover.put(None)
        except BaseException as err:  # handed to the reader
            handover.put(err)

    thread = threading.Thread(target=produce, name="feature-copy", daemon=True)
    thread.start()
    parser = _CopyParser(n_features)
    finished = False
    try:
        while (item := handover.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            parser.feed(item)
            yield from parser.take(_FETCH_ROWS)
        finished = True
        yield from parser.take(1)
    finally:
        stop.set()
        while thread.is_alive():  # let a stopped COPY end before the session goes on
            with contextlib.suppress(queue.Empty):
                handover.get(timeout=0.1)
        thread.join()
        if not finished:
            session.connection().invalidate()  # an interrupted COPY leaves it unusable


def iter_feature_values(
    session: Session,
    mapobject_type_id: int,
    partition_keys: Sequence[int] | None = None,
    tpoint: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Feature values of a type's objects in chunks, streamed from the database.

    Parameters
    ----------
    partition_keys : sequence of int, optional
        Only objects of these sites (wells, plates); all if None.
    tpoint : int, optional
        Only this time point.

    Yields
    ------
    mapobject_ids, partition_keys, tpoints : ndarray, shape (k,), int64
    values : ndarray, shape (k, n_features), float64
        In the order of :func:`sorted_features`. Rows are ordered by
        object id, or with `partition_keys` by partition key (in the order
        given), then object id and time point.
    """
    kind = get_mapobject_type(session, mapobject_type_id)
    n_features = len(kind.features)
    fv, mo = tm.FeatureValues.__table__, tm.Mapobject.__table__
    base = (
        sa.select(
            fv.c.mapobject_id,
            fv.c.partition_key,
            fv.c.tpoint,
            sa.type_coerce(fv.c["values"], sa.LargeBinary),
        )
        .join(mo, mo.c.id == fv.c.mapobject_id)
        .where(mo.c.mapobject_type_id == mapobject_type_id)
    )
    if tpoint is not None:
        base = base.where(fv.c.tpoint == tpoint)
    if partition_keys is None:
        # by object only: the objects' index yields that order, so the
        # database needs no sort of the whole table (time points of an object
        # follow each other in the order of its key)
        queries = [base.order_by(mo.c.id)]
    else:
        # one query per group of sites keeps the IN list short and the order by site
        queries = [
            base.where(fv.c.partition_key.in_(list(group))).order_by(
                fv.c.partition_key, fv.c.mapobject_id, fv.c.tpoint
            )
            for group in _chunks(list(partition_keys), 500)
        ]
    if partition_keys is None and session.connection().dialect.name == "postgresql":
        yield from _copy_chunks(session, queries[0], n_features)
        return
    for query in queries:
        for rows in driver_rows(session, query, _FETCH_ROWS):
            ids, keys, tpoints, blobs = zip(*rows, strict=True)
            yield (
                np.fromiter(ids, np.int64, len(ids)),
                np.fromiter(keys, np.int64, len(keys)),
                np.fromiter(tpoints, np.int64, len(tpoints)),
                _values_matrix(blobs, n_features),
            )


def feature_values_csv(
    experiment_id: int,
    mapobject_type_id: int,
    plate_name: str | None = None,
    well_name: str | None = None,
    well_pos_x: int | None = None,
    well_pos_y: int | None = None,
    tpoint: int | None = None,
) -> Iterator[bytes]:
    """The feature-values CSV of a type: ``mapobject_id,<features by id>``, streamed.

    Validation (unknown type, plate or well) happens at the first ``next()``;
    call :func:`check_export` first to fail before a response starts.

    Yields
    ------
    bytes
        The header, then blocks of lines.
    """
    with tm.utils.ExperimentSession(experiment_id) as session:
        kind = get_mapobject_type(session, mapobject_type_id)
        names = [f.name for f in sorted_features(kind)]
        keys = _filter_keys(session, kind.ref_type, plate_name, well_name, well_pos_x, well_pos_y)
        yield csv_header(["mapobject_id", *names])
        for ids, _, _, values in iter_feature_values(session, kind.id, keys, tpoint):
            yield format_rows([ids, values])


def _filter_keys(
    session: Session,
    ref_type: str,
    plate_name: str | None,
    well_name: str | None,
    well_pos_x: int | None,
    well_pos_y: int | None,
) -> list[int] | None:
    if plate_name is None and well_name is None and well_pos_x is None and well_pos_y is None:
        return None
    return list(partitions(session, ref_type, plate_name, well_name, well_pos_x, well_pos_y))


def check_export(
    experiment_id: int,
    mapobject_type_id: int,
    plate_name: str | None = None,
    well_name: str | None = None,
    well_pos_x: int | None = None,
    well_pos_y: int | None = None,
) -> tuple[str, str]:
    """Validate an export request; returns (experiment name, type name).

    Raises
    ------
    NotFoundError
        When the type, the plate or the well does not exist.
    """
    with tm.utils.ExperimentSession(experiment_id) as session:
        kind = get_mapobject_type(session, mapobject_type_id)
        _filter_keys(session, kind.ref_type, plate_name, well_name, well_pos_x, well_pos_y)
        type_name = kind.name
    with tm.utils.MainSession() as session:
        experiment_name = session.get(tm.ExperimentReference, experiment_id).name
    return experiment_name, type_name


def _site_segmentations(
    session: Session, kind: tm.MapobjectType, site_id: int
) -> list[tuple[int, int]]:
    """(mapobject id, label) of each of the site's segmentations of a type (all layers)."""
    seg = tm.MapobjectSegmentation.__table__
    return [
        (m, label)
        for m, label in session.execute(
            sa.select(seg.c.mapobject_id, seg.c.label).where(
                seg.c.partition_key == site_id,
                seg.c.segmentation_layer_id.in_([layer.id for layer in kind.layers]),
            )
        )
    ]


def features_table_csv(experiment_id: int, type_name: str) -> Iterator[bytes]:
    """Every object of a type with where it is (the ``jterator export-features`` table).

    Columns: plate, well, site_y, site_x, tpoint, label, mapobject_id and the
    features by id; one row per object and time point, site by site.

    Raises
    ------
    NotFoundError
        When the experiment has no objects of that type (at the first ``next()``).
    """
    with tm.utils.ExperimentSession(experiment_id) as session:
        kind = session.scalar(sa.select(tm.MapobjectType).where(tm.MapobjectType.name == type_name))
        if kind is None:
            known = ", ".join(session.scalars(sa.select(tm.MapobjectType.name)))
            raise NotFoundError(f"no objects {type_name!r}; object types: {known or 'none'}")
        names = [f.name for f in sorted_features(kind)]
        yield csv_header(["plate", "well", "site_y", "site_x", "tpoint", "label", "mapobject_id",
                          *names])  # fmt: skip
        sites = partitions(session, "Site")
        for key, info in sites.items():
            prefix = b",".join(
                _csv_text(v) for v in (info.plate_name, info.well_name, info.well_pos_y,
                                       info.well_pos_x)
            )  # fmt: skip
            for tpoints, labels, ids, values in site_feature_rows(session, kind, key):
                yield format_rows([prefix, tpoints, labels, ids, values])


def site_feature_rows(
    session: Session, kind: tm.MapobjectType, site_id: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The feature values of a type's objects at one site, with their labels, in chunks.

    Yields
    ------
    tpoints, labels, mapobject_ids : ndarray, shape (k,), int64
        Each chunk ordered by time point, then object id; label -1 for an
        object without a segmentation at the site.
    values : ndarray, shape (k, n_features), float64
        In the order of :func:`sorted_features`.
    """
    labels = dict(_site_segmentations(session, kind, site_id))
    for ids, _, tpoints, values in iter_feature_values(session, kind.id, [site_id]):
        order = np.lexsort((ids, tpoints))
        label = np.array([labels.get(int(i), -1) for i in ids], np.int64)
        yield tpoints[order], label[order], ids[order], values[order]


# ------------------------------------------------------------------ writing


def add_feature_values(
    experiment_id: int,
    mapobject_type_id: int,
    site_id: int,
    tpoint: int,
    names: Sequence[str],
    labels: Sequence[int],
    values: Sequence[Sequence[float | None]],
) -> int:
    """Store feature values of the objects of a site, creating the features.

    The objects are found by their label in the type's segmentations at the
    site. Values of these objects at this time point are replaced.

    Parameters
    ----------
    names : sequence of str
        p feature names; a type whose features exist must get exactly those.
    labels : sequence of int
        n object labels.
    values : n × p numbers (None for missing)

    Returns
    -------
    int
        Number of objects written.

    Raises
    ------
    InvalidInputError
        Bad shapes, duplicate names or labels, labels without objects, or
        other features than the type has.
    NotFoundError
        Unknown type.
    """
    from tmlib.jterator.saving import ensure_features

    names = list(names)
    labels = [int(x) for x in labels]
    if not names or any(not isinstance(n, str) or not n.strip() for n in names):
        raise InvalidInputError("feature names must be non-empty strings")
    if len(set(names)) != len(names):
        raise InvalidInputError("feature names must be unique")
    if len(set(labels)) != len(labels):
        raise InvalidInputError("object labels must be unique")
    try:
        table = np.array(
            [[np.nan if v is None else v for v in row] for row in values], dtype=np.float64
        )
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"values must be numbers: {err}") from None
    if table.shape != (len(labels), len(names)) and not (len(labels) == 0 and table.size == 0):
        raise InvalidInputError(
            f"values must be {len(labels)} rows (labels) × {len(names)} columns (names), "
            f"got shape {table.shape}"
        )
    with tm.utils.ExperimentSession(experiment_id) as session:
        kind = get_mapobject_type(session, mapobject_type_id)
        type_name = kind.name
        found = {label: m for m, label in _site_segmentations(session, kind, site_id)}
    missing = [x for x in labels if x not in found]
    if missing:
        raise InvalidInputError(
            f"site {site_id} has no {type_name} objects with labels "
            f"{', '.join(map(str, missing[:10]))}; upload their segmentation first"
        )
    feature_ids = ensure_features(experiment_id, type_name, names)
    table = table.reshape(len(labels), len(names))[:, np.argsort(feature_ids)]
    ids = [found[x] for x in labels]
    with tm.utils.ExperimentSession(experiment_id) as session:
        fv = tm.FeatureValues.__table__
        for group in _chunks(ids, 500):
            session.execute(
                sa.delete(fv).where(fv.c.mapobject_id.in_(list(group)), fv.c.tpoint == tpoint)
            )
        if ids:
            session.execute(
                sa.insert(tm.FeatureValues),
                [
                    {"mapobject_id": m, "tpoint": tpoint, "partition_key": site_id, "values": row}
                    for m, row in zip(ids, table, strict=True)
                ],
            )
    return len(ids)


def _get_feature(session: Session, feature_id: int) -> tm.Feature:
    feature = session.get(tm.Feature, feature_id)
    if feature is None:
        raise NotFoundError(f"feature {feature_id} does not exist")
    return feature


def rename_feature(experiment_id: int, feature_id: int, name: str) -> None:
    """Rename a feature.

    Raises
    ------
    NotFoundError, AlreadyExistsError, InvalidInputError
    """
    from tmlib.errors import AlreadyExistsError

    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise InvalidInputError("a feature name must have 1 to 255 characters")
    with tm.utils.ExperimentSession(experiment_id) as session:
        feature = _get_feature(session, feature_id)
        clash = session.scalar(
            sa.select(tm.Feature.id).where(
                tm.Feature.mapobject_type_id == feature.mapobject_type_id,
                tm.Feature.name == name,
                tm.Feature.id != feature_id,
            )
        )
        if clash is not None:
            raise AlreadyExistsError(f"the object type already has a feature {name!r}")
        feature.name = name


def delete_feature(experiment_id: int, feature_id: int) -> None:
    """Delete a feature and its column of every object's values (one transaction).

    Raises
    ------
    NotFoundError
    """
    with tm.utils.ExperimentSession(experiment_id) as session:
        feature = _get_feature(session, feature_id)
        kind = feature.mapobject_type
        position = [f.id for f in sorted_features(kind)].index(feature_id)
        n = len(kind.features)
        fv, mo = tm.FeatureValues.__table__, tm.Mapobject.__table__
        raw = sa.type_coerce(fv.c["values"], sa.LargeBinary)
        query = (
            sa.select(fv.c.mapobject_id, fv.c.tpoint, raw)
            .join(mo, mo.c.id == fv.c.mapobject_id)
            .where(mo.c.mapobject_type_id == kind.id)
        )
        update = (
            sa.update(fv)
            .where(fv.c.mapobject_id == sa.bindparam("m"), fv.c.tpoint == sa.bindparam("t"))
            .values({"values": sa.bindparam("v", type_=sa.LargeBinary)})
        )
        last = -1
        while True:  # pages of objects by id: memory bounded, no cursor open while updating
            ids = session.scalars(
                sa.select(mo.c.id)
                .where(mo.c.mapobject_type_id == kind.id, mo.c.id > last)
                .order_by(mo.c.id)
                .limit(5000)
            ).all()
            if not ids:
                break
            last = ids[-1]
            rows = session.execute(query.where(fv.c.mapobject_id.in_(ids))).all()
            if not rows:
                continue
            kept = np.delete(_values_matrix([r[2] for r in rows], n), position, axis=1)
            session.execute(
                update,
                [
                    {"m": r[0], "t": r[1], "v": row.astype("<f8").tobytes()}
                    for r, row in zip(rows, kept, strict=True)
                ],
            )
        session.delete(feature)


# ------------------------------------------------------------------ metadata

#: location columns of the metadata CSV by reference type
METADATA_COLUMNS = {
    "Plate": ["plate_name"],
    "Well": ["plate_name", "well_name"],
    "Site": ["plate_name", "well_name", "well_pos_y", "well_pos_x", "tpoint", "zplane", "label",
             "is_border"],
}  # fmt: skip


def metadata_csv(
    experiment_id: int,
    mapobject_type_id: int,
    plate_name: str | None = None,
    well_name: str | None = None,
    well_pos_x: int | None = None,
    well_pos_y: int | None = None,
    tpoint: int | None = None,
) -> Iterator[bytes]:
    """The metadata CSV of a type, streamed (reference §7.2).

    Columns: ``mapobject_id``, the location columns of the type's reference
    type (:data:`METADATA_COLUMNS`) and one column per tool result of the
    type (its name; the object's label value). One row per object and
    segmentation layer (time point and z-plane). ``is_border`` is 1 where the
    object's outline touches its site's border.
    """
    from tmlib.mosaic import experiment_mosaic

    with tm.utils.ExperimentSession(experiment_id) as session:
        kind = get_mapobject_type(session, mapobject_type_id)
        ref_type = kind.ref_type if kind.ref_type in METADATA_COLUMNS else "Site"
        results = session.execute(
            sa.select(tm.ToolResult.id, tm.ToolResult.name)
            .where(tm.ToolResult.mapobject_type_id == kind.id)
            .order_by(tm.ToolResult.id)
        ).all()
        layers = {
            layer.id: (layer.tpoint, layer.zplane)
            for layer in kind.layers
            if tpoint is None or layer.tpoint in (None, tpoint)
        }
        keys = partitions(session, ref_type, plate_name, well_name, well_pos_x, well_pos_y)
        yield csv_header(["mapobject_id", *METADATA_COLUMNS[ref_type], *(r[1] for r in results)])
        boxes = {}
        if ref_type == "Site" and keys:
            aligned = session.scalar(sa.select(sa.func.count()).select_from(tm.SiteShift)) > 0
            boxes = experiment_mosaic(session, aligned=aligned).sites
        seg, lv = tm.MapobjectSegmentation.__table__, tm.LabelValues.__table__
        for group in _chunks(list(keys), 50):
            rows = session.execute(
                sa.select(seg.c.mapobject_id, seg.c.partition_key, seg.c.segmentation_layer_id,
                          seg.c.label, seg.c.geom_polygon)
                .where(seg.c.partition_key.in_(list(group)),
                       seg.c.segmentation_layer_id.in_(list(layers)))
                .order_by(seg.c.partition_key, seg.c.mapobject_id)
            ).all()  # fmt: skip
            if not rows:
                continue
            labels: dict[tuple[int, int], dict] = {}
            if results:
                ids = sorted({r[0] for r in rows})
                for chunk in _chunks(ids, 500):
                    for m, t, values in session.execute(
                        sa.select(lv.c.mapobject_id, lv.c.tpoint, lv.c["values"]).where(
                            lv.c.mapobject_id.in_(list(chunk))
                        )
                    ):
                        labels[(m, t)] = values or {}
            out = []
            for m, key, layer_id, label, polygon in rows:
                info = keys[key]
                t, z = layers[layer_id]
                fields: list[object] = [m, info.plate_name]
                if ref_type != "Plate":
                    fields.append(info.well_name)
                if ref_type == "Site":
                    fields += [info.well_pos_y, info.well_pos_x, t, z, label,
                               int(_is_border(polygon, boxes.get(key)))]  # fmt: skip
                got = labels.get((m, t or 0), {})
                fields += [got.get(str(r[0]), "") for r in results]
                out.append(fields)
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerows(
                ["" if v is None else v for v in row] for row in out
            )
            yield text.getvalue().encode()


def _is_border(polygon: object, box: object) -> bool:
    """Whether an outline touches the border of its site's box (pixel contours)."""
    if polygon is None or box is None:
        return False
    minx, miny, maxx, maxy = polygon.bounds
    return minx <= box.x or maxx >= box.right - 1 or -maxy <= box.y or -miny >= box.bottom - 1
