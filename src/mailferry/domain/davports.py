"""The interfaces of calendars and address books (CalDAV/CardDAV, a PST's items); adapters/dav,
the memory fakes and the SQL store implement them. Apart from ports.py, whose mail ports every run
loads: a run between two IMAP servers never imports these.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from mailferry.domain.davmodel import (
    Capabilities,
    CollectionInfo,
    CollectionKind,
    Homes,
    ItemRef,
    NewCollection,
    SyncChanges,
)
from mailferry.domain.davmodel import Item as DavItem
from mailferry.domain.davplan import Listed, Recorded
from mailferry.domain.errors import ItemError
from mailferry.domain.items import ItemKey


class CollectionAccount(Protocol):
    """One logged-in CalDAV/CardDAV account (source or target); ``adapters/dav`` and the memory fake.

    Collection-level failures are ``FolderError``; item-level ones ``ItemError`` (a failed
    precondition: ``ItemConflictError``); transport and login: ``ConnectError``/``AuthError``; 429
    and 503: ``ThrottledError`` carrying Retry-After. Methods may be called from several threads
    at once (``put`` is, for bounded concurrent uploads).
    """

    def capabilities(self) -> Capabilities: ...

    def homes(self) -> Homes:
        """The principal and the calendar and address book homes (where collections are made)."""
        ...

    def collections(self) -> list[CollectionInfo]:
        """Every collection under the calendar and address book homes (inbox/outbox included:
        the caller never writes those)."""
        ...

    def items(self, collection: str) -> list[ItemRef]:
        """Every item's href and ETag."""
        ...

    def sync(self, collection: str, token: str | None) -> SyncChanges:
        """RFC 6578: everything (no token) or what changed since ``token``;
        ``SyncTokenInvalidError`` when the token is no longer accepted."""
        ...

    def read(
        self, collection: str, kind: CollectionKind, hrefs: list[str]
    ) -> Iterator[DavItem | ItemError]:
        """The items at ``hrefs`` (multiget, in chunks); an ItemError for each one unreadable."""
        ...

    def put(
        self, href: str, data: bytes, kind: CollectionKind, etag: str | None = None
    ) -> str | None:
        """Create (``If-None-Match: *``) or replace ``etag`` (``If-Match``); the new ETag if said."""
        ...

    def create_collection(self, href: str, new: NewCollection) -> tuple[str, ...]:
        """MKCALENDAR / extended MKCOL; returns the properties the server refused to set."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class CollectionState:
    """Where a source collection goes, and the sync tokens of the last complete pass over it."""

    source: str  # the source collection's href
    target: str  # the target collection's href
    source_token: str | None = None
    target_token: str | None = None


@dataclass(frozen=True)
class ItemIntent:
    """Written before a PUT: enough to recognise the item on the target if we crash."""

    source_href: str
    source_etag: str | None
    key: ItemKey
    target_href: str
    if_match: str | None = None  # an update: the target ETag it replaces


class ItemStateStore(Protocol):
    """The durable memory of a pair's calendars and contacts (one row per source item).

    ``side`` is "source" or "target": the identity cache (href -> ETag, key) of each side lets an
    incremental pass read only the items whose ETag changed.
    """

    def collection_state(self, pair: str, source: str) -> CollectionState | None: ...

    def save_collection_state(self, pair: str, state: CollectionState) -> None: ...

    def forget_collection(self, pair: str, source: str) -> None:
        """Every row, intent, failure and cached identity of one source collection."""
        ...

    def recorded(self, pair: str, source: str) -> list[Recorded]: ...

    def record(self, pair: str, source: str, rows: Sequence[Recorded]) -> None:
        """Upsert rows by source href (found on the target, or updated there)."""
        ...

    def add_item_intents(self, pair: str, source: str, intents: Sequence[ItemIntent]) -> None:
        """Durable (one transaction) before the PUTs they announce are sent."""
        ...

    def item_intents(self, pair: str, source: str) -> list[ItemIntent]: ...

    def resolve_items(
        self, pair: str, source: str, done: Sequence[Recorded], dropped: Sequence[str]
    ) -> None:
        """In one transaction: intents become rows (``done``), or are dropped (source hrefs)."""
        ...

    def identities(self, pair: str, side: str, collection: str) -> list[Listed]: ...

    def save_identities(
        self,
        pair: str,
        side: str,
        collection: str,
        listed: Sequence[Listed],
        removed: Sequence[str],
    ) -> None:
        """Upsert ``listed`` and delete ``removed`` (hrefs) in the identity cache."""
        ...

    def item_failures(self, pair: str, source: str) -> dict[str, str]: ...

    def set_item_failures(self, pair: str, source: str, failures: Mapping[str, str]) -> None:
        """Replace the recorded per-item failures of a collection (source href -> reason)."""
        ...


@runtime_checkable
class ItemNoting(Protocol):
    """A collection source that converts its items (a PST) and knows which ones it handed out not
    quite as it holds them: a recurrence copied as its first occurrence, say. Optional."""

    def notes(self) -> list[str]:
        """One line per item read so far: which item, and what was not kept."""
        ...
