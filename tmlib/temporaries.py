"""Temporary files named after their writer, and the sweep of those killed writers left.

Large outputs are written to a temporary next to their final path and renamed
into place. A temporary's name says who writes it (host, pid and the process's
start time: :func:`temporary_file`), so that the half-written file a killed job
left behind can be told from one that a running job is writing, and removed
(:func:`remove_stale_temporaries`, which each step job calls before it runs).
Kept apart from :mod:`tmlib.storage` (which re-exports these functions) so that
a step's init sweeps without importing h5py.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from tmlib.workflow.jobs import procs

#: a short tag of this machine's name in temporaries' names (shared file systems)
_HOST_TAG = hashlib.sha1(procs.HOST.encode()).hexdigest()[:8]
#: ``.<name>.<host tag>-<pid>-<start time>-<random>.tmp``
_TEMPORARY = re.compile(
    r"^\.(?P<name>.+)\.(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-(?P<start>\d+)-\w+\.tmp$"
)
#: this process's tag: (pid, tag); a forked child has another pid and computes its own
_writer: list = [None, ""]


def _writer_tag() -> str:
    pid = os.getpid()
    if _writer[0] != pid:
        _writer[:] = [pid, f"{_HOST_TAG}-{pid}-{procs.start_time(pid) or 0}"]
    return _writer[1]


def temporary_file(path: str | os.PathLike) -> Path:
    """Create an empty file next to `path` to write it under, named after `path` and its writer.

    The name is ``.<name>.<host>-<pid>-<start time>-<random>.tmp``: hidden, and
    :func:`remove_stale_temporaries` can tell whether its writer still runs.
    """
    path = Path(path)
    prefix = f".{path.name}.{_writer_tag()}-"
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def temporary_directory(path: str | os.PathLike) -> Path:
    """Create an empty directory next to `path` to write it under, named as by
    :func:`temporary_file`."""
    path = Path(path)
    prefix = f".{path.name}.{_writer_tag()}-"
    return Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=path.parent))


def is_temporary(name: str) -> bool:
    """Whether a file name is one of a temporary (hidden and ending in ``.tmp``)."""
    return name.startswith(".") and name.endswith(".tmp")


def _writer_gone(name: str) -> bool:
    """Whether the writer of temporary `name` is known to have ended (killed mid-write)."""
    match = _TEMPORARY.match(name)
    if match is None or match["host"] != _HOST_TAG:
        return False  # not ours, or written on another machine: it may be in use
    return not procs.is_alive(int(match["pid"]), int(match["start"]))


def remove_stale_temporaries(
    directories: Iterable[str | os.PathLike], everything: bool = False
) -> int:
    """Remove the temporaries (files and directories) that killed writers left in `directories`.

    A temporary whose writer (host, pid, start time: :func:`temporary_file`)
    still runs is kept, so a job may call this while others write in the same
    directory. With `everything`, all temporaries go (when no job can run:
    a step's init and cleanup).

    Returns
    -------
    int
        How many files and directories were removed.
    """
    removed = 0
    for directory in directories:
        for root, dirs, names in os.walk(directory):
            for name in list(dirs):
                if is_temporary(name) and (everything or _writer_gone(name)):
                    dirs.remove(name)
                    shutil.rmtree(os.path.join(root, name), ignore_errors=True)
                    removed += 1
            for name in names:
                if is_temporary(name) and (everything or _writer_gone(name)):
                    try:
                        os.unlink(os.path.join(root, name))
                    except FileNotFoundError:  # its writer renamed or removed it meanwhile
                        continue
                    removed += 1
    return removed
