"""What a job is: a command line with resources, and the states it goes through.

A job is NEW until a backend accepts it (SUBMITTED), RUNNING once it started,
and TERMINATED when it ended, with an exit code: 0 success, > 0 failure,
negative when killed by that signal (as :class:`subprocess.Popen` reports).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from pathlib import Path


class State(enum.StrEnum):
    """Lifecycle of a job or collection (persisted in ``tasks.state``)."""

    NEW = "NEW"
    SUBMITTED = "SUBMITTED"
    RUNNING = "RUNNING"
    TERMINATED = "TERMINATED"


#: states in which a job occupies a backend slot
LIVE_STATES = frozenset({State.SUBMITTED, State.RUNNING})


@dataclass(frozen=True)
class Resources:
    """What a job asks of the machine.

    Attributes
    ----------
    cores : int
        CPU cores.
    memory : int
        Memory in MB.
    walltime : int
        Wall-clock limit in seconds.
    """

    cores: int = 1
    memory: int = 2500
    walltime: int = 6 * 3600

    def to_dict(self) -> dict[str, int]:
        return {"cores": self.cores, "memory": self.memory, "walltime": self.walltime}


@dataclass(frozen=True)
class JobSpec:
    """A job to run: command line, resources and where its output goes.

    Attributes
    ----------
    name : str
        Unique within its submission, e.g. ``imextract_run_0000003``.
    command : list of str
        Program and arguments (no shell).
    resources : Resources
    log_dir : Path
        Directory for ``<name>.out``, ``<name>.err`` and ``<name>.exit`` (the
        exit code, written by the job itself so that it survives the death of
        the process that started it).
    """

    name: str
    command: list[str]
    resources: Resources = field(default_factory=Resources)
    log_dir: Path = Path(".")

    @property
    def stdout(self) -> Path:
        return self.log_dir / f"{self.name}.out"

    @property
    def stderr(self) -> Path:
        return self.log_dir / f"{self.name}.err"

    @property
    def exit_file(self) -> Path:
        return self.log_dir / f"{self.name}.exit"

    @property
    def pid_file(self) -> Path:
        """Written when the job starts: ``{"pid": ..., "spawner": ...}``."""
        return self.log_dir / f"{self.name}.pid"

    def to_dict(self) -> dict:
        return {
            "command": list(self.command),
            "resources": self.resources.to_dict(),
            "log_dir": str(self.log_dir),
        }

    @classmethod
    def from_dict(cls, name: str, data: dict) -> JobSpec:
        return cls(
            name=name,
            command=list(data["command"]),
            resources=Resources(**data.get("resources", {})),
            log_dir=Path(data.get("log_dir", ".")),
        )


def read_json_file(path: Path) -> dict | None:
    """A small JSON object written by a job's spawner, or None if not (yet) there."""
    try:
        record = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def read_exit_file(path: Path) -> dict | None:
    """What a job recorded when it ended, or None while it has not.

    The file holds a JSON object with at least ``exitcode`` (and, from the
    local backend, ``time``, ``cpu_time``, ``memory``), or a bare exit code
    (written by a shell wrapper on a cluster node).
    """
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return None
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return None
    if isinstance(record, int):
        return {"exitcode": record}
    return record if isinstance(record, dict) and "exitcode" in record else None
