"""A strict in-memory Microsoft 365 mailbox: ``ExchangeMailbox`` for unit tests and the machines.

``MemoryExchange`` is the "server" (folders of every class, items with change keys, a sequence
number per change for delta tokens) with the knobs tests need; ``MemoryMailbox`` is the port on
it. The semantics are the port's docstrings, no more: what Graph refuses is refused here too
(more than 20 ids in one export, ``Mode: update`` with a change key that is not the item's, a
folder name its parent already holds, a delta token of another folder or an expired one).

The export stream is this fake's own encoding (a magic line, then JSON): opaque to mailferry,
which only hands it from one side to the other, as it does Exchange's FastTransfer streams. An
imported item keeps the class, key and content of its stream; its id and change key are new.

Knobs: ``fail_imports(ANSWER_LOST, NOT_SENT, ...)`` makes the next imports fail with
``ConnectError``, each after storing the item (its answer was lost) or before; ``fail_exports`` ids whose
export is an ``ItemError``; ``expire_tokens()``; ``add``/``change``/``delete`` change the "server"
between passes; ``concurrency`` answers a request over that many in flight with ``ThrottledError``
(Graph's 429 for a 5th concurrent request); ``delay`` seconds per request (the benchmark's round
trip); ``max_import`` bytes (Graph's 150 MB).
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum

from mailferry.domain.errors import (
    ConnectError,
    FolderError,
    ItemConflictError,
    ItemError,
    SyncTokenInvalidError,
    ThrottledError,
)
from mailferry.domain.mailboxmodel import (
    EntryPage,
    Exported,
    Imported,
    MailboxEntry,
    MailboxFolder,
)

MAGIC = b"MAILFERRY-FAKE-FTS 1\n"
MAX_EXPORT_IDS = 20
PAGE = 100  # entries per listing page (Graph's usual)
MAX_IMPORT = 150 * 1024 * 1024
WELL_KNOWN = (
    ("Inbox", "IPF.Note", "inbox"),
    ("Sent Items", "IPF.Note", "sentitems"),
    ("Drafts", "IPF.Note", "drafts"),
    ("Deleted Items", "IPF.Note", "deleteditems"),
    ("Junk Email", "IPF.Note", "junkemail"),
    ("Archive", "IPF.Note", "archive"),
    ("Outbox", "IPF.Note", "outbox"),
    ("Calendar", "IPF.Appointment", "calendar"),
    ("Contacts", "IPF.Contact", "contacts"),
    ("Tasks", "IPF.Task", "tasks"),
    ("Notes", "IPF.StickyNote", "notes"),
)


class ImportFault(StrEnum):
    ANSWER_LOST = "answer-lost"  # the item is stored, then the connection drops
    NOT_SENT = "not-sent"  # the connection drops before the item arrives


ANSWER_LOST, NOT_SENT = ImportFault.ANSWER_LOST, ImportFault.NOT_SENT
AUTO_KEY = "(auto)"  # ``add``'s default: a unique key made up from the item's number


@dataclass
class FakeItem:
    id: str
    change_key: str
    item_class: str
    key: str | None
    body: bytes = field(repr=False)
    seq: int = 0


@dataclass
class FakeFolder:
    id: str
    parent_id: str | None
    name: str
    folder_class: str
    well_known: str | None = None
    items: dict[str, FakeItem] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)  # item id -> seq of its removal


def _seq(item: FakeItem) -> int:
    return item.seq


def encode(item_class: str, key: str | None, body: bytes) -> bytes:
    """The fake's export stream of an item."""
    payload = {"class": item_class, "key": key, "body": base64.b64encode(body).decode()}
    return MAGIC + json.dumps(payload, sort_keys=True).encode()


def decode(data: bytes) -> tuple[str, str | None, bytes] | None:
    """(class, key, body) of a stream this fake exported; None for anything else."""
    if not data.startswith(MAGIC):
        return None
    try:
        payload = json.loads(data[len(MAGIC) :])
        return str(payload["class"]), payload["key"], base64.b64decode(payload["body"])
    except (ValueError, KeyError, TypeError):
        return None


