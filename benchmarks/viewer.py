"""Benchmark: the browser viewer (tmui) on a 384-well plate of about 10^5 cells.

Simulates a CellVoyager 384-well plate (by default 3 sites of 512x512 per well,
2 channels, seed 1), registers it in a new installation on SQLite and runs
``tm_workflow ID submit`` with the default description (conversion,
illumination, pyramids, jterator segmentation with features), as
demo/run_demo.sh does. The build's time is reported, not judged. With
``--cache DIR`` the build is kept in DIR and reused by later runs with the same
plate parameters. Then ``tm_server`` (Flask's threaded server, as the demo
starts it) serves the plate on loopback, and:

1. First render: headless Chromium (Debian's, WebGL in software through
   SwiftShader), 1280x800, logged in through sessionStorage, opens
   ``/viewer/<id>``; ``window.__tmFirstRender`` is the milliseconds from
   navigation start to the map's first complete render. Each run in a fresh
   browser context (empty HTTP cache). Also the tile requests made until then.
   Goal <= 1500 ms (median).
2. MVT against GeoJSON, over HTTP without a browser: a sample of Cells vector
   tiles that overlap sites at each zoom level where polygons are sent
   (max_zoom - 4 and up); objects per tile (GeoJSON features; the MVT's are
   checked to match), bytes per object of each encoding, raw and gzip-compressed,
   and milliseconds per tile (request to last byte on loopback). First requests
   come from a server process started afresh for each level and encoding (the
   server caches rendered tiles and read outlines per process); repeated ones
   are the median of three more. Goal: MVT <= 1/4 of GeoJSON.
3. Recolour: the viewer at a view showing Cells outlines (by default at the
   zoom where polygons start: the most outlines at once); choosing a feature to
   colour the Cells by must make exactly one values request and no tile
   request; time from the select's change event to the complete render after
   the values came (the legend names the feature), split into the request,
   applying the values and the render. Measured twice: with the flags of the
   browser tests (2D canvases accelerated on SwiftShader's emulated GPU, which
   is slow at filling 10^4 polygons and slows down from one recolour to the
   next), and with ``--disable-accelerated-2d-canvas`` (canvases drawn on the
   CPU, as a browser without a GPU does): ``recolour_cpu_canvas``.
4. Frames per second while panning need a GPU: none here, so ``"fps": null``.

Usage::

    python benchmarks/viewer.py [--wells 384] [--sites 3] [--size 512x512] [--runs 5]
                                [--recolours 5] [--tiles-per-level 12] [--cache DIR]

The last line of the output is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.client
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from common import BIN, free_port, tm
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

GOAL_FIRST_RENDER_MS = 1500.0
GOAL_MVT_RATIO = 0.25
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: 2D canvases rasterised on the CPU instead of the (here emulated) GPU
CPU_CANVAS = "--disable-accelerated-2d-canvas"
VIEWPORT = {"width": 1280, "height": 800}
USER, PASSWORD = "bench", "bench"
OBJECT_TYPE = "Cells"
#: levels below the finest where polygons start (tmlib.maptiles.layer_thresholds)
POLYGON_LEVELS = 4
#: repeated requests of each tile (their median is the tile's repeated time)
REPEATS = 3
#: seconds to wait for a page to reach a state
PAGE_TIMEOUT_S = 180

#: sessionStorage's login before the app's first script (not on about:blank, which has none)
SESSION_SCRIPT = """(session) => {
  try {
    if (location.protocol.startsWith('http')) sessionStorage.setItem('tm.session', session);
  } catch (e) {}
  try { performance.setResourceTimingBufferSize(100000); } catch (e) {}
}"""
#: when the page's last change event happened (the benchmark's listener, not the app's)
CHANGE_LISTENER = """() => {
  window.__benchChange = null;
  document.addEventListener('change', () => (window.__benchChange = performance.now()), true);
}"""
#: wait until the legend shows the feature (its values are in the layer's style), then
#: until the next complete render; when the change event, the legend, the render and the
#: values request's start and last byte were (performance.now() milliseconds)
APPLIED_AND_RENDERED = """async ([title, timeoutMs]) => {
  const start = performance.now();
  const applied = () => [...document.querySelectorAll('[data-testid=legend] .title')]
    .some((e) => e.textContent.trim() === title);
  while (!applied()) {
    if (performance.now() - start > timeoutMs) throw new Error(`no legend "${title}"`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  const appliedAt = performance.now();
  await window.__tmViewer.whenRendered();
  const values = performance.getEntriesByType('resource')
    .filter((e) => e.name.includes('/values?')).pop();
  return {change: window.__benchChange, applied: appliedAt, rendered: performance.now(),
          requestStart: values ? values.startTime : null,
          responseEnd: values ? values.responseEnd : null};
}"""
#: the map's view: [minx, miny, maxx, maxy] in map coordinates (x = column, y = -row)
VIEW_EXTENT = """() => {
  const map = window.__tmViewer.map;
  return map.getView().calculateExtent(map.getSize());
}"""
#: tile requests the page started before its first complete render, and all of them
TILE_REQUESTS = """(first) => {
  const tiles = performance.getEntriesByType('resource').filter((e) => e.name.includes('/tiles'));
  return [tiles.filter((e) => e.startTime <= first).length, tiles.length];
}"""
#: [window.__tmFirstRender or null, when window.__tmViewer.whenRendered() resolved or null]
FIRST_RENDER = """async () => {
  if (window.__tmFirstRender !== undefined || !window.__tmViewer) {
    return [window.__tmFirstRender ?? null, null];
  }
  await window.__tmViewer.whenRendered();
  return [window.__tmFirstRender ?? null, performance.now()];
}"""
WEBGL_RENDERER = """() => {
  const gl = document.createElement('canvas').getContext('webgl2');
  if (!gl) return null;
  const ext = gl.getExtension('WEBGL_debug_renderer_info');
  return ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
}"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the plate


def use_installation(root: Path) -> None:
    """Point our programs (and this process) at the installation in `root`/home."""
    home = root / "home"
    os.environ.update(
        TMAPS_HOME=str(home),
        TMAPS_DB_URL=f"sqlite:///{home}/tm.db",
        TMAPS_CONFIG_FILE=str(home / "none.cfg"),
        TMAPS_WARM_START="0",
        TMAPS_CORES=str(os.cpu_count() or 1),
    )


def object_counts(eid: int) -> dict[str, int]:
    """Objects per segmented type (the plate, well and site types left out)."""
    import sqlalchemy as sa

    import tmlib.models as tm_models

    with tm_models.utils.ExperimentSession(eid) as session:
        rows = session.execute(
            sa.select(tm_models.MapobjectType.name, sa.func.count(tm_models.Mapobject.id))
            .join(
                tm_models.Mapobject,
                tm_models.Mapobject.mapobject_type_id == tm_models.MapobjectType.id,
            )
            .group_by(tm_models.MapobjectType.name)
        ).all()
    return {name: n for name, n in rows if name not in ("Plates", "Wells", "Sites")}


def objects_in_extent(eid: int, segmentation_layer_id: int, extent: list[float]) -> int:
    """Objects of a segmentation layer whose centroid lies in `extent` (map coordinates)."""
    import numpy as np
    import shapely
    import sqlalchemy as sa

    import tmlib.models as tm_models

    seg = tm_models.MapobjectSegmentation.__table__
    with tm_models.utils.ExperimentSession(eid) as session:
        wkb = session.scalars(
            sa.select(sa.type_coerce(seg.c.geom_centroid, sa.LargeBinary)).where(
                seg.c.segmentation_layer_id == segmentation_layer_id
            )
        ).all()
    xy = shapely.get_coordinates(shapely.from_wkb(np.array(wkb, dtype=object)))
    minx, miny, maxx, maxy = extent
    inside = (xy[:, 0] >= minx) & (xy[:, 0] <= maxx) & (xy[:, 1] >= miny) & (xy[:, 1] <= maxy)
    return int(inside.sum())


def build(root: Path, args: argparse.Namespace) -> dict:
    """Simulate, register and process the plate in `root` (or reuse a finished build there)."""
    params = {"wells": args.wells, "sites": args.sites, "size": args.size, "channels": 2,
              "seed": 1, "plate_format": 384, "microscope": "cellvoyager"}  # fmt: skip
    marker = root / "build.json"
    use_installation(root)
    if marker.exists():
        built = json.loads(marker.read_text())
        if built["params"] == params:
            log(f"reusing the build in {root} (experiment {built['experiment_id']})")
            return {**built, "reused": True}
        sys.exit(f"{root} holds a build of {built['params']}, not {params}: use another --cache")
    for part in ("plate", "home"):  # what an interrupted build of ours left
        shutil.rmtree(root / part, ignore_errors=True)
    plate, home = root / "plate", root / "home"
    seconds = {}
    start = time.perf_counter()
    log(f"simulating {args.wells} wells x {args.sites} sites of {args.size} ...")
    tm(["tm_simulate", "plate", str(plate), "--microscope", "cellvoyager", "--plate-format",
        "384", "--wells", str(args.wells), "--sites", str(args.sites), "--channels", "2",
        "--size", args.size, "--seed", "1", "-q"])  # fmt: skip
    seconds["simulate"] = time.perf_counter() - start
    start = time.perf_counter()
    home.mkdir()
    tm(["tm_add", "user", "-n", USER, "-p", PASSWORD, "-e", "bench@example.org"])
    eid = tm(["tm_add", "experiment", "-e", "viewer", "-u", USER,
              "--microscope-type", "cellvoyager", "--plate-format", "384"])  # fmt: skip
    tm(["tm_add", "plate", "-e", eid, "-p", "plate01"])
    tm(["tm_add", "acquisition", "-e", eid, "-p", "plate01", "-a", "acquisition01"])
    tm(["tm_add", "files", "-e", eid, "-p", "plate01", "-a", "acquisition01", "-s", str(plate)])
    seconds["register"] = time.perf_counter() - start
    log(f"tm_workflow {eid} submit (the default description) ...")
    start = time.perf_counter()
    proc = subprocess.run([str(BIN / "tm_workflow"), eid, "submit", "-i", "30", "-d", "1"],
                          stdout=subprocess.DEVNULL, check=False)  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"tm_workflow {eid} submit failed ({proc.returncode}); logs under {home}")
    seconds["workflow"] = time.perf_counter() - start
    built = {
        "experiment_id": int(eid),
        "params": params,
        "objects": object_counts(int(eid)),
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "build_s": round(sum(seconds.values()), 1),
    }
    marker.write_text(json.dumps(built))
    return {**built, "reused": False}


# --- the server and plain HTTP


@contextlib.contextmanager
def tm_server(home: Path) -> Iterator[str]:
    """``tm_server`` on a free loopback port; yields its base URL, stops it on exit."""
    port = free_port()
    log_path = home / "tm_server.log"
    with open(log_path, "a") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [str(BIN / "tm_server"), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _, _, _ = request(f"{url}/api/openapi.json")
                if status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"tm_server did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def request(
    url: str, method: str = "GET", body: dict | None = None, token: str | None = None
) -> tuple[int, dict[str, str], bytes, float]:
    """Status, headers (lower-case names), body and milliseconds from sending the
    request to its last byte (the connection is opened before)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"JWT {token}"
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        conn.connect()
        start = time.perf_counter()
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers=headers)  # fmt: skip
        response = conn.getresponse()
        data = response.read()
        ms = (time.perf_counter() - start) * 1000
    finally:
        conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data, ms


def get_json(url: str, token: str | None = None, method: str = "GET", body: dict | None = None):
    status, _, data, _ = request(url, method, body, token)
    if status != 200:
        sys.exit(f"{method} {url}: {status} {data[:300]!r}")
    return json.loads(data)


def login(url: str) -> str:
    return get_json(f"{url}/auth", method="POST", body={"username": USER, "password": PASSWORD})[
        "access_token"
    ]


def describe(url: str, token: str, eid: int) -> dict:
    """What the benchmark needs to know of the experiment, from the API as the viewer reads it."""
    api = f"{url}/api/experiments/{eid}"
    channels = get_json(f"{api}/channels", token)["data"]
    layer = next(lay for c in channels for lay in c["layers"] if lay["max_zoom"] is not None)
    types = get_json(f"{api}/mapobject_types", token)["data"]
    cells = next((t for t in types if t["name"] == OBJECT_TYPE), None)
    if cells is None:
        sys.exit(f"no {OBJECT_TYPE} object type: {[t['name'] for t in types]}")
    seg = next(lay for lay in cells["layers"] if lay["tpoint"] in (0, None))
    layout = get_json(f"{api}/layout", token)["data"]
    return {
        "max_zoom": layer["max_zoom"],
        "width": layer["image_size"]["width"],
        "height": layer["image_size"]["height"],
        "type_id": cells["id"],
        "features": len(cells["features"]),
        "segmentation_layer": seg["id"],
        "site_boxes": layout["sites"]["box"],
    }


# --- MVT against GeoJSON


def sample_tiles(info: dict, z: int, n: int, rng: random.Random) -> list[tuple[int, int]]:
    """`n` tiles of level `z` that overlap some site (all of them if fewer)."""
    size = 256 * 2 ** (info["max_zoom"] - z)
    tiles = set()
    for x, y, w, h in info["site_boxes"]:
        for ty in range(y // size, (y + h - 1) // size + 1):
            for tx in range(x // size, (x + w - 1) // size + 1):
                tiles.add((tx, ty))
    tiles = sorted(tiles)
    return sorted(rng.sample(tiles, n)) if len(tiles) > n else tiles


def fetch_tiles(url: str, path: str, tiles: list[tuple[int, int]], z: int, token: str) -> list:
    """Each tile once, then REPEATS times more: (bytes, ms first, ms repeated median)."""

    def get(x: int, y: int) -> tuple[bytes, float]:
        status, _, data, ms = request(f"{url}{path}?x={x}&y={y}&z={z}&access_token={token}")
        if status != 200:
            sys.exit(f"{path} z={z} x={x} y={y}: {status} {data[:300]!r}")
        return data, ms

    first = [get(x, y) for x, y in tiles]
    again: list[list[float]] = [[] for _ in tiles]
    for _ in range(REPEATS):
        for i, (x, y) in enumerate(tiles):
            again[i].append(get(x, y)[1])
    return [(data, ms, statistics.median(later))
            for (data, ms), later in zip(first, again, strict=True)]  # fmt: skip


def mvt_features(data: bytes) -> int | None:
    """Features in a Mapbox Vector Tile (None where it cannot be decoded here)."""
    try:
        import mapbox_vector_tile
    except ImportError:
        return None
    return sum(len(layer["features"]) for layer in mapbox_vector_tile.decode(data).values())


def compare_encodings(home: Path, eid: int, info: dict, per_level: int) -> dict:
    """Cells tiles at the polygon levels as GeoJSON and as MVT: sizes and server times.

    For the first (uncached) requests each level of each encoding gets a server process
    of its own, so no tile of the sample was rendered before and no site's outlines
    were read before, except those of a site that two sampled tiles share.
    """
    max_zoom = info["max_zoom"]
    levels = list(range(max(max_zoom - POLYGON_LEVELS, 0), max_zoom + 1))
    layer = info["segmentation_layer"]
    base = f"/api/experiments/{eid}/segmentation_layers/{layer}"
    paths = {"geojson": f"{base}/tiles", "mvt": f"{base}/tiles.mvt"}
    rng = random.Random(1)
    samples = {z: sample_tiles(info, z, per_level, rng) for z in levels}
    fetched: dict[str, dict[int, list]] = {"geojson": {}, "mvt": {}}
    for encoding, path in paths.items():
        for z in levels:
            with tm_server(home) as url:
                token = login(url)
                tile_token = get_json(f"{url}/auth/tile_token", token, "POST")["access_token"]
                # the route's first request (imports, the layer, the plate's geometry) on a
                # tile far outside the plate, which reads no object
                far = f"x={10**6}&y={10**6}&z={max_zoom}"
                request(f"{url}{path}?{far}&access_token={tile_token}")
                fetched[encoding][z] = fetch_tiles(url, path, samples[z], z, tile_token)
            log(f"  {encoding} z={z}: {len(samples[z])} tiles, first request median "
                f"{statistics.median(t[1] for t in fetched[encoding][z]):.1f} ms")  # fmt: skip

    def summary(tiles: list[tuple[int, bytes, bytes, float, float, float, float]]) -> dict:
        """(objects, geojson, mvt, ms first/repeated geojson, ms first/repeated mvt) each."""
        objects = sum(t[0] for t in tiles)
        out = {"tiles": len(tiles), "objects": objects,
               "objects_per_tile_median": statistics.median(t[0] for t in tiles)}  # fmt: skip
        for k, name in ((1, "geojson"), (2, "mvt")):
            raw = sum(len(t[k]) for t in tiles)
            packed = sum(len(gzip.compress(t[k], 6)) for t in tiles)
            out[name] = {
                "bytes_per_object": round(raw / objects, 1),
                "gzip_bytes_per_object": round(packed / objects, 1),
                "kb_per_tile_median": round(statistics.median(len(t[k]) for t in tiles) / 1024, 1),
                "ms_per_tile_first": round(statistics.median(t[2 * k + 1] for t in tiles), 2),
                "ms_per_tile_repeated": round(statistics.median(t[2 * k + 2] for t in tiles), 2),
            }
        out["ratio_mvt_to_geojson"] = round(out["mvt"]["bytes_per_object"]
                                            / out["geojson"]["bytes_per_object"], 3)  # fmt: skip
        out["ratio_gzip"] = round(out["mvt"]["gzip_bytes_per_object"]
                                  / out["geojson"]["gzip_bytes_per_object"], 3)  # fmt: skip
        return out

    rows: dict[int, list] = {}
    mismatched = 0
    for z in levels:
        rows[z] = []
        for (geo, g1, g2), (mvt, m1, m2) in zip(fetched["geojson"][z], fetched["mvt"][z],
                                                strict=True):  # fmt: skip
            objects = len(json.loads(geo)["features"])
            decoded = mvt_features(mvt)
            mismatched += decoded is not None and decoded != objects
            if objects:
                rows[z].append((objects, geo, mvt, g1, g2, m1, m2))
    every = [t for z in levels for t in rows[z]]
    result = summary(every)
    return {
        "levels": levels,
        "max_zoom": max_zoom,
        "sampled_tiles": sum(len(s) for s in samples.values()),
        "empty_tiles": sum(len(samples[z]) - len(rows[z]) for z in levels),
        **result,
        "by_level": {str(z): summary(rows[z]) for z in levels if rows[z]},
        "mvt_feature_count_mismatches": mismatched,
        "goal_ratio": GOAL_MVT_RATIO,
        "meets_goal": result["ratio_mvt_to_geojson"] <= GOAL_MVT_RATIO,
        "timing": "ms from sending the request to the body's last byte, one tm_server "
        "(Flask threaded) on loopback. first: each tile's first request, from a server "
        f"process started afresh for each level and encoding; repeated: median of {REPEATS} "
        "later requests (the rendered tile cached in the process)",
        "gzip": "gzip -6 of each body, for context (the server sends them uncompressed)",
    }


# --- the browser


def new_context(browser, token: str):
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    session = json.dumps({"token": token, "user": USER})
    context.add_init_script(script=f"({SESSION_SCRIPT})({json.dumps(session)})")
    return context


def first_render(browser, url: str, token: str, eid: int, runs: int) -> dict:
    """Median over `runs` fresh contexts of window.__tmFirstRender at /viewer/<id>.

    The benchmark also waits for ``window.__tmViewer.whenRendered()`` as soon as the
    hook exists (polled every animation frame): it resolves at the first complete
    render, so its time checks the app's figure, and stands in for it (reported as
    such) where the app does not set ``window.__tmFirstRender``.
    """
    results, errors = [], []
    for run in range(runs):
        context = new_context(browser, token)
        try:
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            requested: list[str] = []
            page.on("request", lambda r, seen=requested: seen.append(r.url))
            page.goto(f"{url}/viewer/{eid}", wait_until="commit")
            try:
                page.wait_for_function(
                    "() => window.__tmViewer !== undefined || window.__tmFirstRender !== undefined",
                    timeout=PAGE_TIMEOUT_S * 1000,
                )
            except PlaywrightTimeout:
                shown = page.locator("[data-testid=viewer-error]").all_inner_texts()
                return {"error": f"neither window.__tmViewer nor window.__tmFirstRender within "
                        f"{PAGE_TIMEOUT_S} s at /viewer/{eid}", "viewer_error": shown,
                        "page_errors": errors[:5], "runs_ms": results}  # fmt: skip
            hook, rendered = page.evaluate(FIRST_RENDER)
            ms = hook if hook is not None else rendered
            before, tiles = page.evaluate(TILE_REQUESTS, ms)
            results.append({"ms": round(ms, 1), "hook_ms": hook and round(hook, 1),
                            "when_rendered_ms": rendered and round(rendered, 1),
                            "tile_requests": before, "tile_requests_so_far": tiles,
                            "requests_so_far": len(requested)})  # fmt: skip
            log(
                f"  first render {run + 1}/{runs}: {ms:.0f} ms, {before} tile requests"
                f"{'' if hook is not None else ' (no window.__tmFirstRender: whenRendered)'}"
            )
        finally:
            context.close()
    median = statistics.median(r["ms"] for r in results)
    hooked = all(r["hook_ms"] is not None for r in results)
    return {
        "median_ms": round(median, 1),
        "runs_ms": [r["ms"] for r in results],
        "source": "window.__tmFirstRender"
        if hooked
        else ("window.__tmViewer.whenRendered() resolved (the app set no window.__tmFirstRender)"),
        "tile_requests": [r["tile_requests"] for r in results],
        "tile_requests_median": statistics.median(r["tile_requests"] for r in results),
        "runs": results,
        "page_errors": errors[:5],
        "goal_ms": GOAL_FIRST_RENDER_MS,
        "meets_goal": median <= GOAL_FIRST_RENDER_MS,
        "note": "ms from navigation start; fresh browser context per run (empty HTTP cache); "
        "tile_requests: started before the first complete render (resource timing); the "
        "server process is the same for all runs (warm after run 1)",
    }


def recolour(browser, url: str, token: str, eid: int, info: dict, zoom: int, runs: int) -> dict:
    """Colour the Cells by one feature after another; time to the next complete render."""
    cx, cy = info["width"] // 2, info["height"] // 2
    path = f"/viewer/{eid}?objects={OBJECT_TYPE}&zoom={zoom}&x={cx}&y={cy}"
    context = new_context(browser, token)
    errors: list[str] = []
    try:
        page = context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_S * 1000)
        page.on("pageerror", lambda e: errors.append(str(e)))
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        start = time.perf_counter()
        page.goto(f"{url}{path}", wait_until="commit")
        page.wait_for_function("() => window.__tmViewer !== undefined", polling=50)
        page.evaluate("() => window.__tmViewer.whenRendered()")
        page.wait_for_load_state("networkidle")
        load_s = time.perf_counter() - start
        extent = page.evaluate(VIEW_EXTENT)
        in_view = objects_in_extent(eid, int(info["segmentation_layer"]), extent)
        log(f"  view {path}: rendered in {load_s:.1f} s, {in_view} {OBJECT_TYPE} in view")
        row = page.locator(f"[data-testid=object-row][data-type={OBJECT_TYPE}]")
        row.locator("[data-testid=object-settings]").click()
        select = row.locator("[data-testid=color-feature]")
        options = select.locator("option").evaluate_all(
            "os => os.map((o) => [o.value, o.textContent.trim()])"
        )
        features = [(value, name) for value, name in options if value]
        if len(features) < 2:
            return {"error": f"[data-testid=color-feature] offers {len(features)} features"}
        page.wait_for_load_state("networkidle")
        page.evaluate(CHANGE_LISTENER)
        results = []
        for run in range(runs):
            value, name = features[run % len(features)]
            requested.clear()
            with page.expect_response(lambda r: "/values?" in r.url) as answer:
                select.select_option(value)
            response = answer.value
            response.finished()
            count = int(response.headers.get("x-count", "-1"))
            at = page.evaluate(APPLIED_AND_RENDERED, [f"{OBJECT_TYPE}: {name}", 60_000])
            ms = at["rendered"] - at["change"]
            seen = list(requested)
            results.append({
                "feature": name,
                "ms": round(ms, 1),
                "values_count": count,
                "tile_requests": sum("/tiles" in u for u in seen),
                "values_requests": sum("/values?" in u for u in seen),
                "other_requests": sum("/tiles" not in u and "/values?" not in u for u in seen),
                "values_kb": round(len(response.body()) / 1024, 1),
                "split_ms": {
                    "to_request": round(at["requestStart"] - at["change"], 1),
                    "request": round(at["responseEnd"] - at["requestStart"], 1),
                    "to_applied": round(at["applied"] - at["responseEnd"], 1),
                    "render": round(at["rendered"] - at["applied"], 1),
                },
            })  # fmt: skip
            last = results[-1]
            log(f"  recolour {run + 1}/{runs} by {name}: {ms:.0f} ms, {count} values, "
                f"{last['tile_requests']} tile requests, split {last['split_ms']}")  # fmt: skip
    finally:
        context.close()
    splits = [r["split_ms"] for r in results]
    return {
        "median_ms": round(statistics.median(r["ms"] for r in results), 1),
        "runs_ms": [r["ms"] for r in results],
        "split_median_ms": {k: statistics.median(s[k] for s in splits) for k in splits[0]},
        "objects_with_values": statistics.median(r["values_count"] for r in results),
        "objects_in_view": in_view,
        "view_extent": [round(v) for v in extent],
        "tile_refetches": sum(r["tile_requests"] for r in results),
        "values_requests_per_recolour": [r["values_requests"] for r in results],
        "ok": all(r["tile_requests"] == 0 and r["values_requests"] == 1 for r in results),
        "view": path,
        "view_zoom": zoom,
        "view_load_s": round(load_s, 1),
        "runs": results,
        "page_errors": errors[:5],
        "note": "ms from the select's change event to the complete render after the values "
        "arrived and the legend showed the feature (window.__tmViewer.whenRendered); split: "
        "change to the values request's start, the request (to its last byte), to the legend "
        "showing the feature (values decoded and applied), the render after that",
    }


def machine(browser) -> dict:
    model = next((line.split(":", 1)[1].strip()
                  for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())  # fmt: skip
    memory = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))  # fmt: skip
    context = browser.new_context()
    try:
        renderer = context.new_page().evaluate(WEBGL_RENDERER)
    finally:
        context.close()
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gb": round(memory / 2**20, 1),
        "gpu": shutil.which("nvidia-smi") is not None or Path("/dev/dri").exists(),
        "chromium": browser.version,
        "webgl_renderer": renderer,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wells", type=int, default=384)
    parser.add_argument("--sites", type=int, default=3, help="per well")
    parser.add_argument("--size", default="512x512", help="HxW of a site's image")
    parser.add_argument("--runs", type=int, default=5, help="first renders (fresh contexts)")
    parser.add_argument("--recolours", type=int, default=5)
    parser.add_argument("--tiles-per-level", type=int, default=12)
    parser.add_argument("--recolour-zoom", type=int, default=None,
                        help="OpenLayers zoom of the recolour view (default: where polygons "
                        "start, max_zoom - 4)")  # fmt: skip
    parser.add_argument("--cache", type=Path, default=None,
                        help="build the plate in DIR/plate and DIR/home, or reuse the build "
                        "there")  # fmt: skip
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        if args.cache is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tm_bench_viewer_")))
        else:
            root = args.cache.resolve()
            root.mkdir(parents=True, exist_ok=True)
        built = build(root, args)
        eid, home = built["experiment_id"], root / "home"
        objects = built["objects"].get(OBJECT_TYPE, 0)
        log(f"plate: {built['objects']} objects, build {built['build_s']} s "
            f"{'(reused)' if built['reused'] else ''}")  # fmt: skip

        log("MVT against GeoJSON ...")
        with tm_server(home) as url:
            info = describe(url, login(url), eid)
        mvt = compare_encodings(home, eid, info, args.tiles_per_level)

        with tm_server(home) as url, sync_playwright() as playwright:
            token = login(url)
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=CHROMIUM_ARGS)  # fmt: skip
            try:
                log("first render ...")
                first = first_render(browser, url, token, eid, args.runs)
                zoom = args.recolour_zoom
                if zoom is None:
                    zoom = max(info["max_zoom"] - POLYGON_LEVELS, 0)
                log("recolour ...")
                recoloured = recolour(browser, url, token, eid, info, zoom, args.recolours)
                host = machine(browser)
            finally:
                browser.close()
            # The same with 2D canvases drawn on the CPU: above, SwiftShader emulates the GPU
            # that accelerates them, which is many times slower at filling 10^4 polygons and
            # slows down as its caches fill; a browser on a machine without a GPU draws canvases
            # on the CPU like this.
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=[*CHROMIUM_ARGS, CPU_CANVAS])  # fmt: skip
            try:
                log("recolour, canvas on the CPU ...")
                cpu_canvas = recolour(browser, url, token, eid, info, zoom, args.recolours)
            finally:
                browser.close()

    print(json.dumps({
        "benchmark": "viewer",
        "objects": objects,
        "objects_by_type": built["objects"],
        "plate": {**built["params"], "mosaic": [info["width"], info["height"]],
                  "max_zoom": info["max_zoom"], "features_per_cell": info["features"]},
        "build_s": built["build_s"],
        "build_seconds": built["seconds"],
        "build_reused": built["reused"],
        "server": "tm_server (Flask threaded) on 127.0.0.1, SQLite",
        "first_render_ms": first,
        "mvt": mvt,
        "recolour": recoloured,
        "recolour_cpu_canvas": {**cpu_canvas, "chromium_flag": CPU_CANVAS},
        "fps": None,
        "fps_note": "no GPU here: Chromium renders WebGL and canvas in software (SwiftShader), "
        "so frames per second while panning would measure the CPU rasteriser; measure it on "
        "a machine with a GPU",
        "machine": host,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
