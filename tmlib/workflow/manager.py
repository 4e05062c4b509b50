"""Submitting, resuming, watching and killing an experiment's workflow.

This is what ``tm_workflow``, the step programs' ``submit`` and the server
call. A submission is a :class:`~tmlib.models.Submission` with a job tree in
the ``tasks`` table; the engine runs it in the calling process (in the
foreground), and everything it does is in the database as it happens.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

import tmlib.models as tm
from tmlib.config import load_settings
from tmlib.errors import InvalidInputError, NotFoundError
from tmlib.models.session import main_engine
from tmlib.workflow import args as arguments
from tmlib.workflow.description import FILENAME, WorkflowDescription
from tmlib.workflow.jobs.backends import Backend, LocalBackend
from tmlib.workflow.jobs.engine import PARALLEL, SEQUENTIAL, Engine, Result, TaskSpec, persist
from tmlib.workflow.jobs.job import LIVE_STATES, Resources, State
from tmlib.workflow.step import COMMAND_PREFIX, ENTRY_POINT, Step, get_step


def make_backend(name: str | None = None, cores: int | None = None) -> Backend:
    """The configured job backend (``TMAPS_BACKEND``, ``TMAPS_CORES``).

    Raises
    ------
    InvalidInputError
        For a backend that is not available in this installation.
    """
    settings = load_settings()
    name = name or settings.backend
    if name == "local":
        return LocalBackend(cores or settings.cores, preload=(COMMAND_PREFIX, ENTRY_POINT))
    if name == "slurm":
        from tmlib.workflow.jobs.slurm import SlurmBackend

        return SlurmBackend(settings)
    if name == "sge":
        from tmlib.workflow.jobs.sge import SgeBackend

        return SgeBackend(settings)
    raise InvalidInputError(f"unknown job backend {name!r}; use local, slurm or sge")


def experiment_reference(session: Session, experiment_id: int) -> tm.ExperimentReference:
    ref = session.get(tm.ExperimentReference, experiment_id)
    if ref is None:
        raise NotFoundError(f"experiment {experiment_id} does not exist")
    return ref


def description_path(experiment_id: int) -> Path:
    with tm.utils.MainSession() as session:
        return Path(experiment_reference(session, experiment_id).location) / "workflow" / FILENAME


def load_description(experiment_id: int) -> WorkflowDescription:
    """The experiment's stored description; the default one is stored first if none is."""
    path = description_path(experiment_id)
    if path.is_file():
        return WorkflowDescription.load(path)
    with tm.utils.ExperimentSession(experiment_id) as session:
        workflow_type = session.scalar(sa.select(tm.Experiment.workflow_type)) or "canonical"
    description = WorkflowDescription.default(workflow_type)
    description.save(path)
    return description


def run_resources(submission_args: dict[str, Any]) -> Resources:
    args = arguments.parse(arguments.SUBMISSION_ARGS, submission_args)
    return Resources(
        cores=args["cores"],
        memory=args["memory"],
        walltime=arguments.walltime_seconds(args["duration"]),
    )


def step_tree(
    step: Step,
    batch_args: dict[str, Any] | None,
    submission_args: dict[str, Any],
    verbosity: int = 0,
) -> TaskSpec:
    """The job tree of one step: init job (unless `batch_args` is None), run jobs, collect job."""
    phases = []
    if batch_args is not None:
        init = step.init_job(batch_args, verbosity)
        phases.append(TaskSpec(init.name, "InitJob", job=init))
    phases.append(
        TaskSpec(
            f"{step.name}_run",
            "RunPhase",
            mode=PARALLEL,
            expand={"step": step.name, "submission_args": submission_args, "verbosity": verbosity},
        )
    )
    if step.has_collect:
        collect = step.collect_job(verbosity)
        phases.append(TaskSpec(collect.name, "CollectJob", job=collect))
    return TaskSpec(step.name, "WorkflowStep", children=phases)


def workflow_tree(
    experiment_id: int, description: WorkflowDescription, verbosity: int = 0
) -> TaskSpec:
    """The job tree of a workflow: stages of steps."""
    stages = [
        TaskSpec(
            stage.name,
            "WorkflowStage",
            mode=PARALLEL if stage.mode == "parallel" else SEQUENTIAL,
            children=[
                step_tree(
                    get_step(s.name)(experiment_id), s.batch_args, s.submission_args, verbosity
                )
                for s in stage.steps
            ],
        )
        for stage in description.stages
    ]
    return TaskSpec("workflow", "Workflow", children=stages)


