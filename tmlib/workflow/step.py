"""The base every step shares: init (cut the work into batches), run (one batch
per job), collect (once, after all run jobs succeeded), cleanup.

Batches are JSON files under ``<experiment>/workflow/<step>/batches/``; job
logs go to ``<experiment>/workflow/<step>/log/``. ``init`` first removes the
step's previous outputs, so running a step again gives the same result as
running it once.
"""

from __future__ import annotations

import abc
import json
import logging
import shutil
import sys
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import tmlib.models as tm
from tmlib import storage
from tmlib.errors import InvalidInputError, NotFoundError
from tmlib.workflow import args as arguments
from tmlib.workflow.args import Argument
from tmlib.workflow.jobs.job import JobSpec, Resources

logger = logging.getLogger(__name__)

#: how job command lines start a step (``python -m tmlib.workflow STEP ...``)
COMMAND_PREFIX = (sys.executable, "-m", "tmlib.workflow")
#: the function behind COMMAND_PREFIX, which the local backend preloads
ENTRY_POINT = "tmlib.workflow.__main__:run"

#: Resources of init and collect jobs (fixed, as in the original).
INIT_RESOURCES = Resources(cores=1, memory=2500, walltime=12 * 3600)
COLLECT_RESOURCES = Resources(cores=1, memory=2500, walltime=6 * 3600)

STEPS: dict[str, type[Step]] = {}


def register_step(cls: type[Step]) -> type[Step]:
    """Class decorator: make a step known to the workflow and the command lines."""
    STEPS[cls.name] = cls
    return cls


def get_step(name: str) -> type[Step]:
    """The step class called `name` (importing the built-in steps on first use).

    Raises
    ------
    InvalidInputError
        When no step has that name.
    """
    import tmlib.workflow.steps  # noqa: F401 - registers the built-in steps

    try:
        return STEPS[name]
    except KeyError:
        raise InvalidInputError(f"unknown step {name!r}; known steps: {', '.join(STEPS)}") from None


def job_name(step: str, phase: str, job_id: int = 1) -> str:
    """``<step>_<phase>_<7-digit id>``, e.g. ``imextract_run_0000003``."""
    return f"{step}_{phase}_{job_id:07d}"


