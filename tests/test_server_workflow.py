"""The workflow over HTTP: submit, status, jobs and logs, kill, resubmit, description,
jterator project; the background engine outlives the server that started it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from conftest import TEST_SECRET, make_server

import tmlib.models as tm
from tmlib.errors import InvalidInputError
from tmlib.models.session import main_engine
from tmlib.workflow import args as arguments
from tmlib.workflow import manager
from tmlib.workflow.description import WorkflowDescription
from tmlib.workflow.step import get_step

SQLITE_ONLY = pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)
BIN = Path(sys.executable).parent


def _error(response, status):
    assert response.status_code == status, response.get_json()
    body = response.get_json()["error"]
    assert body["error"] is True and body["status_code"] == status and body["message"]
    return body


def _ok(response):
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _experiment(server, name="wf") -> int:
    data = _ok(server.post("/api/experiments", json={"name": name}))["data"]
    return int(data["id"])


def _run(*args: object) -> str:
    result = subprocess.run(
        [str(BIN / str(args[0])), *map(str, args[1:])], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def _add_plate(experiment_id: int, tmp_path: Path, wells: int = 1, sites: int = 2) -> Path:
    """A simulated CellVoyager plate registered with the experiment (plate01/acq01)."""
    source = tmp_path / "plate"
    _run("tm_simulate", "plate", source, "--microscope", "cellvoyager", "--wells", wells,
         "--sites", sites, "--channels", 2, "--size", "256x256", "--seed", 5)  # fmt: skip
    _run("tm_add", "plate", "-e", experiment_id, "-p", "plate01")
    _run("tm_add", "acquisition", "-e", experiment_id, "-p", "plate01", "-a", "acq01")
    _run("tm_add", "files", "-e", experiment_id, "-p", "plate01", "-a", "acq01", "-s", source)
    return source


def _status(server, eid: int, depth: int = 2):
    return _ok(server.get(f"/api/experiments/{eid}/workflow/status?depth={depth}"))["data"]


def _wait_done(server, eid: int, submission_id: str, timeout: float = 300) -> dict:
    """Poll the status over HTTP until that submission ended and its engine is gone."""
    deadline = time.monotonic() + timeout
    while True:
        tree = _status(server, eid, depth=10)
        assert tree["submission_id"] == submission_id
        if tree["state"] == "TERMINATED" and manager.wait_for_engine(int(submission_id), 30):
            return _status(server, eid, depth=10)
        assert time.monotonic() < deadline, f"submission {submission_id} did not end"
        time.sleep(0.5)


def _nodes(tree: dict):
    yield tree
    for child in tree["subtasks"]:
        yield from _nodes(child)


def _jobs(tree: dict) -> dict[str, dict]:
    return {n["name"]: n for n in _nodes(tree) if n["n_subtasks"] == 0 and "_" in n["name"]}


def _description(eid: int, active_stages: tuple[str, ...] | None = None, **batch) -> dict:
    """The default description with some stages inactive and some batch args set."""
    description = manager.load_description(eid).to_dict()
    for stage in description["stages"]:
        if active_stages is not None:
            stage["active"] = stage["name"] in active_stages
        for step in stage["steps"]:
            for arg in step["batch_args"]:
                if arg["name"] in batch.get(step["name"], {}):
                    arg["value"] = batch[step["name"]][arg["name"]]
    return description


def _engine_pid(submission_id: str) -> int:
    with tm.utils.MainSession() as session:
        submission = session.get(tm.Submission, int(submission_id))
        return session.get(tm.Task, submission.top_task_id).data["engine"]["pid"]


def _alive(pid: int) -> bool:
    """Whether the python process `pid` runs (an exiting one's command line is already empty)."""
    try:
        return b"python" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


# ------------------------------------------------------------------ full workflow


@SQLITE_ONLY
@pytest.mark.slow
def test_submit_kill_resubmit_over_http(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TMAPS_CORES", "2")
    eid = _experiment(server)
    _add_plate(eid, tmp_path)
    base = f"/api/experiments/{eid}/workflow"
    assert _status(server, eid) is None  # nothing submitted yet
    assert _ok(server.get(f"{base}/jobs?step_name=imextract"))["data"] == []

    # submit with a description: it is stored first
    description = _description(eid, metaextract={"batch_size": 1}, jterator={"batch_size": 1})
    first = _ok(server.post(f"{base}/submit", json={"description": description}))
    assert first["message"] == "ok" and first["submission_id"].isdigit()
    stored = WorkflowDescription.load(manager.description_path(eid))
    assert stored.stages[0].steps[0].batch_args["batch_size"] == 1
    assert stored.stages[-1].steps[0].batch_args["batch_size"] == 1
    pid = _engine_pid(first["submission_id"])
    assert _alive(pid) and os.getsid(pid) == pid  # a session of its own
    # a second submission while it runs is refused
    body = _error(server.post(f"{base}/submit"), 409)
    assert "still running" in body["message"]
    _error(server.post(f"{base}/resubmit", json={"stage_name": "image_analysis"}), 409)
    # nor is the description of a running workflow replaced
    other = _description(eid, metaextract={"batch_size": 2})
    _error(server.post(f"{base}/submit", json={"description": other}), 409)
    assert WorkflowDescription.load(manager.description_path(eid)).to_dict() == stored.to_dict()

    # kill over HTTP: the engine stops its jobs and records the failure
    assert _ok(server.post(f"{base}/kill"))["message"] == "ok"
    assert manager.wait_for_engine(int(first["submission_id"]), 60)
    assert not _alive(pid)
    killed = _status(server, eid, depth=10)
    assert killed["submission_id"] == first["submission_id"]
    assert killed["state"] == "TERMINATED" and killed["exitcode"] != 0
    assert not any(n["live"] for n in _nodes(killed))
    assert "jterator_collect_0000001" not in {
        n for n, j in _jobs(killed).items() if j["state"] == "TERMINATED" and j["exitcode"] == 0
    }

    # resubmit from the first stage (by index); the server "restarts" while it runs
    second = _ok(server.post(f"{base}/resubmit", json={"index": 0}))
    assert int(second["submission_id"]) > int(first["submission_id"])
    del server.app, server.client
    server = make_server(monkeypatch)
    running = _status(server, eid)
    assert running["submission_id"] == second["submission_id"]
    tree = _wait_done(server, eid, second["submission_id"])
    assert tree["state"] == "TERMINATED" and tree["exitcode"] == 0, tree
    stage_names = [s["name"] for s in tree["subtasks"]]
    assert stage_names == [s.name for s in stored.active().stages]
    assert all(n["state"] == "TERMINATED" and n["exitcode"] == 0 for n in _nodes(tree))

    # depth limits the levels shown
    shallow = _status(server, eid, depth=1)
    assert [s["name"] for s in shallow["subtasks"]] == stage_names
    assert all(s["subtasks"] == [] and s["n_subtasks"] > 0 for s in shallow["subtasks"])

    # jobs of a step, paged, compared with the tasks table
    with tm.utils.MainSession() as session:
        expected = session.scalars(
            sa.select(tm.Task.name)
            .where(
                tm.Task.submission_id == int(second["submission_id"]),
                tm.Task.name.like("metaextract\\_run\\_%", escape="\\"),
            )
            .order_by(tm.Task.id)
        ).all()
    with tm.utils.ExperimentSession(eid) as session:
        n_images = session.scalar(sa.select(sa.func.count(tm.MicroscopeImageFile.id)))
    assert len(expected) == n_images == 4  # batch_size 1: one job per image file
    runs = _ok(server.get(f"{base}/jobs?step_name=metaextract&phase=run"))["data"]
    assert [j["name"] for j in runs] == expected
    assert all(j["id"].isdigit() and j["exitcode"] == 0 for j in runs)
    page = _ok(server.get(f"{base}/jobs?step_name=metaextract&phase=run&index=1&batch_size=2"))
    assert [j["name"] for j in page["data"]] == expected[1:3]
    last = _ok(server.get(f"{base}/jobs?step_name=metaextract&phase=run&index=-1"))["data"]
    assert [j["name"] for j in last] == expected[-1:]
    everything = _ok(server.get(f"{base}/jobs?step_name=metaextract"))["data"]
    assert [j["name"] for j in everything] == ["metaextract_init_0000001", *expected]
    named = _ok(server.get(f"{base}/jobs?step_name=jterator&name=jterator_collect_0000001"))
    assert [j["name"] for j in named["data"]] == ["jterator_collect_0000001"]

    # a job's log is what the job wrote
    log = _ok(server.get(f"{base}/jobs/{runs[0]['id']}/log"))["data"]
    log_dir = Path(manager.description_path(eid).parent / "metaextract" / "log")
    assert log["stdout"] == (log_dir / f"{runs[0]['name']}.out").read_text()
    assert "JOB COMPLETED" in log["stdout"]
    assert log["stderr"] == (log_dir / f"{runs[0]['name']}.err").read_text()
    collection = tree["subtasks"][0]["id"]  # a stage is no job
    _error(server.get(f"{base}/jobs/{collection}/log"), 404)
    _error(server.get(f"{base}/jobs/999999/log"), 404)

    # the workflow produced objects; resubmitting the analysis stage gives the same
    def objects() -> dict[str, int]:
        with tm.utils.ExperimentSession(eid) as session:
            rows = session.execute(
                sa.select(tm.MapobjectType.name, sa.func.count(tm.Mapobject.id))
                .join(tm.Mapobject, tm.Mapobject.mapobject_type_id == tm.MapobjectType.id)
                .group_by(tm.MapobjectType.name)
            ).all()
        return dict(rows)

    before = objects()
    assert before.get("Nuclei", 0) > 0 and before.get("Cells", 0) > 0
    third = _ok(server.post(f"{base}/resubmit", json={"stage_name": "image_analysis"}))
    tree = _wait_done(server, eid, third["submission_id"])
    assert tree["exitcode"] == 0
    assert [s["name"] for s in tree["subtasks"]] == ["image_analysis"]
    assert objects() == before
    # the jobs of the last submission only
    assert _ok(server.get(f"{base}/jobs?step_name=metaextract"))["data"] == []


@SQLITE_ONLY
@pytest.mark.slow
def test_engine_outlives_the_server_process(server, tmp_path, monkeypatch):
    """The submitting server is a process that exits at once; another one follows the run."""
    monkeypatch.setenv("TMAPS_CORES", "2")
    eid = _experiment(server)
    _add_plate(eid, tmp_path, sites=1)
    description = _description(eid, active_stages=("image_conversion",))
    script = textwrap.dedent(
        f"""
        import json, sys
        from tmserver.app import create_app
        from tmserver.config import ServerConfig
        client = create_app(ServerConfig(secret_key={TEST_SECRET!r})).test_client()
        token = client.post("/auth", json={{"username": "alice", "password": "secret"}})
        headers = {{"Authorization": "JWT " + token.get_json()["access_token"]}}
        description = json.loads(sys.stdin.read())
        response = client.post("/api/experiments/{eid}/workflow/submit", headers=headers,
                               json={{"description": description}})
        print(json.dumps(response.get_json()))
        """
    )
    import json

    started = time.monotonic()
    caller = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(description),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert caller.returncode == 0, caller.stderr
    answer = json.loads(caller.stdout.strip().splitlines()[-1])
    submission_id = answer["submission_id"]
    pid = _engine_pid(submission_id)
    # the caller is gone; its engine was not its process group's or session's member
    assert os.getsid(pid) == pid and os.getpgid(pid) == pid
    tree = _wait_done(server, eid, submission_id, timeout=180)
    assert tree["state"] == "TERMINATED" and tree["exitcode"] == 0, tree
    assert [s["name"] for s in tree["subtasks"]] == ["image_conversion"]
    assert time.monotonic() - started < 180
    with tm.utils.ExperimentSession(eid) as session:
        assert sorted(session.scalars(sa.select(tm.Channel.name))) != []
        assert session.scalar(sa.select(sa.func.count(tm.ChannelImageFile.id))) == 2
    with tm.utils.MainSession() as session:
        location = session.get(tm.ExperimentReference, eid).location
    log = Path(location) / "workflow" / "engine" / f"workflow_{submission_id}.log"
    assert f"submission {submission_id} ended: ok" in log.read_text()


# ----------------------------------------------------------- errors and description


def test_description_round_trip_and_bad_input(server):
    eid = _experiment(server)
    base = f"/api/experiments/{eid}/workflow"
    got = _ok(server.get(f"{base}/description"))["data"]
    assert got["type"] == "canonical"
    assert [s["name"] for s in got["stages"]] == [
        "image_conversion", "image_preprocessing", "pyramid_creation", "image_analysis"
    ]  # fmt: skip
    metaextract = got["stages"][0]["steps"][0]
    assert metaextract["name"] == "metaextract" and metaextract["fullname"] and metaextract["help"]
    batch_size = next(a for a in metaextract["batch_args"] if a["name"] == "batch_size")
    assert batch_size["value"] is batch_size["default"] is None  # automatic
    assert set(batch_size) == {"name", "value", "default", "required", "disabled", "help",
                               "choices", "type", "minimum", "maximum"}  # fmt: skip
    # types and ranges as the step declares them: the page picks widgets and checks by them
    assert (batch_size["type"], batch_size["minimum"], batch_size["maximum"]) == (
        "integer", 1, arguments.MAX_BATCH_SIZE
    )  # fmt: skip
    submission_args = {a["name"]: a for a in metaextract["submission_args"]}
    assert (submission_args["memory"]["type"], submission_args["memory"]["minimum"]) == (
        "integer", 1
    )  # fmt: skip
    assert submission_args["memory"]["maximum"] == arguments.MAX_MEMORY_MB
    assert submission_args["duration"]["type"] == "string"
    assert submission_args["duration"]["minimum"] is submission_args["duration"]["maximum"] is None
    by_name = {a["name"]: a for s in got["stages"] for t in s["steps"] for a in t["batch_args"]}
    assert by_name["mip"]["type"] == "boolean" and by_name["mip"]["minimum"] is None
    assert by_name["stitch_layout"]["type"] == "string" and by_name["stitch_layout"]["choices"]
    # every argument's type is one of the four, and a range only on numbers
    for step in (t for s in got["stages"] for t in s["steps"]):
        cls = get_step(step["name"])
        declared = {a.name: a for a in (*cls.batch_args, *arguments.SUBMISSION_ARGS)}
        for arg in step["batch_args"] + step["submission_args"]:
            assert arg["type"] == declared[arg["name"]].type_name
            assert arg["type"] in ("integer", "number", "string", "boolean")
            if arg["type"] in ("integer", "number"):
                assert (arg["minimum"], arg["maximum"]) == declared[arg["name"]].range
            else:
                assert arg["minimum"] is arg["maximum"] is None
    assert {a["name"] for a in metaextract["submission_args"]} == {"duration", "memory", "cores"}

    # what GET gives can be sent back changed
    batch_size["value"] = 7
    got["stages"][1]["active"] = False
    assert _ok(server.post(f"{base}/description", json={"description": got}))["message"] == "ok"
    stored = WorkflowDescription.load(manager.description_path(eid))
    assert stored.stages[0].steps[0].batch_args["batch_size"] == 7
    assert stored.stages[1].active is False
    again = _ok(server.get(f"{base}/description"))["data"]
    assert again["stages"][0]["steps"][0]["batch_args"][0]["value"] == 7
    text = manager.description_path(eid).read_text()

    # invalid descriptions: 400, and the stored one is unchanged
    bad_stage = {**got, "stages": [{"name": "no_such_stage", "steps": []}]}
    bad_type = yaml.safe_load(yaml.safe_dump(got))
    bad_type["stages"][0]["steps"][0]["batch_args"][0]["value"] = "many"
    for bad in (bad_stage, bad_type, {"stages": []}):
        for path in ("description", "submit", "resubmit"):
            body = _error(server.post(f"{base}/{path}", json={"description": bad}), 400)
            assert body["type"] == "InvalidInputError"
    assert (
        "no_such_stage"
        in _error(server.post(f"{base}/description", json={"description": bad_stage}), 400)[
            "message"
        ]
    )
    _error(server.post(f"{base}/description", json={"description": "not a dict"}), 400)
    _error(server.post(f"{base}/description", json={}), 400)
    assert manager.description_path(eid).read_text() == text

    # unknown stages and indices
    body = _error(server.post(f"{base}/resubmit", json={"stage_name": "nope"}), 400)
    assert "nope" in body["message"]
    _error(server.post(f"{base}/resubmit", json={"stage_name": "image_preprocessing"}), 400)
    _error(server.post(f"{base}/resubmit", json={"index": 3}), 400)  # 3 active stages
    _error(server.post(f"{base}/resubmit", json={"index": -1}), 400)
    _error(server.post(f"{base}/resubmit", json={"index": "x"}), 400)
    with tm.utils.MainSession() as session:
        assert session.scalar(sa.select(sa.func.count(tm.Submission.id))) == 0

    # nothing submitted
    assert _status(server, eid) is None
    _error(server.post(f"{base}/kill"), 404)
    _error(server.get(f"{base}/jobs"), 400)  # step_name is required
    _error(server.get(f"{base}/jobs?step_name=imextract&phase=other"), 400)
    _error(server.get(f"{base}/jobs?step_name=imextract&batch_size=-1"), 400)
    _error(server.get(f"{base}/status?depth=x"), 400)
    _error(server.get("/api/experiments/999/workflow/status"), 404)
    _error(server.get("/api/experiments/999/workflow/description"), 404)


def test_other_users_get_403(server):
    eid = _experiment(server)
    base = f"/api/experiments/{eid}/workflow"
    for method, path in [
        ("post", "submit"), ("post", "resubmit"), ("get", "status"), ("get", "jobs?step_name=x"),
        ("get", "jobs/1/log"), ("get", "description"), ("post", "description"), ("post", "kill"),
        ("get", "jtproject"), ("put", "jtproject"),
    ]:  # fmt: skip
        body = _error(getattr(server, method)(f"{base}/{path}", user="bob", json={}), 403)
        assert body["type"] == "ForbiddenError"
    # a reader may look but not submit
    _ok(server.post(f"/api/experiments/{eid}/shares", json={"user": "bob"}))
    assert _ok(server.get(f"{base}/status", user="bob"))["data"] is None
    _error(server.post(f"{base}/submit", user="bob"), 403)
    _error(server.put(f"{base}/jtproject", user="bob", json={}), 403)


#: (state, exitcode) of the run jobs the state-filter test puts into the database, in order
FAKE_JOBS = [
    ("TERMINATED", 0), ("TERMINATED", 1), ("RUNNING", None), ("TERMINATED", -9),
    ("NEW", None), ("SUBMITTED", None), ("TERMINATED", None), ("TERMINATED", 0),
]  # fmt: skip


def _fake_submission(eid: int, step: str = "metaextract") -> list[str]:
    """A workflow submission of alice's with an init job and :data:`FAKE_JOBS` as run jobs
    of `step` (plus a job of another step); the run jobs' names in order."""
    with tm.utils.MainSession() as session:
        alice = session.scalar(sa.select(tm.User).where(tm.User.name == "alice"))
        submission = tm.Submission(program="workflow", experiment_id=eid, user_id=alice.id)
        session.add(submission)
        session.flush()
        root = tm.Task(name="workflow", type="Workflow", is_collection=True,
                       submission_id=submission.id, state="RUNNING")  # fmt: skip
        session.add(root)
        session.flush()
        submission.top_task_id = root.id
        jobs = [(f"{step}_init_0000001", "TERMINATED", 0)]
        jobs += [(f"{step}_run_{i:07d}", st, code) for i, (st, code) in enumerate(FAKE_JOBS, 1)]
        jobs += [("imextract_run_0000001", "TERMINATED", 1)]  # another step: never listed
        for name, state, exitcode in jobs:
            session.add(tm.Task(name=name, type="RunJob", submission_id=submission.id,
                                parent_id=root.id, state=state, exitcode=exitcode))  # fmt: skip
            session.flush()  # ids in this order
    return [name for name, _, _ in jobs[1:-1]]


def test_jobs_filtered_by_state(server):
    eid = _experiment(server)
    base = f"/api/experiments/{eid}/workflow/jobs?step_name=metaextract"
    names = _fake_submission(eid)
    expected = {
        "NEW": [4], "SUBMITTED": [5], "RUNNING": [2], "TERMINATED": [0, 1, 3, 6, 7],
        "FAILED": [1, 3], "SUCCEEDED": [0, 6, 7],
    }  # fmt: skip
    assert set(expected) == set(manager.JOB_STATE_FILTERS)
    for state, indices in expected.items():
        got = _ok(server.get(f"{base}&phase=run&state={state}"))
        assert [j["name"] for j in got["data"]] == [names[i] for i in indices], state
        assert got["total"] == len(indices)
        # the same rule as the status's failed count
        if state != "TERMINATED":
            assert {j["failed"] for j in got["data"]} == {int(state == "FAILED")}, state
    # paging applies to the filtered jobs; total still counts all that pass
    page = _ok(server.get(f"{base}&state=TERMINATED&index=1&batch_size=2"))
    assert [j["name"] for j in page["data"]] == [names[0], names[1]]  # the init job is first
    assert page["total"] == 6
    last = _ok(server.get(f"{base}&state=FAILED&index=-1"))
    assert [j["name"] for j in last["data"]] == [names[3]] and last["total"] == 2
    everything = _ok(server.get(base))
    assert everything["total"] == len(names) + 1 == len(everything["data"])
    # the library filters in SQL, with the same answers
    assert [j["name"] for j in manager.list_jobs(eid, "metaextract", "run", state="FAILED")] == [
        names[1],
        names[3],
    ]
    assert manager.count_jobs(eid, "metaextract", state="SUCCEEDED") == 4  # with the init job

    # bad states: 400 naming the allowed ones; the library refuses them too
    for bad in ("failed", "DONE", "", "TERMINATED,FAILED"):
        body = _error(server.get(f"{base}&state={bad}"), 400)
        assert body["type"] == "InvalidInputError", bad
        assert "FAILED" in body["message"] and "SUCCEEDED" in body["message"]
    with pytest.raises(InvalidInputError, match="state must be one of"):
        manager.list_jobs(eid, "metaextract", state="ok")
    with pytest.raises(InvalidInputError):
        manager.count_jobs(eid, "metaextract", state="ok")

    # another user is refused, filter or not; a reader may list them
    for query in ("", "&state=FAILED", "&state=nonsense"):
        body = _error(server.get(f"{base}{query}", user="bob"), 403)
        assert body["type"] == "ForbiddenError"
    _error(server.get("/api/experiments/999/workflow/jobs?step_name=x&state=FAILED"), 404)
    _ok(server.post(f"/api/experiments/{eid}/shares", json={"user": "bob"}))
    shared = _ok(server.get(f"{base}&state=FAILED", user="bob"))
    assert [j["name"] for j in shared["data"]] == [names[1], names[3]]


def test_jobs_state_filter_is_sql(server, monkeypatch):
    """The filter is a where-clause: the rows of other states never leave the database."""
    eid = _experiment(server)
    _fake_submission(eid)
    loaded: list[str] = []
    original = manager.task_status

    def spy(task, children, depth=None):
        loaded.append(task.name)
        return original(task, children, depth)

    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    monkeypatch.setattr(manager, "task_status", spy)
    engine = main_engine()
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        jobs = manager.list_jobs(eid, "metaextract", state="FAILED")
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    assert len(jobs) == 2 and len(loaded) == 2
    # the query of the jobs names the state and the exit code in its WHERE
    query = next(q for q in statements if q.upper().startswith("SELECT TASKS."))
    where = query.upper().split("WHERE", 1)[1]
    assert "TASKS.STATE" in where and "TASKS.EXITCODE" in where, query


def test_job_log_of_another_experiment_is_404(server, tmp_path):
    from tmlib.workflow.jobs.engine import TaskSpec
    from tmlib.workflow.jobs.job import JobSpec

    mine, other = _experiment(server, "mine"), _experiment(server, "other")
    job = JobSpec("echo_1", ["sh", "-c", "echo hello; echo oops >&2"], log_dir=tmp_path)
    submission_id = manager.start_detached(other, "test", TaskSpec("echo_1", "Job", job=job))
    assert manager.wait_for_engine(submission_id, 60)
    tree = manager.submission_status(submission_id)
    assert tree["exitcode"] == 0
    task_id = tree["id"]
    log = _ok(server.get(f"/api/experiments/{other}/workflow/jobs/{task_id}/log"))["data"]
    assert log == {"stdout": "hello\n", "stderr": "oops\n"}
    _error(server.get(f"/api/experiments/{mine}/workflow/jobs/{task_id}/log"), 404)


# ---------------------------------------------------------------- jterator project


def test_jtproject_get_and_put(processed_server, processed):
    server, eid = processed_server, processed.experiment_id
    path = f"/api/experiments/{eid}/workflow/jtproject"
    project = _ok(server.get(path))["data"]
    location = manager.description_path(eid).parent / "jterator"
    on_disk = yaml.safe_load((location / "pipeline.yaml").read_text())
    assert project["pipeline"] == on_disk
    names = [Path(e["handles"]).name[: -len(".handles.yaml")] for e in on_disk["pipeline"]]
    assert sorted(project["handles"]) == sorted(names)
    first = names[0]
    assert project["handles"][first] == yaml.safe_load(
        (location / "handles" / f"{first}.handles.yaml").read_text()
    )
    before = {p: p.read_bytes() for p in location.rglob("*.yaml")}
    try:
        # a valid change is stored
        changed = yaml.safe_load(yaml.safe_dump(project))
        changed["pipeline"]["output"]["objects"] = [{"name": "Nuclei", "as_polygons": False}]
        assert _ok(server.put(path, json=changed))["message"] == "ok"
        stored = yaml.safe_load((location / "pipeline.yaml").read_text())
        assert stored["output"]["objects"] == [{"name": "Nuclei", "as_polygons": False}]
        assert _ok(server.get(path))["data"]["pipeline"] == stored

        # invalid ones are refused and nothing is written
        state = {p: p.read_bytes() for p in location.rglob("*.yaml")}
        unknown_key = yaml.safe_load(yaml.safe_dump(changed))
        handles = unknown_key["handles"][names[1]]
        pipe = next(h for h in handles["input"] if "key" in h)
        pipe["key"] = "no.such.key"
        outside = yaml.safe_load(yaml.safe_dump(changed))
        outside["pipeline"]["pipeline"][0]["source"] = "../../../etc/passwd.py"
        traversal = yaml.safe_load(yaml.safe_dump(changed))
        traversal["pipeline"]["pipeline"][0]["handles"] = "../handles/x.handles.yaml"
        for bad in (unknown_key, outside, traversal):
            _error(server.put(path, json=bad), 400)
        body = _error(server.put(path, json=unknown_key), 400)
        assert "no.such.key" in body["message"] and ".jterator-edit" not in body["message"]
        _error(server.put(path, json={"pipeline": {}}), 400)
        _error(server.put(path, json={"pipeline": [], "handles": {}}), 400)
        assert {p: p.read_bytes() for p in location.rglob("*.yaml")} == state
        assert not list(location.parent.glob(".jterator-*"))
    finally:
        for p, content in before.items():
            p.write_bytes(content)
