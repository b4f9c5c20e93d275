"""Calendars and address books in ``mailferry sync``/``verify``: DAV URLs, or ``--source-dav`` and
``--target-dav`` beside IMAP URLs (the whole account: mail first, then calendars and contacts)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from mailferry.bootstrap import SyncRequest
from mailferry.bootstrap.graph import Routes
from mailferry.cli.console import err, out
from mailferry.domain.attendees import AttendeeMode

if TYPE_CHECKING:  # the calendar and contact machinery is imported when a DAV side is given
    from mailferry.domain.davreport import DavSummary
    from mailferry.service.davverify import DavVerifyReport

F = Callable[..., Any]


def dav_options(func: F) -> F:
    options = [
        click.option(
            "--source-dav",
            metavar="URL",
            help="The source's CalDAV/CardDAV account (https://USER@HOST/…): its calendars and "
            "address books move too. Password: $MAILFERRY_SOURCE_DAV_PASSWORD, else the source's.",
        ),
        click.option(
            "--target-dav",
            metavar="URL",
            help="The target's CalDAV/CardDAV account (with --source-dav). Password: "
            "$MAILFERRY_TARGET_DAV_PASSWORD, else the target's.",
        ),
        click.option(
            "--attendees",
            type=click.Choice([m.value for m in AttendeeMode]),
            default=AttendeeMode.AUTO.value,
            show_default=True,
            help="Meetings: 'client' writes ORGANIZER/ATTENDEE with SCHEDULE-AGENT=CLIENT (a server "
            "that honours it sends no invitation); 'park' writes them as X-MAILFERRY-ORGANIZER/"
            "-ATTENDEE (no server can send anything); 'auto': client on servers known to honour "
            "it (SabreDAV/Nextcloud, Cyrus, CalendarServer), else park.",
        ),
        click.option(
            "--dav-concurrency",
            type=click.IntRange(1, 16),
            default=4,
            show_default=True,
            help="Calendar/contact uploads in flight per account.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def run_dav_sync(
    request: SyncRequest, kw: dict[str, Any], stop: threading.Event, routes: Routes
) -> DavSummary:
    from mailferry.bootstrap.collections import open_collection_pair  # noqa: PLC0415
    from mailferry.service.davsync import DavOptions, sync_accounts  # noqa: PLC0415

    options = DavOptions(
        attendees=AttendeeMode(kw["attendees"]),
        concurrency=kw["dav_concurrency"],
        retry=request.retry,
        dry_run=request.dry_run,
        workloads=routes.plan.collections,
    )
    with open_collection_pair(request, kw, routes, read_only=request.dry_run) as pair:
        return sync_accounts(pair.source, pair.target, pair.state, pair.key, options, stop=stop)


def run_dav_verify(request: SyncRequest, kw: dict[str, Any], routes: Routes) -> DavVerifyReport:
    from mailferry.bootstrap.collections import open_collection_pair  # noqa: PLC0415
    from mailferry.service.davverify import verify_dav  # noqa: PLC0415

    with open_collection_pair(request, kw, routes, read_only=True) as pair:
        return verify_dav(pair.source, pair.target, pair.state, pair.key)


def print_dav_summary(summary: DavSummary) -> None:
    out.print(
        f"{len(summary.collections)} collections: {summary.items_copied} items copied, "
        f"{summary.items_updated} updated, {summary.items_skipped_existing} already there, "
        f"{summary.items_unchanged} unchanged, {summary.items_failed} failed, "
        f"in {summary.seconds:.1f} s",
        markup=False,
    )
    for c in summary.collections:
        line = f"  {c.kind} {c.source} -> {c.target or '(nowhere)'}: {c.items} items"
        line += " (created)" if c.created else ""
        out.print(line + (f"; {c.note}" if c.note else ""), markup=False)
    _print_remaining(summary)


def _print_remaining(summary: DavSummary) -> None:
    """What a full target left for the next run, by collection, and why the run stopped."""
    if summary.items_remaining:
        left = [(c.source, dict(c.counts).get("items_remaining", 0)) for c in summary.collections]
        by_collection = ", ".join(f"{source} {count}" for source, count in left if count)
        out.print(
            f"{summary.items_remaining} items not copied yet, left for the next run: "
            f"{by_collection}",
            markup=False,
        )
    if summary.target_full:
        err.print(f"STOPPED: {summary.stopped}", markup=False)
    for label, problems in (
        ("CONFLICT", summary.conflicts),
        ("deleted on the source", summary.deleted_on_source),
        ("deleted on the target", summary.deleted_on_target),
    ):
        for p in problems:
            err.print(f"{label}: {p.collection} {p.href} (UID {p.uid}): {p.reason}", markup=False)
    for warning in summary.warnings:
        err.print(f"warning: {warning}", markup=False)
    for p in summary.failures:
        err.print(f"FAILED {p.collection} {p.href} (UID {p.uid}): {p.reason}", markup=False)


def print_dav_verify(report: DavVerifyReport) -> None:
    for c in report.collections:
        out.print(
            f"{c.source} -> {c.target}: {c.source_count} source items, {c.target_count} on the "
            "target" + ("" if c.problems else ", identical"),
            markup=False,
        )
        for problem in c.problems:
            out.print(f"  {problem}", markup=False)
        if c.more:
            out.print(f"  ... and {c.more} more", markup=False)
    out.print("identical" if report.identical else "DIFFERENCES FOUND")


def merged_json(mail: dict[str, object] | None, dav: DavSummary) -> dict[str, object]:
    """One ``--json`` document: the mail keys, then the calendar/contact keys (``dav_`` before
    the few names both have: seconds, throttled, retries, stopped, warnings)."""
    found: dict[str, object] = dict(mail or {})
    for key, value in dav.as_json().items():
        found[f"dav_{key}" if key in found else key] = value
    return found
