"""``mailferry verify`` for calendars and address books: by content, never by counts.

Each source collection is compared with the target collection it maps to (the state's mapping
when there is one, else the same mapping a sync would make). Items are paired by identity (UID,
else content hash); a pair is equal when ``compare_icalendar``/``compare_vcard`` says so (the
normalised properties, and a series' occurrences expanded in UTC), once the migration's own
change is undone: parked attendees are restored, SCHEDULE-AGENT=CLIENT is ignored there. Two
items whose content lines are the same once unfolded, sorted and rid of server stamps are equal
without that longer comparison (``content_differs``).

Memory stays flat: the target is read once for its identities (href per key, no data kept),
then the source chunk by chunk, each chunk's target items read beside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from mailferry.domain.davmodel import CollectionInfo, CollectionKind
from mailferry.domain.davplan import map_collections
from mailferry.domain.davports import CollectionAccount, ItemStateStore
from mailferry.domain.errors import FolderError, ItemError
from mailferry.domain.items import ItemKey, identify, item_key
from mailferry.domain.normalise import content_differs
from mailferry.service.davsync import KINDS, domain_collections, name_of

CHUNK = 100
SHOWN = 20  # differences listed per collection; the rest counted


@dataclass
class CollectionCheck:
    source: str
    target: str | None
    source_count: int = 0
    target_count: int = 0
    problems: list[str] = field(default_factory=list)
    more: int = 0  # problems beyond those listed

    def problem(self, text: str) -> None:
        if len(self.problems) < SHOWN:
            self.problems.append(text)
        else:
            self.more += 1

    def as_json(self) -> dict[str, object]:
        return {
            "source": self.source,
            "target": self.target,
            "source_count": self.source_count,
            "target_count": self.target_count,
            "problems": self.problems + ([f"... and {self.more} more"] if self.more else []),
        }


@dataclass
class DavVerifyReport:
    collections: list[CollectionCheck] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return all(not c.problems for c in self.collections)


def verify_dav(
    source: CollectionAccount, target: CollectionAccount, state: ItemStateStore, pair: str
) -> DavVerifyReport:
    report = DavVerifyReport()
    sources = [c for c in source.collections() if c.kind in KINDS]
    targets = [c for c in target.collections() if c.kind in KINDS]
    mapped = _mapping(sources, targets, state, pair)
    for info in sources:
        there = mapped.get(info.href)
        check = CollectionCheck(info.href, there.href if there else None)
        report.collections.append(check)
        if there is None:
            check.problem("no target collection: never copied")
            continue
        try:
            _compare(source, target, info, there, check)
        except FolderError as exc:
            check.problem(f"not compared: {exc.reason}")
    return report


def _mapping(
    sources: list[CollectionInfo],
    targets: list[CollectionInfo],
    state: ItemStateStore,
    pair: str,
) -> dict[str, CollectionInfo]:
    by_href = {t.href: t for t in targets}
    by_name = {(t.kind, name_of(t.href)): t for t in targets}
    out: dict[str, CollectionInfo] = {}
    plan = map_collections(
        domain_collections(sources), domain_collections(targets), can_create=True
    )
    named = {(KINDS[s.kind], name_of(s.href)): s for s in sources}
    for mapping in plan:
        info = named[(mapping.source.kind, mapping.source.name)]
        row = state.collection_state(pair, info.href)
        if row is not None and row.target in by_href:
            out[info.href] = by_href[row.target]
        elif mapping.target is not None:
            found = by_name.get((info.kind, mapping.target))
            if found is not None:
                out[info.href] = found
    return out


def _compare(
    source: CollectionAccount,
    target: CollectionAccount,
    info: CollectionInfo,
    there: CollectionInfo,
    check: CollectionCheck,
) -> None:
    target_refs = target.items(there.href)
    check.target_count = len(target_refs)
    where: dict[ItemKey, str] = {}
    for key, href in _keys(target, there, [r.href for r in target_refs]):
        where.setdefault(key, href)
    source_refs = source.items(info.href)
    check.source_count = len(source_refs)
    hrefs = [r.href for r in source_refs]
    for start in range(0, len(hrefs), CHUNK):
        chunk = hrefs[start : start + CHUNK]
        items = _read(source, info, chunk)
        if len(items) < len(chunk):
            read = {href for href, _data in items.values()}
            for href in chunk:
                if href not in read:
                    check.problem(f"{href}: unreadable on the source, or a second item of one UID")
        wanted = {where[k]: k for k in items if k in where}
        theirs = {k: data for k, (href, data) in _read(target, there, list(wanted)).items()}
        for key, (href, data) in items.items():
            _one(info.kind, key, href, data, theirs.get(key), check)


def _one(
    kind: CollectionKind,
    key: ItemKey,
    href: str,
    data: bytes,
    theirs: bytes | None,
    check: CollectionCheck,
) -> None:
    if theirs is None:
        check.problem(f"{href} ({key.describe()}): missing on the target")
        return
    differs = content_differs(kind, data, theirs)
    if differs is not None:
        check.problem(f"{href} ({key.describe()}): {differs}")


def _keys(
    account: CollectionAccount, collection: CollectionInfo, hrefs: list[str]
) -> Iterator[tuple[ItemKey, str]]:
    for start in range(0, len(hrefs), CHUNK):
        for key, (href, _data) in _read(account, collection, hrefs[start : start + CHUNK]).items():
            yield key, href


def _read(
    account: CollectionAccount, collection: CollectionInfo, hrefs: list[str]
) -> dict[ItemKey, tuple[str, bytes]]:
    out: dict[ItemKey, tuple[str, bytes]] = {}
    if not hrefs:
        return out
    for got in account.read(collection.href, collection.kind, hrefs):
        if isinstance(got, ItemError):
            continue
        out.setdefault(item_key(identify(got.data).uid, got.data), (got.href, got.data))
    return out
