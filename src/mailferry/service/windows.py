"""A folder pass in windows of source UIDs, so that nothing it keeps grows with the folder.

A folder of a million messages cannot be planned whole: the interpreter alone is ~83 MB, and a
Python set of a million UIDs another ~60. So a pass (other than a dry run, or a CONDSTORE pass,
which reads only what changed) is a walk over ranges of source UIDs, ``WINDOW`` at a time: list
the window (``UID FETCH lo:hi``), read its copied rows from the state (a range of the primary
key), decide, copy, next window. What must be looked up lives in the state or, while matching
after a lost state, in a temporary listing of the target (``adapters/store/listing.py``).

A fresh pass into a target that already holds messages has two phases. Phase 1 streams the
target's listing into the temporary file, then matches each source window against it by
identity (the rules of ``domain/plan.match_existing``: Message-ID + date + size, SHA-256 where
there is no Message-ID, each target message used once, none claimed by another source folder of
the same target) and records the matches as copied rows. Only then is the pass marked STARTED:
a crash in phase 1 matches again from scratch. Phase 2 is the walk of an incremental pass: copy
what has no row, carry flags where they differ.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailferry.adapters.store.listing import TargetListing
from mailferry.adapters.store.sqlstore import decode_flags, encode_flags
from mailferry.domain.errors import MessageError
from mailferry.domain.identity import identity, identity_digest
from mailferry.domain.model import FolderStatus, MessageMeta
from mailferry.domain.plan import choose, flag_updates
from mailferry.domain.ports import Copied

if TYPE_CHECKING:
    from mailferry.domain.folders import FolderMapping
    from mailferry.service.folderwork import FolderWork
    from mailferry.service.planning import FolderPlanner

# Source UIDs per window. A window costs ~1.2 KB a message at the peak of lost-state matching
# (its metadata, digests, matches and their rows): the re-run after a lost state over 20,000
# messages peaked at 85.0 MB RSS with windows of 5,000, 92.3 with 10,000, 97.6 with 20,000 (the
# interpreter alone: 74). A window's FETCHes are the same 1,000-message commands a whole listing
# sends, so smaller windows cost no round trips: only a pipeline drained once per window.
WINDOW = 5_000
# A folder whose UIDs spread over more than this many times its message count (many expunged)
# is not cut into windows of equal UID ranges (mostly empty ones): its windows start at the UIDs
# of every window-th message, read from the source (``marked_spans``, ``UidMarks``); a source
# that cannot say lists such a folder whole.
SPARSE = 4
PAGE = 5_000  # copied rows per page, where another folder's claims are read
HASH_CHUNK = 200  # target messages per FETCH of bodies, where only their hash identifies them
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Span:
    """Source UIDs ``low`` to ``high``; ``uids`` None: the whole folder, in one listing."""

    low: int
    high: int
    uids: range | None


def spans(status: FolderStatus, window: int) -> list[Span]:
    """The windows of a pass over a folder with this STATUS (a few dozen at a million)."""
    top = status.uidnext - 1
    if status.exists <= window or top < 1 or top > SPARSE * status.exists:
        return [Span(1, 2**32, None)]
    return [
        Span(low, min(low + window - 1, top), range(low, min(low + window - 1, top) + 1))
        for low in range(1, top + 1, window)
    ]


def sparse(status: FolderStatus, window: int) -> bool:
    """More than a window of messages, spread over more than ``SPARSE`` times as many UIDs."""
    return status.exists > window and status.uidnext - 1 > SPARSE * status.exists


def marked_spans(marks: Iterable[int], top: int) -> list[Span]:
    """Windows of UIDs that start at the ``marks`` (the UIDs of every window-th message, read
    from the source): about a window of messages each, however sparse the UIDs. Together they
    cover every UID from 1 to ``top`` whatever the marks, so a mark that moved (an expunge
    since) only makes one window smaller or bigger."""
    starts = [1, *sorted({m for m in marks if 1 < m <= top})]
    ends = [start - 1 for start in starts[1:]] + [top]
    return [Span(low, high, range(low, high + 1)) for low, high in zip(starts, ends, strict=True)]


class SharedSpans:
    """A pass's windows, handed out one at a time to whichever lane asks next (thread-safe):
    one big folder's first pass copied over several sessions (``service/folderlanes.py``)."""

    def __init__(self, spans: Iterable[Span]) -> None:
        self._spans = list(spans)
        self._next = 0
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[Span]:
        while (span := self.take()) is not None:
            yield span

    def take(self) -> Span | None:
        with self._lock:
            if self._next >= len(self._spans):
                return None
            self._next += 1
            return self._spans[self._next - 1]

    @property
    def left(self) -> int:
        """Windows nobody has taken yet."""
        with self._lock:
            return len(self._spans) - self._next

    def close(self) -> None:
        """Hand out no more: each lane ends after the window it has (a lane failed, a stop)."""
        with self._lock:
            self._next = len(self._spans)


