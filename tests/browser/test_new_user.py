"""A new user, from an empty account to classified cells, using only the browser.

The installation is new (SQLite, no experiment), with one user made by the administrator
(``tm_add user``). Everything else happens in the page, as a user who never opens a
terminal would do it: log in, create an experiment, upload a simulated plate (CellVoyager,
2 wells x 2 sites x 2 channels), submit the workflow and watch it end, build the analysis
pipeline in the jterator editor (smooth -> threshold -> label -> register objects ->
measure), check it, run it on two sites, save it, resubmit the image analysis stage, open
the viewer, put four nuclei into two selections and classify all the nuclei.

The test reads the server only to check what the page did (files arrived, the classifier's
labels) and the simulation's ground truth to know where the nuclei are on the map.
"""

from __future__ import annotations

import csv
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from .synthetic import Installation, served_installation, simulate_plate
from .ui import TIMEOUT_MS, log_in, rendered, screen_point

USER, PASSWORD = "newcomer", "first-day-pw"
EXPERIMENT = "my first screen"
PLATE, ACQUISITION = "plate 1", "run 1"
WELLS = ("A01", "A02")
SIMULATION = ("--microscope", "cellvoyager", "--plate-format", "96", "--wells", "2",
              "--sites", "2", "--channels", "2", "--size", "160x160")  # fmt: skip
#: the object type the user's pipeline registers (the default pipeline makes Nuclei and Cells)
OBJECT_TYPE = "Blobs"
#: a whole workflow of four small sites on a busy 2-core machine
RUN_TIMEOUT_MS = 400_000
STAGES = ("image_conversion", "image_preprocessing", "pyramid_creation", "image_analysis")


@dataclass(frozen=True)
class Nucleus:
    well: str
    site: int
    label: int
    y: float
    x: float


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    with served_installation(tmp_path_factory.mktemp("new_user"), {USER: PASSWORD}) as site:
        yield site


@pytest.fixture(scope="module")
def plate_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulate_plate(tmp_path_factory.mktemp("microscope") / "plate", *SIMULATION)


def nuclei(plate_dir: Path) -> list[Nucleus]:
    """The simulated nuclei (ground truth: well, site, label and centre in site pixels)."""
    with open(plate_dir / "ground_truth" / "cells.csv") as f:
        return [
            Nucleus(r["well"], int(r["site"]), int(r["cell_label"]), float(r["y"]), float(r["x"]))
            for r in csv.DictReader(f)
        ]


def isolated_nucleus(candidates: list[Nucleus], size: int) -> Nucleus:
    """The nucleus farthest from its neighbours and at least 20 px from the image's edges:
    a click on its centre hits it and nothing else, however the pipeline splits clusters."""

    def room(n: Nucleus) -> float:
        others = [(n.x - o.x) ** 2 + (n.y - o.y) ** 2 for o in candidates if o != n]
        return min(others, default=float("inf"))

    inside = [n for n in candidates if 20 <= n.x <= size - 20 and 20 <= n.y <= size - 20]
    return max(inside, key=room)


def map_point(layout: dict, site_grid: dict, nucleus: Nucleus) -> tuple[float, float]:
    """Where a nucleus lies on the whole-plate map, from the server's layout (as the
    viewer's readout uses it) and the simulation's site grid."""
    row, column = site_grid[nucleus.well, nucleus.site]
    well_index = next(n for n, w in enumerate(layout["wells"]) if w["name"] == nucleus.well)
    sites = layout["sites"]
    for n, well in enumerate(sites["well"]):
        if well == well_index and sites["x"][n] == column and sites["y"][n] == row:
            x, y = sites["box"][n][:2]
            return x + nucleus.x, y + nucleus.y
    raise AssertionError(f"no site at {nucleus} in the layout")


def site_grid(plate_dir: Path) -> dict[tuple[str, int], tuple[int, int]]:
    with open(plate_dir / "ground_truth" / "sites.csv") as f:
        return {
            (r["well"], int(r["site"])): (int(r["grid_row"]), int(r["grid_column"]))
            for r in csv.DictReader(f)
        }


def shot(page, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"new_user.{name}.png"))


# --------------------------------------------------------------------------- the screens


