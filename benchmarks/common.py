"""What the benchmark scripts share: running our programs and a scratch PostgreSQL database."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

BIN = Path(sys.executable).parent
DEFAULT_PG_URL = os.environ.get(
    "TMAPS_TEST_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


def tm(args: list[str], env: dict[str, str] | None = None) -> str:
    """Run one of our programs from this venv; exit with its error if it fails."""
    proc = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        env=env if env is not None else dict(os.environ),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc.stdout.strip()


@contextlib.contextmanager
def scratch_pg_database(admin_url: str = DEFAULT_PG_URL) -> Iterator[str]:
    """URL of a new, empty PostgreSQL database, dropped on exit."""
    name = f"tm_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
