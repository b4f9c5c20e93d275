"""The calendar and contacts sync between real servers: Radicale -> Xandikos and the reverse."""

from __future__ import annotations

import httpx
import pytest

from mailferry.adapters.dav import (
    CollectionKind,
    DavAccount,
    DavLogin,
    DavSession,
    NewCollection,
    parse_dav_url,
)
from mailferry.adapters.memory.davstate import MemoryItemStateStore
from mailferry.adapters.tls import TlsOptions
from mailferry.domain.attendees import AttendeeMode
from mailferry.domain.items import identify
from mailferry.domain.normalise import compare_icalendar, compare_vcard
from mailferry.domain.scheduling import unpark_attendees
from mailferry.sandbox import davcorpus
from mailferry.service.davsync import DavOptions, sync_accounts
from mailferry.service.davverify import verify_dav
from mailferry.service.resilience import RetryPolicy

pytestmark = pytest.mark.integration

PAIRS = [("radicale", "xandikos"), ("xandikos", "radicale")]


def open_account(server, user: str, password: str) -> DavAccount:
    url = parse_dav_url(server.url(user))
    return DavAccount(DavSession(url, DavLogin(user, password), TlsOptions(ca_file=server.ca_file)))


@pytest.fixture(params=PAIRS, ids=["radicale-to-xandikos", "xandikos-to-radicale"])
def pair(request, make_user):
    source_server = request.getfixturevalue(request.param[0])
    target_server = request.getfixturevalue(request.param[1])
    source = open_account(source_server, *make_user(source_server))
    target = open_account(target_server, *make_user(target_server))
    yield source, target
    source.close()
    target.close()


def default(account: DavAccount, kind: CollectionKind) -> str:
    return next(c.href for c in account.collections() if c.kind is kind)


def contents(account: DavAccount, collection: str, kind: CollectionKind) -> dict[str, bytes]:
    """UID-less view: href name -> bytes, read with GET (what the server stores)."""
    refs = account.items(collection)
    return {r.href.rsplit("/", 1)[-1]: account.get(r.href).data for r in refs}


def seed(account: DavAccount) -> tuple[str, str]:
    calendar = default(account, CollectionKind.CALENDAR)
    book = default(account, CollectionKind.ADDRESSBOOK)
    for name, data in davcorpus.every_kind().items():
        account.put(f"{calendar}{name}.ics", data, CollectionKind.CALENDAR)
    account.put(
        f"{book}ann.vcf", davcorpus.card("ann@tests", photo=True), CollectionKind.ADDRESSBOOK
    )
    account.put(
        f"{book}bob.vcf", davcorpus.card("bob@tests", "Bob Other"), CollectionKind.ADDRESSBOOK
    )
    account.put(
        f"{book}team.vcf",
        davcorpus.group("team@tests", ["ann@tests", "bob@tests"]),
        CollectionKind.ADDRESSBOOK,
    )
    return calendar, book


def by_uid(account: DavAccount, collection: str, kind: CollectionKind) -> dict[str, bytes]:
    out = {}
    for data in contents(account, collection, kind).values():
        uid = identify(data).uid
        assert uid not in out, f"two items with UID {uid}"
        out[uid] = data
    return out


