"""The canonical workflow on a four-node SLURM cluster through PgBouncer, and a
node lost in the middle of a run.

The cluster (nodes n1..n4 on this machine, ``slurm/multinode/start.sh``) and
PgBouncer in transaction pooling mode in front of a PostgreSQL with
max_connections = 20 (``slurm/multinode/pgbouncer_start.sh``) run beside the
single-node cluster and the main PostgreSQL of the other tests. The tests run
where both answer; CI starts them and sets ``TMAPS_TEST_MULTINODE=1``, which
turns the skips into failures.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa
from helpers import BIN, cli, env, ok, use_fast_password_hashing

import tmlib.models as tm
from tmlib import registry
from tmlib.models.session import dispose_engines
from tmlib.simulate import PlateSpec, simulate_plate

MULTI_CONF = os.environ.get("TMAPS_TEST_SLURM_MULTI_CONF", "/etc/slurm-multi/slurm.conf")
#: PgBouncer, and the small PostgreSQL behind it (directly: CREATE DATABASE)
PGBOUNCER_URL = os.environ.get(
    "TMAPS_TEST_PGBOUNCER_URL", "postgresql+psycopg2://postgres@127.0.0.1:6434/postgres"
)
SMALL_PG_URL = os.environ.get(
    "TMAPS_TEST_PGBOUNCER_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5434/postgres"
)
NODES = ("n1", "n2", "n3", "n4")
SITES = 4
pytestmark = [pytest.mark.slurm, pytest.mark.postgres, pytest.mark.slow, pytest.mark.multinode]


def slurm(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    """A SLURM command on the four-node cluster."""
    return subprocess.run(
        list(args),
        env={**os.environ, "SLURM_CONF": MULTI_CONF},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _cluster_problem() -> str | None:
    """Why the four-node cluster cannot be used, or None."""
    if not Path(MULTI_CONF).is_file():
        return f"no {MULTI_CONF} (run slurm/multinode/start.sh as root)"
    try:
        result = slurm("sinfo", "-h", "-N", "-o", "%N %t")
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"sinfo of the four-node cluster does not answer: {err}"
    states = dict(line.split() for line in result.stdout.splitlines() if line.strip())
    if result.returncode != 0 or sorted(states) != list(NODES):
        return f"the four-node cluster does not answer: {result.stderr.strip()[:200] or states}"
    down = {n: s for n, s in states.items() if s not in ("idle", "mix", "alloc", "comp")}
    return f"nodes not up: {down} (run slurm/multinode/start.sh)" if down else None


def _pgbouncer_problem() -> str | None:
    """Why PgBouncer or the PostgreSQL behind it cannot be used, or None."""
    for url in (SMALL_PG_URL, PGBOUNCER_URL):
        try:
            engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
            with engine.connect():
                pass
            engine.dispose()
        except Exception as err:  # any failure means: not usable
            first = str(getattr(err, "orig", err)).strip().splitlines()[0]
            return f"{url} not reachable ({first}); run slurm/multinode/pgbouncer_start.sh"
    return None


@pytest.fixture(scope="module")
def multinode() -> None:
    """Skip (or fail, with TMAPS_TEST_MULTINODE=1) unless the cluster and PgBouncer answer."""
    problem = _cluster_problem() or _pgbouncer_problem()
    if problem:
        if os.environ.get("TMAPS_TEST_MULTINODE") == "1":
            pytest.fail(f"TMAPS_TEST_MULTINODE=1 but {problem}")
        pytest.skip(problem)


def _with_database(url: str, database: str) -> str:
    return sa.engine.make_url(url).set(database=database).render_as_string(hide_password=False)


@dataclass
class Site:
    """A TissueMAPS installation whose database is reached through PgBouncer."""

    home: Path
    database: str
    experiment_id: int


@pytest.fixture
def installation(multinode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """A fresh database behind PgBouncer, SLURM_CONF of the four-node cluster, a plate.

    The experiment has 1 well x 4 sites x 2 channels, registered and ready for
    ``tm_workflow submit``.
    """
    use_fast_password_hashing(monkeypatch)
    database = f"tmaps_multi_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(SMALL_PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
    home = tmp_path / "tmaps"
    monkeypatch.setenv("TMAPS_HOME", str(home))
    monkeypatch.setenv("TMAPS_DB_URL", _with_database(PGBOUNCER_URL, database))
    monkeypatch.setenv("TMAPS_CONFIG_FILE", str(tmp_path / "no-such.cfg"))
    monkeypatch.delenv("TMAPS_STORAGE_HOME", raising=False)
    monkeypatch.setenv("TMAPS_BACKEND", "slurm")
    monkeypatch.setenv("SLURM_CONF", MULTI_CONF)
    # four job slots: run phases get four jobs or so, one per node
    monkeypatch.setenv("TMAPS_SLURM_MAX_RUNNING", "4")
    try:
        source = tmp_path / "plate"
        simulate_plate(source, PlateSpec(microscope="cellvoyager", wells=1, sites=SITES,
                                         channels=2, height=128, width=128, seed=3,
                                         plate_format=96))  # fmt: skip
        registry.add_user("nod", "pw", "nod@example.org")
        eid = registry.add_experiment("multinode", "nod", plate_format=96)
        registry.add_plate(eid, "P1")
        registry.add_acquisition(eid, "P1", "A1")
        registry.register_files(eid, "P1", "A1", source)
        yield Site(home, database, eid)
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.dispose()


def jobs_of(experiment_id: int) -> dict[str, tm.Task]:
    """The leaf tasks (jobs) of the experiment's last workflow submission, by name."""
    with tm.utils.MainSession() as session:
        submission = session.scalar(
            sa.select(tm.Submission.id)
            .where(tm.Submission.experiment_id == experiment_id)
            .order_by(tm.Submission.id.desc())
            .limit(1)
        )
        tasks = session.scalars(
            sa.select(tm.Task).where(
                tm.Task.submission_id == submission, tm.Task.is_collection.is_(False)
            )
        ).all()
        session.expunge_all()
    return {task.name: task for task in tasks}


