"""Microsoft To Do lists of a Microsoft 365 mailbox (FAKE Graph) as VTODO-only calendars:
``GraphCollections`` with ``tasks=True`` against the FAKE Graph's To Do routes, the VTODO <->
todoTask conversion on the DAV corpus and on generated tasks, and Radicale -> FAKE Graph ->
Xandikos through service/davsync."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailferry.adapters.graph import tasks
from mailferry.adapters.graph.collections import GraphCollections
from mailferry.adapters.graph.todolists import ITEM_EXT
from mailferry.adapters.memory.davstate import MemoryItemStateStore
from mailferry.domain.davmodel import CollectionKind, NewCollection
from mailferry.domain.errors import FolderError, ItemConflictError, ItemError
from mailferry.domain.items import identify
from mailferry.domain.normalise import compare_icalendar
from mailferry.sandbox import davcorpus
from mailferry.sandbox.graph.server import FakeGraph, Fault
from mailferry.service.davsync import DavOptions, sync_accounts
from mailferry.service.davverify import verify_dav
from mailferry.service.resilience import RetryPolicy
from tests.integration.graphfixtures import open_collections
from tests.integration.test_dav_sync import open_account

pytestmark = pytest.mark.integration
UPN = "alice@contoso.com"
ROLES = ("Calendars.ReadWrite", "Contacts.ReadWrite", "Tasks.ReadWrite.All")
CAL = CollectionKind.CALENDAR


@pytest.fixture
def fake_graph(tmp_path):
    with FakeGraph(tmp_path / "graph") as fake:
        fake.store.add_mailbox(UPN)
        yield fake


def connect(fake: FakeGraph, roles=ROLES, **listed) -> GraphCollections:
    return open_collections(fake, UPN, roles, **listed)


@pytest.fixture
def graph(fake_graph):
    account = connect(fake_graph, tasks=True)
    yield account
    account.close()


def task_list(account) -> str:
    return next(c.href for c in account.collections() if c.components == ("VTODO",))


def vtodo(uid: str, body: bytes) -> bytes:
    return davcorpus.calendar(
        b"BEGIN:VTODO\r\nUID:" + uid.encode() + b"\r\nDTSTAMP:20260101T000000Z\r\n" + body
        + b"END:VTODO\r\n", zone=True,
    )  # fmt: skip


RICH = {
    "corpus": davcorpus.todo("todo-1@tests"),
    "zoned": vtodo(
        "zoned@tests",
        b"SUMMARY:Call the bank\r\nDESCRIPTION:About the loan\\nand the rest\r\n"
        b"DTSTART;TZID=Europe/Paris:20270301T090000\r\nDUE;TZID=Europe/Paris:20270302T170000\r\n"
        b"PRIORITY:1\r\nCATEGORIES:Work,Money\r\nSTATUS:IN-PROCESS\r\nPERCENT-COMPLETE:40\r\n"
        b"CLASS:PRIVATE\r\nX-APPLE-SORT-ORDER:3\r\n"
        b"BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Bank\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\n",
    ),
    "done": vtodo(
        "done@tests",
        b"SUMMARY:Done thing\r\nSTATUS:COMPLETED\r\nCOMPLETED:20270105T101500Z\r\n"
        b"PERCENT-COMPLETE:100\r\nPRIORITY:9\r\nDUE:20270104T120000Z\r\n",
    ),
    "weekly": vtodo(
        "weekly@tests",
        b"SUMMARY:Water the plants\r\nDUE;VALUE=DATE:20270104\r\nRRULE:FREQ=WEEKLY;BYDAY=MO\r\n",
    ),
    "floating": vtodo(
        "floating@tests", b"SUMMARY:Floating\r\nDUE:20270310T180000\r\nSTATUS:CANCELLED\r\n"
    ),
}


def forget_originals(fake: FakeGraph, *, keep_data: bool = True) -> None:
    """What a task changed in To Do reads as: converted from Graph (with or without the
    source's other properties)."""
    box = fake.store.mailbox(UPN)
    for folder in box.folders.values():
        for item in folder.items.values():
            meta = item.props.get("openExtensions", {}).get(ITEM_EXT)
            if meta is not None:
                meta["fp"] = "changed in To Do"
                if not keep_data:
                    meta["data"] = ""


# -- collections ----------------------------------------------------------------------------------
def test_fake_graph_todo_lists_are_listed_only_when_asked(fake_graph, graph):
    without = connect(fake_graph)  # no tasks flag: /todo/lists is never asked for
    assert all(c.components != ("VTODO",) for c in without.collections())
    lists = [c for c in graph.collections() if c.components == ("VTODO",)]
    assert [c.href for c in lists] == [graph.homes().calendar_home + "tasks/"]
    assert lists[0].displayname == "Tasks"
    only_tasks = connect(fake_graph, ("Tasks.Read.All",), calendars=False, contacts=False, tasks=True)  # fmt: skip
    assert [c.components for c in only_tasks.collections()] == [("VTODO",)]
    without.close()
    only_tasks.close()


def test_fake_graph_a_created_todo_list_is_listed_at_the_href_asked(graph, fake_graph):
    home = graph.homes().calendar_home
    refused = graph.create_collection(
        home + "chores/", NewCollection(CAL, "Chores", color="#ff0000", components=("VTODO",))
    )
    assert refused == ("calendar-color",)
    listed = {c.href: c for c in graph.collections()}
    assert listed[home + "chores/"].displayname == "Chores"
    assert listed[home + "chores/"].components == ("VTODO",)
    box = fake_graph.store.mailbox(UPN)
    assert any(f.display_name == "Chores" and f.folder_class == "IPF.Task" for f in box.folders.values())  # fmt: skip
    mixed = graph.create_collection(home + "both/", NewCollection(CAL, "Both", components=("VEVENT", "VTODO")))  # fmt: skip
    assert mixed == ()
    assert graph.collections()[0].components == ("VEVENT",)  # an event calendar
    assert (home + "both/") in {c.href for c in graph.collections() if c.components == ("VEVENT",)}


# -- items -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(RICH))
def test_fake_graph_a_task_is_read_back_at_its_href_as_written(graph, fake_graph, name):
    tasks_href = task_list(graph)
    etag = graph.put(f"{tasks_href}{name}.ics", RICH[name], CAL)
    refs = graph.items(tasks_href)
    assert [r.href for r in refs] == [f"{tasks_href}{name}.ics"]
    assert refs[0].etag == etag
    (item,) = graph.read(tasks_href, CAL, [refs[0].href])
    assert item.data == RICH[name]
    stored = next(iter(fake_graph.store.mailbox(UPN).well_known("tasks").items.values()))
    assert stored.item_class == "IPM.Task"  # what the mailbox API exports too
    assert stored.props["title"] == str(tasks._todo(RICH[name]).get("SUMMARY"))


@pytest.mark.parametrize("name", sorted(RICH))
def test_fake_graph_task_conversion_keeps_what_to_do_holds(graph, fake_graph, name):
    """Read back converted from Graph (as after a change in To Do): the same task, with the
    source's other properties; without them, the same converted fields."""
    tasks_href = task_list(graph)
    graph.put(f"{tasks_href}{name}.ics", RICH[name], CAL)
    forget_originals(fake_graph)
    (item,) = graph.read(tasks_href, CAL, [f"{tasks_href}{name}.ics"])
    assert compare_icalendar(RICH[name], item.data).equal, compare_icalendar(RICH[name], item.data)
    forget_originals(fake_graph, keep_data=False)
    (bare,) = graph.read(tasks_href, CAL, [f"{tasks_href}{name}.ics"])
    assert identify(bare.data).uid == identify(RICH[name]).uid
    assert_same_fields(RICH[name], bare.data)


def assert_same_fields(source: bytes, converted: bytes) -> None:
    _, want, floating = tasks.plan_task(source)
    _, got, floating_too = tasks.plan_task(converted)
    assert tasks.shape(got) == tasks.shape(want)
    assert floating_too == floating or not floating


def test_fake_graph_a_task_changed_in_to_do_reads_with_the_change(graph, fake_graph):
    tasks_href = task_list(graph)
    graph.put(f"{tasks_href}z.ics", RICH["zoned"], CAL)
    item = next(iter(fake_graph.store.mailbox(UPN).well_known("tasks").items.values()))
    item.props.update(status="completed", title="Bank called",
                      completedDateTime={"dateTime": "2027-03-02T10:00:00.0000000", "timeZone": "UTC"})  # fmt: skip
    (got,) = graph.read(tasks_href, CAL, [f"{tasks_href}z.ics"])
    todo = tasks._todo(got.data)
    assert (str(todo["SUMMARY"]), str(todo["STATUS"]), int(todo["PERCENT-COMPLETE"])) == (
        "Bank called", "COMPLETED", 100)  # fmt: skip
    assert str(todo["CLASS"]) == "PRIVATE" and "X-APPLE-SORT-ORDER" in todo
    assert todo["DUE"].dt == dt.datetime(2027, 3, 2, 17, tzinfo=ZoneInfo("Europe/Paris"))
    assert [str(a["TRIGGER"].to_ical(), "ascii") for a in todo.walk("VALARM")] == ["-PT15M"]


def test_fake_graph_an_update_needs_the_etag_and_a_new_task_never_overwrites(graph, fake_graph):
    tasks_href = task_list(graph)
    href = f"{tasks_href}a.ics"
    etag = graph.put(href, vtodo("a@tests", b"SUMMARY:A\r\n"), CAL)
    with pytest.raises(ItemConflictError):
        graph.put(href, vtodo("a@tests", b"SUMMARY:Other\r\n"), CAL)
    with pytest.raises(ItemConflictError):  # its UID at another name
        graph.put(f"{tasks_href}b.ics", vtodo("a@tests", b"SUMMARY:A\r\n"), CAL)
    with pytest.raises(ItemConflictError):
        graph.put(href, vtodo("a@tests", b"SUMMARY:X\r\n"), CAL, "stale")
    graph.put(href, vtodo("a@tests", b"SUMMARY:X\r\nDUE;VALUE=DATE:20270101\r\n"), CAL, etag)
    graph.put(href, vtodo("a@tests", b"SUMMARY:Y\r\n"), CAL, graph.items(tasks_href)[0].etag)
    (item,) = graph.read(tasks_href, CAL, [href])
    assert item.data == vtodo("a@tests", b"SUMMARY:Y\r\n")
    stored = next(iter(fake_graph.store.mailbox(UPN).well_known("tasks").items.values()))
    assert "dueDateTime" not in stored.props  # cleared, not kept from the update before


def test_fake_graph_refuses_tasks_it_cannot_hold_and_tasks_in_calendars(graph):
    tasks_href = task_list(graph)
    calendar = next(c.href for c in graph.collections() if c.href.endswith("/calendar/"))
    cases = {
        "hourly": vtodo("h@tests", b"SUMMARY:H\r\nDUE:20270101T100000Z\r\nRRULE:FREQ=HOURLY\r\n"),
        "fifth": vtodo(
            "f@tests", b"SUMMARY:F\r\nDUE;VALUE=DATE:20270101\r\nRRULE:FREQ=MONTHLY;BYDAY=5MO\r\n"
        ),
        "unanchored": vtodo("u@tests", b"SUMMARY:U\r\nRRULE:FREQ=DAILY\r\n"),
        "exdate": vtodo(
            "e@tests",
            b"SUMMARY:E\r\nDUE;VALUE=DATE:20270101\r\nRRULE:FREQ=DAILY\r\nEXDATE;VALUE=DATE:20270102\r\n",
        ),
        "event": davcorpus.simple_event("ev@tests"),
    }
    reasons = {}
    for name, data in cases.items():
        with pytest.raises(ItemError) as caught:
            graph.put(f"{tasks_href}{name}.ics", data, CAL)
        reasons[name] = caught.value.reason
    assert "FREQ=HOURLY" in reasons["hourly"] and "ordinal 5" in reasons["fifth"]
    assert "without DTSTART or DUE" in reasons["unanchored"] and "EXDATE" in reasons["exdate"]
    assert "VEVENT" in reasons["event"]
    with pytest.raises(ItemError) as caught:
        graph.put(f"{calendar}t.ics", davcorpus.todo("t@tests"), CAL)
    assert "Microsoft 365 keeps tasks in To Do lists, not in calendars" in caught.value.reason
    assert graph.items(tasks_href) == []


def test_fake_graph_a_lost_answer_to_a_task_post_makes_no_second_task(graph, fake_graph):
    tasks_href = task_list(graph)
    fake_graph.fail(Fault("POST", "/tasks$", drop_after_commit=True))
    data = vtodo("lost@tests", b"SUMMARY:Lost\r\n")
    with pytest.raises(Exception, match="POST"):
        graph.put(f"{tasks_href}lost.ics", data, CAL)
    with pytest.raises(ItemConflictError):  # listed again first: it is there
        graph.put(f"{tasks_href}lost.ics", data, CAL)
    restarted = connect(fake_graph, tasks=True)  # a new process knows nothing
    with pytest.raises(ItemConflictError):
        restarted.put(f"{task_list(restarted)}other-name.ics", data, CAL)  # found by UID
    assert len(graph.items(tasks_href)) == 1
    restarted.close()


def test_fake_graph_todo_routes_are_strict(fake_graph, graph):
    tasks_href = task_list(graph)
    list_id = graph._wheres[tasks_href].graph_id
    session = graph.session
    path = f"/users/{UPN}/todo/lists/{list_id}/tasks"
    for body, code in (
        ({"title": "x", "transactionId": "t"}, 400),
        ({"title": "x", "status": "done"}, 400),
        ({"title": "x", "dueDateTime": {"dateTime": "2027-01-01T00:00:00"}}, 400),
        ({"title": "x", "extensions": [{"extensionName": "Com.X"}]}, 400),
    ):
        assert session.request("POST", path, json=body).status_code == code, body
    reader = connect(fake_graph, ("Tasks.Read.All",), calendars=False, contacts=False, tasks=True)
    with pytest.raises(ItemError) as caught:
        reader.put(f"{task_list(reader)}r.ics", davcorpus.todo("r@tests"), CAL)
    assert "denied" in caught.value.reason.lower()
    nobody = connect(fake_graph, ("Calendars.ReadWrite",), calendars=False, contacts=False, tasks=True)  # fmt: skip
    with pytest.raises(FolderError):
        nobody.collections()
    reader.close()
    nobody.close()


# -- generated tasks -------------------------------------------------------------------------------
ZONES = ["Europe/Paris", "America/New_York", "Asia/Tokyo", "UTC", None]
RULES = [None, "FREQ=DAILY;INTERVAL=2", "FREQ=WEEKLY;BYDAY=TU,TH", "FREQ=MONTHLY;BYMONTHDAY=4",
         "FREQ=YEARLY;BYMONTH=6;BYMONTHDAY=4;COUNT=3", "FREQ=MONTHLY;BYDAY=-1FR"]  # fmt: skip


@st.composite
def generated_tasks(draw) -> bytes:
    todo = icalendar.Todo()
    todo.add("UID", "gen@tests")
    todo.add("DTSTAMP", dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=20)
    todo.add("SUMMARY", draw(text.filter(str.strip)))
    if draw(st.booleans()):
        todo.add("DESCRIPTION", draw(text.filter(str.strip)))
    status = draw(st.sampled_from([None, "NEEDS-ACTION", "IN-PROCESS", "COMPLETED", "CANCELLED"]))
    if status:
        todo.add("STATUS", status)
    if status == "COMPLETED":
        todo.add("COMPLETED", dt.datetime(2027, 2, 3, 4, 5, tzinfo=dt.UTC))
    day = draw(st.dates(dt.date(2027, 1, 1), dt.date(2027, 12, 28)))
    zone = draw(st.sampled_from(ZONES))
    due: dt.date | dt.datetime = day
    if draw(st.booleans()):
        wall = dt.datetime.combine(day, dt.time(draw(st.integers(1, 23)), 30))
        due = wall if zone is None else wall.replace(tzinfo=ZoneInfo(zone))
    rule = draw(st.sampled_from(RULES))
    if rule or draw(st.booleans()):
        todo.add("DUE", due)
        if rule:
            todo.add("RRULE", icalendar.vRecur.from_ical(rule.replace("BYMONTHDAY=4", f"BYMONTHDAY={day.day}").replace("BYMONTH=6", f"BYMONTH={day.month}")))  # fmt: skip
    todo.add("PRIORITY", draw(st.integers(0, 9)))
    if draw(st.booleans()):
        todo.add("CATEGORIES", draw(st.lists(st.sampled_from(["Home", "Work", "Red"]), min_size=1, unique=True)))  # fmt: skip
    if draw(st.booleans()):
        alarm = icalendar.Alarm()
        alarm.add("ACTION", "DISPLAY")
        alarm.add("DESCRIPTION", "Soon")
        alarm.add("TRIGGER", dt.datetime(2027, 1, 1, 8, tzinfo=dt.UTC))
        todo.add_component(alarm)
    calendar = icalendar.Calendar()
    calendar.add("VERSION", "2.0")
    calendar.add("PRODID", "-//tests//EN")
    calendar.add_component(todo)
    calendar.add_missing_timezones()
    return bytes(calendar.to_ical())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(data=generated_tasks())
def test_fake_graph_generated_tasks_round_trip(graph, fake_graph, data):
    tasks_href = task_list(graph)
    box = fake_graph.store.mailbox(UPN)
    for item_id in list(box.well_known("tasks").items):
        fake_graph.store.delete_item(box, box.well_known("tasks"), item_id)
    graph._wheres[tasks_href].index = None
    graph._wheres[tasks_href].uids = {}
    graph.put(f"{tasks_href}gen.ics", data, CAL)
    (same,) = graph.read(tasks_href, CAL, [f"{tasks_href}gen.ics"])
    assert same.data == data
    forget_originals(fake_graph)
    (converted,) = graph.read(tasks_href, CAL, [f"{tasks_href}gen.ics"])
    assert compare_icalendar(data, converted.data).equal, compare_icalendar(data, converted.data)
    forget_originals(fake_graph, keep_data=False)
    (bare,) = graph.read(tasks_href, CAL, [f"{tasks_href}gen.ics"])
    assert_same_fields(data, bare.data)


# -- the sync, both ways ---------------------------------------------------------------------------
def seed_tasks(account) -> str:
    """A VTODO-only calendar "chores" with every RICH task, and the default calendar's event."""
    home = account.homes().calendar_home
    account.create_collection(f"{home}chores/", NewCollection(CAL, "Chores", components=("VTODO",)))  # fmt: skip
    for name, data in RICH.items():
        account.put(f"{home}chores/{name}.ics", data, CAL)
    return f"{home}chores/"


def test_fake_graph_sync_tasks_radicale_to_graph_and_graph_to_xandikos(
    radicale, xandikos, make_user, graph, fake_graph
):
    source = open_account(radicale, *make_user(radicale))
    target = open_account(xandikos, *make_user(xandikos))
    seed_tasks(source)
    state = MemoryItemStateStore()
    first = sync_accounts(source, graph, state, "in")
    assert first.failures == [], first.failures
    assert first.items_copied == len(RICH)
    chores = next(c for c in first.collections if c.source.endswith("/chores/"))
    assert chores.workload == "tasks" and chores.created
    box = fake_graph.store.mailbox(UPN)
    folder = next(f for f in box.folders.values() if f.display_name == "Chores")
    assert folder.folder_class == "IPF.Task" and len(folder.items) == len(RICH)
    report = verify_dav(source, graph, state, "in")
    assert all(not c.problems for c in report.collections), [c.as_json() for c in report.collections]  # fmt: skip
    again = sync_accounts(source, graph, state, "in")
    assert (again.items_copied, again.items_updated, again.failures) == (0, 0, [])

    out_state = MemoryItemStateStore()
    out = sync_accounts(graph, target, out_state, "out")
    assert out.failures == [], out.failures
    assert out.items_copied == len(RICH)
    report = verify_dav(graph, target, out_state, "out")
    assert [p for c in report.collections for p in c.problems] == []
    copied = next(c for c in target.collections() if c.href.rstrip("/").endswith("chores"))
    assert {identify(target.get(r.href).data).uid for r in target.items(copied.href)} == {
        identify(d).uid for d in RICH.values()
    }
    source.close()
    target.close()


def test_fake_graph_a_lost_task_post_during_the_sync_makes_no_duplicate(
    radicale, make_user, graph, fake_graph
):
    source = open_account(radicale, *make_user(radicale))
    seed_tasks(source)
    fake_graph.fail(Fault("POST", "/tasks$", drop_after_commit=True))
    state = MemoryItemStateStore()
    with contextlib.suppress(Exception):  # the "killed" first run: its intents stay
        sync_accounts(source, graph, state, "p", DavOptions(retry=RetryPolicy(attempts=0)))
    second = sync_accounts(source, graph, state, "p", DavOptions())
    assert second.failures == [], second.failures
    listed = next(c.href for c in graph.collections() if c.href.endswith("/chores/"))
    refs = graph.items(listed)
    assert len(refs) == len(RICH)
    assert len({identify(i.data).uid for i in graph.read(listed, CAL, [r.href for r in refs])}) == len(RICH)  # fmt: skip
    third = sync_accounts(source, graph, state, "p", DavOptions())
    assert (third.items_copied, third.items_updated, third.failures) == (0, 0, [])
    source.close()


def test_fake_graph_vtodos_of_a_mixed_calendar_are_refused_with_the_reason(
    radicale, make_user, graph
):
    source = open_account(radicale, *make_user(radicale))
    calendar = next(c.href for c in source.collections() if c.kind is CAL)
    source.put(f"{calendar}t.ics", davcorpus.todo("mixed-todo@tests"), CAL)
    source.put(f"{calendar}e.ics", davcorpus.simple_event("mixed-event@tests"), CAL)
    summary = sync_accounts(source, graph, MemoryItemStateStore(), "m")
    assert summary.items_copied == 1
    (failure,) = summary.failures
    assert failure.uid == "mixed-todo@tests"
    # refused by the sync before any request: the Graph calendar lists its components (VEVENT)
    assert "holds only VEVENT, not VTODO" in failure.reason, failure.reason
    source.close()


def test_fake_graph_list_json_is_what_the_docs_show(graph, fake_graph):
    answer = graph.session.request("GET", f"/users/{UPN}/todo/lists")
    (found,) = json.loads(answer.content)["value"]
    assert found["wellknownListName"] == "defaultList" and found["displayName"] == "Tasks"
    assert {"id", "isOwner", "isShared", "@odata.etag"} <= set(found)
