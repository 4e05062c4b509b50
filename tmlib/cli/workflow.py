"""``tm_workflow``: submit, resume, watch and kill an experiment's workflow."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tmlib.cli.base import Program, handle_errors, verbosity_option
from tmlib.lazy import lazy_import
from tmlib.workflow.cli import drive, monitor_options
from tmlib.workflow.display import status_lines
from tmlib.workflow.step import prestart_jobs

# imported by the commands that use them: --help needs neither
manager = lazy_import("tmlib.workflow.manager")
yaml = lazy_import("yaml")


@click.group(
    name="tm_workflow",
    cls=Program,
    warm=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  tm_workflow 1 submit                          run all active stages, in the foreground
  tm_workflow 1 resubmit --stage image_preprocessing
  tm_workflow 1 resume                          after a crash or kill: finished jobs are kept
  tm_workflow 1 status --json
  tm_workflow 1 description > wf.yaml; edit; tm_workflow 1 description --set wf.yaml

Jobs run on TMAPS_BACKEND (default: local, on TMAPS_CORES cores). Their logs are in
<experiment>/workflow/<step>/log/ ('<step> ID log -p run -j N' shows one).""",
)
@click.argument("experiment_id", type=int)
@verbosity_option
@click.pass_context
def main(ctx: click.Context, experiment_id: int) -> None:
    """Run the workflow of experiment EXPERIMENT_ID: stages of steps, each a set of jobs.

    Exit status: 0 when every job succeeded, 1 when a job failed, 2 for bad
    usage or input (one line on stderr says what).
    """
    ctx.obj["experiment_id"] = experiment_id


def _experiment_id() -> int:
    return click.get_current_context().obj["experiment_id"]


def _verbosity() -> int:
    return click.get_current_context().obj.get("verbosity", 0)


@main.command()
@monitor_options
@click.option("-f", "--force", is_flag=True, help="Run inactive stages and steps too.")
@verbosity_option
@handle_errors
def submit(depth: int, interval: float, force: bool) -> None:
    """Submit the workflow and follow it to the end (live status on stderr)."""
    prestart_jobs()  # the job spawner's imports overlap with this program's
    description = manager.load_description(_experiment_id())
    if force:
        for stage in description.stages:
            stage.active = True
            for step in stage.steps:
                step.active = True
    run = manager.submit_workflow(_experiment_id(), description, verbosity=_verbosity())
    drive(run, interval, depth)


@main.command()
@click.option("-s", "--stage", required=True, help="Stage to start from, e.g. image_preprocessing.")
@monitor_options
@verbosity_option
@handle_errors
def resubmit(stage: str, depth: int, interval: float) -> None:
    """Run the workflow again from STAGE on (earlier stages are kept)."""
    prestart_jobs()
    run = manager.submit_workflow(_experiment_id(), start_stage=stage, verbosity=_verbosity())
    drive(run, interval, depth)


@main.command()
@monitor_options
@verbosity_option
@handle_errors
def resume(depth: int, interval: float) -> None:
    """Continue the last submission: finished jobs are not run again."""
    prestart_jobs()
    drive(manager.resume(_experiment_id()), interval, depth)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the whole tree as JSON.")
@click.option("-d", "--depth", default=2, show_default=True, help="Levels shown (text).")
@handle_errors
def status(as_json: bool, depth: int) -> None:
    """Show the state of the last submission (name, state, done, failed, time, memory)."""
    tree = manager.status(_experiment_id())
    if as_json:
        click.echo(json.dumps(tree, indent=2, default=str))
    else:
        click.echo("\n".join(status_lines(tree, depth)))


@main.command()
@handle_errors
def kill() -> None:
    """Stop the last submission (its engine, or its running jobs if the engine died)."""
    n = manager.kill(_experiment_id())
    click.echo(f"signalled {n} process(es)")


@main.command()
@click.option(
    "--set",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Validate this YAML file and store it as the experiment's description.",
)
@handle_errors
def description(path: Path | None) -> None:
    """Print the workflow description (YAML), or replace it with --set FILE."""
    from tmlib.workflow.description import WorkflowDescription

    if path is not None:
        WorkflowDescription.load(path).save(manager.description_path(_experiment_id()))
        click.echo(f"stored {path} as the workflow description")
        return
    stored = manager.description_path(_experiment_id())
    if stored.is_file():
        click.echo(stored.read_text(), nl=False)
        return
    # the default one, as it would be stored (printing never stores it)
    default = manager.load_description(_experiment_id()).to_dict()
    click.echo(yaml.safe_dump(default, sort_keys=False), nl=False)
