"""Submitting, resuming, watching and killing an experiment's workflow.

This is what ``tm_workflow``, the step programs' ``submit`` and the server
call. A submission is a :class:`~tmlib.models.Submission` with a job tree in
the ``tasks`` table; the engine runs it in the calling process (in the
foreground), or, with :func:`start_detached`, in a background process of its
own that outlives the caller (what the server uses). Everything the engine
does is in the database as it happens, so any process can show the status.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

import tmlib.models as tm
from tmlib.config import load_settings
from tmlib.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from tmlib.models.session import main_engine
from tmlib.workflow import args as arguments
from tmlib.workflow.description import FILENAME, WorkflowDescription
from tmlib.workflow.jobs import backends, procs
from tmlib.workflow.jobs.backends import Backend, LocalBackend
from tmlib.workflow.jobs.engine import (
    PARALLEL,
    SEQUENTIAL,
    Engine,
    Result,
    TaskSpec,
    job_spec,
    persist,
)
from tmlib.workflow.jobs.job import LIVE_STATES, Resources, State, read_json_file
from tmlib.workflow.step import COMMAND_PREFIX, ENTRY_POINT, Step, get_step, prestart_jobs


class SubmissionRunningError(InvalidInputError, AlreadyExistsError):
    """A submission of that program is still running: wait for it or kill it first.

    Bad input on the command line (exit 2); a conflict (409) over HTTP.
    """


def prestart_backend() -> None:
    """Start the local backend's job spawner now, for the next :func:`make_backend` of
    this process (:func:`tmlib.workflow.step.prestart_jobs`; programs that submit call
    that before they import this module)."""
    prestart_jobs()


def make_backend(name: str | None = None, cores: int | None = None) -> Backend:
    """The configured job backend (``TMAPS_BACKEND``, ``TMAPS_CORES``).

    Raises
    ------
    InvalidInputError
        For a backend that is not available in this installation.
    """
    settings = load_settings()
    name = name or settings.backend
    waiting = backends.take_prestarted(cores or settings.cores, (COMMAND_PREFIX, ENTRY_POINT))
    if waiting is not None and name == "local":
        return waiting
    if waiting is not None:
        waiting.close()
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
    """Where the experiment's workflow description is stored (it may not exist yet).

    Raises
    ------
    NotFoundError
        When the experiment does not exist.
    """
    with tm.utils.MainSession() as session:
        return Path(experiment_reference(session, experiment_id).location) / "workflow" / FILENAME


def load_description(experiment_id: int) -> WorkflowDescription:
    """The experiment's stored description, or the default one of its workflow type.

    The default is not stored: reading never writes (a user with read access
    must not change the owner's experiment, and a read racing the deletion of
    the experiment must not bring its directory back). Only
    :func:`save_description` stores one.

    Raises
    ------
    NotFoundError
        When the experiment does not exist.
    """
    path = description_path(experiment_id)
    if path.is_file():
        return WorkflowDescription.load(path)
    with tm.utils.ExperimentSession(experiment_id) as session:
        workflow_type = session.scalar(sa.select(tm.Experiment.workflow_type)) or "canonical"
    return WorkflowDescription.default(workflow_type)


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
        _record_engine(self.engine.root, os.getpid())
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


@contextlib.contextmanager
def _submission_lock(experiment_id: int, location: str | os.PathLike):
    """Serialise "is one running? then start one" per experiment (across processes).

    Raises
    ------
    NotFoundError
        When the experiment's directory is gone (it is being deleted).
    """
    directory = Path(location) / "workflow"
    try:
        # never parents: that would bring back the directory of a deleted experiment
        directory.mkdir(exist_ok=True)
    except FileNotFoundError:
        raise NotFoundError(f"experiment {experiment_id} does not exist (any more)") from None
    with _file_lock(directory / "submit.lock"):
        yield


@contextlib.contextmanager
def _file_lock(path: Path):
    """Hold an exclusive lock on the file `path` (made if missing) across processes."""
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _record_engine(root: tm.Task, pid: int) -> None:
    """Record the engine process of a tree: pid, host and start time (its identity)."""
    # JSON columns do not notice in-place changes: assign a new dict
    root.data = {**(root.data or {}), "engine": procs.identity(pid)}


def _start(experiment_id: int, program: str, tree: TaskSpec, backend: Backend | None) -> Run:
    session = Session(main_engine(), expire_on_commit=False)
    try:
        ref = experiment_reference(session, experiment_id)
        with _submission_lock(experiment_id, ref.location):
            _refuse_if_running(session, experiment_id, program)
            submission = tm.Submission(
                program=program, experiment_id=experiment_id, user_id=ref.user_id
            )
            session.add(submission)
            root = persist(session, submission, tree)
            # this process drives it: a second submit refuses from now on
            _record_engine(root, os.getpid())
            session.commit()
    except BaseException:
        session.close()
        raise
    engine = Engine(session, backend or make_backend(), root, make_expander(experiment_id))
    return Run(session, submission, engine)


def engine_log_path(location: str | os.PathLike, program: str, submission_id: int) -> Path:
    """Where a detached engine writes its output: ``<experiment>/workflow/engine/``."""
    return Path(location) / "workflow" / "engine" / f"{program}_{submission_id}.log"


class QuotaExceededError(InvalidInputError):
    """Too many submissions run at once for a user or an experiment (429 over HTTP).

    Bad input on the command line (exit 2); wait for one to end, or ask the
    administrator to raise the limit the message names.
    """

    http_status = 429


@contextlib.contextmanager
def _user_lock(user_id: int):
    """Serialise "how many run? then start one" per user (across processes and experiments)."""
    directory = load_settings().home / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    with _file_lock(directory / f"submit-user-{int(user_id)}.lock"):
        yield


def running_submissions(session: Session, *conditions: Any) -> int:
    """How many submissions matching `conditions` run: their tree is open and its engine alive."""
    roots = session.scalars(
        sa.select(tm.Task)
        .join(tm.Submission, tm.Submission.top_task_id == tm.Task.id)
        .where(tm.Task.state != State.TERMINATED, *conditions)
    )
    return sum(1 for root in roots if _engine_alive(root))


def check_quota(session: Session, experiment_id: int, user_id: int) -> None:
    """Refuse another background submission when the user or the experiment is at its limit.

    Limits: ``TMAPS_MAX_SUBMISSIONS_PER_USER`` and
    ``TMAPS_MAX_SUBMISSIONS_PER_EXPERIMENT`` (0: none). Call it holding the
    experiment's and the user's submission locks, so that two requests cannot
    both take the last place.

    Raises
    ------
    QuotaExceededError
    """
    settings = load_settings()
    for limit, condition, whose, variable in (
        (
            settings.max_submissions_per_user,
            tm.Submission.user_id == user_id,
            "you have",
            "TMAPS_MAX_SUBMISSIONS_PER_USER",
        ),
        (
            settings.max_submissions_per_experiment,
            tm.Submission.experiment_id == experiment_id,
            f"experiment {experiment_id} has",
            "TMAPS_MAX_SUBMISSIONS_PER_EXPERIMENT",
        ),
    ):
        if limit and running_submissions(session, condition) >= limit:
            raise QuotaExceededError(
                f"{whose} {limit} submission(s) running, the most allowed at once "
                f"({variable}={limit}); wait until one ends or kill one"
            )


def start_detached(
    experiment_id: int,
    program: str,
    tree: TaskSpec,
    *,
    exclusive: bool = True,
    user_id: int | None = None,
) -> int:
    """Persist a submission of `tree` and run it in a background process.

    The submission and its job tree are stored (and committed) as for a
    foreground submission; then ``python -m tmlib.workflow.detached
    SUBMISSION_ID`` is started in a session (process group) of its own, with
    stdin from ``/dev/null`` and stdout/stderr appended to
    :func:`engine_log_path`, so that it drives the jobs to the end even if
    the caller (e.g. the server) exits or restarts. Its pid is stored in the
    root task (``data["engine"]``), so :func:`kill_submission` and the
    refusal of a second submission find it. Status, kill and logs work from
    any process through the database (:func:`submission_status`,
    :func:`kill_submission`, :func:`job_log`).

    Parameters
    ----------
    experiment_id : int
    program : str
        What the submission runs (``workflow``, ``jtui``, ``tool`` ...); the
        value of ``submissions.program``.
    tree : TaskSpec
        Jobs and collections to run, e.g. a single job
        ``TaskSpec(name, "ToolJob", job=JobSpec(name, command, resources, log_dir))``
        or a parallel collection of jobs. Expandable collections are expanded
        by the workflow steps' expander.
    exclusive : bool, optional
        Refuse while the last submission of `program` for the experiment is
        still running (default). Pass False for programs whose submissions may
        run side by side (each then is addressed by its submission id).
    user_id : int, optional
        Who submits (default: the experiment's owner).

    Returns
    -------
    int
        The submission id.

    Raises
    ------
    NotFoundError
        When the experiment does not exist.
    SubmissionRunningError
        When `exclusive` and a submission of `program` is still running.
    QuotaExceededError
        When the user or the experiment has as many submissions running as
        allowed (:func:`check_quota`).
    """
    with tm.utils.MainSession() as session:
        ref = experiment_reference(session, experiment_id)
        location = ref.location
        owner = ref.user_id
    submitter = user_id or owner
    # always the experiment's lock first, then the user's: no two starts wait on each other
    with _submission_lock(experiment_id, location), _user_lock(submitter):
        with tm.utils.MainSession() as session:
            if exclusive:
                _refuse_if_running(session, experiment_id, program)
            check_quota(session, experiment_id, submitter)
            submission = tm.Submission(
                program=program, experiment_id=experiment_id, user_id=submitter
            )
            session.add(submission)
            persist(session, submission, tree)
            session.flush()
            submission_id = submission.id
        # still under both locks: the engine's pid is recorded before the next count
        _spawn_engine(submission_id, engine_log_path(location, program, submission_id))
    return submission_id


def _spawn_engine(submission_id: int, log_path: Path) -> int:
    """Start the detached engine of a submission; returns its pid once it is recorded.

    Two pipes make the start deterministic: the engine writes to the first once
    its SIGTERM handler is in place (a kill right after the submission is never
    lost), and it waits until we close the second, which happens only after
    its pid is committed (a second submission cannot slip in between, and the
    engine never overwrites the record).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    up_read, up_write = os.pipe()
    ready_read, ready_write = os.pipe()
    try:
        with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tmlib.workflow.detached",
                    str(submission_id),
                    "--up-fd",
                    str(up_write),
                    "--ready-fd",
                    str(ready_read),
                ],  # fmt: skip
                stdin=devnull,
                stdout=log,
                stderr=subprocess.STDOUT,
                close_fds=True,
                pass_fds=(up_write, ready_read),
                start_new_session=True,  # signals to the server's group do not reach it
                cwd=log_path.parent,
            )
        os.close(up_write)
        up_write = -1
        if not _read_byte(up_read, timeout=60):
            process.kill()
            process.wait()
            raise RuntimeError(
                f"the engine of submission {submission_id} did not start; see {log_path}"
            )
        with tm.utils.MainSession() as session:
            submission = session.get(tm.Submission, submission_id)
            root = session.get(tm.Task, submission.top_task_id)
            _record_engine(root, process.pid)
    finally:
        for fd in (up_read, up_write, ready_read):
            if fd >= 0:
                os.close(fd)
        os.close(ready_write)  # the engine starts now
    _DETACHED.append(process)
    _reap()
    return process.pid


