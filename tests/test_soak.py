"""Soak: four users work against gunicorn (2 workers) at once, as on a shared server.

Each user, in a thread of its own, creates experiments, uploads a small plate
through ``tmclient``, and then either processes it to the end, deletes it while
its workflow runs, or deletes it at once, for ``TMAPS_SOAK_SECONDS`` (default
300 on SQLite, the embedded default; 120 on PostgreSQL). Afterwards:

- the server's log has no 500 and no unexpected error,
- every acknowledged write is there: each kept experiment with its plate,
  wells and channels; each deleted one gone (404, no directory, no tables),
- no process of the installation is left once everything is deleted, and no
  directory is left under the storage home,
- nobody ever saw another user's experiment, and no id was given twice.
"""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from helpers import BIN, experiment_schemas, live_server, use_fast_password_hashing

from tmclient import TmClient, TmClientError
from tmlib import registry

USERS = ("ann", "ben", "cat", "dan")
#: experiments a user keeps processed at once (older ones are deleted)
KEEP = 2


@dataclass
class Ledger:
    """What the server acknowledged to one user."""

    user: str
    kept: dict[str, int] = field(default_factory=dict)  # name -> id
    deleted: dict[str, int] = field(default_factory=dict)
    processed: int = 0
    killed_by_delete: int = 0
    errors: list[str] = field(default_factory=list)


