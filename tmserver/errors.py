"""HTTP errors and their JSON body ``{"error": {error, message, status_code, type}}``.

Library exceptions map to status codes here, so routes simply let them
propagate: :class:`tmlib.errors.NotFoundError` becomes 404,
:class:`~tmlib.errors.AlreadyExistsError` 409 and any other
:class:`~tmlib.errors.UserError` 400.
"""

from __future__ import annotations

import logging
import math

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from tmlib.errors import AlreadyExistsError, NotFoundError, UserError

logger = logging.getLogger(__name__)


class HTTPError(Exception):
    """An error answered with `status_code` and a JSON body.

    `retry_after` (seconds), when given, is sent as the ``Retry-After`` header.
    """

    status_code = 400

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class MalformedRequestError(HTTPError):
    """A parameter or the body cannot be parsed (400)."""


class MissingParameterError(HTTPError):
    """A required parameter is absent (400)."""


class NotAuthorizedError(HTTPError):
    """No, an expired or a forged token (401)."""

    status_code = 401


class ForbiddenError(HTTPError):
    """The caller may not read or modify this experiment (403)."""

    status_code = 403


class ResourceNotFoundError(HTTPError):
    """The addressed object does not exist (404)."""

    status_code = 404


class ConflictError(HTTPError):
    """The object exists already, or the request conflicts with running work (409)."""

    status_code = 409


class PayloadTooLargeError(HTTPError):
    """The request body is larger than the route accepts (413)."""

    status_code = 413


class TooManyRequestsError(HTTPError):
    """Too many failed logins of a user name or from an address (429)."""

    status_code = 429


class ServiceUnavailableError(HTTPError):
    """The server is too busy to answer now; try again later (503)."""

    status_code = 503


def error_fields(err: Exception) -> tuple[int, str, str]:
    """``(status_code, message, type)`` of the JSON error that answers `err`.

    A library error may name its own status (``http_status``: e.g. 403
    refused, 429 over a quota); otherwise :class:`~tmlib.errors.NotFoundError`
    is 404, :class:`~tmlib.errors.AlreadyExistsError` 409 and any other
    :class:`~tmlib.errors.UserError` 400. Anything unexpected is a 500 that
    names only the exception's type.
    """
    if isinstance(err, HTTPError):
        return err.status_code, err.message, type(err).__name__
    if isinstance(err, UserError):
        status = getattr(err, "http_status", None)
        if not isinstance(status, int):
            status = (
                404
                if isinstance(err, NotFoundError)
                else 409
                if isinstance(err, AlreadyExistsError)
                else 400
            )
        return status, str(err), type(err).__name__
    if isinstance(err, HTTPException):
        return err.code or 500, err.description or err.name, type(err).__name__
    return 500, f"internal error: {type(err).__name__}", "ServerError"


def error_body(status_code: int, message: str, kind: str) -> dict:
    """The JSON error body every failure of the API is answered with."""
    return {"error": {"error": True, "message": message, "status_code": status_code, "type": kind}}


def error_answer(err: Exception) -> tuple[int, dict, list[tuple[str, str]]]:
    """``(status_code, JSON body, extra headers)`` answering `err`, on every path
    (Flask's error handler and :mod:`tmserver.fastpath`); an unexpected error is
    logged with its traceback (call it while handling `err`). An error with a
    ``retry_after`` gets a ``Retry-After`` header (whole seconds, at least 1)."""
    status, message, kind = error_fields(err)
    if status == 500 and not isinstance(err, HTTPException):
        logger.exception("unexpected error")
    headers = []
    seconds = getattr(err, "retry_after", None)
    if seconds is not None:
        headers.append(("Retry-After", str(max(1, math.ceil(seconds)))))
    return status, error_body(status, message, kind), headers


def register_error_handlers(app: Flask) -> None:
    """Answer every error, expected or not, with the JSON error body (:func:`error_answer`)."""

    @app.errorhandler(Exception)
    def _error(err: Exception) -> Response:
        status, body, headers = error_answer(err)
        response = jsonify(body)
        response.status_code = status
        response.headers.extend(headers)
        return response
