"""The in-memory DAV server's own rules and its fault knobs (the behaviour it shares with Radicale
and Xandikos is held by tests/integration/test_dav_contract.py)."""

from __future__ import annotations

import contextlib
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from mailferry.adapters.memory.dav import MemoryDavAccount, MemoryDavServer, SimulatedCrash
from mailferry.domain.davmodel import CollectionKind, Item, ItemRef, NewCollection, SyncChanges
from mailferry.domain.errors import (
    AuthError,
    ConnectError,
    FolderError,
    ItemConflictError,
    ItemError,
    ServerFaultError,
    SyncTokenInvalidError,
    TargetFullError,
    ThrottledError,
)

CAL = "/ann/calendars/calendar/"
BOOK = "/ann/contacts/addressbook/"
EVENT = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailferry//memory//EN\r\n"
    b"BEGIN:VEVENT\r\nUID:event-1\r\nDTSTAMP:20260101T000000Z\r\n"
    b"DTSTART:20260102T100000Z\r\nSUMMARY:Plain\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
TODO = EVENT.replace(b"VEVENT", b"VTODO").replace(b"event-1", b"todo-1")
CARD = b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:card-1\r\nFN:Ann\r\nEND:VCARD\r\n"
MEETING = EVENT.replace(
    b"SUMMARY:Plain\r\n",
    b"SUMMARY:Meeting\r\nORGANIZER:mailto:ann@example.org\r\n"
    b"ATTENDEE;CN=Bob:mailto:bob@example.net\r\n"
    b"ATTENDEE;SCHEDULE-AGENT=CLIENT:mailto:carl@example.net\r\n"
    b"BEGIN:VALARM\r\nACTION:EMAIL\r\nATTENDEE:mailto:ann@example.org\r\n"
    b"TRIGGER:-PT5M\r\nEND:VALARM\r\n",
)


def event(n: int, summary: str = "Plain") -> bytes:
    return EVENT.replace(b"event-1", f"event-{n}".encode()).replace(b"Plain", summary.encode())


@pytest.fixture
def server() -> MemoryDavServer:
    server = MemoryDavServer()
    server.add_user("ann", "secret")
    return server


@pytest.fixture
def account(server) -> MemoryDavAccount:
    return MemoryDavAccount(server, "ann", "secret")


def test_a_new_user_has_both_homes_their_defaults_and_the_schedule_boxes(account):
    homes = account.homes()
    assert (homes.principal, homes.calendar_home, homes.addressbook_home) == (
        "/ann/",
        "/ann/calendars/",
        "/ann/contacts/",
    )
    found = {c.href: c for c in account.collections()}
    assert {h: c.kind for h, c in found.items()} == {
        CAL: CollectionKind.CALENDAR,
        "/ann/calendars/inbox/": CollectionKind.SCHEDULE_INBOX,
        "/ann/calendars/outbox/": CollectionKind.SCHEDULE_OUTBOX,
        BOOK: CollectionKind.ADDRESSBOOK,
    }
    assert found[CAL].components == ("VEVENT", "VTODO", "VJOURNAL")
    assert (
        "{urn:ietf:params:xml:ns:caldav}schedule-inbox"
        in found["/ann/calendars/inbox/"].resourcetype
    )


def test_a_wrong_password_or_an_unknown_user_is_refused(server):
    with pytest.raises(AuthError):
        MemoryDavAccount(server, "ann", "wrong").collections()
    with pytest.raises(AuthError):
        MemoryDavAccount(server, "nobody").collections()
    assert MemoryDavAccount(server, "ann").homes().principal == "/ann/"  # no password: trusted


def test_another_users_collections_are_neither_listed_nor_readable(server, account):
    server.add_user("bob")
    bob = MemoryDavAccount(server, "bob")
    assert all(c.href.startswith("/bob/") for c in bob.collections())
    with pytest.raises(FolderError):
        bob.items(CAL)
    with pytest.raises(ItemError):
        bob.put(CAL + "x.ics", EVENT, CollectionKind.CALENDAR)


def test_the_etag_changes_on_every_write_even_of_the_same_bytes(account):
    first = account.put(CAL + "a.ics", EVENT, CollectionKind.CALENDAR)
    second = account.put(CAL + "a.ics", EVENT, CollectionKind.CALENDAR, etag=first)
    assert first and second and first != second
    assert account.get(CAL + "a.ics").etag == second


