"""The FAKE Graph's HTTPS front: tokens, permissions, throttling, faults and the route table.

Written from these pages of Microsoft's documentation (learn.microsoft.com):
- graph/auth-v2-service (app-only access tokens; ``roles`` carries the application permissions),
- graph/errors ("Error resource type": ``{"error": {"code", "message", "innerError"}}``; 400, 401,
  403, 404, 409, 412, 415, 429, 503),
- graph/throttling and graph/throttling-limits ("Outlook service limits": 4 concurrent requests per
  app and mailbox, 10,000 requests per 10 minutes, 150 MB upload per 5 minutes; 429 with
  ``Retry-After``),
- exchange/permissions-reference application access policies (403 ``ErrorAccessDenied`` for a
  mailbox outside the app's scope).

Handlers live in ``mailbox`` and ``resources``; each registers its routes with ``route``. A handler
gets a ``Call`` (the mailbox resolved, the JSON body parsed) and returns an ``Answer``.

(Over 400 lines: the request path is one sequence of checks, as Graph makes them; splitting it would
scatter the order in which the fake refuses.)
"""

from __future__ import annotations

import base64
import collections
import json
import re
import secrets
import ssl
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qsl, unquote, urlsplit

from mailferry.sandbox.graph.store import FakeMailbox, FakeStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

HOST = "127.0.0.1"


@dataclass(frozen=True)
class TokenInfo:
    app: str
    roles: frozenset[str]
    expires: float


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # after /v1.0, unquoted
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any  # the parsed JSON (None without a body)
    size: int  # body bytes
    app: str
    roles: frozenset[str]
    mailbox: FakeMailbox | None
    match: re.Match[str]


@dataclass
class Answer:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, code: str, message: str) -> Answer:
    """Graph's error resource (graph/errors)."""
    inner = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "request-id": str(uuid.uuid4())}
    return Answer(status, {"error": {"code": code, "message": message, "innerError": inner}})


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]  # the path after /v1.0 (or /api/...: the importUrl host); a group
    # named ``mbx`` names the mailbox (UPN or mailbox id): resolved, policed, throttled per mailbox
    handler: Callable[[FakeGraph, Call], Answer]
    roles: tuple[str, ...]  # any one of them suffices ("least" or "higher privileged")
    authorized: bool = True  # False: an importUrl, pre-authenticated by its own token


ROUTES: list[Route] = []


def route(method: str, pattern: str, *roles: str, authorized: bool = True) -> Callable[..., Any]:
    """Register a handler for ``method`` and a regex of the path after ``/v1.0``."""

    def register(
        handler: Callable[[FakeGraph, Call], Answer],
    ) -> Callable[[FakeGraph, Call], Answer]:
        ROUTES.append(Route(method, re.compile(pattern + r"\Z"), handler, roles, authorized))
        return handler

    return register


@dataclass(frozen=True)
class Fault:
    """Answer the next ``times`` matching requests with ``status`` (before doing anything), or,
    ``drop_after_commit``, do the work and then close the connection without an answer."""

    method: str
    path: str  # a regex searched in the path
    status: int = 503
    drop_after_commit: bool = False
    retry_after: float = 1.0


@dataclass
class Counters:
    requests: int = 0
    throttled: int = 0  # 429 answers (concurrency or windows)
    max_in_flight: dict[tuple[str, str], int] = field(default_factory=dict)
    calls: collections.Counter[str] = field(
        default_factory=collections.Counter
    )  # "POST exportItems"


