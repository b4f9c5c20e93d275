"""One contract for the DAV adapter, run against Radicale and Xandikos started by fixtures, and
against the in-memory fake (adapters/memory/dav.py) so that it cannot drift from them.

What the three share is asserted alike; where they differ, a table per server says what each
does (docs/dav-servers.md lists the findings)."""

from __future__ import annotations

import email
import smtplib
import time
from urllib.parse import quote

import pytest

from mailferry.adapters.dav import (
    CollectionKind,
    DavAccount,
    DavLogin,
    DavSession,
    Item,
    NewCollection,
    parse_dav_url,
)
from mailferry.adapters.memory.dav import MemoryDavAccount, MemoryDavServer
from mailferry.adapters.tls import TlsOptions
from mailferry.domain.errors import (
    AuthError,
    FolderError,
    ItemConflictError,
    ItemError,
    SyncTokenInvalidError,
)

pytestmark = pytest.mark.integration

REAL = ["radicale", "xandikos"]
SERVERS = ["memory", *REAL]

EVENT = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailferry//contract//EN\r\n"
    b"BEGIN:VEVENT\r\nUID:contract-event-1@mailferry\r\nDTSTAMP:20260101T000000Z\r\n"
    b"DTSTART:20260102T100000Z\r\nDTEND:20260102T110000Z\r\nSUMMARY:Contract\r\n"
    b"END:VEVENT\r\nEND:VCALENDAR\r\n"
)
CARD = (
    b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:contract-card-1@mailferry\r\nFN:Ann Example\r\n"
    b"N:Example;Ann;;;\r\nEMAIL:ann@example.org\r\nEND:VCARD\r\n"
)
# What each server gives back of what it was given, found by these tests: both re-serialise
# iCalendar (property order changes), Radicale re-serialises vCard too.
# The fake keeps both (its ``reserialise`` knob does what the servers do to events).
KEEPS_BYTES = {("xandikos", "card"), ("memory", "event"), ("memory", "card")}


PARIS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailferry//contract//EN\r\n"
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
    "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    "END:VCALENDAR\r\n"
)


def event(n: int) -> bytes:
    return EVENT.replace(b"contract-event-1", f"contract-event-{n}".encode())


def open_account(server, user: str, password: str) -> DavAccount | MemoryDavAccount:
    if isinstance(server, MemoryDavServer):
        return MemoryDavAccount(server, user, password)
    url = parse_dav_url(server.url(user))
    return DavAccount(DavSession(url, DavLogin(user, password), TlsOptions(ca_file=server.ca_file)))


@pytest.fixture(params=SERVERS)
def server(request):
    if request.param == "memory":  # scheduling on, as the real ones: "sent no mail" means something
        return MemoryDavServer(auto_schedule=True)
    return request.getfixturevalue(request.param)


def server_name(request) -> str:
    return request.node.callspec.params["server"]


@pytest.fixture
def account(server, make_user):
    user, password = make_user(server)
    with open_account(server, user, password) as acc:
        yield acc


@pytest.fixture
def calendar(account):
    href = account.homes().calendar_home + "work/"
    new = NewCollection(
        CollectionKind.CALENDAR, "Work", "Work things", "#3366FFFF", PARIS, ("VEVENT",)
    )
    assert account.create_collection(href, new) == ()  # nothing refused
    return href


@pytest.fixture
def addressbook(account):
    href = account.homes().addressbook_home + "friends/"
    account.create_collection(href, NewCollection(CollectionKind.ADDRESSBOOK, "Friends"))
    return href


# What each server refuses to set when creating a collection (it still creates it: 201).
REFUSED = {
    "memory": (),
    "radicale": (),
    "xandikos": ("{urn:ietf:params:xml:ns:carddav}addressbook-description",),
}


