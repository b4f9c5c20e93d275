"""Calendars and contacts of a Microsoft 365 mailbox (FAKE Graph) through the CalDAV/CardDAV sync:
``GraphCollections`` (adapters/graph/collections.py) against the FAKE Graph, the conversions on the
DAV corpus and on generated series, and Radicale -> FAKE Graph -> Xandikos through service/davsync."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mailferry.adapters.graph import events
from mailferry.adapters.graph.collections import ITEM_PROP
from mailferry.adapters.graph.recurrence import Unsupported
from mailferry.adapters.memory.davstate import MemoryItemStateStore
from mailferry.domain.attendees import AttendeeMode
from mailferry.domain.davmodel import CollectionKind, NewCollection
from mailferry.domain.errors import ItemConflictError, ItemError
from mailferry.domain.items import identify
from mailferry.domain.normalise import compare_icalendar
from mailferry.domain.windowszones import windows_of
from mailferry.sandbox import davcorpus
from mailferry.sandbox.graph import eventseries
from mailferry.sandbox.graph.server import FakeGraph, Fault
from mailferry.service.davsync import DavOptions, sync_accounts
from mailferry.service.davverify import verify_dav
from mailferry.service.resilience import RetryPolicy
from tests.integration.graphfixtures import open_collections
from tests.integration.test_dav_sync import open_account

pytestmark = pytest.mark.integration
UPN = "alice@contoso.com"
ROLES = ("Calendars.ReadWrite", "Contacts.ReadWrite")
EVENTS = ("simple", "series", "allday", "floating", "attach")


@pytest.fixture
def fake_graph(tmp_path):
    with FakeGraph(tmp_path / "graph") as fake:
        fake.store.add_mailbox(UPN)
        yield fake


@pytest.fixture
def graph(fake_graph):
    account = open_collections(fake_graph, UPN, ROLES)
    yield account
    account.close()


def default(account: Any, kind: CollectionKind) -> str:
    return next(c.href for c in account.collections() if c.kind is kind)


def forget_originals(fake: FakeGraph) -> None:
    """What an item changed in Outlook reads as: converted from Graph, not the source's bytes."""
    box = fake.store.mailbox(UPN)
    for folder in box.folders.values():
        for item in folder.items.values():
            ext = item.props.get("ext", {})
            key = ITEM_PROP.lower()
            if key in ext:
                meta = json.loads(ext[key])
                ext[key] = json.dumps(dict(meta, fp="changed in Outlook"))


# -- the parts of the DAV contract that apply -----------------------------------------------------
def test_fake_graph_homes_and_default_collections(graph):
    homes = graph.homes()
    assert homes.calendar_home and homes.addressbook_home
    kinds = {c.kind: c.href for c in graph.collections()}
    assert kinds[CollectionKind.CALENDAR].endswith("/calendars/calendar/")
    assert kinds[CollectionKind.ADDRESSBOOK].endswith("/contacts/contacts/")
    assert graph.capabilities().auto_schedule


def test_fake_graph_created_collections_are_listed_at_the_href_asked(graph):

    home = graph.homes().calendar_home
    refused = graph.create_collection(
        home + "work/", NewCollection(CollectionKind.CALENDAR, "Work", components=("VEVENT",))
    )
    assert refused == ()
    listed = {c.href: c for c in graph.collections()}
    assert listed[home + "work/"].displayname == "Work"


@pytest.mark.parametrize("name", EVENTS)
def test_fake_graph_an_item_is_read_back_at_its_href_as_written(graph, name):
    calendar = default(graph, CollectionKind.CALENDAR)
    data = davcorpus.every_kind()[name]
    graph.put(f"{calendar}{name}.ics", data, CollectionKind.CALENDAR)
    refs = graph.items(calendar)
    assert [r.href for r in refs] == [f"{calendar}{name}.ics"]
    (item,) = graph.read(calendar, CollectionKind.CALENDAR, [refs[0].href])
    assert item.data == data
    assert item.etag == refs[0].etag


@pytest.mark.parametrize("name", EVENTS)
def test_fake_graph_conversion_keeps_every_occurrence(graph, fake_graph, name):
    """Read back converted from Graph's JSON (as after a change in Outlook): the same event."""
    calendar = default(graph, CollectionKind.CALENDAR)
    data = davcorpus.every_kind()[name]
    graph.put(f"{calendar}{name}.ics", data, CollectionKind.CALENDAR)
    forget_originals(fake_graph)
    (item,) = graph.read(calendar, CollectionKind.CALENDAR, [f"{calendar}{name}.ics"])
    assert item.data != data
    assert compare_icalendar(data, item.data).equal, compare_icalendar(data, item.data)


