"""The SLURM backend: run phases as ``sbatch --array`` job arrays (see :mod:`.arrays`)."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

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
            # a task whose node fails ends there (NODE_FAIL) instead of being queued
            # again behind the engine's back: the engine records it, resume re-runs it
            "--no-requeue",
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

    def _explain(self, tasks: dict[str, tuple[str, str | None]]) -> dict[str, str]:
        jobs = _job_states(sorted({task for task, _node in tasks.values()}))
        # where each ran: as its spawner recorded it, else as SLURM says
        ran = {name: (jobs.get(task, _JobState()), node or jobs.get(task, _JobState()).nodes)
               for name, (task, node) in tasks.items()}  # fmt: skip
        node_states = _node_states(sorted({node for _job, node in ran.values() if node}))
        reasons = {}
        for name, (job, node) in ran.items():
            reason = _describe(job, node, node_states.get(node) if node else None)
            if reason:
                reasons[name] = reason
        return reasons


@dataclass(frozen=True)
class _JobState:
    """What ``squeue`` says of an array task that ended (empty when it forgot it)."""

    state: str = ""
    reason: str = ""
    nodes: str = ""


#: job states in which SLURM, not the job, ended the task
_SCHEDULER_ENDS = {
    "BOOT_FAIL": "its node failed to boot",
    "CANCELLED": "it was cancelled",
    "DEADLINE": "it reached its deadline",
    "NODE_FAIL": "its node failed",
    "OUT_OF_MEMORY": "it ran out of memory",
    "PREEMPTED": "it was preempted",
    "TIMEOUT": "it reached its time limit",
}


def _job_states(tasks: list[str]) -> dict[str, _JobState]:
    """The state, reason and node list of array tasks, ended ones too (``squeue -t all``)."""
    job_ids = sorted({task.split("_")[0] for task in tasks})
    result = run_command(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T|%r|%N",
                          "-j", ",".join(job_ids)])  # fmt: skip
    states = {}
    for line in result.stdout.splitlines() if result.returncode == 0 else []:
        parts = line.strip().split("|")
        if len(parts) == 4 and parts[0] in tasks:
            states[parts[0]] = _JobState(parts[1], parts[2], parts[3])
    return states


def _node_states(nodes: list[str]) -> dict[str, tuple[str, str]]:
    """Node name -> (state, reason) from ``sinfo``, for nodes that are not well."""
    if not nodes:
        return {}
    result = run_command(["sinfo", "-h", "-N", "-n", ",".join(nodes), "-o", "%N|%T|%E"])
    states = {}
    for line in result.stdout.splitlines() if result.returncode == 0 else []:
        parts = line.strip().split("|")
        if len(parts) == 3 and _unwell(parts[1]):
            states[parts[0]] = (parts[1], parts[2])
    return states


def _unwell(state: str) -> bool:
    """Whether a node state (``sinfo %T``) means the node lost or stopped its jobs."""
    # "*": the node does not answer; DOWN, DRAINED, FAIL: set so by hand or by slurmctld
    return state.endswith("*") or state.startswith(("down", "drain", "fail", "unknown"))


def _describe(job: _JobState, node: str | None, node_state: tuple[str, str] | None) -> str:
    """A sentence saying why SLURM ended a task, or "" when the task's own exit says it all."""
    where = f"node {node}" if node else "its node"
    if job.state == "NODE_FAIL" or node_state is not None:
        text = f"{where} was lost while the job ran"
        if node_state is not None:
            state, why = node_state
            text += f" (node {state}" + (f": {why}" if why and why != "none" else "") + ")"
        if job.state:
            text += f"; SLURM job state {job.state}"
        return text
    if job.state in _SCHEDULER_ENDS:
        why = f", {job.reason}" if job.reason and job.reason != "None" else ""
        return f"SLURM ended it on {where}: {_SCHEDULER_ENDS[job.state]} ({job.state}{why})"
    return ""
