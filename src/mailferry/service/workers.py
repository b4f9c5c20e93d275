"""The workers on a shared database, seen from the service: each worker's presence (its row,
refreshed by its scheduler's ticks), what status pages show of them, and the refusal of a worker
whose release differs from the one that upgraded the database.

Why refuse: the database's schema, the queue's task arguments and the per-folder state are the
contract between every process on it; `mailferry db upgrade` of one release and a worker of
another may read each other's rows differently, which in a migration tool means a message lost
or copied twice. One release everywhere is the rule; a mismatch is one line naming both.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from mailferry.adapters.store.workers import WorkerRecord, WorkerTable
from mailferry.domain.errors import ConfigError, MailferryError

log = logging.getLogger("mailferry.workers")


def worker_label(owner: str) -> str:
    """How a person reads an owner token ``host:pid:started``: ``host:pid``."""
    host, _, rest = owner.partition(":")
    return f"{host}:{rest.partition(':')[0]}"


@dataclass(frozen=True)
class WorkerView:
    """A worker as status pages show it."""

    record: WorkerRecord
    lost: bool  # silent for longer than its stall timeout

    @property
    def label(self) -> str:
        return worker_label(self.record.owner)


def worker_views(table: WorkerTable, now: float | None = None) -> list[WorkerView]:
    now = time.time() if now is None else now
    return [WorkerView(record, record.lost(now)) for record in table.all()]


def worker_row(view: WorkerView) -> dict[str, object]:
    """A worker in `batch status --json` and the reports."""
    w = view.record
    return {
        "worker": view.label,
        "host": w.host,
        "pid": w.pid,
        "version": w.version,
        "started": _iso(w.started),
        "last_heartbeat": _iso(w.heartbeat),
        "jobs_running": w.running,
        "concurrency": w.concurrency,
        "lost": view.lost,
    }


def _iso(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="seconds")


def check_release(table: WorkerTable, version: str) -> None:
    """A worker of another release than the database's last `mailferry db upgrade` is refused."""
    upgraded_by = table.release()
    if upgraded_by != version:
        by = f"mailferry {upgraded_by}" if upgraded_by else "an unknown mailferry release"
        raise ConfigError(
            f"mailferry worker {version} cannot serve a database upgraded by {by}: "
            "run the same version everywhere"
        )


class WorkerPresence:
    """One worker's row: written at start, refreshed at most every ``every`` seconds with the
    number of jobs running (``running``), removed at a clean stop."""

    def __init__(
        self,
        table: WorkerTable,
        owner: str,
        *,
        version: str,
        concurrency: int,
        stall: float,
        running: Callable[[], int],
        every: float,
    ) -> None:
        self._table = table
        self._running = running
        self._every = every
        now = time.time()
        self.record = WorkerRecord(
            owner=owner,
            host=socket.gethostname(),
            pid=os.getpid(),
            version=version,
            started=now,
            heartbeat=now,
            running=0,
            concurrency=concurrency,
            stall=stall,
        )
        self._last = 0.0

    def register(self) -> None:
        self._table.register(self.record)
        self._last = self.record.started

    def beat(self) -> None:
        """Called on every tick of the worker's scheduler; writes when ``every`` has passed."""
        now = time.time()
        if now - self._last < self._every:
            return
        try:  # a missed beat shows the worker as late on a page; it must not stop the worker
            self._table.beat(self.record.owner, now, self._running())
        except MailferryError:
            log.warning("worker.beat_failed", exc_info=True)
            return
        self._last = now

    def forget(self) -> None:
        """At a clean stop; a row left behind reads as a lost worker, and is dropped in a day."""
        with contextlib.suppress(MailferryError):
            self._table.forget(self.record.owner)
