"""tmclient and ``tm_client`` against a live HTTP server (werkzeug, in a thread of the test).

The central test takes a simulated CellVoyager plate from upload through the
workflow to downloaded images, segmentations and feature values with the
command line only; the others cover the resumable upload, errors and shares.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from conftest import TEST_SECRET, make_server
from helpers import BIN, one_error_line

import tmlib.models as tm
from tmclient import TmClient, TmClientError
from tmclient.cli import format_table

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Live:
    """A server listening on 127.0.0.1:`port`, users alice/bob/carol (password ``secret``)."""

    port: int
    home: Path

    def client(self, user: str = "alice", experiment: str | None = None) -> TmClient:
        return TmClient("127.0.0.1", self.port, user, "secret", experiment_name=experiment)

    def env(self, user: str = "alice", password: str | None = "secret") -> dict[str, str]:
        environ = {
            **os.environ,
            "TM_HOST": "127.0.0.1",
            "TM_PORT": str(self.port),
            "TM_USER": user,
            "HOME": str(self.home),
        }
        environ.pop("TM_PASSWORD", None)
        if password is not None:
            environ["TM_PASSWORD"] = password
        return environ

    def cli(
        self, *args: object, user: str = "alice", password: str | None = "secret", timeout=120
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "tm_client"), *map(str, args)],
            env=self.env(user, password),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, *args: object, **kwargs) -> str:
        result = self.cli(*args, **kwargs)
        assert result.returncode == 0, (args, result.returncode, result.stdout, result.stderr)
        return result.stdout


@pytest.fixture
def live(tmaps, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from werkzeug.serving import make_server as make_http_server

    from tmserver.app import create_app
    from tmserver.config import ServerConfig

    monkeypatch.setenv("TMAPS_CORES", "2")
    make_server(monkeypatch)  # creates the users
    app = create_app(ServerConfig(secret_key=TEST_SECRET))
    http = make_http_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    home = tmp_path / "home"
    home.mkdir()
    try:
        yield Live(port=http.server_port, home=home)
    finally:
        http.shutdown()
        thread.join(10)


def simulate(directory: Path, wells: int = 1, sites: int = 2, channels: int = 1) -> list[Path]:
    result = subprocess.run(
        [str(BIN / "tm_simulate"), "plate", str(directory), "--wells", str(wells), "--sites",
         str(sites), "--channels", str(channels), "--size", "256x256", "--seed", "5", "-q"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return sorted(p for p in directory.iterdir() if p.is_file())


def table(text: str) -> list[dict[str, str]]:
    """Rows of a printed table, split at the header's column starts."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]
    # headers with spaces ("Done (%)") are single columns: merge starts after one space
    starts = [s for s in starts if s == 0 or header[s - 2 : s] == "  "]
    bounds = list(zip(starts, starts[1:] + [None], strict=True))
    names = [header[a:b].strip() for a, b in bounds]
    # numbers are right-aligned, so cells may start before their header: cut at gaps
    rows = []
    for line in lines[1:]:
        cells = [line[a:b] for a, b in bounds]
        rows.append(dict(zip(names, (c.strip() for c in cells), strict=True)))
    return rows


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def stored_files(experiment_id: int) -> dict[str, tuple[str, str]]:
    """name -> (status, sha256 of the stored bytes or '') of every microscope file."""
    out = {}
    with tm.utils.ExperimentSession(experiment_id) as session:
        for model in (tm.MicroscopeImageFile, tm.MicroscopeMetadataFile):
            for row in session.scalars(sa.select(model)):
                exists = Path(row.location).is_file()
                out[row.name] = (row.status, sha(row.location) if exists else "")
    return out


def count_objects(experiment_id: int, type_name: str) -> int:
    with tm.utils.ExperimentSession(experiment_id) as session:
        return session.scalar(
            sa.select(sa.func.count())
            .select_from(tm.Mapobject)
            .join(tm.MapobjectType, tm.MapobjectType.id == tm.Mapobject.mapobject_type_id)
            .where(tm.MapobjectType.name == type_name)
        )


def site_pixels(experiment_id: int, channel: str, well: str, y: int, x: int) -> np.ndarray:
    with tm.utils.ExperimentSession(experiment_id) as session:
        image = session.scalars(
            sa.select(tm.ChannelImageFile)
            .join(tm.Channel)
            .join(tm.Site, tm.Site.id == tm.ChannelImageFile.site_id)
            .join(tm.Well)
            .where(tm.Channel.name == channel, tm.Well.name == well, tm.Site.y == y, tm.Site.x == x)
        ).one()
        return image.get()


