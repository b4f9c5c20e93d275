"""Writing items to the target: intents first, then bounded concurrent PUTs, then the answers.

burst     intents of every write committed in one transaction; the PUTs sent over at most
          ``concurrency`` requests in flight; done and dropped resolved in one transaction
one PUT   create: ``If-None-Match: *`` at the name chosen before the intent; update:
          ``If-Match`` the ETag recorded. 429/503: wait Retry-After (never less), again.
          Answer lost (connection dropped): look first (is it there, with this identity?),
          then again. 412/409 on a create: the UID is looked up on the target, never written
          a second time; 412 on an update: the target changed meanwhile (a conflict, reported)
settle    the intents an earlier run left: done when the target's item shows the source's content
          now; else dropped and planned again (a target edit made after the PUT landed is then
          a conflict, as after a lost state, never taken for our copy)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailferry.domain.davmodel import CollectionInfo, Item
from mailferry.domain.davplan import Recorded
from mailferry.domain.errors import (
    ConnectError,
    ItemConflictError,
    ItemError,
    ThrottledError,
)
from mailferry.domain.items import ItemKey, identify, item_key
from mailferry.domain.normalise import content_differs
from mailferry.domain.ports import ItemIntent
from mailferry.service.davcontext import MAX_THROTTLED

if TYPE_CHECKING:
    from mailferry.domain.ports import CollectionAccount
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


class Writer:
    def __init__(self, ctx: PassContext, sides: Sides) -> None:
        self.ctx = ctx
        self.sides = sides
        self.failures: dict[str, tuple[str | None, str]] = {}  # source href -> (uid, reason)
        self.wrote = False

    # -- a burst --------------------------------------------------------------------------------
    def burst(self, writes: Sequence[Write]) -> None:
        if self.ctx.dry_run:
            self._count_dry(writes)
            return
        state, pair, key = self.ctx.state, self.ctx.pair, self.sides.source.href
        state.add_item_intents(pair, key, [w.intent() for w in writes])
        with ThreadPoolExecutor(max_workers=self.ctx.concurrency) as pool:
            outcomes = list(pool.map(self._attempt, writes))
        done: list[Recorded] = []
        dropped: list[str] = []
        for write, outcome in zip(writes, outcomes, strict=True):
            if isinstance(outcome, Landed):
                done.append(self._row(write, outcome))
                self._count(write, outcome)
                self.ctx.written.add((key, write.source_href))
            else:
                dropped.append(write.source_href)
                self.failures[write.source_href] = (write.key.uid, outcome)
        state.resolve_items(pair, key, done, dropped)
        self.wrote = self.wrote or bool(done)

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
    def _attempt(self, write: Write) -> Landed | str:
        """The write landed (where), or why not (a reason, reported per item)."""
        policy = self.ctx.retry
        attempt = throttled = 0
        while True:
            try:
                if attempt:
                    there = self._look(write)
                    if there is not None:
                        return there
                etag = self.ctx.target.put(
                    write.href, write.data, self.sides.target.kind, write.if_match
                )
                return Landed(write.href, etag)
            except ThrottledError as exc:
                throttled += 1
                self.ctx.note(throttled=1)
                if throttled > MAX_THROTTLED:
                    return f"the target kept answering 'slow down': {exc}"
                time.sleep(policy.wait(min(throttled, 6), exc.wait))
            except ConnectError as exc:
                attempt += 1
                self.ctx.note(retries=1)
                if attempt > policy.attempts:
                    raise
                time.sleep(policy.wait(attempt, 0.0))
                del exc
            except ItemConflictError as exc:
                return self._conflict(write, exc)
            except ItemError as exc:
                return f"refused by the target: {exc.reason}"

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
