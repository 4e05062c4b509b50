"""What every analysis tool shares: payload checks, feature loading, results and labels.

A tool run is one *submission*: the request payload (a JSON object) is
validated, the tool computes one label per object (or, for the heat map,
nothing per object), and the outcome is stored as a
:class:`~tmlib.models.ToolResult` with the labels in
:class:`~tmlib.models.LabelValues` (``{str(tool_result_id): label}`` per object
and time point).

Memory is bounded by a batch: features are read in chunks of objects, labels
are written in chunks. Running a submission again replaces its result.
"""

from __future__ import annotations

import abc
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from tmlib.errors import InvalidInputError, NotFoundError
from tmlib.lazy import lazy_import

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

np = lazy_import("numpy")
pd = lazy_import("pandas")
sa = lazy_import("sqlalchemy")
tm = lazy_import("tmlib.models")

logger = logging.getLogger(__name__)

#: objects per chunk when features are read or objects are labelled
BATCH_SIZE = 100_000
#: ids per ``IN (...)`` clause (SQLite allows 32766 bound parameters)
ID_CHUNK = 5_000
#: index levels of the feature and label tables
INDEX = ["mapobject_id", "tpoint"]


# ------------------------------------------------------------------ payloads


def tools_location(experiment_id: int) -> Path:
    """``<experiment>/tools``: payload files (``batches/``) and job logs (``log/``)."""
    return tm.utils.experiment_location(experiment_id) / "tools"


def payload_path(experiment_id: int, tool_name: str, submission_id: int) -> Path:
    """``<experiment>/tools/batches/<Tool>_<submission>.json``."""
    return tools_location(experiment_id) / "batches" / f"{tool_name}_{int(submission_id)}.json"


def write_payload(
    experiment_id: int, tool_name: str, submission_id: int, payload: dict[str, Any]
) -> Path:
    """Store a request payload for the job of a submission (atomically: temp file, rename)."""
    path = payload_path(experiment_id, tool_name, submission_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)
    return path


def read_payload(experiment_id: int, tool_name: str, submission_id: int) -> dict[str, Any]:
    """The payload stored by :func:`write_payload`.

    Raises
    ------
    NotFoundError
        When no payload was stored for that submission.
    InvalidInputError
        When the file is not a JSON object.
    """
    path = payload_path(experiment_id, tool_name, submission_id)
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFoundError(
            f"no {tool_name} request for submission {submission_id} of experiment "
            f"{experiment_id} (expected {path})"
        ) from None
    except ValueError as err:
        raise InvalidInputError(f"request file {path} is not valid JSON: {err}") from None
    if not isinstance(payload, dict):
        raise InvalidInputError(f"request file {path} must hold a JSON object")
    return payload


# ---------------------------------------------------------- payload checking


