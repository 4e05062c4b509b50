"""The job engine alone (``tmlib.workflow.jobs``) with trivial jobs, on SQLite and PostgreSQL.

Every test builds a job tree, persists it as a :class:`tm.Submission`, drives it
with an :class:`Engine` on a :class:`LocalBackend` and reads the outcome back
from the ``tasks`` table with a *new* session, which proves that the engine
persisted it.
"""

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
from sqlalchemy.orm import Session

import tmlib.models as tm
from tmlib import registry
from tmlib.models.session import main_engine
from tmlib.workflow import manager
from tmlib.workflow.jobs.backends import LocalBackend
from tmlib.workflow.jobs.engine import (
    PARALLEL,
    SEQUENTIAL,
    Engine,
    Result,
    TaskSpec,
    persist,
)
from tmlib.workflow.jobs.job import JobSpec, Resources, State, read_exit_file

#: command prefix of the jobs the local backend runs in its preloaded spawner
PROBE_PREFIX = ["probe-job"]
#: generous bound for a tree of trivial jobs to finish (the machine may be busy)
DEADLINE = 60.0
#: for tests where the database does not matter
SQLITE_ONLY = pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fast_password_hashing(monkeypatch)


@dataclass
class Bench:
    """What a test needs to run job trees: an experiment, a log and a scratch directory."""

    experiment_id: int
    user_id: int
    logs: Path
    scratch: Path

    def job(self, name: str, script: str, cores: int = 1) -> TaskSpec:
        """A leaf running ``sh -c SCRIPT`` (the scratch directory is $S)."""
        command = ["sh", "-c", f'S="{self.scratch}"; {script}']
        spec = JobSpec(name, command, Resources(cores=cores, memory=100, walltime=60), self.logs)
        return TaskSpec(name, "RunJob", job=spec)

    def counted(self, name: str, script: str = "true") -> TaskSpec:
        """A job that appends a line to ``count_<name>`` each time it runs, then runs SCRIPT."""
        return self.job(name, f'echo x >> "$S/count_{name}"; {script}')

    def runs(self, name: str) -> int:
        """How often the :meth:`counted` job `name` ran."""
        path = self.scratch / f"count_{name}"
        return len(path.read_text().splitlines()) if path.exists() else 0

    def call(self, name: str, *actions: object, cores: int = 1) -> TaskSpec:
        """A leaf run as ``helpers.probe_job(ACTIONS)`` in the preloaded spawner."""
        command = [*PROBE_PREFIX, *map(str, actions)]
        spec = JobSpec(name, command, Resources(cores=cores, memory=100, walltime=60), self.logs)
        return TaskSpec(name, "RunJob", job=spec)

    def submit(self, tree: TaskSpec, program: str = "test") -> tuple[Session, tm.Task]:
        """Persist `tree` as a new submission; returns the engine's session and the root."""
        session = Session(main_engine(), expire_on_commit=False)
        submission = tm.Submission(
            program=program, experiment_id=self.experiment_id, user_id=self.user_id
        )
        session.add(submission)
        root = persist(session, submission, tree)
        session.commit()
        return session, root

    def engine(
        self, tree: TaskSpec, cores: int = 2, expander=None, program: str = "test"
    ) -> Engine:
        session, root = self.submit(tree, program)
        backend = LocalBackend(cores, preload=(PROBE_PREFIX, "helpers:probe_job"))
        return Engine(session, backend, root, expander)


@pytest.fixture
def bench(tmaps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bench]:
    # the preloaded spawner imports helpers.probe_job
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    user_id = registry.add_user("eve", "pw-of-eve", "eve@example.org")
    experiment_id = registry.add_experiment("engine", "eve", plate_format=96)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    made = Bench(experiment_id, user_id, tmp_path / "logs", scratch)
    yield made


def run_to_end(engine: Engine, deadline: float = DEADLINE) -> Result:
    """Drive `engine` until it is done (fails the test after `deadline` seconds)."""
    start = time.monotonic()
    try:
        while engine.progress():
            assert time.monotonic() - start < deadline, "the job tree did not finish in time"
            time.sleep(0.02)
    finally:
        engine.backend.close()
    return engine.result()