def test_properties_the_server_refuses_at_creation_are_reported(request, account):
    href = account.homes().addressbook_home + "described/"
    new = NewCollection(CollectionKind.ADDRESSBOOK, "Described", "People I describe")
    refused = account.create_collection(href, new)
    assert refused == REFUSED[server_name(request)]
    [book] = [c for c in account.collections() if c.href == href]
    assert book.description == (None if refused else "People I describe")


def test_discovery_finds_the_homes_and_the_default_collections(account):
    homes = account.homes()
    assert homes.principal.startswith("/")
    assert homes.calendar_home
    assert homes.addressbook_home
    kinds = {c.kind for c in account.collections()}
    assert {CollectionKind.CALENDAR, CollectionKind.ADDRESSBOOK} <= kinds


def test_created_collections_are_listed_with_their_properties(account, calendar, addressbook):
    found = {c.href: c for c in account.collections()}
    cal, book = found[calendar], found[addressbook]
    assert (cal.kind, cal.displayname, cal.description) == (
        CollectionKind.CALENDAR,
        "Work",
        "Work things",
    )
    assert cal.color == "#3366FFFF"
    assert cal.components == ("VEVENT",)
    assert cal.timezone is not None
    assert "TZID:Europe/Paris" in cal.timezone
    assert cal.sync_token
    assert (book.kind, book.displayname) == (CollectionKind.ADDRESSBOOK, "Friends")


@pytest.mark.parametrize("what", ["event", "card"])
def test_an_item_is_read_back_as_written(request, account, calendar, addressbook, what):
    collection, data, kind = (
        (calendar, EVENT, CollectionKind.CALENDAR)
        if what == "event"
        else (addressbook, CARD, CollectionKind.ADDRESSBOOK)
    )
    href = collection + (f"{what}.ics" if what == "event" else f"{what}.vcf")
    etag = account.put(href, data, kind)
    got = account.get(href)
    assert got.etag == etag
    assert sorted(got.data.splitlines()) == sorted(data.splitlines())  # every line kept
    [multiget] = account.read(collection, kind, [href])
    assert isinstance(multiget, Item)
    assert (multiget.data, multiget.etag) == (got.data, etag)
    if (server_name(request), what) in KEEPS_BYTES:
        assert got.data == data


def test_listing_gives_every_etag(account, calendar):
    etags = {
        calendar + f"e{n}.ics": account.put(
            calendar + f"e{n}.ics", event(n), CollectionKind.CALENDAR
        )
        for n in range(3)
    }
    listed = {ref.href: ref.etag for ref in account.items(calendar)}
    assert listed == etags


def test_sync_collection_gives_the_changes_since_a_token(account, calendar):
    first = account.put(calendar + "a.ics", event(1), CollectionKind.CALENDAR)
    initial = account.sync(calendar, None)
    assert [(r.href, r.etag) for r in initial.changed] == [(calendar + "a.ics", first)]
    second = account.put(calendar + "b.ics", event(2), CollectionKind.CALENDAR)
    later = account.sync(calendar, initial.token)
    assert later.token != initial.token
    assert [(r.href, r.etag) for r in later.changed] == [(calendar + "b.ics", second)]
    assert later.removed == ()


def test_a_sync_token_the_server_does_not_know_is_a_typed_error(account, calendar):
    token = account.sync(calendar, None).token
    with pytest.raises(SyncTokenInvalidError):
        account.sync(calendar, token + "-unknown")


def test_multiget_reports_a_missing_item(account, calendar):
    account.put(calendar + "a.ics", event(1), CollectionKind.CALENDAR)
    got = list(
        account.read(
            calendar, CollectionKind.CALENDAR, [calendar + "a.ics", calendar + "gone.ics"], chunk=1
        )
    )
    assert [type(g) for g in got] == [Item, ItemError]
    assert got[1].href == calendar + "gone.ics"


def test_a_new_item_never_overwrites_an_existing_one(account, calendar):
    href = calendar + "a.ics"
    account.put(href, event(1), CollectionKind.CALENDAR)
    with pytest.raises(ItemConflictError) as refused:
        account.put(href, event(1).replace(b"Contract", b"Other"), CollectionKind.CALENDAR)
    assert refused.value.status == 412
    assert b"SUMMARY:Contract" in account.get(href).data


