"""The jterator step on simulated plates: default pipeline, accuracy, saving, bad input."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import tifffile
import yaml
from helpers import cli, ok, one_error_line, run_step, use_fast_password_hashing

import jtmodules
import tmlib.models as tm
from tmlib import registry
from tmlib.jterator.pipeline import run_pipeline
from tmlib.jterator.project import Project
from tmlib.simulate import PlateSpec, simulate_plate
from tmlib.workflow.step import get_step
from tmlib.workflow.steps.jterator import SiteLoader, write_features_csv

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fast_password_hashing(monkeypatch)


def make_experiment(
    tmp_path: Path,
    wells: int = 2,
    sites: int = 2,
    size: int | tuple[int, int] = 256,
    channels: int = 2,
) -> int:
    """A converted experiment with illumination statistics, and its ground truth in tmp_path."""
    height, width = (size, size) if isinstance(size, int) else size
    spec = PlateSpec(microscope="cellvoyager", wells=wells, sites=sites, channels=channels,
                     height=height, width=width, seed=11, plate_format=96)  # fmt: skip
    simulate_plate(tmp_path / "plate", spec)
    registry.add_user("jo", "pw", "jo@example.org")
    eid = registry.add_experiment("jt", "jo", microscope_type="cellvoyager", plate_format=96)
    registry.add_plate(eid, "P1")
    registry.add_acquisition(eid, "P1", "A1")
    registry.register_files(eid, "P1", "A1", tmp_path / "plate")
    for step in ("metaextract", "metaconfig", "imextract", "corilla"):
        run_step(eid, step)
    return eid


def truth(tmp_path: Path, well: str, site_y: int, site_x: int, kind: str) -> np.ndarray:
    """The simulator's label image of a site."""
    rows = list(csv.DictReader((tmp_path / "plate" / "ground_truth" / "sites.csv").open()))
    index = next(
        r["site"] for r in rows
        if r["well"] == well and int(r["grid_row"]) == site_y and int(r["grid_column"]) == site_x
    )  # fmt: skip
    return tifffile.imread(tmp_path / "plate" / "ground_truth" / f"{kind}_{well}_s{index}_t0.tif")


def mean_iou(found: np.ndarray, expected: np.ndarray) -> float:
    """Mean over true objects of the IoU with the found object overlapping it most."""
    scores = []
    for label in np.unique(expected[expected > 0]):
        mask = expected == label
        hits = found[mask]
        hits = hits[hits > 0]
        if hits.size == 0:
            scores.append(0.0)
            continue
        best = np.bincount(hits).argmax()
        other = found == best
        scores.append((mask & other).sum() / (mask | other).sum())
    return float(np.mean(scores))


def test_default_pipeline_finds_the_simulated_nuclei_and_cells(tmaps, tmp_path):
    # camera-sized sites: a few hundred nuclei each, so that 2 % is a real bound
    eid = make_experiment(tmp_path, wells=1, sites=2, size=(2160, 2560))
    run_step(eid, "jterator")
    with tm.utils.ExperimentSession(eid) as session:
        project = Project.load(get_step("jterator")(eid).project_location)
        loader = SiteLoader(session, project)
        kinds = {k.name: k for k in session.scalars(sa.select(tm.MapobjectType))}
        assert {"Nuclei", "Cells"} <= set(kinds)
        names = {f.name for f in kinds["Cells"].features}
        channels = [c.name for c in project.channels]
        for expected in (f"Intensity_mean_{channels[0]}", f"Intensity_mean_{channels[1]}",
                         "Morphology_Area"):  # fmt: skip
            assert expected in names, sorted(names)
        for site in session.scalars(sa.select(tm.Site)):
            nuclei_truth = truth(tmp_path, site.well.name, site.y, site.x, "nuclei")
            n_true = len(np.unique(nuclei_truth)) - 1
            n_found = session.scalar(
                sa.select(sa.func.count(tm.Mapobject.id)).where(
                    tm.Mapobject.partition_key == site.id,
                    tm.Mapobject.mapobject_type_id == kinds["Nuclei"].id,
                )
            )
            assert n_true > 300 and abs(n_found - n_true) <= 0.02 * n_true, (n_found, n_true)
            result = run_pipeline(project, loader.images(site.id, 0))
            assert mean_iou(result.objects["Nuclei"], nuclei_truth) >= 0.8
            cells_truth = truth(tmp_path, site.well.name, site.y, site.x, "cells")
            assert mean_iou(result.objects["Cells"], cells_truth) >= 0.7

    out = io.BytesIO()
    rows = write_features_csv(eid, "Cells", out)
    table = list(csv.DictReader(io.StringIO(out.getvalue().decode())))
    assert len(table) == rows > 0
    assert {"plate", "well", "site_y", "site_x", "label", "Morphology_Area"} <= set(table[0])
    assert all(float(r["Morphology_Area"]) > 0 for r in table)