def stored_tasks(root_id: int) -> dict[str, tm.Task]:
    """All tasks of the submission of `root_id`, by name, read with a fresh session."""
    with tm.utils.MainSession() as session:
        root = session.get(tm.Task, root_id)
        assert root is not None
        tasks = session.scalars(
            sa.select(tm.Task).where(tm.Task.submission_id == root.submission_id)
        ).all()
        session.expunge_all()
    return {t.name: t for t in tasks}


# ------------------------------------------------------------------ collections


def test_sequential_stops_at_first_failure(bench: Bench) -> None:
    tree = TaskSpec(
        "seq",
        "Workflow",
        mode=SEQUENTIAL,
        children=[
            bench.counted("a"),
            bench.counted("b", "exit 3"),
            bench.counted("c"),
            bench.counted("d"),
        ],
    )
    engine = bench.engine(tree)
    assert run_to_end(engine) is Result.FAILED
    assert [bench.runs(n) for n in "abcd"] == [1, 1, 0, 0]

    tasks = stored_tasks(engine.root.id)
    assert (tasks["a"].state, tasks["a"].exitcode) == (State.TERMINATED, 0)
    assert (tasks["b"].state, tasks["b"].exitcode) == (State.TERMINATED, 3)
    for name in "cd":
        assert tasks[name].state == State.NEW
        assert tasks[name].exitcode is None
        assert tasks[name].started_at is None
    assert tasks["seq"].state == State.TERMINATED
    assert tasks["seq"].exitcode not in (0, None)
    assert tasks["a"].ended_at <= tasks["b"].started_at  # one after the other


def test_parallel_runs_all_and_fails_if_any_failed(bench: Bench) -> None:
    tree = TaskSpec(
        "par",
        "Workflow",
        mode=PARALLEL,
        children=[
            bench.counted("a"),
            bench.counted("b", "exit 3"),
            bench.counted("c"),
            bench.counted("d", "exit 7"),
            bench.counted("e"),
        ],
    )
    engine = bench.engine(tree)
    assert run_to_end(engine) is Result.FAILED
    assert [bench.runs(n) for n in "abcde"] == [1] * 5
    tasks = stored_tasks(engine.root.id)
    assert {n: tasks[n].exitcode for n in "abcde"} == {"a": 0, "b": 3, "c": 0, "d": 7, "e": 0}
    assert all(tasks[n].state == State.TERMINATED for n in tasks)
    assert tasks["par"].exitcode not in (0, None)


@SQLITE_ONLY
def test_all_succeeded_is_ok(bench: Bench) -> None:
    tree = TaskSpec(
        "wf",
        "Workflow",
        children=[
            TaskSpec(
                "p1", "Stage", mode=PARALLEL, children=[bench.counted("a"), bench.counted("b")]
            ),
            TaskSpec("p2", "Stage", mode=PARALLEL, children=[bench.counted("c")]),
        ],
    )
    engine = bench.engine(tree)
    assert run_to_end(engine) is Result.OK
    tasks = stored_tasks(engine.root.id)
    assert all(t.state == State.TERMINATED and t.exitcode == 0 for t in tasks.values())
    # the second stage started only once the first had ended
    assert max(tasks["a"].ended_at, tasks["b"].ended_at) <= tasks["c"].started_at


# ------------------------------------------------------------------- accounting


def test_exit_code_time_cpu_and_memory_are_persisted(bench: Bench) -> None:
    py = sys.executable
    burn = (
        f'"{py}" -S -c "import time; b = bytearray(80 * 2**20); t = time.process_time(); '
        f'exec(\\"while time.process_time() - t < 0.3: pass\\")"'
    )
    tree = TaskSpec(
        "par",
        "Workflow",
        mode=PARALLEL,
        children=[
            bench.job("burn", burn),
            bench.job("sleepy", "sleep 0.5"),
            bench.job("three", "echo to-out; echo to-err >&2; exit 3"),
        ],
    )
    engine = bench.engine(tree)
    run_to_end(engine)
    tasks = stored_tasks(engine.root.id)

    burn_task = tasks["burn"]
    assert burn_task.exitcode == 0
    assert burn_task.cpu_time >= 0.25
    assert burn_task.memory >= 80  # MB: the bytearray
    assert burn_task.time >= burn_task.cpu_time * 0.5
    assert burn_task.started_at is not None and burn_task.ended_at >= burn_task.started_at

    sleepy = tasks["sleepy"]
    assert sleepy.exitcode == 0
    assert sleepy.time >= 0.45
    assert sleepy.cpu_time < 0.3
    assert 0 < sleepy.memory < 80

    three = tasks["three"]
    assert three.exitcode == 3
    assert (bench.logs / "three.out").read_text() == "to-out\n"
    assert (bench.logs / "three.err").read_text() == "to-err\n"
    assert read_exit_file(bench.logs / "three.exit")["exitcode"] == 3

    # collections carry their wall time too
    assert tasks["par"].time is not None and tasks["par"].time >= 0.45