def test_an_update_needs_the_current_etag(account, calendar):
    href = calendar + "a.ics"
    etag = account.put(href, event(1), CollectionKind.CALENDAR)
    changed = event(1).replace(b"Contract", b"Changed")
    new_etag = account.put(href, changed, CollectionKind.CALENDAR, etag=etag)
    assert new_etag != etag
    with pytest.raises(ItemConflictError):
        account.put(href, event(1), CollectionKind.CALENDAR, etag=etag)  # stale
    assert b"SUMMARY:Changed" in account.get(href).data


def delete(server, account, href: str) -> None:
    """The port has no DELETE (a migration never removes): a source item goes away this way."""
    if isinstance(server, MemoryDavServer):
        server.delete(href)
    else:
        assert account.session.request("DELETE", quote(href)).status_code in {200, 204}


def test_sync_collection_reports_a_removed_item(server, account, calendar):
    account.put(calendar + "a.ics", event(1), CollectionKind.CALENDAR)
    kept = account.put(calendar + "b.ics", event(2), CollectionKind.CALENDAR)
    initial = account.sync(calendar, None)
    delete(server, account, calendar + "a.ics")
    later = account.sync(calendar, initial.token)
    assert (later.changed, later.removed) == ((), (calendar + "a.ics",))
    assert [(r.href, r.etag) for r in account.items(calendar)] == [(calendar + "b.ics", kept)]
    assert account.sync(calendar, later.token).removed == ()


def test_a_sync_token_of_another_collection_is_refused(account, calendar):
    """Radicale's token is a hash of the collection's state: two empty collections share one
    (and accept each other's), hence the item."""
    account.put(calendar + "a.ics", event(1), CollectionKind.CALENDAR)
    token = account.sync(calendar, None).token
    calendars = [c.href for c in account.collections() if c.kind is CollectionKind.CALENDAR]
    [other] = [href for href in calendars if href != calendar]  # the default calendar
    with pytest.raises(SyncTokenInvalidError):
        account.sync(other, token)


def test_a_collection_that_does_not_exist_cannot_be_synced(account):
    with pytest.raises(FolderError):
        account.sync(account.homes().calendar_home + "missing/", None)


# RFC 4791 s5.3.2.1 no-uid-conflict: Radicale answers 409, Xandikos 412.
UID_CONFLICT = {"memory": 409, "radicale": 409, "xandikos": 412}


def test_a_uid_used_by_another_item_of_the_collection_is_refused(request, account, calendar):
    account.put(calendar + "a.ics", event(1), CollectionKind.CALENDAR)
    with pytest.raises(ItemConflictError) as refused:
        account.put(calendar + "b.ics", event(1), CollectionKind.CALENDAR)
    assert refused.value.status == UID_CONFLICT[server_name(request)]
    assert [r.href for r in account.items(calendar)] == [calendar + "a.ics"]


def test_a_put_where_no_collection_is_a_409_conflict(account):
    """Indistinguishable from a UID conflict by status alone: the caller must not take every
    ItemConflictError for "the item is there"."""
    href = account.homes().calendar_home + "missing/a.ics"
    with pytest.raises(ItemConflictError) as refused:
        account.put(href, event(1), CollectionKind.CALENDAR)
    assert refused.value.status == 409


# Xandikos answers 412 (valid-calendar-data) to what is not iCalendar: an ItemConflictError too.
GARBAGE_IS_A_CONFLICT = {"memory": False, "radicale": False, "xandikos": True}


def test_what_is_not_icalendar_is_refused(request, account, calendar):
    with pytest.raises(ItemError) as refused:
        account.put(calendar + "junk.ics", b"hello", CollectionKind.CALENDAR)
    conflict = isinstance(refused.value, ItemConflictError)
    assert conflict == GARBAGE_IS_A_CONFLICT[server_name(request)]
    assert account.items(calendar) == []


