"""Modules imported when first used, so that command lines start fast.

Every program imports the module its command lives in, and ``--help`` should
not wait for numpy, SQLAlchemy or OpenCV. A module whose functions use one of
those through its usual alias binds the alias lazily::

    sa = lazy_import("sqlalchemy")

    def count(session):
        return session.scalar(sa.select(sa.func.count()))  # imports sqlalchemy here

Names taken from a module (``from x import y``) are imported inside the
functions that use them instead.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class _LazyModule:
    """Stands for a module until one of its attributes is read."""

    def __init__(self, name: str) -> None:
        self._lazy_name = name
        self._lazy_module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        # only called for attributes this object lacks: those of the module
        module = self._lazy_module
        if module is None:
            module = self._lazy_module = importlib.import_module(self._lazy_name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "imported" if self._lazy_module is not None else "not imported yet"
        return f"<lazy module {self._lazy_name!r} ({state})>"


def lazy_import(name: str) -> ModuleType:
    """The module `name`, imported (once, thread-safely) when an attribute is first read.

    Parameters
    ----------
    name : str
        Absolute module name, e.g. ``"numpy"`` or ``"tmlib.models"``.

    Returns
    -------
    types.ModuleType
        A stand-in that forwards attribute reads to the module.

    Examples
    --------
    >>> math = lazy_import("math")
    >>> math.sqrt(4.0)
    2.0
    """
    return _LazyModule(name)  # type: ignore[return-value]
