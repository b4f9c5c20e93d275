"""The MailAccount port over files: what Maildir, mbox and EML sources share.

UIDs. A file has no UIDs, and a source is never written to (no sidecar on a read-only share), so
they are derived: the messages of a folder in a stable order (file names, offsets in an mbox) get
UIDs 1..N, and the folder's UIDVALIDITY is a digest of that whole listing, never of flags: Maildir
file names (unique per delivery), mbox separator lines with each message's size and content hash,
EML names with size and time. Any change to a folder other than a flag change, including a message
added, gives it a new UIDVALIDITY: the next pass over it matches afresh by Message-ID or content
hash (``service/planning.py``, lost-state matching), which copies nothing twice; a folder that did
not change is planned incrementally. Flag changes keep the UIDVALIDITY and are carried as usual.
A file target reports the UIDVALIDITY its appends leave (``AppendResult.target_uidvalidity``), so
the next run sees its own writes as no change.

Messages are handed out with bare LFs as CRLF (``rfc822``). A message that cannot be read (an
unreadable file, bytes that are no message, a cut-off mbox tail) is listed, and ``fetch_messages``
yields a ``MessageError`` naming the file and the reason in its place: the run records it and goes
on with the rest.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from mailferry.adapters.files import rfc822
from mailferry.domain.errors import FolderError, MessageError
from mailferry.domain.model import (
    SYSTEM_FLAGS,
    AppendRequest,
    AppendResult,
    FetchedMessage,
    FolderInfo,
    FolderStatus,
    MessageMeta,
)


@dataclass(frozen=True)
class Entry:
    """One message as a folder listing knows it without reading it."""

    flags: frozenset[str]
    internaldate: dt.datetime
    size: int | None  # the CRLF size, when the listing knows it (Maildir ``W=``, a scanned mbox)


class Listing(Protocol):
    """The messages of one folder, in UID order (index i has UID i + 1)."""

    @property
    def uidvalidity(self) -> int: ...

    def __len__(self) -> int: ...

    def entry(self, index: int) -> Entry: ...

    def read(self, index: int) -> bytes:
        """The message, CRLF line ends; OSError or ValueError when it cannot be read."""
        ...

    def head(self, index: int) -> bytes:
        """The start of the message, at least its header block (for the Message-ID)."""
        ...

    def where(self, index: int) -> str:
        """The file (and offset) of a message, for reports."""
        ...

    def note(self, index: int) -> str | None:
        """Why the message was handed out not as the file holds it (rebuilt, dated from the last
        resort), once it was read; None: as it is."""
        ...


class ListingDigest:
    """A running hash of a listing's identity, extended as a target appends to it."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def add(self, part: bytes) -> None:
        self._hash.update(len(part).to_bytes(4, "big"))
        self._hash.update(part)

    def copy(self) -> ListingDigest:
        twin = ListingDigest()
        twin._hash = self._hash.copy()
        return twin

    @property
    def validity(self) -> int:
        """A UIDVALIDITY, 1..2**31-1."""
        return int.from_bytes(self._hash.digest()[:4], "big") % 0x7FFFFFFF or 1


def digest_validity(parts: Iterable[bytes]) -> int:
    """A UIDVALIDITY from the identity of a listing."""
    digest = ListingDigest()
    for part in parts:
        digest.add(part)
    return digest.validity


