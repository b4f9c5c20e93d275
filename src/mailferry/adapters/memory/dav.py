"""An in-memory CalDAV/CardDAV server and account: the fake behind the calendar and contact tests.

``MemoryDavServer`` holds users, their collections and items; ``MemoryDavAccount(server, user)``
is one logged-in session on it, a ``CollectionAccount`` (domain/ports.py). It behaves as the
contract suite (tests/integration/test_dav_contract.py) finds Radicale and Xandikos do, and where
they differ, as the RFCs say:

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

Knobs on the server (constructor arguments, also attributes to change between steps):
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
  ``collection(href).refuse_components = {"VTODO"}``  that collection refuses VTODO items (403)
Knobs on the account (constructor arguments), counted over that account's puts:
  ``crash_after_puts=N``    the N+1-th put is stored, then ``SimulatedCrash`` (kill -9 after the
                            write; every later call raises it too: the process is dead)
  ``drop_every=N``          every N-th put is stored, then ConnectError (the answer is lost); with
                            ``drop_before_write`` the ConnectError comes before anything is stored
Helpers for tests, which bypass knobs and checks: ``add_user``, ``collection``, ``store``,
``delete``, ``forget_tokens``.

One lock guards the server: ``put`` is called from several threads at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Self

from mailferry.adapters.memory.davdata import InvalidDataError, invited, parse, reordered
from mailferry.adapters.memory.davstore import MemoryCollection
from mailferry.domain.davmodel import (
    Capabilities,
    CollectionInfo,
    CollectionKind,
    Homes,
    Item,
    ItemRef,
    NewCollection,
    SyncChanges,
)
from mailferry.domain.errors import (
    AuthError,
    ConnectError,
    FolderError,
    ItemConflictError,
    ItemError,
    SyncTokenInvalidError,
    ThrottledError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

SERVER_NAME = "mailferry-memory"
MULTIGET_CHUNK = 100
DEFAULT_COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL")


class SimulatedCrash(BaseException):
    """The client process died (kill -9): not an ``Exception``, so no handler in the service
    catches it, as a dead process runs no handler."""


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
        calendar = kind is CollectionKind.CALENDAR
        item = target.write(href, reordered(data) if calendar and self.reserialise else data, uid)
        attendees = invited(item.data) if calendar and self.auto_schedule else ()
        if attendees:
            self.sent.append(Invitation(user, href, uid, attendees))
        return item.etag if self.put_etags else None

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


class MemoryDavAccount:
    """A ``CollectionAccount`` session of ``user`` on a ``MemoryDavServer``.

    ``password``: checked against the user's when both are set (a wrong one is AuthError on the
    first request, as a real server answers 401); None logs in without one.
    """

    def __init__(
        self,
        server: MemoryDavServer,
        user: str,
        password: str | None = None,
        *,
        crash_after_puts: int | None = None,
        drop_every: int | None = None,
        drop_before_write: bool = False,
    ) -> None:
        self.server = server
        self.user = user
        self._password = password
        self.crash_after_puts = crash_after_puts
        self.drop_every = drop_every
        self.drop_before_write = drop_before_write
        self.puts = 0
        self.crashed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        pass

    def _request(self) -> None:
        if self.crashed:
            raise SimulatedCrash(f"{self.user}: the client died after put {self.puts}")
        self.server.request(self.user, self._password)

    def homes(self) -> Homes:
        with self.server.lock:
            self._request()
            return home_of(self.user)

    def capabilities(self) -> Capabilities:
        with self.server.lock:
            self._request()
            server = self.server
            return Capabilities(
                auto_schedule=server.auto_schedule,
                can_create=server.can_create,
                server=SERVER_NAME,
            )

    def collections(self) -> list[CollectionInfo]:
        with self.server.lock:
            self._request()
            mine = [c for h, c in self.server.collections.items() if h.startswith(f"/{self.user}/")]
            return [c.info(self.server.max_resource_size) for c in mine]

    def items(self, collection: str) -> list[ItemRef]:
        with self.server.lock:
            self._request()
            return sorted(self.server.owned(self.user, collection, "PROPFIND").refs(), key=_href)

    def sync(self, collection: str, token: str | None) -> SyncChanges:
        with self.server.lock:
            self._request()
            found = self.server.owned(self.user, collection, "REPORT")
            if token is None:
                return SyncChanges(found.token, found.refs(), ())
            since = found.version_of(token)
            if since is None:
                raise SyncTokenInvalidError(
                    collection, "the server no longer accepts this sync token"
                )
            return SyncChanges(found.token, found.refs(since), found.removed_since(since))

    def read(
        self, collection: str, kind: CollectionKind, hrefs: list[str], chunk: int = MULTIGET_CHUNK
    ) -> Iterator[Item | ItemError]:
        """As a multiget REPORT per ``chunk`` hrefs; an href not in the collection is missing."""
        del kind  # the report's name: the fake answers both alike
        for start in range(0, len(hrefs), chunk):
            with self.server.lock:
                self._request()
                found = self.server.owned(self.user, collection, "REPORT")
                answers = [_answer(found, href) for href in hrefs[start : start + chunk]]
            yield from answers

    def get(self, href: str) -> Item:
        with self.server.lock:
            self._request()
            found = self.server.collections.get(parent(href))
            stored = found.items.get(href) if found and href.startswith(f"/{self.user}/") else None
            if stored is None:
                raise ItemError(parent(href), href, "GET: HTTP 404")
            return Item(href, stored.etag, stored.data)

    def put(
        self, href: str, data: bytes, kind: CollectionKind, etag: str | None = None
    ) -> str | None:
        """Create (``etag`` None: ``If-None-Match: *``) or replace ``etag`` (``If-Match``).

        The account's knobs act around the server's answer: a drop before the write sends
        nothing; a crash or a drop after it loses the answer of a put the server handled.
        """
        with self.server.lock:
            self._request()
            self.puts += 1
            dropped = bool(self.drop_every) and self.puts % (self.drop_every or 1) == 0
            if dropped and self.drop_before_write:
                raise ConnectError(f"{SERVER_NAME}: PUT {href}: connection lost (injected)")
            try:
                return self.server.write(self.user, href, data, kind, etag)
            finally:
                self._answer_lost(href, dropped=dropped)

    def _answer_lost(self, href: str, *, dropped: bool) -> None:
        if self.crash_after_puts is not None and self.puts > self.crash_after_puts:
            self.crashed = True
            raise SimulatedCrash(f"{self.user}: killed after put {self.puts} ({href})")
        if dropped:
            raise ConnectError(f"{SERVER_NAME}: PUT {href}: the answer was lost (injected)")

    def create_collection(self, href: str, new: NewCollection) -> tuple[str, ...]:
        """MKCALENDAR / extended MKCOL; the fake sets every property (refuses none)."""
        if new.kind not in {
            CollectionKind.CALENDAR,
            CollectionKind.ADDRESSBOOK,
        }:  # as adapters/dav/collections.mkcol_request
            raise ValueError(f"cannot create a collection of kind {new.kind}")
        with self.server.lock:
            self._request()
            self.server.make(self.user, href if href.endswith("/") else href + "/", new)
            return ()


def _href(ref: ItemRef) -> str:
    return ref.href


def _answer(collection: MemoryCollection, href: str) -> Item | ItemError:
    stored = collection.items.get(href)
    if stored is None:
        return ItemError(collection.href, href, "not readable (404)")
    return Item(href, stored.etag, stored.data)


if TYPE_CHECKING:
    from mailferry.domain.ports import CollectionAccount

    def _is_a_collection_account(account: MemoryDavAccount) -> CollectionAccount:
        return account  # mypy checks the fake against the port here
