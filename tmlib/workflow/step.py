"""The base every step shares: init (cut the work into batches), run (one batch
per job), collect (once, after all run jobs succeeded), cleanup.

Batches are JSON files under ``<experiment>/workflow/<step>/batches/``; job
logs go to ``<experiment>/workflow/<step>/log/``. ``init`` first removes the
step's previous outputs, so running a step again gives the same result as
running it once.
"""

from __future__ import annotations

import abc
import ast
import functools
import importlib
import importlib.util
import json
import logging
import shutil
import sys
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from tmlib import temporaries
from tmlib.errors import InvalidInputError, NotFoundError
from tmlib.lazy import lazy_import
from tmlib.workflow import args as arguments
from tmlib.workflow.args import Argument
from tmlib.workflow.jobs.job import JobSpec, Resources

# a step's command line imports this module; its --help needs no database
tm = lazy_import("tmlib.models")

logger = logging.getLogger(__name__)

#: how job command lines start a step (``python -m tmlib.workflow STEP ...``)
COMMAND_PREFIX = (sys.executable, "-m", "tmlib.workflow")
#: the function behind COMMAND_PREFIX, which the local backend preloads
ENTRY_POINT = "tmlib.workflow.__main__:run"


def prestart_jobs() -> None:
    """Start the local backend's job spawner now, for the next submission of this
    process (:func:`tmlib.workflow.jobs.backends.prestart`). Programs that submit
    call it first thing, so that its imports overlap with theirs."""
    from tmlib.config import load_settings
    from tmlib.workflow.jobs import backends

    settings = load_settings()
    if settings.backend == "local":
        backends.prestart(settings.cores, (COMMAND_PREFIX, ENTRY_POINT))


#: Resources of init and collect jobs (fixed, as in the original).
INIT_RESOURCES = Resources(cores=1, memory=2500, walltime=12 * 3600)
COLLECT_RESOURCES = Resources(cores=1, memory=2500, walltime=6 * 3600)

STEPS: dict[str, type[Step]] = {}

#: the built-in steps: name -> the module that defines (and registers) it,
#: imported when the step is first asked for (a command imports only its own)
BUILTIN_STEPS = {
    name: f"tmlib.workflow.steps.{name}"
    for name in ("align", "corilla", "illuminati", "imextract", "jterator", "metaconfig",
                 "metaextract")
}  # fmt: skip


def register_step(cls: type[Step]) -> type[Step]:
    """Class decorator: make a step known to the workflow and the command lines."""
    STEPS[cls.name] = cls
    return cls


def step_names() -> list[str]:
    """Names of the known steps: the built-in ones, then any other registered."""
    return [*BUILTIN_STEPS, *(name for name in STEPS if name not in BUILTIN_STEPS)]


def get_step(name: str) -> type[Step]:
    """The step class called `name` (importing its module on first use).

    Raises
    ------
    InvalidInputError
        When no step has that name.
    """
    if name not in STEPS and name in BUILTIN_STEPS:
        importlib.import_module(BUILTIN_STEPS[name])
    try:
        return STEPS[name]
    except KeyError:
        known = ", ".join(step_names())
        raise InvalidInputError(f"unknown step {name!r}; known steps: {known}") from None


#: end of the help of every step's ``--batch-size``
AUTO_BATCH_HELP = (
    " [default: automatic: about two run jobs per core of the backend (TMAPS_CORES), "
    "and at least one per core]"
)

#: run jobs per job slot that automatic batch sizes aim at: with two, a job that
#: runs long leaves a core idle for half as long as with one
JOBS_PER_SLOT = 2


def job_slots() -> int:
    """How many run jobs the configured backend runs at once.

    Local backend: ``TMAPS_CORES`` (default: all cores of this machine). SLURM
    and Grid Engine: ``TMAPS_SLURM_MAX_RUNNING`` when set (the most tasks of an
    array that run at once), else ``TMAPS_CORES``: on a cluster, set it to the
    cores your jobs may use together. Read from the settings, so that an init
    job on a cluster node sees what the submitting machine sees.
    """
    from tmlib.config import load_settings

    settings = load_settings()
    if settings.backend != "local" and settings.slurm_max_running:
        return max(1, settings.slurm_max_running)
    return max(1, settings.cores)


