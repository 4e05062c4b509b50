"""Cluster backends: jobs as tasks of job arrays (SLURM, Grid Engine).

Jobs the engine starts together (the run jobs of a step) with the same
resources and log directory become one job array, so a phase of a thousand
jobs is one submission; init and collect jobs are arrays of one.

Each task runs :func:`tmlib.workflow.jobs.spawner.task`, which starts the job
and writes its exit file (exit status, time, CPU time, peak memory) as the
local backend does. That file, not the scheduler's accounting (``sacct``,
``qacct``), is what tells the engine how a job ended: accounting of a busy
cluster lags and loses jobs (the original lost about 1 % of exit codes that
way). The queue (``squeue``, ``qstat``) is asked, with back-off, only to
notice tasks that vanished without an exit file (killed with their node):
those are recorded as killed (exit status -9) and run again on resume.

A task that failed is explained where the scheduler knows more than its exit
status (:meth:`ArrayBackend._explain`): its node was lost, it hit its time
limit, it was cancelled. The reason is kept with the job; the scheduler is
never left to run a task again by itself, so that a resume re-runs exactly
the jobs that failed.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from tmlib.config import Settings
from tmlib.errors import ConfigError
from tmlib.workflow.jobs import spawner
from tmlib.workflow.jobs.backends import Backend, Outcome
from tmlib.workflow.jobs.job import JobSpec, read_exit_file, read_json_file

#: seconds between queue checks, growing from the first to the last while nothing changes
QUEUE_INTERVALS = (2.0, 5.0, 10.0, 30.0)
#: seconds a task may be missing from the queue before it counts as lost (queues lag)
LOST_AFTER = 30.0
#: the reason of a job stopped by :meth:`ArrayBackend.kill`
KILLED_ON_REQUEST = "killed on request"
#: the reason of a task that left the queue without an exit file, when the scheduler says no more
VANISHED = "the task left the queue without an exit status (its node may have failed)"


def format_walltime(seconds: int) -> str:
    """``H:MM:SS`` rounded up to whole minutes (at least one)."""
    minutes = max(1, -(-int(seconds) // 60))
    return f"{minutes // 60}:{minutes % 60:02d}:00"


def run_command(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run a scheduler command; a missing program is a failed command, not a crash."""
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False,
                              timeout=120)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        return subprocess.CompletedProcess(argv, 1, "", str(err))


