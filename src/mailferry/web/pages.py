"""The pages: server-rendered HTML over ``operations``; htmx only refreshes the live part of the
batch page. Every form carries the session's CSRF token; every action answers with a redirect
(POST/redirect/GET), and stop, complete and delete ask first on a page of their own. The
endpoints' pages are ``endpoint_pages``."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.responses import HTMLResponse

from mailferry.domain.errors import ConfigError, NotFound
from mailferry.domain.model import MailboxState
from mailferry.service.batchpages import SHOWN_STATES
from mailferry.web import chart, operations
from mailferry.web.credentials import Session
from mailferry.web.present import batch_detail_out, batch_out, endpoint_out
from mailferry.web.rendering import CsrfField, PollingSessionDep, SessionDep, render, see
from mailferry.web.security import check_csrf, web_of

DEFAULT_PER_PAGE = 100  # mailboxes on one page of a batch
router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
NOTICES = {
    "start": "mailboxes queued to start",
    "resume": "mailboxes queued to resume",
    "sync": "mailboxes queued for an incremental sync",
    "complete": "mailboxes queued to complete",
    "stop": "mailboxes stopped now (running ones stop after their burst in flight)",
    "created": "mailboxes created; start the batch when ready",
}


# -- batches ---------------------------------------------------------------------------------------
@router.get("/")
def batches_page(request: Request, session: SessionDep, deleted: str | None = None) -> Response:
    batches = [batch_out(status) for status in web_of(request).service.batches()]
    return render(request, "batches.html", session, batches=batches, deleted=deleted)


@router.get("/batches/new")
def new_batch_page(request: Request, session: SessionDep) -> Response:
    return _new_batch(request, session, {}, [])


def _new_batch(
    request: Request, session: Session, form: dict[str, Any], problems: list[str], status: int = 200
) -> Response:
    endpoints = [endpoint_out(r) for r in web_of(request).service.endpoints()]
    return render(
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
    labels: Annotated[str, Form()] = "once",
    neutralise_read_receipts: Annotated[bool, Form()] = False,
    workloads: Annotated[str, Form()] = "",
    mail_via: Annotated[str, Form()] = "",
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
        "labels": labels,
        "neutralise_read_receipts": neutralise_read_receipts,
        "workloads": workloads,
        "mail_via": mail_via,
    }
    data = await csv.read(web.settings.max_upload_bytes + 1)
    try:
        options = operations.batch_options(
            since, before, include_deleted, labels, neutralise_read_receipts, workloads, mail_via
        )
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
    return see(f"/batches/{quote(name.strip())}?done=created&n={count}")


Page = tuple[str | None, str | None, str, int, int]  # state, errors, q, page, per_page


@router.get("/batches/{name}")
def batch_page(
    request: Request,
    session: SessionDep,
    name: str,
    *,
    done: str | None = None,
    n: int | None = None,
    state: str | None = None,
    errors: str | None = None,
    q: str = "",
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
) -> Response:
    context = _batch_context(request, name, (state, errors, q, page, per_page))
    notice = f"{n} {NOTICES[done]}" if done in NOTICES and n is not None else None
    return render(request, "batch.html", session, notice=notice, **context)


@router.get("/batches/{name}/live")
def batch_live(
    request: Request,
    session: PollingSessionDep,
    name: str,
    *,
    state: str | None = None,
    errors: str | None = None,
    q: str = "",
    page: int = 1,
    per_page: int = DEFAULT_PER_PAGE,
) -> Response:
    context = _batch_context(request, name, (state, errors, q, page, per_page))
    return render(request, "_batch_live.html", session, **context)


def _batch_context(request: Request, name: str, wanted: Page) -> dict[str, Any]:
    """One page of the batch (filters in the URL) and the whole batch's totals and chart."""
    service = web_of(request).service
    operations.require_batch(service, name)
    query = operations.mailbox_query(*wanted)
    status = service.status_page(name, query)
    now = time.time()
    running = [v.record for v in status.running]
    series = chart.series(chart.spans(service.store.runs(name), running, now))
    matched = status.totals.matched if status.totals else len(status.mailboxes)
    kept = {"state": query.state or "", "errors": wanted[1] or "", "q": query.search}
    kept = {k: v for k, v in kept.items() if v}
    if query.per_page != DEFAULT_PER_PAGE:
        kept["per_page"] = str(query.per_page)
    return {
        "batch": batch_detail_out(status, service.workers(), now),
        "chart": chart.svg(series),
        "live": status.state in (MailboxState.SYNCING, MailboxState.COMPLETING),
        "service_running": service.service_running() is not None,
        "updated": time.strftime("%H:%M:%S", time.localtime(now)),
        "query": query,
        "filters": kept,
        "here": urlencode({**kept, "page": query.page} if query.page > 1 else kept),
        "first": query.offset + 1 if matched else 0,
        "last": min(query.offset + query.per_page, matched),
        "matched": matched,
        "previous": urlencode({**kept, "page": query.page - 1}) if query.page > 1 else None,
        "next": urlencode({**kept, "page": query.page + 1})
        if query.offset + query.per_page < matched
        else None,
        "states": SHOWN_STATES,
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
        return see(f"/batches/{quote(name)}/confirm/{action}")
    if action == "delete":
        operations.delete_batch(web_of(request).service, name)
        return see("/?deleted=" + quote(name))
    count = operations.run_action(web_of(request).service, name, action)
    return see(f"/batches/{quote(name)}?done={action}&n={count}")


@router.get("/batches/{name}/confirm/{action}")
def confirm_page(request: Request, session: SessionDep, name: str, action: str) -> Response:
    if action not in operations.CONFIRM:
        raise NotFound(f"no action {action!r} to confirm")
    service = web_of(request).service
    operations.require_batch(service, name)
    batch = batch_out(service.status(name))
    return render(request, "confirm.html", session, batch=batch, action=action)


@router.get("/batches/{name}/mailboxes/{address}")
def mailbox_page(request: Request, session: SessionDep, name: str, address: str) -> Response:
    detail = operations.mailbox_detail(web_of(request), name, address)
    return render(request, "mailbox.html", session, mailbox=detail)


@router.get("/favicon.ico")
def favicon() -> Response:
    return Response(status_code=204)
