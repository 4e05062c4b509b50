"""Settings: environment variables > INI file (section ``[tmlib]``) > defaults.

Every setting has an environment variable so that a job on a cluster node sees
the same configuration as the process that submitted it.

=================  ============================  ========================================
setting            environment variable          default
=================  ============================  ========================================
home               ``TMAPS_HOME``                ``~/.tmaps``
db_url             ``TMAPS_DB_URL``              ``sqlite:///$TMAPS_HOME/tissuemaps.db``
storage_home       ``TMAPS_STORAGE_HOME``        ``$TMAPS_HOME/experiments``
backend            ``TMAPS_BACKEND``             ``local`` (or ``slurm``)
cores              ``TMAPS_CORES``               all cores of this machine
slurm_partition    ``TMAPS_SLURM_PARTITION``     the cluster's default
slurm_account      ``TMAPS_SLURM_ACCOUNT``       the user's default
slurm_qos          ``TMAPS_SLURM_QOS``           the cluster's default
slurm_options      ``TMAPS_SLURM_OPTIONS``       none (more ``sbatch`` options)
slurm_max_running  ``TMAPS_SLURM_MAX_RUNNING``   no limit (tasks of an array at once; SGE too)
sge_queue          ``TMAPS_SGE_QUEUE``           the cluster's default
sge_project        ``TMAPS_SGE_PROJECT``         none
sge_pe             ``TMAPS_SGE_PE``              ``smp`` (jobs of more than one core)
sge_memory         ``TMAPS_SGE_MEMORY``          none (e.g. ``h_vmem``: memory per slot)
sge_options        ``TMAPS_SGE_OPTIONS``         none (more ``qsub`` options)
register_roots     ``TMAPS_REGISTER_ROOTS``      none: registering a server directory over
                                                 HTTP is disabled (directories separated by
                                                 ``:``; ``tm_add files`` is not limited)
tool_cores         ``TMAPS_TOOL_CORES``          ``1`` (cores of each tool job)
max_submissions_   ``TMAPS_MAX_SUBMISSIONS_``    ``4`` (background submissions of one user
per_user           ``PER_USER``                  running at once; ``0``: no limit)
max_submissions_   ``TMAPS_MAX_SUBMISSIONS_``    ``2`` (background submissions of one
per_experiment     ``PER_EXPERIMENT``            experiment running at once; ``0``: no limit)
group              ``TMAPS_GROUP``               none: data files are readable by their owner
                                                 only (a group name: by that group too)
db_connect_        ``TMAPS_DB_CONNECT_RETRIES``  ``10`` (connection attempts after a refused one:
retries                                          the server full, starting or not listening)
db_connect_        ``TMAPS_DB_CONNECT_TIMEOUT``  ``120`` (the most seconds spent connecting,
timeout                                          attempts and back-off waits together)
db_pool            ``TMAPS_DB_POOL``             ``auto``: jobs keep no connection between their
                                                 sessions, other processes a small pool;
                                                 ``pool``: every process a pool; ``none``: none
config file        ``TMAPS_CONFIG_FILE``         ``~/.tmaps/tissuemaps.cfg``
=================  ============================  ========================================
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path

from tmlib.errors import ConfigError

BACKENDS = ("local", "slurm", "sge")

#: setting name -> environment variable
ENV_VARS = {
    "home": "TMAPS_HOME",
    "db_url": "TMAPS_DB_URL",
    "storage_home": "TMAPS_STORAGE_HOME",
    "backend": "TMAPS_BACKEND",
    "cores": "TMAPS_CORES",
    "slurm_partition": "TMAPS_SLURM_PARTITION",
    "slurm_account": "TMAPS_SLURM_ACCOUNT",
    "slurm_qos": "TMAPS_SLURM_QOS",
    "slurm_options": "TMAPS_SLURM_OPTIONS",
    "slurm_max_running": "TMAPS_SLURM_MAX_RUNNING",
    "sge_queue": "TMAPS_SGE_QUEUE",
    "sge_project": "TMAPS_SGE_PROJECT",
    "sge_pe": "TMAPS_SGE_PE",
    "sge_memory": "TMAPS_SGE_MEMORY",
    "sge_options": "TMAPS_SGE_OPTIONS",
    "register_roots": "TMAPS_REGISTER_ROOTS",
    "tool_cores": "TMAPS_TOOL_CORES",
    "max_submissions_per_user": "TMAPS_MAX_SUBMISSIONS_PER_USER",
    "max_submissions_per_experiment": "TMAPS_MAX_SUBMISSIONS_PER_EXPERIMENT",
    "group": "TMAPS_GROUP",
    "db_connect_retries": "TMAPS_DB_CONNECT_RETRIES",
    "db_connect_timeout": "TMAPS_DB_CONNECT_TIMEOUT",
    "db_pool": "TMAPS_DB_POOL",
}

#: values of TMAPS_DB_POOL (see :mod:`tmlib.models.connect`)
DB_POOL_MODES = ("auto", "pool", "none")


@dataclass(frozen=True)
class Settings:
    """Resolved configuration of the library.

    Attributes
    ----------
    home : Path
        Directory for the embedded database and, by default, the experiments.
    db_url : str
        SQLAlchemy URL of the main database.
    storage_home : Path
        Root directory under which each experiment gets ``experiment_<id>/``.
    backend : str
        Job backend, one of ``local``, ``slurm``, ``sge``.
    cores : int
        Number of cores the local backend may use.
    config_file : Path
        The INI file that was consulted (it need not exist).
    slurm_partition, slurm_account, slurm_qos : str or None
        Where SLURM jobs go (``sbatch --partition/--account/--qos``).
    slurm_options : str or None
        More ``sbatch`` options, e.g. ``--constraint=intel --exclusive``.
    slurm_max_running : int or None
        The most tasks of one job array that run at once (``--array=...%N``,
        ``qsub -tc N``; both backends).
    sge_queue, sge_project : str or None
        Where Grid Engine jobs go (``qsub -q/-P``).
    sge_pe : str
        Parallel environment of jobs of more than one core (``-pe PE N``).
    sge_memory : str or None
        Resource that takes a job's memory per slot, e.g. ``h_vmem`` or
        ``mem_free`` (clusters differ; none: memory is not asked for).
    sge_options : str or None
        More ``qsub`` options.
    register_roots : tuple of Path
        The only directories (and their subdirectories) whose files users may
        register in place over HTTP; empty: they may not. Never the storage of
        experiments, even below a root.
    tool_cores : int
        Cores a tool job (classification, clustering, heat map) asks for and uses.
    max_submissions_per_user, max_submissions_per_experiment : int
        The most background submissions (workflows, jterator, tools) of one user
        and of one experiment that may run at once; 0: no limit.
    group : str or None
        A group that shares the data: files are created group-readable and
        -writable for it and the data directories belong to it. None: files
        are for their owner only (:mod:`tmlib.permissions`).
    db_connect_retries : int
        Connection attempts after one that the database refused for a reason
        that passes (full, starting up, not listening), with back-off.
    db_connect_timeout : int
        The most seconds spent connecting, all attempts and waits together.
    db_pool : str
        ``auto``, ``pool`` or ``none``: which processes keep idle connections
        (:mod:`tmlib.models.connect`).
    """

    home: Path
    db_url: str
    storage_home: Path
    backend: str
    cores: int
    config_file: Path
    slurm_partition: str | None = None
    slurm_account: str | None = None
    slurm_qos: str | None = None
    slurm_options: str | None = None
    slurm_max_running: int | None = None
    sge_queue: str | None = None
    sge_project: str | None = None
    sge_pe: str = "smp"
    sge_memory: str | None = None
    sge_options: str | None = None
    register_roots: tuple[Path, ...] = ()
    tool_cores: int = 1
    max_submissions_per_user: int = 4
    max_submissions_per_experiment: int = 2
    group: str | None = None
    db_connect_retries: int = 10
    db_connect_timeout: int = 120
    db_pool: str = "auto"

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")


def _config_file_path(environ: os._Environ[str] | dict[str, str]) -> Path:
    raw = environ.get("TMAPS_CONFIG_FILE") or "~/.tmaps/tissuemaps.cfg"
    return Path(raw).expanduser()


def _read_ini(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    parser = configparser.ConfigParser()
    try:
        parser.read(path)
    except configparser.Error as exc:
        raise ConfigError(f"cannot parse config file {path}: {exc}") from exc
    if not parser.has_section("tmlib"):
        return {}
    return {key: value for key, value in parser.items("tmlib") if value != ""}


def _count(raw: str | None, variable: str, default: int, minimum: int) -> int:
    """An integer setting of at least `minimum` (`default` when unset)."""
    if raw is None:
        return default
    text = raw.strip()
    if not text.isdigit() or int(text) < minimum:
        raise ConfigError(f"{variable} must be an integer >= {minimum}, got {raw!r}")
    return int(text)


def _roots(raw: str | None) -> tuple[Path, ...]:
    """The registration roots: absolute directories separated by ``os.pathsep``."""
    roots = []
    for part in (raw or "").split(os.pathsep):
        if not part.strip():
            continue
        root = Path(part.strip()).expanduser()
        if not root.is_absolute():
            raise ConfigError(
                f"TMAPS_REGISTER_ROOTS must list absolute directories separated by "
                f"{os.pathsep!r}, got {part!r}"
            )
        roots.append(root)
    return tuple(roots)


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Resolve the settings from the environment, the INI file and defaults.

    Parameters
    ----------
    environ : dict, optional
        Environment to read (default: ``os.environ``); tests pass their own.

    Returns
    -------
    Settings

    Raises
    ------
    ConfigError
        When a value is invalid (unknown backend, non-positive cores, ...).
    """
    env = os.environ if environ is None else environ
    config_file = _config_file_path(env)
    ini = _read_ini(config_file)

    def lookup(name: str) -> str | None:
        return env.get(ENV_VARS[name]) or ini.get(name)

    home = Path(lookup("home") or "~/.tmaps").expanduser()
    db_url = lookup("db_url") or f"sqlite:///{home / 'tissuemaps.db'}"
    storage_home = Path(lookup("storage_home") or home / "experiments").expanduser()
    backend = (lookup("backend") or "local").lower()
    if backend not in BACKENDS:
        raise ConfigError(
            f"unknown job backend {backend!r} (TMAPS_BACKEND or [tmlib] backend); "
            f"choose one of {', '.join(BACKENDS)}"
        )
    raw_cores = lookup("cores")
    if raw_cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    else:
        try:
            cores = int(raw_cores)
        except ValueError:
            cores = 0
        if cores < 1:
            raise ConfigError(f"TMAPS_CORES must be a positive integer, got {raw_cores!r}")
    raw_max = lookup("slurm_max_running")
    max_running = None
    if raw_max is not None:
        max_running = int(raw_max) if raw_max.isdigit() and int(raw_max) > 0 else 0
        if not max_running:
            raise ConfigError(
                f"TMAPS_SLURM_MAX_RUNNING must be a positive integer, got {raw_max!r}"
            )
    db_pool = (lookup("db_pool") or "auto").strip().lower()
    if db_pool not in DB_POOL_MODES:
        raise ConfigError(
            f"TMAPS_DB_POOL must be one of {', '.join(DB_POOL_MODES)}, got {db_pool!r}"
        )
    return Settings(
        db_connect_retries=_count(lookup("db_connect_retries"), "TMAPS_DB_CONNECT_RETRIES", 10, 0),
        db_connect_timeout=_count(lookup("db_connect_timeout"), "TMAPS_DB_CONNECT_TIMEOUT", 120, 1),
        db_pool=db_pool,
        slurm_partition=lookup("slurm_partition"),
        slurm_account=lookup("slurm_account"),
        slurm_qos=lookup("slurm_qos"),
        slurm_options=lookup("slurm_options"),
        slurm_max_running=max_running,
        sge_queue=lookup("sge_queue"),
        sge_project=lookup("sge_project"),
        sge_pe=lookup("sge_pe") or "smp",
        sge_memory=lookup("sge_memory"),
        sge_options=lookup("sge_options"),
        register_roots=_roots(lookup("register_roots")),
        tool_cores=_count(lookup("tool_cores"), "TMAPS_TOOL_CORES", 1, 1),
        max_submissions_per_user=_count(
            lookup("max_submissions_per_user"), "TMAPS_MAX_SUBMISSIONS_PER_USER", 4, 0
        ),
        max_submissions_per_experiment=_count(
            lookup("max_submissions_per_experiment"), "TMAPS_MAX_SUBMISSIONS_PER_EXPERIMENT", 2, 0
        ),
        group=(lookup("group") or "").strip() or None,
        home=home,
        db_url=db_url,
        storage_home=storage_home,
        backend=backend,
        cores=cores or 1,
        config_file=config_file,
    )
