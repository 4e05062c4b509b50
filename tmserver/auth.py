"""JSON Web Tokens: ``POST /auth`` issues one, every protected route checks it.

Clients send ``Authorization: JWT <token>`` (``Bearer`` is accepted too). The
token's payload is ``{uid, uname, epoch, iat, nbf, exp}``, signed with HS256;
``epoch`` is the user's token epoch, so ``POST /auth/logout_all`` (which
changes it) invalidates every earlier token, and a new user who is given a
deleted user's id never matches that user's tokens.

Map tiles are fetched by browsers without headers, with ``?access_token=``.
Such URLs end up in logs and histories, so a query token must be a tile token
(``POST /auth/tile_token``: claim ``scope: "tiles"``, short-lived), and a tile
token is refused everywhere but on tile routes.

Logins are limited (see :mod:`tmlib.logins`): after repeated failures of a user
name or from an address the answer is 429 for a while, and at most
``password_checks`` passwords are verified at once per process (argon2 takes
64 MB each), beyond which the answer is 503.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import jwt
from flask import Blueprint, Flask, current_app, g, jsonify, request
from flask.typing import ResponseReturnValue

from tmlib import logins, registry
from tmlib.models.main import check_no_password
from tmserver.errors import (
    MalformedRequestError,
    MissingParameterError,
    NotAuthorizedError,
    ServiceUnavailableError,
    TooManyRequestsError,
)

auth = Blueprint("auth", __name__)

_ALGORITHM = "HS256"
#: the ``scope`` claim of tokens for map tiles (normal tokens have none)
TILES = "tiles"
_GATE = "tmserver.password_gate"
#: where :class:`tmserver.app.TokenOutOfUrl` puts a token sent as ``?access_token=``
QUERY_TOKEN = "tmserver.query_token"


def init_auth(app: Flask) -> None:
    """Register the login routes and this process's bound on concurrent password checks."""
    app.extensions[_GATE] = threading.BoundedSemaphore(app.config["TMSERVER"].password_checks)
    app.register_blueprint(auth)
    check_no_password("")  # its hash is made once, so no unknown name's login takes longer


def password_gate(app: Flask) -> threading.BoundedSemaphore:
    """The semaphore every password check of `app` holds."""
    return app.extensions[_GATE]


def create_token(
    user_id: int, user_name: str, token_epoch: int, scope: str | None = None
) -> tuple[str, float]:
    """A signed token for the user and its lifetime in seconds.

    Normal tokens live the configured hours; `scope` ``"tiles"`` makes a tile
    token, which lives the configured (short) minutes.
    """
    config = current_app.config["TMSERVER"]
    if scope == TILES:
        lifetime = dt.timedelta(minutes=config.tile_token_minutes)
    else:
        lifetime = dt.timedelta(hours=config.jwt_expiration_hours)
    now = dt.datetime.now(dt.UTC)
    payload = {
        "uid": user_id,
        "uname": user_name,
        "epoch": token_epoch,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
    }
    if scope is not None:
        payload["scope"] = scope
    return jwt.encode(payload, config.secret_key, algorithm=_ALGORITHM), lifetime.total_seconds()


@dataclass(frozen=True)
class Caller:
    """Who a verified token names: the user's id, name and token epoch."""

    user_id: int
    user_name: str | None
    token_epoch: int


