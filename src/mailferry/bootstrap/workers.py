"""``mailferry worker`` (and the worker inside ``serve`` on a shared database) composed: the
release check, the worker's row for status pages, the scheduler's ticks in a thread, and the
queue's worker (procrastinate) running the scheduler's job body."""

from __future__ import annotations

import threading
from collections.abc import Callable

from mailferry import __version__
from mailferry.bootstrap import scheduler
from mailferry.domain.errors import ConfigError
from mailferry.service.batches import BatchService
from mailferry.service.scheduler import HEARTBEAT_EVERY
from mailferry.service.workers import WorkerPresence, check_release


def check_worker(service: BatchService) -> None:
    """The job queue's tables are there, and the database was upgraded by this very release
    (else one line naming `mailferry db upgrade`, or both releases)."""
    from mailferry.adapters.queue import procrastinate as procrastinate_queue  # noqa: PLC0415 - ~0.3 s, PostgreSQL only

    procrastinate_queue.require_schema(service.store.db)
    check_release(service.store.workers, __version__)


def run_worker(
    service: BatchService,
    stop: threading.Event,
    *,
    concurrency: int,
    poll: float = 2.0,
    stall: float = 30.0,
    until_idle: bool = False,
    on_ready: Callable[[], None] = lambda: None,
) -> None:
    """A worker on the shared database until ``stop`` (``on_ready`` once set up): procrastinate
    runs the queue's jobs with the scheduler's job body (``run_one``); the scheduler's ticks (in
    a thread) feed the queue, beat the heart of the mailboxes it runs and of the worker's row.
    ``stall``: seconds of silence after which a worker's jobs are run again elsewhere."""
    db = service.store.db
    if db.is_sqlite:
        raise ConfigError("a worker needs a shared state database: --database postgresql://...")
    check_worker(service)
    # A mailbox's heartbeat is written every few seconds by the ticks: silent for the stall
    # timeout (and three beats at least), its owner is dead to the job that runs it again.
    runner = scheduler(
        service, workers=concurrency, poll=poll, stale_after=max(stall, 3 * HEARTBEAT_EVERY)
    )
    presence = WorkerPresence(
        service.store.workers, runner.owner, version=__version__, concurrency=concurrency,
        stall=stall, running=runner.running_jobs, every=min(HEARTBEAT_EVERY, stall / 3),
    )  # fmt: skip

    def ticks() -> None:
        runner.loop(stop, until_idle=until_idle, on_tick=presence.beat)
        stop.set()

    presence.register()
    ticker = threading.Thread(target=ticks, name="mailferry-ticks", daemon=True)
    on_ready()
    ticker.start()
    try:
        from mailferry.adapters.queue import procrastinate as procrastinate_queue  # noqa: PLC0415 - ~0.3 s, PostgreSQL only

        procrastinate_queue.run_worker(
            db, runner.run_one, concurrency=concurrency, stall=stall, stop=stop,
            on_stop=runner.stop_jobs, name=runner.owner,
        )  # fmt: skip
    finally:
        stop.set()
        ticker.join()
        runner.shutdown()
        presence.forget()
