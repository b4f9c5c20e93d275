"""A VTODO (RFC 5545) <-> a Microsoft To Do task (learn.microsoft.com/graph/api/resources/todotask).

Converted, one group of properties to one group of Graph fields:

    SUMMARY                                 title
    DESCRIPTION                             body (text)
    STATUS, COMPLETED, PERCENT-COMPLETE     status, completedDateTime (NEEDS-ACTION notStarted,
                                            IN-PROCESS inProgress, COMPLETED completed,
                                            CANCELLED deferred; waitingOnOthers reads IN-PROCESS)
    DUE, DTSTART                            dueDateTime, startDateTime (eventtimes.py: a Windows
                                            zone, UTC, or a date at midnight UTC read back a date)
    PRIORITY                                importance (1-4 high, 5 or none normal, 6-9 low)
    CATEGORIES                              categories
    RRULE                                   recurrence (recurrence.py: Graph's six patterns,
                                            anchored on DTSTART, else DUE)
    VALARM (the first ACTION:DISPLAY)       reminderDateTime, isReminderOn

Read back, a group Graph still holds as the source's bytes would write it keeps the source's own
lines (``with_residue``); a group changed in To Do is rendered from Graph; everything else of the
source (other alarms, CLASS, URL, X- properties, ...) stays. Refused (``Unsupported``): no VTODO,
several VTODOs or a RECURRENCE-ID (To Do keeps one task per series), RDATE/EXDATE, several RRULEs,
an RRULE Graph's patterns cannot hold, an RRULE without DTSTART or DUE.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import icalendar

from mailferry.adapters.graph import eventtimes, recurrence
from mailferry.adapters.graph.events import parse_calendar
from mailferry.adapters.graph.recurrence import Unsupported

STATUS = {"NEEDS-ACTION": "notStarted", "IN-PROCESS": "inProgress", "COMPLETED": "completed",
          "CANCELLED": "deferred"}  # fmt: skip
ICAL_STATUS = {v: k for k, v in STATUS.items()} | {"waitingOnOthers": "IN-PROCESS"}
# group -> (its iCalendar properties, its Graph fields)
GROUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "title": (("SUMMARY",), ("title",)),
    "body": (("DESCRIPTION",), ("body",)),
    "status": (("STATUS", "COMPLETED", "PERCENT-COMPLETE"), ("status", "completedDateTime")),
    "due": (("DUE",), ("dueDateTime",)),
    "start": (("DTSTART",), ("startDateTime",)),
    "importance": (("PRIORITY",), ("importance",)),
    "categories": (("CATEGORIES",), ("categories",)),
    "recurrence": (("RRULE",), ("recurrence",)),
    "reminder": ((), ("reminderDateTime", "isReminderOn")),  # the VALARMs
}


def _todo(data: bytes) -> Any:
    calendar = parse_calendar(data)
    todos = list(calendar.walk("VTODO"))
    if not todos:
        kinds = sorted({str(c.name) for c in calendar.subcomponents if c.name != "VTIMEZONE"})
        raise Unsupported(f"{', '.join(kinds) or 'nothing'}: a To Do list holds tasks (VTODO)")
    if len(todos) > 1 or "RECURRENCE-ID" in todos[0]:
        raise Unsupported("several VTODOs or a RECURRENCE-ID (To Do keeps one task per series)")
    return todos[0]


def plan_task(data: bytes) -> tuple[str | None, dict[str, Any], bool]:
    """The UID, the todoTask JSON, and whether its times are floating (kept in our extension)."""
    todo = _todo(data)
    for name in ("RDATE", "EXDATE"):
        if name in todo:
            raise Unsupported(f"{name} (To Do has only patterned recurrences)")
    task: dict[str, Any] = {
        "title": str(todo.get("SUMMARY", "")),
        "body": {"contentType": "text", "content": str(todo.get("DESCRIPTION", ""))},
        "importance": _importance(todo.get("PRIORITY")),
        "categories": [str(c) for prop in _all(todo, "CATEGORIES") for c in prop.cats],
        "status": STATUS.get(str(todo.get("STATUS", "NEEDS-ACTION")).upper(), "notStarted"),
    }
    if "COMPLETED" in todo:
        task["completedDateTime"] = _utc(todo["COMPLETED"].dt)
    floating = False
    for name, field in (("DUE", "dueDateTime"), ("DTSTART", "startDateTime")):
        if name in todo:
            tzid = todo[name].params.get("TZID")
            time = eventtimes.to_graph(todo[name].dt, str(tzid) if tzid else None)
            task[field] = time.value
            floating = floating or time.floating
    _recurrence(todo, task)
    reminder = _reminder(todo)
    task["isReminderOn"] = reminder is not None
    if reminder is not None:
        task["reminderDateTime"] = _utc(reminder)
    uid = todo.get("UID")
    return (str(uid) if uid else None), task, floating


def _all(todo: Any, name: str) -> list[Any]:
    found = todo.get(name)
    return [] if found is None else found if isinstance(found, list) else [found]


def _importance(priority: Any) -> str:
    value = int(priority) if priority is not None else 0
    if 1 <= value <= 4:
        return "high"
    return "low" if value >= 6 else "normal"


def _utc(value: dt.date | dt.datetime) -> dict[str, str]:
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(), dt.UTC)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return {"dateTime": value.replace(tzinfo=None).isoformat(timespec="seconds"), "timeZone": "UTC"}


def _recurrence(todo: Any, task: dict[str, Any]) -> None:
    rules = todo.get("RRULE")
    if rules is None:
        return
    if isinstance(rules, list):
        raise Unsupported("several RRULEs")
    anchor = todo.get("DTSTART") or todo.get("DUE")
    if anchor is None:
        raise Unsupported("an RRULE without DTSTART or DUE")
    value = anchor.dt
    time = eventtimes.to_graph(value, str(anchor.params.get("TZID") or "") or None)
    if not time.zoned:
        raise Unsupported("a recurring task in a time zone Windows does not know")
    zone = value.tzinfo if isinstance(value, dt.datetime) else None
    day = value.date() if isinstance(value, dt.datetime) else value
    task["recurrence"] = {
        "pattern": recurrence.to_pattern(dict(rules), day),
        "range": recurrence.to_range(dict(rules), value, zone, time.value["timeZone"]),
    }


def _reminder(todo: Any) -> dt.date | dt.datetime | None:
    """The instant of the first display alarm (a relative trigger counted from DTSTART or DUE)."""
    for alarm in todo.walk("VALARM"):
        if str(alarm.get("ACTION", "")).upper() != "DISPLAY" or "TRIGGER" not in alarm:
            continue
        trigger = alarm["TRIGGER"]
        if not isinstance(trigger.dt, dt.timedelta):
            return trigger.dt  # type: ignore[no-any-return]
        related = str(trigger.params.get("RELATED", "START")).upper()
        anchor = todo.get("DUE" if related == "END" else "DTSTART") or todo.get("DUE")
        if anchor is None:
            return None
        base = anchor.dt
        if not isinstance(base, dt.datetime):
            base = dt.datetime.combine(base, dt.time(), dt.UTC)
        return base + trigger.dt
    return None


# -- Graph -> iCalendar ----------------------------------------------------------------------------
def shape(task: dict[str, Any]) -> dict[str, Any]:
    """Each group of what Graph shows, reduced to what we convert (instants for times; Graph
    answers with fractions of seconds and its own zone)."""

    def when(value: Any) -> str | None:
        if not value:
            return None
        return eventtimes.instant(value).isoformat()

    body = (task.get("body") or {}).get("content") or ""
    rec = task.get("recurrence")
    return {
        "title": task.get("title") or "",
        "body": str(body).replace("\r\n", "\n"),
        "status": [task.get("status") or "notStarted", when(task.get("completedDateTime"))],
        "due": when(task.get("dueDateTime")),
        "start": when(task.get("startDateTime")),
        "importance": task.get("importance") or "normal",
        "categories": sorted(task.get("categories") or []),
        "recurrence": [
            rec.get("pattern", {}).get("type"),
            rec.get("range", {}).get("type"),
            _pattern_core(rec),
        ]
        if rec
        else None,
        "reminder": when(task.get("reminderDateTime")) if task.get("isReminderOn") else None,
    }


def _pattern_core(rec: dict[str, Any]) -> list[Any]:
    pattern, rng = rec.get("pattern", {}), rec.get("range", {})
    days = sorted(pattern.get("daysOfWeek") or [])
    return [pattern.get("interval"), days, pattern.get("dayOfMonth"), pattern.get("month"),
            pattern.get("index"), rng.get("numberOfOccurrences"), rng.get("endDate")]  # fmt: skip


def fingerprint(task: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(shape(task), sort_keys=True).encode()).hexdigest()


def render_task(task: dict[str, Any], uid: str, floating: bool = False) -> icalendar.Todo:
    """The VTODO of a task, from Graph's fields only."""
    todo = icalendar.Todo()
    todo.add("UID", uid)
    todo.add("DTSTAMP", dt.datetime.now(dt.UTC).replace(microsecond=0))
    for group in GROUPS:
        _render(todo, group, task, floating)
    return todo