def test_every_item_arrives_equal_and_a_rerun_copies_nothing(pair):
    source, target = pair
    calendar, book = seed(source)
    state = MemoryItemStateStore()
    first = sync_accounts(source, target, state, "p")
    assert first.failures == [], first.failures
    assert first.items_copied == len(davcorpus.every_kind()) + 3
    t_calendar = default(target, CollectionKind.CALENDAR)
    t_book = default(target, CollectionKind.ADDRESSBOOK)
    src_events = by_uid(source, calendar, CollectionKind.CALENDAR)
    dst_events = by_uid(target, t_calendar, CollectionKind.CALENDAR)
    assert src_events.keys() == dst_events.keys()
    for uid, data in src_events.items():
        assert compare_icalendar(data, dst_events[uid]).equal, (
            uid,
            compare_icalendar(data, dst_events[uid]),
        )
    src_cards = by_uid(source, book, CollectionKind.ADDRESSBOOK)
    dst_cards = by_uid(target, t_book, CollectionKind.ADDRESSBOOK)
    assert src_cards.keys() == dst_cards.keys()
    for uid, data in src_cards.items():
        assert compare_vcard(data, dst_cards[uid]).equal, uid
    again = sync_accounts(source, target, state, "p")
    assert (again.items_copied, again.items_updated, again.failures) == (0, 0, [])
    assert again.items_unchanged == first.items_copied
    lost = sync_accounts(source, target, MemoryItemStateStore(), "p")
    assert (lost.items_copied, lost.items_skipped_existing) == (0, first.items_copied)
    assert len(contents(target, t_calendar, CollectionKind.CALENDAR)) == len(src_events)


def test_a_changed_item_is_updated_in_place_and_a_target_change_is_a_conflict(pair):
    source, target = pair
    calendar, _book = seed(source)
    state = MemoryItemStateStore()
    sync_accounts(source, target, state, "p")
    changed = davcorpus.simple_event("simple-1@tests", "Moved meeting")
    etag = source.items(calendar)
    old = next(r.etag for r in etag if r.href.endswith("simple.ics"))
    source.put(f"{calendar}simple.ics", changed, CollectionKind.CALENDAR, old)
    second = sync_accounts(source, target, state, "p")
    assert (second.items_updated, second.items_copied, second.failures) == (1, 0, [])
    t_calendar = default(target, CollectionKind.CALENDAR)
    there = by_uid(target, t_calendar, CollectionKind.CALENDAR)["simple-1@tests"]
    assert b"Moved meeting" in there
    # now the target's copy changes: the next source change is a conflict, not an overwrite
    ref = next(r for r in target.items(t_calendar) if target.get(r.href).data == there)
    target.put(
        ref.href,
        davcorpus.simple_event("simple-1@tests", "Mine"),
        CollectionKind.CALENDAR,
        ref.etag,
    )
    ref2 = next(r.etag for r in source.items(calendar) if r.href.endswith("simple.ics"))
    source.put(
        f"{calendar}simple.ics",
        davcorpus.simple_event("simple-1@tests", "Again"),
        CollectionKind.CALENDAR,
        ref2,
    )
    third = sync_accounts(source, target, state, "p")
    assert [c.uid for c in third.conflicts] == ["simple-1@tests"]
    assert b"Mine" in by_uid(target, t_calendar, CollectionKind.CALENDAR)["simple-1@tests"]


def test_meetings_are_parked_on_servers_that_mail_attendees_and_nothing_is_sent(pair, smtp_sink):
    source, target = pair
    calendar = default(source, CollectionKind.CALENDAR)
    source.put(f"{calendar}meet.ics", davcorpus.meeting("meet-1@tests"), CollectionKind.CALENDAR)
    smtp_sink.clear()  # a source server may mail the seeded meeting's attendees itself
    summary = sync_accounts(source, target, MemoryItemStateStore(), "p")
    assert summary.attendees == AttendeeMode.PARK
    assert summary.scheduling_changed == 1
    t_calendar = default(target, CollectionKind.CALENDAR)
    stored = by_uid(target, t_calendar, CollectionKind.CALENDAR)["meet-1@tests"]
    assert b"X-MAILFERRY-ATTENDEE" in stored
    assert b"\nATTENDEE" not in stored
    original = by_uid(source, calendar, CollectionKind.CALENDAR)["meet-1@tests"]
    assert compare_icalendar(original, unpark_attendees(stored).raw).equal
    lost = sync_accounts(source, target, MemoryItemStateStore(), "p")  # parked: still the same
    assert (lost.items_skipped_existing, lost.items_copied, lost.conflicts) == (1, 0, [])
    assert smtp_sink.messages == []  # the migration mailed nobody


