"""Benchmark: uploading microscope files through the browser app's upload page, against tm_client.

One installation (SQLite) in a temporary directory, served by gunicorn as in production
(2 workers x 8 threads, ``common.gunicorn_server``) on loopback; the browser app is the one
the server serves (the installed package's, or ``TMAPS_WEBAPP_DIR``'s). The source files are
written once into the temporary directory: CellVoyager image names, each an uncompressed
16-bit TIFF of random pixels (every file different), ``--size-mb`` MB (10^6 bytes) each.

1. Throughput: ``--files`` files of ``--size-mb`` MB, uploaded ``--repeats`` times by each
   client, the two clients taking turns: the page (headless Chromium, Debian's, logged in
   through sessionStorage, opens ``/experiments/<id>/upload?acquisition=<id>``, is handed
   the folder through its folder input, waits until every name is checked, then "Upload":
   timed from that click until the page counts every file complete; the page sends 4 at a
   time) and ``TmClient.upload_microscope_files`` (``tm_client microscope-file upload``,
   in this process, ``--parallel`` threads, by default the page's 4: timed around the call,
   which checks and registers the names and sends the files). Every upload goes to a new
   plate and acquisition, so nothing is skipped as already there; the server's count of
   complete files is checked, then the plate is deleted through the API (with its files).
   MB/s = bytes of the files / seconds; medians over the repeats.
   Goal: page >= 0.8 x tm_client.
2. The tab's memory: a fresh browser uploads ``--small-files`` files of ``--small-kb`` KB
   through the page (picked as one folder, checked, uploaded). The renderer processes of
   that browser (``--type=renderer`` children) are sampled from /proc every 0.1 s: resident
   (RSS) and proportional (PSS) memory; the tab's process is the renderer with the highest
   peak, and its kernel high-water mark (VmHWM) is the peak RSS the goal applies to. The
   page's JavaScript heap (CDP ``Performance.getMetrics``: JSHeapUsedSize, JSHeapTotalSize)
   is polled too. Then tm_client uploads the same files, for the files per second of both.
   Goal: the tab's peak RSS <= 500 MB.

Chromium runs with the browser tests' flags and ``--disable-gpu``: the upload page draws no
WebGL, and without a GPU Chromium composites in software; SwiftShader's emulated GPU (which
the tests turn on for the viewer) would take the CPU that the upload needs on a small machine.
Playwright's instrumentation of the page (CDP network events of every request) costs the
browser some CPU per file that a user's browser does not spend.

Usage::

    python benchmarks/ui_upload.py [--files 1000] [--size-mb 10] [--repeats 3] [--parallel 4]
                                   [--small-files 10000] [--small-kb 16] [--tmp DIR]

Needs (1 + 1 at a time) x files x size of free disk in the temporary directory (the sources
and one upload's copy): 20 GB by default. The last line of the output is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from common import gunicorn_server, tm
from playwright.sync_api import sync_playwright
from viewer import CHROMIUM, CHROMIUM_ARGS, PASSWORD, USER, VIEWPORT, get_json, log, login

GOAL_RATIO = 0.8
GOAL_TAB_MB = 500.0
MB = 1_000_000
#: the upload page sends this many files at once (tmui/src/upload/queue.ts)
PAGE_CONCURRENCY = 4
#: the browser tests' flags, and compositing in software: the page draws no WebGL, and a
#: browser without a usable GPU composites on the CPU (SwiftShader's emulated GPU, which the
#: tests' flags turn on for the viewer's WebGL, costs the page several times more CPU)
BROWSER_ARGS = [*CHROMIUM_ARGS, "--disable-gpu"]
#: seconds between samples of the renderer processes' memory
SAMPLE_S = 0.1
#: a page that makes no progress for this long has failed
STALL_S = 300
WELLS = [f"{row}{col:02d}" for row in "ABCDEFGHIJKLMNOP" for col in range(1, 25)]

#: files the page counts in a state (0 before the chip exists)
PAGE_COUNT = """(state) => {
  const chip = document.querySelector(`[data-testid=count-${state}]`);
  return chip ? Number(chip.textContent) : 0;
}"""
#: the microscope-file requests' span in the page's resource timing: [first start, last end]
NETWORK_SPAN = """() => {
  const sent = performance.getEntriesByType('resource')
    .filter((e) => e.name.endsWith('/microscope-file'));
  if (sent.length === 0) return null;
  const first = Math.min(...sent.map((e) => e.startTime));
  return [first, Math.max(...sent.map((e) => e.responseEnd)), sent.length];
}"""


# --- the files


def cellvoyager_name(i: int) -> str:
    """A distinct CellVoyager image name for every i (well, field, channel)."""
    well = WELLS[(i // 999) % len(WELLS)]
    return f"bench_{well}_T0001F{i % 999 + 1:03d}L01A01Z01C{i // (999 * len(WELLS)) + 1:02d}.tif"


def tiff_header(width: int, height: int) -> bytes:
    """A little-endian baseline TIFF header and IFD of one uncompressed 16-bit strip that
    follows right after it."""
    entries = [  # tag, type (3 SHORT, 4 LONG), value
        (256, 4, width), (257, 4, height), (258, 3, 16), (259, 3, 1), (262, 3, 1),
        (273, 4, 0), (277, 3, 1), (278, 4, height), (279, 4, width * height * 2),
    ]  # fmt: skip
    offset = 8 + 2 + 12 * len(entries) + 4
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        value = offset if tag == 273 else value
        packed = struct.pack("<I", value) if kind == 4 else struct.pack("<HH", value, 0)
        ifd += struct.pack("<HHI", tag, kind, 1) + packed
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)


def write_files(directory: Path, count: int, size_bytes: int, seed: int) -> int:
    """`count` TIFFs of about `size_bytes` each in `directory`; their total size in bytes."""
    directory.mkdir(parents=True)
    side = max(int((size_bytes / 2) ** 0.5), 2)
    header = tiff_header(side, side)
    pixels = np.random.default_rng(seed).integers(0, 4096, size=side * side, dtype=np.uint16)
    total = 0
    for i in range(count):
        pixels[:4] = np.frombuffer(struct.pack("<Q", i), dtype=np.uint16)  # every file differs
        path = directory / cellvoyager_name(i)
        with open(path, "wb") as out:
            out.write(header)
            out.write(pixels.data)
        total += path.stat().st_size
    return total


# --- the server


class Server:
    """The API calls of the benchmark, as user ``bench``."""

    def __init__(self, url: str, experiment: str) -> None:
        self.url = url
        self.experiment = experiment
        self.token = login(url)
        payload = {"name": experiment, "microscope_type": "cellvoyager", "plate_format": 384}
        self.eid = int(self.call("POST", "/api/experiments", payload)["data"]["id"])
        self.serial = 0

    def call(self, method: str, path: str, body: dict | None = None):
        return get_json(f"{self.url}{path}", self.token, method, body)

    def new_acquisition(self, label: str) -> tuple[str, int, int]:
        """A new plate with one acquisition: (plate name, plate id, acquisition id)."""
        self.serial += 1
        name = f"{label}{self.serial:02d}"
        base = f"/api/experiments/{self.eid}"
        plate_id = int(self.call("POST", f"{base}/plates", {"name": name})["data"]["id"])
        answer = self.call("POST", f"{base}/acquisitions", {"plate_name": name, "name": "a"})
        return name, plate_id, int(answer["data"]["id"])

    def complete(self, acquisition_id: int) -> int:
        base = f"/api/experiments/{self.eid}/acquisitions/{acquisition_id}"
        return int(self.call("GET", f"{base}/upload/count")["data"])

    def delete_plate(self, plate_id: int) -> None:
        self.call("DELETE", f"/api/experiments/{self.eid}/plates/{plate_id}")


# --- memory of the renderer processes


def descendants(root: int) -> list[int]:
    """Pids of every process below `root` (from /proc, now)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def renderers() -> list[int]:
    """Chromium renderer processes started (through Playwright's driver) by this process."""
    pids = []
    for pid in descendants(os.getpid()):
        try:
            if b"--type=renderer" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(pid)
        except OSError:
            pass
    return pids


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM and Pss of a process, in kB (missing ones left out)."""
    found = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                found[line.split(":")[0]] = int(line.split()[1])
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                found["Pss"] = int(line.split()[1])
    return found


class RendererSampler:
    """Samples the renderer processes' memory on a thread until stopped: peaks per pid."""

    def __init__(self) -> None:
        self.peaks: dict[int, dict[str, int]] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RendererSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sample()  # the high-water marks at the end
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        for pid in renderers():
            now = memory_kb(pid)
            peak = self.peaks.setdefault(pid, {})
            for key, value in now.items():
                peak[key] = max(peak.get(key, 0), value)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.sample()

    def tab(self) -> dict:
        """The renderer with the highest peak (the tab's), and all renderers' peaks, in MB."""
        if not self.peaks:
            return {"error": "no renderer process found"}
        pid, peak = max(self.peaks.items(), key=lambda kv: kv[1].get("VmHWM", 0))
        mb = {key: round(value / 1024, 1) for key, value in peak.items()}
        return {
            "rss_peak_mb": mb.get("VmHWM"),
            "rss_peak_sampled_mb": mb.get("VmRSS"),
            "pss_peak_mb": mb.get("Pss"),
            "renderer_processes": len(self.peaks),
            "other_renderers_rss_peak_mb": sorted(
                round(p.get("VmHWM", 0) / 1024, 1) for q, p in self.peaks.items() if q != pid
            ),
            "samples": self.samples,
        }


