"""illuminati: mosaic layout, tile containers, pyramid building and the step itself."""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import helpers
import numpy as np
import pytest
import sqlalchemy as sa
from helpers import (
    expected_base,
    one_error_line,
    run_step,
    tile_checksums,
    use_fast_password_hashing,
)

import tmlib.models as tm
from tmlib import mosaic, pyramid, registry
from tmlib.errors import InvalidInputError, NotFoundError
from tmlib.mosaic import Box, PlateSpec, SiteSpec, WellSpec
from tmlib.simulate import PlateSpec as SimulatedPlate
from tmlib.simulate import simulate_plate
from tmlib.tiles import TileReader, TileWriter, count_tiles, split_key, tile_key
from tmlib.workflow.step import get_step
from tmlib.workflow.steps.illuminati import block_tiles, export_level

# ------------------------------------------------------------------------ layout

STITCH_DIMENSIONS = {1: (1, 1), 2: (2, 1), 3: (3, 1), 4: (2, 2), 5: (3, 2), 6: (3, 2), 7: (4, 2),
                     8: (4, 2), 9: (3, 3), 10: (5, 2), 22: (8, 3), 73: (15, 5)}  # fmt: skip


@pytest.mark.parametrize(("n", "expected"), sorted(STITCH_DIMENSIONS.items()))
def test_guess_stitch_dimensions_matches_the_original(n, expected):
    assert mosaic.guess_stitch_dimensions(n) == expected
    assert mosaic.guess_stitch_dimensions(n, "horizontal") == expected[::-1]


def test_guess_stitch_dimensions_rejects_nothing_to_lay_out():
    with pytest.raises(ValueError, match="at least one"):
        mosaic.guess_stitch_dimensions(0)


def test_pyramid_levels_halve_up_to_one_tile():
    assert mosaic.pyramid_levels(256, 100) == [(256, 100)]
    assert mosaic.pyramid_levels(1000, 257) == [(250, 65), (500, 129), (1000, 257)]
    assert mosaic.tile_grid(1000, 257) == (4, 2)


def _well(well_id, row, column, grid=(2, 2), first_site=0):
    sites = [
        SiteSpec(first_site + i * grid[1] + j, i, j) for i in range(grid[0]) for j in range(grid[1])
    ]
    return WellSpec(well_id, row, column, sites)


def test_layout_compacts_empty_rows_and_columns_and_adds_spacers():
    # wells A01, A03 and C01: row B and column 2 are empty and take no space
    plate = PlateSpec(
        1, [_well(1, 0, 0), _well(2, 0, 2, first_site=10), _well(3, 2, 0, first_site=20)]
    )
    layout = mosaic.layout([plate], 10, 20, well_spacer=5, plate_spacer=50)
    assert (layout.height, layout.width) == (2 * 20 + 5, 2 * 40 + 5)
    assert layout.wells[1] == Box(0, 0, 20, 40)
    assert layout.wells[2] == Box(0, 45, 20, 40)
    assert layout.wells[3] == Box(25, 0, 20, 40)
    assert layout.sites[3] == Box(10, 20, 10, 20)  # well 1, site (1, 1)
    assert layout.sites[13] == Box(10, 65, 10, 20)  # well 2, site (1, 1)


def test_layout_fills_the_plate_grid_column_by_column():
    plates = [PlateSpec(p, [_well(p, 0, 0, grid=(1, 1), first_site=p)]) for p in range(3)]
    layout = mosaic.layout(plates, 10, 10, well_spacer=5, plate_spacer=7)
    assert (layout.height, layout.width) == (3 * 10 + 2 * 7, 10)  # 3 plates: (3, 1) grid
    assert [layout.plates[p].y for p in range(3)] == [0, 17, 34]
    plates = [PlateSpec(p, [_well(p, 0, 0, grid=(1, 1), first_site=p)]) for p in range(4)]
    layout = mosaic.layout(plates, 10, 10, well_spacer=5, plate_spacer=7)
    assert [(layout.plates[p].y, layout.plates[p].x) for p in range(4)] == [
        (0, 0), (17, 0), (0, 17), (17, 17)
    ]  # fmt: skip


