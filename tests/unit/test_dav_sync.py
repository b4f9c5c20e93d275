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
from mailferry.cli.dav import print_dav_summary
from mailferry.domain.attendees import AttendeeMode
from mailferry.domain.davmodel import CollectionKind, NewCollection
from mailferry.domain.items import identify
from mailferry.domain.workloads import Workload
from mailferry.sandbox import davcorpus
from mailferry.service.davsync import DavOptions, sync_accounts
from mailferry.service.resilience import SERVER_FAILING, RetryPolicy

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


# -- a full or failing target ------------------------------------------------------------------
WORK = "/alice/calendars/work/"
NO_WAIT = RetryPolicy(attempts=2, base_wait=0.0, max_wait=0.0)


def three_collections(src) -> int:
    """40 events in the default calendar, 5 in "work", 3 cards: how many items in all."""
    MemoryDavAccount(src, "alice").create_collection(
        WORK, NewCollection(CollectionKind.CALENDAR, "Work")
    )
    for n in range(40):
        src.store(f"{CAL}e{n:02}.ics", davcorpus.simple_event(f"e{n:02}@t"))
    for n in range(5):
        src.store(f"{WORK}w{n}.ics", davcorpus.simple_event(f"w{n}@t"))
    for n in range(3):
        src.store(f"{BOOK}c{n}.vcf", davcorpus.card(f"c{n}@t"))
    return 48


def every_uid(server) -> list[str]:
    """The UIDs of every item of the three collections, once per resource."""
    made = [href for href in (CAL, WORK, BOOK) if href in server.collections]
    return sorted(uid for href in made for uid in uids(server, href))


def test_a_full_target_stops_the_run_counts_the_rest_remaining_and_more_room_finishes_it(
    servers, capsys
):
    """Mail's full-target rule for calendars and contacts: a 507 is no dropped connection to
    retry and no item's fault; the run stops, every item not written is counted remaining (those
    of the collections it never reached too), and after more room a re-run copies the rest."""
    src, dst = servers
    total = three_collections(src)
    dst.space = 12 * len(davcorpus.simple_event("e00@t"))
    state = MemoryItemStateStore()
    first = run(src, dst, state, retry=NO_WAIT)
    assert first.target_full, first.stopped
    assert first.stopped.startswith("the target's storage is full (")
    assert "HTTP 507 Insufficient Storage" in first.stopped
    assert first.stopped.endswith("what was copied stays, nothing is copied twice")
    assert (first.failures, first.retries) == ([], 0)  # no item blamed, nothing retried
    assert 0 < first.items_copied < total
    assert first.items_copied + first.items_remaining == total
    assert first.failed  # someone must act: exit 1
    assert first.as_json()["items_remaining"] == first.items_remaining
    notes = [c.note or "" for c in first.collections]
    assert len(notes) == 3 and sum(n.startswith("stopped: the target is full") for n in notes) == 1
    for c in first.collections:  # each collection's items: copied or remaining, never lost
        counts = dict(c.counts)
        assert counts["items_copied"] + counts["items_remaining"] == c.items, c
    assert len(every_uid(dst)) == first.items_copied  # nothing half-written, nothing twice
    print_dav_summary(first)  # what the terminal shows
    shown = capsys.readouterr()
    assert f"{first.items_remaining} items not copied yet, left for the next run: " in shown.out
    assert f"STOPPED: {first.stopped}" in " ".join(shown.err.split())

    dst.space = None
    again = run(src, dst, state)
    assert (again.stopped, again.failed, again.failures) == (None, False, [])
    assert again.items_copied == first.items_remaining
    assert every_uid(dst) == every_uid(src)  # each once
    quiet = run(src, dst, state)
    assert (quiet.items_copied, quiet.items_unchanged) == (0, total)


