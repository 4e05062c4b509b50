"""Text rendering of a submission's status: the live progress view and ``status``."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def status_lines(tree: dict, max_depth: int = 2) -> list[str]:
    """Indented lines ``name  state  done/total  failed  percent`` down to `max_depth`."""
    lines = [
        f"{'NAME':<34} {'TYPE':<14} {'STATE':<11} {'DONE':>11} {'FAILED':>6} "
        f"{'%':>6} {'EXIT':>5} {'TIME':>9} {'MEM MB':>7}"
    ]

    def walk(node: dict, depth: int) -> None:
        total = f"{node['done']}/{node['total']}" + ("+" if node["pending_expansion"] else "")
        exitcode = "-" if node["exitcode"] is None else str(node["exitcode"])
        memory = "-" if node["memory"] is None else f"{node['memory']:.0f}"
        name = ("  " * depth + node["name"])[:34]
        lines.append(
            f"{name:<34} {node['type']:<14} {node['state']:<11} {total:>11} "
            f"{node['failed']:>6} {node['percent_done']:>6.1f} {exitcode:>5} "
            f"{_fmt_seconds(node['time']):>9} {memory:>7}"
        )
        if depth < max_depth:
            for child in node["subtasks"]:
                walk(child, depth + 1)

    walk(tree, 0)
    return lines


class LiveDisplay:
    """Redraws the status block in place on a terminal; prints changes otherwise.

    Parameters
    ----------
    stream : file
        Where to draw (stderr by default, so stdout stays clean).
    interval : float
        Least seconds between redraws.
    depth : int
        Levels of the tree to show (1 stages, 2 steps, 3 phases).
    """

    def __init__(self, stream: TextIO | None = None, interval: float = 1.0, depth: int = 2) -> None:
        self.stream = stream or sys.stderr
        self.interval = interval
        self.depth = depth
        self._last = 0.0
        self._drawn = 0
        self._previous: list[str] = []
        self.tty = self.stream.isatty()

    def due(self) -> bool:
        """Whether the next :meth:`update` would redraw."""
        return time.monotonic() - self._last >= self.interval

    def update(self, tree: dict, force: bool = False) -> None:
        if not force and not self.due():
            return
        self._last = time.monotonic()
        lines = status_lines(tree, self.depth)
        if self.tty:
            if self._drawn:
                self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self.stream.write("\n".join(lines) + "\n")
            self._drawn = len(lines)
        elif lines != self._previous:
            stamp = time.strftime("%H:%M:%S")
            changed = [line for line in lines[1:] if line not in self._previous]
            for line in changed:
                self.stream.write(f"[{stamp}] {line.strip()}\n")
        self._previous = lines
        self.stream.flush()
