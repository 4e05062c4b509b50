"""The workflow through its command lines: ``tm_workflow`` and the step programs.

Every command runs as a real subprocess of the installed console scripts, with
the test's TMAPS_* environment, on a small simulated CellVoyager plate
registered through :mod:`tmlib.registry`. Live progress is read in-process
(``manager.status``, the data behind ``status --json``) so that a test can act
at the right moment, e.g. SIGKILL a submit half-way through.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import tifffile
import yaml
from helpers import BIN, cli, env, ok, one_error_line, use_fast_password_hashing

import tmlib.models as tm
from tmlib import registry
from tmlib.errors import InvalidInputError, NotFoundError
from tmlib.simulate import PlateSpec, simulate_plate
from tmlib.workflow import manager
from tmlib.workflow.description import WorkflowDescription
from tmlib.workflow.jobs.job import read_exit_file

#: (step, kind of each job) in the order the canonical image_conversion stage runs them
STEPS = ("metaextract", "metaconfig", "imextract")
#: every step of the default canonical description so far
WORKFLOW_STEPS = (*STEPS, "corilla", "illuminati", "jterator")
JOB_TYPES = {"InitJob", "RunJob", "CollectJob"}
SQLITE_ONLY = pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fast_password_hashing(monkeypatch)


# ------------------------------------------------------------------------- set-up


@dataclass
class Plate:
    """A registered experiment with one plate and acquisition of simulated files."""

    experiment_id: int
    source: Path
    n_images: int
    shape: tuple[int, int]

    @property
    def location(self) -> Path:
        with tm.utils.MainSession() as session:
            return Path(session.get(tm.ExperimentReference, self.experiment_id).location)

    def log_dir(self, step: str) -> Path:
        return self.location / "workflow" / step / "log"


def make_plate(
    tmp_path: Path, wells: int = 2, sites: int = 2, channels: int = 2, size: int = 64
) -> Plate:
    source = tmp_path / "plate"
    spec = PlateSpec(
        microscope="cellvoyager",
        wells=wells,
        sites=sites,
        channels=channels,
        height=size,
        width=size,
        seed=7,
    )
    simulate_plate(source, spec)
    registry.add_user("wendy", "pw-of-wendy", "wendy@example.org")
    experiment_id = registry.add_experiment("wf", "wendy", microscope_type="cellvoyager")
    registry.add_plate(experiment_id, "P1")
    registry.add_acquisition(experiment_id, "P1", "A1")
    registration = registry.register_files(experiment_id, "P1", "A1", source)
    assert len(registration.images) == spec.n_images
    return Plate(experiment_id, source, spec.n_images, (size, size))


@pytest.fixture
def plate(tmaps, tmp_path: Path) -> Plate:
    return make_plate(tmp_path)


def start(program: str, *args: object) -> subprocess.Popen:
    """Start an installed console script in the background (stdout/stderr to files)."""
    return subprocess.Popen(
        [str(BIN / program), *map(str, args)],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def set_description(plate: Plate, tmp_path: Path, **batch_args: dict) -> None:
    """Store the default description with `batch_args` per step (via ``description --set``)."""
    data = WorkflowDescription.default().to_dict()
    for stage in data["stages"]:
        for step in stage["steps"]:
            for arg in step["batch_args"]:
                arg["value"] = batch_args.get(step["name"], {}).get(arg["name"], arg["value"])
    path = tmp_path / "description.yaml"
    path.write_text(yaml.safe_dump(data))
    ok(cli("tm_workflow", plate.experiment_id, "description", "--set", path))


# ------------------------------------------------------------------------- status


def nodes(tree: dict) -> Iterator[dict]:
    yield tree
    for child in tree["subtasks"]:
        yield from nodes(child)


def jobs(tree: dict) -> dict[str, dict]:
    return {n["name"]: n for n in nodes(tree) if n["type"] in JOB_TYPES}


def status_json(plate: Plate) -> dict:
    return json.loads(ok(cli("tm_workflow", plate.experiment_id, "status", "--json")).stdout)


def live_status(experiment_id: int) -> dict | None:
    """The status tree read in-process (None before the first submission exists)."""
    try:
        return manager.status(experiment_id)
    except NotFoundError:
        return None


def wait_for(condition, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


def assert_all_succeeded(tree: dict) -> None:
    for node in nodes(tree):
        assert node["state"] == "TERMINATED", node["name"]
        assert node["exitcode"] == 0, node["name"]
        assert node["failed"] == 0, node["name"]
        assert node["done"] == node["total"], node["name"]
        assert node["percent_done"] == 100.0, node["name"]
        assert not node["pending_expansion"], node["name"]


# --------------------------------------------------------------------------- data


def assert_planes_match_tiffs(plate: Plate, check: int | None = None) -> None:
    """Every configured plane was extracted; the first `check` equal their TIFF's pixels."""
    with tm.utils.ExperimentSession(plate.experiment_id) as session:
        planes = session.scalars(
            sa.select(tm.ChannelImageFile).order_by(tm.ChannelImageFile.id)
        ).all()
        assert len(planes) == plate.n_images
        for plane in planes:
            assert Path(plane.location).is_file(), plane.location
        for plane in planes[:check]:
            pixels = plane.get()
            assert pixels.shape == plate.shape
            assert pixels.dtype == np.uint16
            (name,) = plane.file_map["files"]
            expected = tifffile.imread(plate.source / name, key=plane.file_map["planes"][0])
            np.testing.assert_array_equal(pixels, expected)
        sites = session.scalar(sa.select(sa.func.count()).select_from(tm.Site))
        channels = session.scalar(sa.select(sa.func.count()).select_from(tm.Channel))
    assert sites * channels == plate.n_images


