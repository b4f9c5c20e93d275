"""Which ``Host`` the app answers to: DNS rebinding, and redirects never built from ``Host``.

A page on any site can point its own name at 127.0.0.1 and then talk to this app through the
admin's browser, as a same-origin page: the Origin check of the login compares Origin with the
attacker's Host and passes. So every request's Host must be one of ours: the loopback names and
addresses (any port), plus what ``serve`` configures (``--allowed-host``, the address it listens
on when that is a name or a non-wildcard address, the DNS names of its TLS certificate). Anything
else gets 400 before any route runs.

Redirects: Starlette's own (a trailing slash) are absolute URLs made from ``Host``; this
middleware turns any ``Location`` on the request's own host into a relative one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
REFUSED = b"unknown Host: this server answers only to its configured names\n"


def host_name(header: str) -> str | None:
    """The name in a Host header, lower case, without port or trailing dot (None: malformed)."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        rest = header[end + 1 :]
        if end < 0 or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
        name = _canonical(header[1:end])
    else:
        name, _, port = header.partition(":")
        if port and not port.isdigit():
            return None
    name = name.rstrip(".")
    return name or None


def _canonical(name: str) -> str:
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        return name


def normalise(name: str) -> str:
    """A configured name (``mail.example``, ``10.0.0.5``, ``::1``, ``[::1]:8443``) as compared."""
    if name.startswith("*."):
        return "*." + (host_name(name[2:]) or "")
    try:
        return ipaddress.ip_address(name.strip().strip("[]")).compressed
    except ValueError:
        return host_name(name) or ""


class AllowedHosts:
    """The names a Host header may carry (port ignored)."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self.names = LOOPBACK_NAMES | {normalise(n) for n in extra if normalise(n)}

    def allows(self, header: str | None) -> bool:
        if not header:
            return False
        name = host_name(header)
        if name is None:
            return False
        if name in self.names or f"*.{name.partition('.')[2]}" in self.names:
            return True  # "*.example.com" (a certificate's wildcard) covers one label
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False


class HostGuard:
    """ASGI middleware: 400 for a Host not allowed; relative ``Location`` headers."""

    def __init__(self, app: ASGIApp, allowed: AllowedHosts) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # none of ours: never one through a rebound name
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = _header(scope, b"host")
        if not self.allowed.allows(host):
            await _refuse(send)
            return

        async def relative_redirects(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (k, _relative(v, host or "") if k.lower() == b"location" else v)
                    for k, v in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, relative_redirects)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _relative(location: bytes, host: str) -> bytes:
    parts = urlsplit(location.decode("latin-1"))
    if not parts.netloc or parts.netloc.lower() != host.lower():
        return location
    path = parts.path or "/"
    return (path + (f"?{parts.query}" if parts.query else "")).encode("latin-1")


async def _refuse(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(REFUSED)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": REFUSED})