@SQLITE_ONLY
def test_job_killed_by_a_signal_gets_a_negative_exit_code(bench: Bench) -> None:
    tree = TaskSpec(
        "par",
        "Workflow",
        mode=PARALLEL,
        children=[bench.job("nine", "kill -9 $$"), bench.job("term", "kill -15 $$")],
    )
    engine = bench.engine(tree)
    assert run_to_end(engine) is Result.FAILED
    tasks = stored_tasks(engine.root.id)
    assert tasks["nine"].exitcode == -signal.SIGKILL
    assert tasks["term"].exitcode == -signal.SIGTERM


@SQLITE_ONLY
def test_a_command_that_cannot_start_fails(bench: Bench) -> None:
    spec = JobSpec("ghost", ["/no/such/program"], Resources(), bench.logs)
    engine = bench.engine(
        TaskSpec("wf", "Workflow", children=[TaskSpec("ghost", "RunJob", job=spec)])
    )
    assert run_to_end(engine) is Result.FAILED
    assert stored_tasks(engine.root.id)["ghost"].exitcode == 127
    assert "/no/such/program" in (bench.logs / "ghost.err").read_text()


# ---------------------------------------------------------------- non-blocking


def test_progress_does_not_block_while_a_job_runs(bench: Bench) -> None:
    tree = TaskSpec("wf", "Workflow", children=[bench.job("slow", "sleep 2")])
    engine = bench.engine(tree)
    assert engine.progress() is True  # starts the job
    durations = []
    start = time.monotonic()
    try:
        while time.monotonic() - start < 1.0:
            t0 = time.perf_counter()
            assert engine.progress() is True
            durations.append(time.perf_counter() - t0)
            time.sleep(0.05)
        # the job is RUNNING, visibly to another session, while progress() returns at once
        assert stored_tasks(engine.root.id)["slow"].state == State.RUNNING
        assert max(durations) < 0.2, durations
        assert len(durations) >= 5
        assert run_to_end(engine) is Result.OK
    finally:
        engine.backend.close()


def span_script(seconds: float) -> str:
    """Sleep `seconds`, logging start and end times to ``$S/spans``."""
    stamp = '$(date +%s.%N)" >> "$S/spans"'
    return f'echo "start {stamp}; sleep {seconds}; echo "end {stamp}'


@SQLITE_ONLY
def test_at_most_cores_jobs_run_at_once(bench: Bench) -> None:
    log = bench.scratch / "spans"
    script = span_script(0.4)
    jobs = [bench.job(f"j{i}", script) for i in range(6)]
    engine = bench.engine(TaskSpec("par", "Workflow", mode=PARALLEL, children=jobs), cores=2)
    assert run_to_end(engine) is Result.OK

    events = []
    for line in log.read_text().splitlines():
        kind, stamp = line.split()
        events.append((float(stamp), 0 if kind == "end" else 1))  # ends first at a tie
    assert len(events) == 12
    running = peak = 0
    for _, delta in sorted(events):
        running += 1 if delta else -1
        peak = max(peak, running)
    assert peak == 2, sorted(events)


@SQLITE_ONLY
def test_a_job_needing_all_cores_runs_alone(bench: Bench) -> None:
    script = span_script(0.3)
    jobs = [bench.job("big", script, cores=2), bench.job("s1", script), bench.job("s2", script)]
    engine = bench.engine(TaskSpec("par", "Workflow", mode=PARALLEL, children=jobs), cores=2)
    assert run_to_end(engine) is Result.OK
    tasks = stored_tasks(engine.root.id)
    big = tasks["big"]
    for name in ("s1", "s2"):
        other = tasks[name]
        assert other.ended_at <= big.started_at or other.started_at >= big.ended_at


