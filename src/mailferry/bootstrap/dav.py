"""The DAV side of a calendars-and-contacts pair: which URLs, and how each logs in.

Part of the one composition root (``mailferry.bootstrap``): ``request_sides`` finds the DAV sides
of a ``mailferry sync``/``verify`` request (both URLs DAV, or ``--source-dav``/``--target-dav``),
``request_login`` their logins; ``bootstrap.collections`` opens them (or Microsoft 365's Graph
resources in their place) with the item state in the same database as the mail state.

Logins: a DAV side uses its own password when ``MAILFERRY_SOURCE_DAV_PASSWORD`` (…TARGET…) or
``--source-dav-password-file`` gives one, else the side's password (the same account), or the
side's token options (a Bearer token: Google's CalDAV/CardDAV).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailferry.bootstrap import Side, SyncRequest, password, token_provider
from mailferry.domain.errors import ConfigError
from mailferry.domain.model import Endpoint, Security

if TYPE_CHECKING:  # the DAV adapters (httpx) are imported when a DAV side logs in
    from mailferry.adapters.dav import DavLogin, DavUrl

DAV_SCHEMES = ("http://", "https://")


def is_dav_url(url: str) -> bool:
    return url.strip().lower().startswith(DAV_SCHEMES)


@dataclass(frozen=True)
class DavSide:
    """One DAV side of a request: the URL, and how it logs in (see the module docstring)."""

    url: str
    name: str  # "source" or "target"
    password_env: str = ""
    password_file: Path | None = None
    ca_file: Path | None = None
    insecure: bool = False


def dav_key(source: DavUrl, target: DavUrl) -> str:
    """The identity of a DAV pair in the state database."""
    return (
        f"dav {source.user}@{source.base}{source.path} -> {target.user}@{target.base}{target.path}"
    )


LoginFor = Callable[[DavSide, "DavUrl"], "DavLogin"]


def password_login(
    fallback: Callable[[DavSide, DavUrl], DavLogin] | None,
    prompt: Callable[[str], str] | None,
) -> LoginFor:
    """A side's own DAV password (file, variable), else ``fallback`` (the mail side's), else ask."""

    def login(side: DavSide, url: DavUrl) -> DavLogin:
        from mailferry.adapters.dav import DavLogin  # noqa: PLC0415 - see TYPE_CHECKING

        if side.password_file is not None:
            try:
                text = side.password_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"cannot read {side.name} DAV password file: {exc.strerror}"
                ) from None
            return DavLogin(url.user, text.rstrip("\r\n"))
        if side.password_env and side.password_env in os.environ:
            return DavLogin(url.user, os.environ[side.password_env])
        if fallback is not None:
            return fallback(side, url)
        if prompt is not None:
            return DavLogin(
                url.user, prompt(f"Password for {url.user} at {url.host} ({side.name})")
            )
        raise ConfigError(
            f"no {side.name} password: set {side.password_env} or use --{side.name}-password-file"
        )

    return login


def endpoint_of(url: DavUrl) -> Endpoint:
    """The DAV URL as an ``Endpoint``, for the token sources (they need user and host only)."""
    return Endpoint(url.host, url.port or 443, Security.SSL, url.user)


def side_login(
    side: Side, prompt: Callable[[str], str] | None
) -> Callable[[DavSide, DavUrl], DavLogin]:
    """The login of a request's side (``bootstrap.Side``) used for its DAV URL: its token
    options (Bearer), else its password (file, variable, prompt)."""

    def login(_dav: DavSide, url: DavUrl) -> DavLogin:
        from mailferry.adapters.dav import DavLogin  # noqa: PLC0415 - see TYPE_CHECKING

        endpoint = endpoint_of(url)
        tokens = token_provider(side, endpoint)
        if tokens is not None:
            return DavLogin(url.user, tokens=tokens)
        return DavLogin(url.user, password(side, endpoint, prompt).password)

    return login


def request_sides(
    request: SyncRequest, source_dav: str | None, target_dav: str | None
) -> tuple[DavSide, DavSide] | None:
    """The DAV sides of a request: both URLs DAV (a DAV-only pair: the sides' own password
    options), or ``--source-dav``/``--target-dav`` beside IMAP URLs (own password first)."""
    if is_dav_url(request.source.url) and is_dav_url(request.target.url):
        return (
            _own(request.source, request.source.url, dav=False),
            _own(request.target, request.target.url, dav=False),
        )
    if source_dav is None and target_dav is None:
        return None
    if source_dav is None or target_dav is None:
        raise ConfigError("--source-dav and --target-dav go together")
    return (_own(request.source, source_dav, dav=True), _own(request.target, target_dav, dav=True))


def _own(side: Side, url: str, *, dav: bool) -> DavSide:
    if not dav:
        return DavSide(
            url, side.name, side.password_env, side.password_file, side.ca_file, side.insecure
        )
    env = f"MAILFERRY_{side.name.upper()}_DAV_PASSWORD"
    return DavSide(url, side.name, env, None, side.ca_file, side.insecure)


def request_login(request: SyncRequest) -> LoginFor:
    by_name = {request.source.name: request.source, request.target.name: request.target}

    def login(dav: DavSide, url: DavUrl) -> DavLogin:
        fallback = side_login(by_name[dav.name], request.prompt)
        own_first = dav.password_env != by_name[dav.name].password_env
        return (
            password_login(fallback, request.prompt)(dav, url) if own_first else fallback(dav, url)
        )

    return login
