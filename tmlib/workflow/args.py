"""Step arguments: typed descriptors shared by the command lines, the workflow
description YAML and (later) the web UI.

A step declares its *batch arguments* (how work is cut and what it does) and
gets the common *submission arguments* (resources of its run jobs).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import click

from tmlib.errors import InvalidInputError

#: the most cores one job may ask for
MAX_CORES = 256
#: the most memory one job may ask for, in MB (1 TB)
MAX_MEMORY_MB = 1 << 20
#: the longest wall-clock limit of one job, in hours (14 days)
MAX_DURATION_HOURS = 14 * 24
#: the most items in one batch
MAX_BATCH_SIZE = 1_000_000
#: the longest text value (e.g. a regular expression)
MAX_TEXT_LENGTH = 4096

#: ranges of arguments by name, for the arguments that do not set their own:
#: every step's batch_size means the same, so the rule lives in one place
DEFAULT_RANGES: dict[str, tuple[float | None, float | None]] = {
    "batch_size": (1, MAX_BATCH_SIZE),
    "cores": (1, MAX_CORES),
    "memory": (1, MAX_MEMORY_MB),
    "ref_cycle": (0, 100_000),
    "n_vertical": (1, 100_000),
    "n_horizontal": (1, 100_000),
    "clip_value": (0, 2**32 - 1),
    "clip_percent": (0, 100),
}

_INTEGER = re.compile(r"[+-]?[0-9]{1,30}")
_TRUE, _FALSE = ("true", "yes", "1"), ("false", "no", "0")


def _shown(bound: float) -> str:
    """A range bound as users write it: 1000000, not 1e+06."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"


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
    minimum, maximum : int or float, optional
        Range of a number (inclusive); default: :data:`DEFAULT_RANGES` of the
        argument's name, if any.
    validator : callable, optional
        Called with the converted value; raises :class:`ValueError` with the
        reason when the value is not allowed (e.g. a duration's format).
    """

    name: str
    type: type
    default: Any = None
    help: str = ""
    short: str | None = None
    required: bool = False
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    validator: Callable[[Any], None] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def range(self) -> tuple[float | None, float | None]:
        """(minimum, maximum) of a number; None where unbounded."""
        low, high = DEFAULT_RANGES.get(self.name, (None, None))
        return (
            self.minimum if self.minimum is not None else low,
            self.maximum if self.maximum is not None else high,
        )

    @property
    def type_name(self) -> str:
        """The JSON Schema name of the type: integer, number, string or boolean."""
        return _TYPE_NAMES[self.type]

    def describe(self) -> dict[str, Any]:
        """What an editor needs to show and check the argument (without its value).

        Keys: ``name, default, required, help, choices, type, minimum, maximum``;
        ``type`` is :attr:`type_name`, ``minimum``/``maximum`` are :attr:`range`
        (None where unbounded, and always None for texts and booleans).
        """
        low, high = self.range if self.type in (int, float) else (None, None)
        return {
            "name": self.name,
            "default": self.default,
            "required": self.required,
            "help": self.help,
            "choices": list(self.choices) if self.choices else None,
            "type": self.type_name,
            "minimum": low,
            "maximum": high,
        }

    def convert(self, value: Any) -> Any:
        """Check and convert a value (from YAML, JSON or a command line).

        Types are strict: an ``int`` argument takes an integer or a string of
        digits, never a bool or a fraction; a ``bool`` takes a bool, 0/1 or
        true/false/yes/no; a ``float`` takes a finite number; a ``str`` takes
        a string (or a number, as YAML may read one). Numbers must lie in the
        argument's :attr:`range`.

        Raises
        ------
        InvalidInputError
            When the value has the wrong type, is out of range, is not among
            the choices or fails the validator; the message names the argument.
        """
        if value is None:
            if self.required:
                raise InvalidInputError(f"argument {self.name} is required")
            return None
        converted = _CONVERTERS[self.type](value)
        if converted is None:
            shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
            raise InvalidInputError(
                f"argument {self.name} must be {_KINDS[self.type]}, got {shown}"
            )
        if self.choices is not None and converted not in self.choices:
            raise InvalidInputError(
                f"argument {self.name} must be one of {', '.join(self.choices)}, got {converted!r}"
            )
        self._check_range(converted)
        if self.validator is not None:
            try:
                self.validator(converted)
            except ValueError as err:
                raise InvalidInputError(f"argument {self.name}: {err}") from None
        return converted

    def _check_range(self, value: Any) -> None:
        if self.type not in (int, float):
            return
        low, high = self.range
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = (
                f"between {_shown(low)} and {_shown(high)}"
                if low is not None and high is not None
                else f">= {_shown(low)}"
                if low is not None
                else f"<= {_shown(high)}"
            )
            raise InvalidInputError(f"argument {self.name} must be {bounds}, got {value!r}")

    def to_cli(self, value: Any) -> list[str]:
        """Command-line words that pass `value` (for job command lines)."""
        if value is None:
            return []
        if self.type is bool:
            return [self.flag if value else "--no-" + self.flag[2:]]
        return [self.flag, str(value)]

    def click_option(self) -> Callable:
        """A click option for this argument (``--batch_size`` parses too, unshown)."""
        from tmlib.cli.aliases import UnderscoreOption

        names = [self.flag] + ([self.short] if self.short else [])
        if self.type is bool:
            names = [f"{self.flag}/--no-{self.flag[2:]}"] + ([self.short] if self.short else [])
            return click.option(*names, self.name, default=bool(self.default), help=self.help,
                                show_default=True, cls=UnderscoreOption)  # fmt: skip
        kind: Any = click.Choice(self.choices) if self.choices else self.type
        low, high = self.range
        if self.type in (int, float) and not self.choices and (low, high) != (None, None):
            # the option names itself in click's one-line error
            kind = (click.IntRange if self.type is int else click.FloatRange)(low, high)
        return click.option(
            *names,
            self.name,
            type=kind,
            default=self.default,
            required=self.required,
            help=self.help,
            show_default=self.default is not None,
            cls=UnderscoreOption,
        )


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):  # a bool is an int in Python, never a count
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)  # JSON may send 2000.0 for 2000
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)
    return None


def _to_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, (int, float, str)) else None
    except (ValueError, OverflowError):
        return None
    return number if number is not None and math.isfinite(number) else None


def _to_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    return None


def _to_str(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = str(value)
    return text if len(text) <= MAX_TEXT_LENGTH and "\x00" not in text else None


#: type -> converter (None: the value is not of that type)
_CONVERTERS: dict[type, Callable[[Any], Any]] = {
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
    str: _to_str,
}
#: type -> its name in JSON Schema (what the web UI picks a widget by)
_TYPE_NAMES = {int: "integer", float: "number", str: "string", bool: "boolean"}
_KINDS = {
    int: "an integer",
    float: "a finite number",
    bool: "true or false",
    str: f"a text of at most {MAX_TEXT_LENGTH} characters",
}


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


def walltime_seconds(duration: str) -> int:
    """``HH:MM:SS`` as seconds: more than 0 and at most :data:`MAX_DURATION_HOURS` hours.

    Raises
    ------
    InvalidInputError
    """
    match = re.fullmatch(r"([0-9]{1,4}):([0-9]{2}):([0-9]{2})", str(duration).strip())
    if match is None:
        raise InvalidInputError(f"duration must be HH:MM:SS, got {duration!r}")
    hours, minutes, seconds = map(int, match.groups())
    if minutes >= 60 or seconds >= 60:
        raise InvalidInputError(f"duration must be HH:MM:SS, got {duration!r}")
    total = hours * 3600 + minutes * 60 + seconds
    if not 0 < total <= MAX_DURATION_HOURS * 3600:
        raise InvalidInputError(
            f"duration must be more than 00:00:00 and at most {MAX_DURATION_HOURS}:00:00, "
            f"got {duration!r}"
        )
    return total


def _check_duration(duration: str) -> None:
    try:
        walltime_seconds(duration)
    except InvalidInputError as err:
        raise ValueError(str(err).removeprefix("duration ")) from None


#: Resources of a step's run jobs (init and collect jobs get fixed ones).
SUBMISSION_ARGS = (
    Argument("duration", str, "06:00:00", "Wall-clock limit of each run job (HH:MM:SS).",
             validator=_check_duration),
    Argument("memory", int, 2500, "Memory of each run job in MB.", minimum=1,
             maximum=MAX_MEMORY_MB),
    Argument("cores", int, 1, "Cores of each run job.", minimum=1, maximum=MAX_CORES),
)  # fmt: skip
