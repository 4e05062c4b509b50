"""Running a jterator pipeline on the images of one site.

Modules run in order over an in-memory store of keyed arrays: pipeline inputs
(channel images, object types) first, then each module's pipe outputs. Every
value a module returns is checked against its handle before the next module
runs, so a bad module fails with a message that names it and the handle.
Measurements are attached to their object types with the naming convention
of the reference (§5.7): ``[<measured objects>_]<Group>_<feature>[_<channel>]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tmlib.errors import InvalidInputError
from tmlib.jterator.project import Handle, Module, Project

#: allowed feature names
FEATURE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class ModuleError(InvalidInputError):
    """A module failed on a site, or returned something its handles do not allow."""


@dataclass
class SiteResult:
    """What a pipeline produced for one site.

    Attributes
    ----------
    objects : dict of str to ndarray
        Label image (int32, shape (M, N)) of each output object type.
    features : dict of str to DataFrame
        Features of each output object type: one row per label present in its
        label image (ascending), one float64 column per feature.
    figures : dict of str to str
        Plotly JSON of each module that plotted.
    """

    objects: dict[str, np.ndarray] = field(default_factory=dict)
    features: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)


def run_pipeline(
    project: Project,
    images: dict[str, np.ndarray],
    objects: dict[str, np.ndarray] | None = None,
    plot: bool = False,
) -> SiteResult:
    """Run the active modules of `project` on one site.

    Parameters
    ----------
    images : dict of str to ndarray
        The input channels by name, shape (M, N) (or (M, N, Z)), uint8/uint16.
    objects : dict of str to ndarray, optional
        Label images of input object types.
    plot : bool
        Let modules with a ``Plot`` handle make figures.

    Raises
    ------
    ModuleError
        Naming the module (and handle) that failed.
    """
    store: dict[str, Any] = {**images, **(objects or {})}
    shape = next(iter(images.values())).shape[:2] if images else None
    registered: dict[str, np.ndarray] = {}
    measured: dict[str, list[pd.DataFrame]] = {}
    result = SiteResult()
    for module in project.active_modules:
        pipes = {h.name: h for h in module.inputs + module.outputs if h.type.is_pipe}
        arguments = {
            h.name: (plot if h.type.name == "Plot" else h.value)
            if not h.type.is_pipe
            else store[h.key]
            for h in module.inputs
        }
        code = module.code(project.location)
        try:
            output = code.main(**arguments)
        except Exception as err:
            raise ModuleError(f"{module.where()} raised {type(err).__name__}: {err}") from err
        for handle in module.outputs:
            value = _output_value(module, handle, output)
            problem = handle.type.check(value)
            if problem:
                raise ModuleError(f"{module.where(handle.name)}: {problem}")
            if handle.type.is_pipe:
                if shape is not None and value.shape[:2] != shape:
                    raise ModuleError(
                        f"{module.where(handle.name)}: returned shape {value.shape}, the site's "
                        f"images have shape {shape}"
                    )
                store[handle.key] = value
                if handle.type.name == "SegmentedObjects":
                    registered[handle.key] = value.astype(np.int32, copy=False)
            elif handle.type.kind == "measurement":
                objects_key = pipes[handle.objects].key
                frame = _rename(module, handle, pipes, value)
                measured.setdefault(objects_key, []).append(frame)
            elif handle.type.kind == "figure" and value:
                result.figures[module.name] = value
    for output in project.output_objects:
        labels = registered[output.name]
        result.objects[output.name] = labels
        result.features[output.name] = _features(output.name, labels, measured.get(output.name, []))
    return result


def _output_value(module: Module, handle: Handle, output: Any) -> Any:
    fields = getattr(output, "_fields", None)
    if fields is None:
        raise ModuleError(f"{module.where()}: main() must return its Output namedtuple")
    if handle.name not in fields:
        raise ModuleError(f"{module.where(handle.name)}: main() did not return this output")
    return getattr(output, handle.name)


def _rename(module: Module, handle: Handle, inputs: dict[str, Handle], value: Any) -> pd.DataFrame:
    """Measurement columns named after what was measured, checked."""
    frames = value if isinstance(value, list) else [value]
    frame = pd.concat(frames, axis=1) if len(frames) > 1 else frames[0]
    objects_key = inputs[handle.objects].key
    ref_key = inputs[handle.objects_ref].key
    channel_key = inputs[handle.channel_ref].key if handle.channel_ref else None
    prefix = f"{ref_key}_" if ref_key != objects_key else ""
    suffix = f"_{channel_key}" if channel_key else ""
    frame = frame.rename(columns=lambda c: f"{prefix}{c}{suffix}")
    for column in frame.columns:
        if not FEATURE_NAME.match(str(column)):
            raise ModuleError(
                f"{module.where(handle.name)}: feature name {column!r} may only contain "
                "letters, digits, '_' and '-'"
            )
    return frame


def _features(name: str, labels: np.ndarray, frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per object of `labels`, all measurements side by side."""
    present = np.unique(labels)
    present = present[present > 0]
    index = pd.Index(present, name="label")
    if not frames:
        return pd.DataFrame(index=index)
    columns: list[str] = [c for f in frames for c in f.columns]
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise ModuleError(f"objects {name}: feature {twice[0]!r} is measured twice")
    joined = pd.concat([f.reindex(index) for f in frames], axis=1)
    return joined.astype(np.float64)
