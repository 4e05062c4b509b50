"""Issue 13, processes and files of jobs: no process outlives its experiment (item 4), no
temporary file outlives a killed job (item 15), no signal reaches a process that merely
took a recorded pid (item 16)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import use_fast_password_hashing

import tmlib.models as tm
from tmlib import registry
from tmlib.workflow import manager
from tmlib.workflow.jobs import procs
from tmlib.workflow.jobs.engine import PARALLEL, TaskSpec, persist
from tmlib.workflow.jobs.job import JobSpec, Resources, State

SQLITE_ONLY = pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fast_password_hashing(monkeypatch)


@dataclass
class Owner:
    """A user and an experiment of hers."""

    user_id: int
    experiment_id: int

    @property
    def location(self) -> Path:
        with tm.utils.MainSession() as session:
            return Path(session.get(tm.ExperimentReference, self.experiment_id).location)


@pytest.fixture
def owner(tmaps) -> Owner:
    user_id = registry.add_user("erin", "pw-of-erin", "erin@example.org")
    return Owner(user_id, registry.add_experiment("procs", "erin", plate_format=96))


# ------------------------------------------------------------------ helpers


class Sleeper:
    """A python process that blocks SIGTERM, so a SIGTERM sent to it stays pending
    (``/proc/PID/status``), which tells at once and for sure whether it was signalled."""

    def __init__(self) -> None:
        code = (
            "import signal, time; signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM}); "
            "print('ready', flush=True); time.sleep(120)"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True
        )
        assert self.proc.stdout.readline() == b"ready\n"
        self.pid = self.proc.pid

    def got_sigterm(self) -> bool:
        status = Path(f"/proc/{self.pid}/status").read_text()
        pending = {k: int(v, 16) for k, v in (line.split(":\t") for line in status.splitlines())
                   if k in ("SigPnd", "ShdPnd")}  # fmt: skip
        return any(mask & (1 << (signal.SIGTERM - 1)) for mask in pending.values())

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def sleepers() -> Iterator[list[Sleeper]]:
    made: list[Sleeper] = []
    yield made
    for sleeper in made:
        sleeper.stop()


def record_submission(owner: Owner, engine: dict | None, job: dict | None) -> int:
    """A submission of one job, as a crashed engine left it: RUNNING, with these records."""
    spec = JobSpec("victim", ["sleep", "1"], Resources(), owner.location / "log")
    with tm.utils.MainSession() as session:
        submission = tm.Submission(
            program="workflow", experiment_id=owner.experiment_id, user_id=owner.user_id
        )
        session.add(submission)
        root = persist(
            session,
            submission,
            TaskSpec("wf", "Workflow", children=[TaskSpec("victim", "Job", job=spec)]),
        )
        root.state = State.RUNNING
        if engine is not None:
            root.data = {**root.data, "engine": engine}
        leaf = root.children[0]
        leaf.state = State.RUNNING
        leaf.data = {**leaf.data, **(job or {})}
        session.flush()
        return submission.id


def wrong_identity(pid: int) -> dict:
    """A record of `pid` whose start time is not that process's: an earlier process's."""
    record = procs.identity(pid)
    record["pid_start"] -= 1
    return record


# ---------------------------------------------------------------- item 16


def test_kill_does_not_signal_processes_that_took_recorded_pids(owner, sleepers) -> None:
    """After a crash the recorded pids of the engine and of a job belong to other
    processes now: kill must leave them alone, and still mark the submission ended."""
    sleepers += [Sleeper(), Sleeper()]
    engine, job = sleepers
    submission_id = record_submission(owner, wrong_identity(engine.pid), wrong_identity(job.pid))
    assert manager.kill_submission(submission_id) == 0
    assert not engine.got_sigterm(), "a process that reused the engine's pid was signalled"
    assert not job.got_sigterm(), "a process that reused a job's pid was signalled"
    status = manager.submission_status(submission_id)
    assert status["state"] == State.TERMINATED and status["subtasks"][0]["exitcode"] == -15


def test_kill_still_signals_the_recorded_engine_and_jobs(owner, sleepers) -> None:
    sleepers += [Sleeper(), Sleeper()]
    engine, job = sleepers
    submission_id = record_submission(owner, procs.identity(engine.pid), None)
    assert manager.kill_submission(submission_id) == 1
    assert engine.got_sigterm()

    # the engine is gone (its record names another process): the job is signalled
    submission_id = record_submission(owner, wrong_identity(engine.pid), procs.identity(job.pid))
    assert manager.kill_submission(submission_id) == 1
    assert job.got_sigterm()


# ----------------------------------------------------------------- item 4


def wait_until(condition, timeout: float, what: str):
    """Poll `condition` until it is true (returns its value) or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.05)
    return value


