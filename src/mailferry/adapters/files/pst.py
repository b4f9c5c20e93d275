"""An Outlook PST (Unicode or ANSI) as a read-only MailAccount, through libpff (``pypff``).

Folders are the tree under the folder the message store names the top of the user's folders
(``pstprops.ipm_subtree``: a PST's "Top of Personal Folders" in any language, an OST's
Root - Mailbox/IPM_SUBTREE), delimiter ``/``; Inbox is INBOX; Sent and Trash are the folders the
store names so, else those with the English names. Folders of calendar items, contacts, tasks,
notes and journal entries are not mail: they are left out here and named in the log
(``pst.not_mail``); calendars, contacts and tasks are read as collections by ``pstcollections``.
Messages are built one at a time (``pstmail``), never the whole file: memory stays flat.
Planning only measures each message (its size and Message-ID, without encoding attachments); the
copy builds it once, from the frame measuring left (``pstframes``: bounded for the process, in
memory or a spill file) when it is still kept. In a Unicode PST, attachments are read by
``pstnodes`` (names and sizes without their data, the data once, to copy); elsewhere by libpff,
which reads an attachment's data whenever it opens one (``pstahead`` reads them ahead).
The folder a run plans first may be measured ahead, on a thread, while the target is made ready
(``send_listing``). Each message is dated by its delivery time; flags come from its read state,
follow-up flag and last verb.
Messages whose headers had to be rebuilt are counted per folder in the run's summary (``notes``).
A damaged item raises from libpff as an OSError: the run records it for that message, with the
PST's path, and copies the rest.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from mailferry.adapters.files import pstframes, pstmail, pstnodes, pstprops, rfc822
from mailferry.adapters.files.account import (
    Entry,
    FileAccount,
    Listing,
    digest_validity,
    wanted_uids,
)
from mailferry.adapters.files.pstahead import ListedAhead, ReadAhead
from mailferry.adapters.files.pstframes import Frames
from mailferry.domain.errors import AccountError, FolderError
from mailferry.domain.model import FolderInfo, FolderStatus, MessageMeta
from mailferry.logs import get_logger

log = get_logger(__name__)
REBUILT = "rebuilt from the PST's properties (it kept no transport headers or MIME)"
RENDERED = "its only body, RTF, copied as plain text (its formatting not kept)"

_ROLES = {
    "sent items": "\\Sent",
    "deleted items": "\\Trash",
    "drafts": "\\Drafts",
    "junk e-mail": "\\Junk",
    "junk email": "\\Junk",
}


# Items from which a listing is measured with its attachments read ahead (``pstahead``): a
# handful is read sooner in place than two more libpff handles are opened (~2.5 ms each for an
# OST) and their threads started.
AHEAD_FROM = 8
_TOKENS = itertools.count(1)  # a session's frames are its own (``Frames.forget`` at its close)


@dataclass
class PstListing:
    path: Path
    name: str
    folder: Any  # pypff.folder
    uidvalidity: int
    frames: Frames
    owner: int = 0  # the session's token in ``frames``' keys
    nodes: pstnodes.Nodes | None = None  # attachments read without libpff (a Unicode PST)
    nids: list[int | str] = field(default_factory=list)  # the items' NIDs, "?" unreadable
    sizes: dict[int, int] = field(default_factory=dict)
    rebuilt: set[int] = field(default_factory=set)
    rendered: set[int] = field(default_factory=set)  # bodies rendered from RTF (``RENDERED``)

    def __len__(self) -> int:
        # From the contents table (``PstAccount._nids``): a session that only takes a folder's
        # status does not make libpff load the table (~12-15 MB a handle for 20,000 items).
        return len(self.nids) if self.nids else int(self.folder.number_of_sub_messages)

    def _key(self, index: int, nid: object) -> tuple[object, ...]:
        """A frame's key: the item's NID with its index, so that a frame is only ever spliced
        with the attachments of the item it was measured from."""
        return (self.owner, self.name, index, nid)

    def entry(self, index: int) -> Entry:
        try:
            props = pstmail.properties(self.folder.get_sub_message(index))
        except OSError:
            return Entry(frozenset(), pstmail.received({}), 0)  # reported when fetched
        return Entry(pstmail.flags_of(props), pstmail.received(props), self.sizes.get(index))

    def measured(self, index: int, ahead: ReadAhead | None = None) -> tuple[Entry, bytes]:
        """The entry with its exact size, and the message's start, without building the message
        (``pstmail.measure``; ``ahead``: its attachments may be read already); size 0 and no head
        for an item that cannot be read (reported when it is fetched)."""
        try:
            item = self.folder.get_sub_message(index)
            props = pstmail.properties(item)
        except OSError:
            return Entry(frozenset(), pstmail.received({}), 0), b""
        flags, date = pstmail.flags_of(props), pstmail.received(props)
        try:
            found = pstmail.measure(item, props, ahead.take(index) if ahead else self._stored(item))
            self._rendered(index, item, props)
        except (OSError, ValueError):
            return Entry(flags, date, 0), b""
        self.sizes[index] = found.size
        if found.frame is not None:
            self.frames.keep(self._key(index, int(item.identifier)), found.frame)
        return Entry(flags, date, found.size), found.head

    def read(self, index: int) -> bytes:
        nid = self.nids[index] if index < len(self.nids) else None
        frame = self.frames.take(self._key(index, nid))
        try:
            built = pstmail.from_frame(frame) or self._from_nodes(nid, frame)  # not libpff
            if built is None:
                item = self.folder.get_sub_message(index)
                props = pstmail.properties(item)
                built = pstmail.build(item, props, frame, self._stored(item))
                self._rendered(index, item, props)
        except OSError as exc:  # libpff chains its reasons: the first one says what failed
            raise ValueError(f"damaged item: {str(exc).split('. ', 1)[0]}") from None
        self.sizes[index] = len(built.data)
        if built.rebuilt and index not in self.rebuilt:
            self.rebuilt.add(index)
            log.info("pst.rebuilt", folder=self.name, message=index + 1)
        return built.data

    def _from_nodes(self, nid: object, frame: pstmail.Frame | None) -> pstmail.Built | None:
        """The message from its frame and its attachments' data read by ``pstnodes``: the item
        (``nid``, the frame's) is not opened through libpff again."""
        if frame is None or self.nodes is None or not isinstance(nid, int):
            return None
        found = self.nodes.attachments(nid)
        if found is None or len(found) + 1 != len(frame.pieces):
            return None
        return pstmail.from_frame(frame, [attachment.blob.read() for attachment in found])

    def _stored(self, item: Any) -> list[pstmail.Attachment] | None:
        """The item's attachments, their data not read yet (``pstnodes``); None: ask libpff."""
        found = self.nodes.attachments(int(item.identifier)) if self.nodes else None
        if found is None or len(found) != item.number_of_attachments:  # libpff counts otherwise
            return None
        return [pstmail.described(a.long_name, a.name, a.mime_tag, a.blob) for a in found]

    def head(self, index: int) -> bytes:
        head = self.measured(index)[1]
        if not head:
            self.read(index)  # raises what made the item unreadable
        return head

    def where(self, index: int) -> str:
        return f"{self.path}, folder {self.name!r}, item {index + 1}"

    def _rendered(self, index: int, item: Any, props: dict[int, Any]) -> None:
        if index not in self.rendered and pstprops.rtf_rendered(item, props):
            self.rendered.add(index)
            log.info("pst.rtf_rendered", folder=self.name, message=index + 1)

    def note(self, index: int) -> str | None:
        found = [
            why
            for why, seen in ((REBUILT, self.rebuilt), (RENDERED, self.rendered))
            if index in seen
        ]
        return "; ".join(found) or None


class PstAccount(FileAccount):
    delimiter_char = "/"

    def __init__(self, path: Path) -> None:
        super().__init__()
        import pypff  # noqa: PLC0415 - only PST sources need libpff

        self.path = path
        pstframes.return_freed_buffers()
        self._file = pypff.file()
        try:
            self._file.open(str(path))
        except OSError as exc:
            raise AccountError(f"{path}: cannot be read as a PST ({exc})") from None
        self._folders: dict[str, Any] = {}
        self._routes: dict[str, tuple[int, ...]] = {}  # sub-folder indices from the root
        self._by_store: dict[str, str] = {}  # folder -> the role the message store gives it
        self._frames = pstframes.SHARED
        self._token = next(_TOKENS)
        # The listing measured ahead (``send_listing``): metadata and sizes by item index.
        self._ahead: ListedAhead[tuple[list[MessageMeta], dict[int, int]]] | None = None
        self._nodes = pstnodes.Nodes.open(path)  # None: attachments through libpff
        self._roles = pstprops.store_roles(self._file)  # Sent, Trash by what the store says
        top, route = pstprops.ipm_subtree(self._file)
        self._walk(top, (), route)

    def _walk(self, folder: Any, path: tuple[str, ...], route: tuple[int, ...]) -> None:
        for index in range(folder.number_of_sub_folders):
            child = folder.get_sub_folder(index)
            name = (child.name or f"Folder {index + 1}").replace("/", "_")
            kind = pstmail.text(pstmail.properties(child), pstmail.CONTAINER_CLASS)
            full = (*path, name)
            if kind and not kind.upper().startswith("IPF.NOTE"):
                log.info("pst.not_mail", folder="/".join(full), kind=kind)
                continue
            key = "/".join(full)
            key = "INBOX" if key.lower() == "inbox" else key
            if (role := self._roles.get(int(child.identifier))) is not None:
                self._by_store[key] = role
            self._folders[key] = child
            self._routes[key] = (*route, index)
            self._walk(child, full, (*route, index))

    def list_folders(self) -> list[FolderInfo]:
        folders = [
            FolderInfo(name, "/", self._role(name), subscribed=True) for name in self._folders
        ]
        if "INBOX" not in self._folders:
            folders.append(FolderInfo("INBOX", "/", frozenset({"\\Noselect"})))
        return sorted(folders, key=lambda f: f.name)

    def _folder(self, name: str) -> Any:
        key = "INBOX" if name.upper() == "INBOX" else name
        if key not in self._folders:
            raise FolderError(name, f"{self.path}: no such folder in the PST")
        return self._folders[key]

    def fetch_meta(
        self, folder: str, uids: Sequence[int] | None = None, *, message_ids: bool = False
    ) -> Iterator[MessageMeta]:
        """As for every file source, but each item is measured, not built: planning a folder
        reads every message's size and Message-ID, and building a message (MIME, base64) costs
        far more than measuring it; it is built once, when it is copied."""
        listing = cast("PstListing", self.listing(folder))
        wanted = wanted_uids(listing, uids)
        yield from self._measure(listing, self._route(folder), wanted, message_ids=message_ids)

    def _measure(
        self,
        listing: PstListing,
        route: tuple[int, ...],
        wanted: list[int],
        *,
        message_ids: bool,
        stop: threading.Event | None = None,
    ) -> Iterator[MessageMeta]:
        ahead = None
        if listing.nodes is None and len(wanted) >= AHEAD_FROM:  # the attachments of the next
            # items are read meanwhile (through libpff: ``pstnodes`` reads none to measure)
            ahead = ReadAhead(self.path, route, [uid - 1 for uid in wanted])
        try:
            for uid in wanted:
                if stop is not None and stop.is_set():
                    return
                entry, head = listing.measured(uid - 1, ahead)
                mid = rfc822.message_id(rfc822.header_block(head)) if message_ids else None
                yield MessageMeta(uid, entry.flags, entry.internaldate, entry.size or 0, mid)
        finally:
            if ahead is not None:
                ahead.close()

    def _route(self, folder: str) -> tuple[int, ...]:
        return self._routes["INBOX" if folder.upper() == "INBOX" else folder]

    # -- ListingAhead ---------------------------------------------------------------------------------
    def send_listing(self, folder: str) -> None:
        """Measure ``folder`` now, on a thread with a libpff handle of its own, for the pass that
        asks ``status_with_listing`` for it later (``ListingAhead``): the run asks this for the
        folder it plans first, which is then measured while the target's folders are created
        and their statuses read. One folder at a time; its frames go where the pass's would."""
        self._folder(folder)
        if self._ahead is None:
            route = self._route(folder)
            self._ahead = ListedAhead(folder, functools.partial(self._measure_apart, folder, route))

    def status_with_listing(self, folder: str) -> tuple[FolderStatus, list[MessageMeta] | None]:
        """``status``, and the listing ``send_listing`` measured, when it was this folder's
        (None otherwise: the pass measures the folder as it lists it, as it always did)."""
        status = self.status(folder)
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return status, None
        found = ahead.take() if ahead.folder == folder else None
        ahead.close()
        if found is None:
            return status, None
        metas, sizes = found
        cast("PstListing", self.listing(folder)).sizes.update(sizes)
        return status, metas

    def _measure_apart(
        self, folder: str, route: tuple[int, ...], stop: threading.Event
    ) -> tuple[list[MessageMeta], dict[int, int]] | None:
        """Every item of ``folder`` measured as ``fetch_meta`` would with Message-IDs, on another
        handle (a libpff handle is not shared between threads); None if stopped half-way."""
        import pypff  # noqa: PLC0415 - only PST sources need libpff

        pff = pypff.file()
        pff.open(str(self.path))
        try:
            box = pff.root_folder
            for step in route:
                box = box.get_sub_folder(step)
            listing = PstListing(self.path, folder, box, 0, self._frames, self._token, self._nodes)
            wanted = list(range(1, len(listing) + 1))
            metas = list(self._measure(listing, route, wanted, message_ids=True, stop=stop))
            return None if stop.is_set() else (metas, listing.sizes)
        finally:
            pff.close()

    def _stamp(self, folder: str) -> object:
        self._folder(folder)
        return folder  # the file is open for the session: its listing does not move

    def _load(self, folder: str) -> Listing:
        box = self._folder(folder)
        nids = self._nids(box)
        validity = digest_validity(
            [str(self.path).encode(), folder.encode(), *(str(nid).encode() for nid in nids)]
        )
        return PstListing(
            self.path, folder, box, validity, self._frames, self._token, self._nodes, nids
        )

    def _nids(self, box: Any) -> list[int | str]:
        """The folder's items' NIDs, in order: from its contents table (``pstnodes``: libpff's
        items are its rows, in its order), else from libpff item by item ("?": unreadable)."""
        found = self._nodes.contents(int(box.identifier)) if self._nodes else None
        if found is not None:
            return list(found)
        nids: list[int | str] = []
        for index in range(box.number_of_sub_messages):
            try:
                nids.append(int(box.get_sub_message(index).identifier))
            except OSError:
                nids.append("?")
        return nids

    def _role(self, name: str) -> frozenset[str]:
        """The store's word (a localized Outlook's "Gesendete Elemente" is Sent), else the name's
        (the English one a top-level folder has)."""
        role = self._by_store.get(name) or _ROLES.get(name.lower())
        return frozenset({role}) if role else frozenset()

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None
        super().close()
        self._frames.forget(self._token)
        self._file.close()
        if self._nodes is not None:
            self._nodes.close()