def test_layout_pads_wells_and_plates_to_the_largest_and_crops_aligned_sites():
    small = WellSpec(1, 0, 0, [SiteSpec(1, 0, 0, top=2, bottom=1, left=3, right=0)])
    large = _well(2, 0, 1, grid=(2, 3), first_site=10)
    layout = mosaic.layout([PlateSpec(1, [small, large])], 10, 10, well_spacer=4)
    assert layout.wells[1] == Box(0, 0, 20, 30)  # padded to the largest well
    assert layout.sites[1] == Box(2, 3, 7, 7)  # offset by top/left, shrunk by all residues


# ------------------------------------------------------------------------- tiles


def test_tile_keys_round_trip():
    for key in [(0, 0, 0), (5, 123, 4567), (20, 2**24 - 1, 2**24 - 1)]:
        assert split_key(tile_key(*key)) == key
    with pytest.raises(ValueError):
        tile_key(0, 2**24, 0)


def test_tile_container_writes_atomically_and_merges(tmp_path):
    path = tmp_path / "layer.tiles"
    with TileWriter(path) as writer:
        writer.put(0, 0, 0, b"old")
    with pytest.raises(RuntimeError), TileWriter(path) as writer:
        writer.put(0, 0, 0, b"new")
        raise RuntimeError("job killed")
    with TileReader(path) as reader:
        assert reader.get_tile(0, 0, 0) == b"old"  # the failed write changed nothing
    assert [p.name for p in tmp_path.iterdir()] == ["layer.tiles"]  # no temporary left

    shard = tmp_path / "shard.tiles"
    with TileWriter(shard) as writer:
        writer.put_many([(2, 1, 3, b"a"), (2, 1, 4, b"b"), (1, 0, 1, b"c")])
    with TileWriter(path) as writer:
        writer.add_container(shard)
        writer.put(0, 0, 0, b"top")
    with TileReader(path) as reader:
        assert len(reader) == 4
        assert reader.get_tile(2, 1, 4) == b"b"
        assert reader.get_tile(2, 4, 1) is None  # black or outside: not stored
        assert [t[:3] for t in reader.tiles(2)] == [(2, 1, 3), (2, 1, 4)]
    with pytest.raises(FileNotFoundError):
        TileReader(tmp_path / "missing.tiles")


# ----------------------------------------------------------------------- pyramid


def test_intensity_window():
    assert pyramid.intensity_window(16, clip=False) == (0, 65535)
    assert pyramid.intensity_window(16, True, clip_value=4000, lower_percentile=100) == (100, 4000)
    assert pyramid.intensity_window(16, True, upper_percentile=2500.4) == (0, 2500)
    # a window narrower than 255 grey values is widened
    assert pyramid.intensity_window(16, True, upper_percentile=150, lower_percentile=100) == (
        100, 355
    )  # fmt: skip
    assert pyramid.intensity_window(8, True, clip_value=100) == (0, 255)
    for bad in (0, 70000):
        with pytest.raises(ValueError, match="outside the range of 16-bit"):
            pyramid.intensity_window(16, True, clip_value=bad)
    with pytest.raises(ValueError, match="clip value or"):
        pyramid.intensity_window(16, True)


def test_to_display_maps_the_window_to_0_255():
    values = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    display = pyramid.to_display(values, 100, 1120).ravel().astype(int)
    expected = np.clip(np.rint((np.arange(65536) - 100) * 255 / 1020), 0, 255)
    assert display.dtype == np.uint8 or display.max() <= 255
    assert np.abs(display - expected).max() <= 1  # rounding of halves may differ
    assert not display[:101].any() and (display[1120:] == 255).all()
    assert display[610] == 128
    view = values[10:20, 30:50]  # slices of larger images work
    np.testing.assert_array_equal(pyramid.to_display(view, 0, 65535), np.rint(view / 257))
    with pytest.raises(ValueError, match="empty intensity window"):
        pyramid.to_display(values, 5, 5)