# ------------------------------------------------------------------- expansion


def test_expandable_collection_gets_children_only_when_reached(bench: Bench) -> None:
    calls = []

    def expander(task: tm.Task) -> list[TaskSpec]:
        # the init job before it in the sequence has ended by now
        calls.append((task.name, dict(task.data["expand"]), bench.runs("init")))
        return [bench.counted(f"run{i}") for i in range(3)]

    tree = TaskSpec(
        "step",
        "WorkflowStep",
        children=[
            bench.counted("init", "sleep 0.3"),
            TaskSpec("runs", "RunPhase", mode=PARALLEL, expand={"n": 3}),
            bench.counted("collect"),
        ],
    )
    engine = bench.engine(tree, expander=expander)
    engine.progress()
    assert calls == []  # init is running: not reached yet
    assert run_to_end(engine) is Result.OK
    assert calls == [("runs", {"n": 3}, 1)]
    assert [bench.runs(f"run{i}") for i in range(3)] == [1, 1, 1]
    assert bench.runs("collect") == 1
    tasks = stored_tasks(engine.root.id)
    assert {"run0", "run1", "run2"} <= set(tasks)
    assert all(tasks[f"run{i}"].parent_id == tasks["runs"].id for i in range(3))
    assert tasks["runs"].data["expanded"] is True
    assert tasks["runs"].exitcode == 0


@SQLITE_ONLY
def test_expander_not_called_after_an_earlier_failure(bench: Bench) -> None:
    calls = []

    def expander(task: tm.Task) -> list[TaskSpec]:
        calls.append(task.name)
        return [bench.counted("run0")]

    tree = TaskSpec(
        "step",
        "WorkflowStep",
        children=[
            bench.counted("init", "exit 1"),
            TaskSpec("runs", "RunPhase", mode=PARALLEL, expand={}),
        ],
    )
    engine = bench.engine(tree, expander=expander)
    assert run_to_end(engine) is Result.FAILED
    assert calls == []
    tasks = stored_tasks(engine.root.id)
    assert tasks["runs"].state == State.NEW
    assert not (tasks["runs"].data or {}).get("expanded")
    assert "run0" not in tasks


# --------------------------------------------------------------------- kill


def test_kill_stops_running_jobs_and_starts_no_new_ones(bench: Bench) -> None:
    tree = TaskSpec(
        "wf",
        "Workflow",
        children=[
            TaskSpec(
                "par",
                "Stage",
                mode=PARALLEL,
                children=[bench.job("s1", "sleep 30"), bench.call("s2", "sleep", 30)],
            ),
            bench.counted("after"),
        ],
    )
    engine = bench.engine(tree)
    engine.progress()
    tasks = stored_tasks(engine.root.id)
    pids = [tasks[n].data["pid"] for n in ("s1", "s2")]
    assert all(Path(f"/proc/{pid}").exists() for pid in pids)
    start = time.monotonic()
    engine.kill()
    result = run_to_end(engine, deadline=10)
    assert time.monotonic() - start < 10
    assert result is not Result.OK
    tasks = stored_tasks(engine.root.id)
    for name in ("s1", "s2"):
        assert tasks[name].state == State.TERMINATED
        assert tasks[name].exitcode == -signal.SIGTERM
    assert tasks["after"].state == State.NEW
    assert bench.runs("after") == 0
    for pid in pids:
        assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


# ------------------------------------------------------------------- resume


def reload(root_id: int, cores: int = 2, expander=None) -> Engine:
    """A new engine, with a new session, on a stored tree (as ``resume`` builds one)."""
    session = Session(main_engine(), expire_on_commit=False)
    root = session.get(tm.Task, root_id)
    assert root is not None
    backend = LocalBackend(cores, preload=(PROBE_PREFIX, "helpers:probe_job"))
    return Engine(session, backend, root, expander)