def create_experiment(page) -> int:
    page.locator("[data-testid=no-experiments]").wait_for(timeout=TIMEOUT_MS)  # empty account
    page.click("[data-testid=create-experiment]")
    dialog = page.locator("[data-testid=create-dialog]")
    dialog.locator("input[name=name]").fill(EXPERIMENT)
    dialog.locator("select[name=microscope_type]").select_option("cellvoyager")
    dialog.locator("select[name=plate_format]").select_option("96")
    dialog.locator("button[type=submit]").click()
    row = page.locator("[data-testid=experiment-row]", has_text=EXPERIMENT)
    row.wait_for(timeout=TIMEOUT_MS)
    row.locator("[data-testid=open-upload]").click()
    page.wait_for_url("**/experiments/*/upload", timeout=TIMEOUT_MS)
    return int(page.url.rsplit("/", 2)[-2])


def upload_plate(page, plate_dir: Path, artifacts: Path) -> None:
    page.locator("[data-testid=no-plates]").wait_for(timeout=TIMEOUT_MS)
    page.click("[data-testid=add-plate]")
    page.fill("[data-testid=create-plate-dialog] [data-testid=name-input]", PLATE)
    page.click("[data-testid=create-plate-dialog] [data-testid=create-submit]")
    plate = page.locator(f"[data-testid=plate-row][data-name='{PLATE}']")
    plate.locator("[data-testid=add-acquisition]").click()
    page.fill("[data-testid=create-acquisition-dialog] [data-testid=name-input]", ACQUISITION)
    page.click("[data-testid=create-acquisition-dialog] [data-testid=create-submit]")
    acquisition = plate.locator(f"[data-testid=acquisition-row][data-name='{ACQUISITION}']")
    acquisition.locator("[data-testid=open-acquisition]").click()
    page.locator("[data-testid=folder-input]").set_input_files(str(plate_dir))
    files = [p for p in plate_dir.iterdir() if p.is_file()]
    ready = page.locator("[data-testid=count-ready]", has_text=str(len(files)))
    ready.wait_for(timeout=TIMEOUT_MS)
    page.click("[data-testid=start-upload]")
    page.locator("[data-testid=count-complete]", has_text=str(len(files))).wait_for(
        timeout=TIMEOUT_MS
    )
    shot(page, artifacts, "upload")
    page.click("[data-testid=back-to-plates]")
    status = acquisition.locator("[data-testid=status]", has_text="ready for processing")
    status.wait_for(timeout=TIMEOUT_MS)


def wait_until_stages_done(page, stages: tuple[str, ...] = STAGES) -> None:
    for stage in stages:
        page.locator(f"[data-testid=stage-tab][data-name={stage}][data-state=done]").wait_for(
            timeout=RUN_TIMEOUT_MS
        )
    page.locator("[data-testid=workflow-state][data-state=TERMINATED]").wait_for(
        timeout=RUN_TIMEOUT_MS
    )
    bar = page.locator("[data-testid=workflow-progress]")
    assert bar.get_attribute("data-failed") == "false"


def submit_workflow(page) -> None:
    page.click("[data-testid=experiment-nav] [data-testid=tab-workflow]")
    page.locator("[data-testid=stage-tab]").first.wait_for(timeout=TIMEOUT_MS)
    page.locator("[data-testid=submit]:not([disabled])").wait_for(timeout=TIMEOUT_MS)
    page.click("[data-testid=submit]")
    page.click("[data-testid=confirm-submit]")
    page.locator("[data-testid=submit-dialog]").wait_for(state="detached", timeout=TIMEOUT_MS)
    wait_until_stages_done(page)


def select_setting(settings, handle: str, value: str) -> None:
    settings.locator(f"[data-testid=input-{handle}]").select_option(value)


def settings_of(page, name: str):
    page.locator(f"[data-testid=pipeline-module][data-name='{name}'] .name").click()
    settings = page.locator(f"[data-testid=module-settings][data-module='{name}']")
    settings.wait_for(timeout=TIMEOUT_MS)
    return settings


def add_module(page, name: str) -> None:
    page.fill("[data-testid=module-search]", name)
    page.locator(
        f"[data-testid=available-module][data-name='{name}'] [data-testid=add-module]"
    ).click()
    page.fill("[data-testid=module-search]", "")


