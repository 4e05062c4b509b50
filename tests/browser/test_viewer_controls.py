"""The viewer's readout, auto-contrast, outline styling and selection export, in a browser.

As in :mod:`.test_viewer`, expectations come from the known images of the
synthetic experiment (see :mod:`.synthetic`): at zoom 3 one image pixel is
one screen pixel.
"""

from __future__ import annotations

import csv
import io
import re

import numpy as np

from .synthetic import OBJECT_TYPE, PLATE
from .ui import (
    TIMEOUT_MS,
    at_full_resolution,
    channel_row,
    colour_at,
    near,
    object_row,
    open_settings,
    open_viewer,
    rendered,
    screen_point,
    screenshot,
)

#: JPEG tiles and the 8-bit path lose a few grey values
TOLERANCE = 6
#: auto-contrast reads the overview tiles of this zoom (or the finest, if coarser)
AUTO_ZOOM = 2
AUTO_PERCENTILES = (0.5, 99.5)


def hover(page, x: int, y: int, in_a_well: bool = True) -> dict[str, str]:
    """Move the pointer onto map pixel (x, y) and parse the readout: its first line under
    ``xy``, the place under ``place`` (absent outside the wells), then channel -> text.

    The place needs the layout, which the first move over the map fetches: the pointer
    moves until the readout is of (x, y) and, `in_a_well`, names the place.
    """
    px, py = screen_point(page, x, y)
    readout = page.locator("[data-testid=readout]")
    for _ in range(100):
        page.mouse.move(px + 1, py)
        page.mouse.move(px, py)
        text = readout.inner_text() if readout.count() else ""
        if text.startswith(f"x {x}, y {y}\n") and (not in_a_well or "\nplate " in text):
            break
        page.wait_for_timeout(100)
    lines = text.splitlines()
    parsed = {"xy": lines[0] if lines else ""}
    for line in lines[1:]:
        if line.startswith("plate "):
            parsed["place"] = line
        else:
            name, value = line.split(": ")
            parsed[name] = value
    return parsed


def test_the_readout_shows_position_place_and_real_intensities(owner_page, viewer_site) -> None:
    page, site = owner_page, viewer_site
    open_viewer(page, site, at_full_resolution(256, 256, channels="c0,c1"))
    inside = site.square("A01-1")
    # in a square (c0 bright), beside the squares, at the left edge of the ramp (c1 low)
    points = [tuple(int(v) for v in inside.box.center), (300, 20), (5, 300)]
    with page.expect_request(lambda r: r.url.endswith("/layout"), timeout=TIMEOUT_MS):
        page.mouse.move(*screen_point(page, *points[0]))
    for x, y in points:
        readout = hover(page, x, y)
        assert readout["xy"] == f"x {x}, y {y}"
        assert readout.get("place") == f"plate {PLATE}, well A01, site 0,0", readout
        assert sorted(k for k in readout if k not in ("xy", "place")) == sorted(site.channels)
        for name, channel in site.channels.items():
            # the tiles hold 8 bits of the window: one grey value is this much
            step = (channel.max_intensity - channel.min_intensity) / 255
            value = float(readout[name])
            assert value == round(value, 2)  # rounded to two decimals
            truth = site.raw_intensity(name, x, y)
            assert abs(value - truth) <= step, (name, x, y, value, truth)
    # between the wells: a position, but no plate, well or site
    gap = (site.wells["A01"].right + 20, 100)
    readout = hover(page, *gap, in_a_well=False)
    assert readout["xy"] == f"x {gap[0]}, y {gap[1]}" and "place" not in readout, readout
    # nothing was imaged there: no intensity (the tiles' black is not the window's minimum)
    assert all(readout[name] == "–" for name in site.channels), readout