def test_halving_a_canvas_equals_halving_tile_pairs():
    rng = np.random.default_rng(1)
    canvas = rng.integers(0, 256, (1024, 768), dtype=np.uint8)
    whole = pyramid.halve(canvas)
    for r in range(0, 1024, 512):
        for c in range(0, 768, 512):
            pair = pyramid.halve(canvas[r : r + 512, c : c + 512])
            np.testing.assert_array_equal(whole[r // 2 : r // 2 + 256, c // 2 : c // 2 + 256], pair)
    assert pyramid.halve(np.ones((5, 3), np.uint8) * 200).shape == (3, 2)


def test_pyramid_tiles_of_blocks_equal_those_of_the_whole_canvas():
    rng = np.random.default_rng(2)
    height, width = 1000, 1500
    image = np.zeros((1024, 1536), np.uint8)
    image[:height, :width] = rng.integers(1, 256, (height, width), dtype=np.uint8)
    levels = mosaic.pyramid_levels(height, width)
    grids = [mosaic.tile_grid(h, w) for h, w in levels]
    base = len(levels) - 1
    whole = {
        (lv, r, c): t.copy() for lv, r, c, t in pyramid.pyramid_tiles(image, base, 0, 0, grids)
    }
    assert {lv for lv, _, _ in whole} == set(range(len(levels)))
    blocks = {}
    for by in range(2):
        for bx in range(3):
            part = image[by * 512 : (by + 1) * 512, bx * 512 : (bx + 1) * 512]
            for lv, r, c, t in pyramid.pyramid_tiles(part, base, by * 2, bx * 2, grids, base - 1):
                blocks[(lv, r, c)] = t.copy()
    for key, tile in blocks.items():
        np.testing.assert_array_equal(tile, whole[key])
    assert {k for k in whole if k[0] >= base - 1} == set(blocks)


def test_overlap_of_a_box_with_a_canvas():
    (canvas_rows, canvas_columns), (rows, columns) = pyramid.overlap(
        (10, 10), (4, 4), Box(12, 8, 3, 3)
    )
    assert (canvas_rows, canvas_columns) == (slice(2, 4), slice(0, 1))
    assert (rows, columns) == (slice(0, 2), slice(2, 3))
    assert pyramid.overlap((10, 10), (4, 4), Box(0, 0, 3, 3)) is None
    assert pyramid.overlap((10, 10), (4, 4), Box(14, 10, 3, 3)) is None  # touching is not


def test_encode_and_decode_a_tile():
    tile = np.tile(np.arange(256, dtype=np.uint8), (256, 1))
    data = pyramid.encode_tile(tile)
    assert data[:2] == b"\xff\xd8"  # JPEG
    assert np.abs(pyramid.decode_tile(data).astype(int) - tile).max() <= 3
    assert not pyramid.decode_tile(None).any()


def test_block_size_is_a_bounded_power_of_two():
    assert block_tiles(1, 300, 400) == 1
    assert block_tiles(100, 512, 512) == 16
    assert block_tiles(100, 2160, 2560) == 32  # capped: 64 MB canvas
    assert block_tiles(4, 256, 256) == 2


# -------------------------------------------------------------------------- step


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fast_password_hashing(monkeypatch)


def make_experiment(tmp_path: Path, wells: int = 3, sites: int = 4, channels: int = 2) -> int:
    """A converted experiment of a simulated plate (300x400 sites, 16 bit)."""
    spec = SimulatedPlate(microscope="cellvoyager", wells=wells, sites=sites, channels=channels,
                          height=300, width=400, seed=5)  # fmt: skip
    simulate_plate(tmp_path / "plate", spec)
    registry.add_user("ivy", "pw", "ivy@example.org")
    experiment_id = registry.add_experiment("pyr", "ivy", microscope_type="cellvoyager")
    registry.add_plate(experiment_id, "P1")
    registry.add_acquisition(experiment_id, "P1", "A1")
    registry.register_files(experiment_id, "P1", "A1", tmp_path / "plate")
    for name in ("metaextract", "metaconfig", "imextract"):
        run_step(experiment_id, name)
    return experiment_id


def test_pyramid_shows_the_images_where_the_mosaic_puts_them(tmaps, tmp_path):
    experiment_id = make_experiment(tmp_path)
    run_step(experiment_id, "illuminati", clip=True, clip_value=3000, batch_size=2)
    with tm.utils.ExperimentSession(experiment_id) as session:
        experiment = session.scalars(sa.select(tm.Experiment)).one()
        # 3 wells of 2x2 sites in one row, 500 px apart
        assert (experiment.pyramid_height, experiment.pyramid_width) == (600, 3 * 800 + 2 * 500)
        assert experiment.pyramid_depth == 5
        layers = session.scalars(sa.select(tm.ChannelLayer)).all()
        assert len(layers) == 2
        assert {(la.min_intensity, la.max_intensity) for la in layers} == {(0, 3000)}
        channel = layers[0].channel.name
        counts = dict(
            session.execute(
                sa.select(tm.MapobjectType.name, sa.func.count(tm.Mapobject.id))
                .join(tm.Mapobject)
                .group_by(tm.MapobjectType.name)
            ).all()
        )
        assert counts == {"Plates": 1, "Wells": 3, "Sites": 12}
        kinds = {t.name: t for t in session.scalars(sa.select(tm.MapobjectType))}
        site_layer = kinds["Sites"].layers[0]
        assert (site_layer.polygon_thresh, site_layer.centroid_thresh) == (0, 0)  # maxzoom 4 - 8
        outlines = session.scalars(
            sa.select(tm.MapobjectSegmentation.geom_polygon).where(
                tm.MapobjectSegmentation.segmentation_layer_id == site_layer.id
            )
        ).all()
        for polygon in outlines:  # inside the mosaic, y inverted
            minx, miny, maxx, maxy = polygon.bounds
            assert 0 < minx < maxx < 3400 and -600 < miny < maxy < 0
            assert (maxx - minx, maxy - miny) == (398, 298)

    base = export_level(experiment_id, channel, level=4)
    expected = expected_base(experiment_id, channel, (0, 3000))
    assert base.shape == expected.shape == (600, 3400)
    error = np.abs(base.astype(int) - expected)
    assert error.mean() < 1.0 and error.max() < 40  # JPEG
    assert not base[:, 1024:1280].any()  # a tile of the spacer between wells: black
    assert base[:, 800:1300].max() < 10  # JPEG ringing only
    overview = export_level(experiment_id, channel, level=0)
    assert overview.shape == (38, 213)
    assert overview[:, :40].mean() > 2


def test_tiles_do_not_depend_on_the_block_size_and_reruns_are_identical(tmaps, tmp_path):
    experiment_id = make_experiment(tmp_path, wells=2, sites=4, channels=1)
    run_step(experiment_id, "illuminati", clip=True, clip_value=2000, batch_size=1)
    small_blocks = tile_checksums(experiment_id)
    run_step(experiment_id, "illuminati", clip=True, clip_value=2000, batch_size=1000)
    assert tile_checksums(experiment_id) == small_blocks
    run_step(experiment_id, "illuminati", clip=True, clip_value=2000, batch_size=1000)
    assert tile_checksums(experiment_id) == small_blocks
    with tm.utils.ExperimentSession(experiment_id) as session:  # static objects not doubled
        assert session.scalar(sa.select(sa.func.count(tm.MapobjectType.id))) == 3
        assert session.scalar(sa.select(sa.func.count(tm.Mapobject.id))) == 1 + 2 + 8


def layer_files(experiment_id: int) -> list[Path]:
    with tm.utils.ExperimentSession(experiment_id) as session:
        channels = [Path(c.layers_location) for c in session.scalars(sa.select(tm.Channel))]
    return sorted(p for c in channels if c.exists() for p in c.rglob("*"))


def test_collect_links_the_blocks_into_each_layer_without_copying(tmaps, tmp_path):
    experiment_id = make_experiment(tmp_path, wells=2, sites=4, channels=1)
    step = get_step("illuminati")(experiment_id)
    n_jobs = step.init({"clip": True, "clip_value": 2000, "batch_size": 1})
    assert n_jobs > 1
    for job_id in step.run_job_ids():
        step.run(job_id)
    shard_bytes = sum(p.stat().st_size for p in step.shards_location.rglob("block_*.tiles"))
    inodes = {p.stat().st_ino for p in step.shards_location.rglob("block_*.tiles")}
    step.collect()
    assert not step.shards_location.exists()
    files = [p for p in layer_files(experiment_id) if p.is_file()]
    index = [p for p in files if p.name.endswith(".tiles") and p.parent.name == "layers"]
    blocks = [p for p in files if p not in index]
    assert len(index) == 1 and len(blocks) == n_jobs
    assert {p.stat().st_ino for p in blocks} == inodes  # the run jobs' files, not copies
    assert sum(p.stat().st_size for p in blocks) == shard_bytes
    # the index holds the levels above the blocks only
    assert count_tiles(index[0]) < sum(count_tiles(p) for p in blocks)
    with tm.utils.ExperimentSession(experiment_id) as session:
        layer = session.scalars(sa.select(tm.ChannelLayer)).one()
        with layer.open_tiles() as reader:
            assert len(reader) == len(list(reader.tiles())) > n_jobs
            assert layer.get_tile(0, 0, 0) is not None  # the top level, from the index


def test_collect_with_a_missing_or_bad_shard_fails_naming_the_job_and_leaves_no_layer(
    tmaps, tmp_path
):
    experiment_id = make_experiment(tmp_path, wells=2, sites=2, channels=2)
    step = get_step("illuminati")(experiment_id)
    step.init({"clip": True, "clip_value": 2000, "batch_size": 1})
    for job_id in step.run_job_ids():
        step.run(job_id)
    last = step.run_job_ids()[-1]
    batch = step.read_batch("run", last)
    shard = step.shard_path(batch["layer"], tuple(batch["block"]))
    shard.rename(shard.with_suffix(".away"))
    with pytest.raises(NotFoundError, match=rf"run job {last} of illuminati left no tiles"):
        step.collect()
    shard.write_bytes(b"garbage" * 1000)  # a job killed while writing would leave no file
    with pytest.raises(
        InvalidInputError, match=rf"is not a tile container \(.*\): run job {last} again"
    ):
        step.collect()
    # the layers written before the bad one were removed with their rolled-back rows
    assert layer_files(experiment_id) == []
    with tm.utils.ExperimentSession(experiment_id) as session:
        assert session.scalar(sa.select(sa.func.count(tm.ChannelLayer.id))) == 0
    shard.with_suffix(".away").replace(shard)
    step.collect()
    with tm.utils.ExperimentSession(experiment_id) as session:
        assert session.scalar(sa.select(sa.func.count(tm.ChannelLayer.id))) == 2


def cli(*args: object) -> subprocess.CompletedProcess:
    return helpers.cli("illuminati", *args)


def test_bad_input_is_refused_before_anything_is_removed(tmaps, tmp_path):
    experiment_id = make_experiment(tmp_path, wells=1, sites=2, channels=1)
    run_step(experiment_id, "illuminati", clip=True, clip_value=2000)
    before = tile_checksums(experiment_id)

    line = one_error_line(cli(experiment_id, "init", "--clip", "--clip-value", "70000"))
    assert "clip value 70000 is outside the range of 16-bit images" in line
    line = one_error_line(cli(experiment_id, "init", "--clip"))
    assert "no illumination statistics" in line and "corilla" in line
    line = one_error_line(cli(experiment_id, "init", "--align"))
    assert "no site shifts" in line
    with tm.utils.ExperimentSession(experiment_id) as session:
        plane = session.scalars(sa.select(tm.ChannelImageFile)).first()
        Path(plane.location).rename(plane.location + ".away")
    line = one_error_line(cli(experiment_id, "init", "--clip", "--clip-value", "2000"))
    assert "is missing" in line and "imextract" in line
    Path(plane.location + ".away").rename(plane.location)
    with tm.utils.ExperimentSession(experiment_id) as session:
        session.delete(session.scalars(sa.select(tm.ChannelImageFile)).first())
    line = one_error_line(cli(experiment_id, "init"))
    assert "differing numbers of image planes" in line

    assert tile_checksums(experiment_id) == before  # the earlier pyramid is intact


def test_export_writes_a_level_as_an_image(tmaps, tmp_path):
    experiment_id = make_experiment(tmp_path, wells=2, sites=1, channels=1)
    for args in (["init", "--clip", "--clip-value", "2500", "-b", "1"], ["submit"]):
        result = cli(experiment_id, *args)
        assert result.returncode == 0, result.stderr
    with tm.utils.ExperimentSession(experiment_id) as session:
        channel = session.scalars(sa.select(tm.Channel.name)).one()
    out = tmp_path / "overview.png"
    result = cli(experiment_id, "export", "--channel", channel, "-o", out)
    assert result.returncode == 0, result.stderr
    image = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert image.shape == (300, 1300) and image.dtype == np.uint8 and image.max() > 100
    assert "unknown-channel" in one_error_line(
        cli(experiment_id, "export", "--channel", "unknown-channel", "-o", out)
    )
    assert "level must be between 0 and 3" in one_error_line(
        cli(experiment_id, "export", "--channel", channel, "--level", "9", "-o", out)
    )


def test_no_images_is_a_clear_error(tmaps, tmp_path):
    registry.add_user("ivy", "pw", "ivy@example.org")
    experiment_id = registry.add_experiment("empty", "ivy", microscope_type="cellvoyager")
    with pytest.raises(InvalidInputError, match="no image planes"):
        get_step("illuminati")(experiment_id).init({})
