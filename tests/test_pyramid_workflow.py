"""conversion → preprocessing → pyramids through ``tm_workflow``, basic and multiplexing.

Runs the default workflow description of each type through the installed
command lines and checks that re-running a step or resubmitting from a stage
gives identical tiles (compared by checksum).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import sqlalchemy as sa
from helpers import cli, expected_base, ok, tile_checksums, use_fast_password_hashing

import tmlib.models as tm
from tmlib import registry
from tmlib.simulate import PlateSpec, cycle_directory, read_shifts, simulate_cycles, simulate_plate
from tmlib.workflow.steps.illuminati import export_level

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fast_password_hashing(monkeypatch)


def spec(**changes) -> PlateSpec:
    values = dict(microscope="cellvoyager", wells=2, sites=4, channels=2, height=160, width=192,
                  seed=3, plate_format=96)  # fmt: skip
    return PlateSpec(**{**values, **changes})


def new_experiment(name: str, mode: str) -> int:
    registry.add_user("pat", "pw", "pat@example.org")
    experiment_id = registry.add_experiment(
        name, "pat", microscope_type="cellvoyager", plate_format=96, plate_acquisition_mode=mode
    )
    registry.add_plate(experiment_id, "P1")
    return experiment_id


def submit(experiment_id: int, *args: str) -> None:
    result = ok(cli("tm_workflow", experiment_id, *args, timeout=600))
    assert "all jobs succeeded" in result.stdout


def test_basic_plate_goes_through_conversion_preprocessing_and_pyramids(tmaps, tmp_path):
    simulate_plate(tmp_path / "plate", spec())
    eid = new_experiment("basic", "basic")
    registry.add_acquisition(eid, "P1", "A1")
    registry.register_files(eid, "P1", "A1", tmp_path / "plate")

    submit(eid, "submit")
    stages = ok(cli("tm_workflow", eid, "status")).stdout
    for stage in ("image_conversion", "image_preprocessing", "pyramid_creation"):
        assert stage in stages
    with tm.utils.ExperimentSession(eid) as session:
        assert session.scalar(sa.select(sa.func.count(tm.IllumstatsFile.id))) == 2
        layers = session.scalars(sa.select(tm.ChannelLayer)).all()
        assert len(layers) == 2
        for layer in layers:  # clipped to corilla's percentiles by default
            stats = layer.channel.illumstats_file.get()
            assert layer.max_intensity == stats.closest_percentile(99.9)
            assert 0 < layer.max_intensity < 65535
        channel = layers[0].channel.name
    first = tile_checksums(eid)

    out = tmp_path / "overview.png"
    ok(cli("illuminati", eid, "export", "--channel", channel, "-o", out))
    overview = cv2.imread(str(out), cv2.IMREAD_GRAYSCALE)
    assert overview.shape == (320, 384 * 2 + 500)  # 2 wells of 2x2 sites, one spacer
    assert overview[:, :384].mean() > 10  # cells are visible, not a black image

    submit(eid, "resubmit", "--stage", "image_preprocessing")
    assert tile_checksums(eid) == first
    ok(cli("illuminati", eid, "init", "--clip", "-b", "1"))  # other blocks, same tiles
    ok(cli("illuminati", eid, "submit"))
    assert tile_checksums(eid) == first


def test_multiplexing_plate_is_aligned_before_its_pyramids(tmaps, tmp_path):
    simulate_cycles(tmp_path / "plate", spec(wells=1, channels=1), cycles=3, max_shift=12)
    eid = new_experiment("multiplexing", "multiplexing")
    for cycle in range(3):
        registry.add_acquisition(eid, "P1", f"cycle{cycle}")
        registry.register_files(
            eid, "P1", f"cycle{cycle}", cycle_directory(tmp_path / "plate", cycle)
        )

    submit(eid, "submit")
    truth = read_shifts(tmp_path / "plate")
    with tm.utils.ExperimentSession(eid) as session:
        shifts = {
            (s.cycle_id, s.site_id): (s.y, s.x) for s in session.scalars(sa.select(tm.SiteShift))
        }
        assert len(shifts) == len(truth) == 3 * 4
        cycles = {c.id: c.index for c in session.scalars(sa.select(tm.Cycle))}
        for (cycle_id, site_id), shift in shifts.items():
            site = session.get(tm.Site, site_id)
            assert truth[(cycles[cycle_id], site.well.name, site.y, site.x)] == shift
        layers = session.scalars(sa.select(tm.ChannelLayer)).all()
        assert sorted(la.channel.name for la in layers) == ["0_A01_C01", "1_A01_C01", "2_A01_C01"]
    first = tile_checksums(eid)

    # the pyramids show the aligned images, and all cycles the same cells in the same place
    bases = []
    for name in sorted(first):
        channel = name.split("/")[0]
        with tm.utils.ExperimentSession(eid) as session:
            layer = session.scalars(
                sa.select(tm.ChannelLayer).join(tm.Channel).where(tm.Channel.name == channel)
            ).one()
            window = (int(layer.min_intensity), int(layer.max_intensity))
        base = export_level(eid, channel).astype(int)
        error = np.abs(base - expected_base(eid, channel, window, aligned=True)).mean()
        assert error < 2.0, name  # JPEG on noisy images
        if not channel.startswith("0_"):  # the same without alignment is far off
            unaligned = expected_base(eid, channel, window, aligned=False)
            unaligned = unaligned[: base.shape[0], : base.shape[1]]
            assert (
                np.abs(base[: unaligned.shape[0], : unaligned.shape[1]] - unaligned).mean()
                > 2 * error
            )
        bases.append(base.ravel())
    for other in bases[1:]:
        assert np.corrcoef(bases[0], other)[0, 1] > 0.9

    submit(eid, "resubmit", "--stage", "pyramid_creation")
    assert tile_checksums(eid) == first
    submit(eid, "resubmit", "--stage", "image_preprocessing")
    assert tile_checksums(eid) == first