def expected_auto_window(site) -> tuple[int, int]:
    """The 8-bit percentiles auto-contrast should find for c1: of the overview pixels (area
    means of the full-resolution 8-bit values), black excluded, counted as the app does."""
    factor = 2 ** (site.max_zoom - min(site.max_zoom, AUTO_ZOOM))
    histogram = np.zeros(256)
    for box in site.sites.values():
        # c1 is a horizontal ramp: every row of a site alike, so one row counts for all
        row = np.array([site.display_value("c1", box.x + c, box.y) for c in range(box.width)])
        overview = np.rint(row.reshape(-1, factor).mean(axis=1)).astype(int)
        histogram += np.bincount(overview, minlength=256) * (box.height // factor)
    histogram[0] = 0  # black is where nothing was imaged
    cumulative = np.cumsum(histogram)
    low, high = (int(np.argmax(cumulative >= p / 100 * cumulative[-1])) for p in AUTO_PERCENTILES)
    return low, high


def window_numbers(row) -> tuple[float, float]:
    return (
        float(row.locator("[data-testid=channel-min]").input_value()),
        float(row.locator("[data-testid=channel-max]").input_value()),
    )


def test_auto_contrast_sets_the_percentile_window_and_reset_restores_it(
    owner_page, viewer_site
) -> None:
    page, site = owner_page, viewer_site
    c1 = site.channels["c1"]
    lo, hi = c1.min_intensity, c1.max_intensity
    step = (hi - lo) / 255
    x, y = 300, 250
    grey = site.display_value("c1", x, y)
    open_viewer(page, site, at_full_resolution(x, y, channels="c1"))
    row = channel_row(page, "c1")
    open_settings(row)
    assert window_numbers(row) == (lo, hi)
    # a narrow window first, so that auto-contrast visibly moves the pixel
    row.locator("[data-testid=channel-max]").fill(f"{lo + (hi - lo) * 0.4:.2f}")
    row.locator("[data-testid=channel-max]").press("Enter")
    rendered(page)
    assert near(colour_at(page, x, y), (255,) * 3, TOLERANCE)  # saturated
    narrow = window_numbers(row)

    with page.expect_response(lambda r: "z=2" in r.url and "/tiles" in r.url, timeout=TIMEOUT_MS):
        row.locator("[data-testid=auto-contrast]").click()
    page.wait_for_function(
        "m => Number(document.querySelector("
        "'[data-testid=channel-row][data-channel=c1] [data-testid=channel-max]').value) !== m",
        arg=narrow[1],
        timeout=TIMEOUT_MS,
    )
    rendered(page)
    low, high = window_numbers(row)
    expected = expected_auto_window(site)
    assert 0 < expected[0] < 10 and 245 < expected[1] < 255, expected  # the ramp's ends
    # the window is of 8-bit values: whole grey values, about the expected percentiles
    grey_low, grey_high = (low - lo) / step, (high - lo) / step
    assert abs(grey_low - round(grey_low)) < 0.01 and abs(grey_high - round(grey_high)) < 0.01
    assert abs(grey_low - expected[0]) <= 2 and abs(grey_high - expected[1]) <= 2, (
        (low, high),
        expected,
    )
    assert lo < low < high < hi  # inside the full window: the extremes are cut
    auto = round(np.clip((grey - grey_low) / (grey_high - grey_low), 0, 1) * 255)
    assert near(colour_at(page, x, y), (auto,) * 3, TOLERANCE), (grey, low, high)

    row.locator("[data-testid=reset-channel]").click()
    rendered(page)
    assert window_numbers(row) == (lo, hi)
    assert near(colour_at(page, x, y), (grey,) * 3, TOLERANCE)


def edge_profile(page, square, image) -> int:
    """Summed grey of the pixels across the left edge of `square`, in its middle row
    (channels are off: only the outline is there)."""
    cy = int(square.box.center[1])
    return sum(int(colour_at(page, square.box.x + dx, cy, image)[0]) for dx in range(-6, 7))


def test_outline_opacity_and_width_restyle_without_any_request(owner_page, viewer_site) -> None:
    page, site = owner_page, viewer_site
    square = site.square("A01-4")
    open_viewer(page, site, at_full_resolution(256, 256, objects=OBJECT_TYPE))
    row = object_row(page, OBJECT_TYPE)
    open_settings(row)
    # a white outline of width 1 and opacity 1: about 255 in all across the edge
    before = edge_profile(page, square, screenshot(page))
    assert 0.9 * 255 <= before <= 1.1 * 255, before
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    row.locator("[data-testid=object-opacity]").fill("0.5")
    rendered(page)
    half = edge_profile(page, square, screenshot(page))
    row.locator("[data-testid=object-width]").fill("4")
    rendered(page)
    wide = edge_profile(page, square, screenshot(page))
    assert requests == []
    # the edge's brightness is proportional to opacity times width
    assert 0.9 * 127.5 <= half <= 1.1 * 127.5, half
    assert 0.9 * 510 <= wide <= 1.1 * 510, wide
    cx, cy = (int(v) for v in square.box.center)
    assert near(colour_at(page, cx, cy), (0, 0, 0), 2)  # no fill


def click_square(page, site, name: str) -> None:
    """Click the middle of a square (on the screen now) and wait for the selection's update."""
    with page.expect_response(lambda r: "/members" in r.url, timeout=TIMEOUT_MS):
        page.mouse.click(*screen_point(page, *site.square(name).box.center))


def test_a_selection_exports_its_objects_as_csv(owner_page, viewer_site, tmp_path) -> None:
    page, site = owner_page, viewer_site
    chosen = [site.square("A01-4"), site.square("A02-2")]
    open_viewer(page, site, at_full_resolution(*chosen[0].box.center, objects=OBJECT_TYPE))
    page.click("[data-testid=new-selection]")
    selection = page.locator("[data-testid=selection-row]")
    selection.wait_for(timeout=TIMEOUT_MS)
    click_square(page, site, chosen[0].name)
    # the other well is off the screen: move there
    page.evaluate(
        "([x, y]) => window.__tmViewer.map.getView().setCenter([x, -y])",
        list(chosen[1].box.center),
    )
    rendered(page)
    click_square(page, site, chosen[1].name)
    assert selection.locator("[data-testid=selection-count]").inner_text() == "2"
    with page.expect_download(timeout=TIMEOUT_MS) as download:
        selection.locator("button[title='Export as CSV']").click()
    name = selection.get_attribute("data-name")
    assert download.value.suggested_filename == re.sub(r"[^\w.-]+", "_", name) + ".csv"
    path = tmp_path / "selection.csv"
    download.value.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert [int(r["mapobject_id"]) for r in rows] == sorted(s.mapobject_id for s in chosen)
    by_id = {int(r["mapobject_id"]): r for r in rows}
    for square in chosen:
        row = by_id[square.mapobject_id]
        assert (row["plate_name"], row["well_name"]) == (PLATE, square.well)
        assert (row["well_pos_y"], row["well_pos_x"]) == ("0", "0")
        assert int(row["label"]) == square.label
        # the clicked point, in map pixels (rows down)
        assert square.box.contains(float(row["x"]), float(row["y"])), (row, square.box)