def shell_job(name: str, script: str, log_dir: Path) -> TaskSpec:
    spec = JobSpec(name, ["sh", "-c", script], Resources(memory=100, walltime=600), log_dir)
    return TaskSpec(name, "Job", job=spec)


def running_jobs(submission_id: int, n: int) -> dict[str, dict] | None:
    """The job records of a submission once `n` jobs run (None before)."""
    with tm.utils.MainSession() as session:
        tasks = session.scalars(
            sa.select(tm.Task).where(
                tm.Task.submission_id == submission_id,
                tm.Task.is_collection.is_(False),
                tm.Task.state == State.RUNNING,
            )
        ).all()
        found = {t.name: dict(t.data) for t in tasks if "pid" in (t.data or {})}
    return found if len(found) == n else None


def engine_record(submission_id: int) -> dict:
    with tm.utils.MainSession() as session:
        submission = session.get(tm.Submission, submission_id)
        return dict(session.get(tm.Task, submission.top_task_id).data["engine"])


def start_sleepers(owner: Owner, ready: Path, stubborn: bool = False) -> int:
    """A detached submission of jobs that sleep a minute (one ignoring SIGTERM if
    `stubborn`); returns once they run (and the stubborn one ignores SIGTERM)."""
    log_dir = owner.location / "workflow" / "test" / "log"  # where steps log: in the experiment
    jobs = [shell_job("plain", "sleep 60", log_dir)]
    if stubborn:
        script = f"trap '' TERM; touch {ready}; sleep 60; sleep 60"
        jobs.append(shell_job("stubborn", script, log_dir))
    tree = TaskSpec("wf", "Workflow", mode=PARALLEL, children=jobs)
    submission_id = manager.start_detached(owner.experiment_id, "test", tree)
    wait_until(lambda: running_jobs(submission_id, len(jobs)), 60, "the jobs did not start")
    if stubborn:
        wait_until(ready.exists, 30, "the stubborn job did not get ready")
    return submission_id


@SQLITE_ONLY
def test_delete_returns_only_once_every_process_of_the_experiment_ended(
    server, tmp_path, monkeypatch
) -> None:
    """DELETE of an experiment whose workflow runs: engine, spawners, jobs and the jobs'
    children have all ended when it answers, also a job that ignores SIGTERM."""
    monkeypatch.setattr(manager, "STOP_TIMEOUT", 2.0)
    response = server.post("/api/experiments", json={"name": "doomed"})
    eid = int(response.get_json()["data"]["id"])
    with tm.utils.MainSession() as session:
        owner = Owner(session.get(tm.ExperimentReference, eid).user_id, eid)
    submission_id = start_sleepers(owner, tmp_path / "stubborn.ready", stubborn=True)
    engine = engine_record(submission_id)
    processes = procs.tree([engine["pid"]])
    for record in running_jobs(submission_id, 2).values():
        assert record["pid"] in processes and record["spawner"] in processes
    assert len(processes) >= 6, processes  # engine, spawners, jobs (sh) and their sleeps

    started = time.monotonic()
    response = server.delete(f"/api/experiments/{eid}")
    assert response.status_code == 200, response.get_json()
    left = procs.still_running(processes)
    assert not left, f"processes {sorted(left)} of the deleted experiment still run"
    assert time.monotonic() - started < 30
    assert server.get(f"/api/experiments/{eid}").status_code == 404


@SQLITE_ONLY
@pytest.mark.slow
def test_engine_whose_spawner_dies_fails_the_jobs_and_exits(owner, tmp_path) -> None:
    submission_id = start_sleepers(owner, tmp_path / "unused")
    job = running_jobs(submission_id, 1)["plain"]
    os.kill(job["spawner"], signal.SIGKILL)
    assert manager.wait_for_engine(submission_id, 10), "the engine did not exit"
    status = manager.submission_status(submission_id)
    assert status["state"] == State.TERMINATED and status["exitcode"] != 0
    assert status["subtasks"][0]["exitcode"] == -signal.SIGKILL  # lost
    assert not procs.record_alive(job), "the lost job still runs"


