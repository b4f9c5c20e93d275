"""Migrate one pair of accounts: snapshot -> plan -> execute -> record, folder by folder.

This module is the run: folders shared out over lanes, retries, pauses and stops; planning is in
planning.py, the copy phase of a folder pass in copying.py.

The no-duplicate guarantee rests on three rules:
1. Before an APPEND is sent, an *intent* (source UID, content hash, size, the target folder's UIDNEXT) is
   committed to the state store. After a crash, pending intents are reconciled against what actually arrived
   on the target at or above that UIDNEXT; only intents that did not land are copied again.
2. A folder without usable state (first run, lost database, UIDVALIDITY changed on either side) is matched
   against the target by message identity (Message-ID + INTERNALDATE + size, else SHA-256), as multisets.
3. A checkpoint is written when a folder pass starts (marking it incomplete) and again when it ends; an
   incomplete pass is finished from the per-message rows, never from scratch.

Why one module of 400+ lines: the run's control flow (lanes, retries with their budget, daily-cap
pauses, stop requests) is one state machine over one Migration object; the folder pass's planning
and copying are already their own modules.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from mailferry.domain.errors import (
    AuthError,
    ConnectError,
    FolderError,
    MailferryError,
    StopRequestedError,
    TargetFullError,
    ThrottledError,
)
from mailferry.domain.folders import FolderMapping, FolderPlan, MappingOptions
from mailferry.domain.labels import LabelPolicy
from mailferry.domain.model import FolderStatus, Summary
from mailferry.domain.plan import Selection
from mailferry.domain.ports import (
    FolderRecord,
    ListingAhead,
    MailAccount,
    Noting,
    StateStore,
)
from mailferry.logs import bound_context, get_logger
from mailferry.service import accounting
from mailferry.service.copying import FolderCopy, record_failure
from mailferry.service.folderlanes import (
    MIN_WINDOWS,
    SharedPass,
    SharedPasses,
    copy_shared,
)
from mailferry.service.folderwork import FolderWork
from mailferry.service.planning import FolderPlanner, lists_ahead, plan_folders
from mailferry.service.prefetch import both
from mailferry.service.progress import NoProgress, Progress
from mailferry.service.resilience import Pace, Reconnect, RetryPolicy
from mailferry.service.sessions import EarlyPairs, close_sessions, open_pairs
from mailferry.service.snapshot import Snapshot, source_statuses, target_statuses
from mailferry.service.windows import WINDOW

STOP_REQUESTED = "stop requested"
PAUSE_SLICE = 5.0  # a long pause wakes this often to let progress (and stop requests) through
# Messages per APPEND burst at most; a burst's bytes (a third of ``batch_bytes``) bound it first
# for all but small messages. Dovecot brings the target folder a burst goes to up to date after
# the burst by walking the whole folder, so a burst costs it time in proportion to the folder's
# size. A first pass of a million small messages into one folder, bursts of 200: 1,700 msg/s at
# first, 940 near the end, 844 s; bursts of 1,000: 1,805, then 1,546, 601 s (benchmarks/README.md).
BATCH_COUNT = 1000
log = get_logger("mailferry.migrate")
_INFO = functools.partial(logging.getLogger("mailferry.migrate").isEnabledFor, logging.INFO)


@dataclass(frozen=True)
class SyncOptions:
    mapping: MappingOptions = field(default_factory=MappingOptions)
    selection: Selection = field(default_factory=Selection)
    dry_run: bool = False
    batch_count: int = BATCH_COUNT
    batch_bytes: int = 16 << 20
    connections: int = 1  # sessions per account; folders are shared out over them
    # Lanes also share a big folder's first pass (folderlanes.py). Off by default: on Dovecot
    # (Maildir) three sessions appending to one folder of 200,000 took 2.7x one session's time,
    # each re-reading the folder's index for the others' appends (benchmarks/README.md).
    share_big_folders: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    labels: LabelPolicy | None = None  # the source's folders are labels (Gmail)
    window: int = WINDOW  # source UIDs per window of a streamed folder pass (windows.py)


class Migration:
    """One run over one pair. Build it, call ``run()`` (or ``plan()`` for a dry run)."""

    def __init__(
        self,
        source: MailAccount,
        target: MailAccount,
        store: StateStore,
        pair: str,
        options: SyncOptions | None = None,
        progress: Progress | None = None,
        *,
        reconnect: Reconnect | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.source = source
        self._noting = isinstance(source, Noting)  # a structural check (tens of µs): once a run
        self.target = target
        self.store = store
        self.pair = pair
        self.options = options or SyncOptions()
        self.progress = progress or NoProgress()
        self.summary = Summary()
        self.pace = Pace(self.options.batch_count)
        self._reconnect = reconnect  # None: a dropped connection ends the run (tests, dry runs)
        self._stop = stop or threading.Event()
        self._folder_plan: FolderPlan | None = None
        self._capped = 0.0  # seconds this lane paused for daily caps
        self._dry_standing: Counter[str] = Counter()  # a dry run's copies by label key
        self._ledger = accounting.Ledger()
        self._snapshot = Snapshot()  # read by _start: statuses and records of every folder
        self._free_sessions = 0  # sessions a big folder's first pass may open (folderlanes.py)
        self._passes = SharedPasses()  # passes other lanes may join, shared by the lanes
        self._early: EarlyPairs | None = None  # lane sessions opening while the run starts
        self._next: FolderMapping | None = None  # taken off the queue early (``_look_ahead``)
        self._first: FolderMapping | None = None  # listed ahead by _start (``_read_source``)

    # -- entry points -------------------------------------------------------------------------------
    def planner(self) -> FolderPlanner:
        """A planner on the current sessions (they change when the run reconnects)."""
        return FolderPlanner(
            self.source,
            self.target,
            self.store,
            self.pair,
            self.options.selection,
            self.folder_plan(),
            self.options.labels,
            self._dry_standing,
            snapshot=self._snapshot,
            window=self.options.window,
        )

    def _plan_dry(self, mapping: FolderMapping) -> FolderWork:
        """A dry run's plan of a folder, its skips counted (its windows are counted already)."""
        work = self.planner().plan(mapping, dry_run=True)
        accounting.count_skips(self.summary, work)
        return work

    def folder_plan(self, records: Mapping[str, FolderRecord] | None = None) -> FolderPlan:
        if self._folder_plan is None:
            self._folder_plan = plan_folders(
                self.source, self.target, self.options.mapping, self.store, self.pair, records
            )
        return self._folder_plan

    def plan(self) -> list[FolderWork]:
        """The dry run: what a run would do, folder by folder. Writes nothing anywhere."""
        works = []
        free, ordered = self._phases()
        for mapping in free + ordered:
            try:
                works.append(self._plan_dry(mapping))
            except FolderError as exc:
                self._fail(mapping.source.name, None, exc.reason)
        return works

    def run(self) -> Summary:
        """Every folder, each retried within the budget; a full target or a stop request ends early.

        With ``options.connections`` > 1 (and a way to open sessions), folders are shared out over that
        many lanes, each with its own source and target session, largest folders first. Label folders
        that leave out what another folder's copy stands for (``options.labels``) come after, one by
        one, in the policy's order.
        """
        started = time.monotonic()
        with bound_context(pair=self.pair):
            log.info("run.started", connections=self.options.connections)
            try:
                self._run_phases()
            except StopRequestedError as exc:
                self.summary.stopped = self.summary.stopped or str(exc)
            finally:
                if self._ledger.full:
                    plan = self.folder_plan()
                    accounting.count_unreached(plan, self._ledger, self.summary, self.planner)
                self.summary.seconds = time.monotonic() - started
                log.info("run.finished", **_counters(self.summary))
        return self.summary

    def _run_phases(self) -> None:
        try:
            self._retrying(None, self._start)
            free, ordered = self._phases()
            lanes = self._lanes_worth_opening(free)
            # The folder whose listing _start asked for is this lane's first, whatever the order.
            first, self._first = self._first, None
            queue = self._folder_queue([m for m in free if m != first], sort_by_size=lanes > 1)
            self._next = first
            if lanes > 1:
                self._run_lanes(queue, lanes)
            else:  # one lane: a big folder's first pass may use the other sessions itself
                self._free_sessions = self.options.connections - 1 if self._reconnect else 0
                self._drain(queue)
        finally:
            if self._early is not None:  # not taken: the run had no use for them
                self._early.discard()
                self._early = None
        for mapping in ordered:  # in-flight copies count before any folder leaves one out
            self._retrying(mapping.source.name, functools.partial(self._settle, mapping))
        self._drain(self._folder_queue(ordered, sort_by_size=False))

    def _early_lanes(self, records: Mapping[str, FolderRecord]) -> None:
        """Start opening the lanes' sessions as soon as the folders are mapped, if the run will
        want them: their logins then overlap the folders' creation and the statuses' reading."""
        if self._early is not None or self._reconnect is None:
            return
        count = self._lanes_worth_opening(self._phases()[0], records)
        if count > 1:
            self._early = EarlyPairs(self._reconnect, count - 1)

    def _lanes_worth_opening(
        self, mappings: list[FolderMapping], records: Mapping[str, FolderRecord] | None = None
    ) -> int:
        """Extra sessions pay off for a first pass over several folders; an incremental pass is a
        few round trips per folder, cheaper than logging in again (every folder has completed a
        pass before)."""
        if self.options.connections <= 1 or self._reconnect is None or len(mappings) <= 1:
            return 1
        records = self._snapshot.records if records is None else records
        for mapping in mappings:
            record = records.get(mapping.source.name)
            if record is None or not record.checkpoint.complete:
                return self.options.connections
        return 1

    def _phases(self) -> tuple[list[FolderMapping], list[FolderMapping]]:
        """(folders in any order, folders one after another): see ``LabelPolicy.order``."""
        mappings = list(self.folder_plan().mappings)
        if self.options.labels is None:
            return mappings, []
        return self.options.labels.order(mappings)

    def _folder_queue(
        self, mappings: list[FolderMapping], *, sort_by_size: bool
    ) -> queue.SimpleQueue[FolderMapping]:
        if sort_by_size:  # big folders first, so lanes finish together
            sizes = {m.source.name: self._size_hint(m.source.name) for m in mappings}
            mappings.sort(key=lambda m: -sizes[m.source.name])
        folders: queue.SimpleQueue[FolderMapping] = queue.SimpleQueue()
        for mapping in mappings:
            folders.put(mapping)
        return folders

    def _size_hint(self, folder: str) -> int:
        known = self._snapshot.source.get(folder)
        if known is not None:
            return known.exists
        try:
            return self.source.status(folder).exists
        except MailferryError:
            return 0

    def _drain(self, folders: queue.SimpleQueue[FolderMapping]) -> None:
        """Take folders off the shared queue until it is empty (one lane's loop)."""
        try:
            while True:
                mapping, self._next = self._next, None
                try:
                    mapping = mapping or folders.get_nowait()
                except queue.Empty:
                    if self.options.share_big_folders:
                        self._help_others()
                    return
                self._check_stop()
                sync = functools.partial(self._sync_folder, mapping, folders)
                with self._passes.busy():
                    self._retrying(mapping.source.name, sync)
                self._ledger.done.add(mapping.source.name)
                self.summary.folders += 1
        except TargetFullError as exc:
            self._fail("*", None, str(exc))
            self.summary.stopped = str(exc)
            self._stop.set()  # the other lanes stop after their burst in flight
        finally:
            if self._next is not None:  # taken early, not begun: another lane's to take
                folders.put(self._next)
                self._next = None

    def _look_ahead(self, folders: queue.SimpleQueue[FolderMapping]) -> None:
        """The source fell idle at the end of a folder's reading: take this lane's next folder
        now and ask for what its planning reads from the source (``FolderPlanner.list_ahead``),
        so that the answer is on its way while this folder's last APPENDs are answered. On the
        copy's reading thread; a failure here is left to the next folder's own commands."""
        if self._next is None and not self._stop.is_set():
            try:
                self._next = folders.get_nowait()
            except queue.Empty:
                return
        if self._next is not None:
            try:
                self.planner().list_ahead(self._next)
            except MailferryError as exc:
                log.debug("folder.list_ahead_failed", folder=self._next.source.name, error=str(exc))

    def _open_lanes(self, count: int) -> list[Migration]:
        """This run plus up to ``count - 1`` lanes with sessions of their own, opened at once."""
        assert self._reconnect is not None  # noqa: S101 - run() checked it
        early, self._early = self._early, None
        if early is not None and count == self.options.connections:
            pairs, failed = early.take()
        else:
            if early is not None:
                early.discard()
            pairs, failed = open_pairs(self._reconnect, count - 1) if count > 1 else ([], None)
        lanes = [self]
        for source, target in pairs:
            lane = Migration(
                source,
                target,
                self.store,
                self.pair,
                self.options,
                self.progress,
                reconnect=self._reconnect,
                stop=self._stop,
            )
            lane._folder_plan = self.folder_plan()
            lane._ledger = self._ledger
            lane._passes = self._passes
            lane._snapshot = self._snapshot
            lanes.append(lane)
        if failed is not None:  # fewer lanes, not a failed run
            self.summary.warnings.append(f"ran with {len(lanes)} connection(s): {failed}")
        return lanes

    def _run_lanes(self, folders: queue.SimpleQueue[FolderMapping], count: int) -> None:
        lanes = self._open_lanes(count)
        errors: list[BaseException] = []

        def work(lane: Migration) -> None:
            try:
                lane._drain(folders)
            except StopRequestedError as exc:
                lane.summary.stopped = lane.summary.stopped or str(exc)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread below
                errors.append(exc)
                self._stop.set()

        threads = [  # each lane logs with this run's context (its own copy: one per thread)
            threading.Thread(target=contextvars.copy_context().run, args=(work, lane), daemon=True)
            for lane in lanes[1:]
        ]
        for thread in threads:
            thread.start()
        work(self)
        for thread in threads:
            thread.join()
        # Why the run stopped: a lane's own reason (a full target) beats the echo it caused in the others.
        reasons = [lane.summary.stopped for lane in lanes if lane.summary.stopped]
        own = [r for r in reasons if r != STOP_REQUESTED]
        for lane in lanes[1:]:
            self.summary.absorb(lane.summary)
        self.summary.stopped = (own or reasons)[0] if reasons else None
        if errors:
            raise errors[0]

    def _start(self) -> None:
        self._folder_plan = None
        records = self.store.folder_records(self.pair)  # read once: pins, snapshot, lanes
        plan = self.folder_plan(records)
        self._early_lanes(records)
        self.summary.renames = [
            (m.source.name, m.target, m.rename_reason) for m in plan.mappings if m.rename_reason
        ]
        for source, target, reason in self.summary.renames:
            log.info("folder.renamed", folder=source, target=target, reason=reason)
        for warning in accounting.raw_name_warnings(plan):
            if warning not in self.summary.warnings:  # _start runs again after a reconnect
                self.summary.warnings.append(warning)
        # The target's folders created and their statuses read while the source's statuses are
        # read (two sessions), and the listing of the folder this lane plans first asked for
        # (``_read_source``).
        condstore = self.source.condstore  # read here: the source's session is the other thread's
        (uncreated, (target_status, fresh)), (statuses, self._first) = both(
            lambda: self._prepare_target(plan, records, condstore),
            lambda: self._read_source(plan, records),
        )
        self._ledger.uncreated = uncreated
        self._snapshot = Snapshot(statuses, target_status, records, fresh)

    def _prepare_target(
        self, plan: FolderPlan, records: Mapping[str, FolderRecord], source_condstore: bool
    ) -> tuple[dict[str, str], tuple[dict[str, FolderStatus], frozenset[str]]]:
        """The target's folders created and subscribed, then the statuses of the snapshot."""
        uncreated = accounting.prepare_target(self.target, plan, self.summary)
        return uncreated, target_statuses(self.target, plan, records, source_condstore)

    def _read_source(
        self, plan: FolderPlan, records: Mapping[str, FolderRecord]
    ) -> tuple[dict[str, FolderStatus], FolderMapping | None]:
        """The source's statuses; then, from a source that lists ahead, the listing of the folder
        this lane will plan first (the biggest, where lanes share the folders out) is asked for
        where its pass would ask it with its status (``lists_ahead``). Its answer then comes
        while the target's folders are created and their statuses read: a PST measures that
        folder meanwhile, most of its reading. ``_run_phases`` gives this lane that folder."""
        statuses = source_statuses(self.source, plan)
        free = self._phases()[0]
        if not free or not isinstance(self.source, ListingAhead):
            return statuses, None
        first = free[0]
        if self._lanes_worth_opening(free, records) > 1:  # the queue's order (_folder_queue)
            first = min(free, key=lambda m: -_exists(statuses.get(m.source.name)))
        name = first.source.name
        if not lists_ahead(statuses.get(name), first_pass=name not in records):
            return statuses, None
        self.source.send_listing(name)
        return statuses, first

    def request_stop(self, why: str = STOP_REQUESTED) -> None:
        """Finish the burst in flight, save state, and return (safe from a signal handler)."""
        self._stop_reason = why
        self._stop.set()

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise StopRequestedError(getattr(self, "_stop_reason", STOP_REQUESTED))

    def _retrying(self, folder: str | None, work: Callable[[], None]) -> None:
        """Run ``work``; on a lost connection or a throttle, back off, reconnect and run it again.

        ``folder`` None means the run's start (listing, creating folders): when its budget is spent the
        run cannot go on and the error propagates. A folder's spent budget is reported and the run goes on.
        The budget counts failures in a row: an attempt that copied something starts the count again.
        """
        attempt = 0
        refused_before = False
        while True:
            mark = self._progress_mark()
            try:
                work()
            except FolderError as exc:
                if folder is None:
                    raise
                if refused_before or self._reconnect is None:
                    self._fail(folder, None, exc.reason)
                    return
                # One more try on fresh sessions: servers refuse transiently too (Dovecot answers
                # [ALREADYEXISTS] to a STATUS racing its own auto-creation of a special-use folder).
                refused_before = True
                self._reopen()
            except ConnectError as exc:
                if self._reconnect is None or isinstance(exc, AuthError):
                    raise
                attempt = self._next_attempt(exc, attempt, mark)
                given_up = self._recover(exc, attempt, folder)
                if given_up is None:
                    continue
                if folder is None:
                    raise
                self._fail(folder, None, given_up)
                return
            else:
                return

    def _next_attempt(self, exc: ConnectError, attempt: int, mark: tuple[int, int, int]) -> int:
        """Failures in a row without progress; a daily cap costs time, never an attempt."""
        if isinstance(exc, ThrottledError) and exc.cap:
            return attempt
        return 1 if self._progress_mark() != mark else attempt + 1

    def _recover(self, exc: ConnectError, attempt: int, folder: str | None) -> str | None:
        """Count the fault, slow down if asked, wait out the backoff (or the daily cap), open fresh
        sessions. Returns why to give up instead, once the budget is spent."""
        if isinstance(exc, ThrottledError) and exc.cap:
            if self._wait_out_cap(exc):
                return None
            return f"{exc}; still refused after pausing {_hours(self._capped)}"
        if attempt > self.options.retry.attempts:
            return f"gave up after {attempt - 1} reconnects: {exc}"
        suggested = 0.0
        if isinstance(exc, ThrottledError):
            suggested = exc.wait
            self.pace.slow_down()
            self.summary.throttled += 1
        else:
            self.summary.reconnects += 1
        wait = self.options.retry.wait(attempt - 1, suggested)
        event = "run.throttled" if isinstance(exc, ThrottledError) else "run.reconnecting"
        log.warning(event, folder=folder, attempt=attempt, wait=round(wait, 3), reason=str(exc))
        self._pause(wait)
        self._reopen()
        return None

    def _wait_out_cap(self, exc: ThrottledError) -> bool:
        """Pause for a provider's daily cap (Gmail's bandwidth limit lifts within 24 hours), then
        reconnect; False once the run has paused for ``retry.cap_max_pause`` in all."""
        policy = self.options.retry
        pause = max(policy.cap_pause, exc.wait)
        if self._capped + pause > policy.cap_max_pause:
            return False
        self._capped += pause
        self.summary.cap_pauses += 1
        self.summary.paused_seconds += pause
        self.progress.paused(str(exc), pause)
        log.warning("run.paused", seconds=pause, reason=str(exc))
        deadline = time.monotonic() + pause
        while (left := deadline - time.monotonic()) > 0:
            self._pause(min(left, PAUSE_SLICE))
            self.progress.advanced(0, 0)  # a batch's progress writer learns of stop requests here
        self._reopen()
        return True

    def _progress_mark(self) -> tuple[int, int, int]:
        s = self.summary
        return (s.messages_copied, s.messages_failed, s.flags_updated)

    def _pause(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            self._check_stop()

    def _reopen(self) -> None:
        """Fresh sessions on both sides; a failure here costs an attempt like any other."""
        assert self._reconnect is not None  # noqa: S101 - _retrying checked it
        close_sessions(self.source, self.target)
        try:
            self.source = self._reconnect.source()
            self._noting = isinstance(self.source, Noting)
            self.target = self._reconnect.target()
        except AuthError:
            raise
        except ConnectError:
            return  # the next attempt will fail fast and count

    # -- folders ------------------------------------------------------------------------------------
    def _sync_folder(
        self, mapping: FolderMapping, folders: queue.SimpleQueue[FolderMapping] | None = None
    ) -> None:
        """One folder's pass; ``folders``: the lane's queue, whose next folder the pass may
        take early (``_look_ahead``)."""
        uncreated = self._ledger.uncreated.get(mapping.target)
        if uncreated is not None:
            accounting.not_created(self.summary, mapping, uncreated, self.planner())
            return
        name = mapping.source.name
        work = self.planner().plan(mapping, dry_run=False)
        accounting.count_settled(
            self.summary, self._ledger, name, (work.settled, work.settled_bytes)
        )
        copied_before = self._ledger.copied[name]  # found again by this plan: not "there"
        messages, nbytes = (
            (work.expected, work.expected_bytes)
            if work.streamed
            else (len(work.copy), work.copy_bytes)
        )
        self.progress.folder_started(name, mapping.target, messages, nbytes)
        # Asked first: an event filtered out still costs ~10 µs, and this is every folder's.
        folder_log = log.bind(folder=name, target=mapping.target) if _INFO() else None
        if folder_log is not None:
            folder_log.info("folder.started", messages=messages, bytes=nbytes)
        copied, failed = self.summary.messages_copied, self.summary.messages_failed
        if not work.unchanged:  # else nothing to copy, carry or record (snapshot.py): no copy
            self._copy_pass(mapping, work, folders, copied_before)
        # Counted once the pass ends: a pass tried again after a reconnect counts them again.
        accounting.count_skips(self.summary, work, copied_before=copied_before)
        if not work.unchanged:
            self.planner().finish(mapping, work)
        self.progress.folder_finished(name)
        if folder_log is not None:
            folder_log.info(
                "folder.finished",
                copied=self.summary.messages_copied - copied,
                failed=self.summary.messages_failed - failed,
                existing=work.existing,
                flags_updated=len(work.updates),
            )

    def _copy_pass(
        self,
        mapping: FolderMapping,
        work: FolderWork,
        folders: queue.SimpleQueue[FolderMapping] | None,
        copied_before: int,
    ) -> None:
        """``work`` carried out by a copy on this lane's sessions (with other lanes, where they
        may join); what was left, if the target is full or the run stops, is counted."""
        name = mapping.source.name
        copy = self._copy_for(mapping, windows_ahead=self._windows_ahead(mapping))
        copy.after_part = lambda part: self._note(
            name, [m.uid for m in part.copy if m.uid not in copy.failures]
        )
        try:
            if (shared := self._shared_pass(mapping, work)) is not None:
                self._passes.add(shared)
                try:
                    copy_shared(shared, copy, self._opened_helpers(mapping, shared))
                finally:
                    self._passes.remove(shared)
                copy.finish(work)
            else:
                if folders is not None:
                    copy.source_idle = functools.partial(self._look_ahead, folders)
                copy.run(work)
        except (TargetFullError, StopRequestedError) as exc:
            accounting.count_skips(self.summary, work, copied_before=copied_before)
            if isinstance(exc, TargetFullError) or self._ledger.full:
                self._ledger.full = True
                self._ledger.done.add(name)
                left = work.left(copy.copied + len(copy.failures))
                accounting.remaining(self.summary, name, left)
            raise

    def _shared_pass(self, mapping: FolderMapping, work: FolderWork) -> SharedPass | None:
        """A first pass over many windows that other lanes may join (folderlanes.py), where
        each window may be planned ahead and the run may open sessions."""
        if not self.options.share_big_folders or self.options.connections < 2:
            return None
        if work.spans is None or work.spans.left < MIN_WINDOWS or self._reconnect is None:
            return None
        record = self._snapshot.records.get(mapping.source.name)
        first_pass = record is None or not record.checkpoint.complete
        return SharedPass(work) if first_pass and self._windows_ahead(mapping) else None

    def _opened_helpers(
        self, mapping: FolderMapping, shared: SharedPass
    ) -> list[Callable[[], None]]:
        """Lanes opened for this pass alone, when the run has sessions to spare (one lane)."""
        spans = shared.work.spans
        wanted = min(self._free_sessions, spans.left if spans is not None else 0)
        helpers: list[Callable[[], None]] = []
        for lane in self._open_lanes(wanted + 1)[1:] if wanted else []:
            if not shared.join():
                close_sessions(lane.source, lane.target)
                break
            copy = lane._copy_for(mapping)

            def run(lane: Migration = lane, copy: FolderCopy = copy) -> None:
                try:
                    shared.help(copy, lane.planner(), lane.summary)
                finally:
                    close_sessions(lane.source, lane.target)

            helpers.append(run)
        if helpers:
            log.info("folder.lanes", folder=mapping.source.name, opened=len(helpers))
        return helpers

    def _help_others(self) -> None:
        """No folder left for this lane: copy windows of other lanes' big passes while any is
        open (folderlanes.py); a failure on this lane's sessions ends its help."""
        while (shared := self._passes.wait_to_join(self._stop)) is not None:
            mapping = shared.work.mapping
            log.info("folder.joined", folder=mapping.source.name)
            if shared.help(self._copy_for(mapping), self.planner(), None) is not None:
                return

    def _copy_for(self, mapping: FolderMapping, *, windows_ahead: bool = True) -> FolderCopy:
        """A copy of ``mapping``'s pass (or of windows of another lane's) on this lane's
        sessions."""
        return FolderCopy(
            self.source,
            self.target,
            self.store,
            self.pair,
            mapping,
            self.options.selection,
            self.summary,
            self.progress,
            self.pace,
            self._check_stop,
            batch_bytes=self.options.batch_bytes,
            keep_labels=self.options.labels is not None,
            windows_ahead=windows_ahead,
            on_copied=functools.partial(self._ledger.add_copied, mapping.source.name),
            server_faults=self._ledger.server_faults,
        )

    def _windows_ahead(self, mapping: FolderMapping) -> bool:
        """Whether the next window may be planned while this one is copied (``FolderCopy``)."""
        labels = self.options.labels
        dedupes = labels is not None and labels.dedupes(mapping)
        return not dedupes and not self._noting

    def _note(self, folder: str, copied: list[int]) -> None:
        """What a file source says of the messages it handed out (rebuilt, dated from the last
        resort): counted per folder and reason in the summary (``Noting``)."""
        if copied and self._noting and isinstance(self.source, Noting):  # mypy's narrowing
            for reason, count in self.source.notes(folder, copied).items():
                self.summary.note(folder, reason, count)
                log.info("folder.noted", folder=folder, reason=reason, messages=count)

    def _settle(self, mapping: FolderMapping) -> None:
        found = self.planner().settle(mapping)
        accounting.count_settled(self.summary, self._ledger, mapping.source.name, found)

    def _fail(self, folder: str, uid: int | None, reason: str) -> None:
        record_failure(self.summary, folder, uid, reason)


def _exists(status: FolderStatus | None) -> int:
    return 0 if status is None else status.exists


def _counters(summary: Summary) -> dict[str, object]:
    """The run's numbers for ``run.finished`` (the lists stay in the report)."""
    lists = ("failures", "renames", "warnings")
    return {k: v for k, v in summary.as_json().items() if k not in lists} | {
        "warnings": len(summary.warnings)
    }


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"
