"""RRULE (RFC 5545) <-> Graph's ``patternedRecurrence`` (learn.microsoft.com/graph/api/resources/
patternedrecurrence, recurrencepattern, recurrencerange).

Graph holds six patterns: daily, weekly (days of the week), absoluteMonthly (a day of the month),
relativeMonthly (the first..fourth or last weekday(s) of the month), absoluteYearly and
relativeYearly (the same within one month), each with an interval, and three ends: numbered (a
count), endDate (a last date, inclusive) and noEnd. An RRULE it cannot hold (hourly, several
BYMONTHDAY, BYSETPOS other than one ordinal, BYWEEKNO, BYYEARDAY, BYHOUR, several months, ...)
is refused with the reason (``Unsupported``): never a different series.

A ``dayOfMonth`` of 29..31 falls on the last day of a month that has fewer days, where RFC 5545
skips the month (domain/monthdays.py): Graph's day N is written and read as Outlook's
BYMONTHDAY=28,...,N;BYSETPOS=-1 (BYMONTHDAY=-1, the last day, is read as the longest visited
month's length), and a plain BYMONTHDAY=N (or DTSTART on day N) in a series that visits a shorter
month is refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from mailferry.domain import monthdays

DAYS = {
    "SU": "sunday",
    "MO": "monday",
    "TU": "tuesday",
    "WE": "wednesday",
    "TH": "thursday",
    "FR": "friday",
    "SA": "saturday",
}
ICAL_DAYS = {v: k for k, v in DAYS.items()}
INDEX = {1: "first", 2: "second", 3: "third", 4: "fourth", -1: "last"}
ORDINAL = {v: k for k, v in INDEX.items()}
KNOWN = frozenset({"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "WKST"})  # fmt: skip


class Unsupported(ValueError):  # noqa: N818 - read as "the rule is unsupported"
    """An RRULE Graph's patterns cannot express (the message says what)."""


def _all(rule: dict[str, Any], name: str) -> list[Any]:
    values = rule.get(name)
    if values is None:
        return []
    return list(values) if isinstance(values, (list, tuple)) else [values]


def _one(rule: dict[str, Any], name: str) -> Any:
    values = _all(rule, name)
    if len(values) > 1:
        raise Unsupported(f"{name} with several values ({values})")
    return values[0] if values else None


def _byday(value: str) -> tuple[int | None, str]:
    text = str(value).upper()
    day = text[-2:]
    if day not in DAYS:
        raise Unsupported(f"BYDAY {value}")
    ordinal = text[:-2].lstrip("+")
    return (int(ordinal) if ordinal else None), DAYS[day]


def to_pattern(rule: dict[str, list[Any]], start: dt.date) -> dict[str, Any]:
    """The ``pattern`` of an RRULE (as icalendar's vRecur: name -> list of values)."""
    unknown = sorted(set(rule) - KNOWN)
    if unknown:
        raise Unsupported(f"{', '.join(unknown)} in RRULE")
    freq = str(_one(rule, "FREQ")).upper()
    interval = int(_one(rule, "INTERVAL") or 1)
    days = [_byday(d) for d in _all(rule, "BYDAY")]
    monthday = _all(rule, "BYMONTHDAY")
    month = _one(rule, "BYMONTH")
    setpos = _one(rule, "BYSETPOS")
    pattern: dict[str, Any] = {"interval": interval}
    if freq == "DAILY" and not (days or monthday or month or setpos):
        return {"type": "daily", **pattern}
    if freq == "WEEKLY" and not (monthday or month or setpos):
        if any(n is not None for n, _ in days):
            raise Unsupported("BYDAY with an ordinal in a weekly rule")
        chosen = [d for _, d in days] or [ICAL_DAYS_BY_WEEKDAY[start.weekday()]]
        first = DAYS.get(str(_one(rule, "WKST") or "MO").upper(), "monday")
        return {"type": "weekly", **pattern, "daysOfWeek": chosen, "firstDayOfWeek": first}
    if freq in {"MONTHLY", "YEARLY"}:
        return _monthly(rule, start, interval, yearly=freq == "YEARLY")
    raise Unsupported(f"FREQ={freq} with these parts ({', '.join(sorted(rule))})")


def _monthly(
    rule: dict[str, Any], start: dt.date, interval: int, *, yearly: bool
) -> dict[str, Any]:
    days = [_byday(d) for d in _all(rule, "BYDAY")]
    monthday, month = _all(rule, "BYMONTHDAY"), _one(rule, "BYMONTH")
    pattern: dict[str, Any] = {"interval": interval}
    if yearly and not month and (days or monthday):
        raise Unsupported(
            "a yearly rule with BYMONTHDAY or BYDAY but no BYMONTH "
            "(RFC 5545: that day of every month, or of the whole year)"
        )
    if yearly:
        pattern["month"] = int(month or start.month)
    elif month:
        raise Unsupported("BYMONTH in a monthly rule")
    if not days:
        months: Iterable[int] = (
            [pattern["month"]] if yearly else monthdays.visited(start.month, interval)
        )
        kind = "absoluteYearly" if yearly else "absoluteMonthly"
        return {"type": kind, **pattern, "dayOfMonth": _day_of_month(rule, start, months)}
    if monthday:
        raise Unsupported("BYDAY together with BYMONTHDAY")
    kind = "relativeYearly" if yearly else "relativeMonthly"
    return {"type": kind, **pattern, **_relative(days, _one(rule, "BYSETPOS"))}


