"""Normalised equality of calendar items and contacts, for ``verify`` and for the sync (is the copy
found on the target the source's? ``content_differs``).

Two objects are equal when a person looking at them in a calendar or address book would see no difference.
Ignored: what servers rewrite on store (DTSTAMP, LAST-MODIFIED, SEQUENCE, PRODID, SCHEDULE-STATUS, and the
SCHEDULE-AGENT=CLIENT the migration adds), property order, line folding, how a time is zoned (a date-time
is compared as the UTC instant it names, so a VTIMEZONE is judged by the instants it produces). For a
recurring series, the occurrences are expanded in UTC over a bounded window (``WINDOW`` from the first
start) and compared one by one, once the components themselves compare equal (a changed DTSTART is
reported once, as a property, not again as every occurrence it moves). A TZID is read as the object's
own VTIMEZONE defines it. Invalid properties are compared as read, marked "(invalid)".
Contacts: PRODID and REV ignored, property order and folding too, photos compared decoded.

The answer is ``equal`` or a list of differences worded for an administrator.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import icalendar
import recurring_ical_events

from mailferry.domain.davmodel import CollectionKind
from mailferry.domain.items import normalised_content
from mailferry.domain.scheduling import unpark_attendees
from mailferry.domain.vcard import vcard_differences

IGNORED = frozenset({"DTSTAMP", "LAST-MODIFIED", "SEQUENCE", "PRODID"})
IGNORED_PARAMS = frozenset({"TZID", "VALUE", "SCHEDULE-STATUS"})
WINDOW = dt.timedelta(days=3 * 366)  # occurrences compared over three years from the first start
_SHOWN = 60  # characters of a value quoted in a difference


@dataclass(frozen=True)
class Comparison:
    differences: tuple[str, ...] = ()

    @property
    def equal(self) -> bool:
        return not self.differences

    def __str__(self) -> str:
        return "equal" if self.equal else "; ".join(self.differences)


def content_differs(kind: CollectionKind, source: bytes, target: bytes) -> str | None:
    """None when the target's copy shows what the source's does (after the migration's own
    change to meetings), else the first differences, for a report."""
    if kind is CollectionKind.CALENDAR:  # a parked meeting is the meeting, on either side
        source, target = unpark_attendees(source).raw, unpark_attendees(target).raw
    if normalised_content(source) == normalised_content(target):
        return None
    if kind is CollectionKind.CALENDAR:
        result = compare_icalendar(source, target)
    else:
        result = compare_vcard(source, target)
    return None if result.equal else str(result)[:200]


def compare_icalendar(source: bytes, target: bytes) -> Comparison:
    try:
        left = icalendar.Calendar.from_ical(source)
    except ValueError as error:
        return Comparison((f"the source is not valid iCalendar ({error})",))
    try:
        right = icalendar.Calendar.from_ical(target)
    except ValueError as error:
        return Comparison((f"the target is not valid iCalendar ({error})",))
    sides = (left, _zones(left)), (right, _zones(right))
    found = _calendar_differences(*sides) or _occurrence_differences(*sides)
    return Comparison(tuple(found))


Zones = dict[str, dt.tzinfo]
Side = tuple[icalendar.Calendar, Zones]


def _zones(calendar: icalendar.Calendar) -> Zones:
    """Each TZID as this object's own VTIMEZONE defines it (never a definition cached by name)."""
    zones: Zones = {}
    for definition in calendar.walk("VTIMEZONE"):
        if not isinstance(definition, icalendar.Timezone):
            continue
        try:
            zones[str(definition["TZID"])] = definition.to_tz(lookup_tzid=False)
        except (KeyError, ValueError, TypeError):
            continue  # a broken VTIMEZONE: the TZID is then read as icalendar resolves it
    return zones


def compare_vcard(source: bytes, target: bytes) -> Comparison:
    return Comparison(tuple(vcard_differences(source, target)))


