"""Warm start (tmlib.cli.warm): commands run in a fork of a server that imported the library.

The programs behave as when they run in a process of their own: output,
exit status, working directory, signals; only their user may use the server;
off with TMAPS_WARM_START=0; the server follows the code and exits when idle.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import BIN, env, ok

from tmlib import registry
from tmlib.cli import warm

pytestmark = pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)


@pytest.fixture
def run_dir(tmaps, monkeypatch) -> Iterator[Path]:
    """A private XDG_RUNTIME_DIR with warm start on; its servers are stopped afterwards."""
    run = Path(tempfile.mkdtemp(prefix="tmw", dir="/tmp"))  # socket paths must be short
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    monkeypatch.setenv("TMAPS_WARM_START", "1")
    yield run
    for pidfile in run.glob("tissuemaps-warm-*/*.pid"):
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
    for _ in range(50):
        if not list(run.glob("tissuemaps-warm-*/*.sock")):
            break
        time.sleep(0.1)


def program(name: str, *args: object, **kwargs) -> subprocess.CompletedProcess:
    if "stdout" not in kwargs:
        kwargs["capture_output"] = True
    return subprocess.run(
        [str(BIN / name), *map(str, args)], env=env(), text=True, timeout=300, **kwargs
    )


def server_pid(run: Path, timeout: float = 60) -> int:
    """The pid of the warm server in `run`, once it listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for sock in run.glob("tissuemaps-warm-*/*.sock"):
            pidfile = sock.with_suffix(".pid")
            if pidfile.exists():
                return int(pidfile.read_text())
        time.sleep(0.1)
    raise AssertionError("no warm-start server came up")


def children_of(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(stat.parent.name))
    return found


