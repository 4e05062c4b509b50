"""Database connections (issue 17): retries with back-off, jobs that hold a
connection only while they talk to the database, pools per kind of process.

The unit tests need no server. The PostgreSQL tests give a role of their own a
small ``CONNECTION LIMIT`` and run more jobs at once than it allows; they also
watch ``pg_stat_activity`` while a job computes.
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from helpers import cli, free_port, ok, run_step, use_fast_password_hashing
from sqlalchemy import event
from sqlalchemy.pool import NullPool, Pool, QueuePool
from test_align import REF_WAVELENGTH, make_multiplexing_experiment
from test_jterator_step import make_experiment

import tmlib.models as tm
from tmlib import registry
from tmlib.config import load_settings
from tmlib.errors import ConfigError, DatabaseError
from tmlib.models import session as sessions
from tmlib.models.connect import (
    RetryPolicy,
    connect_with_retries,
    keeps_pool,
    transient_reason,
)
from tmlib.simulate import PlateSpec, simulate_plate
from tmlib.workflow.step import get_step

REPO = Path(__file__).resolve().parent.parent
SQLITE_ONLY = pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fast_password_hashing(monkeypatch)


@pytest.fixture
def not_a_job(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process is no job, and is none again after the test."""
    monkeypatch.setattr(sessions, "_job_process", False)
    sessions.dispose_engines()
    yield
    sessions.dispose_engines()


# ------------------------------------------------------------------ unit tests


