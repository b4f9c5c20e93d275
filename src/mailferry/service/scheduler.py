"""Running batches: claim pending mailboxes, cap connections per endpoint, sync in a thread pool.

One ``Scheduler`` per process (``mailferry serve``, or ``batch start`` in the foreground). Each
tick it refreshes its heartbeat, queues scheduled incremental passes, and starts every pending
mailbox whose endpoints have free connection slots (``limits.ConnectionLimiter``): the lease is
taken before the mailbox is claimed and given back only after both connections are closed.
Running a mailbox runs a ``Migration`` on the sessions and the state store that its two ports
give (``JobConnector``, ``open_state``: built by ``bootstrap``, the memory fakes in unit tests);
an ``AccountError`` (wrong password, unreachable) fails that mailbox alone. Each job's routes
(``graphjobs.job_routes``: the endpoints' DAV templates and Microsoft 365 Graph access) say which
passes run, in order and in the same job: mail by IMAP, Microsoft 365 mailboxes through Graph's
import/export (``graphjobs``), calendars and contacts by the collection sync (``davjobs``). A job
whose mail goes through Graph opens no IMAP session, yet holds its endpoints' connection slots:
``--max-connections`` also caps how many Microsoft 365 mailboxes of an endpoint move at once.

On PostgreSQL the loop only submits pending mailboxes to a ``JobQueue`` (``jobs.py``) and the
queue's workers run each with ``run_one``: the same claim, caps and body, in the worker's thread.
A mailbox's progress (``jobprogress.py``) is also how a run learns it must stop.

Why one module of 400+ lines: claiming, connection caps, heartbeats, the thread pool and the
recording of outcomes are one loop over one process's running jobs, and they share its lock.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from mailferry.adapters.imap import Credentials, TlsOptions
from mailferry.adapters.store.records import (
    BatchRecord,
    EndpointRecord,
    FailureRecord,
    MailboxRecord,
    Outcome,
)
from mailferry.config import Location, pair_key
from mailferry.domain.errors import AccountError, MailferryError, StateError
from mailferry.domain.folders import MappingOptions
from mailferry.domain.model import AuthMethod, Endpoint, MailboxState, Security, Summary
from mailferry.domain.plan import Selection
from mailferry.domain.ports import MailAccount, StateStore, TokenProvider
from mailferry.domain.profiles import Profile, apply_profiles, choose_profile, label_policy
from mailferry.domain.workloads import MailVia
from mailferry.logs import bound_context, get_logger
from mailferry.service.batches import (
    BatchOptions,
    BatchService,
    new_owner,
    owner_alive,
)
from mailferry.service.davjobs import DavLink, DavResult, dav_pass, with_dav
from mailferry.service.davroutes import DavRoute, dav_route
from mailferry.service.davsync import DavOptions
from mailferry.service.fileroutes import expand_files
from mailferry.service.graphcontext import GraphSyncOptions
from mailferry.service.graphjobs import (
    GraphAccess,
    GraphResult,
    JobRoutes,
    MailboxLink,
    forget_recorded,
    job_routes,
    mailbox_pass,
    with_graph,
    with_workloads,
)
from mailferry.service.jobprogress import MailboxProgress
from mailferry.service.jobs import JobQueue, JobResult
from mailferry.service.limits import ConnectionLimiter, Lease, LocalLimiter
from mailferry.service.migrate import Migration, SyncOptions
from mailferry.service.telemetry import NoTelemetry, Telemetry

log = logging.getLogger("mailferry.scheduler")
mlog = get_logger("mailferry.scheduler")

SLOT_WAIT = 1.0  # seconds between tries for connection slots of a queued job
HEARTBEAT_EVERY = 5.0
CANDIDATE_PAGE = 64  # pending mailboxes read at a time by a tick (keyset paging)


@dataclass(frozen=True)
class Job:
    """Everything one mailbox pass needs, resolved before its thread starts."""

    mailbox: MailboxRecord
    kind: str  # "sync" or "complete"
    source: Location  # a server, or a place in files (an endpoint with ``files``)
    target: Location
    source_tls: TlsOptions
    target_tls: TlsOptions
    source_creds: Credentials = field(repr=False)
    target_creds: Credentials = field(repr=False)
    options: SyncOptions
    needs: dict[str, int]
    source_profile: Profile | None = None
    target_profile: Profile | None = None
    neutralise_read_receipts: bool = False
    route: tuple[str, str] = ("", "")  # the batch's source and target endpoint names
    dav: DavRoute | None = None  # the endpoints' DAV URLs for this mailbox (either or both)
    routes: JobRoutes = field(default_factory=JobRoutes)  # which workload goes which way


@dataclass
class _Running:
    job: Job
    stop: threading.Event
    future: Future[None] | None = None
    should_abort: Callable[[], bool] = lambda: False  # a queue's abort request (run_one)


class Sessions(Protocol):
    """The ``Reconnect`` port of one mailbox pass, and the end of every session it opened."""

    def source(self) -> MailAccount: ...

    def target(self) -> MailAccount: ...

    def close(self) -> None:
        """Close every session opened; a failure to close one is no failure of the pass."""


class JobConnector(Protocol):
    """How a pass reaches its mailboxes (``bootstrap.BatchConnector``; a memory fake in tests)."""

    def tokens(self, record: EndpointRecord, user: str) -> TokenProvider | None:
        """The endpoint's token provider for ``user`` (None: it logs in with passwords)."""

    def connect(self, job: Job) -> Sessions:
        """Sessions to the job's two sides, opened on demand, any number of times."""

    def dav(self, job: Job) -> DavLink:
        """The job's two collection accounts (``job.dav``'s DAV URLs, else Microsoft 365 through
        Graph's resources: ``job.routes``), logged in, and the item state."""

    def graph(self, record: EndpointRecord) -> GraphAccess | None:
        """The endpoint's Graph access (its app token fetched once, its roles read), or None
        when its mailboxes are not Microsoft 365 through Graph."""

    def mailboxes(self, job: Job) -> MailboxLink:
        """The job's two Microsoft 365 mailboxes through Graph (``job.routes``) and their state."""


