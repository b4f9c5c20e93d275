"""Fill a FAKE Graph mailbox with items of every workload, and read items back for comparison.

Props follow the store's conventions (graph.md): mail carries ``internetMessageId``; calendar items
(IPM.Appointment) carry ``cleanGlobalObjectId`` (hex) and otherwise Graph event JSON fields
(``subject``, ``start``/``end`` as dateTimeTimeZone, ``recurrence`` as patternedRecurrence,
``attendees``, plus ``exceptionOccurrences`` holding the changed occurrences); contacts, tasks and
notes their Graph JSON fields. The store gives each new item a ``searchKey``; an export carries
every prop, so an imported copy compares equal to its source with ``content``.
"""

from __future__ import annotations

import base64
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailferry.sandbox.graph.store import FakeFolder, FakeItem, FakeMailbox, FakeStore


def add_mail(
    store: FakeStore,
    box: FakeMailbox,
    folder: FakeFolder | None = None,
    *,
    subject: str = "Hello",
    message_id: str | None = None,
    categories: tuple[str, ...] = (),
    flagged: bool = False,
    importance: str = "normal",
    is_read: bool = False,
    attachments: dict[str, bytes] | None = None,
    body: str = "Hi there.",
) -> FakeItem:
    """A message (IPM.Note), by default in the inbox."""
    props: dict[str, Any] = {
        "internetMessageId": message_id or f"<{uuid.uuid4().hex}@fake.example>",
        "subject": subject,
        "body": {"contentType": "text", "content": body},
        "categories": list(categories),
        "flag": {"flagStatus": "flagged" if flagged else "notFlagged"},
        "importance": importance,
        "isRead": is_read,
        "attachments": [
            {"name": name, "contentBytes": base64.b64encode(data).decode()}
            for name, data in (attachments or {}).items()
        ],
    }
    return store.put_item(box, folder or box.well_known("inbox"), "IPM.Note", props)


def add_event(
    store: FakeStore,
    box: FakeMailbox,
    folder: FakeFolder | None = None,
    *,
    subject: str = "Meeting",
    start: str = "2026-03-02T10:00:00",
    end: str = "2026-03-02T11:00:00",
    time_zone: str = "W. Europe Standard Time",
    weekly_count: int | None = None,
    exceptions: tuple[tuple[str, str], ...] = (),
    attendees: tuple[str, ...] = (),
) -> FakeItem:
    """An event (IPM.Appointment), by default in the calendar; ``weekly_count`` makes it a weekly
    series, ``exceptions`` (original start, new start) move occurrences of it."""
    props: dict[str, Any] = {
        "cleanGlobalObjectId": uuid.uuid4().bytes.hex() * 2,
        "subject": subject,
        "start": {"dateTime": start, "timeZone": time_zone},
        "end": {"dateTime": end, "timeZone": time_zone},
        "attendees": [
            {"emailAddress": {"address": a, "name": a.split("@")[0]}, "type": "required"}
            for a in attendees
        ],
    }
    if weekly_count is not None:
        props["recurrence"] = {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
            "range": {
                "type": "numbered",
                "startDate": start[:10],
                "numberOfOccurrences": weekly_count,
            },
        }
        props["exceptionOccurrences"] = [
            {"originalStart": original, "start": {"dateTime": moved, "timeZone": time_zone}}
            for original, moved in exceptions
        ]
    return store.put_item(box, folder or box.well_known("calendar"), "IPM.Appointment", props)


def add_contact(
    store: FakeStore, box: FakeMailbox, folder: FakeFolder | None = None, *, name: str = "Ann"
) -> FakeItem:
    props = {
        "displayName": name,
        "givenName": name,
        "emailAddresses": [{"address": f"{name.lower()}@example.org", "name": name}],
    }
    return store.put_item(box, folder or box.well_known("contacts"), "IPM.Contact", props)


def add_task(
    store: FakeStore, box: FakeMailbox, folder: FakeFolder | None = None, *, title: str = "Do"
) -> FakeItem:
    props = {"title": title, "status": "notStarted", "importance": "normal"}
    return store.put_item(box, folder or box.well_known("tasks"), "IPM.Task", props)


def add_note(
    store: FakeStore, box: FakeMailbox, folder: FakeFolder | None = None, *, text: str = "Note"
) -> FakeItem:
    props = {"body": text, "color": 3}
    return store.put_item(box, folder or box.well_known("notes"), "IPM.StickyNote", props)


def fill_mailbox(store: FakeStore, box: FakeMailbox) -> list[FakeItem]:
    """One of each: two messages (one flagged, read, with an attachment), a recurring event with
    a moved occurrence and attendees, a contact, a task and a note."""
    return [
        add_mail(store, box, subject="plain"),
        add_mail(
            store,
            box,
            subject="rich",
            categories=("Red category",),
            flagged=True,
            importance="high",
            is_read=True,
            attachments={"a.bin": bytes(range(256))},
        ),
        add_event(
            store,
            box,
            weekly_count=5,
            exceptions=(("2026-03-09T10:00:00", "2026-03-10T10:00:00"),),
            attendees=("bob@example.org",),
        ),
        add_contact(store, box),
        add_task(store, box),
        add_note(store, box),
    ]


def content(item: FakeItem) -> tuple[str, dict[str, Any]]:
    """What a faithful copy of ``item`` has alike: its class and every prop (ids differ)."""
    return item.item_class, dict(item.props)


def folder_contents(folder: FakeFolder) -> list[tuple[str, dict[str, Any]]]:
    """Every item of a folder as ``content``, in a stable order for comparing two folders."""
    return sorted((content(item) for item in folder.items.values()), key=repr)