# --- the two clients


def open_page(browser, server: Server, acquisition_id: int):
    """A new context's page on the acquisition's upload page, logged in as the login form
    does (sessionStorage, before the app's first script)."""
    context = browser.new_context(viewport=VIEWPORT)
    session = json.dumps({"token": server.token, "user": USER})
    context.add_init_script(
        script=f"if (location.protocol.startsWith('http')) "
        f"sessionStorage.setItem('tm.session', {json.dumps(session)});"
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server.url}/experiments/{server.eid}/upload?acquisition={acquisition_id}")
    page.locator("[data-testid=acquisition-page] [data-testid=server-count]").wait_for()
    return context, page, errors


def wait_count(page, state: str, n: int, poll=None) -> None:
    """Wait until the page counts `n` files in `state`, calling `poll` about every 0.2 s
    (or waiting in the page); fails when the count does not move for STALL_S."""
    last, moved = -1, time.monotonic()
    told = time.monotonic()
    while True:
        if poll is None:
            with contextlib.suppress(Exception):  # a timeout: check that it still moves
                page.wait_for_function(
                    f"([s, n]) => ({PAGE_COUNT})(s) >= n", arg=[state, n], polling=50,
                    timeout=10_000,
                )  # fmt: skip
        else:
            poll()
            time.sleep(0.2)
        now = page.evaluate(PAGE_COUNT, state)
        if now >= n:
            return
        if time.monotonic() - told > 30:
            log(f"    {now} of {n} files {state}")
            told = time.monotonic()
        if now != last:
            last, moved = now, time.monotonic()
        elif time.monotonic() - moved > STALL_S:
            failed = page.evaluate(PAGE_COUNT, "failed")
            sys.exit(f"the page is stuck at {now} of {n} {state} files ({failed} failed)")


