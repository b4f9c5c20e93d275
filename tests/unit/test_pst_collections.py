"""A PST's calendars as a read-only collection source (adapters/files/pstcollections.py) through the
collection sync into the memory DAV fake, on the shipped OST (tests/data/pst/NOTICE.md): its
Calendar (9 appointments: weekly, daily and yearly series, meetings, all-day events) and "United
States holidays" (160 all-day events). Re-runs, a crash between PUTs and a lost state copy nothing
twice; a damaged block fails its item only, with the file and the reason.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from mailferry.adapters.files import pstcollections
from mailferry.adapters.files.pstcollections import PstCollections
from mailferry.adapters.memory.dav import MemoryDavAccount, MemoryDavServer, SimulatedCrash
from mailferry.adapters.memory.davstate import MemoryItemStateStore
from mailferry.domain.davmodel import CollectionKind
from mailferry.domain.errors import FolderError, ItemError
from mailferry.domain.items import identify
from mailferry.service.davsync import DavOptions, sync_accounts

ITEMS = 169  # 9 + 160
# A 4 KiB page of the OST holding (compressed) data of one Calendar appointment; found by
# overwriting pages one by one until exactly one item failed and every other one still read.
DAMAGED_PAGE = 2822144


def target_uids(server: MemoryDavServer) -> list[str]:
    return sorted(
        identify(item.data).uid or "-"
        for collection in server.collections.values()
        for item in collection.items.values()
    )


def run(path: Path, server: MemoryDavServer, state: MemoryItemStateStore, **kw):
    source = PstCollections(path)
    try:
        return sync_accounts(
            source, MemoryDavAccount(server, "alice", **kw), state, "pst", DavOptions()
        )
    finally:
        source.close()


@pytest.fixture
def server() -> MemoryDavServer:
    found = MemoryDavServer()
    found.add_user("alice")
    return found


def test_the_calendars_are_listed_with_stable_hrefs_and_etags_and_refuse_writes(ost):
    first, second = PstCollections(ost), PstCollections(ost)
    try:
        names = {c.displayname: c for c in first.collections()}
        assert set(names) == {"Calendar", "United States holidays"}
        assert names["Calendar"].components == ("VEVENT",)
        href = names["Calendar"].href
        assert first.items(href) == second.items(href)
        assert len(first.items(href)) == 9
        with pytest.raises(ItemError, match="read-only"):
            first.put(href + "x.ics", b"", CollectionKind.CALENDAR)
        with pytest.raises(FolderError, match="read-only"):
            first.create_collection("/pst/x/", None)  # type: ignore[arg-type]
    finally:
        first.close()
        second.close()


def test_a_pass_copies_every_appointment_once_and_re_runs_copy_nothing(ost, server):
    state = MemoryItemStateStore()
    summary = run(ost, server, state)
    assert (summary.items_copied, summary.failures) == (ITEMS, [])
    uids = target_uids(server)
    assert len(uids) == len(set(uids)) == ITEMS
    assert server.sent == []  # no invitation: the meetings' attendees are written, never mailed
    # what was not copied is said per item: the four appointments with attachments
    noted = [w for w in summary.warnings if "attachment(s) not copied" in w]
    assert len(noted) == 4
    assert "Calendar, 'meeting with attachments (jpg, pdf, text)': 3 attachment(s)" in " ".join(
        noted
    )
    assert run(ost, server, state).items_copied == 0
    lost = run(ost, server, MemoryItemStateStore())  # the state file lost: found by UID
    assert (lost.items_copied, lost.items_skipped_existing) == (0, ITEMS)
    assert target_uids(server) == uids


def test_a_crash_between_puts_then_a_re_run_leaves_no_duplicate(ost, server):
    state = MemoryItemStateStore()
    with pytest.raises(SimulatedCrash):
        run(ost, server, state, crash_after_puts=40)
    run(ost, server, state)
    uids = target_uids(server)
    assert len(uids) == len(set(uids)) == ITEMS


def test_a_damaged_block_fails_its_item_with_the_reason_and_the_rest_is_copied(
    ost, server, tmp_path
):
    damaged = tmp_path / "damaged.ost"
    shutil.copyfile(ost, damaged)
    with damaged.open("r+b") as out:
        out.seek(DAMAGED_PAGE)
        out.write(b"\xff" * 4096)
    summary = run(damaged, server, MemoryItemStateStore())
    assert summary.items_copied == ITEMS - 1
    [failure] = summary.failures
    assert str(damaged) in failure.reason
    assert "damaged item" in failure.reason


def test_a_pst_source_routes_its_collections_and_workloads_name_what_cannot_move():
    """``pst:// -> https://`` moves calendars, contacts and tasks (not the mail: the target has
    no IMAP); ``pst:// -> imap://`` moves the mail and says why the rest does not; asking for
    ``--workloads calendar`` there is an error naming why."""
    from mailferry.bootstrap import Side  # noqa: PLC0415
    from mailferry.bootstrap.graph import side_kind  # noqa: PLC0415
    from mailferry.domain.errors import ConfigError  # noqa: PLC0415
    from mailferry.domain.workloads import Workload, plan_routes  # noqa: PLC0415

    pst = side_kind(Side("pst:///x.pst", "source"), None, None)
    dav = side_kind(Side("https://alice@dav.example/", "target"), None, None)
    imap = side_kind(Side("imap://alice@127.0.0.1", "target"), None, None)
    plan = plan_routes(pst, dav, None)
    assert plan.collections == {Workload.CALENDAR, Workload.CONTACTS, Workload.TASKS}
    assert plan.mail is None
    plan = plan_routes(pst, imap, None)
    assert plan.mail is not None
    assert not plan.collections
    assert dict(plan.skipped)[Workload.CALENDAR].startswith("the target has no calendars")
    with pytest.raises(ConfigError, match="--workloads calendar"):
        plan_routes(pst, imap, frozenset({Workload.CALENDAR}))
    assert not side_kind(Side("pst:///x.pst", "target"), None, None).dav  # never written


@pytest.mark.parametrize("kept", [8 << 20, 0])
def test_an_item_reads_as_listed_whether_its_conversion_was_kept_or_not(ost, monkeypatch, kept):
    """Listing converts each item (its ETag is a hash of the bytes) and keeps the bytes, up to a
    bound, for the read: kept or converted again, the read's ETag is the listed one."""
    monkeypatch.setattr(pstcollections, "KEPT_LIMIT", kept)
    account = PstCollections(ost)
    try:
        for collection in account.collections():
            refs = account.items(collection.href)
            read = account.read(collection.href, collection.kind, [r.href for r in refs])
            assert [(i.href, i.etag) for i in read] == [(r.href, r.etag) for r in refs]
        assert account._kept == {}
    finally:
        account.close()


