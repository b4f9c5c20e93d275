"""FAKE Graph: calendars and events (contacts: ``resourcebook``; To Do: ``todo``), one store with
the mailbox API.

A calendar is a folder of class IPF.Appointment (the default one: the well-known ``calendar``
folder; others under it); an event is an IPM.Appointment item of it whose ``props`` are the event's
Graph JSON (plus ``exceptions``: changed occurrences by key, ``cancelled``: deleted occurrences'
keys, ``ext``: extended properties, ``cleanGlobalObjectId``). Occurrence ids are
``{series id}.OCC.{key}``; the key is the occurrence's original start (UTC ``...Z``, or a date).
Pages of Microsoft's documentation each route follows are named in its docstring.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from mailferry.sandbox.graph import eventseries, odata, resourcebook, todo
from mailferry.sandbox.graph.server import Answer, Call, FakeGraph, error, route
from mailferry.sandbox.graph.store import FakeFolder, FakeItem, FakeMailbox

del resourcebook, todo  # imported for their routes
USER = r"/users/(?P<mbx>[^/]+)"
READ, WRITE = "Calendars.Read", "Calendars.ReadWrite"
EVENT_FIELDS = frozenset(
    {"subject", "body", "start", "end", "isAllDay", "location", "locations", "recurrence",
     "attendees", "categories", "importance", "sensitivity", "showAs", "isReminderOn",
     "reminderMinutesBeforeStart", "responseRequested", "allowNewTimeProposals",
     "isOnlineMeeting", "onlineMeetingProvider", "hideAttendees", "transactionId",
     odata.PROPS}
)  # fmt: skip
OCCURRENCE_FIELDS = EVENT_FIELDS - {"recurrence", "transactionId", "isAllDay"} | {"isAllDay"}
CALENDAR_FIELDS = frozenset({"name", "color", "hexColor", odata.PROPS})


def _box(call: Call) -> FakeMailbox:
    if call.mailbox is None:  # every route here names one (the server resolved it)
        raise RuntimeError(call.path)
    return call.mailbox


def _calendars(box: FakeMailbox) -> list[FakeFolder]:
    return [f for f in box.folders.values() if f.folder_class == "IPF.Appointment"]


def _calendar_json(folder: FakeFolder) -> dict[str, Any]:
    return {
        "id": folder.id,
        "name": folder.props.get("name", folder.display_name),
        "hexColor": folder.props.get("hexColor", ""),
        "isDefaultCalendar": folder.well_known == "calendar",
        "canEdit": True,
        "changeKey": str(folder.seq),
    }


@route("GET", USER + r"/calendars", READ, WRITE)
def list_calendars(fake: FakeGraph, call: Call) -> Answer:
    """graph/api/user-list-calendars; extended properties: singlevaluelegacyextendedproperty-get."""
    box = _box(call)
    with fake.store.lock:
        values = [
            odata.shown(call, _calendar_json(f), f.props.get("ext", {})) for f in _calendars(box)
        ]
    return odata.page(fake, call, values)


@route("POST", USER + r"/calendars", WRITE)
def create_calendar(fake: FakeGraph, call: Call) -> Answer:
    """graph/api/user-post-calendars: ``name`` required; 409 ErrorFolderExists for a name taken."""
    refused = odata.unknown_fields(call.body, CALENDAR_FIELDS, "microsoft.graph.calendar")
    if refused is not None:
        return refused
    name = call.body.get("name")
    if not name:
        return error(400, "ErrorInvalidRequest", "The calendar name is required.")
    box = _box(call)
    ext = odata.extended(call.body, {})
    if isinstance(ext, Answer):
        return ext
    with fake.store.lock:
        if any(_calendar_json(f)["name"] == name for f in _calendars(box)):
            return error(409, "ErrorFolderExists", "A folder with the specified name already exists.")  # fmt: skip
        parent = box.well_known("calendar")
        folder = fake.store.add_folder(box, parent.id, name, "IPF.Appointment")
        folder.props.update(name=name, ext=ext, hexColor=call.body.get("hexColor", ""))
        return Answer(201, odata.shown(call, _calendar_json(folder), {}))


def _find_calendar(box: FakeMailbox, calendar_id: str) -> FakeFolder | None:
    folder = box.folders.get(calendar_id)
    return folder if folder is not None and folder.folder_class == "IPF.Appointment" else None


@route("GET", USER + r"/calendars/(?P<cal>[^/]+)/events", READ, WRITE)
def list_events(fake: FakeGraph, call: Call) -> Answer:
    """graph/api/calendar-list-events: single instances and series masters, 10 a page."""
    box = _box(call)
    with fake.store.lock:
        folder = _find_calendar(box, call.match["cal"])
        if folder is None:
            return error(404, "ErrorItemNotFound", "The specified object was not found in the store.")  # fmt: skip
        zone = eventseries.preferred_zone(call)
        values = [
            odata.shown(call, eventseries.event_json(i, zone), i.props.get("ext", {}))
            for i in folder.items.values()
            if i.item_class == "IPM.Appointment"
        ]
    return odata.page(fake, call, values)


@route("POST", USER + r"/calendars/(?P<cal>[^/]+)/events", WRITE)
def create_event(fake: FakeGraph, call: Call) -> Answer:
    """graph/api/calendar-post-events: ``transactionId`` makes a repeated POST answer the event
    made the first time; an event with attendees is a meeting Exchange mails (counted)."""
    refused = odata.unknown_fields(call.body, EVENT_FIELDS, "microsoft.graph.event")
    refused = refused or eventseries.bad_times(call.body, required=True)
    if refused is not None:
        return refused
    box = _box(call)
    with fake.store.lock:
        folder = _find_calendar(box, call.match["cal"])
        if folder is None:
            return error(404, "ErrorItemNotFound", "The specified object was not found in the store.")  # fmt: skip
        transaction = call.body.get("transactionId")
        done = _by_transaction(box, transaction) if transaction else None
        if done is not None:
            return Answer(201, eventseries.event_json(done, eventseries.preferred_zone(call)))
        ext = odata.extended(call.body, {})
        if isinstance(ext, Answer):
            return ext
        props = {k: v for k, v in call.body.items() if k != odata.PROPS}
        props.update(
            ext=ext,
            originalStartTimeZone=call.body["start"]["timeZone"],
            originalEndTimeZone=call.body["end"]["timeZone"],
            exceptions={},
            cancelled=[],
        )
        item = fake.store.put_item(box, folder, "IPM.Appointment", props)
        item.props["iCalUId"] = "040000008200E00074C5B7101A82E008" + item.id.encode().hex()[:32]
        item.props["cleanGlobalObjectId"] = item.props["iCalUId"]
        box.invitations += len(call.body.get("attendees") or [])
        return Answer(201, eventseries.event_json(item, eventseries.preferred_zone(call)))


def _by_transaction(box: FakeMailbox, transaction: str) -> FakeItem | None:
    for folder in _calendars(box):
        for item in folder.items.values():
            if item.props.get("transactionId") == transaction:
                return item
    return None


def _resolve(box: FakeMailbox, event_id: str) -> tuple[FakeFolder, FakeItem, str | None] | None:
    """The series (or single event) and the occurrence key an id names."""
    series_id, _, key = event_id.partition(".OCC.")
    found = box.find_item(series_id)
    if found is None or found[1].item_class != "IPM.Appointment":
        return None
    return found[0], found[1], key or None


@route("GET", USER + r"/events/(?P<id>[^/]+)", READ, WRITE)
def get_event(fake: FakeGraph, call: Call) -> Answer:
    """graph/api/event-get (Prefer: outlook.timezone; by default the times are in UTC)."""
    box = _box(call)
    with fake.store.lock:
        found = _resolve(box, call.match["id"])
        if found is None:
            return error(404, "ErrorItemNotFound", "The specified object was not found in the store.")  # fmt: skip
        _folder, item, key = found
        zone = eventseries.preferred_zone(call)
        if key is not None:
            occurrence = eventseries.occurrence(item, key, zone)
            if occurrence is None:
                return error(404, "ErrorItemNotFound", "The occurrence was not found.")
            return Answer(200, occurrence)
        body = odata.shown(call, eventseries.event_json(item, zone), item.props.get("ext", {}))
        return Answer(200, body, {"ETag": odata.etag(item)})


@route("PATCH", USER + r"/events/(?P<id>[^/]+)", WRITE)
def update_event(fake: FakeGraph, call: Call) -> Answer:  # noqa: PLR0911 - one answer per refusal
    """graph/api/event-update: If-Match checked (412); an occurrence becomes an exception of its
    series (whose change key moves); attendees on the result are mailed (counted)."""
    refused = odata.unknown_fields(call.body, EVENT_FIELDS - {"transactionId"}, "microsoft.graph.event")  # fmt: skip
    refused = refused or eventseries.bad_times(call.body, required=False)
    if refused is not None:
        return refused
    box = _box(call)
    with fake.store.lock:
        found = _resolve(box, call.match["id"])
        if found is None:
            return error(404, "ErrorItemNotFound", "The specified object was not found in the store.")  # fmt: skip
        folder, item, key = found
        stale = odata.precondition(call, item)
        if stale is not None:
            return stale
        props = dict(item.props)
        if key is not None:
            if eventseries.occurrence(item, key, "UTC") is None:
                return error(404, "ErrorItemNotFound", "The occurrence was not found.")
            exceptions = dict(props.get("exceptions") or {})
            exceptions[key] = {**exceptions.get(key, {}), **call.body}
            props["exceptions"] = exceptions
        else:
            ext = odata.extended(call.body, props.get("ext", {}))
            if isinstance(ext, Answer):
                return ext
            props.update({k: v for k, v in call.body.items() if k != odata.PROPS}, ext=ext)
            if "recurrence" in call.body:  # a new pattern: Exchange drops the exceptions
                props.update(exceptions={}, cancelled=[])
        updated = fake.store.put_item(box, folder, "IPM.Appointment", props, item.id)
        attendees = (call.body.get("attendees") if key else props.get("attendees")) or []
        box.invitations += len(attendees) if "attendees" in call.body or attendees else 0
        zone = eventseries.preferred_zone(call)
        if key is not None:
            return Answer(200, eventseries.occurrence(updated, key, zone))
        return Answer(200, eventseries.event_json(updated, zone))


@route("DELETE", USER + r"/events/(?P<id>[^/]+)", WRITE)
def delete_event(fake: FakeGraph, call: Call) -> Answer:
    """graph/api/event-delete: an occurrence deleted is a cancelled occurrence of its series."""
    box = _box(call)
    with fake.store.lock:
        found = _resolve(box, call.match["id"])
        if found is None:
            return error(404, "ErrorItemNotFound", "The specified object was not found in the store.")  # fmt: skip
        folder, item, key = found
        if key is None:
            fake.store.delete_item(box, folder, item.id)
            return Answer(204)
        if eventseries.occurrence(item, key, "UTC") is None:
            return error(404, "ErrorItemNotFound", "The occurrence was not found.")
        props = dict(item.props)
        props["exceptions"] = {k: v for k, v in props["exceptions"].items() if k != key}
        props["cancelled"] = sorted({*props["cancelled"], key})
        fake.store.put_item(box, folder, "IPM.Appointment", props, item.id)
        return Answer(204)


@route("GET", USER + r"/events/(?P<id>[^/]+)/instances", READ, WRITE)
def list_instances(fake: FakeGraph, call: Call) -> Answer:
    """graph/api/event-list-instances: startDateTime and endDateTime required; the occurrences
    and exceptions of a series in the range (a single instance: itself)."""
    try:
        start = _when(call.query["startDateTime"])
        end = _when(call.query["endDateTime"])
    except (KeyError, ValueError):
        return error(400, "ErrorInvalidParameter", "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.")  # fmt: skip
    box = _box(call)
    with fake.store.lock:
        found = _resolve(box, call.match["id"])
        if found is None:
            return error(404, "ErrorItemNotFound", "The specified object was not found in the store.")  # fmt: skip
        values = eventseries.instances(found[1], start, end, eventseries.preferred_zone(call))
    return odata.page(fake, call, values)


def _when(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
