"""Progress of long work (uploads, downloads, copies, simulated plates) on a terminal.

Every program draws its progress through :class:`Progress`, so the rule lives
here: a bar is drawn on stderr only when stderr is a terminal and the command
was not given ``-q/--quiet``. Otherwise nothing is written at all (no bar, no
label), so logs and pipes stay clean.

tqdm is imported only when a bar is drawn: ``--help`` and quiet runs never
load it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: where ``-q/--quiet`` is kept in a click context's ``obj``
QUIET_KEY = "quiet"


def quiet_requested() -> bool:
    """Whether the running click command (any level of it) was given ``-q/--quiet``."""
    click = sys.modules.get("click")
    if click is None:  # not inside a command line
        return False
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return bool(isinstance(obj, dict) and obj.get(QUIET_KEY))


def should_draw(requested: bool = True, stream: Any = None) -> bool:
    """The one rule: draw when asked, not ``-q``, and the stream (stderr) is a terminal."""
    if not requested or quiet_requested():
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a file
        return False


def quiet_option(f: F) -> F:
    """A ``-q/--quiet`` flag (no progress bars) for any level of a click program."""
    import click

    def callback(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        root = ctx.find_root()
        root.ensure_object(dict)
        if value:
            root.obj[QUIET_KEY] = True
        return value

    return click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=callback,
        help="No progress bar (there is none either when stderr is not a terminal).",
    )(f)


def _size(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(nbytes) < 1000 or unit == "TB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"  # pragma: no cover


_BYTES_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}B/{total_fmt}B "
    "[{elapsed}<{remaining}, {rate_fmt}{postfix}]"
)


def _has_size(stream: Any) -> bool:
    import os

    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return False
    return size.columns > 0 and size.lines > 0


class Progress:
    """Files (and bytes) done of a long task: a bar on a terminal, else nothing.

    With a byte total the bar counts bytes (rate in B/s, time left from the
    bytes) and names the files done beside it; without one it counts files
    and names the bytes moved so far.

    Parameters
    ----------
    desc : str
        What is being done, e.g. ``"upload"``.
    files : int, optional
        Number of files (items) of the task.
    nbytes : int, optional
        Bytes of the task, where known up front.
    unit : str
        What one item is called (``file``, ``image``).
    enabled : bool
        Whether the caller wants a bar at all (the API's ``progress=``
        argument); the bar is drawn only if :func:`should_draw` agrees.

    Examples
    --------
    >>> with Progress("upload", files=2, nbytes=300) as progress:
    ...     progress.advance(nbytes=100)
    ...     progress.advance(nbytes=200)
    """

    def __init__(
        self,
        desc: str,
        files: int | None = None,
        nbytes: int | None = None,
        unit: str = "file",
        enabled: bool = True,
    ) -> None:
        self.desc = desc
        self.unit = unit
        self.files_done = 0
        self.bytes_done = 0
        self.files = files
        self.nbytes = nbytes
        self._bar: Any = None
        self._closed = False
        self.drawn = should_draw(enabled)
        if files is not None or nbytes is not None:
            self._open()

    def _open(self) -> None:
        # opened at the first count, so that totals set before it decide the unit
        if not self.drawn or self._bar is not None or self._closed:
            return
        from tqdm import tqdm

        by_bytes = self.nbytes is not None
        # follow the terminal's size, unless it reports none (a bare pty): then 80x20
        sized = _has_size(sys.stderr)
        self._bar = tqdm(
            total=self.nbytes if by_bytes else self.files,
            desc=self.desc,
            unit="B" if by_bytes else f" {self.unit}s",
            unit_scale=by_bytes,
            unit_divisor=1000,
            file=sys.stderr,
            dynamic_ncols=sized,
            ncols=None if sized else 80,
            nrows=None if sized else 20,
            mininterval=0.2,
            smoothing=0.1,
            # "1.20MB/5.00MB", not tqdm's "1.20M/5.00M"
            bar_format=_BYTES_FORMAT if by_bytes else None,
        )
        self._postfix()

    def _postfix(self) -> None:
        if self._bar is None:
            return
        if self.nbytes is not None:
            total = "" if self.files is None else f"/{self.files}"
            text = f"{self.files_done}{total} {self.unit}s"
        else:
            text = _size(self.bytes_done) if self.bytes_done else ""
        self._bar.set_postfix_str(text, refresh=False)

    def set_total(self, files: int | None = None, nbytes: int | None = None) -> None:
        """Set the totals once they are known (before the first :meth:`advance`)."""
        self.files, self.nbytes = files, nbytes
        self._open()

    def advance(self, files: int = 1, nbytes: int = 0) -> None:
        """Count `files` more items done and `nbytes` more bytes moved."""
        self.files_done += files
        self.bytes_done += nbytes
        self._open()
        if self._bar is None:
            return
        self._postfix()
        self._bar.update(nbytes if self.nbytes is not None else files)

    def close(self) -> None:
        """Draw the final state and end the line."""
        self._open()  # a task with nothing to do still says so
        self._closed = True
        if self._bar is not None:
            self._postfix()
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self._closed = True  # a failed task draws no empty bar
        self.close()
