"""``tm_admin``: keep an installation's databases at the schema this release needs."""

from __future__ import annotations

import sys

import click

from tmlib.cli.base import EXIT_FAILED, Program, handle_errors, verbosity_option


@click.group(
    name="tm_admin",
    cls=Program,
    warm=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  tm_admin upgrade --check      what would be upgraded (exit status 1 if anything)
  tm_admin upgrade              upgrade the main database and every experiment

The database is TMAPS_DB_URL (default: SQLite under TMAPS_HOME, ~/.tmaps).""",
)
@verbosity_option
def main() -> None:
    """Administer a TissueMAPS installation.

    Exit status: 0 on success, 1 when a database could not be upgraded, 2 for
    bad usage or bad input (one line on stderr says what).
    """


@main.command(
    epilog="""\b
DESCRIPTION
  Every release records the schema revision of each database it makes: of
  the main database (users, experiment references, jobs) and of each
  experiment's tables (its SQLite file <experiment>/experiment.db, or its
  PostgreSQL schema experiment_<id>). A program that meets a database at an
  older revision stops with one line naming this command (steps exit with
  status 2; the server answers 503). Databases made by release 0.1 have no
  revision: they are upgraded like the others.

\b
  The main database is upgraded first, then each experiment in turn. Each
  database is upgraded in a transaction of its own, which also records its
  new revision: a run that is stopped (Ctrl-C, kill, power failure) leaves
  every database at either its old or its new revision, and running the
  command again carries on where it stopped, skipping those done. Running it
  when nothing is to do changes nothing. An experiment that fails is left as
  it was, reported, and the others go on.

\b
  Stop the server and running workflows first: they would fail while their
  tables change, and would keep using the old schema after it. Back up the
  database (and, on SQLite, the experiment directories) before a release
  upgrade, as before any operation that rewrites tables.

\b
EXIT STATUS
  0  every database is at this release's revision
  1  some database failed to upgrade (see its line); with --check: some need
     the upgrade
  2  bad usage, or the database cannot be reached""",
)
@click.option(
    "--check",
    is_flag=True,
    help="Only list the databases that need the upgrade; change nothing.",
)
@verbosity_option
@handle_errors
def upgrade(check: bool) -> None:
    """Upgrade the main database and every experiment to this release's schema.

    Prints one line per database: its revision before and after.
    """
    from tmlib.config import load_settings
    from tmlib.migrations import upgrade as migrate
    from tmlib.models.session import safe_url

    url = load_settings().db_url
    click.echo(f"database {safe_url(url)}")
    if check:
        todo = migrate.pending(url)
        for what, found, head in todo:
            click.echo(f"{what}: at {found or 'release 0.1'}, needs {head}")
        if todo:
            click.echo(f"{len(todo)} to upgrade: run `tm_admin upgrade`")
            sys.exit(EXIT_FAILED)
        click.echo("everything is at this release's revision")
        return

    def report(outcome: migrate.Outcome) -> None:
        click.echo(outcome.line(), err=outcome.error is not None)

    outcomes = migrate.upgrade_all(url, report)
    failed = sum(outcome.error is not None for outcome in outcomes)
    changed = sum(outcome.changed for outcome in outcomes)
    click.echo(f"{changed} upgraded, {len(outcomes) - changed - failed} unchanged, {failed} failed")
    if failed:
        sys.exit(EXIT_FAILED)
