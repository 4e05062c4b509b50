"""``tm_tool EXPERIMENT_ID --name TOOL --submission-id ID``: run a stored tool request.

Reads ``<experiment>/tools/batches/<TOOL>_<ID>.json``, runs the tool and stores
its result (replacing an earlier result of the same submission). Exit codes:
0 success, 1 failure, 2 bad usage or bad input (one line on stderr).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from tmlib.cli.base import EXIT_FAILED, fail, handle_errors, start_program, verbosity_option
from tmlib.errors import InvalidInputError


class _Command(click.Command):
    """A command whose usage errors are one line on stderr (exit 2)."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        start_program(self.name or "tm_tool")
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as err:
            fail(self.name or "tm_tool", err.format_message(), err.exit_code)
        except click.ClickException as err:
            err.show()
            sys.exit(err.exit_code)
        except click.Abort:
            fail(self.name or "tm_tool", "aborted", EXIT_FAILED)
        sys.exit(result if isinstance(result, int) else 0)


@click.command("tm_tool", cls=_Command)
@verbosity_option
@click.argument("experiment_id", type=int)
@click.option("--name", "-n", "tool_name", required=True, help="Tool, e.g. Classification.")
@click.option(
    "--submission-id",
    "--submission_id",
    "-s",
    "submission_id",
    type=int,
    help="Submission whose stored request to run.",
)
@click.option(
    "--request",
    "request_token",
    help="Token of a submitted request (what the submitted job passes; instead of -s).",
)
@handle_errors
def main(
    experiment_id: int, tool_name: str, submission_id: int | None, request_token: str | None
) -> int:
    """Run the analysis tool request of a submission and store its result.

    Prints the id of the result.
    """
    from threadpoolctl import threadpool_limits

    from tmlib.config import load_settings
    from tmlib.models.session import use_job_connections
    from tmlib.tools import run_request, run_tool

    use_job_connections()  # a tool job, like a step's: no idle connection while it computes
    if (submission_id is None) == (request_token is None):
        raise InvalidInputError("give either --submission-id or --request")
    # numerical libraries start a thread per core: keep to the cores the job asked for
    threadpool_limits(load_settings().tool_cores)
    if submission_id is not None:
        result_id = run_tool(experiment_id, tool_name, submission_id)
    else:
        submission_id, result_id = run_request(experiment_id, tool_name, request_token)
    click.echo(str(result_id))
    return 0


if __name__ == "__main__":
    main(prog_name="tm_tool")
