"""procrastinate as the job queue of workers on a shared PostgreSQL state database.

One task, ``mailferry.mailbox(batch, email)``: one pass over one mailbox. Its queueing lock keeps
one job per mailbox waiting, its job lock keeps one running (no two workers on one mailbox). The
job body is the scheduler's (``RunJob``, given by bootstrap): this module only queues and runs.

Every process's scheduler *submits* the pending mailboxes that have no job yet (``JobFeeder``: a
synchronous App of its own). A worker (``run_worker``) runs jobs on procrastinate's event loop,
each in a thread of its own, and beats its heart into ``procrastinate_workers``; it also looks
for the jobs of workers whose heartbeat stopped (``stall`` seconds: killed, machine gone) and
puts them back in the queue, where another worker runs them. A job that finds its mailbox held
by a live owner (``BUSY``) is tried again a few seconds later by procrastinate's retry, which is
no failure of the mailbox. Finished jobs are deleted: the mailbox rows keep the history. `batch
stop` and `batch delete` reach the jobs on every worker through procrastinate's cancellation with
abort (``JobAborter``): the job body stops after its burst in flight and frees its slots.

What a crash leaves: a job in ``doing`` whose worker is gone; its mailbox claimed by a dead
owner. The stall check retries the job, the re-run claims the mailbox over the dead owner
(``Scheduler.run_one``), and the per-folder state resumes the copy without a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import procrastinate
from procrastinate import exceptions as pexc
from procrastinate.job_context import AbortReason
from sqlalchemy import URL, text
from sqlalchemy.exc import SQLAlchemyError

from mailferry.adapters.store.engine import Database, db_reason
from mailferry.adapters.store.records import MailboxRecord
from mailferry.domain.errors import SchemaTooOldError, StateError

log = logging.getLogger("mailferry.queue")

TASK = "mailferry.mailbox"
QUEUE_SCHEMA = "procrastinate"  # how `db upgrade` names the queue's tables
QUEUE = "mailferry"
BUSY_WAIT = 5  # seconds before a job whose mailbox was busy is tried again
_QUEUED = text(
    "SELECT queueing_lock FROM procrastinate_jobs"
    " WHERE task_name = :task AND status IN ('todo', 'doing')"
)
_LIVE_JOBS = text(
    "SELECT id, lock FROM procrastinate_jobs WHERE task_name = :task AND status IN ('todo', 'doing')"
)
_HAS_SCHEMA = text("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")

RunJob = Callable[[str, str, Callable[[], bool]], str]


class MailboxBusyError(Exception):
    """The job's mailbox is held by a live owner: procrastinate tries the job again later."""


def job_key(batch: str, email: str) -> str:
    return f"mailferry:{batch}/{email}"


def conninfo(url: URL) -> str:
    """The libpq URI of the state database (procrastinate connects with psycopg itself)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _register(
    app: procrastinate.App, run: RunJob | None
) -> procrastinate.tasks.Task[Any, Any, Any]:
    retry = procrastinate.RetryStrategy(
        max_attempts=1_000_000, wait=BUSY_WAIT, retry_exceptions={MailboxBusyError}
    )

    @app.task(name=TASK, queue=QUEUE, pass_context=True, retry=retry)
    def mailbox(context: procrastinate.JobContext, batch: str, email: str) -> str:
        if run is None:
            raise RuntimeError("this App only queues jobs")

        def aborted() -> bool:
            """Stop or delete asked (JobAborter); not the worker's own shutdown, after which
            the mailbox stays pending and the job runs again (procrastinate retries it)."""
            return context.abort_reason() is AbortReason.USER_REQUEST

        result = run(batch, email, aborted)
        if result == "busy":
            raise MailboxBusyError(job_key(batch, email))
        if aborted():
            log.info("job.aborted", extra={"job": context.job.id, "lock": job_key(batch, email)})
            raise pexc.JobAborted(job_key(batch, email))  # the queue records it as aborted
        return result

    return mailbox


# -- the schema ------------------------------------------------------------------------------------
def has_schema(db: Database) -> bool:
    with db.transaction() as conn:
        return bool(conn.scalar(_HAS_SCHEMA))


def ensure_schema(db: Database) -> bool:
    """`mailferry db upgrade`: procrastinate's tables, created if missing; True if created."""
    if has_schema(db):
        return False
    app = procrastinate.App(
        connector=procrastinate.SyncPsycopgConnector(conninfo=conninfo(db.engine.url))
    )
    try:
        with app.open():
            app.schema_manager.apply_schema()
    except pexc.ProcrastinateException as exc:
        raise StateError(f"{db.where}: cannot create the job queue: {exc}") from exc
    return True


def require_schema(db: Database) -> None:
    if not has_schema(db):
        raise SchemaTooOldError(
            f"{db.where}: the job queue (procrastinate) tables are missing; run `mailferry db upgrade`"
        )