class FakeEntry:
    value_type = 0x001F  # PtypString (Unicode), as a Unicode PST holds it

    def __init__(self, tag: int, text: str) -> None:
        self.entry_type, self.data, self.data_as_string = tag, text.encode(), text


class FakeFolder:
    """What ``_walk`` asks of a pypff folder: name, container class, counts, children."""

    def __init__(self, name: str, kind: str, count: int, children=()) -> None:
        self.name, self.number_of_sub_messages, self.identifier = name, count, 1
        self._entries, self._children = [FakeEntry(0x3613, kind)], list(children)
        self.number_of_record_sets = 1
        self.number_of_sub_folders = len(self._children)

    def get_record_set(self, _index):
        return type("RecordSet", (), {"entries": self._entries})()

    def get_sub_folder(self, index):
        return self._children[index]


def test_journal_and_notes_folders_holding_items_are_said_not_copied(tmp_path):
    account = PstCollections.__new__(PstCollections)
    account._folders, account._notes, account._version = {}, [], "v"
    account._lock = threading.Lock()
    journal = FakeFolder("Journal", "IPF.Journal", 3)
    notes = FakeFolder("Notes", "IPF.StickyNote", 0)
    account._walk(FakeFolder("Top", "IPF.Note", 0, [journal, notes]), ())
    assert account.collections() == []
    assert account.notes() == [
        "folder Journal: 3 IPF.Journal item(s) not copied (journal entries and notes are not converted)"
    ]
