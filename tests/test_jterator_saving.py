"""Writing objects (tmlib.jterator.saving): the COPY path writes what the INSERT path writes.

On PostgreSQL objects go in with COPY, elsewhere with executemany INSERTs; both
must leave the same rows (values, labels, geometries, partition keys), replace
what an earlier run wrote at the same sites, keep NaN and infinities as they
are and clear a site where nothing was found.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from helpers import use_fast_password_hashing

import tmlib.models as tm
from tmlib import registry
from tmlib.jterator import saving
from tmlib.jterator.saving import PreparedObjects, ensure_features, save_prepared

COLUMNS = ["Morphology_Area", "Intensity_mean_DAPI", "Texture_x"]


@pytest.fixture
def experiment(tmaps, monkeypatch: pytest.MonkeyPatch) -> int:
    """An experiment with types Nuclei (polygons) and Spots (centroids only), two time points."""
    use_fast_password_hashing(monkeypatch)
    registry.add_user("jo", "pw", "jo@example.org")
    eid = registry.add_experiment("saving", "jo", plate_format=96)
    with tm.utils.ExperimentSession(eid) as session:
        experiment = session.scalars(sa.select(tm.Experiment)).one()
        for name in ("Nuclei", "Spots"):
            kind = tm.MapobjectType(name=name, ref_type="Site", experiment_id=experiment.id)
            session.add(kind)
            for tpoint in (0, 1):
                session.add(tm.SegmentationLayer(mapobject_type=kind, tpoint=tpoint, zplane=0))
    # features made in another order than the columns': values are stored by feature id
    ensure_features(eid, "Nuclei", COLUMNS[::-1])
    return eid


def objects(
    site_id: int, name: str, labels: list[int], tpoint: int = 0, polygons: bool = True, seed=0
) -> PreparedObjects:
    rng = np.random.default_rng(seed)
    outlines, centroids = [], []
    for label in labels:
        x, y = rng.uniform(0, 500), -rng.uniform(0, 500)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 40 + label % 7))
        ring = np.column_stack([x + 9 * np.cos(angles), y + 7 * np.sin(angles)])
        polygon = shapely.Polygon(ring)
        outlines.append(polygon if polygons else None)
        centroids.append(polygon.centroid)
    values = rng.normal(size=(len(labels), len(COLUMNS)))
    return PreparedObjects(site_id, tpoint, name, np.array(labels, dtype=np.int64), outlines,
                           centroids, list(COLUMNS), values)  # fmt: skip


def stored(eid: int) -> list[tuple]:
    """Every object's rows, with the mapobject id replaced by the order of ids of its type and
    site; bytes as the database holds them."""
    blob = sa.LargeBinary
    query = (
        sa.select(
            tm.Mapobject.id,
            tm.Mapobject.partition_key,
            tm.MapobjectType.name,
            tm.Mapobject.ref_id,
            tm.MapobjectSegmentation.segmentation_layer_id,
            tm.MapobjectSegmentation.partition_key,
            sa.type_coerce(tm.MapobjectSegmentation.geom_polygon, blob),
            sa.type_coerce(tm.MapobjectSegmentation.geom_centroid, blob),
            tm.MapobjectSegmentation.label,
            tm.FeatureValues.tpoint,
            tm.FeatureValues.partition_key,
            sa.type_coerce(tm.FeatureValues.values, blob),
        )
        .join(tm.MapobjectType, tm.MapobjectType.id == tm.Mapobject.mapobject_type_id)
        .join(tm.MapobjectSegmentation, tm.MapobjectSegmentation.mapobject_id == tm.Mapobject.id)
        .join(tm.FeatureValues, tm.FeatureValues.mapobject_id == tm.Mapobject.id)
        .order_by(tm.Mapobject.id)
    )
    with tm.utils.ExperimentSession(eid) as session:
        rows = [tuple(r) for r in session.execute(query)]
        counts = [
            session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (tm.Mapobject, tm.MapobjectSegmentation, tm.FeatureValues)
        ]
    assert counts == [len(rows)] * 3  # no row without the others
    ranks: dict[tuple, int] = {}
    out = []
    for row in rows:  # ids ascend with the labels of a type at a site (as the INSERTs make them)
        group = (row[1], row[2])
        ranks[group] = ranks.get(group, -1) + 1
        out.append((ranks[group], *row[1:]))
    return sorted(out, key=lambda r: (r[1], r[2], r[9], r[0]))


def batch(first_site: int) -> list[PreparedObjects]:
    return [
        objects(first_site, "Nuclei", [1, 2, 3, 7, 40], seed=1),
        objects(first_site, "Spots", [2, 5], polygons=False, seed=2),
        objects(first_site + 1, "Nuclei", [1, 3], seed=3),
        objects(first_site + 1, "Nuclei", [1, 2, 3, 4], tpoint=1, seed=4),
        objects(first_site + 2, "Nuclei", [], seed=5),
    ]


def test_copy_writes_the_rows_the_inserts_write(experiment, tmaps, monkeypatch) -> None:
    with tm.utils.ExperimentSession(experiment) as session:
        assert saving._copies(session) == (tmaps.dialect == "postgresql")
    # objects of an earlier run at these sites, and of a site this batch does not touch
    save_prepared(experiment, [objects(5, "Nuclei", list(range(1, 30)), seed=9),
                               objects(9, "Nuclei", [4, 5], seed=10)])  # fmt: skip
    with monkeypatch.context() as patch:
        patch.setattr(saving, "_copies", lambda session: False)
        assert save_prepared(experiment, batch(5)) == 13
    plain = stored(experiment)
    assert save_prepared(experiment, batch(5)) == 13  # COPY on PostgreSQL
    assert stored(experiment) == plain
    assert save_prepared(experiment, batch(5)) == 13  # again: replaces, nothing more
    fast = stored(experiment)
    assert fast == plain
    assert len(fast) == 15 and {r[1] for r in fast} == {5, 6, 9}
    assert {(r[2], r[8]) for r in fast if r[1] == 5} == {
        ("Nuclei", i) for i in (1, 2, 3, 7, 40)
    } | {
        ("Spots", 2),
        ("Spots", 5),
    }
    assert all(r[6] is None for r in fast if r[2] == "Spots")
    # what the models read back: the prepared values, outlines and centroids
    expected = {(p.site_id, p.tpoint, p.name, int(label)): (outline, centroid, row)
                for p in batch(5)
                for label, outline, centroid, row in zip(p.labels, p.outlines, p.centroids,
                                                         p.values, strict=True)}  # fmt: skip
    with tm.utils.ExperimentSession(experiment) as session:
        by_id = {k.name: [f.name for f in sorted(k.features, key=lambda f: f.id)]
                 for k in session.scalars(sa.select(tm.MapobjectType))}  # fmt: skip
        found = session.execute(
            sa.select(tm.Mapobject.partition_key, tm.FeatureValues.tpoint, tm.MapobjectType.name,
                      tm.MapobjectSegmentation.label, tm.MapobjectSegmentation.geom_polygon,
                      tm.MapobjectSegmentation.geom_centroid, tm.FeatureValues.values)
            .join(tm.MapobjectType, tm.MapobjectType.id == tm.Mapobject.mapobject_type_id)
            .join(tm.MapobjectSegmentation,
                  tm.MapobjectSegmentation.mapobject_id == tm.Mapobject.id)
            .join(tm.FeatureValues, tm.FeatureValues.mapobject_id == tm.Mapobject.id)
            .join(tm.SegmentationLayer,
                  tm.SegmentationLayer.id == tm.MapobjectSegmentation.segmentation_layer_id)
            .where(tm.SegmentationLayer.tpoint == tm.FeatureValues.tpoint,
                   tm.Mapobject.partition_key != 9)
        ).all()  # fmt: skip
    assert by_id["Nuclei"] == COLUMNS[::-1] and by_id["Spots"] == COLUMNS
    assert len(found) == len(expected) == 13
    for site, tpoint, name, label, polygon, centroid, values in found:
        outline, point, row = expected[(site, tpoint, name, label)]
        assert (polygon is None) == (outline is None)
        assert outline is None or polygon.equals_exact(outline, 0)
        assert centroid.equals_exact(point, 0)
        named = dict(zip(COLUMNS, row, strict=True))  # stored in the order of the feature ids
        assert values.tobytes() == np.array([named[f] for f in by_id[name]]).tobytes()


def test_non_finite_values_and_an_empty_site(experiment) -> None:
    special = [math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]
    first = objects(1, "Nuclei", [1, 2, 3, 4, 5, 6], seed=7)
    first.values = np.array([special[i:] + special[:i] for i in range(3)] * 2)[:, :3]
    save_prepared(experiment, [first, objects(2, "Nuclei", [1, 2, 3], seed=8)])
    # site 2 found nothing on a re-run: its objects go, site 1 keeps its own
    assert save_prepared(experiment, [objects(2, "Nuclei", [], seed=8)]) == 0
    assert save_prepared(experiment, []) == 0
    with tm.utils.ExperimentSession(experiment) as session:
        rows = session.execute(
            sa.select(tm.Mapobject.partition_key, tm.MapobjectSegmentation.label,
                      tm.FeatureValues.values)
            .join(tm.MapobjectSegmentation).join(tm.FeatureValues).order_by(tm.Mapobject.id)
        ).all()  # fmt: skip
        order = np.argsort(ensure_features(experiment, "Nuclei", COLUMNS))
    assert [r[0] for r in rows] == [1] * 6
    assert [r[1] for r in rows] == [1, 2, 3, 4, 5, 6]
    stored_values = np.array([r[2] for r in rows])
    # bit for bit: NaN, both infinities, negative zero, the smallest subnormal
    assert stored_values.tobytes() == first.values[:, order].tobytes()
    assert np.isnan(stored_values).sum() == 2 and np.isinf(stored_values).sum() == 10
    assert np.signbit(stored_values[stored_values == 0]).all()


# SQLite's INTEGER holds 64 bits: the range is PostgreSQL's
@pytest.mark.parametrize("tmaps", ["postgresql"], indirect=True)
def test_a_label_too_large_or_missing_values_are_refused(experiment, tmaps, monkeypatch) -> None:
    # INTEGER labels: both paths refuse the write, and nothing of the batch stays
    too_large = objects(3, "Nuclei", [1, 2**31], seed=1)
    short = objects(3, "Nuclei", [1, 2], seed=1)
    short.values = short.values[:1]
    for copies in (True, False):
        monkeypatch.setattr(saving, "_copies", lambda session, copies=copies: copies)
        with pytest.raises((ValueError, sa.exc.DBAPIError), match="out of (the )?range"):
            save_prepared(experiment, [objects(4, "Nuclei", [1, 2], seed=2), too_large])
        with pytest.raises(ValueError):  # fewer rows of values than labels
            save_prepared(experiment, [objects(4, "Nuclei", [1, 2], seed=2), short])
        assert stored(experiment) == []


def test_other_features_than_before_are_refused(experiment) -> None:
    from tmlib.errors import InvalidInputError

    save_prepared(experiment, [objects(1, "Nuclei", [1, 2], seed=1)])
    other = objects(2, "Nuclei", [1], seed=2)
    other.columns = [*COLUMNS[:2], "Texture_y"]
    with pytest.raises(InvalidInputError, match="measured at some sites but not at others"):
        save_prepared(experiment, [other])
    with pytest.raises(InvalidInputError, match="site 2 has other features than site 3"):
        save_prepared(experiment, [objects(3, "Nuclei", [1], seed=3), other])
    assert [r[1] for r in stored(experiment)] == [1, 1]
