"""The viewer's analysis tools in a browser: heat map, clustering, their errors and results.

Tools run for real (a ``tm_tool`` job per request) unless a test says it stubs
responses. A result's layer fills the objects with opacity 0.8 over the map;
with every channel hidden the map is black, so a fill pixel is the colour
times the opacity.
"""

from __future__ import annotations

import json
import re

import numpy as np

from .synthetic import OBJECT_TYPE
from .ui import (
    TIMEOUT_MS,
    at_full_resolution,
    colour_at,
    hex_rgb,
    near,
    open_viewer,
    rendered,
    screenshot,
)

#: a job's time: the tool's process starts, imports and computes
JOB_TIMEOUT_MS = 120_000
#: the opacity of a new result's layer
RESULT_OPACITY = 0.8
#: the centre of a view (at full resolution) that shows all squares of well A01
A01_VIEW = (256, 256)
#: ColorBrewer Paired, the cluster colours by label
CLUSTER_COLOURS = ("#1f78b4", "#33a02c")


def fill_point(square) -> tuple[int, int]:
    """A pixel inside a square, off its centre (where a selection marker would stand)."""
    return square.box.x + 5, square.box.bottom - 6


def open_tool(page, tool: str):
    page.click(f"[data-testid=tool-button][data-tool={tool}]")
    window = page.locator(f"[data-testid=tool-window][data-tool={tool}]")
    window.wait_for(timeout=TIMEOUT_MS)
    return window


def choose_feature(window, feature: str) -> None:
    window.locator("[data-testid=feature-item]").get_by_text(feature, exact=True).click()


def submit_and_wait(window) -> str:
    """Submit the tool's request, wait for the job's end; the result's name."""
    window.locator("[data-testid=tool-submit]").click()
    message = window.locator("[data-testid=tool-message]")
    message.wait_for(timeout=JOB_TIMEOUT_MS)
    assert not window.locator("[data-testid=tool-error]").count()
    found = re.fullmatch(r'Done: result "(.+)"\.', message.inner_text())
    assert found, message.inner_text()
    return found.group(1)


def set_k(window, k: int) -> None:
    field = window.locator("[data-testid=cluster-k]")
    field.fill(str(k))
    field.dispatch_event("change")


def api_results(site) -> list[dict]:
    token = site.login(site.owner)
    response = site.server.call(
        "GET", f"/api/experiments/{site.experiment_id}/tools/results", token
    )
    assert response.status_code == 200, response.text
    return response.json()["data"]


def result_labels(site, result_id: str) -> dict[int, float]:
    """mapobject id -> value of a tool result, from the binary values route."""
    token = site.login(site.owner)
    type_id = site.mapobject_types[OBJECT_TYPE]
    response = site.server.call(
        "GET",
        f"/api/experiments/{site.experiment_id}/mapobject_types/{type_id}/values",
        token,
        params={"tool_result_id": result_id},
    )
    assert response.status_code == 200, response.text
    count = int(response.headers["X-Count"])
    id_type = "<f8" if response.headers.get("X-Id-Dtype") == "float64" else "<u4"
    ids = np.frombuffer(response.content, id_type, count)
    values = np.frombuffer(response.content, "<f4", count, offset=ids.nbytes)
    return {int(i): float(v) for i, v in zip(ids, values, strict=True)}


def heat_colour(value: float, low: float, high: float) -> np.ndarray:
    """The colour of `value` in the colour map "white-red" from `low` to `high`."""
    t = (value - low) / (high - low)
    return np.array([255, round(255 * (1 - t)), round(255 * (1 - t))])


def run_heatmap(page, site, feature: str = "Morphology_Area") -> str:
    """Open the viewer on well A01 (channels and outlines hidden), run a heat map of
    `feature`, close the tool window (it covers the map's left part); the result's name."""
    open_viewer(page, site, at_full_resolution(*A01_VIEW))
    window = open_tool(page, "Heatmap")
    choose_feature(window, feature)
    name = submit_and_wait(window)
    page.locator("[data-testid=results-panel] [data-testid=result-row]").wait_for(
        timeout=TIMEOUT_MS
    )
    page.locator("[data-testid=legend]").wait_for(timeout=TIMEOUT_MS)
    window.locator("button[title=Close]").click()
    rendered(page)
    return name


