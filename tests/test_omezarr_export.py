"""``tm_export ID ome-zarr``: plates that other tools read back as TissueMAPS holds them.

A plate processed through the whole workflow is exported and read back with
ome-zarr-py's reader (what napari-ome-zarr uses) and with ngio (what Fractal's
tools use for tables): every plane, every label image and every feature row
must equal what the experiment stores, and the metadata must validate
against the NGFF specification (ome-zarr-models) in both versions.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import tifffile
import zarr
from helpers import BIN, cli, env, ok, one_error_line, run_step, use_fast_password_hashing

import tmlib.models as tm
from tmlib import registry
from tmlib.errors import InvalidInputError
from tmlib.features import features_table_csv
from tmlib.omezarr import export as omezarr_export
from tmlib.omezarr.export import ExportOptions, export_experiment, plate_filename
from tmlib.omezarr.layout import downscale
from tmlib.segmentations import get_segmentation
from tmlib.site_images import site_image

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

OBJECT_TYPES = ("Cells", "Nuclei")


def fields(plate: Path) -> dict[tuple[str, int], Path]:
    """(well name, field index) → field directory, from the plate's own metadata."""
    root = zarr.open_group(plate, mode="r")
    attrs = root.attrs.asdict()
    meta = attrs.get("ome", attrs)
    result = {}
    for well in meta["plate"]["wells"]:
        well_attrs = root[well["path"]].attrs.asdict()
        images = well_attrs.get("ome", well_attrs)["well"]["images"]
        for index, image in enumerate(images):
            result[(well["path"].replace("/", ""), index)] = plate / well["path"] / image["path"]
    return result


def sites_in_grid_order(experiment_id: int) -> dict[tuple[str, int], int]:
    """(well name, field index) → site id, fields numbered in grid order (rows, then columns)."""
    with tm.utils.ExperimentSession(experiment_id) as session:
        rows = session.execute(
            sa.select(tm.Well.name, tm.Site.id).join(tm.Site).order_by(tm.Site.y, tm.Site.x)
        ).all()
    result: dict[tuple[str, int], int] = {}
    for well, site_id in rows:
        result[(well, sum(1 for w, _ in result if w == well))] = site_id
    return result


def channels(experiment_id: int) -> list[tuple[int, str]]:
    with tm.utils.ExperimentSession(experiment_id) as session:
        return list(
            session.execute(sa.select(tm.Channel.id, tm.Channel.name).order_by(tm.Channel.id))
        )


