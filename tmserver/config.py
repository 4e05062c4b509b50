"""Server settings, from environment variables (like every tmlib setting).

=====================  ===============================  ==========================================
setting                environment variable             default
=====================  ===============================  ==========================================
secret_key             ``TMAPS_SECRET_KEY``             random, in ``$TMAPS_HOME/secret_key``
jwt_expiration_hours   ``TMAPS_JWT_EXPIRATION_HOURS``   72
tile_token_minutes     ``TMAPS_TILE_TOKEN_MINUTES``     60 (``?access_token=`` tokens, for map
                                                        tiles only, live this long)
max_upload_mb          ``TMAPS_MAX_UPLOAD_MB``          4096 (largest microscope file accepted)
max_json_mb            ``TMAPS_MAX_JSON_MB``            4 (largest body of any other request)
max_bulk_json_mb       ``TMAPS_MAX_BULK_JSON_MB``       256 (largest JSON data upload: feature
                                                        values of a site)
password_checks        ``TMAPS_PASSWORD_CHECKS``        min(2, cores): concurrent password
                                                        checks per process (64 MB each)
password_wait_seconds  ``TMAPS_PASSWORD_WAIT_SECONDS``  5; a login waiting longer gets 503
login_max_failures     ``TMAPS_LOGIN_MAX_FAILURES``     10 failed logins of one user name, or
                                                        from one address, ...
login_window_seconds   ``TMAPS_LOGIN_WINDOW_SECONDS``   300 ... within this time lock it (429)
                                                        until the window ends
trusted_proxies        ``TMAPS_TRUSTED_PROXIES``        0; behind nginx: 1 (client addresses are
                                                        then read from ``X-Forwarded-For``)
webapp_dir             ``TMAPS_WEBAPP_DIR``             the built browser app served at ``/``:
                                                        ``tmserver/webapp`` of the package
=====================  ===============================  ==========================================
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from tmlib.config import load_settings
from tmlib.errors import ConfigError


def _default_password_checks() -> int:
    return max(1, min(2, os.cpu_count() or 1))


@dataclass(frozen=True)
class ServerConfig:
    """Resolved server settings (see the module docstring)."""

    secret_key: str
    jwt_expiration_hours: float = 72.0
    tile_token_minutes: float = 60.0
    max_upload_mb: int = 4096
    max_json_mb: float = 4.0
    max_bulk_json_mb: float = 256.0
    password_checks: int = _default_password_checks()
    password_wait_seconds: float = 5.0
    login_max_failures: int = 10
    login_window_seconds: float = 300.0
    trusted_proxies: int = 0
    #: directory of the built web app (index.html, assets/); None: the package's
    webapp_dir: str | None = None


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _symlink_error(path: Path) -> ConfigError:
    return ConfigError(
        f"{path} is a symbolic link: refusing to use it as the server's secret key "
        "(remove it, or set TMAPS_SECRET_KEY)"
    )


def _read_secret(path: Path) -> str:
    """The key in `path`, opened without following a symbolic link."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise _symlink_error(path) from None
        raise ConfigError(f"cannot read the secret key {path}: {err.strerror}") from None
    with os.fdopen(fd) as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ConfigError(f"{path} is not a regular file: cannot use it as the secret key")
        return fh.read().strip()


def _persistent_secret(home: Path) -> str:
    # Every worker process and every restart must sign with the same key, or
    # tokens stop working; a random key kept beside the database does that.
    # Whoever can plant a link there must neither choose our key nor make us
    # write through it: nothing here follows a symbolic link.
    path = home / "secret_key"
    if path.is_symlink():
        raise _symlink_error(path)
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".secret_key.{secrets.token_hex(8)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
            os.link(tmp, path, follow_symlinks=False)  # atomic; the first writer wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return _read_secret(path)


def _positive(name: str, raw: str | None, default: float) -> float:
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name} must be a positive number, got {raw!r}")
    return value


def _positive_int(name: str, raw: str | None, default: int) -> int:
    value = _positive(name, raw, default)
    if value != int(value):
        raise ConfigError(f"{name} must be a positive whole number, got {raw!r}")
    return int(value)


def _count(name: str, raw: str | None, default: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.strip().isdigit():
        raise ConfigError(f"{name} must be a whole number >= 0, got {raw!r}")
    return int(raw)


def load_server_config(environ: dict[str, str] | None = None) -> ServerConfig:
    """Read the server settings (see the module docstring)."""
    env = os.environ if environ is None else environ
    secret = env.get("TMAPS_SECRET_KEY") or _persistent_secret(load_settings().home)

    def number(name: str, default: float) -> float:
        return _positive(name, env.get(name), default)

    def whole(name: str, default: int) -> int:
        return _positive_int(name, env.get(name), default)

    return ServerConfig(
        secret_key=secret,
        jwt_expiration_hours=number("TMAPS_JWT_EXPIRATION_HOURS", 72.0),
        tile_token_minutes=number("TMAPS_TILE_TOKEN_MINUTES", 60.0),
        max_upload_mb=int(number("TMAPS_MAX_UPLOAD_MB", 4096)),
        max_json_mb=number("TMAPS_MAX_JSON_MB", 4.0),
        max_bulk_json_mb=number("TMAPS_MAX_BULK_JSON_MB", 256.0),
        password_checks=whole("TMAPS_PASSWORD_CHECKS", _default_password_checks()),
        password_wait_seconds=number("TMAPS_PASSWORD_WAIT_SECONDS", 5.0),
        login_max_failures=whole("TMAPS_LOGIN_MAX_FAILURES", 10),
        login_window_seconds=number("TMAPS_LOGIN_WINDOW_SECONDS", 300.0),
        trusted_proxies=_count("TMAPS_TRUSTED_PROXIES", env.get("TMAPS_TRUSTED_PROXIES"), 0),
        webapp_dir=env.get("TMAPS_WEBAPP_DIR") or None,
    )