def page_upload(browser, server: Server, directory: Path, n: int, poll=None) -> dict:
    """Upload the folder through the page into a new acquisition; seconds and checks."""
    _, plate_id, acquisition_id = server.new_acquisition("page")
    context, page, errors = open_page(browser, server, acquisition_id)
    try:
        page.evaluate(f"performance.setResourceTimingBufferSize({n + 100})")
        picked = time.perf_counter()
        page.locator("[data-testid=folder-input]").set_input_files(str(directory))
        wait_count(page, "ready", n, poll)
        checked = time.perf_counter()
        page.click("[data-testid=start-upload]")
        wait_count(page, "complete", n, poll)
        seconds = time.perf_counter() - checked
        span = page.evaluate(NETWORK_SPAN)
    finally:
        context.close()
    arrived = server.complete(acquisition_id)
    server.delete_plate(plate_id)
    if arrived != n:
        sys.exit(f"the page uploaded {arrived} of {n} files")
    return {
        "s": seconds,
        "pick_and_check_s": checked - picked,
        "network_s": (span[1] - span[0]) / 1000 if span else None,
        "requests": span[2] if span else 0,
        "page_errors": errors[:5],
    }


def client_upload(server: Server, directory: Path, n: int, parallel: int) -> dict:
    """Upload the folder with TmClient into a new acquisition; seconds."""
    from tmclient import TmClient

    plate, plate_id, acquisition_id = server.new_acquisition("client")
    host, port = server.url.removeprefix("http://").split(":")
    client = TmClient(host, int(port), USER, PASSWORD, experiment_name=server.experiment)
    try:
        start = time.perf_counter()
        sent = client.upload_microscope_files(plate, "a", directory, parallel=parallel)
        seconds = time.perf_counter() - start
    finally:
        client.close()
    arrived = server.complete(acquisition_id)
    server.delete_plate(plate_id)
    if arrived != n or len(sent) != n:
        sys.exit(f"tm_client uploaded {arrived} of {n} files ({len(sent)} sent)")
    return {"s": seconds}


def summary(runs: list[dict], total_bytes: int) -> dict:
    rates = [total_bytes / MB / r["s"] for r in runs]
    out = {
        "median_mb_s": round(statistics.median(rates), 1),
        "runs_mb_s": [round(r, 1) for r in rates],
        "runs_s": [round(r["s"], 2) for r in runs],
    }
    if "network_s" in runs[0]:
        out["network_s"] = [r["network_s"] and round(r["network_s"], 2) for r in runs]
        out["pick_and_check_s"] = [round(r["pick_and_check_s"], 2) for r in runs]
        out["requests"] = [r["requests"] for r in runs]
        out["page_errors"] = [e for r in runs for e in r["page_errors"]][:5]
    return out