def test_sync_reports_changes_and_removals_since_a_token(server, account):
    account.put(CAL + "a.ics", event(1), CollectionKind.CALENDAR)
    b = account.put(CAL + "b.ics", event(2), CollectionKind.CALENDAR)
    start = account.sync(CAL, None)
    assert [r.href for r in start.changed] == [CAL + "a.ics", CAL + "b.ics"]
    server.delete(CAL + "a.ics")
    new_b = account.put(CAL + "b.ics", event(2, "Moved"), CollectionKind.CALENDAR, etag=b)
    account.put(CAL + "c.ics", event(3), CollectionKind.CALENDAR)
    later = account.sync(CAL, start.token)
    assert later.changed[0] == ItemRef(CAL + "b.ics", new_b)
    assert [r.href for r in later.changed] == [CAL + "b.ics", CAL + "c.ics"]
    assert later.removed == (CAL + "a.ics",)
    assert account.sync(CAL, later.token) == SyncChanges(later.token, (), ())
    assert [c.sync_token for c in account.collections() if c.href == CAL] == [later.token]


def test_a_token_from_elsewhere_or_forgotten_is_refused(server, account):
    calendar_token = account.sync(CAL, None).token
    with pytest.raises(SyncTokenInvalidError):
        account.sync(BOOK, calendar_token)
    with pytest.raises(SyncTokenInvalidError):
        account.sync(CAL, "garbage")
    server.forget_tokens(CAL)
    with pytest.raises(SyncTokenInvalidError):
        account.sync(CAL, calendar_token)
    fresh = account.sync(CAL, None).token
    assert account.sync(CAL, fresh).changed == ()


def test_a_missing_collection_is_a_folder_error(account):
    for call in (
        lambda: account.items("/ann/calendars/none/"),
        lambda: account.sync("/ann/calendars/none/", None),
        lambda: list(account.read("/ann/calendars/none/", CollectionKind.CALENDAR, ["x"])),
    ):
        with pytest.raises(FolderError, match="HTTP 404"):
            call()


@pytest.mark.parametrize(
    ("href", "data", "kind", "status"),
    [
        ("/ann/calendars/none/a.ics", EVENT, CollectionKind.CALENDAR, 409),  # no parent
        (CAL + "b.ics", EVENT, CollectionKind.CALENDAR, 409),  # UID of a.ics
    ],
)
def test_conflicts_are_409(account, href, data, kind, status):
    account.put(CAL + "a.ics", EVENT, CollectionKind.CALENDAR)
    with pytest.raises(ItemConflictError) as refused:
        account.put(href, data, kind)
    assert refused.value.status == status
    assert [r.href for r in account.items(CAL)] == [CAL + "a.ics"]


@pytest.mark.parametrize(
    ("href", "data", "kind", "reason"),
    [
        (CAL + "x.ics", b"hello", CollectionKind.CALENDAR, "HTTP 400"),
        (CAL + "x.ics", EVENT[:-15], CollectionKind.CALENDAR, "HTTP 400"),  # unbalanced
        (CAL + "x.ics", EVENT + EVENT, CollectionKind.CALENDAR, "HTTP 400"),  # two objects
        (BOOK + "x.vcf", EVENT, CollectionKind.ADDRESSBOOK, "HTTP 400"),  # wrong object
        (CAL + "x.ics", CARD, CollectionKind.ADDRESSBOOK, "HTTP 415"),  # wrong content type
        ("/ann/calendars/inbox/x.ics", EVENT, CollectionKind.CALENDAR, "HTTP 403"),
    ],
)
def test_what_a_server_refuses_to_store(account, href, data, kind, reason):
    with pytest.raises(ItemError, match=reason) as refused:
        account.put(href, data, kind)
    assert not isinstance(refused.value, ItemConflictError)
    with pytest.raises(ItemError):
        account.get(href)


def test_an_item_without_uid_is_stored(account):
    etag = account.put(
        BOOK + "n.vcf", CARD.replace(b"UID:card-1\r\n", b""), CollectionKind.ADDRESSBOOK
    )
    assert account.get(BOOK + "n.vcf").etag == etag


def test_a_calendar_refuses_components_it_does_not_support(account):
    href = "/ann/calendars/events/"
    account.create_collection(href, NewCollection(CollectionKind.CALENDAR, components=("VEVENT",)))
    with pytest.raises(ItemError, match="supported-calendar-component"):
        account.put(href + "t.ics", TODO, CollectionKind.CALENDAR)
    account.put(href + "e.ics", EVENT, CollectionKind.CALENDAR)


