"""Issue 13, items 1, 6, 9, 10 and 13: attacks on input, registration, quotas and file modes.

Each test performs the attack that the issue reproduced against the server (or a
command line) and checks that it is refused with one clear message.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import files_under, make_cellvoyager_dir, microscope_file_rows

import tmlib.models as tm


def _error(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()["error"]
    assert body["error"] is True and body["status_code"] == status and body["message"]
    return body


def _url(eid, aid, rest: str = "") -> str:
    return f"/api/experiments/{eid}/acquisitions/{aid}{rest}"


def _new_acquisition(server, user: str = "alice", name: str = "sec-exp") -> tuple[str, str]:
    """(experiment id, acquisition id): a new experiment of `user`, plate p1, acquisition a1."""
    response = server.post("/api/experiments", user=user, json={"name": name})
    assert response.status_code == 200, response.get_json()
    eid = response.get_json()["data"]["id"]
    response = server.post(f"/api/experiments/{eid}/plates", user=user, json={"name": "p1"})
    assert response.status_code == 200, response.get_json()
    response = server.post(
        f"/api/experiments/{eid}/acquisitions", user=user, json={"plate_name": "p1", "name": "a1"}
    )
    assert response.status_code == 200, response.get_json()
    return eid, response.get_json()["data"]["id"]


@pytest.fixture
def acquisition(server) -> tuple[str, str]:
    return _new_acquisition(server)


def _experiment_dir(eid) -> Path:
    with tm.utils.MainSession() as session:
        return Path(session.get(tm.ExperimentReference, int(eid)).location)


# --- item 10: names are limited by bytes, and any accepted name can be stored ---------


def _image_name_of_bytes(total: int, filler: str = "x") -> str:
    """A CellVoyager image name of exactly `total` UTF-8 bytes (`filler` pads the plate part)."""
    tail = "_A01_T0001F001L01A01Z01C01.tif"
    width = len(filler.encode())
    room = total - len(tail.encode())
    assert room % width == 0, "choose a total that the filler fills exactly"
    name = filler * (room // width) + tail
    assert len(name.encode()) == total
    return name


def _upload(server, eid, aid, name: str, content: bytes):
    return server.post(
        _url(eid, aid, "/microscope-file"),
        data={"file": (io.BytesIO(content), name)},
        content_type="multipart/form-data",
    )


@pytest.mark.parametrize("filler", ["x", "é", "日"])
def test_longest_name_by_bytes_uploads(server, acquisition, filler):
    eid, aid = acquisition
    total = 255 - (255 - len(b"_A01_T0001F001L01A01Z01C01.tif")) % len(filler.encode())
    name = _image_name_of_bytes(total, filler)
    response = server.post(_url(eid, aid, "/upload/register"), json={"files": [name]})
    assert response.status_code == 200, response.get_json()
    response = _upload(server, eid, aid, name, b"pixels")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert microscope_file_rows(eid) == {name: ["COMPLETE"]}
    stored = [p for p in files_under(_experiment_dir(eid)) if p.name == name]
    assert len(stored) == 1 and stored[0].read_bytes() == b"pixels"
    # no temporary file is left behind
    assert [p for p in files_under(_experiment_dir(eid)) if p.name.endswith(".part")] == []


@pytest.mark.parametrize("filler", ["x", "é"])
def test_name_over_255_bytes_is_refused_at_register(server, acquisition, filler):
    eid, aid = acquisition
    # 256 bytes; with "é" the name has far fewer than 256 characters
    name = _image_name_of_bytes(256, filler)
    body = _error(server.post(_url(eid, aid, "/upload/register"), json={"files": [name]}), 400)
    assert "255 bytes" in body["message"]
    _error(
        server.post(_url(eid, aid, "/upload/validity-check"), json={"files": [{"name": name}]}),
        400,
    )
    assert microscope_file_rows(eid) == {}


def test_register_files_measures_names_in_bytes(tmaps, tmp_path):
    from tmlib import registry, upload

    assert upload.MAX_NAME_BYTES == registry.MAX_NAME_BYTES == 255
    with pytest.raises(Exception, match="255 bytes"):
        registry.check_name_length(_image_name_of_bytes(256, "é"))
    registry.check_name_length(_image_name_of_bytes(255, "x"))


# --- item 1: registering a server directory over HTTP is limited to configured roots ----


def _register(server, eid, aid, path, user: str = "alice"):
    return server.post(_url(eid, aid, "/register"), user=user, json={"path": str(path)})


def _refused(response, *secrets: object) -> str:
    """The message of a refused registration, checked to reveal none of `secrets`."""
    message = _error(response, 403)["message"]
    for secret in secrets:
        assert str(secret) not in message
    assert not any(ch.isdigit() for ch in message), message  # no counts, no ids
    return message


def test_register_is_disabled_without_roots(server, acquisition, tmp_path, monkeypatch):
    monkeypatch.delenv("TMAPS_REGISTER_ROOTS", raising=False)
    eid, aid = acquisition
    source = tmp_path / "plate"
    make_cellvoyager_dir(source, content=True)
    message = _refused(_register(server, eid, aid, source), source)
    assert "TMAPS_REGISTER_ROOTS" in message
    assert microscope_file_rows(eid) == {}


def test_register_within_a_root_works(server, acquisition, tmp_path, monkeypatch):
    root = tmp_path / "microscopes"
    monkeypatch.setenv("TMAPS_REGISTER_ROOTS", f"/nonexistent-root:{root}")
    eid, aid = acquisition
    images, metas, _ = make_cellvoyager_dir(root / "screen1" / "plate", content=True)
    response = _register(server, eid, aid, root / "screen1" / "plate")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["data"]["images"] == len(images)
    assert microscope_file_rows(eid) == {name: ["COMPLETE"] for name in images + metas}
    # an empty directory below the root: a generic message, no path, no count
    (root / "empty").mkdir()
    message = _error(_register(server, eid, aid, root / "empty"), 400)["message"]
    assert str(root) not in message and not any(ch.isdigit() for ch in message)


def test_register_refuses_outside_roots_alike_whether_it_exists(
    server, acquisition, tmp_path, monkeypatch
):
    root = tmp_path / "microscopes"
    root.mkdir()
    monkeypatch.setenv("TMAPS_REGISTER_ROOTS", str(root))
    eid, aid = acquisition
    outside = tmp_path / "private"
    make_cellvoyager_dir(outside, content=True)
    exists = _refused(_register(server, eid, aid, outside), outside)
    missing = _refused(_register(server, eid, aid, tmp_path / "nothing-here"), "nothing-here")
    missing_in_root = _refused(_register(server, eid, aid, root / "nothing"), root)
    assert exists == missing == missing_in_root
    # ".." cannot climb out of a root
    _refused(_register(server, eid, aid, f"{root}/../private"), outside)
    # a path that is a file, not a directory
    (root / "file.tif").write_bytes(b"x")
    assert _refused(_register(server, eid, aid, root / "file.tif"), root) == exists
    assert microscope_file_rows(eid) == {}


def test_register_refuses_symlinks_out_of_a_root(server, acquisition, tmp_path, monkeypatch):
    root = tmp_path / "microscopes"
    root.mkdir()
    monkeypatch.setenv("TMAPS_REGISTER_ROOTS", str(root))
    eid, aid = acquisition
    outside = tmp_path / "private"
    images, _, _ = make_cellvoyager_dir(outside, content=True)
    (root / "escape").symlink_to(outside)
    _refused(_register(server, eid, aid, root / "escape"), outside, root)
    # a directory in the root whose files link outside it
    inner = root / "plate"
    make_cellvoyager_dir(inner, content=True)
    (inner / images[0]).unlink()
    (inner / images[0]).symlink_to(outside / images[0])
    _refused(_register(server, eid, aid, inner), outside, root)
    assert microscope_file_rows(eid) == {}


def test_register_refuses_experiment_storage(server, acquisition, tmp_path, monkeypatch):
    # the roots cover everything, the storage of experiments included
    monkeypatch.setenv("TMAPS_REGISTER_ROOTS", str(tmp_path))
    eid, aid = acquisition
    # bob's experiment, in the storage home, with image files in it
    bob_eid, bob_aid = _new_acquisition(server, user="bob", name="bobs")
    bob_dir = _experiment_dir(bob_eid)
    make_cellvoyager_dir(bob_dir / "plates" / "stolen", content=True)
    # carol's experiment, created while the storage home was elsewhere
    monkeypatch.setenv("TMAPS_STORAGE_HOME", str(tmp_path / "old-storage"))
    carol_eid, _ = _new_acquisition(server, user="carol", name="carols")
    monkeypatch.delenv("TMAPS_STORAGE_HOME")
    carol_dir = _experiment_dir(carol_eid)
    assert carol_dir.is_relative_to(tmp_path / "old-storage")
    make_cellvoyager_dir(carol_dir / "x", content=True)
    home = tmp_path / "tmaps"  # the main database lives there
    for path in (bob_dir / "plates" / "stolen", carol_dir / "x", carol_dir, bob_dir.parent, home):
        _refused(_register(server, eid, aid, path), path)
    # a link in an allowed directory to another user's experiment
    (tmp_path / "innocent").symlink_to(bob_dir / "plates" / "stolen")
    _refused(_register(server, eid, aid, tmp_path / "innocent"), bob_dir)
    assert microscope_file_rows(eid) == {}


def test_tm_add_files_registers_any_directory(tmaps, tmp_path, monkeypatch):
    """The local administrator's ``tm_add files`` is not limited by the roots."""
    from helpers import use_fast_password_hashing

    from tmlib import registry
    from tmlib.errors import InvalidInputError

    monkeypatch.delenv("TMAPS_REGISTER_ROOTS", raising=False)
    use_fast_password_hashing(monkeypatch)
    registry.add_user("admin", "secret", "admin@example.org")
    eid = registry.add_experiment("e", "admin")
    registry.add_plate(eid, "p")
    registry.add_acquisition(eid, "p", "a")
    source = tmp_path / "anywhere"
    images, _, _ = make_cellvoyager_dir(source)
    result = registry.register_files(eid, "p", "a", source)
    assert result.images == images
    # and its messages keep their detail
    with pytest.raises(InvalidInputError, match=str(tmp_path / "missing")):
        registry.register_files(eid, "p", "a", tmp_path / "missing")


