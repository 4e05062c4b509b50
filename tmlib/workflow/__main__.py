"""``python -m tmlib.workflow STEP ...``: run a step's command line (how jobs start steps)."""

import sys

import numpy  # noqa: F401 - what every job uses, imported once by the spawner
from sqlalchemy.orm import configure_mappers

import tmlib.models  # noqa: F401
import tmlib.storage  # noqa: F401 - h5py: what jobs read and write images with
from tmlib.workflow.step import get_step

# Importing this module is what the local backend's spawner preloads: configure
# the ORM here, once, so forked jobs do not spend ~0.25 s each doing it again.
configure_mappers()


#: (step, experiment) pairs whose imports :func:`prepare` made
_warm: set[tuple[str, str]] = set()


def prepare(argv: list[str], started: bool = False) -> None:
    """In the local backend's job spawner, before it forks the job `argv` and again
    once it `started` it: the step's :meth:`~tmlib.workflow.step.Step.warm_up`, once
    per step and experiment. For an init job, after it started: the init job runs
    while the spawner imports what the run jobs will need."""
    words = [w for w in argv if not w.startswith("-")]
    if len(words) < 2 or not words[1].isdigit() or (words[0], words[1]) in _warm:
        return
    if started != (len(words) > 2 and words[2] == "init"):
        return
    from tmlib.models.session import dispose_engines

    try:
        get_step(words[0])(int(words[1])).warm_up()
        _warm.add((words[0], words[1]))
    except Exception:  # noqa: BLE001 - the job itself reports what is wrong
        pass
    finally:
        dispose_engines()  # forked jobs must not share this process's connections


def run(argv: list[str]) -> int:
    """Run ``STEP [-v...] EXPERIMENT_ID METHOD [OPTIONS]``; returns the exit code."""
    if not argv:
        print("usage: python -m tmlib.workflow STEP [-v...] EXPERIMENT_ID METHOD", file=sys.stderr)
        return 2
    name = argv[0]
    module = sys.modules[get_step(name).__module__]
    try:
        module.main(argv[1:], prog_name=name)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