def test_knob_refuse_components_on_one_collection(server, account):
    server.collection(CAL).refuse_components = {"VTODO"}
    with pytest.raises(ItemError, match="403 supported-calendar-component"):
        account.put(CAL + "t.ics", TODO, CollectionKind.CALENDAR)
    assert account.items(CAL) == []
    account.put(CAL + "e.ics", EVENT, CollectionKind.CALENDAR)


def test_multiget_answers_each_href_in_chunks(account):
    etag = account.put(CAL + "a.ics", EVENT, CollectionKind.CALENDAR)
    hrefs = [CAL + "a.ics", CAL + "gone.ics", BOOK + "elsewhere.vcf"]
    got = list(account.read(CAL, CollectionKind.CALENDAR, hrefs, chunk=2))
    assert got[0] == Item(CAL + "a.ics", etag, EVENT)
    assert [(type(g), g.href) for g in got[1:]] == [(ItemError, h) for h in hrefs[1:]]


def test_create_collection_refuses_what_a_server_refuses(account):
    calendar = NewCollection(CollectionKind.CALENDAR, "Work")
    book = NewCollection(CollectionKind.ADDRESSBOOK, "Friends")
    for href, new, status in [
        (CAL, calendar, "HTTP 403"),  # exists (MKCALENDAR)
        (BOOK, book, "HTTP 405"),  # exists (MKCOL)
        ("/ann/calendars/", calendar, "HTTP 403"),  # the home itself
        ("/ann/calendars/no/deeper/", calendar, "HTTP 409"),  # no parent
        ("/ann/contacts/work/", calendar, "HTTP 403"),  # a calendar in the address book home
        ("/bob/calendars/work/", calendar, "HTTP 409"),  # nobody's home
    ]:
        with pytest.raises(FolderError, match=status):
            account.create_collection(href, new)
    with pytest.raises(ValueError, match="cannot create"):
        account.create_collection("/ann/calendars/x/", NewCollection(CollectionKind.SCHEDULE_INBOX))


def test_a_created_collection_keeps_what_its_request_sets(account):
    new = NewCollection(
        CollectionKind.ADDRESSBOOK, "Friends", "Close ones", "#FF0000", None, ("VEVENT",)
    )
    assert account.create_collection("/ann/contacts/friends", new) == ()
    [book] = [c for c in account.collections() if c.href == "/ann/contacts/friends/"]
    assert (book.displayname, book.description, book.color, book.components) == (
        "Friends",
        "Close ones",
        None,  # an extended MKCOL of an address book sets no colour or components
        (),
    )


def put_catching_every_error(account: MemoryDavAccount, href: str, data: bytes) -> None:
    """What the service's one ``except Exception`` does: the crash must get through it."""
    with contextlib.suppress(Exception):
        account.put(href, data, CollectionKind.CALENDAR)


def test_knob_crash_after_puts_stores_then_kills_the_client(server):
    account = MemoryDavAccount(server, "ann", crash_after_puts=1)
    account.put(CAL + "a.ics", event(1), CollectionKind.CALENDAR)
    with pytest.raises(SimulatedCrash):
        put_catching_every_error(account, CAL + "b.ics", event(2))
    assert set(server.collection(CAL).items) == {CAL + "a.ics", CAL + "b.ics"}
    with pytest.raises(SimulatedCrash):
        account.put(CAL + "c.ics", event(3), CollectionKind.CALENDAR)
    with pytest.raises(SimulatedCrash):
        account.items(CAL)
    assert CAL + "c.ics" not in server.collection(CAL).items
    assert MemoryDavAccount(server, "ann").items(CAL)  # a new process logs in again


def test_knob_crash_after_a_refused_put_still_crashes(server):
    account = MemoryDavAccount(server, "ann", crash_after_puts=0)
    with pytest.raises(SimulatedCrash) as crash:
        account.put(CAL + "a.ics", b"not a calendar", CollectionKind.CALENDAR)
    assert isinstance(crash.value.__context__, ItemError)