class FakeTime:
    """A clock that only sleeps move."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def flaky(failures: list[Exception], result: str = "connection") -> Callable[[float], str]:
    """A connect function that raises `failures` in turn, then succeeds."""
    pending = list(failures)

    def connect(_timeout: float) -> str:
        if pending:
            raise pending.pop(0)
        return result

    return connect


FULL = OSError("FATAL:  sorry, too many clients already")


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        ("FATAL:  sorry, too many clients already", True),
        ('FATAL:  too many connections for role "tm"', True),
        ("FATAL:  remaining connection slots are reserved for roles with SUPERUSER", True),
        ("FATAL:  the database system is starting up", True),
        ("FATAL:  the database system is shutting down", True),
        ('connection to server at "127.0.0.1", port 5432 failed: Connection refused', True),
        ("timeout expired", True),
        ("ERROR:  no more connections allowed (max_client_conn)", True),
        ("ERROR:  pgbouncer cannot connect to server", True),
        ('FATAL:  password authentication failed for user "tm"', False),
        ('FATAL:  database "nope" does not exist', False),
        ('FATAL:  no pg_hba.conf entry for host "10.0.0.1"', False),
    ],
)
def test_which_refusals_are_waited_out(message: str, transient: bool) -> None:
    assert (transient_reason(OSError(message)) is not None) is transient


def test_retries_back_off_with_jitter_and_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeTime()
    policy = RetryPolicy(retries=5, timeout=600, first_delay=1.0, max_delay=4.0)
    with caplog.at_level(logging.WARNING, logger="tmlib.models.connect"):
        got = connect_with_retries(
            flaky([FULL] * 4), "postgresql://tm:***@db/tm", policy, fake.sleep, fake.clock
        )
    assert got == "connection"
    # each wait within [ceiling / 2, ceiling], the ceiling doubling up to max_delay
    for wait, ceiling in zip(fake.sleeps, (1.0, 2.0, 4.0, 4.0), strict=True):
        assert ceiling / 2 <= wait <= ceiling
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4
    assert "attempt 1 of 6" in warnings[0] and "attempt 4 of 6" in warnings[3]
    assert "max_connections" in warnings[0] and "postgresql://tm:***@db/tm" in warnings[0]


def test_jitter_spreads_jobs_refused_together() -> None:
    policy = RetryPolicy(first_delay=1.0, max_delay=8.0)
    waits = {round(policy.delay(3, random.Random(seed)), 3) for seed in range(50)}
    assert len(waits) > 40 and min(waits) >= 2.0 and max(waits) <= 4.0


def test_gives_up_after_the_retries_naming_the_database_and_why() -> None:
    fake = FakeTime()
    policy = RetryPolicy(retries=2, timeout=600)
    with pytest.raises(DatabaseError) as raised:
        connect_with_retries(
            flaky([FULL] * 5), "postgresql://tm:***@db/tm", policy, fake.sleep, fake.clock
        )
    message = str(raised.value)
    assert "postgresql://tm:***@db/tm" in message and "after 3 attempts" in message
    assert "too many clients already" in message and "TMAPS_DB_CONNECT_RETRIES" in message
    assert len(fake.sleeps) == 2


def test_gives_up_when_the_time_is_spent() -> None:
    fake = FakeTime()
    policy = RetryPolicy(retries=100, timeout=10, first_delay=1.0, max_delay=4.0)
    with pytest.raises(DatabaseError, match="attempts in"):
        connect_with_retries(flaky([FULL] * 100), "db", policy, fake.sleep, fake.clock)
    assert fake.now <= 10


def test_other_errors_fail_at_once() -> None:
    fake = FakeTime()
    denied = OSError('FATAL:  password authentication failed for user "tm"')
    with pytest.raises(OSError, match="password authentication"):
        connect_with_retries(flaky([denied]), "db", RetryPolicy(), fake.sleep, fake.clock)
    assert fake.sleeps == []


def test_connection_settings_from_env_and_file(tmp_path: Path) -> None:
    base = {"TMAPS_CONFIG_FILE": str(tmp_path / "none.cfg")}
    defaults = load_settings(environ=base)
    assert (defaults.db_connect_retries, defaults.db_connect_timeout, defaults.db_pool) == (
        10, 120, "auto",
    )  # fmt: skip
    cfg = tmp_path / "t.cfg"
    cfg.write_text("[tmlib]\ndb_connect_retries = 3\ndb_pool = none\n")
    environ = {"TMAPS_CONFIG_FILE": str(cfg), "TMAPS_DB_CONNECT_TIMEOUT": "30"}
    settings = load_settings(environ=environ)
    assert (settings.db_connect_retries, settings.db_connect_timeout, settings.db_pool) == (
        3, 30, "none",
    )  # fmt: skip
    for variable, value in (("TMAPS_DB_POOL", "sometimes"), ("TMAPS_DB_CONNECT_RETRIES", "-1"),
                            ("TMAPS_DB_CONNECT_TIMEOUT", "0")):  # fmt: skip
        with pytest.raises(ConfigError, match=variable):
            load_settings(environ={**base, variable: value})


def test_which_processes_keep_a_pool() -> None:
    assert keeps_pool("auto", job=False) and not keeps_pool("auto", job=True)
    assert keeps_pool("pool", job=True) and not keeps_pool("none", job=False)


def test_jobs_keep_no_connection_other_processes_a_pool(
    not_a_job: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"postgresql://tm:secret@127.0.0.1:{free_port()}/tm"  # made, never connected
    assert isinstance(sessions.get_engine(url).pool, QueuePool)
    sessions.use_job_connections()
    assert isinstance(sessions.get_engine(url).pool, NullPool)  # made again for the job
    monkeypatch.setenv("TMAPS_DB_POOL", "pool")
    sessions.dispose_engines()
    assert isinstance(sessions.get_engine(url).pool, QueuePool)


def test_a_refused_connection_is_retried_then_explained(
    not_a_job: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens at the port: two retries, then one line that names the
    database (password masked) and says why."""
    monkeypatch.setenv("TMAPS_DB_CONNECT_RETRIES", "2")
    url = f"postgresql://tm:secret@127.0.0.1:{free_port()}/tm"
    with (
        caplog.at_level(logging.WARNING, logger="tmlib.models.connect"),
        pytest.raises(DatabaseError) as raised,
        tm.utils.MainSession(url) as session,
    ):
        session.execute(sa.text("SELECT 1"))
    message = str(raised.value)
    assert "after 3 attempts" in message and "Connection refused" in message
    assert "check TMAPS_DB_URL" in message
    assert "tm:***@127.0.0.1" in message and "secret" not in message
    assert len([r for r in caplog.records if "retrying in" in r.getMessage()]) == 2