def read_field(path: Path) -> tuple[list, dict, list]:
    """Levels (dask arrays), image metadata and label nodes of a field, via ome-zarr-py."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    nodes = list(Reader(parse_url(str(path)))())
    image = nodes[0]
    labels = [n for n in nodes if n.load(Label)]
    return image.data, image.metadata, labels


def validate(plate: Path, version: str) -> None:
    """The whole plate (wells, fields, labels) against the NGFF specification."""
    if version == "0.5":
        from ome_zarr_models.v05.hcs import HCS
    else:
        from ome_zarr_models.v04.hcs import HCS
    HCS.from_zarr(zarr.open_group(plate, mode="r"))


# ------------------------------------------------------------------ the processed plate


@pytest.fixture(scope="module")
def exported(processed_plate, tmp_path_factory) -> Path:
    """The processed plate exported once with labels and features (NGFF 0.5, the defaults)."""
    out = tmp_path_factory.mktemp("export")
    environ = {
        **os.environ,
        "TMAPS_HOME": str(processed_plate.home),
        "TMAPS_DB_URL": processed_plate.db_url,
        "TMAPS_CONFIG_FILE": str(out / "none.cfg"),
    }
    result = subprocess.run(
        [str(BIN / "tm_export"), str(processed_plate.experiment_id), "ome-zarr", str(out),
         "--features"],
        env=environ, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warnings, no bar when stderr is no terminal
    assert result.stdout.strip() == str(out / "plate01.zarr")
    return out / "plate01.zarr"


def test_every_plane_equals_the_stored_plane(processed, exported):
    eid = processed.experiment_id
    validate(exported, "0.5")
    sites = sites_in_grid_order(eid)
    found = fields(exported)
    assert sorted(found) == sorted(sites)
    names = [name for _, name in channels(eid)]
    with tm.utils.ExperimentSession(eid) as session:
        for key, path in found.items():
            levels, meta, _ = read_field(path)
            assert meta["channel_names"] == names
            level0 = np.asarray(levels[0])
            assert level0.shape[0] == len(names)  # axes c y x: one time point, one z-plane
            for c, (channel_id, _) in enumerate(channels(eid)):
                np.testing.assert_array_equal(
                    level0[c], site_image(session, channel_id, sites[key]), err_msg=str(key)
                )
            assert len(levels) == 1  # 384x512 sites: no level below 512 pixels is needed


def test_plate_metadata_channels_and_physical_size(processed, exported):
    root = zarr.open_group(exported, mode="r")
    ome = root.attrs["ome"]
    assert ome["version"] == "0.5"
    plate = ome["plate"]
    assert plate["name"] == "plate01"
    assert len(plate["rows"]) == 16 and len(plate["columns"]) == 24  # the 384-well format
    assert plate["field_count"] == 4
    wells = {w["path"] for w in plate["wells"]}
    assert all(len(p.split("/")[1]) == 2 for p in wells)  # columns as TissueMAPS writes them
    field = next(iter(fields(exported).values()))
    image = zarr.open_group(field, mode="r").attrs["ome"]
    omero = image["omero"]["channels"]
    assert [c["color"] for c in omero] == ["FF0000", "00FF00"]
    with tm.utils.ExperimentSession(processed.experiment_id) as session:
        for entry, channel in zip(
            omero, session.scalars(sa.select(tm.Channel).order_by(tm.Channel.id)), strict=True
        ):
            stats = channel.illumstats_file.get()
            assert entry["label"] == channel.name
            assert entry["window"]["start"] == stats.closest_percentile(0.1)
            assert entry["window"]["end"] == stats.closest_percentile(99.9)
            assert entry["window"]["max"] == 65535
        pixel_size = session.scalar(sa.select(tm.Experiment.pixel_size_um))
    multiscale = image["multiscales"][0]
    assert [a["name"] for a in multiscale["axes"]] == ["c", "y", "x"]
    scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [1.0, pixel_size, pixel_size]
    assert zarr.open_array(field / "0", mode="r").metadata.dimension_names == ("c", "y", "x")


def test_field_positions_give_back_the_site_grid(processed, exported):
    """Each field's translation is its site's place in the well (what an import reads)."""
    with tm.utils.ExperimentSession(processed.experiment_id) as session:
        pixel_size = session.scalar(sa.select(tm.Experiment.pixel_size_um))
        grid = {
            site_id: (s.y, s.x, s.height, s.width)
            for site_id, s in ((s.id, s) for s in session.scalars(sa.select(tm.Site)))
        }
    sites = sites_in_grid_order(processed.experiment_id)
    for key, path in fields(exported).items():
        datasets = zarr.open_group(path, mode="r").attrs["ome"]["multiscales"][0]["datasets"]
        y, x, height, width = grid[sites[key]]
        translation = datasets[0]["coordinateTransformations"][1]["translation"]
        assert translation[-2:] == pytest.approx([y * height * pixel_size, x * width * pixel_size])


def test_label_images_rasterise_exactly_the_stored_objects(processed, exported):
    eid = processed.experiment_id
    with tm.utils.ExperimentSession(eid) as session:
        kinds = dict(session.execute(sa.select(tm.MapobjectType.name, tm.MapobjectType.id)).all())
    sites = sites_in_grid_order(eid)
    for key, path in fields(exported).items():
        _, _, labels = read_field(path)
        by_name = {node.metadata["name"]: node for node in labels}
        assert sorted(by_name) == list(OBJECT_TYPES)
        for name in OBJECT_TYPES:
            stored = get_segmentation(eid, kinds[name], sites[key])
            level0 = np.asarray(by_name[name].data[0])
            assert level0.dtype == np.int32
            np.testing.assert_array_equal(level0, stored, err_msg=f"{key} {name}")
            assert stored.max() > 0  # the site has objects: the comparison means something
        label_attrs = zarr.open_group(path / "labels" / "Nuclei", mode="r").attrs["ome"]
        assert label_attrs["image-label"]["source"] == {"image": "../../"}


def test_feature_tables_equal_jterator_export_features(processed, exported):
    """Read as Fractal's tools read them (ngio): one row per object, indexed by label."""
    import ngio

    eid = processed.experiment_id
    sites = sites_in_grid_order(eid)
    with tm.utils.ExperimentSession(eid) as session:
        position = {
            s.id: (w, s.y, s.x)
            for s, w in session.execute(sa.select(tm.Site, tm.Well.name).join(tm.Well))
        }
    for name in OBJECT_TYPES:
        rows = list(csv.DictReader(io.StringIO(b"".join(features_table_csv(eid, name)).decode())))
        where = ("plate", "well", "site_y", "site_x", "tpoint", "label", "mapobject_id")
        features = [c for c in rows[0] if c not in where]
        checked = 0
        for key, path in fields(exported).items():
            well, y, x = position[sites[key]]
            expected = [
                r for r in rows if (r["well"], int(r["site_y"]), int(r["site_x"])) == (well, y, x)
            ]
            container = ngio.open_ome_zarr_container(str(path), mode="r")
            table = container.get_table(name)
            assert table.reference_label == name
            frame = table.dataframe
            assert list(frame.index) == [int(r["label"]) for r in expected]
            assert list(frame["mapobject_id"]) == [int(r["mapobject_id"]) for r in expected]
            values = frame[features].to_numpy(np.float64)
            np.testing.assert_array_equal(
                values,
                np.array([[float(r[f]) for f in features] for r in expected]).reshape(values.shape),
            )
            checked += len(expected)
        assert checked == len(rows) > 0


