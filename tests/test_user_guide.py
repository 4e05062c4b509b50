"""The original user guide, followed line by line against our programs.

Every command line of the guide's sections "RESTful programming" and "Command
line" is listed below exactly as the guide prints it (GUIDE_CLIENT for
``tm_client``, GUIDE_STEPS for the step programs and ``tm_workflow``). Only
the words that name things of the reader's own installation are replaced
when a line runs (see :func:`words`): the port ``8002``, the placeholder
``...`` of a directory, ``/tmp/workflow.yml``, and the well ``D03`` and
channel ``wavelength-1`` of the guide's plate, which a simulated CellVoyager
plate names ``A01`` and ``A01_C01``. User ``demo``, password ``XXX``,
experiment ``test`` (id 1), ``plate01``, ``acquisition01`` and ``Cells`` are
kept.

The fast test parses each line with the programs' own parsers; the slow one
runs the whole guide on a live server and checks what each line did.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import click
import cv2
import numpy as np
import pandas as pd
import pytest
import requests
import sqlalchemy as sa
import yaml
from conftest import Env
from helpers import BIN, live_server, microscope_file_rows, use_fast_password_hashing

import tmlib.models as tm
from tmlib import registry

#: "Command line interface" of the Python client, in the guide's order
GUIDE_CLIENT = (
    "tm_client --help",
    "tm_client -vv -H localhost -P 8002 -u demo experiment create -n test",
    "tm_client -vv -H localhost -P 8002 -u demo plate -e test create --name plate01",
    "tm_client -vv -H localhost -P 8002 -u demo acquisition -e test create -p plate01 "
    "--name acquisition01",
    "tm_client -vv -H localhost -P 8002 -u demo microscope-file -e test upload -p plate01 "
    "-a acquisition01 --directory ...",
    "tm_client -vv -H localhost -P 8002 -u demo microscope-file -e test ls -p plate01 "
    "-a acquisition01",
    "tm_client -vv -H localhost -P 8002 -u demo workflow -e test download --file /tmp/workflow.yml",
    "tm_client -vv -H localhost -P 8002 -u demo workflow -e test upload --file /tmp/workflow.yml",
    "tm_client -vv -H localhost -P 8002 -u demo jtproject -e test upload --directory ...",
    "tm_client -vv -H localhost -P 8002 -u demo workflow -e test submit",
    "tm_client -vv -H localhost -P 8002 -u demo workflow -e test status",
    "watch -n 10 tm_client -H localhost -P 8002 -u demo workflow -e test status",
    "tm_client -vv -H localhost -P 8002 -u demo -p XXX channel-image -e test download "
    "-c wavelength-1 -p plate01 -w D03 -x 0 -y 0 -i 0 --correct",
    "tm_client -vv -H localhost -P 8002 -u demo -p XXX feature-values -e test download -o Cells",
)

#: "Command line interface (CLI)" of the library: steps and workflows
GUIDE_STEPS = (
    "jterator -vv 1 init --batch_size 5",
    "jterator -vv 1 init -b 5",
    "jterator -vv 1 run -j 1",
    "jterator -vv 1 submit",
    "jterator -vv 1 info --phase run --job 1",
    "jterator -vv 1 log --phase run --job 1",
    "jterator -h",
    "tm_workflow -vv 1 submit",
    "tm_workflow -vv 1 resubmit --stage image_preprocessing",
)


def words(line: str, **replace: str) -> list[str]:
    """The words of a guide line, with the installation's own names replaced.

    ``watch -n 10`` is left out: the command it repeats runs once.
    """
    argv = shlex.split(line)
    if argv[:3] == ["watch", "-n", "10"]:
        argv = argv[3:]
    return [replace.get(word, word) for word in argv]


def _program(name: str) -> click.Group:
    from importlib import import_module

    modules = {
        "tm_client": "tmclient.cli",
        "tm_workflow": "tmlib.cli.workflow",
        "jterator": "tmlib.workflow.steps.jterator",
    }
    return import_module(modules[name]).main


def parse(argv: list[str]) -> tuple[list[str], dict]:
    """Parse a command line with the program's own parsers, without running it.

    Returns the names of the commands on the way and the last one's values.
    """
    group = _program(argv[0])
    ctx = group.make_context(argv[0], argv[1:])
    path, command = [], group
    while isinstance(command, click.Group):
        rest = [*ctx._protected_args, *ctx.args]
        name, command, rest = command.resolve_command(ctx, rest)
        path.append(name)
        ctx = command.make_context(name, rest, parent=ctx)
    return path, ctx.params


# --- fast: every line parses, with the meaning the guide gives it -------------------------------


def test_every_guide_line_parses_as_the_guide_means_it(tmp_path: Path):
    here = {"8002": "5002", "...": str(tmp_path), "/tmp/workflow.yml": str(tmp_path / "w.yml")}
    (tmp_path / "w.yml").write_text("{}\n")  # 'workflow upload --file' wants it to exist
    parsed = {}
    for line in GUIDE_CLIENT + GUIDE_STEPS:
        argv = words(line, **here)
        if argv[-1] in ("--help", "-h"):
            with pytest.raises(click.exceptions.Exit) as done:
                _program(argv[0]).make_context(argv[0], argv[1:])
            assert done.value.exit_code == 0
            continue
        parsed[line] = parse(argv)
    upload = parsed[GUIDE_CLIENT[4]]
    assert upload == (
        ["microscope-file", "upload"],
        {**upload[1], "plate_name": "plate01", "acquisition_name": "acquisition01",
         "directory": tmp_path, "path": None},
    )  # fmt: skip
    for line in GUIDE_STEPS[:2]:
        assert parsed[line][0] == ["init"] and parsed[line][1]["batch_size"] == 5, line
    assert parsed[GUIDE_CLIENT[2]] == (["plate", "create"], {"name": "plate01", "description": ""})
    image = parsed[GUIDE_CLIENT[12]][1]
    assert (image["channel_name"], image["well_name"], image["cycle_index"], image["correct"]) == (
        "wavelength-1", "D03", 0, True,
    )  # fmt: skip
    assert parsed[GUIDE_STEPS[4]] == (["info"], {"phase": "run", "job_id": 1})
    assert parsed[GUIDE_STEPS[8]][1]["stage"] == "image_preprocessing"


def test_underscore_spellings_are_hidden_aliases():
    from click.testing import CliRunner

    jterator = _program("jterator")
    init = jterator.commands["init"]
    shown = init.get_help(click.Context(init, info_name="init"))
    assert "--batch-size" in shown and "--batch_size" not in shown
    # a mistyped value names our spelling, whichever was typed
    result = CliRunner().invoke(jterator, ["1", "init", "--batch_size", "x"])
    assert result.exit_code == 2 and "'--batch-size' / '-b'" in result.output
    # tm_client: every dashed option, e.g. --plate-format and --new-name
    assert (
        parse(["tm_client", "experiment", "create", "-n", "e", "--plate_format", "96"])[1][
            "plate_format"
        ]
        == "96"
    )
    assert parse(["tm_client", "plate", "-e", "e", "rename", "-n", "a", "--new_name", "b"])[1] == {
        "name": "a",
        "new_name": "b",
    }
    # the guide's --verbosity, beside -v/--verbose
    assert parse(["tm_client", "--verbosity", "experiment", "ls"])[0] == ["experiment", "ls"]


# --- slow: the whole guide on a live server ----------------------------------------------------


@pytest.fixture
def guide_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    """A fresh SQLite installation with user demo (password XXX in ~/.tm_pass)."""
    from tmlib.models.session import dispose_engines

    home = tmp_path / "tmaps"
    db_url = f"sqlite:///{home / 'tissuemaps.db'}"
    monkeypatch.setenv("TMAPS_HOME", str(home))
    monkeypatch.setenv("TMAPS_DB_URL", db_url)
    monkeypatch.setenv("TMAPS_CONFIG_FILE", str(tmp_path / "no-such.cfg"))
    monkeypatch.setenv("TMAPS_CORES", "2")
    monkeypatch.delenv("TMAPS_STORAGE_HOME", raising=False)
    use_fast_password_hashing(monkeypatch)
    registry.add_user("demo", "XXX", "demo@example.org")
    yield Env(home=home, db_url=db_url, dialect="sqlite")
    dispose_engines()


class Reader:
    """Runs guide lines as the reader would, in their own home and temporary directory."""

    def __init__(self, root: Path, port: int) -> None:
        self.home = root / "home"
        self.tmpdir = root / "tmp"
        for path in (self.home, self.tmpdir):
            path.mkdir()
        (self.home / ".tm_pass").write_text("demo: XXX\n")
        (self.home / ".tm_pass").chmod(0o600)
        self.port = str(port)

    def run(self, line: str, **replace: str) -> subprocess.CompletedProcess:
        argv = words(line, **{"8002": self.port, **replace})
        environ = {k: v for k, v in os.environ.items() if not k.startswith("TM_")}
        environ.update(HOME=str(self.home), TMPDIR=str(self.tmpdir))
        result = subprocess.run(
            [str(BIN / argv[0]), *argv[1:]],
            env=environ,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, (line, result.stdout, result.stderr[-3000:])
        return result


def _simulate(directory: Path) -> list[Path]:
    subprocess.run(
        [str(BIN / "tm_simulate"), "plate", str(directory), "--wells", "2", "--sites", "4",
         "--channels", "2", "--size", "256x256", "--seed", "7", "-q"],
        check=True, timeout=300,
    )  # fmt: skip
    return sorted(p for p in directory.iterdir() if p.is_file())


def _write_project(directory: Path, local: list[Path]) -> Path:
    """A pipeline.yaml and its handles as a reader writes them: nuclei in channel 1, cells
    in channel 2 (the simulated CellVoyager's channels A01_C01, A01_C02), no correction."""
    from tmlib.workflow.steps.jterator import DefaultInputs, create_project

    stain = next(p for p in local if p.name.endswith("C02.tif"))
    median = float(np.median(cv2.imread(str(stain), cv2.IMREAD_UNCHANGED)))
    create_project(directory, DefaultInputs("A01_C01", "A01_C02", False, round(1.5 * median)))
    return directory


def _sites_with_cells(experiment_id: int) -> set[int]:
    with tm.utils.ExperimentSession(experiment_id) as session:
        return set(
            session.scalars(
                sa.select(tm.Mapobject.partition_key)
                .join(tm.MapobjectType)
                .where(tm.MapobjectType.name == "Cells")
                .distinct()
            )
        )


def _site_ids(experiment_id: int) -> set[int]:
    with tm.utils.ExperimentSession(experiment_id) as session:
        return set(session.scalars(sa.select(tm.Site.id)))


def _wait_until_done(client, deadline_s: float = 900) -> dict:
    deadline = time.monotonic() + deadline_s
    while True:
        tree = client.get_workflow_status(1)
        if tree and (tree["state"] == "TERMINATED" or time.monotonic() > deadline):
            return tree
        time.sleep(1)


@pytest.mark.slow
def test_the_user_guide_line_by_line(guide_env: Env, tmp_path: Path):
    from tmclient import TmClient

    plate_dir = tmp_path / "plate01"
    local = _simulate(plate_dir)
    with live_server(workers=1, threads=8) as server:
        reader = Reader(tmp_path, int(server.url.rsplit(":", 1)[1]))
        c = iter(GUIDE_CLIENT)

        out = reader.run(next(c)).stdout  # tm_client --help
        assert "microscope-file" in out and "feature-values" in out

        # create experiment, plate and acquisition: the first experiment is number 1
        assert reader.run(next(c)).stdout.strip() == "1"
        client = TmClient(
            host="localhost", port=reader.port, username="demo", password="XXX",
            experiment_name="test",
        )  # fmt: skip
        reader.run(next(c))
        assert [p["name"] for p in client.get_plates()] == ["plate01"]
        reader.run(next(c))
        assert [a["name"] for a in client.get_acquisitions("plate01")] == ["acquisition01"]

        # upload with --directory, then check that every file is there
        out = reader.run(next(c), **{"...": str(plate_dir)}).stdout
        assert out.strip() == f"{len(local)} files uploaded"
        assert microscope_file_rows(1) == {p.name: ["COMPLETE"] for p in local}
        listed = reader.run(next(c)).stdout
        for p in local:
            assert any(line.split()[-1] == p.name and "COMPLETE" in line
                       for line in listed.splitlines()), p.name  # fmt: skip

        # the workflow description: download, modify, upload
        description = tmp_path / "workflow.yml"
        reader.run(next(c), **{"/tmp/workflow.yml": str(description)})
        workflow = yaml.safe_load(description.read_text())
        jterator = next(
            step for stage in workflow["stages"] for step in stage["steps"]
            if step["name"] == "jterator"
        )  # fmt: skip
        next(a for a in jterator["batch_args"] if a["name"] == "batch_size")["value"] = 3
        description.write_text(yaml.safe_dump(workflow, sort_keys=False))
        reader.run(next(c), **{"/tmp/workflow.yml": str(description)})
        assert client.download_workflow_description() == workflow

        # the jterator project: the reader's own directory, for the plate's two channels
        project = _write_project(tmp_path / "jtproject", local)
        reader.run(next(c), **{"...": str(project)})
        stored = client.download_jterator_project()
        assert stored["pipeline"] == yaml.safe_load((project / "pipeline.yaml").read_text())
        assert set(stored["handles"]) == {p.name.split(".")[0] for p in project.glob("handles/*")}

        # submit, status, and the status again as 'watch' repeats it
        assert reader.run(next(c)).stdout.strip().isdigit()
        status_line, watch_line = next(c), next(c)
        assert "workflow" in reader.run(status_line).stdout
        tree = _wait_until_done(client)
        assert (tree["state"], tree["exitcode"]) == ("TERMINATED", 0), tree
        rows = reader.run(watch_line).stdout.splitlines()
        assert rows[0].split()[0] == "ID" and "TERMINATED" in rows[1], rows
        # the uploaded batch size was used: 8 sites in jobs of 3
        assert len(client.get_workflow_jobs("jterator", phase="run")) == 3

        # downloads land in the temporary directory; the path is printed
        well = client.get_wells()[0]["name"]
        channel = client.get_channels()[0]["name"]
        png = Path(reader.run(next(c), D03=well, **{"wavelength-1": channel}).stdout.strip())
        assert png.parent == reader.tmpdir and png.is_file()
        image = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        assert image.shape == (256, 256) and image.dtype == np.uint16
        paths = [Path(p) for p in reader.run(next(c)).stdout.split()]
        assert {p.parent for p in paths} == {reader.tmpdir} and len(paths) == 4  # 2 wells
        values = pd.concat(pd.read_csv(p) for p in paths if "feature-values" in p.name)
        n_cells = len(client.download_feature_values("Cells"))
        assert len(values) == n_cells > 0
        assert next(c, None) is None

        # the Python client: the guide's calls with its keywords
        pixels = client.download_channel_image(
            channel_name=channel, plate_name="plate01", well_name=well, well_pos_x=0,
            well_pos_y=0, cycle_index=0, tpoint=0, zplane=0, correct=True,
        )  # fmt: skip
        assert np.array_equal(pixels, image)
        data = client.download_object_feature_values(mapobject_type="Cells")
        assert len(data) == n_cells and "mapobject_id" in data.columns
        assert sum(1 for _ in data.iterrows()) == n_cells

        _rest_examples(server.url, well, channel, n_cells)

    # the library's programs on experiment 1
    s = iter(GUIDE_STEPS)
    init = reader.run(next(s))  # --batch_size 5
    assert "jterator: 2 run job(s)" in init.stdout  # 8 sites, 5 per job
    assert _sites_with_cells(1) == set()  # init removes the earlier output
    assert "jterator: 2 run job(s)" in reader.run(next(s)).stdout  # -b 5
    assert "JOB COMPLETED" in reader.run(next(s)).stdout  # run -j 1
    first = _sites_with_cells(1)
    assert len(first) == 5
    assert "all jobs succeeded" in reader.run(next(s)).stdout  # submit
    assert _sites_with_cells(1) == _site_ids(1)
    info = reader.run(next(s)).stdout
    batch = yaml.safe_load(info.split("===============", 1)[1])
    assert set(batch["site_ids"]) == first
    log = reader.run(next(s)).stdout
    assert log.startswith("OUTPUT") and "JOB COMPLETED" in log
    manual = reader.run(next(s)).stdout
    assert "Usage: jterator" in manual and "init" in manual and "submit" in manual
    assert "all jobs succeeded" in reader.run(next(s)).stdout  # tm_workflow submit
    assert "all jobs succeeded" in reader.run(next(s)).stdout  # resubmit from a stage
    tree = json.loads(reader.run("tm_workflow 1 status --json").stdout)
    stages = [stage["name"] for stage in tree["subtasks"]]
    assert stages[0] == "image_preprocessing" and "image_conversion" not in stages
    assert tree["state"] == "TERMINATED" and tree["exitcode"] == 0
    assert next(s, None) is None


def _rest_examples(url: str, well: str, channel: str, n_cells: int) -> None:
    """The guide's "Python example" of REST calls, in Python 3 (ids are ours)."""
    assert requests.get(url + "/api/experiments", timeout=30).status_code == 401
    response = requests.post(
        url + "/auth",
        data=json.dumps({"username": "demo", "password": "XXX"}),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    token = response.json()["access_token"]

    def http_get(api_uri: str, **params: object) -> requests.Response:
        # as the guide joins them: url + '/' + '/api/...'
        response = requests.get(
            url + "/" + api_uri, params=params, headers={"Authorization": "JWT " + token},
            timeout=60,
        )  # fmt: skip
        assert response.status_code == 200, (api_uri, response.text[:300])
        return response

    experiments = http_get("/api/experiments").json()["data"]
    assert [(e["name"], e["user"]) for e in experiments] == [("test", "demo")]
    assert {"id", "name", "description", "user"} <= set(experiments[0])
    base = f"/api/experiments/{experiments[0]['id']}"
    channel_id = next(c["id"] for c in http_get(base + "/channels").json()["data"]
                      if c["name"] == channel)  # fmt: skip
    image = http_get(
        f"{base}/channels/{channel_id}/image-file", plate_name="plate01", cycle_index=0,
        well_name=well, well_pos_x=0, well_pos_y=0, tpoint=0, zplane=0,
    )  # fmt: skip
    assert image.headers["Content-Type"] == "image/png"
    assert "attachment" in image.headers["Content-Disposition"]
    decoded = cv2.imdecode(np.frombuffer(image.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (256, 256)
    cells = next(t["id"] for t in http_get(base + "/mapobject_types").json()["data"]
                 if t["name"] == "Cells")  # fmt: skip
    values = http_get(f"{base}/mapobject_types/{cells}/feature-values")
    assert 'filename="test_Cells_feature-values.csv"' in values.headers["Content-Disposition"]
    import io

    assert len(pd.read_csv(io.BytesIO(values.content))) == n_cells