# --- unit ------------------------------------------------------------------------


def test_format_table_aligns_columns():
    text = format_table(["ID", "Name"], [[1, "plate01"], [12, "p"]])
    assert text.splitlines() == ["ID  Name", " 1  plate01", "12  p"]
    assert format_table(["A"], []) == "A"


def _failed_logs(client: TmClient, rows: list[dict[str, str]]) -> str:
    """The logs of the failed jobs (for the message of a failed assertion)."""
    text = ""
    steps = {r["Name"].strip() for r in rows if r["Type"] == "WorkflowStep"}
    for step in steps:
        for job in client.get_workflow_jobs(step):
            if job.get("exitcode") not in (0, None):
                log = client._get(client._e(f"/workflow/jobs/{job['id']}/log"))["data"]
                text += f"\n--- {step} {job['name']}: {log}"
    return text


# --- the whole tree: upload -> submit -> status -> download ------------------------------


@pytest.mark.slow
def test_cli_upload_submit_status_download(live: Live, tmp_path: Path):
    exp_id = int(live.ok("experiment", "create", "-n", "cliexp").strip())
    listed = table(live.ok("experiment", "ls"))
    assert [(r["ID"], r["Name"], r["Owner"]) for r in listed] == [(str(exp_id), "cliexp", "alice")]
    assert live.ok("plate", "-e", "cliexp", "create", "-n", "plate01").strip().isdigit()
    live.ok("acquisition", "-e", "cliexp", "create", "-p", "plate01", "-n", "acq01")
    acqs = table(live.ok("acquisition", "-e", "cliexp", "ls", "-p", "plate01"))
    assert [(a["Name"], a["Plate"]) for a in acqs] == [("acq01", "plate01")]

    plate_dir = tmp_path / "plate"
    # two channels: the default jterator pipeline measures a nuclear and a cell stain
    local = simulate(plate_dir, channels=2)  # 4 images, 2 metadata files (+ ground truth dir)
    out = live.ok(
        "microscope-file", "-e", "cliexp", "upload", "-p", "plate01", "-a", "acq01",
        "--parallel", "2", plate_dir,
    )  # fmt: skip
    assert out.strip() == f"{len(local)} files uploaded"
    stored = stored_files(exp_id)
    assert stored == {p.name: ("COMPLETE", sha(p)) for p in local}
    files = table(live.ok("microscope-file", "-e", "cliexp", "ls", "-p", "plate01", "-a", "acq01"))
    assert sorted((f["Name"], f["Status"]) for f in files) == [(p.name, "COMPLETE") for p in local]
    plates = table(live.ok("plate", "-e", "cliexp", "ls"))
    assert [(p["Name"], p["Status"]) for p in plates] == [("plate01", "COMPLETE")]

    # the description goes round unchanged
    wf = tmp_path / "wf.yaml"
    live.ok("workflow", "-e", "cliexp", "download", "--file", wf)
    before = yaml.safe_load(wf.read_text())
    assert [s["name"] for s in before["stages"]]
    live.ok("workflow", "-e", "cliexp", "upload", "--file", wf)
    assert live.client(experiment="cliexp").download_workflow_description() == before

    submission = live.ok("workflow", "-e", "cliexp", "submit").strip()
    assert submission.isdigit()
    deadline = time.monotonic() + 600
    while True:
        status = live.ok("workflow", "-e", "cliexp", "status", "--depth", 3)
        rows = table(status)
        if rows[0]["State"] == "TERMINATED" or time.monotonic() > deadline:
            break
        time.sleep(2)
    top = rows[0]
    assert (top["State"], top["Exitcode"], top["Done (%)"]) == ("TERMINATED", "0", "100.0"), (
        status + _failed_logs(live.client(experiment="cliexp"), rows)
    )
    steps = [r["Name"].strip() for r in rows]
    assert {"metaextract", "imextract", "jterator"} <= set(steps), steps
    assert all(r["Exitcode"] in ("0", "") for r in rows), rows

    # wells, sites, channels
    wells = table(live.ok("well", "-e", "cliexp", "ls"))
    assert [(w["Name"], w["Plate"]) for w in wells] == [("A01", "plate01")]
    sites = table(live.ok("site", "-e", "cliexp", "ls", "-w", "A01"))
    assert len(sites) == 2 and {s["Height"] for s in sites} == {"256"}
    channels = table(live.ok("channel", "-e", "cliexp", "ls"))
    assert len(channels) == 2
    channel = channels[0]["Name"]

    # a channel image, bit for bit what the server extracted
    out_dir = tmp_path / "downloads"
    png = Path(
        live.ok(
            "channel-image", "-e", "cliexp", "download", "-p", "plate01", "-w", "A01",
            "-x", 0, "-y", 0, "-c", channel, "--directory", out_dir,
        ).strip()
    )  # fmt: skip
    expected = site_pixels(exp_id, channel, "A01", 0, 0)
    downloaded = cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
    assert downloaded.dtype == expected.dtype and np.array_equal(downloaded, expected)
    client = live.client(experiment="cliexp")
    pixels = client.download_channel_image(channel, "plate01", "A01", 0, 0, correct=False)
    assert np.array_equal(pixels, expected)

    # objects and features
    types = {t["Name"]: t for t in table(live.ok("object-type", "-e", "cliexp", "ls"))}
    assert {"Nuclei", "Cells"} <= set(types)
    features = table(live.ok("feature", "-e", "cliexp", "ls", "-o", "Cells"))
    assert len(features) == int(types["Cells"]["Features"]) > 0
    paths = live.ok(
        "feature-values", "-e", "cliexp", "download", "-o", "Cells", "--directory", out_dir,
        "--parallel", 2,
    ).split()  # fmt: skip
    assert len(paths) == 2  # one well: values and metadata
    values_file = next(p for p in paths if "feature" in Path(p).name)
    metadata_file = next(p for p in paths if p != values_file)
    values = pd.read_csv(values_file)
    metadata = pd.read_csv(metadata_file)
    n_cells = count_objects(exp_id, "Cells")
    assert n_cells > 0 and len(values) == len(metadata) == n_cells
    assert list(values.columns) == ["mapobject_id"] + [f["Name"] for f in features]

    # the plate as OME-Zarr, written on the server, seen by its owner only
    export = client.export_ome_zarr(objects=["Nuclei"], levels=1)
    deadline = time.monotonic() + 120
    while export["state"] != "TERMINATED" and time.monotonic() < deadline:
        time.sleep(0.5)
        export = client.get_export(export["id"])
    assert not export["failed"] and [Path(p).name for p in export["plates"]] == ["plate01.zarr"]
    assert (Path(export["plates"][0]) / "A" / "01" / "0" / "labels" / "Nuclei").is_dir()
    assert [e["id"] for e in client.get_exports()] == [export["id"]]
    client.delete_export(export["id"])
    assert client.get_exports() == [] and not Path(export["path"]).exists()
    api_values = client.download_feature_values("Cells")
    pd.testing.assert_frame_equal(
        api_values.sort_values("mapobject_id").reset_index(drop=True),
        values.sort_values("mapobject_id").reset_index(drop=True),
    )
    api_metadata = client.download_object_metadata("Cells", plate_name="plate01", well_name="A01")
    assert sorted(api_metadata["mapobject_id"]) == sorted(metadata["mapobject_id"])

    # the segmentation of a site holds that site's objects
    seg = Path(
        live.ok(
            "segmentation", "-e", "cliexp", "download", "-p", "plate01", "-w", "A01",
            "-x", 0, "-y", 0, "-o", "Cells", "--directory", out_dir,
        ).strip()
    )  # fmt: skip
    labels = cv2.imread(str(seg), cv2.IMREAD_UNCHANGED)
    assert labels.shape == expected.shape
    at_site = metadata[(metadata["well_pos_y"] == 0) & (metadata["well_pos_x"] == 0)]
    assert set(np.unique(labels)) - {0} == set(at_site["label"])
    assert np.array_equal(
        client.download_segmentation_image("Cells", "plate01", "A01", 0, 0), labels
    )

    # one object
    object_id = int(at_site["mapobject_id"].iloc[0])
    info = table(live.ok("mapobject", "-e", "cliexp", "info", object_id))
    assert (info[0]["Type"], info[0]["Well"], info[0]["Label"]) == (
        "Cells", "A01", str(at_site["label"].iloc[0]),
    )  # fmt: skip

    # a job log, the jterator project, tools
    jobs = client.get_workflow_jobs("jterator", phase="run")
    assert client.get_workflow_jobs("jterator", phase="run", state="SUCCEEDED") == jobs
    assert client.get_workflow_jobs("jterator", phase="run", state="FAILED") == []
    log = live.ok("workflow", "-e", "cliexp", "log", "-s", "jterator", "-n", jobs[0]["name"])
    assert "--- stdout ---" in log and "--- stderr ---" in log
    project_dir = tmp_path / "jtproject"
    written = live.ok("jtproject", "-e", "cliexp", "download", "--directory", project_dir).split()
    assert str(project_dir / "pipeline.yaml") in written
    live.ok("jtproject", "-e", "cliexp", "upload", "--directory", project_dir)
    assert table(live.ok("tools", "-e", "cliexp", "ls")) == []
    feature_name = features[0]["Name"]
    tool_submission = client.request_tool(
        "Heatmap", {"chosen_object_type": "Cells", "selected_feature": feature_name}
    )
    deadline = time.monotonic() + 120
    while True:
        jobs = table(live.ok("tools", "-e", "cliexp", "status", "--tool", "Heatmap"))
        if jobs[0]["State"] == "TERMINATED" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert [(j["Submission"], j["State"], j["Exitcode"]) for j in jobs] == [
        (tool_submission, "TERMINATED", "0")
    ]
    results = table(live.ok("tools", "-e", "cliexp", "ls"))
    assert [(r["Tool"], r["Submission"]) for r in results] == [("Heatmap", tool_submission)]
    log = live.ok("tools", "-e", "cliexp", "log", "--name", "Heatmap", "--submission",
                  tool_submission)  # fmt: skip
    assert "--- stdout ---" in log

    # user data: an object type of our own, its segmentation and feature values
    e = ("-e", "cliexp")
    site_opts = ("-p", "plate01", "-w", "A01", "-x", 0, "-y", 0)
    live.ok("object-type", *e, "create", "-n", "Manual")
    manual = np.zeros_like(labels, dtype=np.int32)
    manual[10:30, 10:40], manual[100:150, 60:90] = 1, 2
    np.save(tmp_path / "manual.npy", manual)
    live.ok("segmentation", *e, "upload", *site_opts, "-o", "Manual",
            "--filename", tmp_path / "manual.npy")  # fmt: skip
    assert np.array_equal(
        client.download_segmentation_image("Manual", "plate01", "A01", 0, 0), manual
    )
    pd.DataFrame({"label": [1, 2], "size": [600.0, 1500.0], "score": [0.5, float("nan")]}).to_csv(
        tmp_path / "manual.csv", index=False
    )
    live.ok("feature-values", *e, "upload", "-o", "Manual", *site_opts,
            "--filename", tmp_path / "manual.csv", "--index-col", "label")  # fmt: skip
    got = client.download_feature_values("Manual").merge(
        client.download_object_metadata("Manual")[["mapobject_id", "label"]]
    )
    got = got.sort_values("label")
    assert list(got["label"]) == [1, 2] and list(got["size"]) == [600.0, 1500.0]
    assert got["score"].iloc[0] == 0.5 and np.isnan(got["score"].iloc[1])
    live.ok("feature", *e, "rename", "-o", "Manual", "-n", "size", "--new-name", "area")
    live.ok("feature", *e, "rm", "-o", "Manual", "-n", "score")
    assert [f["Name"] for f in table(live.ok("feature", *e, "ls", "-o", "Manual"))] == ["area"]
    live.ok("object-type", *e, "rename", "-n", "Manual", "--new-name", "Hand")
    live.ok("object-type", *e, "rm", "-n", "Hand")
    assert "Hand" not in {t["Name"] for t in table(live.ok("object-type", *e, "ls"))}

    # renames, a resubmission from a stage, kill
    live.ok("channel", *e, "rename", "-n", channel, "--new-name", "dapi")
    assert "dapi" in {c["Name"] for c in table(live.ok("channel", *e, "ls"))}
    live.ok("acquisition", *e, "rename", "-p", "plate01", "-n", "acq01", "--new-name", "first")
    assert [a["Name"] for a in table(live.ok("acquisition", *e, "ls"))] == ["first"]
    assert live.ok("workflow", *e, "resubmit", "-s", "image_analysis").strip().isdigit()
    live.ok("workflow", *e, "kill")
    assert len(client.get_cycles()) == 1


