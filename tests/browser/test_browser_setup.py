"""The browser the UI tests drive: WebGL2 in software, and no way off this machine."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

PAGE = b"""<!doctype html>
<html><head><title>local</title></head>
<body style="margin:0;background:#00ff00"><p id="text">served locally</p></body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        body = PAGE if self.path in ("/", "/index.html") else b'{"ok": true}'
        kind = "text/html" if self.path in ("/", "/index.html") else "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_url() -> Iterator[str]:
    """A tiny HTTP server on 127.0.0.1 (a free port); its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_webgl2_is_rendered_by_swiftshader(page, assert_webgl2, local_url: str) -> None:
    page.goto(f"{local_url}/")
    assert page.text_content("#text") == "served locally"
    renderer = assert_webgl2(page)
    assert "SwiftShader" in renderer
    page.set_content("<canvas></canvas>")  # and on a page of no origin
    assert_webgl2(page)
    assert page.page_errors == []


def test_a_page_draws_what_it_is_told(page, local_url: str) -> None:
    page.goto(f"{local_url}/")
    pixel = page.evaluate(
        """(() => {
          const c = document.createElement('canvas');
          c.width = c.height = 4;
          const gl = c.getContext('webgl2', {preserveDrawingBuffer: true});
          gl.clearColor(1, 0, 0, 1);
          gl.clear(gl.COLOR_BUFFER_BIT);
          const out = new Uint8Array(4);
          gl.readPixels(1, 1, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, out);
          return Array.from(out);
        })()"""
    )
    assert pixel == [255, 0, 0, 255]
    # the screenshot sees the page's background at the viewport's size
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(page.screenshot(), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (700, 1024, 3)
    assert image[-1, -1].tolist() == [0, 255, 0]  # BGR


def test_requests_off_the_loopback_are_aborted(page, local_url: str) -> None:
    page.goto(f"{local_url}/")
    outcome = page.evaluate(
        """async (urls) => {
          const out = {};
          for (const url of urls) {
            try { out[url] = (await fetch(url)).status; }
            catch (err) { out[url] = 'failed'; }
          }
          return out;
        }""",
        [f"{local_url}/api/x", "http://example.org/x", "https://93.184.215.14/y"],
    )
    assert outcome == {
        f"{local_url}/api/x": 200,
        "http://example.org/x": "failed",
        "https://93.184.215.14/y": "failed",
    }
    assert page.blocked_requests == ["http://example.org/x", "https://93.184.215.14/y"]
    # an image of a foreign host is stopped too (not only fetch)
    page.evaluate(
        """() => new Promise((done) => {
          const img = new Image();
          img.onload = () => done('loaded');
          img.onerror = () => done('failed');
          img.src = 'http://tiles.example.net/0/0/0.png';
        })"""
    )
    assert page.blocked_requests[-1] == "http://tiles.example.net/0/0/0.png"
    # and so is a navigation (last: the page is an error page afterwards)
    with pytest.raises(Exception, match="ERR_BLOCKED_BY_CLIENT"):
        page.goto("http://example.org/")
    assert page.blocked_requests[-1] == "http://example.org/"
