"""The calendars-and-contacts part of a batch job, and how it shows in status and reports.

A job whose batch's source and target endpoints both carry DAV (``davroutes``) runs one DAV pass
after its mail pass, in the same job: the same lease, the same stop event, its heartbeat and stop
checks through the mailbox's progress writer. The item state lives in the same database as the
mail state (the connector opens it). What the pass gives is added to the job's outcome:

    the DAV summary          under "dav" in the run's summary; counters on the mailbox row
    each failed item         a failure of kind "item" (collection, href, UID, reason)
    a failed collection      a failure of kind "item" without UID (its name, its href, its note)
    an account error         (login, no DAV there, connection lost after its retries) fails the
                             mailbox with "calendars and contacts: REASON"; the mail result stays
    a full target            the summary's ``stopped`` (items left: ``items_remaining``): the
                             scheduler fails the mailbox with it, as for a full mail target
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from mailferry.adapters.store.records import FailureRecord, MailboxRecord, Outcome
from mailferry.domain.davports import CollectionAccount, ItemStateStore
from mailferry.domain.davreport import DavSummary
from mailferry.domain.errors import MailferryError
from mailferry.domain.model import MailboxState
from mailferry.logs import get_logger
from mailferry.service.davsync import DavOptions, name_of, sync_accounts

log = get_logger("mailferry.scheduler")

ITEM_REPORT_COLUMNS = (
    "collections",
    "items_copied",
    "items_updated",
    "items_skipped",
    "items_failed",
    "item_conflicts",
)


class DavLink(Protocol):
    """Both logged-in DAV accounts of one job, the item state and the pair's key in it."""

    @property
    def source(self) -> CollectionAccount: ...

    @property
    def target(self) -> CollectionAccount: ...

    @property
    def state(self) -> ItemStateStore: ...

    @property
    def key(self) -> str: ...

    def close(self) -> None:
        """Close both accounts and the state; a failure to close is no failure of the pass."""


class Flushing(Protocol):
    def flush(self, *, force: bool = False) -> None: ...


class ItemProgress:
    """The DAV pass's ``Progress``: it counts nothing on the row (those counts are messages and
    bytes), but every event writes the heartbeat and learns of a stop request (``flush``)."""

    def __init__(self, mailbox: Flushing) -> None:
        self._mailbox = mailbox

    def folder_started(self, source: str, target: str, messages: int, nbytes: int) -> None:
        del source, target, messages, nbytes
        self._mailbox.flush(force=True)

    def advanced(self, messages: int, nbytes: int) -> None:
        del messages, nbytes
        self._mailbox.flush()

    def folder_advanced(self, source: str, messages: int) -> None:
        del source, messages
        self._mailbox.flush()

    def folder_finished(self, source: str) -> None:
        del source
        self._mailbox.flush(force=True)

    def paused(self, reason: str, seconds: float) -> None:
        del reason, seconds


@dataclass(frozen=True)
class DavResult:
    """A DAV pass's summary, or the account error that ended it."""

    summary: DavSummary | None
    error: str | None = None


def dav_pass(
    open_link: Callable[[], DavLink],
    progress: Flushing,
    stop: threading.Event,
    options: DavOptions | None = None,
) -> DavResult:
    """Open both accounts, run one pass, close them. A ``MailferryError`` (login, no DAV at the
    URL, connection lost, state busy) is this part's failure, with its one-line reason."""
    try:
        link = open_link()
    except MailferryError as exc:
        return DavResult(None, str(exc))
    try:
        summary = sync_accounts(
            link.source,
            link.target,
            link.state,
            link.key,
            options,
            progress=ItemProgress(progress),
            stop=stop,
        )
    except MailferryError as exc:
        return DavResult(None, str(exc))
    finally:
        link.close()
    log.info(
        "mailbox.dav_finished",
        collections=len(summary.collections),
        copied=summary.items_copied,
        updated=summary.items_updated,
        failed=summary.items_failed,
    )
    return DavResult(summary)


def item_failures(email: str, summary: DavSummary) -> list[FailureRecord]:
    """Failed items, then collections that failed or went nowhere, as the mailbox's failures."""
    found = [
        FailureRecord(email, p.collection, None, p.reason, "item", p.href, p.uid)
        for p in summary.failures
    ]
    found += [
        FailureRecord(
            email, name_of(c.source), None, c.note or "nowhere to put it", "item", c.source
        )
        for c in summary.collections
        if c.target is None or (c.note or "").startswith("failed")
    ]
    return found


def with_dav(outcome: Outcome, result: DavResult, email: str) -> Outcome:
    """The job's outcome with its DAV pass added (see the module docstring)."""
    summary = dict(outcome.summary)
    failures = list(outcome.failures)
    if result.summary is not None:
        summary["dav"] = result.summary.as_json()
        failures += item_failures(email, result.summary)
    merged = replace(outcome, summary=summary, failures=failures)
    if outcome.state not in (MailboxState.SYNCED, MailboxState.COMPLETED):
        return merged  # failed, stopped or interrupted: its reason stands
    if result.error is not None:
        reason = f"calendars and contacts: {result.error}"
        return replace(merged, state=MailboxState.FAILED, reason=reason)
    if failures:
        return replace(merged, reason=f"{len(failures)} errors; first: {failures[0].reason}")
    return merged


def item_row(record: MailboxRecord) -> dict[str, int | None]:
    """A mailbox's calendar and contact counters for reports (None: no DAV pass ran)."""
    if record.collections is None:
        return dict.fromkeys(ITEM_REPORT_COLUMNS)
    return {name: getattr(record, name) for name in ITEM_REPORT_COLUMNS}