def _render(todo: icalendar.Todo, group: str, task: dict[str, Any], floating: bool) -> None:  # noqa: C901 - one case per group
    if group == "title" and task.get("title"):
        todo.add("SUMMARY", task["title"])
    elif group == "body" and shape(task)["body"]:
        todo.add("DESCRIPTION", shape(task)["body"])
    elif group == "status":
        status = str(task.get("status") or "notStarted")
        todo.add("STATUS", ICAL_STATUS.get(status, "NEEDS-ACTION"))
        if task.get("completedDateTime"):
            todo.add("COMPLETED", eventtimes.instant(task["completedDateTime"]))
        if status == "completed":
            todo.add("PERCENT-COMPLETE", 100)
    elif group in {"due", "start"}:
        value = task.get("dueDateTime" if group == "due" else "startDateTime")
        if value:
            todo.add("DUE" if group == "due" else "DTSTART", _time(value, floating))
    elif group == "importance" and task.get("importance") in {"high", "low"}:
        todo.add("PRIORITY", 1 if task["importance"] == "high" else 9)
    elif group == "categories" and task.get("categories"):
        todo.add("CATEGORIES", list(task["categories"]))
    elif group == "recurrence" and task.get("recurrence"):
        rule = recurrence.to_rrule(task["recurrence"])
        last = recurrence.end_date(task["recurrence"])
        if last is not None:
            rule["UNTIL"] = last
        todo.add("RRULE", rule)
    elif group == "reminder" and task.get("isReminderOn") and task.get("reminderDateTime"):
        alarm = icalendar.Alarm()
        alarm.add("ACTION", "DISPLAY")
        alarm.add("DESCRIPTION", task.get("title") or "Reminder")
        alarm.add("TRIGGER", eventtimes.instant(task["reminderDateTime"]))
        todo.add_component(alarm)


