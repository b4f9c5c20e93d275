"""The ports of Microsoft 365 mailboxes moved through Graph's mailbox import/export API: the
mailbox (``ExchangeMailbox``) and the durable state of a pair (``MailboxStateStore``); re-exported
by ``ports``.

A pass over a folder is flat in the folder's size: the mailbox hands its listing out a page at a
time, and the state answers by id for a window of entries (``copies_of``) and keeps the lists a
pass needs across windows (the target folder's entries by key, the ids a whole pass saw, the ids
this run imported) as scratch ``Listing`` rows, not in memory.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from mailferry.domain.errors import ItemError
from mailferry.domain.mailboxmodel import (
    EntryPage,
    Exported,
    Imported,
    Listing,
    MailboxEntry,
    MailboxFolder,
)
from mailferry.domain.mailboxplan import Copy, ImportIntent
from mailferry.domain.mailboxreport import Doubt


class ExchangeMailbox(Protocol):
    """One Microsoft 365 mailbox through Graph's mailbox import/export API (``adapters/graph``;
    the memory fake). Folder failures are ``FolderError``, item failures ``ItemError`` (the
    collection is the folder id, the href the item id); transport and login ``ConnectError`` /
    ``AuthError``; a delta token no longer accepted ``SyncTokenInvalidError``. An ``import_item``
    that raises ``ConnectError`` may or may not have created the item: its intent decides.
    Thread-safe: several imports of one mailbox go at once (Graph allows 4 concurrent requests)."""

    def folders(self) -> list[MailboxFolder]:
        """Every folder under the root (every class), parents before children."""
        ...

    def create_folder(self, parent_id: str | None, name: str, folder_class: str) -> MailboxFolder:
        """A new folder of ``folder_class`` under ``parent_id`` (None: the root)."""
        ...

    def entries(self, folder_id: str, token: str | None) -> Iterator[EntryPage]:
        """Every item (``token`` None) or what changed since ``token`` (a delta query), a page
        at a time (the next delta token on the last); errors come while iterating, a refused
        token with the first page."""
        ...

    def export(self, ids: Sequence[str]) -> Iterator[Exported | ItemError]:
        """The opaque stream of each item (in calls of at most 20 ids), or the error of each."""
        ...

    def import_item(
        self, folder_id: str, data: bytes, replace: tuple[str, str] | None = None
    ) -> Imported:
        """Create an item from an exported stream, or (``replace`` = target id, change key)
        replace that item's content (Graph's ``Mode: update``)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Metered(Protocol):
    """A side that can say how often it was throttled (Graph's 429/503 waited out by its session):
    the summary's ``throttled`` and ``waited_seconds``. Optional: a side without it counts 0."""

    def throttling(self) -> tuple[int, float]:
        """(answers waited out, seconds waited) since the side was opened."""
        ...


@dataclass(frozen=True)
class MailboxFolderState:
    """Where a source folder goes, and the delta token of the last complete pass over it."""

    source: str  # the source folder's id
    target: str  # the target folder's id
    token: str | None = None


class MailboxStateStore(Protocol):
    """The durable memory of a pair of Microsoft 365 mailboxes (one row per source item), keyed
    by (pair, source folder id) like ``ItemStateStore`` by source collection."""

    def folder_state(self, pair: str, source: str) -> MailboxFolderState | None: ...

    def folder_states(self, pair: str) -> list[MailboxFolderState]:
        """Every folder of the pair (the mapping an earlier run chose)."""
        ...

    def save_folder_state(self, pair: str, state: MailboxFolderState) -> None: ...

    def forget_folder(self, pair: str, source: str) -> None:
        """Every row, intent and failure of one source folder, and its folder state (not its
        doubts: they go only once reported, see ``forget_doubts``)."""
        ...

    def copies(self, pair: str, source: str) -> list[Copy]:
        """Every row of a folder (verify, tests; a pass asks ``copies_of`` a window at a time)."""
        ...

    def copies_of(self, pair: str, source: str, source_ids: Sequence[str]) -> dict[str, Copy]:
        """The rows of these source ids (those that have one), by source id."""
        ...

    def has_copies(self, pair: str, source: str) -> bool: ...

    def record_copies(self, pair: str, source: str, rows: Sequence[Copy]) -> None:
        """Upsert rows by source id (found on the target, or imported there)."""
        ...

    def forget_copies(self, pair: str, source: str, source_ids: Sequence[str]) -> None:
        """Drop the rows of items removed on the source (their copies stay on the target)."""
        ...

    def add_import_intents(
        self,
        pair: str,
        source: str,
        intents: Sequence[ImportIntent],
        doubts: Sequence[Doubt] = (),
    ) -> None:
        """Durable (one transaction) before the imports they announce are sent; with them the
        doubts of the imports that may make a second copy (upserted by source id)."""
        ...

    def import_intents(self, pair: str, source: str) -> list[ImportIntent]: ...

    def resolve_imports(
        self,
        pair: str,
        source: str,
        done: Sequence[Copy],
        dropped: Sequence[str],
        doubts: Sequence[Doubt] = (),
    ) -> None:
        """In one transaction: intents become rows (``done``), or are dropped (source ids); the
        source ids of ``done`` are also listed as ``Listing.WRITTEN``; ``doubts`` (of dropped
        intents whose import may have landed) are kept."""
        ...

    def doubts(self, pair: str) -> list[Doubt]:
        """Every doubt of the pair not yet reported by a run that finished, by folder and id."""
        ...

    def forget_doubts(self, pair: str, doubts: Sequence[Doubt]) -> None:
        """These doubts were reported (by source folder and id)."""
        ...

    # -- scratch listings of one pass (rows outside the durable truth: dropped at will) -----------
    def add_listed(
        self, pair: str, source: str, side: Listing, entries: Sequence[MailboxEntry]
    ) -> None:
        """Upsert ``entries`` in the folder's ``side`` list (SOURCE and WRITTEN keep ids only)."""
        ...

    def listed(
        self, pair: str, source: str, side: Listing, ids: Sequence[str]
    ) -> dict[str, MailboxEntry]:
        """The entries of ``side`` with these ids (those listed), by id."""
        ...

    def free_copies(self, pair: str, source: str, keys: Collection[str]) -> list[MailboxEntry]:
        """The TARGET entries with one of ``keys`` that are neither claimed nor a row's target
        item, ordered by id."""
        ...

    def claim_copies(self, pair: str, source: str, target_ids: Sequence[str]) -> None:
        """These TARGET entries are taken: ``free_copies`` no longer offers them."""
        ...

    def has_strangers(self, pair: str, source: str) -> bool:
        """Whether a TARGET entry is no row's target item (a keyless copy may be among them)."""
        ...

    def unlisted_copies(self, pair: str, source: str, limit: int) -> list[str]:
        """Source ids (at most ``limit``) of rows whose id is not in the SOURCE list."""
        ...

    def forget_listed(self, pair: str, source: str, sides: Collection[Listing]) -> None: ...

    def mailbox_failures(self, pair: str, source: str) -> dict[str, str]: ...

    def set_mailbox_failures(self, pair: str, source: str, failures: Mapping[str, str]) -> None:
        """Replace the recorded per-item failures of a folder (source id -> reason)."""
        ...

    def close(self) -> None: ...
