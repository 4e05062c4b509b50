"""Alembic's entry point, experiment history: ``tmlib.migrations.upgrade.run_env``."""

from alembic import context

from tmlib.migrations.upgrade import run_env

run_env(context)