# --- item 6: step arguments are checked for type and range ------------------------------

#: (step, kind of argument, name, bad value) that the issue found accepted, and more
BAD_ARGUMENTS = [
    ("metaextract", "submission_args", "cores", -1000),
    ("metaextract", "submission_args", "cores", 0),
    ("metaextract", "submission_args", "cores", 100000),
    ("metaextract", "submission_args", "cores", True),
    ("metaextract", "submission_args", "cores", 2.5),
    ("metaextract", "submission_args", "memory", -1),
    ("metaextract", "submission_args", "memory", 10**12),
    ("metaextract", "submission_args", "memory", "lots"),
    ("metaextract", "submission_args", "duration", "99999:00:00"),
    ("metaextract", "submission_args", "duration", "-1:00:00"),
    ("metaextract", "submission_args", "duration", "00:00:00"),
    ("metaextract", "submission_args", "duration", 3600),
    ("metaextract", "batch_args", "batch_size", 2.5),
    ("metaextract", "batch_args", "batch_size", 0),
    ("metaextract", "batch_args", "batch_size", -3),
    ("metaextract", "batch_args", "batch_size", False),
    ("metaextract", "batch_args", "batch_size", [1]),
    ("imextract", "batch_args", "delete", "maybe"),
    ("imextract", "batch_args", "delete", 7),
    ("illuminati", "batch_args", "clip_percent", 150.0),
    ("illuminati", "batch_args", "clip_percent", float("nan")),
    ("jterator", "batch_args", "batch_size", 0),
]


