"""One Microsoft 365 mailbox's Graph session: an ``httpx.Client`` that keeps Graph's throttling
rules instead of fighting them.

Graph's limits for Outlook resources (learn.microsoft.com/graph/throttling-limits, "Outlook service
limits"), applied per app and mailbox, which is what one session serves:

- at most 4 concurrent requests: a semaphore of ``concurrency`` slots;
- 10,000 requests per 10 minutes: a sliding window, waited in advance;
- 150 MB of upload (PATCH, POST, PUT) per 5 minutes: a sliding window of bytes, waited in advance;
- a 429 or 503 carries ``Retry-After``: waited (the slot released meanwhile), counted, retried up
  to ``max_throttled`` times, then ``ThrottledError``.

Failures become mailferry errors here:

    transport failure (refused, TLS, dropped)  -> ConnectError (a GET is retried first; a POST
                                                  never is: it may have been carried out)
    401 (after one token refresh)              -> AuthError (but the 401 of a pre-authenticated
                                                  URL, ``authorized=False``, is returned: its own
                                                  token expired, not the account's)
    429, 503 past the retries                  -> ThrottledError
    other 5xx                                  -> ConnectError
    anything else                              -> returned: the caller knows whether a 400/403/
                                                  404/409/412 concerns an item or a folder

The token lives only in the request headers; httpx logs none and no error repeats it.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

import httpx

from mailferry.adapters.dav.session import BearerAuth, retry_after
from mailferry.adapters.oauth.app_only import GRAPH_URL
from mailferry.adapters.tls import TlsOptions
from mailferry.domain.errors import AuthError, ConnectError, ThrottledError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import TracebackType

    from mailferry.domain.ports import TokenProvider

VERSION = "v1.0"
TIMEOUT = httpx.Timeout(120.0, connect=15.0)
__all__ = ["GRAPH_URL", "GraphAnswerError", "GraphLimits", "GraphSession", "expect"]
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
THROTTLED = frozenset({429, 503})


@dataclass(frozen=True)
class GraphLimits:
    """Graph's per app-and-mailbox limits (defaults: Outlook's published ones)."""

    concurrency: int = 4
    requests: int = 10_000
    request_window: float = 600.0
    upload_bytes: int = 150 * 1024 * 1024
    upload_window: float = 300.0
    max_throttled: int = 10  # 429/503 answers in a row before giving up on a request
    retries: int = 3  # transport failures of an idempotent request before giving up


@dataclass
class GraphStats:
    """What one session did, for the summary (``throttled``: 429/503 answers waited out)."""

    requests: int = 0
    throttled: int = 0
    waited: float = 0.0  # seconds slept on Retry-After
    paced: float = 0.0  # seconds slept in advance to stay under the windows
    uploaded: int = 0  # request body bytes
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: float) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)


class Window:
    """At most ``limit`` units (requests or bytes) in any ``seconds``: ``take(n)`` sleeps until
    ``n`` fit, then records them. A single take larger than the limit waits for an empty window."""

    def __init__(
        self, limit: int, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.seconds = seconds
        self._clock = clock
        self._spent: collections.deque[tuple[float, int]] = collections.deque()
        self._total = 0
        self._lock = threading.Lock()

    def take(self, units: int, sleep: Callable[[float], None] = time.sleep) -> float:
        """Record ``units``; the seconds slept first."""
        slept = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._spent and self._spent[0][0] <= now - self.seconds:
                    self._total -= self._spent.popleft()[1]
                if not self._spent or self._total + units <= self.limit:
                    self._spent.append((now, units))
                    self._total += units
                    return slept
                wait = self._spent[0][0] + self.seconds - now
            sleep(wait)
            slept += wait


class GraphSession:
    """``with GraphSession(url, mailbox, tokens) as graph: graph.get("/users/a@b/calendars")``.

    ``path`` arguments are relative to ``{graph_url}/v1.0`` or absolute URLs (``@odata.nextLink``,
    an import session's ``importUrl``). Thread-safe: several items of one mailbox go at once.
    """

    def __init__(
        self,
        graph_url: str,
        mailbox: str,
        tokens: TokenProvider,
        tls: TlsOptions | None = None,
        *,
        limits: GraphLimits | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float | None = None,
    ) -> None:
        self.graph_url = graph_url.rstrip("/")
        self.base = f"{self.graph_url}/{VERSION}"
        self.mailbox = mailbox
        self.limits = limits or GraphLimits()
        self.stats = GraphStats()
        self._sleep = sleep
        self._slots = threading.BoundedSemaphore(self.limits.concurrency)
        # a margin on each window: Graph counts from when a request arrives, not when it left
        margin = 1.02
        self._requests = Window(self.limits.requests, self.limits.request_window * margin + 0.5)
        self._uploads = Window(self.limits.upload_bytes, self.limits.upload_window * margin + 0.5)
        self._client = httpx.Client(
            auth=BearerAuth(tokens),
            verify=(tls or TlsOptions()).own_context(),
            timeout=TIMEOUT if timeout is None else httpx.Timeout(timeout),
            headers={"User-Agent": "mailferry", "Accept": "application/json"},
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

    def url(self, path: str) -> str:
        return path if path.startswith(("https://", "http://")) else f"{self.base}{path}"

    # -- requests --------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        authorized: bool = True,
    ) -> httpx.Response:
        """One request under Graph's limits; see the module docstring for what is raised.
        ``authorized=False``: no Authorization header (an ``importUrl`` carries its own)."""
        request = self._client.build_request(
            method, self.url(path), json=json, params=params, headers=headers
        )
        size = len(request.content) if json is not None else 0
        throttled = failures = 0
        while True:
            self.stats.add(paced=self._requests.take(1, self._sleep))
            if size:
                self.stats.add(paced=self._uploads.take(size, self._sleep), uploaded=size)
            try:
                response = self._send(request, authorized=authorized)
            except httpx.TransportError as exc:
                failures += 1
                if method not in IDEMPOTENT or failures > self.limits.retries:
                    raise ConnectError(
                        f"{self._where(method, path)}: {type(exc).__name__}"
                    ) from exc
                self._sleep(min(2.0**failures, 30.0))
                continue
            if response.status_code not in THROTTLED:
                if authorized or response.status_code != 401:
                    _raise_for_account(response, self._where(method, path))
                return response
            throttled += 1
            wait = retry_after(response.headers.get("Retry-After")) or min(2.0**throttled, 60.0)
            if throttled > self.limits.max_throttled:
                raise ThrottledError(
                    f"{self._where(method, path)}: HTTP {response.status_code} "
                    f"{throttled} times in a row",
                    wait,
                )
            self.stats.add(throttled=1, waited=wait)
            self._sleep(wait)

    def _send(self, request: httpx.Request, *, authorized: bool) -> httpx.Response:
        with self._slots:
            self.stats.add(requests=1)
            if authorized:
                return self._client.send(request)
            return self._client.send(request, auth=None)

    def _where(self, method: str, path: str) -> str:
        shown = path.split("?", 1)[0] if path.startswith("http") else path
        return f"Graph {method} {shown}"

    # -- JSON helpers ----------------------------------------------------------------------------
    def pages(self, path: str, params: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Every object of a collection, following ``@odata.nextLink``; the last page's
        ``@odata.deltaLink`` (if any) is in ``self.last_delta_link`` afterwards."""
        self.last_delta_link: str | None = None
        url: str | None = path
        query = params
        while url is not None:
            response = self.request("GET", url, params=query)
            body = expect(response, 200)
            yield from body.get("value", [])
            url = body.get("@odata.nextLink")
            query = None
            if url is None:
                self.last_delta_link = body.get("@odata.deltaLink")


def expect(response: httpx.Response, *ok: int) -> dict[str, Any]:
    """The JSON object of an answer whose status is one of ``ok``; else ``GraphAnswerError``."""
    if response.status_code not in ok:
        raise GraphAnswerError(response)
    if response.status_code == 204 or not response.content:
        return {}
    try:
        body = response.json()
    except ValueError:
        raise GraphAnswerError(response, "the answer is not JSON") from None
    if not isinstance(body, dict):
        raise GraphAnswerError(response, "the answer is not a JSON object")
    return body


class GraphAnswerError(Exception):
    """An answer the caller did not expect, with Graph's error code and message. Adapters turn it
    into the ``FolderError``/``ItemError`` of what they were doing (it never leaves the package)."""

    def __init__(self, response: httpx.Response, problem: str | None = None) -> None:
        self.status = response.status_code
        self.code, message = graph_error(response)
        self.reason = problem or f"HTTP {self.status} {self.code}: {message}".rstrip(": ")
        super().__init__(self.reason)


def graph_error(response: httpx.Response) -> tuple[str, str]:
    """Graph's ``{"error": {"code", "message"}}`` as (code, first line of the message)."""
    try:
        error = response.json().get("error", {})
        code = str(error.get("code", "")) or "error"
        message = str(error.get("message", "")).strip().splitlines()
    except (ValueError, AttributeError):
        return "error", ""
    return code, (message[0][:300] if message else "")


def _raise_for_account(response: httpx.Response, where: str) -> None:
    status = response.status_code
    if status == 401:
        code, message = graph_error(response)
        raise AuthError(
            f"{where}: token refused (HTTP 401 {code}{': ' + message if message else ''})"
        )
    if status >= 500:
        raise ConnectError(f"{where}: HTTP {status}")
