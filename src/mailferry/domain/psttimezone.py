"""An appointment's time zone as the PST defines it: a TZDEFINITION blob
(PidLidAppointmentTimeZoneDefinitionRecur / StartDisplay, [MS-OXOCAL] 2.2.1.41) as a VTIMEZONE.

TZDEFINITION: MajorVersion, MinorVersion (u8), cbHeader, Reserved (u16), cchKeyName (u16) and the
Windows key name (UTF-16LE), cRules (u16), then cRules TZRULEs (2.2.1.41.1, 66 bytes each):
versions (u8, u8), Reserved (u16), TZRule flags (u16), wYear (u16, the first year the rule holds),
14 bytes unused, lBias, lStandardBias, lDaylightBias (i32 minutes: UTC = local + bias + ...),
stStandardDate and stDaylightDate (SYSTEMTIME: wYear, wMonth, wDayOfWeek, wDay -- the week, 5 the
last --, wHour, wMinute, ...; wMonth 0: no daylight saving time).

Each rule becomes a STANDARD and a DAYLIGHT component with a yearly RRULE, ending where the next
rule starts: the VTIMEZONE Outlook itself exports, compact, and kept as it is by servers that
re-serialise time zones (Radicale rewrites the long RDATE lists a zoneinfo export makes). The TZID
is the IANA name of the Windows zone when it has one (clients that look zones up by name), else
the key name.
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

    def rule(self) -> dict[str, object]:
        week = -1 if self.week >= 5 else self.week
        return {
            "FREQ": "YEARLY",
            "BYMONTH": [self.month],
            "BYDAY": [f"{week}{DAYS[self.weekday % 7]}"],
        }

    def on(self, year: int) -> dt.datetime:
        """The transition's local wall time in ``year``."""
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
            if rule.to_standard is None or rule.to_daylight is None:
                zone.add_component(
                    _part(
                        "STANDARD",
                        dt.datetime(first, 1, 1),  # noqa: DTZ001 - a wall time
                        rule.standard,
                        rule.standard,
                        None,
                        last,
                    )
                )
                continue
            zone.add_component(
                _part(
                    "STANDARD",
                    rule.to_standard.on(first),
                    rule.daylight,
                    rule.standard,
                    rule.to_standard,
                    last,
                )
            )
            zone.add_component(
                _part(
                    "DAYLIGHT",
                    rule.to_daylight.on(first),
                    rule.standard,
                    rule.daylight,
                    rule.to_daylight,
                    last,
                )
            )
        return zone


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
        if last_year is not None:
            end = transition.on(last_year) - _offset(before)
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
    _year, month, weekday, week, hour, minute = date[:6]
    if not 1 <= month <= 12 or not 1 <= week <= 5:
        raise UnconvertibleError(f"a time zone transition in month {month}, week {week}")
    return Transition(month, weekday, week, hour, minute)
