"""A small process that starts the local backend's jobs and records how they end.

Run as ``python -S -E spawner.py`` by :class:`~tmlib.workflow.jobs.backends.LocalBackend`;
it imports nothing but the standard library, for two reasons:

* a job's peak memory (``ru_maxrss``) includes the memory of the process
  that forked it; forking from this ~10 MB process instead of the engine
  (~150 MB with SQLAlchemy and numpy) keeps the figure honest;
* it writes each job's exit file itself, and keeps doing so after the engine
  died (its stdin closes), so a resumed engine knows which jobs finished.

With ``--preload MODULE:FUNCTION`` it imports that entry point once and runs
``"call"`` jobs by forking and calling ``FUNCTION(argv)`` in the child: no
interpreter start-up and no imports per job (~1.3 s saved each for the step
programs). Before it forks a job it calls the module's ``prepare(argv)``, if
there is one, so that the imports a step's jobs make late are made once. Such
a child starts with some of the spawner's pages resident; it reports that size
before it runs the job, and it is subtracted from its peak.

With ``--task MANIFEST INDEX`` it runs one job of a manifest and exits: that
is what each task of a SLURM job array runs (:func:`task`).

Protocol: JSON lines. In: ``{"op": "start" | "call", "name", "argv", "out",
"err", "exit", "pidfile"}`` or ``{"op": "kill", "name", "signal"}``. Out: ``{"name", "pid"}``
once started, ``{"name", "exitcode", "time", "cpu_time", "memory"}`` once ended.
"""

import contextlib
import json
import os
import select
import signal
import sys
import time

_entry = None  # the preloaded function of "call" jobs
_prepare = None  # the preloaded module's prepare(argv), if any: runs here before each fork
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
_HOST = os.uname().nodename


def _preload(spec):
    global _entry, _prepare
    import importlib

    module, function = spec.split(":")
    loaded = importlib.import_module(module)
    _entry = getattr(loaded, function)
    _prepare = getattr(loaded, "prepare", None)