def exit_records(directory: Path) -> dict[str, tuple[int, dict | None]]:
    """``{job name: (mtime_ns, record)}`` of the exit files in a log directory."""
    if not directory.is_dir():
        return {}
    return {
        p.stem: (p.stat().st_mtime_ns, read_exit_file(p)) for p in sorted(directory.glob("*.exit"))
    }


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[-1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether a process exists and is no zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


# ------------------------------------------------------------------------ submit


@pytest.mark.slow
def test_submit_runs_everything_and_status_shows_it(plate: Plate, tmaps) -> None:
    result = ok(cli("tm_workflow", plate.experiment_id, "submit", timeout=300))
    assert "all jobs succeeded" in result.stdout
    assert "image_conversion" in result.stderr  # the live progress goes to stderr

    tree = status_json(plate)
    assert tree["name"] == "workflow" and tree["type"] == "Workflow"
    assert [s["name"] for s in tree["subtasks"]] == [
        "image_conversion", "image_preprocessing", "pyramid_creation", "image_analysis"
    ]  # fmt: skip
    assert [s["name"] for s in tree["subtasks"][0]["subtasks"]] == list(STEPS)
    assert_all_succeeded(tree)
    leaves = jobs(tree)
    assert set(leaves) == {
        "metaextract_init_0000001",
        "metaextract_run_0000001",
        "metaextract_run_0000002",  # automatic batch sizes: a job per core at least
        "metaconfig_init_0000001",
        "metaconfig_run_0000001",
        "metaconfig_collect_0000001",
        "imextract_init_0000001",
        "imextract_run_0000001",
        "imextract_run_0000002",
        "imextract_collect_0000001",
        # statistics: one job per channel; pyramids: the two wells are 500 px
        # apart, so each channel's mosaic is two blocks of 512x512 px
        "corilla_init_0000001",
        "corilla_run_0000001",
        "corilla_run_0000002",
        "corilla_collect_0000001",
        "illuminati_init_0000001",
        "illuminati_run_0000001",
        "illuminati_run_0000002",
        "illuminati_run_0000003",
        "illuminati_run_0000004",
        "illuminati_collect_0000001",
        # the default pipeline: two jobs per core, here one site each
        "jterator_init_0000001",
        "jterator_run_0000001",
        "jterator_run_0000002",
        "jterator_run_0000003",
        "jterator_run_0000004",
        "jterator_collect_0000001",
    }
    assert tree["total"] == len(leaves)
    for job in leaves.values():  # memory: above the preloaded interpreter's, may be ~0
        assert job["time"] > 0 and job["cpu_time"] > 0 and job["memory"] >= 0, job
    for step in STEPS:  # every job left its exit file with exit code 0
        records = exit_records(plate.log_dir(step))
        assert {n for n in leaves if n.startswith(step)} == set(records)
        assert all(r["exitcode"] == 0 for _, r in records.values())

    text = ok(cli("tm_workflow", plate.experiment_id, "status")).stdout
    assert "TERMINATED" in text and "illuminati" in text and "26/26" in text

    assert_planes_match_tiffs(plate)

    if tmaps.dialect == "sqlite":  # the job log of a submitted job, through the step program
        log = ok(cli("metaextract", plate.experiment_id, "log", "-p", "run", "-j", "1")).stdout
        assert log.startswith("OUTPUT\n======\n")
        assert "JOB COMPLETED" in log
        assert "\nERROR\n=====\n" in log


@SQLITE_ONLY
@pytest.mark.slow
def test_resubmit_from_a_stage_gives_the_same_result(plate: Plate, tmp_path: Path) -> None:
    ok(cli("tm_workflow", plate.experiment_id, "submit", timeout=300))
    first = live_status(plate.experiment_id)["submission_id"]
    with tm.utils.ExperimentSession(plate.experiment_id) as session:
        before = session.scalar(sa.select(sa.func.count()).select_from(tm.ChannelImageFile))

    result = ok(cli("tm_workflow", plate.experiment_id, "resubmit", "--stage", "image_conversion"))
    assert "all jobs succeeded" in result.stdout
    tree = status_json(plate)
    assert tree["submission_id"] != first
    assert_all_succeeded(tree)
    with tm.utils.ExperimentSession(plate.experiment_id) as session:
        after = session.scalar(sa.select(sa.func.count()).select_from(tm.ChannelImageFile))
    assert before == after == plate.n_images
    assert_planes_match_tiffs(plate, check=3)


@SQLITE_ONLY
def test_resubmit_unknown_stage_is_one_line(plate: Plate) -> None:
    line = one_error_line(cli("tm_workflow", plate.experiment_id, "resubmit", "--stage", "nope"))
    assert "nope" in line and "image_conversion" in line
    assert live_status(plate.experiment_id) is None  # nothing was submitted


@SQLITE_ONLY
@pytest.mark.slow
def test_status_resume_and_kill_without_a_submission(plate: Plate) -> None:
    for command in ("status", "resume", "kill"):
        line = one_error_line(cli("tm_workflow", plate.experiment_id, command))
        assert "no workflow submission" in line, line
    line = one_error_line(cli("tm_workflow", 999, "status"))
    assert "999" in line


@SQLITE_ONLY
def test_status_of_a_missing_experiment_says_so(tmaps) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        manager.status(999)


# --------------------------------------------------------------- SIGKILL + resume


@pytest.mark.slow
def test_sigkilled_submit_resumes_without_redoing_finished_jobs(tmaps, tmp_path: Path) -> None:
    plate = make_plate(tmp_path, wells=1, sites=8, channels=2)
    set_description(plate, tmp_path, imextract={"batch_size": 1})
    submit = start("tm_workflow", plate.experiment_id, "submit", "-i", "0.1")
    try:

        def some_but_not_all_extracted() -> dict | None:
            tree = live_status(plate.experiment_id)
            if tree is None:
                return None
            runs = [j for n, j in jobs(tree).items() if n.startswith("imextract_run_")]
            done = [j for j in runs if j["state"] == "TERMINATED"]
            return tree if runs and 0 < len(done) < len(runs) - 2 else None

        wait_for(some_but_not_all_extracted, 240, "some imextract run jobs to finish")
        spawners = children_of(submit.pid)
        os.kill(submit.pid, signal.SIGKILL)
        submit.wait(timeout=30)
    finally:
        if submit.poll() is None:
            submit.kill()
        submit.communicate()
    assert submit.returncode == -signal.SIGKILL

    # the jobs it had started go on and record their end; wait for them
    for pid in spawners:
        wait_for(lambda pid=pid: not alive(pid), 60, f"job spawner {pid} to exit")
    at_kill = jobs(live_status(plate.experiment_id))
    finished = {n for n, j in at_kill.items() if j["state"] == "TERMINATED" and j["exitcode"] == 0}
    started = {n for n, j in at_kill.items() if j["state"] in ("SUBMITTED", "RUNNING")}
    unfinished = {n for n, j in at_kill.items() if j["state"] == "NEW"}
    assert {f"metaextract_run_{1:07d}", "metaconfig_collect_0000001"} <= finished
    assert any(n.startswith("imextract_run_") for n in finished)
    assert any(n.startswith("imextract_run_") for n in unfinished)
    logs = {}
    for step in WORKFLOW_STEPS:
        logs.update(exit_records(plate.log_dir(step)))
    # a job the engine marked SUBMITTED but was killed before starting has no
    # log: resume must run it like an unstarted one
    never_started = {n for n in started if n not in logs}
    unfinished |= never_started
    kept = finished | (started - never_started)
    for name in kept:
        assert logs[name][1] is not None and logs[name][1]["exitcode"] == 0, name

    result = ok(cli("tm_workflow", plate.experiment_id, "resume", timeout=300))
    assert "all jobs succeeded" in result.stdout

    tree = status_json(plate)
    assert_all_succeeded(tree)
    after = {}
    for step in WORKFLOW_STEPS:
        after.update(exit_records(plate.log_dir(step)))
    n_runs = plate.n_images
    assert {n for n in after if n.startswith("imextract_run_")} == {
        f"imextract_run_{i:07d}" for i in range(1, n_runs + 1)
    }
    assert set(jobs(tree)) == set(after)
    rerun = {n for n in kept if after[n] != logs[n]}
    assert not rerun, f"finished jobs ran again: {sorted(rerun)}"
    for name in unfinished:  # the rest ran now
        assert name not in logs or after[name] != logs[name]
        assert after[name][1]["exitcode"] == 0
    assert_planes_match_tiffs(plate)


# -------------------------------------------------------------------------- kill


@SQLITE_ONLY
@pytest.mark.slow
def test_kill_stops_a_running_submit(tmaps, tmp_path: Path) -> None:
    plate = make_plate(tmp_path, wells=4, sites=6, channels=2)
    set_description(plate, tmp_path, metaextract={"batch_size": 1})
    submit = start("tm_workflow", plate.experiment_id, "submit", "-i", "0.1")
    try:

        def a_run_job_running() -> dict | None:
            tree = live_status(plate.experiment_id)
            if tree is None:
                return None
            runs = {n: j for n, j in jobs(tree).items() if n.startswith("metaextract_run_")}
            running = [j for j in runs.values() if j["state"] == "RUNNING"]
            return runs if running else None

        wait_for(a_run_job_running, 120, "a metaextract run job to start")
        # the engine is alive: resume refuses to start a second one
        with pytest.raises(InvalidInputError, match=f"still running.*{submit.pid}"):
            manager.resume(plate.experiment_id)
        killed = ok(cli("tm_workflow", plate.experiment_id, "kill"))
        killed_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # as the engine stamps tasks
        assert "signalled 1" in killed.stdout
        started = time.monotonic()
        _, stderr = submit.communicate(timeout=30)
        assert time.monotonic() - started < 15
    finally:
        if submit.poll() is None:
            submit.kill()
            submit.communicate()
    assert submit.returncode == 1, stderr
    assert "tm_workflow: error: submission" in stderr

    with tm.utils.MainSession() as session:
        tasks = session.scalars(sa.select(tm.Task).where(tm.Task.is_collection.is_(False))).all()
        records = {t.name: (t.state, t.exitcode, (t.data or {}).get("pid")) for t in tasks}
        starts = {t.name: t.started_at for t in tasks}
    runs = {n: r for n, r in records.items() if n.startswith("metaextract_run_")}
    assert len(runs) == plate.n_images
    states = [state for state, _, _ in records.values()]
    assert "RUNNING" not in states and "SUBMITTED" not in states
    # metaextract jobs take milliseconds: whether one is caught running is luck
    # (test_engine kills long jobs deterministically); what counts here is that
    # those caught were killed by SIGTERM and nothing new started afterwards
    killed_jobs = [n for n, (s, code, _) in runs.items() if s == "TERMINATED" and code < 0]
    assert all(records[n][1] == -signal.SIGTERM for n in killed_jobs)
    # nothing was started once the kill was delivered (on a slow machine every job of
    # milliseconds may have run before it, so "some are still NEW" proves nothing)
    late = [n for n in runs if starts[n] and starts[n] > killed_at + dt.timedelta(seconds=1)]
    assert not late, (late, killed_at)
    assert "metaconfig_init_0000001" in records and records["metaconfig_init_0000001"][0] == "NEW"
    for _name, (_, _, pid) in records.items():
        if pid:
            assert not alive(pid), f"job process {pid} of {_name} is still running"
    for name in killed_jobs:
        assert read_exit_file(plate.log_dir("metaextract") / f"{name}.exit")["exitcode"] < 0


# ------------------------------------------------------------------- step CLI


@SQLITE_ONLY
@pytest.mark.slow
def test_step_program_init_info_run(plate: Plate) -> None:
    eid = plate.experiment_id
    init = ok(cli("metaextract", eid, "init", "-b", "1"))
    assert "JOB COMPLETED" in init.stdout
    assert f"{plate.n_images} run job" in init.stdout

    info = ok(cli("metaextract", eid, "info", "-p", "run", "-j", "1")).stdout
    assert info.startswith("JOB DESCRIPTION\n")
    batch = yaml.safe_load(info.split("\n", 2)[2])
    assert batch["id"] == 1 and len(batch["microscope_image_file_ids"]) == 1
    (file_id,) = batch["microscope_image_file_ids"]

    run = ok(cli("metaextract", eid, "run", "-j", "1"))
    assert "JOB COMPLETED" in run.stdout
    with tm.utils.ExperimentSession(eid) as session:
        infos = dict(
            session.execute(
                sa.select(tm.MicroscopeImageFile.id, tm.MicroscopeImageFile.image_info)
            ).all()
        )
    assert infos[file_id] == {"planes": 1, "height": 64, "width": 64, "dtype": "uint16"}
    assert sum(v is not None for v in infos.values()) == 1  # only job 1 ran

    for args in (("run", "-j", "99"), ("info", "-p", "run", "-j", "99")):
        line = one_error_line(cli("metaextract", eid, *args))
        assert "99" in line, line
    line = one_error_line(cli("metaextract", eid, "log", "-p", "run", "-j", "1"))
    assert "no log" in line  # run by hand: it wrote to the terminal, not to a log
    line = one_error_line(cli("imextract", eid, "run", "-j", "1"))
    assert "init" in line  # imextract was never initialised


# ------------------------------------------------------------ failing job + resume


@SQLITE_ONLY
@pytest.mark.slow
def test_failed_job_fails_the_submit_and_resume_finishes(plate: Plate) -> None:
    bad = sorted(plate.source.glob("*.tif"))[3]
    original = bad.read_bytes()
    bad.write_bytes(b"this is not a TIFF file" * 10)

    result = cli("tm_workflow", plate.experiment_id, "submit", timeout=300)
    assert result.returncode == 1, (result.stdout, result.stderr)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("tm_workflow: error: submission"), result.stderr
    assert "failed" in last

    tree = status_json(plate)
    leaves = jobs(tree)
    failed = leaves["metaextract_run_0000001"]
    assert failed["state"] == "TERMINATED" and failed["exitcode"] not in (0, None)
    assert tree["failed"] == 1 and tree["exitcode"] not in (0, None)
    assert leaves["metaextract_init_0000001"]["exitcode"] == 0
    assert "metaconfig_init_0000001" in leaves
    assert leaves["metaconfig_init_0000001"]["state"] == "NEW"
    err = (plate.log_dir("metaextract") / "metaextract_run_0000001.err").read_text()
    assert bad.name in err
    assert "JOB FAILED" in err or "Traceback" in err
    log = ok(cli("metaextract", plate.experiment_id, "log", "-p", "run", "-j", "1")).stdout
    assert bad.name in log

    init_exit = exit_records(plate.log_dir("metaextract"))["metaextract_init_0000001"]
    bad.write_bytes(original)
    result = ok(cli("tm_workflow", plate.experiment_id, "resume", timeout=300))
    assert "all jobs succeeded" in result.stdout
    assert_all_succeeded(status_json(plate))
    assert exit_records(plate.log_dir("metaextract"))["metaextract_init_0000001"] == init_exit
    assert_planes_match_tiffs(plate)


# ----------------------------------------------------------- description checks


def default_dict() -> dict:
    return WorkflowDescription.default().to_dict()


def conversion_steps(*names: str) -> dict:
    data = default_dict()
    steps = {s["name"]: s for s in data["stages"][0]["steps"]}
    data["stages"][0]["steps"] = [steps.get(n, {"name": n}) for n in names]
    return data


def test_default_description_round_trips() -> None:
    data = default_dict()
    assert data["type"] == "canonical"
    assert [s["name"] for s in data["stages"][0]["steps"]] == list(STEPS)
    again = WorkflowDescription.from_dict(yaml.safe_load(yaml.safe_dump(data)))
    assert again.to_dict() == data
    # arguments may also be given as a mapping, and defaults are filled in
    short = {"type": "canonical", "stages": [{"name": "image_conversion", "steps": [
        {"name": "metaextract", "batch_args": {"batch_size": 5}},
        {"name": "metaconfig"},
        {"name": "imextract", "submission_args": {"memory": 1000}},
    ]}]}  # fmt: skip
    parsed = WorkflowDescription.from_dict(short)
    steps = parsed.stages[0].steps
    assert steps[0].batch_args == {"batch_size": 5}
    assert steps[2].batch_args["batch_size"] is None  # automatic (tmlib.workflow.step)
    assert steps[2].submission_args["memory"] == 1000


def _with_stages(*stages: dict) -> dict:
    return {"type": "canonical", "stages": list(stages)}


def _bad_cases() -> list:
    conversion = default_dict()["stages"][0]
    unknown_stage = default_dict()
    unknown_stage["stages"].append({"name": "image_painting", "steps": []})
    twice_stage = default_dict()
    twice_stage["stages"].append(default_dict()["stages"][0])
    twice_step = conversion_steps("metaextract", "metaconfig", "imextract", "imextract")
    wrong_arg = default_dict()
    wrong_arg["stages"][0]["steps"][2]["batch_args"] = [{"name": "batch_sise", "value": 3}]
    wrong_type = default_dict()
    wrong_type["stages"][0]["steps"][0]["batch_args"] = {"batch_size": "many"}
    wrong_duration = default_dict()
    wrong_duration["stages"][0]["steps"][1]["submission_args"] = {"duration": "1 hour"}
    return [
        pytest.param(unknown_stage, ["image_painting"], id="unknown-stage"),
        pytest.param(conversion_steps("metaextract", "corilla"), ["corilla"], id="step-elsewhere"),
        pytest.param(conversion_steps("metaextract", "segment"), ["segment"], id="unknown-step"),
        pytest.param(twice_stage, ["image_conversion", "twice"], id="stage-twice"),
        pytest.param(twice_step, ["imextract", "twice"], id="step-twice"),
        pytest.param(
            _with_stages({"name": "image_preprocessing", "steps": []}, conversion),
            ["image_conversion", "image_preprocessing"],
            id="stage-after-its-dependant",
        ),
        pytest.param(
            conversion_steps("metaextract", "imextract"),
            ["imextract", "metaconfig"],
            id="missing-prerequisite",
        ),
        pytest.param(
            conversion_steps("metaconfig", "metaextract", "imextract"),
            ["metaconfig", "metaextract"],
            id="prerequisite-after",
        ),
        pytest.param(wrong_arg, ["imextract", "batch_sise"], id="unknown-argument"),
        pytest.param(wrong_type, ["metaextract", "batch_size", "many"], id="wrong-type"),
        pytest.param(wrong_duration, ["metaconfig", "1 hour"], id="bad-duration"),
        pytest.param({**default_dict(), "type": "fancy"}, ["fancy"], id="unknown-type"),
        pytest.param(
            {**default_dict(), "stages": [{**conversion, "mode": "random"}]},
            ["image_conversion", "mode"],
            id="bad-mode",
        ),
        pytest.param({"stages": []}, ["type"], id="no-type"),
        pytest.param(["not", "a", "mapping"], ["stages"], id="not-a-mapping"),
        pytest.param(_with_stages({"steps": []}), ["name"], id="stage-without-name"),
        pytest.param(
            _with_stages({"name": "image_conversion", "steps": [{"active": True}]}),
            ["image_conversion", "name"],
            id="step-without-name",
        ),
    ]


@pytest.mark.parametrize(("data", "words"), _bad_cases())
def test_invalid_descriptions_are_rejected(data: object, words: list[str]) -> None:
    with pytest.raises(InvalidInputError) as info:
        WorkflowDescription.from_dict(data)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


@SQLITE_ONLY
def _write_yaml(directory: Path, data: dict) -> Path:
    path = directory / "description.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_description_set_validates_and_keeps_the_old_one(plate: Plate, tmp_path: Path) -> None:
    eid = plate.experiment_id
    shown = ok(cli("tm_workflow", eid, "description")).stdout
    assert yaml.safe_load(shown) == default_dict()
    stored = manager.description_path(eid)
    assert not stored.exists()  # showing the default stores nothing (13.14)
    ok(cli("tm_workflow", eid, "description", "--set", _write_yaml(tmp_path, default_dict())))
    before = stored.read_bytes()

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(conversion_steps("metaextract", "imextract")))
    line = one_error_line(cli("tm_workflow", eid, "description", "--set", bad))
    assert line.startswith("tm_workflow: error:")
    assert "bad.yaml" in line and "imextract" in line and "metaconfig" in line
    assert stored.read_bytes() == before

    good = tmp_path / "good.yaml"
    data = default_dict()
    data["stages"][0]["steps"][2]["batch_args"][0]["value"] = 7
    good.write_text(yaml.safe_dump(data))
    ok(cli("tm_workflow", eid, "description", "--set", good))
    assert manager.load_description(eid).stages[0].steps[2].batch_args["batch_size"] == 7


def test_unparsable_description_is_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("type: canonical\nstages: [\n")
    with pytest.raises(InvalidInputError) as info:
        WorkflowDescription.load(broken)
    message = str(info.value)
    assert "broken.yaml" in message
    assert "line 3" in message  # where the error is
    assert "\n" not in message


@pytest.mark.parametrize(
    "data",
    [
        {"type": "canonical", "stages": 5},
        _with_stages({"name": "image_conversion", "steps": 5}),
        _with_stages({"name": ["image_conversion"], "steps": []}),
    ],
    ids=["stages-not-a-list", "steps-not-a-list", "stage-name-not-a-string"],
)
def test_malformed_descriptions_are_invalid_input(data: dict) -> None:
    with pytest.raises(InvalidInputError):
        WorkflowDescription.from_dict(data)
