"""The calendars, address books and task lists of an Outlook PST (or OST) as a read-only
``CollectionAccount`` (domain/davports.py): the collection sync (service/davsync.py) reads it as it
reads a CalDAV/CardDAV server or Microsoft 365, and writes to either.

Collections: each folder whose container class (PidTagContainerClass) is ``IPF.Appointment`` is
a calendar of VEVENTs, ``IPF.Contact`` an address book of vCards 3.0, ``IPF.Task`` a task list
(a calendar of VTODOs); folders holding no items are not listed (nothing to move; Outlook keeps
many: search folders, suggested contacts). A hidden folder (PidTagAttrHidden) or one of a
sub-class (``IPF.Contact.RecipientCache``, ``IPF.Contact.MeContact``, ...) is Outlook's own
(auto-complete entries, people metadata): not copied, said in the notes with its item count. Each
item is converted when it is listed and again when it is read (domain/pstcalendar.py,
pstcards.py: pure, deterministic); a distribution list among contacts becomes a contact group
whose members are the folder's contacts with their addresses (read once, when a list needs them).

Hrefs and ETags are stable across runs: a collection is ``/pst/{kind}/{its folder path}/``, an
item the collection and its PST identifier (node id) + ``.ics``/``.vcf``; the ETag is a hash of
the converted bytes, so an item that did not change reads as unchanged, and one changed in the
PST as changed. A collection's CTag is its folder's identifier with the file's size and time:
a re-run over the same file takes the sync's fast path. With the UIDs the conversions give
(Outlook's own, else the item's search key), the sync's intents and its matching by UID on the
target keep re-runs, crashes and lost state from copying anything twice.

An item libpff cannot read (a damaged block: OSError) or that cannot be converted
(``UnconvertibleError``) is an ``ItemError`` with the reason: reported, the rest copied. Items
converted not quite as the PST holds them (a recurrence copied as its first occurrence, ...) are
kept in ``notes()``, one line each, for the summary's warnings.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailferry.adapters.files import pstmail
from mailferry.adapters.files.pstprops import ipm_subtree, mapi_item, named_map
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
from mailferry.domain.errors import AccountError, FolderError, ItemError, UnconvertibleError
from mailferry.domain.mapi import DISPLAY_NAME, EMAILS, MESSAGE_CLASS, SUBJECT, MapiItem
from mailferry.domain.pstcalendar import Converted, event_of, fallback_uid
from mailferry.domain.pstcards import contact_of, group_of, task_of

ROOT = "/pst/"
CALDAV = "{urn:ietf:params:xml:ns:caldav}calendar"
CARDDAV = "{urn:ietf:params:xml:ns:carddav}addressbook"
READ_ONLY = "a PST is read-only here (a source)"
NOT_CONVERTED = ("IPF.JOURNAL", "IPF.STICKYNOTE")  # said in the notes when they hold items
OUTLOOKS_OWN = ("IPF.APPOINTMENT.", "IPF.TASK.", "IPF.CONTACT.")  # sub-classes: Outlook's folders
ATTR_HIDDEN = 0x10F4  # PidTagAttrHidden ([MS-OXPROPS] 2.602)
KEPT_LIMIT = 8 << 20  # bytes of converted items kept from listing for the read


@dataclass(frozen=True)
class _Kind:
    home: str
    kind: CollectionKind
    components: tuple[str, ...]
    suffix: str
    convert: Callable[[MapiItem], Converted]


_KINDS = {
    "IPF.APPOINTMENT": _Kind("calendars", CollectionKind.CALENDAR, ("VEVENT",), ".ics", event_of),
    "IPF.TASK": _Kind("tasks", CollectionKind.CALENDAR, ("VTODO",), ".ics", task_of),
    "IPF.CONTACT": _Kind("contacts", CollectionKind.ADDRESSBOOK, (), ".vcf", contact_of),
}


@dataclass
class _Folder:
    info: CollectionInfo
    folder: Any  # pypff.folder
    kind: _Kind
    index: dict[str, int] = field(default_factory=dict)  # item href -> sub-message index
    addresses: dict[str, str] | None = None  # a contact's address (lower case) -> its UID


class PstCollections:
    """Read-only: ``put`` and ``create_collection`` refuse (a PST is only ever a source)."""

    def __init__(self, path: Path) -> None:
        import pypff  # noqa: PLC0415 - only PST sources need libpff

        self.path = path
        self._pff = pypff.file()
        try:
            self._pff.open(str(path))
        except OSError as exc:
            raise AccountError(f"{path}: cannot be read as a PST ({exc})") from None
        self._lock = threading.Lock()  # libpff is not thread-safe; the sync may call from threads
        self._names = named_map(self._pff)
        stat = path.stat()
        self._version = f"{stat.st_size}-{stat.st_mtime_ns}"
        self._folders: dict[str, _Folder] = {}
        self._notes: list[str] = []
        self._kept: dict[str, tuple[MapiItem, Converted]] = {}
        self._kept_bytes = 0
        self._walk(ipm_subtree(self._pff)[0], ())  # the user's folders, as the mail side's

    def _walk(self, folder: Any, path: tuple[str, ...]) -> None:
        for index in range(folder.number_of_sub_folders):
            try:
                child = folder.get_sub_folder(index)
                name = (child.name or f"Folder {index + 1}").replace("/", "_")
                props = pstmail.properties(child)
                kind = (pstmail.text(props, pstmail.CONTAINER_CLASS) or "").upper()
                hidden = _flag(props.get(ATTR_HIDDEN))
                count = child.number_of_sub_messages
            except OSError:
                continue  # a damaged folder: the mail side reports what it cannot read
            full = (*path, name)
            found = _KINDS.get(kind)
            if count and ((hidden and found) or kind.startswith(OUTLOOKS_OWN)):
                why = "hidden" if hidden else "filled by Outlook itself"
                self._notes.append(
                    f"folder {'/'.join(full)}: {count} item(s) not copied (Outlook's own: "
                    f"{why}, {pstmail.text(props, pstmail.CONTAINER_CLASS)})"
                )
            elif found is not None and count:
                self._add(child, full, found)
            elif count and kind.startswith(NOT_CONVERTED):
                self._notes.append(
                    f"folder {'/'.join(full)}: {count} "
                    f"{pstmail.text(props, pstmail.CONTAINER_CLASS)} item(s) not copied "
                    "(journal entries and notes are not converted)"
                )
            self._walk(child, full)

    def _add(self, folder: Any, path: tuple[str, ...], kind: _Kind) -> None:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", path[-1])
        href = f"{ROOT}{kind.home}/{slug.strip('-') or 'folder'}/"
        while href in self._folders:
            href = href[:-1] + "-2/"
        ctag = hashlib.sha256(f"{folder.identifier}/{self._version}".encode()).hexdigest()[:24]
        resourcetype = (
            "{DAV:}collection",
            CALDAV if kind.kind is CollectionKind.CALENDAR else CARDDAV,
        )
        info = CollectionInfo(
            href,
            kind.kind,
            resourcetype,
            displayname=path[-1],
            components=kind.components,
            ctag=ctag,
        )
        self._folders[href] = _Folder(info, folder, kind)

    # -- the port --------------------------------------------------------------------------------
    def capabilities(self) -> Capabilities:
        return Capabilities(can_create=False, server="pst")

    def homes(self) -> Homes:
        return Homes(ROOT, ROOT + "calendars/", ROOT + "contacts/")

    def collections(self) -> list[CollectionInfo]:
        return [f.info for f in self._folders.values()]

    def items(self, collection: str) -> list[ItemRef]:
        where = self._folder(collection)
        refs = []
        with self._lock:
            for index in range(where.folder.number_of_sub_messages):
                href, etag = self._listed(where, index)
                where.index[href] = index
                refs.append(ItemRef(href, etag))
        return refs

    def _listed(self, where: _Folder, index: int) -> tuple[str, str | None]:
        try:
            item = where.folder.get_sub_message(index)
            href = f"{where.info.href}{item.identifier}{where.kind.suffix}"
        except OSError:
            return f"{where.info.href}item-{index + 1}{where.kind.suffix}", None
        try:
            found = mapi_item(item, self._names)
            converted = self._convert(where, found)
        except (OSError, UnconvertibleError):
            return href, None  # read() reports why
        self._keep(href, found, converted)
        return href, hashlib.sha256(converted.data).hexdigest()[:32]

    def _convert(self, where: _Folder, item: MapiItem) -> Converted:
        """The item as its folder's kind converts it; a distribution list as a contact group."""
        if (item.text(MESSAGE_CLASS) or "").upper().startswith("IPM.DISTLIST"):
            addresses = self._addresses(where)
            return group_of(item, lambda address: addresses.get(address.lower()))
        return where.kind.convert(item)

    def _addresses(self, where: _Folder) -> dict[str, str]:
        """The folder's contacts by address (read once, when its first list is converted)."""
        if where.addresses is None:
            where.addresses = {}
            for index in range(where.folder.number_of_sub_messages):
                try:
                    message = where.folder.get_sub_message(index)
                    item = mapi_item(message, self._names, extras=False)  # addresses only
                except OSError:
                    continue  # a damaged contact fails on its own when read
                if (item.text(MESSAGE_CLASS) or "").upper().startswith("IPM.CONTACT"):
                    for key, _name in EMAILS:
                        if (address := item.text(key)) and "@" in address:
                            where.addresses.setdefault(address.lower(), fallback_uid(item))
        return where.addresses

    def _keep(self, href: str, item: MapiItem, converted: Converted) -> None:
        """Keep what listing converted for the read that follows, up to ``KEPT_LIMIT`` bytes
        (then the rest is converted again when read): memory stays bounded."""
        if (old := self._kept.pop(href, None)) is not None:
            self._kept_bytes -= len(old[1].data)
        if self._kept_bytes + len(converted.data) <= KEPT_LIMIT:
            self._kept[href] = (item, converted)
            self._kept_bytes += len(converted.data)

    def sync(self, collection: str, token: str | None) -> SyncChanges:  # noqa: ARG002 - the port
        raise FolderError(collection, "no sync-collection in a PST (listed whole)")

    def read(
        self,
        collection: str,
        kind: CollectionKind,  # noqa: ARG002 - the port's; the folder says it
        hrefs: list[str],
    ) -> Iterator[Item | ItemError]:
        where = self._folder(collection)
        if not where.index:
            self.items(collection)
        for href in hrefs:
            yield self._read_one(where, href)

    def _read_one(self, where: _Folder, href: str) -> Item | ItemError:
        collection = where.info.href
        index = where.index.get(href)
        if index is None:
            return ItemError(collection, href, "not found in the PST")
        with self._lock:
            try:
                kept = self._kept.pop(href, None)
                if kept is not None:
                    self._kept_bytes -= len(kept[1].data)
                    item, converted = kept
                else:
                    item = mapi_item(where.folder.get_sub_message(index), self._names)
                    converted = self._convert(where, item)
            except OSError as exc:  # libpff chains its reasons: the first one says what failed
                reason = str(exc).split(". ", 1)[0]
                return ItemError(collection, href, f"{self.path}: damaged item: {reason}")
            except UnconvertibleError as exc:
                return ItemError(collection, href, f"{self.path}: {exc}")
            title = item.text(SUBJECT) or item.text(DISPLAY_NAME) or converted.uid
            for note in converted.notes:
                self._notes.append(f"{where.info.displayname}, {title!r}: {note}")
        return Item(href, hashlib.sha256(converted.data).hexdigest()[:32], converted.data)

    def notes(self) -> list[str]:
        """Items read so far that were converted not quite as the PST holds them, and why."""
        with self._lock:
            return list(self._notes)

    def put(
        self,
        href: str,
        data: bytes,  # noqa: ARG002 - the port's
        kind: CollectionKind,  # noqa: ARG002
        etag: str | None = None,  # noqa: ARG002
    ) -> str | None:
        raise ItemError(href.rsplit("/", 1)[0] + "/", href, READ_ONLY)

    def create_collection(self, href: str, new: NewCollection) -> tuple[str, ...]:  # noqa: ARG002
        raise FolderError(href, READ_ONLY)

    def close(self) -> None:
        self._pff.close()

    def _folder(self, collection: str) -> _Folder:
        where = self._folders.get(collection)
        if where is None:
            raise FolderError(collection, f"{self.path}: no such folder in the PST")
        return where


def _flag(entry: Any) -> bool:
    """A libpff boolean property's value (False when absent or unreadable)."""
    try:
        return entry is not None and entry.data is not None and bool(entry.data_as_boolean)
    except (OSError, TypeError, ValueError):
        return False
