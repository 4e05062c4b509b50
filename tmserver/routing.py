"""Declared routes: parameters, permissions and the OpenAPI description in one place.

Every API route is declared with :meth:`Api.route`, which

- converts ``{name_id}`` path segments to integers (decimal or legacy ids),
- checks the JWT and, for routes under ``/experiments/{experiment_id}``, the
  caller's ``read`` or ``write`` permission on that experiment,
- parses and type-checks the declared query, JSON-body and multipart
  parameters, answering 400 with the JSON error for missing or malformed ones,
- and records the declaration, from which :mod:`tmserver.openapi` writes the
  OpenAPI description.

The view receives the path ids and the parameters as keyword arguments and
returns a JSON-able value (wrapped by :func:`flask.jsonify`) or a response.

Examples
--------
>>> api = Api("api", "/api")
>>> @api.route("GET", "/experiments/{experiment_id}/plates",
...            query={"name": Param(str)}, summary="Plates of an experiment")
... def get_plates(experiment_id: int, name: str | None):
...     ...
"""

from __future__ import annotations

import functools
import math
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.http import parse_etags, quote_etag

from tmlib import registry
from tmserver.auth import QUERY_TOKEN, Caller, authenticate
from tmserver.errors import (
    ForbiddenError,
    MalformedRequestError,
    MissingParameterError,
    NotAuthorizedError,
    ResourceNotFoundError,
)
from tmserver.ids import decode_id

#: parameter types: a Python type, or "id" (decimal or legacy-encoded id)
ID = "id"
_TRUE = {"true", "yes", "1"}
_FALSE = {"false", "no", "0"}
PATH_PARAM = re.compile(r"\{([a-z_]+)\}")
#: a lone surrogate (e.g. "\\ud800" in JSON): not Unicode text, fails in the database
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Param:
    """A declared parameter.

    Parameters
    ----------
    type : type or "id"
        ``str``, ``int``, ``float``, ``bool``, ``list``, ``dict``, ``object``
        (anything JSON) or :data:`ID`.
    required : bool
        Whether a missing parameter is an error (else the view gets `default`).
    default : Any
        Value for an absent optional parameter.
    description : str
        Shown in the OpenAPI description.
    items : type, optional
        Type of the elements of a ``list`` parameter.
    enum : tuple, optional
        The allowed values.
    minimum : int, optional
        Smallest allowed value of an ``int`` parameter.
    schema : dict, optional
        More of the parameter's OpenAPI schema (e.g. the ``properties`` of a
        ``dict``), for the description only: the view checks what it says.
    """

    type: Any = str
    required: bool = False
    default: Any = None
    description: str = ""
    items: Any = None
    enum: tuple | None = None
    minimum: int | None = None
    schema: Mapping[str, Any] | None = None


@dataclass
class Endpoint:
    """What :meth:`Api.route` recorded about a route (for the OpenAPI description)."""

    method: str
    path: str
    summary: str
    tag: str
    permission: str | None
    authenticated: bool
    query: dict[str, Param] = field(default_factory=dict)
    body: dict[str, Param] = field(default_factory=dict)
    files: dict[str, Param] = field(default_factory=dict)
    produces: str = "application/json"
    token_in_query: bool = False
    #: also served by :mod:`tmserver.fastpath`, without Flask's request machinery
    fast: bool = False
    #: the view function, as declared
    view: Callable[..., Any] | None = None
    #: status of a successful JSON answer (201 for routes that create something)
    status: int = 200


def _parse_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise MalformedRequestError(f"parameter {name!r} must be true or false, got {raw!r}")


def _convert(name: str, param: Param, raw: Any, from_query: bool) -> Any:
    kind = param.type
    if kind == ID:
        if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
            return raw
        if not isinstance(raw, str):
            raise MalformedRequestError(f"parameter {name!r} must be an id")
        return decode_id(raw, name)
    if kind is bool:
        return _parse_bool(name, raw)
    if kind is int:
        if from_query and isinstance(raw, str) and re.fullmatch(r"-?\d{1,18}", raw.strip()):
            value = int(raw)
        elif isinstance(raw, int) and not isinstance(raw, bool) and abs(raw) < 2**63:
            value = raw
        else:
            raise MalformedRequestError(f"parameter {name!r} must be an integer, got {raw!r}")
        if param.minimum is not None and value < param.minimum:
            raise MalformedRequestError(f"parameter {name!r} must be >= {param.minimum}")
        return value
    if kind is float:
        try:
            value = float(raw) if not isinstance(raw, bool) else math.nan
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise MalformedRequestError(f"parameter {name!r} must be a number, got {raw!r}")
        return value
    if kind is str:
        if not isinstance(raw, str):
            raise MalformedRequestError(f"parameter {name!r} must be a string")
        if "\x00" in raw:
            raise MalformedRequestError(f"parameter {name!r} must not contain NUL characters")
        if LONE_SURROGATE.search(raw):
            # not Unicode text: it would fail in the database or as a file name
            raise MalformedRequestError(f"parameter {name!r} contains a lone surrogate")
        if param.enum is not None and raw not in param.enum:
            raise MalformedRequestError(
                f"parameter {name!r} must be one of {', '.join(map(str, param.enum))}"
            )
        return raw
    if kind is list:
        if not isinstance(raw, list):
            raise MalformedRequestError(f"parameter {name!r} must be a list")
        if param.items is not None:
            item = Param(param.items)
            return [_convert(f"{name}[{i}]", item, v, from_query) for i, v in enumerate(raw)]
        return raw
    if kind is dict:
        if not isinstance(raw, dict):
            raise MalformedRequestError(f"parameter {name!r} must be a JSON object")
        return raw
    return raw  # object: anything JSON