def test_a_heat_map_fills_the_objects_from_white_to_red(owner_page, viewer_site) -> None:
    page, site = owner_page, viewer_site
    name = run_heatmap(page, site)
    (result,) = api_results(site)
    assert (result["name"], result["tool_name"]) == (name, "Heatmap")
    areas = [s.area for s in site.squares]
    low, high = min(areas), max(areas)
    assert result["attributes"]["min"] == low and result["attributes"]["max"] == high
    # the legend: the result's name, a colour bar from white to red, the feature's range
    legend = page.locator("[data-testid=legend]")
    assert legend.locator(".title").inner_text() == name
    ends = [float(t) for t in legend.locator(".range span").all_inner_texts()]
    assert ends == [float(f"{low:.3g}"), float(f"{high:.3g}")], ends
    image = screenshot(page)
    bar = legend.locator(".colorbar").bounding_box()
    middle = round(bar["y"] + bar["height"] / 2)
    assert near(image[middle, round(bar["x"]) + 2], (255, 255, 255), 8)
    assert near(image[middle, round(bar["x"] + bar["width"]) - 3], (255, 0, 0), 8)
    # every square of A01 in its colour: the smallest square white, the largest red
    shown = site.squares_of("A01")
    smallest = min(shown, key=lambda s: s.area)
    largest = max(shown, key=lambda s: s.area)
    assert (smallest.area, largest.area) == (low, high)
    assert near(colour_at(page, *fill_point(smallest), image), (204, 204, 204), 4)
    assert near(colour_at(page, *fill_point(largest), image), (204, 0, 0), 4)
    for square in shown:
        expected = heat_colour(square.area, low, high) * RESULT_OPACITY
        assert near(colour_at(page, *fill_point(square), image), expected, 4), square.name
    # outside the objects: nothing
    beside = (smallest.box.x - 10, smallest.box.y + 10)
    assert near(colour_at(page, *beside, image), (0, 0, 0), 2)


def test_clustering_makes_k_clusters_of_all_objects(owner_page, viewer_site) -> None:
    page, site = owner_page, viewer_site
    open_viewer(page, site, at_full_resolution(*A01_VIEW))
    window = open_tool(page, "Clustering")
    set_k(window, 2)
    window.locator("[data-testid=select-all-features]").click()
    assert window.locator("[data-testid=feature-item].chosen").count() == len(site.features)
    name = submit_and_wait(window)
    legend = page.locator("[data-testid=legend]")
    legend.wait_for(timeout=TIMEOUT_MS)
    assert legend.locator(".title").inner_text() == name
    entries = legend.locator(".entry")
    assert entries.count() == 2
    counts, colours = {}, {}
    for i in range(entries.count()):
        found = re.fullmatch(r"cluster (\d+)\s*\((\d+)\)", entries.nth(i).inner_text().strip())
        assert found, entries.nth(i).inner_text()
        label = int(found.group(1))
        counts[label] = int(found.group(2))
        style = entries.nth(i).locator(".flag").get_attribute("style")
        colours[label] = np.array([int(v) for v in re.findall(r"\d+", style)[:3]])
    assert sorted(counts) == [0, 1] and all(counts.values())
    assert sum(counts.values()) == len(site.squares)
    for label, colour in colours.items():
        assert near(colour, hex_rgb(CLUSTER_COLOURS[label]), 0)
    # the server's labels agree with the legend, and each square has its cluster's colour
    (result,) = api_results(site)
    labels = result_labels(site, result["id"])
    assert sorted(labels) == sorted(s.mapobject_id for s in site.squares)
    assert {k: list(labels.values()).count(k) for k in counts} == counts
    window.locator("button[title=Close]").click()
    rendered(page)
    image = screenshot(page)
    for square in site.squares_of("A01"):
        expected = colours[int(labels[square.mapobject_id])] * RESULT_OPACITY
        assert near(colour_at(page, *fill_point(square), image), expected, 4), square.name


def test_a_refused_request_shows_the_servers_message(owner_page, viewer_site) -> None:
    page, site = owner_page, viewer_site
    token = site.login(site.owner)
    jobs = f"/api/experiments/{site.experiment_id}/tools/jobs"
    before = site.server.call("GET", jobs, token).json()["data"]
    open_viewer(page, site, at_full_resolution(*A01_VIEW))
    window = open_tool(page, "Clustering")
    k = len(site.squares) + 1  # more clusters than objects
    set_k(window, k)
    window.locator("[data-testid=select-all-features]").click()
    with page.expect_response(lambda r: r.url.endswith("/tools/request")) as answer:
        window.locator("[data-testid=tool-submit]").click()
    assert answer.value.status == 400
    error = window.locator("[data-testid=tool-error]")
    error.wait_for(timeout=TIMEOUT_MS)
    assert f"cannot make {k} clusters of {len(site.squares)} objects" in error.inner_text()
    assert error.inner_text() == answer.value.json()["error"]["message"]
    assert window.locator("[data-testid=tool-spinner]").count() == 0
    assert window.locator("[data-testid=tool-submit]").is_enabled()  # one may try again
    assert page.locator("[data-testid=results-panel] [data-testid=result-row]").count() == 0
    # nothing was submitted
    assert site.server.call("GET", jobs, token).json()["data"] == before
    assert api_results(site) == []


