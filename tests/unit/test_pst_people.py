"""Contacts, a distribution list and tasks of an Outlook.com OST (tests/data/pst/NOTICE.md,
``mtnman.ost.xz``) read as collections (adapters/files/pstcollections.py) and moved by the
collection sync into the memory DAV fake: a contact's photo and its note kept only as RTF, the
list as a contact group of the folder's contacts, Outlook's hidden folders named and not copied;
and a "Rich Text" mail message, whose only body is RTF, copied with its text."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import struct
from pathlib import Path

import icalendar
import pypff
import pytest
import vobject

from mailferry.adapters.files import PstAccount
from mailferry.adapters.files.pst import RENDERED
from mailferry.adapters.files.pstcollections import PstCollections
from mailferry.adapters.memory.dav import MemoryDavAccount, MemoryDavServer
from mailferry.adapters.memory.davstate import MemoryItemStateStore
from mailferry.domain import mapi
from mailferry.domain.davmodel import CollectionKind
from mailferry.domain.errors import UnconvertibleError
from mailferry.domain.mapi import MapiItem
from mailferry.domain.pstcalendar import Converted
from mailferry.domain.pstcards import ONE_OFF_PROVIDER, group_of
from mailferry.service.davsync import DavOptions, sync_accounts

ITEMS = 1 + 3 + 2 + 168 + 2  # Skype Contacts, Contacts, Calendar, holidays, Tasks


def read_all(source: PstCollections, name: str) -> list[bytes]:
    found = {c.displayname: c for c in source.collections()}[name]
    refs = source.items(found.href)
    return [item.data for item in source.read(found.href, found.kind, [r.href for r in refs])]


def cards(source: PstCollections) -> dict[str, vobject.base.Component]:
    return {
        card.fn.value: card
        for card in map(vobject.readOne, map(bytes.decode, read_all(source, "Contacts")))
    }


@pytest.fixture
def source(people_ost: Path):
    opened = PstCollections(people_ost)
    yield opened
    opened.close()


def test_the_users_folders_are_collections_and_outlooks_own_are_named_not_copied(source):
    listed = {c.displayname: (c.kind, len(source.items(c.href))) for c in source.collections()}
    book, calendar = CollectionKind.ADDRESSBOOK, CollectionKind.CALENDAR
    assert listed == {
        "Skype Contacts": (book, 1),
        "Contacts": (book, 3),
        "Calendar": (calendar, 2),
        "United States holidays": (calendar, 168),
        "Tasks": (calendar, 2),
    }
    notes = "\n".join(source.notes())
    for folder, count, kind in (
        ("MeContact", 2, "IPF.Contact.MeContact"),
        ("PersonMetadata", 14, "IPF.Contact"),  # its IPM.AbchPerson items are not even messages
        ("Contacts/Recipient Cache", 11, "IPF.Contact.RecipientCache"),
    ):
        assert (
            f"folder {folder}: {count} item(s) not copied (Outlook's own: hidden, {kind})" in notes
        )
    assert "folder Journal: 1 IPF.Journal item(s) not copied" in notes


def ost_folder(pff, name: str):
    """A folder of the OST's IPM_SUBTREE, as libpff hands it out."""
    folder = pff.root_folder
    for step in ("Root - Mailbox", "IPM_SUBTREE", name):
        subs = [folder.get_sub_folder(i) for i in range(folder.number_of_sub_folders)]
        folder = next(f for f in subs if f.name == step)
    return folder


def contact_photo(ost: Path) -> bytes:
    """Ed Pfromer's photo as libpff reads the attachment Outlook marks as it."""
    pff = pypff.file()
    pff.open(str(ost))
    try:
        ed = ost_folder(pff, "Contacts").get_sub_message(0)
        for index in range(ed.number_of_attachments):
            attachment = ed.get_attachment(index)
            entries = {int(e.entry_type): e for e in attachment.get_record_set(0).entries}
            if 0x7FFF in entries and entries[0x7FFF].data_as_boolean:
                return bytes(attachment.read_buffer(attachment.size))
    finally:
        pff.close()
    raise AssertionError("no contact photo")


def test_a_contact_keeps_its_photo_and_its_note_kept_only_as_rtf(source, people_ost):
    ed = cards(source)["Ed Pfromer"]
    photo = contact_photo(people_ost)
    assert photo.startswith(b"\xff\xd8\xff")  # a JPEG, 10,404 bytes
    assert ed.photo.value == photo
    assert ed.photo.params["TYPE"] == ["JPEG"]
    assert ed.note.value == "Never gonna let you down"
    assert ed.email.value == "epfromer@gmail.com"
    assert ed.org.value == ["Klonzo, LLC"]
    assert "Contacts, 'Ed Pfromer': 1 attachment(s) not copied" in source.notes()  # rickroll.jpg