def test_knob_ignore_preconditions_writes_anyway(server, account):
    server.ignore_preconditions = True
    account.put(CAL + "a.ics", event(1), CollectionKind.CALENDAR)
    account.put(CAL + "a.ics", event(1, "Again"), CollectionKind.CALENDAR)  # If-None-Match: *
    account.put(CAL + "a.ics", event(1, "Stale"), CollectionKind.CALENDAR, etag='"old"')
    assert b"SUMMARY:Stale" in account.get(CAL + "a.ics").data
    with pytest.raises(ItemConflictError):  # the UID is still checked
        account.put(CAL + "b.ics", event(1), CollectionKind.CALENDAR)


def test_knob_can_create_false(server, account):
    server.can_create = False
    assert account.capabilities().can_create is False
    with pytest.raises(FolderError, match="HTTP 403"):
        account.create_collection("/ann/calendars/new/", NewCollection(CollectionKind.CALENDAR))
    assert "/ann/calendars/new/" not in {c.href for c in account.collections()}
    assert MemoryDavAccount(MemoryDavServer(), "x").server.can_create is True


def test_knob_max_resource_size(server, account):
    server.max_resource_size = len(EVENT)
    account.put(CAL + "fits.ics", EVENT, CollectionKind.CALENDAR)
    with pytest.raises(ItemError, match="HTTP 413"):
        account.put(CAL + "big.ics", event(2, "x" * 10), CollectionKind.CALENDAR)
    sizes = {c.kind: c.max_resource_size for c in account.collections()}
    assert sizes[CollectionKind.CALENDAR] == sizes[CollectionKind.ADDRESSBOOK] == len(EVENT)


def test_knob_space_refuses_what_does_not_fit_with_507(server, account):
    server.space = len(EVENT) + len(event(2)) // 2
    account.put(CAL + "a.ics", EVENT, CollectionKind.CALENDAR)
    with pytest.raises(TargetFullError, match="HTTP 507"):
        account.put(CAL + "b.ics", event(2), CollectionKind.CALENDAR)
    assert list(server.collection(CAL).items) == [CAL + "a.ics"]  # nothing half-stored
    etag = account.get(CAL + "a.ics").etag
    account.put(CAL + "a.ics", event(1, "Plain!"), CollectionKind.CALENDAR, etag)  # 1 byte more
    server.space = server.used()
    with pytest.raises(TargetFullError, match="MKCALENDAR"):
        account.create_collection("/ann/calendars/new/", NewCollection(CollectionKind.CALENDAR))
    server.space = None
    account.put(CAL + "b.ics", event(2), CollectionKind.CALENDAR)


def test_knob_fail_puts_answers_500_and_store_refused_stores_all_the_same(server, account):
    server.fail_puts = True
    with pytest.raises(ServerFaultError, match="HTTP 500"):
        account.put(CAL + "a.ics", EVENT, CollectionKind.CALENDAR)
    assert server.collection(CAL).items == {}
    server.store_refused = True
    with pytest.raises(ServerFaultError):
        account.put(CAL + "a.ics", EVENT, CollectionKind.CALENDAR)
    server.fail_puts, server.space = False, 0
    with pytest.raises(TargetFullError):  # Radicale: the item written, then its cache: ENOSPC
        account.put(CAL + "b.ics", event(2), CollectionKind.CALENDAR)
    assert sorted(server.collection(CAL).items) == [CAL + "a.ics", CAL + "b.ics"]


def test_knob_throttle_every_refuses_without_doing_anything(server, account):
    server.throttle_every, server.retry_after = 3, 7.5
    account.items(CAL)
    account.items(CAL)
    with pytest.raises(ThrottledError) as throttled:
        account.put(CAL + "a.ics", EVENT, CollectionKind.CALENDAR)
    assert throttled.value.wait == 7.5
    assert account.items(CAL) == []  # nothing was written
    account.put(CAL + "a.ics", EVENT, CollectionKind.CALENDAR)
    with pytest.raises(ThrottledError):
        list(account.read(CAL, CollectionKind.CALENDAR, [CAL + "a.ics"]))


def test_knob_drop_every_loses_the_answer_after_the_write(server):
    account = MemoryDavAccount(server, "ann", drop_every=2)
    account.put(CAL + "a.ics", event(1), CollectionKind.CALENDAR)
    with pytest.raises(ConnectError):
        account.put(CAL + "b.ics", event(2), CollectionKind.CALENDAR)
    assert CAL + "b.ics" in server.collection(CAL).items  # it was stored
    account.put(CAL + "c.ics", event(3), CollectionKind.CALENDAR)
    with pytest.raises(ConnectError):
        account.put(CAL + "d.ics", event(4), CollectionKind.CALENDAR)
    with pytest.raises(ItemConflictError):  # the retry finds it there
        account.put(CAL + "b.ics", event(2), CollectionKind.CALENDAR)


