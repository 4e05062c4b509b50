"""The synthetic experiment of the viewer tests is what its fixture says it is."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from .synthetic import BACKGROUND, BRIGHT, CHANNELS, OBJECT_TYPE, SITE_SIZE, SQUARES

#: JPEG's error in the middle of flat areas and on a gentle ramp
TOLERANCE = 3


def sample_points(site) -> list[tuple[int, int]]:
    """Map pixels to check: square centres, background in each site, the spacer."""
    points = [tuple(int(v) for v in s.box.center) for s in site.squares]
    for box in site.sites.values():
        points += [(box.x + 8, box.y + 8), (box.x + 500, box.y + 20), (box.x + 250, box.y + 250)]
    a01, a02 = site.sites["A01"], site.sites["A02"]
    points.append(((a01.right + a02.x) // 2, 256))  # between the wells: no image
    return points


def test_the_site_is_as_designed(viewer_site) -> None:
    site = viewer_site
    assert (site.width, site.height) == (1524, 512)
    assert site.image_size == {"width": site.width, "height": site.height}
    assert site.max_zoom == 3 and site.tile_size == 256
    assert [(b.width, b.height) for b in site.sites.values()] == [SITE_SIZE[::-1]] * 2
    assert sorted(site.channels) == sorted(CHANNELS)
    assert (site.channels["c0"].min_intensity, site.channels["c0"].max_intensity) == (
        BACKGROUND,
        BRIGHT,
    )
    assert {OBJECT_TYPE, "Plates", "Wells", "Sites"} <= set(site.mapobject_types)
    assert len(site.squares) == sum(len(s) for s in SQUARES.values())
    assert len({s.mapobject_id for s in site.squares}) == len(site.squares)
    for well in SQUARES:
        labels = sorted(s.label for s in site.squares_of(well))
        assert labels == list(range(1, len(SQUARES[well]) + 1))
    for square in site.squares:
        assert square.features["Morphology_Area"] == square.area
        assert square.features["Intensity_mean_c0"] == BRIGHT
        assert square.features["Intensity_mean_c1"] == pytest.approx(square.mean_c1)
        assert site.square_at(*square.box.center) is square
        assert site.sites[square.well].contains(square.box.x, square.box.y)
    assert site.build_seconds < 120


def test_the_full_resolution_tiles_show_the_known_pixels(viewer_site) -> None:
    site = viewer_site
    token = site.login(site.owner)
    tiles = {}
    for name, channel in site.channels.items():
        for x, y in sample_points(site):
            key = (channel.layer_id, x // site.tile_size, y // site.tile_size)
            if key not in tiles:
                response = site.server.call(
                    "GET",
                    f"/api/experiments/{site.experiment_id}/channel_layers/{key[0]}/tiles",
                    token,
                    params={"x": key[1], "y": key[2], "z": site.max_zoom},
                )
                assert response.status_code == 200, response.text
                data = np.frombuffer(response.content, np.uint8)
                tiles[key] = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
            grey = int(tiles[key][y % site.tile_size, x % site.tile_size])
            expected = site.display_value(name, x, y)
            assert abs(grey - expected) <= TOLERANCE, (name, x, y, grey, expected)


def test_the_browser_reads_the_tiles_alike(page, viewer_site, login_token) -> None:
    site = viewer_site
    page.goto(f"{site.base_url}/api/openapi.json")  # any page of the server's origin
    square = site.square("A02-2")
    x, y = (int(v) for v in square.box.center)
    layer = site.channels["c0"].layer_id
    url = (
        f"/api/experiments/{site.experiment_id}/channel_layers/{layer}/tiles"
        f"?x={x // 256}&y={y // 256}&z={site.max_zoom}"
    )
    grey = page.evaluate(
        """async ([url, token, x, y]) => {
          const response = await fetch(url, {headers: {Authorization: 'JWT ' + token}});
          const bitmap = await createImageBitmap(await response.blob());
          const canvas = document.createElement('canvas');
          canvas.width = bitmap.width;
          canvas.height = bitmap.height;
          const context = canvas.getContext('2d');
          context.drawImage(bitmap, 0, 0);
          document.body.replaceChildren(canvas);  // for the screenshot
          return Array.from(context.getImageData(x, y, 1, 1).data);
        }""",
        [url, login_token(site.owner), x % 256, y % 256],
    )
    assert all(abs(v - 255) <= TOLERANCE for v in grey[:3]) and grey[3] == 255, grey
    assert page.page_errors == [] and page.blocked_requests == []


def test_only_the_owner_sees_the_experiment(viewer_site, login_token) -> None:
    site = viewer_site
    alice, bob = login_token("alice"), login_token("bob")
    path = f"/api/experiments/{site.experiment_id}"
    assert site.server.call("GET", path, alice).status_code == 200
    assert site.server.call("GET", path, bob).status_code in (403, 404)
    mine = [e["id"] for e in site.server.call("GET", "/api/experiments", bob).json()["data"]]
    assert str(site.experiment_id) not in mine
    response = site.server.call(
        "POST", "/auth", json={"username": "bob", "password": site.users["alice"]}
    )
    assert response.status_code == 401
