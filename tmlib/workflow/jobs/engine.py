"""The engine: runs a persisted tree of jobs and job collections on a backend.

The tree is stored in the ``tasks`` table as it changes, so another process
can show its status and a killed engine can be resumed:

* a *job* (leaf) runs one command line;
* a *sequential* collection runs its children one after the other and stops
  at the first failure;
* a *parallel* collection runs all its children and fails if any failed;
* an *expandable* collection gets its children only when it is reached (a
  step's run jobs exist only after its init job wrote the batches); the
  engine asks its ``expander`` for them.

:meth:`Engine.progress` does one round of bookkeeping and never blocks.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError

from tmlib.models.main import ExperimentReference, Submission, Task
from tmlib.workflow.jobs.backends import Backend, Outcome
from tmlib.workflow.jobs.job import LIVE_STATES, JobSpec, State, read_exit_file

logger = logging.getLogger(__name__)

SEQUENTIAL = "sequential"
PARALLEL = "parallel"


@dataclass
class TaskSpec:
    """A node of a job tree, before it is persisted.

    Attributes
    ----------
    name : str
        Display name; unique among jobs of a submission.
    type : str
        What the node is (``Workflow``, ``WorkflowStage``, ``WorkflowStep``,
        ``InitJob``, ``RunPhase``, ...), shown in the status.
    job : JobSpec, optional
        Set for leaves.
    mode : str
        ``sequential`` or ``parallel`` (collections).
    children : list of TaskSpec
    expand : dict, optional
        Set for collections whose children are made when they are reached; it
        is handed to the engine's expander.
    """

    name: str
    type: str
    job: JobSpec | None = None
    mode: str = SEQUENTIAL
    children: list[TaskSpec] = field(default_factory=list)
    expand: dict | None = None


class _Gone(Exception):
    """The submission was deleted while its engine ran."""


class Result(enum.Enum):
    OK = "ok"
    FAILED = "failed"
    PENDING = "pending"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def persist(session: Session, submission: Submission, spec: TaskSpec) -> Task:
    """Store a job tree for a submission; returns its root task.

    The caller commits.
    """
    root = _to_task(spec, submission)
    session.add(root)
    session.flush()
    submission.top_task_id = root.id
    return root


def _to_task(spec: TaskSpec, submission: Submission) -> Task:
    data: dict = {}
    if spec.job is not None:
        data = spec.job.to_dict()
    else:
        data = {"mode": spec.mode}
        if spec.expand is not None:
            data["expand"] = spec.expand
    task = Task(
        name=spec.name,
        type=spec.type,
        state=State.NEW,
        is_collection=spec.job is None,
        submission=submission,
        data=data,
    )
    task.children = [_to_task(child, submission) for child in spec.children]
    return task


def job_spec(task: Task) -> JobSpec:
    """The :class:`JobSpec` of a leaf task."""
    return JobSpec.from_dict(task.name, task.data or {})


def _update_data(task: Task, **values: object) -> None:
    # JSON columns do not notice in-place changes: assign a new dict.
    task.data = {**(task.data or {}), **values}


#: failed attempts kept per job (``data["attempts"]``), the latest last
MAX_ATTEMPTS_KEPT = 10


def _keep_failed_attempt(task: Task) -> None:
    """Move how a failed job ended into ``data["attempts"]`` before it runs again."""
    data = dict(task.data or {})
    attempt = {
        "exitcode": task.exitcode,
        "ended_at": task.ended_at.isoformat() if task.ended_at else None,
        "node": data.pop("node", None),
        "reason": data.pop("reason", None),
    }
    data["attempts"] = [*data.get("attempts", []), attempt][-MAX_ATTEMPTS_KEPT:]
    task.data = data


class Engine:
    """Drives one job tree on a backend.

    Parameters
    ----------
    session : Session
        Main-database session the tasks belong to; the engine commits it after
        every round, which is what makes progress visible and resumable.
    backend : Backend
    root : Task
        Root of the tree (from :func:`persist` or loaded from the database).
    expander : callable, optional
        ``expander(task) -> list[TaskSpec]``: the children of an expandable
        collection once it is reached.

    Attributes
    ----------
    orphaned : bool
        Set when :meth:`run` stopped because the submission (or its
        experiment) was deleted under it.
    """

    #: how often :meth:`run` checks that its submission still exists (seconds)
    check_interval = 1.0

    def __init__(
        self,
        session: Session,
        backend: Backend,
        root: Task,
        expander: Callable[[Task], list[TaskSpec]] | None = None,
    ) -> None:
        self.session = session
        self.backend = backend
        self.root = root
        self.expander = expander
        self._jobs: dict[str, Task] = {}
        self._final: dict[int, Result] = {}
        self._killing = False
        self._kill_requested = False
        self._changed = False
        self._to_start: list[Task] = []
        self._reserved = 0
        self._cores: dict[int, int] = {}  # job id -> cores it takes
        self._cursor: dict[int, int] = {}  # collection id -> index of its first open child
        self._failed: set[int] = set()  # collections with a failed child
        self._submission_id = root.submission_id  # readable after its row is gone
        self.orphaned = False
        self._index(root)

    def _index(self, task: Task) -> None:
        if not task.is_collection:
            self._jobs[task.name] = task
        for child in task.children:
            self._index(child)

    # ------------------------------------------------------------------ resume

    def prepare_resume(self) -> None:
        """Make a stored tree runnable again after its engine stopped or died.

        Finished jobs keep their result; failed ones run again; jobs still
        running (started by the engine that died) are followed to their end;
        jobs that vanished without an exit code run again. Expandable
        collections after the first unfinished step of a sequence are emptied,
        since they depend on what that step will write.
        """
        self._final.clear()
        self._cursor.clear()
        self._failed.clear()
        self._reset(self.root)
        self.session.commit()

    def _reset(self, task: Task) -> bool:
        """Reset what must run again below `task`; True if `task` is done and OK."""
        if not task.is_collection:
            return self._reset_job(task)
        ok = True
        invalidate = False
        for child in task.children:
            if invalidate and (child.data or {}).get("expand") is not None:
                self._collapse(child)
                continue
            child_ok = self._reset(child)
            if not child_ok and task.data.get("mode") == SEQUENTIAL:
                invalidate = True
            ok = ok and child_ok
        if not ok:
            task.state, task.exitcode, task.ended_at = State.NEW, None, None
        return ok

    def _reset_job(self, task: Task) -> bool:
        job = job_spec(task)
        if task.state in LIVE_STATES:
            record = read_exit_file(job.exit_file)
            if record is not None:
                self._finish_job(task, Outcome.from_record(record))
            elif self.backend.adopt(job, task.data or {}):
                logger.info("following job %s started by an earlier engine", task.name)
                return False
        if task.state == State.TERMINATED and task.exitcode == 0:
            return True
        if task.state == State.TERMINATED:
            _keep_failed_attempt(task)
        task.state, task.exitcode = State.NEW, None
        task.time = task.cpu_time = task.memory = None
        task.started_at = task.ended_at = None
        return False

    def _collapse(self, task: Task) -> None:
        for child in list(task.children):
            self._forget(child)
        task.children.clear()
        task.state, task.exitcode, task.ended_at = State.NEW, None, None
        _update_data(task, expanded=False)

    def _forget(self, task: Task) -> None:
        self._jobs.pop(task.name, None)
        for child in task.children:
            self._forget(child)

    # ---------------------------------------------------------------- progress

    def progress(self) -> bool:
        """One round: collect ended jobs, start what may start, persist.

        Returns
        -------
        bool
            True while the tree has work left.
        """
        self._changed = False
        if self._kill_requested and not self._killing:
            self.kill()
        for name, outcome in self.backend.poll().items():
            task = self._jobs.get(name)
            if task is not None:
                self._finish_job(task, outcome)
                self._changed = True
        self._to_start = []
        self._reserved = 0
        result = self._visit(self.root)
        if self._to_start:
            self._start_jobs()
        self.session.commit()
        if self._killing:
            return bool(self.backend.running())
        return result is Result.PENDING

    def run(self, interval: float = 0.05, on_progress: Callable[[], None] | None = None) -> Result:
        """Call :meth:`progress` until the tree is done; returns the root's result.

        If the submission is deleted meanwhile (its experiment was), the jobs
        are stopped at once and PENDING is returned with :attr:`orphaned` set:
        nothing may go on running for data that no longer exist.
        """
        next_check = time.monotonic() + self.check_interval
        while True:
            try:
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.check_interval
                    if not self.submission_exists():
                        raise _Gone
                if not self.progress():
                    break
            except (_Gone, StaleDataError, ObjectDeletedError):
                self.session.rollback()
                if self.submission_exists():
                    raise
                self.abandon()
                return Result.PENDING
            if on_progress is not None:
                on_progress()
            if not self._changed:  # nothing happened: wait until something may have
                self.backend.wait(interval)
        if on_progress is not None:
            on_progress()
        return self.result()

    def submission_exists(self) -> bool:
        """Whether the submission and its experiment are still in the database."""
        found = self.session.scalar(
            sa.select(Submission.id)
            .join(ExperimentReference, ExperimentReference.id == Submission.experiment_id)
            .where(Submission.id == self._submission_id)
        )
        self.session.commit()  # end the read: hold no transaction between rounds
        return found is not None

    def abandon(self) -> None:
        """Stop all jobs now and write nothing more: the tree's rows are gone."""
        logger.warning("submission %d is gone: its jobs are stopped", self._submission_id)
        self.orphaned = True
        self._killing = True
        self.backend.abandon()

    def result(self) -> Result:
        """OK, FAILED, or PENDING (not finished yet) for the root."""
        if self.root.state != State.TERMINATED:
            return Result.PENDING
        return Result.OK if self.root.exitcode == 0 else Result.FAILED

    def request_kill(self) -> None:
        """Ask for :meth:`kill` at the start of the next round.

        Safe in a signal handler, which must not write to the pipes and files
        that the interrupted code may be writing to: the jobs get SIGTERM at
        once by system calls alone, the bookkeeping follows in that round.
        """
        self._kill_requested = True
        self.backend.terminate_now()

    def kill(self) -> None:
        """Stop all running jobs and start no new ones."""
        self._killing = True
        for name, task in self._jobs.items():
            if task.state in LIVE_STATES:
                self.backend.kill(name)

    def _finish_job(self, task: Task, outcome: Outcome) -> None:
        task.state = State.TERMINATED
        task.exitcode = outcome.exitcode
        task.time = outcome.time
        task.cpu_time = outcome.cpu_time
        task.memory = outcome.memory
        task.ended_at = _now()
        # where it ran and why it failed (when the backend knows more than the exit code)
        known = {key: value for key, value in (("node", outcome.node),
                                                ("reason", outcome.reason)) if value}  # fmt: skip
        if known:
            _update_data(task, **known)
        if outcome.exitcode != 0:
            logger.warning("job %s failed with exit code %d%s", task.name, outcome.exitcode,
                           f": {outcome.reason}" if outcome.reason else "")  # fmt: skip

    def _visit(self, task: Task) -> Result:
        done = self._final.get(task.id)
        if done is not None:
            return done
        result = self._visit_job(task) if not task.is_collection else self._visit_collection(task)
        if result is not Result.PENDING:
            self._final[task.id] = result
        return result

    def _visit_job(self, task: Task) -> Result:
        if task.state == State.TERMINATED:
            return Result.OK if task.exitcode == 0 else Result.FAILED
        if task.state == State.NEW and not self._killing:
            cores = self._cores.get(task.id)
            if cores is None:
                cores = min(job_spec(task).resources.cores, self.backend.cores)
                self._cores[task.id] = cores
            if self._capacity() >= cores:
                self._reserved += cores
                task.state = State.SUBMITTED
                self._to_start.append(task)
        return Result.PENDING

    def _capacity(self) -> int:
        """Cores free for jobs not yet chosen in this round."""
        return self.backend.free_cores() - self._reserved

    def _start_jobs(self) -> None:
        # SUBMITTED is committed before the jobs start: an engine that dies in
        # between leaves jobs that resume finds through their pid files, never
        # jobs that look unstarted but run.
        self.session.commit()
        handles = self.backend.submit_many([job_spec(task) for task in self._to_start])
        for task, handle in zip(self._to_start, handles, strict=True):
            task.state = State.RUNNING
            task.started_at = _now()
            _update_data(task, **handle, start=time.time())
        self._changed = True

    def _visit_collection(self, task: Task) -> Result:
        data = task.data or {}
        if data.get("expand") is not None and not data.get("expanded"):
            if self._killing:
                return Result.PENDING
            self._expand(task)
        children = task.children
        sequential = data.get("mode") == SEQUENTIAL
        # Children before the cursor have ended; each round looks at the first
        # unfinished one on, and (parallel) only as far as there are free cores.
        i = self._cursor.get(task.id, 0)
        while i < len(children):
            result = self._visit(children[i])
            if result is Result.PENDING:
                break
            if result is Result.FAILED:
                self._failed.add(task.id)
                if sequential:
                    break
            i += 1
        self._cursor[task.id] = i
        if task.state == State.NEW and any(c.state != State.NEW for c in children[: i + 1]):
            task.state = State.RUNNING
            task.started_at = _now()
        if i < len(children) and not (sequential and task.id in self._failed):
            if not sequential:
                for child in children[i + 1 :]:
                    if self._capacity() <= 0:
                        break
                    self._visit(child)
            return Result.PENDING
        outcome = Result.FAILED if task.id in self._failed else Result.OK
        task.state = State.TERMINATED
        task.exitcode = 0 if outcome is Result.OK else 1
        task.ended_at = _now()
        if task.started_at is not None:
            task.time = (task.ended_at - task.started_at).total_seconds()
        return outcome

    def _expand(self, task: Task) -> None:
        if self.expander is None:
            raise RuntimeError(f"task {task.name} needs an expander")
        specs = self.expander(task)
        children = [_to_task(spec, task.submission) for spec in specs]
        task.children.extend(children)
        for child in children:
            self._index(child)
        _update_data(task, expanded=True)
        self.session.flush()