class FaultyTransport(httpx.HTTPTransport):
    """In front of a real server: every ``every``-th PUT is answered 429 (Retry-After: 1) without
    reaching it, or reaches it and then loses its answer (``drop``: the connection "breaks")."""

    def __init__(self, *, every: int, drop: bool, **kw) -> None:
        super().__init__(**kw)
        self.every, self.drop, self.puts, self.faults = every, drop, 0, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "PUT":
            return super().handle_request(request)
        self.puts += 1
        if self.puts % self.every:
            return super().handle_request(request)
        self.faults += 1
        if not self.drop:
            return httpx.Response(429, headers={"Retry-After": "1"}, request=request)
        response = super().handle_request(request)
        response.read()
        raise httpx.ReadError("connection reset after the request was sent", request=request)


@pytest.mark.parametrize("drop", [False, True], ids=["429-retry-after", "answer-lost"])
def test_throttling_and_lost_answers_are_waited_out_without_a_duplicate(
    radicale, xandikos, make_user, drop
):
    source = open_account(radicale, *make_user(radicale))
    user, password = make_user(xandikos)
    transport = FaultyTransport(
        every=3, drop=drop, verify=TlsOptions(ca_file=xandikos.ca_file).context()
    )
    url = parse_dav_url(xandikos.url(user))
    target = DavAccount(DavSession(url, DavLogin(user, password), transport=transport))
    with source, target:
        calendar, _book = seed(source)
        policy = RetryPolicy(attempts=3, base_wait=0.05, max_wait=0.2)
        summary = sync_accounts(
            source, target, MemoryItemStateStore(), "p", DavOptions(retry=policy)
        )
        assert summary.failures == [], summary.failures
        assert transport.faults >= 2
        if drop:
            assert summary.retries == transport.faults
        else:
            assert summary.throttled == transport.faults
        assert (
            summary.items_copied + summary.items_skipped_existing == len(davcorpus.every_kind()) + 3
        )
        t_calendar = default(target, CollectionKind.CALENDAR)
        assert sorted(by_uid(target, t_calendar, CollectionKind.CALENDAR)) == sorted(
            by_uid(source, calendar, CollectionKind.CALENDAR)
        )


def test_collections_are_created_with_their_properties_and_refusals_reported(pair):
    source, target = pair
    home = source.homes().calendar_home
    source.create_collection(
        f"{home}work/",
        NewCollection(
            CollectionKind.CALENDAR, "Work", "Work things", "#3366FFFF", None, ("VEVENT", "VTODO")
        ),
    )
    source.put(f"{home}work/e.ics", davcorpus.simple_event("work-1@tests"), CollectionKind.CALENDAR)
    source.put(f"{home}work/t.ics", davcorpus.todo("work-todo@tests"), CollectionKind.CALENDAR)
    tasks_only = f"{target.homes().calendar_home}tasks/"
    source.create_collection(
        f"{home}tasks/",
        NewCollection(CollectionKind.CALENDAR, "Tasks", components=("VEVENT", "VTODO")),
    )
    source.put(
        f"{home}tasks/ev.ics", davcorpus.simple_event("odd-event@tests"), CollectionKind.CALENDAR
    )
    target.create_collection(
        tasks_only, NewCollection(CollectionKind.CALENDAR, "Tasks", components=("VTODO",))
    )
    summary = sync_accounts(source, target, MemoryItemStateStore(), "p")
    created = {c.source.rstrip("/").rsplit("/", 1)[-1]: c for c in summary.collections}
    assert created["work"].created
    work = next(c for c in target.collections() if c.href.rstrip("/").endswith("/work"))
    assert (work.displayname, work.color) == ("Work", "#3366FFFF")
    assert set(work.components) >= {"VEVENT", "VTODO"}
    assert not created["tasks"].created
    refused = [f for f in summary.failures if f.uid == "odd-event@tests"]
    assert len(refused) == 1 and "holds only VTODO" in refused[0].reason
    assert [f.uid for f in summary.failures] == ["odd-event@tests"]