def test_every_user_of_an_engine_connects_through_the_retries(
    tmp_path: Path, not_a_job: None
) -> None:
    """The hook sits below the pool: sessions, ``engine.connect()`` and pre-pings all use it."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'flaky.db'}", poolclass=NullPool)
    refusals = [sqlite3.OperationalError("FATAL:  sorry, too many clients already")] * 2
    real_connect = engine.dialect.connect

    def connect(*args, connect_timeout: float, **kwargs):  # noqa: ANN002, ANN003
        if refusals:
            raise refusals.pop()
        return real_connect(*args, **kwargs)

    engine.dialect.connect = connect  # type: ignore[method-assign]
    policy = RetryPolicy(retries=3, first_delay=0.01, max_delay=0.02)
    sessions._retry_connections(engine, "sqlite:///flaky.db", policy)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    assert refusals == []
    engine.dispose()


# ------------------------------------------------- jobs and their connections


class CheckedOut:
    """Connections checked out of every pool of this process, right now and at most."""

    def __init__(self) -> None:
        self.now = 0
        self._lock = threading.Lock()

    def checkout(self, *_args: object) -> None:
        with self._lock:
            self.now += 1

    def checkin(self, *_args: object) -> None:
        with self._lock:
            self.now -= 1


@pytest.fixture
def checked_out() -> Iterator[CheckedOut]:
    counter = CheckedOut()
    event.listen(Pool, "checkout", counter.checkout)
    event.listen(Pool, "checkin", counter.checkin)
    yield counter
    event.remove(Pool, "checkout", counter.checkout)
    event.remove(Pool, "checkin", counter.checkin)


def watch(
    monkeypatch: pytest.MonkeyPatch, counter: CheckedOut, seen: dict[str, list[int]], target: str
) -> None:
    """Record, at every call of `target` (module.function), how many connections are out."""
    module_name, name = target.rsplit(".", 1)
    module = __import__(module_name, fromlist=[name])
    original = getattr(module, name)

    def watched(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.setdefault(target, []).append(counter.now)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, watched)


def run_jobs_watched(
    experiment_id: int, step_name: str, monkeypatch: pytest.MonkeyPatch, counter: CheckedOut,
    targets: tuple[str, ...], **args: object,
) -> dict[str, list[int]]:  # fmt: skip
    """A step's init (not watched), its run jobs (watched: as a job runs them), its collect."""
    step = get_step(step_name)(experiment_id)
    step.init(args)
    seen: dict[str, list[int]] = {}
    with monkeypatch.context() as patch:
        for target in targets:
            watch(patch, counter, seen, target)
        patch.setattr(sessions, "_job_process", False)
        sessions.dispose_engines()
        sessions.use_job_connections()
        for job_id in step.run_job_ids():
            step.run(job_id)
    sessions.dispose_engines()  # the engines of a process that is no job
    if step.has_collect:
        step.collect()
    return seen


@pytest.mark.slow
def test_run_jobs_hold_no_connection_while_they_read_pixels_or_compute(
    tmaps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checked_out: CheckedOut
) -> None:
    """metaextract, imextract, corilla, illuminati and jterator: at every read of
    a file, write of a plane and run of the pipeline no connection is checked out."""
    spec = PlateSpec(microscope="cellvoyager", wells=1, sites=2, channels=2, height=128,
                     width=128, seed=5, plate_format=96)  # fmt: skip
    simulate_plate(tmp_path / "plate", spec)
    registry.add_user("jo", "pw", "jo@example.org")
    eid = registry.add_experiment("c", "jo", microscope_type="cellvoyager", plate_format=96)
    registry.add_plate(eid, "P1")
    registry.add_acquisition(eid, "P1", "A1")
    registry.register_files(eid, "P1", "A1", tmp_path / "plate")
    watched = {
        "metaextract": ("tmlib.pixels.read_header",),
        "imextract": ("tmlib.pixels.read_plane", "tmlib.storage.write_plane"),
        "corilla": ("tmlib.storage.read_plane",),
        "illuminati": ("tmlib.storage.read_plane",),
        "jterator": ("tmlib.storage.read_plane", "tmlib.jterator.pipeline.run_pipeline"),
    }
    for step_name in ("metaextract", "metaconfig", "imextract", "corilla", "illuminati",
                      "jterator"):  # fmt: skip
        targets = watched.get(step_name, ())
        args = {"batch_size": 1} if step_name == "jterator" else {}
        if step_name == "illuminati":
            args = {"illumcorr": True}
        seen = run_jobs_watched(eid, step_name, monkeypatch, checked_out, targets, **args)
        for target in targets:
            assert seen.get(target), f"{step_name}: {target} was never called"
            assert set(seen[target]) == {0}, (step_name, target, seen[target])
    with tm.utils.ExperimentSession(eid) as session:
        assert session.scalar(sa.select(sa.func.count(tm.Mapobject.id))) > 0


