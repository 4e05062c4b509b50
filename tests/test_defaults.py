"""Default batch sizes keep every core busy, and a stage's fixed costs stay small.

* :func:`~tmlib.workflow.step.auto_batch_size`: at least one run job per job
  slot while there are that many items, no tiny jobs on a large plate;
* every step's run phase on a small plate (2 wells x 4 sites) with default
  arguments gets at least as many jobs as cores, for 2 and 4 local cores and
  for a cluster's slot count; explicit batch sizes (old descriptions) still win;
* the job spawner's per-step warm-up, and the CPU seconds of each job of a
  stage submitted with ``tm_workflow`` (what a job costs beyond its work).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import yaml
from helpers import cli, ok, run_step, use_fast_password_hashing

from tmlib import registry
from tmlib.simulate import PlateSpec, simulate_plate
from tmlib.workflow.description import WorkflowDescription
from tmlib.workflow.step import (
    JOBS_PER_SLOT,
    auto_batch_size,
    get_step,
    imported_modules,
    job_slots,
)

SQLITE_ONLY = pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)
#: the steps with a batch size, and what one batch counts
BATCHED = ("metaextract", "imextract", "corilla", "illuminati", "jterator")
#: CPU seconds one job of the tiny plate may take: its work is milliseconds, so this
#: is its fixed cost (a job that imported numpy, SQLAlchemy and the models itself
#: would need more than a second)
JOB_CPU_BOUND_S = 1.0


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fast_password_hashing(monkeypatch)


def n_jobs(n_items: int, size: int) -> int:
    return math.ceil(n_items / size)


# ------------------------------------------------------------------- the rule


@pytest.mark.parametrize("slots", [1, 2, 3, 4, 16, 64])
@pytest.mark.parametrize("bounds", [(1, 100), (4, 100), (20, 1000), (20, 500)])
def test_auto_batch_size_fills_every_slot_without_tiny_jobs(slots, bounds) -> None:
    low, high = bounds
    for n in [*range(0, 300), 1000, 4321, 10_000, 123_457]:
        size = auto_batch_size(n, slots, low, high)
        assert 1 <= size <= max(high, 1), (n, size)
        if n >= slots:  # at least one job per slot while there is that much work
            assert n_jobs(n, size) >= slots, (n, size)
        if n >= JOBS_PER_SLOT * slots * low:  # a large plate: no job below the minimum
            assert size >= low, (n, size)
        if n > 0:  # never more jobs than needed for two per slot (or the maximum size)
            assert n_jobs(n, size) <= max(JOBS_PER_SLOT * slots, n_jobs(n, high), slots), n


def test_auto_batch_size_examples() -> None:
    assert auto_batch_size(8, 2) == 2  # 2 wells x 4 sites on 2 cores: 4 jobs of 2 sites
    assert auto_batch_size(8, 2, minimum=20) == 4  # cheap items: one job per core
    assert auto_batch_size(100_000, 2, 1, 100) == 100  # a large plate: the maximum
    assert auto_batch_size(1, 16) == 1
    assert auto_batch_size(0, 2) == 1


def test_job_slots_follow_the_backend_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMAPS_CONFIG_FILE", "/nonexistent.cfg")
    monkeypatch.setenv("TMAPS_BACKEND", "local")
    monkeypatch.setenv("TMAPS_CORES", "3")
    monkeypatch.setenv("TMAPS_SLURM_MAX_RUNNING", "40")
    assert job_slots() == 3  # the local backend runs TMAPS_CORES jobs at once
    monkeypatch.setenv("TMAPS_BACKEND", "slurm")
    assert job_slots() == 40  # a cluster: the tasks of an array that run at once
    monkeypatch.delenv("TMAPS_SLURM_MAX_RUNNING")
    monkeypatch.setenv("TMAPS_CORES", "128")
    assert job_slots() == 128  # else the cores the jobs may use together


def test_cluster_slots_cut_a_large_plate_into_full_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMAPS_CONFIG_FILE", "/nonexistent.cfg")
    monkeypatch.setenv("TMAPS_BACKEND", "slurm")
    monkeypatch.setenv("TMAPS_SLURM_MAX_RUNNING", "50")
    step = get_step("jterator")(1)
    assert step.batch_size({"batch_size": None}, 1000) == 10  # 100 jobs for 50 slots
    assert step.batch_size({"batch_size": None}, 40) == 1  # every site a job of its own
    assert step.batch_size({"batch_size": None}, 1_000_000) == 100  # at most 100 sites
    assert step.batch_size({"batch_size": 7}, 1000) == 7  # given: as given


@pytest.mark.parametrize("name", BATCHED)
def test_large_plates_get_bounded_jobs(name: str) -> None:
    low, high = get_step(name).auto_batch
    assert 1 <= low <= high
    assert auto_batch_size(10**6, 2, low, high) == high
    assert auto_batch_size(20_000, 8, low, high) >= low


def test_default_descriptions_leave_batch_sizes_automatic_and_old_ones_keep_theirs() -> None:
    default = WorkflowDescription.default()
    for stage in default.stages:
        for step in stage.steps:
            if "batch_size" in step.batch_args:
                assert step.batch_args["batch_size"] is None, step.name
    again = WorkflowDescription.from_dict(yaml.safe_load(yaml.safe_dump(default.to_dict())))
    assert again.to_dict() == default.to_dict()
    old = {"type": "canonical", "stages": [{"name": "image_conversion", "steps": [
        {"name": "metaextract", "batch_args": [{"name": "batch_size", "value": 100}]},
        {"name": "metaconfig"},
        {"name": "imextract", "batch_args": {"batch_size": 3}},
    ]}]}  # fmt: skip
    steps = WorkflowDescription.from_dict(old).stages[0].steps
    assert steps[0].batch_args["batch_size"] == 100
    assert steps[2].batch_args["batch_size"] == 3


def test_batch_size_help_says_automatic() -> None:
    result = ok(cli("jterator", "1", "init", "--help"))
    assert "automatic" in " ".join(result.stdout.split())


# -------------------------------------------------------------- a small plate


def small_plate(tmp_path: Path, wells: int = 2, sites: int = 4) -> int:
    source = tmp_path / "plate"
    spec = PlateSpec(microscope="cellvoyager", wells=wells, sites=sites, channels=1,
                     height=256, width=256, seed=3)  # fmt: skip
    simulate_plate(source, spec)
    registry.add_user("dora", "pw-of-dora", "dora@example.org")
    eid = registry.add_experiment("defaults", "dora", microscope_type="cellvoyager")
    registry.add_plate(eid, "P1")
    registry.add_acquisition(eid, "P1", "A1")
    registry.register_files(eid, "P1", "A1", source)
    return eid


@SQLITE_ONLY
@pytest.mark.parametrize("cores", [2, 4])
def test_every_run_phase_of_a_small_plate_fills_the_cores(
    tmaps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int
) -> None:
    monkeypatch.setenv("TMAPS_CORES", str(cores))
    eid = small_plate(tmp_path)  # 8 sites, 8 images
    counts = {name: run_step(eid, name) for name in ("metaextract", "metaconfig", "imextract")}
    counts["corilla"] = run_step(eid, "corilla")
    counts["illuminati"] = run_step(eid, "illuminati", clip=True, clip_value=1000)
    jterator = get_step("jterator")(eid)
    counts["jterator"] = jterator.init({})
    for name in BATCHED:
        assert counts[name] >= cores, (name, counts)
    # sites cost seconds: two jobs per core, one site each when there are few
    assert counts["jterator"] == min(8, JOBS_PER_SLOT * cores)
    batches = [jterator.read_batch("run", j)["site_ids"] for j in jterator.run_job_ids()]
    assert sorted(s for b in batches for s in b) == sorted({s for b in batches for s in b})
    assert sum(len(b) for b in batches) == 8

    # explicit sizes, as old descriptions and command lines give them, are honoured
    # (later steps first: an init removes its step's output, which later steps read)
    assert jterator.init({"batch_size": 100}) == 1
    assert get_step("illuminati")(eid).init({"batch_size": 100, "clip": True,
                                             "clip_value": 1000}) <= 2  # fmt: skip
    assert get_step("imextract")(eid).init({"batch_size": 3}) == 3
    assert get_step("metaextract")(eid).init({"batch_size": 100}) == 1


@SQLITE_ONLY
def test_plot_runs_one_site_per_job(tmaps, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TMAPS_CORES", "1")
    eid = small_plate(tmp_path, wells=1, sites=3)
    for name in ("metaextract", "metaconfig", "imextract", "corilla"):
        run_step(eid, name)
    assert get_step("jterator")(eid).init({"plot": True}) == 3


# --------------------------------------------------------------- fixed costs


def test_warm_up_covers_the_imports_jobs_make_late() -> None:
    names = imported_modules("tmlib.workflow.steps.jterator")
    assert "tmlib.jterator.pipeline" in names  # imported inside run_job
    assert "numpy" in names
    assert all(not n.startswith(".") for n in names)
    # the base class's module is warmed too (its storage and models)
    assert "tmlib.models" in imported_modules("tmlib.workflow.step")


def test_prepare_warms_a_step_once_and_leaves_no_connection(
    tmaps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tmlib.workflow.__main__ as entry
    from tmlib.models import session as sessions

    monkeypatch.setattr(entry, "_warm", set())
    eid = small_plate(tmp_path, wells=1, sites=1)
    entry.prepare(["metaextract", "-v", str(eid), "run", "--job", "1"])
    assert entry._warm == {("metaextract", str(eid))}
    assert not sessions._engines  # forked jobs open their own connections
    # an init job: warmed once it started (it runs meanwhile), not before
    entry.prepare(["imextract", str(eid), "init"])
    assert ("imextract", str(eid)) not in entry._warm
    entry.prepare(["imextract", str(eid), "init"], started=True)
    assert ("imextract", str(eid)) in entry._warm
    entry._warm.discard(("imextract", str(eid)))
    entry.prepare(["not-a-step", str(eid), "run"])  # ignored: the job reports it
    entry.prepare([])
    assert entry._warm == {("metaextract", str(eid))}


@SQLITE_ONLY
@pytest.mark.slow
def test_a_submitted_stage_has_small_fixed_costs(tmaps, tmp_path: Path) -> None:
    """``tm_workflow submit`` of the image_conversion stage, default arguments, 2 cores:
    every run phase has two jobs, and no job (init, run, collect) spends more than
    JOB_CPU_BOUND_S CPU seconds (on 8 small images: nearly all fixed cost)."""
    eid = small_plate(tmp_path)
    description = tmp_path / "wf.yaml"
    description.write_text(
        "type: canonical\nstages:\n- name: image_conversion\n  steps:\n"
        "  - name: metaextract\n  - name: metaconfig\n  - name: imextract\n"
    )
    ok(cli("tm_workflow", eid, "description", "--set", description))
    ok(cli("tm_workflow", eid, "submit", "-i", "60"))
    tree = json.loads(ok(cli("tm_workflow", eid, "status", "--json")).stdout)

    leaves: list[dict] = []

    def walk(node: dict) -> None:
        if not node["subtasks"]:
            leaves.append(node)
        for child in node["subtasks"]:
            walk(child)

    walk(tree)
    runs = {}
    for job in leaves:
        assert job["exitcode"] == 0, job["name"]
        assert job["cpu_time"] is not None and job["cpu_time"] < JOB_CPU_BOUND_S, job
        if "_run_" in job["name"]:
            runs.setdefault(job["name"].split("_run_")[0], []).append(job)
    assert len(runs["metaextract"]) == 2
    assert len(runs["imextract"]) == 2


def test_the_job_entry_point_preloads_what_jobs_share() -> None:
    """The spawner imports this once; jobs forked from it must not import these again."""
    result = ok(cli(sys.executable, "-c", "import sys, tmlib.workflow.__main__; "
                    "print(' '.join(sorted(sys.modules)))"))  # fmt: skip
    loaded = set(result.stdout.split())
    for name in ("numpy", "sqlalchemy.orm", "tmlib.models", "click"):
        assert name in loaded, name


def test_a_prestarted_spawner_is_handed_out_only_if_nothing_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tmlib.workflow.jobs import backends
    from tmlib.workflow.step import COMMAND_PREFIX, ENTRY_POINT

    preload = (COMMAND_PREFIX, ENTRY_POINT)
    monkeypatch.setattr(backends, "_prestarted", [])  # none left by an earlier test
    backends.prestart(2, preload)
    backends.prestart(2, preload)  # one waits already: nothing more starts
    assert len(backends._prestarted) == 1
    first = backends._prestarted[0][0]
    assert backends.take_prestarted(2, preload) is first
    assert backends.take_prestarted(2, preload) is None  # handed out once
    first.close()

    backends.prestart(2, preload)
    monkeypatch.setenv("TMAPS_HOME", "/elsewhere")  # its jobs would see the old one
    assert backends.take_prestarted(2, preload) is None
    assert not backends._prestarted
    backends.prestart(2, preload)
    assert backends.take_prestarted(3, preload) is None  # other cores: not this one