def make_expander(experiment_id: int) -> Callable[[tm.Task], list[TaskSpec]]:
    def expand(task: tm.Task) -> list[TaskSpec]:
        info = task.data["expand"]
        step = get_step(info["step"])(experiment_id)
        resources = run_resources(info.get("submission_args", {}))
        return [
            TaskSpec(job.name, "RunJob", job=job)
            for job in step.run_jobs(resources, info.get("verbosity", 0))
        ]

    return expand


@dataclass
class Run:
    """A submission being driven by an engine in this process."""

    session: Session
    submission: tm.Submission
    engine: Engine

    def __call__(self, on_progress: Callable[[Run], None] | None = None) -> Result:
        """Drive the engine to the end; SIGTERM kills the jobs and stops."""

        def stop(_signum: int, _frame: Any) -> None:
            self.engine.request_kill()  # no I/O here: the next round kills

        previous = signal.signal(signal.SIGTERM, stop)
        root = self.engine.root
        root.data = {**root.data, "engine": {"pid": os.getpid(), "host": os.uname().nodename}}
        try:
            return self.engine.run(on_progress=(lambda: on_progress(self)) if on_progress else None)
        except KeyboardInterrupt:
            self.engine.kill()
            while self.engine.progress():  # until the killed jobs are reported
                self.engine.backend.wait(0.05)
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.engine.backend.close()
            self.session.commit()
            self.session.close()


def _start(experiment_id: int, program: str, tree: TaskSpec, backend: Backend | None) -> Run:
    session = Session(main_engine(), expire_on_commit=False)
    ref = experiment_reference(session, experiment_id)
    _refuse_if_running(session, experiment_id, program)
    submission = tm.Submission(program=program, experiment_id=experiment_id, user_id=ref.user_id)
    session.add(submission)
    root = persist(session, submission, tree)
    session.commit()
    engine = Engine(session, backend or make_backend(), root, make_expander(experiment_id))
    return Run(session, submission, engine)


def submit_workflow(
    experiment_id: int,
    description: WorkflowDescription | None = None,
    start_stage: str | None = None,
    backend: Backend | None = None,
    verbosity: int = 0,
) -> Run:
    """Create a submission of the experiment's workflow (from `start_stage` on).

    Returns a :class:`Run`; call it to drive the jobs to the end.

    Raises
    ------
    InvalidInputError
        For an invalid description or an unknown stage.
    """
    description = (description or load_description(experiment_id)).active()
    if start_stage is not None:
        names = [s.name for s in description.stages]
        if start_stage not in names:
            raise InvalidInputError(
                f"no active stage {start_stage!r} in the workflow; stages: {', '.join(names)}"
            )
        description.stages = description.stages[names.index(start_stage) :]
    if not description.stages:
        raise InvalidInputError("the workflow description has no active stage")
    tree = workflow_tree(experiment_id, description, verbosity)
    return _start(experiment_id, "workflow", tree, backend)


def submit_step(
    experiment_id: int,
    step_name: str,
    submission_args: dict[str, Any],
    backend: Backend | None = None,
    verbosity: int = 0,
) -> Run:
    """Submit the run (and collect) jobs of a step whose init was run by hand."""
    step = get_step(step_name)(experiment_id)
    step.run_job_ids()  # fails early when init has not been run
    tree = step_tree(step, None, submission_args, verbosity)
    return _start(experiment_id, step_name, tree, backend)


def _refuse_if_running(session: Session, experiment_id: int, program: str) -> None:
    try:
        previous = last_submission(session, experiment_id, program)
    except NotFoundError:
        return
    root = session.get(tm.Task, previous.top_task_id)
    if root is not None and _engine_alive(root):
        session.close()
        raise InvalidInputError(
            f"submission {previous.id} of experiment {experiment_id} is still running "
            f"(process {root.data['engine']['pid']}); wait for it or kill it first"
        )


def last_submission(session: Session, experiment_id: int, program: str) -> tm.Submission:
    """The most recent submission of `program` for an experiment.

    Raises
    ------
    NotFoundError
    """
    experiment_reference(session, experiment_id)  # says so if it does not exist
    submission = session.scalar(
        sa.select(tm.Submission)
        .where(tm.Submission.experiment_id == experiment_id, tm.Submission.program == program)
        .order_by(tm.Submission.id.desc())
        .limit(1)
    )
    if submission is None or submission.top_task_id is None:
        raise NotFoundError(f"experiment {experiment_id} has no {program} submission yet")
    return submission