def test_default_pipeline_on_one_channel(tmaps, tmp_path):
    # nuclei and cells then come from the same channel: its intensities are measured once
    eid = make_experiment(tmp_path, wells=1, sites=1, size=128, channels=1)
    assert run_step(eid, "jterator") == 1  # one run job; it would raise on a failed site
    with tm.utils.ExperimentSession(eid) as session:
        cells = session.scalar(sa.select(tm.MapobjectType).where(tm.MapobjectType.name == "Cells"))
        names = [f.name for f in cells.features]
    intensity = [n for n in names if n.startswith("Intensity_mean")]
    assert len(intensity) == 1 and len(names) == len(set(names))


def test_rerun_replaces_objects_and_a_failing_site_saves_nothing(tmaps, tmp_path):
    eid = make_experiment(tmp_path, wells=1, sites=2, size=128)
    run_step(eid, "jterator", batch_size=2)

    def counts() -> dict[int, int]:
        with tm.utils.ExperimentSession(eid) as session:
            return dict(
                session.execute(
                    sa.select(tm.Mapobject.partition_key, sa.func.count(tm.Mapobject.id))
                    .join(tm.MapobjectType)
                    .where(tm.MapobjectType.name == "Nuclei")
                    .group_by(tm.Mapobject.partition_key)
                ).all()
            )

    first = counts()
    assert len(first) == 2
    step = get_step("jterator")(eid)
    step.run(1)  # the job again: the same objects, not twice as many
    assert counts() == first

    # a module that fails on one site: that site has nothing, the other is saved
    location = step.project_location
    (location / "fragile.py").write_text(
        "import collections\nVERSION = '0.0.1'\nOutput = collections.namedtuple('Output', "
        "['image'])\ndef main(image):\n    if image.mean() > THRESHOLD:\n"
        "        raise ValueError('too bright')\n    return Output(image)\n"
    )
    with tm.utils.ExperimentSession(eid) as session:
        sites = sorted(session.scalars(sa.select(tm.Site.id)))
        means = {}
        for site_id in sites:
            plane = session.scalars(
                sa.select(tm.ChannelImageFile).where(tm.ChannelImageFile.site_id == site_id)
            ).first()
            means[site_id] = plane.get().mean()
    code = (location / "fragile.py").read_text()
    (location / "fragile.py").write_text(
        code.replace("THRESHOLD", repr(float(np.mean(list(means.values())))))
    )
    pipeline = yaml.safe_load((location / "pipeline.yaml").read_text())
    channel = pipeline["input"]["channels"][0]["name"]
    (location / "handles" / "fragile.handles.yaml").write_text(yaml.safe_dump({
        "version": "0.0.1",
        "input": [{"name": "image", "type": "IntensityImage", "key": channel, "help": "in"}],
        "output": [{"name": "image", "type": "IntensityImage", "key": "fragile.image",
                    "help": "out"}],
    }))  # fmt: skip
    pipeline["pipeline"].insert(0, {"source": "./fragile.py",
                                    "handles": "handles/fragile.handles.yaml"})  # fmt: skip
    (location / "pipeline.yaml").write_text(yaml.safe_dump(pipeline))
    ok(cli("jterator", eid, "init", "-b", "2"))
    result = cli("jterator", eid, "run", "-j", "1")
    assert result.returncode != 0
    assert "module fragile raised ValueError: too bright" in result.stderr
    assert "Traceback" in result.stderr
    saved = counts()
    bright = max(means, key=means.get)
    assert bright not in saved
    assert saved == {s: n for s, n in first.items() if s != bright}


