"""Who may read the data: its owner only, or the members of a configured group.

The user database holds password hashes and the experiments hold unpublished
images, so nothing a program of ours writes may be readable by every account
of the machine. Rather than passing a mode to every ``open`` and ``mkdir``,
each program sets its file mode creation mask once, first thing
(:func:`apply_file_mode_policy`); everything it creates, and everything its
children create (the detached engine, the jobs it spawns), follows it:

- no ``TMAPS_GROUP``: umask ``077``, files ``rw-------``, directories ``rwx------``;
- ``TMAPS_GROUP=NAME``: umask ``007``, files ``rw-rw----``, directories
  ``rwxrwx---``; the home and the storage home belong to that group and have
  the set-group-id bit, so everything created below them belongs to the group
  as well, whoever's primary group the program runs with. SQLite creates its
  files ``rw-r--r--`` less the umask, so a database file of ours gets the
  group's write bit when it is opened (:func:`_share_sqlite_files`).

Files that exist already keep their modes.
"""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

from tmlib.config import Settings, load_settings
from tmlib.errors import ConfigError

#: umask without a group: nobody but the owner reads or writes
OWNER_ONLY_UMASK = 0o077
#: umask with a group: the group reads and writes, others nothing
GROUP_UMASK = 0o007
#: mode of the data directories with a group (set-group-id: new files inherit it)
GROUP_DIRECTORY_MODE = stat.S_ISGID | 0o770


def group_id(name: str) -> int:
    """The id of the group `name` (``TMAPS_GROUP``).

    Raises
    ------
    ConfigError
        When this machine has no such group.
    """
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigError(
            f"TMAPS_GROUP names no group of this machine: {name!r}; "
            "set it to an existing group or unset it (files for their owner only)"
        ) from None


def umask_for(settings: Settings) -> int:
    """The file mode creation mask that the settings ask for."""
    return GROUP_UMASK if settings.group else OWNER_ONLY_UMASK


def _share_with_group(directory: Path, gid: int) -> None:
    """Give a directory of ours to the group, with the set-group-id bit."""
    info = directory.stat()
    if info.st_uid != os.geteuid():
        return  # another account's directory: its owner decides
    if info.st_gid != gid:
        os.chown(directory, -1, gid)
    if stat.S_IMODE(info.st_mode) & GROUP_DIRECTORY_MODE != GROUP_DIRECTORY_MODE:
        os.chmod(directory, stat.S_IMODE(info.st_mode) | GROUP_DIRECTORY_MODE)


_SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def _share_sqlite_files(dbapi_connection: object, _record: object) -> None:
    """On connecting to SQLite: make the database files of ours group-writable.

    SQLite creates a database ``0644`` less the umask (no group write, which
    the group needs to use it); its journal files copy the database's mode.
    """
    if not type(dbapi_connection).__module__.startswith("sqlite3"):
        return
    rows = dbapi_connection.execute("PRAGMA database_list").fetchall()  # type: ignore[attr-defined]
    for _seq, _name, filename in rows:
        for suffix in _SQLITE_SUFFIXES if filename else ():
            path = Path(filename + suffix)
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            if info.st_uid == os.geteuid() and info.st_mode & 0o060 != 0o060:
                os.chmod(path, stat.S_IMODE(info.st_mode) | 0o060)


def _listen_for_sqlite_files() -> None:
    import sqlalchemy as sa

    if not sa.event.contains(sa.engine.Engine, "connect", _share_sqlite_files):
        sa.event.listen(sa.engine.Engine, "connect", _share_sqlite_files)


def apply_file_mode_policy(settings: Settings | None = None) -> int:
    """Set this process's umask as configured; with a group, prepare the data directories.

    Called first thing by every program (the command lines and the server's
    application factory); processes they start inherit the umask. With a
    group (``TMAPS_GROUP``), the home and the storage home are created if
    missing and, when they are ours, given to the group with the set-group-id
    bit. Without one, nothing is created here: directories made later get
    ``rwx------`` from the umask.

    Parameters
    ----------
    settings : Settings, optional
        Default: :func:`tmlib.config.load_settings`.

    Returns
    -------
    int
        The umask now in effect.

    Raises
    ------
    ConfigError
        When the settings are invalid or ``TMAPS_GROUP`` names no group.
    """
    settings = settings or load_settings()
    mask = umask_for(settings)
    gid = group_id(settings.group) if settings.group else None
    os.umask(mask)
    if gid is not None:
        for directory in (settings.home, settings.storage_home):
            directory.mkdir(parents=True, exist_ok=True)
            _share_with_group(directory, gid)
        _listen_for_sqlite_files()
    return mask
