"""Writing items to the target: intents first, then bounded concurrent PUTs, then the answers.

burst     intents of every write committed in one transaction; the PUTs sent over at most
          ``concurrency`` requests in flight; done and dropped resolved in one transaction
one PUT   create: ``If-None-Match: *`` at the name chosen before the intent; update:
          ``If-Match`` the ETag recorded. 429/503: wait Retry-After (never less), again.
          Answer lost (connection dropped): look first (is it there, with this identity?),
          then again. 412/409 on a create: the UID is looked up on the target, never written
          a second time; 412 on an update: the target changed meanwhile (a conflict, reported)
full      507 (or 403 quota-not-exceeded): the target has no room. No PUT is sent after it; the
          burst's answers are resolved, then ``TargetFullError`` stops the run. Those not
          written are remaining, not failed (no fault of theirs). A 507's intent is left for the
          next run to settle, not taken for "not stored": Radicale writes the item, then fails
          to write its cache and answers 507; the item shows once there is room again
500       the target's own fault, stored or not (Xandikos stores a vCard it answers 500 to):
          looked up once; not there, the item is reported failed and its intent left to settle.
          ``SERVER_FAILING`` such answers in a row with nothing stored between stop the run as a
          full target does (service/resilience.py ``ServerFaults``, as for mail's [SERVERBUG])
settle    the intents an earlier run left: done when the target's item shows the source's content
          now; else dropped and planned again (a target edit made after the PUT landed is then
          a conflict, as after a lost state, never taken for our copy)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailferry.domain.davmodel import CollectionInfo, Item
from mailferry.domain.davplan import Recorded
from mailferry.domain.davports import ItemIntent
from mailferry.domain.errors import (
    ConnectError,
    ItemConflictError,
    ItemError,
    ServerFaultError,
    TargetFullError,
    ThrottledError,
)
from mailferry.domain.items import ItemKey, identify, item_key
from mailferry.domain.normalise import content_differs
from mailferry.service.davcontext import MAX_THROTTLED, storage_full, target_failing

if TYPE_CHECKING:
    from mailferry.domain.davports import CollectionAccount
    from mailferry.service.davcontext import PassContext
    from mailferry.service.davitems import Sides


@dataclass(frozen=True)
class Write:
    source_href: str
    source_etag: str | None
    key: ItemKey
    href: str  # the target href it goes to
    data: bytes = field(repr=False)
    if_match: str | None = None  # an update: the target ETag it replaces

    def intent(self) -> ItemIntent:
        return ItemIntent(self.source_href, self.source_etag, self.key, self.href, self.if_match)


@dataclass(frozen=True)
class Landed:
    """A write that is on the target: where, with which ETag, and whether it found it there."""

    href: str
    etag: str | None
    existing: bool = False


@dataclass(frozen=True)
class Unwritten:
    """A write the target had no room for (507), or not sent because it had just said so: no
    fault of the item's, counted remaining. ``sent``: its intent stays, for the next run to
    settle (the server may have stored it all the same, or an earlier try whose answer was
    lost may have landed); never sent, the intent is dropped."""

    sent: bool


@dataclass(frozen=True)
class Faulted:
    """A PUT answered 500 and not found on the target: reported, its intent left to settle."""

    reason: str


Outcome = Landed | Unwritten | Faulted | str  # str: why the target refused the item


class Writer:
    def __init__(self, ctx: PassContext, sides: Sides) -> None:
        self.ctx = ctx
        self.sides = sides
        self.failures: dict[str, tuple[str | None, str]] = {}  # source href -> (uid, reason)
        self.wrote = False
        self.unwritten = 0  # writes the target had no room for, or that were never sent
        self._halt: TargetFullError | None = None  # the target is full or failing: send no more
        self._halt_lock = threading.Lock()

    # -- a burst --------------------------------------------------------------------------------
    def burst(self, writes: Sequence[Write]) -> None:
        """Intents, PUTs, answers; ``TargetFullError`` once they are resolved if the target
        turned out full or failing (``unwritten`` counts what it did not take)."""
        if self.ctx.dry_run:
            self._count_dry(writes)
            return
        state, pair, key = self.ctx.state, self.ctx.pair, self.sides.source.href
        state.add_item_intents(pair, key, [w.intent() for w in writes])
        with ThreadPoolExecutor(max_workers=self.ctx.concurrency) as pool:
            outcomes = list(pool.map(self._attempt, writes))
        done, dropped = self._sort(writes, outcomes)
        state.resolve_items(pair, key, done, dropped)
        self.wrote = self.wrote or bool(done)
        if self._halt is not None:
            raise self._halt

    def _sort(
        self, writes: Sequence[Write], outcomes: Sequence[Outcome]
    ) -> tuple[list[Recorded], list[str]]:
        """The rows of the writes that landed, and the intents to drop; an intent neither
        recorded nor dropped stays for the next run to settle (a 507 or a 500: stored or not)."""
        done: list[Recorded] = []
        dropped: list[str] = []
        for write, outcome in zip(writes, outcomes, strict=True):
            if isinstance(outcome, Landed):
                done.append(self._row(write, outcome))
                self._count(write, outcome)
                self.ctx.written.add((self.sides.source.href, write.source_href))
            elif isinstance(outcome, Unwritten):
                self.unwritten += 1
                if not outcome.sent:
                    dropped.append(write.source_href)
            elif isinstance(outcome, Faulted):
                self.failures[write.source_href] = (write.key.uid, outcome.reason)
            else:
                dropped.append(write.source_href)
                self.failures[write.source_href] = (write.key.uid, outcome)
        return done, dropped

    def _stop(self, error: TargetFullError) -> None:
        with self._halt_lock:
            self._halt = self._halt or error

    def _count_dry(self, writes: Sequence[Write]) -> None:
        summary = self.ctx.summary
        for write in writes:
            if write.if_match is None:
                summary.items_copied += 1
            else:
                summary.items_updated += 1

    def _count(self, write: Write, landed: Landed) -> None:
        summary = self.ctx.summary
        if landed.existing:
            summary.items_skipped_existing += 1
        elif write.if_match is None:
            summary.items_copied += 1
        else:
            summary.items_updated += 1

    @staticmethod
    def _row(write: Write, landed: Landed) -> Recorded:
        return Recorded(write.source_href, write.source_etag, write.key, landed.href, landed.etag)

    # -- one PUT --------------------------------------------------------------------------------
    def _attempt(self, write: Write) -> Outcome:
        """The write landed (where), or why not (a reason, reported per item), or the target
        could not take it (full, failing: ``Unwritten``, ``Faulted``)."""
        policy = self.ctx.retry
        attempt = throttled = 0
        while self._halt is None:
            try:
                return self._once(write, look=attempt > 0)
            except ThrottledError as exc:
                throttled += 1
                self.ctx.note(throttled=1)
                if throttled > MAX_THROTTLED:
                    return f"the target kept answering 'slow down': {exc}"
                time.sleep(policy.wait(min(throttled, 6), exc.wait))
            except ConnectError:
                attempt += 1
                self.ctx.note(retries=1)
                if attempt > policy.attempts:
                    raise
                time.sleep(policy.wait(attempt, 0.0))
        return Unwritten(sent=attempt > 0)  # a PUT whose answer was lost may have landed

    def _once(self, write: Write, *, look: bool) -> Outcome:
        """One try; "slow down" and a lost connection go up, to be waited out and tried again."""
        try:
            return self._put(write, look=look)
        except TargetFullError as exc:
            self._stop(storage_full(exc))
            return Unwritten(sent=True)
        except ServerFaultError as exc:
            return self._fault(write, exc)
        except ItemConflictError as exc:
            return self._conflict(write, exc)
        except ItemError as exc:
            return f"refused by the target: {exc.reason}"

    def _put(self, write: Write, *, look: bool) -> Landed:
        """One PUT (``look``: first, whether an earlier one whose answer was lost landed)."""
        there = self._look(write) if look else None
        if there is None:
            etag = self.ctx.target.put(
                write.href, write.data, self.sides.target.kind, write.if_match
            )
            there = Landed(write.href, etag)
        self.ctx.faults.note_writes([(True, None)])
        return there

    def _fault(self, write: Write, exc: ServerFaultError) -> Landed | Faulted:
        """A 500: looked up once (stored anyway?); not there, one more in a row of them."""
        try:
            there = self._look(write)
        except ConnectError:
            there = None
        if there is not None:
            self.ctx.faults.note_writes([(True, None)])
            return there
        failing = self.ctx.faults.note_writes([(False, str(exc))])
        if failing is not None:
            self._stop(target_failing(self.ctx.faults.limit, failing))
        return Faulted(f"the target failed to store it: {exc}")

    def _look(self, write: Write) -> Landed | None:
        """Is this write on the target already (its answer was lost)?"""
        collection = self.sides.target
        for got in self.ctx.target.read(collection.href, collection.kind, [write.href]):
            if isinstance(got, ItemError):
                return None
            return Landed(got.href, got.etag) if _landed(write.key, write.if_match, got) else None
        return None

    def _conflict(self, write: Write, exc: ItemConflictError) -> Landed | str:
        if write.if_match is not None:
            return (
                f"changed on the target while it was updated (HTTP {exc.status}): "
                "the target's version is left alone"
            )
        there = self._look(write) or self._find(write.key)
        if there is not None:
            return Landed(there.href, there.etag, existing=True)
        return f"the target refused it (HTTP {exc.status}) and holds no item with this identity"

    def _find(self, key: ItemKey) -> Landed | None:
        """The target item with this identity, wherever it is (a 409: the UID is used)."""
        collection = self.sides.target
        refs = self.ctx.target.items(collection.href)
        for got in self.ctx.target.read(collection.href, collection.kind, [r.href for r in refs]):
            if not isinstance(got, ItemError) and item_key(identify(got.data).uid, got.data) == key:
                return Landed(got.href, got.etag)
        return None

    # -- intents of an earlier run --------------------------------------------------------------
    def settle(self, intents: Sequence[ItemIntent]) -> tuple[list[Recorded], list[str]]:
        """The intents a run left when it died between a PUT and its answer: each done (a row)
        when the target's item shows the source's content now, else dropped and planned again.

        Our identity there (an update: another ETag) proves the PUT landed, not that the item is
        still what it wrote: someone may have edited it since. Recorded, that edit would pass for
        our copy, never updated and never reported. Dropped, the plan sees what it sees after a
        lost state: a create found there is compared with the source (a conflict, every pass, if
        it differs); an update whose target ETag moved is a conflict; one never sent goes again.
        """
        hrefs = [i.source_href for i in intents]
        sources = _readable(self.ctx.source, self.sides.source, hrefs)
        theirs = _readable(self.ctx.target, self.sides.target, [i.target_href for i in intents])
        done: list[Recorded] = []
        dropped: list[str] = []
        for intent in intents:
            row = self._settled(
                intent, sources.get(intent.source_href), theirs.get(intent.target_href)
            )
            if row is None:
                dropped.append(intent.source_href)
            else:
                done.append(row)
        return done, dropped

    def _settled(
        self, intent: ItemIntent, source: Item | None, there: Item | None
    ) -> Recorded | None:
        """The row of a settled intent, or None: planned again."""
        if there is None:
            return None  # the PUT never landed (or the item went since)
        if source is None:  # gone from the source (or unreadable): nothing to compare with;
            # recorded if the PUT landed, so that the plan reports it deleted on the source
            if not _landed(intent.key, intent.if_match, there):
                return None
            return Recorded(
                intent.source_href, intent.source_etag, intent.key, there.href, there.etag
            )
        if content_differs(self.sides.target.kind, source.data, there.data) is not None:
            return None
        return Recorded(intent.source_href, source.etag, intent.key, there.href, there.etag)


def _landed(key: ItemKey, if_match: str | None, there: Item) -> bool:
    """Does the item there bear our PUT's mark: another ETag (an update), our identity (a create)?"""
    if if_match is not None:
        return there.etag != if_match
    return item_key(identify(there.data).uid, there.data) == key


def _readable(
    account: CollectionAccount, collection: CollectionInfo, hrefs: list[str]
) -> dict[str, Item]:
    """The items at ``hrefs`` by href (multiget); those missing or unreadable are left out."""
    if not hrefs:
        return {}
    got = account.read(collection.href, collection.kind, hrefs)
    return {item.href: item for item in got if not isinstance(item, ItemError)}
