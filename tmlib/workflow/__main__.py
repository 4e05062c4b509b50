"""``python -m tmlib.workflow STEP ...``: run a step's command line (how jobs start steps)."""

import sys

from tmlib.workflow.step import get_step


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m tmlib.workflow STEP [-v...] EXPERIMENT_ID METHOD [OPTIONS]")
    name = sys.argv[1]
    module = sys.modules[get_step(name).__module__]
    module.main(sys.argv[2:], prog_name=name)


if __name__ == "__main__":
    main()
