"""``mailferry sync pst:///x.ost https://USER@dav/`` as a user runs it, into real Radicale and
Xandikos: the shipped OST's appointments (tests/data/pst/NOTICE.md) land as events whose expanded
occurrences are what Outlook says of them (its own recurrence descriptions, quoted below), a re-run
and a run with the state lost copy nothing, ``verify`` passes, and the SMTP sink receives nothing.
``pst:// -> imap://`` moves the mail into the folders the user saw (the OST's Inbox as INBOX, none
of Outlook's own) and names the calendar as not moved, with the reason.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import zoneinfo
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import icalendar
import pytest
import recurring_ical_events

from mailferry.adapters.dav import CollectionKind, DavAccount, DavLogin, DavSession, parse_dav_url
from mailferry.adapters.tls import TlsOptions
from tests.integration import mailcheck

pytestmark = pytest.mark.integration
LA = zoneinfo.ZoneInfo("America/Los_Angeles")
ITEMS = 169


def mailferry(command: str, ost: Path, server, user: tuple[str, str], state: Path, *args: str):
    argv = [sys.executable, "-m", "mailferry.cli", command, f"pst://{ost}", server.url(user[0])]
    argv += ["--state", str(state), *args]
    if server.ca_file:
        argv += ["--target-ca-file", str(server.ca_file)]
    env = {**os.environ, "MAILFERRY_TARGET_PASSWORD": user[1]}
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)


def dav_items(server, user: tuple[str, str], kind: CollectionKind) -> dict[str, list[bytes]]:
    """Every object on the target, by collection name, of one kind."""
    url = parse_dav_url(server.url(user[0]))
    found: dict[str, list[bytes]] = {}
    with DavAccount(
        DavSession(url, DavLogin(*user), TlsOptions(ca_file=server.ca_file))
    ) as account:
        for collection in account.collections():
            if collection.kind is kind:
                refs = account.items(collection.href)
                read = account.read(collection.href, collection.kind, [r.href for r in refs])
                found[collection.displayname or collection.href] = [item.data for item in read]
    return found


def events(server, user: tuple[str, str]) -> list[icalendar.Calendar]:
    """Every calendar object on the target."""
    calendars = dav_items(server, user, CollectionKind.CALENDAR).values()
    return [icalendar.Calendar.from_ical(data) for datas in calendars for data in datas]


def first_sync(kind: str, request, make_user, ost: Path, tmp_path: Path, smtp_sink):
    """A fresh user on the ``kind`` server, the OST synced into it once (must succeed): the
    server, the user, the state file and the run's ``--json`` summary."""
    server = request.getfixturevalue(kind)
    user = make_user(server)
    state = tmp_path / "state.sqlite3"
    smtp_sink.clear()
    first = mailferry("sync", ost, server, user, state, "--json")
    assert first.returncode == 0, first.stderr
    return server, user, state, json.loads(first.stdout)


def starts(calendar: icalendar.Calendar, until: tuple[int, int, int] = (2031, 1, 1)) -> list:
    occurrences = recurring_ical_events.of(calendar).between((2021, 1, 1), until)
    return sorted(e["DTSTART"].dt for e in occurrences)


@pytest.mark.parametrize("kind", ["radicale", "xandikos"])
def test_a_pst_calendar_moves_to_dav_once_with_its_series_and_mails_nobody(
    kind, request, make_user, ost, tmp_path, smtp_sink
):
    server, user, state, doc = first_sync(kind, request, make_user, ost, tmp_path, smtp_sink)
    assert (doc["items_copied"], doc["items_failed"]) == (ITEMS, 0)
    assert doc["workloads"]["calendar"]["route"] != "none", doc["workloads"]
    every = events(server, user)
    assert len(every) == ITEMS
    found = {str(c.walk("VEVENT")[0]["SUMMARY"]): c for c in every}
    # Outlook says of it: every Monday effective 8/9/2021 until 10/11/2021 from 10:00 to 11:00 AM
    weekly = starts(found["repeats every monday for 10 weeks"])
    assert len(weekly) == 10
    assert (weekly[0], weekly[-1]) == (
        dt.datetime(2021, 8, 9, 10, tzinfo=LA),
        dt.datetime(2021, 10, 11, 10, tzinfo=LA),
    )
    assert {s.weekday() for s in weekly} == {0}
    # "every day from 12:00 PM to 12:30 PM", three times
    daily = starts(found["repeats for 3 days"])
    assert daily == [dt.datetime(2021, 8, day, 12, tzinfo=LA) for day in (10, 11, 12)]
    # "every August 13 from 10:00 AM to 10:30 AM", no end
    yearly = starts(found["Occurs every August 13 effective 8/13/2021 from 10:00 AM to 10:30 AM"])
    assert yearly == [dt.datetime(year, 8, 13, 10, tzinfo=LA) for year in range(2021, 2031)]
    assert starts(found["all day event for 3 days"]) == [dt.date(2021, 8, 15)]
    meeting = found["meeting from Ed"].walk("VEVENT")[0]
    assert "ATTENDEE" not in meeting  # Radicale and Xandikos mail attendees: parked
    assert "X-MAILFERRY-ATTENDEE" in meeting

    again = json.loads(mailferry("sync", ost, server, user, state, "--json").stdout)
    assert again["items_copied"] == 0
    state.unlink()
    lost = mailferry("sync", ost, server, user, state, "--json")
    assert lost.returncode == 0, lost.stderr
    assert (
        json.loads(lost.stdout)["items_copied"],
        json.loads(lost.stdout)["items_skipped_existing"],
    ) == (0, ITEMS), lost.stdout
    checked = mailferry("verify", ost, server, user, state)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert smtp_sink.messages == []


