"""What every command line shares: verbosity, logging and turning errors into exit codes.

Exit codes: 0 success; 1 a job or step failed (or a bug); 2 bad usage or bad
input. Errors are one line on stderr; the traceback is shown with ``-vv``.

Every program first sets the file mode policy (:func:`start_program`): what it
writes is readable by its owner only, or by the group ``TMAPS_GROUP``.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from tmlib.errors import UserError

F = TypeVar("F", bound=Callable[..., Any])

#: -v count -> logging level
_LEVELS = {0: logging.WARNING, 1: logging.INFO}

EXIT_FAILED = 1
EXIT_USAGE = 2


# click >= 8.2 raises this for a bare group invocation; its message is the help.
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


def start_program(program: str) -> None:
    """What every program does first: apply the file mode policy (umask, group).

    An invalid setting (e.g. an unknown ``TMAPS_GROUP``) is one line on
    stderr and exit status 2, before anything is written.
    """
    from tmlib.permissions import apply_file_mode_policy

    try:
        apply_file_mode_policy()
    except UserError as err:
        fail(program, str(err), EXIT_USAGE)


class Program(click.Group):
    """A command group whose usage errors are one line on stderr (exit 2).

    click's standalone mode prints usage, a hint and the error on several
    lines; we promise one line, as for the library's own errors. The file
    mode policy is applied before the command runs (:func:`start_program`).
    """

    def __init__(self, *args: Any, warm: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: run in a warm-start server when one is up (:mod:`tmlib.cli.warm`)
        self.warm = warm

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        program = self.name or "tissuemaps"
        if self.warm and standalone_mode and not args and not kwargs:
            from tmlib.cli.warm import run_warm

            code = run_warm(program)
            if code is not None:
                sys.exit(code)
        start_program(program)
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except click.UsageError as err:
            if isinstance(err, _NO_ARGS_IS_HELP) and err.ctx is not None:
                click.echo(err.ctx.get_help(), err=True)  # bare program name: show the help
                sys.exit(err.exit_code)
            fail(program, err.format_message(), err.exit_code)
        except click.ClickException as err:
            err.show()
            sys.exit(err.exit_code)
        except click.Abort:
            fail(program, "aborted", EXIT_FAILED)
        sys.exit(result if isinstance(result, int) else 0)


def configure_logging(verbosity: int) -> None:
    """Log to stderr: warnings by default, INFO with ``-v``, DEBUG with ``-vv`` or more."""
    level = _LEVELS.get(verbosity, logging.DEBUG)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", force=True
    )


def verbosity_option(f: F) -> F:
    """A counted ``-v/--verbose`` option stored in ``ctx.obj['verbosity']``."""
    from tmlib.cli.aliases import UnderscoreOption

    def callback(ctx: click.Context, _param: click.Parameter, value: int) -> int:
        ctx.ensure_object(dict)
        ctx.obj["verbosity"] = max(value, ctx.obj.get("verbosity", 0))
        configure_logging(ctx.obj["verbosity"])
        return value

    return click.option(
        "-v",
        "--verbose",
        count=True,
        expose_value=False,
        is_eager=True,
        callback=callback,
        help="Say more: -v for progress messages, -vv for debug messages and tracebacks.",
        cls=UnderscoreOption,
        aliases=("--verbosity",),  # the original's spelling (its user guide)
    )(f)


def fail(program: str, message: str, code: int) -> None:
    """Print ``<program>: error: <message>`` to stderr and exit with `code`."""
    click.echo(f"{program}: error: {message}", err=True)
    sys.exit(code)


def handle_errors(f: F) -> F:
    """Turn library errors into one line on stderr and the documented exit code."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        program = ctx.find_root().info_name or "tissuemaps"
        verbosity = (ctx.obj or {}).get("verbosity", 0)
        try:
            return f(*args, **kwargs)
        except UserError as err:
            if verbosity >= 2:
                logging.getLogger(program).exception("bad input")
            fail(program, str(err), EXIT_USAGE)
        except (click.exceptions.Exit, click.ClickException, KeyboardInterrupt):
            raise
        except Exception as err:
            if verbosity >= 2:
                logging.getLogger(program).exception("failed")
            fail(
                program,
                f"{type(err).__name__}: {err} (run with -vv for the traceback)",
                EXIT_FAILED,
            )

    return wrapper  # type: ignore[return-value]
