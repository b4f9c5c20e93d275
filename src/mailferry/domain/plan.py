"""The planner: pure functions from snapshots and state to what must be done.

Nothing here talks to a server or a database. The service fetches snapshots (message metadata, flags,
state rows), asks these functions what to do, and executes the answer.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from mailferry.domain.identity import IdentityKey, epoch, identity
from mailferry.domain.model import DELETED, MessageMeta
from mailferry.domain.ports import Copied, Intent

RECENT = "\\recent"
ANY_KEYWORD = "\\*"


@dataclass(frozen=True)
class Selection:
    """Which source messages a run copies. Dates compare the INTERNALDATE's own calendar day."""

    since: dt.date | None = None  # on or after
    before: dt.date | None = None  # strictly before
    include_deleted: bool = False

    def fingerprint(self) -> str:
        return _fingerprint(self.since, self.before, self.include_deleted)

    def skip_reason(self, meta: MessageMeta) -> str | None:
        if meta.deleted and not self.include_deleted:
            return "deleted"
        day = meta.internaldate.date()
        if self.since and day < self.since:
            return "filtered"
        if self.before and day >= self.before:
            return "filtered"
        return None


@functools.lru_cache(maxsize=16)  # asked for every folder of every pass: one selection a run
def _fingerprint(since: dt.date | None, before: dt.date | None, include_deleted: bool) -> str:
    text = f"{since}|{before}|{include_deleted}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def target_flags(
    flags: Iterable[str], permanent: frozenset[str], selection: Selection
) -> tuple[frozenset[str], frozenset[str]]:
    """(flags to write on the target, keywords the target refuses).

    \\Recent is never written. \\Deleted is written only when the user asked to copy deleted messages:
    a migration must not hand the target's next EXPUNGE a message to destroy.
    """
    keep: set[str] = set()
    refused: set[str] = set()
    any_keyword = ANY_KEYWORD in permanent
    permanent_lower = {p.lower() for p in permanent}
    for flag in flags:
        lowered = flag.lower()
        if lowered == RECENT or (lowered == DELETED.lower() and not selection.include_deleted):
            continue
        if flag.startswith("\\") or any_keyword or lowered in permanent_lower:
            keep.add(flag)
        else:
            refused.add(flag)
    return frozenset(keep), frozenset(refused)


@dataclass
class Choice:
    """Source messages split by what happens to them."""

    copy: list[MessageMeta] = field(default_factory=list)
    skipped_deleted: list[int] = field(default_factory=list)
    skipped_filtered: list[int] = field(default_factory=list)


def choose(candidates: Iterable[MessageMeta], selection: Selection) -> Choice:
    """Split messages not yet on the target into those to copy and those skipped (and why)."""
    choice = Choice()
    for meta in sorted(candidates, key=lambda m: m.uid):
        reason = selection.skip_reason(meta)
        if reason == "deleted":
            choice.skipped_deleted.append(meta.uid)
        elif reason == "filtered":
            choice.skipped_filtered.append(meta.uid)
        else:
            choice.copy.append(meta)
    return choice


def match_existing(
    source: Sequence[MessageMeta],
    target: Sequence[MessageMeta],
    claimed: Iterable[int] = (),
    *,
    with_size: bool = True,
) -> tuple[list[tuple[MessageMeta, MessageMeta]], list[MessageMeta]]:
    """Pair source messages with target messages of the same identity, as multisets.

    Returns the pairs and the source messages left unmatched. Target UIDs in ``claimed`` (already mapped
    to some source message) are never matched again, and each target message serves one source message,
    so two identical source messages need two identical target messages.
    """
    taken = set(claimed)
    # A list per identity, highest UID first, taken from the end: most identities have one message,
    # and a deque costs ~600 bytes even then (a list of one, ~70): 60 MB a 100,000-message folder.
    pool: dict[IdentityKey, list[MessageMeta]] = defaultdict(list)
    for meta in sorted(target, key=lambda m: m.uid, reverse=True):
        key = identity(meta, with_size=with_size)
        if key is not None and meta.uid not in taken:
            pool[key].append(meta)
    pairs: list[tuple[MessageMeta, MessageMeta]] = []
    unmatched: list[MessageMeta] = []
    for meta in sorted(source, key=lambda m: m.uid):
        key = identity(meta, with_size=with_size)
        bucket = pool.get(key) if key is not None else None
        if bucket:
            pairs.append((meta, bucket.pop()))
        else:
            unmatched.append(meta)
    return pairs, unmatched