Line = tuple[str, tuple[tuple[str, str], ...], str]  # name, parameters, value


def _calendar_differences(left: Side, right: Side) -> list[str]:
    found = _line_differences("the calendar", _lines(*left), _lines(*right))
    mine, theirs = _components(*left), _components(*right)
    for key in sorted(mine.keys() | theirs.keys()):
        label = _label(key, mine.get(key) or theirs[key])
        if key not in theirs:
            found.append(f"{label}: only on the source")
        elif key not in mine:
            found.append(f"{label}: only on the target")
        else:
            pair = (mine[key], left[1]), (theirs[key], right[1])
            found.extend(_component_differences(label, *pair))
    return found


def _component_differences(
    label: str, left: tuple[Any, Zones], right: tuple[Any, Zones]
) -> list[str]:
    found = _line_differences(label, _lines(*left), _lines(*right))
    alarms = Counter(_nested(*left)), Counter(_nested(*right))
    if alarms[0] != alarms[1]:
        found.append(f"{label}: the alarms or other inner components differ")
    return found


def _components(calendar: icalendar.Calendar, zones: Zones) -> dict[tuple[str, str, str], Any]:
    """Top-level components but VTIMEZONE, by (kind, UID, RECURRENCE-ID as a UTC instant)."""
    out: dict[tuple[str, str, str], Any] = {}
    for component in calendar.subcomponents:
        if component.name == "VTIMEZONE":
            continue
        recurrence = component.get("RECURRENCE-ID")
        instance = _value(recurrence, zones) if recurrence is not None else ""
        out[(str(component.name), str(component.get("UID", "")), instance)] = component
    return out


def _label(key: tuple[str, str, str], component: Any) -> str:
    kind = {"VEVENT": "event", "VTODO": "task", "VJOURNAL": "journal entry"}.get(key[0], key[0])
    summary = component.get("SUMMARY")
    named = f" '{_short(str(summary))}'" if summary is not None else ""
    instance = f", the instance of {key[2]}" if key[2] else ""
    return f"{kind}{named} (UID {key[1]}{instance})"


def _nested(component: Any, zones: Zones) -> list[str]:
    """The inner components (alarms), each as one canonical text, order ignored."""
    return [_canonical(sub, zones) for sub in component.subcomponents]


def _canonical(component: Any, zones: Zones) -> str:
    lines = sorted(_lines(component, zones))
    return repr((component.name, lines, sorted(_nested(component, zones))))


def _lines(component: Any, zones: Zones) -> list[Line]:
    lines: list[Line] = []
    for name, values in component.items():
        if name in IGNORED or (name == "CALSCALE" and str(values).upper() == "GREGORIAN"):
            continue
        listed = values if isinstance(values, list) else [values]
        lines.extend((name, _params(value), _value(value, zones)) for value in listed)
    return lines


def _params(value: Any) -> tuple[tuple[str, str], ...]:
    params = getattr(value, "params", {})
    kept = []
    for name, param in params.items():
        upper = name.upper()
        text = str(param)
        if upper in IGNORED_PARAMS:
            continue
        if upper == "SCHEDULE-AGENT" and text.upper() in {"CLIENT", "SERVER"}:
            continue  # SERVER is the default; CLIENT is what the migration adds
        kept.append((upper, text))
    return tuple(sorted(kept))


def _value(value: Any, zones: Zones) -> str:
    if isinstance(value, icalendar.vBroken):  # kept as read; compared as its text
        return f"{value.to_ical().decode('utf-8', 'replace')} (invalid)"
    tzid = getattr(value, "params", {}).get("TZID")
    dts = getattr(value, "dts", None)  # EXDATE, RDATE: a list of times
    if dts is not None:
        return ",".join(sorted(_when(_localise(item.dt, tzid, zones)) for item in dts))
    if hasattr(value, "dt"):
        return _when(_localise(value.dt, tzid, zones))
    ical = value.to_ical() if hasattr(value, "to_ical") else str(value)
    return ical.decode("utf-8", "replace") if isinstance(ical, bytes) else str(ical)


