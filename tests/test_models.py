"""The data model and its sessions, on SQLite and on PostgreSQL (the ``tmaps`` fixture)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from argon2 import PasswordHasher
from helpers import (
    count_main_rows,
    count_rows,
    experiment_schemas,
    schema_tables,
    use_fast_password_hashing,
)
from shapely.geometry import Point, Polygon
from sqlalchemy.exc import IntegrityError

import tmlib.models as tm
from tmlib import registry, storage
from tmlib.errors import NotFoundError
from tmlib.models.base import ExperimentModel, MainModel
from tmlib.models.experiment import well_coordinates, well_name
from tmlib.models.session import experiment_db_path

# each database also has the version table of its schema revision (tmlib.migrations)
EXPERIMENT_TABLES = {*ExperimentModel.metadata.tables, "alembic_version"}
MAIN_TABLES = {*MainModel.metadata.tables, "alembic_version"}


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fast_password_hashing(monkeypatch)  # the password test restores the real hasher


@pytest.fixture
def user(tmaps) -> str:
    registry.add_user("alice", "s3cret-pw", "alice@example.org")
    return "alice"


@pytest.fixture
def exp_id(tmaps, user: str) -> int:
    return registry.add_experiment("exp1", user, microscope_type="cellvoyager", plate_format=96)


def reference(experiment_id: int) -> tm.ExperimentReference:
    with tm.utils.MainSession() as session:
        return session.get(tm.ExperimentReference, experiment_id)


def add_base_objects(experiment_id: int) -> dict[str, int]:
    """Plate, acquisition, well, site, cycle, channel and mapobject type; returns their ids."""
    with tm.utils.ExperimentSession(experiment_id) as session:
        plate = tm.Plate(name="plate01", experiment_id=experiment_id)
        acquisition = tm.Acquisition(name="acq01", plate=plate)
        well = tm.Well(name="A01", plate=plate)
        site = tm.Site(y=0, x=0, height=20, width=30, well=well)
        cycle = tm.Cycle(index=0, experiment_id=experiment_id)
        channel = tm.Channel(
            name="DAPI", wavelength="405", bit_depth=16, experiment_id=experiment_id
        )
        mtype = tm.MapobjectType(name="Cells", experiment_id=experiment_id)
        session.add_all([plate, acquisition, well, site, cycle, channel, mtype])
        session.flush()
        return {
            "plate": plate.id,
            "acquisition": acquisition.id,
            "well": well.id,
            "site": site.id,
            "cycle": cycle.id,
            "channel": channel.id,
            "mtype": mtype.id,
        }


# ---------------------------------------------------------------- the hierarchy


def test_whole_hierarchy_round_trips(tmaps, exp_id: int) -> None:
    polygon = Polygon(
        [(0.5, -0.5), (10.25, -0.5), (10.25, -20.75), (0.5, -20.75)],
        holes=[[(2.0, -2.0), (3.5, -2.0), (3.5, -3.125)]],
    )
    centroid = Point(5.375, -10.625)
    file_map = {"files": ["Plate_B03_T0001F001L01A01Z01C01.tif"], "series": [0], "planes": [0]}

    with tm.utils.ExperimentSession(exp_id) as session:
        experiment = session.get(tm.Experiment, exp_id)
        plate = tm.Plate(name="plate01", description="first", experiment=experiment)
        acquisition = tm.Acquisition(name="acq01", plate=plate)
        image_file = tm.MicroscopeImageFile(
            name=file_map["files"][0], acquisition=acquisition, status="COMPLETE"
        )
        meta_file = tm.MicroscopeMetadataFile(name="MeasurementData.mlf", acquisition=acquisition)
        well = tm.Well(name="B03", plate=plate)
        site = tm.Site(y=1, x=2, height=100, width=120, well=well, top_residue=3, left_residue=4)
        cycle = tm.Cycle(index=0, experiment_id=exp_id)
        channel = tm.Channel(name="DAPI", wavelength="405", bit_depth=16, experiment=experiment)
        mtype = tm.MapobjectType(name="Cells", experiment_id=exp_id)
        session.add_all([plate, acquisition, image_file, meta_file, well, site, cycle])
        session.add_all([channel, mtype])
        session.flush()

        session.add_all(
            [
                tm.ChannelImageFile(
                    site_id=site.id,
                    cycle_id=cycle.id,
                    channel=channel,
                    acquisition_id=acquisition.id,
                    tpoint=0,
                    zplane=0,
                    file_map=file_map,
                ),
                tm.IllumstatsFile(channel=channel),
                tm.SiteShift(site_id=site.id, cycle_id=cycle.id, y=-3, x=4),
                tm.ChannelLayer(channel=channel, min_intensity=10.0, max_intensity=1000.0),
            ]
        )
        mapobject = tm.Mapobject(partition_key=site.id, mapobject_type_id=mtype.id, ref_id=None)
        other = tm.Mapobject(partition_key=site.id, mapobject_type_id=mtype.id)
        layer = tm.SegmentationLayer(tpoint=0, zplane=0, mapobject_type=mtype, polygon_thresh=3)
        feature = tm.Feature(name="Morphology_Area", mapobject_type=mtype)
        session.add_all([mapobject, other, layer, feature])
        session.flush()
        ids = {
            "plate": plate.id,
            "site": site.id,
            "cycle": cycle.id,
            "channel": channel.id,
            "mapobject": mapobject.id,
            "other": other.id,
            "layer": layer.id,
            "feature": feature.id,
            "mtype": mtype.id,
        }
        session.add_all(
            [
                tm.MapobjectSegmentation(
                    mapobject_id=mapobject.id,
                    segmentation_layer_id=layer.id,
                    partition_key=site.id,
                    geom_polygon=polygon,
                    geom_centroid=centroid,
                    label=7,
                ),
                tm.MapobjectSegmentation(
                    mapobject_id=other.id,
                    segmentation_layer_id=layer.id,
                    partition_key=site.id,
                    geom_polygon=None,
                    geom_centroid=Point(1.0, -1.0),
                ),
                tm.FeatureValues(
                    mapobject_id=mapobject.id,
                    partition_key=site.id,
                    values=np.array([123.5, -0.125]),
                ),
            ]
        )

    ref = reference(exp_id)
    with tm.utils.ExperimentSession(exp_id) as session:
        experiment = session.scalar(sa.select(tm.Experiment))
        assert experiment.id == exp_id
        assert experiment.location == ref.location
        assert experiment.microscope_type == "cellvoyager"
        assert experiment.plate_format == 96
        assert experiment.plate_acquisition_mode == "basic"
        assert experiment.plate_spacer_size == 2 * experiment.well_spacer_size

        (plate,) = experiment.plates
        assert (plate.name, plate.description) == ("plate01", "first")
        assert plate.created_at is not None
        assert plate.location == os.path.join(ref.location, "plates", f"plate_{plate.id}")
        (acquisition,) = plate.acquisitions
        assert acquisition.location == os.path.join(
            plate.location, "acquisitions", f"acquisition_{acquisition.id}"
        )
        assert [(f.name, f.status) for f in acquisition.microscope_image_files] == [
            (file_map["files"][0], "COMPLETE")
        ]
        image_file = acquisition.microscope_image_files[0]
        assert image_file.location == os.path.join(
            acquisition.location, "microscope_images", file_map["files"][0]
        )
        assert [(f.name, f.status) for f in acquisition.microscope_metadata_files] == [
            ("MeasurementData.mlf", "WAITING")
        ]
        assert acquisition.microscope_metadata_files[0].location == os.path.join(
            acquisition.location, "microscope_metadata", "MeasurementData.mlf"
        )

        (well,) = plate.wells
        assert (well.name, well.y, well.x) == ("B03", 1, 2)
        (site,) = well.sites
        assert (site.y, site.x, site.height, site.width) == (1, 2, 100, 120)
        assert (site.aligned_height, site.aligned_width) == (97, 116)
        assert site.omitted is False

        shift = session.get(tm.SiteShift, (ids["site"], ids["cycle"]))
        assert (shift.y, shift.x) == (-3, 4)

        channel = session.get(tm.Channel, ids["channel"])
        assert (channel.name, channel.wavelength, channel.bit_depth) == ("DAPI", "405", 16)
        assert channel.location == os.path.join(ref.location, "channels", f"channel_{channel.id}")
        (image,) = channel.image_files
        assert image.file_map == file_map
        assert (image.tpoint, image.zplane, image.site.id, image.cycle.id) == (
            0,
            0,
            ids["site"],
            ids["cycle"],
        )
        assert image.location == os.path.join(
            channel.location, "images", f"channel_image_file_{image.id}.h5"
        )
        assert channel.illumstats_file is not None
        assert channel.illumstats_file.location == os.path.join(
            channel.location, "illumstats", f"illumstats_file_{channel.illumstats_file.id}.h5"
        )
        (layer,) = channel.layers
        assert (layer.min_intensity, layer.max_intensity, layer.tile_size) == (10.0, 1000.0, 256)

        mtype = session.get(tm.MapobjectType, ids["mtype"])
        assert [f.name for f in mtype.features] == ["Morphology_Area"]
        assert [(sl.tpoint, sl.zplane, sl.polygon_thresh) for sl in mtype.layers] == [(0, 0, 3)]
        assert mtype.ref_type == "Site"
        assert count_rows_in(session, tm.Mapobject) == 2

        seg = session.get(tm.MapobjectSegmentation, (ids["mapobject"], ids["layer"]))
        assert seg.label == 7
        assert isinstance(seg.geom_polygon, Polygon)
        assert isinstance(seg.geom_centroid, Point)
        assert shapely.equals_exact(seg.geom_polygon, polygon, tolerance=0.0)
        assert list(seg.geom_polygon.exterior.coords) == list(polygon.exterior.coords)
        assert [list(r.coords) for r in seg.geom_polygon.interiors] == [
            list(r.coords) for r in polygon.interiors
        ]
        assert (seg.geom_centroid.x, seg.geom_centroid.y) == (5.375, -10.625)
        empty = session.get(tm.MapobjectSegmentation, (ids["other"], ids["layer"]))
        assert empty.geom_polygon is None
        assert (empty.geom_centroid.x, empty.geom_centroid.y) == (1.0, -1.0)

        values = session.get(tm.FeatureValues, (ids["mapobject"], 0))
        np.testing.assert_array_equal(values.values, [123.5, -0.125])
        assert values.partition_key == ids["site"]


def count_rows_in(session, model) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(model))


def test_feature_values_keep_nan_and_infinity(tmaps, exp_id: int) -> None:
    """Measurements of degenerate objects are NaN (e.g. the std of a one-pixel object)."""
    ids = add_base_objects(exp_id)
    with tm.utils.ExperimentSession(exp_id) as session:
        mapobject = tm.Mapobject(partition_key=ids["site"], mapobject_type_id=ids["mtype"])
        session.add(mapobject)
        session.flush()
        session.add(
            tm.FeatureValues(
                mapobject_id=mapobject.id,
                partition_key=ids["site"],
                values=np.array([float("nan"), float("inf"), -float("inf"), 1.5]),
            )
        )
        mapobject_id = mapobject.id
    with tm.utils.ExperimentSession(exp_id) as session:
        values = session.get(tm.FeatureValues, (mapobject_id, 0)).values
    assert values.dtype == np.float64 and values.shape == (4,)
    assert math.isnan(values[0])
    assert values[1] == float("inf")
    assert values[2] == -float("inf")
    assert values[3] == 1.5


def test_tool_results_are_polymorphic(tmaps, exp_id: int) -> None:
    ids = add_base_objects(exp_id)
    with tm.utils.ExperimentSession(exp_id) as session:
        mapobject = tm.Mapobject(partition_key=ids["site"], mapobject_type_id=ids["mtype"])
        common = {"tool_name": "Clustering", "mapobject_type_id": ids["mtype"]}
        scalar = tm.ScalarToolResult(
            name="clusters", submission_id=11, attributes={"unique_labels": [0, 1]}, **common
        )
        classifier = tm.SupervisedClassifierToolResult(
            name="classes", submission_id=12, attributes={"label_map": {"0": "red"}}, **common
        )
        heatmap = tm.HeatmapToolResult(
            name="heat", submission_id=13, attributes={"min": 0.5, "max": 2.5}, **common
        )
        continuous = tm.ContinuousToolResult(name="cont", submission_id=14, **common)
        session.add_all([mapobject, scalar, classifier, heatmap, continuous])
        session.flush()
        session.add(tm.Plot(attributes={"kind": "histogram"}, result_id=scalar.id))
        session.add(
            tm.LabelValues(
                mapobject_id=mapobject.id,
                partition_key=ids["site"],
                values={str(scalar.id): 1, str(heatmap.id): 0.75},
            )
        )
        mapobject_id, scalar_id, heatmap_id = mapobject.id, scalar.id, heatmap.id

    with tm.utils.ExperimentSession(exp_id) as session:
        results = {r.name: r for r in session.scalars(sa.select(tm.ToolResult))}
        assert {name: type(r) for name, r in results.items()} == {
            "clusters": tm.ScalarToolResult,
            "classes": tm.SupervisedClassifierToolResult,
            "heat": tm.HeatmapToolResult,
            "cont": tm.ContinuousToolResult,
        }
        assert {r.type for r in results.values()} == {
            "ScalarToolResult",
            "SupervisedClassifierToolResult",
            "HeatmapToolResult",
            "ContinuousToolResult",
        }
        assert results["heat"].attributes == {"min": 0.5, "max": 2.5}
        assert results["classes"].attributes == {"label_map": {"0": "red"}}
        scalars = session.scalars(sa.select(tm.ScalarToolResult)).all()
        assert sorted(r.name for r in scalars) == ["classes", "clusters"]
        continuous = session.scalars(sa.select(tm.ContinuousToolResult)).all()
        assert sorted(r.name for r in continuous) == ["cont", "heat"]
        assert [p.attributes for p in results["clusters"].plots] == [{"kind": "histogram"}]
        labels = session.get(tm.LabelValues, (mapobject_id, 0))
        assert labels.values == {str(scalar_id): 1, str(heatmap_id): 0.75}


def test_main_models_and_their_unique_constraints(tmaps, exp_id: int) -> None:
    bob = registry.add_user("bob", "pw-of-bob", "bob@example.org")
    with tm.utils.MainSession() as session:
        alice = session.scalar(sa.select(tm.User).where(tm.User.name == "alice"))
        ref = session.get(tm.ExperimentReference, exp_id)
        session.add(tm.ExperimentShare(experiment_id=exp_id, user_id=bob, write_access=False))
        submission = tm.Submission(program="workflow", experiment_id=exp_id, user_id=alice.id)
        session.add(submission)
        session.flush()
        parent = tm.Task(
            name="workflow", type="Workflow", is_collection=True, submission_id=submission.id
        )
        session.add(parent)
        session.flush()
        child = tm.Task(
            name="metaextract_run_1",
            type="RunJob",
            submission_id=submission.id,
            parent_id=parent.id,
            data={"args": [1, 2]},
        )
        session.add(child)
        submission.top_task_id = parent.id
        alice_id, submission_id = alice.id, submission.id
        assert ref.user_id == alice.id

    with tm.utils.MainSession() as session:
        ref = session.get(tm.ExperimentReference, exp_id)
        assert (ref.name, ref.user.name) == ("exp1", "alice")
        assert [(s.user.name, s.write_access) for s in ref.shares] == [("bob", False)]
        assert ref.can_be_accessed_by(alice_id, "write") is True
        assert ref.can_be_accessed_by(bob, "read") is True
        assert ref.can_be_accessed_by(bob, "write") is False
        assert ref.can_be_accessed_by(bob + 1000, "read") is False
        submission = session.get(tm.Submission, submission_id)
        (top,) = [t for t in submission.tasks if t.parent_id is None]
        assert submission.top_task_id == top.id
        assert top.state == "NEW"
        assert [(c.name, c.data) for c in top.children] == [("metaextract_run_1", {"args": [1, 2]})]
        assert len(submission.tasks) == 2

    # unique constraints
    duplicates = {
        "user name": lambda: tm.User(name="alice", email="other@example.org", password="x"),
        "user e-mail": lambda: tm.User(name="carol", email="alice@example.org", password="x"),
        "experiment name per user": lambda: tm.ExperimentReference(
            name="exp1", root_directory="/x", user_id=alice_id
        ),
        "share": lambda: tm.ExperimentShare(experiment_id=exp_id, user_id=bob),
    }
    expected = {tm.User: 2, tm.ExperimentReference: 1, tm.ExperimentShare: 1}
    for label, make in duplicates.items():
        obj = make()
        with pytest.raises(IntegrityError), tm.utils.MainSession() as session:
            session.add(obj)
            session.flush()
        assert count_main_rows(type(obj)) == expected[type(obj)], label
    # the same experiment name is fine for another user
    with tm.utils.MainSession() as session:
        session.add(tm.ExperimentReference(name="exp1", root_directory="/x", user_id=bob))
    assert count_main_rows(tm.ExperimentReference) == 2


# ---------------------------------------------------------------- constraints


def test_unique_constraints_of_experiment_tables(tmaps, exp_id: int) -> None:
    ids = add_base_objects(exp_id)
    with tm.utils.ExperimentSession(exp_id) as session:
        session.add_all(
            [
                tm.MicroscopeImageFile(name="a.tif", acquisition_id=ids["acquisition"]),
                tm.Feature(name="Area", mapobject_type_id=ids["mtype"]),
                tm.ChannelImageFile(
                    site_id=ids["site"],
                    cycle_id=ids["cycle"],
                    channel_id=ids["channel"],
                    acquisition_id=ids["acquisition"],
                ),
                tm.IllumstatsFile(channel_id=ids["channel"]),
                tm.ChannelLayer(channel_id=ids["channel"]),
                tm.SegmentationLayer(tpoint=0, zplane=0, mapobject_type_id=ids["mtype"]),
                tm.ScalarToolResult(
                    name="r", tool_name="t", submission_id=5, mapobject_type_id=ids["mtype"]
                ),
            ]
        )
    duplicates = {
        "plate name": lambda: tm.Plate(name="plate01", experiment_id=exp_id),
        "acquisition name per plate": lambda: tm.Acquisition(name="acq01", plate_id=ids["plate"]),
        "well name per plate": lambda: tm.Well(name="A01", plate_id=ids["plate"]),
        "site position per well": lambda: tm.Site(y=0, x=0, height=1, width=1, well_id=ids["well"]),
        "cycle index": lambda: tm.Cycle(index=0, experiment_id=exp_id),
        "channel name": lambda: tm.Channel(
            name="DAPI", wavelength="x", bit_depth=8, experiment_id=exp_id
        ),
        "mapobject type name": lambda: tm.MapobjectType(name="Cells", experiment_id=exp_id),
        "image file name": lambda: tm.MicroscopeImageFile(
            name="a.tif", acquisition_id=ids["acquisition"]
        ),
        "feature name": lambda: tm.Feature(name="Area", mapobject_type_id=ids["mtype"]),
        "channel image file": lambda: tm.ChannelImageFile(
            site_id=ids["site"],
            cycle_id=ids["cycle"],
            channel_id=ids["channel"],
            acquisition_id=ids["acquisition"],
        ),
        "illumstats per channel": lambda: tm.IllumstatsFile(channel_id=ids["channel"]),
        "channel layer": lambda: tm.ChannelLayer(channel_id=ids["channel"]),
        "segmentation layer": lambda: tm.SegmentationLayer(
            tpoint=0, zplane=0, mapobject_type_id=ids["mtype"]
        ),
        "tool result submission": lambda: tm.ContinuousToolResult(
            name="other", tool_name="t", submission_id=5, mapobject_type_id=ids["mtype"]
        ),
    }
    for label, make in duplicates.items():
        with pytest.raises(IntegrityError), tm.utils.ExperimentSession(exp_id) as session:
            session.add(make())
            session.flush()
        counted = tm.ToolResult if label == "tool result submission" else type(make())
        assert count_rows(exp_id, counted) == 1, label

    # composite constraints allow the same name under another parent
    with tm.utils.ExperimentSession(exp_id) as session:
        plate2 = tm.Plate(name="plate02", experiment_id=exp_id)
        mtype2 = tm.MapobjectType(name="Nuclei", experiment_id=exp_id)
        session.add_all([plate2, mtype2])
        session.flush()
        session.add_all(
            [
                tm.Acquisition(name="acq01", plate=plate2),
                tm.Well(name="A01", plate=plate2),
                tm.Site(y=0, x=1, height=20, width=30, well_id=ids["well"]),
                tm.Feature(name="Area", mapobject_type_id=mtype2.id),
            ]
        )
    assert count_rows(exp_id, tm.Acquisition) == 2
    assert count_rows(exp_id, tm.Well) == 2
    assert count_rows(exp_id, tm.Site) == 2
    assert count_rows(exp_id, tm.Feature) == 2


# ---------------------------------------------------------------- where the tables live


def test_experiment_tables_live_apart_and_experiments_are_isolated(
    tmaps, exp_id: int, user: str
) -> None:
    ref = reference(exp_id)
    main = sa.inspect(tm.utils.main_engine(tmaps.db_url))
    if tmaps.dialect == "postgresql":
        schema = f"experiment_{exp_id}"
        assert experiment_schemas(tmaps.db_url) == [schema]
        in_schema = schema_tables(tmaps.db_url, schema)
        assert in_schema == EXPERIMENT_TABLES
        public = schema_tables(tmaps.db_url, "public")
        assert public == MAIN_TABLES
        assert not public & set(ExperimentModel.metadata.tables)
    else:
        path = experiment_db_path(ref.location)
        assert path == Path(ref.location) / "experiment.db"
        assert path.is_file()
        assert set(main.get_table_names()) == MAIN_TABLES
        experiment = sa.inspect(tm.utils.experiment_engine(exp_id))
        assert set(experiment.get_table_names()) == EXPERIMENT_TABLES
    assert Path(ref.location).is_dir()
    assert Path(ref.location) == tmaps.storage_home.resolve() / f"experiment_{exp_id}"

    exp2 = registry.add_experiment("exp2", user, microscope_type="tiff", plate_format=384)
    assert exp2 != exp_id
    registry.add_plate(exp_id, "plate01")
    registry.add_acquisition(exp_id, "plate01", "acq01")

    assert count_rows(exp_id, tm.Plate) == 1
    assert count_rows(exp2, tm.Plate) == 0
    assert count_rows(exp2, tm.Acquisition) == 0
    with tm.utils.ExperimentSession(exp2) as session:
        (experiment,) = session.scalars(sa.select(tm.Experiment)).all()
        assert (experiment.id, experiment.microscope_type, experiment.plate_format) == (
            exp2,
            "tiff",
            384,
        )
    # the same plate name is free in the other experiment
    registry.add_plate(exp2, "plate01")
    registry.add_plate(exp2, "plate02")
    assert count_rows(exp_id, tm.Plate) == 1
    assert count_rows(exp2, tm.Plate) == 2
    with tm.utils.ExperimentSession(exp_id) as session:
        assert session.scalars(sa.select(tm.Plate.name)).all() == ["plate01"]
    if tmaps.dialect == "postgresql":
        assert experiment_schemas(tmaps.db_url) == sorted(
            [f"experiment_{exp_id}", f"experiment_{exp2}"]
        )
    else:
        assert experiment_db_path(reference(exp2).location).is_file()


def test_delete_experiment_removes_everything(tmaps, exp_id: int, user: str) -> None:
    keep = registry.add_experiment("keep", user)
    registry.add_plate(keep, "kept-plate")
    ids = add_base_objects(exp_id)
    with tm.utils.ExperimentSession(exp_id) as session:
        image = tm.ChannelImageFile(
            site_id=ids["site"],
            cycle_id=ids["cycle"],
            channel_id=ids["channel"],
            acquisition_id=ids["acquisition"],
        )
        session.add(image)
        session.flush()
        image.put(np.ones((4, 5), dtype=np.uint16))
        image_path = Path(image.location)
    location = Path(reference(exp_id).location)
    assert image_path.is_file()
    assert image_path.is_relative_to(location)

    registry.delete_experiment(exp_id)

    assert not location.exists()
    assert reference(exp_id) is None
    assert count_main_rows(tm.ExperimentReference) == 1
    if tmaps.dialect == "postgresql":
        assert experiment_schemas(tmaps.db_url) == [f"experiment_{keep}"]
    else:
        assert not experiment_db_path(location).exists()
        assert not Path(f"{experiment_db_path(location)}-wal").exists()
    # the other experiment is untouched
    with tm.utils.ExperimentSession(keep) as session:
        assert session.scalars(sa.select(tm.Plate.name)).all() == ["kept-plate"]
    assert Path(reference(keep).location).is_dir()
    with pytest.raises(NotFoundError, match=str(exp_id)):
        registry.delete_experiment(exp_id)


def test_session_of_missing_experiment_raises_and_creates_nothing(tmaps, exp_id: int) -> None:
    registry.delete_experiment(exp_id)
    for missing in (exp_id, exp_id + 100):
        with pytest.raises(NotFoundError), tm.utils.ExperimentSession(missing) as session:
            session.scalar(sa.select(tm.Plate))
    if tmaps.dialect == "postgresql":
        assert experiment_schemas(tmaps.db_url) == []
    assert list(tmaps.storage_home.iterdir()) == []


# ---------------------------------------------------------------- sessions


def test_sessions_commit_on_success_and_roll_back_on_exception(tmaps, exp_id: int) -> None:
    with tm.utils.ExperimentSession(exp_id) as session:
        session.add(tm.Plate(name="kept", experiment_id=exp_id))
    with tm.utils.ExperimentSession(exp_id) as session:
        assert session.scalars(sa.select(tm.Plate.name)).all() == ["kept"]

    with pytest.raises(RuntimeError, match="boom"), tm.utils.ExperimentSession(exp_id) as session:
        session.add(tm.Plate(name="lost", experiment_id=exp_id))
        session.flush()
        plate = session.scalar(sa.select(tm.Plate).where(tm.Plate.name == "kept"))
        plate.description = "changed"
        session.flush()
        assert count_rows_in(session, tm.Plate) == 2
        raise RuntimeError("boom")
    with tm.utils.ExperimentSession(exp_id) as session:
        plates = session.scalars(sa.select(tm.Plate)).all()
        assert [(p.name, p.description) for p in plates] == [("kept", None)]

    with pytest.raises(RuntimeError), tm.utils.MainSession() as session:
        session.add(tm.User(name="ghost", email="ghost@example.org", password="pw"))
        session.flush()
        assert count_rows_in(session, tm.User) == 2
        raise RuntimeError("boom")
    with tm.utils.MainSession() as session:
        assert session.scalars(sa.select(tm.User.name)).all() == ["alice"]


def test_password_is_an_argon2_hash(tmaps, monkeypatch: pytest.MonkeyPatch) -> None:
    import tmlib.models.main

    monkeypatch.setattr(tmlib.models.main, "_hasher", PasswordHasher())  # the real one
    registry.add_user("alice", "s3cret-pw", "alice@example.org")
    with tm.utils.MainSession() as session:
        alice = session.scalar(sa.select(tm.User).where(tm.User.name == "alice"))
    assert alice.password_hash.startswith("$argon2")
    assert "s3cret-pw" not in alice.password_hash
    assert alice.check_password("s3cret-pw") is True
    assert alice.check_password("s3cret-pW") is False
    assert alice.check_password("") is False
    other = tm.User(name="x", email="x@example.org", password="s3cret-pw")
    assert other.password_hash != alice.password_hash  # salted
    broken = tm.User(name="y", email="y@example.org", password="pw")
    broken.password_hash = "not-a-hash"
    assert broken.check_password("pw") is False


# ---------------------------------------------------------------- pixels behind models


def _image_file(session, ids: dict[str, int], tpoint: int = 0) -> tm.ChannelImageFile:
    image = tm.ChannelImageFile(
        site_id=ids["site"],
        cycle_id=ids["cycle"],
        channel_id=ids["channel"],
        acquisition_id=ids["acquisition"],
        tpoint=tpoint,
    )
    session.add(image)
    session.flush()
    return image


def _random_plane(dtype, seed: int) -> np.ndarray:
    info = np.iinfo(dtype)
    pixels = np.random.default_rng(seed).integers(0, info.max, size=(37, 53), endpoint=True)
    pixels = pixels.astype(dtype)
    pixels[0, 0], pixels[-1, -1] = info.min, info.max
    return pixels


def test_files_behind_models_round_trip(tmaps, exp_id: int) -> None:
    ids = add_base_objects(exp_id)
    images_dir = Path(reference(exp_id).location) / "channels" / f"channel_{ids['channel']}"
    images_dir = images_dir / "images"
    with tm.utils.ExperimentSession(exp_id) as session:
        # ChannelImageFile: uint16 and uint8 planes come back exactly
        names = []
        for tpoint, dtype in enumerate((np.uint16, np.uint8)):
            pixels = _random_plane(dtype, seed=tpoint)
            image = _image_file(session, ids, tpoint=tpoint)
            image.put(pixels)
            path = Path(image.location)
            names.append(path.name)
            assert path == images_dir / f"channel_image_file_{image.id}.h5"
            restored = image.get()
            assert restored.dtype == dtype
            assert restored.shape == (37, 53)
            np.testing.assert_array_equal(restored, pixels)
            # put replaces an earlier plane
            image.put(pixels[::-1].copy())
            np.testing.assert_array_equal(image.get(), pixels[::-1])
        assert sorted(os.listdir(images_dir)) == sorted(names)  # no temp file left

        # bad arrays are rejected and write nothing
        fresh = _image_file(session, ids, tpoint=2)
        for bad in (
            np.zeros((2, 3, 4), dtype=np.uint16),
            np.zeros(5, dtype=np.uint8),
            np.zeros((3, 4), dtype=np.float32),
            np.zeros((3, 4), dtype=np.float64),
            np.zeros((3, 4), dtype=np.int32),
        ):
            with pytest.raises(ValueError):
                fresh.put(bad)
        assert not Path(fresh.location).exists()
        assert sorted(os.listdir(images_dir)) == sorted(names)

        # a rejected put leaves the earlier plane intact
        good = np.arange(12, dtype=np.uint16).reshape(3, 4)
        fresh.put(good)
        with pytest.raises(ValueError, match="2D"):
            fresh.put(np.zeros((3, 4, 2), dtype=np.uint16))
        with pytest.raises(ValueError, match="float32"):
            fresh.put(good.astype(np.float32))
        np.testing.assert_array_equal(fresh.get(), good)
        assert fresh.get().dtype == np.uint16

        # IllumstatsFile
        rng = np.random.default_rng(7)
        stats = tm.IllumstatsImages(
            mean=rng.normal(2.5, 0.1, size=(20, 30)),
            std=rng.uniform(0.01, 0.2, size=(20, 30)),
            percentiles={0.1: 101.0, 50.0: 1234.5, 99.9: 60000.25},
        )
        illum = tm.IllumstatsFile(channel_id=ids["channel"])
        session.add(illum)
        session.flush()
        illum.put(stats)
        path = Path(illum.location)
        assert path == images_dir.parent / "illumstats" / f"illumstats_file_{illum.id}.h5"
        assert os.listdir(path.parent) == [path.name]
        restored = illum.get()
    assert restored.mean.dtype == np.float64
    assert restored.mean.shape == (20, 30)
    np.testing.assert_array_equal(restored.mean, stats.mean)
    np.testing.assert_array_equal(restored.std, stats.std)
    assert restored.percentiles == stats.percentiles


def test_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "planes" / "x.h5"
    storage.write_plane(target, np.ones((2, 2), dtype=np.uint8))
    with pytest.raises(TypeError):
        storage.write_datasets(target, {"array": np.array([object()], dtype=object)})
    assert os.listdir(target.parent) == ["x.h5"]
    np.testing.assert_array_equal(storage.read_plane(target), np.ones((2, 2), dtype=np.uint8))


# ---------------------------------------------------------------- wells


@pytest.mark.parametrize(
    ("name", "coordinates"),
    [("A01", (0, 0)), ("B03", (1, 2)), ("H12", (7, 11)), ("P24", (15, 23))],
)
def test_well_coordinates_and_name(name: str, coordinates: tuple[int, int]) -> None:
    assert well_coordinates(name) == coordinates
    assert well_name(*coordinates) == name


@pytest.mark.parametrize("bad", ["a01", "A1", "AA01", "A001", "", "01A"])
def test_invalid_well_names_raise(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid well name"):
        well_coordinates(bad)


def test_well_name_inverts_coordinates_for_a_384_plate() -> None:
    for row in range(16):
        for column in range(24):
            assert well_coordinates(well_name(row, column)) == (row, column)