def require_dict(payload: Any, what: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidInputError(f"{what} must be a JSON object, got {type(payload).__name__}")
    return payload


def require_str(payload: dict[str, Any], key: str, what: str = "payload") -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{what} needs {key!r}: a non-empty string")
    return value


def require_int(
    value: Any,
    key: str,
    default: int | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """An integer option (decimal strings allowed) from `minimum` to `maximum`."""
    if value is None:
        if default is None:
            raise InvalidInputError(f"option {key!r} is required")
        value = default
    text = value.strip() if isinstance(value, str) else ""
    if text and len(text) <= 30 and text.lstrip("-").isdigit():  # no 5000-digit numbers
        value = int(text)
    if not isinstance(value, int) or isinstance(value, bool):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise InvalidInputError(f"option {key!r} must be an integer, got {shown}")
    if minimum is not None and value < minimum:
        raise InvalidInputError(f"option {key!r} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise InvalidInputError(f"option {key!r} must be at most {maximum}, got {value}")
    return value


def parse_object_ids(values: Any, what: str) -> list[int]:
    """Object ids given as integers or decimal strings."""
    if not isinstance(values, list) or not values:
        raise InvalidInputError(f"{what} needs 'object_ids': a non-empty list of object ids")
    ids = []
    for value in values:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidInputError(f"{what}: {value!r} is not an object id")
        ids.append(value)
    return ids


def find_mapobject_type(session: Session, name: str) -> tm.MapobjectType:
    """The object type called `name`.

    Raises
    ------
    InvalidInputError
        When there is none (the message lists the known types).
    """
    mapobject_type = session.scalar(
        sa.select(tm.MapobjectType).where(tm.MapobjectType.name == name)
    )
    if mapobject_type is None:
        known = session.scalars(sa.select(tm.MapobjectType.name).order_by(tm.MapobjectType.name))
        raise InvalidInputError(
            f"unknown object type {name!r}; known types: {', '.join(known) or 'none'}"
        )
    return mapobject_type


def find_features(session: Session, mapobject_type: tm.MapobjectType, names: Any) -> list[str]:
    """Check that `names` is a non-empty list of distinct features of the type.

    Raises
    ------
    InvalidInputError
        For an empty list, duplicates or unknown names (they are listed).
    """
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise InvalidInputError("payload needs 'selected_features': a non-empty list of names")
    if len(set(names)) != len(names):
        raise InvalidInputError("'selected_features' lists a feature more than once")
    known = set(
        session.scalars(
            sa.select(tm.Feature.name).where(tm.Feature.mapobject_type_id == mapobject_type.id)
        )
    )
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInputError(
            f"object type {mapobject_type.name!r} has no feature(s) {', '.join(map(repr, unknown))}"
            f" ({len(known)} features known)"
        )
    return list(names)


def check_objects(session: Session, mapobject_type: tm.MapobjectType, ids: Iterable[int]) -> None:
    """Check that all `ids` are objects of the type.

    Raises
    ------
    InvalidInputError
        Naming up to five ids that are not.
    """
    ids = sorted(set(ids))
    missing: list[int] = []
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        found = set(
            session.scalars(
                sa.select(tm.Mapobject.id).where(
                    tm.Mapobject.id.in_(chunk),
                    tm.Mapobject.mapobject_type_id == mapobject_type.id,
                )
            )
        )
        missing.extend(i for i in chunk if i not in found)
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (" ..." if len(missing) > 5 else "")
        raise InvalidInputError(
            f"{len(missing)} object id(s) are not objects of type {mapobject_type.name!r}: {shown}"
        )


# ---------------------------------------------------------------- features


def _feature_positions(session: Session, mapobject_type_id: int, names: list[str]) -> list[int]:
    # FeatureValues.values hold the type's features in the order of their ids.
    ordered = list(
        session.scalars(
            sa.select(tm.Feature.name)
            .where(tm.Feature.mapobject_type_id == mapobject_type_id)
            .order_by(tm.Feature.id)
        )
    )
    position = {name: i for i, name in enumerate(ordered)}
    missing = [n for n in names if n not in position]
    if missing:
        raise InvalidInputError(f"unknown feature(s) {', '.join(map(repr, missing))}")
    return [position[n] for n in names]


def _frame(rows: list[Any], positions: list[int], names: list[str]) -> pd.DataFrame:
    """Rows of (mapobject_id, tpoint, values) as a frame of the selected columns."""
    take = np.asarray(positions, dtype=np.int64)
    lengths = {len(r[2]) for r in rows}
    if len(lengths) == 1 and take.size and take.max() < lengths.pop():
        matrix = np.vstack([r[2] for r in rows])[:, take]
    else:
        matrix = np.full((len(rows), len(positions)), np.nan)
        for i, (_id, _t, values) in enumerate(rows):
            # objects measured before a feature was added have shorter arrays
            ok = take < len(values)
            matrix[i, ok] = values[take[ok]]
    index = pd.MultiIndex.from_arrays(
        [
            np.array([r[0] for r in rows], dtype=np.int64),
            np.array([r[1] for r in rows], dtype=np.int64),
        ],
        names=INDEX,
    )
    return pd.DataFrame(matrix, index=index, columns=names)


def iter_features(
    experiment_id: int,
    mapobject_type_id: int,
    names: list[str],
    batch_size: int = BATCH_SIZE,
) -> Iterator[pd.DataFrame]:
    """The values of features `names` of all objects of a type, chunk by chunk.

    Each chunk is a frame with the columns `names` (in that order) and the
    index (``mapobject_id``, ``tpoint``), sorted, at most `batch_size` rows.
    Each chunk is read in its own short transaction (keyset paging), so labels
    can be written between chunks.
    """
    with tm.utils.ExperimentSession(experiment_id) as session:
        positions = _feature_positions(session, mapobject_type_id, names)
    fv = tm.FeatureValues
    last: tuple[int, int] | None = None
    while True:
        query = (
            sa.select(fv.mapobject_id, fv.tpoint, fv.values)
            .join(tm.Mapobject, tm.Mapobject.id == fv.mapobject_id)
            .where(tm.Mapobject.mapobject_type_id == mapobject_type_id)
            .order_by(fv.mapobject_id, fv.tpoint)
            .limit(batch_size)
        )
        if last is not None:
            query = query.where(
                sa.or_(
                    fv.mapobject_id > last[0],
                    sa.and_(fv.mapobject_id == last[0], fv.tpoint > last[1]),
                )
            )
        with tm.utils.ExperimentSession(experiment_id) as session:
            rows = session.execute(query).all()
        if not rows:
            return
        yield _frame(rows, positions, names)
        if len(rows) < batch_size:
            return
        last = (rows[-1][0], rows[-1][1])


def load_features(
    experiment_id: int, mapobject_type_id: int, names: list[str], mapobject_ids: Iterable[int]
) -> pd.DataFrame:
    """The values of features `names` of the given objects (all their time points).

    Objects without feature values are absent from the frame.
    """
    ids = sorted(set(mapobject_ids))
    fv = tm.FeatureValues
    frames = []
    with tm.utils.ExperimentSession(experiment_id) as session:
        positions = _feature_positions(session, mapobject_type_id, names)
        for start in range(0, len(ids), ID_CHUNK):
            rows = session.execute(
                sa.select(fv.mapobject_id, fv.tpoint, fv.values)
                .where(fv.mapobject_id.in_(ids[start : start + ID_CHUNK]))
                .order_by(fv.mapobject_id, fv.tpoint)
            ).all()
            frames.append(_frame(rows, positions, names))
    if not frames:
        return _frame([], positions, names)
    return pd.concat(frames)


def count_feature_rows(experiment_id: int, mapobject_type_id: int) -> int:
    """Number of (object, time point) rows with feature values of a type."""
    with tm.utils.ExperimentSession(experiment_id) as session:
        return session.scalar(
            sa.select(sa.func.count())
            .select_from(tm.FeatureValues)
            .join(tm.Mapobject, tm.Mapobject.id == tm.FeatureValues.mapobject_id)
            .where(tm.Mapobject.mapobject_type_id == mapobject_type_id)
        )


def finite_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows whose values are all finite (models cannot use NaN or infinity)."""
    return frame[np.isfinite(frame.to_numpy()).all(axis=1)]


# ------------------------------------------------------------------- labels


def _lock_labels(session: Session) -> None:
    """Take the write lock before reading labels that are then merged and written.

    SQLite starts a write transaction (``BEGIN IMMEDIATE``) at the first
    writing statement, so a no-op update makes the read that follows
    consistent with the write; PostgreSQL uses ``SELECT ... FOR UPDATE``.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(sa.text("UPDATE label_values SET tpoint = tpoint WHERE 0 = 1"))


def _partition_keys(session: Session, object_ids: Iterable[int]) -> dict[int, int]:
    return dict(
        session.execute(
            sa.select(tm.Mapobject.id, tm.Mapobject.partition_key).where(
                tm.Mapobject.id.in_(sorted(set(object_ids)))
            )
        ).all()
    )


def _upsert_labels_pg(session: Session, key: str, chunk: dict[tuple[int, int], float]) -> None:
    """One ``INSERT ... ON CONFLICT`` that merges the labels into existing rows (JSONB ``||``).

    Atomic per row, so tool jobs running at the same time never lose labels.
    """
    from sqlalchemy.dialects.postgresql import insert

    lv = tm.LabelValues
    partition = _partition_keys(session, (i for i, _ in chunk))
    rows = [
        {"mapobject_id": i, "tpoint": t, "partition_key": partition[i], "values": {key: v}}
        for (i, t), v in chunk.items()
        if i in partition  # objects deleted meanwhile get no label
    ]
    if not rows:
        return
    statement = insert(lv)
    statement = statement.on_conflict_do_update(
        index_elements=[lv.mapobject_id, lv.tpoint],
        set_={"values": lv.values.op("||")(statement.excluded["values"])},
    )
    session.execute(statement, rows)


def _merge_labels(session: Session, key: str, chunk: dict[tuple[int, int], float]) -> None:
    """Read, merge and write the labels of a chunk under SQLite's write lock."""
    lv = tm.LabelValues
    _lock_labels(session)
    existing = {
        (r[0], r[1]): r[2]
        for r in session.execute(
            sa.select(lv.mapobject_id, lv.tpoint, lv.values).where(
                lv.mapobject_id.in_(sorted({i for i, _ in chunk}))
            )
        )
    }
    updates = [
        {"mapobject_id": i, "tpoint": t, "values": {**existing[(i, t)], key: v}}
        for (i, t), v in chunk.items()
        if (i, t) in existing
    ]
    new = [pk for pk in chunk if pk not in existing]
    partition = _partition_keys(session, (i for i, _ in new)) if new else {}
    inserts = [
        {
            "mapobject_id": i,
            "tpoint": t,
            "partition_key": partition[i],
            "values": {key: chunk[(i, t)]},
        }
        for i, t in new
        if i in partition
    ]
    if updates:
        session.execute(sa.update(lv), updates)
    if inserts:
        session.execute(sa.insert(lv), inserts)


def save_labels(
    experiment_id: int, result_id: int, labels: pd.Series, batch_size: int = ID_CHUNK
) -> int:
    """Store one label per (object, time point) under the key ``str(result_id)``.

    Labels are merged into the objects' existing :class:`~tmlib.models.LabelValues`
    rows (which hold the labels of other results); objects without a row get
    one. Written in bulk, `batch_size` objects per transaction; safe while
    other tool jobs write labels of the same objects.

    Parameters
    ----------
    labels : pandas.Series
        Indexed by (``mapobject_id``, ``tpoint``); float-convertible values.

    Returns
    -------
    int
        Number of labels written.
    """
    key = str(int(result_id))
    ids = labels.index.get_level_values(0).to_numpy(dtype=np.int64)
    tpoints = labels.index.get_level_values(1).to_numpy(dtype=np.int64)
    values = labels.to_numpy(dtype=np.float64)
    for start in range(0, len(values), batch_size):
        stop = start + batch_size
        chunk = {
            (int(i), int(t)): float(v)
            for i, t, v in zip(
                ids[start:stop], tpoints[start:stop], values[start:stop], strict=True
            )
        }
        with tm.utils.ExperimentSession(experiment_id) as session:
            if session.get_bind().dialect.name == "postgresql":
                _upsert_labels_pg(session, key, chunk)
            else:
                _merge_labels(session, key, chunk)
    return len(values)


def remove_labels(experiment_id: int, result_id: int, batch_size: int = ID_CHUNK) -> int:
    """Remove the labels of a result from all objects; rows left empty are deleted.

    Returns
    -------
    int
        Number of labels removed.
    """
    key = str(int(result_id))
    lv = tm.LabelValues
    removed = 0
    last = (-1, -1)
    while True:
        with tm.utils.ExperimentSession(experiment_id) as session:
            _lock_labels(session)
            query = (
                sa.select(lv.mapobject_id, lv.tpoint, lv.values)
                .where(
                    sa.or_(
                        lv.mapobject_id > last[0],
                        sa.and_(lv.mapobject_id == last[0], lv.tpoint > last[1]),
                    )
                )
                .order_by(lv.mapobject_id, lv.tpoint)
                .limit(batch_size)
            )
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update()
            rows = session.execute(query).all()
            if not rows:
                return removed
            updates, deletes = [], []
            for mapobject_id, tpoint, values in rows:
                if key not in values:
                    continue
                rest = {k: v for k, v in values.items() if k != key}
                if rest:
                    updates.append({"mapobject_id": mapobject_id, "tpoint": tpoint, "values": rest})
                else:
                    deletes.append((mapobject_id, tpoint))
            if updates:
                session.execute(sa.update(lv), updates)
            for mapobject_id, tpoint in deletes:
                session.execute(
                    sa.delete(lv).where(lv.mapobject_id == mapobject_id, lv.tpoint == tpoint)
                )
            removed += len(updates) + len(deletes)
            last = (rows[-1][0], rows[-1][1])


def delete_result(experiment_id: int, result_id: int) -> None:
    """Delete a tool result, its plots and its labels.

    Raises
    ------
    NotFoundError
        When there is no such result.
    """
    with tm.utils.ExperimentSession(experiment_id) as session:
        if session.get(tm.ToolResult, result_id) is None:
            raise NotFoundError(
                f"tool result {result_id} does not exist in experiment {experiment_id}"
            )
    # labels first: ids of deleted results may be reused, and stale labels must not come back
    remove_labels(experiment_id, result_id)
    with tm.utils.ExperimentSession(experiment_id) as session:
        session.execute(sa.delete(tm.ToolResult).where(tm.ToolResult.id == result_id))


def rename_result(experiment_id: int, result_id: int, name: str) -> None:
    """Rename a tool result.

    Raises
    ------
    NotFoundError
        When there is no such result.
    InvalidInputError
        For an empty name.
    AlreadyExistsError
        When another result of the same object type has that name.
    """
    from tmlib.errors import AlreadyExistsError

    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("a tool result name must not be empty")
    if len(name) > 255:
        raise InvalidInputError("a tool result name must have at most 255 characters")
    with tm.utils.ExperimentSession(experiment_id) as session:
        result = session.get(tm.ToolResult, result_id)
        if result is None:
            raise NotFoundError(
                f"tool result {result_id} does not exist in experiment {experiment_id}"
            )
        clash = session.scalar(
            sa.select(tm.ToolResult.id).where(
                tm.ToolResult.name == name,
                tm.ToolResult.mapobject_type_id == result.mapobject_type_id,
                tm.ToolResult.id != result_id,
            )
        )
        if clash is not None:
            raise AlreadyExistsError(f"a tool result named {name!r} exists already")
        result.name = name


# --------------------------------------------------------------------- tools


class Tool(abc.ABC):
    """An analysis tool for one experiment.

    Subclasses set the class attributes and implement :meth:`validate` and
    :meth:`compute`.

    Parameters
    ----------
    experiment_id : int
    """

    #: registered name (``Classification``), used in requests and file names
    name: ClassVar[str]
    #: short code the viewer shows
    icon: ClassVar[str]
    description: ClassVar[str]
    #: the values of ``options.method``
    methods: ClassVar[tuple[str, ...]] = ()
    #: what a run stores: the name of a :class:`tmlib.models.ToolResult` class
    #: (a name, so that defining a tool needs no database models)
    result_model: ClassVar[str] = "ScalarToolResult"

    def __init__(self, experiment_id: int) -> None:
        self.experiment_id = int(experiment_id)

    @abc.abstractmethod
    def validate(self, payload: Any) -> dict[str, Any]:
        """Check a request payload against the experiment; return it normalised.

        The normalised payload holds ``mapobject_type_id`` besides what the
        tool needs.

        Raises
        ------
        InvalidInputError
            With one message saying what is wrong.
        """

    @abc.abstractmethod
    def compute(self, request: dict[str, Any], result_id: int) -> dict[str, Any]:
        """Do the work for a validated request; store labels under `result_id`.

        Returns the result's ``attributes``.
        """

    def process(self, submission_id: int, payload: Any) -> int:
        """Validate, compute and store the result of a submission; return the result id.

        A previous result of the same submission is replaced. When the
        computation fails, no result of the submission is left.
        """
        request = self.validate(payload)
        result_id = self._new_result(submission_id, request["mapobject_type_id"])
        try:
            attributes = self.compute(request, result_id)
        except BaseException:
            delete_result(self.experiment_id, result_id)
            raise
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            result = session.get(tm.ToolResult, result_id)
            result.attributes = attributes
        logger.info("%s result %d of submission %d stored", self.name, result_id, submission_id)
        return result_id

    def _new_result(self, submission_id: int, mapobject_type_id: int) -> int:
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            previous = session.scalar(
                sa.select(tm.ToolResult).where(tm.ToolResult.submission_id == submission_id)
            )
            name = previous.name if previous is not None else None
            previous_id = previous.id if previous is not None else None
        if previous_id is not None:
            delete_result(self.experiment_id, previous_id)
        with tm.utils.ExperimentSession(self.experiment_id) as session:
            name = name or self._free_name(
                session, f"{self.name}-{submission_id}", mapobject_type_id
            )
            result = getattr(tm, self.result_model)(
                name=name,
                tool_name=self.name,
                submission_id=submission_id,
                mapobject_type_id=mapobject_type_id,
                attributes={},
            )
            session.add(result)
            session.flush()
            return result.id

    @staticmethod
    def _free_name(session: Session, name: str, mapobject_type_id: int) -> str:
        taken = set(
            session.scalars(
                sa.select(tm.ToolResult.name).where(
                    tm.ToolResult.mapobject_type_id == mapobject_type_id,
                    tm.ToolResult.name.startswith(name),
                )
            )
        )
        candidate, n = name, 1
        while candidate in taken:  # a user may have renamed another result to this name
            n += 1
            candidate = f"{name} ({n})"
        return candidate

    def check_type(self, session: Session, payload: dict[str, Any]) -> tm.MapobjectType:
        """The object type named by ``chosen_object_type``."""
        return find_mapobject_type(session, require_str(payload, "chosen_object_type"))

    def options(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``payload['options']`` (a dict; empty when absent), with ``method`` checked."""
        options = payload.get("options") or {}
        require_dict(options, "'options'")
        method = options.get("method", self.methods[0] if self.methods else None)
        if self.methods and method not in self.methods:
            raise InvalidInputError(
                f"unknown {self.name} method {method!r}; choose one of {', '.join(self.methods)}"
            )
        return {**options, "method": method}
