"""The viewer in a real browser: pixels on the screen, not only the DOM.

The synthetic experiment (see :mod:`.synthetic`) has bright squares in channel
c0 and a ramp in c1; at zoom 3 one image pixel is one screen pixel, so a map
pixel's colour on the screen can be computed from the known images.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from .synthetic import OBJECT_TYPE
from .ui import (
    TIMEOUT_MS,
    at_full_resolution,
    channel_row,
    colour_at,
    hex_rgb,
    near,
    object_row,
    open_settings,
    open_viewer,
    rendered,
    screen_point,
    screenshot,
    start_session,
)

#: JPEG tiles and the 8-bit path lose a few grey values
TOLERANCE = 6
RED, GREEN = (255, 0, 0), (0, 255, 0)


@pytest.fixture
def alice(page, viewer_site):
    """The page, with alice logged in and none of her selections left from other tests."""
    token = start_session(page, viewer_site, viewer_site.owner)
    base = f"/api/experiments/{viewer_site.experiment_id}/selections"
    for selection in viewer_site.server.call("GET", base, token).json()["data"]:
        viewer_site.server.call("DELETE", f"{base}/{selection['id']}", token)
    return page


def set_colour(page, channel: str, preset: str) -> None:
    row = channel_row(page, channel)
    open_settings(row)
    row.locator(f"button.preset[data-color={preset}]").click()


def test_the_viewer_renders_with_webgl2_in_software(alice, viewer_site, assert_webgl2) -> None:
    open_viewer(alice, viewer_site)
    assert "SwiftShader" in assert_webgl2(alice)
    assert alice.locator("[data-testid=channel-row]").count() == 2
    assert not alice.page_errors and not alice.blocked_requests


def test_red_and_green_channels_add_up_to_yellow(alice, viewer_site) -> None:
    site = viewer_site
    square = site.square("A01-4")
    x, y = (int(v) for v in square.box.center)
    open_viewer(alice, site, at_full_resolution(x, y, channels="c0,c1"))
    set_colour(alice, "c0", "red")
    set_colour(alice, "c1", "green")
    rendered(alice)
    expected = (site.display_value("c0", x, y), site.display_value("c1", x, y), 0)
    assert expected[0] > 200 and expected[1] > 100  # both channels bright: yellow-ish
    assert near(colour_at(alice, x, y), expected, TOLERANCE)
    # background of c0 is 0: there only the green ramp shows
    bx, by = x, square.box.y - 20
    assert near(colour_at(alice, bx, by), (0, site.display_value("c1", bx, by), 0), TOLERANCE)


def test_moving_max_changes_a_pixel_as_computed(alice, viewer_site) -> None:
    site = viewer_site
    c1 = site.channels["c1"]
    x, y = 300, 250
    open_viewer(alice, site, at_full_resolution(x, y, channels="c1"))
    value = site.display_value("c1", x, y)
    assert near(colour_at(alice, x, y), (value,) * 3, TOLERANCE)
    new_max = c1.min_intensity + (c1.max_intensity - c1.min_intensity) * 0.4
    row = channel_row(alice, "c1")
    open_settings(row)
    row.locator("[data-testid=channel-max]").fill(f"{new_max:.2f}")
    row.locator("[data-testid=channel-max]").press("Enter")
    rendered(alice)
    expected = round(min(1.0, value / 255 / 0.4) * 255)
    assert abs(expected - value) > 40  # the window moved the pixel visibly
    assert near(colour_at(alice, x, y), (expected,) * 3, TOLERANCE)


def test_hiding_a_channel_restores_the_background(alice, viewer_site) -> None:
    site = viewer_site
    x, y = (int(v) for v in site.square("A01-2").box.center)
    open_viewer(alice, site, at_full_resolution(x, y, channels="c0"))
    assert near(colour_at(alice, x, y), (255, 255, 255), TOLERANCE)
    channel_row(alice, "c0").locator("[data-testid=channel-visible]").uncheck()
    rendered(alice)
    assert near(colour_at(alice, x, y), (0, 0, 0), 2)
    assert "channels=&" in alice.url or alice.url.endswith("channels=")


def test_an_outline_pixel_has_the_chosen_colour(alice, viewer_site) -> None:
    site = viewer_site
    square = site.square("A01-4")
    cx, cy = (int(v) for v in square.box.center)
    open_viewer(alice, site, at_full_resolution(cx, cy, objects=OBJECT_TYPE))
    row = object_row(alice, OBJECT_TYPE)
    open_settings(row)
    row.locator("button.preset[data-color='#e41a1c']").click()
    row.locator("[data-testid=object-width]").fill("3")
    rendered(alice)
    image = screenshot(alice)
    edge = [colour_at(alice, square.box.x + dx, cy, image) for dx in (-1, 0, 1)]
    assert any(near(c, hex_rgb("#e41a1c"), 40) for c in edge), edge
    # inside and outside the square: no outline, black (channels are off)
    assert near(colour_at(alice, cx, cy, image), (0, 0, 0), 2)
    assert near(colour_at(alice, square.box.x - 10, cy, image), (0, 0, 0), 2)


def test_colouring_by_a_feature_refetches_no_tile(alice, viewer_site) -> None:
    site = viewer_site
    open_viewer(alice, site, at_full_resolution(700, 256, objects=OBJECT_TYPE))
    requests: list[str] = []
    alice.on("request", lambda r: requests.append(r.url))
    row = object_row(alice, OBJECT_TYPE)
    open_settings(row)
    with alice.expect_response(lambda r: "/values?" in r.url, timeout=TIMEOUT_MS) as answer:
        row.locator("[data-testid=color-feature]").select_option(label="Morphology_Area")
    assert answer.value.status == 200
    rendered(alice)
    assert len([u for u in requests if "/values?" in u]) == 1
    assert not [u for u in requests if "/tiles" in u]
    # viridis: the smallest square is dark purple, the largest yellow
    sizes = sorted(site.squares, key=lambda s: s.area)
    small, large = sizes[0], sizes[-1]
    open_viewer(alice, site, at_full_resolution(*small.box.center, objects=OBJECT_TYPE))
    assert near(colour_at(alice, *small.box.center), (68, 1, 84), 12)
    open_viewer(alice, site, at_full_resolution(*large.box.center, objects=OBJECT_TYPE))
    assert near(colour_at(alice, *large.box.center), (253, 231, 37), 12)
    assert alice.locator("[data-testid=legend]").count() == 1


def test_clicking_an_object_shows_its_feature_values(alice, viewer_site) -> None:
    site = viewer_site
    square = site.square("A02-2")
    open_viewer(alice, site, at_full_resolution(*square.box.center, objects=OBJECT_TYPE))
    alice.mouse.click(*screen_point(alice, *square.box.center))
    info = alice.locator("[data-testid=object-info]")
    info.locator("tr.feature").first.wait_for(timeout=TIMEOUT_MS)
    text = info.inner_text()
    assert f"{OBJECT_TYPE} {square.mapobject_id}" in text
    assert "A02" in text and "plate01" in text
    area_row = info.locator("tr.feature", has_text="Morphology_Area")
    assert float(area_row.locator("td").inner_text()) == square.area


def test_a_marker_appears_where_clicked(alice, viewer_site) -> None:
    site = viewer_site
    square = site.square("A01-2")
    cx, cy = (int(v) for v in square.box.center)
    open_viewer(alice, site, at_full_resolution(cx, cy, objects=OBJECT_TYPE))
    alice.click("[data-testid=new-selection]")
    alice.locator("[data-testid=selection-row]").wait_for(timeout=TIMEOUT_MS)
    with alice.expect_response(lambda r: "/members" in r.url, timeout=TIMEOUT_MS):
        alice.mouse.click(*screen_point(alice, cx, cy))
    rendered(alice)
    colour = hex_rgb("#e41a1c")  # the first selection's colour
    # the pin stands on the click point: its body is some pixels above it
    px, py = screen_point(alice, cx, cy)
    image = screenshot(alice)
    body = [image[py - dy, px].astype(int) for dy in range(8, 16)]
    assert any(near(c, colour, 40) for c in body), body
    assert alice.locator("[data-testid=selection-count]").inner_text() == "1"


def test_the_url_holds_the_view(alice, viewer_site) -> None:
    site = viewer_site
    open_viewer(alice, site, "x=1100&y=200&zoom=2.5&channels=c1&objects=Squares,Wells")
    alice.reload()
    alice.wait_for_function("() => window.__tmViewer !== undefined", timeout=TIMEOUT_MS)
    rendered(alice)
    view = alice.evaluate(
        "(() => { const v = window.__tmViewer.map.getView();"
        " return [v.getCenter(), v.getZoom()]; })()"
    )
    assert view[0] == pytest.approx([1100, -200], abs=1) and view[1] == pytest.approx(2.5)
    assert not channel_row(alice, "c0").locator("[data-testid=channel-visible]").is_checked()
    assert channel_row(alice, "c1").locator("[data-testid=channel-visible]").is_checked()
    assert object_row(alice, "Wells").locator("[data-testid=object-visible]").is_checked()
    assert not object_row(alice, "Sites").locator("[data-testid=object-visible]").is_checked()


def test_channel_settings_are_remembered(alice, viewer_site) -> None:
    site = viewer_site
    open_viewer(alice, site)
    set_colour(alice, "c0", "magenta")
    open_viewer(alice, site)  # a new visit of the same user and experiment
    assert channel_row(alice, "c0").locator(".swatch").get_attribute("style").endswith("#ff00ff")


def test_export_png_has_the_view_and_scale_bar(alice, viewer_site, tmp_path) -> None:
    site = viewer_site
    x, y = (int(v) for v in site.square("A01-4").box.center)
    open_viewer(alice, site, at_full_resolution(x, y, channels="c0"))
    with alice.expect_download(timeout=TIMEOUT_MS) as download:
        alice.click("[data-testid=export-png]")
    path = tmp_path / "view.png"
    download.value.save_as(path)
    image = np.asarray(Image.open(path).convert("RGB")).astype(int)
    box = alice.locator("[data-testid=map]").bounding_box()
    assert image.shape[:2] == (round(box["height"]), round(box["width"]))
    px, py = screen_point(alice, x, y)
    assert near(image[py - round(box["y"]), px - round(box["x"])], (255, 255, 255), TOLERANCE)
    # the scale bar: white, 4 px high, at the bottom left
    assert near(image[image.shape[0] - 18, 20], (255, 255, 255), 2)


def test_a_user_without_a_share_is_refused(page, viewer_site) -> None:
    start_session(page, viewer_site, "bob")
    page.goto(f"{viewer_site.base_url}/viewer/{viewer_site.experiment_id}")
    error = page.locator("[data-testid=viewer-error]")
    error.wait_for(timeout=TIMEOUT_MS)
    assert "cannot open" in error.inner_text()
    assert page.locator(".ol-viewport").count() == 0