@pytest.mark.slow
@pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)
def test_a_jobs_loader_reads_its_sites_first_and_aligns_as_before(tmaps, tmp_path: Path) -> None:
    """A multiplexing experiment, aligned: the loader of a job (sites read up front,
    session closed) gives each site's planes shifted and cropped by its shifts and
    residues, as the images were read one by one in the session before."""
    from tmlib.alignment import shift_and_crop
    from tmlib.jterator.project import Project
    from tmlib.workflow.steps.jterator import SiteLoader, create_project, default_inputs

    plate = tmp_path / "plate"
    ok(cli("tm_simulate", "plate", plate, "-q", "--cycles", 3, "--wells", 1, "--sites", 2,
           "--channels", 2, "--plate-format", 96, "--seed", 11))  # fmt: skip
    experiment = make_multiplexing_experiment(plate)
    run_step(experiment.id, "align", ref_cycle=0, ref_wavelength=REF_WAVELENGTH, batch_size=3)
    eid = experiment.id
    location = get_step("jterator")(eid).project_location
    create_project(location, default_inputs(eid))
    project = Project.load(location)
    with tm.utils.ExperimentSession(eid) as session:
        site_ids = list(session.scalars(sa.select(tm.Site.id)))
        shifts = {(s.site_id, s.cycle_id): (s.y, s.x) for s in session.scalars(
            sa.select(tm.SiteShift))}  # fmt: skip
        expected = {}
        for plane in session.scalars(
            sa.select(tm.ChannelImageFile)
            .join(tm.Channel)
            .where(tm.Channel.name.in_([c.name for c in project.channels]))
        ):
            site = plane.site
            residues = (site.top_residue, site.bottom_residue, site.left_residue,
                        site.right_residue)  # fmt: skip
            expected[(site.id, plane.channel.name)] = shift_and_crop(
                plane.get(), *shifts[(site.id, plane.cycle_id)], *residues
            )
        loader = SiteLoader(session, project, site_ids=site_ids)
    assert {name for _, name in expected} == {c.name for c in project.channels}
    assert len({plane.shape for plane in expected.values()}) > 1  # residues differ by site
    for site_id in site_ids:
        images = loader.images(site_id, 0)
        for name, image in images.items():
            np.testing.assert_array_equal(image, expected[(site_id, name)])


# --------------------------------------------------------------- PostgreSQL

#: a job as the issue describes them: reads, computes without the database, writes
JOB = """
import os, sys, time
import sqlalchemy as sa
import tmlib.models as tm
from tmlib.models.session import use_job_connections

if os.environ.get("HOLD") != "1":
    use_job_connections()
name = sys.argv[1]
row = sa.insert(tm.User).values(name=name, email=name + "@x.org", password_hash="x")
if os.environ.get("HOLD") == "1":  # the way jobs were: one session from start to end
    with tm.utils.MainSession() as session:
        session.scalars(sa.select(tm.User.id)).all()
        time.sleep(float(os.environ["COMPUTE"]))
        session.execute(row)
else:
    with tm.utils.MainSession() as session:
        session.scalars(sa.select(tm.User.id)).all()
    time.sleep(float(os.environ["COMPUTE"]))
    with tm.utils.MainSession() as session:
        session.execute(row)
print("done", name)
"""


@pytest.fixture
def limited_database(pg_server: str) -> Iterator[tuple[str, str]]:
    """(URL, role) of a database whose role may hold 3 connections at once."""
    suffix = uuid.uuid4().hex[:10]
    role, database = f"tmaps_limited_{suffix}", f"tmaps_limited_{suffix}"
    admin = sa.create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN PASSWORD 'pw' CONNECTION LIMIT 3")
        conn.exec_driver_sql(f'CREATE DATABASE "{database}" OWNER {role}')
    url = sa.engine.make_url(pg_server).set(username=role, password="pw", database=database)
    text = url.render_as_string(hide_password=False)
    try:
        tm.utils.main_engine(text)  # the tables, before the jobs meet
        sessions.dispose_engines()
        yield text, role
    finally:
        sessions.dispose_engines()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            conn.exec_driver_sql(f"DROP ROLE IF EXISTS {role}")
        admin.dispose()


def peak_connections(admin_url: str, role: str, stop: threading.Event, peak: list[int]) -> None:
    """Sample the role's connections in pg_stat_activity until `stop`; the most in `peak`."""
    engine = sa.create_engine(admin_url, poolclass=NullPool)
    with engine.connect() as conn:
        while not stop.is_set():
            n = conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE usename = :r"), {"r": role}
            ).scalar()
            peak[0] = max(peak[0], n)
            conn.rollback()
            time.sleep(0.01)
    engine.dispose()


