"""The cluster backends on real single-node clusters: SLURM (``slurm/start.sh``)
and Grid Engine (``sge/start.sh``).

Each runs whenever its scheduler answers (``sinfo``, ``qstat``); CI starts both
clusters and sets ``TMAPS_TEST_REQUIRE_SLURM=1`` and ``TMAPS_TEST_REQUIRE_SGE=1``,
which turn the skips into failures.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import cli, ok, use_fast_password_hashing
from sqlalchemy.orm import Session

import tmlib.models as tm
from tmlib import registry
from tmlib.models.session import main_engine
from tmlib.simulate import PlateSpec, simulate_plate
from tmlib.workflow.jobs import arrays
from tmlib.workflow.jobs.engine import PARALLEL, SEQUENTIAL, Engine, Result, TaskSpec, persist
from tmlib.workflow.jobs.job import JobSpec, Resources
from tmlib.workflow.manager import make_backend

#: backend -> (command that answers when the cluster is up, how to start it)
PROBES = {
    "slurm": (["sinfo", "-h"], "slurm/start.sh"),
    "sge": (["qhost"], "sge/install.sh"),
}


def _cluster_problem(kind: str) -> str | None:
    command, start = PROBES[kind]
    if shutil.which(command[0]) is None:
        return f"{command[0]} is not installed (run {start})"
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return f"{command[0]} does not answer within 20 s (run {start})"
    if result.returncode != 0 or (kind == "slurm" and not result.stdout.strip()):
        return f"{command[0]} does not answer: {result.stderr.strip()[:200] or 'no queues'}"
    # qhost lists execution hosts after 3 header lines; "-" as LOAD: its execd is down
    if kind == "sge" and not any(
        len(line.split()) > 6 and line.split()[6] != "-" for line in result.stdout.splitlines()[3:]
    ):
        return "no Grid Engine execution host is up (run sge/start.sh)"
    return None


PROBLEMS = {kind: _cluster_problem(kind) for kind in PROBES}
for _kind, _problem in PROBLEMS.items():
    if _problem and os.environ.get(f"TMAPS_TEST_REQUIRE_{_kind.upper()}"):
        raise RuntimeError(f"TMAPS_TEST_REQUIRE_{_kind.upper()} is set but {_problem}")
pytestmark = [pytest.mark.slurm, pytest.mark.slow]
DEADLINE = 180.0


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fast_password_hashing(monkeypatch)


@dataclass
class Cluster:
    experiment_id: int
    user_id: int
    logs: Path
    scratch: Path

    def job(self, name: str, script: str, cores: int = 1) -> TaskSpec:
        """A leaf running ``sh -c SCRIPT`` (the scratch directory is $S)."""
        command = ["sh", "-c", f'S="{self.scratch}"; {script}']
        spec = JobSpec(name, command, Resources(cores=cores, memory=100, walltime=120), self.logs)
        return TaskSpec(name, "RunJob", job=spec)

    kind: str = "slurm"

    def engine(self, tree: TaskSpec) -> Engine:
        session = Session(main_engine(), expire_on_commit=False)
        submission = tm.Submission(
            program="test", experiment_id=self.experiment_id, user_id=self.user_id
        )
        session.add(submission)
        root = persist(session, submission, tree)
        session.commit()
        return Engine(session, make_backend(self.kind), root)


@pytest.fixture(params=list(PROBES))
def kind(request: pytest.FixtureRequest) -> str:
    """The backend under test; skipped where its cluster does not answer."""
    if PROBLEMS[request.param]:
        pytest.skip(PROBLEMS[request.param])
    return request.param


@pytest.fixture
def cluster(tmaps, tmp_path: Path, kind: str) -> Iterator[Cluster]:
    user_id = registry.add_user("sal", "pw", "sal@example.org")
    experiment_id = registry.add_experiment("clusters", "sal", plate_format=96)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    yield Cluster(experiment_id, user_id, tmp_path / "logs", scratch, kind)


def run_to_end(engine: Engine, deadline: float = DEADLINE) -> Result:
    start = time.monotonic()
    while engine.progress():
        assert time.monotonic() - start < deadline, "the job tree did not finish in time"
        engine.backend.wait(0.05)
    return engine.result()


def leaves(engine: Engine) -> dict[str, tm.Task]:
    found = {}

    def walk(task: tm.Task) -> None:
        if not task.is_collection:
            found[task.name] = task
        for child in task.children:
            walk(child)

    walk(engine.root)
    return found


def test_a_phase_is_one_job_array_and_every_exit_code_is_recorded(cluster):
    jobs = [cluster.job(f"run_{i}", "sleep 1" if i != 3 else "exit 3") for i in range(6)]
    tree = TaskSpec("step", "WorkflowStep", children=[
        cluster.job("init", 'echo started > "$S/init"'),
        TaskSpec("run", "RunPhase", mode=PARALLEL, children=jobs),
        cluster.job("collect", "true"),
    ])  # fmt: skip
    engine = cluster.engine(tree)
    assert run_to_end(engine) is Result.FAILED
    tasks = leaves(engine)
    assert tasks["init"].exitcode == 0 and (cluster.scratch / "init").exists()
    assert {n: t.exitcode for n, t in tasks.items() if n.startswith("run_")} == {
        f"run_{i}": (3 if i == 3 else 0) for i in range(6)
    }
    assert tasks["collect"].state == "NEW"  # the sequence stopped at the failed phase
    submitted = {
        t.data["cluster_task"].replace(".", "_").split("_")[0]
        for n, t in tasks.items()
        if n.startswith("run_")
    }
    assert len(submitted) == 1  # one sbatch / qsub for the whole phase
    assert sorted(json.loads(p.read_text())[0]["name"] for p in cluster.logs.glob("*.array.json"))
    ran = tasks["run_0"]
    assert ran.time >= 1.0 and ran.memory is not None and ran.cpu_time is not None


def test_killed_jobs_are_recorded_and_resume_runs_them_again(cluster):
    script = 'if [ -e "$S/again" ]; then true; else touch "$S/again"; sleep 120; fi'
    tree = TaskSpec("phase", "RunPhase", mode=SEQUENTIAL, children=[cluster.job("long", script)])
    engine = cluster.engine(tree)
    start = time.monotonic()
    while not (cluster.scratch / "again").exists():
        engine.progress()
        assert time.monotonic() - start < 60, "the job did not start"
        time.sleep(0.1)
    engine.kill()
    while engine.progress():
        assert time.monotonic() - start < DEADLINE
        time.sleep(0.1)
    task = leaves(engine)["long"]
    assert task.state == "TERMINATED" and task.exitcode < 0  # killed by a signal
    engine.prepare_resume()
    engine._killing = False  # a resumed engine is a new one: it may start jobs
    assert run_to_end(engine) is Result.OK
    assert leaves(engine)["long"].exitcode == 0


def test_a_task_that_vanishes_counts_as_killed(cluster, monkeypatch):
    monkeypatch.setattr(arrays, "LOST_AFTER", 1.0)
    monkeypatch.setattr(arrays, "QUEUE_INTERVALS", (0.5,))
    tree = TaskSpec("phase", "RunPhase", mode=SEQUENTIAL, children=[
        cluster.job("doomed", 'touch "$S/doomed"; sleep 120'),
    ])  # fmt: skip
    engine = cluster.engine(tree)
    start = time.monotonic()
    while not (cluster.scratch / "doomed").exists():
        engine.progress()
        assert time.monotonic() - start < 60
        time.sleep(0.1)
    # SIGKILL to the job and to the task's wrapper: as if the node died
    job_pid = json.loads((cluster.logs / "doomed.pid").read_text())["pid"]
    stat = Path(f"/proc/{job_pid}/stat").read_text()
    wrapper_pid = int(stat.rsplit(")", 1)[1].split()[1])
    for pid in (wrapper_pid, job_pid):
        os.kill(pid, signal.SIGKILL)
    assert run_to_end(engine, deadline=120) is Result.FAILED
    assert leaves(engine)["doomed"].exitcode == -9


def test_canonical_workflow_on_a_cluster(tmaps, tmp_path, monkeypatch, kind):
    source = tmp_path / "plate"
    simulate_plate(source, PlateSpec(microscope="cellvoyager", wells=1, sites=2, channels=2,
                                     height=128, width=128, seed=2, plate_format=96))  # fmt: skip
    registry.add_user("sal", "pw", "sal@example.org")
    eid = registry.add_experiment("wf", "sal", plate_format=96)
    registry.add_plate(eid, "P1")
    registry.add_acquisition(eid, "P1", "A1")
    registry.register_files(eid, "P1", "A1", source)
    monkeypatch.setenv("TMAPS_BACKEND", kind)
    result = ok(cli("tm_workflow", eid, "submit", "-i", "2", timeout=900))
    assert "all jobs succeeded" in result.stdout
    status = json.loads(ok(cli("tm_workflow", eid, "status", "--json")).stdout)
    stages = [s["name"] for s in status["subtasks"]]
    assert stages == ["image_conversion", "image_preprocessing", "pyramid_creation",
                      "image_analysis"]  # fmt: skip
    with tm.utils.MainSession() as session:
        handles = [t.data.get("cluster_task") for t in session.scalars(
            sa.select(tm.Task).where(tm.Task.is_collection.is_(False)))]  # fmt: skip
    assert handles and all(handles)  # every job ran as a SLURM task
    with tm.utils.ExperimentSession(eid) as session:
        assert session.scalar(sa.select(sa.func.count(tm.ChannelLayer.id))) == 2
        assert session.scalar(sa.select(sa.func.count(tm.Mapobject.id))) > 10
