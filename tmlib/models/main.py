"""Models of the main database: users, experiment references and shares, submissions, tasks."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from tmlib.models.base import BigIdType, JSONType, MainModel, Timestamps

_hasher = PasswordHasher()

#: Table option: ids are never handed out again, not even the deleted newest one. SQLite
#: reuses max(id) + 1 without AUTOINCREMENT, and a reused id inherits what is keyed by it
#: elsewhere (experiment directories and schemas, cached engines, tokens, job logs).
#: PostgreSQL's serial sequences never go back, also not on rollback.
NEVER_REUSED = {"sqlite_autoincrement": True}
#: (hasher, hash of a random password) for :func:`check_no_password`
_dummy: tuple[PasswordHasher, str] | None = None


def new_token_epoch() -> int:
    """A random token epoch: tokens of a former holder of a user id never match it."""
    return secrets.randbits(31)


def check_no_password(password: str) -> bool:
    """Verify `password` against a hash nobody knows, as long as a real check; False.

    Login of an unknown user costs the same time as that of a known one, so the
    answer's time does not tell whether a user name exists.
    """
    global _dummy
    if _dummy is None or _dummy[0] is not _hasher:
        _dummy = (_hasher, _hasher.hash(secrets.token_urlsafe(16)))
    with contextlib.suppress(VerificationError, InvalidHashError):
        _hasher.verify(_dummy[1], password)
    return False


class User(Timestamps, MainModel):
    """A person who owns experiments. Passwords are stored as argon2id hashes.

    Tokens carry the user's ``token_epoch``; changing it (:meth:`renew_token_epoch`)
    invalidates every token issued before.
    """

    __tablename__ = "users"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    token_epoch: Mapped[int] = mapped_column(Integer, default=new_token_epoch)

    experiments: Mapped[list[ExperimentReference]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    def __init__(self, name: str, email: str, password: str) -> None:
        super().__init__(name=name, email=email, password_hash=_hasher.hash(password))

    def check_password(self, password: str) -> bool:
        """Whether `password` matches the stored hash."""
        try:
            return _hasher.verify(self.password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def renew_token_epoch(self) -> None:
        """Invalidate every token issued so far (log out everywhere)."""
        old = self.token_epoch
        while self.token_epoch == old:
            self.token_epoch = new_token_epoch()

    def __repr__(self) -> str:
        return f"<User(id={self.id}, name={self.name!r})>"


class LoginFailure(MainModel):
    """Failed logins of one user name or from one address, counted per time window.

    Kept in the main database so that every server process and every restart
    sees the same counts (see :mod:`tmlib.logins`). ``value`` is a digest.
    """

    __tablename__ = "login_failures"

    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    value: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[float] = mapped_column(Float, index=True)
    count: Mapped[int] = mapped_column(Integer)


class ExperimentReference(Timestamps, MainModel):
    """Where an experiment lives and who owns it.

    The experiment's own tables are in schema ``experiment_<id>`` (PostgreSQL)
    or in ``<location>/experiment.db`` (SQLite).
    """

    __tablename__ = "experiment_references"
    __table_args__ = (UniqueConstraint("name", "user_id"), NEVER_REUSED)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    root_directory: Mapped[str] = mapped_column(String(4096))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)

    user: Mapped[User] = relationship(back_populates="experiments")
    shares: Mapped[list[ExperimentShare]] = relationship(
        back_populates="experiment", cascade="all, delete-orphan", passive_deletes=True
    )

    @property
    def location(self) -> str:
        """Absolute path of the experiment directory."""
        return os.path.join(self.root_directory, f"experiment_{self.id}")

    def can_be_accessed_by(self, user_id: int, permission: str = "write") -> bool:
        """Whether a user may read (``'read'``) or modify (``'write'``) the experiment."""
        if user_id == self.user_id:
            return True
        for share in self.shares:
            if share.user_id == user_id:
                return permission == "read" or share.write_access
        return False

    def __repr__(self) -> str:
        return f"<ExperimentReference(id={self.id}, name={self.name!r})>"


class ExperimentShare(MainModel):
    """Access of another user to an experiment (read, optionally write)."""

    __tablename__ = "experiment_shares"
    __table_args__ = (UniqueConstraint("experiment_id", "user_id"), NEVER_REUSED)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiment_references.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    write_access: Mapped[bool] = mapped_column(Boolean, default=False)

    experiment: Mapped[ExperimentReference] = relationship(back_populates="shares")
    user: Mapped[User] = relationship()


class Submission(Timestamps, MainModel):
    """One submission of a program (workflow, step, tool) for an experiment."""

    __tablename__ = "submissions"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(BigIdType, primary_key=True)
    program: Mapped[str] = mapped_column(String(50), index=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiment_references.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    top_task_id: Mapped[int | None] = mapped_column(BigInteger)

    tasks: Mapped[list[Task]] = relationship(
        back_populates="submission", cascade="all, delete-orphan", passive_deletes=True
    )


class Task(Timestamps, MainModel):
    """Persisted state of a job or job collection, written as it changes.

    ``time`` and ``cpu_time`` are seconds, ``memory`` is the peak resident
    memory in MB. ``data`` holds what is needed to run the job again.
    """

    __tablename__ = "tasks"
    __table_args__ = NEVER_REUSED

    id: Mapped[int] = mapped_column(BigIdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    state: Mapped[str] = mapped_column(String(20), index=True, default="NEW")
    exitcode: Mapped[int | None] = mapped_column(Integer)
    time: Mapped[float | None] = mapped_column(Float)
    cpu_time: Mapped[float | None] = mapped_column(Float)
    memory: Mapped[float | None] = mapped_column(Float)
    type: Mapped[str] = mapped_column(String(50))
    is_collection: Mapped[bool] = mapped_column(Boolean, default=False)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), index=True
    )
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submissions.id", ondelete="CASCADE"), index=True
    )
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    started_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]

    submission: Mapped[Submission] = relationship(back_populates="tasks")
    children: Mapped[list[Task]] = relationship(cascade="all, delete-orphan", order_by="Task.id")