def reconcile_intents(
    intents: Sequence[Intent], landed: Sequence[MessageMeta], claimed: Iterable[int] = ()
) -> tuple[list[Copied], list[int]]:
    """Decide, after a crash, which in-flight appends reached the target.

    ``landed`` holds target messages that arrived since the intents' recorded UIDNEXT, with their SHA-256.
    An intent is confirmed by an unclaimed target message with the same hash and size (multiset: each target
    message confirms one intent); the rest are returned as lost, to be copied again.
    """
    taken = set(claimed)
    ordered = sorted((m for m in landed if m.uid not in taken), key=lambda m: m.uid)
    by_content: dict[tuple[str, int], deque[MessageMeta]] = defaultdict(deque)
    by_header: dict[tuple[str, int], deque[MessageMeta]] = defaultdict(deque)
    for meta in ordered:
        if meta.sha256 is not None:
            by_content[(meta.sha256, meta.size)].append(meta)
        if meta.message_id:
            by_header[(meta.message_id, epoch(meta.internaldate))].append(meta)
    used: set[int] = set()
    confirmed: list[Copied] = []
    lost: list[int] = []
    for intent in sorted(intents, key=lambda i: i.source_uid):
        hit = _take(by_content.get((intent.sha256, intent.size)), used)
        if hit is None and intent.message_id and intent.internaldate is not None:
            # The target may have rewritten the bytes (Exchange converts MIME): same Message-ID
            # and received date is then the evidence that the APPEND landed.
            hit = _take(by_header.get((intent.message_id, intent.internaldate)), used)
        if hit is None:
            lost.append(intent.source_uid)
        else:
            confirmed.append(Copied(intent.source_uid, hit.uid, hit.flags))
    return confirmed, lost


def _take(bucket: deque[MessageMeta] | None, used: set[int]) -> MessageMeta | None:
    """The first message of ``bucket`` not yet used to confirm another intent."""
    while bucket:
        meta = bucket.popleft()
        if meta.uid not in used:
            used.add(meta.uid)
            return meta
    return None


@dataclass(frozen=True)
class FlagUpdate:
    source_uid: int
    target_uid: int
    flags: frozenset[str]


def flag_updates(
    source_flags: Mapping[int, frozenset[str]],
    copied: Mapping[int, Copied],
    permanent: frozenset[str],
    selection: Selection,
) -> list[FlagUpdate]:
    """Flag changes to carry to the target: where the source's writable flags differ from those last written.

    Flags changed on the target alone are left as they are until the source changes them again.
    """
    updates: list[FlagUpdate] = []
    for uid in sorted(source_flags.keys() & copied.keys()):
        record = copied[uid]
        if record.target_uid is None:
            continue
        wanted, _ = target_flags(source_flags[uid], permanent, selection)
        current, _ = target_flags(record.flags, permanent, selection)
        if wanted != current:
            updates.append(FlagUpdate(uid, record.target_uid, wanted))
    return updates


def uncopied(source_uids: Iterable[int], copied: Mapping[int, Copied]) -> list[int]:
    return sorted(uid for uid in source_uids if uid not in copied)


def batches(
    messages: Sequence[MessageMeta], *, max_count: int, max_bytes: int
) -> list[list[MessageMeta]]:
    """Group messages for one pipelined burst, bounded in count and bytes (a big one goes alone)."""
    out: list[list[MessageMeta]] = []
    current: list[MessageMeta] = []
    size = 0
    for meta in messages:
        if current and (len(current) >= max_count or size + meta.size > max_bytes):
            out.append(current)
            current, size = [], 0
        current.append(meta)
        size += meta.size
    if current:
        out.append(current)
    return out