def test_a_job_that_fails_shows_the_error_line_of_its_log(owner_page, viewer_site) -> None:
    """The job's failure is stubbed: ``page.route`` answers the request (a made-up
    submission), the job's state (TERMINATED, exit code 1) and its log, so no job runs
    and the test does not depend on a way to make a real one fail."""
    page, site = owner_page, viewer_site
    submission, job = "900001", "900002"
    error_line = "ValueError: the feature Morphology_Area has no finite value at site 3"
    log = {
        "stdout": "INFO loading the request\nINFO computing",
        "stderr": f"Traceback (most recent call last):\n  File tool.py, line 1\n{error_line}",
    }
    base = f"{site.base_url}/api/experiments/{site.experiment_id}/tools"
    state = {"id": job, "submission_id": submission, "name": "tool", "tool_name": "Heatmap",
             "state": "TERMINATED", "exitcode": 1, "failed": 1}  # fmt: skip
    stubs = {
        f"{base}/request": {"data": {"submission_id": submission}},
        f"{base}/jobs?submission_id={submission}": {"data": [state]},
        f"{base}/jobs/{job}/log": {"data": log},
    }
    answered: list[str] = []

    def answer(route) -> None:
        answered.append(route.request.url)
        body = json.dumps(stubs[route.request.url])
        route.fulfill(status=200, content_type="application/json", body=body)

    page.route(lambda url: url in stubs, answer)
    open_viewer(page, site, at_full_resolution(*A01_VIEW))
    window = open_tool(page, "Heatmap")
    choose_feature(window, "Morphology_Area")
    window.locator("[data-testid=tool-submit]").click()
    window.locator("[data-testid=tool-spinner]").wait_for(timeout=TIMEOUT_MS)
    error = window.locator("[data-testid=tool-error]")
    error.wait_for(timeout=TIMEOUT_MS)
    # the line that names the error, not the log's last line
    assert error.inner_text() == f"The job failed: {error_line}"
    assert window.locator("[data-testid=tool-spinner]").count() == 0
    assert page.locator("[data-testid=tool-button][data-tool=Heatmap] .spinner").count() == 0
    assert window.locator("[data-testid=tool-message]").count() == 0
    assert answered == list(stubs)
    assert page.locator("[data-testid=results-panel] [data-testid=result-row]").count() == 0


def test_the_current_result_can_be_hidden_faded_renamed_and_deleted(
    owner_page, viewer_site
) -> None:
    page, site = owner_page, viewer_site
    name = run_heatmap(page, site)
    (result,) = api_results(site)
    row = page.locator("[data-testid=results-panel] [data-testid=result-row]")
    assert row.get_attribute("data-name") == name
    largest = max(site.squares_of("A01"), key=lambda s: s.area)
    point = fill_point(largest)
    red = np.array([255, 0, 0])
    assert near(colour_at(page, *point), red * RESULT_OPACITY, 4)
    # hidden: back to the black map; shown again
    row.locator("[data-testid=result-visible]").uncheck()
    rendered(page)
    assert near(colour_at(page, *point), (0, 0, 0), 2)
    assert page.locator("[data-testid=legend]").count() == 0
    row.locator("[data-testid=result-visible]").check()
    rendered(page)
    assert near(colour_at(page, *point), red * RESULT_OPACITY, 4)
    # the opacity slider scales the fill
    for opacity in (0.4, 1.0, 0.25):
        row.locator("input[type=range]").fill(str(opacity))
        rendered(page)
        assert near(colour_at(page, *point), red * opacity, 4), opacity
    # renamed: the server has the new name
    changed = f"/tools/results/{result['id']}"
    row.locator("button[title=Rename]").click()
    field = row.locator("input.inline")
    field.fill("area heat map")
    with page.expect_response(
        lambda r: r.request.method == "PUT" and r.url.endswith(changed), timeout=TIMEOUT_MS
    ) as put:
        field.press("Enter")
    assert put.value.status == 200
    page.locator(
        "[data-testid=results-panel] [data-testid=result-row][data-name='area heat map']"
    ).wait_for(timeout=TIMEOUT_MS)
    assert [(r["id"], r["name"]) for r in api_results(site)] == [(result["id"], "area heat map")]
    # deleted: gone from the panel, the map and the server
    with page.expect_response(
        lambda r: r.request.method == "DELETE" and r.url.endswith(changed), timeout=TIMEOUT_MS
    ) as gone:
        row.locator("[data-testid=result-delete]").click()
    assert gone.value.status == 200
    row.wait_for(state="detached", timeout=TIMEOUT_MS)
    rendered(page)
    assert near(colour_at(page, *point), (0, 0, 0), 2)
    assert api_results(site) == []
