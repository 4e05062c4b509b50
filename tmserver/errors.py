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


def error_response(status_code: int, message: str, kind: str) -> Response:
    """The JSON error body every failure of the API is answered with."""
    response = jsonify(
        error={"error": True, "message": message, "status_code": status_code, "type": kind}
    )
    response.status_code = status_code
    return response


def register_error_handlers(app: Flask) -> None:
    """Answer every error, expected or not, with the JSON error body."""

    @app.errorhandler(HTTPError)
    def _http_error(err: HTTPError) -> Response:
        response = error_response(err.status_code, err.message, type(err).__name__)
        if err.retry_after is not None:
            response.headers["Retry-After"] = str(max(1, math.ceil(err.retry_after)))
        return response

    @app.errorhandler(UserError)
    def _user_error(err: UserError) -> Response:
        # a library error may name its own status (e.g. 403 refused, 429 over a quota)
        if isinstance(getattr(err, "http_status", None), int):
            status = err.http_status
        elif isinstance(err, NotFoundError):
            status = 404
        elif isinstance(err, AlreadyExistsError):
            status = 409
        else:
            status = 400
        return error_response(status, str(err), type(err).__name__)

    @app.errorhandler(HTTPException)
    def _werkzeug_error(err: HTTPException) -> Response:
        code = err.code or 500
        return error_response(code, err.description or err.name, type(err).__name__)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        logger.exception("unexpected error")
        return error_response(500, f"internal error: {type(err).__name__}", "ServerError")
