"""FAKE Graph: an event's JSON as Graph shows it, and a series' occurrences.

learn.microsoft.com/graph/api/resources/datetimetimezone (a wall clock and a Windows or IANA zone
name; anything else is refused with 400 TimeZoneNotSupportedException), graph/api/event-get
(``Prefer: outlook.timezone="..."``: start and end in that zone, else in UTC), graph/api/resources/
patternedrecurrence (expanded here from its pattern and range, in ``recurrenceTimeZone``), graph/
api/event-list-instances (occurrences and exceptions overlapping the window, with ``type``,
``seriesMasterId`` and ``originalStart``).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import zoneinfo
from typing import TYPE_CHECKING, Any

from dateutil import rrule

from mailferry.adapters.graph.recurrence import end_date, to_rrule
from mailferry.domain.windowszones import iana_of
from mailferry.sandbox.graph.server import Answer, error

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mailferry.sandbox.graph.server import Call
    from mailferry.sandbox.graph.store import FakeItem

HIDDEN = frozenset({"ext", "exceptions", "cancelled", "cleanGlobalObjectId", "searchKey", "transactionId"})  # fmt: skip
_PREFER = re.compile(r'outlook\.timezone="([^"]+)"')
RANGE_TYPES = frozenset({"endDate", "noEnd", "numbered"})
PATTERN_TYPES = frozenset({"daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly"})  # fmt: skip


def zone(name: str | None) -> dt.tzinfo | None:
    iana = iana_of(name) if name else None
    if iana is None:
        return None
    return dt.UTC if iana == "UTC" else zoneinfo.ZoneInfo(iana)


def preferred_zone(call: Call) -> str:
    found = _PREFER.search(call.headers.get("prefer", ""))
    return found.group(1) if found and zone(found.group(1)) is not None else "UTC"


def bad_times(body: dict[str, Any], *, required: bool) -> Answer | None:  # noqa: PLR0911
    for name in ("start", "end"):
        value = body.get(name)
        if value is None:
            if required:
                return error(400, "ErrorInvalidRequest", f"The {name} time is required.")
            continue
        if not isinstance(value, dict) or set(value) - {"dateTime", "timeZone"}:
            return error(400, "RequestBodyRead", f"Invalid dateTimeTimeZone in '{name}'.")
        if zone(value.get("timeZone")) is None:
            return error(
                400,
                "TimeZoneNotSupportedException",
                "A valid TimeZone value must be specified. The following TimeZone value is not "
                f"supported: '{value.get('timeZone')}'.",
            )
        try:
            _wall(value)
        except (KeyError, ValueError):
            return error(400, "RequestBodyRead", f"Invalid dateTime in '{name}'.")
    rec = body.get("recurrence")
    if rec is not None and (
        rec.get("pattern", {}).get("type") not in PATTERN_TYPES
        or rec.get("range", {}).get("type") not in RANGE_TYPES
    ):
        return error(400, "ErrorInvalidRecurrence", "The recurrence pattern is not valid.")
    if body.get("isAllDay") and any(
        _wall(body[n]).time() != dt.time() for n in ("start", "end") if n in body
    ):
        return error(400, "ErrorInvalidRequest", "All-day events must start and end at midnight.")  # fmt: skip
    return None


def _wall(value: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(str(value["dateTime"]).rstrip("Z").split(".")[0])


def _instant(value: dict[str, Any]) -> dt.datetime:
    return _wall(value).replace(tzinfo=zone(value["timeZone"])).astimezone(dt.UTC)


def _shown(value: dict[str, Any], target: str, all_day: bool) -> dict[str, str]:
    if all_day:
        return {"dateTime": _wall(value).isoformat() + ".0000000", "timeZone": target}
    local = _instant(value).astimezone(zone(target)).replace(tzinfo=None)
    return {"dateTime": local.isoformat() + ".0000000", "timeZone": target}


def event_json(item: FakeItem, target: str) -> dict[str, Any]:
    props = item.props
    out = {k: v for k, v in props.items() if k not in HIDDEN}
    all_day = bool(props.get("isAllDay"))
    out.update(
        id=item.id,
        changeKey=item.change_key,
        type="seriesMaster" if props.get("recurrence") else "singleInstance",
        start=_shown(props["start"], target, all_day),
        end=_shown(props["end"], target, all_day),
        createdDateTime=item.created,
        lastModifiedDateTime=item.modified,
    )
    out.setdefault("attendees", [])
    out.setdefault("body", {"contentType": "text", "content": ""})
    return out


def _starts(item: FakeItem, until: dt.datetime) -> list[tuple[str, dt.datetime]]:
    """(key, UTC start) of every occurrence the pattern gives, up to ``until``."""
    props = item.props
    rec = props["recurrence"]
    all_day = bool(props.get("isAllDay"))
    tz = zone(rec["range"].get("recurrenceTimeZone") or props["start"]["timeZone"]) or dt.UTC
    first = _wall(props["start"])
    if not all_day:
        first = _instant(props["start"]).astimezone(zone(props["start"]["timeZone"])).replace(tzinfo=None)  # fmt: skip
    out = []
    for wall in _walls(rec, first):
        start = wall.replace(tzinfo=dt.UTC if all_day else tz).astimezone(dt.UTC)
        if start > until:
            break
        key = wall.date().isoformat() if all_day else start.strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append((key, start))
    return out


def _walls(rec: dict[str, Any], first: dt.datetime) -> Iterator[dt.datetime]:
    """The occurrences' local starts from ``first`` on (endless without an end)."""
    last = end_date(rec)  # the last day, inclusive, in the series' own zone
    if rec["pattern"]["type"].startswith("absolute"):
        return _absolute(rec["pattern"], rec["range"], first, last)
    parts = to_rrule(rec)
    if last is not None:
        parts["UNTIL"] = last.strftime("%Y%m%dT235959")
    return iter(rrule.rrulestr(_rule_text(parts), dtstart=first))