# Radicale refuses an event without UID (400); Xandikos and the fake store it.
STORES_WITHOUT_UID = {"memory": True, "radicale": False, "xandikos": True}


def test_an_event_without_uid(request, account, calendar):
    data = event(1).replace(b"UID:contract-event-1@mailferry\r\n", b"")
    if STORES_WITHOUT_UID[server_name(request)]:
        account.put(calendar + "nouid.ics", data, CollectionKind.CALENDAR)
        assert [r.href for r in account.items(calendar)] == [calendar + "nouid.ics"]
    else:
        with pytest.raises(ItemError, match="HTTP 400"):
            account.put(calendar + "nouid.ics", data, CollectionKind.CALENDAR)


TODO = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailferry//contract//EN\r\n"
    b"BEGIN:VTODO\r\nUID:contract-todo-1@mailferry\r\nDTSTAMP:20260101T000000Z\r\n"
    b"SUMMARY:Task\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
)
# The `calendar` fixture supports VEVENT only: Xandikos and the fake refuse a VTODO there
# (403 supported-calendar-component), Radicale stores it.
REFUSES_COMPONENT = {"memory": True, "radicale": False, "xandikos": True}


def test_a_component_the_calendar_does_not_support(request, account, calendar):
    if REFUSES_COMPONENT[server_name(request)]:
        with pytest.raises(ItemError, match="HTTP 403"):
            account.put(calendar + "t.ics", TODO, CollectionKind.CALENDAR)
    else:
        account.put(calendar + "t.ics", TODO, CollectionKind.CALENDAR)
    assert len(account.items(calendar)) == (0 if REFUSES_COMPONENT[server_name(request)] else 1)


# MKCALENDAR over an existing calendar: Radicale 409, Xandikos 403 (RFC 4791: 403); MKCOL 405.
MKCALENDAR_EXISTS = {"memory": 403, "radicale": 409, "xandikos": 403}


def test_a_collection_is_never_created_over_an_existing_one(request, account, calendar):
    status = MKCALENDAR_EXISTS[server_name(request)]
    with pytest.raises(FolderError, match=f"MKCALENDAR: HTTP {status}"):
        account.create_collection(calendar, NewCollection(CollectionKind.CALENDAR, "Again"))
    book = next(c.href for c in account.collections() if c.kind is CollectionKind.ADDRESSBOOK)
    with pytest.raises(FolderError, match="MKCOL: HTTP 405"):
        account.create_collection(book, NewCollection(CollectionKind.ADDRESSBOOK, "Again"))
    [kept] = [c for c in account.collections() if c.href == calendar]
    assert kept.displayname == "Work"


# Both servers give the same ETag to the same bytes written again; the fake gives a new one on
# every write (stricter: the sync must not assume an unchanged ETag means "not written").
SAME_BYTES_SAME_ETAG = {"memory": False, "radicale": True, "xandikos": True}


def test_what_an_etag_says_after_writing_the_same_bytes(request, account, calendar):
    first = account.put(calendar + "a.ics", event(1), CollectionKind.CALENDAR)
    again = account.put(calendar + "a.ics", event(1), CollectionKind.CALENDAR, etag=first)
    assert (first == again) == SAME_BYTES_SAME_ETAG[server_name(request)]


# calendar-auto-schedule in the DAV header: Xandikos says it, Radicale does not; the contract's
# fake is made with auto_schedule=True.
AUTO_SCHEDULE = {"memory": True, "radicale": False, "xandikos": True}


def test_capabilities(request, account):
    capabilities = account.capabilities()
    assert capabilities.auto_schedule == AUTO_SCHEDULE[server_name(request)]
    assert capabilities.can_create
    assert capabilities.server


def test_a_wrong_password_is_an_auth_error(server, make_user):
    user, password = make_user(server)
    with open_account(server, user, password + "-wrong") as acc, pytest.raises(AuthError):
        acc.homes()


