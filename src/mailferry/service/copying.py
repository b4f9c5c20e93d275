"""The copy phase of one folder pass: flag updates, then bursts of messages, each burst
fetch -> intents committed -> pipelined APPENDs -> results committed (see migrate.py for why).

A ``FolderCopy`` lives for one attempt at one folder, on the sessions the run has at that moment;
a dropped connection ends it (the run reconnects and plans the folder again from the state).
A streamed pass hands it one window of the folder at a time (``FolderWork.parts``).

Why one module of 400+ lines: the read-ahead of bursts, the pipelined APPENDs and the recording of
their answers share one burst's life (intents before it is sent, rows after its answers, what is
settled when it fails half-way); split apart they would pass the same in-flight state around.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from mailferry.domain.errors import (
    MailferryError,
    MessageError,
    TargetFailingError,
    TargetFullError,
    ThrottledError,
)
from mailferry.domain.folders import FolderMapping
from mailferry.domain.identity import epoch
from mailferry.domain.model import (
    AppendRequest,
    AppendResult,
    Failure,
    FetchedMessage,
    FolderStatus,
    MessageMeta,
    Summary,
)
from mailferry.domain.plan import FlagUpdate, Selection, batches, target_flags
from mailferry.domain.ports import (
    AppendPipelining,
    BodiesAhead,
    Copied,
    Intent,
    MailAccount,
    StateStore,
)
from mailferry.domain.responses import slow_down, target_full
from mailferry.logs import get_logger
from mailferry.service.folderwork import FolderWork
from mailferry.service.planning import intent_key
from mailferry.service.prefetch import Prefetch
from mailferry.service.progress import Progress
from mailferry.service.resilience import Pace, ServerFaults

log = get_logger("mailferry.copy")


def record_failure(summary: Summary, folder: str, uid: int | None, reason: str) -> None:
    """A failure for the report: of one message (``uid``), else of a folder or the run."""
    summary.failures.append(Failure(folder, uid, reason))
    if uid is not None:
        summary.messages_failed += 1
        log.warning("message.failed", folder=folder, uid=uid, reason=reason)
    else:
        log.error("folder.failed", folder=folder, reason=reason)


@dataclass
class FolderCopy:
    source: MailAccount
    target: MailAccount
    store: StateStore
    pair: str
    mapping: FolderMapping
    selection: Selection
    summary: Summary
    progress: Progress
    pace: Pace
    check_stop: Callable[[], None]  # raises StopRequestedError between bursts
    batch_bytes: int = 16 << 20
    keep_labels: bool = False  # record each copy's label key (a source whose folders are labels)
    after_part: Callable[[FolderWork], None] | None = None  # called as each window's copy ends
    # Called on the reading thread once the pass's last burst is read (with ``windows_ahead``):
    # the source is idle from then on, while the last APPENDs are answered and recorded.
    source_idle: Callable[[], None] | None = None
    # Told how many messages each commit records as copied (the run's ``Ledger``).
    on_copied: Callable[[int], None] | None = None
    server_faults: ServerFaults | None = None  # the run's, shared by its lanes
    failures: dict[int, str] = field(default_factory=dict)  # uid -> reason, this pass
    copied: int = 0  # messages copied in this pass
    refused: set[str] = field(default_factory=set)  # keywords the target folder refuses
    target_uidvalidity: int | None = None  # as the APPENDs reported it, when it moved
    # The target folder's UIDVALIDITY and a UIDNEXT at or below the next APPEND's UID: planning's
    # STATUS, then learnt from APPENDUID (None: ask STATUS).
    known_target: FolderStatus | None = None
    # Whether ``known_target`` is still a lower bound once the burst in flight is stored: see
    # ``_write``. So it is at the start (a STATUS); APPENDUIDs say whether it still is after.
    pipelining: bool = True
    permanent: frozenset[str] | None = None  # the target folder's PERMANENTFLAGS, once read
    # Plan a streamed pass's next window while this one is written (on the reading thread).
    # Only where the writer's thread uses neither the source nor anything the next window's plan
    # reads: not where a window's plan counts the copies of the one before (labels), nor for a
    # source asked for notes as each window ends (files).
    windows_ahead: bool = False
    _in_flight: _Sent | None = field(default=None, init=False)  # written, answers not read yet
    _windows: int = field(default=0, init=False)  # windows (or the one plan) taken so far

    def run(self, work: FolderWork) -> None:
        """Carry flag changes, copy ``work.copy`` in bursts, record this pass's failures."""
        if work.unchanged:  # nothing to do, and no failure recorded to clear (snapshot.py)
            return
        self.copy_parts(work, work.parts())
        self.finish(work)

    def copy_parts(self, work: FolderWork, parts: Iterator[FolderWork]) -> None:
        """The copy of ``parts`` of ``work`` (all of it, or the windows one lane takes)."""
        # Planning's STATUS of the target is a lower bound of the UIDs to come (UIDNEXT only
        # grows): no STATUS of its own for the intents (``_target_status``).
        self.known_target = self.known_target or work.target_status
        if not work.streamed and not work.copy:  # flags at most: no reading thread for that
            self._apply_flag_updates(work.updates)
            if self.after_part is not None:
                self.after_part(work)
            return
        if self.windows_ahead:
            self._copy(parts, select=bool(work.copy or work.planned))
        else:  # each window planned once the one before is copied and recorded
            for part in parts:
                self._copy(iter([part]), select=bool(part.copy))
                del part  # a window is not kept alive while the next one is planned

    def merge(self, other: FolderCopy) -> None:
        """Take in what another lane's copy of the same pass did (``folderlanes.py``)."""
        self.failures.update(other.failures)
        self.refused |= other.refused
        self.copied += other.copied
        self.target_uidvalidity = other.target_uidvalidity or self.target_uidvalidity

    def finish(self, work: FolderWork) -> None:
        """The pass's end: refused keywords reported, its failures recorded (all lanes')."""
        name = self.mapping.source.name
        if self.refused:
            log.warning("keywords.refused", folder=name, keywords=sorted(self.refused))
            self.summary.warnings.append(
                f"folder {self.mapping.target!r} refuses keywords {sorted(self.refused)}; "
                "messages were copied without them"
            )
        self.store.set_failures(self.pair, name, self.failures)
        if self.target_uidvalidity is not None and work.target_status is not None:
            work.target_status = replace(work.target_status, uidvalidity=self.target_uidvalidity)

    def _copy(self, parts: Iterator[FolderWork], *, select: bool) -> None:
        """The parts' bursts read one ahead of the writing (``Prefetch``): while the target
        stores burst N, the source sends burst N+1, and the first burst is read while the target
        folder is selected. The reading thread also plans the windows of a streamed pass (the
        source and the state only): the next window is listed while this one's last burst is
        written. Where the target pipelines APPENDs, burst N+1 is written before the answers to
        burst N are read (``_write``); a window's last burst is answered and recorded before the
        next window starts (its flags, ``after_part``). Failures are recorded here, on the
        writer's thread, which owns the summary."""
        with Prefetch(self._read_parts(parts, last=self.windows_ahead), _Burst.close) as bursts:
            # SELECT the target only when there is something to copy (an up-to-date folder costs
            # two STATUS), and once a pass, not once a window.
            if select:
                self._select_target()
            try:
                for burst in bursts:
                    self._take(burst)
            except BaseException:  # the reader failed (the source), or the stop came
                sent, self._in_flight = self._in_flight, None
                self._settle_quietly(sent)
                raise

    def _select_target(self) -> frozenset[str]:
        """The target folder's PERMANENTFLAGS, and the intents' UIDNEXT if planning had none."""
        if self.permanent is None:
            self.permanent = self.target.permanent_flags(self.mapping.target)
        self._target_status()
        return self.permanent

    def _take(self, burst: _Burst) -> None:
        """One burst from the reader: its window's flags first, its APPENDs, and at the end of
        its window the answers to what is still in flight."""
        if burst.starts is not None:
            if self._windows:  # between windows, as between bursts
                self.check_stop()
            self._windows += 1
            self._apply_flag_updates(burst.starts.updates)
        if burst.by_uid or burst.too_big or burst.unreadable:
            permanent = self._select_target()
            # _write settles (or tries to) what it is given, whatever happens: handed over, it
            # is no longer in flight here (its answers must be read once only).
            before, self._in_flight = self._in_flight, None
            self._in_flight = self._write(burst, permanent, before)
        else:
            burst.close()
        if burst.ends is not None:
            sent, self._in_flight = self._in_flight, None
            if sent is not None:
                self._settle(sent)
            if self.after_part is not None:
                self.after_part(burst.ends)

    def _write(
        self, burst: _Burst, permanent: frozenset[str], before: _Sent | None
    ) -> _Sent | None:
        """Send ``burst``'s APPENDs (its intents committed first), then read the answers to the
        burst sent ``before``; returns the burst now in flight (None: nothing is).

        A burst goes out before the one ahead of it is answered when the UIDNEXT its intents
        name is known to be a lower bound of its UIDs (``pipelining``): a STATUS read before
        this pass's first APPEND (planning's, the run's start's, or ``_target_status``'s: a
        UIDNEXT only grows), then the APPENDUIDs of each burst. Else (a target without UIDPLUS,
        a UIDVALIDITY that moved) the answers come first and a STATUS is read again. Were the
        folder deleted and made again between the STATUS and the APPENDs, the intents in flight
        name the old UIDVALIDITY: a crash then leaves them stale, their messages are planned
        again, and the pass's checkpoint (of the old UIDVALIDITY too) has the folder matched
        by content first (planning.py), so what did land is found, not copied twice.
        """
        try:
            self.check_stop()
            for meta in burst.too_big:
                self._fail(meta.uid, self._too_big(meta.size))
            for uid, reason in burst.unreadable:
                self._fail(uid, f"source unreadable: {reason}")
            self._note_vanished(burst.by_uid, burst.fetched)
            if before is not None and not self.pipelining:
                waiting, before = before, None
                self._settle(waiting)
            if not burst.fetched:
                burst.close()
                return before
            requests, intents = self._requests(burst.fetched, burst.by_uid, permanent)
            self.store.add_intents(self.pair, self.mapping.source.name, intents)
            sent = _Sent(burst, intents, self._send(requests))
        except BaseException:
            burst.close()
            self._settle_quietly(before)
            raise
        if before is not None:
            try:
                self._settle(before)
            except BaseException:
                self._settle_quietly(sent)
                raise
        if not self.pipelining or not isinstance(self.target, AppendPipelining):
            self._settle(sent)
            return None
        return sent

    def _send(self, requests: Sequence[AppendRequest]) -> Callable[[], list[AppendResult]]:
        if isinstance(self.target, AppendPipelining):
            return self.target.send_batch(self.mapping.target, requests)
        results = self.target.append_batch(self.mapping.target, requests)
        return lambda: results

    def _settle(self, sent: _Sent) -> None:
        """Read the answers to ``sent`` and record them (rows after answers, always)."""
        try:
            self._record_results(sent.intents, sent.answers())
        finally:
            sent.burst.close()
        self.pace.went_well()

    def _settle_quietly(self, sent: _Sent | None) -> None:
        """On the way out of a failed burst: the answers to the one in flight, if the session
        still gives them; else its intents stay, and the next pass settles them (planning.py)."""
        if sent is None:
            return
        try:
            self._settle(sent)
        except MailferryError:
            log.debug(
                "burst.unsettled", folder=self.mapping.source.name, messages=len(sent.intents)
            )

    def _too_big(self, size: int) -> str:
        return (
            f"{size} bytes is over the target's limit of {self.target.append_limit} bytes "
            "(its APPENDLIMIT, or its provider profile's largest message)"
        )

    def _read_parts(self, parts: Iterator[FolderWork], *, last: bool) -> Iterator[_Burst]:
        """Each part's bursts, its first marked ``starts`` and its last ``ends`` (a part with
        nothing to copy is one empty burst, both); on the reading thread, parts planned there.
        ``last``: these are the pass's last parts (``source_idle`` is called after them)."""
        for part in parts:
            empty = True
            for burst in self._read_bursts(part.copy):
                burst.starts, empty = (part if empty else None), False
                burst.ends = part if burst.last else None
                yield burst
            if empty:
                yield _Burst({}, starts=part, ends=part)
            del part  # not kept alive while the next window is planned
        if last and self.source_idle is not None:
            self.source_idle()

    def _read_bursts(self, messages: Sequence[MessageMeta]) -> Iterator[_Burst]:
        """The bursts, each fetched whole from the source (on the reading thread). Where the
        source can be asked ahead (``BodiesAhead``), the next burst's bodies are asked for
        before this burst's are read: no round trip between two bursts."""
        name = self.mapping.source.name
        ahead = self.source if isinstance(self.source, BodiesAhead) else None
        split = self._split(self._bursts(messages))
        following = next(split, None)
        asked = False  # whether this burst's bodies were asked for already
        while following is not None:
            (burst, sendable), following = following, next(split, None)
            if ahead is not None:
                asked = _ask_ahead(ahead, name, sendable, asked, following)
            if sendable:
                try:
                    for message in self.source.fetch_messages(name, sendable):
                        if isinstance(message, MessageError):
                            burst.unreadable.append((message.uid, message.reason))
                            burst.by_uid.pop(message.uid, None)
                        else:
                            burst.fetched.append(message)
                except BaseException:
                    burst.close()
                    raise
            yield burst

    def _split(
        self, bursts: Iterator[tuple[list[MessageMeta], bool]]
    ) -> Iterator[tuple[_Burst, list[MessageMeta]]]:
        """Each burst, and those of its messages to fetch (not over the target's limit)."""
        limit = self.target.append_limit
        for metas, last in bursts:
            burst = _Burst({m.uid: m for m in metas}, last=last)
            sendable = []
            for meta in metas:
                if limit is not None and meta.size > limit:
                    burst.too_big.append(meta)
                    del burst.by_uid[meta.uid]
                else:
                    sendable.append(meta)
            yield burst, sendable

    def _fail(self, uid: int, reason: str) -> None:
        self.failures[uid] = reason
        record_failure(self.summary, self.mapping.source.name, uid, reason)

    def _bursts(self, messages: Sequence[MessageMeta]) -> Iterator[tuple[list[MessageMeta], bool]]:
        """Bursts sized by the current pace (which throttling lowers), bounded in bytes: a third
        of ``batch_bytes`` each, as three are alive at once (one read ahead, one being written,
        one written and waiting for its answers), so the bytes in memory stay within it. (The
        burst whose bodies are asked ahead waits in the socket, not here; only rows a server
        interleaves with the burst being read are held early, bodies.py.) Each with whether it
        is the last."""
        start = 0
        third = max(1, self.batch_bytes // 3)
        while start < len(messages):
            chunk = messages[start : start + self.pace.current]
            first = batches(chunk, max_count=self.pace.current, max_bytes=third)[0]
            start += len(first)
            yield first, start >= len(messages)

    def _apply_flag_updates(self, updates: Sequence[FlagUpdate]) -> None:
        if not updates:
            return
        self.target.store_flags(self.mapping.target, [(u.target_uid, u.flags) for u in updates])
        self.store.update_flags(
            self.pair, self.mapping.source.name, {u.source_uid: u.flags for u in updates}
        )
        self.summary.flags_updated += len(updates)
        log.debug("flags.updated", folder=self.mapping.source.name, messages=len(updates))

    def _requests(
        self,
        fetched: Sequence[FetchedMessage],
        by_uid: dict[int, MessageMeta],
        permanent: frozenset[str],
    ) -> tuple[list[AppendRequest], list[Intent]]:
        """The APPENDs of a burst, and the intents to commit before they are sent."""
        tgt = self._target_status()
        requests = []
        intents = []
        for message in fetched:
            meta = by_uid[message.uid]
            flags, dropped = target_flags(meta.flags, permanent, self.selection)
            self.refused.update(dropped)
            requests.append(
                AppendRequest(message.uid, message.body, message.size, flags, meta.internaldate)
            )
            intent = Intent(
                message.uid,
                message.sha256,
                message.size,
                flags,
                self.mapping.target,
                tgt.uidvalidity,
                tgt.uidnext,
                meta.message_id,
                epoch(meta.internaldate),
            )
            if self.keep_labels:
                intent = replace(intent, label=intent_key(intent))
            intents.append(intent)
        return requests, intents

    def _target_status(self) -> FolderStatus:
        """The intents' UIDVALIDITY and UIDNEXT without a STATUS round trip per burst.

        What an intent's UIDNEXT must be: at or below the UID its APPEND gets, so that settling
        after a crash looks at every message that may be its copy (planning.py reads the target
        from the lowest UIDNEXT of the intents in flight, and leaves out the UIDs that rows of
        this pass own already). One past the highest UID the last burst's APPENDUIDs reported is
        that; without APPENDUID for each message of it (no UIDPLUS), STATUS is asked again.
        """
        if self.known_target is None:
            self.known_target = self.target.status(self.mapping.target)
        return self.known_target

    def _learn_uidnext(self, results: Sequence[AppendResult]) -> None:
        stored = [r for r in results if r.ok]
        known = self.known_target
        if known is None or not stored or any(r.target_uid is None for r in stored):
            self.known_target = None
            self.pipelining = False
            return
        uids = [r.target_uid for r in stored if r.target_uid is not None]
        validity = [r.target_uidvalidity for r in stored if r.target_uidvalidity]
        self.known_target = replace(
            known,
            uidnext=max([known.uidnext, *(uid + 1 for uid in uids)]),
            uidvalidity=validity[-1] if validity else known.uidvalidity,
        )
        self.pipelining = bool(validity) and validity[-1] == known.uidvalidity

    def _record_results(self, intents: Sequence[Intent], results: Iterable[AppendResult]) -> None:
        results = list(results)
        self._learn_uidnext(results)
        by_uid = {i.source_uid: i for i in intents}
        confirmed: list[Copied] = []
        dropped: list[int] = []
        copied_bytes = 0
        throttled: ThrottledError | None = None
        full: str | None = None
        for result in results:
            uid = result.key
            intent = by_uid[uid]
            if result.ok:
                confirmed.append(Copied(uid, result.target_uid, intent.flags, intent.label))
                copied_bytes += intent.size
                self.failures.pop(uid, None)
                continue
            dropped.append(uid)
            asked = slow_down(
                result.reason, f"the target asks to slow down ({self.mapping.target})"
            )
            if asked is not None:  # not the message's fault: it goes again after a pause
                throttled = _stronger(throttled, asked)
            elif target_full(result.reason):
                full = result.reason
            else:
                self._fail(uid, f"target refused the message: {result.reason}")
        self._commit(confirmed, dropped, copied_bytes)
        # Only after the intents are settled: a checkpoint that names the new UIDVALIDITY beside
        # intents that name the old one would read them as stale after a crash, and send them again.
        self._note_uidvalidity(intents, results)
        if full is not None:
            raise TargetFullError(
                f"the target mailbox is full ({full}); raise its quota and run again: "
                "what was copied stays, nothing is copied twice"
            )
        faults = self.server_faults
        if faults is not None and (failing := faults.note(results)) is not None:
            raise TargetFailingError(
                f"the target refused {faults.limit} messages in a row by a fault of "
                f"its own ({failing}); its log says why (a full disk, on Dovecot). Run again "
                "once it is mended: what was copied stays, nothing is copied twice, and the "
                "messages it refused are sent again"
            )
        if throttled is not None:
            raise throttled

    def _note_uidvalidity(self, intents: Sequence[Intent], results: Sequence[AppendResult]) -> None:
        """Keep the UIDVALIDITY the APPENDs report, where it differs from the one on record.

        A fresh Courier folder changes its UIDVALIDITY on every STATUS until the first message is
        stored (it is the time, in seconds); the value APPENDUID gives is the one that lasts. The
        folder's checkpoint (and so the next run) must hold that one, or the folder would be taken
        for a new one. It is compared with the checkpoint, not with the intents: a STATUS read in
        the same second as the APPEND agrees with it, while planning's, a second earlier, did not.
        """
        reported = [r.target_uidvalidity for r in results if r.ok and r.target_uidvalidity]
        if not reported or not intents:
            return
        self.target_uidvalidity = reported[-1]  # what the pass's checkpoint records (run())
        name = self.mapping.source.name
        checkpoint = self.store.checkpoint(self.pair, name)
        if (
            checkpoint is not None
            and checkpoint.target_folder == self.mapping.target
            and checkpoint.target_uidvalidity != reported[-1]
        ):
            self.store.save_checkpoint(
                self.pair, replace(checkpoint, target_uidvalidity=reported[-1])
            )

    def _commit(self, confirmed: list[Copied], dropped: list[int], copied_bytes: int) -> None:
        name = self.mapping.source.name
        self.store.resolve(self.pair, name, confirmed, dropped)
        self.copied += len(confirmed)
        self.summary.messages_copied += len(confirmed)
        if self.on_copied is not None:
            self.on_copied(len(confirmed))
        self.summary.bytes_copied += copied_bytes
        self.progress.advanced(len(confirmed) + len(dropped), copied_bytes)
        self.progress.folder_advanced(name, len(confirmed) + len(dropped))
        if log.isEnabledFor(logging.DEBUG):
            for copied in confirmed:
                log.debug(
                    "message.copied",
                    folder=name,
                    uid=copied.source_uid,
                    target_uid=copied.target_uid,
                )
            log.debug("burst.committed", folder=name, copied=len(confirmed), dropped=len(dropped))

    def _note_vanished(
        self, by_uid: dict[int, MessageMeta], fetched: Sequence[FetchedMessage]
    ) -> None:
        gone = by_uid.keys() - {m.uid for m in fetched}
        for uid in sorted(gone):
            log.warning("message.vanished", folder=self.mapping.source.name, uid=uid)
            self.summary.warnings.append(
                f"folder {self.mapping.source.name!r} uid {uid}: expunged on the source during "
                "the run; not copied"
            )


@dataclass
class _Sent:
    """A burst whose APPENDs are written and whose answers are not read yet."""

    burst: _Burst
    intents: list[Intent]
    answers: Callable[[], list[AppendResult]]


@dataclass
class _Burst:
    """One burst as read from the source: what to send, and what was left out and why."""

    by_uid: dict[int, MessageMeta]  # the burst's messages, but the too big and unreadable
    starts: FolderWork | None = None  # the first burst of this window (or plan): flags first
    ends: FolderWork | None = None  # the last burst of this window: answered before the next
    last: bool = False  # the last of its messages (``ends`` is set from it)
    fetched: list[FetchedMessage] = field(default_factory=list)
    too_big: list[MessageMeta] = field(default_factory=list)
    unreadable: list[tuple[int, str]] = field(default_factory=list)

    def close(self) -> None:
        for message in self.fetched:
            with contextlib.suppress(OSError):
                message.body.close()


def _ask_ahead(
    source: BodiesAhead,
    folder: str,
    this: list[MessageMeta],
    asked: bool,
    following: tuple[_Burst, list[MessageMeta]] | None,
) -> bool:
    """Ask for this burst's bodies (unless they were asked for), then for the following
    burst's, behind them on the wire; whether the following burst's were asked for."""
    if this and not asked and not source.send_bodies(folder, this):
        return False  # fetched as usual: nothing may be asked behind it
    return following is not None and bool(following[1]) and source.send_bodies(folder, following[1])


def _stronger(first: ThrottledError | None, second: ThrottledError) -> ThrottledError:
    """Of two slow-down answers in one burst, the one to obey: a daily cap, else the longer wait."""
    if first is None:
        return second
    return max(first, second, key=lambda e: (e.cap, e.wait))
