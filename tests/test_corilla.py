"""The corilla step on simulated plates: statistics, batching, idempotency, bad input.

The image_conversion stage and corilla run in-process through the step API
(``init``, ``run`` for every job, ``collect``), the code their jobs run; the
command line is checked for its exit codes.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from helpers import files_under, run_step, use_fast_password_hashing

import tmlib.models as tm
from tmlib import registry
from tmlib.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from tmlib.illumination import Correction, IlluminationStats, correct
from tmlib.simulate import PlateSpec, simulate_plate
from tmlib.workflow.step import get_step
from tmlib.workflow.steps import corilla

BIN = Path(sys.executable).parent
USER = "carla"
#: 2 wells x 3 sites x 2 time points: 12 images of 48x64 pixels per channel
SPEC = PlateSpec(
    microscope="cellvoyager", plate_format=96, wells=2, sites=3, channels=2, tpoints=2,
    height=48, width=64, seed=11,
)  # fmt: skip
IMAGES_PER_CHANNEL = SPEC.wells * SPEC.sites * SPEC.tpoints
#: fixed-point rounding bound of the mean of log10 values (see tmlib.illumination)
MEAN_TOLERANCE = 2.0**-26

sqlite_only = pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fast_password_hashing(monkeypatch)


@pytest.fixture(scope="module")
def plate_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated microscope files, written once (read-only)."""
    source = tmp_path_factory.mktemp("corilla-plate")
    simulate_plate(source, SPEC)
    return source


def new_experiment(source: Path, *, extract: bool = True) -> int:
    """An experiment of the simulated plate, converted (imextract only if `extract`)."""
    with contextlib.suppress(AlreadyExistsError):
        registry.add_user(USER, "secret", f"{USER}@example.org")
    eid = registry.add_experiment("exp", USER, microscope_type="cellvoyager", plate_format=96)
    registry.add_plate(eid, "plate")
    registry.add_acquisition(eid, "plate", "acq")
    registry.register_files(eid, "plate", "acq", source)
    run_step(eid, "metaextract")
    run_step(eid, "metaconfig")
    if extract:
        run_step(eid, "imextract")
    return eid


@pytest.fixture
def experiment(tmaps, plate_files: Path) -> int:
    return new_experiment(plate_files)


def illumstats(eid: int) -> dict[str, tm.IllumstatsImages]:
    """The stored statistics of every channel, by channel name."""
    with tm.utils.ExperimentSession(eid) as session:
        files = session.scalars(sa.select(tm.IllumstatsFile)).all()
        return {f.channel.name: f.get() for f in files}


def illumstats_paths(eid: int) -> dict[str, Path]:
    with tm.utils.ExperimentSession(eid) as session:
        files = session.scalars(sa.select(tm.IllumstatsFile)).all()
        return {f.channel.name: Path(f.location) for f in files}


def channel_images(eid: int) -> dict[str, list[np.ndarray]]:
    """The extracted images of every channel, by channel name."""
    with tm.utils.ExperimentSession(eid) as session:
        images: dict[str, list[np.ndarray]] = {}
        for plane in session.scalars(sa.select(tm.ChannelImageFile)):
            images.setdefault(plane.channel.name, []).append(plane.get())
        return images


def experiment_location(eid: int) -> Path:
    with tm.utils.ExperimentSession(eid) as session:
        return Path(session.scalar(sa.select(tm.Experiment.location)))


def assert_same_stats(a: dict[str, tm.IllumstatsImages], b: dict[str, tm.IllumstatsImages]):
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(a[name].mean, b[name].mean, err_msg=name)
        np.testing.assert_array_equal(a[name].std, b[name].std, err_msg=name)
        assert a[name].percentiles == b[name].percentiles, name


def assert_no_leftovers(eid: int) -> None:
    """One statistics file per channel, each its row's; no temporary files anywhere."""
    location = experiment_location(eid)
    stored = sorted(illumstats_paths(eid).values())
    assert [p for p in files_under(location / "channels") if "illumstats" in p.parts] == stored
    temporary = [p for p in files_under(location) if p.name.startswith(".") or ".tmp" in p.name]
    assert temporary == []


# ------------------------------------------------------------------ the result


