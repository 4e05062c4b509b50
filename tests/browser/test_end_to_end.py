"""End to end: log in, select objects into two classes, classify, see the result, reload."""

from __future__ import annotations

from .synthetic import OBJECT_TYPE
from .ui import (
    TIMEOUT_MS,
    at_full_resolution,
    colour_at,
    hex_rgb,
    log_in,
    near,
    rendered,
    screen_point,
    screenshot,
)

#: the first two selections' colours (ColorBrewer Set1)
COLOURS = ("#e41a1c", "#377eb8")
#: left and right squares: the ramp of c1 tells them apart
CLASSES = (("A01-1", "A01-3"), ("A01-2", "A01-4"))


def click_square(page, site, name: str) -> None:
    with page.expect_response(lambda r: "/members" in r.url, timeout=TIMEOUT_MS):
        page.mouse.click(*screen_point(page, *site.square(name).box.center))


def test_classify_selected_objects_and_find_the_selections_after_a_reload(
    page, viewer_site
) -> None:
    site = viewer_site
    token = site.login(site.owner)
    base = f"/api/experiments/{site.experiment_id}/selections"
    for selection in site.server.call("GET", base, token).json()["data"]:
        site.server.call("DELETE", f"{base}/{selection['id']}", token)
    view = at_full_resolution(256, 256, objects=OBJECT_TYPE)
    log_in(page, site, site.owner, path=f"/viewer/{site.experiment_id}?test=1&{view}")
    page.wait_for_function("() => window.__tmViewer !== undefined", timeout=TIMEOUT_MS)
    rendered(page)
    selections = page.locator("[data-testid=selection-row]")
    for n, names in enumerate(CLASSES):
        page.click("[data-testid=new-selection]")  # the new selection becomes the active one
        selections.nth(n).wait_for(timeout=TIMEOUT_MS)
        for name in names:
            click_square(page, site, name)
    assert selections.locator("[data-testid=selection-count]").all_inner_texts() == ["2", "2"]

    page.click("[data-testid=tool-button][data-tool=Classification]")
    window = page.locator("[data-testid=tool-window][data-tool=Classification]")
    window.locator("[data-testid=select-all-features]").click()
    window.locator("[data-testid=tool-method]").select_option("svm")
    window.locator("input[type=number]").fill("2")  # 2 objects per class: 2 folds
    window.locator("input[type=number]").dispatch_event("change")
    window.locator("[data-testid=tool-submit]").click()
    window.locator("[data-testid=tool-spinner]").wait_for(timeout=TIMEOUT_MS)
    window.locator("[data-testid=tool-message]").wait_for(timeout=120_000)
    assert not window.locator("[data-testid=tool-error]").count()
    page.locator("[data-testid=results-panel] [data-testid=result-row]").wait_for()
    legend = page.locator("[data-testid=legend]")
    legend.wait_for(timeout=TIMEOUT_MS)
    assert "Class_0" in legend.inner_text() and "Class_1" in legend.inner_text()
    window.locator("button[title=Close]").click()  # it covers part of the map
    rendered(page)
    # the training objects are filled with their class's colour (result opacity 0.8 on
    # black), seen beside the markers (which stand above the click points, the centres)
    image = screenshot(page)
    for names, colour in zip(CLASSES, COLOURS, strict=True):
        for name in names:
            box = site.square(name).box
            x, y = box.x + 5, box.bottom - 6
            assert near(colour_at(page, x, y, image), hex_rgb(colour) * 0.8, 12), name

    page.reload()
    page.wait_for_function("() => window.__tmViewer !== undefined", timeout=TIMEOUT_MS)
    selections.nth(1).wait_for(timeout=TIMEOUT_MS)
    assert selections.locator("[data-testid=selection-count]").all_inner_texts() == ["2", "2"]
    assert page.locator("[data-testid=saved-results-panel] [data-testid=result-row]").count() == 1
