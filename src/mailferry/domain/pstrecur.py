"""An Outlook recurrence (PidLidAppointmentRecur, [MS-OXOCAL] 2.2.1.44) as an iCalendar RRULE.

The blob is a RecurrencePattern (2.2.1.44.1): ReaderVersion, WriterVersion (u16 0x3004 each),
RecurFrequency (u16: 0x200A daily, 0x200B weekly, 0x200C monthly, 0x200D yearly), PatternType
(u16: 0 day, 1 week, 2 month, 3 month end, 4 month nth; 0xA..0xC Hijri), CalendarType (u16),
FirstDateTime, Period, SlidingFlag (u32 each), PatternTypeSpecific (week: a u32 of day bits,
Sunday 0x1 .. Saturday 0x40; month: u32 day; month nth: u32 day bits and u32 N, 5 the last),
EndType (u32: 0x2021 end date, 0x2022 after a count, 0x2023 or 0xFFFFFFFF never),
OccurrenceCount, FirstDOW, DeletedInstanceCount and dates, ModifiedInstanceCount and dates,
StartDate, EndDate (u32 minutes since 1601-01-01, local midnight). An appointment's blob goes on
([MS-OXOCAL] 2.2.1.44.2): ReaderVersion2, WriterVersion2, StartTimeOffset, EndTimeOffset (u32
minutes after local midnight), ExceptionCount (u16) and an ExceptionInfo per changed occurrence
(2.2.1.44.2: StartDateTime, EndDateTime, OriginalStartDate as local minutes, OverrideFlags, then
the overridden fields in flag order). Deleted dates list the changed occurrences too: those are
not EXDATEs but overrides (RECURRENCE-ID).

Anything outside this (a Hijri or other non-Gregorian calendar, a pattern type the frequency does
not allow, a blob shorter than it says) raises ``UnconvertibleError`` with the reason: the caller
copies the first occurrence and reports the item.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import struct
from dataclasses import dataclass, field

from mailferry.domain.errors import UnconvertibleError
from mailferry.domain.monthdays import ALL_MONTHS, outlook_rule

EPOCH = dt.datetime(1601, 1, 1)  # noqa: DTZ001 - local wall time: the blob's minutes are local
DAILY, WEEKLY, MONTHLY, YEARLY = 0x200A, 0x200B, 0x200C, 0x200D
DAY, WEEK, MONTH, MONTH_END, MONTH_NTH = 0, 1, 2, 3, 4
END_DATE, END_COUNT = 0x2021, 0x2022
DAYS = ("SU", "MO", "TU", "WE", "TH", "FR", "SA")
ARO_SUBJECT, ARO_MEETINGTYPE, ARO_REMINDERDELTA, ARO_REMINDER = 0x1, 0x2, 0x4, 0x8
ARO_LOCATION, ARO_BUSYSTATUS, ARO_ATTACHMENT, ARO_SUBTYPE = 0x10, 0x20, 0x40, 0x80
ARO_APPTCOLOR, ARO_EXCEPTIONAL_BODY = 0x100, 0x200
_U32_FIELDS = (ARO_MEETINGTYPE, ARO_REMINDERDELTA, ARO_REMINDER)  # in blob order, after subject


def local(minutes: int) -> dt.datetime:
    """Minutes since 1601-01-01 (the blob's dates) as a naive local date-time."""
    return EPOCH + dt.timedelta(minutes=minutes)


@dataclass(frozen=True)
class Change:
    """One changed occurrence: its original start and its new times (local), and what else the
    ExceptionInfo overrides (subject, location; None: as the series)."""

    original: dt.datetime
    start: dt.datetime
    end: dt.datetime
    subject: str | None = None
    location: str | None = None
    busy: int | None = None
    body_changed: bool = False
    flags: int = 0  # OverrideFlags: what the ExceptionInfo overrides


@dataclass(frozen=True)
class Recurrence:
    rule: dict[str, object]  # icalendar vRecur parts: FREQ, INTERVAL, BYDAY, COUNT, UNTIL, ...
    start: dt.datetime  # the first occurrence's local start (StartDate + StartTimeOffset)
    end_offset: int  # minutes after local midnight of the occurrence's end
    until: dt.datetime | None  # local start of the last occurrence (EndType 0x2021)
    deleted: tuple[dt.datetime, ...] = ()  # local starts of the deleted occurrences
    changes: tuple[Change, ...] = field(default_factory=tuple)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> tuple[int, ...]:
        try:
            values = struct.unpack_from("<" + fmt, self.data, self.at)
        except struct.error:
            raise UnconvertibleError("the recurrence pattern is cut short") from None
        self.at += struct.calcsize("<" + fmt)
        return values

    def one(self, fmt: str) -> int:
        return self.take(fmt)[0]

    def text(self, size: int) -> str:
        raw = self.data[self.at : self.at + size]
        self.at += size
        return raw.decode("cp1252", "replace")

    def wide(self, count: int) -> str:
        raw = self.data[self.at : self.at + 2 * count]
        if len(raw) < 2 * count:
            raise UnconvertibleError("the recurrence pattern is cut short")
        self.at += 2 * count
        return raw.decode("utf-16-le", "replace")


def parse(blob: bytes) -> Recurrence:
    """The recurrence of an appointment's PidLidAppointmentRecur (``UnconvertibleError``: why not)."""
    read = _Reader(blob)
    frequency, pattern, kind = read.take("4xHHH")
    if kind not in (0, 1):  # default / Gregorian
        raise UnconvertibleError(f"calendar type {kind} (not Gregorian) is not converted")
    _first, period, _sliding = read.take("III")
    specific = _specific(read, pattern)
    end_type, count, first_dow = read.take("III")
    deleted = read.take(f"{read.one('I')}I")
    read.take(f"{read.one('I')}I")  # ModifiedInstanceDates: the changed ones' new dates
    start_date, end_date = read.take("II")
    _reader2, writer2 = read.take("II")
    start_offset, end_offset = read.take("II")
    rule = _rule(frequency, pattern, period, specific, local(start_date))
    rule["WKST"] = DAYS[first_dow % 7]
    start = local(start_date) + dt.timedelta(minutes=start_offset)
    until = None
    if end_type == END_COUNT:
        rule["COUNT"] = count
    elif end_type == END_DATE:
        until = local(end_date) + dt.timedelta(minutes=start_offset)
    changes = _changes(read, writer2)
    moved = {change.original.date() for change in changes}  # deleted dates list them too
    gone = tuple(
        local(d) + dt.timedelta(minutes=start_offset)
        for d in deleted
        if local(d).date() not in moved
    )
    return Recurrence(rule, start, end_offset, until, gone, changes)


def _specific(read: _Reader, pattern: int) -> tuple[int, ...]:
    if pattern == DAY:
        return ()
    if pattern in (WEEK, MONTH, MONTH_END):
        return read.take("I")
    if pattern == MONTH_NTH:
        return read.take("II")
    raise UnconvertibleError(
        f"recurrence pattern type 0x{pattern:X} (Hijri calendar) is not converted"
    )


def _days(bits: int) -> list[str]:
    return [name for index, name in enumerate(DAYS) if bits & (1 << index)]


def _rule(  # noqa: C901, PLR0912 - one branch per frequency and pattern, as the table has them
    frequency: int, pattern: int, period: int, specific: tuple[int, ...], first: dt.datetime
) -> dict[str, object]:
    if frequency == DAILY and pattern == DAY:
        if period <= 0 or period % 1440:
            raise UnconvertibleError(f"a daily period of {period} minutes is not whole days")
        return {"FREQ": "DAILY", "INTERVAL": period // 1440}
    if frequency in (DAILY, WEEKLY) and pattern == WEEK:  # daily + week: every weekday
        days = _days(specific[0])
        if not days:
            raise UnconvertibleError("a weekly recurrence on no day of the week")
        return {"FREQ": "WEEKLY", "INTERVAL": max(period, 1), "BYDAY": days}
    if frequency == MONTHLY:
        rule: dict[str, object] = {"FREQ": "MONTHLY", "INTERVAL": max(period, 1)}
    elif frequency == YEARLY:
        rule = {"FREQ": "YEARLY", "INTERVAL": max(period // 12, 1), "BYMONTH": [first.month]}
    else:
        raise UnconvertibleError(
            f"frequency 0x{frequency:X} with pattern type {pattern} is not known"
        )
    if pattern == MONTH:
        day = specific[0]
        if not 1 <= day <= 31:
            raise UnconvertibleError(f"day {day} of the month")
        # day 29..31 falls on the last day of a shorter month, as in Outlook (monthdays.py)
        rule.update(outlook_rule(day, ALL_MONTHS if frequency == MONTHLY else [first.month]))
    elif pattern == MONTH_END:
        rule["BYMONTHDAY"] = [-1]
    elif pattern == MONTH_NTH:
        days, nth = _days(specific[0]), specific[1]
        if not days or not 1 <= nth <= 5:
            raise UnconvertibleError(f"the {nth}th of days 0x{specific[0]:X} of the month")
        rule.update(BYDAY=days, BYSETPOS=[-1 if nth == 5 else nth])
    else:
        raise UnconvertibleError(
            f"frequency 0x{frequency:X} with pattern type {pattern} is not known"
        )
    return rule


def _changes(read: _Reader, writer2: int) -> tuple[Change, ...]:
    """The ExceptionInfo structures (each changed occurrence's times, busy status, ANSI subject
    and location), then the ExtendedException ones with the subject and location in Unicode."""
    if read.at >= len(read.data):
        return ()
    found = [_exception(read) for _ in range(read.one("H"))]
    try:
        read.take(f"{read.one('I')}x")  # ReservedBlock1
        return tuple(_extended(read, change, writer2) for change in found)
    except UnconvertibleError:  # no (whole) Unicode part: the ANSI texts stand
        return tuple(found)


def _exception(read: _Reader) -> Change:
    start, end, original, flags = read.take("IIIH")
    subject = location = None
    busy = None
    if flags & ARO_SUBJECT:
        read.take("H")
        subject = read.text(read.one("H"))
    for bit in _U32_FIELDS:
        if flags & bit:
            read.take("I")
    if flags & ARO_LOCATION:
        read.take("H")
        location = read.text(read.one("H"))
    if flags & ARO_BUSYSTATUS:
        busy = read.one("I")
    for bit in (ARO_ATTACHMENT, ARO_SUBTYPE, ARO_APPTCOLOR):
        if flags & bit:
            read.take("I")
    return Change(
        local(original),
        local(start),
        local(end),
        subject,
        location,
        busy,
        bool(flags & ARO_EXCEPTIONAL_BODY),
        flags,
    )


def _extended(read: _Reader, change: Change, writer2: int) -> Change:
    """[MS-OXOCAL] 2.2.1.44.3: ChangeHighlight (WriterVersion2 0x3009 on), ReservedBlockEE1,
    then, with a subject or location, the times again and the Unicode texts; ReservedBlockEE2."""
    if writer2 >= 0x3009:
        read.take(f"{read.one('I')}x")
    read.take(f"{read.one('I')}x")
    if not change.flags & (ARO_SUBJECT | ARO_LOCATION):
        return change
    read.take("III")
    subject, location = change.subject, change.location
    if change.flags & ARO_SUBJECT:
        subject = read.wide(read.one("H"))
    if change.flags & ARO_LOCATION:
        location = read.wide(read.one("H"))
    read.take(f"{read.one('I')}x")
    return dataclasses.replace(change, subject=subject, location=location)
