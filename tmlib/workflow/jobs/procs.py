"""Which process a recorded pid is: identity checks before a signal, and process trees.

A pid stored in the database (an engine's, a job's, a spawner's) may belong to
another process by the time someone reads it: the machine rebooted, or the
process ended and the kernel handed its number to a new one. A record
therefore holds the process's start time as well (field 22 of
``/proc/<pid>/stat``, clock ticks since boot), and nothing is signalled unless
the process with that pid started at that time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

#: this machine's name, as records store it
HOST = os.uname().nodename


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of ``/proc/<pid>/stat`` (after the command name), or None if there is none."""
    try:
        text = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    # the command name (field 2) may hold spaces and ")": cut after its last ")"
    return text.rsplit(")", 1)[-1].split()


def start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot), or None if there is no such process."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22 of stat


def identity(pid: int) -> dict[str, object]:
    """What identifies process `pid` (of this host) in a record: pid, host and start time."""
    return {"pid": int(pid), "host": HOST, "pid_start": start_time(pid)}


def _is_running(fields: list[str] | None) -> bool:
    return fields is not None and fields[0] != "Z"  # a zombie has ended


def is_alive(pid: object, started: object = None, host: object = HOST) -> bool:
    """Whether the recorded process runs: on this host, not a zombie, and (when the record
    has a start time) started at `started`. A process that merely reuses the pid is not it."""
    if host != HOST or not pid:
        return False
    try:
        pid = int(pid)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False
    fields = _stat_fields(pid)
    if not _is_running(fields):
        return False
    return started is None or int(fields[19]) == started  # type: ignore[index]


def record_alive(record: Mapping, pid_key: str = "pid", start_key: str = "pid_start") -> bool:
    """:func:`is_alive` for a record such as ``{"pid", "host", "pid_start"}``."""
    return is_alive(record.get(pid_key), record.get(start_key), record.get("host", HOST))


def send(pid: int, started: int | None, signum: int, group: bool = False) -> bool:
    """Signal a recorded process (or its process group) only if it is still that process.

    With a start time the process is pinned with a pidfd before its start time
    is read, so it cannot be swapped for another between the check and the
    signal. Returns whether a signal was sent.
    """
    try:
        pidfd = os.pidfd_open(int(pid))
    except (OSError, ValueError):
        return False
    try:
        if started is not None and start_time(pid) != started:
            return False
        if group:
            # the group of a leader pinned above: its id cannot name another group
            os.killpg(int(pid), signum)
        else:
            signal.pidfd_send_signal(pidfd, signum)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        os.close(pidfd)


def send_record(
    record: Mapping,
    signum: int,
    group: bool = False,
    pid_key: str = "pid",
    start_key: str = "pid_start",
) -> bool:
    """:func:`send` for a record (``{"pid", "host", "pid_start"}``); records of other hosts
    and records whose process ended are not signalled."""
    if not record_alive(record, pid_key, start_key):
        return False
    return send(int(record[pid_key]), record.get(start_key), signum, group)


def tree(roots: Iterable[int]) -> dict[int, int | None]:
    """The processes `roots` and all their descendants now, with their start times."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None:
            continue
        pid = int(entry.name)
        starts[pid] = int(fields[19])
        children.setdefault(int(fields[1]), []).append(pid)
    found: dict[int, int | None] = {}
    todo = [int(p) for p in roots if int(p) in starts]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found[pid] = starts.get(pid)
        todo.extend(children.get(pid, ()))
    return found


def still_running(processes: Mapping[int, int | None]) -> dict[int, int | None]:
    """Those of `processes` (pid -> start time) that still run."""
    return {pid: start for pid, start in processes.items() if is_alive(pid, start)}


def wait_for(processes: Mapping[int, int | None], timeout: float) -> dict[int, int | None]:
    """Wait until `processes` (pid -> start time) ended, at most `timeout` seconds;
    returns those still running."""
    deadline = time.monotonic() + timeout
    while (left := still_running(processes)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def kill_all(processes: Mapping[int, int | None], signum: int) -> None:
    """Signal each of `processes` (pid -> start time) that is still that process, and
    the process group of those that lead a session of their own (a job's children
    are in its group; a command typed in a shell shares the shell's session and
    only it is signalled, not its pipeline partners)."""
    for pid, start in processes.items():
        with contextlib.suppress(OSError):
            if os.getsid(pid) == pid:
                send(pid, start, signum, group=True)
        send(pid, start, signum)