def test_corilla_is_a_registered_step():
    step = get_step("corilla")
    assert step is corilla.Corilla
    assert step.fullname == "Calculation of illumination statistics"
    assert step.requires == ("imextract",)
    assert step.has_collect
    assert [(a.name, a.short) for a in step.batch_args] == [("batch_size", "-b")]


def test_statistics_equal_those_of_the_channel_images(experiment: int):
    n_jobs = run_step(experiment, "corilla", batch_size=5)
    assert n_jobs == SPEC.channels * -(-IMAGES_PER_CHANNEL // 5)
    stored = illumstats(experiment)
    images = channel_images(experiment)
    assert sorted(stored) == sorted(images) and len(stored) == SPEC.channels
    for name, stats in stored.items():
        stack = np.stack(images[name])
        assert stack.shape == (IMAGES_PER_CHANNEL, SPEC.height, SPEC.width)
        logs = np.log10(np.where(stack == 0, 1, stack).astype(np.float64))
        assert stats.mean.shape == (SPEC.height, SPEC.width) and stats.mean.dtype == np.float64
        np.testing.assert_allclose(stats.mean, logs.mean(axis=0), rtol=0, atol=MEAN_TOLERANCE)
        np.testing.assert_allclose(stats.std, logs.std(axis=0, ddof=1), rtol=1e-5, atol=1e-7)
        assert stats.std.min() > 0
        for level in (0.0, 0.001, 1.0, 50.0, 99.9, 100.0):
            want = np.percentile(stack, level, method="inverted_cdf")
            assert stats.closest_percentile(level) == want, level
    assert_no_leftovers(experiment)


def test_result_does_not_depend_on_the_batch_size(experiment: int):
    assert run_step(experiment, "corilla", batch_size=1) == SPEC.channels * IMAGES_PER_CHANNEL
    one_by_one = illumstats(experiment)
    assert run_step(experiment, "corilla", batch_size=1000) == SPEC.channels
    all_at_once = illumstats(experiment)
    assert run_step(experiment, "corilla", batch_size=7) == SPEC.channels * 2
    uneven = illumstats(experiment)
    assert_same_stats(one_by_one, all_at_once)
    assert_same_stats(uneven, all_at_once)
    assert_no_leftovers(experiment)


def test_a_channel_is_cut_into_at_most_max_parts_jobs(experiment: int, monkeypatch):
    """Collect merges a bounded number of partials per channel, whatever the batch size
    or the cluster, and the result stays exact."""
    assert run_step(experiment, "corilla", batch_size=1000) == SPEC.channels
    one_part = illumstats(experiment)
    monkeypatch.setattr(corilla, "MAX_PARTS", 2)
    assert run_step(experiment, "corilla", batch_size=1) == SPEC.channels * 2
    step = corilla.Corilla(experiment)
    batches = [step.read_batch("run", j) for j in step.run_job_ids()]
    assert {b["n_parts"] for b in batches} == {2}
    assert sum(len(b["channel_image_file_ids"]) for b in batches) == (
        SPEC.channels * IMAGES_PER_CHANNEL
    )
    assert_same_stats(illumstats(experiment), one_part)
    # the automatic batch size on a large cluster: also at most MAX_PARTS jobs per channel
    monkeypatch.setenv("TMAPS_CORES", "1600")
    assert step.init({}) <= SPEC.channels * 2
    assert_no_leftovers(experiment)


def test_collect_twice_and_init_again_give_the_same_files(experiment: int):
    run_step(experiment, "corilla", batch_size=4)
    first, paths = illumstats(experiment), illumstats_paths(experiment)
    step = corilla.Corilla(experiment)
    step.collect()
    assert illumstats_paths(experiment) == paths  # rewritten in place
    assert_same_stats(illumstats(experiment), first)
    assert_no_leftovers(experiment)
    # run jobs again (a resubmission), then collect
    for job_id in step.run_job_ids():
        step.run(job_id)
    step.collect()
    assert_same_stats(illumstats(experiment), first)
    # init again: the old output is removed first, the new one is the same
    step.init({"batch_size": 4})
    assert illumstats(experiment) == {}
    assert not any(p.exists() for p in paths.values())
    assert not step.partial_location.exists()
    for job_id in step.run_job_ids():
        step.run(job_id)
    step.collect()
    assert_same_stats(illumstats(experiment), first)
    assert_no_leftovers(experiment)


def test_cleanup_removes_rows_files_and_partials(experiment: int):
    run_step(experiment, "corilla")
    step = corilla.Corilla(experiment)
    paths = illumstats_paths(experiment)
    assert step.partial_location.is_dir() and paths
    step.cleanup()
    assert illumstats(experiment) == {}
    assert not any(p.exists() for p in paths.values())
    assert not step.partial_location.exists()
    with tm.utils.ExperimentSession(experiment) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(tm.ChannelImageFile)) > 0