# --- the resumable upload -------------------------------------------------------------


def _count_stores(monkeypatch: pytest.MonkeyPatch, fail_once: set[str], delay: float = 0.0):
    """Count the files the server stores (by name); the names in `fail_once` fail first."""
    import tmlib.upload

    stored: Counter[str] = Counter()
    lock = threading.Lock()
    original = tmlib.upload._store

    def store(stream, target: Path) -> int:
        time.sleep(delay)
        with lock:
            if target.name in fail_once:
                fail_once.discard(target.name)
                raise OSError("disk hiccup (test)")
        size = original(stream, target)
        with lock:
            stored[target.name] += 1
        return size

    monkeypatch.setattr(tmlib.upload, "_store", store)
    return stored


def _new_experiment(live: Live, name: str) -> tuple[TmClient, int]:
    client = live.client(experiment=name)
    exp_id = int(client.create_experiment()["id"])
    client.create_plate("plate01")
    client.create_acquisition("plate01", "acq01")
    return client, exp_id


def test_upload_retries_and_resumes_exactly_once(live, tmp_path, monkeypatch):
    client, exp_id = _new_experiment(live, "resume")
    plate_dir = tmp_path / "plate"
    local = simulate(plate_dir, wells=1, sites=2, channels=2)
    (plate_dir / "notes.txt").write_text("not a microscope file")
    names = {p.name for p in local}
    first_image = sorted(n for n in names if n.endswith(".tif"))[0]
    stored = _count_stores(monkeypatch, fail_once={first_image})

    # a subset first (an interrupted upload), with one failure that is retried
    subset = tmp_path / "subset"
    subset.mkdir()
    for p in local[:3]:
        (subset / p.name).write_bytes(p.read_bytes())
    sent = client.upload_microscope_files("plate01", "acq01", subset, parallel=2, retry=2)
    assert sorted(sent) == sorted(p.name for p in local[:3])
    # then everything: only the missing files go (notes.txt is left out)
    sent_again = client.upload_microscope_files("plate01", "acq01", plate_dir, parallel=2)
    assert sorted(sent + sent_again) == sorted(names)
    assert stored == Counter(dict.fromkeys(names, 1))
    assert stored_files(exp_id) == {p.name: ("COMPLETE", sha(p)) for p in local}
    assert client.get_uploaded_file_count("plate01", "acq01") == len(names)
    # a third run sends nothing
    assert client.upload_microscope_files("plate01", "acq01", plate_dir) == []
    assert stored == Counter(dict.fromkeys(names, 1))


