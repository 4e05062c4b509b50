"""Warm start: a program runs as a fork of a process that has imported the library.

A step's ``init`` or ``tm_workflow ID status`` spends most of its time
importing SQLAlchemy, the models and the workflow engine (about half a second
on an idle core, more under load), and every stage of a workflow run step by
step pays it again. So the first such command of a user starts, in the
background, a small server (``python -m tmlib.cli.warm``) that imports them
once and waits on a Unix socket that only its user can open. Later commands
hand it their arguments, environment, working directory, file mode mask and
the standard streams themselves (the file descriptors, so terminals, pipes and
redirections behave as before) and it runs each in a forked child: the command
starts with everything imported. The program that was started waits, passes
on Ctrl-C and ``kill`` to the child and exits with the child's status; killed
with SIGKILL, its child is killed too.

A server serves one version of the code (the socket's name is a hash of the
interpreter, the settings its libraries read when loaded (``PYTHONPATH``,
``OMP_NUM_THREADS`` ...), the installed packages' directory and every
``tmlib`` and ``jtmodules`` source file's modification time), runs no command
itself and holds no database connection, and exits after :data:`IDLE_SECONDS`
without work. Commands that submit jobs on the local backend also get their
job spawner forked by the server (:func:`start_spawner`), with the step
programs imported: a stage's first job starts without waiting for imports.
Jobs never go through it (``TMAPS_JOB`` is set for them), nor do programs run
other than from their console script (e.g. in-process by click's test runner).

``TMAPS_WARM_START=0`` turns it off: each command runs in its own process;
``TMAPS_WARM_START_IDLE`` sets the idle seconds. The sockets are in
``$XDG_RUNTIME_DIR/tissuemaps-warm-UID/`` (or under ``/tmp``), a directory only
the user may enter; the server also checks the connecting process's user.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import sysconfig
import tempfile
import types
from pathlib import Path
from typing import Any

#: 0/off/no/false: run every command in its own process
SWITCH = "TMAPS_WARM_START"
#: seconds a server waits for a command before it exits (TMAPS_WARM_START_IDLE)
IDLE_SECONDS = 600.0
#: imported by the server before it listens: what the bookkeeping commands use
PRELOAD = (
    "sqlalchemy.orm",
    "sqlite3",
    "psycopg2",
    "yaml",
    "numpy",
    "tmlib.models",
    "tmlib.mosaic",
    "tmlib.permissions",
    "tmlib.workflow.manager",
    "tmlib.workflow.jobs.engine",
    "tmlib.workflow.jobs.backends",
    "tmlib.workflow.__main__",  # what the local backend's job spawner preloads
)
_OFF = {"0", "off", "no", "false"}
#: read when the server imports its libraries, so a server serves one set of them
_LOAD_TIME_SETTINGS = (
    "PYTHONPATH", "LD_LIBRARY_PATH", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS", "PYTHONHASHSEED",
)  # fmt: skip
_HEADER = struct.Struct("!I")
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
#: set in the server and its children: a command there runs, it is not handed on
_serving = False
#: the socket of the server this process is (or was forked from)
_server_path: Path | None = None


# ------------------------------------------------------------------ the place


def code_identity() -> str:
    """A hash of what the server's imports depend on (see the module's docstring)."""
    import tmlib

    digest = hashlib.sha256()
    # the environment (not the executable's name: python and python3 are the same)
    digest.update(f"{sys.prefix}\0{sys.version}".encode())
    for name in _LOAD_TIME_SETTINGS:
        digest.update(f"\0{name}={os.environ.get(name, '')}".encode())
    for path in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        with contextlib.suppress(OSError):
            digest.update(f"{path}:{os.stat(path).st_mtime_ns}".encode())
    root = Path(tmlib.__file__).parent
    roots = [root, root.parent / "jtmodules"]  # the built-in jterator modules beside it
    for directory, subdirectories, files in (w for r in roots for w in os.walk(r)):
        subdirectories.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                with contextlib.suppress(OSError):
                    stat = os.stat(os.path.join(directory, name))
                    digest.update(f"{directory}/{name}:{stat.st_mtime_ns}:{stat.st_size}".encode())
    return digest.hexdigest()[:16]


def socket_directory() -> Path:
    """This user's private directory of servers' sockets (created 0700).

    Raises
    ------
    OSError
        When it exists but is not a directory of this user's that only they
        can enter (another user may have made it to listen in).
    """
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    if len(base) > 60:  # a socket's path has at most 107 bytes
        base = "/tmp"
    directory = Path(base) / f"tissuemaps-warm-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700)
    stat = os.lstat(directory)
    if not os.path.isdir(directory) or os.path.islink(directory):
        raise OSError(f"{directory} is not a directory")
    if stat.st_uid != os.getuid() or stat.st_mode & 0o077:
        raise OSError(f"{directory} is not private to user {os.getuid()}")
    return directory


def socket_path() -> Path:
    """The socket of the server of this code, for this user."""
    return socket_directory() / f"{code_identity()}.sock"


# ------------------------------------------------------------------ the client


def enabled() -> bool:
    """Whether a command started now would be handed to a warm server."""
    return (
        not _serving
        and os.environ.get(SWITCH, "1").strip().lower() not in _OFF
        and "TMAPS_JOB" not in os.environ
        and sys.stdin is sys.__stdin__
        and sys.stdout is sys.__stdout__
        and sys.stderr is sys.__stderr__
    )


def run_warm(program: str) -> int | None:
    """Run this process's command in the warm server of `program`'s code.

    Returns its exit status, or None when it must run here: warm start is
    off, no server is up (one is started for the next command), or the
    server did not take the command.
    """
    if not enabled() or Path(sys.argv[0]).name != program:
        return None
    try:
        path = socket_path()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError:
        return None
    with sock:
        try:
            sock.connect(str(path))
        except OSError:
            start_server(path)
            return None
        try:
            pid = _send_command(sock, program)
        except (OSError, ValueError):
            return None  # the server did not take it: nothing ran yet
        if pid is None:
            return None
        return _wait(sock, pid)


def _send_command(sock: socket.socket, program: str) -> int | None:
    return _request(sock, {"kind": "command", "program": program, "argv": sys.argv}, [0, 1, 2])


def _request(sock: socket.socket, request: dict[str, Any], fds: list[int]) -> int | None:
    """Send `request` with this process's environment, directory and mask, and the
    descriptors that become the new process's 0, 1 and 2; the pid it got, or None."""
    mask = os.umask(0o077)
    os.umask(mask)
    body = json.dumps({**request, "env": dict(os.environ), "cwd": os.getcwd(), "umask": mask})
    socket.send_fds(sock, [_HEADER.pack(len(body.encode()))], fds)
    sock.sendall(body.encode())
    answer = json.loads(_read_line(sock) or b"{}")
    return answer.get("pid")


