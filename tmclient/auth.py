"""Passwords from ``~/.tm_pass``: a YAML mapping ``username: password``.

The file holds passwords in plain text, so it must be readable by its owner
only (``chmod 600 ~/.tm_pass``); a file that others can read is refused.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tmclient.api import InputError
from tmlib.lazy import lazy_import

yaml = lazy_import("yaml")


def password_file() -> Path:
    """Where the passwords are looked up (``~/.tm_pass``)."""
    return Path(os.path.expanduser("~")) / ".tm_pass"


def load_password(username: str, path: Path | None = None) -> str | None:
    """The password of `username` in the password file, or None.

    Raises
    ------
    InputError
        When the file is readable by group or others, or is not a YAML mapping.
    """
    path = path or password_file()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(f"{path} is accessible by other users; protect it with 'chmod 600 {path}'")
    try:
        entries = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"{path}: cannot read it as YAML 'user: password' lines: {err}") from err
    if entries is None:
        return None
    if not isinstance(entries, dict):
        raise InputError(f"{path}: must hold 'user: password' lines")
    password = entries.get(username)
    return None if password is None else str(password)
