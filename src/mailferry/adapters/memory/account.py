"""An in-memory mail server and account: the fake behind unit tests and the crash state machine.

It keeps IMAP's semantics that matter to a migration (UIDVALIDITY, UIDNEXT, mod-sequences, PERMANENTFLAGS,
APPENDUID) and can be told to break: ``crash_after`` appends raises ConnectError *after* the server stored
the message, which is the window the intent log exists for. ``tests/integration/test_contract.py`` runs the
same checks against it and a real Dovecot so that it cannot drift.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import io
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from mailferry.adapters.occupancy import Occupancy
from mailferry.domain.errors import ConnectError, FolderError
from mailferry.domain.identity import normalise_message_id
from mailferry.domain.model import (
    AppendRequest,
    AppendResult,
    FetchedMessage,
    FolderInfo,
    FolderStatus,
    MessageMeta,
)

_validity = itertools.count(1000)
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _command(method: F) -> F:
    """One thread at a time in a session's commands, as on an IMAP connection: two threads'
    commands on one connection read each other's answers, and a real session then waits for an
    answer that was read already, until its timeout. Refused here at once, with the real
    session's check (adapters/occupancy.py), for tests to see."""

    @functools.wraps(method)
    def one_thread(self: MemoryAccount, *args: Any, **kwargs: Any) -> Any:
        self.check_open()
        with self._occupancy:
            return method(self, *args, **kwargs)

    return cast("F", one_thread)


def _stream(method: Callable[..., Iterator[T]]) -> Callable[..., Iterator[T]]:
    """A FETCH stream: each step is a command's worth of I/O, checked as one, and a stream
    suspended between rows holds nothing (as the real session reads each answer whole and yields
    after it: adapters/occupancy.py). So a stream may be taken over by another thread, but not
    stepped while another thread is inside a command."""

    @functools.wraps(method)
    def stepped(self: MemoryAccount, *args: Any, **kwargs: Any) -> Iterator[T]:
        rows = method(self, *args, **kwargs)
        while True:
            self.check_open()
            with self._occupancy:
                row = next(rows, _END)
            if row is _END:
                return
            yield cast("T", row)

    return stepped


_END = object()


@dataclass
class StoredMessage:
    uid: int
    body: bytes
    flags: frozenset[str]
    internaldate: dt.datetime
    modseq: int


@dataclass
class MemoryFolder:
    name: str
    uidvalidity: int = field(default_factory=lambda: next(_validity))
    uidnext: int = 1
    modseq: int = 1
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    subscribed: bool = False
    special_use: str | None = None
    # Sessions of several lanes append to one folder at once (service/folderlanes.py): each
    # message gets its own UID, as on a real server.
    _adding: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def add(self, body: bytes, flags: frozenset[str], internaldate: dt.datetime) -> int:
        with self._adding:
            uid = self.uidnext
            self.uidnext += 1
            self.modseq += 1
            self.messages[uid] = StoredMessage(uid, body, flags, internaldate, self.modseq)
        return uid

    def set_flags(self, uid: int, flags: frozenset[str]) -> None:
        self.modseq += 1
        message = self.messages[uid]
        message.flags = flags
        message.modseq = self.modseq

    def expunge(self, uid: int) -> None:
        self.modseq += 1
        del self.messages[uid]