def verify_token(
    authorization: str, query_token: str | None, secret: str, *, tiles: bool = False
) -> Caller:
    """The caller a request's token names, if the token is valid here.

    The token is `query_token` (sent as ``?access_token=``) when given, else
    the one in the ``Authorization`` header value `authorization`. A token
    from the URL must be a tile token, and a tile token is accepted only where
    `tiles` is true. Whether the user still exists with that epoch is checked
    with the permission (one query, see :func:`tmserver.routing.access_for`).

    Raises
    ------
    NotAuthorizedError
        When the header is missing or the token is expired, forged, malformed
        or of the wrong scope.
    """
    token = query_token
    if token is None:
        scheme, _, token = authorization.partition(" ")
        if scheme.upper() not in ("JWT", "BEARER"):
            token = ""
    if not token.strip():
        raise NotAuthorizedError("authorization required: send 'Authorization: JWT <token>'")
    payload = _verified(token.strip(), secret)
    user_id, epoch, scope = payload.get("uid"), payload.get("epoch"), payload.get("scope")
    if not isinstance(user_id, int) or not isinstance(epoch, int):
        raise NotAuthorizedError("invalid token: log in again (POST /auth)")
    if query_token is not None and scope != TILES:
        raise NotAuthorizedError(
            "only tile tokens (POST /auth/tile_token) may be sent as ?access_token="
        )
    if scope is not None and not (scope == TILES and tiles):
        raise NotAuthorizedError("a tile token is valid for map tiles only")
    return Caller(user_id, payload.get("uname"), epoch)


def authenticate(token: str | None = None, *, tiles: bool = False) -> int:
    """Check the request's token (:func:`verify_token`); keep the caller in :data:`flask.g`.

    `token` is one sent in the URL; without it the ``Authorization`` header's counts.
    """
    caller = verify_token(
        request.headers.get("Authorization", ""),
        token,
        current_app.config["TMSERVER"].secret_key,
        tiles=tiles,
    )
    g.user_id = caller.user_id
    g.user_name = caller.user_name
    g.token_epoch = caller.token_epoch
    return caller.user_id


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


def _current_user() -> None:
    """Authenticate with a normal token and check that its user and epoch are current."""
    authenticate()
    exists, _, _ = registry.access_level(
        g.user_id, None, current_app.config["TMAPS_DB_URL"], token_epoch=g.token_epoch
    )
    if not exists:
        raise NotAuthorizedError("invalid token: log in again (POST /auth)")


@contextlib.contextmanager
def _password_check() -> Iterator[None]:
    """Hold one of this process's password-check slots, or answer 503."""
    config = current_app.config["TMSERVER"]
    gate = password_gate(current_app)
    if not gate.acquire(timeout=config.password_wait_seconds):
        raise ServiceUnavailableError(
            "too many logins at once: try again shortly", retry_after=config.password_wait_seconds
        )
    try:
        yield
    finally:
        gate.release()


@auth.post("/auth")
def login() -> ResponseReturnValue:
    """Exchange ``{username, password}`` for ``{access_token}``."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise MalformedRequestError("the body must be a JSON object {username, password}")
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise MissingParameterError("both 'username' and 'password' (strings) are required")
    config = current_app.config["TMSERVER"]
    limits = logins.LoginLimits(config.login_max_failures, config.login_window_seconds)
    db_url = current_app.config["TMAPS_DB_URL"]
    address = request.remote_addr or ""
    wait = logins.seconds_locked(username, address, limits, db_url)
    if wait > 0:
        raise TooManyRequestsError(
            f"too many failed logins: try again in {int(wait) + 1} s", retry_after=wait
        )
    with _password_check():
        user = logins.check_credentials(username, password, db_url)
    if user is None:
        logins.record_failure(username, address, limits, db_url)
        raise NotAuthorizedError("invalid credentials")
    token, _ = create_token(user.user_id, user.user_name, user.token_epoch)
    return jsonify(access_token=token)


@auth.post("/auth/logout_all")
def logout_all() -> ResponseReturnValue:
    """Invalidate every token of the caller (on every device); log in again afterwards."""
    _current_user()
    logins.log_out_everywhere(g.user_id, current_app.config["TMAPS_DB_URL"])
    return jsonify(message="ok")


@auth.post("/auth/tile_token")
def tile_token() -> ResponseReturnValue:
    """``{access_token, expires_in}``: a short-lived token valid for map tiles only."""
    _current_user()
    token, lifetime = create_token(g.user_id, g.user_name, g.token_epoch, scope=TILES)
    return jsonify(access_token=token, expires_in=int(lifetime))
