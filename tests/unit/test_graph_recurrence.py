"""Day 29..31 of the month between RFC 5545 and Graph (adapters/graph/recurrence.py).

Graph's absoluteMonthly/absoluteYearly ``dayOfMonth`` falls on the last day of a month that has
fewer days (learn.microsoft.com/exchange/client-developer/web-service-reference/
absolutemonthlyrecurrence); an RRULE's BYMONTHDAY skips such a month. ``exchange`` below is the
documented rule written out, the oracle both conversions are checked against, over years with a
leap February (2024, 2028).
"""

from __future__ import annotations

import calendar
import datetime as dt
from typing import Any

import icalendar
import pytest
from dateutil import rrule

from mailferry.adapters.graph import events
from mailferry.adapters.graph.recurrence import Unsupported, to_pattern, to_rrule
from mailferry.domain.pstcalendar import event_of
from tests.unit.test_pst_items import appointment, recur

START, END = dt.datetime(2023, 1, 1, 9), dt.datetime(2029, 1, 1)  # noqa: DTZ001 - wall clocks


def exchange(pattern: dict[str, Any], start: dt.datetime) -> list[dt.datetime]:
    """Graph's occurrences as documented: day N of every interval-th month (of ``month`` in
    every interval-th year), the month's last day where it has fewer than N."""
    yearly = pattern["type"] == "absoluteYearly"
    step = pattern["interval"] * (12 if yearly else 1)
    index = start.year * 12 + (pattern["month"] if yearly else start.month) - 1
    found = []
    while index < END.year * 12:
        year, month = divmod(index, 12)
        day = min(pattern["dayOfMonth"], calendar.monthrange(year, month + 1)[1])
        found.append(dt.datetime(year, month + 1, day, start.hour))  # noqa: DTZ001
        index += step
    return [d for d in found if d >= start]


def expand(rule: dict[str, Any], start: dt.datetime) -> list[dt.datetime]:
    """An RRULE's occurrences, through its iCalendar text (as a CalDAV server reads it)."""
    text = icalendar.vRecur(rule).to_ical().decode()
    return list(rrule.rrulestr(text, dtstart=start).between(start, END, inc=True))


def parsed(text: str) -> dict[str, Any]:
    return dict(icalendar.vRecur.from_ical(text))


PATTERNS = [
    ({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31}, dt.datetime(2023, 1, 31, 9)),  # noqa: DTZ001
    ({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 30}, dt.datetime(2023, 1, 30, 9)),  # noqa: DTZ001
    ({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 29}, dt.datetime(2023, 1, 29, 9)),  # noqa: DTZ001
    ({"type": "absoluteMonthly", "interval": 3, "dayOfMonth": 31}, dt.datetime(2023, 3, 31, 9)),  # noqa: DTZ001
    ({"type": "absoluteYearly", "interval": 1, "month": 2, "dayOfMonth": 29}, dt.datetime(2024, 2, 29, 9)),  # noqa: DTZ001
    ({"type": "absoluteYearly", "interval": 1, "month": 4, "dayOfMonth": 30}, dt.datetime(2023, 4, 30, 9)),  # noqa: DTZ001
    ({"type": "absoluteYearly", "interval": 1, "month": 12, "dayOfMonth": 31}, dt.datetime(2023, 12, 31, 9)),  # noqa: DTZ001
    ({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 15}, dt.datetime(2023, 1, 15, 9)),  # noqa: DTZ001
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "start"), PATTERNS)
def test_graph_day_of_month_becomes_an_rrule_with_the_same_dates_and_comes_back(pattern, start):
    recurrence = {"pattern": pattern, "range": {"type": "noEnd", "startDate": str(start.date())}}
    rule = to_rrule(recurrence)
    assert expand(rule, start) == exchange(pattern, start)
    assert to_pattern(parsed(icalendar.vRecur(rule).to_ical().decode()), start.date()) == pattern


def test_day_31_is_outlooks_last_day_shape_where_a_visited_month_is_shorter():
    monthly = {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31}
    rule = to_rrule({"pattern": monthly, "range": {"type": "noEnd", "startDate": "2023-01-31"}})
    assert rule["BYMONTHDAY"] == [28, 29, 30, 31]
    assert rule["BYSETPOS"] == [-1]
    leap = {"type": "absoluteYearly", "interval": 1, "month": 2, "dayOfMonth": 29}
    rule = to_rrule({"pattern": leap, "range": {"type": "noEnd", "startDate": "2024-02-29"}})
    assert (rule["BYMONTHDAY"], rule["BYSETPOS"]) == ([28, 29], [-1])
    eve = {"type": "absoluteYearly", "interval": 1, "month": 12, "dayOfMonth": 31}
    rule = to_rrule({"pattern": eve, "range": {"type": "noEnd", "startDate": "2023-12-31"}})
    assert rule["BYMONTHDAY"] == [31]
    assert "BYSETPOS" not in rule