def test_a_dry_run_counts_what_it_would_do_and_writes_nothing(pair):
    source, target = pair
    seed(source)
    home = source.homes().calendar_home
    source.create_collection(f"{home}extra/", NewCollection(CollectionKind.CALENDAR, "Extra"))
    source.put(
        f"{home}extra/x.ics", davcorpus.simple_event("extra-1@tests"), CollectionKind.CALENDAR
    )
    before = sorted(c.href for c in target.collections())
    state = MemoryItemStateStore()
    dry = sync_accounts(source, target, state, "p", DavOptions(dry_run=True))
    assert dry.items_copied == len(davcorpus.every_kind()) + 3 + 1
    assert any(c.created and c.note == "would be created" for c in dry.collections)
    assert sorted(c.href for c in target.collections()) == before
    for collection in target.collections():
        if collection.kind in {CollectionKind.CALENDAR, CollectionKind.ADDRESSBOOK}:
            assert target.items(collection.href) == []
    assert all(state.collection_state("p", c.source) is None for c in dry.collections)


class CountingTransport(httpx.HTTPTransport):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.methods: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.methods.append(request.method)
        return super().handle_request(request)


def counted(server, user: str, password: str) -> tuple[DavAccount, CountingTransport]:
    transport = CountingTransport(verify=TlsOptions(ca_file=server.ca_file).context())
    url = parse_dav_url(server.url(user))
    return DavAccount(DavSession(url, DavLogin(user, password), transport=transport)), transport


@pytest.mark.parametrize(
    ("src", "dst"), PAIRS, ids=["radicale-to-xandikos", "xandikos-to-radicale"]
)
def test_a_pass_over_an_unchanged_account_costs_a_few_requests(request, make_user, src, dst):
    source_server, target_server = request.getfixturevalue(src), request.getfixturevalue(dst)
    source_login, target_login = make_user(source_server), make_user(target_server)
    with open_account(source_server, *source_login) as seeding:
        seed(seeding)
    state = MemoryItemStateStore()
    with (
        open_account(source_server, *source_login) as source,
        open_account(target_server, *target_login) as target,
    ):  # the first pass copies, and stores the tokens its own writes made
        sync_accounts(source, target, state, "p")
    source, sent = counted(source_server, *source_login)
    target, received = counted(target_server, *target_login)
    with source, target:
        quiet = sync_accounts(source, target, state, "p")
    assert (quiet.items_copied, quiet.items_unchanged) == (0, len(davcorpus.every_kind()) + 3)
    # discovery (principal, homes), the collection listing, OPTIONS: nothing per item
    assert len(sent.methods) <= 6, sent.methods
    assert len(received.methods) <= 6, received.methods
    assert "REPORT" not in sent.methods + received.methods


def test_verify_reports_the_vcard_4_photos_radicale_loses(xandikos, radicale, make_user):
    source = open_account(xandikos, *make_user(xandikos))
    target = open_account(radicale, *make_user(radicale))
    card = (
        b"BEGIN:VCARD\r\nVERSION:4.0\r\nUID:photo4@tests\r\nFN:Pic Ture\r\n"
        b"PHOTO:data:image/jpeg;base64,/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDA==\r\n"
        b"END:VCARD\r\n"
    )
    with source, target:
        book = default(source, CollectionKind.ADDRESSBOOK)
        source.put(f"{book}p.vcf", card, CollectionKind.ADDRESSBOOK)
        state = MemoryItemStateStore()
        assert sync_accounts(source, target, state, "p").items_copied == 1
        report = verify_dav(source, target, state, "p")
    assert not report.identical
    (problem,) = [p for c in report.collections for p in c.problems]
    assert "photo4@tests" in problem and "PHOTO" in problem