class FakeGraph:
    """``with FakeGraph(tmp) as graph: graph.store.add_mailbox("alice@contoso.com")``."""

    def __init__(
        self,
        root: Path,
        *,
        concurrency: int = 4,
        requests: int = 10_000,
        request_window: float = 600.0,
        upload_bytes: int = 150 * 1024 * 1024,
        upload_window: float = 300.0,
        retry_after: float = 1.0,
        delay: float = 0.0,
    ) -> None:
        self.root = root
        self.store = FakeStore()
        self.concurrency = concurrency
        self.requests, self.request_window = requests, request_window
        self.upload_bytes, self.upload_window = upload_bytes, upload_window
        self.retry_after = retry_after
        self.delay = delay  # seconds each request takes (a round trip, for benchmarks)
        self.counters = Counters()
        self.tokens: dict[str, TokenInfo] = {}
        self.verifiers: list[Callable[[str], TokenInfo | None]] = []  # e.g. the fake IdP's
        self.denied: dict[str, set[str]] = {}  # app -> UPNs an access policy keeps it out of
        self.faults: list[tuple[Fault, list[int]]] = []
        self.lock = threading.Lock()
        self._in_flight: collections.Counter[tuple[str, str]] = collections.Counter()
        self._windows: dict[tuple[str, str, str], collections.deque[tuple[float, int]]] = {}
        # the mailbox import/export API's server-side state and knobs (sandbox/graph/mailbox.py)
        self.max_item_bytes = 150 * 1024 * 1024  # Exchange Online's message size limit
        self.import_lifetime = 3600.0  # seconds an importUrl stays valid
        self.import_sessions: dict[str, tuple[str, float]] = {}  # authtoken -> (mailbox id, expiry)
        self.delta_rounds: dict[str, Any] = {}  # $deltatoken/$skiptoken -> mailbox.DeltaRound
        self.page_size = 100  # items or folders per page when the client asks for no size
        self.ca_file = root / "graph-cert.pem"
        self._server: ThreadingHTTPServer | None = None

    # -- set-up ----------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        from mailferry.sandbox.graph import (  # noqa: F401, PLC0415 - their routes
            importexport,
            mailbox,
            mailboxdelta,
            resources,
        )

        self.root.mkdir(parents=True, exist_ok=True)
        key = self.root / "graph-key.pem"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-nodes", "-days", "2", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-keyout", str(key), "-out", str(self.ca_file), "-subj", "/CN=127.0.0.1",
                "-addext", "subjectAltName=IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, key)
        server = ThreadingHTTPServer((HOST, 0), _handler_for(self))
        server.daemon_threads = True
        server.request_queue_size = 64
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        self._server = server
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        """What ``--…-m365-graph-url`` takes (the real one: https://graph.microsoft.com)."""
        if self._server is None:
            raise RuntimeError("the FAKE Graph is not started")
        return f"https://{HOST}:{self._server.server_address[1]}"

    def issue_token(
        self, app: str, roles: list[str] | tuple[str, ...], lifetime: float = 3600.0
    ) -> str:
        """An app-only token shaped like Entra's (a JWT whose ``roles`` a client may read)."""
        claims = {
            "aud": self.url,
            "appid": app,
            "roles": list(roles),
            "exp": int(time.time() + lifetime),
        }
        parts = [{"typ": "JWT", "alg": "RS256"}, claims]
        encoded = [
            base64.urlsafe_b64encode(json.dumps(p).encode()).decode().rstrip("=") for p in parts
        ]
        token = ".".join([*encoded, secrets.token_urlsafe(32)])
        with self.lock:
            self.tokens[token] = TokenInfo(app, frozenset(roles), time.time() + lifetime)
        return token

    def expire_import_sessions(self) -> None:
        """Every importUrl handed out so far expires now (as at its expirationDateTime)."""
        with self.lock:
            for token, (mailbox_id, _) in list(self.import_sessions.items()):
                self.import_sessions[token] = (mailbox_id, 0.0)

    def expire_delta_tokens(self) -> None:
        """Every delta and skip token handed out so far is forgotten (Exchange's token cache
        evicted them): the next use of one gets 410 ``SyncStateNotFound``."""
        with self.lock:
            self.delta_rounds.clear()

    def fail(self, fault: Fault, times: int = 1) -> None:
        with self.lock:
            self.faults.append((fault, [times]))

    # -- the request path ------------------------------------------------------------------------
    def token_info(self, header: str) -> TokenInfo | None:
        if not header.startswith("Bearer "):
            return None
        token = header.removeprefix("Bearer ").strip()
        with self.lock:
            info = self.tokens.get(token)
        for verify in self.verifiers:
            info = info or verify(token)
        return info if info is not None and info.expires > time.time() else None

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault, left in self.faults:
                if left[0] > 0 and fault.method == method and re.search(fault.path, path):
                    left[0] -= 1
                    return fault
        return None

    def admit(self, app: str, box: str, size: int) -> Answer | None:
        """Graph's throttling for one request of ``app`` on mailbox ``box``: None to go on (the
        request then counts as in flight until ``release``), or the 429 to answer."""
        with self.lock:
            key = (app, box)
            if self._in_flight[key] >= self.concurrency:
                return self._throttled(
                    "ApplicationThrottled", "Too many concurrent requests", self.retry_after
                )
            for kind, limit, window, units in (
                ("requests", self.requests, self.request_window, 1),
                ("upload", self.upload_bytes, self.upload_window, size),
            ):
                wait = self._spend((app, box, kind), limit, window, units)
                if wait:
                    return self._throttled("ApplicationThrottled", f"{kind} limit reached", wait)
            self._in_flight[key] += 1
            highest = self.counters.max_in_flight.get(key, 0)
            self.counters.max_in_flight[key] = max(highest, self._in_flight[key])
            return None

    def release(self, app: str, box: str) -> None:
        with self.lock:
            self._in_flight[(app, box)] -= 1

    def _spend(self, key: tuple[str, str, str], limit: int, window: float, units: int) -> float:
        if not units:
            return 0.0
        spent = self._windows.setdefault(key, collections.deque())
        now = time.monotonic()
        while spent and spent[0][0] <= now - window:
            spent.popleft()
        if spent and sum(n for _, n in spent) + units > limit:
            return max(1.0, spent[0][0] + window - now)
        spent.append((now, units))
        return 0.0

    def _throttled(self, code: str, message: str, wait: float) -> Answer:
        self.counters.throttled += 1
        answer = error(429, code, message)
        answer.headers["Retry-After"] = str(max(1, round(wait)))
        return answer

    def dispatch(
        self, method: str, raw_path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[Answer, bool]:
        """The answer to one request, and whether to drop the connection instead of sending it."""
        url = urlsplit(raw_path)
        path = unquote(url.path)
        if path.startswith("/v1.0/"):
            path = path.removeprefix("/v1.0")  # Graph proper; other paths: an importUrl's host
        elif not path.startswith("/api/"):
            return error(400, "BadRequest", "Invalid version: use /v1.0"), False
        with self.lock:
            self.counters.requests += 1
        for candidate in ROUTES:
            match = candidate.pattern.match(path) if candidate.method == method else None
            if match is not None:
                return self._call(
                    candidate, match, method, path, dict(parse_qsl(url.query)), headers, raw
                )
        return error(400, "BadRequest", f"Resource not found for the segment '{path}'."), False

    def _call(
        self,
        chosen: Route,
        match: re.Match[str],
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        raw: bytes,
    ) -> tuple[Answer, bool]:
        checked = self._authorize(chosen, headers)
        if isinstance(checked, Answer):
            return checked, False
        app, roles = checked
        body = _json_body(headers, raw)
        if isinstance(body, Answer):
            return body, False
        box = self._mailbox(match, app)
        if isinstance(box, Answer):
            return box, False
        throttle_key = box.mailbox_id if box is not None else "-"
        size = len(raw) if method in {"POST", "PATCH", "PUT"} else 0
        refused = self.admit(app or "import", throttle_key, size)
        if refused is not None:
            return refused, False
        try:
            if self.delay:
                time.sleep(self.delay)
            fault = self.take_fault(method, path)
            if fault is not None and not fault.drop_after_commit:
                return _fault_answer(fault), False
            call = Call(method, path, query, headers, body, len(raw), app, roles, box, match)
            with self.lock:
                self.counters.calls[f"{method} {chosen.pattern.pattern}"] += 1
            return chosen.handler(self, call), fault is not None
        finally:
            self.release(app or "import", throttle_key)

    def _authorize(
        self, chosen: Route, headers: dict[str, str]
    ) -> tuple[str, frozenset[str]] | Answer:
        if not chosen.authorized:
            if "authorization" in headers:
                return error(
                    400,
                    "ErrorInvalidRequest",
                    "Do not send Authorization to a pre-authenticated URL.",
                )
            return "", frozenset()
        info = self.token_info(headers.get("authorization", ""))
        if info is None:
            return error(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
        if chosen.roles and not info.roles & set(chosen.roles):
            return error(
                403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )
        return info.app, info.roles

    def _mailbox(self, match: re.Match[str], app: str) -> FakeMailbox | Answer | None:
        key = match.groupdict().get("mbx")
        if key is None:
            return None
        box = self.store.mailbox(key)
        if box is None:
            return error(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
        if box.upn.lower() in self.denied.get(app, set()):
            return error(403, "ErrorAccessDenied", DENIED_BY_POLICY)
        return box


DENIED_BY_POLICY = "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings."


def _json_body(headers: dict[str, str], raw: bytes) -> Any:
    """The parsed body (None without one), or the answer refusing it."""
    if not raw:
        return None
    if not headers.get("content-type", "").startswith("application/json"):
        return error(415, "UnsupportedMediaType", "Content-Type must be application/json.")
    try:
        return json.loads(raw)
    except ValueError:
        return error(400, "BadRequest", "Unable to read JSON request payload.")


def _fault_answer(fault: Fault) -> Answer:
    code = "ServiceUnavailable" if fault.status >= 500 else "TooManyRequests"
    answer = error(fault.status, code, "fault injected by the test")
    answer.headers["Retry-After"] = str(round(fault.retry_after))
    return answer


def _handler_for(owner: FakeGraph) -> type[_Handler]:
    return type("BoundHandler", (_Handler,), {"fake": owner})


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGraph
    protocol_version = "HTTP/1.1"
    # headers and body leave in separate writes: with Nagle on, the client's delayed ACK would add
    # ~40 ms to every answer (a cost of this fake, not of Graph)
    disable_nagle_algorithm = True

    def log_message(self, *_: Any) -> None:
        return

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer, drop = self.fake.dispatch(self.command, self.path, headers, raw)
        if drop:
            self.close_connection = True
            self.connection.close()
            return
        body = json.dumps(answer.body).encode() if answer.body is not None else b""
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if answer.body is not None:
            self.send_header("Content-Type", "application/json; odata.metadata=minimal")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve  # noqa: N815 - the stdlib's names