class FileAccount:
    """The read side of every file account; subclasses give folders and listings (and writes)."""

    delimiter_char = "/"

    def __init__(self) -> None:
        self._cache: dict[str, tuple[object, Listing]] = {}

    # -- what subclasses give -----------------------------------------------------------------------
    def list_folders(self) -> list[FolderInfo]:
        raise NotImplementedError

    def _stamp(self, folder: str) -> object:
        """What changes when the folder's files change (a cached listing is reused while equal)."""
        raise NotImplementedError

    def _load(self, folder: str) -> Listing:
        raise NotImplementedError

    def create_folder(self, name: str) -> None:
        raise FolderError(name, "this source is read-only")

    def append_batch(self, folder: str, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        del folder  # nothing is written to a source
        return [AppendResult(r.key, ok=False, reason="this source is read-only") for r in requests]

    def store_flags(self, folder: str, updates: Sequence[tuple[int, frozenset[str]]]) -> None:
        if updates:
            raise FolderError(folder, "this source is read-only")

    # -- the port -----------------------------------------------------------------------------------
    @property
    def delimiter(self) -> str:
        return self.delimiter_char

    @property
    def condstore(self) -> bool:
        return False

    @property
    def keeps_bytes(self) -> bool:
        return True

    @property
    def append_limit(self) -> int | None:
        return None

    def subscribe(self, name: str) -> None:
        """Files know no subscriptions: every folder is listed as subscribed."""

    def listing(self, folder: str) -> Listing:
        stamp = self._stamp(folder)
        cached = self._cache.get(folder)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        listing = self._load(folder)
        self._cache[folder] = (stamp, listing)
        return listing

    def status(self, folder: str) -> FolderStatus:
        listing = self.listing(folder)
        return FolderStatus(listing.uidvalidity, len(listing) + 1, len(listing))

    def statuses(self, folders: Sequence[str]) -> dict[str, FolderStatus]:
        """One by one: a file's status costs no round trip (unreadable folders left out)."""
        found = {}
        for folder in folders:
            with contextlib.suppress(FolderError):
                found[folder] = self.status(folder)
        return found

    def permanent_flags(self, folder: str) -> frozenset[str]:
        self.listing(folder)
        return SYSTEM_FLAGS | {"\\*"}

    def fetch_meta(
        self, folder: str, uids: Sequence[int] | None = None, *, message_ids: bool = False
    ) -> Iterator[MessageMeta]:
        listing = self.listing(folder)
        for uid in wanted_uids(listing, uids):
            entry = listing.entry(uid - 1)
            size, mid = entry.size, None
            if size is None or message_ids:
                try:
                    data = listing.read(uid - 1) if size is None else listing.head(uid - 1)
                except (OSError, ValueError):
                    data = b""  # reported when the message itself is fetched
                size = len(data) if size is None else size
                mid = rfc822.message_id(rfc822.header_block(data)) if message_ids else None
            yield MessageMeta(uid, entry.flags, entry.internaldate, size, mid)

    def fetch_flags(
        self, folder: str, changed_since: int | None = None
    ) -> Iterator[tuple[int, frozenset[str]]]:
        del changed_since  # no mod-sequences: every message is listed
        listing = self.listing(folder)
        for index in range(len(listing)):
            yield index + 1, listing.entry(index).flags

    def fetch_messages(
        self, folder: str, metas: Sequence[MessageMeta]
    ) -> Iterator[FetchedMessage | MessageError]:
        listing = self.listing(folder)
        for uid in wanted_uids(listing, [m.uid for m in metas]):
            try:
                data = listing.read(uid - 1)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                yield MessageError(folder, uid, f"{listing.where(uid - 1)}: {reason}")
                continue
            except ValueError as exc:
                yield MessageError(folder, uid, f"{listing.where(uid - 1)}: {exc}")
                continue
            if not rfc822.looks_like_message(data):
                where = listing.where(uid - 1)
                yield MessageError(folder, uid, f"{where}: not a message (no header fields)")
                continue
            digest = hashlib.sha256(data).hexdigest()
            yield FetchedMessage(uid, len(data), digest, io.BytesIO(data))

    def notes(self, folder: str, uids: Sequence[int]) -> dict[str, int]:
        """The ``Noting`` port: reasons of the messages ``uids``, counted (for the summary)."""
        listing = self.listing(folder)
        found: dict[str, int] = {}
        for uid in wanted_uids(listing, uids):
            reason = listing.note(uid - 1)
            if reason is not None:
                found[reason] = found.get(reason, 0) + 1
        return found

    def close(self) -> None:
        self._cache.clear()


def wanted_uids(listing: Listing, uids: Sequence[int] | None) -> list[int]:
    if uids is None:
        return list(range(1, len(listing) + 1))
    return sorted({uid for uid in uids if 1 <= uid <= len(listing)})


def folder_tree(names: Iterable[str], delimiter: str) -> list[FolderInfo]:
    """The folders ``names``, subscribed, plus every parent they imply as ``\\Noselect``; by name."""
    folders = {n: FolderInfo(n, delimiter, frozenset(), subscribed=True) for n in names}
    for name in list(folders):
        parts = name.split(delimiter)
        for depth in range(1, len(parts)):
            parent = delimiter.join(parts[:depth])
            folders.setdefault(parent, FolderInfo(parent, delimiter, frozenset({"\\Noselect"})))
    return sorted(folders.values(), key=lambda f: f.name)
