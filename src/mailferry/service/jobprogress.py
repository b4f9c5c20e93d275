"""The ``Progress`` of one running mailbox (a job): its counts written to its row at most once a
second, and what each write learns: stop (the batch was asked to, the queue asked to abort, or
the mailbox now has another owner)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from mailferry.adapters.store.records import MailboxRecord
from mailferry.domain.errors import MailferryError
from mailferry.service.batches import BatchService

log = logging.getLogger("mailferry.scheduler")

FLUSH_EVERY = 1.0  # seconds between progress writes (and stop checks) of a running mailbox


class MailboxProgress:
    """The ``Progress`` port for one mailbox: counts, written to its row at most once a second;
    each write also learns whether the batch was asked to stop. Safe to call from several
    threads; a failed write is logged, never allowed to fail the sync it describes."""

    def __init__(
        self,
        service: BatchService,
        mailbox: MailboxRecord,
        owner: str,
        stop: threading.Event,
        should_abort: Callable[[], bool] = lambda: False,
    ) -> None:
        self._should_abort = should_abort
        self._service = service
        self._mailbox = mailbox
        self._owner = owner
        self._stop = stop
        self._last = 0.0
        self._lock = threading.Lock()
        self.stop_requested = False
        self.counts = {"planned": 0, "planned_bytes": 0, "done": 0, "done_bytes": 0}

    def folder_started(self, source: str, target: str, messages: int, nbytes: int) -> None:
        del source, target
        with self._lock:
            self.counts["planned"] += messages
            self.counts["planned_bytes"] += nbytes
        self.flush(force=True)

    def advanced(self, messages: int, nbytes: int) -> None:
        with self._lock:
            self.counts["done"] += messages
            self.counts["done_bytes"] += nbytes
        self.flush()

    def folder_advanced(self, source: str, messages: int) -> None:
        del source, messages  # per-folder progress is not stored; the totals above are

    def folder_finished(self, source: str) -> None:
        del source
        self.flush(force=True)

    def paused(self, reason: str, seconds: float) -> None:
        m = self._mailbox
        log.warning(
            "mailbox.paused",
            extra={"batch": m.batch, "mailbox": m.email, "seconds": seconds, "reason": reason},
        )

    def flush(self, *, force: bool = False) -> None:
        now = time.time()
        with self._lock:
            if not force and now - self._last < FLUSH_EVERY:
                return
            self._last = now
            counts = dict(self.counts)
        m = self._mailbox
        try:
            stop = self._service.store.progress(m.batch, m.email, self._owner, now, **counts)
        except MailferryError:
            log.warning("mailbox.progress_unsaved", exc_info=True)
            return
        if stop or self._should_abort():
            self.stop_requested = True
            self._stop.set()
