"""Calendars and address books: collections, items and what makes two items the same one.

An item's identity is its UID (RFC 5545 / RFC 6350): the key under which the planner pairs a source item
with a target item. An item without a UID (old vCard 3.0 exports have none) is known by the SHA-256 of its
normalised content instead, so a re-run after a lost state still finds it on the target.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from mailferry.domain.contentlines import content_lines, parse_property


class CollectionKind(StrEnum):
    CALENDAR = "calendar"
    ADDRESSBOOK = "addressbook"


class ComponentKind(StrEnum):
    """What one item holds: the kind of its first (main) component."""

    VEVENT = "VEVENT"
    VTODO = "VTODO"
    VJOURNAL = "VJOURNAL"
    VCARD = "VCARD"
    UNKNOWN = "UNKNOWN"  # unparsable, or a component type we do not know: kept and reported


@dataclass(frozen=True)
class Collection:
    """A calendar or address book as a DAV server lists it; ``name`` is the last segment of its href."""

    kind: CollectionKind
    name: str
    display_name: str | None = None
    description: str | None = None
    colour: str | None = None  # Apple's calendar-color: "#RRGGBB" or "#RRGGBBAA"
    timezone: str | None = None  # the calendar-timezone: a VCALENDAR holding one VTIMEZONE
    # The components the collection accepts (supported-calendar-component-set); empty: all.
    components: frozenset[ComponentKind] = frozenset()
    default: bool = False  # the account's default calendar or address book

    def accepts(self, component: ComponentKind) -> bool:
        return not self.components or component in self.components


@dataclass(frozen=True)
class ItemKey:
    """The identity of an item inside one collection: ``uid`` when it has one, else ``content``."""

    uid: str | None = None
    content: str | None = None  # SHA-256 hex of the normalised content (items without UID only)

    def __post_init__(self) -> None:
        if (self.uid is None) == (self.content is None):
            raise ValueError("an ItemKey is a UID or a content hash, exactly one of them")

    def describe(self) -> str:
        return f"UID {self.uid}" if self.uid is not None else f"content {self.content}"


@dataclass(frozen=True)
class Item:
    """One DAV resource: one iCalendar object (a series and its overrides) or one vCard."""

    href: str
    etag: str | None
    raw: bytes = field(repr=False)
    component: ComponentKind
    uid: str | None = None

    @property
    def key(self) -> ItemKey:
        return item_key(self.uid, self.raw)


_FOLD = re.compile(rb"\r?\n[ \t]")
_LINE_END = re.compile(rb"\r?\n")
_NAME = re.compile(rb"[^;:]*")
# What a server rewrites when it stores an item: left out of the content identity.
_STAMPS = frozenset({b"PRODID", b"REV", b"DTSTAMP", b"LAST-MODIFIED"})


def normalised_content(raw: bytes) -> bytes:
    """The content lines unfolded, without server stamps and blank lines, sorted, CRLF-terminated.

    Two copies of one UID-less item then hash alike when a server refolded, reordered or restamped it.
    """
    lines = (line.rstrip() for line in _LINE_END.split(_FOLD.sub(b"", raw)))
    kept = [line for line in lines if line and _name(line) not in _STAMPS]
    return b"".join(line + b"\r\n" for line in sorted(kept))


def _name(line: bytes) -> bytes:
    match = _NAME.match(line)
    return match.group().upper() if match else b""


def item_key(uid: str | None, raw: bytes) -> ItemKey:
    if uid is not None and uid.strip():
        return ItemKey(uid=uid.strip())
    return ItemKey(content=hashlib.sha256(normalised_content(raw)).hexdigest())


@dataclass(frozen=True)
class DuplicateKey:
    """Two or more items of one collection share an identity (reported; the first href is kept)."""

    key: ItemKey
    hrefs: tuple[str, ...]


def duplicate_keys(items: Iterable[tuple[str, ItemKey]]) -> list[DuplicateKey]:
    """The identities held by more than one (href, key) of one collection, hrefs sorted."""
    seen: dict[ItemKey, list[str]] = defaultdict(list)
    for href, key in items:
        seen[key].append(href)
    return [
        DuplicateKey(key, tuple(sorted(hrefs)))
        for key, hrefs in sorted(seen.items(), key=lambda kv: min(kv[1]))
        if len(hrefs) > 1
    ]


@dataclass(frozen=True)
class Identity:
    """What an item's bytes say about it: its main component, its UID, and what is wrong with it."""

    component: ComponentKind
    uid: str | None
    problem: str | None = None  # invalid: kept as is when the target accepts it, else reported


_MAIN = {k.value.encode(): k for k in ComponentKind if k is not ComponentKind.UNKNOWN}


def identify(raw: bytes) -> Identity:
    """The component and UID, read textually (content lines), so invalid data is still identified.

    An iCalendar object holds one series: its components (the master and its RECURRENCE-ID
    overrides) share one UID (RFC 4791 s4.1). Several UIDs, or none, is a problem worth reporting.
    """
    component: ComponentKind | None = None
    uids: set[str] = set()
    depth = 0
    for content in content_lines(raw):
        prop = parse_property(content.unfolded.rstrip())
        if prop is None:
            continue
        name, value = prop.name.upper(), prop.value.strip()
        if name == b"BEGIN":
            depth += 1
            kind = _MAIN.get(value.upper())
            if component is None and kind is not None:
                component = kind
        elif name == b"END":
            depth -= 1
        elif name == b"UID" and value:
            uids.add(value.decode("utf-8", "replace"))
    problem = _problem(component, uids, depth)
    uid = min(uids) if uids else None
    return Identity(component or ComponentKind.UNKNOWN, uid, problem)


def _problem(component: ComponentKind | None, uids: set[str], depth: int) -> str | None:
    if component is None:
        return "no VEVENT, VTODO, VJOURNAL or VCARD in it"
    if depth != 0:
        return "unbalanced BEGIN/END"
    if len(uids) > 1:
        return f"{len(uids)} different UIDs in one resource"
    return None
