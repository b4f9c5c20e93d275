"""The calendar/contact sync on the strict in-memory DAV fake: bad input, odd targets, stops.

Each case is one of issue #13's rule 6 (bad input reported, never dropped silently) or a target
that behaves unlike Radicale and Xandikos (cannot create collections, answers PUTs without ETag,
ignores preconditions). The same flows run against the real servers in
tests/integration/test_dav_sync.py.
"""

from __future__ import annotations

import threading

import pytest

from mailferry.adapters.memory.dav import MemoryDavAccount, MemoryDavServer, SimulatedCrash
from mailferry.adapters.memory.davstate import MemoryItemStateStore
from mailferry.domain.davmodel import CollectionKind, NewCollection
from mailferry.domain.items import identify
from mailferry.domain.workloads import Workload
from mailferry.sandbox import davcorpus
from mailferry.service.davcontext import AttendeeMode
from mailferry.service.davsync import DavOptions, sync_accounts

CAL = "/alice/calendars/calendar/"
BOOK = "/alice/contacts/addressbook/"


@pytest.fixture
def servers():
    src, dst = MemoryDavServer(), MemoryDavServer()
    src.add_user("alice")
    dst.add_user("alice")
    return src, dst


def run(src, dst, state=None, **options):
    state = state if state is not None else MemoryItemStateStore()
    source, target = MemoryDavAccount(src, "alice"), MemoryDavAccount(dst, "alice")
    return sync_accounts(source, target, state, "p", DavOptions(**options))


def uids(server, collection):
    return sorted(identify(i.data).uid or "-" for i in server.collection(collection).items.values())


def test_invalid_items_are_reported_with_the_reason_and_the_rest_is_copied(servers):
    src, dst = servers
    src.store(f"{CAL}good.ics", davcorpus.simple_event("good@t"))
    src.store(
        f"{CAL}broken.ics", b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:broken@t\r\nSUMMARY:x\r\n"
    )
    summary = run(src, dst)
    assert summary.items_copied == 1
    assert [(f.href, f.uid) for f in summary.failures] == [(f"{CAL}broken.ics", "broken@t")]
    assert "refused by the target" in summary.failures[0].reason
    assert any("unbalanced BEGIN/END" in w for w in summary.warnings)
    assert uids(dst, CAL) == ["good@t"]
    again = run(src, dst)  # reported again, never silently dropped
    assert [f.uid for f in again.failures] == ["broken@t"]


def test_two_source_items_with_one_uid_copy_one_and_report_the_other(servers):
    src, dst = servers
    src.store(f"{CAL}a.ics", davcorpus.simple_event("twice@t", "First"))
    src.store(f"{CAL}b.ics", davcorpus.simple_event("twice@t", "Second"))
    summary = run(src, dst)
    assert summary.items_copied == 1
    assert [(f.href, f.uid) for f in summary.failures] == [(f"{CAL}b.ics", "twice@t")]
    assert f"same UID twice@t as {CAL}a.ics" in summary.failures[0].reason
    assert uids(dst, CAL) == ["twice@t"]


def test_an_item_over_max_resource_size_is_reported_before_upload(servers):
    src, dst = servers
    dst.max_resource_size = 4000
    src.store(f"{CAL}small.ics", davcorpus.simple_event("small@t"))
    src.store(f"{CAL}big.ics", davcorpus.with_attachment("big@t"))
    requests_before = dst.requests
    summary = run(src, dst)
    assert summary.items_copied == 1
    (failure,) = summary.failures
    assert (
        failure.uid == "big@t" and "over the target's max-resource-size of 4000" in failure.reason
    )
    assert dst.requests - requests_before < 10  # no PUT of the big one was tried
    assert uids(dst, CAL) == ["small@t"]