def build_pipeline(page, artifacts: Path) -> None:
    """smooth -> threshold_otsu -> label -> register_objects -> measure_morphology on the
    nuclei channel; checked, run on two sites, saved."""
    page.click("[data-testid=stage-tab][data-name=image_analysis]")
    page.click("[data-testid=edit-pipeline]")
    page.locator("[data-testid=available-module]").first.wait_for(timeout=TIMEOUT_MS)
    channels = page.locator("[data-testid=input-channel]").evaluate_all(
        "rows => rows.map(r => r.dataset.name)"
    )
    assert len(channels) == 2, channels  # the experiment's channels, from the workflow
    nuclei_channel = channels[0]
    # the first run made and ran the default pipeline: the user replaces it with their own
    page.locator("[data-testid=pipeline-module]").first.wait_for(timeout=TIMEOUT_MS)
    while page.locator("[data-testid=pipeline-module]").count():
        page.locator("[data-testid=remove-module]").first.click()
    while page.locator("[data-testid=remove-output]").count():
        page.locator("[data-testid=remove-output]").first.click()
    for name in ("smooth", "threshold_otsu", "label", "register_objects", "measure_morphology"):
        add_module(page, name)
    select_setting(settings_of(page, "smooth"), "image", nuclei_channel)
    select_setting(settings_of(page, "threshold_otsu"), "image", "smooth.smoothed_image")
    select_setting(settings_of(page, "label"), "mask", "threshold_otsu.mask")
    register = settings_of(page, "register_objects")
    select_setting(register, "mask", "label.label_image")
    output = register.locator("[data-testid=output-objects]")
    output.fill(OBJECT_TYPE)
    output.press("Tab")
    select_setting(settings_of(page, "measure_morphology"), "extract_objects", OBJECT_TYPE)
    page.select_option("[data-testid=output-choice]", OBJECT_TYPE)
    page.click("[data-testid=add-output]")

    page.click("[data-testid=check]")
    page.locator("[data-testid=pipeline-notice]", has_text="passed the check").wait_for(
        timeout=TIMEOUT_MS
    )
    page.click("[data-testid=run]")
    rows = page.locator("[data-testid=job-row]")
    rows.first.wait_for(timeout=TIMEOUT_MS)
    assert rows.count() == 4  # the sites
    rows.nth(3).locator("[data-testid=choose-job]").check()  # the first is chosen already
    page.click("[data-testid=run-jobs]")
    page.wait_for_function(
        """() => [...document.querySelectorAll('[data-testid=job-result]')]
                 .filter(r => r.dataset.state === 'ok').length === 2""",
        timeout=RUN_TIMEOUT_MS,
    )
    shot(page, artifacts, "pipeline")
    page.click("[data-testid=save]")
    page.locator("[data-testid=pipeline-notice]", has_text="Saved.").wait_for(timeout=TIMEOUT_MS)


def resubmit_analysis(page, site: Installation, base: str) -> None:
    before = get(site, f"{base}/workflow/status")["id"]
    page.click("[data-testid=experiment-nav] [data-testid=tab-workflow]")
    page.locator("[data-testid=resubmit]:not([disabled])").wait_for(timeout=TIMEOUT_MS)
    page.click("[data-testid=resubmit]")
    dialog = page.locator("[data-testid=resubmit-dialog]")
    dialog.locator("[data-testid=resubmit-stage]").select_option("image_analysis")
    dialog.locator("[data-testid=confirm-resubmit]").click()
    dialog.wait_for(state="detached", timeout=TIMEOUT_MS)
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while True:  # the new submission's end, on the server
        status = get(site, f"{base}/workflow/status")
        if status["id"] != before and status["state"] == "TERMINATED":
            break
        assert time.monotonic() < deadline, status
        time.sleep(1)
    # and on the page, which polls (a resubmission runs only its stages)
    wait_until_stages_done(page, ("image_analysis",))
    assert page.locator("[data-testid=workflow-progress]").get_attribute("aria-valuenow") == "100"


def click_nucleus(page, point: tuple[float, float]) -> None:
    """Centre the map on a point (as a user pans there) and click it."""
    x, y = point
    page.evaluate(
        "([x, y]) => window.__tmViewer.map.getView().setCenter([x, -y])", [x + 0.5, y + 0.5]
    )
    rendered(page)
    with page.expect_response(lambda r: "/members" in r.url, timeout=TIMEOUT_MS):
        page.mouse.click(*screen_point(page, x, y))


