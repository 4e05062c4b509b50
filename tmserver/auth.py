"""JSON Web Tokens: ``POST /auth`` issues one, every protected route checks it.

Clients send ``Authorization: JWT <token>`` (``Bearer`` is accepted too). The
token's payload is ``{uid, uname, iat, nbf, exp}``, signed with HS256.
"""

from __future__ import annotations

import datetime as dt

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
    """Check the request's token; store and return the caller's user id.

    The token comes from the ``Authorization`` header unless `token` is given.

    Raises
    ------
    NotAuthorizedError
        When the header is missing, the token is expired, forged or malformed,
        or its user no longer exists.
    """
    if token is None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.upper() not in ("JWT", "BEARER"):
            token = ""
    if not token.strip():
        raise NotAuthorizedError("authorization required: send 'Authorization: JWT <token>'")
    config = current_app.config["TMSERVER"]
    try:
        payload = jwt.decode(
            token.strip(),
            config.secret_key,
            algorithms=[_ALGORITHM],
            options={"require": ["exp", "iat", "nbf"]},
        )
    except jwt.ExpiredSignatureError as err:
        raise NotAuthorizedError("token expired: log in again (POST /auth)") from err
    except jwt.InvalidTokenError as err:
        raise NotAuthorizedError(f"invalid token: {err}") from err
    user_id = payload.get("uid")
    if not isinstance(user_id, int):
        raise NotAuthorizedError("invalid token: no user id")
    with tm.utils.MainSession() as session:
        if session.get(tm.User, user_id) is None:
            raise NotAuthorizedError("invalid token: the user does not exist any more")
    g.user_id = user_id
    g.user_name = payload.get("uname")
    return user_id


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
