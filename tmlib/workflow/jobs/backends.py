"""Backends run jobs somewhere: here the local backend, a pool of this machine's cores.

A backend takes :class:`JobSpec` objects, starts them when it has room and
reports what ended. The SLURM and SGE backends implement the same interface
with job arrays.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tmlib.workflow.jobs import spawner
from tmlib.workflow.jobs.job import JobSpec, read_exit_file


@dataclass
class Outcome:
    """How a job ended.

    Attributes
    ----------
    exitcode : int
        0 success; > 0 failure; negative: killed by that signal.
    time : float
        Wall-clock seconds.
    cpu_time : float or None
        User + system CPU seconds (None when unknown).
    memory : float or None
        Peak resident memory in MB (None when unknown).
    """

    exitcode: int
    time: float = 0.0
    cpu_time: float | None = None
    memory: float | None = None

    @classmethod
    def from_record(cls, record: dict) -> Outcome:
        return cls(
            exitcode=int(record["exitcode"]),
            time=float(record.get("time") or 0.0),
            cpu_time=record.get("cpu_time"),
            memory=record.get("memory"),
        )


class Backend(abc.ABC):
    """Where jobs run.

    Attributes
    ----------
    cores : int
        The most cores a single job may get.
    """

    cores: int

    @abc.abstractmethod
    def free_cores(self) -> int:
        """Cores available for new jobs now."""

    @abc.abstractmethod
    def submit(self, job: JobSpec) -> dict:
        """Start (or queue) a job; returns what identifies it later (persisted)."""

    @abc.abstractmethod
    def poll(self) -> dict[str, Outcome]:
        """Jobs that ended since the last call, by name."""

    @abc.abstractmethod
    def adopt(self, job: JobSpec, handle: dict) -> bool:
        """Follow a job started by an earlier engine; False if it is gone."""

    @abc.abstractmethod
    def kill(self, name: str) -> None:
        """Stop a job (it is then reported by :meth:`poll`)."""

    @abc.abstractmethod
    def running(self) -> list[str]:
        """Names of the jobs that have not been reported as ended."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend holds (running jobs go on)."""


class LocalBackend(Backend):
    """Runs jobs on this machine, at most `cores` cores' worth at a time.

    Jobs are started by a small helper process (:mod:`.spawner`), which
    measures their CPU time and peak memory and writes each job's exit file,
    even after this process died.

    Parameters
    ----------
    cores : int
        Cores of this machine the jobs may use together.
    """

    def __init__(self, cores: int) -> None:
        self.cores = max(1, int(cores))
        self._running: dict[str, JobSpec] = {}
        self._adopted: dict[str, tuple[JobSpec, int, float]] = {}
        self._ended: dict[str, Outcome] = {}
        self._proc: subprocess.Popen | None = None
        self._buffer = b""

    def _spawner(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-S", "-E", spawner.__file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                start_new_session=True,  # survives Ctrl-C and the engine's death
            )
        return self._proc

    def free_cores(self) -> int:
        jobs = [job for job in self._running.values()] + [a[0] for a in self._adopted.values()]
        return self.cores - sum(min(job.resources.cores, self.cores) for job in jobs)

    def _send(self, message: dict) -> None:
        proc = self._spawner()
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(message).encode() + b"\n")
        proc.stdin.flush()

    def _read(self, timeout: float) -> list[dict]:
        proc = self._spawner()
        assert proc.stdout is not None
        records = []
        fd = proc.stdout.fileno()
        while select.select([fd], [], [], timeout)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self._buffer += chunk
            *lines, self._buffer = self._buffer.split(b"\n")
            records.extend(json.loads(line) for line in lines if line)
            timeout = 0
        return records

    def _handle(self, records: list[dict]) -> None:
        for record in records:
            if "exitcode" in record and self._running.pop(record["name"], None) is not None:
                self._ended[record["name"]] = Outcome.from_record(record)

    def submit(self, job: JobSpec) -> dict:
        job.log_dir.mkdir(parents=True, exist_ok=True)
        job.exit_file.unlink(missing_ok=True)
        self._running[job.name] = job
        self._send(
            {
                "op": "start",
                "name": job.name,
                "argv": job.command,
                "out": str(job.stdout),
                "err": str(job.stderr),
                "exit": str(job.exit_file),
            }
        )
        while True:  # the spawner answers at once with the pid
            records = self._read(timeout=10.0)
            if not records:
                raise RuntimeError("the local job spawner does not answer")
            started = [r for r in records if r.get("name") == job.name and "pid" in r]
            self._handle([r for r in records if "pid" not in r])
            if started:
                return {"pid": started[0]["pid"], "host": os.uname().nodename}

    def adopt(self, job: JobSpec, handle: dict) -> bool:
        pid = handle.get("pid")
        if handle.get("host") != os.uname().nodename or not pid:
            return False
        if read_exit_file(job.exit_file) is None and not _is_process_alive(pid):
            return False
        self._adopted[job.name] = (job, pid, float(handle.get("start", time.time())))
        return True

    def poll(self) -> dict[str, Outcome]:
        if self._proc is not None:
            self._handle(self._read(timeout=0))
        for name, (job, pid, start) in list(self._adopted.items()):
            record = read_exit_file(job.exit_file)
            if record is not None:
                self._ended[name] = Outcome.from_record(record)
            elif not _is_process_alive(pid):
                self._ended[name] = Outcome(exitcode=-9, time=time.time() - start)
            else:
                continue
            del self._adopted[name]
        ended, self._ended = self._ended, {}
        return ended

    def kill(self, name: str) -> None:
        if name in self._running:
            self._send({"op": "kill", "name": name, "signal": 15})
        elif name in self._adopted:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._adopted[name][1], 15)

    def running(self) -> list[str]:
        return [*self._running, *self._adopted]

    def close(self) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            self._proc.stdin.close()  # the spawner exits once its jobs ended
            self._proc = None


def _is_process_alive(pid: int) -> bool:
    """Whether a process exists and has not exited (a zombie counts as exited)."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[-1].split()[0] != "Z"