def test_an_update_a_full_target_stored_all_the_same_is_settled_not_taken_for_a_conflict(
    servers,
):
    """Radicale writes the item, then fails to write its cache and answers 507: the refused
    PUT's intent is left for the next run, which finds the update there (tests/integration/
    test_dav_full_disk.py). Taken for "not stored", its new ETag would read as a target edit."""
    src, dst = servers
    state = MemoryItemStateStore()
    src.store(f"{CAL}e.ics", davcorpus.simple_event("e@t", "Meeting"))
    run(src, dst, state)
    src.store(f"{CAL}e.ics", davcorpus.simple_event("e@t", "Moved to the big room"))
    dst.space, dst.store_refused = dst.used(), True
    full = run(src, dst, state)
    assert (full.target_full, full.items_updated, full.items_remaining) == (True, 0, 1)
    assert [i.source_href for i in state.item_intents("p", CAL)] == [f"{CAL}e.ics"]
    dst.space = None
    again = run(src, dst, state)
    assert (again.conflicts, again.failures, again.items_updated) == ([], [], 0)
    assert b"big room" in dst.collection(CAL).items[f"{CAL}e@t.ics"].data
    assert state.item_intents("p", CAL) == []


def test_a_collection_the_full_target_cannot_create_is_counted_not_reached(servers):
    src, dst = servers
    MemoryDavAccount(src, "alice").create_collection(
        WORK, NewCollection(CollectionKind.CALENDAR, "Work")
    )
    src.store(f"{WORK}a.ics", davcorpus.simple_event("a@t"))
    src.store(f"{WORK}b.ics", davcorpus.simple_event("b@t"))
    dst.space = 0
    summary = run(src, dst)
    assert summary.target_full and "MKCALENDAR" in summary.stopped
    (work,) = [c for c in summary.collections if c.source == WORK]
    assert (work.items, work.note, dict(work.counts)["items_remaining"]) == (
        2,
        "not reached: the run stopped first",
        2,
    )
    assert summary.items_remaining == 2
    dst.space = None
    assert run(src, dst).items_copied == 2


def test_a_target_failing_every_put_with_500_stops_after_20_in_a_row(servers):
    """A bare 500 is ambiguous: one is the item's (reported, sent again by the next run); 20 in a
    row with nothing stored between is the target failing (Radicale and Xandikos answer 500 for a
    disk quota, EDQUOT), and the run stops as for a full one instead of failing every item."""
    src, dst = servers
    total = three_collections(src)
    dst.fail_puts = True
    state = MemoryItemStateStore()
    first = run(src, dst, state, retry=NO_WAIT, concurrency=4)
    assert first.target_full
    assert f"the target failed {SERVER_FAILING} items in a row by a fault of its own" in (
        first.stopped or ""
    )
    assert SERVER_FAILING <= first.items_failed < SERVER_FAILING + 4  # and those in flight
    assert all("the target failed to store it" in f.reason for f in first.failures)
    assert all("HTTP 500" in f.reason for f in first.failures)
    assert first.retries == 0 and first.items_copied == 0
    assert first.items_failed + first.items_remaining == total
    dst.fail_puts = False
    again = run(src, dst, state)
    assert (again.failures, again.items_copied) == ([], total)
    assert every_uid(dst) == every_uid(src)


def test_a_few_500s_fail_their_items_only_and_the_next_run_copies_them(servers):
    src, dst = servers
    for n in range(5):
        src.store(f"{BOOK}c{n}.vcf", davcorpus.card(f"c{n}@t"))
    src.store(f"{CAL}e.ics", davcorpus.simple_event("e@t"))
    dst.fail_puts = True
    state = MemoryItemStateStore()
    first = run(src, dst, state, retry=NO_WAIT)
    assert (first.target_full, first.stopped, first.items_failed) == (False, None, 6)
    assert all(c.note is None for c in first.collections)  # no collection failed for them
    dst.fail_puts = False
    assert run(src, dst, state).items_copied == 6


def test_a_500_to_a_put_the_target_stored_all_the_same_is_a_copy(servers):
    """Xandikos answers 500 to a vCard at a .ics name and stores it (docs/dav-servers.md): the
    item is looked up once, found, recorded; no failure, no retry."""
    src, dst = servers
    for n in range(3):
        src.store(f"{CAL}e{n}.ics", davcorpus.simple_event(f"e{n}@t"))
    dst.fail_puts = dst.store_refused = True
    summary = run(src, dst, retry=NO_WAIT)
    assert (summary.items_copied, summary.failures, summary.retries) == (3, [], 0)