def test_consumers_correct_images_with_the_smoothed_statistics(experiment: int):
    run_step(experiment, "corilla")
    with tm.utils.ExperimentSession(experiment) as session:
        channel = session.scalars(sa.select(tm.Channel).order_by(tm.Channel.id)).first()
        stats = channel.illumstats_file.get().smoothed()
        fast = Correction.from_stats(stats)
        for plane in channel.image_files:
            image = plane.get()
            got = fast(image)
            assert got.dtype == image.dtype and got.shape == image.shape
            np.testing.assert_array_equal(got, correct(image, stats.mean, stats.std))


# ------------------------------------------------------------------- batches


def test_a_channel_of_many_images_uses_a_fixed_subset(experiment: int, monkeypatch, caplog):
    monkeypatch.setattr(corilla, "MAX_IMAGES", 5)
    step = corilla.Corilla(experiment)
    with caplog.at_level(logging.WARNING, logger=corilla.__name__):
        step.init({"batch_size": 2})
    assert "fewer than 100" in caplog.text  # 12 images per channel is few
    batches = [step.read_batch("run", j) for j in step.run_job_ids()]
    chosen = {}
    for batch in batches:
        chosen.setdefault(batch["channel_id"], []).extend(batch["channel_image_file_ids"])
    assert sorted(len(ids) for ids in chosen.values()) == [5] * SPEC.channels
    assert all(ids == sorted(ids) for ids in chosen.values())
    step.init({"batch_size": 3})  # the same subset, cut otherwise
    again = {}
    for job_id in step.run_job_ids():
        batch = step.read_batch("run", job_id)
        again.setdefault(batch["channel_id"], []).extend(batch["channel_image_file_ids"])
    assert again == chosen
    for job_id in step.run_job_ids():
        step.run(job_id)
    step.collect()
    with tm.utils.ExperimentSession(experiment) as session:
        for channel_id, ids in chosen.items():
            images = [session.get(tm.ChannelImageFile, i).get() for i in ids]
            stats = session.get(tm.Channel, channel_id).illumstats_file.get()
            stack = np.stack(images).astype(np.float64)
            logs = np.log10(np.where(stack == 0, 1, stack))
            np.testing.assert_allclose(stats.mean, logs.mean(axis=0), atol=MEAN_TOLERANCE)


def test_batches_say_channel_shape_and_dtype(experiment: int):
    step = corilla.Corilla(experiment)
    assert step.init({"batch_size": 5}) == SPEC.channels * 3
    batch = step.read_batch("run", 1)
    assert batch["shape"] == [SPEC.height, SPEC.width]
    assert batch["dtype"] == "uint16"
    assert (batch["part"], batch["n_parts"]) == (1, 3)
    assert len(batch["channel_image_file_ids"]) == 5


# ----------------------------------------------------------------- bad input


def test_experiment_without_planes_fails_in_init(tmaps):
    with contextlib.suppress(AlreadyExistsError):
        registry.add_user(USER, "secret", f"{USER}@example.org")
    eid = registry.add_experiment("empty", USER, microscope_type="cellvoyager")
    with pytest.raises(InvalidInputError, match=rf"experiment {eid} has no image planes"):
        corilla.Corilla(eid).init({})


def test_experiment_without_extracted_images_fails_in_init(tmaps, plate_files: Path):
    eid = new_experiment(plate_files, extract=False)
    with pytest.raises(InvalidInputError, match=r"has no extracted pixels .*run imextract"):
        corilla.Corilla(eid).init({})
    assert not corilla.Corilla(eid).batches_location.exists()