def auto_batch_size(
    n_items: int,
    slots: int,
    minimum: int = 1,
    maximum: int = arguments.MAX_BATCH_SIZE,
    per_slot: int = JOBS_PER_SLOT,
) -> int:
    """Items per run job when the batch size is not given.

    About `per_slot` jobs per slot, each of `minimum` to `maximum` items; but
    never fewer jobs than `slots` while there are at least that many items (a
    small plate keeps every core busy; a large one gets no tiny jobs).

    Examples
    --------
    >>> auto_batch_size(8, 2)  # 2 wells x 4 sites on 2 cores: 4 jobs
    2
    >>> auto_batch_size(8, 2, minimum=10)  # at least one job per core
    4
    >>> auto_batch_size(100_000, 2, maximum=100)
    100
    """
    n_items, slots = max(0, int(n_items)), max(1, int(slots))
    size = -(-n_items // (max(1, per_slot) * slots))
    size = min(max(size, minimum), maximum)
    if n_items >= slots:
        size = min(size, n_items // slots)  # ceil(n / size) >= slots
    return max(1, size)


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
    #: (fewest, most) items per run job of an automatic batch size
    auto_batch: ClassVar[tuple[int, int]] = (1, 100)
    #: run jobs per job slot of an automatic batch size
    jobs_per_slot: ClassVar[int] = JOBS_PER_SLOT

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

    def warm_up(self) -> None:
        """Import what this step's jobs import late (by default: every module its
        own module imports, in functions or through ``lazy_import`` too).

        The local backend's job spawner calls it once per step and experiment
        before it forks the step's first job, so that its jobs share those
        imports instead of each spending a second or so on them. It must not
        write anything; a module that fails to import is left out (the job
        reports the error).
        """
        for name in type(self).late_imports():
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001, S112 - the job reports it
                continue

    @classmethod
    def late_imports(cls) -> tuple[str, ...]:
        """The modules that this step's own modules import anywhere (see :meth:`warm_up`)."""
        modules = [c.__module__ for c in cls.__mro__ if c.__module__.startswith("tmlib.")]
        return tuple(dict.fromkeys(n for m in modules for n in imported_modules(m)))

    def remove_stale_temporaries(self, everything: bool = False) -> int:
        """Remove the temporary files that killed jobs of this step left behind
        (with `everything`, all of them: no job of the step may run then)."""
        return temporaries.remove_stale_temporaries(self.output_locations(), everything)

    # -------------------------------------------------------------- framework

    def parse_args(self, values: dict[str, Any]) -> dict[str, Any]:
        return arguments.parse(self.batch_args, values)

    def batch_size(self, args: dict[str, Any], n_items: int) -> int:
        """``args["batch_size"]`` when given, else :func:`auto_batch_size` of `n_items`
        for the backend's :func:`job_slots` and the step's :attr:`auto_batch`.

        Raises
        ------
        InvalidInputError
            When a given batch size is less than 1.
        """
        given = args.get("batch_size")
        if given is not None:
            if given < 1:
                raise InvalidInputError(f"batch_size must be at least 1, got {given}")
            return int(given)
        slots = job_slots()
        size = auto_batch_size(n_items, slots, *self.auto_batch, per_slot=self.jobs_per_slot)
        logger.info("%s: batch size %d for %d items on %d job slots", self.name, size,
                    n_items, slots)  # fmt: skip
        return size

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


@functools.cache
def imported_modules(module: str) -> tuple[str, ...]:
    """Absolute names of the modules that `module`'s source imports anywhere:
    ``import x``, ``from x import y`` (x, and x.y, which may be a module) and
    ``lazy_import("x")``, in the order they appear."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return ()
    names: list[str] = []
    for node in ast.walk(ast.parse(Path(spec.origin).read_text())):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "lazy_import"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.append(str(node.args[0].value))
    # x.y of "from x import y" is imported only where it is a module
    return tuple(n for n in dict.fromkeys(names) if _is_module(n))


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError, AttributeError):
        return False


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    """`items` cut into lists of at most `size` (at least 1)."""
    size = max(1, int(size))
    return [items[i : i + size] for i in range(0, len(items), size)]
