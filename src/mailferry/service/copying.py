"""The copy phase of one folder pass: flag updates, then bursts of messages, each burst
fetch -> intents committed -> pipelined APPENDs -> results committed (see migrate.py for why).

A ``FolderCopy`` lives for one attempt at one folder, on the sessions the run has at that moment;
a dropped connection ends it (the run reconnects and plans the folder again from the state).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from mailferry.domain.errors import MessageError, TargetFullError, ThrottledError
from mailferry.domain.folders import FolderMapping
from mailferry.domain.identity import epoch
from mailferry.domain.model import (
    AppendRequest,
    AppendResult,
    Failure,
    FetchedMessage,
    MessageMeta,
    Summary,
)
from mailferry.domain.plan import FlagUpdate, Selection, batches, target_flags
from mailferry.domain.ports import Copied, Intent, MailAccount, StateStore
from mailferry.domain.responses import slow_down, target_full
from mailferry.logs import get_logger
from mailferry.service.folderwork import FolderWork
from mailferry.service.planning import intent_key
from mailferry.service.progress import Progress
from mailferry.service.resilience import Pace

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
    failures: dict[int, str] = field(default_factory=dict)  # uid -> reason, this pass
    copied: int = 0  # messages copied in this pass
    refused: set[str] = field(default_factory=set)  # keywords the target folder refuses
    target_uidvalidity: int | None = None  # as the APPENDs reported it, when it moved

    def run(self, work: FolderWork) -> None:
        """Carry flag changes, copy ``work.copy`` in bursts, record this pass's failures."""
        if work.unchanged:  # nothing to do, and no failure recorded to clear (snapshot.py)
            return
        name = self.mapping.source.name
        permanent: frozenset[str] | None = None
        for n, part in enumerate(work.parts()):  # the plan, or a streamed pass's windows
            if n:  # between windows, as between bursts
                self.check_stop()
            self._apply_flag_updates(part.updates)
            # SELECT the target only when there is something to copy: an up-to-date folder costs
            # two STATUS.
            if part.copy and permanent is None:
                permanent = self.target.permanent_flags(self.mapping.target)
            self._copy_messages(part.copy, permanent or frozenset())
            if self.after_part is not None:
                self.after_part(part)
            del part  # a window is not kept alive while the next one is planned
        if self.refused:
            log.warning("keywords.refused", folder=name, keywords=sorted(self.refused))
            self.summary.warnings.append(
                f"folder {self.mapping.target!r} refuses keywords {sorted(self.refused)}; "
                "messages were copied without them"
            )
        self.store.set_failures(self.pair, name, self.failures)
        if self.target_uidvalidity is not None and work.target_status is not None:
            work.target_status = replace(work.target_status, uidvalidity=self.target_uidvalidity)

    def _copy_messages(self, messages: Sequence[MessageMeta], permanent: frozenset[str]) -> None:
        limit = self.target.append_limit
        for burst in self._bursts(messages):
            self.check_stop()
            too_big = [m for m in burst if limit is not None and m.size > limit]
            for meta in too_big:
                self._fail(
                    meta.uid,
                    f"{meta.size} bytes is over the target's limit of {limit} bytes "
                    "(its APPENDLIMIT, or its provider profile's largest message)",
                )
            sendable = [m for m in burst if m not in too_big]
            if sendable:
                self._copy_burst(sendable, permanent)
                self.pace.went_well()

    def _fail(self, uid: int, reason: str) -> None:
        self.failures[uid] = reason
        record_failure(self.summary, self.mapping.source.name, uid, reason)

    def _bursts(self, messages: Sequence[MessageMeta]) -> Iterator[list[MessageMeta]]:
        """Bursts sized by the current pace (which throttling lowers), bounded in bytes."""
        start = 0
        while start < len(messages):
            chunk = messages[start : start + self.pace.current]
            first = batches(chunk, max_count=self.pace.current, max_bytes=self.batch_bytes)[0]
            yield first
            start += len(first)

    def _apply_flag_updates(self, updates: Sequence[FlagUpdate]) -> None:
        if not updates:
            return
        self.target.store_flags(self.mapping.target, [(u.target_uid, u.flags) for u in updates])
        self.store.update_flags(
            self.pair, self.mapping.source.name, {u.source_uid: u.flags for u in updates}
        )
        self.summary.flags_updated += len(updates)
        log.debug("flags.updated", folder=self.mapping.source.name, messages=len(updates))

    def _copy_burst(self, metas: Sequence[MessageMeta], permanent: frozenset[str]) -> None:
        name = self.mapping.source.name
        by_uid = {m.uid: m for m in metas}
        fetched: list[FetchedMessage] = []
        for message in self.source.fetch_messages(name, metas):
            if isinstance(message, MessageError):
                self._fail(message.uid, f"source unreadable: {message.reason}")
                by_uid.pop(message.uid, None)
            else:
                fetched.append(message)
        try:
            self._note_vanished(by_uid, fetched)
            if not fetched:
                return
            requests, intents = self._requests(fetched, by_uid, permanent)
            self.store.add_intents(self.pair, name, intents)
            results = self.target.append_batch(self.mapping.target, requests)
            self._record_results(intents, results)
        finally:
            for message in fetched:
                with contextlib.suppress(OSError):
                    message.body.close()

    def _requests(
        self,
        fetched: Sequence[FetchedMessage],
        by_uid: dict[int, MessageMeta],
        permanent: frozenset[str],
    ) -> tuple[list[AppendRequest], list[Intent]]:
        """The APPENDs of a burst, and the intents to commit before they are sent."""
        tgt = self.target.status(self.mapping.target)
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

    def _record_results(self, intents: Sequence[Intent], results: Iterable[AppendResult]) -> None:
        results = list(results)
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
        if throttled is not None:
            raise throttled

    def _note_uidvalidity(self, intents: Sequence[Intent], results: Sequence[AppendResult]) -> None:
        """Keep the UIDVALIDITY the APPENDs report, where it differs from the STATUS read before.

        A fresh Courier folder changes its UIDVALIDITY on every STATUS until the first message is
        stored; the value APPENDUID gives is the one that lasts. The folder's checkpoint (and so
        the next run) must hold that one, or the folder would be taken for a new one.
        """
        reported = [r.target_uidvalidity for r in results if r.ok and r.target_uidvalidity]
        if not reported or not intents or intents[0].target_uidvalidity == reported[-1]:
            return
        self.target_uidvalidity = reported[-1]
        name = self.mapping.source.name
        checkpoint = self.store.checkpoint(self.pair, name)
        if checkpoint is not None and checkpoint.target_folder == self.mapping.target:
            self.store.save_checkpoint(
                self.pair, replace(checkpoint, target_uidvalidity=reported[-1])
            )

    def _commit(self, confirmed: list[Copied], dropped: list[int], copied_bytes: int) -> None:
        name = self.mapping.source.name
        self.store.resolve(self.pair, name, confirmed, dropped)
        self.copied += len(confirmed)
        self.summary.messages_copied += len(confirmed)
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


def _stronger(first: ThrottledError | None, second: ThrottledError) -> ThrottledError:
    """Of two slow-down answers in one burst, the one to obey: a daily cap, else the longer wait."""
    if first is None:
        return second
    return max(first, second, key=lambda e: (e.cap, e.wait))
