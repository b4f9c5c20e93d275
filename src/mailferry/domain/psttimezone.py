"""An appointment's time zone as the PST defines it: a TZDEFINITION blob
(PidLidAppointmentTimeZoneDefinitionRecur / StartDisplay, [MS-OXOCAL] 2.2.1.41) as a VTIMEZONE.

TZDEFINITION: MajorVersion, MinorVersion (u8), cbHeader, Reserved (u16), cchKeyName (u16) and the
Windows key name (UTF-16LE), cRules (u16), then cRules TZRULEs (2.2.1.41.1, 66 bytes each):
versions (u8, u8), Reserved (u16), TZRule flags (u16), wYear (u16, the first year the rule holds),
14 bytes unused, lBias, lStandardBias, lDaylightBias (i32 minutes: UTC = local + bias + ...),
stStandardDate and stDaylightDate (SYSTEMTIME: wYear, wMonth, wDayOfWeek, wDay, wHour, wMinute,
...; wMonth 0: no daylight saving time). A SYSTEMTIME is read as TIME_ZONE_INFORMATION defines it
(learn.microsoft.com/windows/win32/api/timezoneapi/ns-timezoneapi-time_zone_information): wYear 0
is the relative form, the wDay-th (5: the last) wDayOfWeek of the month, every year; "If the wYear
member is not zero, the transition date is absolute; it will only occur one time": wDay is then
the day of the month, in that year.

Each rule becomes a STANDARD and a DAYLIGHT component with a yearly RRULE, ending where the next
rule starts: the VTIMEZONE Outlook itself exports, compact, and kept as it is by servers that
re-serialise time zones (Radicale rewrites the long RDATE lists a zoneinfo export makes). An
absolute transition is a component of its own with no RRULE (one onset, at its date) when its year
is within the rule's years, none when it is not; such a rule also opens its years with the offset
in force before its first transition, which the one-off onsets alone would not say. The TZID is the
IANA name of the Windows zone when it has one (clients that look zones up by name), else the key
name.
"""

from __future__ import annotations

import calendar
import datetime as dt
import struct
from dataclasses import dataclass

import icalendar

from mailferry.domain.errors import UnconvertibleError
from mailferry.domain.windowszones import iana_of

_RULE = struct.Struct("<BBHHH14xiii8H8H")
FIRST_YEAR = 1970  # where the first rule's components start (servers dislike 1601)
DAYS = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")


@dataclass(frozen=True)
class Transition:
    month: int
    weekday: int  # 0 Sunday
    week: int  # 1..4, 5 the last
    hour: int
    minute: int
    date: dt.date | None = None  # an absolute transition's one date (month, weekday, week unused)

    def rule(self) -> dict[str, object]:
        week = -1 if self.week >= 5 else self.week
        return {
            "FREQ": "YEARLY",
            "BYMONTH": [self.month],
            "BYDAY": [f"{week}{DAYS[self.weekday % 7]}"],
        }

    def on(self, year: int) -> dt.datetime:
        """The transition's local wall time in ``year`` (an absolute one's: its only one)."""
        if self.date is not None:
            return dt.datetime.combine(self.date, dt.time(self.hour, self.minute))
        days = [
            d
            for d in range(1, calendar.monthrange(year, self.month)[1] + 1)
            if (dt.date(year, self.month, d).weekday() + 1) % 7 == self.weekday % 7
        ]
        day = days[-1] if self.week >= 5 or self.week > len(days) else days[self.week - 1]
        return dt.datetime(year, self.month, day, self.hour, self.minute)  # noqa: DTZ001 - wall time


@dataclass(frozen=True)
class Rule:
    year: int
    standard: int  # UTC offset in minutes while standard time (local - UTC)
    daylight: int
    to_standard: Transition | None  # None: no daylight saving time
    to_daylight: Transition | None


@dataclass(frozen=True)
class Zone:
    tzid: str
    rules: tuple[Rule, ...]

    def component(self) -> icalendar.Timezone:
        zone = icalendar.Timezone()
        zone.add("tzid", self.tzid)
        for index, rule in enumerate(self.rules):
            first = FIRST_YEAR if index == 0 else max(rule.year, FIRST_YEAR)
            last = self.rules[index + 1].year - 1 if index + 1 < len(self.rules) else None
            if last is not None and last < first:
                continue
            for part in _parts(rule, first, last):
                zone.add_component(part)
        return zone


