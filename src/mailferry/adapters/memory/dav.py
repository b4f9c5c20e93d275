"""An in-memory CalDAV/CardDAV account: the fake behind the calendar and contact tests.

``MemoryDavServer`` (davserver.py) holds users, their collections and items, and the knobs of its
answers; ``MemoryDavAccount(server, user)`` is one logged-in session on it, a
``CollectionAccount`` (domain/davports.py). Both behave as the contract suite
(tests/integration/test_dav_contract.py) finds Radicale and Xandikos do.

Knobs on the account (constructor arguments), counted over that account's puts:
  ``crash_after_puts=N``    the N+1-th put is stored, then ``SimulatedCrash`` (kill -9 after the
                            write; every later call raises it too: the process is dead)
  ``drop_every=N``          every N-th put is stored, then ConnectError (the answer is lost); with
                            ``drop_before_write`` the ConnectError comes before anything is stored
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

from mailferry.adapters.memory.davserver import (
    SERVER_NAME,
    Invitation,
    MemoryDavServer,
    home_of,
    parent,
)
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
from mailferry.domain.errors import ConnectError, ItemError, SyncTokenInvalidError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

    from mailferry.adapters.memory.davstore import MemoryCollection

__all__ = ["Invitation", "MemoryDavAccount", "MemoryDavServer", "SimulatedCrash"]

MULTIGET_CHUNK = 100


class SimulatedCrash(BaseException):
    """The client process died (kill -9): not an ``Exception``, so no handler in the service
    catches it, as a dead process runs no handler."""


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
    from mailferry.domain.davports import CollectionAccount

    def _is_a_collection_account(account: MemoryDavAccount) -> CollectionAccount:
        return account  # mypy checks the fake against the port here