def resume(experiment_id: int, program: str = "workflow", backend: Backend | None = None) -> Run:
    """Continue the last submission: finished jobs are kept, the rest runs (again).

    Raises
    ------
    NotFoundError
        When there is nothing to resume.
    InvalidInputError
        When that submission's engine is still running.
    """
    session = Session(main_engine(), expire_on_commit=False)
    submission = last_submission(session, experiment_id, program)
    root = session.get(tm.Task, submission.top_task_id)
    assert root is not None
    if _engine_alive(root):
        session.close()
        raise InvalidInputError(
            f"the last {program} submission of experiment {experiment_id} is still running "
            f"(process {root.data['engine']['pid']}); kill it first"
        )
    engine = Engine(session, backend or make_backend(), root, make_expander(experiment_id))
    engine.prepare_resume()
    return Run(session, submission, engine)


def _engine_alive(root: tm.Task) -> bool:
    info = (root.data or {}).get("engine")
    if not info or info.get("host") != os.uname().nodename:
        return False
    if info["pid"] == os.getpid():
        return False
    try:
        cmdline = Path(f"/proc/{info['pid']}/cmdline").read_bytes()
    except OSError:
        return False
    return b"python" in cmdline and root.state != State.TERMINATED


def kill(experiment_id: int, program: str = "workflow") -> int:
    """Stop the last submission: its engine if alive, else its running jobs.

    Returns
    -------
    int
        Number of jobs (or engines) signalled.
    """
    with tm.utils.MainSession() as session:
        submission = last_submission(session, experiment_id, program)
        root = session.get(tm.Task, submission.top_task_id)
        assert root is not None
        if _engine_alive(root):
            os.kill(root.data["engine"]["pid"], signal.SIGTERM)
            return 1
        killed = 0
        jobs = session.scalars(
            sa.select(tm.Task).where(
                tm.Task.submission_id == submission.id,
                tm.Task.is_collection.is_(False),
                tm.Task.state.in_([s.value for s in LIVE_STATES]),
            )
        ).all()
        for job in jobs:
            pid = (job.data or {}).get("pid")
            if pid and (job.data or {}).get("host") == os.uname().nodename:
                try:
                    os.killpg(pid, signal.SIGTERM)
                    killed += 1
                except ProcessLookupError:
                    pass
            job.state, job.exitcode = State.TERMINATED, -signal.SIGTERM
        # the dead engine cannot close its collections: they failed
        session.execute(
            sa.update(tm.Task)
            .where(
                tm.Task.submission_id == submission.id,
                tm.Task.is_collection.is_(True),
                tm.Task.state != State.TERMINATED,
            )
            .values(state=State.TERMINATED, exitcode=1)
        )
        return killed


def status(experiment_id: int, program: str = "workflow", depth: int | None = None) -> dict:
    """The status tree of the last submission (see :func:`task_status`)."""
    with tm.utils.MainSession() as session:
        submission = last_submission(session, experiment_id, program)
        tasks = session.scalars(
            sa.select(tm.Task).where(tm.Task.submission_id == submission.id).order_by(tm.Task.id)
        ).all()
        children: dict[int | None, list[tm.Task]] = {}
        for task in tasks:
            children.setdefault(task.parent_id, []).append(task)
        root = next(t for t in tasks if t.id == submission.top_task_id)
        tree = task_status(root, children, depth)
        tree["submission_id"] = submission.id
        return tree


def task_status(
    task: tm.Task, children: dict[int | None, list[tm.Task]], depth: int | None = None
) -> dict:
    """One node of the status tree with its subtasks.

    Keys: id, name, type, state, done, failed, live, percent_done, exitcode,
    time, cpu_time, memory, created_at, updated_at, n_subtasks, subtasks.
    ``done``/``failed`` of a collection count its jobs.
    """
    kids = children.get(task.id, [])
    subtasks = [task_status(k, children, None if depth is None else depth - 1) for k in kids]
    if task.is_collection:
        done = sum(s["done"] for s in subtasks)
        failed = sum(s["failed"] for s in subtasks)
        total = sum(s["total"] for s in subtasks)
        expandable = "expand" in (task.data or {}) and not (task.data or {}).get("expanded")
    else:
        done = int(task.state == State.TERMINATED)
        failed = int(task.state == State.TERMINATED and task.exitcode not in (0, None))
        total, expandable = 1, False
    node = {
        "id": task.id,
        "name": task.name,
        "type": task.type,
        "state": task.state,
        "live": task.state in LIVE_STATES or (task.is_collection and task.state == State.RUNNING),
        "done": done,
        "failed": failed,
        "total": total,
        "pending_expansion": expandable,
        "percent_done": round(100.0 * done / total, 1) if total else 0.0,
        "exitcode": task.exitcode,
        "time": task.time,
        "cpu_time": task.cpu_time,
        "memory": task.memory,
        "created_at": task.created_at.isoformat() if task.created_at else None,
        "updated_at": task.updated_at.isoformat() if task.updated_at else None,
        "n_subtasks": len(kids),
    }
    node["subtasks"] = subtasks if depth is None or depth > 0 else []
    return node
