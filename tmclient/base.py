"""The HTTP layer of the client: session, retries, login, errors, parallel work.

Every request goes through :meth:`HttpClient._request`, which turns a failed
response into :class:`TmClientError` carrying the server's own message
(the API answers errors with ``{"error": {error, message, status_code, type}}``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, TypeVar

from tmlib.lazy import lazy_import

# tm_client --help needs no HTTP library
requests = lazy_import("requests")

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: seconds to wait for the server to accept a connection / to send the next bytes
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 300.0


class TmClientError(Exception):
    """A request failed; `status_code` is None when no response came back.

    Parameters
    ----------
    status_code : int or None
        HTTP status of the response.
    message : str
        What went wrong (the server's message where it sent one).
    kind : str
        The server's error type (e.g. ``ResourceNotFoundError``), or "".
    """

    def __init__(self, status_code: int | None, message: str, kind: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.kind = kind

    @property
    def is_client_error(self) -> bool:
        """Whether the request itself was bad (4xx): bad input rather than a failure."""
        return self.status_code is not None and 400 <= self.status_code < 500

    def __str__(self) -> str:
        if self.status_code is None:
            return self.message
        return f"{self.message} (HTTP {self.status_code})"


def _error_of(response: requests.Response) -> TmClientError:
    message = ""
    kind = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = str(body["error"].get("message") or "")
        kind = str(body["error"].get("type") or "")
    if kind == "NotFound":
        # no such route (an older server, or a mistyped path): say which
        message = f"no such route: {response.request.method} {response.request.path_url}"
    if not message:
        # not our API (a proxy, a wrong port): its status line is all we know
        message = f"{response.reason or 'request failed'}: {response.request.method} {response.url}"
    return TmClientError(response.status_code, message, kind)


class HttpClient:
    """A logged-in connection to a TissueMAPS server.

    Parameters
    ----------
    host : str
        Server name or address.
    port : int
        Server port; HTTPS is used iff it is 443.
    username, password : str
        Credentials; the client logs in (``POST /auth``) on creation.
    ca_bundle : str, optional
        CA certificates to verify the server with (HTTPS only).
    retries : int
        How often a request is retried on a connection error or a 502/503/504.

    Raises
    ------
    TmClientError
        When the server cannot be reached or refuses the credentials.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        password: str,
        ca_bundle: str | None = None,
        retries: int = 5,
    ) -> None:
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self.host = host
        self.port = int(port)
        self.username = username
        scheme = "https" if self.port == 443 else "http"
        self.base_url = f"{scheme}://{host}:{self.port}"
        self._session = requests.Session()
        # Only idempotent methods are retried on 502-504 (urllib3's default set):
        # a POST that reached the server may have created something already.
        # Connection failures are retried for every method: nothing was sent.
        retry = Retry(
            total=retries,
            connect=retries,
            read=2,
            status=retries,
            backoff_factor=0.3,
            status_forcelist=(502, 503, 504),
            raise_on_status=False,
        )
        self._adapter = HTTPAdapter(max_retries=retry, pool_connections=4, pool_maxsize=32)
        self._session.mount("http://", self._adapter)
        self._session.mount("https://", self._adapter)
        if ca_bundle is not None and scheme == "https":
            self._session.verify = ca_bundle
        self._login(username, password)

    # -- plumbing -----------------------------------------------------------

    def _login(self, username: str, password: str) -> None:
        data = self._request("POST", "/auth", json={"username": username, "password": password})
        token = data.json()["access_token"]
        self._session.headers["Authorization"] = f"JWT {token}"
        logger.debug("logged in to %s as %s", self.base_url, username)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        files: dict[str, Any] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send a request; the response on success, else :class:`TmClientError`."""
        url = self.base_url + path
        if params is not None:
            params = {k: _query_value(v) for k, v in params.items() if v is not None}
        logger.debug("%s %s %s", method, url, params or "")
        try:
            response = self._session.request(
                method,
                url,
                params=params,
                json=json,
                files=files,
                stream=stream,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            )
        except requests.exceptions.SSLError as err:
            raise TmClientError(None, f"TLS failure talking to {self.base_url}: {err}") from err
        except requests.exceptions.ConnectionError as err:
            raise TmClientError(
                None, f"cannot connect to {self.base_url}: is the server running there?"
            ) from err
        except requests.exceptions.Timeout as err:
            raise TmClientError(None, f"{method} {url}: the server did not answer in time") from err
        if response.status_code >= 400:
            error = _error_of(response)
            response.close()
            raise error
        return response

    def _get(self, path: str, **params: Any) -> Any:
        return self._request("GET", path, params=params).json()

    def _post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return self._request("POST", path, json=json, **kwargs).json()

    def _put(self, path: str, json: Any = None) -> Any:
        return self._request("PUT", path, json=json).json()

    def _delete(self, path: str, **params: Any) -> Any:
        return self._request("DELETE", path, params=params).json()

    def _parallel(
        self, fn: Callable[[T], R], items: Iterable[T], parallel: int = 1
    ) -> Iterator[tuple[T, R | None, BaseException | None]]:
        """Apply `fn` to every item on `parallel` threads.

        Yields ``(item, result, error)`` as the calls finish; an exception of
        one call does not stop the others (the caller decides what to retry).
        """
        items = list(items)
        if parallel <= 1:
            for item in items:
                try:
                    yield item, fn(item), None
                except Exception as err:
                    yield item, None, err
            return
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="tmclient") as pool:
            futures = {pool.submit(fn, item): item for item in items}
            for future in as_completed(futures):
                err = future.exception()
                yield futures[future], (None if err else future.result()), err

    def close(self) -> None:
        """Close the connections."""
        self._session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _query_value(value: Any) -> Any:
    # the server reads booleans as true/false
    if isinstance(value, bool):
        return "true" if value else "false"
    return value