def test_a_target_that_cannot_create_collections_gets_the_items_in_its_default(servers):
    src, dst = servers
    dst.can_create = False
    src_account = MemoryDavAccount(src, "alice")
    src_account.create_collection(
        "/alice/calendars/work/", NewCollection(CollectionKind.CALENDAR, "Work")
    )
    src.store("/alice/calendars/work/w.ics", davcorpus.simple_event("work@t"))
    src.store(f"{CAL}h.ics", davcorpus.simple_event("home@t"))
    summary = run(src, dst)
    assert summary.failures == []
    work = next(c for c in summary.collections if c.source.endswith("/work/"))
    assert work.target == CAL and not work.created
    assert "the target cannot create collections" in (work.note or "")
    assert uids(dst, CAL) == ["home@t", "work@t"]


def test_puts_answered_without_etag_are_read_back_so_the_next_pass_is_quiet(servers):
    src, dst = servers
    dst.put_etags = False
    dst.reserialise = True
    for n in range(5):
        src.store(f"{CAL}e{n}.ics", davcorpus.simple_event(f"e{n}@t"))
    state = MemoryItemStateStore()
    first = run(src, dst, state)
    assert first.items_copied == 5
    assert all(r.target_etag for r in state.recorded("p", CAL))
    again = run(src, dst, state)
    assert (again.items_copied, again.items_updated, again.conflicts) == (0, 0, [])


def test_contacts_without_uid_are_matched_by_content_after_a_lost_state(servers):
    src, dst = servers
    src.store(f"{BOOK}old.vcf", davcorpus.card(None, "No Uid"))
    first = run(src, dst)
    assert first.items_copied == 1
    lost = run(src, dst)  # a new, empty state
    assert (lost.items_copied, lost.items_skipped_existing) == (0, 1)
    assert len(dst.collection(BOOK).items) == 1


def test_a_server_ignoring_preconditions_still_gets_no_second_copy(servers):
    src, dst = servers
    dst.ignore_preconditions = True
    for n in range(4):
        src.store(f"{CAL}e{n}.ics", davcorpus.simple_event(f"e{n}@t"))
    run(src, dst)
    lost = run(src, dst)
    assert lost.items_skipped_existing == 4 and lost.items_copied == 0
    assert uids(dst, CAL) == [f"e{n}@t" for n in range(4)]


def test_meetings_on_an_implicitly_scheduling_target_send_nothing_in_either_mode(servers):
    src, dst = servers
    dst.auto_schedule = True
    src.store(f"{CAL}m.ics", davcorpus.meeting("m@t"))
    parked = run(src, dst, attendees=AttendeeMode.AUTO)
    assert parked.attendees == "park" and parked.scheduling_changed == 1
    dst2 = MemoryDavServer(auto_schedule=True)
    dst2.add_user("alice")
    client = run(src, dst2, attendees=AttendeeMode.CLIENT)
    assert client.attendees == "client" and client.scheduling_changed == 1
    assert dst.sent == [] and dst2.sent == []  # the fake honours SCHEDULE-AGENT=CLIENT (RFC 6638)
    stored = next(iter(dst2.collection(CAL).items.values())).data
    assert stored.count(b"SCHEDULE-AGENT=CLIENT") == 3


def test_a_stop_request_ends_the_run_early_and_the_next_run_finishes(servers):
    src, dst = servers
    for n in range(200):
        src.store(f"{CAL}e{n}.ics", davcorpus.simple_event(f"e{n}@t"))
    stop = threading.Event()
    stop.set()
    state = MemoryItemStateStore()
    source, target = MemoryDavAccount(src, "alice"), MemoryDavAccount(dst, "alice")
    stopped = sync_accounts(source, target, state, "p", stop=stop)
    assert stopped.stopped == "stop requested"
    assert len(dst.collection(CAL).items) < 200
    done = run(src, dst, state)
    assert done.stopped is None
    assert len(dst.collection(CAL).items) == 200


