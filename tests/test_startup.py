"""Commands start fast: ``--help`` and a step's bookkeeping import no heavy library.

Wall-clock start-up time is measured by ``benchmarks/startup.py``; here the
robust proxy for it is checked: which modules a command imports. Every program
of ``[project.scripts]`` answers ``--help`` without numpy, SQLAlchemy, OpenCV
and the like, and a step's ``info``/``log`` and ``tm_workflow ID status`` do
without the image libraries.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from helpers import cli, env, ok

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]

#: what no ``--help`` may import (each costs tens to hundreds of milliseconds)
HEAVY = (
    "numpy", "scipy", "skimage", "cv2", "mahotas", "pandas", "polars", "sklearn", "h5py",
    "sqlalchemy", "flask", "requests", "tifffile", "shapely", "yaml", "PIL", "argon2",
    "zarr", "ome_zarr", "anndata",
)  # fmt: skip
#: what a step's bookkeeping (init of the metadata steps, info, log, status) may not import
IMAGE_LIBRARIES = (
    "numpy", "scipy", "skimage", "cv2", "mahotas", "pandas", "polars", "sklearn", "h5py",
    "tifffile", "shapely", "PIL", "flask", "requests",
)  # fmt: skip

# Runs `program`'s entry point with `args` in a fresh interpreter and prints
# which of the given top-level packages it imported (JSON), after the output.
_PROBE = textwrap.dedent(
    """
    import importlib, json, sys
    module, attr = sys.argv[1].split(":")
    watched = sys.argv[2].split(",")
    try:
        getattr(importlib.import_module(module), attr)(sys.argv[4:], prog_name=sys.argv[3])
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    loaded = sorted({m.split(".")[0] for m in sys.modules} & set(watched))
    print("\\nPROBE " + json.dumps({"code": code, "loaded": loaded}))
    """
)


def probe(program: str, *args: object, watched: tuple[str, ...] = HEAVY) -> tuple[int, list[str]]:
    """Exit code of ``program ARGS`` and the `watched` packages it imported."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, SCRIPTS[program], ",".join(watched), program,
         *map(str, args)],
        env=env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PROBE ")]
    assert lines, (proc.returncode, proc.stdout, proc.stderr)
    result = json.loads(lines[-1][len("PROBE ") :])
    return result["code"], result["loaded"]


def test_every_program_is_checked() -> None:
    assert {"tm_add", "tm_workflow", "jterator", "tm_client", "tm_server", "tm_tool"} <= set(
        SCRIPTS
    )


@pytest.mark.parametrize("program", sorted(SCRIPTS))
def test_help_exits_0_and_shows_usage(program: str) -> None:
    out = ok(cli(program, "--help")).stdout
    assert out.startswith(f"Usage: {program} "), out[:200]


@pytest.mark.parametrize("program", sorted(SCRIPTS))
def test_help_imports_no_heavy_library(program: str) -> None:
    code, loaded = probe(program, "--help")
    assert code == 0
    assert loaded == [], f"{program} --help imports {loaded}"


@pytest.mark.parametrize("step", ["metaextract", "jterator", "illuminati"])
def test_help_of_a_step_command_imports_no_heavy_library(step: str) -> None:
    """The help of ``init`` lists the step's arguments: still no heavy import."""
    code, loaded = probe(step, 1, "init", "--help")
    assert code == 0
    assert loaded == [], f"{step} 1 init --help imports {loaded}"


def test_only_the_asked_step_is_imported() -> None:
    """A step's program loads its own step's module, not every step's."""
    script = (
        "import sys; from tmlib.workflow.step import get_step; get_step('metaextract'); "
        "print(sorted(m for m in sys.modules if m.startswith('tmlib.workflow.steps.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "['tmlib.workflow.steps.metaextract']"


def test_lazy_modules_import_on_first_use() -> None:
    script = (
        "import sys; from tmlib.lazy import lazy_import; j = lazy_import('json'); "
        "sys.modules.pop('json', None); before = 'json' in sys.modules; "
        "print(before, j.dumps([1]), 'json' in sys.modules, repr(j))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False [1] True <lazy module 'json' (imported)>"


@pytest.mark.parametrize("tmaps", ["sqlite"], indirect=True)
def test_bookkeeping_commands_import_no_image_library(tmaps, tmp_path: Path) -> None:
    """init of metaextract, info, log and tm_workflow status on a registered plate."""
    plate = tmp_path / "plate"
    ok(cli("tm_simulate", "plate", plate, "--wells", 1, "--sites", 2, "--size", "64x64", "-q"))
    ok(cli("tm_add", "user", "-n", "u", "-p", "pw", "-e", "u@example.org"))
    eid = ok(cli("tm_add", "experiment", "-e", "e", "-u", "u")).stdout.strip()
    ok(cli("tm_add", "plate", "-e", eid, "-p", "p"))
    ok(cli("tm_add", "acquisition", "-e", eid, "-p", "p", "-a", "a"))
    ok(cli("tm_add", "files", "-e", eid, "-p", "p", "-a", "a", "-s", plate))

    # no submission yet: status and log say so (exit 2) after the same imports
    for args, expected in (
        (("metaextract", eid, "init"), 0),
        (("metaextract", eid, "info", "-p", "run", "-j", 1), 0),
        (("metaextract", eid, "log", "-p", "run", "-j", 1), 2),
        (("tm_workflow", eid, "status"), 2),
    ):
        code, loaded = probe(*args, watched=IMAGE_LIBRARIES)
        assert code == expected, args
        assert loaded == [], f"{' '.join(map(str, args))} imports {loaded}"
