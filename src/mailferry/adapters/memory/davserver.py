"""The in-memory CalDAV/CardDAV server behind ``MemoryDavAccount`` (dav.py): users, their
collections and items, what was "sent", and the checks and knobs of its answers.

It behaves as the contract suite (tests/integration/test_dav_contract.py) finds Radicale and
Xandikos do, and where they differ, as the RFCs say:

- homes as Xandikos lays them out: principal ``/USER/``, calendar home ``/USER/calendars/`` with
  ``calendar/`` (VEVENT, VTODO, VJOURNAL), the schedule ``inbox/`` and ``outbox/`` (RFC 6638:
  listed, never written to), address book home ``/USER/contacts/`` with ``addressbook/``;
- an ETag changes on every write, even of the same bytes; a sync token names a version of its
  collection (``davstore.py``), a token it did not issue is ``SyncTokenInvalidError``;
- ``put``: a parent that does not exist 409 (both servers); not one iCalendar object or vCard,
  or the wrong one, 400 (Radicale); a component the collection does not support 403 (Xandikos);
  ``If-None-Match: *`` on an existing item or a stale ``If-Match`` 412; the UID of another item
  of the collection 409 (RFC 4791 no-uid-conflict; Xandikos answers 412);
- ``create_collection``: over an existing resource 403 (MKCALENDAR) or 405 (MKCOL), where no
  parent is 409, a calendar outside the calendar home (an address book outside its home) 403.

Knobs (constructor arguments, also attributes to change between steps):
  ``ignore_preconditions``  If-None-Match / If-Match are ignored: a put writes anyway
  ``can_create=False``      as Google: create_collection is FolderError 403, capabilities say so
  ``max_resource_size=N``   a put of more bytes is ItemError 413; collections report N
  ``throttle_every=N``      every N-th request (any method, any account of the server) is
                            ThrottledError(wait=``retry_after``) and does nothing
  ``auto_schedule``         RFC 6638 implicit scheduling: every put of a calendar item with
                            ATTENDEEs lacking SCHEDULE-AGENT=CLIENT adds an ``Invitation`` to
                            ``sent`` (so tests can assert that nothing was sent)
  ``reserialise``           iCalendar is stored with each component's properties reordered, as
                            Radicale and Xandikos do (every content line kept)
  ``put_etags=False``       a put answers without ETag (RFC 4791 s5.3.4 lets a server that
                            changed the data do so)
  ``space=N``               bytes of item data the server holds (all users): a put past it is
                            TargetFullError (HTTP 507, as both servers answer on a full disk), a
                            MKCALENDAR/MKCOL once it is reached too
  ``fail_puts``             every put is ServerFaultError (HTTP 500: a server failing)
  ``store_refused``         a put refused by ``space`` or ``fail_puts`` is stored all the same
                            (Radicale writes the item, then its cache fails: 507; Xandikos
                            stores a vCard it answers 500 to)
  ``collection(href).refuse_components = {"VTODO"}``  that collection refuses VTODO items (403)
Helpers for tests, which bypass knobs and checks: ``add_user``, ``collection``, ``store``,
``delete``, ``forget_tokens``.

One lock guards the server: ``put`` is called from several threads at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from mailferry.adapters.memory.davdata import InvalidDataError, invited, parse, reordered
from mailferry.adapters.memory.davstore import MemoryCollection
from mailferry.domain.davmodel import CollectionKind, Homes, NewCollection
from mailferry.domain.errors import (
    AuthError,
    FolderError,
    ItemConflictError,
    ItemError,
    ServerFaultError,
    TargetFullError,
    ThrottledError,
)

SERVER_NAME = "mailferry-memory"
DEFAULT_COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL")


@dataclass(frozen=True)
class Invitation:
    """What a server that schedules implicitly would have mailed."""

    user: str
    href: str
    uid: str | None
    attendees: tuple[str, ...]


@dataclass
class MemoryDavServer:
    """Users (user -> password, None: any), collections by href, what was "sent"; the knobs."""

    ignore_preconditions: bool = False
    can_create: bool = True
    max_resource_size: int | None = None
    throttle_every: int | None = None
    retry_after: float = 0.0
    auto_schedule: bool = False
    reserialise: bool = False
    put_etags: bool = True
    space: int | None = None
    fail_puts: bool = False
    store_refused: bool = False
    sent: list[Invitation] = field(default_factory=list)
    passwords: dict[str, str | None] = field(default_factory=dict)
    collections: dict[str, MemoryCollection] = field(default_factory=dict)
    requests: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # -- helpers for tests: no knob, no check, no request counted --

    def add_user(self, user: str, password: str | None = None) -> None:
        """A user with the default calendar, address book, schedule inbox and outbox."""
        with self.lock:
            if user in self.passwords:
                raise ValueError(f"user {user!r} exists")
            self.passwords[user] = password
            homes = home_of(user)
            calendars, contacts = homes.calendar_home or "", homes.addressbook_home or ""
            for href, kind, components in [
                (calendars + "calendar/", CollectionKind.CALENDAR, DEFAULT_COMPONENTS),
                (calendars + "inbox/", CollectionKind.SCHEDULE_INBOX, ()),
                (calendars + "outbox/", CollectionKind.SCHEDULE_OUTBOX, ()),
                (contacts + "addressbook/", CollectionKind.ADDRESSBOOK, ()),
            ]:
                name = href.rstrip("/").rpartition("/")[2]
                self.collections[href] = MemoryCollection(href, kind, name, components=components)

    def collection(self, href: str) -> MemoryCollection:
        found = self.collections.get(href)
        if found is None:
            raise FolderError(href, "no such collection")
        return found

    def store(self, href: str, data: bytes) -> str:
        """Write an item as it is, whatever it holds (a source's odd data); its new ETag."""
        with self.lock:
            try:
                uid = parse(data).uid
            except InvalidDataError:
                uid = None
            return self.collection(parent(href)).write(href, data, uid).etag

    def delete(self, href: str) -> None:
        with self.lock:
            self.collection(parent(href)).remove(href)

    def forget_tokens(self, href: str) -> None:
        with self.lock:
            self.collection(href).forget_tokens()

    # -- what the accounts call, with the lock held --

    def request(self, user: str, password: str | None) -> None:
        """One request arrives: the login is checked, then the throttle."""
        if user not in self.passwords:
            raise AuthError(f"{SERVER_NAME}: login refused (HTTP 401)")
        known = self.passwords[user]
        if password is not None and known is not None and password != known:
            raise AuthError(f"{SERVER_NAME}: login refused (HTTP 401)")
        self.requests += 1
        if self.throttle_every and self.requests % self.throttle_every == 0:
            raise ThrottledError(
                f"{SERVER_NAME}: HTTP 429, retry after {self.retry_after:.0f}s (injected)",
                self.retry_after,
            )

    def owned(self, user: str, href: str, method: str) -> MemoryCollection:
        """The collection at ``href`` of ``user``; FolderError 404 when there is none."""
        found = self.collections.get(href)
        if found is None or not href.startswith(f"/{user}/"):
            raise FolderError(href, f"{method}: HTTP 404")
        return found

    def write(
        self, user: str, href: str, data: bytes, kind: CollectionKind, if_match: str | None
    ) -> str | None:
        """A PUT: every check a real server makes, then the write; the new ETag if said."""
        target = self._writable(user, href, kind)
        limit = self.max_resource_size
        if limit is not None and len(data) > limit:
            raise ItemError(target.href, href, f"PUT: HTTP 413 (max-resource-size {limit})")
        uid = target.checked(href, data)
        if target.precondition_fails(href, if_match) and not self.ignore_preconditions:
            raise ItemConflictError(target.href, href, 412)
        holder = target.holder_of(uid) if uid else None
        if holder is not None and holder != href:  # RFC 4791 s5.3.2.1 no-uid-conflict
            raise ItemConflictError(target.href, href, 409)
        refusal = self._refusal(
            href, len(data) - len(target.items[href].data if href in target.items else b"")
        )
        if refusal is not None and not self.store_refused:
            raise refusal
        calendar = kind is CollectionKind.CALENDAR
        item = target.write(href, reordered(data) if calendar and self.reserialise else data, uid)
        if refusal is not None:  # stored all the same, and refused
            raise refusal
        attendees = invited(item.data) if calendar and self.auto_schedule else ()
        if attendees:
            self.sent.append(Invitation(user, href, uid, attendees))
        return item.etag if self.put_etags else None

    def used(self) -> int:
        """Bytes of item data stored (what ``space`` limits)."""
        return sum(len(i.data) for c in self.collections.values() for i in c.items.values())

    def _refusal(self, href: str, grows: int) -> ServerFaultError | TargetFullError | None:
        """What a failing or full server answers a put that adds ``grows`` bytes, if anything."""
        if self.fail_puts:
            return ServerFaultError(f"{SERVER_NAME}: PUT {href}: HTTP 500 (injected)")
        if self.space is not None and self.used() + grows > self.space:
            return TargetFullError(f"{SERVER_NAME}: PUT {href}: HTTP 507 Insufficient Storage")
        return None

    def _writable(self, user: str, href: str, kind: CollectionKind) -> MemoryCollection:
        where = parent(href)
        found = self.collections.get(where)
        if not href.startswith(f"/{user}/"):
            raise ItemError(where, href, "PUT: HTTP 403 (not yours)")
        if found is None:  # RFC 4918 s9.7.1: no parent, 409 (as both servers answer)
            raise ItemConflictError(where, href, 409)
        if found.kind not in {CollectionKind.CALENDAR, CollectionKind.ADDRESSBOOK}:
            raise ItemError(where, href, f"PUT: HTTP 403 (a {found.kind} collection)")
        if found.kind is not kind:
            raise ItemError(where, href, f"PUT: HTTP 415 ({kind} data in a {found.kind})")
        return found

    def make(self, user: str, href: str, new: NewCollection) -> None:
        """MKCALENDAR or extended MKCOL at ``href`` (ending in "/")."""
        calendar = new.kind is CollectionKind.CALENDAR
        method = "MKCALENDAR" if calendar else "MKCOL"
        if not self.can_create:
            raise FolderError(href, f"{method}: HTTP 403 (this server makes no collections)")
        if self.space is not None and self.used() >= self.space:
            raise TargetFullError(f"{SERVER_NAME}: {method} {href}: HTTP 507 Insufficient Storage")
        homes = home_of(user)
        existing = {homes.principal, homes.calendar_home, homes.addressbook_home, *self.collections}
        if href in existing:  # RFC 4791 s5.3.1 resource-must-be-null; RFC 4918 s9.3.1
            raise FolderError(href, f"{method}: HTTP {403 if calendar else 405}")
        if parent(href) not in existing:
            raise FolderError(href, f"{method}: HTTP 409 (no parent)")
        if parent(href) != (homes.calendar_home if calendar else homes.addressbook_home):
            raise FolderError(href, f"{method}: HTTP 403 (not in its home)")
        if not calendar:  # an extended MKCOL sets only these (adapters/dav/collections.py)
            new = NewCollection(new.kind, new.displayname, new.description)
        self.collections[href] = MemoryCollection.made(href, new)


def home_of(user: str) -> Homes:
    return Homes(f"/{user}/", f"/{user}/calendars/", f"/{user}/contacts/")


def parent(href: str) -> str:
    return href.rstrip("/").rpartition("/")[0] + "/"