def commands_of(server: int) -> set[int]:
    """The server's children that run commands (job spawners lead sessions of their own)."""
    found = set()
    for pid in children_of(server):
        with contextlib.suppress(OSError, IndexError):
            if int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[3]) != pid:
                found.add(pid)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(condition, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def an_experiment() -> int:
    registry.add_user("wanda", "pw-of-wanda", "wanda@example.org")
    return registry.add_experiment("warm", "wanda", microscope_type="cellvoyager")


def test_commands_behave_as_in_their_own_process(run_dir, tmp_path):
    eid = an_experiment()
    cold = program("tm_workflow", eid, "description")  # no server yet: runs here, starts one
    ok(cold)
    pid = server_pid(run_dir)
    assert alive(pid)
    warm_run = ok(program("tm_workflow", eid, "description"))
    assert warm_run.stdout == cold.stdout and warm_run.stderr == cold.stderr
    # one error line naming the program, exit status 2
    bad = program("tm_workflow", 999, "status")
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == ["tm_workflow: error: experiment 999 does not exist"]
    usage = program("metaextract", eid, "nosuch")
    assert usage.returncode == 2 and usage.stderr.startswith("metaextract: error:")
    assert program("tm_workflow", "--help").stdout.startswith("Usage: tm_workflow ")
    # relative paths are the caller's; stdout may be a file
    (tmp_path / "wf.yaml").write_text(cold.stdout)
    ok(program("tm_workflow", eid, "description", "--set", "wf.yaml", cwd=tmp_path))
    with open(tmp_path / "out.yaml", "w") as out:
        program("tm_workflow", eid, "description", stdout=out, stderr=subprocess.PIPE)
    assert (tmp_path / "out.yaml").read_text() == cold.stdout
    missing = program("tm_workflow", eid, "description", "--set", "nope.yaml", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.yaml" in missing.stderr
    assert alive(pid)  # the same server served them all


def test_the_off_switch_runs_commands_here(run_dir, monkeypatch):
    monkeypatch.setenv("TMAPS_WARM_START", "0")
    eid = an_experiment()
    ok(program("tm_workflow", eid, "description"))
    time.sleep(1)
    assert not list(run_dir.glob("tissuemaps-warm-*/*.sock"))


def _simulated_experiment(tmp_path: Path) -> int:
    plate = tmp_path / "plate"
    ok(program("tm_simulate", "plate", plate, "--wells", 1, "--sites", 2, "--size", "64x80", "-q"))
    eid = an_experiment()
    registry.add_plate(eid, "p")
    registry.add_acquisition(eid, "p", "a")
    registry.register_files(eid, "p", "a", plate)
    return eid


@pytest.mark.slow
def test_a_workflow_runs_warm_and_signals_reach_its_command(run_dir, tmp_path):
    eid = _simulated_experiment(tmp_path)
    ok(program("tm_workflow", eid, "description"))  # starts the server
    server = server_pid(run_dir)
    result = ok(program("tm_workflow", eid, "submit"))
    assert "all jobs succeeded" in result.stdout

    def started() -> tuple[subprocess.Popen, int]:
        client = subprocess.Popen(
            [str(BIN / "tm_workflow"), str(eid), "resubmit", "--stage", "image_analysis"],
            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        commands: set[int] = set()
        assert wait_until(lambda: bool(commands.update(commands_of(server)) or commands))
        return client, commands.pop()

    # kill: the command gets the signal, the caller ends as killed by it
    client, command = started()
    assert alive(command) and alive(client.pid)
    client.send_signal(signal.SIGTERM)
    assert client.wait(60) == -signal.SIGTERM
    assert wait_until(lambda: not alive(command))
    # SIGKILL cannot be passed on: the server kills the command when its caller is gone
    client, command = started()
    client.kill()
    client.wait(60)
    assert wait_until(lambda: not alive(command))
    # nothing is left half done: the workflow resumes and ends well
    result = ok(program("tm_workflow", eid, "resume"))
    assert "all jobs succeeded" in result.stdout
    assert alive(server)


def test_another_user_cannot_use_the_server(run_dir):
    if os.getuid() != 0:
        pytest.skip("needs root to act as another user")
    eid = an_experiment()
    ok(program("tm_workflow", eid, "description"))
    pid = server_pid(run_dir)
    (sock,) = run_dir.glob("tissuemaps-warm-*/*.sock")

    def connect_as_nobody() -> str:
        """What user 65534 gets from connecting and asking (in a forked child)."""
        read, write = os.pipe()
        child = os.fork()
        if child == 0:
            answer = b"?"
            try:
                os.setgid(65534)
                os.setuid(65534)
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.connect(str(sock))
                    s.settimeout(10)
                    answer = str(
                        warm._request(
                            s,
                            {
                                "kind": "command",
                                "program": "tm_workflow",
                                "argv": ["tm_workflow", "--help"],
                            },
                            [0, 1, 2],
                        )
                    )
            except PermissionError:
                answer = b"refused"
            except Exception as err:  # noqa: BLE001
                answer = type(err).__name__.encode()
            os.write(write, answer if isinstance(answer, bytes) else answer.encode())
            os._exit(0)
        os.close(write)
        os.waitpid(child, 0)
        with os.fdopen(read, "rb") as f:
            return f.read().decode()

    # the directory of the sockets is the user's only
    assert connect_as_nobody() == "refused"
    # and the server itself asks who connects
    try:
        run_dir.chmod(0o711)
        sock.parent.chmod(0o711)
        sock.chmod(0o666)
        # closed before or after the request, or answered without a pid: nothing ran
        refusals = ("BrokenPipeError", "ConnectionResetError", "None", "JSONDecodeError")
        assert connect_as_nobody() in refusals
    finally:
        run_dir.chmod(0o700)
        sock.parent.chmod(0o700)
        sock.chmod(0o600)
    assert alive(pid)


def test_a_directory_another_user_could_enter_is_not_used(run_dir, monkeypatch):
    directory = run_dir / f"tissuemaps-warm-{os.getuid()}"
    directory.mkdir(mode=0o777)
    directory.chmod(0o777)
    with pytest.raises(OSError, match="not private"):
        warm.socket_directory()
    eid = an_experiment()
    ok(program("tm_workflow", eid, "description"))  # runs here
    time.sleep(1)
    assert not list(directory.iterdir())


def test_the_server_follows_the_code_and_exits_when_idle(run_dir, monkeypatch):
    source = Path(warm.__file__)
    before = warm.code_identity()
    stat = source.stat()
    try:
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
        assert warm.code_identity() != before  # a new server for changed code
    finally:
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert warm.code_identity() == before

    monkeypatch.setenv("TMAPS_WARM_START_IDLE", "1")
    eid = an_experiment()
    ok(program("tm_workflow", eid, "description"))
    pid = server_pid(run_dir)
    assert wait_until(lambda: not alive(pid), timeout=60)
    assert not list(run_dir.glob("tissuemaps-warm-*/*.sock"))
