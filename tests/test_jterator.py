"""jterator's engine: projects, handles, running modules, outlines (no database)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import shapely
import yaml
from helpers import simulated_site

from tmlib.jterator.handles import HANDLE_TYPES, get_handle_type
from tmlib.jterator.pipeline import ModuleError, run_pipeline
from tmlib.jterator.project import PipelineError, Project
from tmlib.outlines import label_outlines, rasterize

# A user module that labels a threshold mask and measures the objects' areas.
SEGMENT = """
import collections
import numpy as np
import pandas as pd
from scipy import ndimage

VERSION = "1.0.0"
Output = collections.namedtuple("Output", ["objects", "measurements", "figure"])

def main(image, threshold, plot=False):
    labels, _ = ndimage.label(image > threshold)
    ids = np.arange(1, labels.max() + 1)
    areas = ndimage.sum(np.ones_like(labels), labels, ids)
    frame = pd.DataFrame({"Morphology_Area": areas}, index=pd.Index(ids, name="label"))
    return Output(labels.astype(np.int32), frame, "{}" if plot else "")
"""

SEGMENT_HANDLES = {
    "version": "1.0.0",
    "input": [
        {"name": "image", "type": "IntensityImage", "key": "DAPI"},
        {"name": "threshold", "type": "Numeric", "value": 1000},
        {"name": "plot", "type": "Plot", "value": False},
    ],
    "output": [
        {"name": "objects", "type": "SegmentedObjects", "key": "Nuclei"},
        {"name": "measurements", "type": "Measurement", "objects": "objects",
         "objects_ref": "objects", "channel_ref": "image"},
        {"name": "figure", "type": "Figure"},
    ],
}  # fmt: skip


def write_project(
    location: Path,
    code: str = SEGMENT,
    handles: dict | None = None,
    outputs: tuple[str, ...] = ("Nuclei",),
    channels: tuple[str, ...] = ("DAPI",),
) -> Path:
    """A project with one user module ``segment`` (source: a file in the project)."""
    (location / "handles").mkdir(parents=True, exist_ok=True)
    (location / "segment.py").write_text(textwrap.dedent(code))
    (location / "handles" / "segment.handles.yaml").write_text(
        yaml.safe_dump(handles or SEGMENT_HANDLES)
    )
    (location / "pipeline.yaml").write_text(
        yaml.safe_dump(
            {
                "input": {"channels": [{"name": c} for c in channels]},
                "pipeline": [{"source": "./segment.py", "handles": "handles/segment.handles.yaml"}],
                "output": {"objects": [{"name": o} for o in outputs]},
            }
        )
    )
    return location


def fixed_handles(**changes) -> dict:
    handles = yaml.safe_load(yaml.safe_dump(SEGMENT_HANDLES))
    for path, value in changes.items():
        if "__" not in path:
            handles[path] = value
            continue
        where, index, key = path.split("__")
        handles[where][int(index)][key] = value
    return handles


# ------------------------------------------------------------------------- handles


def test_handle_types_check_values():
    assert set(HANDLE_TYPES) >= {"IntensityImage", "MaskImage", "SegmentedObjects", "Measurement"}
    check = {name: t.check for name, t in HANDLE_TYPES.items()}
    assert check["IntensityImage"](np.zeros((4, 4), np.uint16)) is None
    assert "dtype float64" in check["IntensityImage"](np.zeros((4, 4)))
    assert check["MaskImage"](np.zeros((4, 4), bool)) is None
    assert check["MaskImage"](np.zeros((4, 4), np.int32)) is None
    assert "negative" in check["LabelImage"](np.full((2, 2), -1, np.int32))
    assert "2D image" in check["BinaryImage"](np.zeros(4, bool))
    assert check["Numeric"](3.5) is None and check["Numeric"](True) is not None
    assert check["Set"]([1, 2]) is None and check["Set"]([1, 1]) is not None
    assert get_handle_type("MaskImage").accepts >= {"BinaryImage", "LabelImage"}
    with pytest.raises(KeyError, match="unknown handle type 'Pixels'"):
        get_handle_type("Pixels")


# ------------------------------------------------------------------------- project


def test_a_project_runs_and_names_its_features(tmp_path):
    project = Project.load(write_project(tmp_path))
    project.check(["DAPI", "GFP"])
    site = simulated_site(seed=3)
    result = run_pipeline(project, {"DAPI": site["dapi"]})
    labels = result.objects["Nuclei"]
    assert labels.dtype == np.int32 and labels.shape == site["dapi"].shape
    features = result.features["Nuclei"]
    assert list(features.columns) == ["Morphology_Area_DAPI"]
    assert list(features.index) == sorted(set(np.unique(labels)) - {0})
    assert features.iloc[0, 0] == (labels == features.index[0]).sum()
    assert result.figures == {}
    assert run_pipeline(project, {"DAPI": site["dapi"]}, plot=True).figures == {"segment": "{}"}


@pytest.mark.parametrize(
    ("handles", "outputs", "channels", "words"),
    [
        (fixed_handles(input__0__key="GFP"), ("Nuclei",), ("DAPI",), ["image", "'GFP'"]),
        (fixed_handles(output__0__key="DAPI"), ("Nuclei",), ("DAPI",), ["produced twice"]),
        (fixed_handles(input__0__type="LabelImage"), ("Nuclei",), ("DAPI",),
         ["expects LabelImage", "IntensityImage"]),
        (fixed_handles(version="2.0.0"), ("Nuclei",), ("DAPI",), ["2.0.0", "VERSION 1.0.0"]),
        (fixed_handles(input__1__name="cutoff"), ("Nuclei",), ("DAPI",), ["cutoff"]),
        (None, ("Cells",), ("DAPI",), ["output objects 'Cells'"]),
        (None, ("Nuclei",), ("Hoechst",), ["'Hoechst' is not a channel"]),
        (fixed_handles(input__1__type="Numbers"), ("Nuclei",), ("DAPI",), ["unknown handle type"]),
        (fixed_handles(input__1__value="high"), ("Nuclei",), ("DAPI",), ["expected a number"]),
    ],
)  # fmt: skip
def test_bad_projects_are_refused_with_module_and_handle(tmp_path, handles, outputs, channels,
                                                         words):  # fmt: skip
    location = write_project(tmp_path, handles=handles, outputs=outputs, channels=channels)
    with pytest.raises(PipelineError) as error:
        Project.load(location).check(["DAPI"])
    message = str(error.value)
    for word in words:
        assert word in message, message


def test_missing_and_malformed_files_are_named(tmp_path):
    with pytest.raises(PipelineError, match="pipeline.yaml does not exist"):
        Project.load(tmp_path)
    write_project(tmp_path)
    (tmp_path / "pipeline.yaml").write_text("input: [\n")
    with pytest.raises(PipelineError, match="cannot parse .*pipeline.yaml at line"):
        Project.load(tmp_path)
    write_project(tmp_path)
    text = (tmp_path / "pipeline.yaml").read_text().replace("./segment.py", "nonexistent.py")
    (tmp_path / "pipeline.yaml").write_text(text)
    with pytest.raises(PipelineError, match="module segment: no module 'nonexistent.py'"):
        Project.load(tmp_path).check(["DAPI"])


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("labels, _ = ndimage.label(image > threshold)", ["module segment raised", "boom"]),
        ("return Output(labels.astype(np.int32), frame,", ["handle objects", "shape (10, 10)"]),
        ("return Output(labels.astype(np.int32), frame,", ["handle objects", "dtype float64"]),
        ("frame = pd.DataFrame(", ["feature name 'Morph ology_Area_DAPI'"]),
    ],
)
def test_a_failing_module_names_itself_and_the_handle(tmp_path, change, words):
    code = SEGMENT
    if "boom" in words:
        code = code.replace(change, "raise RuntimeError('boom')")
    elif "shape (10, 10)" in words:
        code = code.replace(change, "return Output(np.zeros((10, 10), np.int32), frame,")
    elif "dtype float64" in words:
        code = code.replace(change, "return Output(labels.astype(float), frame,")
    else:
        code = code.replace('"Morphology_Area"', '"Morph ology_Area"')
    project = Project.load(write_project(tmp_path, code=code))
    with pytest.raises(ModuleError) as error:
        run_pipeline(project, {"DAPI": simulated_site(shape=(64, 64))["dapi"]})
    for word in words:
        assert word in str(error.value), str(error.value)


# ------------------------------------------------------------------------ outlines


def test_outlines_are_in_map_coordinates_and_rasterize_back():
    labels = simulated_site(seed=1)["nuclei"]
    offset = (1000, 2000)
    ids, polygons, centroids = label_outlines(labels, offset)
    assert list(ids) == sorted(set(np.unique(labels)) - {0})
    for label, polygon, centroid in zip(ids, polygons, centroids, strict=True):
        rows, columns = np.nonzero(labels == label)
        assert polygon.is_valid
        assert centroid.x == pytest.approx(columns.mean() + 2000)
        assert centroid.y == pytest.approx(-(rows.mean() + 1000))
        assert polygon.contains(centroid) or polygon.distance(centroid) < 2
    back = rasterize(polygons, list(ids), labels.shape, offset)
    agreement = (back == labels)[labels > 0].mean()
    assert agreement > 0.97


def test_tiny_objects_and_holes():
    labels = np.zeros((20, 20), np.int32)
    labels[2, 2] = 1  # one pixel: a 3x3 square around it
    labels[5:15, 5:15] = 2
    labels[8:11, 8:11] = 0  # a hole
    ids, polygons, centroids = label_outlines(labels)
    assert list(ids) == [1, 2]
    assert polygons[0].area == pytest.approx(4.0)
    assert len(polygons[1].interiors) == 1
    assert isinstance(polygons[1], shapely.Polygon)
    ids, polygons, centroids = label_outlines(labels, polygons=False)
    assert polygons == [None, None] and len(centroids) == 2


def test_modules_are_found_in_user_directories(tmp_path, monkeypatch):
    modules = tmp_path / "my_modules"
    modules.mkdir()
    (modules / "segment.py").write_text(textwrap.dedent(SEGMENT))
    location = write_project(tmp_path / "project")
    (location / "segment.py").unlink()
    text = (location / "pipeline.yaml").read_text().replace("./segment.py", "segment.py")
    (location / "pipeline.yaml").write_text(text)
    with pytest.raises(PipelineError, match="no module 'segment.py' in jtmodules or in "):
        Project.load(location).check(["DAPI"])
    monkeypatch.setenv("TMAPS_JTMODULES_PATH", f"/nonexistent:{modules}")
    project = Project.load(location)
    project.check(["DAPI"])
    result = run_pipeline(project, {"DAPI": simulated_site(shape=(64, 64))["dapi"]})
    assert "Nuclei" in result.objects