def _description_with(server, eid, step_name: str, kind: str, name: str, value: object) -> dict:
    description = server.get(f"/api/experiments/{eid}/workflow/description").get_json()["data"]
    for stage in description["stages"]:
        for step in stage["steps"]:
            if step["name"] == step_name:
                for argument in step[kind]:
                    if argument["name"] == name:
                        argument["value"] = value
                        return description
    raise AssertionError(f"no argument {name} of {step_name}")


@pytest.mark.parametrize("step_name,kind,name,value", BAD_ARGUMENTS)
def test_bad_step_arguments_get_400_naming_them(server, step_name, kind, name, value):
    import json

    eid = server.post("/api/experiments", json={"name": "args"}).get_json()["data"]["id"]
    base = f"/api/experiments/{eid}/workflow"
    description = _description_with(server, eid, step_name, kind, name, value)
    body = json.dumps({"description": description}, allow_nan=True)
    for route in ("description", "submit", "resubmit"):
        response = server.post(f"{base}/{route}", data=body, content_type="application/json")
        message = _error(response, 400)["message"]
        assert name in message, message
    with tm.utils.MainSession() as session:
        assert session.scalar(sa.select(sa.func.count(tm.Submission.id))) == 0


def test_good_step_arguments_are_kept(server):
    eid = server.post("/api/experiments", json={"name": "args"}).get_json()["data"]["id"]
    base = f"/api/experiments/{eid}/workflow"
    description = _description_with(server, eid, "metaextract", "submission_args", "cores", 4)
    response = server.post(f"{base}/description", json={"description": description})
    assert response.status_code == 200, response.get_json()
    for name, value in (("memory", "4000"), ("duration", "48:00:00")):
        description = _description_with(server, eid, "metaextract", "submission_args", name, value)
        response = server.post(f"{base}/description", json={"description": description})
        assert response.status_code == 200, response.get_json()
    got = server.get(f"{base}/description").get_json()["data"]
    args = {a["name"]: a["value"] for a in got["stages"][0]["steps"][0]["submission_args"]}
    assert args == {"cores": 4, "memory": 4000, "duration": "48:00:00"}


