"""The command line of every step, made from its class.

``<step> [-v...] EXPERIMENT_ID {init,run,submit,resubmit,collect,cleanup,info,log}``
"""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

import click

from tmlib.cli.base import EXIT_FAILED, EXIT_USAGE, Program, handle_errors, verbosity_option
from tmlib.errors import UserError
from tmlib.lazy import lazy_import
from tmlib.workflow import args as arguments
from tmlib.workflow.display import LiveDisplay
from tmlib.workflow.step import Step, job_name, prestart_jobs

# every step's program imports this module: its --help needs neither
manager = lazy_import("tmlib.workflow.manager")
yaml = lazy_import("yaml")

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def job_phase(f: Callable) -> Callable:
    """For init/run/collect: say JOB COMPLETED, or JOB FAILED with one line saying why.

    Exit 2 for bad input, 1 otherwise. The traceback follows when the phase
    runs as a job (``TMAPS_JOB`` is set: stderr is the job log) or with -vv.
    """

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        ctx = click.get_current_context()
        show_traceback = bool(os.environ.get("TMAPS_JOB")) or ctx.obj.get("verbosity", 0) >= 2
        from tmlib.models.session import use_job_connections

        # a job holds a connection only while it talks to the database: on a
        # cluster hundreds run at once, and most of their time they compute
        use_job_connections()
        try:
            f(*args, **kwargs)
        except Exception as err:
            bad_input = isinstance(err, UserError)
            reason = str(err) if bad_input else f"{type(err).__name__}: {err}"
            click.echo(f"JOB FAILED: {reason}", err=True)
            if show_traceback:
                traceback.print_exc()
            sys.exit(EXIT_USAGE if bad_input else EXIT_FAILED)
        click.echo("JOB COMPLETED")

    return wrapper


def drive(run: manager.Run, interval: float, depth: int) -> None:
    """Run a submission in the foreground with a live display; exit 1 unless all succeeded."""
    from tmlib.workflow.jobs.engine import Result

    display = LiveDisplay(interval=interval, depth=depth)
    experiment_id = run.submission.experiment_id
    program = run.submission.program

    def show(_run: manager.Run) -> None:
        if display.due():  # reading the whole status tree is not free: only when drawn
            display.update(manager.status(experiment_id, program))

    result = run(show)
    tree = manager.status(experiment_id, program)
    display.update(tree, force=True)
    if result is not Result.OK:
        command = "tm_workflow" if program == "workflow" else program
        explained = _explained_failure(tree)
        click.echo(
            f"{command}: error: submission {run.submission.id} failed"
            + (f" ({explained})" if explained else "")
            + f"; see 'tm_workflow {experiment_id} status' and the failed job's log "
            f"('<step> {experiment_id} log -p run -j N')",
            err=True,
        )
        sys.exit(EXIT_FAILED)
    click.echo(f"submission {run.submission.id}: all jobs succeeded")


def _explained_failure(tree: dict) -> str:
    """The first failed job the scheduler explained (a lost node, a time limit), or ""."""
    if tree.get("reason") and tree.get("exitcode") not in (0, None):
        return f"{tree['name']}: {tree['reason']}"
    for child in tree.get("subtasks", []):
        found = _explained_failure(child)
        if found:
            return found
    return ""


def _submission_options(f: Callable) -> Callable:
    for argument in reversed(arguments.SUBMISSION_ARGS):
        f = argument.click_option()(f)
    return f


def monitor_options(f: Callable) -> Callable:
    """``-d/--depth`` and ``-i/--interval`` of the live status of a foreground submission."""
    f = click.option(
        "-d", "--depth", default=2, show_default=True,
        help="Levels of the live status tree (1 stages, 2 steps, 3 phases).",
    )(f)  # fmt: skip
    return click.option(
        "-i", "--interval", default=1.0, show_default=True, help="Seconds between status updates."
    )(f)