def _localise(value: Any, tzid: str | None, zones: Zones) -> Any:
    """A wall time of a TZID put in the zone this object's VTIMEZONE defines."""
    if isinstance(value, dt.datetime) and tzid is not None and str(tzid) in zones:
        return value.replace(tzinfo=zones[str(tzid)])
    return value


def _when(value: Any) -> str:
    """A time as the instant it names: UTC for zoned times; floating times and dates as they are."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return f"{value:%Y-%m-%d %H:%M:%S} (floating)"
        return f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
    if isinstance(value, dt.date):
        return f"{value:%Y-%m-%d}"
    return str(value)  # a duration


def _line_differences(label: str, left: Iterable[Line], right: Iterable[Line]) -> list[str]:
    mine, theirs = Counter(left), Counter(right)
    only_left, only_right = mine - theirs, theirs - mine
    found = []
    for name in sorted({line[0] for line in only_left} | {line[0] for line in only_right}):
        here = [_show(line) for line in only_left.elements() if line[0] == name]
        there = [_show(line) for line in only_right.elements() if line[0] == name]
        if here and there:
            was, now = ", ".join(here), ", ".join(there)
            found.append(f"{label}: {name} is {was} on the source, {now} on the target")
        elif here:
            found.append(f"{label}: {name} {', '.join(here)} is only on the source")
        else:
            found.append(f"{label}: {name} {', '.join(there)} is only on the target")
    return found


def _show(line: Line) -> str:
    params = "".join(f";{k}={v}" for k, v in line[1])
    return f"'{_short(line[2])}'" + (f" ({params[1:]})" if params else "")


def _short(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


Occurrence = tuple[str, str, str, str]  # UID, start, end, kind


def _occurrence_differences(left: Side, right: Side) -> list[str]:
    start = _first_start(left[0])
    if start is None:
        return []
    mine, theirs = _occurrences(*left, start), _occurrences(*right, start)
    if isinstance(mine, str) or isinstance(theirs, str):
        # Both broken alike (their properties are equal): nothing more to compare.
        if isinstance(mine, str) and isinstance(theirs, str):
            return []
        side, error = ("source", mine) if isinstance(mine, str) else ("target", theirs)
        return [f"the {side}'s occurrences cannot be computed ({error})"]
    return [
        f"UID {uid}: the occurrence at {start} is only on the {side}"
        for side, extra in (("source", mine - theirs), ("target", theirs - mine))
        for uid, start, _end, _kind in sorted(extra)
    ]


def _first_start(calendar: icalendar.Calendar) -> dt.date | None:
    days = []
    for component in calendar.subcomponents:
        start: Any = component.get("DTSTART")
        if component.name == "VTIMEZONE" or start is None or isinstance(start, icalendar.vBroken):
            continue
        when = start.dt
        if isinstance(when, dt.date):
            days.append(when.date() if isinstance(when, dt.datetime) else when)
    return min(days, default=None)


def _occurrences(
    calendar: icalendar.Calendar, zones: Zones, start: dt.date
) -> Counter[Occurrence] | str:
    """The occurrences in the window, or why they cannot be computed."""
    found: Counter[Occurrence] = Counter()
    try:
        query = recurring_ical_events.of(calendar, components=["VEVENT", "VTODO", "VJOURNAL"])
        expanded = list(query.between(start - dt.timedelta(days=1), start + WINDOW))
    except ValueError as error:
        return str(error)
    for occurrence in expanded:
        begin = occurrence.get("DTSTART")
        end = occurrence.get("DTEND") or occurrence.get("DUE")
        found[
            (
                str(occurrence.get("UID", "")),
                _value(begin, zones) if begin is not None else "",
                _value(end, zones) if end is not None else "",
                occurrence.name,
            )
        ] += 1
    return found
