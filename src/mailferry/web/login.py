"""Logging in and out. A login is refused (429, ``Retry-After``) while ``web.throttle`` says so,
before the password is checked; every failure and refusal is logged on ``mailferry.web.login``
with the client's address and the user name, never what was typed."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse

from mailferry.web.rendering import CsrfField, SessionDep, render, see
from mailferry.web.security import (
    check_csrf,
    clear_session_cookie,
    set_session_cookie,
    web_of,
)

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
log = logging.getLogger("mailferry.web.login")
USER = "admin"  # the one login of the web app


def safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


@router.get("/login")
def login_page(request: Request, next_url: Annotated[str, Query(alias="next")] = "/") -> Response:
    configured = web_of(request).auth.admin_configured()
    return render(request, "login.html", None, next=safe_next(next_url), configured=configured)


@router.post("/login")
async def login(
    request: Request,
    password: Annotated[str, Form()] = "",
    next_url: Annotated[str, Form(alias="next")] = "/",
) -> Response:
    web = web_of(request)
    origin = request.headers.get("origin")  # Host is one of ours (web.hosts): a fair comparison
    if origin and urlsplit(origin).netloc != request.url.netloc:
        return render(request, "login.html", None, 403, next="/", configured=True,
                      error="This login form was sent from another site.")  # fmt: skip
    client = request.client.host if request.client else "unknown"
    wait = web.throttle.begin(client)
    if wait:
        log.warning("login.refused", extra={"client": client, "user": USER, "retry_after": wait})
        response = render(request, "login.html", None, 429, next=safe_next(next_url),
                          configured=True,
                          error=f"Too many failed logins: try again in {wait} seconds.")  # fmt: skip
        response.headers["Retry-After"] = str(wait)
        return response
    try:
        async with web.throttle.checks:
            ok = await asyncio.to_thread(web.auth.check_admin, password)
    except BaseException:
        web.throttle.release(client)
        raise
    if not ok:
        failures, delay = web.throttle.failed(client)
        log.warning(
            "login.failed",
            extra={"client": client, "user": USER, "failures": failures, "delay": delay},
        )
        return render(request, "login.html", None, 401, next=safe_next(next_url),
                      configured=web.auth.admin_configured(), error="Wrong password.")  # fmt: skip
    web.throttle.succeeded(client)
    log.info("login.succeeded", extra={"client": client, "user": USER})
    cookie, _session = web.auth.open_session(web.settings.session_seconds)
    response = see(safe_next(next_url))
    set_session_cookie(
        response, cookie, secure=web.settings.secure_cookies, max_age=web.settings.session_seconds
    )
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep, csrf_token: CsrfField = "") -> Response:
    check_csrf(session, csrf_token)
    web = web_of(request)
    web.auth.close_session(session)
    response = see("/login")
    clear_session_cookie(response, secure=web.settings.secure_cookies)
    return response