def test_resume_reruns_only_failed_jobs(bench: Bench) -> None:
    flag = bench.scratch / "fixed"
    tree = TaskSpec(
        "wf",
        "Workflow",
        children=[
            bench.counted("first"),
            TaskSpec(
                "par",
                "Stage",
                mode=PARALLEL,
                children=[
                    bench.counted("ok1"),
                    bench.counted("ok2"),
                    bench.counted("flaky", f'test -e "{flag}"'),
                ],
            ),
            bench.counted("last"),
        ],
    )
    engine = bench.engine(tree)
    assert run_to_end(engine) is Result.FAILED
    engine.session.close()
    runs = {n: bench.runs(n) for n in ("first", "ok1", "ok2", "flaky", "last")}
    assert runs == {"first": 1, "ok1": 1, "ok2": 1, "flaky": 1, "last": 0}

    flag.touch()
    resumed = reload(engine.root.id)
    resumed.prepare_resume()
    tasks = stored_tasks(engine.root.id)  # the reset is persisted at once
    assert tasks["flaky"].state == State.NEW and tasks["flaky"].exitcode is None
    assert tasks["ok1"].state == State.TERMINATED and tasks["ok1"].exitcode == 0
    assert run_to_end(resumed) is Result.OK
    resumed.session.close()

    runs = {n: bench.runs(n) for n in ("first", "ok1", "ok2", "flaky", "last")}
    assert runs == {"first": 1, "ok1": 1, "ok2": 1, "flaky": 2, "last": 1}
    tasks = stored_tasks(engine.root.id)
    assert all(t.state == State.TERMINATED and t.exitcode == 0 for t in tasks.values())


@SQLITE_ONLY
def test_resume_re_expands_after_a_failed_init(bench: Bench) -> None:
    flag = bench.scratch / "fixed"
    calls = []

    def expander(task: tm.Task) -> list[TaskSpec]:
        calls.append(task.name)
        return [bench.counted("run0"), bench.counted("run1")]

    tree = TaskSpec(
        "step",
        "WorkflowStep",
        children=[
            bench.counted("init", f'test -e "{flag}"'),
            TaskSpec("runs", "RunPhase", mode=PARALLEL, expand={}),
        ],
    )
    engine = bench.engine(tree, expander=expander)
    assert run_to_end(engine) is Result.FAILED
    engine.session.close()
    assert calls == []

    flag.touch()
    resumed = reload(engine.root.id, expander=expander)
    resumed.prepare_resume()
    assert run_to_end(resumed) is Result.OK
    resumed.session.close()
    assert calls == ["runs"]
    assert (bench.runs("init"), bench.runs("run0"), bench.runs("run1")) == (2, 1, 1)


def test_resume_keeps_finished_runs_of_an_expanded_phase(bench: Bench) -> None:
    flag = bench.scratch / "fixed"
    calls = []

    def expander(task: tm.Task) -> list[TaskSpec]:
        calls.append(task.name)
        return [
            bench.counted("run0"),
            bench.counted("run1", f'test -e "{flag}"'),
            bench.counted("run2"),
        ]

    tree = TaskSpec(
        "step",
        "WorkflowStep",
        children=[
            bench.counted("init"),
            TaskSpec("runs", "RunPhase", mode=PARALLEL, expand={}),
            bench.counted("collect"),
        ],
    )
    engine = bench.engine(tree, expander=expander)
    assert run_to_end(engine) is Result.FAILED
    engine.session.close()

    flag.touch()
    resumed = reload(engine.root.id, expander=expander)
    resumed.prepare_resume()
    assert run_to_end(resumed) is Result.OK
    resumed.session.close()
    assert calls == ["runs"]  # the phase kept its children: no second expansion
    counts = [bench.runs(n) for n in ("init", "run0", "run1", "run2", "collect")]
    assert counts == [1, 1, 2, 1, 1]


def test_resume_follows_a_job_started_by_a_dead_engine(bench: Bench) -> None:
    """The engine goes away while a job runs: the job goes on, and a new engine
    adopts it (and then its exit file) instead of running it again."""
    tree = TaskSpec(
        "wf",
        "Workflow",
        children=[bench.counted("long", "sleep 1.5"), bench.counted("next")],
    )
    engine = bench.engine(tree)
    engine.progress()
    assert stored_tasks(engine.root.id)["long"].state == State.RUNNING
    engine.backend.close()  # as if the engine process died: the spawner keeps the job
    engine.session.close()

    resumed = reload(engine.root.id)
    resumed.prepare_resume()
    assert "long" in resumed.backend.running()  # adopted, not restarted
    assert stored_tasks(engine.root.id)["long"].state == State.RUNNING
    # (wait for the exit file first: see test_adopted_job_is_not_lost_while_its_exit_is_recorded)
    wait_for_exit_file(bench.logs / "long.exit")
    assert run_to_end(resumed) is Result.OK
    resumed.session.close()
    assert (bench.runs("long"), bench.runs("next")) == (1, 1)
    tasks = stored_tasks(engine.root.id)
    assert tasks["long"].exitcode == 0 and tasks["long"].time >= 1.0