def assert_results_complete(experiment_id: int) -> None:
    """Both channel layers, and every site segmented once: no object missing or twice."""
    with tm.utils.ExperimentSession(experiment_id) as session:
        assert session.scalar(sa.select(sa.func.count(tm.ChannelLayer.id))) == 2
        sites = session.scalar(sa.select(sa.func.count(tm.Site.id)))
        assert sites == SITES
        objects = session.scalar(sa.select(sa.func.count(tm.Mapobject.id)))
        assert objects > 10
        segmentation = tm.MapobjectSegmentation
        # objects of sites (nuclei, cells, the static Sites): every site has some
        per_layer = session.execute(
            sa.select(tm.MapobjectType.name,
                      sa.func.count(sa.distinct(segmentation.partition_key)))
            .join(tm.SegmentationLayer,
                  tm.SegmentationLayer.id == segmentation.segmentation_layer_id)
            .join(tm.MapobjectType, tm.MapobjectType.id == tm.SegmentationLayer.mapobject_type_id)
            .where(tm.MapobjectType.ref_type == "Site")
            .group_by(tm.MapobjectType.name)
        ).all()  # fmt: skip
        assert len(per_layer) >= 2 and all(n == SITES for _, n in per_layer), per_layer
        twice = session.execute(
            sa.select(segmentation.segmentation_layer_id, segmentation.partition_key,
                      segmentation.label)
            .group_by(segmentation.segmentation_layer_id, segmentation.partition_key,
                      segmentation.label)
            .having(sa.func.count() > 1)
        ).all()  # fmt: skip
        assert twice == []
        segmented = session.scalar(sa.select(sa.func.count(sa.distinct(segmentation.mapobject_id))))
        assert segmented == objects  # no object without its outline (a half-written site)
        # every object of a measured type (the pipeline's, not the static ones) has its values
        measured_types = sa.select(tm.Feature.mapobject_type_id)
        expected = session.scalar(
            sa.select(sa.func.count(tm.Mapobject.id))
            .where(tm.Mapobject.mapobject_type_id.in_(measured_types))
        )  # fmt: skip
        measured = session.scalar(sa.select(sa.func.count()).select_from(tm.FeatureValues))
        assert expected > 10 and measured == expected


def pgbouncer_transactions(database: str) -> int:
    """Transactions PgBouncer passed on to `database` (its admin console, SHOW STATS)."""
    url = sa.engine.make_url(PGBOUNCER_URL)
    conn = psycopg2.connect(host=url.host, port=url.port, user=url.username, dbname="pgbouncer")
    conn.autocommit = True  # the console knows no transactions
    try:
        with conn.cursor() as cursor:
            cursor.execute("SHOW STATS")
            columns = [c.name for c in cursor.description]
            rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    finally:
        conn.close()
    return sum(int(r["total_xact_count"]) for r in rows if r["database"] == database)


def test_canonical_workflow_on_four_nodes_through_pgbouncer(installation):
    eid = installation.experiment_id
    result = ok(cli("tm_workflow", eid, "submit", "-i", "2", timeout=600))
    assert "all jobs succeeded" in result.stdout
    jobs = jobs_of(eid)
    assert jobs and all(t.state == "TERMINATED" and t.exitcode == 0 for t in jobs.values())
    nodes = {name: (t.data or {}).get("node") for name, t in jobs.items()}
    assert set(nodes.values()) <= set(NODES), nodes  # every job says where it ran
    used = Counter(nodes.values())
    assert set(used) == set(NODES), used  # spread over the nodes, not one node's cores
    # least loaded node first (LLN): even one phase of four jobs spreads
    runs = {n for name, n in nodes.items() if name.startswith("jterator_run_")}
    assert len(runs) >= 3, nodes
    # every database access of the jobs went through PgBouncer
    assert pgbouncer_transactions(installation.database) > len(jobs)
    assert_results_complete(eid)


