"""Planning one folder pass: read both sides and the state, decide what to copy and which flags to set.

The decisions themselves are pure functions in ``domain/plan.py``; this module fetches their inputs
(snapshots of both folders, rows of the state store) and records what planning alone establishes
(messages found already on the target, a "pass started" checkpoint). A pass that writes is
planned window by window of source UIDs as it copies (``windows.py``): nothing it keeps grows with
the folder. So does a dry run, which writes nothing to the state: its matches after a lost state
go to a scratch file (``adapters/store/scratch.py``). Only a label source's dry run (Gmail's)
plans a folder whole.

Why one module of 400+ lines: the three ways a folder pass is planned (fresh with lost-state
matching, incremental, settling intents a crash left) share one planner and its state rows; split
apart they would pass the same seven collaborators around.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from itertools import chain
from typing import cast

from mailferry.adapters.store.scratch import ScratchCopies
from mailferry.domain.errors import FolderError, MessageError
from mailferry.domain.folders import FolderMapping, FolderPlan, MappingOptions, map_folders
from mailferry.domain.labels import LabelPolicy, label_key, meta_key, split_by_label
from mailferry.domain.model import FolderInfo, FolderStatus, MessageMeta
from mailferry.domain.plan import (
    Selection,
    choose,
    flag_updates,
    match_existing,
    reconcile_intents,
    uncopied,
)
from mailferry.domain.ports import (
    ChangeCounting,
    Checkpoint,
    Copied,
    FolderRecord,
    Intent,
    LateWrites,
    ListingAhead,
    MailAccount,
    StateStore,
    UidMarks,
)
from mailferry.service.folderwork import FolderWork
from mailferry.service.prefetch import both
from mailferry.service.snapshot import Snapshot
from mailferry.service.windows import (
    WINDOW,
    SharedSpans,
    Span,
    Windows,
    marked_spans,
    spans,
    sparse,
)

# Messages a folder may have, by the run's snapshot, for a first pass to list it in the round trip
# of its status (``ListingAhead``): its listing is one FETCH answer, held as one window would be.
LISTING_AHEAD = 1_000
SETTLE_LOOKS = 5  # looks again at a folder whose intents seem lost, while it keeps growing


def lists_ahead(status: FolderStatus | None, *, first_pass: bool) -> bool:
    """Whether a pass over a folder of this source ``status`` asks it with the folder's listing
    (from a ``ListingAhead`` source): a first pass over a small folder."""
    return first_pass and status is not None and 0 < status.exists <= LISTING_AHEAD


def _unfinished(
    mapping: FolderMapping, src: FolderStatus, tgt: FolderStatus, uidnext: int
) -> Checkpoint:
    """The checkpoint of a pass that has not ended (``Checkpoint.MATCHING`` or ``STARTED``)."""
    return Checkpoint(
        mapping.source.name, mapping.target, src.uidvalidity, uidnext, None, tgt.uidvalidity, ""
    )


class FolderPlanner:
    """Plans passes over the folders of one pair, with one session to each side."""

    def __init__(
        self,
        source: MailAccount,
        target: MailAccount,
        store: StateStore,
        pair: str,
        selection: Selection,
        folders: FolderPlan,
        labels: LabelPolicy | None = None,
        dry_standing: Counter[str] | None = None,
        *,
        snapshot: Snapshot | None = None,
        window: int = WINDOW,
    ) -> None:
        self.source = source
        self.target = target
        self.store = store
        self.pair = pair
        self.selection = selection
        self.folders = folders
        self.labels = labels  # set when the source's folders are labels (Gmail)
        # A dry run records nothing: copies it would make, by label key, for the folders after.
        self.dry_standing = dry_standing if dry_standing is not None else Counter()
        self.snapshot = snapshot or Snapshot()
        self.windows = Windows(self, window)
        self._ahead: tuple[str, list[MessageMeta]] | None = None  # see _source_status

    def plan(self, mapping: FolderMapping, *, dry_run: bool) -> FolderWork:
        unchanged = self.snapshot.unchanged(mapping, self.selection.fingerprint())
        if unchanged is not None:  # nothing to copy, settle or update: see snapshot.py
            known_src, known_tgt, copied = unchanged
            return FolderWork(mapping, known_src, known_tgt, existing=copied, unchanged=True)
        name = mapping.source.name
        checkpoint = self.store.checkpoint(self.pair, name)
        # Each side's STATUS is a SELECT the pass needs anyway (adapters/imap): both at once.
        src, tgt = both(
            lambda: self._source_status(name, dry_run=dry_run),
            lambda: self._target_status(mapping, dry_run=dry_run, fresh=checkpoint is None),
        )
        if (
            checkpoint is not None
            and tgt is not None
            and _still_valid(checkpoint, mapping, src, tgt)
        ):
            settled = (0, 0) if dry_run else self._reconcile_intents(mapping, tgt)
            work = self._plan_incremental(mapping, src, tgt, checkpoint, dry_run=dry_run)
            work.settled, work.settled_bytes = settled
        elif not dry_run and tgt is not None:
            work = self._stream_fresh(mapping, src, tgt)
        elif self._counts_fresh(mapping, tgt):
            work = self._streamed(mapping, src, tgt, into_empty=True).count_windows()
        elif self.labels is None:
            work = self._dry_stream_fresh(mapping, src, tgt)
        else:
            work = self._plan_fresh(mapping, src, tgt)
        if self.labels is not None and self.labels.dedupes(mapping) and work.copy:
            self.leave_out_elsewhere(mapping, work, dry_run=dry_run)
        elif dry_run and self.labels is not None:
            self.dry_standing.update(self._keys(mapping.source.name, work.copy).values())
        return work

    def settle(self, mapping: FolderMapping) -> tuple[int, int]:
        """Settle the appends an earlier run left in flight for this folder, ahead of its pass, so
        that label folders planned before it see those copies. A folder that cannot be read is
        left to its own pass, which reports it. Returns the messages found landed, and their
        bytes."""
        name = mapping.source.name
        checkpoint = self.store.checkpoint(self.pair, name)
        if checkpoint is None or not self.store.intents(self.pair, name):
            return 0, 0
        try:
            src = self.source.status(name)
            tgt = self.target.status(mapping.target)
        except FolderError:
            return 0, 0
        if _still_valid(checkpoint, mapping, src, tgt):
            return self._reconcile_intents(mapping, tgt)
        return 0, 0

    # -- labels -------------------------------------------------------------------------------------
    def _keys(self, folder: str, metas: Sequence[MessageMeta]) -> dict[int, str]:
        """Label keys by UID; messages without a Message-ID are hashed first."""
        if any(m.message_id is None for m in metas):
            metas = self.with_hashes(self.source, folder, metas)
        keys = {m.uid: meta_key(m) for m in metas}
        return {uid: key for uid, key in keys.items() if key is not None}

    def leave_out_elsewhere(
        self, mapping: FolderMapping, work: FolderWork, *, dry_run: bool
    ) -> None:
        """Drop from ``work.copy`` what a copy from another label folder already stands for, and
        record those as accounted for (so later passes do not look at them again)."""
        name = mapping.source.name
        keys = self._keys(name, work.copy)
        candidates = [(m, keys[m.uid]) for m in work.copy if m.uid in keys]
        tally = self.store.label_tally(self.pair, name, keys.values())
        tally.standing.update(self.dry_standing)
        copy, left_out = split_by_label(candidates, tally)
        work.copy = [m for m in work.copy if m.uid not in keys] + copy
        work.copy.sort(key=lambda m: m.uid)
        work.elsewhere = len(left_out)
        if dry_run:
            self.dry_standing.update(keys[m.uid] for m in copy)
        elif left_out:
            rows = [Copied(m.uid, None, m.flags, key, elsewhere=True) for m, key in left_out]
            self.store.add_copied(self.pair, name, rows)

    def _source_status(self, name: str, *, dry_run: bool) -> FolderStatus:
        """The source folder's status; for a small folder on its first pass, with its listing in
        the same round trip, kept for the pass's one window (``listed_ahead``)."""
        self._ahead = None
        if dry_run or not self._lists_ahead(name):
            return self.source.status(name)
        assert isinstance(self.source, ListingAhead)  # noqa: S101 - _lists_ahead checked it
        status, listing = self.source.status_with_listing(name)
        if listing is not None:
            self._ahead = (name, listing)
        return status

    def _lists_ahead(self, name: str) -> bool:
        """Whether a pass over ``name`` asks its status with its listing: a first pass (no
        record) over a folder the run's snapshot found small, from a source that can."""
        hint = self.snapshot.source.get(name)
        return isinstance(self.source, ListingAhead) and lists_ahead(
            hint, first_pass=name not in self.snapshot.records
        )

    def list_ahead(self, mapping: FolderMapping) -> None:
        """Ask now for what planning ``mapping`` will read from the source (its status and
        listing), if it will (``ListingAhead.send_listing``): called by a lane as the source
        falls idle at the end of the folder before, so the answer arrives while that folder's
        last APPENDs are answered and recorded."""
        name = mapping.source.name
        if self._lists_ahead(name):
            assert isinstance(self.source, ListingAhead)  # noqa: S101 - _lists_ahead checked it
            self.source.send_listing(name)

    def listed_ahead(self, name: str, whole: bool) -> list[MessageMeta] | None:
        """The listing read with the status, once, for the window that is the ``whole``
        folder."""
        ahead, self._ahead = self._ahead, None
        if ahead is None or ahead[0] != name or not whole:
            return None
        return ahead[1]

    def _target_status(
        self, mapping: FolderMapping, *, dry_run: bool, fresh: bool
    ) -> FolderStatus | None:
        """The target folder's status. A first pass (``fresh``: no checkpoint) takes it from the
        run's snapshot where it is there (``Snapshot.first_pass_target``), read once the
        folders were created: a UIDNEXT only grows, so it is a lower bound of the UIDs the
        pass's APPENDs get, and what an earlier run put in the folder was there when it was
        read (messages delivered since are not this pair's). The copy selects the folder while
        its first burst is read. Anything else is a SELECT now."""
        if fresh and not dry_run:
            known = self.snapshot.first_pass_target(mapping)
            if known is not None:
                return known
        try:
            return self.target.status(mapping.target)
        except FolderError:
            if dry_run:  # the folder would be created by a real run
                return None
            raise

    def _mark(
        self, mapping: FolderMapping, src: FolderStatus, tgt: FolderStatus, uidnext: int
    ) -> None:
        """Save the checkpoint of a pass that has not ended (``_unfinished``)."""
        self.store.save_checkpoint(self.pair, _unfinished(mapping, src, tgt, uidnext))

    def finish(self, mapping: FolderMapping, work: FolderWork) -> None:
        """The checkpoint of a complete pass: the STATUS values read when it started."""
        src, tgt = work.source_status, work.target_status
        if tgt is None or work.unchanged:
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
                self.selection.fingerprint(),
            ),
        )

    # -- planning -----------------------------------------------------------------------------------
    def _stream_fresh(
        self, mapping: FolderMapping, src: FolderStatus, tgt: FolderStatus
    ) -> FolderWork:
        """No usable state: match the source against what the target already holds (phase 1,
        windows.py), then copy the rest as an incremental pass would (phase 2)."""
        name = mapping.source.name
        if not tgt.exists:  # nothing to match: started clean at once, in one transaction
            start = _unfinished(mapping, src, tgt, Checkpoint.STARTED)
            self.store.reset_folder(self.pair, name, start)
            return self._streamed(mapping, src, tgt, into_empty=True)
        # Start clean; the checkpoint keeps the folder's target (its pin) while matching.
        start = _unfinished(mapping, src, tgt, Checkpoint.MATCHING)
        self.store.reset_folder(self.pair, name, start)
        self.windows.match(mapping, src)
        # Only now, every match recorded, is the pass marked as started: a crash from here on
        # resumes from the rows. Until now (a listing that failed half-way, a crash) the next
        # attempt matches again from scratch, never reading "no rows" as "nothing is there".
        self._mark(mapping, src, tgt, Checkpoint.STARTED)
        return self._streamed(mapping, src, tgt, into_empty=False)

    def _dry_stream_fresh(
        self, mapping: FolderMapping, src: FolderStatus, tgt: FolderStatus | None
    ) -> FolderWork:
        """A dry run without usable state (rows left, or a target folder that holds mail):
        matched and counted window by window as a run would (``_stream_fresh``, then
        ``count_windows``), the state's rows of the folder left aside as a run would forget
        them, its matches kept in a scratch file instead (``ScratchCopies``): memory that does
        not grow with the folder, and nothing written to the state."""
        into_empty = tgt is None or not tgt.exists
        with ScratchCopies(self.store, mapping.source.name) as scratch:
            clone = copy.copy(self)  # the same sessions and options, reading the scratch rows
            clone.store = cast("StateStore", scratch)  # the part of it planning asks for
            clone.windows = Windows(clone, self.windows.window)
            if not into_empty:
                clone.windows.match(mapping, src)
            return clone._streamed(mapping, src, tgt, into_empty=into_empty).count_windows()

    def _counts_fresh(self, mapping: FolderMapping, tgt: FolderStatus | None) -> bool:
        """Whether a dry run plans a folder without state as a run would, window by window, and
        counts it (``FolderWork.count_windows``): when its target folder is empty or missing and
        no row is left of it, there is nothing to match and nothing to write. A label source's
        dry run keeps the copies (their keys stand for the label folders after)."""
        empty = tgt is None or not tgt.exists
        rows = self.store.count_copied(self.pair, mapping.source.name)
        return empty and self.labels is None and rows == 0

    def _streamed(
        self,
        mapping: FolderMapping,
        src: FolderStatus,
        tgt: FolderStatus | None,
        *,
        into_empty: bool,
    ) -> FolderWork:
        """A pass planned window by window; the first is planned now, so that a folder of one
        window (most folders) reports exact totals before its copy starts."""
        spans = SharedSpans(self.spans_of(mapping.source.name, src))
        work = FolderWork(mapping, src, tgt, spans=spans, into_empty=into_empty)
        walk = self.windows.walk(work)
        first = next(walk, None)
        work.windows = chain([] if first is None else [first], walk)
        if work.listed >= src.exists or first is None:  # one window: everything is known
            work.expected, work.expected_bytes = work.planned, first.copy_bytes if first else 0
        else:  # estimated: what has no row yet, at the first window's average size
            rows = self.store.count_copied(self.pair, mapping.source.name)
            work.expected = max(src.exists - rows, work.planned)
            average = first.copy_bytes // max(len(first.copy), 1)
            work.expected_bytes = work.expected * average
        return work

    def _plan_fresh(
        self, mapping: FolderMapping, src: FolderStatus, tgt: FolderStatus | None
    ) -> FolderWork:
        """A label source's dry run without usable state (its copies stand for the label folders
        after, so they are kept): matched in memory against what the target holds."""
        name = mapping.source.name
        source = list(self.source.fetch_meta(name, message_ids=True))
        target: list[MessageMeta] = []
        if tgt is not None and tgt.exists:
            target = list(self.target.fetch_meta(mapping.target, message_ids=True))
        if target and any(m.message_id is None for m in source):
            source = self.with_hashes(self.source, name, source)
        if target and any(m.message_id is None for m in target):
            target = self.with_hashes(self.target, mapping.target, target)
        claimed = self._claimed_target_uids(mapping)
        pairs, unmatched = match_existing(
            source, target, claimed, with_size=self.target.keeps_bytes
        )
        existing = [Copied(s.uid, t.uid, t.flags, self.label(s)) for s, t in pairs]
        choice = choose(unmatched, self.selection)
        permanent = self.permanent(mapping.target, exists=tgt is not None)
        updates = flag_updates(
            {s.uid: s.flags for s, _ in pairs},
            {c.source_uid: c for c in existing},
            permanent,
            self.selection,
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
        *,
        dry_run: bool,
    ) -> FolderWork:
        """State is valid: look only at what changed since the last complete pass."""
        name = mapping.source.name
        selection = self.selection
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
        # Many new UIDs (a big delivery, an import): walked in windows, not held as one answer;
        # a dry run's windows are counted as they are planned (a label source's are kept).
        streams = not dry_run or self.labels is None
        many_new = src.uidnext - checkpoint.source_uidnext > self.windows.window and streams
        if (
            same_selection
            and self.source.condstore
            and checkpoint.source_modseq is not None
            and not many_new
            and not (streams and self._many_changed(name, src, checkpoint.source_modseq))
        ):
            flags_now = dict(self.source.fetch_flags(name, changed_since=checkpoint.source_modseq))
            copied = self.store.copied(self.pair, name, set(flags_now) | failed)
            candidates = sorted(set(uncopied(flags_now, copied)) | (failed - copied.keys()))
            existing = max(src.exists - len(candidates), 0)
        elif streams:  # every message's flags, window by window
            work = self._streamed(mapping, src, tgt, into_empty=False)
            return work.count_windows() if dry_run else work
        else:
            flags_now = dict(self.source.fetch_flags(name))
            copied = self.store.copied(self.pair, name)
            candidates = uncopied(flags_now, copied)
            existing = len(flags_now.keys() & copied.keys())
        metas = (
            list(self.source.fetch_meta(name, candidates, message_ids=True)) if candidates else []
        )
        choice = choose(metas, selection)
        updates = flag_updates(
            flags_now, copied, self.permanent(mapping.target, exists=True), selection
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

    def spans_of(self, name: str, src: FolderStatus) -> list[Span]:
        """The windows of a pass over ``name``: equal UID ranges, or, for a sparse folder, ranges
        that start at the UIDs of every window-th message (``windows.marked_spans``)."""
        window = self.windows.window
        if sparse(src, window) and isinstance(self.source, UidMarks):
            return marked_spans(self.source.uid_marks(name, window), src.uidnext - 1)
        return spans(src, window)

    def _many_changed(self, name: str, src: FolderStatus, since: int) -> bool:
        """Whether the changes since ``since`` may be more than a window: read as one CHANGEDSINCE
        answer they would be held at once, so such a pass is walked in windows instead. A folder
        of one window cannot have more; a bigger one asks the source to count (one short
        answer), and is walked when the source cannot say."""
        if src.exists <= self.windows.window:
            return False
        counted = (
            self.source.count_changed(name, since)
            if isinstance(self.source, ChangeCounting)
            else None
        )
        return counted is None or counted > self.windows.window

    def label(self, meta: MessageMeta) -> str | None:
        return meta_key(meta) if self.labels is not None else None

    def permanent(self, folder: str, *, exists: bool) -> frozenset[str]:
        if not exists:
            return frozenset({"\\*"})
        return self.target.permanent_flags(folder)

    def with_hashes(
        self, account: MailAccount, folder: str, metas: Sequence[MessageMeta]
    ) -> list[MessageMeta]:
        """Fill SHA-256 for messages without a Message-ID (the only identity they have)."""
        need = [m for m in metas if m.message_id is None]
        hashes = {}
        for fetched in account.fetch_messages(folder, need):
            if isinstance(fetched, MessageError):
                continue  # unreadable: no identity; its copy attempt records the reason
            hashes[fetched.uid] = fetched.sha256
            fetched.body.close()
        return [_replace_sha(m, hashes.get(m.uid)) if m.message_id is None else m for m in metas]

    def _claimed_target_uids(self, mapping: FolderMapping, since: int = 0) -> set[int]:
        """Target UIDs from ``since`` on already owned by source folders that share this target
        folder, read a page at a time (only the few above an intent's UIDNEXT are kept)."""
        claimed: set[int] = set()
        for other in self.folders.sharing(mapping.target):
            after = 0
            while page := self.store.copied_page(self.pair, other.source.name, after, 5000):
                after = page[-1].source_uid
                claimed.update(
                    c.target_uid for c in page if c.target_uid is not None and c.target_uid >= since
                )
        return claimed

    def _reconcile_intents(self, mapping: FolderMapping, tgt: FolderStatus) -> tuple[int, int]:
        """Settle appends that were in flight when an earlier run (or pass) stopped; returns the
        messages found landed and their bytes, copies no pass has counted yet.

        An APPEND a killed run had sent may still land after this run read the target's
        status: the server goes on with what the dead connection had delivered (slowly, on a
        busy disk). An intent found nowhere is therefore looked for again, after a pause, for
        as long as the folder keeps growing (``LateWrites``; a few looks at most): called lost
        too early, it would be copied twice."""
        name = mapping.source.name
        intents = self.store.intents(self.pair, name)
        if not intents:
            return 0, 0
        valid = [
            i
            for i in intents
            if i.target_folder == mapping.target and i.target_uidvalidity == tgt.uidvalidity
        ]
        stale = [i.source_uid for i in intents if i not in valid]
        uidnext = tgt.uidnext
        confirmed, lost = self._landed(mapping, valid, uidnext)
        pause = self.target.settle_pause if isinstance(self.target, LateWrites) else 0.0
        for _look in range(SETTLE_LOOKS if pause else 0):
            if not lost:
                break
            time.sleep(pause)
            grown = self.target.status(mapping.target).uidnext
            if grown == uidnext:
                break
            uidnext = grown
            confirmed, lost = self._landed(mapping, valid, uidnext)
        by_uid = {i.source_uid: i for i in valid}
        if self.labels is not None:
            confirmed = [replace(c, label=intent_key(by_uid[c.source_uid])) for c in confirmed]
        self.store.resolve(self.pair, name, confirmed, lost + stale)
        return len(confirmed), sum(by_uid[c.source_uid].size for c in confirmed)

    def _landed(
        self, mapping: FolderMapping, valid: Sequence[Intent], uidnext: int
    ) -> tuple[list[Copied], list[int]]:
        """The intents whose messages are on the target below ``uidnext`` (rows), and the rest."""
        landed: list[MessageMeta] = []
        if valid:
            low = min(i.target_uidnext for i in valid)
            sizes = {i.size for i in valid}
            if uidnext > low:
                arrived = list(
                    self.target.fetch_meta(mapping.target, range(low, uidnext), message_ids=True)
                )
                hashed = {
                    m.uid: m
                    for m in self._hashed(mapping.target, [m for m in arrived if m.size in sizes])
                }
                landed = [hashed.get(m.uid, m) for m in arrived]
        claimed = (
            self._claimed_target_uids(mapping, since=min(m.uid for m in landed))
            if landed
            else set()
        )
        return reconcile_intents(valid, landed, claimed)

    def _hashed(self, folder: str, metas: Sequence[MessageMeta]) -> list[MessageMeta]:
        hashes: dict[int, tuple[str, int]] = {}
        for fetched in self.target.fetch_messages(folder, metas):
            if isinstance(fetched, MessageError):
                continue
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


def plan_folders(
    source: MailAccount,
    target: MailAccount,
    mapping: MappingOptions,
    store: StateStore | None = None,
    pair: str = "",
    records: Mapping[str, FolderRecord] | None = None,
) -> FolderPlan:
    """Map the folders, keeping each source folder where an earlier run put it.

    Mapping by role and name is a function of both folder lists, and the target's list changes once we
    have copied into it (a server may flag a new "Sent Messages" as \\Sent, say). Pinning each source folder
    to the target folder recorded in its checkpoint keeps every later run on the same folders. The user's
    own --map entries always win over pins.
    """
    source_folders, target_folders = both(source.list_folders, target.list_folders)
    if store is not None:
        if records is None:
            records = store.folder_records(pair)
        mapping = _with_pins(mapping, records, source_folders, target_folders)
    return map_folders(source_folders, target_folders, target.delimiter, mapping)


def _with_pins(
    mapping: MappingOptions,
    records: Mapping[str, FolderRecord],
    source_folders: Sequence[FolderInfo],
    target_folders: Sequence[FolderInfo],
) -> MappingOptions:
    existing = {f.name for f in target_folders if f.selectable}
    user = [src for src, _ in mapping.maps]
    pins = []
    for folder in source_folders:
        record = records.get(folder.name)
        if record is None or record.checkpoint.target_folder not in existing:
            continue
        checkpoint = record.checkpoint
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
        checkpoint.matched
        and checkpoint.source_uidvalidity == src.uidvalidity
        and checkpoint.target_folder == mapping.target
        and tgt is not None
        and checkpoint.target_uidvalidity == tgt.uidvalidity
    )


def _replace_sha(meta: MessageMeta, sha: str | None) -> MessageMeta:
    return MessageMeta(meta.uid, meta.flags, meta.internaldate, meta.size, meta.message_id, sha)


def intent_key(intent: Intent) -> str | None:
    """The label key of a message sent with this intent (the same as ``meta_key`` of its source)."""
    return label_key(intent.message_id, intent.internaldate, intent.size, intent.sha256)
