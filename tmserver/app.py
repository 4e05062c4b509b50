"""The application factory."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import unquote_plus

from flask import Flask, jsonify, request
from flask.json.provider import DefaultJSONProvider
from flask.typing import ResponseReturnValue
from werkzeug.middleware.proxy_fix import ProxyFix

from tmlib.config import load_settings
from tmserver.auth import QUERY_TOKEN, init_auth
from tmserver.config import ServerConfig, load_server_config
from tmserver.errors import MalformedRequestError, PayloadTooLargeError, register_error_handlers
from tmserver.fastpath import FastRoutes
from tmserver.openapi import openapi_spec
from tmserver.routing import LONE_SURROGATE

_TOKEN_IN_URL = re.compile(r"(?<=[?&;])access_token=[^&;#\s\"]*")
_REDACTED = "access_token=[redacted]"


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
    from tmlib.permissions import apply_file_mode_policy
    from tmserver.api import api
    from tmserver.jtui import jtui
    from tmserver.webapp import init_webapp

    # first: what the server, its engines and their jobs write is for the owner (or group)
    apply_file_mode_policy()
    config = config or load_server_config()
    app = Flask("tmserver")
    app.json = StrictJSONProvider(app)
    app.json.sort_keys = False  # keep the order of CSV-like payloads
    app.config["TMSERVER"] = config
    # read once: the access check of every request needs it
    app.config["TMAPS_DB_URL"] = load_settings().db_url
    app.config["MAX_CONTENT_LENGTH"] = config.max_upload_mb * 1024 * 1024
    app.config.update(flask_config)
    app.wsgi_app = FastRoutes(app.wsgi_app, app, [api, jtui])  # type: ignore[method-assign]
    if config.trusted_proxies:
        # the client's address (counted by the login limits) is the proxy's otherwise
        n = config.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]
    app.wsgi_app = TokenOutOfUrl(app.wsgi_app)  # type: ignore[method-assign]
    app.before_request(_limit_body)
    register_error_handlers(app)
    init_auth(app)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(jtui.blueprint)
    spec = openapi_spec([api, jtui])

    @app.get("/api/openapi.json")
    def _openapi() -> ResponseReturnValue:
        return jsonify(spec)

    init_webapp(app)  # last: its catch-all route must not hide any other

    logging.getLogger("tmserver").setLevel(logging.INFO)
    werkzeug_log = logging.getLogger("werkzeug")  # the request log of ``tm_server``
    if redact_tokens_in_log_records not in werkzeug_log.filters:
        werkzeug_log.addFilter(redact_tokens_in_log_records)
    return app


# --- request bodies ----------------------------------------------------------


def _limit_body() -> None:
    """Refuse a body larger than the route takes, before anything reads it.

    Uploads (multipart routes) are limited by ``MAX_CONTENT_LENGTH``
    (``TMAPS_MAX_UPLOAD_MB``); other bodies are parsed in memory, so they get
    ``TMAPS_MAX_JSON_MB``, or ``TMAPS_MAX_BULK_JSON_MB`` on routes that take
    data as JSON (feature values; these check the token before they read it).
    """
    from flask import current_app

    view = current_app.view_functions.get(request.endpoint or "")
    kind = getattr(view, "body_kind", "json")
    if kind == "upload":
        return
    config = current_app.config["TMSERVER"]
    megabytes, setting = (
        (config.max_bulk_json_mb, "TMAPS_MAX_BULK_JSON_MB")
        if kind == "bulk_json"
        else (config.max_json_mb, "TMAPS_MAX_JSON_MB")
    )
    limit = int(megabytes * 1024 * 1024)
    request.max_content_length = limit  # also stops a chunked body while it is read
    if (request.content_length or 0) > limit:
        raise PayloadTooLargeError(f"the request body is larger than {megabytes:g} MB ({setting})")


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON, refusing bodies that would fail later with a 500.

    A deeply nested document makes the parser raise :class:`RecursionError`;
    a lone surrogate (``"\\ud800"``) is not Unicode text, and fails when it
    reaches the database or a file name. Both are a 400 here.
    """

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            value = super().loads(s, **kwargs)
        except RecursionError:
            raise MalformedRequestError("the JSON body is nested too deeply") from None
        if _may_have_surrogates(s):
            refuse_lone_surrogates(value)
        return value


def _may_have_surrogates(text: str | bytes) -> bool:
    # a lone surrogate comes from a \u escape, or from bytes ED A0..BF (which
    # the parser decodes with "surrogatepass"); most bodies have neither
    if isinstance(text, bytes):
        return b"\\u" in text or b"\xed" in text
    return "\\u" in text or LONE_SURROGATE.search(text) is not None


def refuse_lone_surrogates(value: Any, where: str = "the JSON body") -> None:
    """Raise :class:`MalformedRequestError` if a string in `value` has a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            strings: Iterable[Any] = (item,)
        elif isinstance(item, dict):
            stack.extend(item.values())
            strings = item.keys()
        elif isinstance(item, list):
            stack.extend(item)
            continue
        else:
            continue
        for text in strings:
            if isinstance(text, str) and LONE_SURROGATE.search(text):
                raise MalformedRequestError(
                    f"{where} contains a lone surrogate (e.g. '\\ud800'): not valid Unicode text"
                )


# --- tokens in URLs ----------------------------------------------------------


class TokenOutOfUrl:
    """WSGI middleware: move ``?access_token=`` out of the URL before anyone logs it.

    The token goes to ``environ[QUERY_TOKEN]`` (read by the tile routes);
    ``QUERY_STRING`` loses it and ``RAW_URI`` / ``REQUEST_URI`` show
    ``access_token=[redacted]``. gunicorn writes its access log from these
    keys of the same environ after the response, so no token reaches it.
    """

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        query = environ.get("QUERY_STRING", "")
        if "access_token" in query:
            kept = []
            for part in query.split("&"):
                name, _, value = part.partition("=")
                if name == "access_token":
                    environ[QUERY_TOKEN] = unquote_plus(value)
                else:
                    kept.append(part)
            environ["QUERY_STRING"] = "&".join(kept)
            for key in ("RAW_URI", "REQUEST_URI"):
                if isinstance(environ.get(key), str):
                    environ[key] = _TOKEN_IN_URL.sub(_REDACTED, environ[key])
        return self.app(environ, start_response)


def redact_tokens_in_log_records(record: logging.LogRecord) -> bool:
    """Logging filter: replace ``access_token=...`` in the message by ``[redacted]``.

    The development server (``tm_server``) logs each request line itself, from
    the raw request, so the middleware cannot hide the token there.
    """
    message = record.getMessage()
    if "access_token=" in message:
        record.msg, record.args = _TOKEN_IN_URL.sub(_REDACTED, message), ()
    return True
