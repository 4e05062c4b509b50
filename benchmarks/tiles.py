"""Benchmark: map tiles from a server started the production way, under 50 concurrent clients.

Simulates a CellVoyager plate, takes it through the whole workflow (pyramids
and the default jterator pipeline, so there are Cells to draw), starts
gunicorn on loopback as the README describes, logs in, and lists every raster
tile of the channel's pyramid and every vector tile of the Cells layer at the
zoom levels where it shows centroids or polygons. Then, for raster and for
vector tiles in turn, 50 clients (threads spread over several processes, each
with its own keep-alive connection) request random tiles of that list for
30 s, one after the other without pause, three times. Reports the medians of
requests per second, latency percentiles and the server's CPU milliseconds per
request; the goal is p95 < 50 ms.

The clients run on the same 2 cores as the server, so they take CPU time from it.

Usage::

    python benchmarks/tiles.py [--wells 4] [--sites 4] [--size 1080x1280] [--seconds 30]
                               [--clients 50] [--workers 2] [--threads 8] [--runs 3]

The last line of the output is one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from common import gunicorn_server, process_tree_cpu_seconds, registered_plate, tm

GOAL_P95_MS = 50.0
PROCESSES = 5


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _request(url: str, method: str = "GET", body: dict | None = None, token: str | None = None):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"JWT {token}"
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    conn.request(method, path, body=json.dumps(body) if body else None, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    if response.status != 200:
        sys.exit(f"{method} {url}: {response.status} {data[:300]!r}")
    return json.loads(data)


def _grid(prefix: str, zooms: range, max_zoom: int, width: int, height: int) -> list[str]:
    """The paths of every tile of `prefix` at the zoom levels `zooms`."""
    paths = []
    for z in zooms:
        scale = 2 ** (max_zoom - z)
        cols, rows = math.ceil(width / scale / 256), math.ceil(height / scale / 256)
        paths += [f"{prefix}?x={x}&y={y}&z={z}" for y in range(rows) for x in range(cols)]
    return paths


def tile_paths(url: str, token: str, eid: str) -> dict[str, list[str]]:
    """Every raster tile of the first channel layer and the visible Cells vector tiles."""
    api = f"{url}/api/experiments/{eid}"
    layer = _request(f"{api}/channel_layers", token=token)["data"][0]
    max_zoom = layer["max_zoom"]
    size = (layer["image_size"]["width"], layer["image_size"]["height"])
    cells = _request(f"{api}/segmentation_layers?mapobject_type_name=Cells", token=token)["data"][0]
    lowest = max(0, max_zoom - 6)  # the original's centroid threshold of segmented objects
    base = f"/api/experiments/{eid}"
    return {
        "raster": _grid(
            f"{base}/channel_layers/{layer['id']}/tiles", range(max_zoom + 1), max_zoom, *size
        ),  # fmt: skip
        "vector": _grid(
            f"{base}/segmentation_layers/{cells['id']}/tiles",
            range(lowest, max_zoom + 1),
            max_zoom,
            *size,
        ),  # fmt: skip
    }


def _client_process(
    url: str,
    token: str,
    paths: list[str],
    threads: int,
    seconds: float,
    seed: int,
    queue: multiprocessing.Queue,
) -> None:
    parts = urllib.parse.urlsplit(url)
    results: list[tuple[float, int, int]] = []
    lock = threading.Lock()
    start = time.monotonic() + 1.0  # all processes start together after their set-up
    deadline = start + seconds

    def run(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        headers = {"Authorization": f"JWT {token}"}
        mine = []
        while time.monotonic() < start:
            time.sleep(0.01)
        while (now := time.monotonic()) < deadline:
            path = rng.choice(paths)
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                size = len(response.read())
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
                status, size = 599, 0
            mine.append((time.monotonic() - now, status, size))
        conn.close()
        with lock:
            results.extend(mine)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    queue.put(results)


def load(url: str, token: str, paths: list[str], clients: int, seconds: float) -> dict:
    """`clients` closed-loop clients for `seconds`: requests/s and latency percentiles."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    per = [clients // PROCESSES + (i < clients % PROCESSES) for i in range(PROCESSES)]
    procs = [
        multiprocessing.Process(
            target=_client_process, args=(url, token, paths, n, seconds, i, queue)
        )  # fmt: skip
        for i, n in enumerate(per)
        if n
    ]
    for p in procs:
        p.start()
    results = [r for _ in procs for r in queue.get()]
    for p in procs:
        p.join()
    latencies = sorted(r[0] * 1000 for r in results)
    ok = [r for r in results if r[1] == 200]

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1)

    return {
        "requests": len(results),
        "errors": len(results) - len(ok),
        "requests_per_s": round(len(results) / seconds, 1),
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "mean_kb": round(statistics.fmean(r[2] for r in ok) / 1024, 1) if ok else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wells", type=int, default=4)
    parser.add_argument("--sites", type=int, default=4)
    parser.add_argument("--size", default="1080x1280")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3, help="load phases per kind (median)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tm_bench_tiles_") as tmp:
        log("simulating and processing the plate ...")
        eid = registered_plate(Path(tmp), "tiles", args.wells, args.sites, args.size, channels=2)
        os.environ["TMAPS_CORES"] = str(os.cpu_count() or 1)
        tm(["tm_workflow", eid, "submit"])
        with gunicorn_server(args.workers, args.threads) as (url, pid):
            token = _request(f"{url}/auth", "POST", {"username": "bench", "password": "bench"})[
                "access_token"
            ]
            paths = tile_paths(url, token, eid)
            results = {}
            for kind in ("raster", "vector"):
                runs = []
                for run in range(args.runs):
                    log(f"{kind} {run + 1}/{args.runs}: {len(paths[kind])} tiles, "
                        f"{args.clients} clients, {args.seconds} s")  # fmt: skip
                    cpu = process_tree_cpu_seconds(pid)
                    measured = load(url, token, paths[kind], args.clients, args.seconds)
                    cpu = process_tree_cpu_seconds(pid) - cpu
                    measured["server_cpu_ms_per_request"] = round(
                        1000 * cpu / max(measured["requests"], 1), 3
                    )
                    log(json.dumps(measured))
                    runs.append(measured)
                results[kind] = {
                    "tiles": len(paths[kind]),
                    **{key: statistics.median(r[key] for r in runs) for key in runs[0]},
                    "p95_ms_runs": [r["p95_ms"] for r in runs],
                }
    print(json.dumps({
        "benchmark": "tiles",
        "cores": os.cpu_count(),
        "server": f"gunicorn -w {args.workers} -k gthread --threads {args.threads}",
        "clients": args.clients,
        "seconds": args.seconds,
        "runs": args.runs,
        **results,
        "goal_p95_ms": GOAL_P95_MS,
        "meets_goal": all(r["p95_ms"] < GOAL_P95_MS and not r["errors"] for r in results.values()),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