@pytest.mark.slow
def test_engine_stops_when_its_experiment_is_deleted_under_it(owner, tmp_path) -> None:
    """Deleted without stopping it first (e.g. by a script): the engine notices, stops
    its jobs and exits, instead of running for data that no longer exist."""
    submission_id = start_sleepers(owner, tmp_path / "unused")
    engine = engine_record(submission_id)
    processes = procs.tree([engine["pid"]])
    registry.delete_experiment(owner.experiment_id)
    wait_until(lambda: not procs.still_running(processes), 15, "the processes did not end")


# ---------------------------------------------------------------- item 15

#: a job of a step that stops right before it renames its first file into place and
#: says which temporary it was writing: then the test SIGKILLs it, "mid-write"
STALLED_JOB = """
import sys, time, types
import tmlib.storage as storage

def stall(source, target):
    print(source, flush=True)
    time.sleep(120)

storage.os = types.SimpleNamespace(**{**vars(storage.os), "replace": stall})
from tmlib.workflow.__main__ import run
sys.exit(run(sys.argv[1:]))
"""


def temporaries(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob(".*.tmp"))


def converted_experiment(owner: Owner, tmp_path: Path) -> None:
    """Microscope files registered, their metadata extracted, imextract's batches made."""
    from helpers import run_step

    from tmlib.simulate import PlateSpec, simulate_plate
    from tmlib.workflow.step import get_step

    spec = PlateSpec(microscope="cellvoyager", wells=1, sites=2, channels=1, height=256,
                     width=256, seed=3)  # fmt: skip
    simulate_plate(tmp_path / "plate", spec)
    registry.add_plate(owner.experiment_id, "P1")
    registry.add_acquisition(owner.experiment_id, "P1", "A1")
    registry.register_files(owner.experiment_id, "P1", "A1", tmp_path / "plate")
    run_step(owner.experiment_id, "metaextract")
    run_step(owner.experiment_id, "metaconfig")
    get_step("imextract")(owner.experiment_id).init({"batch_size": 2})


def planes(experiment_id: int) -> dict[int, bytes]:
    with tm.utils.ExperimentSession(experiment_id) as session:
        files = session.scalars(sa.select(tm.ChannelImageFile)).all()
        return {f.id: f.get().tobytes() for f in files}


@SQLITE_ONLY
@pytest.mark.slow
def test_a_job_run_again_removes_what_its_killed_run_was_writing(owner, tmp_path) -> None:
    """imextract's run job is SIGKILLed while it writes a plane: its temporary stays
    behind. Running the job again (as resume does) removes it, and the planes are right."""
    from tmlib.workflow.step import get_step

    converted_experiment(owner, tmp_path)
    step = get_step("imextract")(owner.experiment_id)
    images = owner.location  # planes are under it, and their temporaries
    step.run(1)
    expected = planes(owner.experiment_id)
    assert len(expected) == 2 and not temporaries(images)

    job = subprocess.Popen(
        [sys.executable, "-c", STALLED_JOB, "imextract", str(owner.experiment_id), "run",
         "--job", "1"],
        stdout=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    written = Path(job.stdout.readline().decode().strip())
    job.kill()
    job.wait()
    assert temporaries(images) == [written] and written.stat().st_size > 0

    step.run(1)  # the job again, in another process (this one)
    assert not temporaries(images), "the killed job's temporary file is still there"
    assert planes(owner.experiment_id) == expected


def test_temporaries_of_running_writers_are_kept(tmp_path) -> None:
    """A job sweeping a directory leaves alone what other live jobs are writing there;
    init and cleanup (no job runs) remove every temporary."""
    from tmlib import storage

    mine = storage.temporary_file(tmp_path / "plane.h5")  # this process writes it: alive
    (tmp_path / "sub").mkdir()
    dead = subprocess.run(  # a writer that ended without renaming its temporary
        [sys.executable, "-c", "from tmlib import storage; import sys; "
         "print(storage.temporary_file(sys.argv[1]))", str(tmp_path / "sub" / "other.h5")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    left = Path(dead.stdout.strip())
    assert left.exists()
    assert storage.remove_stale_temporaries([tmp_path]) == 1
    assert mine.exists() and not left.exists()
    assert storage.remove_stale_temporaries([tmp_path], everything=True) == 1
    assert not mine.exists()
