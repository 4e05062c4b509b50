"""Declarative bases and column types shared by all models.

Two metadata collections: :class:`MainModel` for the tables every experiment
shares (users, experiment references, submissions, tasks) and
:class:`ExperimentModel` for the tables of one experiment. The experiment
tables carry no schema name; the engine an experiment session runs on maps them
to ``experiment_<id>`` (PostgreSQL) or puts them in their own SQLite file.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, LargeBinary, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from tmlib.lazy import lazy_import

np = lazy_import("numpy")
shapely = lazy_import("shapely")

#: JSON on SQLite, JSONB (indexable) on PostgreSQL.
JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

#: 64-bit ids on PostgreSQL; SQLite only auto-increments ``INTEGER PRIMARY KEY``
#: (which is 64-bit there anyway).
BigIdType = BigInteger().with_variant(Integer(), "sqlite")


class Geometry(TypeDecorator):
    """A shapely geometry stored as well-known binary (WKB).

    Works on both databases without PostGIS. Coordinates follow the mosaic
    convention: x = column, y = -row, in pixels at the highest zoom level.
    """

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> bytes | None:
        if value is None:
            return None
        return shapely.to_wkb(value)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return shapely.from_wkb(bytes(value))


_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _encode_float(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


class FloatMap(TypeDecorator):
    """A ``{key: float}`` mapping in a JSON column that keeps NaN and ±infinity.

    JSON (and PostgreSQL's JSONB) has no NaN or infinity, yet measurements
    produce them; they are stored as the strings ``"NaN"``, ``"Infinity"`` and
    ``"-Infinity"`` and turned back into floats on read.
    """

    impl = JSONType
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return {str(k): _encode_float(v) for k, v in value.items()}

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return {k: _NON_FINITE.get(v, v) if isinstance(v, str) else v for k, v in value.items()}


class FloatArray(TypeDecorator):
    """A 1D float64 numpy array stored as its raw bytes (BYTEA / BLOB).

    Feature values use it: a row per object holds its values in the order of
    its type's features, 8 bytes each, with NaN and infinities as they are.
    That is about 3x smaller and many times faster to write and read than a
    JSON or HSTORE map of names to decimal strings.
    """

    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return np.ascontiguousarray(value, dtype="<f8").tobytes()

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return np.frombuffer(value, dtype="<f8")


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Timestamps:
    """``created_at``/``updated_at`` columns (UTC, naive)."""

    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime, default=_utcnow, server_default=func.current_timestamp()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime, default=_utcnow, onupdate=_utcnow, server_default=func.current_timestamp()
    )


class MainModel(DeclarativeBase):
    """Base of the tables in the main database (schema ``public``)."""


class ExperimentModel(DeclarativeBase):
    """Base of the tables of one experiment (schema ``experiment_<id>``)."""