class ArrayBackend(Backend):
    """What the cluster backends share: arrays, exit files, lost tasks.

    Subclasses submit an array (:meth:`_submit_array`), list the tasks still
    queued or running (:meth:`_queued`) and cancel one (:meth:`_cancel`).

    Parameters
    ----------
    settings : Settings
    max_cores : int
        The most cores one job may ask for.
    """

    #: programs the backend calls (checked at start)
    programs: tuple[str, ...] = ()
    #: the shell expression of a task's 0-based index in its array
    index_expression: str = ""

    def __init__(self, settings: Settings, max_cores: int = 64) -> None:
        self.cores = max_cores
        self.settings = settings
        #: name -> (job, task id, time submitted)
        self._tasks: dict[str, tuple[JobSpec, str, float]] = {}
        self._ended: dict[str, Outcome] = {}
        self._missing_since: dict[str, float] = {}
        self._killed: set[str] = set()  # names stopped by kill(): no need to ask why
        self._next_check = 0.0
        self._quiet_rounds = 0
        for program in self.programs:
            if not any((Path(d) / program).exists() for d in os.get_exec_path()):
                raise ConfigError(
                    f"TMAPS_BACKEND={settings.backend}, but {program} is not on the PATH "
                    "of this machine"
                )

    @abc.abstractmethod
    def _submit_array(self, jobs: list[JobSpec], script: str) -> list[str]:
        """Submit one array running `script` for `jobs`; returns their task ids."""

    @abc.abstractmethod
    def _queued(self) -> set[str] | None:
        """Ids of our tasks still queued or running; None when the queue does not answer."""

    @abc.abstractmethod
    def _cancel(self, task: str) -> None:
        """Cancel a task (SIGTERM first, so that it records its end)."""

    def _explain(self, tasks: dict[str, tuple[str, str | None]]) -> dict[str, str]:
        """Why tasks failed, where the scheduler knows (a lost node, a time limit).

        `tasks` maps job names to (task id, node or None); returns a reason for
        those the scheduler can explain, one query for all of them.
        """
        return {}

    # ------------------------------------------------------------- submitting

    def free_cores(self) -> int:
        return 1 << 30  # the cluster queues what it cannot run yet

    def submit(self, job: JobSpec) -> dict:
        return self.submit_many([job])[0]

    def submit_many(self, jobs: list[JobSpec]) -> list[dict]:
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, job in enumerate(jobs):
            groups[(job.resources, job.log_dir)].append(i)
        handles: list[dict] = [{}] * len(jobs)
        for indices in groups.values():
            group = [jobs[i] for i in indices]
            tasks = self._submit_array(group, self._script(group))
            for i, job, task in zip(indices, group, tasks, strict=True):
                self._tasks[job.name] = (job, task, time.time())
                handles[i] = {"cluster_task": task}
        return handles

    def _script(self, group: list[JobSpec]) -> str:
        """The array's script: run the task's job of a manifest written next to the logs."""
        first = group[0]
        first.log_dir.mkdir(parents=True, exist_ok=True)
        for job in group:
            job.exit_file.unlink(missing_ok=True)
            job.pid_file.unlink(missing_ok=True)
        manifest = first.log_dir / f"{first.name}.array.json"
        entries = [
            {"name": j.name, "argv": j.command, "out": str(j.stdout), "err": str(j.stderr),
             "exit": str(j.exit_file), "pidfile": str(j.pid_file)}
            for j in group
        ]  # fmt: skip
        tmp = manifest.with_name(f".{manifest.name}.tmp")
        tmp.write_text(json.dumps(entries))
        tmp.replace(manifest)
        return (
            "#!/bin/sh\n"
            f"exec {shlex.quote(sys.executable)} -S -E {shlex.quote(spawner.__file__)} "
            f"--task {shlex.quote(str(manifest))} {self.index_expression}\n"
        )

    # ---------------------------------------------------------------- polling

    def poll(self) -> dict[str, Outcome]:
        changed = False
        failed: dict[str, tuple[str, str | None]] = {}
        for name, (job, task, _submitted) in list(self._tasks.items()):
            record = read_exit_file(job.exit_file)
            if record is not None:
                outcome = Outcome.from_record(record)
                self._ended[name] = outcome
                if outcome.exitcode != 0:
                    failed[name] = (task, outcome.node)
                del self._tasks[name]
                self._missing_since.pop(name, None)
                changed = True
        self._add_reasons(failed)
        now = time.time()
        if self._tasks and now >= self._next_check:
            self._check_queue(now)
        self._quiet_rounds = 0 if changed else self._quiet_rounds + 1
        ended, self._ended = self._ended, {}
        return ended

    def _add_reasons(self, failed: dict[str, tuple[str, str | None]]) -> None:
        """Give the failed jobs in :attr:`_ended` the scheduler's reason, if it has one."""
        asked = {name: entry for name, entry in failed.items() if name not in self._killed}
        reasons = self._explain(asked) if asked else {}
        for name in failed:
            if name in self._killed:
                reasons[name] = KILLED_ON_REQUEST
            self._killed.discard(name)
            if reasons.get(name):
                self._ended[name].reason = reasons[name]

    def _check_queue(self, now: float) -> None:
        """Tasks neither queued nor running and without an exit file for a while: lost."""
        queued = self._queued()
        if queued is None:  # the scheduler is busy: try later
            self._next_check = now + QUEUE_INTERVALS[-1]
            return
        lost: dict[str, tuple[str, str | None]] = {}
        for name, (job, task, submitted) in list(self._tasks.items()):
            if task in queued:
                self._missing_since.pop(name, None)
                continue
            since = self._missing_since.setdefault(name, now)
            if now - since >= LOST_AFTER and read_exit_file(job.exit_file) is None:
                # where it started, if it did: its spawner wrote the node down
                node = (read_json_file(job.pid_file) or {}).get("node")
                self._ended[name] = Outcome(exitcode=-9, time=now - submitted, node=node,
                                            reason=VANISHED)  # fmt: skip
                lost[name] = (task, node)
                del self._tasks[name]
                del self._missing_since[name]
        self._add_reasons(lost)
        step = min(self._quiet_rounds // 20, len(QUEUE_INTERVALS) - 1)
        self._next_check = now + QUEUE_INTERVALS[step]

    def job_ids(self) -> list[str]:
        """The scheduler's ids of the arrays with tasks we follow."""
        return sorted({task.split(self.separator)[0] for _, task, _ in self._tasks.values()})

    separator: str = "_"

    def wait(self, timeout: float) -> None:
        # exit files are cheap to look at, but there is no hurry: back off when quiet
        time.sleep(max(timeout, min(0.05 * (1 + self._quiet_rounds // 10), 1.0)))

    # --------------------------------------------------------- other controls

    def adopt(self, job: JobSpec, handle: dict) -> bool:
        task = handle.get("cluster_task") or (read_json_file(job.pid_file) or {}).get(
            "cluster_task"
        )
        if not task:
            return False
        self._tasks[job.name] = (job, task, float(handle.get("start", time.time())))
        return True  # poll finds its exit file, or notices it is gone

    def kill(self, name: str) -> None:
        entry = self._tasks.get(name)
        if entry is not None:
            self._killed.add(name)
            with contextlib.suppress(OSError):
                self._cancel(entry[1])

    def running(self) -> list[str]:
        return list(self._tasks)