def test_bad_projects_and_commands(tmaps, tmp_path):
    eid = make_experiment(tmp_path, wells=1, sites=1, size=128)
    line = one_error_line(cli("jterator", eid, "check"))
    assert "no jterator pipeline" in line and "create" in line
    ok(cli("jterator", eid, "create"))
    assert "exists" in one_error_line(cli("jterator", eid, "create"))
    ok(cli("jterator", eid, "create", "--force"))
    ok(cli("jterator", eid, "check"))
    line = one_error_line(cli("jterator", eid, "init", "--plot", "-b", "4"))
    assert "--plot needs --batch-size 1" in line
    location = get_step("jterator")(eid).project_location
    handles = location / "handles" / "threshold_otsu.handles.yaml"
    data = yaml.safe_load(handles.read_text())
    data["input"][0]["key"] = "nothing.here"
    handles.write_text(yaml.safe_dump(data))
    line = one_error_line(cli("jterator", eid, "init"))
    assert "module threshold_otsu, handle image" in line and "'nothing.here'" in line
    line = one_error_line(cli("jterator", eid, "export-features", "--objects", "Cells", "-o",
                              tmp_path / "x.csv"))  # fmt: skip
    assert "no objects 'Cells'" in line
    assert not (tmp_path / "x.csv").exists()


def test_objects_of_an_earlier_pipeline_are_inputs_of_the_next(tmaps, tmp_path):
    eid = make_experiment(tmp_path, wells=1, sites=2, size=128)
    step = get_step("jterator")(eid)
    run_step(eid, "jterator")
    out = ok(cli("jterator", eid, "debug", "--site", 1, "--plot"))
    assert "Nuclei:" in out.stdout and "Cells:" in out.stdout
    figures = sorted(step.figures_location.glob("*_1.json"))
    assert figures and all("data" in json.loads(f.read_text()) for f in figures)

    # a second project: rings around the nuclei found by the first
    library = Path(jtmodules.__file__).parent
    location = step.project_location
    handles = {
        "expand": yaml.safe_load((library / "expand_or_shrink.handles.yaml").read_text()),
        "register_rings": yaml.safe_load((library / "register_objects.handles.yaml").read_text()),
    }
    handles["expand"]["input"][0]["key"] = "Nuclei"
    handles["expand"]["input"][1]["value"] = 3
    handles["register_rings"]["input"][0]["key"] = "expand_or_shrink.expanded_image"
    handles["register_rings"]["output"][0]["key"] = "Rings"
    for name, data in handles.items():
        (location / "handles" / f"{name}.handles.yaml").write_text(yaml.safe_dump(data))
    channel = yaml.safe_load((location / "pipeline.yaml").read_text())["input"]["channels"][0]
    (location / "pipeline.yaml").write_text(yaml.safe_dump({
        "input": {"channels": [channel], "objects": [{"name": "Nuclei"}]},
        "pipeline": [
            {"source": "expand_or_shrink.py", "handles": "handles/expand.handles.yaml"},
            {"source": "register_objects.py", "handles": "handles/register_rings.handles.yaml"},
        ],
        "output": {"objects": [{"name": "Rings"}]},
    }))  # fmt: skip
    run_step(eid, "jterator")
    with tm.utils.ExperimentSession(eid) as session:
        counts = dict(
            session.execute(
                sa.select(tm.MapobjectType.name, sa.func.count(tm.Mapobject.id))
                .join(tm.Mapobject)
                .group_by(tm.MapobjectType.name)
            ).all()
        )
        # the input objects were kept; the first run's cells were replaced
        assert counts["Rings"] == counts["Nuclei"] > 0 and "Cells" not in counts
        nucleus, ring = (
            session.scalars(
                sa.select(tm.MapobjectSegmentation)
                .join(tm.Mapobject)
                .join(tm.MapobjectType)
                .where(tm.MapobjectType.name == name)
                .order_by(tm.MapobjectSegmentation.partition_key, tm.MapobjectSegmentation.label)
            ).first()
            for name in ("Nuclei", "Rings")
        )
        assert ring.geom_polygon.contains(nucleus.geom_centroid)
        assert ring.geom_polygon.area > nucleus.geom_polygon.area
