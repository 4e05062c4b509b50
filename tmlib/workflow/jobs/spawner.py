"""A small process that starts the local backend's jobs and records how they end.

Run as ``python -S -E spawner.py`` by :class:`~tmlib.workflow.jobs.backends.LocalBackend`;
it imports nothing but the standard library, for two reasons:

* a job's peak memory (``ru_maxrss``) includes the memory of the process
  that forked it; forking from this ~10 MB process instead of the engine
  (~150 MB with SQLAlchemy and numpy) keeps the figure honest;
* it writes each job's exit file itself, and keeps doing so after the engine
  died (its stdin closes), so a resumed engine knows which jobs finished.

Protocol: JSON lines. In: ``{"op": "start", "name", "argv", "out", "err",
"exit"}`` or ``{"op": "kill", "name", "signal"}``. Out: ``{"name", "pid"}``
once started, ``{"name", "exitcode", "time", "cpu_time", "memory"}`` once ended.
"""

import contextlib
import json
import os
import select
import signal
import sys
import time


def _start(msg):
    out = os.open(msg["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open(msg["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    pid = os.fork()
    if pid == 0:  # the job
        try:
            os.setsid()  # its own process group, so a kill reaches its children
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(out, 1)
            os.dup2(err, 2)
            os.execvp(msg["argv"][0], msg["argv"])
        except BaseException as exc:  # noqa: BLE001 - report and leave the forked child
            os.write(2, f"cannot start {msg['argv'][0]}: {exc}\n".encode())
        os._exit(127)
    os.close(out)
    os.close(err)
    return pid


def _write_exit_file(path, record):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(record) + "\n")
    os.replace(tmp, path)


def main():
    jobs = {}  # pid -> (name, exit file, start time)
    pids = {}  # name -> pid
    stdin_open = True
    buffer = b""
    while stdin_open or jobs:
        if stdin_open:
            ready, _, _ = select.select([0], [], [], 0.02)
            if ready:
                chunk = os.read(0, 65536)
                if not chunk:
                    stdin_open = False  # the engine is gone: finish what runs, then exit
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    msg = json.loads(line)
                    if msg["op"] == "start":
                        pid = _start(msg)
                        jobs[pid] = (msg["name"], msg["exit"], time.time())
                        pids[msg["name"]] = pid
                        _send({"name": msg["name"], "pid": pid})
                    elif msg["op"] == "kill" and msg["name"] in pids:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(pids[msg["name"]], msg.get("signal", signal.SIGTERM))
        else:
            time.sleep(0.02)
        while jobs:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            name, exit_file, start = jobs.pop(pid)
            pids.pop(name, None)
            record = {
                "name": name,
                "exitcode": os.waitstatus_to_exitcode(status),
                "time": time.time() - start,
                "cpu_time": usage.ru_utime + usage.ru_stime,
                "memory": usage.ru_maxrss / 1024,
            }
            _write_exit_file(exit_file, record)
            if stdin_open:
                _send(record)


def _send(record):
    try:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        pass


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the engine to handle
    main()
