"""The Grid Engine backend: run phases as ``qsub -t`` job arrays (see :mod:`.arrays`)."""

from __future__ import annotations

import re
import shlex

from tmlib.workflow.jobs.arrays import ArrayBackend, format_walltime, run_command
from tmlib.workflow.jobs.job import JobSpec

#: a task line of ``qstat -g d``: job id first, task id last
_TASK_LINE = re.compile(r"^\s*(\d+)\s.*\s(\d+)\s*$")


class SgeBackend(ArrayBackend):
    """Runs jobs on a (Son of) Grid Engine cluster; task ids are ``JOBID.TASK`` (from 1).

    Jobs of more than one core ask for slots of the parallel environment
    ``TMAPS_SGE_PE`` (default ``smp``); memory is asked for per slot as the
    resource ``TMAPS_SGE_MEMORY`` names (clusters differ), if set.
    """

    programs = ("qsub", "qstat", "qdel")
    index_expression = '"$((SGE_TASK_ID - 1))"'
    separator = "."

    def _submit_array(self, jobs: list[JobSpec], script: str) -> list[str]:
        first, settings = jobs[0], self.settings
        resources = first.resources
        options = [
            "-terse", "-V", "-cwd", "-b", "n", "-S", "/bin/sh",
            "-N", first.name.rsplit("_", 1)[0],
            "-t", f"1-{len(jobs)}",
            "-l", f"h_rt={format_walltime(resources.walltime)}",
            "-o", str(first.log_dir), "-e", str(first.log_dir),
        ]  # fmt: skip
        if settings.slurm_max_running:
            options += ["-tc", str(settings.slurm_max_running)]
        if resources.cores > 1:
            options += ["-pe", settings.sge_pe, str(resources.cores)]
        if settings.sge_memory:
            options += ["-l", f"{settings.sge_memory}={-(-resources.memory // resources.cores)}M"]
        if settings.sge_queue:
            options += ["-q", settings.sge_queue]
        if settings.sge_project:
            options += ["-P", settings.sge_project]
        options += shlex.split(settings.sge_options or "")
        result = run_command(["qsub", *options], stdin=script)
        if result.returncode != 0:
            raise RuntimeError(f"qsub failed: {result.stderr.strip() or result.stdout.strip()}")
        job_id = result.stdout.strip().split(".")[0]
        return [f"{job_id}.{i + 1}" for i in range(len(jobs))]

    def _queued(self) -> set[str] | None:
        result = run_command(["qstat", "-g", "d", "-u", "*"])
        if result.returncode != 0:
            return None
        tasks = set()
        for line in result.stdout.splitlines():
            match = _TASK_LINE.match(line)
            if match:
                tasks.add(f"{match.group(1)}.{match.group(2)}")
        return tasks

    def _cancel(self, task: str) -> None:
        job_id, index = task.split(".")
        run_command(["qdel", job_id, "-t", index])
