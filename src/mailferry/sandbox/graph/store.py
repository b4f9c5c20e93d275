"""The FAKE Graph's data: mailboxes of folders of items, one store behind every view.

An item's ``props`` are what a real Exchange item holds; the mailbox API exports them as an opaque
stream and the resource views (events, contacts, tasks) show them as Graph JSON. What those props
contain for each item class is defined by the modules that read and write them (``mailbox``,
``resources``). Every change takes the next ``seq`` of its mailbox, so a delta token is a ``seq``.

Thread-safe through one lock per store: the server answers requests on many threads.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import itertools
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id(prefix: str = "AAMk") -> str:
    """An Exchange-looking opaque id (base64 text; no meaning a client may rely on)."""
    return prefix + base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def change_key(seq: int, item_id: str) -> str:
    return base64.b64encode(
        hashlib.sha1(f"{item_id}:{seq}".encode(), usedforsecurity=False).digest()
    ).decode()


@dataclass
class FakeItem:
    id: str
    item_class: str  # IPM.Note, IPM.Appointment, IPM.Contact, IPM.Task, IPM.StickyNote, ...
    props: dict[str, Any]
    seq: int
    change_key: str
    created: str = field(default_factory=now_iso)
    modified: str = field(default_factory=now_iso)


@dataclass
class FakeFolder:
    id: str
    parent_id: str | None
    display_name: str
    folder_class: str  # IPF.Note, IPF.Appointment, IPF.Contact, IPF.Task, IPF.StickyNote
    well_known: str | None = None  # inbox, calendar, contacts, tasks, notes, ... (Graph's names)
    seq: int = 0
    items: dict[str, FakeItem] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)  # item id -> seq of its deletion
    props: dict[str, Any] = field(default_factory=dict)  # a calendar's or contact folder's JSON


# Graph's well-known folder names (learn.microsoft.com/graph/api/resources/mailfolder, "Use well-known
# folder names") and the class of each, as a fresh Exchange Online mailbox has them.
WELL_KNOWN = (
    ("inbox", "Inbox", "IPF.Note"),
    ("sentitems", "Sent Items", "IPF.Note"),
    ("drafts", "Drafts", "IPF.Note"),
    ("deleteditems", "Deleted Items", "IPF.Note"),
    ("junkemail", "Junk Email", "IPF.Note"),
    ("archive", "Archive", "IPF.Note"),
    ("outbox", "Outbox", "IPF.Note"),
    ("calendar", "Calendar", "IPF.Appointment"),
    ("contacts", "Contacts", "IPF.Contact"),
    ("tasks", "Tasks", "IPF.Task"),
    ("notes", "Notes", "IPF.StickyNote"),
)


@dataclass
class FakeMailbox:
    upn: str  # alice@contoso.com: what /users/{id} takes
    mailbox_id: str  # MBX:...: what /admin/exchange/mailboxes/{id} takes
    root_id: str
    folders: dict[str, FakeFolder] = field(default_factory=dict)
    removed_folders: dict[str, int] = field(default_factory=dict)
    seq: int = 0
    invitations: int = 0  # meeting requests/updates a real Exchange would have mailed

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def well_known(self, name: str) -> FakeFolder:
        for folder in self.folders.values():
            if folder.well_known == name:
                return folder
        raise KeyError(name)

    def find_item(self, item_id: str) -> tuple[FakeFolder, FakeItem] | None:
        for folder in self.folders.values():
            item = folder.items.get(item_id)
            if item is not None:
                return folder, item
        return None


class FakeStore:
    """Every mailbox of the fake tenant(s); ``lock`` guards all of them."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.mailboxes: dict[str, FakeMailbox] = {}  # by upn (lower case)
        self._ids = itertools.count(1)

    def add_mailbox(self, upn: str) -> FakeMailbox:
        """A mailbox with the well-known folders of a fresh Exchange Online one."""
        with self.lock:
            root = FakeFolder(
                new_id("AAMkRoot"), None, "Top of Information Store", "IPF.Note", "msgfolderroot"
            )
            box = FakeMailbox(upn, f"MBX:{uuid.uuid4().hex[:8]}@{uuid.uuid4().hex[:8]}", root.id)
            box.folders[root.id] = root
            for name, display, cls in WELL_KNOWN:
                self.add_folder(box, root.id, display, cls, well_known=name)
            self.mailboxes[upn.lower()] = box
            return box

    def mailbox(self, key: str) -> FakeMailbox | None:
        """By UPN or by mailbox id."""
        with self.lock:
            found = self.mailboxes.get(key.lower())
            if found is not None:
                return found
            return next((box for box in self.mailboxes.values() if box.mailbox_id == key), None)

    def add_folder(
        self,
        box: FakeMailbox,
        parent_id: str,
        name: str,
        folder_class: str,
        *,
        well_known: str | None = None,
    ) -> FakeFolder:
        with self.lock:
            folder = FakeFolder(
                new_id("AAMkF"), parent_id, name, folder_class, well_known, box.next_seq()
            )
            box.folders[folder.id] = folder
            return folder

    def put_item(
        self,
        box: FakeMailbox,
        folder: FakeFolder,
        item_class: str,
        props: dict[str, Any],
        item_id: str | None = None,
    ) -> FakeItem:
        """Create (no ``item_id``) or replace an item; it takes a new seq and change key."""
        with self.lock:
            seq = box.next_seq()
            if item_id is None:
                item_id = new_id()
                # PidTagSearchKey: Exchange gives every new item one; it travels in the item's
                # export stream, so an imported copy keeps its source's (mailbox.py shows it)
                props = {"searchKey": uuid.uuid4().hex, **props}
                item = FakeItem(item_id, item_class, dict(props), seq, change_key(seq, item_id))
            else:
                item = folder.items[item_id]
                item.props = dict(props)
                item.item_class = item_class
                item.seq = seq
                item.change_key = change_key(seq, item_id)
                item.modified = now_iso()
            folder.items[item_id] = item
            folder.seq = seq
            return item

    def delete_item(self, box: FakeMailbox, folder: FakeFolder, item_id: str) -> None:
        with self.lock:
            del folder.items[item_id]
            folder.removed[item_id] = box.next_seq()