class MemoryExchange:
    """One mailbox's server side; every method is atomic under one lock."""

    def __init__(self, name: str = "mbx", *, well_known: bool = True) -> None:
        self.name = name
        self.lock = threading.RLock()
        self.folders: dict[str, FakeFolder] = {}  # in creation order: parents before children
        self.seq = 0
        self.epoch = 0
        self._ids = itertools.count(1)
        self.fail_exports: set[str] = set()
        self._import_faults: list[ImportFault] = []
        self.concurrency: int | None = None
        self.delay = 0.0
        self.max_import = MAX_IMPORT
        self.in_flight = self.max_in_flight = 0
        self.requests = self.imports = self.exports = self.throttled = 0
        if well_known:
            for name_, folder_class, known in WELL_KNOWN:
                self.add_folder(name_, folder_class, well_known=known)

    # -- the server side: what tests change between passes ----------------------------------------
    def add_folder(
        self,
        name: str,
        folder_class: str = "IPF.Note",
        parent: str | None = None,
        *,
        well_known: str | None = None,
    ) -> str:
        with self.lock:
            if parent is not None and parent not in self.folders:
                raise FolderError(parent, "no such folder")
            siblings = [f for f in self.folders.values() if f.parent_id == parent]
            if any(f.name.casefold() == name.casefold() for f in siblings):
                raise FolderError(name, "409 ErrorFolderExists: the parent holds that name")
            folder_id = f"{self.name}-f{next(self._ids)}"
            self.folders[folder_id] = FakeFolder(folder_id, parent, name, folder_class, well_known)
            return folder_id

    def well_known(self, name: str) -> str:
        return next(f.id for f in self.folders.values() if f.well_known == name)

    def add(
        self,
        folder_id: str,
        body: bytes | str,
        *,
        item_class: str = "IPM.Note",
        key: str | None = AUTO_KEY,
    ) -> str:
        """A new item (as if delivered or created by a client); ``key`` defaults to a unique one."""
        with self.lock:
            n = next(self._ids)
            item_id = f"{self.name}-i{n}"
            real_key = f"<{n}@{self.name}.example>" if key == AUTO_KEY else key
            data = body.encode() if isinstance(body, str) else body
            self.store_item(self.folders[folder_id], item_id, item_class, real_key, data)
            return item_id

    def change(self, item_id: str, body: bytes | str) -> None:
        with self.lock:
            folder, item = self.find(item_id)
            data = body.encode() if isinstance(body, str) else body
            self.store_item(folder, item_id, item.item_class, item.key, data)

    def delete(self, item_id: str) -> None:
        with self.lock:
            folder, _item = self.find(item_id)
            del folder.items[item_id]
            self.seq += 1
            folder.removed[item_id] = self.seq

    def expire_tokens(self) -> None:
        """Every delta token handed out so far is refused from now on."""
        with self.lock:
            self.epoch += 1

    def fail_imports(self, *faults: ImportFault) -> None:
        """The next ``len(faults)`` imports raise ``ConnectError``, after storing the item
        (ANSWER_LOST) or before (NOT_SENT)."""
        with self.lock:
            self._import_faults.extend(faults)

    def clear_faults(self) -> None:
        """Import faults not consumed yet are dropped."""
        with self.lock:
            self._import_faults.clear()

    def find(self, item_id: str) -> tuple[FakeFolder, FakeItem]:
        with self.lock:
            for folder in self.folders.values():
                if item_id in folder.items:
                    return folder, folder.items[item_id]
        raise KeyError(item_id)

    def items(self, folder_id: str) -> list[FakeItem]:
        with self.lock:
            return sorted(self.folders[folder_id].items.values(), key=lambda i: i.seq)

    def next_id(self) -> int:
        return next(self._ids)

    def store_item(
        self, folder: FakeFolder, item_id: str, item_class: str, key: str | None, body: bytes
    ) -> FakeItem:
        self.seq += 1
        item = FakeItem(item_id, f"ck-{self.name}-{self.seq}", item_class, key, body, self.seq)
        folder.items[item_id] = item
        folder.removed.pop(item_id, None)
        return item

    # -- requests -----------------------------------------------------------------------------------
    @contextmanager
    def request(self) -> Iterator[None]:
        """One request: counted, throttled over ``concurrency`` in flight, ``delay`` long."""
        with self.lock:
            self.requests += 1
            if self.concurrency is not None and self.in_flight >= self.concurrency:
                self.throttled += 1
                raise ThrottledError("429: too many concurrent requests", wait=0.0)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                time.sleep(self.delay)
            yield
        finally:
            with self.lock:
                self.in_flight -= 1

    def import_fault(self) -> ImportFault | None:
        with self.lock:
            return self._import_faults.pop(0) if self._import_faults else None


