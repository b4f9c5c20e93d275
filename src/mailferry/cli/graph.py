"""Microsoft 365 through Graph in ``mailferry sync``/``verify``: ``--workloads``, ``--mail-via``,
and the pass over the mailbox import/export API when both ends are Microsoft 365."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from mailferry.bootstrap import SyncRequest
from mailferry.bootstrap.graph import (
    Routes,
    open_graph_mailboxes,
    open_mailbox_state,
    route_request,
)
from mailferry.cli.console import err, out
from mailferry.domain.errors import MailferryError
from mailferry.domain.workloads import ALL, MailVia, parse_workloads

if TYPE_CHECKING:  # the mailbox import/export machinery is imported when both ends are Graph
    from mailferry.domain.mailboxreport import MailboxSummary
    from mailferry.service.graphverify import MailboxVerification

F = Callable[..., Any]


def graph_options(func: F) -> F:
    options = [
        click.option(
            "--workloads",
            metavar="LIST",
            help=f"What moves, comma-separated: {', '.join(ALL)} (default: all that both ends "
            "and the app's permissions allow). One named that cannot move is an error.",
        ),
        click.option(
            "--mail-via",
            type=click.Choice([m.value for m in MailVia]),
            default=None,
            help="Both ends Microsoft 365: mail through Graph's mailbox import/export (the "
            "default when the app may) or IMAP.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def request_routes(request: SyncRequest, kw: dict[str, Any]) -> Routes:
    return route_request(
        request,
        kw.get("source_dav"),
        kw.get("target_dav"),
        parse_workloads(kw.get("workloads")),
        MailVia(kw["mail_via"]) if kw.get("mail_via") else None,
    )


def run_mailbox_sync(request: SyncRequest, routes: Routes, stop: threading.Event) -> MailboxSummary:
    from mailferry.service.graphcontext import GraphSyncOptions  # noqa: PLC0415 - see the imports
    from mailferry.service.graphsync import sync_mailboxes  # noqa: PLC0415

    options = GraphSyncOptions(workloads=routes.plan.mailbox, retry=request.retry)
    with open_graph_mailboxes(routes, request, read_only=request.dry_run) as pair:
        return sync_mailboxes(pair.source, pair.target, pair.state, pair.key, options, stop=stop)


def forget_delivered(request: SyncRequest, routes: Routes, summary: MailboxSummary) -> None:
    """The doubts ``summary`` reported leave the state: call it only once the summary is written
    and flushed (text or ``--json``). The state is opened again for this one write, rather than
    kept open from the pass: ``open_graph_mailboxes`` closes it with the pass, before the DAV pass
    and the printing, and keeping both Graph sessions and the state open across those would tie
    the passes together for one delete. A failure here is no failure of the run: the doubts stay
    and the next run that finishes reports them again (twice, never zero times)."""
    if not summary.reported:
        return
    from mailferry.service.graphsync import forget_reported  # noqa: PLC0415 - see the imports

    try:
        with open_mailbox_state(routes, request) as (state, key):
            forget_reported(state, key, summary)
    except MailferryError as exc:
        err.print(f"warning: the copies to CHECK will be reported again: {exc}", markup=False)


def run_mailbox_verify(request: SyncRequest, routes: Routes) -> MailboxVerification:
    from mailferry.service.graphverify import verify_mailboxes  # noqa: PLC0415 - see the imports

    with open_graph_mailboxes(routes, request, read_only=True) as pair:
        return verify_mailboxes(pair.source, pair.target, pair.state, pair.key)


def print_mailbox_summary(summary: MailboxSummary) -> None:
    for workload, report in summary.workloads.items():
        out.print(
            f"{workload} (Graph import/export): {report.seen} seen, {report.copied} copied, "
            f"{report.updated} updated, {report.already_there} already there, "
            f"{report.unchanged} unchanged, {len(report.failures)} failed",
            markup=False,
        )
        for problem in report.failures:
            err.print(f"FAILED {problem.folder} {problem.item}: {problem.reason}", markup=False)
        for problem in report.not_recognisable:  # copied, but maybe twice: the admin must know
            err.print(f"CHECK {problem.folder} {problem.item}: {problem.reason}", markup=False)
    for folder in summary.folders:
        if folder.note:
            out.print(f"  {folder.source}: {folder.note}", markup=False)
    if summary.throttled:
        out.print(
            f"Graph asked to slow down {summary.throttled} times ({summary.waited:.0f} s waited)",
            markup=False,
        )
    for warning in summary.warnings:
        err.print(f"warning: {warning}", markup=False)


def print_skipped(routes: Routes) -> None:
    for workload, reason in routes.plan.skipped:
        err.print(f"{workload}: not moved: {reason}", markup=False)


def print_mailbox_verify(checked: MailboxVerification) -> None:
    for folder in checked.folders:
        out.print(
            f"{folder.source} -> {folder.target or '(nowhere)'}: {folder.source_count} source items, "
            f"{folder.target_count} on the target" + ("" if folder.ok else ", DIFFERENT"),
            markup=False,
        )
        for item in folder.missing:
            out.print(f"  missing on the target: {item}", markup=False)
        for item in folder.outdated:
            out.print(f"  changed on the source since copied: {item}", markup=False)
        if folder.more:
            out.print(f"  ... and {folder.more} more", markup=False)
    for skipped in checked.skipped:
        out.print(f"  not compared: {skipped}", markup=False)
    out.print("identical" if checked.ok else "DIFFERENCES FOUND")
