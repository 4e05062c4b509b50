"""Issue 13, processes and files of jobs: no process outlives its experiment (item 4), no
temporary file outlives a killed job (item 15), no signal reaches a process that merely
took a recorded pid (item 16)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
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
