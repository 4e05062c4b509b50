"""JSON Web Tokens: ``POST /auth`` issues one, every protected route checks it.

Clients send ``Authorization: JWT <token>`` (``Bearer`` is accepted too). The
token's payload is ``{uid, uname, iat, nbf, exp}``, signed with HS256.
"""

from __future__ import annotations

import datetime as dt
import time

import jwt
import sqlalchemy as sa
from flask import Blueprint, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue

import tmlib.models as tm
from tmserver.errors import MalformedRequestError, MissingParameterError, NotAuthorizedError

auth = Blueprint("auth", __name__)

_ALGORITHM = "HS256"


def create_token(user_id: int, user_name: str) -> str:
    """A signed token for the user, valid for the configured time."""
    config = current_app.config["TMSERVER"]
    now = dt.datetime.now(dt.UTC)
    payload = {
        "uid": user_id,
        "uname": user_name,
        "iat": now,
        "nbf": now,
        "exp": now + dt.timedelta(hours=config.jwt_expiration_hours),
    }
    return jwt.encode(payload, config.secret_key, algorithm=_ALGORITHM)


def authenticate(token: str | None = None) -> int:
    """Check the request's token; store the caller's id and name in :data:`flask.g`.

    The token comes from the ``Authorization`` header unless `token` is given.
    Whether the user still exists is checked with the permission (one query,
    see :func:`tmserver.routing.check_access`).

    Raises
    ------
    NotAuthorizedError
        When the header is missing or the token is expired, forged or malformed.
    """
    if token is None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.upper() not in ("JWT", "BEARER"):
            token = ""
    if not token.strip():
        raise NotAuthorizedError("authorization required: send 'Authorization: JWT <token>'")
    payload = _verified(token.strip(), current_app.config["TMSERVER"].secret_key)
    user_id = payload.get("uid")
    if not isinstance(user_id, int):
        raise NotAuthorizedError("invalid token: no user id")
    g.user_id = user_id
    g.user_name = payload.get("uname")
    return user_id


_verified_tokens: dict[tuple[str, str], dict] = {}
_MAX_VERIFIED = 4096


def _verified(token: str, secret: str) -> dict:
    """The payload of a token whose signature and times are valid.

    A viewer sends the same token with every tile, so verified signatures are
    remembered (per process); the expiry is still checked on every request.
    """
    now = time.time()
    payload = _verified_tokens.get((token, secret))
    if payload is not None and payload["nbf"] <= now < payload["exp"]:
        return payload
    try:
        payload = jwt.decode(
            token, secret, algorithms=[_ALGORITHM], options={"require": ["exp", "iat", "nbf"]}
        )
    except jwt.ExpiredSignatureError as err:
        raise NotAuthorizedError("token expired: log in again (POST /auth)") from err
    except jwt.InvalidTokenError as err:
        raise NotAuthorizedError(f"invalid token: {err}") from err
    if len(_verified_tokens) >= _MAX_VERIFIED:
        _verified_tokens.clear()
    _verified_tokens[(token, secret)] = payload
    return payload


@auth.post("/auth")
def login() -> ResponseReturnValue:
    """Exchange ``{username, password}`` for ``{access_token}``."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise MalformedRequestError("the body must be a JSON object {username, password}")
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise MissingParameterError("both 'username' and 'password' (strings) are required")
    with tm.utils.MainSession() as session:
        user = session.scalar(sa.select(tm.User).where(tm.User.name == username))
        if user is None or not user.check_password(password):
            raise NotAuthorizedError("invalid credentials")
        return jsonify(access_token=create_token(user.id, user.name))
