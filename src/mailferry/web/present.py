"""From the service's records to the API's shapes (``schemas``); the pages render the same
shapes, so a number on the page is the number the API gives."""

from __future__ import annotations

import datetime as dt
import time

from mailferry.adapters.store.records import (
    EndpointRecord,
    FailureRecord,
    FolderProgress,
    MailboxRecord,
)
from mailferry.domain.profiles import choose_profile
from mailferry.service.batches import BatchStatus, MailboxView
from mailferry.service.davjobs import item_row
from mailferry.service.endpoints import login_kind
from mailferry.service.graphprobe import GraphProbe
from mailferry.service.probe import Probe
from mailferry.service.workers import WorkerView
from mailferry.web.schemas import (
    BatchDetailOut,
    BatchOut,
    EndpointOut,
    EndpointTestOut,
    FailureOut,
    FolderOut,
    GraphRouteOut,
    GraphTestOut,
    MailboxDetailOut,
    MailboxOut,
    RunningOut,
    WorkerOut,
    WorkloadOut,
)

DONE_STATES = ("synced", "completed")


def iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="seconds")


def endpoint_out(record: EndpointRecord) -> EndpointOut:
    return EndpointOut(
        name=record.name,
        host=record.host,
        port=record.port,
        security=record.security,
        max_connections=record.max_connections,
        auth_user=record.auth_user,
        has_admin_password=record.auth_secret is not None,
        ca_file=record.ca_file,
        insecure=record.insecure,
        login_kind=login_kind(record),
        auth=record.auth,
        profile=record.profile,
        profile_applied=choose_profile(record.profile, record.host).name,
        dav=record.dav,
        dav_ca_file=record.dav_ca_file,
        dav_insecure=record.dav_insecure,
        files=record.files,
    )


def endpoint_test_out(found: Probe, graph: GraphProbe | None = None) -> EndpointTestOut:
    return EndpointTestOut(
        endpoint=found.endpoint,
        login=found.login,
        address=found.address,
        login_methods_offered=list(found.offered),
        login_method=found.method,
        token_login=found.token,
        profile=found.profile,
        profile_by_host=found.profile_by_host,
        delimiter=found.delimiter,
        capabilities=list(found.capabilities),
        tls=found.tls,
        logged_in=found.logged_in,
        note=found.note,
        error=found.error if found.error or graph is None else graph.error,
        ok=found.ok and (graph is None or graph.error is None),
        graph=None if graph is None else graph_test_out(graph),
    )


def graph_test_out(found: GraphProbe) -> GraphTestOut:
    routes = [
        GraphRouteOut(
            route=r.route, source=list(r.source), target=list(r.target), missing=list(r.missing)
        )
        for r in found.routes
    ]
    return GraphTestOut(
        graph_url=found.graph_url,
        roles=list(found.roles),
        routes=routes,
        mailbox=found.mailbox,
        mailbox_ok=found.mailbox_ok,
        error=found.error,
        notes=list(found.notes),
    )


def _rate(view: MailboxView, now: float) -> float | None:
    m = view.record
    if view.running and m.started:
        return m.done_bytes / max(now - m.started, 0.001)
    return None


def _progress(view: MailboxView) -> float | None:
    m = view.record
    if view.running:
        if m.planned_bytes > 0:
            return min(m.done_bytes / m.planned_bytes, 1.0)
        if m.planned > 0:
            return min(m.done / m.planned, 1.0)
        return 0.0
    if view.state in DONE_STATES:
        return 1.0
    return None


def mailbox_out(view: MailboxView, now: float | None = None) -> MailboxOut:
    now = time.time() if now is None else now
    m = view.record
    current = None
    if view.running:
        current = RunningOut(
            planned_messages=m.planned,
            planned_bytes=m.planned_bytes,
            done_messages=m.done,
            done_bytes=m.done_bytes,
        )
    return MailboxOut(
        address=m.email,
        line=m.line,
        source_user=m.source_user,
        target_user=m.target_user,
        state=view.state,
        pending=m.pending,
        running=view.running,
        worker=view.worker,
        reason=m.reason,
        folders=m.folders,
        messages_copied=m.copied,
        messages_existing=m.existing,
        messages_skipped=m.skipped,
        messages_failed=m.errors,
        bytes_copied=m.bytes,
        current=current,
        progress=_progress(view),
        rate_bytes_per_second=_rate(view, now),
        eta_seconds=view.eta,
        started=iso(m.started),
        finished=iso(m.finished),
        last_synced=iso(m.last_synced),
        **item_row(m),
        workloads=_workloads(m),
    )


