"""Every module of jtmodules agrees with its handles file (as jterator checks it)."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
import yaml

import jtmodules
from tmlib.jterator.handles import HANDLE_TYPES

LIBRARY = Path(jtmodules.__file__).parent
MODULES = sorted(p.name[: -len(".handles.yaml")] for p in LIBRARY.glob("*.handles.yaml"))

#: the modules of the reference (§6) that the library must have
REFERENCE_MODULES = {
    "smooth", "threshold_manual", "threshold_otsu", "threshold_adaptive", "fill", "label",
    "relabel", "filter", "expand_or_shrink", "separate_clumps", "segment_secondary",
    "detect_blobs", "apply_mask", "clip", "combine_masks", "combine_channels", "invert",
    "rescale", "project", "generate_volume_image", "register_objects",
    "register_objects_channel", "use_label_image", "measure_intensity", "measure_morphology",
    "measure_texture", "measure_point_pattern", "measure_neighbours", "measure_volume_image",
}  # fmt: skip


def test_the_library_has_every_module_of_the_reference():
    assert set(MODULES) >= REFERENCE_MODULES
    assert {p.stem for p in LIBRARY.glob("*.py") if not p.stem.startswith("_")} == set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_module_matches_its_handles(name):
    handles = yaml.safe_load((LIBRARY / f"{name}.handles.yaml").read_text())
    code = importlib.import_module(f"jtmodules.{name}")
    assert str(handles["version"]) == code.VERSION
    inputs, outputs = handles["input"], handles["output"]
    parameters = inspect.signature(code.main).parameters
    assert list(parameters) == [h["name"] for h in inputs]
    assert list(code.Output._fields) == [h["name"] for h in outputs]
    for handle in inputs + outputs:
        kind = HANDLE_TYPES[handle["type"]]
        assert handle.get("help"), (name, handle["name"])
        if kind.is_pipe:
            assert handle.get("key"), (name, handle["name"])
    for handle in inputs:
        parameter = parameters[handle["name"]]
        kind = HANDLE_TYPES[handle["type"]]
        if kind.is_pipe:
            assert parameter.default is inspect.Parameter.empty, (name, handle["name"])
        else:  # the handles file shows the function's default, if it has one
            if parameter.default is not inspect.Parameter.empty:
                assert parameter.default == handle.get("value"), (name, handle["name"])
            if handle.get("options") is not None:
                assert handle.get("value") in handle["options"], (name, handle["name"])
            if handle.get("value") is not None:
                assert kind.check(handle["value"]) is None, (name, handle["name"])
    for handle in outputs:
        if handle["type"] == "Measurement":
            pipes = {h["name"] for h in inputs + outputs if HANDLE_TYPES[h["type"]].is_pipe}
            assert handle["objects"] in pipes and handle["objects_ref"] in pipes
            assert handle.get("channel_ref") in pipes | {None}
