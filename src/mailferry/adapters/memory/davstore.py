"""One collection of the in-memory DAV server: its properties, its items and their change log.

Every write or removal moves the collection's version on; an item remembers the version of its
last write, a removed href the version of its removal. A sync token names a version, so "what
changed since this token" (RFC 6578) is a filter on those numbers. Tokens older than
``oldest_token`` are refused, as a server that forgets its history does.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from mailferry.adapters.memory.davdata import InvalidDataError, parse
from mailferry.domain.davmodel import CollectionInfo, CollectionKind, ItemRef, NewCollection
from mailferry.domain.errors import ItemError

SYNC_NAMESPACE = "http://mailferry.invalid/ns/sync/"  # RFC 6578 s3.2: a sync token is a URI
CALDAV = "{urn:ietf:params:xml:ns:caldav}"
CARDDAV = "{urn:ietf:params:xml:ns:carddav}"
RESOURCETYPES = {
    CollectionKind.CALENDAR: (f"{CALDAV}calendar",),
    CollectionKind.ADDRESSBOOK: (f"{CARDDAV}addressbook",),
    CollectionKind.SCHEDULE_INBOX: (f"{CALDAV}schedule-inbox",),
    CollectionKind.SCHEDULE_OUTBOX: (f"{CALDAV}schedule-outbox",),
    CollectionKind.OTHER: (),
}

ROOTS = {CollectionKind.CALENDAR: "VCALENDAR", CollectionKind.ADDRESSBOOK: "VCARD"}

_serials = itertools.count(1)
_etags = itertools.count(1)


def new_etag() -> str:
    """A strong ETag no write has had before: it changes on every write, even of the same bytes."""
    return f'"m{next(_etags)}"'


@dataclass
class StoredItem:
    data: bytes
    etag: str
    uid: str | None
    version: int  # the collection's version when it was last written


@dataclass
class MemoryCollection:
    href: str
    kind: CollectionKind
    displayname: str | None = None
    description: str | None = None
    color: str | None = None
    timezone: str | None = None
    components: tuple[str, ...] = ()  # supported-calendar-component-set; empty: any
    refuse_components: set[str] = field(default_factory=set)  # a knob: refused on top of those
    serial: int = field(default_factory=lambda: next(_serials))
    version: int = 0
    oldest_token: int = 0
    items: dict[str, StoredItem] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)

    @classmethod
    def made(cls, href: str, new: NewCollection) -> MemoryCollection:
        return cls(
            href,
            new.kind,
            new.displayname,
            new.description,
            new.color,
            new.timezone,
            new.components,
        )

    @property
    def token(self) -> str:
        return f"{SYNC_NAMESPACE}{self.serial}-{self.version}"

    def version_of(self, token: str) -> int | None:
        """The version ``token`` names, or None when this collection did not issue it."""
        serial, _, version = token.removeprefix(SYNC_NAMESPACE).partition("-")
        if not token.startswith(SYNC_NAMESPACE) or serial != str(self.serial):
            return None
        if not version.isdigit() or not self.oldest_token <= int(version) <= self.version:
            return None
        return int(version)

    def checked(self, href: str, data: bytes) -> str | None:
        """The UID of ``data`` once it passed the syntax and component checks of a PUT."""
        try:
            parsed = parse(data)
        except InvalidDataError as exc:
            raise ItemError(self.href, href, f"PUT: HTTP 400 ({exc})") from exc
        if parsed.root != ROOTS[self.kind]:
            raise ItemError(self.href, href, f"PUT: HTTP 400 ({parsed.root} data)")
        if self.kind is CollectionKind.CALENDAR and not self.accepts(parsed.component):
            reason = f"PUT: HTTP 403 supported-calendar-component ({parsed.component})"
            raise ItemError(self.href, href, reason)
        return parsed.uid

    def precondition_fails(self, href: str, if_match: str | None) -> bool:
        """``If-None-Match: *`` (no ``if_match``: the href is taken) or ``If-Match`` (stale)."""
        current = self.items.get(href)
        if if_match is None:
            return current is not None
        return current is None or current.etag != if_match

    def accepts(self, component: str) -> bool:
        if component in self.refuse_components:
            return False
        return not self.components or component in self.components

    def write(self, href: str, data: bytes, uid: str | None) -> StoredItem:
        self.version += 1
        self.removed.pop(href, None)
        stored = StoredItem(data, new_etag(), uid, self.version)
        self.items[href] = stored
        return stored

    def remove(self, href: str) -> None:
        if self.items.pop(href, None) is not None:
            self.version += 1
            self.removed[href] = self.version

    def forget_tokens(self) -> None:
        """Refuse every token issued so far (the next one, from a full listing, is good)."""
        self.version += 1
        self.oldest_token = self.version

    def holder_of(self, uid: str) -> str | None:
        return next((h for h, item in self.items.items() if item.uid == uid), None)

    def refs(self, since: int = -1) -> tuple[ItemRef, ...]:
        """The items written after version ``since``, in the order they were written."""
        changed = sorted((i.version, h) for h, i in self.items.items() if i.version > since)
        return tuple(ItemRef(h, self.items[h].etag) for _, h in changed)

    def removed_since(self, since: int) -> tuple[str, ...]:
        return tuple(sorted(h for h, version in self.removed.items() if version > since))

    def info(self, max_resource_size: int | None) -> CollectionInfo:
        stores = self.kind in {CollectionKind.CALENDAR, CollectionKind.ADDRESSBOOK}
        return CollectionInfo(
            href=self.href,
            kind=self.kind,
            resourcetype=("{DAV:}collection", *RESOURCETYPES[self.kind]),
            displayname=self.displayname,
            description=self.description,
            color=self.color,
            timezone=self.timezone,
            components=self.components,
            sync_token=self.token,
            ctag=f'"{self.serial}-{self.version}"',
            max_resource_size=max_resource_size if stores else None,
        )