def test_fake_graph_a_new_item_never_overwrites_and_an_update_needs_the_etag(graph):
    calendar = default(graph, CollectionKind.CALENDAR)
    href = f"{calendar}a.ics"
    etag = graph.put(href, davcorpus.simple_event("a@tests"), CollectionKind.CALENDAR)
    with pytest.raises(ItemConflictError):
        graph.put(href, davcorpus.simple_event("a@tests", "Other"), CollectionKind.CALENDAR)
    with pytest.raises(ItemConflictError):
        graph.put(href, davcorpus.simple_event("a@tests", "X"), CollectionKind.CALENDAR, "stale")
    new = graph.put(href, davcorpus.simple_event("a@tests", "X"), CollectionKind.CALENDAR, etag)
    assert new and new != etag
    (item,) = graph.read(calendar, CollectionKind.CALENDAR, [href])
    assert b"SUMMARY:X" in item.data


def test_fake_graph_refuses_meetings_tasks_and_rules_it_cannot_hold(graph, fake_graph):
    calendar = default(graph, CollectionKind.CALENDAR)
    cases = {
        "meeting": (davcorpus.meeting("m@tests"), "ORGANIZER"),
        "todo": (davcorpus.todo("t@tests"), "VTODO"),
        "hourly": (
            davcorpus.calendar(
                davcorpus.vevent("h@tests", "H", b"RRULE:FREQ=HOURLY\r\n"), zone=True
            ),
            "FREQ=HOURLY",
        ),
        "fifth": (
            davcorpus.calendar(
                davcorpus.vevent("f@tests", "F", b"RRULE:FREQ=MONTHLY;BYDAY=5MO\r\n"), zone=True
            ),
            "ordinal 5",
        ),
    }
    for name, (data, reason) in cases.items():
        with pytest.raises(ItemError) as caught:
            graph.put(f"{calendar}{name}.ics", data, CollectionKind.CALENDAR)
        assert reason in caught.value.reason, (name, caught.value.reason)
    assert graph.items(calendar) == []
    assert fake_graph.store.mailbox(UPN).invitations == 0


def test_fake_graph_a_lost_answer_to_a_post_makes_no_second_event(graph, fake_graph):
    calendar = default(graph, CollectionKind.CALENDAR)
    fake_graph.fail(Fault("POST", "/events$", drop_after_commit=True))
    data = davcorpus.simple_event("lost@tests")
    with pytest.raises(Exception, match="POST"):
        graph.put(f"{calendar}lost.ics", data, CollectionKind.CALENDAR)
    graph.items(calendar)  # the adapter's index is fresh: the name is taken now...
    graph._wheres[calendar].index = {}  # ...so forget it, as a process restarted would not know
    graph.put(f"{calendar}lost.ics", data, CollectionKind.CALENDAR)  # transactionId: same event
    assert len(graph.items(calendar)) == 1


# -- conversions -----------------------------------------------------------------------------------
ZONES = ["Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "Europe/London",
         "America/Sao_Paulo", "Asia/Kolkata", "Pacific/Auckland", "UTC"]  # fmt: skip
WALL_FROM, WALL_TO = dt.datetime(2027, 1, 1), dt.datetime(2027, 12, 31)  # noqa: DTZ001 - wall clocks
RULES = [
    "FREQ=DAILY;COUNT=12",
    "FREQ=DAILY;INTERVAL=3;COUNT=7",
    "FREQ=WEEKLY;BYDAY=MO,WE,FR;COUNT=15",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU;UNTIL=20280301T000000Z",
    "FREQ=MONTHLY;BYMONTHDAY=15;COUNT=8",
    "FREQ=MONTHLY;BYDAY=-1FR;COUNT=6",
    "FREQ=MONTHLY;BYDAY=2TU;COUNT=6",
    "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=10;COUNT=3",
    "FREQ=YEARLY;BYMONTH=11;BYDAY=4TH;COUNT=3",
]


def series_of(zone: str, rule: str, start: dt.datetime) -> bytes:
    event = icalendar.Event()
    event.add("UID", "gen@tests")
    event.add("DTSTAMP", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))

    event.add("DTSTART", start.replace(tzinfo=ZoneInfo(zone)))
    event.add("DTEND", (start + dt.timedelta(minutes=45)).replace(tzinfo=ZoneInfo(zone)))
    event.add("SUMMARY", "Generated")
    event.add("RRULE", icalendar.vRecur.from_ical(rule))
    calendar = icalendar.Calendar()
    calendar.add("VERSION", "2.0")
    calendar.add("PRODID", "-//tests//EN")
    calendar.add_component(event)
    calendar.add_missing_timezones()
    return calendar.to_ical()


