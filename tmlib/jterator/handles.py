"""Handle types: what flows into and out of jterator modules (reference §5.7).

A *constant* handle holds a value from the handles file (``Numeric``,
``Character``, ``Boolean``, ``Scalar``, ``Sequence``, ``Set``, ``Plot``). A
*pipe* handle names (``key``) an array passed between modules
(``IntensityImage``, ``MaskImage``, ``LabelImage``, ``BinaryImage``,
``SegmentedObjects``). ``Measurement`` and ``Figure`` are outputs only.

Each type checks values with :meth:`HandleType.check`, which returns a
message saying what is wrong (or None), so that callers can name the module
and handle in the error.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

from tmlib.lazy import lazy_import

np = lazy_import("numpy")


@dataclass(frozen=True)
class HandleType:
    """A kind of handle: its name, whether it is a pipe, and what values it takes."""

    name: str
    kind: str  # "constant", "pipe", "measurement" or "figure"
    #: pipe types whose values this one accepts as input
    accepts: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_pipe(self) -> bool:
        return self.kind == "pipe"

    def check(self, value: Any) -> str | None:
        """None when `value` fits this type, else what is wrong with it."""
        return _CHECKS[self.name](value)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (numbers.Number, str, bool)) and not isinstance(value, complex)


def _array(value: Any, dtypes: tuple[str, ...], what: str) -> str | None:
    if not isinstance(value, np.ndarray):
        return f"expected {what} (a numpy array), got {type(value).__name__}"
    if value.ndim not in (2, 3):
        return f"expected a 2D image (or a 3D stack), got shape {value.shape}"
    if value.dtype.name not in dtypes:
        return f"expected {what}, got dtype {value.dtype}"
    return None


def _labels(value: Any) -> str | None:
    problem = _array(value, ("int32", "int64", "uint8", "uint16", "uint32"), "a label image")
    if problem is None and value.size and value.min() < 0:
        return "a label image must not have negative labels"
    return problem


def _measurement(value: Any) -> str | None:
    import pandas as pd

    frames = value if isinstance(value, list) else [value]
    for frame in frames:
        if not isinstance(frame, pd.DataFrame):
            return f"expected a pandas DataFrame of features, got {type(frame).__name__}"
    return None


_CHECKS = {
    "Numeric": lambda v: (
        None
        if isinstance(v, numbers.Real) and not isinstance(v, bool)
        else f"expected a number, got {v!r}"
    ),
    "Character": lambda v: None if isinstance(v, str) else f"expected a string, got {v!r}",
    "Boolean": lambda v: None if isinstance(v, bool) else f"expected true or false, got {v!r}",
    "Plot": lambda v: None if isinstance(v, bool) else f"expected true or false, got {v!r}",
    "Scalar": lambda v: None if _is_scalar(v) else f"expected a number or string, got {v!r}",
    "Sequence": lambda v: (
        None
        if isinstance(v, list) and all(_is_scalar(x) for x in v)
        else f"expected a list of numbers or strings, got {v!r}"
    ),
    "Set": lambda v: (
        None
        if isinstance(v, list) and all(_is_scalar(x) for x in v) and len(set(v)) == len(v)
        else f"expected a list of distinct numbers or strings, got {v!r}"
    ),
    "IntensityImage": lambda v: _array(v, ("uint8", "uint16"), "an 8- or 16-bit image"),
    "BinaryImage": lambda v: _array(v, ("bool",), "a binary (bool) image"),
    "LabelImage": _labels,
    "SegmentedObjects": _labels,
    "MaskImage": lambda v: None if _array(v, ("bool",), "") is None else _labels(v),
    "Measurement": _measurement,
    "Figure": lambda v: None if isinstance(v, str) else f"expected a figure (JSON text), got {v!r}",
}

_LABELS = frozenset({"LabelImage", "SegmentedObjects"})

HANDLE_TYPES: dict[str, HandleType] = {
    t.name: t
    for t in (
        HandleType("Numeric", "constant"),
        HandleType("Character", "constant"),
        HandleType("Boolean", "constant"),
        HandleType("Scalar", "constant"),
        HandleType("Sequence", "constant"),
        HandleType("Set", "constant"),
        HandleType("Plot", "constant"),
        HandleType("IntensityImage", "pipe", frozenset({"IntensityImage"})),
        HandleType("BinaryImage", "pipe", frozenset({"BinaryImage"})),
        # a MaskImage may hold labels (e.g. filter's output of a label image); the
        # module that takes it checks the array it gets
        HandleType("LabelImage", "pipe", _LABELS | {"MaskImage"}),
        HandleType("SegmentedObjects", "pipe", _LABELS),
        HandleType("MaskImage", "pipe", _LABELS | {"BinaryImage", "MaskImage"}),
        HandleType("Measurement", "measurement"),
        HandleType("Figure", "figure"),
    )
}


def get_handle_type(name: str) -> HandleType:
    """The handle type called `name`.

    Raises
    ------
    KeyError
        With the known names, when there is none of that name.
    """
    try:
        return HANDLE_TYPES[name]
    except KeyError:
        raise KeyError(f"unknown handle type {name!r}; types: {', '.join(HANDLE_TYPES)}") from None