def test_argument_checks_in_the_library():
    from tmlib.errors import InvalidInputError
    from tmlib.workflow import args as arguments

    parse = arguments.parse
    assert parse(arguments.SUBMISSION_ARGS, {"cores": "3"})["cores"] == 3
    assert parse(arguments.SUBMISSION_ARGS, {"memory": 2.0 * 1000})["memory"] == 2000
    for values in ({"cores": -1000}, {"memory": -1}, {"duration": "1000:00:00"}, {"cores": True}):
        with pytest.raises(InvalidInputError, match=next(iter(values))):
            parse(arguments.SUBMISSION_ARGS, values)
    # a submission's resources are checked where jobs are made, too
    from tmlib.workflow import manager

    with pytest.raises(InvalidInputError, match="cores"):
        manager.run_resources({"cores": -1000})
    # the steps of the multiplexing workflow too
    from tmlib.workflow.step import get_step

    with pytest.raises(InvalidInputError, match="ref_cycle"):
        parse(get_step("align").batch_args, {"ref_cycle": -1})


@pytest.mark.slow
def test_step_cli_refuses_bad_batch_size(tmaps, monkeypatch):
    from helpers import cli, one_error_line, use_fast_password_hashing

    from tmlib import registry

    use_fast_password_hashing(monkeypatch)
    registry.add_user("u", "secret", "u@example.org")
    eid = registry.add_experiment("e", "u")
    line = one_error_line(cli("metaextract", eid, "init", "--batch-size", "0"))
    assert "batch-size" in line or "batch_size" in line, line
    line = one_error_line(cli("metaextract", eid, "submit", "--cores", "-1000"))
    assert "cores" in line, line


# --- item 9: quotas of running submissions; tool jobs ask for the cores they use ----------


def _user_id(name: str) -> int:
    with tm.utils.MainSession() as session:
        return session.scalar(sa.select(tm.User.id).where(tm.User.name == name))


def _start_blocker(experiment_id: int, user: str, release: Path) -> int:
    """A background submission whose one job runs until `release` exists; its id."""
    import sys

    from tmlib.workflow import manager
    from tmlib.workflow.jobs.engine import TaskSpec
    from tmlib.workflow.jobs.job import JobSpec, Resources

    wait = f"import os, time\nwhile not os.path.exists({str(release)!r}): time.sleep(0.02)"
    job = JobSpec(
        name=f"blocker_{release.name}_{user}_{experiment_id}",
        command=[sys.executable, "-c", wait],
        resources=Resources(cores=1, walltime=600),
        log_dir=release.parent / "blocker-logs",
    )
    tree = TaskSpec(job.name, "ToolJob", job=job)
    return manager.start_detached(
        int(experiment_id), "blocker", tree, exclusive=False, user_id=_user_id(user)
    )


def _release(release: Path, submissions: list[int]) -> None:
    from tmlib.workflow import manager

    release.touch()
    for submission_id in submissions:
        assert manager.wait_for_engine(submission_id, timeout=60)


def _tool_request(server, eid, user: str = "alice"):
    return server.post(
        f"/api/experiments/{eid}/tools/request",
        user=user,
        json={
            "tool_name": "Heatmap",
            "payload": {"chosen_object_type": "Cells", "selected_feature": "Morphology_area"},
        },
    )


