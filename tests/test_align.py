"""The align step and its numbers (:mod:`tmlib.alignment`).

Unit tests register synthetic images cut out of one larger field at known
offsets. End-to-end tests simulate a multiplexing plate (``tm_simulate plate
--cycles 3``: one plate directory per cycle, true shifts in
``ground_truth/shifts.csv``), register one acquisition per cycle in a
multiplexing experiment, run metaextract, metaconfig and imextract, then
align, and compare every SiteShift with the ground truth.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from helpers import run_step, use_fast_password_hashing
from scipy import ndimage

import tmlib.models as tm
from tmlib import registry
from tmlib.alignment import clip_percentile, register, residues, shift_and_crop
from tmlib.errors import AlreadyExistsError, InvalidInputError
from tmlib.simulate import PlateSpec
from tmlib.simulate.multiplex import cycle_directory, read_shifts
from tmlib.workflow.step import get_step

BIN = Path(sys.executable).parent
USER = "alice"
PLATE = "plate"
#: the channel every simulated cycle shows alike: nuclei, CellVoyager channel 1
REF_WAVELENGTH = "A01_C01"

sqlite_only = pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fast_password_hashing(monkeypatch)


# ----------------------------------------------------------- synthetic images


def blob_field(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A uint16 field of smooth blobs on a background (cell-like texture)."""
    rng = np.random.default_rng(seed)
    spikes = np.zeros(shape)
    n = shape[0] * shape[1] // 400
    spikes[rng.integers(0, shape[0], n), rng.integers(0, shape[1], n)] = rng.uniform(1, 3, n)
    blobs = ndimage.gaussian_filter(spikes, 3.0) * 20000
    return (200 + blobs).astype(np.uint16)


def window(field: np.ndarray, shape: tuple[int, int], margin: int, y: int, x: int) -> np.ndarray:
    """The image of a cycle whose content is displaced by (y, x) from the centre window."""
    top, left = margin - y, margin - x
    return field[top : top + shape[0], left : left + shape[1]]


SHIFTS = [(0, 0), (7, 0), (0, -9), (12, 5), (-13, 17), (-4, -19), (20, -20), (-1, 1)]


@pytest.mark.parametrize(("y", "x"), SHIFTS)
def test_register_finds_known_shifts(y: int, x: int) -> None:
    shape, margin = (160, 200), 25
    field = blob_field((shape[0] + 2 * margin, shape[1] + 2 * margin))
    reference = window(field, shape, margin, 0, 0)
    target = window(field, shape, margin, y, x)
    assert target[margin + y, margin + x] == reference[margin, margin]  # the convention
    assert register(reference, target) == (y, x)
    assert register(target, reference) == (-y, -x)


def test_register_with_noise_and_float_input() -> None:
    shape, margin = (128, 128), 20
    field = blob_field((shape[0] + 2 * margin, shape[1] + 2 * margin), seed=3).astype(float)
    rng = np.random.default_rng(1)
    reference = window(field, shape, margin, 0, 0) + rng.normal(0, 20, shape)
    target = window(field, shape, margin, -11, 6) + rng.normal(0, 20, shape)
    assert register(reference, target) == (-11, 6)
    assert register(reference.astype(np.float32), target) == (-11, 6)


def test_register_rejects_images_of_different_shape() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        register(np.zeros((10, 12)), np.zeros((12, 10)))
    with pytest.raises(ValueError, match="2D"):
        register(np.zeros((3, 10, 12)), np.zeros((3, 10, 12)))


def test_residues_take_the_extremes_of_all_cycles() -> None:
    assert residues([(0, 0), (3, -2), (-5, 4), (1, 1)]) == (5, 3, 2, 4)
    assert residues([(0, 0)]) == (0, 0, 0, 0)
    assert residues([]) == (0, 0, 0, 0)
    # the reference's (0, 0) is implied: all shifts positive gives no top/left residue
    assert residues([(4, 6), (2, 9)]) == (0, 4, 0, 9)
    assert residues([(-4, -6)]) == (4, 0, 6, 0)
    assert all(isinstance(v, int) for v in residues([(np.int64(2), np.int64(-3))]))


