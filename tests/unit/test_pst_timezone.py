"""A PST appointment's TZDEFINITION as a VTIMEZONE (domain/psttimezone.py): absolute-date
transitions (a SYSTEMTIME with wYear set: that date, that year only) beside the relative ones.

The offsets are read back from the VTIMEZONE text by icalendar's own time zone (its ``to_tz``,
not looked up by name), on wall times either side of each transition. Built on icalendar's
transitions (the pytz provider), which read a UTC UNTIL as RFC 5545 says: the zoneinfo provider
hands the text to dateutil's tzical, which drops the Z (ignoretz) and with it a relative rule's
last onset.
"""

from __future__ import annotations

import datetime as dt
import struct

import icalendar
import pytest
from icalendar.timezone import TZP

from mailferry.domain.errors import UnconvertibleError
from mailferry.domain.psttimezone import parse_zone

SUNDAY = 0


def when(year: int = 0, month: int = 0, day: int = 0, hour: int = 0) -> tuple[int, ...]:
    """A SYSTEMTIME (wYear, wMonth, wDayOfWeek, wDay, wHour, wMinute, wSecond, wMilliseconds):
    with a year, ``day`` is the day of the month; without, the week (5: the last) of Sundays."""
    return (year, month, SUNDAY, day, hour, 0, 0, 0)


def tzrule(year: int, utc: int, standard: tuple[int, ...], daylight: tuple[int, ...]) -> bytes:
    """A TZRule ([MS-OXOCAL] 2.2.1.41.1): UTC+``utc`` hours, an hour ahead in daylight time."""
    bias = -60 * utc
    return struct.pack("<BBHHH14xiii8H8H", 2, 1, 0x3E, 0, year, bias, 0, -60, *standard, *daylight)


def tzdefinition(*rules: bytes, key: str = "Test Standard Time") -> bytes:
    head = struct.pack("<BBHHH", 2, 1, 0x30, 2, len(key)) + key.encode("utf-16-le")
    return head + struct.pack("<H", len(rules)) + b"".join(rules)


def offsets(blob: bytes, *walls: str) -> list[float]:
    """The UTC offset (hours) the VTIMEZONE gives each local wall time."""
    text = parse_zone(blob).component().to_ical()
    zone = icalendar.Timezone.from_ical(text).to_tz(tzp=TZP("pytz"), lookup_tzid=False)
    found = []
    for wall in walls:
        offset = zone.localize(dt.datetime.fromisoformat(wall)).utcoffset()
        assert offset is not None
        found.append(offset.total_seconds() / 3600)
    return found


EUROPE = tzrule(2000, 1, when(0, 10, 5, 3), when(0, 3, 5, 2))  # last Sundays of October, March


def test_an_absolute_year_between_relative_ones_changes_on_its_dates_only():
    odd = tzrule(2011, 1, when(2011, 9, 18, 3), when(2011, 4, 3, 2))  # day 18: no week number
    blob = tzdefinition(EUROPE, odd, tzrule(2012, 1, when(0, 10, 5, 3), when(0, 3, 5, 2)))
    assert offsets(
        blob,
        "2010-07-01T12:00", "2010-11-01T12:00",
        "2011-03-30T12:00", "2011-04-04T12:00",  # not yet on March 27th, the last Sunday
        "2011-09-17T12:00", "2011-09-19T12:00", "2011-10-15T12:00",
        "2012-03-24T12:00", "2012-07-01T12:00", "2012-12-01T12:00",
    ) == [2, 1, 1, 2, 2, 1, 1, 1, 2, 1]  # fmt: skip


def test_an_absolute_date_with_a_small_day_is_that_date_not_a_week_and_only_that_year():
    blob = tzdefinition(tzrule(2011, 1, when(2011, 10, 2, 3), when(2011, 4, 3, 2)))
    assert offsets(
        blob,
        "2010-07-01T12:00",
        "2011-04-02T12:00", "2011-04-10T12:00",  # the 3rd, not the third Sunday (17th)
        "2011-10-01T12:00", "2011-10-05T12:00",  # the 2nd, not the second Sunday (9th)
        "2012-07-01T12:00", "2015-07-01T12:00",  # once: no daylight time after 2011
    ) == [1, 1, 2, 2, 1, 1, 1]  # fmt: skip
    parts = {str(p.name): p for p in parse_zone(blob).component().subcomponents}
    assert parts["DAYLIGHT"]["DTSTART"].dt == dt.datetime(2011, 4, 3, 2)  # noqa: DTZ001
    assert "RRULE" not in parts["DAYLIGHT"]


def test_a_southern_absolute_year_opens_in_daylight_time():
    blob = tzdefinition(
        tzrule(2000, 10, when(0, 4, 1, 3), when(0, 10, 1, 2)),  # first Sundays of April, October
        tzrule(2011, 10, when(2011, 4, 10, 3), when(2011, 10, 9, 2)),
    )
    assert offsets(
        blob,
        "2010-12-01T12:00", "2011-01-15T12:00", "2011-04-05T12:00",  # not yet the 10th
        "2011-04-11T12:00", "2011-10-05T12:00", "2011-10-10T12:00",
    ) == [11, 11, 11, 10, 10, 11]  # fmt: skip


def test_an_absolute_transition_outside_the_rules_years_is_left_out():
    stray = tzrule(2011, 1, when(2009, 10, 20, 3), when(2009, 4, 20, 2))
    assert offsets(tzdefinition(EUROPE, stray), "2009-07-01T12:00", "2011-07-01T12:00") == [2, 1]


def test_an_absolute_date_the_calendar_does_not_have_is_unconvertible():
    blob = tzdefinition(tzrule(2011, 1, when(2011, 10, 2, 3), when(2011, 2, 30, 2)))
    with pytest.raises(UnconvertibleError, match="2011-02-30"):
        parse_zone(blob)


def test_a_rules_last_onset_survives_readers_that_drop_the_z_of_until():
    """A relative rule ends with a UTC UNTIL. Readers that drop its Z (icalendar's zoneinfo
    provider, through dateutil's tzical) compare it with local onsets: east of UTC, an UNTIL at
    the last onset's very instant falls before it, and the rule's last change to standard time
    is lost (the zone stayed in daylight time until the next rule). The UNTIL is a day after
    that onset: the same series for every reader, no other onset within a day of it."""
    blob = tzdefinition(EUROPE, tzrule(2011, 1, when(0, 10, 5, 3), when(0, 4, 1, 2)))
    text = parse_zone(blob).component().to_ical()
    zone = icalendar.Timezone.from_ical(text).to_tz(lookup_tzid=False)  # the default provider
    found = []
    for wall in ("2010-07-01T12:00", "2010-11-01T12:00", "2010-12-15T12:00", "2011-05-01T12:00"):
        offset = dt.datetime.fromisoformat(wall).replace(tzinfo=zone).utcoffset()
        assert offset is not None
        found.append(offset.total_seconds() / 3600)
    assert found == [2, 1, 1, 2]
    assert offsets(blob, "2010-07-01T12:00", "2010-11-01T12:00", "2011-05-01T12:00") == [2, 1, 2]