def test_pst_to_imap_moves_the_mail_and_names_the_calendar_as_not_moved(
    dovecot_slash, make_user, ost, tmp_path
):
    user, password = make_user(dovecot_slash)
    argv = [
        sys.executable,
        "-m",
        "mailferry.cli",
        "sync",
        f"pst://{ost}",
        f"imap://{user}@127.0.0.1:{dovecot_slash.port}",
        "--state",
        str(tmp_path / "s"),
        "--json",
    ]
    done = subprocess.run(
        argv,
        env={**os.environ, "MAILFERRY_TARGET_PASSWORD": password},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["messages_copied"] > 0
    calendar = doc["workloads"]["calendar"]
    assert calendar["route"] == "none"
    assert "target has no calendars" in calendar["reason"]
    client = mailcheck.login("127.0.0.1", dovecot_slash.port, user, password)
    try:
        held = mailcheck.snapshot(client)
    finally:
        client.logout()
    counts = {name: sum(prints.values()) for name, prints in held.items() if prints}
    # the OST's IPM_SUBTREE is the top: its Inbox is INBOX, nothing under "Root - Mailbox/..."
    assert counts == {"INBOX": 10, "Sent Items": 2, "Deleted Items": 1, "Sync Issues": 1}
    assert not [name for name in held if name.startswith(("Root - ", "Finder", "Views"))]


@contextlib.contextmanager
def fake_m365(ost: Path, tmp_path: Path) -> Iterator[tuple[Callable[[str], Any], Any]]:
    """A FAKE Graph tenant with alice's mailbox, and ``run(command)``: ``mailferry COMMAND
    pst://OST m365://alice@...`` against it (the Graph tests' way in: click's runner)."""
    from click.testing import CliRunner  # noqa: PLC0415

    from mailferry.cli.app import main  # noqa: PLC0415
    from mailferry.sandbox.graph.server import FakeGraph  # noqa: PLC0415
    from tests.e2e.test_graph_cli import RESOURCE_ROLES, SECRET, TARGET_APP, side  # noqa: PLC0415
    from tests.integration.fake_idp import FakeIdentityProvider  # noqa: PLC0415

    with FakeIdentityProvider(tmp_path / "idp") as idp, FakeGraph(tmp_path / "graph") as graph:
        idp.graph = graph
        idp.add_client(TARGET_APP, SECRET)
        idp.app_roles[TARGET_APP] = RESOURCE_ROLES
        mailbox = graph.store.add_mailbox("alice@fabrikam.com")
        argv = [f"pst://{ost}", "m365://alice@fabrikam.com", "--state", str(tmp_path / "s")]
        argv += [*side("target", TARGET_APP, idp, graph, tmp_path), "--json"]
        env = {"REQUESTS_CA_BUNDLE": str(idp.ca_file)}
        yield (lambda command: CliRunner().invoke(main, [command, *argv], env=env)), mailbox


def test_a_pst_calendar_moves_to_microsoft_365_through_the_fake_graph_once(ost, tmp_path):
    """``pst:///x.ost m365://alice@...`` through Graph's calendar resources (the FAKE Graph):
    every appointment once, the meetings without their attendees (Graph would mail them), no
    invitation; a re-run copies nothing and verify is clean."""
    with fake_m365(ost, tmp_path) as (run, mailbox):
        result = run("sync")
        assert result.exit_code == 0, result.stdout + result.stderr
        doc = json.loads(result.stdout)
        assert (doc["workloads"]["calendar"]["copied"], doc["items_failed"]) == (ITEMS, 0)
        assert mailbox.invitations == 0
        assert json.loads(run("sync").stdout)["workloads"]["calendar"]["copied"] == 0
        check = run("verify")
        assert check.exit_code == 0, check.stdout + check.stderr


def test_a_batch_of_pst_files_moves_mail_and_calendars_per_user(
    ost, tmp_path, dovecot_dot, xandikos, make_user, monkeypatch
):
    """``pst:///ROOT/{user}.ost`` as a batch's source endpoint, a target with IMAP and a DAV
    template: each mailbox's mail into Dovecot, its calendars into Xandikos, once."""
    import threading  # noqa: PLC0415

    from mailferry.bootstrap import open_service  # noqa: PLC0415
    from mailferry.bootstrap import scheduler as build_scheduler  # noqa: PLC0415
    from mailferry.domain.model import Security  # noqa: PLC0415
    from mailferry.service.batches import BatchOptions, EndpointSpec  # noqa: PLC0415

    monkeypatch.delenv("MAILFERRY_KEY", raising=False)
    (tmp_path / "psts").mkdir()
    rows = ["EmailAddress,UserName,Password,TargetUserName,TargetPassword"]
    targets = []
    for n in range(2):
        shutil.copyfile(ost, tmp_path / "psts" / f"user{n}.ost")
        user, password = make_user(dovecot_dot)
        xandikos.add_user(user, password)
        targets.append((user, password))
        rows.append(f"{user}@new.example,user{n},,{user},{password}")
    service = open_service(tmp_path / "state.sqlite3")
    try:
        service.add_endpoint(EndpointSpec("old", "", files=f"pst://{tmp_path}/psts/{{user}}.ost"))
        service.add_endpoint(
            EndpointSpec("new", "127.0.0.1", dovecot_dot.port, Security.NONE,
                         dav=f"https://127.0.0.1:{xandikos.port}/", dav_ca_file=xandikos.ca_file)
        )  # fmt: skip
        service.create_batch("p", "old", "new", ("\n".join(rows) + "\n").encode(), BatchOptions())
        service.start("p")
        build_scheduler(service, batch="p", poll=0.1).run(threading.Event(), until_idle=True)
        status = service.status("p")
        assert status.state == "synced", [m.record.reason for m in status.mailboxes]
        assert all(m.record.copied > 0 for m in status.mailboxes)
    finally:
        service.close()
    for target in targets:
        assert len(events(xandikos, target)) == ITEMS


@pytest.mark.parametrize("kind", ["radicale", "xandikos"])
def test_pst_contacts_groups_and_tasks_move_to_dav_once(
    kind, request, make_user, people_ost, tmp_path, smtp_sink
):
    """An Outlook.com OST's contacts (a photo, a note kept only as RTF), its distribution list
    (a contact group whose members are the cards beside it) and its tasks, into a real CardDAV
    and CalDAV server; a re-run and a lost state copy nothing; verify passes; no mail sent."""
    import vobject  # noqa: PLC0415 - the vCard reader of the tests

    server, user, state, doc = first_sync(kind, request, make_user, people_ost, tmp_path, smtp_sink)
    assert (doc["items_copied"], doc["items_failed"]) == (176, 0), doc
    books = [  # Contacts may land in the target's default address book, under its name
        {c.fn.value: c for c in (vobject.readOne(d.decode()) for d in cards)}
        for cards in dav_items(server, user, CollectionKind.ADDRESSBOOK).values()
    ]
    assert sorted(map(sorted, books)) == [
        ["Echo / Sound Test Service"],
        ["Ed Pfromer", "Kyle Pfromer", "Staff"],
    ]
    contacts = next(book for book in books if "Staff" in book)
    ed = contacts["Ed Pfromer"]
    assert ed.photo.value.startswith(b"\xff\xd8\xff") and len(ed.photo.value) == 10404
    assert ed.note.value == "Never gonna let you down"
    members = [m.value for m in contacts["Staff"].contents["x-addressbookserver-member"]]
    beside = {f"urn:uuid:{c.uid.value}" for name, c in contacts.items() if name != "Staff"}
    assert set(members) == beside and len(members) == 2
    tasks = [
        str(todo["DESCRIPTION"])
        for calendar in dav_items(server, user, CollectionKind.CALENDAR).values()
        for data in calendar
        for todo in icalendar.Calendar.from_ical(data).walk("VTODO")
    ]
    assert sorted(tasks) == [
        "Blue category, high priority, 75% complete, with attachments",
        "Vanilla task, not started",
    ]
    again = json.loads(mailferry("sync", people_ost, server, user, state, "--json").stdout)
    assert again["items_copied"] == 0
    state.unlink()
    lost = json.loads(mailferry("sync", people_ost, server, user, state, "--json").stdout)
    assert (lost["items_copied"], lost["items_skipped_existing"]) == (0, 176)
    checked = mailferry("verify", people_ost, server, user, state)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert smtp_sink.messages == []


def test_pst_contacts_groups_and_tasks_move_to_microsoft_365_through_the_fake_graph_once(
    people_ost, tmp_path
):
    """``pst:///x.ost m365://alice@...`` (the FAKE Graph): the contacts (the photo and the list
    kept with the card) and the tasks once; a re-run copies nothing and verify is clean."""
    with fake_m365(people_ost, tmp_path) as (run, mailbox):
        result = run("sync")
        assert result.exit_code == 0, result.stdout + result.stderr
        doc = json.loads(result.stdout)
        copied = {name: w.get("copied") for name, w in doc["workloads"].items()}
        assert (copied["contacts"], copied["tasks"], doc["items_failed"]) == (4, 2, 0), doc
        assert mailbox.invitations == 0
        assert json.loads(run("sync").stdout)["items_copied"] == 0
        check = run("verify")
        assert check.exit_code == 0, check.stdout + check.stderr
