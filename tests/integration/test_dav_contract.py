"""One contract for the DAV adapter, run against Radicale and Xandikos started by fixtures."""

from __future__ import annotations

import email
import smtplib
import time

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
from mailferry.adapters.tls import TlsOptions
from mailferry.domain.errors import (
    AuthError,
    ItemConflictError,
    ItemError,
    SyncTokenInvalidError,
)

pytestmark = pytest.mark.integration

SERVERS = ["radicale", "xandikos"]

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
KEEPS_BYTES = {("xandikos", "card")}


PARIS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailferry//contract//EN\r\n"
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
    "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    "END:VCALENDAR\r\n"
)


def event(n: int) -> bytes:
    return EVENT.replace(b"contract-event-1", f"contract-event-{n}".encode())


def open_account(server, user: str, password: str) -> DavAccount:
    url = parse_dav_url(server.url(user))
    return DavAccount(DavSession(url, DavLogin(user, password), TlsOptions(ca_file=server.ca_file)))


@pytest.fixture(params=SERVERS)
def server(request):
    return request.getfixturevalue(request.param)


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
REFUSED = {"radicale": (), "xandikos": ("{urn:ietf:params:xml:ns:carddav}addressbook-description",)}


def test_properties_the_server_refuses_at_creation_are_reported(request, account):
    href = account.homes().addressbook_home + "described/"
    new = NewCollection(CollectionKind.ADDRESSBOOK, "Described", "People I describe")
    refused = account.create_collection(href, new)
    assert refused == REFUSED[request.node.callspec.params["server"]]
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
    server_name = request.node.callspec.params["server"]
    if (server_name, what) in KEEPS_BYTES:
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


def test_a_wrong_password_is_an_auth_error(server, make_user):
    user, password = make_user(server)
    with open_account(server, user, password + "-wrong") as acc, pytest.raises(AuthError):
        acc.homes()


def test_the_servers_sent_no_mail(server, smtp_sink, account, calendar, addressbook):
    account.put(calendar + "a.ics", event(1), CollectionKind.CALENDAR)
    account.put(addressbook + "c.vcf", CARD, CollectionKind.ADDRESSBOOK)
    assert smtp_sink.messages == []


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


def test_the_servers_mail_attendees_even_with_schedule_agent_client(server, smtp_sink, make_user):
    """What a migration must avoid (issue #13 rule 3), found here: Radicale's email hook and
    Xandikos's iMIP (0.4.10) both invite the attendees of an uploaded event and ignore
    SCHEDULE-AGENT=CLIENT. Also shows the sink is wired for both servers: the "sent no mail"
    checks above would catch a server that sends."""
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