class Scheduler:
    """Runs pending mailboxes (of one batch, or of all) until told to stop, or until idle."""

    def __init__(
        self,
        service: BatchService,
        connector: JobConnector,
        open_state: Callable[[], StateStore],
        limiter: ConnectionLimiter | None = None,
        *,
        batch: str | None = None,
        workers: int = 32,
        poll: float = 1.0,
        is_service: bool = False,
        every: float | None = None,
        on_finish: Callable[[MailboxRecord, Outcome], None] | None = None,
        telemetry: Telemetry | None = None,
        dispatching: bool = True,
        queue: JobQueue | None = None,
        stale_after: float = 60.0,
    ) -> None:
        self.service = service
        self.connector = connector
        self.open_state = open_state
        self.telemetry = telemetry or NoTelemetry()
        self.last_beat: float | None = None  # when this scheduler last wrote its heartbeat
        self.limiter = limiter or LocalLimiter(service.capacity)
        self.batch = batch
        self.poll = poll
        self.owner = new_owner()
        self.is_service = is_service
        self.every = every  # serve --every: incremental passes for batches without their own
        self.on_finish = on_finish
        self.dispatching = dispatching  # False: `serve --no-worker`, the workers run mailboxes
        self.queue = queue  # set: pending mailboxes are submitted to it, workers run them
        self.stale_after = stale_after  # run_one: a claim whose heartbeat is older is dead
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mailbox")
        self._workers = workers
        self._running: dict[tuple[str, str], _Running] = {}
        self._lock = threading.Lock()
        self._shutdown = threading.Event()

    # -- the loop ----------------------------------------------------------------------------------
    def run(
        self,
        stop: threading.Event,
        *,
        until_idle: bool = False,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        try:
            self.loop(stop, until_idle=until_idle, on_tick=on_tick)
        finally:
            self.shutdown()

    def loop(
        self,
        stop: threading.Event,
        *,
        until_idle: bool = False,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        """The ticks of ``run``, without the shutdown (a queue worker shuts down after its
        queue's jobs have ended)."""
        last_beat = 0.0
        while not stop.is_set():
            try:
                last_beat = self._tick(last_beat)
                if until_idle and self.idle():
                    break
            except StateError:  # a database busy beyond its timeout: try again next tick
                log.warning("scheduler.tick_failed", exc_info=True)
            if on_tick is not None:
                on_tick()
            stop.wait(self.poll)

    def _tick(self, last_beat: float) -> float:
        now = time.time()
        if now - last_beat >= HEARTBEAT_EVERY:
            self.service.store.heartbeat(self.owner, now, service=self.is_service)
            last_beat = self.last_beat = now
        if self.is_service:
            self.service.schedule_due(now, self.every)
        self.limiter.check()
        if self.limiter.lost:
            self._stop_running("connection slots lost")
        if self.queue is not None:
            self.queue.submit(list(self._candidates(size=None)))
        elif self.dispatching:
            self.dispatch()
        return last_beat

    def _stop_running(self, why: str) -> None:
        """Ask every running mailbox to stop after its burst in flight (they stay queued)."""
        with self._lock:
            running = list(self._running.values())
        if running:
            log.warning("scheduler.stopping_all", extra={"reason": why, "running": len(running)})
        for one in running:
            one.stop.set()

    def idle(self) -> bool:
        """Nothing running here, and nothing pending that this scheduler could run; with a
        queue, nothing pending at all (other workers' jobs included)."""
        with self._lock:
            if self._running:
                return False
        if self.queue is not None:
            stopped = {b.name for b in self.service.store.batches() if b.stop_requested}
            pending = self.service.store.mailboxes(self.batch, pending_only=True)
            return all(m.batch in stopped for m in pending)
        return next(self._candidates(), None) is None

    def running_jobs(self) -> int:
        with self._lock:
            return len(self._running)

    def stop_jobs(self) -> None:
        """Ask running mailboxes to stop after their burst in flight; they stay queued."""
        self._shutdown.set()
        with self._lock:
            for running in self._running.values():
                running.stop.set()

    def shutdown(self) -> None:
        """Stop running mailboxes (they stay queued for the next start) and wait for them."""
        self.stop_jobs()
        self._pool.shutdown(wait=True)
        self.limiter.close()
        if self.queue is not None:
            self.queue.close()
        if self.is_service:
            with contextlib.suppress(MailferryError):
                self.service.store.forget_service(self.owner)

    # -- picking mailboxes -------------------------------------------------------------------------
    def _candidates(
        self, batches: dict[str, BatchRecord] | None = None, *, size: int | None = CANDIDATE_PAGE
    ) -> Iterator[MailboxRecord]:
        """Pending mailboxes nobody alive runs (a dead owner's are taken over: the recovery),
        read ``size`` at a time: a tick that can start three jobs does not read 10,000 rows.
        ``size`` None: all in one query (a queue is given every one of them anyway)."""
        now = time.time()
        if batches is None:
            batches = {b.name: b for b in self.service.store.batches()}
        after: tuple[str, int] | None = None
        while True:
            page = self.service.store.mailboxes(
                self.batch, pending_only=True, after=after, limit=size
            )
            for mailbox in page:
                batch = batches.get(mailbox.batch)
                if batch is None or batch.stop_requested or mailbox.owner == self.owner:
                    continue
                if mailbox.owner and owner_alive(mailbox.owner, mailbox.heartbeat, now):
                    continue
                yield mailbox
            if size is None or len(page) < size:
                return
            after = (page[-1].batch, page[-1].line)

    def dispatch(self) -> int:
        """Start every candidate that gets its connection slots. Slots are tried before anything
        is decrypted or claimed, and an endpoint set found full is not tried again this tick."""
        batches = {b.name: b for b in self.service.store.batches()}
        endpoints = {e.name: e for e in self.service.endpoints()}  # read once a tick, not per job
        full: set[tuple[tuple[str, int], ...]] = set()
        started = 0
        for mailbox in self._candidates(batches):
            with self._lock:
                if len(self._running) >= self._workers or self._shutdown.is_set():
                    break
            batch = batches[mailbox.batch]
            needs = connection_needs(batch)
            key = tuple(sorted(needs.items()))
            if key in full:
                continue
            lease = self.limiter.try_acquire(needs)
            if lease is None:
                full.add(key)
                continue
            try:
                job = self._job(mailbox, batch, endpoints)
            except MailferryError as exc:  # an endpoint removed, a key lost: fail it, go on
                lease.release()
                self._claim_and_fail(mailbox, str(exc))
                continue
            if not self.service.store.claim(
                mailbox.batch, mailbox.email, self.owner, mailbox.owner, time.time()
            ):
                lease.release()
                continue
            self._start(job, lease)
            started += 1
        return started

    def run_one(self, batch: str, email: str, should_abort: Callable[[], bool]) -> JobResult:
        """One queued job, in the calling thread (a queue worker's): the same claim, caps and
        body as ``dispatch``. Waits for connection slots (no retry is spent waiting)."""
        found = self.service.store.mailboxes(batch, pending_only=True, email=email)
        record = self.service.store.batch(batch)
        if not found or record is None or record.stop_requested:
            return JobResult.SKIPPED
        mailbox = found[0]
        if mailbox.owner and self._still_running(mailbox):
            return JobResult.BUSY
        lease = self._wait_for_slots(connection_needs(record), should_abort)
        if lease is None:
            return JobResult.SKIPPED
        try:
            job = self._job(mailbox, record)
        except MailferryError as exc:
            lease.release()
            self._claim_and_fail(mailbox, str(exc))
            return JobResult.DONE
        if not self.service.store.claim(batch, email, self.owner, mailbox.owner, time.time()):
            lease.release()
            return JobResult.BUSY
        running = _Running(job, threading.Event(), should_abort=should_abort)
        with self._lock:
            self._running[(batch, email)] = running
        self._execute(running, lease)
        return JobResult.DONE

    def _still_running(self, mailbox: MailboxRecord) -> bool:
        """Whether the mailbox's owner still runs it. A queue job runs again only when the queue
        found its worker silent, so a heartbeat older than ``stale_after`` is dead here even on
        this host (a worker frozen by SIGSTOP: its pid lives on)."""
        now = time.time()
        if not owner_alive(mailbox.owner or "", mailbox.heartbeat, now):
            return False
        return mailbox.heartbeat is not None and now - mailbox.heartbeat < self.stale_after

    def _wait_for_slots(
        self, needs: dict[str, int], should_abort: Callable[[], bool]
    ) -> Lease | None:
        while not (self._shutdown.is_set() or should_abort()):
            lease = self.limiter.try_acquire(needs)
            if lease is not None:
                return lease
            self._shutdown.wait(SLOT_WAIT)
        return None

    def _start(self, job: Job, lease: Lease) -> None:
        running = _Running(job, threading.Event())
        key = (job.mailbox.batch, job.mailbox.email)
        with self._lock:
            self._running[key] = running
        running.future = self._pool.submit(self._execute, running, lease)

    def _claim_and_fail(self, mailbox: MailboxRecord, reason: str) -> None:
        now = time.time()
        if self.service.store.claim(mailbox.batch, mailbox.email, self.owner, mailbox.owner, now):
            outcome = Outcome(MailboxState.FAILED, reason, mailbox.pending or "sync", now, now, {})
            self.service.store.finish(mailbox.batch, mailbox.email, self.owner, outcome)

    # -- one mailbox -------------------------------------------------------------------------------
    def _job(
        self,
        mailbox: MailboxRecord,
        batch: BatchRecord,
        endpoints: dict[str, EndpointRecord] | None = None,
    ) -> Job:
        """What a pass over ``mailbox`` needs, resolved: endpoints (``endpoints``: as read this
        tick, else from the database), logins, profiles, options."""
        known = endpoints or {}
        src = known.get(batch.source) or self.service.endpoint(batch.source)
        dst = known.get(batch.target) or self.service.endpoint(batch.target)
        options = BatchOptions.from_json(batch.options)
        source, source_creds = self._side(src, mailbox.source_user, mailbox.source_secret)
        target, target_creds = self._side(dst, mailbox.target_user, mailbox.target_secret, "target")
        source_profile = choose_profile(src.profile, src.host)
        target_profile = choose_profile(dst.profile, dst.host)
        mapping = MappingOptions(
            include=tuple(re.compile(p) for p in mailbox.include),
            exclude=tuple(re.compile(p) for p in mailbox.exclude),
        )
        mapping = apply_profiles(mapping, source_profile, target_profile)
        selection = Selection(options.since, options.before, options.include_deleted)
        access = (self._graph(src, "source"), self._graph(dst, "target"))
        routes = job_routes((src, dst), access, options.workloads, options.mail_via)
        return Job(
            mailbox=mailbox,
            kind=mailbox.pending or "sync",
            source=source,
            target=target,
            source_tls=_tls(src),
            target_tls=_tls(dst),
            source_creds=source_creds,
            target_creds=target_creds,
            options=SyncOptions(
                mapping=mapping,
                selection=selection,
                labels=label_policy(source_profile, options.labels),
            ),
            needs=connection_needs(batch),
            source_profile=source_profile,
            target_profile=target_profile,
            neutralise_read_receipts=options.neutralise_read_receipts,
            route=(batch.source, batch.target),
            dav=dav_route(src, dst, mailbox.source_user, mailbox.target_user),
            routes=routes,
        )

    def _graph(self, record: EndpointRecord, side: str) -> GraphAccess | None:
        """The side's Graph access; a token that cannot be had fails the mailbox, naming it."""
        try:
            return self.connector.graph(record)
        except MailferryError as exc:
            raise type(exc)(f"{side} Microsoft Graph token: {exc}") from None

    def _side(
        self, record: EndpointRecord, user: str, secret: str | None, side: str = "source"
    ) -> tuple[Location, Credentials]:
        """Files: ``user``'s place, no login. Else a token login as ``user`` if the endpoint has
        a token source; else its admin login acting for ``user`` if it has one; else the row's
        password."""
        if record.files:
            return expand_files(record.files, user, side=side), Credentials()
        security = Security(record.security)
        method = AuthMethod(record.auth)
        tokens = self.connector.tokens(record, user)
        if tokens is not None:
            endpoint = Endpoint(record.host, record.port, security, user)
            return endpoint, Credentials(tokens=tokens, method=method)
        if record.auth_user and record.auth_secret:
            password = self.service.box.decrypt(record.auth_secret)
            endpoint = Endpoint(record.host, record.port, security, user, record.auth_user)
        else:
            password = self.service.box.decrypt(secret or "")
            endpoint = Endpoint(record.host, record.port, security, user)
        return endpoint, Credentials(password.reveal(), method=method)

    def _execute(self, running: _Running, lease: Lease) -> None:
        job = running.job
        mailbox = job.mailbox
        with bound_context(batch=mailbox.batch, mailbox=mailbox.email, kind=job.kind):
            mlog.info("mailbox.started")
            outcome, summary, graph = self._outcome_of(running, lease)
            mlog.info("mailbox.finished", state=str(outcome.state), reason=outcome.reason)
            self._record(job, outcome, summary, graph)

    def _outcome_of(
        self, running: _Running, lease: Lease
    ) -> tuple[Outcome, Summary, GraphResult | None]:
        """The job's outcome, its IMAP summary, and the Graph pass's result when the outcome
        carries it (None when building the outcome failed: its doubts are not in it)."""
        job = running.job
        mailbox = job.mailbox
        progress = MailboxProgress(
            self.service, mailbox, self.owner, running.stop, running.should_abort
        )
        started = time.time()
        summary = Summary()
        try:
            try:
                summary, dav, graph = self._passes(job, progress, running.stop)
            finally:
                lease.release()  # after every connection is closed (each pass closes its own)
            outcome = self._outcome(job, summary, progress, started)
            if graph is not None:
                outcome = with_graph(outcome, graph, mailbox.email)
            if dav is not None:
                outcome = with_dav(outcome, dav, mailbox.email)
            imap = summary if job.routes.plan.mail is MailVia.IMAP else None
            outcome = with_workloads(outcome, job.routes.plan, imap, dav, graph)
        except MailferryError as exc:  # AccountError (login, unreachable), StateError, ...
            graph = None
            outcome = Outcome(MailboxState.FAILED, str(exc), job.kind, started, time.time(), {})
        except Exception as exc:  # the executor loop: one mailbox's bug must not end the others
            log.exception(
                "mailbox.crashed", extra={"batch": mailbox.batch, "mailbox": mailbox.email}
            )
            reason = f"internal error: {type(exc).__name__}: {exc}"
            outcome = Outcome(MailboxState.FAILED, reason, job.kind, started, time.time(), {})
            graph = None
        return outcome, summary, graph

    def _passes(
        self, job: Job, progress: MailboxProgress, stop: threading.Event
    ) -> tuple[Summary, DavResult | None, GraphResult | None]:
        """The job's passes by route (``job.routes``): IMAP mail (its ``Summary``; an empty one
        when mail goes another way), then Graph's mailbox import/export, then the collection
        sync; a stop ends the ones after it."""
        plan = job.routes.plan
        summary = Summary()
        dav: DavResult | None = None
        graph: GraphResult | None = None
        if plan.mail is MailVia.IMAP:
            summary = self._migrate(job, progress, stop)
        if plan.mailbox and summary.stopped is None:
            options = GraphSyncOptions(workloads=plan.mailbox)
            graph = mailbox_pass(lambda: self.connector.mailboxes(job), progress, stop, options)
            if graph.summary is not None and graph.summary.stopped is not None:
                summary.stopped = graph.summary.stopped
        if plan.collections and summary.stopped is None:
            options_dav = DavOptions(workloads=plan.collections)
            dav = dav_pass(lambda: self.connector.dav(job), progress, stop, options_dav)
            if dav.summary is not None and dav.summary.stopped is not None:
                summary.stopped = dav.summary.stopped
        return summary, dav, graph

    def _record(
        self, job: Job, outcome: Outcome, summary: Summary, graph: GraphResult | None
    ) -> None:
        """The outcome recorded, then (only if it was) the doubts the Graph pass reported in it
        forgotten: a worker killed between the two reports them again on the next pass."""
        mailbox = job.mailbox
        try:
            recorded = self.service.store.finish(mailbox.batch, mailbox.email, self.owner, outcome)
            if recorded and graph is not None:
                forget_recorded(lambda: self.connector.mailboxes(job), graph)
        except MailferryError:  # left claimed by this process: the next start runs it again
            log.exception("mailbox.unrecorded", extra={"batch": mailbox.batch})
        finally:
            with self._lock:
                self._running.pop((mailbox.batch, mailbox.email), None)
        self.telemetry.pass_finished(*job.route, outcome.state, summary)
        if self.on_finish is not None:
            self.on_finish(mailbox, outcome)

    def _migrate(self, job: Job, progress: MailboxProgress, stop: threading.Event) -> Summary:
        sides = self.connector.connect(job)
        try:
            store = self.open_state()
        except BaseException:
            sides.close()
            raise
        try:
            source = _side_named("source", sides.source)
            target = _side_named("target", sides.target)
            key = pair_key(job.source, job.target)
            migration = Migration(
                source, target, store, key, job.options, progress, reconnect=sides, stop=stop
            )
            return migration.run()
        finally:
            sides.close()
            store.close()

    def _outcome(
        self, job: Job, summary: Summary, progress: MailboxProgress, started: float
    ) -> Outcome:
        finished = time.time()
        failures = [
            FailureRecord(job.mailbox.email, f.folder, f.uid, f.reason) for f in summary.failures
        ]
        data: dict[str, Any] = summary.as_json()
        base = Outcome(MailboxState.SYNCED, None, job.kind, started, finished, data, failures)
        if summary.stopped is not None:
            if progress.stop_requested:
                return replace(base, state=MailboxState.STOPPED, reason="stopped by request")
            if self._shutdown.is_set():
                state = MailboxState.COMPLETING if job.kind == "complete" else MailboxState.SYNCING
                return replace(
                    base,
                    state=state,
                    reason="interrupted; resumes on the next start",
                    keep_pending=True,
                )
            return replace(base, state=MailboxState.FAILED, reason=summary.stopped)
        if job.kind == "complete":
            base = replace(base, state=MailboxState.COMPLETED)
        if failures:
            return replace(base, reason=f"{len(failures)} errors; first: {failures[0].reason}")
        return base


def _side_named(side: str, connect: Callable[[], MailAccount]) -> MailAccount:
    """Connect; a login or connection failure says which side it was."""
    try:
        return connect()
    except AccountError as exc:
        raise type(exc)(f"{side}: {exc}") from None


def connection_needs(batch: BatchRecord) -> dict[str, int]:
    """Endpoint name -> connections one mailbox of the batch holds: one session per side (two on
    one endpoint when a batch migrates within it). Raise these if a sync ever opens more."""
    needs = {batch.source: 1}
    needs[batch.target] = needs.get(batch.target, 0) + 1
    return needs


def _tls(record: EndpointRecord) -> TlsOptions:
    return TlsOptions(
        ca_file=Path(record.ca_file) if record.ca_file else None, insecure=record.insecure
    )
