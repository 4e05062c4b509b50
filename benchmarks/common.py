"""What the benchmark scripts share: running our programs and a scratch PostgreSQL database."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

BIN = Path(sys.executable).parent
DEFAULT_PG_URL = os.environ.get(
    "TMAPS_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def tm(args: list[str], env: dict[str, str] | None = None) -> str:
    """Run one of our programs from this venv; exit with its error if it fails."""
    proc = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        env=env if env is not None else dict(os.environ),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout.strip()


@contextlib.contextmanager
def scratch_pg_database(admin_url: str = DEFAULT_PG_URL) -> Iterator[str]:
    """URL of a new, empty PostgreSQL database, dropped on exit."""
    name = f"tm_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def registered_plate(
    tmp: Path, name: str, wells: int, sites: int, size: str, channels: int = 1
) -> str:
    """Simulate a CellVoyager plate in `tmp`/plate and register it in a new installation.

    Points TMAPS_HOME, TMAPS_DB_URL and TMAPS_CONFIG_FILE (in ``os.environ``, so
    our programs and the tmlib imported by the benchmark see the same data) at
    `tmp`/home, with an embedded SQLite database. Returns the experiment id.
    """
    plate, home = tmp / "plate", tmp / "home"
    tm(["tm_simulate", "plate", str(plate), "--wells", str(wells), "--sites", str(sites),
        "--channels", str(channels), "--size", size, "-q"])  # fmt: skip
    home.mkdir()
    os.environ.update(TMAPS_HOME=str(home), TMAPS_DB_URL=f"sqlite:///{home}/tm.db",
                      TMAPS_CONFIG_FILE=str(home / "none.cfg"))  # fmt: skip
    tm(["tm_add", "user", "-n", "bench", "-p", "bench", "-e", "bench@example.org"])
    eid = tm(["tm_add", "experiment", "-e", name, "-u", "bench"])
    tm(["tm_add", "plate", "-e", eid, "-p", "p"])
    tm(["tm_add", "acquisition", "-e", eid, "-p", "p", "-a", "a"])
    tm(["tm_add", "files", "-e", eid, "-p", "p", "-a", "a", "-s", str(plate)])
    wait_for_warm_server()
    return eid


def wait_for_warm_server(timeout: float = 120) -> None:
    """Wait until the warm-start server that our first commands started listens, as it
    does for a user after their first commands (see tmlib.cli.warm); no-op when off."""
    from tmlib.cli import warm

    if not warm.enabled():
        return
    path = warm.socket_path()
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def job_times(eid: int) -> dict:
    """Wall and CPU seconds of the init, run and collect jobs of the last workflow
    submission, and when the first job started and the last one ended (UTC, as the
    engine records them)."""
    import datetime as dt
    from collections import defaultdict

    from tmlib.workflow import manager

    jobs: dict[str, list[dict]] = defaultdict(list)

    def walk(node: dict) -> None:
        if not node["subtasks"]:
            jobs[node["type"]].append(node)
        for child in node["subtasks"]:
            walk(child)

    walk(manager.status(eid))
    runs = jobs["RunJob"]
    every = jobs["InitJob"] + runs + jobs["CollectJob"]
    ends = [dt.datetime.fromisoformat(j["updated_at"]).replace(tzinfo=dt.UTC) for j in every]
    return {
        "jobs": len(runs),
        "init": sum(j["time"] for j in jobs["InitJob"]),
        "run_jobs_sum": sum(j["time"] for j in runs),
        "run_job_max": max(j["time"] for j in runs),
        "collect": sum(j["time"] for j in jobs["CollectJob"]),
        "run_jobs_cpu": sum(j["cpu_time"] for j in runs),
        "collect_cpu": sum(j["cpu_time"] for j in jobs["CollectJob"]),
        "init_cpu": sum(j["cpu_time"] for j in jobs["InitJob"]),
        "first_start": min(e.timestamp() - j["time"] for e, j in zip(ends, every, strict=True)),
        "last_end": max(e.timestamp() for e in ends),
    }


def fixed_cost(eid: int, start: float, end: float, program: str = "workflow") -> dict:
    """Where the wall time from `start` to `end` (``time.time()`` around the command that
    submitted) went besides the run jobs, from the last `program` submission's jobs:
    ``to_first_job`` (program start, job spawner, up to the first job: the init job in
    a workflow), ``init`` and ``collect`` (their jobs), ``after_last_job`` (noticing
    the end, the last status, the program's exit) and ``fixed_s``: everything but the
    run phases (from their first job's start to their last job's end)."""
    import datetime as dt

    from tmlib.workflow import manager

    leaves: list[dict] = []

    def walk(node: dict) -> None:
        if not node["subtasks"]:
            leaves.append(node)
        for child in node["subtasks"]:
            walk(child)

    walk(manager.status(eid, program))
    spans: dict[str, list[tuple[float, float]]] = {"InitJob": [], "RunJob": [], "CollectJob": []}
    for job in leaves:
        ended = dt.datetime.fromisoformat(job["updated_at"]).replace(tzinfo=dt.UTC).timestamp()
        spans[job["type"]].append((ended - (job["time"] or 0.0), ended))
    every = [s for kind in spans.values() for s in kind]
    run_phases = 0.0  # run jobs of one step overlap; steps follow each other
    for step_runs in _by_step(leaves, spans["RunJob"]).values():
        run_phases += max(e for _, e in step_runs) - min(s for s, _ in step_runs)
    return {
        "to_first_job": round(min(s for s, _ in every) - start, 3),
        "init": round(sum(e - s for s, e in spans["InitJob"]), 3),
        "collect": round(sum(e - s for s, e in spans["CollectJob"]), 3),
        "after_last_job": round(end - max(e for _, e in every), 3),
        "run_phases": round(run_phases, 3),
        "fixed_s": round(end - start - run_phases, 3),
    }


def _by_step(leaves: list[dict], runs: list[tuple[float, float]]) -> dict:
    names = [job["name"].split("_run_")[0] for job in leaves if job["type"] == "RunJob"]
    grouped: dict[str, list[tuple[float, float]]] = {}
    for name, span in zip(names, runs, strict=True):
        grouped.setdefault(name, []).append(span)
    return grouped


def disk_bytes(path: Path) -> int:
    """Bytes that the files under `path` (a file or a directory) take on disk, in blocks."""
    path = Path(path)
    files = [path] if path.is_file() else (p for p in path.rglob("*") if p.is_file())
    return sum(p.stat().st_blocks * 512 for p in files)


def free_port() -> int:
    """A TCP port on the loopback interface that nobody listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gunicorn_server(workers: int = 2, threads: int = 8) -> Iterator[tuple[str, int]]:
    """Serve ``tmserver.wsgi:app`` with gunicorn the way the README says production does.

    Yields the base URL and gunicorn's master pid; stops the server on exit.
    The server sees the current ``os.environ`` (database, TMAPS_HOME ...).
    """
    import time
    import urllib.request

    port = free_port()
    log = Path(os.environ.get("TMAPS_HOME", ".")) / "gunicorn.log"
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [str(BIN / "gunicorn"), "-w", str(workers), "-k", "gthread", "--threads", str(threads),
             "-b", f"127.0.0.1:{port}", "--log-level", "warning", "tmserver.wsgi:app"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/openapi.json", timeout=1).read()
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"gunicorn did not start: {log.read_text()[-2000:]}")
                time.sleep(0.2)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def process_tree_peak_rss_mb(pid: int) -> dict[str, float]:
    """Peak resident memory (VmHWM) of a process and of each of its children, in MB."""
    peaks = {}
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for each in [str(pid), *children]:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks[each] = int(line.split()[1]) / 1024
    return peaks


def process_tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its (living) children so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0
    for each in [str(pid), *children]:
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks
