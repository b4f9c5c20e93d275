"""The pages: server-rendered HTML over ``operations``; htmx only refreshes the live part of the
batch page. Every form carries the session's CSRF token; every action answers with a redirect
(POST/redirect/GET), and stop, complete and delete ask first on a page of their own."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse

from mailferry.domain.errors import ConfigError
from mailferry.web import chart, operations
from mailferry.web.credentials import Session
from mailferry.web.present import batch_detail_out, batch_out, endpoint_out
from mailferry.web.schemas import EndpointIn, EndpointTestIn, EndpointTestOut
from mailferry.web.security import (
    CSRF_FIELD,
    check_csrf,
    clear_session_cookie,
    page_session,
    set_session_cookie,
    web_of,
)

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
SessionDep = Annotated[Session, Depends(page_session)]
CsrfField = Annotated[str, Form(alias=CSRF_FIELD)]
NOTICES = {
    "start": "mailboxes queued to start",
    "resume": "mailboxes queued to resume",
    "sync": "mailboxes queued for an incremental sync",
    "complete": "mailboxes queued to complete",
    "stop": "mailboxes stopped now (running ones stop after their burst in flight)",
    "created": "mailboxes created; start the batch when ready",
}
LOGIN_DELAY = 0.5  # seconds added to a failed login


def _render(
    request: Request, template: str, session: Session | None, status: int = 200, **context: Any
) -> Response:
    web = web_of(request)
    context.update(session=session, csrf=session.csrf if session else "", settings=web.settings)
    return web.templates.TemplateResponse(request, template, context, status_code=status)


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


# -- login -----------------------------------------------------------------------------------------
@router.get("/login")
def login_page(request: Request, next_url: Annotated[str, Query(alias="next")] = "/") -> Response:
    configured = web_of(request).auth.admin_configured()
    return _render(request, "login.html", None, next=_safe_next(next_url), configured=configured)


@router.post("/login")
async def login(
    request: Request,
    password: Annotated[str, Form()] = "",
    next_url: Annotated[str, Form(alias="next")] = "/",
) -> Response:
    web = web_of(request)
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.url.netloc:
        return _render(request, "login.html", None, 403, next="/", configured=True,
                       error="This login form was sent from another site.")  # fmt: skip
    ok = await asyncio.to_thread(web.auth.check_admin, password)
    if not ok:
        await asyncio.sleep(LOGIN_DELAY)
        return _render(
            request,
            "login.html",
            None,
            401,
            next=_safe_next(next_url),
            configured=web.auth.admin_configured(),
            error="Wrong password.",
        )
    cookie, _session = web.auth.open_session(web.settings.session_seconds)
    response = _see(_safe_next(next_url))
    set_session_cookie(
        response,
        cookie,
        secure=web.settings.secure_cookies,
        max_age=web.settings.session_seconds,
    )
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep, csrf_token: CsrfField = "") -> Response:
    check_csrf(session, csrf_token)
    web = web_of(request)
    web.auth.close_session(session)
    response = _see("/login")
    clear_session_cookie(response, secure=web.settings.secure_cookies)
    return response


# -- batches ---------------------------------------------------------------------------------------
@router.get("/")
def batches_page(request: Request, session: SessionDep, deleted: str | None = None) -> Response:
    batches = [batch_out(status) for status in web_of(request).service.batches()]
    return _render(request, "batches.html", session, batches=batches, deleted=deleted)


@router.get("/batches/new")
def new_batch_page(request: Request, session: SessionDep) -> Response:
    return _new_batch(request, session, {}, [])


def _new_batch(
    request: Request, session: Session, form: dict[str, Any], problems: list[str], status: int = 200
) -> Response:
    endpoints = [endpoint_out(r) for r in web_of(request).service.endpoints()]
    return _render(
        request,
        "batch_new.html",
        session,
        status,
        endpoints=endpoints,
        form=form,
        problems=problems,
    )


@router.post("/batches/new")
async def new_batch(
    request: Request,
    session: SessionDep,
    *,
    csv: Annotated[UploadFile, File()],
    csrf_token: CsrfField = "",
    name: Annotated[str, Form()] = "",
    source: Annotated[str, Form()] = "",
    target: Annotated[str, Form()] = "",
    since: Annotated[str, Form()] = "",
    before: Annotated[str, Form()] = "",
    include_folders: Annotated[str, Form()] = "",
    exclude_folders: Annotated[str, Form()] = "",
    include_deleted: Annotated[bool, Form()] = False,
) -> Response:
    check_csrf(session, csrf_token)
    web = web_of(request)
    form = {
        "name": name,
        "source": source,
        "target": target,
        "since": since,
        "before": before,
        "include_folders": include_folders,
        "exclude_folders": exclude_folders,
        "include_deleted": include_deleted,
    }
    data = await csv.read(web.settings.max_upload_bytes + 1)
    try:
        options = operations.batch_options(since, before, include_deleted)
        await asyncio.to_thread(
            operations.create_batch,
            web.service,
            name,
            source,
            target,
            data,
            options,
            include_folders,
            exclude_folders,
        )
    except ConfigError as exc:
        return _new_batch(request, session, form, exc.problems, status=400)
    count = len(web.service.store.mailboxes(name.strip()))
    return _see(f"/batches/{quote(name.strip())}?done=created&n={count}")


@router.get("/batches/{name}")
def batch_page(
    request: Request, session: SessionDep, name: str, done: str | None = None, n: int | None = None
) -> Response:
    context = _batch_context(request, name)
    notice = f"{n} {NOTICES[done]}" if done in NOTICES and n is not None else None
    return _render(request, "batch.html", session, notice=notice, **context)


@router.get("/batches/{name}/live")
def batch_live(request: Request, session: SessionDep, name: str) -> Response:
    return _render(request, "_batch_live.html", session, **_batch_context(request, name))


def _batch_context(request: Request, name: str) -> dict[str, Any]:
    service = web_of(request).service
    operations.require_batch(service, name)
    status = service.status(name)
    now = time.time()
    running = [v.record for v in status.mailboxes if v.running]
    series = chart.series(chart.spans(service.store.runs(name), running, now))
    return {
        "batch": batch_detail_out(status, now),
        "chart": chart.svg(series),
        "live": status.state in ("syncing", "completing"),
        "service_running": service.service_running() is not None,
        "updated": time.strftime("%H:%M:%S", time.localtime(now)),
    }


@router.post("/batches/{name}/action/{action}")
def batch_action(
    request: Request,
    session: SessionDep,
    name: str,
    action: str,
    csrf_token: CsrfField = "",
    confirmed: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(session, csrf_token)
    if action in operations.CONFIRM and confirmed != "yes":
        return _see(f"/batches/{quote(name)}/confirm/{action}")
    if action == "delete":
        operations.delete_batch(web_of(request).service, name)
        return _see("/?deleted=" + quote(name))
    count = operations.run_action(web_of(request).service, name, action)
    return _see(f"/batches/{quote(name)}?done={action}&n={count}")


@router.get("/batches/{name}/confirm/{action}")
def confirm_page(request: Request, session: SessionDep, name: str, action: str) -> Response:
    if action not in operations.CONFIRM:
        raise operations.NotFoundError(f"no action {action!r} to confirm")
    service = web_of(request).service
    operations.require_batch(service, name)
    batch = batch_out(service.status(name))
    return _render(request, "confirm.html", session, batch=batch, action=action)


@router.get("/batches/{name}/mailboxes/{address}")
def mailbox_page(request: Request, session: SessionDep, name: str, address: str) -> Response:
    detail = operations.mailbox_detail(web_of(request), name, address)
    return _render(request, "mailbox.html", session, mailbox=detail)


# -- endpoints -------------------------------------------------------------------------------------
@router.get("/endpoints")
def endpoints_page(request: Request, session: SessionDep) -> Response:
    return _endpoints(request, session)


def _endpoints(
    request: Request,
    session: Session,
    status: int = 200,
    problems: list[str] | None = None,
    form: dict[str, Any] | None = None,
    tested: EndpointTestOut | None = None,
) -> Response:
    endpoints = [endpoint_out(r) for r in web_of(request).service.endpoints()]
    return _render(
        request,
        "endpoints.html",
        session,
        status,
        endpoints=endpoints,
        problems=problems or [],
        form=form or {},
        tested=tested,
    )


@router.post("/endpoints")
def add_endpoint(
    request: Request,
    session: SessionDep,
    *,
    csrf_token: CsrfField = "",
    name: Annotated[str, Form()] = "",
    host: Annotated[str, Form()] = "",
    port: Annotated[str, Form()] = "",
    security: Annotated[str, Form()] = "ssl",
    max_connections: Annotated[str, Form()] = "10",
    auth_user: Annotated[str, Form()] = "",
    auth_password: Annotated[str, Form()] = "",
    allow_plaintext: Annotated[bool, Form()] = False,
    insecure: Annotated[bool, Form()] = False,
) -> Response:
    check_csrf(session, csrf_token)
    form = {"name": name, "host": host, "port": port, "security": security,
            "max_connections": max_connections, "auth_user": auth_user,
            "allow_plaintext": allow_plaintext, "insecure": insecure}  # fmt: skip
    problems = _endpoint_form_problems(port, security, max_connections)
    if problems:
        return _endpoints(request, session, 400, problems, form)
    try:
        data = EndpointIn(
            name=name,
            host=host,
            port=int(port) if port.strip() else None,
            security=security,  # type: ignore[arg-type] # checked above
            max_connections=int(max_connections),
            auth_user=auth_user or None,
            auth_password=auth_password or None,
            insecure=insecure,
            allow_plaintext=allow_plaintext,
        )
        operations.add_endpoint(web_of(request).service, data)
    except ConfigError as exc:
        return _endpoints(request, session, 400, exc.problems, form)
    return _see("/endpoints")


def _endpoint_form_problems(port: str, security: str, max_connections: str) -> list[str]:
    problems = []
    if security not in ("ssl", "starttls", "none"):
        problems.append(f"security {security!r}: one of ssl, starttls, none")
    if port.strip() and not port.strip().isdigit():
        problems.append(f"port {port!r}: expected a number")
    if not max_connections.strip().isdigit():
        problems.append(f"max connections {max_connections!r}: expected a number")
    return problems


@router.post("/endpoints/{name}/test")
async def endpoint_test(
    request: Request,
    session: SessionDep,
    name: str,
    csrf_token: CsrfField = "",
    user: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(session, csrf_token)
    data = EndpointTestIn(user=user or None, password=password or None)
    try:
        result = await asyncio.to_thread(operations.try_endpoint, web_of(request), name, data)
    except ConfigError as exc:
        return _endpoints(request, session, 400, exc.problems)
    return _endpoints(request, session, tested=result)


@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(status_code=204)