def test_a_distribution_list_is_a_group_of_the_folders_contacts(source):
    found = cards(source)
    staff = found["Staff"]
    assert staff.x_addressbookserver_kind.value == "group"
    members = [m.value for m in staff.contents["x-addressbookserver-member"]]
    expected = [found[name].uid.value for name in ("Ed Pfromer", "Kyle Pfromer")]
    assert members == [f"urn:uuid:{uid}" for uid in expected]
    assert not [n for n in source.notes() if "Staff" in n]  # nothing left out


def test_tasks_keep_their_descriptions_kept_only_as_rtf(source):
    todos = {
        str(todo["SUMMARY"]): todo
        for data in read_all(source, "Tasks")
        for todo in icalendar.Calendar.from_ical(data).walk("VTODO")
    }
    assert str(todos["basic task"]["DESCRIPTION"]) == "Vanilla task, not started"
    loaded = todos["fully loaded task"]
    assert str(loaded["DESCRIPTION"]) == (
        "Blue category, high priority, 75% complete, with attachments"
    )
    assert (loaded["PERCENT-COMPLETE"], str(loaded["STATUS"])) == (75, "IN-PROCESS")


def test_the_whole_ost_moves_once_and_a_lost_state_copies_nothing(people_ost):
    server = MemoryDavServer()
    server.add_user("alice")
    state = MemoryItemStateStore()

    def run(store: MemoryItemStateStore):
        source = PstCollections(people_ost)
        try:
            target = MemoryDavAccount(server, "alice")
            return sync_accounts(source, target, store, "pst", DavOptions())
        finally:
            source.close()

    first = run(state)
    assert (first.items_copied, first.failures) == (ITEMS, [])
    assert server.sent == []
    assert run(state).items_copied == 0
    lost = run(MemoryItemStateStore())
    assert (lost.items_copied, lost.items_skipped_existing) == (0, ITEMS)


def test_rich_text_mail_is_copied_with_the_text_of_its_rtf_body(people_ost):
    account = PstAccount(people_ost)
    try:
        metas = list(account.fetch_meta("Sent Items"))
        built = [m.body.read() for m in account.fetch_messages("Sent Items", metas)]
        notes = account.notes("Sent Items", [m.uid for m in metas])
    finally:
        account.close()
    said = {why: n for why, n in notes.items() if RENDERED in why}
    assert list(said.values()) == [1], notes  # reported, as a message not copied exactly
    texts = {}
    for raw in built:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        part = message.get_body(("plain", "html"))
        assert part is not None
        texts[str(message["Subject"])] = part.get_content().strip()
    assert "Howzit going?" in texts.values()  # before: an empty text/plain part


# -- the conversion, on items made here -----------------------------------------------------------


def one_off(
    name: str, kind: str, address: str, *, unicode: bool = True, codec: str = "cp1252"
) -> bytes:
    """A One-Off EntryID ([MS-OXCDATA] 2.2.5.1)."""
    bits = 0x8001 if unicode else 0x0001
    head = b"\0\0\0\0" + ONE_OFF_PROVIDER + b"\0\0" + struct.pack("<H", bits)
    return head + f"{name}\0{kind}\0{address}\0".encode("utf-16-le" if unicode else codec)


def dist_list(*entries: bytes, members: int | None = None, extra=None) -> MapiItem:
    values = {mapi.LIST_NAME: "Team", mapi.LIST_ONE_OFFS: entries, **(extra or {})}
    if members is not None:
        values[mapi.LIST_MEMBERS] = tuple(b"wrapped" for _ in range(members))
    return MapiItem("42", {mapi.MESSAGE_CLASS: "IPM.DistList"}, values)


def group_members(item: MapiItem) -> tuple[Converted, list[str]]:
    """The group made of ``item`` in a folder whose one contact is Ann, and its members."""
    converted = group_of(item, {"ann@example.com": "uid-ann"}.get)
    card = vobject.readOne(converted.data.decode())
    return converted, [m.value for m in card.contents["x-addressbookserver-member"]]


def test_members_that_are_not_the_folders_contacts_are_kept_by_address_and_said():
    item = dist_list(
        one_off("Ann", "SMTP", "ann@example.com"),
        one_off("Bob Caf\u00e9", "SMTP", "bob@example.com", unicode=False),
        one_off("Legacy", "EX", "/o=First Organization/cn=Recipients/cn=legacy"),
        b"not an entry id",
        members=5,
    )
    converted, members = group_members(item)
    assert members == ["urn:uuid:uid-ann", "mailto:bob@example.com"]
    assert converted.notes == (
        "member 'Bob Caf\u00e9' kept as bob@example.com (not a contact of the folder)",
        "member 'Legacy' (EX address) not copied: not an internet address",
        "member (unreadable entry) not copied: not an internet address",
        "1 member(s) without a one-off entry not copied",
    )


