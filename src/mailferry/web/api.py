"""The REST API under ``/api``: thin routes over ``operations`` and the service.

Auth: ``Authorization: Bearer TOKEN`` (``mailferry token create``) or the browser session (with
``X-CSRF-Token`` on anything but GET). Errors are ``{"error": ..., "problems": [...]}`` with 400
(bad input), 401, 403 (CSRF), 404, 409 (conflicts), 422 (malformed request), 502 (a server
unreachable), 503 (state database busy).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile

from mailferry.web import operations
from mailferry.web.present import batch_detail_out, batch_out, endpoint_out, worker_out
from mailferry.web.schemas import (
    ActionOut,
    BatchDetailOut,
    BatchOut,
    DeletedOut,
    EndpointIn,
    EndpointOut,
    EndpointTestIn,
    EndpointTestOut,
    ErrorOut,
    MailboxDetailOut,
    WorkerOut,
)
from mailferry.web.security import api_caller, web_of

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 422, 502, 503)
}
router = APIRouter(prefix="/api", dependencies=[Depends(api_caller)], responses=ERRORS)


@router.get("/endpoints", tags=["endpoints"])
def list_endpoints(request: Request) -> list[EndpointOut]:
    return [endpoint_out(r) for r in web_of(request).service.endpoints()]


@router.post("/endpoints", status_code=201, tags=["endpoints"])
def add_endpoint(request: Request, data: EndpointIn) -> EndpointOut:
    """Password, admin or OAuth2 (Microsoft 365 app-only, Google service account) logins, as
    ``mailferry endpoint add``; a token command is refused (CLI only)."""
    web = web_of(request)
    roots = web.settings.files_roots
    return endpoint_out(operations.add_endpoint(web.service, data, files_roots=roots))


@router.post("/endpoints/{name}/test", tags=["endpoints"])
def endpoint_test(
    request: Request, name: str, data: EndpointTestIn | None = None
) -> EndpointTestOut:
    """Log in as the admin, as ``user`` with ``password``, or (a token endpoint) with a token for
    the mailbox ``user``: the logins offered, the one used, the profile, the capabilities. A
    refused login is ``ok: false`` with the server's reason."""
    return operations.try_endpoint(web_of(request), name, data or EndpointTestIn())


@router.get("/batches", tags=["batches"])
def list_batches(request: Request) -> list[BatchOut]:
    return [batch_out(status) for status in web_of(request).service.batches()]


@router.post("/batches", status_code=201, tags=["batches"])
async def create_batch(
    request: Request,
    *,
    name: Annotated[str, Form()],
    source: Annotated[str, Form()],
    target: Annotated[str, Form()],
    csv: Annotated[UploadFile, File(description="Exchange-style batch CSV")],
    since: Annotated[str | None, Form()] = None,
    before: Annotated[str | None, Form()] = None,
    include_deleted: Annotated[bool, Form()] = False,
    include_folders: Annotated[str, Form()] = "",
    exclude_folders: Annotated[str, Form()] = "",
    labels: Annotated[
        str,
        Form(
            description="Gmail sources: 'once' (a message in several labels copied once) "
            "or 'folders' (once per label folder)"
        ),
    ] = "once",
    neutralise_read_receipts: Annotated[
        bool, Form(description="Rename read-receipt request headers (same length)")
    ] = False,
    workloads: Annotated[
        str,
        Form(
            description="What moves, comma-separated: mail, calendar, contacts, tasks, notes "
            "(empty: all that both endpoints and the apps' permissions allow)"
        ),
    ] = "",
    mail_via: Annotated[
        str,
        Form(
            description="Both endpoints Microsoft 365: 'graph' (mailbox import/export, the "
            "default where the apps may) or 'imap'"
        ),
    ] = "",
) -> BatchDetailOut:
    web = web_of(request)
    data = await csv.read(web.settings.max_upload_bytes + 1)
    options = operations.batch_options(
        since, before, include_deleted, labels, neutralise_read_receipts, workloads, mail_via
    )
    operations.create_batch(
        web.service, name, source, target, data, options, include_folders, exclude_folders
    )
    return batch_detail_out(web.service.status(name.strip()), web.service.workers())


@router.get("/batches/{name}", tags=["batches"])
def get_batch(
    request: Request,
    name: str,
    *,
    state: Annotated[str | None, Query(description="Only mailboxes in this state")] = None,
    errors: Annotated[
        str | None, Query(description="yes: with failed messages or items; no: without")
    ] = None,
    q: Annotated[str, Query(description="Only addresses containing this, any case")] = "",
    page: Annotated[int, Query(description="Page, from 1")] = 1,
    per_page: Annotated[int, Query(description="Mailboxes per page (at most 1000)")] = 100,
) -> BatchDetailOut:
    """The batch's totals, and one page of its mailboxes (``matched`` counts all pages)."""
    service = web_of(request).service
    operations.require_batch(service, name)
    query = operations.mailbox_query(state, errors, q, page, per_page)
    return batch_detail_out(service.status_page(name, query), service.workers())


@router.get("/workers", tags=["batches"])
def list_workers(request: Request) -> list[WorkerOut]:
    """The workers on a shared database (`mailferry worker`), lost ones included."""
    return [worker_out(view) for view in web_of(request).service.workers()]


@router.post("/batches/{name}/{action}", tags=["batches"])
def batch_action(
    request: Request,
    name: str,
    action: Literal["start", "stop", "resume", "sync", "complete"],
) -> ActionOut:
    count = operations.run_action(web_of(request).service, name, action)
    return ActionOut(batch=name, action=action, mailboxes=count)


@router.delete("/batches/{name}", tags=["batches"])
def delete_batch(request: Request, name: str) -> DeletedOut:
    operations.delete_batch(web_of(request).service, name)
    return DeletedOut(batch=name)


@router.get(
    "/batches/{name}/report",
    tags=["batches"],
    responses={200: {"content": {"text/csv": {}, "application/json": {}}}},
)
def report(
    request: Request,
    name: str,
    format: Literal["csv", "json", "failures"] = "csv",  # noqa: A002 - the documented name
) -> Response:
    """Per-mailbox report (CSV, or JSON with per-message failures); ``failures``: those as CSV."""
    service = web_of(request).service
    operations.require_batch(service, name)
    body = service.report_text(name, format)
    if format == "json":
        media, suffix = "application/json", "json"
    elif format == "failures":
        media, suffix = "text/csv; charset=utf-8", "failures.csv"
    else:
        media, suffix = "text/csv; charset=utf-8", "csv"
    disposition = f'attachment; filename="{name}-report.{suffix}"'
    return Response(body, media_type=media, headers={"Content-Disposition": disposition})


@router.get("/batches/{name}/mailboxes/{address}", tags=["batches"])
def mailbox(request: Request, name: str, address: str) -> MailboxDetailOut:
    return operations.mailbox_detail(web_of(request), name, address)