def _absolute(
    pattern: dict[str, Any], rng: dict[str, Any], first: dt.datetime, last: dt.date | None
) -> Iterator[dt.datetime]:
    """Day ``dayOfMonth`` of every interval-th month (of ``month``, every interval-th year), or
    the month's last day when it has fewer days, as Exchange documents it (learn.microsoft.com/
    exchange/client-developer/web-service-reference/absolutemonthlyrecurrence, and
    absoluteyearlyrecurrence: "If for a particular month this value is larger than the number of
    days in the month, the last day of the month is assumed"). Expanded here, not through
    to_rrule, so the fake checks the adapter's conversion instead of repeating it."""
    yearly = pattern["type"] == "absoluteYearly"
    step = int(pattern.get("interval") or 1) * (12 if yearly else 1)
    count = int(rng["numberOfOccurrences"]) if rng["type"] == "numbered" else None
    index = first.year * 12 + (int(pattern["month"]) if yearly else first.month) - 1
    made = 0
    while count is None or made < count:
        year, month = divmod(index, 12)
        day = min(int(pattern["dayOfMonth"]), calendar.monthrange(year, month + 1)[1])
        wall = dt.datetime.combine(dt.date(year, month + 1, day), first.time())
        index += step
        if wall < first:
            continue
        if last is not None and wall.date() > last:
            return
        made += 1
        yield wall


def _rule_text(parts: dict[str, Any]) -> str:
    fields = []
    for name, value in parts.items():
        text = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
        fields.append(f"{name}={text}")
    return "RRULE:" + ";".join(fields)


def occurrence(item: FakeItem, key: str, target: str) -> dict[str, Any] | None:
    if not item.props.get("recurrence") or key in item.props.get("cancelled", []):
        return None
    limit = dt.datetime.fromisoformat(key[:10]).replace(tzinfo=dt.UTC) + dt.timedelta(days=2)
    for found, start in _starts(item, limit):
        if found == key:
            return _occurrence_json(item, key, start, target)
    return None


def _occurrence_json(item: FakeItem, key: str, start: dt.datetime, target: str) -> dict[str, Any]:
    props = item.props
    all_day = bool(props.get("isAllDay"))
    length = _wall(props["end"]) - _wall(props["start"]) if all_day else _instant(props["end"]) - _instant(props["start"])  # fmt: skip
    if all_day:
        begin = {"dateTime": key + "T00:00:00", "timeZone": props["start"]["timeZone"]}
        finish = {"dateTime": (_wall(begin) + length).isoformat(), "timeZone": begin["timeZone"]}
    else:
        begin = {"dateTime": start.replace(tzinfo=None).isoformat(), "timeZone": "UTC"}
        finish = {"dateTime": (start + length).replace(tzinfo=None).isoformat(), "timeZone": "UTC"}
    changed = (props.get("exceptions") or {}).get(key)
    base = {k: v for k, v in props.items() if k not in HIDDEN | {"recurrence"}}
    base.update(start=begin, end=finish)
    if changed:
        base.update(changed)
    return {
        **base,
        "id": f"{item.id}.OCC.{key}",
        "changeKey": item.change_key,
        "type": "exception" if changed else "occurrence",
        "seriesMasterId": item.id,
        "originalStart": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "start": _shown(base["start"], target, all_day),
        "end": _shown(base["end"], target, all_day),
    }


def instances(
    item: FakeItem, start: dt.datetime, end: dt.datetime, target: str
) -> list[dict[str, Any]]:
    if not item.props.get("recurrence"):
        return []
    out = []
    cancelled = set(item.props.get("cancelled") or [])
    for key, begin in _starts(item, end):
        if key in cancelled:
            continue
        one = _occurrence_json(item, key, begin, target)
        if _instant(one["end"]) > start and _instant(one["start"]) < end:
            out.append(one)
    return out