def test_shift_and_crop_registers_all_cycles_pixel_to_pixel() -> None:
    shape, margin = (90, 110), 15
    field = blob_field((shape[0] + 2 * margin, shape[1] + 2 * margin), seed=5)
    shifts = [(0, 0), (6, -4), (-9, 11), (3, 15), (-15, -2)]
    images = [window(field, shape, margin, y, x) for y, x in shifts]
    top, bottom, left, right = residues(shifts)
    assert (top, bottom, left, right) == (15, 6, 4, 15)
    aligned = [
        shift_and_crop(image, y, x, top, bottom, left, right)
        for image, (y, x) in zip(images, shifts, strict=True)
    ]
    for a in aligned:
        assert a.shape == (shape[0] - top - bottom, shape[1] - left - right)
        assert a.dtype == np.uint16
        np.testing.assert_array_equal(a, aligned[0])
    # aligned pixel [i, j] is the reference's pixel (top + i, left + j)
    np.testing.assert_array_equal(aligned[0], images[0][top : shape[0] - bottom, left:-right])


def test_register_then_shift_and_crop_round_trip() -> None:
    shape, margin = (128, 160), 20
    field = blob_field((shape[0] + 2 * margin, shape[1] + 2 * margin), seed=9)
    truth = [(0, 0), (-17, 8), (5, -20)]
    images = [window(field, shape, margin, y, x) for y, x in truth]
    found = [register(images[0], image) for image in images]
    assert found == truth
    res = residues(found)
    crops = [shift_and_crop(i, y, x, *res) for i, (y, x) in zip(images, found, strict=True)]
    assert all(np.array_equal(c, crops[0]) for c in crops)


def test_shift_and_crop_rejects_shifts_outside_the_residues() -> None:
    image = np.zeros((20, 30), np.uint8)
    with pytest.raises(ValueError, match="outside the residues"):
        shift_and_crop(image, 3, 0, 0, 2, 0, 0)
    with pytest.raises(ValueError, match="outside the residues"):
        shift_and_crop(image, 0, -1, 0, 0, 0, 5)
    with pytest.raises(ValueError, match="leave nothing"):
        shift_and_crop(image, 0, 0, 10, 10, 0, 0)
    assert shift_and_crop(image, 0, 0, 0, 0, 0, 0).shape == (20, 30)


def test_clip_percentile_caps_bright_outliers() -> None:
    image = np.arange(1000, dtype=np.uint16).reshape(10, 100)
    clipped = clip_percentile(image, 90.0)
    assert clipped.dtype == np.uint16 and clipped.max() == np.uint16(np.percentile(image, 90))
    np.testing.assert_array_equal(clipped[:5], image[:5])
    with pytest.raises(ValueError):
        clip_percentile(image, 0)


# ------------------------------------------------------------- experiments

#: 2 wells x 2 sites x 2 channels of 256x256 px in 3 cycles, shifts up to 20 px
SPEC = PlateSpec(microscope="cellvoyager", plate_format=96, wells=2, sites=2, channels=2, seed=11)
CYCLES = 3