def parse_params(
    params: dict[str, Param], source: Mapping[str, Any], where: str, from_query: bool
) -> dict[str, Any]:
    """The declared `params` read from `source` (query arguments or a JSON body).

    Raises
    ------
    MissingParameterError, MalformedRequestError
        For a missing required or a malformed parameter.
    """
    values = {}
    for name, param in params.items():
        if name not in source or (from_query and source[name] == "" and param.type is not str):
            if param.required:
                raise MissingParameterError(f"missing {where} parameter {name!r}")
            values[name] = param.default
            continue
        values[name] = _convert(name, param, source[name], from_query)
    return values


#: what RFC 5987 allows unencoded in ``filename*`` (besides letters, digits, "-._~")
_ATTR_CHARS = "!#$&+^`|"


def content_disposition(filename: str) -> str:
    """``attachment`` with `filename` quoted per RFC 6266.

    Names are the user's (experiment, plate, ...), so they may hold quotes,
    CR/LF or any Unicode: ``filename=`` gets an ASCII fallback with those (and
    ``;``, where simple parsers split) replaced by ``_``, and, where that
    changed the name, ``filename*=`` the exact name, percent-encoded UTF-8
    (after ``filename``, as RFC 6266 advises).
    """
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\%;' else "_" for c in filename)
    if fallback == filename:  # RFC 6266: filename* only where filename cannot say it
        return f'attachment; filename="{filename}"'
    encoded = urllib.parse.quote(filename, safe=_ATTR_CHARS, encoding="utf-8", errors="strict")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def access_for(
    caller: Caller, experiment_id: int | None, permission: str | None, db_url: str
) -> str | None:
    """The caller's access to an experiment (``owner``, ``write``, ``read``), if allowed.

    Also checks that the caller's user still exists with the token's epoch.

    Raises
    ------
    NotAuthorizedError
        When the token's user no longer exists.
    ResourceNotFoundError
        When the experiment does not exist.
    ForbiddenError
        When the caller may not access it that way.
    """
    user_exists, experiment_exists, level = registry.access_level(
        caller.user_id,
        experiment_id if permission is not None else None,
        db_url,
        token_epoch=caller.token_epoch,
    )
    if not user_exists:
        raise NotAuthorizedError(
            "invalid token: the user does not exist any more or logged out everywhere"
        )
    if permission is None:
        return level
    if not experiment_exists:
        raise ResourceNotFoundError(f"experiment {experiment_id} does not exist")
    if level is None or (permission == "write" and level == "read"):
        raise ForbiddenError(
            f"user {caller.user_name!r} has no {permission} access to experiment {experiment_id}"
        )
    return level


def check_access(experiment_id: int | None, permission: str | None) -> None:
    """:func:`access_for` the caller :func:`~tmserver.auth.authenticate` stored in ``g``.

    Stores the caller's level (``owner``, ``write``, ``read``) in ``g.access``.
    """
    caller = Caller(g.user_id, g.user_name, g.token_epoch)
    g.access = access_for(caller, experiment_id, permission, current_app.config["TMAPS_DB_URL"])


@dataclass(frozen=True)
class Blob:
    """A view's binary answer: the bytes, their type and how clients may cache them.

    With an `etag`, a request whose ``If-None-Match`` names it gets an empty 304.
    """

    data: bytes
    mimetype: str
    cache_control: str | None = None
    etag: str | None = None

    def answer(self, if_none_match: str | None) -> tuple[int, list[tuple[str, str]], bytes]:
        """``(status, headers, body)`` for a request with that ``If-None-Match`` header."""
        headers = []
        if self.cache_control is not None:
            headers.append(("Cache-Control", self.cache_control))
        if self.etag is not None:
            headers.append(("ETag", quote_etag(self.etag)))
            if if_none_match and parse_etags(if_none_match).contains(self.etag):
                return 304, headers, b""
        headers.append(("Content-Type", self.mimetype))
        headers.append(("Content-Length", str(len(self.data))))
        return 200, headers, self.data