def _read_byte(fd: int, timeout: float) -> bool:
    """Whether a byte arrives on `fd` within `timeout` seconds (False on EOF)."""
    import select

    ready, _, _ = select.select([fd], [], [], timeout)
    return bool(ready) and os.read(fd, 1) == b"1"


#: detached engines started by this process (polled so that none stays a zombie)
_DETACHED: list[subprocess.Popen] = []


def _reap() -> None:
    _DETACHED[:] = [p for p in _DETACHED if p.poll() is None]


def _workflow_tree(
    experiment_id: int,
    description: WorkflowDescription | None,
    start_stage: str | int | None,
    verbosity: int,
) -> TaskSpec:
    description = (description or load_description(experiment_id)).active()
    names = [s.name for s in description.stages]
    if isinstance(start_stage, int):
        if not 0 <= start_stage < len(names):
            raise InvalidInputError(
                f"no stage at index {start_stage}: the workflow has {len(names)} active "
                f"stage(s): {', '.join(names)}"
            )
        start_stage = names[start_stage]
    if start_stage is not None:
        if start_stage not in names:
            raise InvalidInputError(
                f"no active stage {start_stage!r} in the workflow; stages: {', '.join(names)}"
            )
        description.stages = description.stages[names.index(start_stage) :]
    if not description.stages:
        raise InvalidInputError("the workflow description has no active stage")
    return workflow_tree(experiment_id, description, verbosity)


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
    SubmissionRunningError
        When a workflow submission of the experiment is still running.
    """
    if backend is None:
        prestart_backend()
    tree = _workflow_tree(experiment_id, description, start_stage, verbosity)
    return _start(experiment_id, "workflow", tree, backend)


def submit_workflow_detached(
    experiment_id: int,
    description: WorkflowDescription | None = None,
    start_stage: str | int | None = None,
    verbosity: int = 0,
) -> int:
    """Submit the experiment's workflow (from `start_stage` on) to a background engine.

    `start_stage` is a stage name or the index of a stage among the active ones.

    Like :func:`submit_workflow`, but the jobs are driven by a process of its
    own (:func:`start_detached`); returns at once with the submission id.

    Raises
    ------
    NotFoundError
        When the experiment does not exist.
    InvalidInputError
        For an invalid description or an unknown stage.
    SubmissionRunningError
        When a workflow submission of the experiment is still running.
    """
    tree = _workflow_tree(experiment_id, description, start_stage, verbosity)
    return start_detached(experiment_id, "workflow", tree)


def stage_names(experiment_id: int) -> list[str]:
    """Names of the active stages of the experiment's workflow, in order."""
    return [s.name for s in load_description(experiment_id).active().stages]