def test_the_servers_sent_no_mail(request, server, account, calendar, addressbook):
    account.put(calendar + "a.ics", event(1), CollectionKind.CALENDAR)
    account.put(addressbook + "c.vcf", CARD, CollectionKind.ADDRESSBOOK)
    if isinstance(server, MemoryDavServer):
        assert server.sent == []
    else:
        assert request.getfixturevalue("smtp_sink").messages == []


def test_the_sink_records_what_it_is_sent(smtp_sink):
    """The check above means something only if the sink does record mail."""
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port) as smtp:
        smtp.sendmail("a@example.org", ["b@example.org"], b"Subject: probe\\r\\n\\r\\nprobe\\r\\n")
    try:
        [mail] = smtp_sink.messages
        assert mail.recipients == ("b@example.org",)
    finally:
        smtp_sink.clear()


# In the future: Radicale mails nobody about past events.
INVITATION = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailferry//contract//EN\r\n"
    b"BEGIN:VEVENT\r\nUID:contract-meeting@mailferry\r\nDTSTAMP:20260101T000000Z\r\n"
    b"DTSTART:20360102T100000Z\r\nDTEND:20360102T110000Z\r\nSUMMARY:Meeting\r\n"
    b"ORGANIZER;SCHEDULE-AGENT=CLIENT;CN=Alice:mailto:alice@example.org\r\n"
    b"ATTENDEE;SCHEDULE-AGENT=CLIENT;CN=Bob;RSVP=TRUE:mailto:bob@example.net\r\n"
    b"END:VEVENT\r\nEND:VCALENDAR\r\n"
)


def decoded(content: bytes) -> bytes:
    """Every part of a message, transfer encoding undone (Radicale sends base64)."""
    message = email.message_from_bytes(content)
    return b"".join(part.get_payload(decode=True) or b"" for part in message.walk())


def wait_for_mail(sink, count: int, seconds: float = 5.0) -> list:
    deadline = time.monotonic() + seconds
    while len(sink.messages) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return sink.messages


ADDRESS_SET = (
    b'<D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
    b"<C:calendar-user-address-set><D:href>mailto:alice@example.org</D:href>"
    b"</C:calendar-user-address-set></D:prop></D:set></D:propertyupdate>"
)


def make_alice_the_organizer(acc: DavAccount) -> None:
    """Xandikos schedules only for a principal whose calendar-user-address-set names the
    ORGANIZER (multi-user principals start with none); Radicale mails for any organizer."""
    headers = {"Content-Type": "application/xml"}
    response = acc.session.request(
        "PROPPATCH", acc.homes().principal, body=ADDRESS_SET, headers=headers
    )
    assert response.status_code == 207


@pytest.mark.parametrize("server", REAL, indirect=True)
def test_the_servers_mail_attendees_even_with_schedule_agent_client(server, smtp_sink, make_user):
    """What a migration must avoid (issue #13 rule 3), found here: Radicale's email hook and
    Xandikos's iMIP (0.4.10) both invite the attendees of an uploaded event and ignore
    SCHEDULE-AGENT=CLIENT. Also shows the sink is wired for both servers: the "sent no mail"
    checks above would catch a server that sends. (The fake keeps to RFC 6638 here:
    tests/unit/test_memory_dav.py.)"""
    user, password = make_user(server)
    assert smtp_sink.messages == []
    try:
        with open_account(server, user, password) as acc:
            make_alice_the_organizer(acc)
            calendar = next(c.href for c in acc.collections() if c.kind is CollectionKind.CALENDAR)
            acc.put(calendar + "meeting.ics", INVITATION, CollectionKind.CALENDAR)
        [mail] = wait_for_mail(smtp_sink, 1)
        assert mail.recipients == ("bob@example.net",)
        assert b"UID:contract-meeting@mailferry" in decoded(mail.content)
    finally:
        smtp_sink.clear()