def step_program(
    step_cls: type[Step], extra_commands: tuple[click.Command, ...] = ()
) -> click.Group:
    """Build the click program of a step.

    `extra_commands` are added beside the standard ones (e.g. illuminati's
    ``export``); they find the experiment id in ``ctx.obj["experiment_id"]``.
    """

    @click.group(
        name=step_cls.name,
        cls=Program,
        warm=True,
        context_settings=_CONTEXT,
        help=f"{step_cls.fullname}: {step_cls.description}\n\n"
        "Methods run in order: init (cut the work into batches), run (one job per batch, "
        "-j N), collect. 'submit' runs the run and collect jobs on the configured backend "
        "(TMAPS_BACKEND). Exit status: 0 success, 1 failure, 2 bad usage or input.",
    )
    @click.argument("experiment_id", type=int)
    @verbosity_option
    @click.pass_context
    def main(ctx: click.Context, experiment_id: int) -> None:
        ctx.obj["step"] = step_cls(experiment_id)
        ctx.obj["experiment_id"] = experiment_id

    def step() -> Step:
        return click.get_current_context().obj["step"]

    def verbosity() -> int:
        return click.get_current_context().obj.get("verbosity", 0)

    @main.command(help="Remove earlier output and write the batches of the run jobs.")
    @verbosity_option
    @job_phase
    def init(**values: Any) -> None:
        n = step().init(values)
        click.echo(f"{step_cls.name}: {n} run job(s); batches in {step().batches_location}")

    for argument in reversed(step_cls.batch_args):
        init = argument.click_option()(init)

    @main.command(help="Run one job (its batch was written by init).")
    @click.option("-j", "--job", "job_id", type=int, required=True, help="Job id (1-based).")
    @click.option("--assume-clean-state", is_flag=True, help="Accepted for compatibility.")
    @verbosity_option
    @job_phase
    def run(job_id: int, assume_clean_state: bool) -> None:
        step().run(job_id)

    if step_cls.has_collect:

        @main.command(help="Run the collect job (after all run jobs succeeded).")
        @verbosity_option
        @job_phase
        def collect() -> None:
            step().collect()

    @main.command(help="Remove the output of earlier runs.")
    @verbosity_option
    @handle_errors
    def cleanup() -> None:
        step().cleanup()
        click.echo(f"{step_cls.name}: removed earlier output")

    @main.command(help="Run the run (and collect) jobs of an init'ed step on the backend.")
    @_submission_options
    @monitor_options
    @verbosity_option
    @handle_errors
    def submit(depth: int, interval: float, **submission_args: Any) -> None:
        prestart_jobs()  # the job spawner's imports overlap with this program's
        run = manager.submit_step(
            step().experiment_id, step_cls.name, submission_args, verbosity=verbosity()
        )
        drive(run, interval, depth)

    @main.command(help="Continue the last submission of this step: failed jobs run again.")
    @monitor_options
    @verbosity_option
    @handle_errors
    def resubmit(depth: int, interval: float) -> None:
        prestart_jobs()
        drive(manager.resume(step().experiment_id, step_cls.name), interval, depth)

    @main.command(help="Show the batch of a job.")
    @click.option("-p", "--phase", type=click.Choice(["run", "collect"]), required=True)
    @click.option("-j", "--job", "job_id", type=int, help="Job id (with --phase run).")
    @handle_errors
    def info(phase: str, job_id: int | None) -> None:
        if phase == "run" and job_id is None:
            raise click.UsageError("--job is required with --phase run")
        batch = step().read_batch(phase, job_id or 1)
        click.echo("JOB DESCRIPTION\n===============")
        click.echo(yaml.safe_dump(batch, sort_keys=False).rstrip())

    @main.command(help="Show the output and errors of a job's latest run.")
    @click.option("-p", "--phase", type=click.Choice(["init", "run", "collect"]), required=True)
    @click.option("-j", "--job", "job_id", type=int, help="Job id (with --phase run).")
    @handle_errors
    def log(phase: str, job_id: int | None) -> None:
        if phase == "run" and job_id is None:
            raise click.UsageError("--job is required with --phase run")
        name = job_name(step_cls.name, phase, job_id or 1)
        base = step().log_location / name
        out, err = base.with_suffix(".out"), base.with_suffix(".err")
        if not out.exists() and not err.exists():
            raise UserError(f"no log of job {name} in {step().log_location}")
        for title, path in (("OUTPUT", out), ("ERROR", err)):
            click.echo(f"{title}\n{'=' * len(title)}")
            click.echo(path.read_text() if path.exists() else "")

    for command in extra_commands:
        main.add_command(command)
    return main