def wait_for_exit_file(path: Path, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while (record := read_exit_file(path)) is None:
        assert time.monotonic() < deadline, f"no exit file {path}"
        time.sleep(0.05)
    return record


def test_adopted_job_is_not_lost_while_its_exit_is_recorded(tmp_path: Path) -> None:
    """Deterministic form of the race: the old spawner is stopped (SIGSTOP) so that
    the finished job stays a zombie without an exit file for a while."""
    job = JobSpec("j", ["sh", "-c", "sleep 0.3"], Resources(), tmp_path)
    first = LocalBackend(2)
    handle = first.submit(job)
    spawner_pid = first._spawners[False].proc.pid
    first.close()  # the engine "dies"; the spawner keeps the job
    os.kill(spawner_pid, signal.SIGSTOP)
    try:
        second = LocalBackend(2)
        assert second.adopt(job, {**handle, "start": time.time()})
        deadline = time.monotonic() + 20
        while _alive(handle["pid"]):  # the job ends; its parent cannot reap it now
            assert time.monotonic() < deadline
            time.sleep(0.02)
        early = second.poll()
    finally:
        os.kill(spawner_pid, signal.SIGCONT)
    wait_for_exit_file(job.exit_file)
    ended = {**early, **second.poll()}
    assert read_exit_file(job.exit_file)["exitcode"] == 0
    assert ended["j"].exitcode == 0


@SQLITE_ONLY
def test_resume_takes_the_exit_file_of_a_job_that_ended_meanwhile(bench: Bench) -> None:
    tree = TaskSpec("wf", "Workflow", children=[bench.counted("quick", "sleep 0.2; exit 4")])
    engine = bench.engine(tree)
    engine.progress()
    engine.backend.close()
    engine.session.close()
    wait_for_exit_file(bench.logs / "quick.exit")
    assert stored_tasks(engine.root.id)["quick"].state == State.RUNNING

    resumed = reload(engine.root.id)
    resumed.prepare_resume()
    # its recorded failure was read and, being a failure, reset to run again
    assert stored_tasks(engine.root.id)["quick"].state == State.NEW
    assert run_to_end(resumed) is Result.FAILED
    resumed.session.close()
    assert bench.runs("quick") == 2


@SQLITE_ONLY
def test_resume_reruns_a_job_that_vanished(bench: Bench) -> None:
    """A job recorded as RUNNING whose process is gone without an exit file runs again."""
    tree = TaskSpec("wf", "Workflow", children=[bench.counted("lost")])
    session, root = bench.submit(tree)
    dead = subprocess.Popen(["true"])
    dead.wait()
    lost = next(c for c in root.children if c.name == "lost")
    lost.state = State.RUNNING
    lost.data = {**lost.data, "pid": dead.pid, "host": os.uname().nodename}
    session.commit()
    session.close()

    resumed = reload(root.id)
    resumed.prepare_resume()
    assert resumed.backend.running() == []
    assert run_to_end(resumed) is Result.OK
    resumed.session.close()
    assert bench.runs("lost") == 1


# ------------------------------------------------------- preloaded "call" jobs


@SQLITE_ONLY
def test_preloaded_call_jobs(bench: Bench) -> None:
    """Step jobs run as a function call in a fork of a preloaded spawner; they end,
    fail, print and are measured like any program."""
    tree = TaskSpec(
        "par",
        "Workflow",
        mode=PARALLEL,
        children=[
            bench.call("ok", "print", "to-out", "warn", "to-err"),
            bench.call("three", "exit", 3),
            bench.call("sysexit", "sysexit", 4),
            bench.call("message", "sysexit", "bad usage"),
            bench.call("raises", "raise", "probe exploded"),
            bench.call("nine", "signal", 9),
            bench.call("big", "alloc", 100, "sleep", 0.2),
            bench.job("shell", "exit 5"),  # not preloaded: runs as a program
        ],
    )
    engine = bench.engine(tree)
    assert run_to_end(engine) is Result.FAILED
    tasks = stored_tasks(engine.root.id)
    codes = {n: tasks[n].exitcode for n in tasks if tasks[n].type == "RunJob"}
    assert codes["ok"] == 0
    assert codes["three"] == 3
    assert codes["sysexit"] == 4
    assert codes["message"] == 1
    assert codes["raises"] not in (0, None)
    assert codes["nine"] == -signal.SIGKILL
    assert codes["big"] == 0
    assert codes["shell"] == 5
    assert (bench.logs / "ok.out").read_text() == "to-out\n"
    assert (bench.logs / "ok.err").read_text() == "to-err\n"
    assert "bad usage" in (bench.logs / "message.err").read_text()
    assert "probe exploded" in (bench.logs / "raises.err").read_text()
    # measured, but see test_call_job_peak_memory for how far off
    assert tasks["big"].memory is not None and tasks["big"].memory >= 0
    assert all(tasks[n].cpu_time is not None and tasks[n].time > 0 for n in codes)
    for name in codes:
        assert read_exit_file(bench.logs / f"{name}.exit")["exitcode"] == codes[name]


@SQLITE_ONLY
def test_call_job_peak_memory(bench: Bench) -> None:
    tree = TaskSpec("wf", "Workflow", children=[bench.call("big", "alloc", 100, "sleep", 0.2)])
    engine = bench.engine(tree)
    assert run_to_end(engine) is Result.OK
    memory = stored_tasks(engine.root.id)["big"].memory
    assert memory >= 95, f"a job holding 100 MB reported {memory:.1f} MB"


def test_kill_after_the_engine_died_signals_the_jobs(bench: Bench) -> None:
    """``tm_workflow kill`` with no engine left: the recorded job processes are stopped."""
    tree = TaskSpec(
        "workflow",
        "Workflow",
        mode=PARALLEL,
        children=[bench.job("s1", "sleep 30"), bench.call("s2", "sleep", 30)],
    )
    engine = bench.engine(tree, program="workflow")
    engine.progress()
    engine.backend.close()  # the engine "dies"; its jobs go on
    engine.session.close()
    tasks = stored_tasks(engine.root.id)
    pids = {n: tasks[n].data["pid"] for n in ("s1", "s2")}
    assert all(_alive(pid) for pid in pids.values())

    assert manager.kill(bench.experiment_id) == 2
    for pid in pids.values():
        deadline = time.monotonic() + 10
        while _alive(pid):
            assert time.monotonic() < deadline, f"job process {pid} survived the kill"
            time.sleep(0.05)
    tasks = stored_tasks(engine.root.id)
    for name in pids:
        assert tasks[name].state == State.TERMINATED
        assert tasks[name].exitcode == -signal.SIGTERM
        assert wait_for_exit_file(bench.logs / f"{name}.exit")["exitcode"] == -signal.SIGTERM


@SQLITE_ONLY
def test_resume_after_a_death_between_start_and_commit(bench: Bench) -> None:
    tree = TaskSpec("wf", "Workflow", children=[bench.counted("once", "sleep 0.2")])
    engine = bench.engine(tree)

    real_commit = engine.session.commit
    commits = []

    def die() -> None:  # SIGKILL right after the job was started, before its pid is committed
        commits.append(1)
        if len(commits) > 1:
            raise KeyboardInterrupt
        real_commit()  # the commit of SUBMITTED, before the start

    engine.session.commit = die  # type: ignore[method-assign]
    root_id = engine.root.id
    with pytest.raises(KeyboardInterrupt):
        engine.progress()
    engine.session.rollback()
    engine.session.close()
    engine.backend.close()
    wait_for_exit_file(bench.logs / "once.exit")
    assert bench.runs("once") == 1

    resumed = reload(root_id)
    resumed.prepare_resume()
    assert run_to_end(resumed) is Result.OK
    resumed.session.close()
    assert bench.runs("once") == 1, "the job ran a second time"