def test_killed_cli_upload_resumes(live, tmp_path, monkeypatch):
    _client, exp_id = _new_experiment(live, "killed")
    plate_dir = tmp_path / "plate"
    local = simulate(plate_dir, wells=1, sites=3, channels=2)
    stored = _count_stores(monkeypatch, fail_once=set(), delay=0.3)
    args = ["microscope-file", "-e", "killed", "upload", "-p", "plate01", "-a", "acq01", plate_dir]
    proc = subprocess.Popen(
        [str(BIN / "tm_client"), *map(str, args)],
        env=live.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while sum(stored.values()) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    time.sleep(1.0)  # let the request the killed client left in flight end on the server
    done = sum(stored.values())
    assert 2 <= done < len(local), "the upload was not interrupted midway"
    out = live.ok(*args, "--parallel", 2)
    assert out.strip() == f"{len(local) - done} files uploaded"
    assert stored == Counter({p.name: 1 for p in local})
    assert stored_files(exp_id) == {p.name: ("COMPLETE", sha(p)) for p in local}


def test_upload_of_bad_input(live, tmp_path):
    client, _ = _new_experiment(live, "badupload")
    with pytest.raises(TmClientError, match="no such file"):
        client.upload_microscope_files("plate01", "acq01", tmp_path / "missing")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("x")
    line = one_error_line(
        live.cli("microscope-file", "-e", "badupload", "upload", "-p", "plate01", "-a", "acq01",
                 tmp_path / "junk")
    )  # fmt: skip
    assert line.startswith("tm_client: error:") and "microscope type" in line
    with pytest.raises(TmClientError, match="acquisition 'nope' does not exist") as err:
        client.upload_microscope_files("plate01", "nope", tmp_path / "junk")
    assert err.value.status_code == 404


# --- errors, permissions, shares, passwords ---------------------------------------------------


def test_wrong_password_and_usage_errors(live):
    line = one_error_line(live.cli("experiment", "ls", password="wrong"))
    assert line == "tm_client: error: invalid credentials (HTTP 401)"
    with pytest.raises(TmClientError) as err:
        TmClient("127.0.0.1", live.port, "alice", "wrong")
    assert err.value.status_code == 401 and err.value.message == "invalid credentials"
    assert "missing option -e/--experiment" in one_error_line(live.cli("plate", "ls"))
    assert "no user name" in one_error_line(
        subprocess.run(
            [str(BIN / "tm_client"), "experiment", "ls"],
            env={k: v for k, v in live.env().items() if k != "TM_USER"},
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
    )
    line = one_error_line(live.cli("plate", "-e", "nosuch", "ls"))
    assert line == "tm_client: error: experiment 'nosuch' does not exist (HTTP 404)"


def test_forbidden_and_shares(live):
    live.ok("experiment", "create", "-n", "private")
    live.ok("plate", "-e", "private", "create", "-n", "p1")
    # invisible to bob
    assert table(live.ok("experiment", "ls", user="bob")) == []
    assert "does not exist" in one_error_line(live.cli("plate", "-e", "private", "ls", user="bob"))
    # read-only share: bob reads, may not write (403), may not see or change the shares
    live.ok("experiment", "share", "-n", "private", "--user", "bob")
    shares = table(live.ok("experiment", "shares", "-n", "private"))
    assert shares == [{"User": "bob", "Write access": "no"}]
    plates = table(live.ok("plate", "-e", "private", "ls", user="bob"))
    assert [p["Name"] for p in plates] == ["p1"]
    line = one_error_line(live.cli("plate", "-e", "private", "create", "-n", "p2", user="bob"))
    assert "no write access" in line and line.endswith("(HTTP 403)")
    one_error_line(live.cli("experiment", "shares", "-n", "private", user="bob"))
    assert [p["name"] for p in live.client(experiment="private").get_plates()] == ["p1"]
    # write share: bob creates a plate
    live.ok("experiment", "share", "-n", "private", "--user", "bob", "--write")
    live.ok("plate", "-e", "private", "create", "-n", "p2", user="bob")
    assert sorted(p["name"] for p in live.client(experiment="private").get_plates()) == [
        "p1", "p2",
    ]  # fmt: skip
    live.ok("experiment", "unshare", "-n", "private", "--user", "bob")
    assert table(live.ok("experiment", "ls", user="bob")) == []
    assert table(live.ok("experiment", "shares", "-n", "private")) == []
    # rename and delete go by name
    live.ok("plate", "-e", "private", "rename", "-n", "p2", "--new-name", "p3")
    live.ok("plate", "-e", "private", "rm", "-n", "p1")
    assert [p["Name"] for p in table(live.ok("plate", "-e", "private", "ls"))] == ["p3"]
    live.ok("experiment", "rename", "-n", "private", "--new-name", "public")
    live.ok("experiment", "rm", "-n", "public")
    assert table(live.ok("experiment", "ls")) == []


def test_password_file(live):
    pass_file = live.home / ".tm_pass"
    pass_file.write_text("alice: secret\nbob: other\n")
    pass_file.chmod(0o600)
    assert live.ok("experiment", "ls", password=None).startswith("ID")
    pass_file.chmod(0o644)
    line = one_error_line(live.cli("experiment", "ls", password=None))
    assert "accessible by other users" in line and "chmod 600" in line
    pass_file.unlink()
    assert "no password for 'alice'" in one_error_line(live.cli("experiment", "ls", password=None))


def test_every_group_has_a_manual():
    from click.testing import CliRunner

    from tmclient.cli import main

    groups = ["experiment", "plate", "well", "site", "acquisition", "microscope-file", "channel",
              "object-type", "mapobject", "feature", "feature-values", "segmentation",
              "channel-image", "workflow", "jtproject", "tools"]  # fmt: skip
    runner = CliRunner()
    top = runner.invoke(main, ["--help"])
    assert top.exit_code == 0 and "Exit status:" in top.output and "~/.tm_pass" in top.output
    assert sorted(main.commands) == sorted(groups)
    for group in groups:
        result = runner.invoke(main, [group, "--help"])
        assert result.exit_code == 0, result.output
        assert f"Usage: tm_client {group}" in result.output and "Commands:" in result.output
        for name, command in main.commands[group].commands.items():
            assert command.help, f"{group} {name} has no help"
            # without -e and without a server: the help of every command is there
            result = runner.invoke(main, [group, name, "--help"])
            assert result.exit_code == 0 and f"Usage: tm_client {group} {name}" in result.output
