"""Storing what a pipeline found: objects, their outlines and their features.

Objects of a batch of sites go into the database in one transaction, with
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


def save_objects(
    session: Session,
    experiment_id: int,
    outputs: Sequence[SiteOutput],
    as_polygons: dict[str, bool],
) -> int:
    """Insert the objects of several sites (the caller's transaction); returns how many.

    Objects of the same types at these sites from an earlier run are deleted
    first, so running a job again replaces what it wrote.
    """
    if not outputs:
        return 0
    # features first, in their own transactions: before this one writes (and
    # on SQLite holds the database's write lock)
    orders = {
        name: np.argsort(
            ensure_features(experiment_id, name, list(outputs[0].result.features[name].columns))
        )  # FeatureValues hold values by feature id
        for name in as_polygons
    }
    kinds = {
        k.name: k
        for k in session.scalars(
            sa.select(tm.MapobjectType).where(tm.MapobjectType.name.in_(list(as_polygons)))
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
            tm.Mapobject.partition_key.in_(sorted({o.site_id for o in outputs})),
        )
    )
    total = 0
    for name, polygons in as_polygons.items():
        kind = kinds[name]
        for output in outputs:
            labels = output.result.objects[name]
            features = output.result.features[name]
            if list(features.columns) != list(outputs[0].result.features[name].columns):
                raise InvalidInputError(
                    f"objects {name}: site {output.site_id} has other features than site "
                    f"{outputs[0].site_id}"
                )
            ids_, outlines, centroids = label_outlines(labels, output.offset, polygons)
            if not len(ids_):
                continue
            mapobject_ids = session.scalars(
                sa.insert(tm.Mapobject).returning(tm.Mapobject.id, sort_by_parameter_order=True),
                [
                    {
                        "partition_key": output.site_id,
                        "mapobject_type_id": kind.id,
                        "ref_id": output.site_id,
                    }
                ]
                * len(ids_),  # fmt: skip
            ).all()
            layer_id = layers[(kind.id, output.tpoint)]
            session.execute(
                sa.insert(tm.MapobjectSegmentation),
                [
                    {
                        "mapobject_id": m,
                        "segmentation_layer_id": layer_id,
                        "partition_key": output.site_id,
                        "geom_polygon": polygon,
                        "geom_centroid": centroid,
                        "label": int(label),
                    }  # fmt: skip
                    for m, label, polygon, centroid in zip(
                        mapobject_ids, ids_, outlines, centroids, strict=True
                    )
                ],
            )
            values = features.reindex(ids_).to_numpy(dtype=np.float64)[:, orders[name]]
            session.execute(
                sa.insert(tm.FeatureValues),
                [
                    {
                        "mapobject_id": m,
                        "tpoint": output.tpoint,
                        "partition_key": output.site_id,
                        "values": row,
                    }  # fmt: skip
                    for m, row in zip(mapobject_ids, values, strict=True)
                ],
            )
            total += len(ids_)
    return total