def run_concurrent_jobs(
    tmp_path: Path, url: str, n: int, **env: str
) -> list[subprocess.CompletedProcess]:
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(JOB))
    environ = {**os.environ, "TMAPS_DB_URL": url, "TMAPS_HOME": str(tmp_path / "home"),
               "TMAPS_CONFIG_FILE": str(tmp_path / "none.cfg"), "COMPUTE": "1.0",
               "PYTHONPATH": str(REPO), **env}  # fmt: skip
    processes = [
        subprocess.Popen([sys.executable, str(script), f"job{i}"], env=environ,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(n)
    ]  # fmt: skip
    results = []
    for process in processes:
        out, err = process.communicate(timeout=180)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


@pytest.mark.postgres
@pytest.mark.slow
def test_more_concurrent_jobs_than_connections_all_succeed(
    pg_server: str, limited_database: tuple[str, str], tmp_path: Path
) -> None:
    """16 jobs at once, 3 connections: short sessions and retries carry them all."""
    url, role = limited_database
    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=peak_connections, args=(pg_server, role, stop, peak))
    sampler.start()
    try:
        results = run_concurrent_jobs(tmp_path, url, 16)
    finally:
        stop.set()
        sampler.join()
    failed = [r.stderr[-500:] for r in results if r.returncode != 0]
    assert failed == []
    print(f"16 jobs, CONNECTION LIMIT 3: peak {peak[0]} connections of the role")
    with tm.utils.MainSession(url) as session:
        assert session.scalar(sa.select(sa.func.count(tm.User.id))) == 16


@pytest.mark.postgres
@pytest.mark.slow
def test_jobs_that_hold_a_connection_and_do_not_retry_fail_as_the_issue_says(
    limited_database: tuple[str, str], tmp_path: Path
) -> None:
    """The control: one session per job and no retries, as before issue 17."""
    url, _role = limited_database
    results = run_concurrent_jobs(
        tmp_path,
        url,
        8,
        HOLD="1",
        TMAPS_DB_CONNECT_RETRIES="0",
        TMAPS_DB_POOL="pool",
        COMPUTE="3.0",
    )
    failed = [r for r in results if r.returncode != 0]
    assert len(failed) >= 5  # at most 3 hold the 3 connections
    assert all("too many connections for role" in r.stderr for r in failed)


#: a jterator run job whose pipeline takes a second per site: the window in which
#: the test looks for its connections
SLOW_JOB = """
import sys, time
import tmlib.jterator.pipeline as pipeline

original = pipeline.run_pipeline

def slow(*args, **kwargs):
    print("computing", flush=True)
    time.sleep(1.5)
    return original(*args, **kwargs)

pipeline.run_pipeline = slow
from tmlib.workflow.__main__ import run
sys.exit(run(sys.argv[1:]))
"""


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("tmaps", ["postgresql"], indirect=True)
def test_a_jterator_job_has_no_connection_while_its_pipeline_runs(
    tmaps, tmp_path: Path, pg_server: str
) -> None:
    eid = make_experiment(tmp_path, wells=1, sites=2, size=128)
    get_step("jterator")(eid).init({"batch_size": 2})
    sessions.dispose_engines()
    database = sa.engine.make_url(tmaps.db_url).database
    script = tmp_path / "slow_job.py"
    script.write_text(SLOW_JOB)
    job = subprocess.Popen(
        [sys.executable, str(script), "jterator", str(eid), "run", "--job", "1"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    admin = sa.create_engine(pg_server, poolclass=NullPool)
    samples: list[int] = []
    try:
        assert job.stdout is not None
        assert job.stdout.readline().strip() == "computing"
        with admin.connect() as conn:
            deadline = time.monotonic() + 1.0  # inside the first site's 1.5 s
            while time.monotonic() < deadline:
                samples.append(
                    conn.execute(
                        sa.text(
                            "SELECT count(*) FROM pg_stat_activity WHERE datname = :d "
                            "AND pid <> pg_backend_pid()"
                        ),
                        {"d": database},
                    ).scalar()
                )
                conn.rollback()
                time.sleep(0.02)
        assert job.wait(timeout=120) == 0
    finally:
        job.kill()
        admin.dispose()
    assert samples and max(samples) == 0, samples
    with tm.utils.ExperimentSession(eid) as session:
        assert session.scalar(sa.select(sa.func.count(tm.Mapobject.id))) > 0