def save_description(experiment_id: int, data: Any) -> WorkflowDescription:
    """Validate a description (parsed YAML or JSON) and store it as the experiment's.

    Accepts what :func:`describe` returns (the extra keys are ignored).

    Raises
    ------
    InvalidInputError
        When it is invalid; nothing is written then.
    """
    description = WorkflowDescription.from_dict(data)
    description.save(description_path(experiment_id))
    return description


def describe(description: WorkflowDescription) -> dict[str, Any]:
    """A description for an editor: each step with ``fullname`` and ``help``, each argument
    with ``name, value, default, required, disabled, help, choices, type, minimum, maximum``
    (reference §3.3; ``type`` and the range let an editor pick the widget and check values
    before it saves them, see :meth:`tmlib.workflow.args.Argument.describe`)."""

    def argument(arg: arguments.Argument, value: Any, disabled: bool = False) -> dict[str, Any]:
        return {**arg.describe(), "value": value, "disabled": disabled}

    data = description.to_dict()
    for stage in data["stages"]:
        for step in stage["steps"]:
            cls = get_step(step["name"])
            batch = dict((a["name"], a["value"]) for a in step["batch_args"])
            submission = dict((a["name"], a["value"]) for a in step["submission_args"])
            step["fullname"] = cls.fullname
            step["help"] = cls.description
            # plotting needs one site per job: the UI's debug runs do it, not the workflow
            step["batch_args"] = [
                argument(a, batch.get(a.name, a.default), disabled=a.name == "plot")
                for a in cls.batch_args
            ]
            step["submission_args"] = [
                argument(a, submission.get(a.name, a.default)) for a in arguments.SUBMISSION_ARGS
            ]
    return data


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
    if backend is None:
        prestart_backend()
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
        raise SubmissionRunningError(
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
    SubmissionRunningError
        When that submission's engine is still running.
    """
    if backend is None:
        prestart_backend()
    with tm.utils.MainSession() as session:
        submission_id = last_submission(session, experiment_id, program).id
    return resume_submission(submission_id, backend)


def _submission_root(session: Session, submission_id: int) -> tuple[tm.Submission, tm.Task]:
    """A submission and the top task of its tree.

    Raises
    ------
    NotFoundError
        When the submission does not exist (or has no tree yet).
    """
    submission = session.get(tm.Submission, submission_id)
    if submission is None or submission.top_task_id is None:
        raise NotFoundError(f"submission {submission_id} does not exist")
    root = session.get(tm.Task, submission.top_task_id)
    assert root is not None
    return submission, root


def resume_submission(submission_id: int, backend: Backend | None = None) -> Run:
    """Continue a submission (what a detached engine runs); see :func:`resume`.

    Raises
    ------
    NotFoundError
        When the submission does not exist.
    SubmissionRunningError
        When another engine is driving it.
    """
    session = Session(main_engine(), expire_on_commit=False)
    try:
        submission, root = _submission_root(session, submission_id)
    except NotFoundError:
        session.close()
        raise
    if _engine_alive(root):
        session.close()
        raise SubmissionRunningError(
            f"the last {submission.program} submission of experiment "
            f"{submission.experiment_id} is still running "
            f"(process {root.data['engine']['pid']}); kill it first"
        )
    experiment_id = submission.experiment_id
    engine = Engine(session, backend or make_backend(), root, make_expander(experiment_id))
    engine.prepare_resume()
    return Run(session, submission, engine)


def _engine_process_alive(root: tm.Task) -> bool:
    """Whether the process recorded as the tree's engine still runs (on this host).

    A process that has the recorded pid but another start time is not it: the
    engine ended and its pid was given to another process.
    """
    info = (root.data or {}).get("engine")
    if not info or info.get("host") != procs.HOST:
        return False
    if info["pid"] == os.getpid():
        return False
    if info.get("pid_start") is not None:
        return procs.record_alive(info)
    try:  # recorded before start times were: the best guess is its command line
        cmdline = Path(f"/proc/{info['pid']}/cmdline").read_bytes()
    except OSError:
        return False
    return b"python" in cmdline  # a zombie's is empty; a reused pid is rarely python


def _engine_alive(root: tm.Task) -> bool:
    return _engine_process_alive(root) and root.state != State.TERMINATED


def kill(experiment_id: int, program: str = "workflow") -> int:
    """Stop the last submission of `program`: its engine if alive, else its running jobs.

    Returns
    -------
    int
        Number of jobs (or engines) signalled.

    Raises
    ------
    NotFoundError
        When the experiment has no such submission.
    """
    with tm.utils.MainSession() as session:
        submission_id = last_submission(session, experiment_id, program).id
    return kill_submission(submission_id)


def kill_submission(submission_id: int) -> int:
    """Stop a submission: SIGTERM its engine if alive (which kills the jobs and
    records it), else SIGTERM its running jobs and mark the tree failed.

    Returns
    -------
    int
        Number of jobs (or engines) signalled.

    Raises
    ------
    NotFoundError
        When the submission does not exist.
    """
    with tm.utils.MainSession() as session:
        submission, root = _submission_root(session, submission_id)
        if _engine_alive(root) and procs.send_record(root.data["engine"], signal.SIGTERM):
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
            # only if the pid still names the job (same start time): after a
            # crash or reboot it may belong to any other process by now
            if procs.send_record(job.data or {}, signal.SIGTERM, group=True):
                killed += 1
            job.state, job.exitcode = State.TERMINATED, -signal.SIGTERM
        # the dead engine cannot close its collections: they failed
        _close_collections(session, submission.id)
        return killed


def _close_collections(session: Session, submission_id: int) -> None:
    session.execute(
        sa.update(tm.Task)
        .where(
            tm.Task.submission_id == submission_id,
            tm.Task.is_collection.is_(True),
            tm.Task.state != State.TERMINATED,
        )
        .values(state=State.TERMINATED, exitcode=1)
    )


def close_unfinished(submission_id: int) -> None:
    """After a kill: mark the unfinished collections of a submission failed (TERMINATED,
    exit code 1), so that its status says it ended. Jobs that never started stay NEW.
    """
    with tm.utils.MainSession() as session:
        _close_collections(session, submission_id)


def wait_for_engine(submission_id: int, timeout: float) -> bool:
    """Wait until a submission's engine has ended (True) or `timeout` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    while True:
        _reap()
        with tm.utils.MainSession() as session:
            _, root = _submission_root(session, submission_id)
            if not _engine_process_alive(root):
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


#: how long :func:`stop_experiment` waits after SIGTERM before it SIGKILLs (seconds)
STOP_TIMEOUT = 30.0
#: how long it then waits for SIGKILLed processes to vanish (seconds)
_KILL_WAIT = 10.0


def stop_experiment(experiment_id: int, timeout: float | None = None) -> int:
    """Stop every process of every submission of an experiment, and return only once
    all have ended: what must happen before its data are removed.

    Each live engine gets SIGTERM (it then stops its jobs and records that),
    and so does each running job's process group. Whatever still runs after
    `timeout` seconds (engines, their spawners, jobs and their children) is
    SIGKILLed, process group by process group. Only processes whose start time
    matches their record are signalled (a pid may name another process after a
    crash). Trees left open are marked ended (failed).

    Parameters
    ----------
    experiment_id : int
    timeout : float, optional
        Seconds to wait for the processes to end after SIGTERM (default
        :data:`STOP_TIMEOUT`).

    Returns
    -------
    int
        How many processes were running.

    Raises
    ------
    RuntimeError
        When processes are still there after SIGKILL (they cannot be ended:
        the experiment must not be removed).
    """
    return stop_submissions(
        _submission_ids(experiment_id), timeout, what=f"experiment {experiment_id}"
    )


def stop_submissions(
    submission_ids: list[int], timeout: float | None = None, what: str = "the submissions"
) -> int:
    """Stop every process of the submissions `submission_ids` and return once all ended.

    What :func:`stop_experiment` does for all of an experiment's submissions,
    for some of them: SIGTERM to live engines and running jobs, SIGKILL to
    what still runs after `timeout` seconds, trees left open marked failed.

    Parameters
    ----------
    submission_ids : list of int
    timeout : float, optional
        Seconds to wait after SIGTERM (default :data:`STOP_TIMEOUT`).
    what : str
        What the submissions are, for the error message.

    Returns
    -------
    int
        How many processes were running.

    Raises
    ------
    NotFoundError
        When a submission does not exist.
    RuntimeError
        When processes are still there after SIGKILL.
    """
    timeout = STOP_TIMEOUT if timeout is None else timeout
    submissions = list(submission_ids)
    engines, jobs, spawners = _submission_processes(submissions)
    found = {**procs.tree(engines), **procs.tree(spawners), **jobs}
    if found:
        # not the spawners: they report their jobs' ends, then exit with their engine
        procs.kill_all({**engines, **jobs}, signal.SIGTERM)
        left = _wait_for_processes(found, engines, timeout)
        if left:
            procs.kill_all(left, signal.SIGKILL)
            left = _wait_for_processes(left, {}, _KILL_WAIT)
        if left:
            raise RuntimeError(f"processes {sorted(left)} of {what} survived SIGKILL")
    for submission_id in submissions:
        _mark_stopped(submission_id)
    return len(found)


def _submission_ids(experiment_id: int) -> list[int]:
    with tm.utils.MainSession() as session:
        return list(
            session.scalars(
                sa.select(tm.Submission.id).where(tm.Submission.experiment_id == experiment_id)
            )
        )


def _submission_processes(
    submission_ids: list[int],
) -> tuple[dict[int, int | None], dict[int, int | None], dict[int, int | None]]:
    """The live engines, jobs and spawners (pid -> start time) of submissions, as
    recorded in the database and in the jobs' pid files (an engine may have died
    before it recorded a job)."""
    engines: dict[int, int | None] = {}
    jobs: dict[int, int | None] = {}
    spawners: dict[int, int | None] = {}
    with tm.utils.MainSession() as session:
        for submission_id in submission_ids:
            _, root = _submission_root(session, submission_id)
            if _engine_process_alive(root):
                info = root.data["engine"]
                engines[int(info["pid"])] = info.get("pid_start")
            for task in session.scalars(
                sa.select(tm.Task).where(
                    tm.Task.submission_id == submission_id,
                    tm.Task.is_collection.is_(False),
                    tm.Task.state.in_([s.value for s in LIVE_STATES]),
                )
            ):
                record = {**(task.data or {}), **(read_json_file(job_spec(task).pid_file) or {})}
                if procs.record_alive(record):
                    jobs[int(record["pid"])] = record.get("pid_start")
                if procs.record_alive(record, "spawner", "spawner_start"):
                    spawners[int(record["spawner"])] = record.get("spawner_start")
    return engines, jobs, spawners


def _wait_for_processes(
    processes: dict[int, int | None], roots: dict[int, int | None], timeout: float
) -> dict[int, int | None]:
    """Wait until `processes` ended, at most `timeout` seconds; returns those left.

    Children that live `roots` start meanwhile (an engine's new spawner or job)
    join the processes waited for.
    """
    processes = dict(processes)
    deadline = time.monotonic() + timeout
    while True:
        _reap()  # engines this process started must not stay zombies
        alive = procs.still_running(roots)
        if alive:
            processes.update(procs.tree(alive))
        left = procs.still_running(processes)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _mark_stopped(submission_id: int) -> None:
    """A tree whose processes were stopped: its unfinished jobs and collections failed."""
    with tm.utils.MainSession() as session:
        session.execute(
            sa.update(tm.Task)
            .where(
                tm.Task.submission_id == submission_id,
                tm.Task.is_collection.is_(False),
                tm.Task.state.in_([s.value for s in LIVE_STATES]),
            )
            .values(state=State.TERMINATED, exitcode=-signal.SIGKILL)
        )
        _close_collections(session, submission_id)


def status(experiment_id: int, program: str = "workflow", depth: int | None = None) -> dict:
    """The status tree of the last submission of `program` (see :func:`task_status`).

    Raises
    ------
    NotFoundError
        When the experiment has no such submission.
    """
    with tm.utils.MainSession() as session:
        submission_id = last_submission(session, experiment_id, program).id
    return submission_status(submission_id, depth)


def status_or_none(
    experiment_id: int, program: str = "workflow", depth: int | None = None
) -> dict | None:
    """Like :func:`status`, but None when nothing was submitted yet.

    Raises
    ------
    NotFoundError
        When the experiment does not exist.
    """
    with tm.utils.MainSession() as session:
        experiment_reference(session, experiment_id)
        try:
            submission_id = last_submission(session, experiment_id, program).id
        except NotFoundError:
            return None
    return submission_status(submission_id, depth)


def submission_status(submission_id: int, depth: int | None = None) -> dict:
    """The status tree of a submission, `depth` levels deep (None: all).

    The root also has ``submission_id``.

    Raises
    ------
    NotFoundError
        When the submission does not exist.
    """
    with tm.utils.MainSession() as session:
        submission, root = _submission_root(session, submission_id)
        # collections count their jobs' results: all tasks are read, whatever the depth
        tasks = session.scalars(
            sa.select(tm.Task).where(tm.Task.submission_id == submission.id).order_by(tm.Task.id)
        ).all()
        children: dict[int | None, list[tm.Task]] = {}
        for task in tasks:
            children.setdefault(task.parent_id, []).append(task)
        tree = task_status(root, children, depth)
        tree["submission_id"] = submission.id
        return tree


def task_status(
    task: tm.Task, children: dict[int | None, list[tm.Task]], depth: int | None = None
) -> dict:
    """One node of the status tree with its subtasks.

    Keys: id, name, type, state, done, failed, live, percent_done, exitcode,
    time, cpu_time, memory, node, reason, created_at, updated_at, n_subtasks,
    subtasks. ``done``/``failed`` of a collection count its jobs; ``node``
    (where a job ran, on a cluster) and ``reason`` (why it failed, when the
    scheduler knows: e.g. its node was lost) are None for collections.
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
        "node": None if task.is_collection else (task.data or {}).get("node"),
        "reason": None if task.is_collection else (task.data or {}).get("reason"),
        "created_at": task.created_at.isoformat() if task.created_at else None,
        "updated_at": task.updated_at.isoformat() if task.updated_at else None,
        "n_subtasks": len(kids),
    }
    node["subtasks"] = subtasks if depth is None or depth > 0 else []
    return node


# ----------------------------------------------------------------------- jobs


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


#: what the ``state`` filter of :func:`list_jobs` takes: a job's state, or how an ended
#: one ended (the same rule as ``failed`` in :func:`task_status`)
JOB_STATE_FILTERS = (*(s.value for s in State), "FAILED", "SUCCEEDED")


def _job_state_clause(state: str) -> sa.ColumnElement[bool]:
    """The where-clause of a :data:`JOB_STATE_FILTERS` value.

    Raises
    ------
    InvalidInputError
        For any other value.
    """
    if state not in JOB_STATE_FILTERS:
        raise InvalidInputError(
            f"state must be one of {', '.join(JOB_STATE_FILTERS)}, got {state!r}"
        )
    ended = tm.Task.state == State.TERMINATED.value
    if state == "FAILED":
        return sa.and_(ended, tm.Task.exitcode.is_not(None), tm.Task.exitcode != 0)
    if state == "SUCCEEDED":
        return sa.and_(ended, sa.or_(tm.Task.exitcode.is_(None), tm.Task.exitcode == 0))
    return tm.Task.state == state


def _jobs_query(
    submission_id: int,
    step_name: str,
    phase: str | None,
    name: str | None,
    state: str | None,
) -> sa.Select:
    """The jobs of a step in a submission that pass the filters (unordered)."""
    prefix = _like_escape(f"{step_name}_{phase or ''}")
    query = sa.select(tm.Task).where(
        tm.Task.submission_id == submission_id,
        tm.Task.is_collection.is_(False),
        tm.Task.name.like(f"{prefix}%", escape="\\"),
    )
    if name is not None:
        query = query.where(tm.Task.name == name)
    if state is not None:
        query = query.where(_job_state_clause(state))
    return query


def _check_job_filters(phase: str | None, state: str | None) -> None:
    if phase is not None and phase not in ("init", "run", "collect"):
        raise InvalidInputError(f"phase must be init, run or collect, got {phase!r}")
    if state is not None:
        _job_state_clause(state)  # says what is allowed


def list_jobs(
    experiment_id: int,
    step_name: str,
    phase: str | None = None,
    name: str | None = None,
    index: int = 0,
    batch_size: int | None = None,
    program: str = "workflow",
    state: str | None = None,
) -> list[dict]:
    """The jobs of a step in the last submission, in the order they were created.

    Parameters
    ----------
    experiment_id : int
    step_name : str
        e.g. ``imextract``.
    phase : str, optional
        ``init``, ``run`` or ``collect`` (illuminati's ``run-NN`` phases count as ``run``).
    name : str, optional
        Only the job of that name.
    index : int, optional
        First job to return (among those that pass the filters); a negative index
        counts from the end (``-10``: the last ten).
    batch_size : int, optional
        At most this many jobs (default: all).
    program : str, optional
        Which submissions (default ``workflow``).
    state : str, optional
        Only jobs in this state: ``NEW``, ``SUBMITTED``, ``RUNNING`` or ``TERMINATED``;
        or ``FAILED`` (terminated with an exit code other than 0) or ``SUCCEEDED``
        (terminated otherwise). Filtered in the database, so that a page of the failed
        jobs among 100,000 costs one indexed query.

    Returns
    -------
    list of dict
        Status nodes (:func:`task_status`, without subtasks); empty before any
        submission or when the step has no such jobs.

    Raises
    ------
    NotFoundError
        When the experiment does not exist.
    InvalidInputError
        For an unknown phase or state, or a negative batch size.
    """
    _check_job_filters(phase, state)
    if batch_size is not None and batch_size < 0:
        raise InvalidInputError("batch_size must not be negative")
    with tm.utils.MainSession() as session:
        experiment_reference(session, experiment_id)
        try:
            submission = last_submission(session, experiment_id, program)
        except NotFoundError:
            return []
        query = _jobs_query(submission.id, step_name, phase, name, state)
        if index < 0:
            total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery()))
            index = max(total + index, 0)
        query = query.order_by(tm.Task.id).offset(index)
        if batch_size is not None:
            query = query.limit(batch_size)
        return [task_status(task, {}, 0) for task in session.scalars(query)]


def count_jobs(
    experiment_id: int,
    step_name: str,
    phase: str | None = None,
    name: str | None = None,
    program: str = "workflow",
    state: str | None = None,
) -> int:
    """How many jobs :func:`list_jobs` has for these filters (without paging).

    Raises
    ------
    NotFoundError
        When the experiment does not exist.
    InvalidInputError
        For an unknown phase or state.
    """
    _check_job_filters(phase, state)
    with tm.utils.MainSession() as session:
        experiment_reference(session, experiment_id)
        try:
            submission = last_submission(session, experiment_id, program)
        except NotFoundError:
            return 0
        query = _jobs_query(submission.id, step_name, phase, name, state)
        return session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0


#: most bytes of a log returned at once (the end of the file: errors are there)
LOG_LIMIT = 1 << 20


def _tail(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(size - limit, 0))
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    if size > limit:
        text = f"[... first {size - limit} bytes left out ...]\n" + text
    return text


def job_log(experiment_id: int, task_id: int, limit: int = LOG_LIMIT) -> dict[str, str]:
    """The output of a job of the experiment: ``{stdout, stderr}`` (the last `limit` bytes each).

    Raises
    ------
    NotFoundError
        When the task does not exist, belongs to another experiment or is a collection.
    """
    with tm.utils.MainSession() as session:
        task = session.get(tm.Task, task_id)
        if task is None or task.is_collection or task.submission.experiment_id != experiment_id:
            raise NotFoundError(f"experiment {experiment_id} has no job {task_id}")
        job = job_spec(task)
    return {"stdout": _tail(job.stdout, limit), "stderr": _tail(job.stderr, limit)}


def submission_of_task(experiment_id: int, task_id: int, program: str | None = None) -> int | None:
    """The submission a task belongs to, if it is one of the experiment's (and of `program`)."""
    with tm.utils.MainSession() as session:
        task = session.get(tm.Task, task_id)
        if task is None or task.submission.experiment_id != experiment_id:
            return None
        if program is not None and task.submission.program != program:
            return None
        return task.submission_id


def refuse_if_running(experiment_id: int, program: str = "workflow") -> None:
    """Raise if the last submission of `program` still runs (check before changing its inputs).

    Raises
    ------
    NotFoundError
        When the experiment does not exist.
    SubmissionRunningError
    """
    with tm.utils.MainSession() as session:
        experiment_reference(session, experiment_id)
        _refuse_if_running(session, experiment_id, program)