@dataclass
class MemoryServer:
    """The mailbox store of one account; accounts are sessions on it."""

    delimiter: str = "/"
    condstore: bool = True
    keywords: bool = True  # False: PERMANENTFLAGS without \\*, so keywords are refused
    max_size: int | None = None  # larger appends are refused with [TOOBIG]
    advertised_limit: int | None = None  # APPENDLIMIT, if the fake should announce one
    rewrites: bool = False  # store a converted copy, as Exchange does (a header is added)
    # As Courier: a folder that never held a message answers every STATUS with a new UIDVALIDITY;
    # the first APPEND settles it (and APPENDUID reports the one that lasts).
    phantom_uidvalidity: bool = False
    refuse_next: list[str] = field(
        default_factory=list
    )  # NO answers for the next appends, in order
    select_seconds: float = 0.0  # how long a SELECT (``permanent_flags``) waits for its answer
    # Called as a LIST-STATUS (``statuses``) starts: a test's probe of what runs at the same time.
    on_statuses: Callable[[], object] | None = None
    folders: dict[str, MemoryFolder] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.folders.setdefault("INBOX", MemoryFolder("INBOX", subscribed=True))

    def folder(self, name: str) -> MemoryFolder:
        key = "INBOX" if name.upper() == "INBOX" else name
        if key not in self.folders:
            raise FolderError(name, "Mailbox doesn't exist")
        return self.folders[key]

    def create(self, name: str, special_use: str | None = None) -> MemoryFolder:
        key = "INBOX" if name.upper() == "INBOX" else name
        if key not in self.folders:
            self.folders[key] = MemoryFolder(key, special_use=special_use)
        return self.folders[key]

    def recreate(self, name: str) -> None:
        """Drop and recreate a folder with the same messages: a new UIDVALIDITY and new UIDs."""
        old = self.folder(name)
        new = MemoryFolder(old.name, subscribed=old.subscribed, special_use=old.special_use)
        for message in sorted(old.messages.values(), key=lambda m: m.uid):
            new.add(message.body, message.flags, message.internaldate)
        self.folders[old.name] = new


