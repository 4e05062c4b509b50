"""The application factory."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from tmlib.config import load_settings
from tmserver.auth import auth
from tmserver.config import ServerConfig, load_server_config
from tmserver.errors import register_error_handlers
from tmserver.openapi import openapi_spec


def create_app(config: ServerConfig | None = None, **flask_config: Any) -> Flask:
    """A configured server application.

    Parameters
    ----------
    config : ServerConfig, optional
        Server settings; default: :func:`tmserver.config.load_server_config`.
    **flask_config
        Extra Flask settings (e.g. ``TESTING=True``).

    Notes
    -----
    The library's settings (database, storage, job backend) come from the
    environment as for every other program (see :mod:`tmlib.config`).
    """
    from tmserver.api import api
    from tmserver.jtui import jtui

    config = config or load_server_config()
    app = Flask("tmserver")
    app.config["TMSERVER"] = config
    # read once: the access check of every request needs it
    app.config["TMAPS_DB_URL"] = load_settings().db_url
    app.config["MAX_CONTENT_LENGTH"] = config.max_upload_mb * 1024 * 1024
    app.json.sort_keys = False  # keep the order of CSV-like payloads
    app.config.update(flask_config)
    register_error_handlers(app)
    app.register_blueprint(auth)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(jtui.blueprint)
    spec = openapi_spec([api, jtui])

    @app.get("/api/openapi.json")
    def _openapi() -> ResponseReturnValue:
        return jsonify(spec)

    logging.getLogger("tmserver").setLevel(logging.INFO)
    return app