def occurrences(data: bytes) -> list[dt.datetime]:
    calendar = icalendar.Calendar.from_ical(data)
    begin, end = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    found = recurring_ical_events.of(calendar).between(begin, end)
    return sorted(o["DTSTART"].dt.astimezone(dt.UTC) for o in found)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    zone=st.sampled_from(ZONES),
    rule=st.sampled_from(RULES),
    start=st.datetimes(WALL_FROM, WALL_TO).map(
        lambda d: d.replace(second=0, microsecond=0, minute=d.minute // 15 * 15)
    ),
)
def test_fake_graph_generated_series_keep_their_occurrences(graph, fake_graph, zone, rule, start):
    calendar = default(graph, CollectionKind.CALENDAR)
    for ref in graph.items(calendar):
        fake_graph.store.delete_item(
            fake_graph.store.mailbox(UPN),
            fake_graph.store.mailbox(UPN).well_known("calendar"),
            graph._wheres[calendar].index[ref.href],
        )
    graph._wheres[calendar].index = None
    data = series_of(zone, rule, start)
    try:
        graph.put(f"{calendar}gen.ics", data, CollectionKind.CALENDAR)
    except ItemError as exc:  # DTSTART off the rule: refused, never a shorter series
        reason = exc.reason
    else:
        reason = None
    assume(reason is None or "DTSTART is not an occurrence" not in reason)
    assert reason is None, reason
    forget_originals(fake_graph)
    (item,) = graph.read(calendar, CollectionKind.CALENDAR, [f"{calendar}gen.ics"])
    assert occurrences(item.data) == occurrences(data)


LAST_DAYS = [  # Outlook's "day N, or the month's last day" (domain/monthdays.py)
    ("FREQ=MONTHLY;BYMONTHDAY=28,29,30,31;BYSETPOS=-1;COUNT=14", dt.datetime(2027, 1, 31, 9)),  # noqa: DTZ001
    ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=28,29;BYSETPOS=-1;COUNT=5", dt.datetime(2028, 2, 29, 9)),  # noqa: DTZ001
    ("FREQ=MONTHLY;BYMONTHDAY=-1;UNTIL=20280601T000000Z", dt.datetime(2027, 11, 30, 9)),  # noqa: DTZ001
]  # fmt: skip


@pytest.mark.parametrize(("rule", "start"), LAST_DAYS)
def test_fake_graph_a_series_on_the_last_day_of_short_months_keeps_its_dates(
    graph, fake_graph, rule, start
):
    """Graph's day N (the fake expands it as Exchange documents it: a shorter month's last day)
    has the source's occurrences, and reads back as a series with them too."""
    calendar = default(graph, CollectionKind.CALENDAR)
    data = series_of("Europe/Paris", rule, start)
    graph.put(f"{calendar}last.ics", data, CollectionKind.CALENDAR)
    box = fake_graph.store.mailbox(UPN)
    (item,) = [i for f in box.folders.values() for i in f.items.values() if i.props.get("recurrence")]  # fmt: skip
    begin, end = dt.datetime(2026, 1, 1, tzinfo=dt.UTC), dt.datetime(2031, 1, 1, tzinfo=dt.UTC)
    shown = eventseries.instances(item, begin, end, "UTC")
    walls = [dt.datetime.fromisoformat(o["start"]["dateTime"][:19]) for o in shown]
    assert [w.replace(tzinfo=dt.UTC) for w in walls] == occurrences(data)
    forget_originals(fake_graph)
    (back,) = graph.read(calendar, CollectionKind.CALENDAR, [f"{calendar}last.ics"])
    assert occurrences(back.data) == occurrences(data)


def test_windows_zones_keep_instants_and_unknown_zones_are_utc():
    assert windows_of("Europe/Paris") == "Romance Standard Time"
    assert windows_of("Europe/Berlin") == "W. Europe Standard Time"
    assert windows_of("America/Detroit") == "Eastern Standard Time"  # same rules as New York
    assert windows_of("Not/AZone") is None
    plan = events.plan_event(
        davcorpus.calendar(
            b"BEGIN:VEVENT\r\nUID:x\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Mars/Base:"
            b"20270101T100000\r\nDTEND;TZID=Mars/Base:20270101T110000\r\nEND:VEVENT\r\n"
        )
    )
    assert plan.master["start"]["timeZone"] in {"UTC", "W. Europe Standard Time"}


