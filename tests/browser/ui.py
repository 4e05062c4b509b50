"""Driving the web app in tests: log in, open the viewer, find map pixels on the screen."""

from __future__ import annotations

import io
import json
from urllib.parse import quote

import numpy as np
from PIL import Image

from .synthetic import ViewerSite

#: how long a test waits for the app (SwiftShader renders slowly)
TIMEOUT_MS = 30_000


def log_in(page, site: ViewerSite, user: str, path: str = "/experiments") -> None:
    """Log in through the login form (the app then goes to `path`)."""
    page.goto(f"{site.base_url}/login?next={quote(path, safe='/')}")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", site.users[user])
    page.click("button[type=submit]")
    page.wait_for_url(f"**{path.split('?')[0]}*", timeout=TIMEOUT_MS)


def start_session(page, site: ViewerSite, user: str) -> str:
    """Put a fresh token of `user` in the page's session storage, as the login form does."""
    token = site.login(user)
    page.goto(f"{site.base_url}/login")
    session = json.dumps({"token": token, "user": user})
    page.evaluate("s => sessionStorage.setItem('tm.session', s)", session)
    return token


def open_viewer(page, site: ViewerSite, query: str = "") -> None:
    """Open the viewer of the site's experiment (in test mode: no tile fade) and wait until
    the map has rendered completely."""
    page.goto(f"{site.base_url}/viewer/{site.experiment_id}?test=1&{query}")
    page.wait_for_function("() => window.__tmViewer !== undefined", timeout=TIMEOUT_MS)
    rendered(page)


def rendered(page) -> None:
    """Wait for the map's next complete render (tiles loaded and drawn)."""
    page.evaluate("window.__tmViewer.whenRendered()")


def at_full_resolution(x: float, y: float, channels: str = "", objects: str = "") -> str:
    """The viewer query that centres map pixel (x, y) at one image pixel per screen pixel."""
    return f"x={x}&y={y}&zoom=3&channels={channels}&objects={objects}"


def screen_point(page, x: float, y: float) -> tuple[int, int]:
    """Where the middle of map pixel (x, y) (column, row) is on the page."""
    return tuple(
        page.evaluate(
            """([x, y]) => {
                const map = window.__tmViewer.map;
                const [px, py] = map.getPixelFromCoordinate([x + 0.5, -(y + 0.5)]);
                const box = map.getTargetElement().getBoundingClientRect();
                return [Math.floor(box.left + px), Math.floor(box.top + py)];
            }""",
            [x, y],
        )
    )


def screenshot(page) -> np.ndarray:
    """The page as an (height, width, 3) uint8 RGB array."""
    return np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))


def colour_at(page, x: float, y: float, image: np.ndarray | None = None) -> np.ndarray:
    """The RGB colour on the screen of map pixel (x, y)."""
    image = screenshot(page) if image is None else image
    px, py = screen_point(page, x, y)
    return image[py, px].astype(int)


def hex_rgb(color: str) -> np.ndarray:
    value = int(color.lstrip("#"), 16)
    return np.array([(value >> 16) & 255, (value >> 8) & 255, value & 255])


def near(actual: np.ndarray, expected, tolerance: int) -> bool:
    return bool(np.all(np.abs(np.asarray(actual) - np.asarray(expected)) <= tolerance))


def channel_row(page, name: str):
    return page.locator(f"[data-testid=channel-row][data-channel='{name}']")


def object_row(page, name: str):
    return page.locator(f"[data-testid=object-row][data-type='{name}']")


def open_settings(row) -> None:
    """Open a channel's or object type's settings (once)."""
    if row.locator(".settings").count() == 0:
        row.locator("[data-testid$=-settings]").first.click()