def throughput(playwright, server: Server, directory: Path, args, total_bytes: int) -> dict:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=BROWSER_ARGS)  # fmt: skip
    page_runs, client_runs = [], []
    try:
        with RendererSampler() as sampler:
            for repeat in range(args.repeats):
                page_runs.append(page_upload(browser, server, directory, args.files))
                log(f"  page {repeat + 1}/{args.repeats}: {page_runs[-1]['s']:.1f} s, "
                    f"{total_bytes / MB / page_runs[-1]['s']:.0f} MB/s")  # fmt: skip
                client_runs.append(client_upload(server, directory, args.files, args.parallel))
                log(f"  tm_client {repeat + 1}/{args.repeats}: {client_runs[-1]['s']:.1f} s, "
                    f"{total_bytes / MB / client_runs[-1]['s']:.0f} MB/s")  # fmt: skip
        version = browser.version
    finally:
        browser.close()
    page, client = summary(page_runs, total_bytes), summary(client_runs, total_bytes)
    ratio = page["median_mb_s"] / client["median_mb_s"]
    return {
        "page": {**page, "concurrency": PAGE_CONCURRENCY, "tab": sampler.tab()},
        "tm_client": {**client, "parallel": args.parallel},
        "ratio": round(ratio, 3),
        "goal_ratio": GOAL_RATIO,
        "meets_goal": ratio >= GOAL_RATIO,
        "chromium": version,
        "chromium_flags": BROWSER_ARGS,
        "note": "page: s from the click on Upload (names already checked) until the page "
        "counts every file complete (registration and sending; its counts are drawn at most "
        "every 150 ms); network_s: first microscope-file request's start to the last one's "
        "end (resource timing). tm_client: s of upload_microscope_files (validity check, "
        "registration, sending). Clients take turns; each upload into a new acquisition",
    }


