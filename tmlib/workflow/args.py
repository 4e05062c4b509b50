"""Step arguments: typed descriptors shared by the command lines, the workflow
description YAML and (later) the web UI.

A step declares its *batch arguments* (how work is cut and what it does) and
gets the common *submission arguments* (resources of its run jobs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from tmlib.errors import InvalidInputError


@dataclass(frozen=True)
class Argument:
    """One argument of a step.

    Attributes
    ----------
    name : str
        Python name (``batch_size``); the option is ``--batch-size``.
    type : type
        ``int``, ``float``, ``str`` or ``bool``.
    default : Any
        Value when not given (None: no value).
    help : str
        One sentence for ``--help`` and the UI.
    short : str, optional
        Short flag such as ``-b``.
    required : bool
        Whether a value must be given.
    choices : tuple of str, optional
        Allowed values.
    """

    name: str
    type: type
    default: Any = None
    help: str = ""
    short: str | None = None
    required: bool = False
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def convert(self, value: Any) -> Any:
        """Check and convert a value (from YAML, JSON or a command line).

        Raises
        ------
        InvalidInputError
            When the value has the wrong type or is not among the choices.
        """
        if value is None:
            if self.required:
                raise InvalidInputError(f"argument {self.name} is required")
            return None
        try:
            if self.type is bool:
                if isinstance(value, str):
                    if value.lower() not in ("true", "false", "yes", "no", "1", "0"):
                        raise ValueError(value)
                    value = value.lower() in ("true", "yes", "1")
                converted = bool(value)
            else:
                converted = self.type(value)
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"argument {self.name} must be of type {self.type.__name__}, got {value!r}"
            ) from None
        if self.choices is not None and converted not in self.choices:
            raise InvalidInputError(
                f"argument {self.name} must be one of {', '.join(self.choices)}, got {converted!r}"
            )
        return converted

    def to_cli(self, value: Any) -> list[str]:
        """Command-line words that pass `value` (for job command lines)."""
        if value is None:
            return []
        if self.type is bool:
            return [self.flag if value else "--no-" + self.flag[2:]]
        return [self.flag, str(value)]

    def click_option(self) -> Callable:
        """A click option for this argument."""
        names = [self.flag] + ([self.short] if self.short else [])
        if self.type is bool:
            names = [f"{self.flag}/--no-{self.flag[2:]}"] + ([self.short] if self.short else [])
            return click.option(*names, self.name, default=bool(self.default), help=self.help,
                                show_default=True)  # fmt: skip
        kind: Any = click.Choice(self.choices) if self.choices else self.type
        return click.option(
            *names,
            self.name,
            type=kind,
            default=self.default,
            required=self.required,
            help=self.help,
            show_default=self.default is not None,
        )


def parse(arguments: Sequence[Argument], values: dict[str, Any]) -> dict[str, Any]:
    """Validate `values` against `arguments`, filling defaults.

    Raises
    ------
    InvalidInputError
        For an unknown argument name or an invalid value.
    """
    known = {a.name: a for a in arguments}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InvalidInputError(
            f"unknown argument {unknown[0]!r}; known: {', '.join(known) or 'none'}"
        )
    return {a.name: a.convert(values.get(a.name, a.default)) for a in arguments}


#: Resources of a step's run jobs (init and collect jobs get fixed ones).
SUBMISSION_ARGS = (
    Argument("duration", str, "06:00:00", "Wall-clock limit of each run job (HH:MM:SS)."),
    Argument("memory", int, 2500, "Memory of each run job in MB."),
    Argument("cores", int, 1, "Cores of each run job."),
)


def walltime_seconds(duration: str) -> int:
    """``HH:MM:SS`` as seconds.

    Raises
    ------
    InvalidInputError
    """
    try:
        hours, minutes, seconds = (int(part) for part in duration.split(":"))
    except ValueError:
        raise InvalidInputError(f"duration must be HH:MM:SS, got {duration!r}") from None
    if minutes >= 60 or seconds >= 60 or min(hours, minutes, seconds) < 0:
        raise InvalidInputError(f"duration must be HH:MM:SS, got {duration!r}")
    return hours * 3600 + minutes * 60 + seconds