def test_version_04_is_zarr_v2_and_validates(processed, tmp_path: Path):
    out = tmp_path / "v04"
    [plate] = export_experiment(
        processed.experiment_id, out, ExportOptions(version="0.4", objects=("Nuclei",)),
        progress=False,
    )  # fmt: skip
    validate(plate, "0.4")
    assert (plate / ".zattrs").is_file() and not (plate / "zarr.json").exists()
    assert zarr.open_group(plate, mode="r").attrs["plate"]["version"] == "0.4"
    field = (
        fields(plate)[("A03", 0)]
        if ("A03", 0) in fields(plate)
        else next(iter(fields(plate).values()))
    )
    levels, meta, labels = read_field(field)
    assert [n.metadata["name"] for n in labels] == ["Nuclei"]
    assert (field / "0" / "0" / "0" / "0").is_file()  # nested chunk keys, as 0.4 asks
    sites = sites_in_grid_order(processed.experiment_id)
    key = next(k for k, p in fields(plate).items() if p == field)
    with tm.utils.ExperimentSession(processed.experiment_id) as session:
        channel_id = channels(processed.experiment_id)[0][0]
        np.testing.assert_array_equal(
            np.asarray(levels[0])[0], site_image(session, channel_id, sites[key])
        )


def test_correct_and_align_give_what_jterator_analysed(processed, tmp_path: Path):
    [plate] = export_experiment(
        processed.experiment_id, tmp_path, ExportOptions(correct=True, align=True, levels=2),
        progress=False,
    )  # fmt: skip
    validate(plate, "0.5")
    sites = sites_in_grid_order(processed.experiment_id)
    with tm.utils.ExperimentSession(processed.experiment_id) as session:
        for key, path in fields(plate).items():
            levels, _, _ = read_field(path)
            assert len(levels) == 2
            for c, (channel_id, _) in enumerate(channels(processed.experiment_id)):
                expected = site_image(session, channel_id, sites[key], correct=True, align=True)
                np.testing.assert_array_equal(np.asarray(levels[0])[c], expected)
                # level 1: the plane halved with area interpolation
                np.testing.assert_array_equal(np.asarray(levels[1])[c], downscale(expected))


# ---------------------------------------------------------------------- bad input


def test_bad_input_is_one_line_exit_2_and_writes_nothing(processed, tmp_path: Path):
    eid = processed.experiment_id
    out = tmp_path / "out"
    cases = {
        "unknown object type": (
            [eid, "ome-zarr", out, "--objects", "Mitochondria"],
            "Mitochondria",
        ),
        "static object type": ([eid, "ome-zarr", out, "--objects", "Wells"], "Wells"),
        "no such experiment": ([9999, "ome-zarr", out], "9999"),
        "no levels": ([eid, "ome-zarr", out, "--levels", "0"], "levels must be between 1 and 16"),
        "too many levels": ([eid, "ome-zarr", out, "--levels", "17"], "got 17"),
        "version": ([eid, "ome-zarr", out, "--version", "0.3"], "0.3"),
    }
    for what, (args, needle) in cases.items():
        line = one_error_line(cli("tm_export", *args))
        assert line.startswith("tm_export: error:") and needle in line, (what, line)
        assert not out.exists(), what
    # OUT is a file
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert "is a file" in one_error_line(cli("tm_export", eid, "ome-zarr", a_file))


def test_an_existing_plate_needs_overwrite_and_is_replaced_whole(processed, tmp_path: Path):
    eid = processed.experiment_id
    ok(cli("tm_export", eid, "ome-zarr", tmp_path, "--levels", "1"))
    plate = tmp_path / "plate01.zarr"
    marker = plate / "kept-until-replaced"
    marker.write_text("old")
    line = one_error_line(cli("tm_export", eid, "ome-zarr", tmp_path))
    assert "exists" in line and "--overwrite" in line
    assert marker.exists()  # untouched
    ok(cli("tm_export", eid, "ome-zarr", tmp_path, "--overwrite", "--levels", "2"))
    assert not marker.exists()
    validate(plate, "0.5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plate01.zarr"]  # nothing left aside


