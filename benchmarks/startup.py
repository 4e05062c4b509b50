"""Benchmark: how fast our programs start (``--help``, a step's init/info/log, workflow status).

Every program of ``[project.scripts]`` answers ``--help``; then, on a small
simulated plate (2 wells x 2 sites of 256x256 px, registered in a temporary
TMAPS_HOME with SQLite) taken through its first stages by ``tm_workflow``,
each step's ``init``, ``metaextract ID info`` and ``log`` of a run job, and
``tm_workflow ID status`` run. Each command is timed as a subprocess (Python's
start-up included), several times; the median wall time is compared with the
goal. The CPU seconds (user + system of the child) are reported beside it: on
a busy machine they vary less than the wall time.

Each command is timed twice: as users run it (``warm``: by default a command
runs in the warm-start server's fork, see :mod:`tmlib.cli.warm`; the server is
started first and not timed; the CPU seconds are then the calling program's
only) and in a process of its own (``cold``: ``TMAPS_WARM_START=0``, as the
first command of a session, or with warm start off). The goal is judged on
the warm figures; ``first_command_s`` is a status with no server up, which
starts one in the background.

Usage::

    python benchmarks/startup.py [--runs 5]

The last line of the output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from common import BIN, registered_plate, tm

ROOT = Path(__file__).resolve().parents[1]
HELP_GOAL_S = 0.3
COMMAND_GOAL_S = 0.6
#: stages run before the commands are timed (jterator's init needs only extracted images)
STAGES = ("image_conversion", "image_preprocessing", "pyramid_creation")
#: steps whose init is timed, later ones first: an init removes its step's earlier output,
#: which the steps after it do not read
INIT_STEPS = ("jterator", "illuminati", "corilla", "imextract", "metaconfig", "metaextract")


def timed(args: list[str], warm: bool, expect: int = 0) -> tuple[float, float]:
    """Wall and CPU seconds of one run of our program ``args``."""
    env = {**os.environ, "TMAPS_WARM_START": "1" if warm else "0"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != expect:
        sys.exit(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def measure(args: list[str], runs: int, goal: float) -> dict[str, object]:
    """Median wall and CPU seconds of `args`, warm (judged against `goal`) and cold."""
    result: dict[str, object] = {}
    for mode in ("warm", "cold"):
        walls, cpus = [], []
        for _ in range(runs):
            wall, cpu = timed(args, warm=mode == "warm")
            walls.append(wall)
            cpus.append(cpu)
        median = statistics.median(walls)
        print(f"  {' '.join(args)} ({mode}): {median:.3f} s (cpu {statistics.median(cpus):.3f} s)",
              file=sys.stderr)  # fmt: skip
        if mode == "warm":
            result.update(median_s=round(median, 3), min_s=round(min(walls), 3),
                          cpu_median_s=round(statistics.median(cpus), 3))  # fmt: skip
        else:
            result.update(cold_median_s=round(median, 3),
                          cold_cpu_median_s=round(statistics.median(cpus), 3))  # fmt: skip
    result.update(goal_s=goal, meets_goal=result["median_s"] <= goal)  # type: ignore[operator]
    return result


def start_warm_server() -> None:
    """Start the warm-start server of this code (not timed) and wait until it listens."""
    from tmlib.cli import warm

    path = warm.socket_path()
    timed(["tm_workflow", "--help"], warm=True)
    deadline = time.monotonic() + 120
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # its imports are done when it listens; let the machine settle


def run_first_stages(eid: str, directory: Path) -> None:
    """Submit the workflow with only :data:`STAGES` active, to its end."""
    import yaml

    description = yaml.safe_load(tm(["tm_workflow", eid, "description"]))
    for stage in description["stages"]:
        stage["active"] = stage["name"] in STAGES
    path = directory / "workflow.yaml"
    path.write_text(yaml.safe_dump(description, sort_keys=False))
    tm(["tm_workflow", eid, "description", "--set", str(path)])
    tm(["tm_workflow", eid, "submit"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    programs = sorted(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"])

    result: dict[str, object] = {
        "benchmark": "startup",
        "goal": {"help_s": HELP_GOAL_S, "commands_s": COMMAND_GOAL_S},
        "runs": args.runs,
    }
    with tempfile.TemporaryDirectory(prefix="tm-bench-", dir="/tmp") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "run").mkdir(mode=0o700)
        os.environ["XDG_RUNTIME_DIR"] = str(tmp_path / "run")  # this run's own server
        start_warm_server()
        print("--help of every program:", file=sys.stderr)
        helps = {p: measure([p, "--help"], args.runs, HELP_GOAL_S) for p in programs}

        print("a small plate through its first stages ...", file=sys.stderr)
        eid = registered_plate(tmp_path, "startup", wells=2, sites=2, size="256x256")
        os.environ["TMAPS_CORES"] = os.environ.get("TMAPS_CORES", "2")
        run_first_stages(eid, tmp_path)

        from tmlib.cli import warm

        warm.stop_server()
        time.sleep(1.0)
        first = timed(["tm_workflow", eid, "status"], warm=True)[0]  # starts a server
        start_warm_server()
        print("commands on it:", file=sys.stderr)
        commands = {
            "tm_workflow status": measure(["tm_workflow", eid, "status"], args.runs,
                                          COMMAND_GOAL_S),
            "metaextract info": measure(["metaextract", eid, "info", "-p", "run", "-j", "1"],
                                        args.runs, COMMAND_GOAL_S),
            "metaextract log": measure(["metaextract", eid, "log", "-p", "run", "-j", "1"],
                                       args.runs, COMMAND_GOAL_S),
        }  # fmt: skip
        for step in INIT_STEPS:
            commands[f"{step} init"] = measure([step, eid, "init"], args.runs, COMMAND_GOAL_S)
        warm.stop_server()

    result["help"] = helps
    result["commands"] = commands
    result["first_command_s"] = round(first, 3)
    result["slowest_help_s"] = max(h["median_s"] for h in helps.values())  # type: ignore[type-var]
    result["slowest_command_s"] = max(c["median_s"] for c in commands.values())  # type: ignore[type-var]
    result["slowest_cold_command_s"] = max(c["cold_median_s"] for c in commands.values())  # type: ignore[type-var]
    result["meets_goal"] = all(m["meets_goal"] for m in [*helps.values(), *commands.values()])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