def _read_line(sock: socket.socket) -> bytes:
    line = bytearray()
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        line += chunk
    return bytes(line)


def _wait(sock: socket.socket, pid: int) -> int:
    """Pass signals on to the command's process until the server reports its end."""

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if signum == signal.SIGINT:
                os.killpg(pid, signum)  # Ctrl-C reaches a terminal's whole process group
            else:
                os.kill(pid, signum)

    previous = {signum: signal.signal(signum, forward) for signum in _SIGNALS}
    try:
        line = _read_line(sock)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if not line:
        print(f"{Path(sys.argv[0]).name}: error: the warm-start server went away", file=sys.stderr)
        return 1
    code = int(json.loads(line)["exit"])
    if code < 0:  # killed by a signal: end the same way
        sys.stdout.flush()
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


def start_server(path: Path) -> None:
    """Start the server of `path` in the background (it exits at once if one runs)."""
    with contextlib.suppress(OSError):
        subprocess.Popen(
            [sys.executable, "-P", "-m", "tmlib.cli.warm", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )


def stop_server(path: Path | None = None) -> bool:
    """Stop the server of `path` (default: of this code); False if none runs."""
    path = path or socket_path()
    try:
        pid = int(path.with_suffix(".pid").read_text())
        os.kill(pid, signal.SIGTERM)
    except (OSError, ValueError):
        return False
    return True


# ------------------------------------------------------------------ job spawners


class ForkedProcess:
    """A process the warm server forked for this one: what the local backend uses
    of a :class:`subprocess.Popen` (it is not this process's child, so its exit
    status is not known: 0 once it ended)."""

    def __init__(self, pid: int, stdin: Any, stdout: Any) -> None:
        self.pid = pid
        self.stdin = stdin
        self.stdout = stdout
        self.returncode: int | None = None
        self._pidfd = os.pidfd_open(pid)

    def poll(self) -> int | None:
        return self.wait(0, raise_timeout=False)

    def wait(self, timeout: float | None = None, raise_timeout: bool = True) -> int | None:
        import select

        if self.returncode is None:
            if not select.select([self._pidfd], [], [], timeout)[0]:
                if raise_timeout:
                    raise subprocess.TimeoutExpired(f"process {self.pid}", timeout or 0)
                return None
            self.returncode = 0
            os.close(self._pidfd)
        return self.returncode


def start_spawner(entry: str) -> ForkedProcess | None:
    """In a command the warm server runs: a job spawner (:mod:`tmlib.workflow.jobs.spawner`)
    with `entry` preloaded, forked by the server, which has imported it already (a
    spawner started anew spends most of a second on that); None elsewhere."""
    if not _serving or _server_path is None or not hasattr(os, "pidfd_open"):
        return None
    stdin_read, stdin_write = os.pipe()
    stdout_read, stdout_write = os.pipe()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(_server_path))
            pid = _request(sock, {"kind": "spawner", "entry": entry}, [stdin_read, stdout_write, 2])
        if pid is None:
            raise OSError("the warm server did not start a job spawner")
        return ForkedProcess(pid, os.fdopen(stdin_write, "wb"), os.fdopen(stdout_read, "rb"))
    except (OSError, ValueError):
        os.close(stdin_write)
        os.close(stdout_read)
        return None
    finally:
        os.close(stdin_read)
        os.close(stdout_write)


