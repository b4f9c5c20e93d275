"""What every collection pass of one account pair shares, and what it writes to the target.

``Payloads`` is the one place where item bytes change (issue #13 rule 3): ORGANIZER/ATTENDEE
get ``SCHEDULE-AGENT=CLIENT``, or are parked as X- properties for a target known to mail
attendees whatever SCHEDULE-AGENT says. It also refuses, before any upload, what the target
collection would refuse: an item over its max-resource-size, a component it does not hold.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from mailferry.domain.attendees import AttendeeMode
from mailferry.domain.davmodel import CollectionInfo, CollectionKind
from mailferry.domain.davports import CollectionAccount, ItemStateStore
from mailferry.domain.davreport import DavSummary
from mailferry.domain.errors import (
    ConnectError,
    TargetFailingError,
    TargetFullError,
    ThrottledError,
)
from mailferry.domain.items import ComponentKind
from mailferry.domain.scheduling import park_attendees, schedule_by_client
from mailferry.service.progress import NoProgress, Progress
from mailferry.service.resilience import RetryPolicy, ServerFaults

T = TypeVar("T")


@dataclass
class Payloads:
    mode: AttendeeMode
    summary: DavSummary
    # (source collection, source href) copied or found by this run: an item a retried pass
    # finds recorded is not counted "unchanged" as well
    written: set[tuple[str, str]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def prepare(self, target: CollectionInfo, data: bytes, component: ComponentKind) -> bytes | str:
        """The bytes to PUT into ``target`` (``component``: what ``identify`` found in ``data``),
        or the reason the item cannot go there."""
        if target.kind is CollectionKind.CALENDAR:
            accepted = target.components
            if accepted and component is not ComponentKind.UNKNOWN and component not in accepted:
                return f"the target calendar holds only {', '.join(accepted)}, not {component}"
            rewrite = park_attendees if self.mode is AttendeeMode.PARK else schedule_by_client
            rewritten = rewrite(data)
            if rewritten.changed:
                with self._lock:
                    self.summary.scheduling_changed += 1
                data = rewritten.raw
        limit = target.max_resource_size
        if limit is not None and len(data) > limit:
            return f"{len(data)} bytes: over the target's max-resource-size of {limit} bytes"
        return data


@dataclass
class PassContext:
    source: CollectionAccount
    target: CollectionAccount
    state: ItemStateStore
    pair: str
    summary: DavSummary
    payloads: Payloads
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency: int = 4
    dry_run: bool = False
    progress: Progress = field(default_factory=NoProgress)
    stop: threading.Event = field(default_factory=threading.Event)

    # (source collection, source href) copied or found by this run: an item a retried pass
    # finds recorded is not counted "unchanged" as well
    written: set[tuple[str, str]] = field(default_factory=set)
    # PUTs the target answered 500 in a row, across the run's collections and threads
    faults: ServerFaults = field(default_factory=ServerFaults)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def stopped(self) -> bool:
        return self.stop.is_set()

    def note(self, *, throttled: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.summary.throttled += throttled
            self.summary.retries += retries


def storage_full(exc: TargetFullError) -> TargetFullError:
    """What stops the run when the target has no room (``exc``: the 507 as the adapter saw it)."""
    return TargetFullError(
        f"the target's storage is full ({exc}): free space or raise the quota and run again: "
        "what was copied stays, nothing is copied twice"
    )


def target_failing(limit: int, last: str) -> TargetFailingError:
    """What stops the run when ``limit`` PUTs in a row were answered 500, none stored between."""
    return TargetFailingError(
        f"the target failed {limit} items in a row by a fault of its own ({last}); its log says "
        "why (a full disk or quota, often). Run again once it is mended: what was copied stays, "
        "nothing is copied twice, and the items it refused are sent again"
    )


MAX_THROTTLED = 50  # "slow down" answers waited out in a row before the work is given up


def retrying(ctx: PassContext, work: Callable[[], T]) -> T:
    """``work()``, again after 429/503 (waiting at least Retry-After) and after a dropped
    connection (``--retries`` times, with backoff). What ``work`` left is consistent: a
    collection pass resumes from its intents and rows. The last error is raised."""
    attempt = throttled = 0
    while True:
        try:
            return work()
        except ThrottledError as exc:
            throttled += 1
            ctx.note(throttled=1)
            if throttled > MAX_THROTTLED:
                raise
            time.sleep(ctx.retry.wait(min(throttled, 6), exc.wait))
        except ConnectError:
            attempt += 1
            ctx.note(retries=1)
            if attempt > ctx.retry.attempts:
                raise
            time.sleep(ctx.retry.wait(attempt, 0.0))
