"""Day N of the month in a month that has fewer days: where RFC 5545 and Outlook part ways.

RFC 5545 (3.3.10) ignores a BYMONTHDAY a month does not have: FREQ=MONTHLY;BYMONTHDAY=31 skips
February, April, June, September and November. Outlook (PidLidAppointmentRecur's day of the month)
and Exchange, Graph's absoluteMonthly and absoluteYearly ``dayOfMonth`` among them, fall on the
month's last day instead (learn.microsoft.com/exchange/client-developer/web-service-reference/
absolutemonthlyrecurrence: "If for a particular month this value is larger than the number of days
in the month, the last day of the month is assumed"). Outlook's own iCalendar export writes that
as BYMONTHDAY=28,...,N;BYSETPOS=-1, the last of days 28..N the month has: the shape both the PST
reader and the Graph conversion write, and the one the Graph conversion reads back as day N.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence

ALL_MONTHS = range(1, 13)
_YEARS = (2023, 2024)  # a common year and a leap year: February has 28 or 29 days


def shortest(months: Iterable[int]) -> int:
    """The fewest days any of ``months`` has, in a common year or a leap one."""
    return min(calendar.monthrange(year, month)[1] for month in months for year in _YEARS)


def longest(months: Iterable[int]) -> int:
    """The most days any of ``months`` has (February: 29)."""
    return max(calendar.monthrange(year, month)[1] for month in months for year in _YEARS)


def visited(first_month: int, interval: int) -> frozenset[int]:
    """The months a series every ``interval`` months from ``first_month`` falls in."""
    return frozenset((first_month - 1 + step * interval) % 12 + 1 for step in range(12))


def outlook_rule(day: int, months: Iterable[int]) -> dict[str, list[int]]:
    """The RRULE parts of Outlook's "day ``day``, or the last day of a shorter month" in these
    months: one BYMONTHDAY where they all have that day (a server or client that takes no list
    of them keeps it), else the last of days 28..``day`` the month has."""
    if day > shortest(months):
        return {"BYMONTHDAY": list(range(28, day + 1)), "BYSETPOS": [-1]}
    return {"BYMONTHDAY": [day]}


def outlook_day(monthdays: Sequence[int], setpos: Sequence[int]) -> int | None:
    """N, when BYMONTHDAY and BYSETPOS say "day N, or the month's last day": BYSETPOS=-1 over
    consecutive days up to N, from a day every month has (28 or before); else None."""
    days = sorted(monthdays)
    if list(setpos) != [-1] or not days or not 1 <= days[0] <= 28:
        return None
    if days != list(range(days[0], days[-1] + 1)):
        return None
    return days[-1]
