"""Why a cluster task failed, without a cluster: the array backend on a fake queue,
SLURM's wording of job and node states, and the engine keeping the reason.

The same paths on real clusters: tests/test_clusters.py (one node) and
tests/test_multinode.py (a node lost mid-run).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import use_fast_password_hashing
from sqlalchemy.orm import Session

import tmlib.models as tm
from tmlib import registry
from tmlib.config import load_settings
from tmlib.models.session import main_engine
from tmlib.workflow import manager
from tmlib.workflow.jobs import arrays, slurm
from tmlib.workflow.jobs.arrays import ArrayBackend
from tmlib.workflow.jobs.backends import Backend, Outcome
from tmlib.workflow.jobs.engine import PARALLEL, Engine, Result, TaskSpec, persist
from tmlib.workflow.jobs.job import JobSpec, Resources, State

LOST = "node n2 was lost while the job ran (node down: test)"


class FakeQueue(ArrayBackend):
    """An array backend whose queue is a set; tests write the exit files themselves."""

    def __init__(self, reasons: dict[str, str]) -> None:
        super().__init__(load_settings())
        self.queue: set[str] = set()
        self.reasons = reasons  # task id -> what the scheduler would say
        self.asked: list[set[str]] = []

    def _submit_array(self, jobs: list[JobSpec], script: str) -> list[str]:
        tasks = [f"7_{i}" for i in range(len(jobs))]
        self.queue |= set(tasks)
        return tasks

    def _queued(self) -> set[str]:
        return set(self.queue)

    def _cancel(self, task: str) -> None:
        self.queue.discard(task)

    def _explain(self, tasks: dict[str, tuple[str, str | None]]) -> dict[str, str]:
        self.asked.append(set(tasks))
        return {name: self.reasons[t] for name, (t, _) in tasks.items() if t in self.reasons}


@pytest.fixture
def queue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeQueue:
    monkeypatch.setenv("TMAPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TMAPS_CONFIG_FILE", str(tmp_path / "no-such.cfg"))
    return FakeQueue({"7_1": LOST, "7_2": LOST})


def _jobs(tmp_path: Path, n: int) -> list[JobSpec]:
    return [
        JobSpec(f"run_{i}", ["true"], Resources(memory=100), tmp_path / "log") for i in range(n)
    ]


def _ended(job: JobSpec, exitcode: int, node: str) -> None:
    job.exit_file.write_text(json.dumps({"exitcode": exitcode, "time": 1.0, "node": node}))


def test_a_failed_task_gets_the_schedulers_reason_and_its_node(queue, tmp_path):
    jobs = _jobs(tmp_path, 3)
    queue.submit_many(jobs)
    _ended(jobs[0], 0, "n1")
    _ended(jobs[1], -15, "n2")
    ended = queue.poll()
    assert ended["run_0"].node == "n1" and ended["run_0"].reason is None
    assert ended["run_1"].node == "n2" and ended["run_1"].reason == LOST
    assert queue.asked == [{"run_1"}]  # successes are not asked about
    assert queue.poll() == {}  # run_2 still runs


def test_a_task_killed_on_request_is_not_explained_by_the_scheduler(queue, tmp_path):
    jobs = _jobs(tmp_path, 2)
    queue.submit_many(jobs)
    queue.kill("run_1")
    _ended(jobs[1], -15, "n2")
    assert queue.poll()["run_1"].reason == arrays.KILLED_ON_REQUEST
    assert queue.asked == []


def test_a_task_that_vanished_is_lost_on_its_node(queue, tmp_path, monkeypatch):
    monkeypatch.setattr(arrays, "LOST_AFTER", 0.0)
    jobs = _jobs(tmp_path, 4)
    queue.submit_many(jobs)
    jobs[2].pid_file.write_text(json.dumps({"pid": 1, "node": "n2"}))
    queue.queue -= {"7_2", "7_3"}  # gone without exit files: with their node
    ended = queue.poll()
    assert set(ended) == {"run_2", "run_3"}
    assert (ended["run_2"].exitcode, ended["run_2"].node, ended["run_2"].reason) == (-9, "n2", LOST)
    # the scheduler knows nothing of run_3, which never started
    assert (ended["run_3"].node, ended["run_3"].reason) == (None, arrays.VANISHED)


@pytest.mark.parametrize(
    ("state", "node_state", "expected"),
    [
        ("NODE_FAIL", ("down", "test"), LOST + "; SLURM job state NODE_FAIL"),
        ("NODE_FAIL", None, "node n2 was lost while the job ran; SLURM job state NODE_FAIL"),
        ("", ("down*", "Not responding"),
         "node n2 was lost while the job ran (node down*: Not responding)"),
        ("TIMEOUT", None,
         "SLURM ended it on node n2: it reached its time limit (TIMEOUT, TimeLimit)"),
        ("FAILED", None, ""),  # the job's own failure: its log says why
        ("", None, ""),  # forgotten by the queue, node well: nothing to add
    ],
)  # fmt: skip
def test_slurm_says_why_in_words(state, node_state, expected):
    reason = "TimeLimit" if state == "TIMEOUT" else "NonZeroExitCode"
    job = slurm._JobState(state, reason, "n2") if state else slurm._JobState()
    assert slurm._describe(job, "n2", node_state) == expected


@pytest.mark.parametrize(
    ("state", "unwell"),
    [("idle", False), ("mixed", False), ("allocated", False), ("down", True), ("down*", True),
     ("idle*", True), ("drained", True), ("draining", True), ("fail", True)],
)  # fmt: skip
def test_which_node_states_mean_lost_jobs(state, unwell):
    assert slurm._unwell(state) is unwell


class Scripted(Backend):
    """Ends each job as told, at once: a list of outcomes per job name, one per run."""

    cores = 4

    def __init__(self, outcomes: dict[str, list[Outcome]]) -> None:
        self.outcomes = outcomes
        self.started: list[str] = []
        self._running: list[str] = []

    def free_cores(self) -> int:
        return 4

    def submit(self, job: JobSpec) -> dict:
        self.started.append(job.name)
        self._running.append(job.name)
        return {"cluster_task": f"1_{len(self.started)}"}

    def poll(self) -> dict[str, Outcome]:
        ended = {name: self.outcomes[name].pop(0) for name in self._running}
        self._running = []
        return ended

    def adopt(self, job: JobSpec, handle: dict) -> bool:
        return False

    def kill(self, name: str) -> None:
        pass

    def running(self) -> list[str]:
        return list(self._running)


def test_the_engine_keeps_the_reason_and_resume_reruns_only_the_lost_job(
    tmaps, tmp_path, monkeypatch
):
    use_fast_password_hashing(monkeypatch)
    user_id = registry.add_user("rea", "pw", "rea@example.org")
    eid = registry.add_experiment("reasons", "rea", plate_format=96)
    backend = Scripted({
        "a": [Outcome(0, 1.0, node="n1")],
        "b": [Outcome(-15, 1.0, node="n2", reason=LOST), Outcome(0, 1.0, node="n3")],
    })  # fmt: skip
    tree = TaskSpec("phase", "RunPhase", mode=PARALLEL, children=[
        TaskSpec(n, "RunJob", job=JobSpec(n, ["true"], Resources(memory=100), tmp_path))
        for n in ("a", "b")
    ])  # fmt: skip
    session = Session(main_engine(), expire_on_commit=False)
    submission = tm.Submission(program="workflow", experiment_id=eid, user_id=user_id)
    session.add(submission)
    root = persist(session, submission, tree)
    session.commit()
    engine = Engine(session, backend, root)
    while engine.progress():
        pass
    assert engine.result() is Result.FAILED

    status = manager.submission_status(submission.id)
    leaves = {s["name"]: s for s in status["subtasks"]}
    assert (leaves["b"]["node"], leaves["b"]["reason"], leaves["b"]["exitcode"]) == (
        "n2",
        LOST,
        -15,
    )
    assert (leaves["a"]["node"], leaves["a"]["reason"]) == ("n1", None)
    assert status["reason"] is None  # collections have none

    engine.prepare_resume()
    while engine.progress():
        pass
    assert engine.result() is Result.OK
    assert backend.started == ["a", "b", "b"]  # a was not redone
    with Session(main_engine()) as fresh:
        tasks = {t.name: t for t in fresh.scalars(sa.select(tm.Task).where(
            tm.Task.submission_id == submission.id, tm.Task.is_collection.is_(False)))}  # fmt: skip
        b = tasks["b"]
        assert (b.state, b.exitcode, b.data["node"]) == (State.TERMINATED, 0, "n3")
        assert "reason" not in b.data  # it succeeded this time
        assert [(x["exitcode"], x["node"], x["reason"]) for x in b.data["attempts"]] == [
            (-15, "n2", LOST)
        ]
        assert "attempts" not in tasks["a"].data
    session.close()
