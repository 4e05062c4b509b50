"""Progress bars of long commands: drawn on a terminal, silent with -q or when piped.

The commands run as real processes with stderr on a pseudo-terminal (``pty``)
of 120 columns, as in a user's shell; the bar's last state must show the
counts (files done of all), the bytes, the rate and the time left.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest
from helpers import BIN, env, live_server, use_fast_password_hashing

from tmlib import registry
from tmlib.progress import Progress, quiet_option, should_draw

# --- running a command with stderr on a terminal ------------------------------------------


def run_on_terminal(
    argv: list[object], environ: dict[str, str] | None = None, timeout: float = 300
) -> tuple[int, str, str]:
    """Run `argv` with stderr on a 120x30 pseudo-terminal; stdout is a pipe.

    Returns
    -------
    returncode, stdout, terminal
        The terminal's text has each ``\\r`` redraw on a line of its own.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.Popen(
            [str(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            env=environ if environ is not None else env(),
            text=True,
        )
        os.close(slave)
        stdout, _ = proc.communicate(timeout=timeout)
        reader.join(30)
    finally:
        os.close(master)
    terminal = b"".join(chunks).decode(errors="replace").replace("\r\n", "\n").replace("\r", "\n")
    return proc.returncode, stdout, terminal


def bar_lines(terminal: str, desc: str) -> list[str]:
    return [line for line in terminal.splitlines() if line.startswith(f"{desc}:")]


#: the final state of a bar that counts bytes: 100%, bytes done of all, time, rate, files
BYTES_DONE = r"100%\|.*\| [\d.]+[kMG]?B/[\d.]+[kMG]?B \[\d\d:\d\d<\d\d:\d\d, .*B/s, {n}/{n} files\]"


def total_bytes(line: str) -> float:
    """The byte total a bar shows, e.g. 220e3 for ``| 110kB/220kB [``."""
    match = re.search(r"/([\d.]+)([kMG]?)B \[", line)
    assert match, line
    return float(match.group(1)) * {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}[match.group(2)]


def piped(argv: list[object], environ: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(a) for a in argv],
        env=environ if environ is not None else env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


# --- the rule, in process ----------------------------------------------------------------


class _Terminal:
    def isatty(self) -> bool:
        return True


class _Pipe:
    def isatty(self) -> bool:
        return False


def test_the_rule_terminal_and_not_quiet():
    import click
    from click.testing import CliRunner

    assert should_draw(True, _Terminal()) and not should_draw(True, _Pipe())
    assert not should_draw(False, _Terminal())
    seen = []

    @click.command()
    @quiet_option
    def command() -> None:
        seen.append(should_draw(True, _Terminal()))

    assert CliRunner().invoke(command, []).exit_code == 0
    assert CliRunner().invoke(command, ["-q"]).exit_code == 0
    assert seen == [True, False]


def test_no_bar_and_no_tqdm_when_not_drawn(capsys):
    with Progress("upload", files=3, nbytes=30, enabled=True) as progress:
        for _ in range(3):
            progress.advance(1, 10)
    assert (progress.files_done, progress.bytes_done, progress.drawn) == (3, 30, False)
    assert capsys.readouterr().err == ""
    # --help of the programs with bars does not load tqdm either
    for module in ("tmclient.cli", "tmlib.cli.add", "tmlib.cli.simulate"):
        code = (
            f"import sys; from {module} import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('tqdm' in sys.modules, file=sys.stderr)"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        assert result.stderr.strip().endswith("False"), (module, result.stderr)


def test_a_bar_on_a_terminal_shows_counts_bytes_rate_and_time_left():
    code = (
        "from tmlib.progress import Progress\n"
        "with Progress('upload', files=4, nbytes=4_000_000) as p:\n"
        "    for _ in range(4):\n        p.advance(1, 1_000_000)\n"
        "with Progress('download', files=3) as p:\n"
        "    for _ in range(3):\n        p.advance(1, 2_000)\n"
    )
    rc, _out, terminal = run_on_terminal([sys.executable, "-c", code])
    assert rc == 0, terminal
    upload = bar_lines(terminal, "upload")
    assert re.search(r"4\.00MB/4\.00MB .*B/s, 4/4 files\]", upload[-1]), terminal
    assert upload[0].startswith("upload:   0%")  # drawn from the start
    download = bar_lines(terminal, "download")
    assert re.search(r"100%.* 3/3 \[.*files/s, 6\.0 kB\]", download[-1]), terminal


# --- tm_simulate -----------------------------------------------------------------------


def test_tm_simulate_bar_quiet_and_piped(tmp_path: Path):
    args = ["plate", "--wells", 2, "--sites", 4, "--channels", 2, "--size", "32x32"]
    rc, out, terminal = run_on_terminal([BIN / "tm_simulate", *args[:1], tmp_path / "a", *args[1:]])
    assert rc == 0 and out.startswith("wrote 16 images"), terminal
    assert re.search(r"100%\|.*\| 16/16 \[", bar_lines(terminal, "writing")[-1]), terminal

    rc, out, terminal = run_on_terminal(
        [BIN / "tm_simulate", *args[:1], tmp_path / "b", *args[1:], "-q"]
    )
    assert (rc, out, terminal) == (0, "", "")

    result = piped([BIN / "tm_simulate", *args[:1], tmp_path / "c", *args[1:]])
    assert result.returncode == 0 and result.stderr == "" and "wrote 16 images" in result.stdout


# --- tm_add files ----------------------------------------------------------------------


def _simulate(directory: Path, sites: int = 2) -> list[Path]:
    result = piped(
        [BIN / "tm_simulate", "plate", directory, "--wells", 1, "--sites", sites,
         "--channels", 2, "--size", "64x64", "-q"]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return sorted(p for p in directory.iterdir() if p.is_file())


@pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)
def test_tm_add_files_bar_quiet_and_piped(tmaps, tmp_path: Path, monkeypatch):
    use_fast_password_hashing(monkeypatch)
    local = _simulate(tmp_path / "plate")
    registry.add_user("alice", "secret", "alice@example.org")
    for name in ("one", "two", "three"):
        experiment = registry.add_experiment(name, "alice")
        registry.add_plate(experiment, "p")
        registry.add_acquisition(experiment, "p", "a")
    files = ["files", "-p", "p", "-a", "a", "-s", tmp_path / "plate", "--copy"]

    rc, out, terminal = run_on_terminal([BIN / "tm_add", files[0], "-e", "one", *files[1:]])
    assert rc == 0 and out.startswith("registered 4 image and 2 metadata files"), terminal
    last = bar_lines(terminal, "register")[-1]
    assert re.search(BYTES_DONE.format(n=len(local)), last), terminal
    total = sum(p.stat().st_size for p in local)
    assert total_bytes(last) == pytest.approx(total, rel=0.01), last

    rc, out, terminal = run_on_terminal([BIN / "tm_add", files[0], "-e", "two", *files[1:], "-q"])
    assert rc == 0 and out.startswith("registered 4 image") and terminal == ""

    result = piped([BIN / "tm_add", files[0], "-e", "three", *files[1:]])
    assert result.returncode == 0 and result.stderr == "", result.stderr


# --- tm_client -------------------------------------------------------------------------------


def _client_env(port: int) -> dict[str, str]:
    return {
        **env(),
        "TM_HOST": "127.0.0.1",
        "TM_PORT": str(port),
        "TM_USER": "alice",
        "TM_PASSWORD": "secret",
    }


@pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)
def test_tm_client_upload_bar_quiet_and_piped(tmaps, tmp_path: Path, monkeypatch):
    from tmclient import TmClient

    use_fast_password_hashing(monkeypatch)
    registry.add_user("alice", "secret", "alice@example.org")
    local = _simulate(tmp_path / "plate", sites=3)
    with live_server(workers=1, threads=4) as server:
        port = int(server.url.rsplit(":", 1)[1])
        environ = _client_env(port)
        for name in ("one", "two", "three"):
            client = TmClient("127.0.0.1", port, "alice", "secret", experiment_name=name)
            client.create_experiment()
            client.create_plate("p")
            client.create_acquisition("p", "a")

        def upload(experiment: str, *extra: str) -> list[object]:
            return [BIN / "tm_client", *extra, "microscope-file", "-e", experiment, "upload",
                    "-p", "p", "-a", "a", tmp_path / "plate"]  # fmt: skip

        rc, out, terminal = run_on_terminal(upload("one"), environ)
        assert rc == 0 and out == f"{len(local)} files uploaded\n", terminal
        assert re.search(BYTES_DONE.format(n=len(local)), bar_lines(terminal, "upload")[-1])

        rc, out, terminal = run_on_terminal(upload("two", "-q"), environ)
        assert (rc, out, terminal) == (0, f"{len(local)} files uploaded\n", "")

        result = piped(upload("three"), environ)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        assert result.stdout == f"{len(local)} files uploaded\n"


@pytest.mark.slow
def test_tm_client_download_bars(processed, tmp_path: Path):
    import sqlalchemy as sa

    import tmlib.models as tm

    with tm.utils.ExperimentSession(processed.experiment_id) as session:
        channel = session.scalars(sa.select(tm.Channel.name)).first()
        n_wells = len(session.scalars(sa.select(tm.Well.id)).all())
    with tm.utils.MainSession() as session:
        name = session.get(tm.ExperimentReference, processed.experiment_id).name
    with live_server(workers=1, threads=4) as server:
        environ = _client_env(int(server.url.rsplit(":", 1)[1]))
        features = [BIN / "tm_client", "feature-values", "-e", name, "download", "-o", "Cells",
                    "--parallel", 2, "--directory"]  # fmt: skip
        rc, out, terminal = run_on_terminal([*features, tmp_path / "a"], environ)
        n = 2 * n_wells  # values and metadata per well
        assert rc == 0 and len(out.split()) == n, terminal
        last = bar_lines(terminal, "download")[-1]
        assert re.search(rf"100%\|.*\| {n}/{n} \[\d\d:\d\d<\d\d:\d\d, .*files/s, .*B\]", last)

        image = [BIN / "tm_client", "channel-image", "-e", name, "download", "-p", "plate01",
                 "-w", "A01", "-x", 0, "-y", 0, "-c", channel, "--directory"]  # fmt: skip
        rc, out, terminal = run_on_terminal([*image, tmp_path / "b"], environ)
        assert rc == 0 and Path(out.strip()).is_file(), terminal
        size = Path(out.strip()).stat().st_size
        last = bar_lines(terminal, "download")[-1]
        assert re.search(BYTES_DONE.format(n=1), last), last
        assert total_bytes(last) == pytest.approx(size, rel=0.01), last

        segmentation = [BIN / "tm_client", "segmentation", "-e", name, "download", "-p",
                        "plate01", "-w", "A01", "-x", 0, "-y", 0, "-o", "Cells", "--directory",
                        tmp_path / "e"]  # fmt: skip
        rc, out, terminal = run_on_terminal(segmentation, environ)
        assert rc == 0 and Path(out.strip()).is_file(), terminal
        assert re.search(BYTES_DONE.format(n=1), bar_lines(terminal, "download")[-1]), terminal

        quiet = [features[0], "-q", *features[1:], tmp_path / "c"]
        rc, out, terminal = run_on_terminal(quiet, environ)
        assert (rc, terminal) == (0, "") and len(out.split()) == n
        result = piped([*image, tmp_path / "d"], environ)
        assert result.returncode == 0 and result.stderr == ""