class Api:
    """A blueprint whose routes are declared with their parameters.

    Parameters
    ----------
    name : str
        Blueprint name.
    url_prefix : str
        Where the blueprint is mounted (e.g. ``/api``).
    """

    def __init__(self, name: str, url_prefix: str) -> None:
        self.blueprint = Blueprint(name, __name__, url_prefix=url_prefix)
        self.url_prefix = url_prefix
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str = "",
        permission: str | None = "read",
        authenticated: bool = True,
        query: dict[str, Param] | None = None,
        body: dict[str, Param] | None = None,
        files: dict[str, Param] | None = None,
        produces: str = "application/json",
        token_in_query: bool = False,
        bulk_json: bool = False,
        fast: bool = False,
        status: int = 200,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Declare a route (see the module docstring).

        `permission` is ``"read"``, ``"write"`` or None (no experiment check);
        `token_in_query` also accepts a tile token (and only that) as
        ``?access_token=`` (for map tiles, which browsers' tile loaders fetch
        without headers); tile tokens are refused on all other routes.
        Bodies are limited to ``TMAPS_MAX_JSON_MB``, those of routes with
        `files` to ``TMAPS_MAX_UPLOAD_MB``, and those of `bulk_json` routes
        (data uploaded as JSON) to ``TMAPS_MAX_BULK_JSON_MB``.

        A `fast` route (a GET without body, whose view returns a :class:`Blob`
        and uses neither ``flask.request`` nor ``flask.g``) is answered by
        :mod:`tmserver.fastpath` before Flask sees the request, with the same
        checks in the same order; map tiles are, as viewers ask for hundreds
        a second.

        A view's JSON-able answer is sent with `status` (e.g. 201 where the
        route creates something); responses and blobs keep their own.
        """
        path_names = PATH_PARAM.findall(path)
        if fast and (method.upper() != "GET" or body or files):
            raise ValueError(f"{path}: only GET routes without a body can be fast")
        if permission is not None and "experiment_id" not in path_names:
            raise ValueError(f"{path}: a permission needs an experiment_id in the path")
        endpoint = Endpoint(
            method=method.upper(),
            path=path,
            summary=summary,
            tag=tag,
            permission=permission,
            authenticated=authenticated,
            query=dict(query or {}),
            body=dict(body or {}),
            files=dict(files or {}),
            produces=produces,
            token_in_query=token_in_query,
            fast=fast,
            status=status,
        )
        rule = PATH_PARAM.sub(r"<\1>", path)

        def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(view)
            def handle(**raw_ids: str) -> Any:
                if endpoint.authenticated:
                    query_token = request.environ.get(QUERY_TOKEN)
                    if token_in_query and query_token is not None:
                        authenticate(token=query_token, tiles=True)
                    else:
                        authenticate(tiles=token_in_query)
                kwargs: dict[str, Any] = {
                    name: decode_id(value, name) for name, value in raw_ids.items()
                }
                if endpoint.authenticated:
                    check_access(kwargs.get("experiment_id"), endpoint.permission)
                kwargs.update(parse_params(endpoint.query, request.args, "GET", from_query=True))
                if endpoint.body:
                    data = request.get_json(silent=True)
                    if data is None:
                        data = {}
                    if not isinstance(data, dict):
                        raise MalformedRequestError("the request body must be a JSON object")
                    kwargs.update(
                        parse_params(endpoint.body, data, method.upper(), from_query=False)
                    )
                for name, param in endpoint.files.items():
                    upload = request.files.get(name)
                    if upload is None and param.required:
                        raise MissingParameterError(f"missing multipart file field {name!r}")
                    kwargs[name] = upload
                result = view(**kwargs)
                if isinstance(result, Blob):
                    status, headers, data = result.answer(request.headers.get("If-None-Match"))
                    return Response(data, status=status, headers=headers)
                if isinstance(result, Response):
                    return result
                response = jsonify(result)
                response.status_code = endpoint.status
                return response

            # read by the app's body limit before the view runs
            handle.body_kind = (  # type: ignore[attr-defined]
                "upload" if endpoint.files else "bulk_json" if bulk_json else "json"
            )
            self.blueprint.add_url_rule(
                rule, endpoint=view.__name__, view_func=handle, methods=[endpoint.method]
            )
            endpoint.view = view
            self.endpoints.append(endpoint)
            return view

        return decorate