def _day_of_month(rule: dict[str, Any], start: dt.date, months: Iterable[int]) -> int:
    """Graph's ``dayOfMonth`` for BYMONTHDAY (or DTSTART's day) in a series visiting ``months``:
    the RRULE must fall on a shorter month's last day as Graph does, not skip the month."""
    days = [int(d) for d in _all(rule, "BYMONTHDAY")]
    setpos = [int(p) for p in _all(rule, "BYSETPOS")]
    if setpos:
        day = monthdays.outlook_day(days, setpos)
        if day is None:
            raise Unsupported(f"BYSETPOS={setpos} with BYMONTHDAY={days} (no BYDAY)")
        return day
    if days == [-1]:  # the last day: the longest month's length is every month's last day
        return monthdays.longest(months)
    day = int(_one(rule, "BYMONTHDAY") or start.day)
    if day < 1:
        raise Unsupported(f"BYMONTHDAY={day} (counted from the month's end)")
    if day > monthdays.shortest(months):
        outlook = ",".join(str(d) for d in range(28, day + 1))
        raise Unsupported(
            f"day {day} of the month: RFC 5545 skips the months without it, Graph's dayOfMonth "
            f"falls on their last day (Outlook's BYMONTHDAY={outlook};BYSETPOS=-1 converts)"
        )
    return day


def _relative(days: list[tuple[int | None, str]], setpos: Any) -> dict[str, Any]:
    ordinals = {n for n, _ in days}
    if setpos is not None:
        if ordinals != {None}:
            raise Unsupported("BYSETPOS with ordinal BYDAY values")
        ordinal = int(setpos)
    elif len(days) == 1 and days[0][0] is not None:
        ordinal = int(days[0][0])
    else:
        raise Unsupported("several weekdays without BYSETPOS, or a weekday without an ordinal")
    if ordinal not in INDEX:
        raise Unsupported(f"the ordinal {ordinal} (Graph: first..fourth, or last)")
    return {"daysOfWeek": [d for _, d in days], "index": INDEX[ordinal]}


ICAL_DAYS_BY_WEEKDAY = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)


def to_range(
    rule: dict[str, list[Any]], start: dt.date | dt.datetime, zone: dt.tzinfo | None, tz_name: str
) -> dict[str, Any]:
    """The ``range``: COUNT -> numbered, UNTIL -> endDate (the local date of the last possible
    occurrence: an UNTIL before the day's start time ends the day before), else noEnd."""
    local_start = start.date() if isinstance(start, dt.datetime) else start
    out: dict[str, Any] = {"startDate": local_start.isoformat(), "recurrenceTimeZone": tz_name}
    count, until = _one(rule, "COUNT"), _one(rule, "UNTIL")
    if count is not None:
        return {"type": "numbered", **out, "numberOfOccurrences": int(count)}
    if until is None:
        return {"type": "noEnd", **out}
    return {"type": "endDate", **out, "endDate": _last_date(until, start, zone).isoformat()}


def _last_date(
    until: dt.date | dt.datetime, start: dt.date | dt.datetime, zone: dt.tzinfo | None
) -> dt.date:
    if not isinstance(until, dt.datetime):
        return until
    if not isinstance(start, dt.datetime):
        return until.date()
    if until.tzinfo is not None and zone is not None:
        until = until.astimezone(zone)
    local = until.replace(tzinfo=None)
    first = start.replace(tzinfo=None)
    return local.date() if local.time() >= first.time() else local.date() - dt.timedelta(days=1)


def to_rrule(recurrence: dict[str, Any]) -> dict[str, Any]:
    """The RRULE parts (for icalendar's vRecur) of a ``patternedRecurrence``."""
    pattern, rng = recurrence["pattern"], recurrence["range"]
    kind = pattern["type"]
    freq = {"daily": "DAILY", "weekly": "WEEKLY"}.get(kind)
    freq = freq or ("MONTHLY" if kind.endswith("Monthly") else "YEARLY")
    rule: dict[str, Any] = {"FREQ": freq}
    if int(pattern.get("interval") or 1) != 1:
        rule["INTERVAL"] = int(pattern["interval"])
    days = [ICAL_DAYS[d] for d in pattern.get("daysOfWeek") or []]
    if kind == "weekly":
        rule["BYDAY"] = days
        if pattern.get("firstDayOfWeek", "sunday") != "monday":
            rule["WKST"] = ICAL_DAYS[pattern.get("firstDayOfWeek", "sunday")]
    if kind.endswith("Yearly"):
        rule["BYMONTH"] = int(pattern["month"])
    if kind.startswith("absolute"):  # a shorter month's last day, not skipped (monthdays.py)
        months: Iterable[int] = (
            [int(pattern["month"])] if kind.endswith("Yearly") else monthdays.ALL_MONTHS
        )
        rule.update(monthdays.outlook_rule(int(pattern["dayOfMonth"]), months))
    if kind.startswith("relative"):
        ordinal = ORDINAL[pattern.get("index", "first")]
        if len(days) == 1:
            rule["BYDAY"] = [f"{ordinal}{days[0]}"]
        else:
            rule["BYDAY"], rule["BYSETPOS"] = days, ordinal
    if rng["type"] == "numbered":
        rule["COUNT"] = int(rng["numberOfOccurrences"])
    return rule


def end_date(recurrence: dict[str, Any]) -> dt.date | None:
    rng = recurrence["range"]
    return dt.date.fromisoformat(rng["endDate"]) if rng["type"] == "endDate" else None