class MemoryMailbox:
    """``ExchangeMailbox`` on a ``MemoryExchange``; ``close()`` ends it (later calls fail)."""

    def __init__(self, server: MemoryExchange) -> None:
        self.server = server
        self.closed = False

    def _open(self) -> None:
        if self.closed:
            raise ConnectError("the mailbox session is closed")

    def throttling(self) -> tuple[int, float]:
        return 0, 0.0  # a ThrottledError reaches the caller: it counts its own waits

    def folders(self) -> list[MailboxFolder]:
        self._open()
        with self.server.request(), self.server.lock:
            return [
                MailboxFolder(f.id, f.parent_id, f.name, f.folder_class, f.well_known, len(f.items))
                for f in self.server.folders.values()
            ]

    def create_folder(self, parent_id: str | None, name: str, folder_class: str) -> MailboxFolder:
        self._open()
        with self.server.request():
            folder_id = self.server.add_folder(name, folder_class, parent_id)
        return MailboxFolder(folder_id, parent_id, name, folder_class, None, 0)

    def entries(self, folder_id: str, token: str | None) -> Iterator[EntryPage]:
        """Pages of ``PAGE`` entries, each one request, in change order: the changes up to the
        first page's moment (later ones come with the next token, as a delta round's do)."""
        self._open()
        round_: tuple[int, int, int] | None = None  # (since, upto, epoch) of this round
        after = 0
        while True:
            with self.server.request(), self.server.lock:
                folder = self.server.folders.get(folder_id)
                if folder is None:
                    raise FolderError(folder_id, "404: no such folder")
                if round_ is None:
                    since = 0 if token is None else self._since(folder_id, token)
                    round_, after = (since, self.server.seq, self.server.epoch), since
                since, upto, epoch = round_
                page = self._page(folder, after, upto)
                removed = tuple(
                    sorted(i for i, seq in folder.removed.items() if since < seq <= upto)
                )
            if len(page) > PAGE:
                after = page[PAGE - 1][0]
                yield EntryPage(tuple(entry for _, entry in page[:PAGE]))
                continue
            last = tuple(entry for _, entry in page)
            yield EntryPage(last, removed if token else (), f"{folder_id}|{epoch}|{upto}")
            return

    @staticmethod
    def _page(folder: FakeFolder, after: int, upto: int) -> list[tuple[int, MailboxEntry]]:
        """Up to PAGE + 1 entries changed in (after, upto], by change."""
        fresh = sorted((i for i in folder.items.values() if after < i.seq <= upto), key=_seq)
        return [
            (i.seq, MailboxEntry(i.id, i.change_key, i.item_class, len(i.body), i.key))
            for i in fresh[: PAGE + 1]
        ]

    def _since(self, folder_id: str, token: str) -> int:
        parts = token.split("|")
        if len(parts) != 3 or parts[0] != folder_id or not parts[2].isdigit():
            raise SyncTokenInvalidError(folder_id, "not a delta token of this folder")
        if parts[1] != str(self.server.epoch):
            raise SyncTokenInvalidError(folder_id, "410: the delta token expired")
        return int(parts[2])

    def export(self, ids: Sequence[str]) -> Iterator[Exported | ItemError]:
        self._open()
        if not ids or len(ids) > MAX_EXPORT_IDS:
            raise ValueError(f"exportItems takes 1 to {MAX_EXPORT_IDS} ids, not {len(ids)}")
        with self.server.request(), self.server.lock:
            self.server.exports += 1
            return iter([self._export_one(item_id) for item_id in ids])

    def _export_one(self, item_id: str) -> Exported | ItemError:
        try:
            folder, item = self.server.find(item_id)
        except KeyError:
            return ItemError("", item_id, "404 ErrorItemNotFound")
        if item_id in self.server.fail_exports:
            return ItemError(folder.id, item_id, "500 ErrorInternalServerError (fault)")
        return Exported(item.id, item.change_key, encode(item.item_class, item.key, item.body))

    def import_item(
        self, folder_id: str, data: bytes, replace: tuple[str, str] | None = None
    ) -> Imported:
        self._open()
        with self.server.request(), self.server.lock:
            self.server.imports += 1
            folder = self.server.folders.get(folder_id)
            if folder is None:
                raise FolderError(folder_id, "404: no such folder")
            target = replace[0] if replace else "(new)"
            if len(data) > self.server.max_import:
                raise ItemError(folder_id, target, f"413: over {self.server.max_import} bytes")
            decoded = decode(data)
            if decoded is None:
                raise ItemError(folder_id, target, "400: the data is not an exported item")
            fault = self.server.import_fault()
            if fault is NOT_SENT:
                raise ConnectError("connection dropped before the import arrived")
            item = self._put(folder, decoded, replace)
            if fault is ANSWER_LOST:
                raise ConnectError("connection dropped before the import's answer")
            return Imported(item.id, item.change_key)

    def _put(
        self,
        folder: FakeFolder,
        decoded: tuple[str, str | None, bytes],
        replace: tuple[str, str] | None,
    ) -> FakeItem:
        item_class, key, body = decoded
        if replace is None:
            item_id = f"{self.server.name}-i{self.server.next_id()}"
            return self.server.store_item(folder, item_id, item_class, key, body)
        item_id, change_key = replace
        there = folder.items.get(item_id)
        if there is None or there.change_key != change_key:
            raise ItemConflictError(folder.id, item_id, 412)
        return self.server.store_item(folder, item_id, item_class, key, body)

    def close(self) -> None:
        self.closed = True
