"""Shared helpers of the tests."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import sqlalchemy as sa

import tmlib.models as tm

#: Metadata files a CellVoyager writes next to its images.
CELLVOYAGER_METADATA = ("MeasurementData.mlf", "MeasurementDetail.mrf")


def cellvoyager_name(well: str, site: int, channel: int, plate: str = "Plate") -> str:
    """Image file name in CellVoyager style, e.g. ``Plate_A01_T0001F001L01A01Z01C01.tif``."""
    return f"{plate}_{well}_T0001F{site:03d}L01A01Z01C{channel:02d}.tif"


def make_cellvoyager_dir(
    directory: Path,
    wells: Iterable[str] = ("A01", "A02"),
    sites: int = 2,
    channels: int = 1,
    metadata: bool = True,
    extra: Iterable[str] = (),
    content: bool = False,
) -> tuple[list[str], list[str], list[str]]:
    """Fill `directory` with CellVoyager-named files.

    Parameters
    ----------
    directory : Path
        Created if needed.
    wells, sites, channels
        Which image files to write.
    metadata : bool
        Also write the ``.mlf``/``.mrf`` files.
    extra : iterable of str
        Names of further files that match no pattern.
    content : bool
        Give every file distinct bytes (else the files are empty).

    Returns
    -------
    images, metadata, extra : lists of str
        The file names written, sorted.
    """
    directory.mkdir(parents=True, exist_ok=True)
    images = sorted(
        cellvoyager_name(w, s, c)
        for w in wells
        for s in range(1, sites + 1)
        for c in range(1, channels + 1)
    )
    metas = sorted(CELLVOYAGER_METADATA) if metadata else []
    others = sorted(extra)
    for name in images + metas + others:
        (directory / name).write_bytes(f"content of {name}\n".encode() if content else b"")
    return images, metas, others


def count_rows(experiment_id: int, model: type) -> int:
    """Number of rows of an experiment model in one experiment."""
    with tm.utils.ExperimentSession(experiment_id) as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model))


def microscope_file_rows(experiment_id: int | str) -> dict[str, list[str]]:
    """Name → statuses of every microscope file row of an experiment (both tables)."""
    rows: dict[str, list[str]] = {}
    with tm.utils.ExperimentSession(int(experiment_id)) as session:
        for model in (tm.MicroscopeImageFile, tm.MicroscopeMetadataFile):
            for name, status in session.execute(sa.select(model.name, model.status)):
                rows.setdefault(name, []).append(status)
    return rows


def count_main_rows(model: type) -> int:
    """Number of rows of a main-database model."""
    with tm.utils.MainSession() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model))


def experiment_schemas(db_url: str) -> list[str]:
    """Names of the ``experiment_*`` schemas of a PostgreSQL database (sorted)."""
    engine = tm.utils.main_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT schema_name FROM information_schema.schemata "
                "WHERE schema_name LIKE 'experiment\\_%'"
            )
        ).scalars()
        return sorted(rows)


def schema_tables(db_url: str, schema: str) -> set[str]:
    """Names of the tables of a PostgreSQL schema."""
    engine = tm.utils.main_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"),
            {"s": schema},
        ).scalars()
        return set(rows)


def files_under(directory: Path) -> list[Path]:
    """All files and links (not directories) below `directory`, sorted; [] if it is missing."""
    if not directory.exists():
        return []
    return sorted(p for p in directory.rglob("*") if p.is_symlink() or p.is_file())


def use_fast_password_hashing(monkeypatch) -> None:
    """Make ``User(password=...)`` cheap: argon2id with minimal cost (tests only).

    The hashes still start with ``$argon2id$`` and verify through the model's own
    hasher, which reads the cost parameters from each hash.
    """
    from argon2 import PasswordHasher

    import tmlib.models.main

    monkeypatch.setattr(
        tmlib.models.main,
        "_hasher",
        PasswordHasher(time_cost=1, memory_cost=256, parallelism=1),
    )


def probe_job(argv: list[str]) -> int:
    """A "call" job for the engine tests, preloaded by the local backend's spawner.

    `argv` is a list of actions done in order: ``print TEXT`` (stdout),
    ``warn TEXT`` (stderr), ``alloc MB`` (hold that much memory), ``sleep S``,
    ``signal N`` (send itself signal N), ``raise TEXT`` (an uncaught exception),
    ``sysexit CODE`` (``SystemExit``; CODE may be a message), ``exit N``
    (return N). Returns 0 at the end.
    """
    import os
    import sys
    import time

    held = []
    words = list(argv)
    while words:
        action, value = words.pop(0), words.pop(0)
        if action == "print":
            print(value)
        elif action == "warn":
            print(value, file=sys.stderr)
        elif action == "alloc":
            held.append(bytearray(int(value) * 2**20))
            for i in range(0, len(held[-1]), 4096):
                held[-1][i] = 1
        elif action == "sleep":
            time.sleep(float(value))
        elif action == "signal":
            os.kill(os.getpid(), int(value))
        elif action == "raise":
            raise RuntimeError(value)
        elif action == "sysexit":
            raise SystemExit(int(value) if value.isdigit() else value)
        elif action == "exit":
            return int(value)
    return 0


#: where the installed console scripts are
BIN = Path(sys.executable).parent


def env() -> dict[str, str]:
    """The environment of a subprocess: the test's TMAPS_* settings, two cores."""
    return {**os.environ, "TMAPS_CORES": "2"}


