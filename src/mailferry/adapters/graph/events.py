"""A VEVENT series (iCalendar) <-> Graph events (learn.microsoft.com/graph/api/resources/event).

What Graph holds of an event and we convert: subject (SUMMARY), body as text (DESCRIPTION),
location.displayName (LOCATION), start/end/isAllDay (DTSTART, DTEND or DURATION; eventtimes.py),
recurrence (RRULE; recurrence.py), cancelled occurrences (EXDATE: the occurrence deleted) and
changed ones (a RECURRENCE-ID component: the occurrence PATCHed). Everything else of the source
(alarms, categories, classes, X- properties, attachments, ...) travels in our extended property
(collections.py) and comes back with the item. Refused (``Unsupported``): an ORGANIZER or ATTENDEE
(Graph would mail every attendee, and that cannot be turned off: the sync parks them first), RDATE,
several RRULEs, an RRULE Graph cannot express, a recurring event in a zone Windows does not know.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import icalendar
from dateutil import rrule  # type: ignore[import-untyped]

from mailferry.adapters.graph import eventtimes, recurrence
from mailferry.adapters.graph.eventtimes import GraphTime
from mailferry.adapters.graph.recurrence import Unsupported

MODELED = frozenset(
    {"UID", "SUMMARY", "DESCRIPTION", "LOCATION", "DTSTART", "DTEND", "DURATION", "RRULE",
     "EXDATE", "RECURRENCE-ID", "DTSTAMP"}
)  # fmt: skip
SCHEDULING = ("ORGANIZER", "ATTENDEE")
PARKED = ("X-MAILFERRY-ORGANIZER", "X-MAILFERRY-ATTENDEE")
# Where parked ORGANIZER/ATTENDEE show in Outlook: one line after the description (the exact
# properties are in the item's extended property, and come back as they were)
NOTE = "\n\n[mailferry] meeting copied without inviting anyone; organizer and attendees: "


@dataclass
class EventPlan:
    """What ``put`` writes: the series (or single event), then its changed and deleted occurrences
    (keyed by the occurrence's original start, a UTC instant in ISO form, or a date)."""

    uid: str
    master: dict[str, Any]
    exceptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    floating: bool = False


def parse_calendar(data: bytes) -> icalendar.Calendar:
    try:
        return icalendar.Calendar.from_ical(data)
    except ValueError as exc:
        raise Unsupported(f"not iCalendar: {exc}") from None


def plan_event(data: bytes) -> EventPlan:  # noqa: C901 - one check per refusal, in order
    calendar = parse_calendar(data)
    events = list(calendar.walk("VEVENT"))
    masters = [e for e in events if "RECURRENCE-ID" not in e]
    if not events:
        kinds = sorted({str(c.name) for c in calendar.subcomponents if c.name != "VTIMEZONE"})
        held = (
            "Microsoft 365 keeps tasks in To Do lists, not in calendars"
            if "VTODO" in kinds
            else "a Microsoft 365 calendar holds events"
        )
        raise Unsupported(f"{', '.join(kinds) or 'nothing'}: {held}")
    if len(masters) != 1:
        raise Unsupported(f"{len(masters)} VEVENTs without RECURRENCE-ID (Graph: one series)")
    master = masters[0]
    for event in events:
        for name in SCHEDULING:
            if name in event:
                raise Unsupported(
                    f"{name} present: Graph would send invitations (it cannot be told not to); "
                    "the sync parks meetings for this target"
                )
    if "RDATE" in master:
        raise Unsupported("RDATE (Graph has only patterned recurrences)")
    body, start, floating = _fields(master)
    body["body"]["content"] += parked_note(master)
    plan = EventPlan(str(master.get("UID", "")), body, floating=floating)
    rules = master.get("RRULE")
    if rules is not None:
        if isinstance(rules, list):
            raise Unsupported("several RRULEs")
        if not start.zoned:
            raise Unsupported("a recurring event in a time zone Windows does not know")
        value, tzid = _value(master, "DTSTART")
        zone = value.tzinfo if isinstance(value, dt.datetime) else None
        body["recurrence"] = {
            "pattern": recurrence.to_pattern(dict(rules), _date(value)),
            "range": recurrence.to_range(dict(rules), value, zone, start.value["timeZone"]),
        }
        _first_is_an_occurrence(master["RRULE"], value)
        plan.cancelled = sorted({key_of(v) for v in _exdates(master)})
        del tzid
    for event in events:
        if "RECURRENCE-ID" in event:
            if rules is None:
                raise Unsupported("a RECURRENCE-ID without a series")
            changed, _, _ = _fields(event)
            plan.exceptions[key_of(_dt(event, "RECURRENCE-ID"))] = changed
    return plan


def _fields(event: Any) -> tuple[dict[str, Any], GraphTime, bool]:
    value, tzid = _value(event, "DTSTART")
    start = eventtimes.to_graph(value, tzid)
    end_value: dt.date | dt.datetime
    if "DTEND" in event:
        end_value, end_tzid = _value(event, "DTEND")
    elif "DURATION" in event:
        end_value, end_tzid = value + event["DURATION"].dt, tzid
    else:
        end_value = value + dt.timedelta(days=1) if start.all_day else value
        end_tzid = tzid
    end = eventtimes.to_graph(end_value, end_tzid)
    if end.all_day != start.all_day:
        raise Unsupported("DTSTART and DTEND of different types (a date and a date-time)")
    body: dict[str, Any] = {
        "subject": str(event.get("SUMMARY", "")),
        "body": {"contentType": "text", "content": str(event.get("DESCRIPTION", ""))},
        "start": start.value,
        "end": end.value,
        "isAllDay": start.all_day,
    }
    if "LOCATION" in event:
        body["location"] = {"displayName": str(event["LOCATION"])}
    return body, start, start.floating


def _value(event: Any, name: str) -> tuple[Any, str | None]:
    prop = event.get(name)
    if prop is None:
        raise Unsupported(f"no {name}")
    tzid = prop.params.get("TZID")
    return prop.dt, (str(tzid) if tzid else None)


def _first_is_an_occurrence(rule: Any, start: dt.date | dt.datetime) -> None:
    """RFC 5545 counts DTSTART as the first occurrence even off the rule; Graph's series begins
    at the first day the pattern gives: such a series would lose its first occurrence."""
    wall = start.replace(tzinfo=None) if isinstance(start, dt.datetime) else start
    first_wall = wall if isinstance(wall, dt.datetime) else dt.datetime.combine(wall, dt.time())
    text = rule.to_ical().decode()
    first = next(iter(rrule.rrulestr(text, dtstart=first_wall, ignoretz=True)), None)
    if first != first_wall:
        raise Unsupported("DTSTART is not an occurrence of its RRULE (Graph would drop it)")


def _dt(component: Any, name: str) -> Any:
    """The date or date-time of a property (icalendar's union of value types, narrowed)."""
    return component[name].dt


def _date(value: dt.date | dt.datetime) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def key_of(value: dt.date | dt.datetime) -> str:
    """An occurrence's key: its UTC instant (``...Z``), a floating wall clock, or a date."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.isoformat(timespec="seconds")
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat()


def _exdates(event: Any) -> list[dt.date | dt.datetime]:
    found = event.get("EXDATE")
    if found is None:
        return []
    return [d.dt for prop in (found if isinstance(found, list) else [found]) for d in prop.dts]


def occurrence_key(instance: dict[str, Any], all_day: bool, floating: bool) -> str:
    """The key (as ``key_of``) of an occurrence Graph lists, from its ``originalStart``."""
    original = dt.datetime.fromisoformat(str(instance["originalStart"]))
    if all_day:
        return eventtimes.from_graph(
            instance["start"], dt.UTC, all_day=True, floating=False
        ).isoformat()
    if floating:
        return original.replace(tzinfo=None).isoformat(timespec="seconds")
    return original.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- Graph -> iCalendar ----------------------------------------------------------------------------
@dataclass(frozen=True)
class GraphSeries:
    """An event as Graph lists it: the series master (or single event), its changed occurrences
    (key -> event) and the keys of its deleted ones."""

    master: dict[str, Any]
    exceptions: dict[str, dict[str, Any]]
    cancelled: tuple[str, ...]
    floating: bool = False


def fingerprint(series: GraphSeries) -> str:
    """What Graph shows of an event, reduced to what we convert (instants, not wall clocks): equal
    for what ``plan_event`` writes and what Graph lists, until someone changes the event."""

    def one(event: dict[str, Any]) -> list[Any]:
        start, end = event["start"], event["end"]
        times = [start["dateTime"][:10], end["dateTime"][:10]] if event.get("isAllDay") else [
            eventtimes.instant(start).isoformat(), eventtimes.instant(end).isoformat()]  # fmt: skip
        return [
            event.get("subject") or "",
            _text(event.get("body")),
            (event.get("location") or {}).get("displayName") or "",
            bool(event.get("isAllDay")),
            *times,
        ]

    rec = series.master.get("recurrence")
    shape = [one(series.master), _recurrence_shape(rec)]
    shape += [[k, one(v)] for k, v in sorted(series.exceptions.items())]
    shape.append(sorted(series.cancelled))
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()


def _recurrence_shape(rec: dict[str, Any] | None) -> Any:
    if not rec:
        return None
    pattern = {k: v for k, v in rec["pattern"].items() if v not in (None, [], 0, "")}
    rng = {k: v for k, v in rec["range"].items() if k != "recurrenceTimeZone" and v}
    if pattern.get("type") != "weekly":
        pattern.pop("firstDayOfWeek", None)
    for name in ("month", "dayOfMonth"):
        if not str(pattern.get("type", "")).endswith(("Yearly", "Monthly")) or name not in pattern:
            pattern.pop(name, None)
    if not str(pattern.get("type", "")).startswith("relative"):
        pattern.pop("index", None)
    if rng.get("type") != "endDate":
        rng.pop("endDate", None)
    if rng.get("type") != "numbered":
        rng.pop("numberOfOccurrences", None)
    return [pattern, rng]


def parked_note(event: Any) -> str:
    """The line a person reading the event in Outlook sees in place of the meeting's people."""
    people: list[str] = []
    for name in PARKED:
        found = event.get(name)
        people += [str(v) for v in (found if isinstance(found, list) else [found]) if v]
    if not people:
        return ""
    return NOTE + ", ".join(p.removeprefix("mailto:").removeprefix("MAILTO:") for p in people)


def _text(body: dict[str, Any] | None) -> str:
    """The body as text, without the note ``parked_note`` added (it is in our property too)."""
    if not body:
        return ""
    content = str(body.get("content") or "")
    if str(body.get("contentType", "text")).lower() == "html":
        content = re.sub(r"<[^>]+>", "", content).strip()
    return content.replace("\r\n", "\n").split(NOTE, 1)[0]


def render_event(series: GraphSeries, uid: str) -> icalendar.Calendar:
    """The VCALENDAR of an event series (without VTIMEZONE: the caller adds what is missing)."""
    master = series.master
    zone = eventtimes.zone_of(master.get("originalStartTimeZone") or master["start"]["timeZone"])
    all_day = bool(master.get("isAllDay"))
    calendar = icalendar.Calendar()
    calendar.add("PRODID", "-//mailferry//Microsoft 365//EN")
    calendar.add("VERSION", "2.0")
    main = _component(master, uid, zone, all_day, series.floating)
    rec = master.get("recurrence")
    if rec:
        start = _dt(main, "DTSTART")
        main.add("RRULE", _rrule(rec, start, zone, all_day, series.floating))
        for key in series.cancelled:
            main.add("EXDATE", _fromkey_of(key, zone, all_day, series.floating))
    calendar.add_component(main)
    for key, changed in sorted(series.exceptions.items()):
        component = _component(changed, uid, zone, all_day, series.floating)
        component.add("RECURRENCE-ID", _fromkey_of(key, zone, all_day, series.floating))
        calendar.add_component(component)
    return calendar


def _component(
    event: dict[str, Any], uid: str, zone: dt.tzinfo, all_day: bool, floating: bool
) -> icalendar.Event:
    component = icalendar.Event()
    component.add("UID", uid)
    component.add("DTSTAMP", dt.datetime.now(dt.UTC).replace(microsecond=0))
    for name in ("start", "end"):
        value = eventtimes.from_graph(event[name], zone, all_day=all_day, floating=floating)
        component.add("DTSTART" if name == "start" else "DTEND", value)
    if event.get("subject"):
        component.add("SUMMARY", event["subject"])
    if _text(event.get("body")):
        component.add("DESCRIPTION", _text(event.get("body")))
    location = (event.get("location") or {}).get("displayName")
    if location:
        component.add("LOCATION", location)
    return component


def _rrule(
    rec: dict[str, Any], start: Any, zone: dt.tzinfo, all_day: bool, floating: bool
) -> dict[str, Any]:
    rule = recurrence.to_rrule(rec)
    last = recurrence.end_date(rec)
    if last is not None:
        if all_day or not isinstance(start, dt.datetime):
            rule["UNTIL"] = last
        elif floating:
            rule["UNTIL"] = dt.datetime.combine(last, start.time())
        else:
            local = dt.datetime.combine(last, start.replace(tzinfo=None).time(), zone)
            rule["UNTIL"] = local.astimezone(dt.UTC)
    return rule


def _fromkey_of(key: str, zone: dt.tzinfo, all_day: bool, floating: bool) -> dt.date | dt.datetime:
    if all_day or len(key) == 10:
        return dt.date.fromisoformat(key[:10])
    if floating or not key.endswith("Z"):
        return dt.datetime.fromisoformat(key)
    return dt.datetime.fromisoformat(key).astimezone(zone)


def with_residue(converted: icalendar.Calendar, original: bytes | None) -> bytes:
    """``converted`` plus what Graph does not hold of ``original`` (its other properties and
    subcomponents, per component matched by RECURRENCE-ID), with every VTIMEZONE it needs."""
    if original:
        try:
            source = icalendar.Calendar.from_ical(original)
        except ValueError:
            source = None
        if source is not None:
            _add_residue(converted, source)
    converted.add_missing_timezones()
    return bytes(converted.to_ical())


def _add_residue(converted: icalendar.Calendar, source: icalendar.Calendar) -> None:
    by_rid = {_rid(e): e for e in source.walk("VEVENT")}
    for event in converted.walk("VEVENT"):
        old = by_rid.get(_rid(event))
        if old is None:
            continue
        if "DURATION" in old and "DTEND" in event:  # the source's form of the end
            event.add("DURATION", _dt(event, "DTEND") - _dt(event, "DTSTART"))
            del event["DTEND"]
        if "RRULE" in old and "RRULE" in event and _same_rule(old, event):
            event["RRULE"] = old["RRULE"]  # the source's form of the same series
        present = set(event)
        for name, value in old.property_items(recursive=False):
            if name not in MODELED | present | {"BEGIN", "END"}:
                event.add(name, value)
        for sub in old.subcomponents:
            event.add_component(sub)


def _rid(event: Any) -> str:
    rid = event.get("RECURRENCE-ID")
    return "" if rid is None else key_of(rid.dt)


def _same_rule(old: Any, new: Any) -> bool:
    """Both RRULEs give Graph the same pattern and range (BYDAY=SU spelled out or implied)."""
    try:
        shapes = []
        for event in (old, new):
            value, tzid = _value(event, "DTSTART")
            zone = value.tzinfo if isinstance(value, dt.datetime) else None
            rule = dict(event["RRULE"])
            shapes.append(
                (
                    recurrence.to_pattern(rule, _date(value)),
                    recurrence.to_range(rule, value, zone, tzid or ""),
                )
            )
    except (Unsupported, KeyError, TypeError, ValueError):
        return False
    return shapes[0] == shapes[1]
