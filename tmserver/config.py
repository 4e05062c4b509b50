"""Server settings, from environment variables (like every tmlib setting).

=====================  ===============================  ==========================================
setting                environment variable             default
=====================  ===============================  ==========================================
secret_key             ``TMAPS_SECRET_KEY``             random, kept in ``$TMAPS_HOME/secret_key``
jwt_expiration_hours   ``TMAPS_JWT_EXPIRATION_HOURS``   72
max_upload_mb          ``TMAPS_MAX_UPLOAD_MB``          4096 (largest microscope file accepted)
=====================  ===============================  ==========================================
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from tmlib.config import load_settings
from tmlib.errors import ConfigError


@dataclass(frozen=True)
class ServerConfig:
    """Resolved server settings."""

    secret_key: str
    jwt_expiration_hours: float = 72.0
    max_upload_mb: int = 4096


def _persistent_secret(home: Path) -> str:
    # Every worker process and every restart must sign with the same key, or
    # tokens stop working; a random key kept beside the database does that.
    path = home / "secret_key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".secret_key.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)  # atomic; the first writer wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def _positive(name: str, raw: str | None, default: float) -> float:
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {raw!r}")
    return value


def load_server_config(environ: dict[str, str] | None = None) -> ServerConfig:
    """Read the server settings (see the module docstring)."""
    env = os.environ if environ is None else environ
    secret = env.get("TMAPS_SECRET_KEY") or _persistent_secret(load_settings().home)
    return ServerConfig(
        secret_key=secret,
        jwt_expiration_hours=_positive(
            "TMAPS_JWT_EXPIRATION_HOURS", env.get("TMAPS_JWT_EXPIRATION_HOURS"), 72.0
        ),
        max_upload_mb=int(_positive("TMAPS_MAX_UPLOAD_MB", env.get("TMAPS_MAX_UPLOAD_MB"), 4096)),
    )