class Windows:
    """The streamed passes of one ``FolderPlanner`` (it owns the sessions, store and options)."""

    def __init__(self, planner: FolderPlanner, window: int = WINDOW) -> None:
        self.planner = planner
        self.window = window

    # -- phase 1: lost-state matching -------------------------------------------------------------
    def match(self, mapping: FolderMapping, src: FolderStatus) -> int:
        """Record as copied every source message found on the target; returns how many."""
        p = self.planner
        with_size = p.target.keeps_bytes
        matched = 0
        with TargetListing() as listing:
            listing.add(
                (m.uid, _digest(m, with_size=with_size), m.size, encode_flags(m.flags))
                for m in p.target.fetch_meta(mapping.target, message_ids=True)
            )
            self._hash_target(listing, mapping.target, with_size=with_size)
            self._claim_others(listing, mapping)
            name = mapping.source.name
            for span in p.spans_of(name, src):
                metas = list(p.source.fetch_meta(name, span.uids, message_ids=True))
                if any(m.message_id is None for m in metas):
                    metas = p.with_hashes(p.source, name, metas)
                hits = listing.take([_digest(m, with_size=with_size) for m in metas])
                rows = [
                    Copied(m.uid, hit[0], decode_flags(hit[1]), p.label(m))
                    for m, hit in zip(metas, hits, strict=True)
                    if hit is not None
                ]
                p.store.add_copied(p.pair, name, rows)
                matched += len(rows)
                del metas, hits, rows  # not alive while the next window is listed
        return matched

    def _hash_target(self, listing: TargetListing, folder: str, *, with_size: bool) -> None:
        """Content hashes of the target messages without a Message-ID, a chunk at a time (their
        only identity). One that cannot be read keeps no key, and so matches nothing."""
        after = 0
        while chunk := listing.unkeyed(after, HASH_CHUNK):
            after = chunk[-1][0]
            metas = [MessageMeta(uid, frozenset(), _EPOCH, size) for uid, size in chunk]
            keys = []
            for fetched in self.planner.target.fetch_messages(folder, metas):
                if isinstance(fetched, MessageError):
                    continue
                meta = MessageMeta(fetched.uid, frozenset(), _EPOCH, fetched.size, None)
                key = identity(_with_sha(meta, fetched.sha256), with_size=with_size)
                fetched.body.close()
                if key is not None:
                    keys.append((fetched.uid, identity_digest(key)))
            listing.set_keys(keys)

    def _claim_others(self, listing: TargetListing, mapping: FolderMapping) -> None:
        """Target messages other source folders of the same target already stand for."""
        p = self.planner
        for other in p.folders.sharing(mapping.target):
            if other.source.name == mapping.source.name:
                continue
            after = 0
            while page := p.store.copied_page(p.pair, other.source.name, after, PAGE):
                after = page[-1].source_uid
                listing.claim([c.target_uid for c in page if c.target_uid is not None])

    # -- phase 2, and every incremental pass without CONDSTORE -------------------------------------
    def walk(self, work: FolderWork) -> Iterator[FolderWork]:
        """The pass's windows, each planned when the copy of the one before has ended (or, read
        ahead, while its last burst is written). Each window's counts are added to ``work`` as
        it is handed out. Windows come from ``work.spans`` when the pass has them: several lanes
        (each with a ``walk`` on its own sessions) then share them out."""
        # The target's PERMANENTFLAGS are read now, on the caller's thread, not in the first
        # window's planning: a copy plans its windows on its reading thread while its writing
        # thread SELECTs the target, and two threads' commands on one session read each other's
        # answers (a lane opened for a shared pass waited out its 120 s timeout so). Not read at
        # all for a pass into an empty folder: its SELECT overlaps the first burst's reading.
        no_rows = frozenset[str]()  # nothing is carried: there are no copies to carry flags to
        target = work.mapping.target
        permanent = no_rows if work.into_empty else self.planner.permanent(target, exists=True)
        return self._windows(work, permanent)

    def _windows(self, work: FolderWork, permanent: frozenset[str]) -> Iterator[FolderWork]:
        p = self.planner
        mapping, src = work.mapping, work.source_status
        name = mapping.source.name
        for span in work.spans if work.spans is not None else p.spans_of(name, src):
            copied = p.store.copied_range(p.pair, name, span.low, span.high)
            # A window without rows (a first pass) needs the Message-IDs of every message.
            listed = p.listed_ahead(name, whole=span.uids is None)
            if listed is None:
                listed = list(p.source.fetch_meta(name, span.uids, message_ids=not copied))
            candidates = [m for m in listed if m.uid not in copied]
            if copied and candidates:
                wanted = [m.uid for m in candidates]
                candidates = list(p.source.fetch_meta(name, wanted, message_ids=True))
            choice = choose(candidates, p.selection)
            flags = {m.uid: m.flags for m in listed}
            part = work.window(
                choice,
                flag_updates(flags, copied, permanent, p.selection),
                existing=len(flags.keys() & copied.keys()),
            )
            if p.labels is not None and p.labels.dedupes(mapping) and part.copy:
                p.leave_out_elsewhere(mapping, part, dry_run=False)
            work.absorb(part, listed=len(listed))
            del listed, flags, copied, candidates, choice
            yield part
            del part  # nor this one while the next is planned: one window alive at a time


def _digest(meta: MessageMeta, *, with_size: bool) -> str | None:
    key = identity(meta, with_size=with_size)
    return None if key is None else identity_digest(key)


def _with_sha(meta: MessageMeta, sha: str) -> MessageMeta:
    return MessageMeta(meta.uid, meta.flags, meta.internaldate, meta.size, meta.message_id, sha)
