"""The z slider in a browser, on the z-stack experiment (see :class:`.synthetic.ZStackSite`).

Channel c0 has a bright square on each of its two z-planes, at different
places; the objects of :data:`.synthetic.PLANE_TYPE` are those squares, one
segmentation layer per plane. Moving the slider must show the other plane's
pixels and outlines together.
"""

from __future__ import annotations

from .synthetic import OBJECT_TYPE, PLANE_TYPE
from .ui import (
    TIMEOUT_MS,
    colour_at,
    hex_rgb,
    near,
    object_row,
    open_settings,
    open_viewer,
    rendered,
    screenshot,
    start_session,
)

OUTLINE = "#e41a1c"


def check_plane(page, site, zplane: int) -> None:
    """Only the square of `zplane` is bright and outlined."""
    image = screenshot(page)
    for plane, box in enumerate(site.squares):
        shown = plane == zplane
        cx, cy = (int(v) for v in box.center)
        grey = 255 if shown else 0
        assert near(colour_at(page, cx, cy, image), (grey,) * 3, 6), (zplane, plane)
        # just left of the square: no image there on either plane, only the outline
        outline = colour_at(page, box.x - 1, cy, image)
        expected = hex_rgb(OUTLINE) if shown else (0, 0, 0)
        assert near(outline, expected, 20), (zplane, plane, outline)


def test_the_z_slider_shows_the_pixels_and_outlines_of_the_plane(page, zstack_site) -> None:
    site = zstack_site
    planes = {z: layer for t, z, layer in site.segmentation_layers[PLANE_TYPE]}
    assert sorted(planes) == sorted(site.channel_layers) == [0, 1]
    start_session(page, site, site.owner)
    cx, cy = site.width // 2, site.height // 2
    # zoom max_zoom: one image pixel per screen pixel
    query = f"x={cx}&y={cy}&zoom={site.max_zoom}&channels=c0&objects={PLANE_TYPE}"
    open_viewer(page, site, query)
    slider = page.locator("[data-testid=slider-z]")
    assert slider.is_visible()
    assert (slider.get_attribute("min"), slider.get_attribute("max")) == ("0", "1")
    assert page.locator("[data-testid=slider-t]").count() == 0  # one time point
    row = object_row(page, PLANE_TYPE)
    open_settings(row)
    row.locator(f"button.preset[data-color='{OUTLINE}']").click()
    row.locator("[data-testid=object-width]").fill("3")
    rendered(page)
    check_plane(page, site, 0)

    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    slider.fill("1")
    rendered(page)
    check_plane(page, site, 1)
    base = f"/api/experiments/{site.experiment_id}"
    channel = f"{base}/channel_layers/{site.channel_layers[1]}/tiles?"
    objects = f"{base}/segmentation_layers/{planes[1]}/tiles.mvt?"
    assert any(channel in u for u in requests), requests
    assert any(objects in u for u in requests), requests
    assert "z=1" in page.url.split("?")[1].split("&")
    assert "z 1" in page.locator("[data-testid=bottom-bar]").inner_text()

    # the plane is in the URL (and the outline's style in the user's settings)
    page.reload()
    page.wait_for_function("() => window.__tmViewer !== undefined", timeout=TIMEOUT_MS)
    rendered(page)
    assert page.locator("[data-testid=slider-z]").input_value() == "1"
    check_plane(page, site, 1)
    page.locator("[data-testid=slider-z]").fill("0")
    rendered(page)
    check_plane(page, site, 0)
    assert "z=" not in page.url


def test_objects_found_in_a_projection_show_on_every_plane(page, zstack_site) -> None:
    # jterator segments the maximum projection and stores its objects at z-plane 0: they
    # belong to every plane of the stack
    site = zstack_site
    assert {z for _, z, _ in site.segmentation_layers[OBJECT_TYPE]} == {0}
    start_session(page, site, site.owner)
    cx, cy = site.width // 2, site.height // 2
    query = f"x={cx}&y={cy}&zoom={site.max_zoom}&channels=&objects={OBJECT_TYPE}&z=1"
    open_viewer(page, site, query)
    row = object_row(page, OBJECT_TYPE)
    open_settings(row)
    row.locator(f"button.preset[data-color='{OUTLINE}']").click()
    row.locator("[data-testid=object-width]").fill("3")
    rendered(page)
    image = screenshot(page)
    for box in site.squares:  # both planes' squares are in the projection
        cy = int(box.center[1])
        assert near(colour_at(page, box.x - 1, cy, image), hex_rgb(OUTLINE), 20), box
