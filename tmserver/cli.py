"""``tm_server``: run the server for development or on one machine."""

from __future__ import annotations

import click

from tmlib.cli.base import handle_errors, verbosity_option


@click.command(
    "tm_server",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=(
        "This is Flask's threaded development server. In production run the WSGI app "
        "with gunicorn instead, e.g.\n\n"
        "    gunicorn -w 4 -k gthread --threads 8 -b 0.0.0.0:5002 'tmserver.wsgi:app'\n\n"
        "Both read the same settings: TMAPS_DB_URL, TMAPS_HOME, ... as every program, and "
        "TMAPS_SECRET_KEY, TMAPS_JWT_EXPIRATION_HOURS, TMAPS_TILE_TOKEN_MINUTES, "
        "TMAPS_MAX_UPLOAD_MB, TMAPS_MAX_JSON_MB, TMAPS_PASSWORD_CHECKS, "
        "TMAPS_PASSWORD_WAIT_SECONDS, TMAPS_LOGIN_MAX_FAILURES, TMAPS_LOGIN_WINDOW_SECONDS "
        "(see README)."
    ),
)
@click.option("-H", "--host", default="localhost", show_default=True, help="Address to listen on.")
@click.option("-p", "--port", default=5002, show_default=True, type=click.IntRange(1, 65535))
@verbosity_option
@handle_errors
def main(host: str, port: int) -> None:
    """Serve the TissueMAPS REST API (/api), the pipeline editor API (/jtui) and map tiles.

    Users log in with POST /auth; the API description is at /api/openapi.json.
    """
    from tmserver.app import create_app

    app = create_app()
    click.echo(f"tm_server: serving on http://{host}:{port}/api (Ctrl-C stops)", err=True)
    app.run(host=host, port=port, threaded=True, use_reloader=False)