def _parts(rule: Rule, first: int, last: int | None) -> list[icalendar.cal.Component]:
    """The components of ``rule`` over the years ``first``..``last`` (None: on and on)."""
    if rule.to_standard is None or rule.to_daylight is None:
        opening = dt.datetime(first, 1, 1)  # noqa: DTZ001 - a wall time
        return [_part("STANDARD", opening, rule.standard, rule.standard, None, last)]
    changes = (
        ("STANDARD", rule.to_standard, rule.daylight, rule.standard),
        ("DAYLIGHT", rule.to_daylight, rule.standard, rule.daylight),
    )
    parts = []
    if any(transition.date is not None for _, transition, _, _ in changes):
        parts.append(_opening(changes, first))
    for kind, transition, before, after in changes:
        if transition.date is None:
            parts.append(_part(kind, transition.on(first), before, after, transition, last))
        elif first <= transition.date.year <= (dt.MAXYEAR if last is None else last):
            parts.append(_part(kind, transition.on(first), before, after, None, None))
    return parts


def _opening(
    changes: tuple[tuple[str, Transition, int, int], ...], first: int
) -> icalendar.cal.Component:
    """The offset from January 1st of ``first``: the one the rule's first transition leaves
    (daylight time when that one goes to standard time, as south of the equator)."""
    kind, _, before, _ = min(changes, key=lambda change: change[1].on(first))
    opening = dt.datetime(first, 1, 1)  # noqa: DTZ001 - a wall time
    return _part("DAYLIGHT" if kind == "STANDARD" else "STANDARD", opening, before, before, None, None)  # fmt: skip


def _offset(minutes: int) -> dt.timedelta:
    return dt.timedelta(minutes=minutes)


def _part(
    kind: str,
    start: dt.datetime,
    before: int,
    after: int,
    transition: Transition | None,
    last_year: int | None,
) -> icalendar.cal.Component:
    part = icalendar.TimezoneStandard() if kind == "STANDARD" else icalendar.TimezoneDaylight()
    part.add("dtstart", start)
    part.add("tzoffsetfrom", _offset(before))
    part.add("tzoffsetto", _offset(after))
    if transition is not None:
        rule = transition.rule()
        if last_year is not None:  # a day after the last onset, for readers that drop the Z
            end = transition.on(last_year) + dt.timedelta(days=1) - _offset(before)
            rule["UNTIL"] = end.replace(tzinfo=dt.UTC)
        part.add("rrule", rule)
    return part


def parse_zone(blob: bytes) -> Zone:
    """The zone of a TZDEFINITION (``UnconvertibleError`` when it is not one)."""
    try:
        (count,) = struct.unpack_from("<H", blob, 6)
        key = blob[8 : 8 + 2 * count].decode("utf-16-le")
        at = 8 + 2 * count
        (rules,) = struct.unpack_from("<H", blob, at)
        at += 2
        found = []
        for _ in range(rules):
            fields = _RULE.unpack_from(blob, at)
            at += _RULE.size
            found.append(_rule(fields))
    except (struct.error, UnicodeDecodeError):
        raise UnconvertibleError("the time zone definition is cut short") from None
    if not found:
        raise UnconvertibleError("the time zone definition has no rule")
    found.sort(key=lambda r: r.year)
    return Zone(iana_of(key) or key, tuple(found))


def _rule(fields: tuple[int, ...]) -> Rule:
    year, bias, standard_bias, daylight_bias = fields[4], fields[5], fields[6], fields[7]
    standard_date, daylight_date = fields[8:16], fields[16:24]
    standard, daylight = -(bias + standard_bias), -(bias + daylight_bias)
    if daylight_date[1] == 0 or standard_date[1] == 0:
        return Rule(year, standard, standard, None, None)
    return Rule(year, standard, daylight, _transition(standard_date), _transition(daylight_date))


def _transition(date: tuple[int, ...]) -> Transition:
    year, month, weekday, day, hour, minute = date[:6]
    if year:  # absolute: day ``day`` of the month, that year only
        try:
            return Transition(month, weekday, 0, hour, minute, dt.date(year, month, day))
        except ValueError:
            raise UnconvertibleError(
                f"a time zone transition on {year:04}-{month:02}-{day:02}"
            ) from None
    if not 1 <= month <= 12 or not 1 <= day <= 5:
        raise UnconvertibleError(f"a time zone transition in month {month}, week {day}")
    return Transition(month, weekday, day, hour, minute)
