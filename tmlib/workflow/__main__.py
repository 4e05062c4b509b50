"""``python -m tmlib.workflow STEP ...``: run a step's command line (how jobs start steps)."""

import sys

from sqlalchemy.orm import configure_mappers

import tmlib.workflow.steps  # noqa: F401 - registers the steps
from tmlib.workflow.step import get_step

# Importing this module is what the local backend's spawner preloads: configure
# the ORM here, once, so forked jobs do not spend ~0.25 s each doing it again.
configure_mappers()


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
