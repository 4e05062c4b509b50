"""Fast routes: declared GET routes answered without Flask's request machinery.

A map viewer fetches tiles by the hundred per second. Through Flask a tile
cost about 0.7 ms of CPU, of which reading the (cached) tile took 0.01 ms: the
request context, URL map, response object and error handlers took the rest.
Routes declared with ``fast=True`` (see :meth:`tmserver.routing.Api.route`)
are matched here first and answered with the same checks, in the same order,
as on the Flask path (token, ids, access, declared query parameters, then the
view) and with the same JSON errors. Every other request, a HEAD included,
goes on to Flask, where the fast routes are registered too (and described in
the OpenAPI document like all others).
"""

from __future__ import annotations

import http
import json
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask

from tmserver.auth import QUERY_TOKEN, verify_token
from tmserver.errors import error_answer
from tmserver.ids import decode_id
from tmserver.routing import PATH_PARAM, Api, Blob, Endpoint, access_for, parse_params

StartResponse = Callable[..., Any]


def path_pattern(path: str) -> re.Pattern[str]:
    """A regex matching a declared path (``{name}`` matches one segment, as in Flask).

    Examples
    --------
    >>> path_pattern("/api/x/{experiment_id}/tiles").fullmatch("/api/x/3/tiles")["experiment_id"]
    '3'
    """
    parts = PATH_PARAM.split(path)  # literal, name, literal, name, ...
    return re.compile(
        "".join(
            re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
        )
    )


def _status_line(status: int) -> str:
    return f"{status} {http.HTTPStatus(status).phrase}"


def query_arguments(query_string: str) -> dict[str, str]:
    """The first value of each query argument (what ``request.args[name]`` gives)."""
    arguments: dict[str, str] = {}
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        arguments.setdefault(name, value)
    return arguments


class FastRoutes:
    """WSGI middleware answering the fast routes of `apis`; the rest goes to `wsgi_app`.

    Parameters
    ----------
    wsgi_app : callable
        The Flask application's WSGI callable.
    app : flask.Flask
        Whose settings (``TMSERVER``, ``TMAPS_DB_URL``) the checks use.
    apis : iterable of Api
        Their endpoints declared ``fast`` are served here.
    """

    def __init__(self, wsgi_app: Callable[..., Any], app: Flask, apis: Iterable[Api]) -> None:
        self.wsgi_app = wsgi_app
        self.app = app
        self.routes = [
            (path_pattern(api.url_prefix + endpoint.path), endpoint)
            for api in apis
            for endpoint in api.endpoints
            if endpoint.fast
        ]

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "GET":
            # WSGI gives the path as latin-1 text of its bytes; Flask matches the UTF-8 text
            path = environ.get("PATH_INFO", "").encode("latin-1", "replace")
            path_text = path.decode("utf-8", "replace")
            for pattern, endpoint in self.routes:
                match = pattern.fullmatch(path_text)
                if match is not None:
                    return self._serve(endpoint, match.groupdict(), environ, start_response)
        return self.wsgi_app(environ, start_response)

    def _serve(
        self,
        endpoint: Endpoint,
        raw_ids: dict[str, str],
        environ: dict[str, Any],
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        try:
            status, headers, body = self._answer(endpoint, raw_ids, environ)
        except Exception as err:
            status, error, extra = error_answer(err)
            # as Flask's jsonify writes it
            body = (json.dumps(error, separators=(",", ":")) + "\n").encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            headers += extra
        start_response(_status_line(status), headers)
        return [body]

    def _answer(
        self, endpoint: Endpoint, raw_ids: dict[str, str], environ: dict[str, Any]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        config = self.app.config
        caller = None
        if endpoint.authenticated:
            query_token = environ.get(QUERY_TOKEN) if endpoint.token_in_query else None
            caller = verify_token(
                environ.get("HTTP_AUTHORIZATION", ""),
                query_token,
                config["TMSERVER"].secret_key,
                tiles=endpoint.token_in_query,
            )
        kwargs: dict[str, Any] = {name: decode_id(value, name) for name, value in raw_ids.items()}
        if caller is not None:
            access_for(
                caller, kwargs.get("experiment_id"), endpoint.permission, config["TMAPS_DB_URL"]
            )
        arguments = query_arguments(environ.get("QUERY_STRING", ""))
        kwargs.update(parse_params(endpoint.query, arguments, "GET", from_query=True))
        assert endpoint.view is not None
        result = endpoint.view(**kwargs)
        if not isinstance(result, Blob):
            raise TypeError(f"the fast route {endpoint.path} must return a Blob")
        return result.answer(environ.get("HTTP_IF_NONE_MATCH"))