def test_an_rrule_graph_cannot_hold_is_refused_not_changed():
    for rule in (b"FREQ=MONTHLY;BYMONTHDAY=1,15", b"FREQ=YEARLY;BYWEEKNO=20", b"FREQ=MINUTELY"):
        data = davcorpus.calendar(
            davcorpus.vevent("r@tests", "R", b"RRULE:" + rule + b"\r\n"), zone=True
        )
        with pytest.raises(Unsupported):
            events.plan_event(data)
    on_the_31st = davcorpus.vevent(
        "d@tests", "D", b"RRULE:FREQ=MONTHLY;BYMONTHDAY=31\r\n", start=b"20270131T090000"
    )  # skips February where Graph's dayOfMonth=31 would fall on the 28th
    with pytest.raises(Unsupported, match="RFC 5545 skips the months without it"):
        events.plan_event(davcorpus.calendar(on_the_31st, zone=True))


# -- the sync, both ways ---------------------------------------------------------------------------
def seed(account, names=EVENTS):
    calendar = default(account, CollectionKind.CALENDAR)
    book = default(account, CollectionKind.ADDRESSBOOK)
    for name in names:
        account.put(f"{calendar}{name}.ics", davcorpus.every_kind()[name], CollectionKind.CALENDAR)
    account.put(f"{calendar}meet.ics", davcorpus.meeting("meet-1@tests"), CollectionKind.CALENDAR)
    account.put(
        f"{book}ann.vcf", davcorpus.card("ann@tests", photo=True), CollectionKind.ADDRESSBOOK
    )
    account.put(
        f"{book}bob.vcf", davcorpus.card("bob@tests", "Bob Other"), CollectionKind.ADDRESSBOOK
    )


def test_fake_graph_sync_radicale_to_graph_and_graph_to_xandikos(
    radicale, xandikos, make_user, smtp_sink, graph, fake_graph
):

    source = open_account(radicale, *make_user(radicale))
    target = open_account(xandikos, *make_user(xandikos))
    seed(source)
    smtp_sink.clear()  # Radicale mailed the seeded meeting's attendees itself (docs/dav-servers.md)
    state = MemoryItemStateStore()
    options = DavOptions(attendees=AttendeeMode.CLIENT)  # asked for: still parked for Graph
    first = sync_accounts(source, graph, state, "in", options)
    assert first.failures == [], first.failures
    assert first.attendees == AttendeeMode.PARK
    assert first.items_copied == len(EVENTS) + 1 + 2
    assert any("meet.ics" in w and "parked" in w for w in first.warnings), first.warnings
    report = verify_dav(source, graph, state, "in")
    assert all(not c.problems for c in report.collections), [
        c.as_json() for c in report.collections
    ]
    again = sync_accounts(source, graph, state, "in")
    assert (again.items_copied, again.items_updated, again.failures) == (0, 0, [])
    box = fake_graph.store.mailbox(UPN)
    assert box.invitations == 0
    meeting = next(
        i
        for f in box.folders.values()
        for i in f.items.values()
        if "Planning" in str(i.props.get("subject"))
    )
    assert "boss@example.org" in meeting.props["body"]["content"]
    assert meeting.props.get("attendees") is None

    out_state = MemoryItemStateStore()
    out = sync_accounts(graph, target, out_state, "out")
    assert out.failures == [], out.failures
    assert out.items_copied == first.items_copied
    report = verify_dav(graph, target, out_state, "out")
    problems = [p for c in report.collections for p in c.problems]
    assert problems == [], problems
    t_calendar = default(target, CollectionKind.CALENDAR)
    uids = {identify(target.get(r.href).data).uid for r in target.items(t_calendar)}
    assert "series-1@tests" in uids and "meet-1@tests" in uids
    assert smtp_sink.messages == []  # the migration mailed nobody
    source.close()
    target.close()


def test_fake_graph_a_lost_post_during_the_sync_makes_no_duplicate(
    radicale, make_user, graph, fake_graph
):

    source = open_account(radicale, *make_user(radicale))
    seed(source, names=("simple", "allday"))
    fake_graph.fail(Fault("POST", "/events$", drop_after_commit=True))
    state = MemoryItemStateStore()
    options = DavOptions(retry=RetryPolicy(attempts=0))
    with contextlib.suppress(Exception):  # the "killed" first run: its intents stay
        sync_accounts(source, graph, state, "p", options)
    second = sync_accounts(source, graph, state, "p", DavOptions())
    assert second.failures == [], second.failures
    calendar = default(graph, CollectionKind.CALENDAR)
    assert len(graph.items(calendar)) == 3
    source.close()