def classify(page, points: list[list[tuple[float, float]]]) -> None:
    page.click("[data-testid=experiment-nav] [data-testid=tab-viewer]")
    page.wait_for_function("() => window.__tmViewer !== undefined", timeout=TIMEOUT_MS)
    objects = page.locator(f"[data-testid=object-row][data-type='{OBJECT_TYPE}']")
    objects.wait_for(timeout=TIMEOUT_MS)
    objects.locator("[data-testid=object-visible]").check()
    # full resolution: one image pixel per screen pixel
    page.evaluate("() => window.__tmViewer.map.getView().setResolution(1)")
    rendered(page)
    page.locator("[data-testid=selection-type]").select_option(label=OBJECT_TYPE)
    selections = page.locator("[data-testid=selection-row]")
    for n, group in enumerate(points):
        page.click("[data-testid=new-selection]")
        selections.nth(n).wait_for(timeout=TIMEOUT_MS)
        for point in group:
            click_nucleus(page, point)
    counts = selections.locator("[data-testid=selection-count]").all_inner_texts()
    assert counts == ["2", "2"], counts

    page.click("[data-testid=tool-button][data-tool=Classification]")
    window = page.locator("[data-testid=tool-window][data-tool=Classification]")
    window.locator("[data-testid=tool-type]").select_option(label=OBJECT_TYPE)
    window.locator("[data-testid=select-all-features]").click()
    window.locator("[data-testid=tool-method]").select_option("randomforest")
    window.locator("input[type=number]").fill("2")  # 2 objects per class: 2 folds
    window.locator("input[type=number]").dispatch_event("change")
    window.locator("[data-testid=tool-submit]").click()
    window.locator("[data-testid=tool-message]").wait_for(timeout=RUN_TIMEOUT_MS)
    assert not window.locator("[data-testid=tool-error]").count()
    legend = page.locator("[data-testid=legend]")
    legend.wait_for(timeout=TIMEOUT_MS)
    window.locator("button[title=Close]").click()


# --------------------------------------------------------------------------------- test


def test_from_an_empty_account_to_classified_cells(
    page, installation, plate_dir, browser_artifacts
) -> None:
    site = installation
    log_in(page, site, USER)
    experiment_id = create_experiment(page)
    upload_plate(page, plate_dir, browser_artifacts)
    base = f"/api/experiments/{experiment_id}"
    (acquisition,) = get(site, f"{base}/acquisitions")
    names = [f["name"] for f in get(site, f"{base}/acquisitions/{acquisition['id']}/images")]
    assert len(names) == 8

    submit_workflow(page)
    shot(page, browser_artifacts, "workflow")
    build_pipeline(page, browser_artifacts)
    types = f"{base}/mapobject_types"
    assert OBJECT_TYPE not in [t["name"] for t in get(site, types)]
    resubmit_analysis(page, site, base)
    assert OBJECT_TYPE in [t["name"] for t in get(site, types)]

    truth = nuclei(plate_dir)
    layout = get(site, f"{base}/layout")
    grid = site_grid(plate_dir)
    size = 160
    # class 1: a nucleus of each site of A01; class 2: of each site of A02
    groups = [
        [
            map_point(layout, grid, isolated_nucleus(
                [n for n in truth if n.well == well and n.site == s], size))
            for s in (0, 1)
        ]
        for well in WELLS
    ]  # fmt: skip
    classify(page, groups)
    shot(page, browser_artifacts, "classified")

    # every object the pipeline found got one of the two classes
    (result,) = get(site, f"{base}/tools/results")
    assert result["tool_name"] == "Classification", result
    (blobs,) = [t for t in get(site, f"{base}/mapobject_types") if t["name"] == OBJECT_TYPE]
    feature = get(site, f"{base}/mapobject_types/{blobs['id']}/features")[0]
    objects = values(site, f"{base}/mapobject_types/{blobs['id']}", feature_id=feature["id"])
    labels = values(site, f"{base}/mapobject_types/{blobs['id']}", tool_result_id=result["id"])
    assert len(objects) == len(labels) > 20
    assert len(set(labels)) == 2
    legend = page.locator("[data-testid=legend]").inner_text()
    counts = [int(n) for n in re.findall(r"\((\d+)\)", legend)]
    assert "Class_0" in legend and "Class_1" in legend, legend
    assert sum(counts) == len(objects), legend
    assert not page.page_errors, page.page_errors


def get(site: Installation, path: str) -> object:
    return site.call("GET", path)["data"]


def values(site: Installation, path: str, **query) -> list[float]:
    """One value per object from the binary values route (ids, then float32 values)."""
    response = site.server.call("GET", f"{path}/values", site.login(USER), params=query)
    assert response.status_code == 200, response.text  # binary: not through site.call
    count = int(response.headers["X-Count"])
    width = np.dtype(response.headers["X-Id-Dtype"]).itemsize
    return np.frombuffer(response.content[count * width :], "<f4").tolist()
