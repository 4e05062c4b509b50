"""Password checks and limits on failed logins.

Failures are counted per user name and per client address in fixed time
windows, in the main database's ``login_failures`` table: every server
process and every restart sees the same counts (a per-process counter would
give an attacker ``workers`` times the tries, and a fresh start after each
restart). When a name or an address reached the limit, logins with it are
refused until its window ends, whether the password is right or not.

Examples
--------
>>> limits = LoginLimits(max_failures=10, window_seconds=300)
>>> wait = seconds_locked("alice", "10.0.0.1", limits)
>>> if wait == 0 and check_credentials("alice", "secret") is None:
...     record_failure("alice", "10.0.0.1", limits)
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import sqlalchemy as sa

import tmlib.models as tm
from tmlib.models.main import check_no_password
from tmlib.models.session import main_engine

#: what failures are counted by
NAME, ADDRESS = "name", "address"


@dataclass(frozen=True)
class LoginLimits:
    """At most `max_failures` failed logins per name and per address within `window_seconds`."""

    max_failures: int = 10
    window_seconds: float = 300.0


@dataclass(frozen=True)
class Credentials:
    """Who logged in: what a token names."""

    user_id: int
    user_name: str
    token_epoch: int


def _key(kind: str, value: str) -> str:
    # a digest: any name (even megabytes, or unencodable text) fits the column
    return hashlib.sha256(f"{kind}\0{value}".encode("utf-8", "surrogatepass")).hexdigest()


_LOCKS = sa.text(
    "SELECT window_start FROM login_failures "
    "WHERE ((kind = :name_kind AND value = :name) OR (kind = :address_kind AND value = :address)) "
    "AND count >= :max_failures AND window_start > :expired"
)

#: one atomic statement per failure (SQLite >= 3.24 and PostgreSQL): a new
#: window starts with count 1 where the old one has ended
_COUNT_FAILURE = sa.text(
    "INSERT INTO login_failures (kind, value, window_start, count) "
    "VALUES (:kind, :value, :now, 1) "
    "ON CONFLICT (kind, value) DO UPDATE SET "
    "count = CASE WHEN login_failures.window_start <= :expired THEN 1 "
    "ELSE login_failures.count + 1 END, "
    "window_start = CASE WHEN login_failures.window_start <= :expired THEN :now "
    "ELSE login_failures.window_start END"
)

_FORGET_EXPIRED = sa.text("DELETE FROM login_failures WHERE window_start <= :expired")


def seconds_locked(
    name: str, address: str, limits: LoginLimits, db_url: str | None = None
) -> float:
    """Seconds until logins of `name` from `address` are allowed again; 0 when they are now."""
    now = time.time()
    with main_engine(db_url).connect() as conn:
        starts = conn.execute(
            _LOCKS,
            {
                "name_kind": NAME,
                "name": _key(NAME, name),
                "address_kind": ADDRESS,
                "address": _key(ADDRESS, address),
                "max_failures": limits.max_failures,
                "expired": now - limits.window_seconds,
            },
        ).scalars()
        ends = [start + limits.window_seconds for start in starts]
    return max((end - now for end in ends), default=0.0)


def record_failure(name: str, address: str, limits: LoginLimits, db_url: str | None = None) -> None:
    """Count a failed login of `name` from `address` (and forget ended windows)."""
    now = time.time()
    expired = now - limits.window_seconds
    with main_engine(db_url).begin() as conn:
        for kind, value in ((NAME, name), (ADDRESS, address)):
            conn.execute(
                _COUNT_FAILURE,
                {"kind": kind, "value": _key(kind, value), "now": now, "expired": expired},
            )
        conn.execute(_FORGET_EXPIRED, {"expired": expired})


def check_credentials(name: str, password: str, db_url: str | None = None) -> Credentials | None:
    """The user `name` if `password` is theirs, else None.

    Takes as long for a name nobody has as for a wrong password (a hash is
    verified either way), so the time does not reveal which names exist.
    """
    with tm.utils.MainSession(db_url) as session:
        user = session.scalar(sa.select(tm.User).where(tm.User.name == name))
        if user is None:
            check_no_password(password)
            return None
        if not user.check_password(password):
            return None
        return Credentials(user.id, user.name, user.token_epoch)


def log_out_everywhere(user_id: int, db_url: str | None = None) -> None:
    """Invalidate every token of the user (a new token epoch)."""
    with tm.utils.MainSession(db_url) as session:
        user = session.get(tm.User, user_id)
        if user is not None:
            user.renew_token_epoch()