def test_the_summary_has_one_section_per_workload_and_workloads_choose_collections(servers):
    """Calendars, task lists (VTODO only) and address books are the calendar, tasks and contacts
    workloads: each collection's counters and failures land in its workload's section."""
    src, dst = servers
    tasks = "/alice/calendars/tasks/"
    MemoryDavAccount(src, "alice").create_collection(
        tasks, NewCollection(CollectionKind.CALENDAR, "Tasks", components=("VTODO",))
    )
    src.store(f"{CAL}a.ics", davcorpus.simple_event("a@t"))
    src.store(f"{CAL}b.ics", davcorpus.simple_event("b@t"))
    src.store(f"{tasks}t.ics", davcorpus.todo("t@t"))
    src.store(f"{BOOK}c.vcf", davcorpus.card("c@t"))
    src.store(f"{BOOK}bad.vcf", b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:bad@t\r\n")
    only = run(src, dst, workloads=frozenset({Workload.TASKS}))
    assert [c.workload for c in only.collections] == ["tasks"]
    assert uids(dst, CAL) == []
    summary = run(src, dst)
    sections = summary.by_workload()
    assert sections["calendar"]["items_copied"] == 2
    assert sections["tasks"]["items_copied"] == 0  # copied by the first run
    assert sections["tasks"]["items_unchanged"] + sections["tasks"]["items_skipped_existing"] == 1
    assert sections["contacts"]["items_copied"] == 1
    assert sections["contacts"]["items_failed"] == 1
    assert [f["item"]["uid"] for f in sections["contacts"]["failures"]] == ["bad@t"]
    assert sections["calendar"]["failures"] == []


def crashed_run(src, dst, state):
    """A run killed (kill -9) once its first PUT landed: the answer never reached the state."""
    target = MemoryDavAccount(dst, "alice", crash_after_puts=0)
    with pytest.raises(SimulatedCrash):
        sync_accounts(MemoryDavAccount(src, "alice"), target, state, "p", DavOptions())
    assert state.item_intents("p", CAL) != []


def put_then_crash(src, dst, state, *, update):
    """An event copied by a run that died between its PUT and the commit (``update``: the PUT
    was the update of an earlier copy); where it is on the target."""
    src.store(f"{CAL}e.ics", davcorpus.simple_event("e@t", "Meeting"))
    if update:
        run(src, dst, state)
        src.store(f"{CAL}e.ics", davcorpus.simple_event("e@t", "Moved"))
    crashed_run(src, dst, state)
    return f"{CAL}e@t.ics"


@pytest.mark.parametrize("update", [False, True], ids=["create", "update"])
def test_a_target_edit_after_a_crash_between_put_and_commit_is_a_conflict_every_run(
    servers, update
):
    """tests/unit/test_dav_machine.py's shrunk example: the copy is edited on the target before
    the next run settles the crashed PUT. Finding the UID (or a new ETag) there does not make the
    edit our copy: every run reports the conflict, and the edit is left alone."""
    src, dst = servers
    state = MemoryItemStateStore()
    there = put_then_crash(src, dst, state, update=update)
    edited = davcorpus.simple_event("e@t", "Edited on the target")
    dst.store(there, edited)
    for _ in range(3):
        summary = run(src, dst, state)
        assert [c.uid for c in summary.conflicts] == ["e@t"]
        assert (summary.items_copied, summary.items_updated, summary.failures) == (0, 0, [])
        assert dst.collection(CAL).items[there].data == edited


@pytest.mark.parametrize("update", [False, True], ids=["create", "update"])
def test_a_crash_between_put_and_commit_is_settled_quietly_when_the_copy_is_untouched(
    servers, update
):
    """The other side of the case above: a copy the target kept as written is recorded by the
    settlement, with no conflict, and the run after it has nothing to do."""
    src, dst = servers
    state = MemoryItemStateStore()
    there = put_then_crash(src, dst, state, update=update)
    summary = run(src, dst, state)
    assert (summary.conflicts, summary.failures) == ([], [])
    assert state.item_intents("p", CAL) == []
    assert dst.collection(CAL).items[there].data == src.collection(CAL).items[f"{CAL}e.ics"].data
    again = run(src, dst, state)
    assert (again.items_copied, again.items_updated, again.conflicts) == (0, 0, [])