def _wait_for_tool_job(server, eid, submission_id: str) -> dict:
    from tmlib.workflow import manager

    assert manager.wait_for_engine(int(submission_id), timeout=120)
    jobs = server.get(
        f"/api/experiments/{eid}/tools/jobs?submission_id={submission_id}"
    ).get_json()["data"]
    assert len(jobs) == 1 and jobs[0]["state"] == "TERMINATED", jobs
    return jobs[0]


@pytest.mark.slow
def test_user_quota_of_running_submissions(server, tmp_path, monkeypatch):
    from test_tools import make_experiment

    from tmlib import registry
    from tmlib.workflow import manager

    monkeypatch.setenv("TMAPS_MAX_SUBMISSIONS_PER_USER", "2")
    monkeypatch.setenv("TMAPS_MAX_SUBMISSIONS_PER_EXPERIMENT", "10")
    eid, _ = make_experiment()
    other = registry.add_experiment("other", "alice")
    release = tmp_path / "release"
    # alice's two places are taken, on two experiments
    running = [_start_blocker(eid, "alice", release), _start_blocker(other, "alice", release)]
    body = _error(_tool_request(server, eid), 429)
    assert "TMAPS_MAX_SUBMISSIONS_PER_USER" in body["message"] and "2" in body["message"]
    with pytest.raises(manager.QuotaExceededError):
        _start_blocker(other, "alice", release)
    # bob's quota is his own
    bobs = registry.add_experiment("bobs", "bob")
    running.append(_start_blocker(bobs, "bob", release))
    # once they ended, alice may start again; the tool job asks for one core
    _release(release, running)
    response = _tool_request(server, eid)
    assert response.status_code == 200, response.get_json()
    submission_id = response.get_json()["data"]["submission_id"]
    job = _wait_for_tool_job(server, eid, submission_id)
    assert job["exitcode"] == 0, job
    from tmlib.workflow.jobs.engine import job_spec

    with tm.utils.MainSession() as session:
        leaf = session.scalar(
            sa.select(tm.Task).where(
                tm.Task.submission_id == int(submission_id), tm.Task.type == "ToolJob"
            )
        )
        assert job_spec(leaf).resources.cores == 1


@pytest.mark.slow
def test_experiment_quota_of_running_submissions(tmaps, tmp_path, monkeypatch):
    from helpers import use_fast_password_hashing

    from tmlib import registry
    from tmlib.workflow import manager

    use_fast_password_hashing(monkeypatch)
    monkeypatch.setenv("TMAPS_MAX_SUBMISSIONS_PER_USER", "10")
    monkeypatch.setenv("TMAPS_MAX_SUBMISSIONS_PER_EXPERIMENT", "1")
    for name in ("alice", "bob"):
        registry.add_user(name, "secret", f"{name}@example.org")
    shared = registry.add_experiment("shared", "alice")
    bobs = registry.add_experiment("bobs", "bob")
    release = tmp_path / "release"
    running = [_start_blocker(shared, "alice", release)]
    with pytest.raises(manager.QuotaExceededError, match="TMAPS_MAX_SUBMISSIONS_PER_EXPERIMENT"):
        _start_blocker(shared, "bob", release)
    running.append(_start_blocker(bobs, "bob", release))
    _release(release, running)
    running = [_start_blocker(shared, "bob", tmp_path / "again")]
    _release(tmp_path / "again", running)


# --- item 13: data files are for their owner (or a configured group) only -----------------


@pytest.fixture
def permissive_umask():
    """Start from the usual umask 022, so that only our programs can make files private."""
    import os

    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _modes(root: Path) -> dict[str, int]:
    """Relative path → permission bits of every file and directory below `root` (links skipped)."""
    return {
        str(path.relative_to(root)): path.lstat().st_mode & 0o7777
        for path in [root, *root.rglob("*")]
        if not path.is_symlink()
    }


def _add_experiment_by_cli(tmp_path: Path) -> str:
    """A user, an experiment with a plate of real (simulated) images, all by ``tm_add``."""
    from helpers import cli, ok

    from tmlib.simulate.plate import PlateSpec, simulate_plate

    plate = tmp_path / "plate"
    simulate_plate(plate, PlateSpec(wells=1, sites=1, channels=1, height=64, width=64, seed=1))
    ok(cli("tm_add", "user", "-n", "u", "-p", "secret", "-e", "u@example.org"))
    eid = ok(cli("tm_add", "experiment", "-e", "e", "-u", "u")).stdout.strip()
    ok(cli("tm_add", "plate", "-e", eid, "-p", "p"))
    ok(cli("tm_add", "acquisition", "-e", eid, "-p", "p", "-a", "a"))
    ok(cli("tm_add", "files", "-e", eid, "-p", "p", "-a", "a", "-s", plate, "--copy"))
    return eid


