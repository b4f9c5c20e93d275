"""What every folder pass of one Microsoft 365 mailbox pair shares: the options, the context,
and ``retrying`` (a folder pass is re-run from its state after a dropped connection)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from mailferry.domain.errors import ConnectError, ThrottledError
from mailferry.domain.mailboxports import ExchangeMailbox, MailboxStateStore
from mailferry.domain.mailboxreport import MailboxSummary
from mailferry.domain.workloads import ALL, Workload
from mailferry.service.resilience import RetryPolicy

T = TypeVar("T")
GRAPH_MAX_ITEM = 150 * 1024 * 1024  # Exchange Online's largest message (and import request)
EXPORT_CHUNK = 20  # exportItems takes at most 20 ids
MAX_THROTTLED = 50  # "slow down" answers waited out in a row before the work is given up


@dataclass(frozen=True)
class GraphSyncOptions:
    workloads: frozenset[Workload] = frozenset(ALL)
    concurrency: int = 4  # imports in flight: Graph allows 4 concurrent requests per mailbox
    max_item_size: int = GRAPH_MAX_ITEM  # larger items are reported, never uploaded
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class GraphContext:
    """What every folder pass of one mailbox pair shares."""

    source: ExchangeMailbox
    target: ExchangeMailbox
    state: MailboxStateStore
    pair: str
    options: GraphSyncOptions
    summary: MailboxSummary
    stop: threading.Event = field(default_factory=threading.Event)

    def stopped(self) -> bool:
        return self.stop.is_set()

    def waited(self, seconds: float) -> None:
        """One 'slow down' answer the service waited out itself (after the sides' sessions)."""
        self.summary.throttle(1, seconds)


def retrying(ctx: GraphContext, work: Callable[[], T]) -> T:
    """``work()``, again after a 'slow down' (waiting at least what it asked) and after a dropped
    connection (``retry.attempts`` times, with backoff); what ``work`` left is consistent."""
    attempt = throttled = 0
    while True:
        try:
            return work()
        except ThrottledError as exc:
            throttled += 1
            if throttled > MAX_THROTTLED:
                raise
            wait = ctx.options.retry.wait(min(throttled, 6), exc.wait)
            ctx.waited(wait)
            time.sleep(wait)
        except ConnectError:
            attempt += 1
            ctx.summary.retries += 1
            if attempt > ctx.options.retry.attempts:
                raise
            time.sleep(ctx.options.retry.wait(attempt, 0.0))
