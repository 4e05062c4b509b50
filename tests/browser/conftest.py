"""Fixtures of the browser tests: Chromium (Debian's, driven by Playwright) and a site to view.

Every test in tests/browser is marked ``browser``. Chromium runs headless,
offline (every request to a host other than the loopback one is aborted) and
renders WebGL2 in software (SwiftShader), so the tests run alike on machines
without a GPU or a network.

Where ``/usr/bin/chromium`` or the ``playwright`` package is missing the
tests are skipped, unless ``TMAPS_TEST_REQUIRE_BROWSER=1`` (set by CI),
where they fail. ``playwright install`` is never needed: the browser is the
system's.

Fixtures
--------
chromium_browser (session)
    A Playwright ``Browser``.
page
    A fresh ``Page`` (1024x700, scale 1) in a context of its own. Its
    ``console_errors`` and ``page_errors`` lists collect the console's
    error messages and the uncaught exceptions; ``blocked_requests`` the URLs
    aborted as not loopback. A screenshot (and the errors, if any) is saved
    to the artefacts directory on teardown, named after the test.
assert_webgl2
    ``assert_webgl2(page) -> str``: asserts that the page has WebGL2 rendered
    by SwiftShader and returns the renderer's name.
viewer_site (session)
    A :class:`browser.synthetic.ViewerSite`: the synthetic experiment,
    processed, served by a live tmserver on 127.0.0.1.
zstack_site (session)
    A :class:`browser.synthetic.ZStackSite`: a second experiment (two
    z-planes) added to viewer_site's installation and served by its server;
    built only when a test asks for it.
login_token
    ``login_token(user, password=None) -> str``: a token of a viewer_site user.
owner_page
    The page, with viewer_site's owner logged in (a token in its session
    storage); her selections and the experiment's tool results are deleted
    before and after the test, as the site is shared by the session.
browser_artifacts (session)
    The artefacts directory: ``$TMAPS_TEST_ARTIFACTS``, else
    ``<repo>/.pytest_artifacts/browser``.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from .synthetic import ViewerSite, ZStackSite, build_viewer_site, build_zstack_site
from .ui import start_session

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1024, "height": 700}
#: hosts a page may reach; requests to any other are aborted
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
#: schemes that never leave the machine (Playwright does not route most of them anyway)
LOCAL_SCHEMES = frozenset({"data", "blob", "about", "chrome", "chrome-extension", "devtools"})
REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

#: the renderer of a WebGL2 context, or null where there is none
WEBGL2_RENDERER = """(() => {
  const c = document.createElement('canvas');
  const gl = c.getContext('webgl2');
  if (!gl) return null;
  const ext = gl.getExtension('WEBGL_debug_renderer_info');
  return ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
})()"""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # a session-wide hook: it sees the items of every directory, so pick ours
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.browser)


def is_loopback(url: str) -> bool:
    """Whether a request to `url` stays on this machine."""
    parts = urlsplit(url)
    return parts.scheme in LOCAL_SCHEMES or parts.hostname in LOOPBACK


def _missing_browser() -> str | None:
    """Why no browser can be started, or None."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -e '.[dev]')"
    return None


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("TMAPS_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}; TMAPS_TEST_REQUIRE_BROWSER=1 needs the browser tests to run")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[object]:
    """Headless Chromium with software WebGL (see module doc)."""
    reason = _missing_browser()
    if reason is not None:
        _skip_or_fail(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def browser_artifacts() -> Path:
    """Where screenshots and logs of the browser tests go (created)."""
    default = REPO / ".pytest_artifacts" / "browser"
    directory = Path(os.environ.get("TMAPS_TEST_ARTIFACTS") or default)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def artifact_name(nodeid: str) -> str:
    """A file name for a test: its node id without the directory, safe characters only."""
    name = nodeid.split("::", 1)[-1] if "::" in nodeid else nodeid
    module = Path(nodeid.split("::", 1)[0]).stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{module}.{name}").strip("_")[:180]


@pytest.fixture
def page(
    chromium_browser, browser_artifacts: Path, request: pytest.FixtureRequest
) -> Iterator[object]:
    """A new page in a context of its own (see module doc)."""
    context = chromium_browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    blocked: list[str] = []

    def only_loopback(route) -> None:
        if is_loopback(route.request.url):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("blockedbyclient")

    context.route("**/*", only_loopback)
    page = context.new_page()
    page.console_errors = []
    page.page_errors = []
    page.blocked_requests = blocked
    page.on(
        "console",
        lambda message: (
            page.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    page.on("pageerror", lambda error: page.page_errors.append(str(error)))
    try:
        yield page
    finally:
        name = artifact_name(request.node.nodeid)
        with contextlib.suppress(Exception):  # a crashed or closed page has no picture
            page.screenshot(path=str(browser_artifacts / f"{name}.png"), timeout=10_000)
        log = browser_artifacts / f"{name}.errors.txt"
        lines = [f"console: {e}" for e in page.console_errors]
        lines += [f"page: {e}" for e in page.page_errors]
        lines += [f"blocked: {u}" for u in blocked]
        if lines:
            log.write_text("\n".join(lines) + "\n")
        else:
            log.unlink(missing_ok=True)
        context.close()


def webgl2_renderer(page) -> str | None:
    """The renderer of a WebGL2 context in `page`, or None where WebGL2 is missing."""
    return page.evaluate(WEBGL2_RENDERER)


@pytest.fixture
def assert_webgl2() -> Callable[[object], str]:
    """``assert_webgl2(page)``: WebGL2 is there and SwiftShader renders it; the renderer."""

    def check(page) -> str:
        renderer = webgl2_renderer(page)
        assert renderer is not None, "no WebGL2 context"
        assert "SwiftShader" in renderer, renderer
        return renderer

    return check


@pytest.fixture(scope="session")
def viewer_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ViewerSite]:
    """The synthetic experiment, processed and served (see browser/synthetic.py)."""
    with contextlib.ExitStack() as stack:
        yield build_viewer_site(tmp_path_factory.mktemp("viewer_site"), stack)


@pytest.fixture(scope="session")
def zstack_site(viewer_site: ViewerSite, tmp_path_factory: pytest.TempPathFactory) -> ZStackSite:
    """The z-stack experiment, processed and served (see browser/synthetic.py)."""
    return build_zstack_site(viewer_site, tmp_path_factory.mktemp("zstack_site"))


@pytest.fixture
def login_token(viewer_site: ViewerSite) -> Callable[..., str]:
    """``login_token(user, password=None)``: POST /auth as a viewer_site user; the token."""
    return viewer_site.login


def delete_selections_and_results(site: ViewerSite) -> None:
    """Delete the owner's selections and the experiment's tool results (through the API)."""
    token = site.login(site.owner)
    base = f"/api/experiments/{site.experiment_id}"
    for what in ("selections", "tools/results"):
        response = site.server.call("GET", f"{base}/{what}", token)
        assert response.status_code == 200, response.text
        for item in response.json()["data"]:
            deleted = site.server.call("DELETE", f"{base}/{what}/{item['id']}", token)
            assert deleted.status_code == 200, deleted.text


@pytest.fixture
def owner_page(page, viewer_site: ViewerSite) -> Iterator[object]:
    """The page with the owner logged in, and a clean slate (see module doc)."""
    delete_selections_and_results(viewer_site)
    start_session(page, viewer_site, viewer_site.owner)
    yield page
    delete_selections_and_results(viewer_site)
