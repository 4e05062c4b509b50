"""Storing what a pipeline found: objects, their outlines and their features.

A job computes what it stores of a site (outlines, centroids, values:
:func:`prepare_site`) without the database, then the objects of its batch of
sites go into the database in one short transaction (:func:`save_prepared`), with
bulk inserts: one Mapobject, one MapobjectSegmentation and one FeatureValues
row per object. Feature values are one float64 array per object in the order
of the type's features (:class:`tmlib.models.FeatureValues`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import tmlib.models as tm
from tmlib.errors import InvalidInputError
from tmlib.jterator.pipeline import SiteResult
from tmlib.outlines import label_outlines


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
    # FeatureValues hold values by feature id
    return {
        name: np.argsort(ensure_features(experiment_id, name, item.columns))
        for name, item in first.items()
    }


def _write(
    session: Session, prepared: Sequence[PreparedObjects], orders: dict[str, np.ndarray]
) -> int:
    """Replace the objects of the prepared types at their sites by the prepared ones."""
    kinds = {
        k.name: k
        for k in session.scalars(
            sa.select(tm.MapobjectType).where(tm.MapobjectType.name.in_(list(orders)))
        )
    }
    layers = {
        (layer.mapobject_type_id, layer.tpoint): layer.id
        for layer in session.scalars(
            sa.select(tm.SegmentationLayer).where(
                tm.SegmentationLayer.mapobject_type_id.in_([k.id for k in kinds.values()])
            )
        )
    }
    session.execute(
        sa.delete(tm.Mapobject).where(
            tm.Mapobject.mapobject_type_id.in_([k.id for k in kinds.values()]),
            tm.Mapobject.partition_key.in_(sorted({p.site_id for p in prepared})),
        )
    )
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
