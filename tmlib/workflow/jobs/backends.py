"""Backends run jobs somewhere: here the local backend, a pool of this machine's cores.

A backend takes :class:`JobSpec` objects, starts them when it has room and
reports what ended. The SLURM backend (:mod:`.slurm`) implements the same
interface with job arrays.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tmlib.cli import warm
from tmlib.workflow.jobs import procs, spawner
from tmlib.workflow.jobs.job import JobSpec, read_exit_file, read_json_file


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
    node : str or None
        The cluster node the job ran on (None locally or when unknown).
    reason : str or None
        Why the job ended as it did, when the job could not say so itself:
        its node was lost, the scheduler cancelled it, ... (None otherwise).
    """

    exitcode: int
    time: float = 0.0
    cpu_time: float | None = None
    memory: float | None = None
    node: str | None = None
    reason: str | None = None

    @classmethod
    def from_record(cls, record: dict) -> Outcome:
        return cls(
            exitcode=int(record["exitcode"]),
            time=float(record.get("time") or 0.0),
            cpu_time=record.get("cpu_time"),
            memory=record.get("memory"),
            node=record.get("node"),
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

    def submit_many(self, jobs: list[JobSpec]) -> list[dict]:
        """Start several jobs at once (a cluster backend makes one job array of them)."""
        return [self.submit(job) for job in jobs]

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

    def terminate_now(self) -> None:  # noqa: B027 - optional hook
        """SIGTERM the running jobs at once, with system calls only (signal handlers)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the backend holds (running jobs go on)."""

    def abandon(self) -> None:
        """Stop every job now and forget them (their submission is gone)."""
        for name in self.running():
            self.kill(name)

    def wait(self, timeout: float) -> None:
        """Sleep until a job may have ended, at most `timeout` seconds."""
        time.sleep(timeout)


class LocalBackend(Backend):
    """Runs jobs on this machine, at most `cores` cores' worth at a time.

    Jobs are started by a helper process (:mod:`.spawner`), which measures
    their CPU time and peak memory and writes each job's exit file, even
    after this process died.

    Parameters
    ----------
    cores : int
        Cores of this machine the jobs may use together.
    preload : tuple, optional
        ``(command prefix, "module:function")``: jobs whose command starts
        with the prefix run as ``function(rest of the command)`` in a forked
        copy of a spawner that imported the module once, which saves the
        start-up of a Python program (about 1.3 s) per job.
    """

    def __init__(self, cores: int, preload: tuple[Sequence[str], str] | None = None) -> None:
        self.cores = max(1, int(cores))
        self.preload = (list(preload[0]), preload[1]) if preload else None
        self._running: dict[str, JobSpec] = {}
        self._adopted: dict[str, tuple[JobSpec, dict, float]] = {}
        self._ended: dict[str, Outcome] = {}
        self._pids: dict[str, tuple[int, int | None]] = {}  # running jobs' groups, start times
        self._owner: dict[str, _Spawner] = {}  # the spawner that started each running job
        self._spawners: dict[bool, _Spawner] = {}
        if self.preload is not None:
            self._spawner(preloaded=True)  # its imports overlap with the engine's start

    def _spawner(self, preloaded: bool) -> _Spawner:
        spawner_ = self._spawners.get(preloaded)
        if spawner_ is None or spawner_.eof or spawner_.proc.poll() is not None:
            if preloaded:
                assert self.preload is not None
                command = [sys.executable, spawner.__file__, "--preload", self.preload[1]]
                # in a warm-started command: forked by its server, with the imports made
                forked = warm.start_spawner(self.preload[1])
            else:  # without site-packages: small, so it does not inflate its jobs' peak memory
                command = [sys.executable, "-S", "-E", spawner.__file__]
                forked = None
            spawner_ = self._spawners[preloaded] = _Spawner(command, forked)
        return spawner_

    def free_cores(self) -> int:
        jobs = [*self._running.values(), *(a[0] for a in self._adopted.values())]
        return self.cores - sum(min(job.resources.cores, self.cores) for job in jobs)

    def _handle(self, records: list[dict]) -> None:
        for record in records:
            if "exitcode" in record and self._running.pop(record["name"], None) is not None:
                self._ended[record["name"]] = Outcome.from_record(record)
                self._pids.pop(record["name"], None)
                self._owner.pop(record["name"], None)

    def _lose_jobs_of_dead_spawners(self) -> None:
        """Jobs whose spawner is gone can never be reported: they failed (lost).

        Without this a spawner that died (killed, or its jobs' log directory
        deleted under it) would leave its jobs running forever in the
        engine's eyes, and the engine would wait on a pipe at EOF, which is
        always "readable": a busy loop that no SIGTERM ends. What still runs
        of such a job is killed, since nobody could record its end.
        """
        for name, owner in list(self._owner.items()):
            if not owner.eof:  # (EOF comes after the last record it sent)
                continue
            job = self._running.pop(name)
            pid, started = self._pids.pop(name, (0, None))
            del self._owner[name]
            record = read_exit_file(job.exit_file)
            if record is not None:  # it ended and was recorded before its spawner died
                self._ended[name] = Outcome.from_record(record)
                continue
            if pid:
                procs.send(pid, started, signal.SIGKILL, group=True)
            self._ended[name] = Outcome(exitcode=-signal.SIGKILL)

    def terminate_now(self) -> None:
        for name, (pid, started) in list(self._pids.items()):
            if name in self._running:
                procs.send(pid, started, signal.SIGTERM, group=True)

    def submit(self, job: JobSpec) -> dict:
        job.log_dir.mkdir(parents=True, exist_ok=True)
        job.exit_file.unlink(missing_ok=True)
        job.pid_file.unlink(missing_ok=True)
        prefix = self.preload[0] if self.preload else None
        preloaded = prefix is not None and job.command[: len(prefix)] == prefix
        argv = job.command[len(prefix) :] if preloaded and prefix else job.command
        self._running[job.name] = job
        spawner_ = self._spawner(preloaded)
        spawner_.send(
            {
                "op": "call" if preloaded else "start",
                "name": job.name,
                "argv": argv,
                "out": str(job.stdout),
                "err": str(job.stderr),
                "exit": str(job.exit_file),
                "pidfile": str(job.pid_file),
            }
        )
        # The spawner answers at once with the pid (the first time after its imports).
        while True:
            records = spawner_.read(timeout=120.0)
            if not records:
                raise RuntimeError("the local job spawner does not answer")
            started = [r for r in records if r.get("name") == job.name and "pid" in r]
            self._handle([r for r in records if "pid" not in r])
            if started:
                record = started[0]
                self._pids[job.name] = (record["pid"], record.get("pid_start"))
                self._owner[job.name] = spawner_
                return {
                    "pid": record["pid"],
                    "pid_start": record.get("pid_start"),
                    "spawner": spawner_.proc.pid,
                    "spawner_start": record.get("spawner_start"),
                    "host": os.uname().nodename,
                }
            if spawner_.eof:
                raise RuntimeError("the local job spawner died")

    def adopt(self, job: JobSpec, handle: dict) -> bool:
        # The pid file is written by the spawner itself, so it also covers a job
        # whose engine died before it could record the pid.
        info = read_json_file(job.pid_file) or handle
        if read_exit_file(job.exit_file) is None:
            if info.get("host") != os.uname().nodename or not info.get("pid"):
                return False
            if not _still_running(info):
                return False
        self._adopted[job.name] = (job, info, float(handle.get("start", time.time())))
        return True

    def poll(self) -> dict[str, Outcome]:
        for spawner_ in self._spawners.values():
            self._handle(spawner_.read(timeout=0))
        self._lose_jobs_of_dead_spawners()
        for name, (job, info, start) in list(self._adopted.items()):
            record = read_exit_file(job.exit_file)
            if record is not None:
                self._ended[name] = Outcome.from_record(record)
            elif not _still_running(info):
                # gone without its spawner writing an exit code: lost
                self._ended[name] = Outcome(exitcode=-9, time=time.time() - start)
            else:
                continue
            del self._adopted[name]
        ended, self._ended = self._ended, {}
        return ended

    def kill(self, name: str) -> None:
        if name in self._running:
            owner = self._owner.get(name)
            if owner is not None and owner.send({"op": "kill", "name": name, "signal": 15}):
                return
            pid, started = self._pids.get(name, (0, None))
            if pid:  # its spawner is gone: signal the job itself (poll reports it lost)
                procs.send(pid, started, signal.SIGTERM, group=True)
        elif name in self._adopted:
            procs.send_record(self._adopted[name][1], signal.SIGTERM, group=True)

    def running(self) -> list[str]:
        return [*self._running, *self._adopted]

    def abandon(self, grace: float = 5.0) -> None:
        """SIGTERM every job's process group, SIGKILL what still runs after `grace`
        seconds, and forget them all; returns once none runs."""
        jobs = {pid: started for pid, started in self._pids.values()}
        for _job, info, _start in self._adopted.values():
            if procs.record_alive(info):
                jobs[int(info["pid"])] = info.get("pid_start")
        procs.kill_all(jobs, signal.SIGTERM)
        procs.kill_all(procs.wait_for(jobs, grace), signal.SIGKILL)
        procs.wait_for(jobs, grace)
        self._running.clear()
        self._adopted.clear()
        self._pids.clear()
        self._owner.clear()

    def wait(self, timeout: float) -> None:
        # wake up as soon as a spawner reports (a job ended), not at the next tick
        # (a spawner at EOF is always "readable": waiting on it would not wait)
        fds = [
            s.proc.stdout.fileno() for s in self._spawners.values() if s.proc.stdout and not s.eof
        ]
        if fds and not self._adopted:
            select.select(fds, [], [], timeout)
        else:
            time.sleep(timeout)

    def close(self) -> None:
        idle = not self._running
        for spawner_ in self._spawners.values():
            spawner_.close()  # it exits once its jobs ended
        if idle:  # then it exits at once: reap it, so that no process outlives its engine
            for spawner_ in self._spawners.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    spawner_.proc.wait(timeout=5)
        self._spawners.clear()


#: the local backend :func:`prestart` made, until :func:`take_prestarted` hands it
#: out, with the environment its job spawner started with
_prestarted: list[tuple[LocalBackend, dict[str, str]]] = []


def prestart(cores: int, preload: tuple[Sequence[str], str]) -> None:
    """Make a local backend now, for the next :func:`take_prestarted` of this process.

    A program that will submit calls it first thing, before its heavy imports:
    the job spawner then imports what the jobs need (a second or two) while
    the program imports its own modules and stores the job tree, not after.
    Does nothing when one is waiting already.
    """
    if not _prestarted:
        _prestarted.append((LocalBackend(cores, preload=preload), dict(os.environ)))


def take_prestarted(cores: int, preload: tuple[Sequence[str], str]) -> LocalBackend | None:
    """The backend :func:`prestart` made, if it fits: same cores and preload, and an
    unchanged environment (its spawner's jobs see the one of then); else None (and
    a backend that does not fit is closed)."""
    if not _prestarted:
        return None
    backend, environment = _prestarted.pop()
    wanted = (list(preload[0]), preload[1])
    fits = backend.cores == max(1, int(cores)) and backend.preload == wanted
    if fits and environment == dict(os.environ):
        return backend
    backend.close()
    return None


class _Spawner:
    """A running :mod:`.spawner` process and its JSON-lines pipes."""

    def __init__(self, command: list[str], forked: warm.ForkedProcess | None = None) -> None:
        self.proc: subprocess.Popen | warm.ForkedProcess = forked or subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # survives Ctrl-C and the engine's death
        )
        self._buffer = b""
        #: its output ended: it died (or closed it), and reports nothing more
        self.eof = False

    def send(self, message: dict) -> bool:
        """Write a message; False if the spawner is gone."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):  # ValueError: stdin was closed
            return False
        return True

    def read(self, timeout: float) -> list[dict]:
        assert self.proc.stdout is not None
        records = []
        fd = self.proc.stdout.fileno()
        while not self.eof and select.select([fd], [], [], timeout)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                self.eof = True
                break
            self._buffer += chunk
            *lines, self._buffer = self._buffer.split(b"\n")
            records.extend(json.loads(line) for line in lines if line)
            timeout = 0
        return records

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()


def _still_running(info: dict) -> bool:
    """Whether a job may still end normally: it runs, or its spawner (which
    writes the exit file once it has reaped the job) does. Processes are
    recognised by their start times where recorded, not by pid alone."""
    if procs.record_alive(info):
        return True
    return procs.record_alive(info, "spawner", "spawner_start") and _is_spawner(
        int(info["spawner"])
    )


def _is_spawner(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    # or one that a warm-start server forked (see tmlib.cli.warm.start_spawner)
    return spawner.__file__.encode() in cmdline or b"tmlib.cli.warm" in cmdline