# ------------------------------------------------------------------ the server


def _programs() -> dict[str, Any]:
    """Our console scripts that take warm start, by name, imported."""
    from importlib.metadata import entry_points

    programs = {}
    for entry in entry_points(group="console_scripts"):
        if entry.value.split(".")[0] == "tmlib":
            with contextlib.suppress(Exception):
                program = entry.load()
                if getattr(program, "warm", False):
                    programs[entry.name] = program
    return programs


class Server:
    """The warm-start server listening on `path` (see the module's docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.programs: dict[str, Any] = {}
        self.children: dict[int, socket.socket] = {}  # pid -> its client's connection
        self.listener: socket.socket | None = None

    def serve(self) -> None:
        import fcntl
        import importlib
        import select
        import time

        global _serving, _server_path
        _serving, _server_path = True, self.path
        lock = open(self.path.with_suffix(".lock"), "a")  # noqa: SIM115 - held until exit
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # another server of this code runs
        os.chdir("/")  # a command's directory is its own; this one would be held busy
        for module in PRELOAD:
            with contextlib.suppress(Exception):
                importlib.import_module(module)
        with contextlib.suppress(Exception):
            # the mapped classes' generated code, which each command made again
            importlib.import_module("sqlalchemy.orm").configure_mappers()
        _import_what_jobs_use()
        self.programs = _programs()
        self.listener = self._listen()
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # through `finally` below
        idle_seconds = float(os.environ.get("TMAPS_WARM_START_IDLE") or IDLE_SECONDS)
        idle_since = time.monotonic()
        try:
            while self.listener is not None:
                timeout = None if self.children else idle_seconds - (time.monotonic() - idle_since)
                if timeout is not None and timeout <= 0:
                    break
                watched = [self.listener, wake_read, *self.children.values()]
                readable, _, _ = select.select(watched, [], [], timeout)
                if wake_read in readable:
                    os.read(wake_read, 512)
                    self._reap()
                for conn in [c for c in readable if c in self.children.values()]:
                    self._client_gone(conn)
                if self.listener in readable:
                    self._accept()
                if readable:  # idle from the last request or command's end on
                    idle_since = time.monotonic()
        finally:
            self._stop()

    def _listen(self) -> socket.socket:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a dead server's (the lock is ours)
        old_mask = os.umask(0o177)
        try:
            listener.bind(str(self.path))
        finally:
            os.umask(old_mask)
        listener.listen(64)
        self.path.with_suffix(".pid").write_text(str(os.getpid()))
        return listener

    def _stop(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            for leftover in (self.path, self.path.with_suffix(".pid")):
                with contextlib.suppress(OSError):
                    leftover.unlink()

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        try:
            conn.settimeout(10.0)
            peer_uid = struct.unpack("3i", conn.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[1]  # fmt: skip
            if peer_uid != os.getuid():
                raise PermissionError(f"user {peer_uid} is not this server's user")
            header, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
        except (OSError, struct.error):
            conn.close()
            return
        try:
            if len(header) != _HEADER.size or len(fds) != 3:
                raise ValueError("a malformed request")
            size = _HEADER.unpack(header)[0]
            body = bytearray()
            while len(body) < size:
                chunk = conn.recv(min(size - len(body), 1 << 20))
                if not chunk:
                    raise ValueError("a truncated request")
                body += chunk
            request = json.loads(body)
            if request["kind"] == "spawner":
                pid = os.fork()
                if pid == 0:
                    self._run_spawner(request, fds, conn)
                conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
                conn.close()  # the spawner outlives the command that asked for it
                return
            program = self.programs.get(request["program"])
            if program is None:
                conn.sendall(b'{"pid": null}\n')
                conn.close()
                return
            pid = os.fork()
            if pid == 0:
                self._run_child(program, request, fds, conn)
            self.children[pid] = conn  # reaped and answered once it ends
            try:
                conn.settimeout(None)
                conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
            except OSError:  # the caller is gone already: so is its command
                del self.children[pid]
                os.kill(pid, signal.SIGKILL)
                raise
        except (OSError, ValueError, KeyError, TypeError):
            conn.close()
        finally:
            for fd in fds:
                os.close(fd)

    def _run_child(self, program: Any, request: dict, fds: list[int], conn: socket.socket) -> None:
        """In the forked child: become the command's process and run it; never returns."""
        code = 1
        try:
            self._become(request, fds, conn)
            os.setpgid(0, 0)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            sys.argv = list(request["argv"])
            # as a console script's: click names the program after argv[0] then
            sys.modules["__main__"] = types.ModuleType("__main__")
            code = _exit_code(program)
        except BaseException:  # noqa: BLE001 - report and leave the forked child
            import traceback

            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def _run_spawner(self, request: dict, fds: list[int], conn: socket.socket) -> None:
        """In the forked child: become a job spawner of the asking engine; never returns."""
        try:
            self._become(request, fds, conn)
            os.setsid()  # as the engine starts it: Ctrl-C and the engine's death spare it
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            from tmlib.workflow.jobs import spawner

            spawner.serve(request["entry"])
        except BaseException:  # noqa: BLE001 - report and leave the forked child
            import traceback

            traceback.print_exc()
        finally:
            os._exit(0)

    def _become(self, request: dict, fds: list[int], conn: socket.socket) -> None:
        """In a forked child: drop the server's sockets and signal handling, take the
        client's descriptors (0, 1, 2), directory, environment and mask."""
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_DFL)
        assert self.listener is not None
        self.listener.close()
        conn.close()
        for other in self.children.values():
            other.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.umask(int(request["umask"]))
        _reopen_standard_streams()

    def _reap(self) -> None:
        while True:  # commands, and the job spawners that may outlive them
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is not None:
                with contextlib.suppress(OSError):
                    code = os.waitstatus_to_exitcode(status)
                    conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
                conn.close()

    def _client_gone(self, conn: socket.socket) -> None:
        """A client's connection is readable: it ended (SIGKILL); its command goes too."""
        with contextlib.suppress(OSError):
            if conn.recv(1):
                return  # a client sends nothing after its request
        for pid, other in self.children.items():
            if other is conn:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _import_what_jobs_use() -> None:
    """The modules the built-in steps import late (their jobs' and spawners' imports),
    and the built-in jterator modules (which ``jterator init`` checks by importing)."""
    import importlib
    import pkgutil

    from tmlib.workflow.step import BUILTIN_STEPS, get_step

    modules: list[str] = []
    for name in BUILTIN_STEPS:
        with contextlib.suppress(Exception):
            modules.extend(get_step(name).late_imports())
    with contextlib.suppress(Exception):
        package = importlib.import_module("jtmodules")
        modules.extend(f"jtmodules.{m.name}" for m in pkgutil.iter_modules(package.__path__))
    for module in modules:
        with contextlib.suppress(Exception):
            importlib.import_module(module)


def _reopen_standard_streams() -> None:
    """Text streams on the new descriptors, buffered as Python buffers them at start."""
    encoding = sys.__stdout__.encoding if sys.__stdout__ else "utf-8"
    sys.stdin = sys.__stdin__ = open(0, encoding=encoding, closefd=False)  # noqa: SIM115
    sys.stdout = sys.__stdout__ = open(  # noqa: SIM115
        1, "w", encoding=encoding, closefd=False, buffering=1 if os.isatty(1) else -1
    )
    sys.stderr = sys.__stderr__ = open(  # noqa: SIM115
        2, "w", encoding=encoding, errors="backslashreplace", closefd=False, buffering=1
    )


def _exit_code(program: Any) -> int:
    try:
        program()
    except SystemExit as exit_:
        code = exit_.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # through the imported module: the programs' hook reads *its* `_serving`
    # (this file run as __main__ is another module object with its own globals)
    from tmlib.cli import warm

    warm.Server(Path(sys.argv[1])).serve()
    os._exit(0)  # no interpreter teardown, nor waiting for the libraries' threads
