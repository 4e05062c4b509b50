"""The SLURM backend: run phases as ``sbatch --array`` job arrays (see :mod:`.arrays`)."""

from __future__ import annotations

import shlex

from tmlib.workflow.jobs.arrays import ArrayBackend, format_walltime, run_command
from tmlib.workflow.jobs.job import JobSpec


class SlurmBackend(ArrayBackend):
    """Runs jobs on a SLURM cluster; task ids are ``JOBID_INDEX``."""

    programs = ("sbatch", "squeue", "scancel")
    index_expression = '"$SLURM_ARRAY_TASK_ID"'
    separator = "_"

    def _submit_array(self, jobs: list[JobSpec], script: str) -> list[str]:
        first, settings = jobs[0], self.settings
        throttle = f"%{settings.slurm_max_running}" if settings.slurm_max_running else ""
        options = [
            f"--job-name={first.name.rsplit('_', 1)[0]}",
            f"--array=0-{len(jobs) - 1}{throttle}",
            f"--cpus-per-task={first.resources.cores}",
            f"--mem={first.resources.memory}M",
            f"--time={format_walltime(first.resources.walltime)}",
            f"--output={first.log_dir / 'slurm-%A_%a.log'}",
            "--export=ALL",
            "--parsable",
        ]
        for flag, value in (("--partition", settings.slurm_partition),
                            ("--account", settings.slurm_account),
                            ("--qos", settings.slurm_qos)):  # fmt: skip
            if value:
                options.append(f"{flag}={value}")
        options += shlex.split(settings.slurm_options or "")
        result = run_command(["sbatch", *options], stdin=script)
        if result.returncode != 0:
            raise RuntimeError(f"sbatch failed: {result.stderr.strip() or result.stdout.strip()}")
        job_id = result.stdout.strip().split(";")[0]
        return [f"{job_id}_{i}" for i in range(len(jobs))]

    def _queued(self) -> set[str] | None:
        result = run_command(["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(self.job_ids())])
        if result.returncode != 0:
            if "Invalid job id" in result.stderr:  # all of them left the queue
                return set()
            return None
        return set(result.stdout.split())  # -r: one line per task, pending ones too

    def _cancel(self, task: str) -> None:
        run_command(["scancel", task])  # SIGTERM, then SIGKILL after the cluster's KillWait
