"""Making database connections: retries with back-off, and how many a process keeps.

Every engine of :mod:`tmlib.models.session` connects through
:func:`connect_with_retries` (a ``do_connect`` hook), so every user of an
engine, jobs, the workflow engine and the server alike, waits out a
PostgreSQL (or PgBouncer) that refuses connections for a while: one that is
full ("too many clients already"), starting up, restarting or not
listening yet. Attempts back off exponentially with jitter (so that hundreds
of jobs that were refused together do not come back together), bounded by a
number of retries and a total time; each retry is logged as a warning, and
the last refusal becomes a :class:`~tmlib.errors.DatabaseError` that names
the database (password masked) and the reason. Other errors (a wrong
password, an unknown database) fail at once: waiting would not help.

Pools: a job (:func:`use_job_connections`) keeps no connection between its
sessions, so it holds one only while it talks to the database; long-running
processes (the server, the workflow engine, command lines) keep a small pool.
``TMAPS_DB_POOL`` overrides both (:func:`keeps_pool`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tmlib.errors import DatabaseError

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: what PostgreSQL, libpq and PgBouncer say when a connection may succeed a
#: little later (lower case), and what that means for the message
_FULL = (
    ("too many clients already", "the server has no connection slot free (max_connections)"),
    ("remaining connection slots are reserved", "the server has no connection slot free"),
    ("too many connections for role", "the role has no connection slot free (CONNECTION LIMIT)"),
    ("too many connections for database", "the database has no connection slot free"),
    ("no more connections allowed", "PgBouncer has no client slot free (max_client_conn)"),
    ("query_wait_timeout", "PgBouncer's queue is full (query_wait_timeout)"),
)
_UNAVAILABLE = (
    ("the database system is starting up", "the server is starting up"),
    ("the database system is shutting down", "the server is shutting down"),
    ("the database system is in recovery mode", "the server is recovering"),
    ("the database system is not yet accepting connections", "the server is starting up"),
    ("the database system is not accepting connections", "the server is not accepting connections"),
    ("connection refused", "nothing listens at that address"),
    ("failed: no such file or directory", "nothing listens at that socket"),
    ("timeout expired", "the server did not answer in time"),
    ("connection timed out", "the server did not answer in time"),
    ("server closed the connection unexpectedly", "the server closed the connection"),
    ("pgbouncer cannot connect to server", "PgBouncer cannot reach the server"),
    ("server login has been failing", "PgBouncer cannot log in to the server"),
)
#: what to do when the attempts ran out: the database was full, or not there
_ADVICE = {
    True: "raise the server's max_connections or put PgBouncer in front of it, or let "
    "processes wait longer: TMAPS_DB_CONNECT_RETRIES, TMAPS_DB_CONNECT_TIMEOUT",
    False: "check TMAPS_DB_URL and that the server is running; TMAPS_DB_CONNECT_RETRIES and "
    "TMAPS_DB_CONNECT_TIMEOUT say how long to wait for it",
}


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying to connect.

    Attributes
    ----------
    retries : int
        Attempts after the first one (0: fail at the first refusal).
    timeout : float
        The most seconds spent connecting in all, attempts and waits.
    attempt_timeout : float
        The most seconds one attempt may take (libpq's ``connect_timeout``).
    first_delay, max_delay : float
        The wait before the first retry, doubled at each one up to `max_delay`;
        each wait is drawn between half of that and all of it (jitter).
    """

    retries: int = 10
    timeout: float = 120.0
    attempt_timeout: float = 10.0
    first_delay: float = 0.2
    max_delay: float = 10.0

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number `retry` (1 for the first).

        Examples
        --------
        >>> policy = RetryPolicy(first_delay=1.0, max_delay=4.0)
        >>> [policy.delay(n, random.Random(0)) <= 2 ** (n - 1) for n in (1, 2, 3)]
        [True, True, True]
        >>> 2.0 <= policy.delay(10) <= 4.0
        True
        """
        ceiling = min(self.max_delay, self.first_delay * 2 ** max(retry - 1, 0))
        return (rng or random).uniform(ceiling / 2, ceiling)


def transient_reason(err: BaseException) -> str | None:
    """Why a connection attempt failed, if trying again later may succeed; else None.

    Examples
    --------
    >>> transient_reason(OSError("FATAL:  sorry, too many clients already"))
    'the server has no connection slot free (max_connections)'
    >>> transient_reason(OSError('FATAL:  password authentication failed for user "x"')) is None
    True
    """
    found = _classify(err)
    return None if found is None else found[0]


def _classify(err: BaseException) -> tuple[str, bool] | None:
    """(reason, whether the database was full) of a transient failure; else None."""
    text = str(err).lower()
    for markers, full in ((_FULL, True), (_UNAVAILABLE, False)):
        for marker, reason in markers:
            if marker in text:
                return reason, full
    return None


def first_line(err: BaseException) -> str:
    """The first line of an error's message (libpq's are several, with FATAL:)."""
    lines = str(err).strip().splitlines()
    return lines[0].strip() if lines else type(err).__name__


def connect_with_retries(
    connect: Callable[[float], T],
    where: str,
    policy: RetryPolicy,
    sleep: Callable[[float], Any] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``connect(attempt_timeout)``, tried again with back-off while it fails transiently.

    Parameters
    ----------
    connect : callable
        Makes one attempt, given the seconds it may take.
    where : str
        The database, as messages name it (no password).
    policy : RetryPolicy
    sleep, clock : callable
        Replaced by tests.

    Raises
    ------
    DatabaseError
        When the attempts or the time ran out while the errors were transient.
    Exception
        The first error that is not transient, as it is.
    """
    start = clock()
    attempts = policy.retries + 1
    for attempt in range(1, attempts + 1):
        left = policy.timeout - (clock() - start)
        try:
            return connect(max(1.0, min(policy.attempt_timeout, left)))
        except Exception as err:
            found = _classify(err)
            if found is None:
                raise
            reason, full = found
            wait = policy.delay(attempt)
            left = policy.timeout - (clock() - start)
            if attempt == attempts or wait >= left:
                raise _gave_up(where, attempt, clock() - start, reason, full, err) from err
            logger.warning(
                "cannot connect to %s (attempt %d of %d): %s (%s); retrying in %.1f s",
                where, attempt, attempts, reason, first_line(err), wait,
            )  # fmt: skip
            sleep(wait)
    raise AssertionError("unreachable")


def _gave_up(
    where: str, attempts: int, seconds: float, reason: str, full: bool, err: Exception
) -> DatabaseError:
    plural = "s" if attempts != 1 else ""
    return DatabaseError(
        f"cannot connect to database {where} after {attempts} attempt{plural} in "
        f"{seconds:.0f} s: {reason} ({first_line(err)}); {_ADVICE[full]}"
    )


def keeps_pool(mode: str, job: bool) -> bool:
    """Whether a process keeps idle connections in a pool (else it closes each one).

    Parameters
    ----------
    mode : str
        ``TMAPS_DB_POOL``: ``auto`` (jobs do not, other processes do),
        ``pool`` (every process does) or ``none`` (no process does).
    job : bool
        Whether the process is a job (:func:`tmlib.models.session.use_job_connections`).

    Examples
    --------
    >>> keeps_pool("auto", job=True), keeps_pool("auto", job=False)
    (False, True)
    """
    return mode == "pool" or (mode == "auto" and not job)