@pytest.mark.slow
# the modes of the SQLite database files are what is checked
@pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)
def test_data_files_are_owner_only(tmaps, tmp_path, monkeypatch, permissive_umask):
    import os

    from helpers import cli, ok

    from tmlib.workflow import manager

    monkeypatch.delenv("TMAPS_GROUP", raising=False)
    eid = _add_experiment_by_cli(tmp_path)
    # the image conversion stage only: its jobs write the HDF5 planes
    previous = os.umask(0o077)  # this test writes the description as a program would
    description = manager.load_description(int(eid))
    for stage in description.stages[1:]:
        stage.active = False
    description.save(manager.description_path(int(eid)))
    os.umask(previous)
    ok(cli("tm_workflow", eid, "submit", timeout=300))
    modes = _modes(tmaps.home)
    assert "tissuemaps.db" in modes
    assert any(name.endswith("experiment.db") for name in modes)
    assert any(name.endswith(".h5") for name in modes), sorted(modes)
    assert any(name.endswith(".tif") for name in modes)
    shared = {name: oct(mode) for name, mode in modes.items() if mode & 0o077}
    assert shared == {}


@pytest.mark.slow
# the modes of the SQLite database files are what is checked
@pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)
def test_data_files_are_shared_with_the_group(tmaps, tmp_path, monkeypatch, permissive_umask):
    import grp
    import os
    import stat

    from helpers import cli, ok

    monkeypatch.setenv("TMAPS_GROUP", grp.getgrgid(os.getgid()).gr_name)
    ok(cli("tm_add", "user", "-n", "u", "-p", "secret", "-e", "u@example.org"))
    eid = ok(cli("tm_add", "experiment", "-e", "e", "-u", "u")).stdout.strip()
    modes = _modes(tmaps.home)
    assert modes["tissuemaps.db"] & 0o777 == 0o660
    assert modes[f"experiments/experiment_{eid}/experiment.db"] & 0o777 == 0o660
    for directory in (".", "experiments"):
        assert modes[directory] & 0o777 == 0o770 and modes[directory] & stat.S_ISGID
    assert {name: oct(mode) for name, mode in modes.items() if mode & 0o007} == {}
    # a group that does not exist: one line, exit 2, nothing written
    monkeypatch.setenv("TMAPS_GROUP", "no-such-group-of-tissuemaps")
    result = cli("tm_add", "user", "-n", "v", "-p", "secret", "-e", "v@example.org")
    assert result.returncode == 2 and "TMAPS_GROUP" in result.stderr, result.stderr


def test_uploads_over_the_server_are_owner_only(tmaps, tmp_path, monkeypatch, permissive_umask):
    from conftest import make_server

    monkeypatch.delenv("TMAPS_GROUP", raising=False)
    server = make_server(monkeypatch)  # the app factory applies the policy
    eid, aid = _new_acquisition(server)
    name = "x_A01_T0001F001L01A01Z01C01.tif"
    server.post(_url(eid, aid, "/upload/register"), json={"files": [name]})
    assert _upload(server, eid, aid, name, b"pixels").status_code == 200
    modes = _modes(_experiment_dir(eid))
    stored = [mode for path, mode in modes.items() if path.endswith(name)]
    assert stored == [0o600]
    assert {path: oct(mode) for path, mode in modes.items() if mode & 0o077} == {}


def test_tool_options_are_bounded(server):
    from test_tools import make_experiment

    eid, _ = make_experiment()
    for options in ({"method": "kmeans", "k": 10**9}, {"method": "kmeans", "k": "9" * 5000}):
        response = server.post(
            f"/api/experiments/{eid}/tools/request",
            json={
                "tool_name": "Clustering",
                "payload": {
                    "chosen_object_type": "Cells",
                    "selected_features": ["Morphology_area"],
                    "options": options,
                },
            },
        )
        assert "'k'" in _error(response, 400)["message"]