@sqlite_only
def test_command_line_init_without_extracted_images_exits_2(tmaps, plate_files: Path):
    eid = new_experiment(plate_files, extract=False)
    proc = subprocess.run(
        [str(BIN / "corilla"), str(eid), "init"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "run imextract" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@sqlite_only
def test_command_line_runs_the_step(experiment: int):
    def cli(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "corilla"), str(experiment), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
        )

    init = cli("init", "-b", "12")
    assert init.returncode == 0, init.stderr
    assert "corilla: 2 run job(s)" in init.stdout
    for job in (1, 2):
        run = cli("run", "-j", job)
        assert run.returncode == 0 and "JOB COMPLETED" in run.stdout, run.stderr
    collect = cli("collect")
    assert collect.returncode == 0, collect.stderr
    assert len(illumstats(experiment)) == SPEC.channels


def test_images_of_differing_shapes_fail_in_init_and_keep_the_old_result(experiment: int):
    run_step(experiment, "corilla")
    good = illumstats(experiment)
    with tm.utils.ExperimentSession(experiment) as session:
        session.scalars(sa.select(tm.Site).order_by(tm.Site.id)).first().height = 50
    expected = r"differ in shape \(48x64: 10 plane\(s\), e\.g\. id \d+; 50x64: 2 plane\(s\)"
    with pytest.raises(InvalidInputError, match=expected):
        corilla.Corilla(experiment).init({})
    assert_same_stats(illumstats(experiment), good)  # validated before anything was removed


def test_a_plane_of_another_shape_on_disk_fails_its_run_job(experiment: int):
    step = corilla.Corilla(experiment)
    step.init({"batch_size": 100})
    with tm.utils.ExperimentSession(experiment) as session:
        plane = session.scalars(sa.select(tm.ChannelImageFile).order_by(tm.ChannelImageFile.id))
        plane = plane.first()
        plane.put(np.zeros((8, 8), np.uint16))
        plane_id, channel = plane.id, plane.channel.name
    batches = {j: step.read_batch("run", j) for j in step.run_job_ids()}
    job = next(j for j, b in batches.items() if plane_id in b["channel_image_file_ids"])
    message = rf"image plane {plane_id} .* shape \(8, 8\)"
    with pytest.raises(InvalidInputError, match=message) as err:
        step.run(job)
    assert f"channel {channel!r} has uint16 images of shape (48, 64)" in str(err.value)


def test_a_missing_plane_file_fails_init_naming_it(experiment: int):
    with tm.utils.ExperimentSession(experiment) as session:
        plane = session.scalars(sa.select(tm.ChannelImageFile)).first()
        path = Path(plane.location)
    path.unlink()
    with pytest.raises(InvalidInputError, match=rf"no extracted pixels \({path}\)"):
        corilla.Corilla(experiment).init({})


def test_collect_without_a_run_job_output_fails_naming_the_job(experiment: int):
    step = corilla.Corilla(experiment)
    step.init({"batch_size": 5})
    for job_id in step.run_job_ids()[:-1]:
        step.run(job_id)
    last = step.run_job_ids()[-1]
    with pytest.raises(NotFoundError, match=rf"run job {last} of corilla left no statistics"):
        step.collect()
    # the channels whose partials were complete may have been written; the last is not
    assert len(illumstats(experiment)) == SPEC.channels - 1
    step.run(last)
    step.collect()
    assert len(illumstats(experiment)) == SPEC.channels


def test_a_stale_partial_is_detected(experiment: int):
    step = corilla.Corilla(experiment)
    step.init({"batch_size": 5})
    for job_id in step.run_job_ids():
        step.run(job_id)
    batch = step.read_batch("run", 1)
    IlluminationStats.empty(tuple(batch["shape"])).save(
        step.partial_file(batch["channel_id"], batch["part"])
    )
    with pytest.raises(InvalidInputError, match="holds 0 images, its batch 5"):
        step.collect()


def test_bad_batch_size_is_rejected(experiment: int):
    with pytest.raises(InvalidInputError, match="batch_size must be between 1 and 1000000, got 0"):
        corilla.Corilla(experiment).init({"batch_size": 0})


def test_removed_partials_directory_is_recreated(experiment: int):
    step = corilla.Corilla(experiment)
    step.init({"batch_size": 100})
    shutil.rmtree(step.step_location / "partial", ignore_errors=True)
    for job_id in step.run_job_ids():
        step.run(job_id)
    step.collect()
    assert len(illumstats(experiment)) == SPEC.channels