@pytest.fixture(scope="module")
def cycles_plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tm_simulate plate OUT --cycles 3`` (written once; read-only)."""
    out = tmp_path_factory.mktemp("multiplexing") / "plate"
    result = subprocess.run(
        [str(BIN / "tm_simulate"), "plate", str(out), "-q", "--cycles", str(CYCLES),
         "--wells", "2", "--sites", "2", "--channels", "2", "--plate-format", "96",
         "--seed", str(SPEC.seed)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


@dataclass
class Experiment:
    id: int
    source: Path


def new_experiment(mode: str, name: str = "exp") -> int:
    with contextlib.suppress(AlreadyExistsError):
        registry.add_user(USER, "secret", f"{USER}@example.org")
    eid = registry.add_experiment(
        name, USER, microscope_type="cellvoyager", plate_format=96, plate_acquisition_mode=mode
    )
    registry.add_plate(eid, PLATE)
    return eid


def convert(eid: int) -> None:
    run_step(eid, "metaextract", batch_size=5)
    run_step(eid, "metaconfig")
    run_step(eid, "imextract", batch_size=7)


def make_multiplexing_experiment(source: Path, cycles: int = CYCLES) -> Experiment:
    """A converted multiplexing experiment: acquisition ``cycle_k`` <- ``source/cycle_k``.

    Acquisitions are registered in cycle order, so ``source/cycle_k`` becomes
    ``Cycle.index`` k - 1 and channel ``<k - 1>_<wavelength>``.
    """
    eid = new_experiment("multiplexing")
    for k in range(cycles):
        name = cycle_directory(source, k).name
        registry.add_acquisition(eid, PLATE, name)
        registry.register_files(eid, PLATE, name, cycle_directory(source, k))
    convert(eid)
    return Experiment(eid, source)


def shift_table(eid: int) -> dict[tuple[int, str, int, int], tuple[int, int]]:
    """``(cycle index, well, site y, site x) -> (y, x)`` of every SiteShift row."""
    with tm.utils.ExperimentSession(eid) as session:
        rows = session.execute(
            sa.select(tm.Cycle.index, tm.Well.name, tm.Site.y, tm.Site.x, tm.SiteShift.y,
                      tm.SiteShift.x)
            .join(tm.Site, tm.Site.id == tm.SiteShift.site_id)
            .join(tm.Well, tm.Well.id == tm.Site.well_id)
            .join(tm.Cycle, tm.Cycle.id == tm.SiteShift.cycle_id)
        ).all()  # fmt: skip
    table = {(c, w, sy, sx): (y, x) for c, w, sy, sx, y, x in rows}
    assert len(table) == len(rows)
    return table


def site_residues(eid: int) -> dict[tuple[str, int, int], tuple[int, int, int, int]]:
    with tm.utils.ExperimentSession(eid) as session:
        rows = session.execute(
            sa.select(tm.Well.name, tm.Site.y, tm.Site.x, tm.Site.top_residue,
                      tm.Site.bottom_residue, tm.Site.left_residue, tm.Site.right_residue)
            .join(tm.Well, tm.Well.id == tm.Site.well_id)
        ).all()  # fmt: skip
    return {(w, y, x): tuple(r) for w, y, x, *r in rows}


def reference_images(eid: int) -> dict[tuple[str, int, int], dict[int, np.ndarray]]:
    """``(well, site y, site x) -> {cycle index: image of the reference wavelength}``."""
    images: dict[tuple[str, int, int], dict[int, np.ndarray]] = {}
    with tm.utils.ExperimentSession(eid) as session:
        planes = session.scalars(
            sa.select(tm.ChannelImageFile)
            .join(tm.Channel, tm.Channel.id == tm.ChannelImageFile.channel_id)
            .where(tm.Channel.wavelength == REF_WAVELENGTH)
        ).all()
        for plane in planes:
            key = (plane.site.well.name, plane.site.y, plane.site.x)
            images.setdefault(key, {})[plane.cycle.index] = plane.get()
    return images


def align_cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "align"), *map(str, args)],
        env={**os.environ, "TMAPS_CORES": "2"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_simulated_cycles_show_the_same_cells_displaced(cycles_plate: Path) -> None:
    truth = read_shifts(cycles_plate)
    assert len(truth) == CYCLES * SPEC.wells * SPEC.sites
    assert all(v == (0, 0) for k, v in truth.items() if k[0] == 0)
    moved = [v for k, v in truth.items() if k[0] > 0]
    assert all(max(abs(y), abs(x)) <= 20 for y, x in moved)
    assert sum(v != (0, 0) for v in moved) >= len(moved) - 1
    for k in range(CYCLES):
        assert (cycle_directory(cycles_plate, k) / "MeasurementData.mlf").is_file()


@pytest.fixture
def aligned(tmaps, cycles_plate: Path) -> Experiment:
    experiment = make_multiplexing_experiment(cycles_plate)
    run_step(experiment.id, "align", ref_cycle=0, ref_wavelength=REF_WAVELENGTH, batch_size=3)
    return experiment


def test_align_finds_the_simulated_shifts(aligned: Experiment) -> None:
    eid = aligned.id
    truth = read_shifts(aligned.source)
    assert shift_table(eid) == truth  # every site and cycle, exactly
    expected_residues = {}
    for (_cycle, well, sy, sx), shift in truth.items():
        expected_residues.setdefault((well, sy, sx), []).append(shift)
    got = site_residues(eid)
    assert got == {site: residues(s) for site, s in expected_residues.items()}
    assert any(r != (0, 0, 0, 0) for r in got.values())


def test_aligned_images_of_all_cycles_match(aligned: Experiment) -> None:
    shifts = shift_table(aligned.id)
    res = site_residues(aligned.id)
    for (well, sy, sx), by_cycle in reference_images(aligned.id).items():
        assert sorted(by_cycle) == list(range(CYCLES))
        crops = {
            c: shift_and_crop(image, *shifts[(c, well, sy, sx)], *res[(well, sy, sx)])
            for c, image in by_cycle.items()
        }
        reference = crops[0].astype(float).ravel()
        for c in range(1, CYCLES):
            assert crops[c].shape == crops[0].shape
            r = np.corrcoef(reference, crops[c].astype(float).ravel())[0, 1]
            assert r > 0.9, (well, sy, sx, c, r)
            # unaligned, the same cycle correlates clearly worse (the shift is real)
            if shifts[(c, well, sy, sx)] != (0, 0):
                raw = np.corrcoef(by_cycle[0].astype(float).ravel(),
                                  by_cycle[c].astype(float).ravel())[0, 1]  # fmt: skip
                assert raw < r - 0.1


def test_align_twice_gives_the_same_rows(aligned: Experiment) -> None:
    eid = aligned.id
    first, first_residues = shift_table(eid), site_residues(eid)
    run_step(eid, "align", ref_cycle=0, ref_wavelength=REF_WAVELENGTH, batch_size=100)
    assert shift_table(eid) == first
    assert site_residues(eid) == first_residues


def test_another_reference_cycle_shifts_relative_to_it(aligned: Experiment) -> None:
    eid = aligned.id
    truth = read_shifts(aligned.source)
    run_step(eid, "align", ref_cycle=1, ref_wavelength=REF_WAVELENGTH)
    relative = {
        (c, w, sy, sx): (y - truth[(1, w, sy, sx)][0], x - truth[(1, w, sy, sx)][1])
        for (c, w, sy, sx), (y, x) in truth.items()
    }
    assert shift_table(eid) == relative


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"ref_cycle": 7}, "reference cycle 7 does not exist; experiment .* has cycles 0, 1, 2"),
        ({"ref_wavelength": "nope"}, "wavelength 'nope' is not imaged in cycle 0; "
         "wavelengths there: A01_C01, A01_C02"),
        ({"illumcorr": True}, "--illumcorr needs illumination statistics .* run corilla"),
        ({"batch_size": 0}, "batch_size must be between 1 and 1000000, got 0"),
    ],
)  # fmt: skip
def test_bad_arguments_fail_before_anything_is_removed(
    aligned: Experiment, args: dict, message: str
) -> None:
    eid = aligned.id
    before, before_residues = shift_table(eid), site_residues(eid)
    step = get_step("align")(eid)
    batches = sorted(p.name for p in step.batches_location.iterdir())
    values = {"ref_cycle": 0, "ref_wavelength": REF_WAVELENGTH, **args}
    with pytest.raises(InvalidInputError, match=message):
        step.init(values)
    assert shift_table(eid) == before
    assert site_residues(eid) == before_residues
    assert sorted(p.name for p in step.batches_location.iterdir()) == batches


def test_collect_without_a_run_result_fails_and_writes_nothing(tmaps, cycles_plate: Path) -> None:
    eid = make_multiplexing_experiment(cycles_plate).id
    step = get_step("align")(eid)
    assert step.init({"ref_cycle": 0, "ref_wavelength": REF_WAVELENGTH, "batch_size": 2}) == 2
    step.run(1)  # job 2 "failed": no result
    with pytest.raises(InvalidInputError, match="align run job 2 has no result"):
        step.collect()
    assert shift_table(eid) == {}
    step.run(2)
    step.collect()
    assert shift_table(eid) == read_shifts(cycles_plate)
    step.cleanup()
    assert shift_table(eid) == {}
    assert set(site_residues(eid).values()) == {(0, 0, 0, 0)}


def test_illumination_correction_and_robust_alignment_find_the_same_shifts(
    tmaps, cycles_plate: Path
) -> None:
    eid = make_multiplexing_experiment(cycles_plate).id
    run_step(eid, "corilla")
    run_step(
        eid, "align", ref_cycle=0, ref_wavelength=REF_WAVELENGTH, illumcorr=True,
        robust_align=True, rescale_percentile=99.0,
    )  # fmt: skip
    assert shift_table(eid) == read_shifts(cycles_plate)


def test_omitted_sites_are_skipped(tmaps, cycles_plate: Path) -> None:
    eid = make_multiplexing_experiment(cycles_plate).id
    with tm.utils.ExperimentSession(eid) as session:
        site = session.scalars(sa.select(tm.Site).order_by(tm.Site.id)).first()
        site.omitted = True
        omitted = (site.well.name, site.y, site.x)
    run_step(eid, "align", ref_cycle=0, ref_wavelength=REF_WAVELENGTH)
    truth = read_shifts(cycles_plate)
    assert shift_table(eid) == {k: v for k, v in truth.items() if k[1:] != omitted}
    assert site_residues(eid)[omitted] == (0, 0, 0, 0)


def test_align_on_a_basic_experiment_exits_2_and_keeps_the_data(tmaps, cycles_plate: Path) -> None:
    eid = new_experiment("basic")
    registry.add_acquisition(eid, PLATE, "acq")
    registry.register_files(eid, PLATE, "acq", cycle_directory(cycles_plate, 0))
    convert(eid)
    with tm.utils.ExperimentSession(eid) as session:
        before = session.execute(
            sa.select(tm.ChannelImageFile.id, tm.ChannelImageFile.site_id)
        ).all()
    result = align_cli(eid, "init", "-c", "0", "-w", REF_WAVELENGTH)
    assert result.returncode == 2, result.stderr
    line = [x for x in result.stderr.splitlines() if "align needs" in x]
    assert line and f"align needs at least two cycles; experiment {eid} has one" in line[0]
    with tm.utils.ExperimentSession(eid) as session:
        after = session.execute(
            sa.select(tm.ChannelImageFile.id, tm.ChannelImageFile.site_id)
        ).all()
    assert sorted(after) == sorted(before) and before
    assert not get_step("align")(eid).batches_location.exists()
    for plane_id, _site in before[:2]:
        with tm.utils.ExperimentSession(eid) as session:
            assert session.get(tm.ChannelImageFile, plane_id).get().shape == SPEC.shape


@sqlite_only
def test_align_command_line(tmaps, cycles_plate: Path) -> None:
    eid = make_multiplexing_experiment(cycles_plate).id
    result = align_cli(eid, "init", "--ref-cycle", "0", "--ref-wavelength", REF_WAVELENGTH,
                       "-b", "3", "--robust-align", "--clip-percent", "99.5")  # fmt: skip
    assert result.returncode == 0, result.stderr
    info = align_cli(eid, "info", "--phase", "run", "--job", "1")
    assert info.returncode == 0 and "robust_align: true" in info.stdout
    assert "rescale_percentile: 99.5" in info.stdout
    for job in (1, 2):
        run = align_cli(eid, "run", "-j", job)
        assert run.returncode == 0, run.stderr
    collect = align_cli(eid, "collect")
    assert collect.returncode == 0, collect.stderr
    assert shift_table(eid) == read_shifts(cycles_plate)
    # by default the reference is cycle 0 and the first wavelength all cycles have
    assert align_cli(eid, "init").returncode == 0
    info = align_cli(eid, "info", "--phase", "run", "--job", "1").stdout
    assert f"ref_cycle_id: {cycle_ids(eid)[0]}" in info
    wrong = align_cli(eid, "init", "-c", "7")
    assert wrong.returncode == 2 and "reference cycle 7 does not exist" in wrong.stderr


def cycle_ids(experiment_id: int) -> dict[int, int]:
    """Cycle index to id."""
    with tm.utils.ExperimentSession(experiment_id) as session:
        return dict(session.execute(sa.select(tm.Cycle.index, tm.Cycle.id)).all())