def test_a_failure_midway_leaves_no_plate(processed, tmp_path: Path, monkeypatch):
    calls = []

    def fail_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return original(*args, **kwargs)

    original = omezarr_export._write_field
    monkeypatch.setattr(omezarr_export, "_write_field", fail_on_third)
    with pytest.raises(OSError, match="disk full"):
        export_experiment(processed.experiment_id, tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []  # no plate, no temporary


def test_a_killed_export_leaves_no_plate_and_the_next_cleans_up(processed, tmp_path: Path):
    proc = subprocess.Popen(
        [str(BIN / "tm_export"), str(processed.experiment_id), "ome-zarr", str(tmp_path),
         "--features"],
        env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(
        p.name.startswith(".plate01.zarr") for p in tmp_path.glob(".*")
    ):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "plate01.zarr").exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # what it left
    ok(cli("tm_export", processed.experiment_id, "ome-zarr", tmp_path, "--levels", "1"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plate01.zarr"]


# ------------------------------------------------------------- a plate shaped like real ones


@pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)
def test_messy_plate_sites_from_1_one_site_wells_z_stacks_and_a_missing_image(
    tmaps, tmp_path: Path, monkeypatch
):
    """TIFFs numbered from 1, wells with 2 and 1 sites, two z-planes, an odd plate name,
    and a plane the microscope failed to write (exported black)."""
    use_fast_password_hashing(monkeypatch)
    source = tmp_path / "tiffs"
    source.mkdir()
    rng = np.random.default_rng(5)
    written = {}
    for well, sites in (("B03", (1, 2)), ("C05", (1,))):
        for site in sites:
            for channel in ("DAPI", "GFP"):
                for z in (0, 1):
                    pixels = rng.integers(0, 4000, (48, 64), dtype=np.uint16)
                    name = f"{well}_s{site}_c{channel}_z{z}.tif"
                    tifffile.imwrite(source / name, pixels)
                    written[(well, site - 1, channel, z)] = pixels
    registry.add_user("rita", "pw-of-rita", "rita@example.org")
    eid = registry.add_experiment("messy", "rita", microscope_type="tiff")
    plate_name = "Screen #1 (re-run)"
    registry.add_plate(eid, plate_name)
    registry.add_acquisition(eid, plate_name, "a")
    registry.register_files(eid, plate_name, "a", source)
    with pytest.raises(InvalidInputError, match="no extracted images; run the image_conversion"):
        export_experiment(eid, tmp_path / "out", progress=False)
    for step in ("metaextract", "metaconfig", "imextract"):
        run_step(eid, step)
    with pytest.raises(InvalidInputError, match="no illumination statistics: run corilla"):
        export_experiment(eid, tmp_path / "out", ExportOptions(correct=True), progress=False)
    assert not (tmp_path / "out").exists()
    with tm.utils.ExperimentSession(eid) as session:  # the microscope failed this plane
        missing = session.scalar(
            sa.select(tm.ChannelImageFile)
            .join(tm.Site)
            .join(tm.Well)
            .join(tm.Channel)
            .where(tm.Well.name == "C05", tm.Channel.name == "GFP", tm.ChannelImageFile.zplane == 1)
        )
        session.delete(missing)
    [plate] = export_experiment(eid, tmp_path / "out", progress=False)
    assert plate.name == plate_filename(plate_name) == "Screen__1__re-run_.zarr"
    validate(plate, "0.5")
    found = fields(plate)
    assert sorted(found) == [("B03", 0), ("B03", 1), ("C05", 0)]
    for (well, index), path in found.items():
        levels, meta, _ = read_field(path)
        assert meta["channel_names"] == ["DAPI", "GFP"]
        level0 = np.asarray(levels[0])
        assert level0.shape == (2, 2, 48, 64)  # c z y x
        for c, channel in enumerate(("DAPI", "GFP")):
            for z in (0, 1):
                expected = written[(well, index, channel, z)]
                if (well, channel, z) == ("C05", "GFP", 1):
                    expected = np.zeros_like(expected)
                np.testing.assert_array_equal(
                    level0[c, z], expected, err_msg=str((well, index, channel, z))
                )
    attrs = zarr.open_group(found[("B03", 0)], mode="r").attrs["ome"]["multiscales"][0]
    assert [a["name"] for a in attrs["axes"]] == ["c", "z", "y", "x"]
    assert "unit" not in attrs["axes"][-1]  # TIFFs say nothing of the pixel size


# ------------------------------------------------------------------------ round trip


@pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)
def test_round_trip_export_import_gives_identical_planes_and_site_grid(
    tmaps, exported, monkeypatch
):
    """The exported plate imported as a new experiment (microscope type ome-zarr): the
    same planes at the same grid positions, channels and pixel size, and its labels
    registered as object types give back the exported label images."""
    use_fast_password_hashing(monkeypatch)
    registry.add_user("rita", "pw-of-rita", "rita@example.org")
    eid = registry.add_experiment("again", "rita", microscope_type="ome-zarr")
    registry.add_plate(eid, "plate01")
    registry.add_acquisition(eid, "plate01", "a")
    registry.register_files(eid, "plate01", "a", exported)
    for step in ("metaextract", "metaconfig", "imextract"):
        run_step(eid, step)
    ok(cli("tm_add", "labels", "-e", eid, "-p", "plate01", "-a", "a"))

    expected = {}
    for (well, _), path in fields(exported).items():
        multiscale = zarr.open_group(path, mode="r").attrs["ome"]["multiscales"][0]
        transformations = multiscale["datasets"][0]["coordinateTransformations"]
        size = transformations[0]["scale"][-1]
        level0 = zarr.open_array(path / "0", mode="r")
        y, x = transformations[1]["translation"][-2:]
        grid = (round(y / size / level0.shape[-2]), round(x / size / level0.shape[-1]))
        labels = {n: zarr.open_array(path / "labels" / n / "0", mode="r")[:] for n in OBJECT_TYPES}
        expected[(well, *grid)] = (level0[:], labels, size)
    with tm.utils.ExperimentSession(eid) as session:
        assert (
            session.scalar(sa.select(tm.Experiment.pixel_size_um))
            == next(iter(expected.values()))[2]
        )
        names = list(session.scalars(sa.select(tm.Channel.name).order_by(tm.Channel.id)))
        kinds = dict(session.execute(sa.select(tm.MapobjectType.name, tm.MapobjectType.id)).all())
        sites = {
            (well, s.y, s.x): s.id
            for s, well in session.execute(sa.select(tm.Site, tm.Well.name).join(tm.Well))
        }
        assert sorted(sites) == sorted(expected)
        for key, site_id in sites.items():
            pixels, labels, _ = expected[key]
            for c, name in enumerate(names):
                channel_id = session.scalar(sa.select(tm.Channel.id).where(tm.Channel.name == name))
                np.testing.assert_array_equal(
                    site_image(session, channel_id, site_id), pixels[c], err_msg=str(key)
                )
    assert names == [n for _, n in fields_channels(exported)]
    for key, site_id in sites.items():
        for name in OBJECT_TYPES:
            np.testing.assert_array_equal(
                get_segmentation(eid, kinds[name], site_id), expected[key][1][name]
            )


def fields_channels(plate: Path) -> list[tuple[int, str]]:
    field = next(iter(fields(plate).values()))
    omero = zarr.open_group(field, mode="r").attrs["ome"]["omero"]["channels"]
    return list(enumerate(c["label"] for c in omero))


def test_what_napari_ome_zarr_shows_of_the_plate(processed, exported):
    """napari-ome-zarr reads plates through ome-zarr-py's Reader: one layer per channel with
    its name, colour and window over the plate grid, and the first field's label images."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Plate, Reader

    plate = next(iter(Reader(parse_url(str(exported)))()))
    assert plate.load(Plate) is not None
    meta = plate.metadata
    with tm.utils.ExperimentSession(processed.experiment_id) as session:
        rows = session.scalars(sa.select(tm.Channel).order_by(tm.Channel.id)).all()
        windows = [[r.illumstats_file.get_percentiles()[p] for p in (0.1, 99.9)] for r in rows]
        assert meta["channel_names"] == [r.name for r in rows]
        height, width = (
            session.scalars(sa.select(tm.Site.height)).first(),
            session.scalars(sa.select(tm.Site.width)).first(),
        )
    assert meta["colormap"] == [[[0, 0, 0], [1.0, 0.0, 0.0]], [[0, 0, 0], [0.0, 1.0, 0.0]]]
    assert meta["contrast_limits"] == windows
    assert plate.data[0].shape == (2, 16 * height, 24 * width)  # the 384-well grid
    first = fields(exported)[min(fields(exported))]
    _, _, labels = read_field(first)
    assert sorted(n.metadata["name"] for n in labels) == list(OBJECT_TYPES)