def _workloads(m: MailboxRecord) -> dict[str, WorkloadOut] | None:
    if m.workloads is None:
        return None
    fields = set(WorkloadOut.model_fields)
    return {
        name: WorkloadOut(**{k: v for k, v in section.items() if k in fields})
        for name, section in m.workloads.items()
    }


def batch_out(status: BatchStatus, now: float | None = None) -> BatchOut:
    return _batch_fields(status, time.time() if now is None else now)[0]


def batch_detail_out(
    status: BatchStatus, workers: list[WorkerView], now: float | None = None
) -> BatchDetailOut:
    summary, mailboxes = _batch_fields(status, time.time() if now is None else now)
    detail = BatchDetailOut(
        **summary.model_dump(), mailboxes=mailboxes, workers=[worker_out(w) for w in workers]
    )
    if status.totals is not None and status.query is not None:
        detail.matched = status.totals.matched
        detail.page, detail.per_page = status.query.page, status.query.per_page
    return detail


def worker_out(view: WorkerView) -> WorkerOut:
    w = view.record
    return WorkerOut(
        worker=view.label,
        host=w.host,
        pid=w.pid,
        version=w.version,
        started=iso(w.started) or "",
        last_heartbeat=iso(w.heartbeat) or "",
        jobs_running=w.running,
        concurrency=w.concurrency,
        lost=view.lost,
    )


def _batch_fields(status: BatchStatus, now: float) -> tuple[BatchOut, list[MailboxOut]]:
    mailboxes = [mailbox_out(view, now) for view in status.mailboxes]
    if status.totals is not None:
        return _paged_summary(status, now), mailboxes
    parts = [m.progress for m in mailboxes if m.state != "failed"]
    known = [p for p in parts if p is not None]
    progress = sum(known) / len(parts) if parts and known else None
    return _summary(
        status,
        len(mailboxes),
        (
            sum(m.messages_copied for m in mailboxes),
            sum(m.bytes_copied for m in mailboxes),
            sum(m.items_copied or 0 for m in mailboxes),
        ),
        progress,
        sum(m.rate_bytes_per_second or 0.0 for m in mailboxes),
    ), mailboxes


def _paged_summary(status: BatchStatus, now: float) -> BatchOut:
    """The same figures from the database's totals and the running mailboxes: the mean
    progress of the mailboxes not failed, where done ones count 1 and running ones their part."""
    totals = status.totals
    assert totals is not None  # noqa: S101 - the caller checked
    counts = totals.counts
    done = sum(counts.get(s, 0) for s in DONE_STATES)
    running = [_progress(v) or 0.0 for v in status.running]
    parts = totals.mailboxes - counts.get("failed", 0)
    progress = (done + sum(running)) / parts if parts and (done or running) else None
    sums = (totals.messages_copied, totals.bytes_copied, totals.items_copied)
    rate = sum(_rate(v, now) or 0.0 for v in status.running)
    return _summary(status, totals.mailboxes, sums, progress, rate)


def _summary(
    status: BatchStatus,
    count: int,
    sums: tuple[int, int, int],
    progress: float | None,
    rate: float,
) -> BatchOut:
    b = status.batch
    return BatchOut(
        name=b.name,
        source=b.source,
        target=b.target,
        state=status.state,
        counts=status.counts(),
        mailbox_count=count,
        since=b.options.get("since"),
        before=b.options.get("before"),
        include_deleted=bool(b.options.get("include_deleted")),
        labels=str(b.options.get("labels") or "once"),
        neutralise_read_receipts=bool(b.options.get("neutralise_read_receipts")),
        every_seconds=b.every,
        stop_requested=b.stop_requested,
        created=iso(b.created),
        messages_copied=sums[0],
        bytes_copied=sums[1],
        items_copied=sums[2],
        workloads=b.options.get("workloads"),
        mail_via=b.options.get("mail_via"),
        progress=progress,
        rate_bytes_per_second=rate,
    )


def mailbox_detail_out(
    batch: str,
    view: MailboxView,
    folders: list[FolderProgress],
    failures: list[FailureRecord],
) -> MailboxDetailOut:
    base = mailbox_out(view)
    return MailboxDetailOut(
        **base.model_dump(),
        batch=batch,
        folder_progress=[
            FolderOut(
                source=f.source,
                target=f.target,
                messages_copied=f.copied,
                messages_failed=f.failed,
                pass_finished=f.pass_finished,
            )
            for f in folders
        ],
        failures=[_failure_out(f) for f in failures],
    )


def _failure_out(f: FailureRecord) -> FailureOut:
    if f.kind == "item":
        return FailureOut(
            kind="item",
            folder=f.folder,
            uid=None,
            reason=f.reason,
            href=f.href,
            item_uid=f.item_uid,
        )
    return FailureOut(folder=f.folder, uid=f.uid, reason=f.reason)
