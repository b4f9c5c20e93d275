"""Migrate one pair of accounts: snapshot -> plan -> execute -> record, folder by folder.

The no-duplicate guarantee rests on three rules:
1. Before an APPEND is sent, an *intent* (source UID, content hash, size, the target folder's UIDNEXT) is
   committed to the state store. After a crash, pending intents are reconciled against what actually arrived
   on the target at or above that UIDNEXT; only intents that did not land are copied again.
2. A folder without usable state (first run, lost database, UIDVALIDITY changed on either side) is matched
   against the target by message identity (Message-ID + INTERNALDATE + size, else SHA-256), as multisets.
3. A checkpoint is written when a folder pass starts (marking it incomplete) and again when it ends; an
   incomplete pass is finished from the per-message rows, never from scratch.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from mailferry.domain.errors import (
    AuthError,
    ConnectError,
    FolderError,
    MailferryError,
    StopRequestedError,
    TargetFullError,
    ThrottledError,
)
from mailferry.domain.folders import FolderMapping, FolderPlan, MappingOptions, map_folders
from mailferry.domain.model import (
    AppendRequest,
    AppendResult,
    Failure,
    FetchedMessage,
    FolderInfo,
    FolderStatus,
    MessageMeta,
    Summary,
)
from mailferry.domain.plan import (
    FlagUpdate,
    Selection,
    batches,
    choose,
    flag_updates,
    match_existing,
    reconcile_intents,
    target_flags,
    uncopied,
)
from mailferry.domain.ports import Checkpoint, Copied, Intent, MailAccount, StateStore
from mailferry.domain.responses import target_full, throttle_delay
from mailferry.service.progress import NoProgress, Progress
from mailferry.service.resilience import Pace, Reconnect, RetryPolicy


@dataclass(frozen=True)
class SyncOptions:
    mapping: MappingOptions = field(default_factory=MappingOptions)
    selection: Selection = field(default_factory=Selection)
    dry_run: bool = False
    batch_count: int = 200
    batch_bytes: int = 16 << 20
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class FolderWork:
    """What one folder pass will do (the plan), and what --dry-run prints."""

    mapping: FolderMapping
    source_status: FolderStatus
    target_status: (
        FolderStatus | None
    )  # None in a dry run when the target folder does not exist yet
    copy: list[MessageMeta] = field(default_factory=list)
    updates: list[FlagUpdate] = field(default_factory=list)
    existing: int = 0
    skipped_deleted: int = 0
    skipped_filtered: int = 0

    @property
    def copy_bytes(self) -> int:
        return sum(m.size for m in self.copy)


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

    # -- entry points -------------------------------------------------------------------------------
    def folder_plan(self) -> FolderPlan:
        if self._folder_plan is None:
            self._folder_plan = plan_folders(
                self.source, self.target, self.options.mapping, self.store, self.pair
            )
        return self._folder_plan

    def plan(self) -> list[FolderWork]:
        """The dry run: what a run would do, folder by folder. Writes nothing anywhere."""
        works = []
        for mapping in self.folder_plan().mappings:
            try:
                works.append(self._plan_folder(mapping, dry_run=True))
            except FolderError as exc:
                self._fail(mapping.source.name, None, exc.reason)
        return works

    def run(self) -> Summary:
        """Every folder, each retried within the budget; a full target or a stop request ends early."""
        started = time.monotonic()
        try:
            self._retrying(None, self._start)
            for mapping in self.folder_plan().mappings:
                self._check_stop()
                self._retrying(mapping.source.name, functools.partial(self._sync_folder, mapping))
                self.summary.folders += 1
        except TargetFullError as exc:
            self._fail("*", None, str(exc))
            self.summary.stopped = str(exc)
        except StopRequestedError as exc:
            self.summary.stopped = str(exc)
        finally:
            self.summary.seconds = time.monotonic() - started
        return self.summary

    def _start(self) -> None:
        self._folder_plan = None
        plan = self.folder_plan()
        self.summary.renames = [
            (m.source.name, m.target, m.rename_reason) for m in plan.mappings if m.rename_reason
        ]
        self._prepare_target(plan)

    def request_stop(self, why: str = "stop requested") -> None:
        """Finish the burst in flight, save state, and return (safe from a signal handler)."""
        self._stop_reason = why
        self._stop.set()

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise StopRequestedError(getattr(self, "_stop_reason", "stop requested"))

    def _retrying(self, folder: str | None, work: Callable[[], None]) -> None:
        """Run ``work``; on a lost connection or a throttle, back off, reconnect and run it again.

        ``folder`` None means the run's start (listing, creating folders): when its budget is spent the
        run cannot go on and the error propagates. A folder's spent budget is reported and the run goes on.
        """
        policy = self.options.retry
        attempt = 0
        while True:
            try:
                work()
            except FolderError as exc:
                if folder is None:
                    raise
                self._fail(folder, None, exc.reason)
                return
            except ConnectError as exc:
                if self._reconnect is None or isinstance(exc, AuthError):
                    raise
                attempt += 1
                if attempt > policy.attempts:
                    if folder is None:
                        raise
                    self._fail(folder, None, f"gave up after {policy.attempts} reconnects: {exc}")
                    return
                suggested = exc.wait if isinstance(exc, ThrottledError) else 0.0
                if isinstance(exc, ThrottledError):
                    self.pace.slow_down()
                    self.summary.throttled += 1
                else:
                    self.summary.reconnects += 1
                self._pause(policy.wait(attempt - 1, suggested))
                self._reopen()
            else:
                return

    def _pause(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            self._check_stop()

    def _reopen(self) -> None:
        """Fresh sessions on both sides; a failure here costs an attempt like any other."""
        assert self._reconnect is not None  # noqa: S101 - _retrying checked it
        for account in (self.source, self.target):
            with contextlib.suppress(MailferryError):
                account.close()
        try:
            self.source = self._reconnect.source()
            self.target = self._reconnect.target()
        except AuthError:
            raise
        except ConnectError:
            return  # the next attempt will fail fast and count

    # -- folders ------------------------------------------------------------------------------------
    def _prepare_target(self, plan: FolderPlan) -> None:
        for name in plan.create:
            try:
                self.target.create_folder(name)
            except FolderError as exc:
                self._fail(name, None, f"cannot create folder: {exc.reason}")
        for name in plan.subscribe:
            try:
                self.target.subscribe(name)
            except FolderError as exc:
                self.summary.warnings.append(f"cannot subscribe {name!r}: {exc.reason}")

    def _sync_folder(self, mapping: FolderMapping) -> None:
        work = self._plan_folder(mapping, dry_run=False)
        self.progress.folder_started(
            mapping.source.name, mapping.target, len(work.copy), work.copy_bytes
        )
        self._apply_flag_updates(mapping, work.updates)
        permanent = self.target.permanent_flags(mapping.target)
        failures: dict[int, str] = {}
        refused: set[str] = set()
        limit = self.target.append_limit
        for batch in self._bursts(work.copy):
            self._check_stop()
            too_big = [m for m in batch if limit is not None and m.size > limit]
            for meta in too_big:
                reason = f"{meta.size} bytes is over the target's APPENDLIMIT of {limit} bytes"
                failures[meta.uid] = reason
                self._fail(mapping.source.name, meta.uid, reason)
            sendable = [m for m in batch if m not in too_big]
            if sendable:
                self._copy_batch(mapping, sendable, permanent, failures, refused)
                self.pace.went_well()
        if refused:
            self.summary.warnings.append(
                f"folder {mapping.target!r} refuses keywords {sorted(refused)}; "
                "messages were copied without them"
            )
        self.store.set_failures(self.pair, mapping.source.name, failures)
        self._finish_checkpoint(mapping, work)
        self.progress.folder_finished(mapping.source.name)

    def _bursts(self, messages: Sequence[MessageMeta]) -> Iterator[list[MessageMeta]]:
        """Bursts sized by the current pace (which throttling lowers), bounded in bytes."""
        start = 0
        while start < len(messages):
            chunk = messages[start : start + self.pace.current]
            first = batches(chunk, max_count=self.pace.current, max_bytes=self.options.batch_bytes)[
                0
            ]
            yield first
            start += len(first)

    def _plan_folder(self, mapping: FolderMapping, *, dry_run: bool) -> FolderWork:
        name = mapping.source.name
        src = self.source.status(name)
        tgt = self._target_status(mapping.target, dry_run=dry_run)
        checkpoint = self.store.checkpoint(self.pair, name)
        if (
            checkpoint is not None
            and tgt is not None
            and _still_valid(checkpoint, mapping, src, tgt)
        ):
            if not dry_run:
                self._reconcile_intents(mapping, tgt)
            work = self._plan_incremental(mapping, src, tgt, checkpoint)
        else:
            if not dry_run and tgt is not None:
                # Start clean, and mark the pass as started before anything is recorded: a crash from
                # here on resumes from the per-message rows instead of matching them a second time.
                self.store.reset_folder(self.pair, name)
                self.store.save_checkpoint(
                    self.pair,
                    Checkpoint(name, mapping.target, src.uidvalidity, 0, None, tgt.uidvalidity, ""),
                )
            work = self._plan_fresh(mapping, src, tgt, dry_run=dry_run)
        self.summary.messages_skipped_existing += work.existing
        self.summary.messages_skipped_deleted += work.skipped_deleted
        self.summary.messages_skipped_filtered += work.skipped_filtered
        return work

    def _target_status(self, folder: str, *, dry_run: bool) -> FolderStatus | None:
        try:
            return self.target.status(folder)
        except FolderError:
            if dry_run:  # the folder would be created by a real run
                return None
            raise

    def _finish_checkpoint(self, mapping: FolderMapping, work: FolderWork) -> None:
        src, tgt = work.source_status, work.target_status
        if tgt is None:
            return
        self.store.save_checkpoint(
            self.pair,
            Checkpoint(
                mapping.source.name,
                mapping.target,
                src.uidvalidity,
                src.uidnext,
                src.highestmodseq,
                tgt.uidvalidity,
                self.options.selection.fingerprint(),
            ),
        )

    # -- planning -----------------------------------------------------------------------------------
    def _plan_fresh(
        self, mapping: FolderMapping, src: FolderStatus, tgt: FolderStatus | None, *, dry_run: bool
    ) -> FolderWork:
        """No usable state: match the source against what the target already holds."""
        name = mapping.source.name
        source = list(self.source.fetch_meta(name, message_ids=True))
        target: list[MessageMeta] = []
        if tgt is not None and tgt.exists:
            target = list(self.target.fetch_meta(mapping.target, message_ids=True))
        if target and any(m.message_id is None for m in source):
            source = self._with_hashes(self.source, name, source)
        if target and any(m.message_id is None for m in target):
            target = self._with_hashes(self.target, mapping.target, target)
        claimed = self._claimed_target_uids(mapping)
        pairs, unmatched = match_existing(source, target, claimed)
        existing = [Copied(s.uid, t.uid, t.flags) for s, t in pairs]
        if existing and not dry_run:
            self.store.add_copied(self.pair, name, existing)
        choice = choose(unmatched, self.options.selection)
        permanent = self._permanent(mapping.target, exists=tgt is not None)
        updates = flag_updates(
            {s.uid: s.flags for s, _ in pairs},
            {c.source_uid: c for c in existing},
            permanent,
            self.options.selection,
        )
        return FolderWork(
            mapping,
            src,
            tgt,
            copy=choice.copy,
            updates=updates,
            existing=len(pairs),
            skipped_deleted=len(choice.skipped_deleted),
            skipped_filtered=len(choice.skipped_filtered),
        )

    def _plan_incremental(
        self,
        mapping: FolderMapping,
        src: FolderStatus,
        tgt: FolderStatus,
        checkpoint: Checkpoint,
    ) -> FolderWork:
        """State is valid: look only at what changed since the last complete pass."""
        name = mapping.source.name
        selection = self.options.selection
        failed = self.store.failed_uids(self.pair, name)
        same_selection = checkpoint.selection == selection.fingerprint()
        if (
            same_selection
            and not failed
            and src.uidnext == checkpoint.source_uidnext
            and src.highestmodseq is not None
            and src.highestmodseq == checkpoint.source_modseq
        ):
            # Nothing changed since the last complete pass: STATUS was enough.
            return FolderWork(mapping, src, tgt, existing=self.store.count_copied(self.pair, name))
        if same_selection and self.source.condstore and checkpoint.source_modseq is not None:
            flags_now = dict(self.source.fetch_flags(name, changed_since=checkpoint.source_modseq))
            copied = self.store.copied(self.pair, name, set(flags_now) | failed)
            candidates = sorted(set(uncopied(flags_now, copied)) | (failed - copied.keys()))
            existing = max(src.exists - len(candidates), 0)
        else:
            flags_now = dict(self.source.fetch_flags(name))
            copied = self.store.copied(self.pair, name)
            candidates = uncopied(flags_now, copied)
            existing = len(flags_now.keys() & copied.keys())
        metas = list(self.source.fetch_meta(name, candidates)) if candidates else []
        choice = choose(metas, selection)
        updates = flag_updates(
            flags_now, copied, self._permanent(mapping.target, exists=True), selection
        )
        return FolderWork(
            mapping,
            src,
            tgt,
            copy=choice.copy,
            updates=updates,
            existing=existing,
            skipped_deleted=len(choice.skipped_deleted),
            skipped_filtered=len(choice.skipped_filtered),
        )

    def _permanent(self, folder: str, *, exists: bool) -> frozenset[str]:
        if not exists:
            return frozenset({"\\*"})
        return self.target.permanent_flags(folder)

    def _with_hashes(
        self, account: MailAccount, folder: str, metas: Sequence[MessageMeta]
    ) -> list[MessageMeta]:
        """Fill SHA-256 for messages without a Message-ID (the only identity they have)."""
        need = [m for m in metas if m.message_id is None]
        hashes = {}
        for fetched in account.fetch_messages(folder, need):
            hashes[fetched.uid] = fetched.sha256
            fetched.body.close()
        return [_replace_sha(m, hashes.get(m.uid)) if m.message_id is None else m for m in metas]

    def _claimed_target_uids(self, mapping: FolderMapping) -> set[int]:
        """Target UIDs already owned by source folders that share this target folder."""
        claimed: set[int] = set()
        for other in self.folder_plan().mappings:
            if other.target == mapping.target:
                claimed.update(
                    c.target_uid
                    for c in self.store.copied(self.pair, other.source.name).values()
                    if c.target_uid is not None
                )
        return claimed

    def _reconcile_intents(self, mapping: FolderMapping, tgt: FolderStatus) -> None:
        """Settle appends that were in flight when an earlier run stopped."""
        name = mapping.source.name
        intents = self.store.intents(self.pair, name)
        if not intents:
            return
        valid = [
            i
            for i in intents
            if i.target_folder == mapping.target and i.target_uidvalidity == tgt.uidvalidity
        ]
        stale = [i.source_uid for i in intents if i not in valid]
        landed: list[MessageMeta] = []
        if valid:
            low = min(i.target_uidnext for i in valid)
            sizes = {i.size for i in valid}
            if tgt.uidnext > low:
                arrived = self.target.fetch_meta(mapping.target, range(low, tgt.uidnext))
                landed = self._hashed(mapping.target, [m for m in arrived if m.size in sizes])
        confirmed, lost = reconcile_intents(valid, landed, self._claimed_target_uids(mapping))
        self.store.resolve(self.pair, name, confirmed, lost + stale)

    def _hashed(self, folder: str, metas: Sequence[MessageMeta]) -> list[MessageMeta]:
        hashes: dict[int, tuple[str, int]] = {}
        for fetched in self.target.fetch_messages(folder, metas):
            hashes[fetched.uid] = (fetched.sha256, fetched.size)
            fetched.body.close()
        return [
            MessageMeta(
                m.uid, m.flags, m.internaldate, hashes[m.uid][1], m.message_id, hashes[m.uid][0]
            )
            for m in metas
            if m.uid in hashes
        ]

    # -- execution ----------------------------------------------------------------------------------
    def _apply_flag_updates(self, mapping: FolderMapping, updates: Sequence[FlagUpdate]) -> None:
        if not updates:
            return
        self.target.store_flags(mapping.target, [(u.target_uid, u.flags) for u in updates])
        self.store.update_flags(
            self.pair, mapping.source.name, {u.source_uid: u.flags for u in updates}
        )
        self.summary.flags_updated += len(updates)

    def _copy_batch(
        self,
        mapping: FolderMapping,
        metas: Sequence[MessageMeta],
        permanent: frozenset[str],
        failures: dict[int, str],
        refused: set[str],
    ) -> None:
        name = mapping.source.name
        by_uid = {m.uid: m for m in metas}
        fetched = list(self.source.fetch_messages(name, metas))
        try:
            self._note_vanished(name, by_uid, fetched)
            if not fetched:
                return
            tgt = self.target.status(mapping.target)
            requests = []
            intents = []
            for message in fetched:
                meta = by_uid[message.uid]
                flags, dropped = target_flags(meta.flags, permanent, self.options.selection)
                refused.update(dropped)
                requests.append(
                    AppendRequest(message.uid, message.body, message.size, flags, meta.internaldate)
                )
                intents.append(
                    Intent(
                        message.uid,
                        message.sha256,
                        message.size,
                        flags,
                        mapping.target,
                        tgt.uidvalidity,
                        tgt.uidnext,
                    )
                )
            self.store.add_intents(self.pair, name, intents)
            results = self.target.append_batch(mapping.target, requests)
            self._record_results(mapping, intents, results, failures)
        finally:
            for message in fetched:
                with contextlib.suppress(OSError):
                    message.body.close()

    def _record_results(
        self,
        mapping: FolderMapping,
        intents: Sequence[Intent],
        results: Iterable[AppendResult],
        failures: dict[int, str],
    ) -> None:
        by_uid = {i.source_uid: i for i in intents}
        confirmed: list[Copied] = []
        dropped: list[int] = []
        copied_bytes = 0
        slow_down: float | None = None
        full: str | None = None
        for result in results:
            uid = result.key
            intent = by_uid[uid]
            if result.ok:
                confirmed.append(Copied(uid, result.target_uid, intent.flags))
                copied_bytes += intent.size
                failures.pop(uid, None)
                continue
            dropped.append(uid)
            wait = throttle_delay(result.reason)
            if wait is not None:  # not the message's fault: it goes again after a pause
                slow_down = max(slow_down or 0.0, wait)
            elif target_full(result.reason):
                full = result.reason
            else:
                reason = f"target refused the message: {result.reason}"
                failures[uid] = reason
                self._fail(mapping.source.name, uid, reason)
        self.store.resolve(self.pair, mapping.source.name, confirmed, dropped)
        self.summary.messages_copied += len(confirmed)
        self.summary.bytes_copied += copied_bytes
        self.progress.advanced(len(confirmed) + len(dropped), copied_bytes)
        if full is not None:
            raise TargetFullError(
                f"the target mailbox is full ({full}); raise its quota and run again: "
                "what was copied stays, nothing is copied twice"
            )
        if slow_down is not None:
            raise ThrottledError(f"the target asks to slow down ({mapping.target})", slow_down)

    def _note_vanished(
        self, folder: str, by_uid: dict[int, MessageMeta], fetched: Sequence[FetchedMessage]
    ) -> None:
        gone = by_uid.keys() - {m.uid for m in fetched}
        for uid in sorted(gone):
            self.summary.warnings.append(
                f"folder {folder!r} uid {uid}: expunged on the source during the run; not copied"
            )

    def _fail(self, folder: str, uid: int | None, reason: str) -> None:
        self.summary.failures.append(Failure(folder, uid, reason))
        if uid is not None:
            self.summary.messages_failed += 1


def plan_folders(
    source: MailAccount,
    target: MailAccount,
    mapping: MappingOptions,
    store: StateStore | None = None,
    pair: str = "",
) -> FolderPlan:
    """Map the folders, keeping each source folder where an earlier run put it.

    Mapping by role and name is a function of both folder lists, and the target's list changes once we
    have copied into it (a server may flag a new "Sent Messages" as \\Sent, say). Pinning each source folder
    to the target folder recorded in its checkpoint keeps every later run on the same folders. The user's
    own --map entries always win over pins.
    """
    source_folders = source.list_folders()
    target_folders = target.list_folders()
    if store is not None:
        mapping = _with_pins(mapping, store, pair, source_folders, target_folders)
    return map_folders(source_folders, target_folders, target.delimiter, mapping)


def _with_pins(
    mapping: MappingOptions,
    store: StateStore,
    pair: str,
    source_folders: Sequence[FolderInfo],
    target_folders: Sequence[FolderInfo],
) -> MappingOptions:
    existing = {f.name for f in target_folders if f.selectable}
    user = [src for src, _ in mapping.maps]
    pins = []
    for folder in source_folders:
        checkpoint = store.checkpoint(pair, folder.name)
        if checkpoint is None or checkpoint.target_folder not in existing:
            continue
        under_user_map = any(
            folder.name == src
            or (folder.delimiter and folder.name.startswith(src + folder.delimiter))
            for src in user
        )
        if not under_user_map:
            pins.append((folder.name, checkpoint.target_folder))
    return replace(mapping, maps=(*mapping.maps, *pins))


def _still_valid(
    checkpoint: Checkpoint, mapping: FolderMapping, src: FolderStatus, tgt: FolderStatus | None
) -> bool:
    return (
        checkpoint.source_uidvalidity == src.uidvalidity
        and checkpoint.target_folder == mapping.target
        and tgt is not None
        and checkpoint.target_uidvalidity == tgt.uidvalidity
    )


def _replace_sha(meta: MessageMeta, sha: str | None) -> MessageMeta:
    return MessageMeta(meta.uid, meta.flags, meta.internaldate, meta.size, meta.message_id, sha)