class MemoryAccount:
    """A MailAccount session on a MemoryServer."""

    def __init__(
        self,
        server: MemoryServer,
        *,
        crash_after: int | None = None,
        break_listing_after: int | None = None,
    ) -> None:
        self.server = server
        self.crash_after = crash_after  # appends stored before the "connection" breaks
        self.break_listing_after = break_listing_after  # messages a whole-folder listing yields
        self.appends = 0
        # Commands that would each cost a round trip on a server, by name (tests count them).
        self.commands: Counter[str] = Counter()
        self._occupancy = Occupancy()  # one thread at a time in a command (``_command``)
        self.closed = False  # ``close``d: every command fails as on a closed connection

    def check_open(self) -> None:
        """A closed session's commands fail as a real one's do, with a lost connection (a run
        that could not reconnect tries again on the sessions it closed: ``Migration._reopen``)."""
        if self.closed:
            raise ConnectError("the connection is closed")

    @property
    def delimiter(self) -> str:
        return self.server.delimiter

    @property
    def condstore(self) -> bool:
        return self.server.condstore

    @property
    def append_limit(self) -> int | None:
        return self.server.advertised_limit

    @property
    def keeps_bytes(self) -> bool:
        return not self.server.rewrites

    @_command
    def list_folders(self) -> list[FolderInfo]:
        folders: dict[str, FolderInfo] = {}
        for name, folder in self.server.folders.items():
            flags = frozenset({folder.special_use}) if folder.special_use else frozenset()
            folders[name] = FolderInfo(name, self.delimiter, flags, folder.subscribed)
            parts = name.split(self.delimiter)
            for depth in range(1, len(parts)):
                parent = self.delimiter.join(parts[:depth])
                if parent not in self.server.folders and parent not in folders:
                    folders[parent] = FolderInfo(
                        parent, self.delimiter, frozenset({"\\Noselect"}), subscribed=False
                    )
        return sorted(folders.values(), key=lambda f: f.name)

    @_command
    def create_folder(self, name: str) -> None:
        if not name or any(not part for part in name.split(self.delimiter)):
            raise FolderError(name, "invalid mailbox name")
        self.server.create(name)

    @_command
    def subscribe(self, name: str) -> None:
        self.commands["SUBSCRIBE"] += 1
        self.server.folder(name).subscribed = True

    @_command
    def status(self, folder: str) -> FolderStatus:
        self.commands["STATUS"] += 1
        return self._status(folder)

    @_command
    def statuses(self, folders: Sequence[str]) -> dict[str, FolderStatus]:
        """Like one LIST-STATUS: one command, folders that cannot be read left out."""
        self.commands["LIST-STATUS"] += 1
        if self.server.on_statuses is not None:
            self.server.on_statuses()
        found = {}
        for folder in folders:
            with contextlib.suppress(FolderError):
                found[folder] = self._status(folder)
        return found

    def _status(self, folder: str) -> FolderStatus:
        box = self.server.folder(folder)
        if self.server.phantom_uidvalidity and box.uidnext == 1:
            box.uidvalidity = next(_validity)
        modseq = box.modseq if self.condstore else None
        return FolderStatus(box.uidvalidity, box.uidnext, len(box.messages), modseq)

    @_command
    def permanent_flags(self, folder: str) -> frozenset[str]:
        self.server.folder(folder)
        if self.server.select_seconds:
            time.sleep(self.server.select_seconds)
        system = frozenset({"\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted"})
        return system | {"\\*"} if self.server.keywords else system

    @_stream
    def fetch_meta(
        self, folder: str, uids: Sequence[int] | None = None, *, message_ids: bool = False
    ) -> Iterator[MessageMeta]:
        box = self.server.folder(folder)
        wanted = sorted(box.messages) if uids is None else sorted(set(uids) & box.messages.keys())
        for n, uid in enumerate(wanted):
            broken = uids is None and self.break_listing_after is not None
            if broken and n >= (self.break_listing_after or 0):
                raise ConnectError("connection lost while listing (injected)")
            message = box.messages[uid]
            mid = (
                normalise_message_id(_header(message.body, b"message-id")) if message_ids else None
            )
            yield MessageMeta(uid, message.flags, message.internaldate, len(message.body), mid)

    @_stream
    def fetch_flags(
        self, folder: str, changed_since: int | None = None
    ) -> Iterator[tuple[int, frozenset[str]]]:
        box = self.server.folder(folder)
        for uid in sorted(box.messages):
            message = box.messages[uid]
            if changed_since is None or message.modseq > changed_since:
                yield uid, message.flags

    @_command
    def uid_marks(self, folder: str, every: int) -> list[int]:
        """The UIDs of every ``every``-th message (``UidMarks``)."""
        return sorted(self.server.folder(folder).messages)[every - 1 :: every]

    @_command
    def count_changed(self, folder: str, since: int) -> int | None:
        """As ESEARCH COUNT with MODSEQ answers it (``ChangeCounting``)."""
        if not self.condstore:
            return None
        box = self.server.folder(folder)
        return sum(1 for message in box.messages.values() if message.modseq > since)

    @_stream
    def fetch_messages(self, folder: str, metas: Sequence[MessageMeta]) -> Iterator[FetchedMessage]:
        box = self.server.folder(folder)
        for meta in sorted(metas, key=lambda m: m.uid):
            message = box.messages.get(meta.uid)
            if message is not None:
                digest = hashlib.sha256(message.body).hexdigest()
                yield FetchedMessage(meta.uid, len(message.body), digest, io.BytesIO(message.body))

    @_command
    def append_batch(self, folder: str, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        box = self.server.folder(folder)
        results = []
        for request in requests:
            body = request.body.read(request.size)
            if self.server.refuse_next:
                results.append(
                    AppendResult(request.key, ok=False, reason=self.server.refuse_next.pop(0))
                )
                continue
            if not body:  # as Dovecot: "Can't save a zero byte message"
                results.append(
                    AppendResult(request.key, ok=False, reason="Can't save a zero byte message")
                )
                continue
            if self.server.max_size is not None and len(body) > self.server.max_size:
                results.append(
                    AppendResult(request.key, ok=False, reason="[TOOBIG] Message too large")
                )
                continue
            if self.server.rewrites:
                body = b"X-MS-Converted: yes\r\n" + body
            if self.server.phantom_uidvalidity and box.uidnext == 1:
                box.uidvalidity = next(_validity)  # the one that lasts, from the first message on
            uid = box.add(body, request.flags, request.internaldate)
            self.appends += 1
            if self.crash_after is not None and self.appends >= self.crash_after:
                # The server kept the message; its answer never arrives.
                raise ConnectError("connection lost (injected)")
            results.append(
                AppendResult(
                    request.key, ok=True, target_uid=uid, target_uidvalidity=box.uidvalidity
                )
            )
        return results

    @_command
    def store_flags(self, folder: str, updates: Sequence[tuple[int, frozenset[str]]]) -> None:
        box = self.server.folder(folder)
        for uid, flags in updates:
            if uid in box.messages:
                box.set_flags(uid, flags)

    def close(self) -> None:
        self.closed = True


def _header(body: bytes, name: bytes) -> bytes | None:
    head = body.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    for index, line in enumerate(lines):
        if line.lower().startswith(name + b":"):
            block = [line]
            block.extend(itertools.takewhile(lambda x: x[:1] in (b" ", b"\t"), lines[index + 1 :]))
            return b"\r\n".join(block)
    return None
