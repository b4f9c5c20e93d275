"""One DAV account's HTTP connection: an ``httpx.Client`` with keep-alive, Basic auth, verified
TLS, and the one place where HTTP failures become mailferry errors.

    transport failure (refused, TLS, dropped)   -> ConnectError
    401                                         -> AuthError
    429, 503                                    -> ThrottledError (wait = Retry-After, seconds)
    507, or 403 naming DAV:quota-not-exceeded   -> TargetFullError (RFC 4918 s11.5, RFC 4331 s6:
      or DAV:sufficient-disk-space                 no room for what was sent: every write after
                                                   it would be refused the same way)
    500                                         -> ServerFaultError (a ConnectError: retried, but
                                                   a PUT so answered is the item's, service/davwrites)
    other 5xx                                   -> ConnectError
    anything else                               -> returned to the caller, which knows whether
                                                   a 403/404/409/412 concerns a collection
                                                   (FolderError) or an item (ItemError)

The password lives only in the client's auth object; it is never logged, printed or put in an
error (httpx logs no headers).
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self

import httpx

from mailferry.adapters.dav.multistatus import DavResponse, d, error_conditions, parse_multistatus
from mailferry.adapters.tls import TlsOptions
from mailferry.domain.errors import (
    AuthError,
    ConnectError,
    FolderError,
    ServerFaultError,
    TargetFullError,
    ThrottledError,
)

if TYPE_CHECKING:
    from collections.abc import Generator
    from types import TracebackType

    from mailferry.adapters.dav.url import DavUrl
    from mailferry.domain.ports import TokenProvider

TIMEOUT = httpx.Timeout(60.0, connect=15.0)
XML = "application/xml; charset=utf-8"
MULTI_STATUS = 207
INSUFFICIENT_STORAGE = 507
SERVER_ERROR = 500
# The preconditions of a 403 (or 507) that say the account or the disk has no room (RFC 4331 s6).
# CALDAV/CARDDAV:max-resource-size is not one: it is about one item's size (an ItemError).
NO_ROOM = frozenset({d("quota-not-exceeded"), d("sufficient-disk-space")})


@dataclass(frozen=True)
class DavLogin:
    """Basic auth with ``password``, or a Bearer token from ``tokens`` (OAuth2: Google, ...)."""

    user: str
    password: str = field(default="", repr=False)
    tokens: TokenProvider | None = field(default=None, repr=False)

    def auth(self) -> httpx.Auth:
        if self.tokens is not None:
            return BearerAuth(self.tokens)
        return httpx.BasicAuth(self.user, self.password)


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer``; a 401 asks the provider once for a fresh token (RFC 6750)."""

    def __init__(self, tokens: TokenProvider) -> None:
        self._tokens = tokens

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._tokens.token()}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self._tokens.token(force_refresh=True)}"
            yield request


def retry_after(value: str | None, now: float | None = None) -> float:
    """``Retry-After`` in seconds (a number or an HTTP date); 0 when absent or unreadable."""
    if not value:
        return 0.0
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class DavSession:
    """``with DavSession(url, login) as session: session.propfind(...)``."""

    def __init__(
        self,
        url: DavUrl,
        login: DavLogin,
        tls: TlsOptions | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        tls = tls or TlsOptions()
        self._client = httpx.Client(
            base_url=url.base,
            auth=login.auth(),
            verify=tls.own_context(),
            timeout=TIMEOUT,
            headers={"User-Agent": "mailferry"},
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        try:
            response = self._client.request(method, path, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise ConnectError(
                f"{self.url.base}: {method} {path}: {type(exc).__name__}: {exc}"
            ) from exc
        _raise_for_account(response, f"{self.url.base}: {method} {path}")
        return response

    def multistatus(self, method: str, path: str, body: bytes, depth: str) -> list[DavResponse]:
        """PROPFIND or REPORT: the parsed 207, or FolderError naming the status."""
        headers = {"Depth": depth, "Content-Type": XML}
        return read_multistatus(self.request(method, path, body=body, headers=headers), path)


def read_multistatus(response: httpx.Response, path: str) -> list[DavResponse]:
    method = response.request.method
    if response.status_code != MULTI_STATUS:
        raise FolderError(path, f"{method}: HTTP {response.status_code}")
    try:
        return parse_multistatus(response.content)
    except SyntaxError as exc:  # ET.ParseError
        raise FolderError(path, f"{method}: unreadable XML ({exc})") from exc


def _raise_for_account(response: httpx.Response, where: str) -> None:
    status = response.status_code
    if status == 401:
        raise AuthError(f"{where}: login refused (HTTP 401)")
    if status in {429, 503}:
        wait = retry_after(response.headers.get("Retry-After"))
        raise ThrottledError(f"{where}: HTTP {status}, retry after {wait:.0f}s", wait)
    if status == INSUFFICIENT_STORAGE or (status == 403 and _no_room(response)):
        raise TargetFullError(f"{where}: HTTP {status} {_said(response)}".rstrip())
    if status == SERVER_ERROR:
        raise ServerFaultError(f"{where}: HTTP {status} {_said(response)}".rstrip())
    if status >= 500:
        raise ConnectError(f"{where}: HTTP {status}")


def _no_room(response: httpx.Response) -> bool:
    return bool(NO_ROOM & error_conditions(response.content))


def _said(response: httpx.Response) -> str:
    """The reason phrase, and the body's first line when it is short plain text (Radicale:
    "Insufficient Storage.  Please contact the administrator.")."""
    said = response.reason_phrase
    kind = response.headers.get("Content-Type", "")
    lines = response.text.strip().splitlines() if kind.startswith("text/plain") else []
    if lines and len(lines[0]) <= 200 and lines[0] != said:
        said += f" ({lines[0]})"
    return said