def _simulate(directory: Path) -> None:
    result = subprocess.run(
        [str(BIN / "tm_simulate"), "plate", str(directory), "--wells", "1", "--sites", "2",
         "--channels", "1", "--size", "128x128", "--seed", "7", "-q"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def _wait_for_workflow(client: TmClient, deadline: float) -> dict:
    while True:
        status = client.get_workflow_status(depth=1)
        if status is not None and status["state"] == "TERMINATED":
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"workflow did not end in time: {status}")
        time.sleep(1)


def _check_isolation(client: TmClient, ledger: Ledger, seen_ids: dict[int, str]) -> None:
    for experiment in client.get_experiments():
        assert experiment["user"] == ledger.user, (ledger.user, experiment)
        assert experiment["name"].startswith(f"{ledger.user}-"), (ledger.user, experiment)
        owner = seen_ids.get(int(experiment["id"]))
        assert owner in (None, ledger.user), (ledger.user, experiment, owner)


def _work(
    port: int,
    ledger: Ledger,
    plate_dir: Path,
    end: float,
    seen_ids: dict[int, str],
    lock: threading.Lock,
    seed: int,
) -> None:
    rng = random.Random(seed)
    client = TmClient("127.0.0.1", port, ledger.user, "secret")
    iteration = 0
    while time.monotonic() < end:
        iteration += 1
        name = f"{ledger.user}-{iteration}"
        client.experiment_name = name
        experiment_id = int(client.create_experiment(microscope_type="cellvoyager")["id"])
        with lock:
            assert experiment_id not in seen_ids, f"id {experiment_id} given twice"
            seen_ids[experiment_id] = ledger.user
        client.create_plate("plate01")
        client.create_acquisition("plate01", "acq01")
        client.upload_microscope_files("plate01", "acq01", plate_dir, parallel=2)
        _check_isolation(client, ledger, seen_ids)
        action = rng.choice(("process", "process", "delete_running", "delete"))
        if action != "delete":
            client.submit_workflow()
        if action == "process":
            status = _wait_for_workflow(client, time.monotonic() + 600)
            assert status["exitcode"] == 0, status
            assert [w["name"] for w in client.get_wells("plate01")] == ["A01"]
            assert len(client.get_channels()) == 1
            ledger.kept[name] = experiment_id
            ledger.processed += 1
            while len(ledger.kept) > KEEP:
                oldest = next(iter(ledger.kept))
                client.experiment_name = oldest
                client.delete_experiment()
                ledger.deleted[oldest] = ledger.kept.pop(oldest)
            continue
        if action == "delete_running":
            time.sleep(rng.uniform(0, 4))
            ledger.killed_by_delete += 1
        client.delete_experiment()
        ledger.deleted[name] = experiment_id


def _installation_processes(home: Path, exclude: set[int]) -> list[str]:
    """Command lines of processes (not in `exclude`) whose environment names `home`."""
    marker = f"TMAPS_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if marker in environ:
            found.append(f"{entry.name}: {cmdline.decode(errors='replace')}")
    return found


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tmaps", "seconds"),
    [("sqlite", 300), pytest.param("postgresql", 120, marks=pytest.mark.postgres)],
    indirect=["tmaps"],
)
def test_four_users_for_minutes(tmaps, seconds, monkeypatch, tmp_path):
    seconds = float(os.environ.get("TMAPS_SOAK_SECONDS", seconds))
    use_fast_password_hashing(monkeypatch)
    for user in USERS:
        registry.add_user(user, "secret", f"{user}@example.org")
    plate_dir = tmp_path / "plate"
    _simulate(plate_dir)
    monkeypatch.setenv("TMAPS_CORES", "2")
    ledgers = [Ledger(user) for user in USERS]
    seen_ids: dict[int, str] = {}
    lock = threading.Lock()

    with live_server(workers=2) as server:
        port = int(server.url.rsplit(":", 1)[1])
        end = time.monotonic() + seconds

        def run(ledger: Ledger, seed: int) -> None:
            try:
                _work(port, ledger, plate_dir, end, seen_ids, lock, seed)
            except BaseException as err:  # reported below, with the user
                ledger.errors.append(f"{type(err).__name__}: {err}")

        threads = [
            threading.Thread(target=run, args=(ledger, i), name=ledger.user)
            for i, ledger in enumerate(ledgers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=seconds + 900)
        assert not any(t.is_alive() for t in threads), "a user's loop hangs"
        assert [ledger.errors for ledger in ledgers] == [[] for _ in ledgers]
        # enough work happened for the soak to mean something
        assert sum(ledger.processed for ledger in ledgers) >= len(USERS)
        assert sum(len(ledger.deleted) for ledger in ledgers) >= len(USERS)

        # every acknowledged write is there, every deletion is complete
        for ledger in ledgers:
            client = TmClient("127.0.0.1", port, ledger.user, "secret")
            token = server.login(ledger.user)
            names = {e["name"]: int(e["id"]) for e in client.get_experiments()}
            assert names == ledger.kept
            for name in ledger.kept:
                client.experiment_name = name
                assert [p["name"] for p in client.get_plates()] == ["plate01"]
                assert [w["name"] for w in client.get_wells("plate01")] == ["A01"]
            for experiment_id in ledger.deleted.values():
                response = server.call("GET", f"/api/experiments/{experiment_id}", token)
                assert response.status_code == 404, response.text
            other = next(x for x in ledgers if x is not ledger and x.kept)
            for experiment_id in other.kept.values():
                response = server.call("GET", f"/api/experiments/{experiment_id}", token)
                assert response.status_code == 403, response.text

        # delete everything; then nothing of the installation may remain
        for ledger in ledgers:
            client = TmClient("127.0.0.1", port, ledger.user, "secret")
            for name in list(ledger.kept):
                client.experiment_name = name
                client.delete_experiment()
                ledger.deleted[name] = ledger.kept.pop(name)
        exclude = {os.getpid(), server.pid, *server.worker_pids()}
        assert _installation_processes(tmaps.home, exclude) == []
        storage = tmaps.storage_home
        assert not storage.exists() or sorted(p.name for p in storage.iterdir()) == []
        if tmaps.dialect == "postgresql":
            assert [s for s in experiment_schemas(tmaps.db_url)] == []
        with pytest.raises(TmClientError):
            TmClient("127.0.0.1", port, "ann", "secret", experiment_name="ann-1").get_plates()

    log = server.log.read_text()
    assert '" 500 ' not in log and "unexpected error" not in log, log[-5000:]
