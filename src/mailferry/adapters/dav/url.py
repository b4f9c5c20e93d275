"""A DAV account's URL: ``https://USER@HOST[:PORT][/PATH]`` (``http://`` to loopback only)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from mailferry.domain.errors import ConfigError

LOOPBACK_NAMES = {"localhost"}


@dataclass(frozen=True)
class DavUrl:
    scheme: str
    user: str
    host: str
    port: int | None
    path: str  # "/" when the URL names none

    @property
    def base(self) -> str:
        """``SCHEME://HOST[:PORT]``: what every request path is joined to."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + (f":{self.port}" if self.port else "")


def _loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_dav_url(text: str, *, allow_plaintext: bool = False) -> DavUrl:
    """Parse and check an account URL; every problem found is reported in one ConfigError."""
    parts = urlsplit(text)
    if parts.password is not None:  # never echo a password back, not even in an error
        text = text.replace(f":{parts.password}@", ":***@")
    problems: list[str] = []
    if parts.scheme not in {"https", "http"}:
        problems.append(f"DAV URL {text!r}: the scheme must be https:// (or http:// to loopback)")
    try:
        port = parts.port
    except ValueError:
        problems.append(f"DAV URL {text!r}: the port is not a number")
        port = None
    host = parts.hostname or ""
    if not host:
        problems.append(f"DAV URL {text!r}: no host")
    if not parts.username:
        problems.append(f"DAV URL {text!r}: no user (https://USER@HOST/)")
    if parts.password is not None:
        problems.append(f"DAV URL {text!r}: put no password in the URL; use a password option")
    if parts.scheme == "http" and host and not (_loopback(host) or allow_plaintext):
        problems.append(f"DAV URL {text!r}: http:// only to loopback, or with --allow-plaintext")
    if problems:
        raise ConfigError(problems)
    user = unquote(parts.username or "")
    return DavUrl(parts.scheme, user, host, port, parts.path or "/")
