"""Where a PST's or OST's user folders are, and which are Sent and Trash
(adapters/files/pstprops.py, ``ipm_subtree`` and ``store_roles``): the folder the message store
names (PidTagIpmSubTreeEntryId, so a localized Outlook's "Oberste Ebene der Outlook-Datendatei"
is found as "Top of Personal Folders" is), an OST's Root - Mailbox/IPM_SUBTREE (its store names
none), and the store's Sent and Wastebasket entry IDs before the English names."""

from __future__ import annotations

from dataclasses import dataclass, field

import pypff
import pytest

from mailferry.adapters.files import PstAccount, pstprops
from tests.unit.test_pst import PST as SHARED_PST


def test_an_osts_mail_folders_are_its_ipm_subtree_with_its_inbox_as_inbox(people_ost):
    account = PstAccount(people_ost)
    try:
        folders = {f.name: f.flags for f in account.list_folders()}
        inbox = account.status("INBOX").exists
    finally:
        account.close()
    assert folders == {
        "INBOX": frozenset(),
        "Archive": frozenset(),
        "Conversation History": frozenset(),
        "Deleted Items": {"\\Trash"},
        "Drafts": {"\\Drafts"},
        "Junk Email": {"\\Junk"},
        "Outbox": frozenset(),
        "RSS Feeds": frozenset(),
        "Sent Items": {"\\Sent"},
        "Sync Issues": frozenset(),
        "Sync Issues/Conflicts": frozenset(),
        "Sync Issues/Local Failures": frozenset(),
        "Sync Issues/Server Failures": frozenset(),
    }  # not Root - Public, Finder, Views, ~MAPISP(Internal), ...: Outlook's, not the user's
    assert inbox == 5


@pytest.mark.skipif(not SHARED_PST.exists(), reason="the shared PST test data is not here")
def test_a_psts_store_names_its_top_and_its_sent_and_trash_folders():
    pff = pypff.file()
    pff.open(str(SHARED_PST))
    try:
        top, route = pstprops.ipm_subtree(pff)
        assert (top.name, route) == ("Top of Personal Folders", (1,))
        names = {
            int(top.get_sub_folder(i).identifier): top.get_sub_folder(i).name
            for i in range(top.number_of_sub_folders)
        }
        roles = pstprops.store_roles(pff)
    finally:
        pff.close()
    assert {names[nid]: role for nid, role in roles.items()} == {
        "Deleted Items": "\\Trash",
        "Sent Items": "\\Sent",
    }


@pytest.mark.skipif(not SHARED_PST.exists(), reason="the shared PST test data is not here")
def test_the_roles_the_store_gives_are_the_folders_roles(monkeypatch):
    """Wiring: a folder the store calls Sent is \\Sent whatever its name (here 收件箱)."""
    pff = pypff.file()
    pff.open(str(SHARED_PST))
    top, _route = pstprops.ipm_subtree(pff)
    nid = next(
        int(top.get_sub_folder(i).identifier)
        for i in range(top.number_of_sub_folders)
        if top.get_sub_folder(i).name == "收件箱"
    )
    pff.close()
    monkeypatch.setattr(pstprops, "store_roles", lambda _pff: {nid: "\\Sent"})
    account = PstAccount(SHARED_PST)
    try:
        folders = {f.name: f.flags for f in account.list_folders()}
    finally:
        account.close()
    assert folders["收件箱"] == {"\\Sent"}
    assert folders["Deleted Items"] == {"\\Trash"}  # by its English name still


# -- a localized PST, as libpff would hand it out (no such file here to ship) -------------------


@dataclass
class Entry:
    entry_type: int
    data: bytes


@dataclass
class RecordSet:
    entries: list[Entry]


@dataclass
class Folder:
    name: str
    identifier: int
    children: list[Folder] = field(default_factory=list)

    @property
    def number_of_sub_folders(self) -> int:
        return len(self.children)

    def get_sub_folder(self, index: int) -> Folder:
        return self.children[index]


@dataclass
class Store:
    entries: list[Entry]

    def get_record_set(self, _index: int) -> RecordSet:
        return RecordSet(self.entries)


@dataclass
class File:
    root_folder: Folder
    message_store: Store


def entry_id(nid: int) -> bytes:
    """A PST folder's entry ID: flags, the store's record key, the NID ([MS-PST] 2.2.2.1)."""
    return b"\0\0\0\0" + bytes(range(16)) + nid.to_bytes(4, "little")


def test_a_localized_psts_top_sent_and_trash_are_found_by_the_store_not_by_name():
    sent = Folder("Gesendete Elemente", 0x80C2)
    trash = Folder("Gelöschte Elemente", 0x8042)
    top = Folder("Oberste Ebene der Outlook-Datendatei", 0x8022, [trash, sent])
    root = Folder("", 0x122, [Folder("Suchstamm", 0x8062), top])
    store = Store([Entry(0x35E0, entry_id(0x8022)), Entry(0x35E3, entry_id(0x8042)),
                   Entry(0x35E4, entry_id(0x80C2)), Entry(0x0FF9, b"record key")])  # fmt: skip
    pff = File(root, store)
    assert pstprops.ipm_subtree(pff) == (top, (1,))
    assert pstprops.store_roles(pff) == {0x8042: "\\Trash", 0x80C2: "\\Sent"}
    nameless = File(root, Store([]))  # no entry ID and no name known: the root, as before
    assert pstprops.ipm_subtree(nameless) == (root, ())
