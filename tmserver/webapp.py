"""The browser app, served at ``/`` from its built bundle.

The bundle (``index.html`` and ``assets/`` with content-hashed names, built by
Vite from ``tmui/``) ships in the package as ``tmserver/webapp``; the setting
``webapp_dir`` (``TMAPS_WEBAPP_DIR``) serves another directory.

- ``GET /`` and every GET path outside ``/api``, ``/auth`` and ``/jtui`` that
  is not a file of the bundle answer ``index.html``: the app's own routes
  (``/experiments``, ``/viewer/3``) work on reload and as links.
- Files under ``assets/`` are cached for a year (their names change with their
  content); a missing one is a 404, never the app's page. ``index.html`` and
  other files are revalidated on every load (``no-cache``).
- ``index.html`` carries a Content-Security-Policy that allows nothing but
  this server (no code, style or data from the internet).
- Paths that would leave the directory (``..``, absolute, links pointing out)
  are 404s; paths under ``/api``, ``/auth`` and ``/jtui`` never reach this
  module, so unknown ones keep their JSON 404.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, send_file
from werkzeug.routing import PathConverter
from werkzeug.security import safe_join

from tmserver.errors import ResourceNotFoundError

#: where the package keeps the built app
WEBAPP_DIR = Path(__file__).parent / "webapp"
#: what index.html may load: this server's files only (plus inline styles, data/blob images
#: and blob workers, which the map library makes)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "worker-src 'self' blob:; connect-src 'self'"
)
#: hashed asset names: cached for good
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
#: first path segments the API, the login and the jterator editor own
RESERVED = ("api", "auth", "jtui")

webapp = Blueprint("webapp", __name__)


class AppPathConverter(PathConverter):
    """A path (as ``path``) whose first segment is none of :data:`RESERVED`."""

    regex = r"(?!(?:" + "|".join(RESERVED) + r")(?:/|$))[^/].*?"


def init_webapp(app: Flask) -> None:
    """Serve the web app on `app` (register after the API's blueprints)."""
    app.url_map.converters["app_path"] = AppPathConverter
    app.register_blueprint(webapp)


def webapp_root() -> Path:
    """The directory served: the configured ``webapp_dir``, else the package's."""
    configured = current_app.config["TMSERVER"].webapp_dir
    return Path(configured) if configured else WEBAPP_DIR


def _index(root: Path) -> Response:
    """``index.html`` with its security policy, revalidated on every load."""
    index = root / "index.html"
    if not index.is_file():
        raise ResourceNotFoundError(
            "the web app is not built: its directory has no index.html (run `npm run build` "
            "in tmui/, or set TMAPS_WEBAPP_DIR to a built app)"
        )
    response = send_file(index, mimetype="text/html", max_age=0)
    response.headers["Cache-Control"] = REVALIDATE
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _bundle_file(root: Path, path: str) -> Path | None:
    """The file of the bundle at `path`; None if there is none or the path leaves `root`."""
    joined = safe_join(str(root), path)
    if joined is None:
        return None
    resolved = Path(joined).resolve()
    if not resolved.is_relative_to(root.resolve()) or not resolved.is_file():
        return None
    return resolved


def _file(path: Path, cache_control: str) -> Response:
    response = send_file(path, max_age=0)
    response.headers["Cache-Control"] = cache_control
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@webapp.get("/")
def app_index() -> Response:
    return _index(webapp_root())


@webapp.get("/<app_path:path>")
def app_path(path: str) -> Response:
    root = webapp_root()
    found = _bundle_file(root, path)
    if found is not None and found == (root / "index.html").resolve():
        return _index(root)
    if found is not None:
        under_assets = found.is_relative_to((root / "assets").resolve())
        return _file(found, IMMUTABLE if under_assets else REVALIDATE)
    if safe_join(str(root), path) is None or path.split("/", 1)[0] == "assets":
        raise ResourceNotFoundError(f"no file {path!r} in the web app")
    return _index(root)  # one of the app's own routes
