"""The SLURM backend: jobs as tasks of ``sbatch --array`` job arrays.

Jobs the engine starts together (the run jobs of a step) with the same
resources and log directory become one job array, so a phase of a thousand
jobs is one ``sbatch`` call; init and collect jobs are arrays of one.

Each task runs :func:`tmlib.workflow.jobs.spawner.task`, which starts the job
and writes its exit file (exit status, time, CPU time, peak memory) as the
local backend does. That file, not ``sacct`` or ``squeue``, is what tells the
engine how a job ended: the accounting of a busy cluster lags and loses jobs
(the original lost about 1 % of exit codes that way). ``squeue`` is asked,
with back-off, only to notice tasks that vanished without an exit file
(killed with the node): those are recorded as killed (exit status -9) and run
again on resume.
"""

from __future__ import annotations

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

#: seconds between squeue checks, growing from the first to the last while nothing changes
SQUEUE_INTERVALS = (2.0, 5.0, 10.0, 30.0)
#: seconds a task may be missing from squeue before it counts as lost (squeue lags)
LOST_AFTER = 30.0


def _format_walltime(seconds: int) -> str:
    minutes = max(1, -(-int(seconds) // 60))
    return f"{minutes // 60}:{minutes % 60:02d}:00"


class SlurmBackend(Backend):
    """Runs jobs on a SLURM cluster.

    Parameters
    ----------
    settings : Settings
        Partition, account, QoS, extra options and array throttle.
    max_cores : int
        The most cores one job may ask for.
    """

    def __init__(self, settings: Settings, max_cores: int = 64) -> None:
        self.cores = max_cores
        self.settings = settings
        #: name -> (job, slurm task id "JOBID_INDEX", time submitted)
        self._tasks: dict[str, tuple[JobSpec, str, float]] = {}
        self._ended: dict[str, Outcome] = {}
        self._missing_since: dict[str, float] = {}
        self._next_squeue = 0.0
        self._quiet_rounds = 0
        for program in ("sbatch", "squeue", "scancel"):
            if not any((Path(d) / program).exists() for d in os.get_exec_path()):
                raise ConfigError(
                    f"TMAPS_BACKEND=slurm, but {program} is not on the PATH of this machine"
                )

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
            job_id = self._sbatch(group)
            for index, (i, job) in enumerate(zip(indices, group, strict=True)):
                task = f"{job_id}_{index}"
                self._tasks[job.name] = (job, task, time.time())
                handles[i] = {"slurm_task": task}
        return handles

    def _sbatch(self, group: list[JobSpec]) -> str:
        first = group[0]
        log_dir = first.log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        for job in group:
            job.exit_file.unlink(missing_ok=True)
            job.pid_file.unlink(missing_ok=True)
        manifest = log_dir / f"{first.name}.array.json"
        entries = [
            {"name": j.name, "argv": j.command, "out": str(j.stdout), "err": str(j.stderr),
             "exit": str(j.exit_file), "pidfile": str(j.pid_file)}
            for j in group
        ]  # fmt: skip
        tmp = manifest.with_name(f".{manifest.name}.tmp")
        tmp.write_text(json.dumps(entries))
        tmp.replace(manifest)
        resources = first.resources
        throttle = f"%{self.settings.slurm_max_running}" if self.settings.slurm_max_running else ""
        options = [
            f"--job-name={first.name.rsplit('_', 1)[0]}",
            f"--array=0-{len(group) - 1}{throttle}",
            f"--cpus-per-task={resources.cores}",
            f"--mem={resources.memory}M",
            f"--time={_format_walltime(resources.walltime)}",
            f"--output={log_dir / 'slurm-%A_%a.log'}",
            "--export=ALL",
            "--parsable",
        ]
        for flag, value in (("--partition", self.settings.slurm_partition),
                            ("--account", self.settings.slurm_account),
                            ("--qos", self.settings.slurm_qos)):  # fmt: skip
            if value:
                options.append(f"{flag}={value}")
        options += shlex.split(self.settings.slurm_options or "")
        script = (
            "#!/bin/sh\n"
            f"exec {shlex.quote(sys.executable)} -S -E {shlex.quote(spawner.__file__)} "
            f'--task {shlex.quote(str(manifest))} "$SLURM_ARRAY_TASK_ID"\n'
        )
        result = subprocess.run(
            ["sbatch", *options], input=script, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"sbatch failed: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout.strip().split(";")[0]

    # ---------------------------------------------------------------- polling

    def poll(self) -> dict[str, Outcome]:
        changed = False
        for name, (job, _task, _submitted) in list(self._tasks.items()):
            record = read_exit_file(job.exit_file)
            if record is not None:
                self._ended[name] = Outcome.from_record(record)
                del self._tasks[name]
                self._missing_since.pop(name, None)
                changed = True
        now = time.time()
        if self._tasks and now >= self._next_squeue:
            self._check_queue(now)
        self._quiet_rounds = 0 if changed else self._quiet_rounds + 1
        ended, self._ended = self._ended, {}
        return ended

    def _check_queue(self, now: float) -> None:
        """Tasks neither queued nor running and without an exit file for a while: lost."""
        queued = self._squeue()
        if queued is None:  # squeue failed (controller busy): try later
            self._next_squeue = now + SQUEUE_INTERVALS[-1]
            return
        for name, (job, task, submitted) in list(self._tasks.items()):
            if task in queued:
                self._missing_since.pop(name, None)
                continue
            since = self._missing_since.setdefault(name, now)
            if now - since >= LOST_AFTER and read_exit_file(job.exit_file) is None:
                self._ended[name] = Outcome(exitcode=-9, time=now - submitted)
                del self._tasks[name]
                del self._missing_since[name]
        step = min(self._quiet_rounds // 20, len(SQUEUE_INTERVALS) - 1)
        self._next_squeue = now + SQUEUE_INTERVALS[step]

    def _squeue(self) -> set[str] | None:
        """Ids (``JOBID_INDEX``) of our tasks that are queued or running; None if squeue failed."""
        job_ids = sorted({task.split("_")[0] for _, task, _ in self._tasks.values()})
        result = subprocess.run(
            ["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(job_ids)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            if "Invalid job id" in result.stderr:  # all of them left the queue
                return set()
            return None
        return set(result.stdout.split())  # -r: one line per task, pending ones too

    def wait(self, timeout: float) -> None:
        # exit files are cheap to look at, but there is no hurry: back off when quiet
        time.sleep(max(timeout, min(0.05 * (1 + self._quiet_rounds // 10), 1.0)))

    # --------------------------------------------------------- other controls

    def adopt(self, job: JobSpec, handle: dict) -> bool:
        task = handle.get("slurm_task") or (read_json_file(job.pid_file) or {}).get("slurm_task")
        if not task:
            return False
        self._tasks[job.name] = (job, task, float(handle.get("start", time.time())))
        return True  # poll finds its exit file, or notices it is gone

    def kill(self, name: str) -> None:
        entry = self._tasks.get(name)
        if entry is not None:
            # SIGTERM first: the task's wrapper passes it on and records the kill
            with contextlib.suppress(OSError):
                subprocess.run(["scancel", entry[1]], capture_output=True, check=False)

    def running(self) -> list[str]:
        return list(self._tasks)