def tab_memory(playwright, server: Server, directory: Path, n: int, parallel: int) -> dict:
    """Peak memory of the tab while it uploads the `n` files of `directory`."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=BROWSER_ARGS)  # fmt: skip
    heap = {"JSHeapUsedSize": 0.0, "JSHeapTotalSize": 0.0}
    try:
        with RendererSampler() as sampler:
            _, plate_id, acquisition_id = server.new_acquisition("memory")
            context, page, errors = open_page(browser, server, acquisition_id)
            cdp = context.new_cdp_session(page)
            cdp.send("Performance.enable")

            def poll() -> None:
                for metric in cdp.send("Performance.getMetrics")["metrics"]:
                    if metric["name"] in heap:
                        heap[metric["name"]] = max(heap[metric["name"]], metric["value"])

            poll()
            time.sleep(0.5)
            before = sampler.tab()
            try:
                picked = time.perf_counter()
                page.locator("[data-testid=folder-input]").set_input_files(str(directory))
                wait_count(page, "ready", n, poll)
                checked = time.perf_counter()
                page.click("[data-testid=start-upload]")
                wait_count(page, "complete", n, poll)
                done = time.perf_counter()
                page.wait_for_timeout(1000)  # the drawing and reload after the last file
                poll()
            finally:
                context.close()
    finally:
        browser.close()
    arrived = server.complete(acquisition_id)
    server.delete_plate(plate_id)
    if arrived != n:
        sys.exit(f"the page uploaded {arrived} of {n} small files")
    log(f"  page: {n / (done - checked):.0f} files/s; tm_client on the same files ...")
    client = client_upload(server, directory, n, parallel)
    tab = sampler.tab()
    peak = tab.get("rss_peak_mb")
    return {
        "tab": tab,
        "tab_rss_before_pick_mb": before.get("rss_peak_sampled_mb"),
        "js_heap_used_peak_mb": round(heap["JSHeapUsedSize"] / 2**20, 1),
        "js_heap_total_peak_mb": round(heap["JSHeapTotalSize"] / 2**20, 1),
        "pick_and_check_s": round(checked - picked, 2),
        "upload_s": round(done - checked, 2),
        "files_per_s": round(n / (done - checked), 1),
        "tm_client_files_per_s": round(n / client["s"], 1),
        "page_errors": errors[:5],
        "goal_mb": GOAL_TAB_MB,
        "goal_applies_to": "tab.rss_peak_mb (the tab's renderer process: kernel high-water "
        "mark VmHWM of resident memory, from the page's load to the end of the upload)",
        "meets_goal": peak is not None and peak <= GOAL_TAB_MB,
    }


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip()
                  for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())  # fmt: skip
    memory = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))  # fmt: skip
    return {"cores": os.cpu_count(), "cpu": model, "memory_gb": round(memory / 2**20, 1)}


@contextlib.contextmanager
def installation(root: Path) -> Iterator[Path]:
    """An installation in `root`/home (SQLite) with user ``bench``; this process and our
    programs see it through TMAPS_* variables (restored on exit)."""
    home = root / "home"
    home.mkdir()
    saved = dict(os.environ)
    os.environ.update(
        TMAPS_HOME=str(home),
        TMAPS_DB_URL=f"sqlite:///{home}/tm.db",
        TMAPS_CONFIG_FILE=str(home / "none.cfg"),
        TMAPS_WARM_START="0",
    )
    os.environ.pop("TMAPS_STORAGE_HOME", None)
    try:
        tm(["tm_add", "user", "-n", USER, "-p", PASSWORD, "-e", "bench@example.org"])
        yield home
    finally:
        os.environ.clear()
        os.environ.update(saved)


def webapp_dir() -> str:
    if os.environ.get("TMAPS_WEBAPP_DIR"):
        return os.environ["TMAPS_WEBAPP_DIR"]
    import tmserver

    return str(Path(tmserver.__file__).parent / "webapp")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000, help="files of the throughput run")
    parser.add_argument("--size-mb", type=float, default=10.0, help="MB (10^6 bytes) per file")
    parser.add_argument("--repeats", type=int, default=3, help="uploads by each client")
    parser.add_argument("--parallel", type=int, default=PAGE_CONCURRENCY,
                        help="tm_client's simultaneous uploads (the page sends 4)")  # fmt: skip
    parser.add_argument("--small-files", type=int, default=10_000,
                        help="files of the memory run (0: skip it)")  # fmt: skip
    parser.add_argument("--small-kb", type=float, default=16.0, help="kB (10^3 bytes) per file")
    parser.add_argument("--tmp", type=Path, default=None, help="parent of the temporary directory")
    args = parser.parse_args()
    need = args.files * args.size_mb * MB * 2 + args.small_files * args.small_kb * 1000 * 2
    free = shutil.disk_usage(args.tmp or tempfile.gettempdir()).free
    if need > free * 0.9:
        sys.exit(f"needs about {need / 1e9:.1f} GB of free disk, {free / 1e9:.1f} GB free")

    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tm_bench_ui_upload_",
                                                                    dir=args.tmp)))  # fmt: skip
        stack.enter_context(installation(root))
        log(f"writing {args.files} files of {args.size_mb} MB ...")
        start = time.perf_counter()
        total_bytes = write_files(root / "big", args.files, int(args.size_mb * MB), seed=1)
        log(f"  {total_bytes / 1e9:.2f} GB in {time.perf_counter() - start:.0f} s")
        small_bytes = 0
        if args.small_files:
            log(f"writing {args.small_files} files of {args.small_kb} kB ...")
            small_bytes = write_files(root / "small", args.small_files,
                                      int(args.small_kb * 1000), seed=2)  # fmt: skip
        url, _ = stack.enter_context(gunicorn_server())
        server = Server(url, "ui_upload")
        with sync_playwright() as playwright:
            log(f"throughput: {args.files} files, {args.repeats} repeats per client ...")
            speed = throughput(playwright, server, root / "big", args, total_bytes)
            shutil.rmtree(root / "big")
            memory = None
            if args.small_files:
                log(f"the tab's memory: {args.small_files} files through the page ...")
                memory = tab_memory(
                    playwright, server, root / "small", args.small_files, args.parallel
                )
                log(f"  tab peak RSS {memory['tab'].get('rss_peak_mb')} MB, JS heap used "
                    f"{memory['js_heap_used_peak_mb']} MB")  # fmt: skip

    print(json.dumps({
        "benchmark": "ui_upload",
        "files": args.files,
        "file_mb": round(total_bytes / args.files / MB, 3),
        "total_mb": round(total_bytes / MB, 1),
        "repeats": args.repeats,
        **speed,
        "memory": memory and {"small_files": args.small_files,
                              "small_file_kb": round(small_bytes / args.small_files / 1000, 2),
                              **memory},
        "server": "gunicorn tmserver.wsgi:app, 2 workers x 8 threads, 127.0.0.1, SQLite; "
        "each file written to a temporary name, fsync'd, renamed",
        "webapp": webapp_dir(),
        "machine": machine(),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