def _time(value: dict[str, Any], floating: bool) -> dt.date | dt.datetime:
    wall = eventtimes.wall_of(value)
    if wall.time() == dt.time() and not floating:
        return wall.date()  # a date-only DUE/DTSTART: midnight of its zone
    zone = eventtimes.zone_of(value.get("timeZone"))
    return eventtimes.from_graph(value, zone, all_day=False, floating=floating)


def with_residue(task: dict[str, Any], uid: str, original: bytes | None, floating: bool) -> bytes:
    """The VCALENDAR of ``task``: the source's lines for every group Graph still holds as the
    source wrote it, Graph's for the others, and the source's other properties and alarms."""
    try:
        source = _todo(original) if original else None
        _, planned, _ = plan_task(original) if original else (None, None, False)
    except (Unsupported, ValueError):
        source = planned = None
    calendar = icalendar.Calendar()
    calendar.add("PRODID", "-//mailferry//Microsoft To Do//EN")
    calendar.add("VERSION", "2.0")
    if source is None or planned is None:
        calendar.add_component(render_task(task, uid, floating))
    else:
        calendar.add_component(_merged(source, planned, task, floating))
    calendar.add_missing_timezones()
    return bytes(calendar.to_ical())


def _merged(source: Any, planned: dict[str, Any], task: dict[str, Any], floating: bool) -> Any:
    now, was = shape(task), shape(planned)
    for group, (names, _fields) in GROUPS.items():
        if now[group] == was[group]:
            continue
        for name in names:
            source.pop(name, None)
        if group == "reminder":
            source.subcomponents = [
                a for a in source.subcomponents
                if str(a.get("ACTION", "")).upper() != "DISPLAY"
            ]  # fmt: skip
        _render(source, group, task, floating)
    return source