# -- submitting ------------------------------------------------------------------------------------
class JobFeeder:
    """The ``JobQueue`` of a scheduler on PostgreSQL: one job per pending mailbox."""

    def __init__(self, db: Database) -> None:
        require_schema(db)
        self._db = db
        connector = procrastinate.SyncPsycopgConnector(
            conninfo=conninfo(db.engine.url), min_size=1, max_size=2
        )
        self._app = procrastinate.App(connector=connector)
        self._task = _register(self._app, None)
        self._opened = False

    def submit(self, mailboxes: Sequence[MailboxRecord]) -> int:
        if not mailboxes:
            return 0
        try:
            with self._db.transaction() as conn:
                queued = set(conn.scalars(_QUEUED, {"task": TASK}))
        except SQLAlchemyError as exc:  # pragma: no cover - transaction() translates
            raise StateError(db_reason(exc)) from exc
        added = 0
        for mailbox in mailboxes:
            key = job_key(mailbox.batch, mailbox.email)
            if key not in queued and self.defer(mailbox.batch, mailbox.email):
                added += 1
        return added

    def defer(self, batch: str, email: str) -> bool:
        """A job for the mailbox; False if one is waiting already."""
        if not self._opened:
            self._app.open()
            self._opened = True
        key = job_key(batch, email)
        try:
            self._task.configure(lock=key, queueing_lock=key).defer(batch=batch, email=email)
        except pexc.AlreadyEnqueued:
            return False
        except pexc.ProcrastinateException as exc:
            raise StateError(f"{self._db.where}: job queue: {exc}") from exc
        return True

    def close(self) -> None:
        if self._opened:
            self._opened = False
            self._app.close()


class JobAborter:
    """The ``JobControl`` of a service on PostgreSQL: procrastinate's cancellation, with abort,
    of a batch's jobs. A waiting job is cancelled; a running one is flagged, its worker learns it
    within ``abort_job_polling_interval`` and the job body stops after its burst in flight."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._app: procrastinate.App | None = None

    def abort(self, batch: str) -> int:
        if not has_schema(self._db):
            return 0  # no queue, no job: `mailferry db upgrade` has not made one yet
        prefix = job_key(batch, "")
        with self._db.transaction() as conn:
            rows = conn.execute(_LIVE_JOBS, {"task": TASK}).all()
        ids = [int(row.id) for row in rows if str(row.lock or "").startswith(prefix)]
        if not ids:
            return 0
        if self._app is None:
            connector = procrastinate.SyncPsycopgConnector(
                conninfo=conninfo(self._db.engine.url), min_size=1, max_size=1
            )
            self._app = procrastinate.App(connector=connector)
            self._app.open()
        try:
            return sum(self._app.job_manager.cancel_job_by_id(i, abort=True) for i in ids)
        except pexc.ProcrastinateException as exc:
            raise StateError(f"{self._db.where}: job queue: {exc}") from exc

    def close(self) -> None:
        if self._app is not None:
            self._app.close()
            self._app = None


# -- running ---------------------------------------------------------------------------------------
def run_worker(
    db: Database,
    run: RunJob,
    *,
    concurrency: int,
    stall: float,
    stop: threading.Event,
    on_stop: Callable[[], None],
    name: str,
) -> None:
    """Run jobs until ``stop`` is set; then ``on_stop`` (running jobs end after their burst in
    flight) and wait for them. Jobs of workers silent for ``stall`` seconds are run again."""
    require_schema(db)
    connector = procrastinate.PsycopgConnector(
        conninfo=conninfo(db.engine.url), min_size=1, max_size=concurrency + 3
    )
    app = procrastinate.App(connector=connector)
    _register(app, run)
    asyncio.run(_work(app, concurrency, stall, stop, on_stop, name))


async def _work(
    app: procrastinate.App,
    concurrency: int,
    stall: float,
    stop: threading.Event,
    on_stop: Callable[[], None],
    name: str,
) -> None:
    async with app.open_async():
        worker = asyncio.create_task(
            app.run_worker_async(
                queues=[QUEUE],
                concurrency=concurrency,
                name=name,
                install_signal_handlers=False,
                update_heartbeat_interval=max(stall / 4, 0.5),
                stalled_worker_timeout=stall,
                fetch_job_polling_interval=1.0,
                abort_job_polling_interval=1.0,
                delete_jobs="always",
            )
        )
        recovery = asyncio.create_task(_recover_stalled(app, stall))
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        on_stop()
        recovery.cancel()
        worker.cancel()
        for task in (recovery, worker):
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _recover_stalled(app: procrastinate.App, stall: float) -> None:
    """Put the jobs of silent workers back in the queue (every ``stall / 2`` seconds)."""
    while True:
        await asyncio.sleep(max(stall / 2, 0.5))
        try:
            await recover_once(app, stall)
        except pexc.ProcrastinateException:
            log.warning("job.recovery_failed", exc_info=True)


async def recover_once(app: procrastinate.App, stall: float) -> int:
    """One look for the jobs of silent workers; how many were put back or ended."""
    stalled = list(
        await app.job_manager.get_stalled_jobs(task_name=TASK, seconds_since_heartbeat=stall)
    )
    for job in stalled:
        log.warning("job.stalled", extra={"job": job.id, "lock": job.lock})
        await _run_again(app, job)
    return len(stalled)


async def _run_again(app: procrastinate.App, job: procrastinate.jobs.Job) -> None:
    """Back to the queue; but if a feeder queued another job for the mailbox meanwhile (allowed
    while this one was "doing"), that one waits behind this one's lock: end this one instead."""
    try:
        await app.job_manager.retry_job(job)
    except pexc.UniqueViolation:
        log.warning("job.replaced", extra={"job": job.id, "lock": job.lock})
        await app.job_manager.finish_job(
            job, status=procrastinate.jobs.Status.FAILED, delete_job=True
        )