@pytest.mark.parametrize(
    ("text", "start", "day"),
    [
        ("FREQ=MONTHLY;BYMONTHDAY=28,29,30,31;BYSETPOS=-1", dt.date(2023, 1, 31), 31),
        ("FREQ=MONTHLY;BYMONTHDAY=28,29,30;BYSETPOS=-1", dt.date(2023, 1, 30), 30),
        ("FREQ=MONTHLY;BYMONTHDAY=-1", dt.date(2023, 1, 31), 31),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=28,29;BYSETPOS=-1", dt.date(2024, 2, 29), 29),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1", dt.date(2024, 2, 29), 29),
        ("FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=31", dt.date(2023, 12, 31), 31),
        ("FREQ=MONTHLY;INTERVAL=6;BYMONTHDAY=31", dt.date(2023, 1, 31), 31),  # January, July
        ("FREQ=MONTHLY;BYMONTHDAY=28", dt.date(2023, 1, 28), 28),
    ],
)
def test_an_rrule_with_graphs_dates_becomes_day_of_month(text, start, day):
    pattern = to_pattern(parsed(text), start)
    assert pattern["dayOfMonth"] == day
    wall = dt.datetime.combine(start, dt.time(9))
    assert exchange(pattern, wall) == expand(parsed(text), wall)


@pytest.mark.parametrize(
    ("text", "start", "reason"),
    [
        ("FREQ=MONTHLY;BYMONTHDAY=31", dt.date(2023, 1, 31), "day 31 of the month: RFC 5545 skips"),
        ("FREQ=MONTHLY", dt.date(2023, 1, 31), "day 31 of the month"),  # DTSTART's day
        ("FREQ=MONTHLY;BYMONTHDAY=29", dt.date(2023, 1, 29), "day 29 of the month"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", dt.date(2024, 2, 29), "day 29 of the month"),
        ("FREQ=YEARLY", dt.date(2024, 2, 29), "day 29 of the month"),
        ("FREQ=MONTHLY;INTERVAL=2;BYMONTHDAY=31", dt.date(2023, 2, 28), "day 31 of the month"),
        ("FREQ=MONTHLY;BYMONTHDAY=29,30,31;BYSETPOS=-1", dt.date(2023, 1, 31), "BYSETPOS=[-1]"),
        ("FREQ=MONTHLY;BYMONTHDAY=28,29,30,31;BYSETPOS=1", dt.date(2023, 1, 28), "BYSETPOS=[1]"),
        ("FREQ=MONTHLY;BYMONTHDAY=1,15", dt.date(2023, 1, 1), "several values"),
        ("FREQ=YEARLY;BYMONTHDAY=10", dt.date(2023, 3, 10), "but no BYMONTH"),  # every 10th
        ("FREQ=YEARLY;BYDAY=2TU", dt.date(2023, 1, 10), "but no BYMONTH"),  # the year's 2nd
    ],
)
def test_an_rrule_graph_would_give_other_dates_is_refused(text, start, reason):
    with pytest.raises(Unsupported) as caught:
        to_pattern(parsed(text), start)
    assert reason in str(caught.value)


def test_the_refusal_says_what_differs_and_what_converts():
    with pytest.raises(Unsupported) as caught:
        to_pattern(parsed("FREQ=MONTHLY;BYMONTHDAY=30"), dt.date(2023, 1, 30))
    assert str(caught.value) == (
        "day 30 of the month: RFC 5545 skips the months without it, Graph's dayOfMonth falls on "
        "their last day (Outlook's BYMONTHDAY=28,29,30;BYSETPOS=-1 converts)"
    )


def test_a_pst_series_on_the_31st_or_the_last_day_goes_to_graph_as_day_31():
    for pattern_type, specific in ((2, (31,)), (3, (31,))):  # day 31; the month's end
        blob = recur(0x200C, pattern_type, 1, specific, dt.date(2021, 8, 31), end=(0x2022, 6, None))
        plan = events.plan_event(event_of(appointment(recurring=True, recur=blob)).data)
        pattern = plan.master["recurrence"]["pattern"]
        assert (pattern["type"], pattern["dayOfMonth"]) == ("absoluteMonthly", 31)
