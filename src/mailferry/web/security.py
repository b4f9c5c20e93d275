"""Who is calling: a bearer token (API), or a browser session cookie (pages and API).

A session cookie is HttpOnly, SameSite=Strict and Secure when served over TLS. Forms carry the
session's CSRF token in a hidden field; API calls authenticated by the cookie must send it in
``X-CSRF-Token`` for anything but GET/HEAD (a bearer token needs none: browsers never add it).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request, Response

from mailferry.web.context import Web
from mailferry.web.credentials import Session

COOKIE = "mailferry_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Unauthenticated(Exception):  # noqa: N818 - named for what the caller is
    """No valid session or token: 401 for the API, a redirect to /login for pages."""


class CsrfRejected(Exception):  # noqa: N818
    """A state-changing request without the session's CSRF token: 403."""


@dataclass(frozen=True)
class Caller:
    kind: str  # "token" or "session"
    name: str
    session: Session | None = None


def web_of(request: Request) -> Web:
    web: Web = request.app.state.web
    return web


def current_session(request: Request, *, touch: bool = True) -> Session | None:
    """The request's session; ``touch``: this request counts as activity (idle timeout)."""
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    web = web_of(request)
    return web.auth.session(cookie, web.settings.idle_seconds, touch=touch)


def api_caller(request: Request) -> Caller:
    """FastAPI dependency for ``/api``: a bearer token, else a session (+ CSRF header)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        name = web_of(request).auth.check_token(value.strip())
        if name is None:
            raise Unauthenticated
        return Caller("token", name)
    session = current_session(request)
    if session is None:
        raise Unauthenticated
    if request.method not in SAFE_METHODS:
        check_csrf(session, request.headers.get(CSRF_HEADER))
    return Caller("session", "admin", session)


def page_session(request: Request) -> Session:
    """FastAPI dependency for pages: the session, or a redirect to the login page."""
    session = current_session(request)
    if session is None:
        raise Unauthenticated
    return session


def polling_session(request: Request) -> Session:
    """As ``page_session``, for the dashboard's own refresh (htmx, every few seconds): it does not
    count as activity, or an abandoned browser tab would never reach the idle timeout."""
    session = current_session(request, touch=False)
    if session is None:
        raise Unauthenticated
    return session


def check_csrf(session: Session, offered: str | None) -> None:
    if not offered or not hmac.compare_digest(offered.encode(), session.csrf.encode()):
        raise CsrfRejected


def set_session_cookie(response: Response, cookie: str, *, secure: bool, max_age: int) -> None:
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/",
    )


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=secure)