def test_knob_drop_before_write_stores_nothing(server):
    account = MemoryDavAccount(server, "ann", drop_every=1, drop_before_write=True)
    with pytest.raises(ConnectError):
        account.put(CAL + "a.ics", EVENT, CollectionKind.CALENDAR)
    assert server.collection(CAL).items == {}


def test_knob_auto_schedule_records_what_would_be_sent(server, account):
    server.auto_schedule = True
    assert account.capabilities().auto_schedule
    account.put(CAL + "m.ics", MEETING, CollectionKind.CALENDAR)
    [invitation] = server.sent
    assert (invitation.user, invitation.href, invitation.uid) == ("ann", CAL + "m.ics", "event-1")
    assert invitation.attendees == ("mailto:bob@example.net",)  # not carl (CLIENT), not the alarm
    quiet = MEETING.replace(b"ATTENDEE;CN=Bob", b'ATTENDEE;SCHEDULE-AGENT="CLIENT";CN=Bob')
    account.put(CAL + "q.ics", quiet.replace(b"event-1", b"event-2"), CollectionKind.CALENDAR)
    assert len(server.sent) == 1


def test_no_invitation_without_auto_schedule(server, account):
    account.put(CAL + "m.ics", MEETING, CollectionKind.CALENDAR)
    assert server.sent == []
    assert account.capabilities().auto_schedule is False


def test_knob_reserialise_reorders_icalendar_and_keeps_every_line(server, account):
    server.reserialise = True
    folded = EVENT.replace(b"SUMMARY:Plain\r\n", b"SUMMARY:Plain and\r\n  folded\r\n")
    etag = account.put(CAL + "a.ics", folded, CollectionKind.CALENDAR)
    stored = account.get(CAL + "a.ics")
    assert stored.etag == etag
    assert stored.data != folded
    assert sorted(stored.data.splitlines()) == sorted(folded.splitlines())
    assert stored.data.index(b"PRODID") < stored.data.index(b"VERSION")
    assert stored.data.index(b"SUMMARY:Plain and\r\n  folded") > 0  # folding kept
    account.put(BOOK + "c.vcf", CARD, CollectionKind.ADDRESSBOOK)
    assert account.get(BOOK + "c.vcf").data == CARD  # vCards kept, as Xandikos does


def test_knob_put_etags_false_answers_without_etag(server, account):
    server.put_etags = False
    assert account.put(CAL + "a.ics", EVENT, CollectionKind.CALENDAR) is None
    assert account.items(CAL)[0].etag


def test_store_and_delete_bypass_every_check(server, account):
    server.store(CAL + "odd.ics", b"not iCalendar at all")
    assert account.get(CAL + "odd.ics").data == b"not iCalendar at all"
    server.delete(CAL + "odd.ics")
    assert account.items(CAL) == []


@pytest.fixture
def eager_switching():
    """Threads switch every microsecond: an unguarded check-then-write races at once."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_concurrent_puts_are_all_stored_once(server, eager_switching):
    account = MemoryDavAccount(server, "ann")
    hrefs = [CAL + f"e{n}.ics" for n in range(200)]
    with ThreadPoolExecutor(8) as pool:
        etags = list(
            pool.map(lambda n: account.put(hrefs[n], event(n), CollectionKind.CALENDAR), range(200))
        )
    assert len(set(etags)) == 200
    assert sorted(r.href for r in account.items(CAL)) == sorted(hrefs)
    assert len(account.sync(CAL, None).changed) == 200


def test_concurrent_puts_of_one_uid_leave_one_item(eager_switching):
    for round_ in range(40):
        server = MemoryDavServer()
        server.add_user("ann")
        account = MemoryDavAccount(server, "ann")
        start = threading.Barrier(8)

        def put(n: int, account=account, start=start) -> bool:
            start.wait()
            try:
                account.put(CAL + f"same{n}.ics", EVENT, CollectionKind.CALENDAR)
            except ItemConflictError:
                return False
            return True

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(put, range(8)))
        assert (round_, results.count(True)) == (round_, 1)
        assert len(account.items(CAL)) == 1