def _prepare_quietly(argv, started):
    """The preloaded ``prepare(argv, started)``, before a job is forked and after:
    imports shared by later jobs of a step. Silent (stdout is the engine's pipe) and
    never failing: the job itself reports what is wrong."""
    import io
    import warnings

    sink = io.StringIO()
    try:
        with (
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            _prepare(argv, started)
    except Exception:  # noqa: BLE001
        pass


def _resident_kb():
    """This process's resident size now (kB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE_KB


def _call(argv):
    """In a forked child: run the preloaded entry point, return its exit code."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.argv = list(argv)
    try:
        code = _entry(list(argv))
    except SystemExit as exc:
        code = exc.code
    except BaseException:  # noqa: BLE001 - the job's own failure: log it, exit 1
        import traceback

        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def _start(msg):
    """Fork the job; returns its pid and its resident size at the start (kB)."""
    out = os.open(msg["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open(msg["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    report, tell = os.pipe()
    pid = os.fork()
    if pid == 0:  # the job
        code = 127
        os.close(report)
        # what this child holds before it does anything: not the job's memory
        os.write(tell, str(_resident_kb() if msg["op"] == "call" else 0).encode())
        os.close(tell)
        try:
            os.setsid()  # its own process group, so a kill reaches its children
            os.environ["TMAPS_JOB"] = msg["name"]  # tells the program its stderr is a job log
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(out, 1)
            os.dup2(err, 2)
            if msg["op"] == "call":
                code = _call(msg["argv"])
            else:
                os.execvp(msg["argv"][0], msg["argv"])
        except BaseException as exc:  # noqa: BLE001 - report and leave the forked child
            os.write(2, f"cannot start {msg['argv'][0]}: {exc}\n".encode())
        os._exit(code)
    os.close(out)
    os.close(err)
    os.close(tell)
    with os.fdopen(report) as f:
        start_kb = int(f.read() or 0)
    return pid, start_kb


def _write_json(path, record):
    """Write a small JSON file atomically; False if its directory is gone (deleted under us)."""
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps(record) + "\n")
        os.replace(tmp, path)
    except OSError:
        # e.g. the experiment was deleted: its jobs' records have no home any
        # more, but this process must go on reaping and reporting its jobs
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False
    return True


def _start_time(pid):
    """When process `pid` started (field 22 of its stat, clock ticks since boot), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def main():
    _self_start = _start_time(os.getpid())
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
                    if msg["op"] in ("start", "call"):
                        warm = msg["op"] == "call" and _prepare is not None
                        if warm:
                            _prepare_quietly(msg["argv"], False)
                        pid, baseline_kb = _start(msg)
                        jobs[pid] = (msg["name"], msg["exit"], time.time(), baseline_kb)
                        pids[msg["name"]] = pid
                        # a resumed engine finds the job through this file, even if the
                        # engine that asked for it died before it learnt the pid
                        # with start times: a kill after a crash checks that the pid
                        # still names this job before it signals it
                        where = {
                            "pid": pid,
                            "spawner": os.getpid(),
                            "host": _HOST,
                            "pid_start": _start_time(pid),
                            "spawner_start": _self_start,
                        }
                        _write_json(msg["pidfile"], where)
                        _send({"name": msg["name"], **where})
                        if warm:  # e.g. while an init job runs: for its run jobs
                            _prepare_quietly(msg["argv"], True)
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
            name, exit_file, start, baseline_kb = jobs.pop(pid)
            pids.pop(name, None)
            peak_kb = usage.ru_maxrss - baseline_kb
            record = {
                "name": name,
                "exitcode": os.waitstatus_to_exitcode(status),
                "time": time.time() - start,
                "cpu_time": usage.ru_utime + usage.ru_stime,
                "memory": max(peak_kb, 0) / 1024,
            }
            _write_json(exit_file, record)
            if stdin_open:
                _send(record)


def task(manifest, index):
    """Run job `index` of a manifest (a JSON list of "start" messages) and record its end.

    What a task of a SLURM or Grid Engine job array runs: the scheduler
    starts it, it starts the job, waits, and writes the job's exit file with
    its time, CPU time and peak memory. A SIGTERM (scancel, qdel, the time
    limit) is passed on to the job, whose end is recorded as killed by it.
    Returns the job's exit status.
    """
    with open(manifest) as f:
        msg = dict(json.load(f)[index], op="start")
    start = time.time()
    pid, _ = _start(msg)
    # how a resumed engine finds this task even if it died before it noted the id
    if "SGE_TASK_ID" in os.environ:
        cluster_task = f"{os.environ.get('JOB_ID', '')}.{os.environ['SGE_TASK_ID']}"
    else:
        array_job = os.environ.get("SLURM_ARRAY_JOB_ID", os.environ.get("SLURM_JOB_ID", ""))
        cluster_task = f"{array_job}_{index}"
    # the scheduler's name of the node: several nodes may share a host (test clusters)
    node = os.environ.get("SLURMD_NODENAME") or _HOST
    where = {
        "pid": pid,
        "host": _HOST,
        "node": node,
        "pid_start": _start_time(pid),
        "cluster_task": cluster_task,
    }
    _write_json(msg["pidfile"], where)

    stopped = []  # the signals the scheduler sent

    def forward(signum, _frame):
        stopped.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    while True:
        try:
            _, status, usage = os.wait4(pid, 0)
            break
        except InterruptedError:  # a signal arrived; wait on
            continue
    exitcode = os.waitstatus_to_exitcode(status)
    if stopped and exitcode != 0:
        # Stopped by the scheduler: killed by its signal, also where a shell in the
        # job saw its child die first and exited 128 + signal (SLURM signals each
        # process of the task itself, in no fixed order).
        exitcode = -stopped[0]
    record = {
        "name": msg["name"],
        "exitcode": exitcode,
        "time": time.time() - start,
        "cpu_time": usage.ru_utime + usage.ru_stime,
        "memory": usage.ru_maxrss / 1024,
        "node": node,
    }
    _write_json(msg["exit"], record)
    return record["exitcode"]


def _send(record):
    try:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        pass


def serve(preload=None):
    """Serve an engine on stdin/stdout (with `preload`: "module:function") and exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the engine to handle
    if preload is not None:
        _preload(preload)
    main()
    sys.stdout.flush()
    # no interpreter teardown: with a preloaded program's modules it takes about a
    # second, which the engine, waiting for this process to end, would spend too
    os._exit(0)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--task":
        code = task(sys.argv[2], int(sys.argv[3]))
        sys.exit(code if code >= 0 else 128 - code)
    serve(sys.argv[2] if len(sys.argv) == 3 and sys.argv[1] == "--preload" else None)