def cli(program: str, *args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run an installed console script to its end."""
    return subprocess.run(
        [str(BIN / program), *map(str, args)],
        env=env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """`result`, after checking that it exited 0."""
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result


def one_error_line(result: subprocess.CompletedProcess, code: int = 2) -> str:
    """The single error line of a command that failed with exit status `code`."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def tile_checksums(experiment_id: int) -> dict[str, str]:
    """sha256 over all tiles (keys and JPEG bytes) of each pyramid layer."""
    sums = {}
    with tm.utils.ExperimentSession(experiment_id) as session:
        for layer in session.scalars(sa.select(tm.ChannelLayer)):
            digest = hashlib.sha256()
            with layer.open_tiles() as reader:
                for level, row, column, data in reader.tiles():
                    digest.update(f"{level},{row},{column}".encode())
                    digest.update(data)
            sums[f"{layer.channel.name}/{layer.tpoint}/{layer.zplane}"] = digest.hexdigest()
    return sums


def expected_base(
    experiment_id: int, channel_name: str, window: tuple[int, int], aligned: bool = False
) -> np.ndarray:
    """The full-resolution mosaic of a channel, rendered directly from its planes.

    With `aligned`, each plane is shifted and cropped by its site's shift
    (:func:`tmlib.alignment.shift_and_crop`) and placed in the aligned layout.
    """
    from tmlib.alignment import shift_and_crop
    from tmlib.mosaic import experiment_mosaic

    with tm.utils.ExperimentSession(experiment_id) as session:
        layout = experiment_mosaic(session, aligned=aligned)
        shifts = {
            (s.site_id, s.cycle_id): (s.y, s.x) for s in session.scalars(sa.select(tm.SiteShift))
        }
        image = np.zeros((layout.height, layout.width), np.uint8)
        files = session.scalars(
            sa.select(tm.ChannelImageFile).join(tm.Channel).where(tm.Channel.name == channel_name)
        )
        lower, upper = window
        for f in files:
            box = layout.sites[f.site_id]
            pixels = f.get()
            if aligned:
                site = f.site
                pixels = shift_and_crop(
                    pixels,
                    *shifts[(f.site_id, f.cycle_id)],
                    site.top_residue,
                    site.bottom_residue,
                    site.left_residue,
                    site.right_residue,
                )
            scaled = (pixels.astype(float) - lower) * 255 / (upper - lower)
            image[box.y : box.bottom, box.x : box.right] = np.clip(np.rint(scaled), 0, 255)
    return image


def run_step(experiment_id: int, name: str, **args: object) -> int:
    """A step's phases in this process, the code its jobs run: init, every run job,
    collect. Returns the number of run jobs."""
    from tmlib.workflow.step import get_step

    step = get_step(name)(experiment_id)
    n = step.init(args)
    for job_id in step.run_job_ids():
        step.run(job_id)
    if step.has_collect:
        step.collect()
    return n


def simulated_site(shape: tuple[int, int] = (256, 256), seed: int = 0) -> dict[str, np.ndarray]:
    """A real-looking site as the simulator draws it, with its ground truth.

    Returns
    -------
    dict
        ``dapi`` and ``stain``: uint16 images of the nuclear and the cytoplasmic
        stain (vignetting, shot and read noise); ``nuclei`` and ``cells``:
        int32 label images of the truth (cells contain their nucleus).
    """
    from tmlib.simulate import cells as cellsim

    rng = np.random.default_rng(seed)
    population = cellsim.place_cells(rng, shape)
    rendering = cellsim.render_site(population, shape, cellsim.texture_tile(rng))
    illumination = cellsim.vignetting_field(shape)
    noise = cellsim.NoiseBank(shape[0] * shape[1], seed)
    images = {
        name: cellsim.expose(signal, illumination, noise.window(rng))
        for name, signal in (("dapi", rendering.nuclei), ("stain", rendering.cytoplasm))
    }
    return {
        **images,
        "nuclei": rendering.nuclei_labels.astype(np.int32),
        "cells": rendering.cell_labels.astype(np.int32),
    }


class LiveServer:
    """``tmserver.wsgi:app`` under gunicorn on loopback, as the README deploys it.

    Started by :func:`live_server`; the server sees the test's ``TMAPS_*``
    environment and signs tokens with ``TMAPS_SECRET_KEY`` = the tests' secret.

    Attributes
    ----------
    url : str
        Base URL, e.g. ``http://127.0.0.1:PORT``.
    log : Path
        gunicorn's combined output (error and access log).
    pid : int
        The gunicorn master's pid.
    """

    def __init__(self, url: str, log: Path, pid: int) -> None:
        import requests

        self.url, self.log, self.pid = url, log, pid
        self.http = requests.Session()

    def login(self, user: str, password: str = "secret") -> str:
        """A token of `user` (asserts that the login succeeds)."""
        response = self.http.post(
            f"{self.url}/auth", json={"username": user, "password": password}, timeout=30
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def call(self, method: str, path: str, token: str | None = None, **kwargs):
        """One request; `path` is relative to the base URL (``/api/...``)."""
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"JWT {token}"
        kwargs.setdefault("timeout", 60)
        return self.http.request(method, f"{self.url}{path}", headers=headers, **kwargs)

    def worker_pids(self) -> list[int]:
        """The pids of the gunicorn workers (children of the master)."""
        children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        return [int(pid) for pid in children]


def free_port() -> int:
    """A TCP port on the loopback interface that nobody listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def live_server(
    workers: int = 2,
    threads: int = 4,
    extra_env: dict[str, str] | None = None,
    unset: tuple[str, ...] = (),
):
    """A context manager yielding a :class:`LiveServer` with `workers` worker processes.

    The server runs on the database and TMAPS_HOME of the environment (use it
    inside the ``tmaps`` fixture), updated by `extra_env` and without the
    variables named in `unset` (a session fixture passes its installation's
    TMAPS_* settings so); its log is in that TMAPS_HOME. It is stopped
    (SIGTERM, then SIGKILL) on exit.
    """
    import contextlib
    import time

    from conftest import TEST_SECRET

    @contextlib.contextmanager
    def serve():
        port = free_port()
        environ = {**os.environ, "TMAPS_SECRET_KEY": TEST_SECRET, **(extra_env or {})}
        for name in unset:
            environ.pop(name, None)
        home = Path(environ.get("TMAPS_HOME", "."))
        home.mkdir(parents=True, exist_ok=True)
        log = home / f"gunicorn-{port}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [str(BIN / "gunicorn"), "-w", str(workers), "-k", "gthread",
                 "--threads", str(threads), "-b", f"127.0.0.1:{port}",
                 "--access-logfile", "-", "--no-control-socket", "tmserver.wsgi:app"],
                stdout=out, stderr=subprocess.STDOUT, env=environ,
            )  # fmt: skip
        server = LiveServer(f"http://127.0.0.1:{port}", log, proc.pid)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if server.http.get(f"{server.url}/api/openapi.json", timeout=2).ok:
                        break
                except Exception:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"gunicorn did not start: {log.read_text()[-2000:]}")
                time.sleep(0.2)
            # every worker must be up, or the first requests all reach one
            while len(server.worker_pids()) < workers and time.monotonic() < deadline:
                time.sleep(0.1)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            server.http.close()

    return serve()
