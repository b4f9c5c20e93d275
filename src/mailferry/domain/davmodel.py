"""What a CalDAV/CardDAV account hands back (``CollectionAccount`` in ports): plain frozen records.

The wire's vocabulary (hrefs, ETags, resource types); the sync service turns them into the
planner's ``Collection``/``Listed`` (domain/items.py, domain/davplan.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class CollectionKind(StrEnum):
    CALENDAR = "calendar"
    ADDRESSBOOK = "addressbook"
    SCHEDULE_INBOX = "schedule-inbox"  # RFC 6638: never written by a migration
    SCHEDULE_OUTBOX = "schedule-outbox"
    OTHER = "other"


@dataclass(frozen=True)
class Homes:
    """Where an account's collections live, as discovered (absolute paths on the server)."""

    principal: str
    calendar_home: str | None
    addressbook_home: str | None


@dataclass(frozen=True)
class CollectionInfo:
    """One collection under a home, with the properties a migration copies or compares."""

    href: str
    kind: CollectionKind
    resourcetype: tuple[str, ...]  # Clark names: "{DAV:}collection", "{urn:...:caldav}calendar"
    displayname: str | None = None
    description: str | None = None
    color: str | None = None
    timezone: str | None = None  # the VCALENDAR text of calendar-timezone
    components: tuple[str, ...] = ()  # supported-calendar-component-set: VEVENT, VTODO, ...
    sync_token: str | None = None
    ctag: str | None = None
    max_resource_size: int | None = None  # RFC 4791 s5.2.5 / RFC 6352 s6.2.3, in octets


@dataclass(frozen=True)
class ItemRef:
    href: str
    etag: str | None


@dataclass(frozen=True)
class Item:
    href: str
    etag: str | None
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class SyncChanges:
    """A ``sync-collection`` answer: the new token, what changed or appeared, what went away."""

    token: str
    changed: tuple[ItemRef, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True)
class Capabilities:
    """What an account's server says it can do (DAV header, collection properties)."""

    auto_schedule: bool = False  # RFC 6638 calendar-auto-schedule: it schedules implicitly
    can_create: bool = (
        True  # MKCALENDAR / extended MKCOL (Google's CalDAV cannot: then tried, refused)
    )
    server: str | None = None  # the Server header, lower case: known quirks are keyed on it


@dataclass(frozen=True)
class NewCollection:
    """What ``create_collection`` writes (MKCALENDAR or extended MKCOL)."""

    kind: CollectionKind
    displayname: str | None = None
    description: str | None = None
    color: str | None = None
    timezone: str | None = None
    components: tuple[str, ...] = ()