class Step(abc.ABC):
    """One step of a workflow for one experiment.

    Subclasses set the class attributes and implement
    :meth:`create_run_batches`, :meth:`run_job` and
    :meth:`delete_previous_job_output` (and :meth:`collect_job_output` when
    ``has_collect`` is true).

    Parameters
    ----------
    experiment_id : int
    """

    name: ClassVar[str]
    fullname: ClassVar[str]
    description: ClassVar[str]
    batch_args: ClassVar[tuple[Argument, ...]] = ()
    has_collect: ClassVar[bool] = False
    #: steps whose output this step reads
    requires: ClassVar[tuple[str, ...]] = ()

    def __init__(self, experiment_id: int) -> None:
        self.experiment_id = int(experiment_id)

    # ----------------------------------------------------------------- places

    @cached_property
    def experiment_location(self) -> Path:
        with tm.utils.MainSession() as session:
            ref = session.get(tm.ExperimentReference, self.experiment_id)
            if ref is None:
                raise NotFoundError(f"experiment {self.experiment_id} does not exist")
            return Path(ref.location)

    @property
    def step_location(self) -> Path:
        return self.experiment_location / "workflow" / self.name

    @property
    def batches_location(self) -> Path:
        return self.step_location / "batches"

    @property
    def log_location(self) -> Path:
        return self.step_location / "log"

    def batch_file(self, phase: str, job_id: int = 1) -> Path:
        if phase == "collect":
            return self.batches_location / f"{self.name}_collect.batch.json"
        return self.batches_location / f"{job_name(self.name, phase, job_id)}.batch.json"

    # ------------------------------------------------------ to be implemented

    @abc.abstractmethod
    def create_run_batches(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """Cut the work into batches, one per run job."""

    def create_collect_batch(self, args: dict[str, Any]) -> dict[str, Any]:
        """The batch of the collect job."""
        return {}

    @abc.abstractmethod
    def run_job(self, batch: dict[str, Any]) -> None:
        """Process one batch."""

    def collect_job_output(self, batch: dict[str, Any]) -> None:
        """Post-process after all run jobs succeeded."""
        raise NotImplementedError(f"{self.name} has no collect phase")

    @abc.abstractmethod
    def delete_previous_job_output(self) -> None:
        """Remove everything an earlier run of this step produced."""

    def output_locations(self) -> list[Path]:
        """Directories where the step's jobs write large files under temporary names
        (:func:`tmlib.storage.temporary_file`); swept for what killed jobs left there."""
        return []

    def remove_stale_temporaries(self, everything: bool = False) -> int:
        """Remove the temporary files that killed jobs of this step left behind
        (with `everything`, all of them: no job of the step may run then)."""
        return storage.remove_stale_temporaries(self.output_locations(), everything)

    # -------------------------------------------------------------- framework

    def parse_args(self, values: dict[str, Any]) -> dict[str, Any]:
        return arguments.parse(self.batch_args, values)

    def init(self, values: dict[str, Any]) -> int:
        """Remove previous output and write the batches; returns the number of run jobs.

        Batches are written to a temporary directory that replaces the old
        one at the end, so a failed init leaves no mixture of old and new.
        """
        args = self.parse_args(values)
        batches = self.create_run_batches(args)  # validates: nothing is removed on bad input
        self.delete_previous_job_output()
        self.remove_stale_temporaries(everything=True)
        tmp = self.batches_location.with_name("batches.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for job_id, batch in enumerate(batches, start=1):
            path = tmp / self.batch_file("run", job_id).name
            path.write_text(json.dumps({"id": job_id, **batch}))
        if self.has_collect:
            path = tmp / self.batch_file("collect").name
            path.write_text(json.dumps(self.create_collect_batch(args)))
        (tmp / "args.json").write_text(json.dumps(args))
        shutil.rmtree(self.batches_location, ignore_errors=True)
        tmp.rename(self.batches_location)
        logger.info("%s: %d run jobs", self.name, len(batches))
        return len(batches)

    def run_job_ids(self) -> list[int]:
        """Ids of the run jobs that ``init`` created.

        Raises
        ------
        NotFoundError
            When ``init`` has not been run.
        """
        if not self.batches_location.is_dir():
            raise NotFoundError(
                f"no batches for step {self.name} of experiment {self.experiment_id}: "
                f"run '{self.name} {self.experiment_id} init' first"
            )
        prefix = f"{self.name}_run_"
        ids = [
            int(p.name[len(prefix) : len(prefix) + 7])
            for p in self.batches_location.glob(f"{prefix}*.batch.json")
        ]
        return sorted(ids)

    def read_batch(self, phase: str, job_id: int = 1) -> dict[str, Any]:
        """The batch of a job.

        Raises
        ------
        NotFoundError
            When the batch does not exist.
        """
        path = self.batch_file(phase, job_id)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            what = f"job {job_id}" if phase == "run" else phase
            raise NotFoundError(
                f"step {self.name} has no batch for {what} ({path}); run init first"
            ) from None

    def run(self, job_id: int) -> None:
        """Run one batch (first removing what killed jobs were writing: a job that
        runs again after it was killed mid-write leaves no temporary behind)."""
        batch = self.read_batch("run", job_id)
        self.remove_stale_temporaries()
        self.run_job(batch)

    def collect(self) -> None:
        """Run the collect phase."""
        if not self.has_collect:
            raise InvalidInputError(f"step {self.name} has no collect phase")
        batch = self.read_batch("collect")
        self.remove_stale_temporaries()
        self.collect_job_output(batch)

    def cleanup(self) -> None:
        """Remove the output of earlier runs (not the batches)."""
        self.delete_previous_job_output()
        self.remove_stale_temporaries(everything=True)

    # ------------------------------------------------------------------- jobs

    def command(self, phase: str, *extra: str, verbosity: int = 0) -> list[str]:
        """Command line of a job of this step."""
        verbose = ["-" + "v" * verbosity] if verbosity else []
        return [*COMMAND_PREFIX, self.name, *verbose, str(self.experiment_id), phase, *extra]

    def init_job(self, values: dict[str, Any], verbosity: int = 0) -> JobSpec:
        args = self.parse_args(values)
        words = [w for a in self.batch_args for w in a.to_cli(args[a.name])]
        return JobSpec(
            job_name(self.name, "init"),
            self.command("init", *words, verbosity=verbosity),
            INIT_RESOURCES,
            self.log_location,
        )

    def run_jobs(self, resources: Resources, verbosity: int = 0) -> list[JobSpec]:
        return [
            JobSpec(
                job_name(self.name, "run", job_id),
                self.command("run", "--job", str(job_id), verbosity=verbosity),
                resources,
                self.log_location,
            )
            for job_id in self.run_job_ids()
        ]

    def collect_job(self, verbosity: int = 0) -> JobSpec:
        return JobSpec(
            job_name(self.name, "collect"),
            self.command("collect", verbosity=verbosity),
            COLLECT_RESOURCES,
            self.log_location,
        )


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    """`items` cut into lists of at most `size` (at least 1)."""
    size = max(1, int(size))
    return [items[i : i + size] for i in range(0, len(items), size)]