@pytest.mark.parametrize(("codec", "name"), [("cp1251", "Пётр"), ("cp1253", "Νίκος")])
def test_a_non_unicode_member_is_read_in_the_code_page_the_list_declares(codec, name):
    """An ANSI PST's list keeps its one-off entries in 8-bit strings, in the code page the item
    names (PidTagMessageCodepage); read as windows-1252 a Cyrillic or Greek name was mojibake."""
    entry = one_off(name, "SMTP", "p@example.com", unicode=False, codec=codec)
    declared = dataclasses.replace(dist_list(entry), codec=codec)
    converted, members = group_members(declared)
    assert members == ["mailto:p@example.com"]
    assert converted.notes == (
        f"member {name!r} kept as p@example.com (not a contact of the folder)",
    )
    converted, _ = group_members(dist_list(entry))  # none declared: windows-1252, as before
    shown = name.encode(codec).decode("cp1252", "replace")
    assert converted.notes == (
        f"member {shown!r} kept as p@example.com (not a contact of the folder)",
    )


def list_stream(*members: tuple[bytes, bytes], count: int | None = None, sized=False) -> bytes:
    """A PidLidDistributionListStream ([MS-OXOCNTC] 2.2.2.2.4) of (EntryID, one-off) members;
    ``sized``: its totals count the members' size fields too."""
    body = b"".join(
        struct.pack("<I", len(e)) + e + struct.pack("<I", len(o)) + o + struct.pack("<I", 0)
        for e, o in members
    )
    extra = 4 * len(members) if sized else 0
    ids, offs = (sum(len(m[i]) for m in members) + extra for i in (0, 1))
    n = len(members) if count is None else count
    return struct.pack("<HHIIIIII", 1, 0, 0x10, 0, n, ids, offs, 0) + body + b"\0" * 8


@pytest.mark.parametrize("sized", [False, True])
def test_a_list_kept_in_its_stream_is_a_group_of_the_members_it_holds(sized):
    """A list too long for the one-off property keeps its members in the stream, which then
    wins over the other two properties ([MS-OXOCNTC] 2.2.2.2.4)."""
    wrapped = b"\0" * 4 + b"wrapped entry id"
    stream = list_stream(
        (wrapped, one_off("Ann", "SMTP", "ann@example.com")),
        (wrapped, one_off("Bob", "SMTP", "bob@example.com")),
        (wrapped, b""),  # a member with no one-off entry (a GAL member, say)
        sized=sized,
    )
    stale = one_off("Old", "SMTP", "old@example.com")
    item = dist_list(stale, members=1, extra={mapi.LIST_STREAM: stream})
    converted, members = group_members(item)
    assert members == ["urn:uuid:uid-ann", "mailto:bob@example.com"]
    assert converted.notes == (
        "member 'Bob' kept as bob@example.com (not a contact of the folder)",
        "1 member(s) without a one-off entry not copied",
    )


def test_a_stream_that_does_not_add_up_falls_back_to_the_one_offs_or_is_reported():
    ann = one_off("Ann", "SMTP", "ann@example.com")
    whole = list_stream((b"id", ann))
    broken = [
        whole[:-20],  # cut inside its member
        list_stream((b"id", ann), count=3),  # more members than it holds
        whole[:16] + struct.pack("<I", 99) + whole[20:],  # totals that are not its members'
        b"\x02\x00" + whole[2:],  # another version
        b"\x01\x02",
    ]
    for stream in broken:
        with pytest.raises(UnconvertibleError, match="PidLidDistributionListStream"):
            group_of(dist_list(extra={mapi.LIST_STREAM: stream}), lambda _a: None)
        fallback = group_of(dist_list(ann, extra={mapi.LIST_STREAM: stream}), lambda _a: None)
        assert "does not add up: members from its one-off list" in fallback.notes[0]
        assert b"mailto:ann@example.com" in fallback.data


def test_a_list_without_a_name_is_reported_not_converted_empty():
    nameless = MapiItem("7", {mapi.MESSAGE_CLASS: "IPM.DistList"})
    with pytest.raises(UnconvertibleError, match="no name"):
        group_of(nameless, lambda _a: None)


def test_an_item_that_is_not_a_message_is_read_and_refused_as_a_contact_not_a_crash(people_ost):
    """PersonMetadata holds IPM.AbchPerson items that libpff hands out as plain items (no
    subject): were such a folder copied, each would fail on its own, with the reason."""
    from mailferry.adapters.files.pstprops import mapi_item, named_map  # noqa: PLC0415
    from mailferry.domain.pstcards import contact_of  # noqa: PLC0415

    pff = pypff.file()
    pff.open(str(people_ost))
    try:
        item = ost_folder(pff, "PersonMetadata").get_sub_message(0)
        assert not hasattr(item, "subject")
        read = mapi_item(item, named_map(pff))
    finally:
        pff.close()
    assert read.text(mapi.MESSAGE_CLASS) == "IPM.AbchPerson"
    with pytest.raises(UnconvertibleError, match=r"IPM\.AbchPerson item is not converted"):
        contact_of(read)