def _running_job_on(home: Path, node: str) -> tuple[str, str, Path] | None:
    """A jterator run job running on `node` (not ended): (its name, its SLURM task, its exit
    file), or None.

    jterator: its jobs write objects and features to the database, the step
    where a half-written result would show.
    """
    for pid_file in home.glob("experiments/**/workflow/jterator/log/jterator_run_*.pid"):
        try:
            record = json.loads(pid_file.read_text())
        except (OSError, ValueError):
            continue  # being written
        exit_file = pid_file.with_suffix(".exit")
        if record.get("node") == node and not exit_file.exists():
            return pid_file.stem, record["cluster_task"], exit_file
    return None


def _lose_node_while_a_job_runs(site: Site, node: str, process: subprocess.Popen) -> str:
    """Set `node` DOWN while a jterator run job runs on it; returns that job's name.

    The job is suspended first (SIGSTOP through SLURM), so that it cannot end
    between being found and its node going down, however loaded the machine.
    """
    deadline = time.monotonic() + 300
    while True:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"no jterator run job started on {node}"
        found = _running_job_on(site.home, node)
        if found is not None:
            victim, task, exit_file = found
            if slurm("scontrol", "suspend", task).returncode == 0:
                if not exit_file.exists():
                    break
                slurm("scontrol", "resume", task)  # it had ended: find another
        time.sleep(0.05)
    down = slurm("scontrol", "update", f"nodename={node}", "state=down", "reason=test-node-loss")
    assert down.returncode == 0, down.stderr
    return victim


@pytest.fixture
def node_back(multinode) -> Iterator[str]:
    """The node the test takes down; it is resumed afterwards whatever happens."""
    if os.geteuid() != 0:  # scontrol update: SLURM's administrators only
        problem = "setting a node down needs root"
        if os.environ.get("TMAPS_TEST_MULTINODE") == "1":
            pytest.fail(f"TMAPS_TEST_MULTINODE=1 but {problem}")
        pytest.skip(problem)
    yield "n2"
    slurm("scontrol", "update", "nodename=n2", "state=resume")


def test_a_lost_node_fails_its_jobs_and_resume_reruns_exactly_them(installation, node_back):
    eid, node = installation.experiment_id, node_back
    process = subprocess.Popen(
        [str(BIN / "tm_workflow"), str(eid), "submit", "-i", "2"],
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        victim = _lose_node_while_a_job_runs(installation, node, process)
        _, stderr = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, stderr
    assert f"node {node} was lost" in stderr  # the one error line says why

    before = jobs_of(eid)
    failed = {name: t for name, t in before.items() if t.state == "TERMINATED" and t.exitcode}
    assert victim in failed, (victim, {n: (t.state, t.exitcode) for n, t in before.items()})
    for name, task in failed.items():  # only jobs of the lost node failed, and say so
        assert task.data["node"] == node, (name, task.data)
        assert f"node {node} was lost" in task.data["reason"], task.data["reason"]
    status = json.loads(ok(cli("tm_workflow", eid, "status", "--json")).stdout)
    assert _leaf(status, victim)["reason"] == failed[victim].data["reason"]
    succeeded = {name: (t.started_at, t.ended_at) for name, t in before.items() if t.exitcode == 0}

    ok(slurm("scontrol", "update", f"nodename={node}", "state=resume"))
    result = ok(cli("tm_workflow", eid, "resume", "-i", "2", timeout=600))
    assert "all jobs succeeded" in result.stdout

    after = jobs_of(eid)
    assert all(t.state == "TERMINATED" and t.exitcode == 0 for t in after.values())
    # nothing that had succeeded ran again ...
    assert {name: (after[name].started_at, after[name].ended_at) for name in succeeded} == (
        succeeded
    )
    # ... the failed jobs ran once more, and keep how their first attempt ended ...
    again = {name for name, t in after.items() if (t.data or {}).get("attempts")}
    assert again == set(failed)
    for name in failed:
        (attempt,) = after[name].data["attempts"]
        assert attempt["node"] == node and f"node {node} was lost" in attempt["reason"]
        assert after[name].started_at > before[name].started_at
    # ... and the outputs are whole: no object of the killed job is left half-written
    assert_results_complete(eid)


def _leaf(tree: dict, name: str) -> dict:
    """The status node named `name` in a status tree."""
    if tree["name"] == name:
        return tree
    for child in tree["subtasks"]:
        found = _leaf(child, name)
        if found:
            return found
    return {}
