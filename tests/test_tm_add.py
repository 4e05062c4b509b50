"""``tm_add`` on SQLite and on PostgreSQL: the happy path, idempotency and every bad input.

Bad input means exit code 2, exactly one line on stderr naming the problem, and
nothing half-created: every test compares a snapshot of the database and the
experiment directories taken before the command with one taken after it.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from helpers import (
    count_rows,
    experiment_schemas,
    files_under,
    make_cellvoyager_dir,
    use_fast_password_hashing,
)

import tmlib.models as tm
from tmlib import registry
from tmlib.cli.add import main
from tmlib.errors import InvalidInputError

TM_ADD = Path(sys.executable).parent / "tm_add"
SQLITE_FILES = {"experiment.db", "experiment.db-wal", "experiment.db-shm"}


@pytest.fixture(autouse=True)
def _fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fast_password_hashing(monkeypatch)  # in-process only; subprocesses hash for real


def invoke(*args: str) -> Result:
    """Run ``tm_add ARGS`` in-process (settings come from the monkeypatched environment)."""
    return CliRunner().invoke(main, list(args), prog_name="tm_add")


def assert_ok(result: Result) -> None:
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)


def assert_one_error_line(result: Result | subprocess.CompletedProcess, code: int = 2) -> str:
    """Exit `code`, nothing on stdout, exactly one non-empty line on stderr; returns it."""
    exit_code = getattr(result, "exit_code", None)
    if exit_code is None:
        exit_code = result.returncode
    assert exit_code == code, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].strip()
    assert "Traceback" not in lines[0]
    return lines[0]


# ---------------------------------------------------------------- set-up and snapshots


@dataclass
class Setup:
    """What a test starts from (created through the registry, in-process)."""

    experiment_id: int | None = None
    source: Path | None = None
    images: list[str] | None = None
    metadata: list[str] | None = None
    skipped: list[str] | None = None


def build(tmaps, tmp_path: Path, level: str) -> Setup:
    """``none``: empty database; ``user``: alice; ``experiment``: + exp1;
    ``acquisition``: + plate01/acq01 and a source directory of CellVoyager files."""
    setup = Setup()
    tm.utils.main_engine()  # an empty database with its tables
    if level == "none":
        return setup
    registry.add_user("alice", "pw", "alice@example.org")
    if level == "user":
        return setup
    setup.experiment_id = registry.add_experiment("exp1", "alice", plate_format=384)
    if level == "experiment":
        return setup
    registry.add_plate(setup.experiment_id, "plate01")
    registry.add_acquisition(setup.experiment_id, "plate01", "acq01")
    setup.images, setup.metadata, setup.skipped = make_cellvoyager_dir(
        tmp_path / "source", extra=["notes.txt", "Plate_A01.tif"], content=True
    )
    setup.source = tmp_path / "source"
    return setup


def snapshot(tmaps) -> dict:
    """Everything ``tm_add`` may create: rows, schemas, directories, files and links."""
    with tm.utils.MainSession() as session:
        users = sorted(session.scalars(sa.select(tm.User.name)))
        refs = sorted(
            (r.id, r.name, r.user_id) for r in session.scalars(sa.select(tm.ExperimentReference))
        )
    experiments = {}
    for experiment_id, _, _ in refs:
        with tm.utils.ExperimentSession(experiment_id) as session:
            experiments[experiment_id] = {
                "experiment": session.scalars(sa.select(tm.Experiment.id)).all(),
                "plates": sorted(session.scalars(sa.select(tm.Plate.name))),
                "acquisitions": sorted(session.scalars(sa.select(tm.Acquisition.name))),
                "images": sorted(session.scalars(sa.select(tm.MicroscopeImageFile.name))),
                "metadata": sorted(session.scalars(sa.select(tm.MicroscopeMetadataFile.name))),
            }
    storage_home = tmaps.storage_home
    return {
        "users": users,
        "references": refs,
        "experiments": experiments,
        "schemas": experiment_schemas(tmaps.db_url) if tmaps.dialect == "postgresql" else None,
        "directories": sorted(p.name for p in storage_home.iterdir())
        if storage_home.exists()
        else [],
        "files": [
            str(p.relative_to(storage_home))
            for p in files_under(storage_home)
            if p.name not in SQLITE_FILES
        ],
    }


def acquisition_dirs(experiment_id: int, plate: str, acquisition: str) -> tuple[Path, Path]:
    with tm.utils.ExperimentSession(experiment_id) as session:
        acq = registry.find_acquisition(session, plate, acquisition)
        return Path(acq.microscope_images_location), Path(acq.microscope_metadata_location)


# ---------------------------------------------------------------- happy path


def test_happy_path_links_copies_and_is_idempotent(tmaps, tmp_path: Path) -> None:
    result = invoke("user", "-n", "alice", "-p", "pw", "-e", "alice@example.org")
    assert_ok(result)
    assert re.fullmatch(r"\d+\n", result.stdout)
    with tm.utils.MainSession() as session:
        alice = session.scalar(sa.select(tm.User).where(tm.User.name == "alice"))
        assert int(result.stdout) == alice.id
        assert alice.email == "alice@example.org"
        assert alice.check_password("pw")

    result = invoke(
        "experiment",
        "-e",
        "screen1",
        "-u",
        "alice",
        "--microscope-type",
        "cellvoyager",
        "--plate-format",
        "96",
        "--plate-acquisition-mode",
        "multiplexing",
    )
    assert_ok(result)
    assert result.stderr == ""
    assert re.fullmatch(r"\d+\n", result.stdout), "the id alone on stdout"
    experiment_id = int(result.stdout)
    with tm.utils.MainSession() as session:
        ref = session.get(tm.ExperimentReference, experiment_id)
        assert (ref.name, ref.user_id) == ("screen1", alice.id)
        location = Path(ref.location)
    assert location == tmaps.storage_home.resolve() / f"experiment_{experiment_id}"
    assert location.is_dir()
    with tm.utils.ExperimentSession(experiment_id) as session:
        experiment = session.get(tm.Experiment, experiment_id)
        assert (
            experiment.microscope_type,
            experiment.plate_format,
            experiment.plate_acquisition_mode,
        ) == ("cellvoyager", 96, "multiplexing")

    result = invoke("plate", "-e", str(experiment_id), "-p", "plate01")
    assert_ok(result)
    result2 = invoke("plate", "-e", "screen1", "-p", "plate02", "-u", "alice")  # by name
    assert_ok(result2)
    with tm.utils.ExperimentSession(experiment_id) as session:
        plates = {p.name: p.id for p in session.scalars(sa.select(tm.Plate))}
    assert plates == {"plate01": int(result.stdout), "plate02": int(result2.stdout)}

    result = invoke("acquisition", "-e", "screen1", "-p", "plate01", "-a", "acq01")
    assert_ok(result)
    with tm.utils.ExperimentSession(experiment_id) as session:
        acq = registry.find_acquisition(session, "plate01", "acq01")
        assert acq.id == int(result.stdout)

    # files: one symlink to the source directory by default, the rest listed as skipped
    source = tmp_path / "source"
    images, metadata, others = make_cellvoyager_dir(
        source, wells=("A01", "B02"), sites=2, channels=2, extra=["notes.txt", "Plate_A01.jpg"]
    )
    (source / ".hidden.tif").write_bytes(b"")
    (source / "subdir").mkdir()
    assert len(images) == 8 and len(metadata) == 2
    args = ("files", "-e", "screen1", "-p", "plate01", "-a", "acq01", "-s", str(source))
    result = invoke(*args)
    assert_ok(result)
    assert "registered 8 image and 2 metadata files" in result.stdout
    assert sorted(result.stderr.splitlines()) == sorted(
        f"skipped (matches no pattern): {name}" for name in others
    )
    images_dir, metadata_dir = acquisition_dirs(experiment_id, "plate01", "acq01")
    assert files_under(images_dir) == [] and files_under(metadata_dir) == []
    links = sorted((images_dir.parent / "sources").iterdir())
    assert len(links) == 1 and links[0].is_symlink()
    assert Path(os.readlink(links[0])) == source.resolve()
    with tm.utils.ExperimentSession(experiment_id) as session:
        rows = session.scalars(sa.select(tm.MicroscopeImageFile)).all()
        assert sorted(r.name for r in rows) == images
        assert {r.status for r in rows} == {"COMPLETE"}
        assert {r.acquisition_id for r in rows} == {acq.id}
        meta_rows = session.scalars(sa.select(tm.MicroscopeMetadataFile)).all()
        assert sorted(r.name for r in meta_rows) == metadata
        assert {r.status for r in meta_rows} == {"COMPLETE"}
        for row in [*rows, *meta_rows]:
            assert Path(row.location).is_relative_to(links[0])
            assert os.path.samefile(row.location, source / row.name)

    # a second run adds nothing
    before = snapshot(tmaps)
    result = invoke(*args)
    assert_ok(result)
    assert "registered 0 image and 0 metadata files" in result.stdout
    assert "10 known before" in result.stdout
    assert count_rows(experiment_id, tm.MicroscopeImageFile) == 8
    assert count_rows(experiment_id, tm.MicroscopeMetadataFile) == 2
    assert snapshot(tmaps) == before

    # a new file in the directory is the only one added by a third run
    new = make_cellvoyager_dir(source, wells=("C03",), sites=1, metadata=False)[0]
    result = invoke(*args)
    assert_ok(result)
    assert "registered 1 image and 0 metadata files" in result.stdout
    assert count_rows(experiment_id, tm.MicroscopeImageFile) == 9
    assert len(list((images_dir.parent / "sources").iterdir())) == 1  # the link is reused
    with tm.utils.ExperimentSession(experiment_id) as session:
        row = session.scalar(
            sa.select(tm.MicroscopeImageFile).where(tm.MicroscopeImageFile.name == new[0])
        )
        assert os.path.samefile(row.location, source / new[0])

    # --copy makes real copies that outlive the source
    assert_ok(invoke("acquisition", "-e", "screen1", "-p", "plate01", "-a", "acq02"))
    source2 = tmp_path / "source2"
    images, metadata, _ = make_cellvoyager_dir(source2, wells=("D04",), sites=3, content=True)
    result = invoke(
        "files", "-e", "screen1", "-p", "plate01", "-a", "acq02", "-s", str(source2), "--copy"
    )
    assert_ok(result)
    assert "registered 3 image and 2 metadata files" in result.stdout
    images_dir, metadata_dir = acquisition_dirs(experiment_id, "plate01", "acq02")
    for directory, names in ((images_dir, images), (metadata_dir, metadata)):
        assert sorted(os.listdir(directory)) == names
        for name in names:
            target, original = directory / name, source2 / name
            assert not target.is_symlink()
            assert target.is_file()
            assert not os.path.samefile(target, original)
            assert target.read_bytes() == original.read_bytes() == f"content of {name}\n".encode()
    for name in images:
        (source2 / name).unlink()
    assert (images_dir / images[0]).read_bytes() == f"content of {images[0]}\n".encode()
    assert count_rows(experiment_id, tm.MicroscopeImageFile) == 9 + 3
    assert count_rows(experiment_id, tm.MicroscopeMetadataFile) == 2 + 2
    assert not (images_dir.parent / "sources").exists()  # copies need no link
    with tm.utils.ExperimentSession(experiment_id) as session:
        row = session.scalar(
            sa.select(tm.MicroscopeImageFile).where(tm.MicroscopeImageFile.name == images[0])
        )
        assert Path(row.location) == images_dir / images[0]


def test_real_tm_add_process(tmaps, tmp_path: Path) -> None:
    registry.add_user("alice", "pw", "alice@example.org")
    env = {
        **os.environ,
        "TMAPS_HOME": str(tmaps.home),
        "TMAPS_DB_URL": tmaps.db_url,
        "TMAPS_CONFIG_FILE": os.environ["TMAPS_CONFIG_FILE"],
    }
    proc = subprocess.run(
        [str(TM_ADD), "experiment", "-e", "screen1", "-u", "alice", "--plate-format", "96"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"\d+\n", proc.stdout), proc.stdout
    assert proc.stderr == ""
    experiment_id = int(proc.stdout)
    with tm.utils.MainSession() as session:
        ref = session.get(tm.ExperimentReference, experiment_id)
        assert ref.name == "screen1"
    assert Path(ref.location).is_dir()
    assert count_rows(experiment_id, tm.Experiment) == 1
    if tmaps.dialect == "postgresql":
        assert experiment_schemas(tmaps.db_url) == [f"experiment_{experiment_id}"]

    if tmaps.dialect == "postgresql":
        return  # one failing real process (on SQLite) is enough: each costs ~1.5 s
    # the same again: bad input in a real process
    before = snapshot(tmaps)
    proc = subprocess.run(
        [str(TM_ADD), "experiment", "-e", "screen1", "-u", "alice"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = assert_one_error_line(proc)
    assert line.startswith("tm_add: error:")
    assert "screen1" in line
    assert snapshot(tmaps) == before


# ---------------------------------------------------------------- bad input


@dataclass(frozen=True)
class Bad:
    """A bad ``tm_add`` call: the state it starts from, its arguments and what stderr names."""

    level: str
    args: Callable[[Setup, Path], list[str]]
    names: tuple[str, ...]


def _files(experiment="exp1", plate="plate01", acquisition="acq01", source=None):
    def args(setup: Setup, tmp_path: Path) -> list[str]:
        where = source(tmp_path) if source else setup.source
        return ["files", "-e", experiment, "-p", plate, "-a", acquisition, "-s", str(where)]

    return args


def _empty_of_matches(tmp_path: Path) -> Path:
    directory = tmp_path / "nothing-matches"
    directory.mkdir()
    for name in ("notes.txt", "image.tif", "Plate_A1_T0001F001L01A01Z01C01.tif"):
        (directory / name).write_bytes(b"")
    return directory


BAD_INPUT = {
    "duplicate user": Bad(
        "user", lambda s, t: ["user", "-n", "alice", "-p", "x", "-e", "a2@x.org"], ("alice",)
    ),
    "duplicate experiment": Bad(
        "experiment", lambda s, t: ["experiment", "-e", "exp1", "-u", "alice"], ("exp1",)
    ),
    "duplicate plate": Bad(
        "acquisition", lambda s, t: ["plate", "-e", "exp1", "-p", "plate01"], ("plate01",)
    ),
    "duplicate acquisition": Bad(
        "acquisition",
        lambda s, t: ["acquisition", "-e", "exp1", "-p", "plate01", "-a", "acq01"],
        ("acq01",),
    ),
    "experiment of unknown user": Bad(
        "user", lambda s, t: ["experiment", "-e", "exp9", "-u", "nobody"], ("nobody",)
    ),
    "plate of unknown experiment": Bad(
        "none", lambda s, t: ["plate", "-e", "no-such-exp", "-p", "p"], ("no-such-exp",)
    ),
    "plate of unknown experiment id": Bad(
        "user", lambda s, t: ["plate", "-e", "4711", "-p", "p"], ("4711",)
    ),
    "acquisition of unknown experiment": Bad(
        "none",
        lambda s, t: ["acquisition", "-e", "no-such-exp", "-p", "p", "-a", "a"],
        ("no-such-exp",),
    ),
    "acquisition of unknown plate": Bad(
        "experiment",
        lambda s, t: ["acquisition", "-e", "exp1", "-p", "no-such-plate", "-a", "a"],
        ("no-such-plate",),
    ),
    "files of unknown experiment": Bad(
        "acquisition", _files(experiment="no-such-exp"), ("no-such-exp",)
    ),
    "files of unknown plate": Bad("acquisition", _files(plate="no-such-plate"), ("no-such-plate",)),
    "files of unknown acquisition": Bad(
        "acquisition", _files(acquisition="no-such-acq"), ("no-such-acq",)
    ),
    "files from a missing directory": Bad(
        "acquisition", _files(source=lambda t: t / "no-such-dir"), ("no-such-dir",)
    ),
    "files from a directory without matching files": Bad(
        "acquisition", _files(source=_empty_of_matches), ("nothing-matches", "cellvoyager")
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_exits_2_with_one_line_and_creates_nothing(
    case: str, tmaps, tmp_path: Path
) -> None:
    bad = BAD_INPUT[case]
    setup = build(tmaps, tmp_path, bad.level)
    before = snapshot(tmaps)
    result = invoke(*bad.args(setup, tmp_path))
    line = assert_one_error_line(result)
    assert line.startswith("tm_add: error: ")
    for name in bad.names:
        assert name in line
    assert snapshot(tmaps) == before


# Invalid choices are rejected by click before any library code runs.
@pytest.fixture
def sqlite_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """TMAPS_* for a SQLite database under a TMAPS_HOME that does not exist yet."""
    home = tmp_path / "home"
    monkeypatch.setenv("TMAPS_HOME", str(home))
    monkeypatch.setenv("TMAPS_DB_URL", f"sqlite:///{home / 'tissuemaps.db'}")
    monkeypatch.setenv("TMAPS_CONFIG_FILE", str(tmp_path / "none.cfg"))
    monkeypatch.delenv("TMAPS_STORAGE_HOME", raising=False)
    yield home
    tm.utils.dispose_engines()


def _a_file(tmp_path: Path) -> str:
    path = tmp_path / "plain-file.txt"
    path.write_text("not a directory")
    return str(path)


# Usage errors that click finds while parsing, before any library code runs (so the
# database kind does not matter): case -> (arguments, text the error line must contain)
USAGE_ERRORS = {
    "invalid plate format": (
        lambda t: ["experiment", "-e", "exp1", "-u", "alice", "--plate-format", "42"],
        "42",
    ),
    "invalid microscope type": (
        lambda t: ["experiment", "-e", "exp1", "-u", "alice", "--microscope-type", "zeiss"],
        "zeiss",
    ),
    "invalid acquisition mode": (
        lambda t: ["experiment", "-e", "exp1", "-u", "alice", "--plate-acquisition-mode", "x7"],
        "x7",
    ),
    "missing option": (lambda t: ["experiment", "-e", "exp1"], "--user"),
    "unknown option": (lambda t: ["plate", "-e", "1", "-p", "p", "--colour", "red"], "--colour"),
    "unknown command": (lambda t: ["wells", "-e", "1"], "wells"),
    "source is a file": (
        lambda t: ["files", "-e", "1", "-p", "p", "-a", "a", "-s", _a_file(t)],
        "plain-file.txt",
    ),
}


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_usage_error_exits_2_with_one_line_and_creates_nothing(
    case: str, sqlite_env: Path, tmp_path: Path
) -> None:
    args, named = USAGE_ERRORS[case]
    result = invoke(*args(tmp_path))
    line = assert_one_error_line(result)
    assert line.startswith("tm_add: error: ")
    assert named in line
    assert not sqlite_env.exists()  # no database, no experiment directory


@pytest.mark.parametrize(
    ("kwargs", "names"),
    [
        ({"plate_format": 42}, "42"),
        ({"microscope_type": "zeiss"}, "zeiss"),
        ({"plate_acquisition_mode": "fancy"}, "fancy"),
    ],
)
def test_registry_rejects_invalid_experiment_settings(
    kwargs: dict, names: str, sqlite_env: Path
) -> None:
    with pytest.raises(InvalidInputError, match=names):
        registry.add_experiment("exp1", "alice", **kwargs)
    assert not sqlite_env.exists()  # validated before the database was opened


# ---------------------------------------------------------------- the database itself


@pytest.fixture
def no_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = tmp_path / "home"
    monkeypatch.setenv("TMAPS_HOME", str(home))
    monkeypatch.setenv("TMAPS_CONFIG_FILE", str(tmp_path / "none.cfg"))
    monkeypatch.delenv("TMAPS_STORAGE_HOME", raising=False)
    # nothing will listen: no waiting for it (tests/test_connections.py tests the retries)
    monkeypatch.setenv("TMAPS_DB_CONNECT_RETRIES", "0")
    yield home
    tm.utils.dispose_engines()


UNUSABLE_URLS = {
    "refused port": ("postgresql://postgres@127.0.0.1:1/x", "postgresql://postgres@127.0.0.1:1/x"),
    "refused port, driver named": (
        "postgresql+psycopg2://postgres@127.0.0.1:1/x",
        "127.0.0.1:1",
    ),
    "not a URL": ("not-a-url", "not-a-url"),
    "unsupported database": ("mysql://user@127.0.0.1/db", "mysql://user@127.0.0.1/db"),
}


@pytest.mark.parametrize("case", list(UNUSABLE_URLS))
@pytest.mark.parametrize(
    "args",
    [
        ["user", "-n", "alice", "-p", "pw", "-e", "a@x.org"],
        ["experiment", "-e", "exp1", "-u", "alice"],
        ["plate", "-e", "exp1", "-p", "plate01"],
    ],
    ids=["user", "experiment", "plate"],
)
def test_unusable_database_url_exits_2(
    case: str, args: list[str], no_database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, named = UNUSABLE_URLS[case]
    monkeypatch.setenv("TMAPS_DB_URL", url)
    line = assert_one_error_line(invoke(*args))
    assert line.startswith("tm_add: error: ")
    assert named in line
    assert "TMAPS_DB_URL" in line
    assert not no_database.exists()  # no home, no experiment directory


def test_sqlite_database_that_cannot_be_created_exits_2(
    no_database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMAPS_DB_URL", "sqlite:////proc/no-such-dir/tissuemaps.db")
    line = assert_one_error_line(invoke("user", "-n", "a", "-p", "pw", "-e", "a@x.org"))
    assert "/proc/no-such-dir" in line
    assert "TMAPS_DB_URL" in line


def test_unreachable_database_hides_password(
    no_database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMAPS_DB_URL", "postgresql://postgres:s3cret@127.0.0.1:1/x")
    line = assert_one_error_line(invoke("user", "-n", "a", "-p", "pw", "-e", "a@x.org"))
    assert "127.0.0.1:1" in line
    assert "s3cret" not in line


def test_unreachable_database_in_a_real_process(no_database: Path, tmp_path: Path) -> None:
    url = "postgresql://postgres@127.0.0.1:1/x"
    env = {
        **os.environ,
        "TMAPS_HOME": str(no_database),
        "TMAPS_DB_URL": url,
        "TMAPS_CONFIG_FILE": str(tmp_path / "none.cfg"),
    }
    proc = subprocess.run(
        [str(TM_ADD), "experiment", "-e", "exp1", "-u", "alice"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = assert_one_error_line(proc)
    assert line.startswith("tm_add: error: ")
    assert url in line
    assert not no_database.exists()


@pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)  # a file-system matter
def test_existing_experiment_directory_is_never_deleted(tmaps, tmp_path: Path) -> None:
    build(tmaps, tmp_path, "user")
    stale = tmaps.storage_home / "experiment_1"  # the id the new experiment will get
    stale.mkdir(parents=True)
    (stale / "data.txt").write_text("precious")
    result = invoke("experiment", "-e", "exp1", "-u", "alice")
    assert (stale / "data.txt").read_text() == "precious"
    # its id is skipped (a leftover must never block later creations, 13.3)
    assert_ok(result)
    assert result.stdout.strip() == "2"
    assert [ref[:2] for ref in snapshot(tmaps)["references"]] == [(2, "exp1")]


# ---------------------------------------------------------------- failures half-way


def _failing_on_call(real: Callable, n: int, make_partial: bool = False) -> Callable:
    calls = {"n": 0}

    def fake(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            if make_partial:  # shutil.copyfile(src, dst): half a file, then the disk is full
                Path(args[1]).write_bytes(b"half")
            raise OSError(errno.ENOSPC, "No space left on device (simulated)")
        return real(*args, **kwargs)

    return fake


@pytest.mark.parametrize(
    "fail_at",
    [3, 5],
    ids=["third image", "first metadata file, after the image rows were inserted"],
)
def test_failed_copy_half_way_leaves_no_rows_and_no_files(
    fail_at: int, tmaps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = build(tmaps, tmp_path, "acquisition")
    assert len(setup.images) == 4  # so fail_at=5 is the first metadata file
    before = snapshot(tmaps)
    real_place = registry._place
    monkeypatch.setattr(registry, "_place", _failing_on_call(real_place, fail_at))
    args = ("files", "-e", "exp1", "-p", "plate01", "-a", "acq01", "-s", str(setup.source))
    result = invoke(*args, "--copy")
    line = assert_one_error_line(result, code=1)
    assert "No space left on device" in line
    assert snapshot(tmaps) == before
    assert count_rows(setup.experiment_id, tm.MicroscopeImageFile) == 0
    assert count_rows(setup.experiment_id, tm.MicroscopeMetadataFile) == 0
    images_dir, metadata_dir = acquisition_dirs(setup.experiment_id, "plate01", "acq01")
    assert files_under(images_dir) == []
    assert files_under(metadata_dir) == []

    # and a later run with a working disk registers everything
    monkeypatch.setattr(registry, "_place", real_place)
    result = invoke(*args, "--copy")
    assert_ok(result)
    assert count_rows(setup.experiment_id, tm.MicroscopeImageFile) == 4
    assert sorted(os.listdir(images_dir)) == setup.images


def test_failed_insert_leaves_no_rows_and_no_link(
    tmaps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = build(tmaps, tmp_path, "acquisition")
    before = snapshot(tmaps)
    real_insert = registry.sa.insert

    def insert(table):  # the metadata rows fail, after the image rows went in
        if table is tm.MicroscopeMetadataFile.__table__:
            raise OSError(errno.EIO, "Input/output error (simulated)")
        return real_insert(table)

    monkeypatch.setattr(registry.sa, "insert", insert)
    args = ("files", "-e", "exp1", "-p", "plate01", "-a", "acq01", "-s", str(setup.source))
    line = assert_one_error_line(invoke(*args), code=1)
    assert "Input/output error" in line
    assert count_rows(setup.experiment_id, tm.MicroscopeImageFile) == 0
    assert snapshot(tmaps) == before  # the source link is gone too

    monkeypatch.setattr(registry.sa, "insert", real_insert)
    assert_ok(invoke(*args))
    assert count_rows(setup.experiment_id, tm.MicroscopeImageFile) == 4


@pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)  # a file-system matter
def test_failed_copy_leaves_no_partial_file(
    tmaps, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = build(tmaps, tmp_path, "acquisition")
    before = snapshot(tmaps)

    monkeypatch.setattr(shutil, "copyfile", _failing_on_call(shutil.copyfile, 3, True))
    result = invoke(
        "files", "-e", "exp1", "-p", "plate01", "-a", "acq01", "-s", str(setup.source), "--copy"
    )
    line = assert_one_error_line(result, code=1)
    assert "No space left on device" in line
    assert count_rows(setup.experiment_id, tm.MicroscopeImageFile) == 0
    images_dir, _ = acquisition_dirs(setup.experiment_id, "plate01", "acq01")
    assert files_under(images_dir) == []
    assert snapshot(tmaps) == before
