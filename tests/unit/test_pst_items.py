"""The pure conversions of PST calendar items, contacts and tasks (domain/pstcalendar.py,
pstrecur.py, pstcards.py) from property sets built here: no licensed PST with contacts or tasks
was found, so those are covered only this way. Recurrences are checked by expanding them
(``recurring-ical-events``), as a calendar client would.
"""

from __future__ import annotations

import datetime as dt
import struct
import zoneinfo

import icalendar
import pytest
import recurring_ical_events
import vobject

from mailferry.domain import mapi
from mailferry.domain.errors import UnconvertibleError
from mailferry.domain.mapi import MapiItem
from mailferry.domain.pstcalendar import event_of
from mailferry.domain.pstcards import contact_of, task_of
from mailferry.domain.pstrecur import EPOCH

LA = zoneinfo.ZoneInfo("America/Los_Angeles")
UTC = dt.UTC


def minutes(day: dt.date) -> int:
    return int((dt.datetime.combine(day, dt.time()) - EPOCH).total_seconds() // 60)


# PidLidAppointmentTimeZoneDefinitionRecur of the shipped OST's weekly series: "Pacific Standard
# Time", two rules (2006: April to October; 2007 on: March to November)
PACIFIC = bytes.fromhex(
    "0201300002001500500061006300690066006900630020005300740061006e0064006100720064002000540069"
    "006d006500020002013e000000d6070100000001000000000000000000e001000000000000c4ffffff00000a00"
    "0000050002000000000000000000040000000100020000000000000002013e000300d707010000000100000000"
    "0000000000e001000000000000c4ffffff00000b0000000100020000000000000000000300000002000200000000000000"
)


def tzdef(key: str) -> bytes:
    """PACIFIC's rules under another key name."""
    name = key.encode("utf-16-le")
    return struct.pack("<BBHHH", 2, 1, 0x30, 2, len(key)) + name + PACIFIC[8 + 42 :]


def recur(
    frequency: int,
    pattern: int,
    period: int,
    specific: tuple[int, ...],
    first: dt.date,
    *,
    end: tuple[int, int, dt.date | None] = (0x2023, 0, None),
    start_offset: int = 600,
    end_offset: int = 660,
    deleted: tuple[dt.date, ...] = (),
    calendar: int = 0,
) -> bytes:
    """A RecurrencePattern + AppointmentRecurrencePattern ([MS-OXOCAL] 2.2.1.44) as Outlook
    writes one; ``end``: (EndType, OccurrenceCount, last date)."""
    end_type, count, last = end
    blob = struct.pack("<HHHHHIII", 0x3004, 0x3004, frequency, pattern, calendar, 0, period, 0)
    blob += struct.pack(f"<{len(specific)}I", *specific)
    blob += struct.pack("<III", end_type, count, 0)
    blob += struct.pack(f"<I{len(deleted)}I", len(deleted), *(minutes(d) for d in deleted))
    blob += struct.pack("<I", 0)  # modified
    blob += struct.pack("<II", minutes(first), minutes(last) if last else 0x5AE980DF)
    blob += struct.pack("<IIIIH", 0x3006, 0x3009, start_offset, end_offset, 0)
    return blob + struct.pack("<II", 0, 0)


def at(when: dt.datetime) -> int:
    return int((when - EPOCH).total_seconds() // 60)


def with_change(blob: bytes, original: dt.datetime, start: dt.datetime, subject: str) -> bytes:
    """``blob`` (from ``recur``, no change yet) with one changed occurrence: moved to ``start``
    (an hour long) and renamed, in ANSI (ExceptionInfo) and Unicode (ExtendedException)."""
    head = blob[:-10]  # ExceptionCount (0) and the two empty reserved blocks come off
    ansi = subject.encode("cp1252", "replace")
    info = struct.pack("<IIIH", at(start), at(start + dt.timedelta(hours=1)), at(original), 0x1)
    info += struct.pack("<HH", len(ansi) + 1, len(ansi)) + ansi
    wide = subject.encode("utf-16-le")
    extended = struct.pack("<II", 4, 0) + struct.pack("<I", 0)  # ChangeHighlight, EE1
    extended += struct.pack("<III", at(start), at(start + dt.timedelta(hours=1)), at(original))
    extended += struct.pack("<H", len(subject)) + wide + struct.pack("<I", 0)
    return (
        head
        + struct.pack("<H", 1)
        + info
        + struct.pack("<I", 0)
        + extended
        + struct.pack("<II", 0, 0)
    )


def appointment(**named: object) -> MapiItem:
    values = {
        mapi.START_WHOLE: dt.datetime(2021, 8, 9, 17, tzinfo=UTC),
        mapi.END_WHOLE: dt.datetime(2021, 8, 9, 18, tzinfo=UTC),
        mapi.TZ_DEFINITION_RECUR: tzdef("Pacific Standard Time"),
        mapi.CLEAN_GLOBAL_OBJECT_ID: bytes.fromhex("040000008200E00074C5B7101A82E008")
        + b"\x01" * 20,
    }
    values.update({getattr(mapi, k.upper()): v for k, v in named.items()})
    tagged = {
        mapi.SUBJECT: "Weekly",
        mapi.LAST_MODIFICATION_TIME: dt.datetime(2021, 8, 1, tzinfo=UTC),
    }
    return MapiItem("2104548", tagged, values)  # type: ignore[arg-type]


def starts(data: bytes, until: int = 2031) -> list[dt.datetime]:
    calendar = icalendar.Calendar.from_ical(data)
    found = recurring_ical_events.of(calendar).between((2020, 1, 1), (until, 1, 1))
    return sorted(e["DTSTART"].dt for e in found)


def test_a_weekly_series_with_a_count_expands_to_its_mondays_in_its_zone():
    blob = recur(0x200B, 1, 1, (0x2,), dt.date(2021, 8, 9), end=(0x2022, 10, None))
    converted = event_of(appointment(recurring=True, recur=blob))
    found = starts(converted.data)
    assert len(found) == 10
    assert found[0] == dt.datetime(2021, 8, 9, 10, tzinfo=LA)
    assert found[-1] == dt.datetime(2021, 10, 11, 10, tzinfo=LA)
    assert {s.weekday() for s in found} == {0}
    assert converted.notes == ()


def test_a_changed_and_a_deleted_occurrence_become_an_override_and_an_exdate():
    # every Monday from 9 August 2021, four times; the 16th moved to Tuesday 17th 14:00 and
    # renamed, the 23rd deleted (DeletedInstanceDates lists both original dates)
    deleted = (dt.date(2021, 8, 16), dt.date(2021, 8, 23))
    blob = recur(0x200B, 1, 1, (0x2,), dt.date(2021, 8, 9), end=(0x2022, 4, None), deleted=deleted)
    original, moved = dt.datetime(2021, 8, 16, 10), dt.datetime(2021, 8, 17, 14)  # noqa: DTZ001 - wall times
    blob = with_change(blob, original, moved, "Moved ✓")
    calendar = icalendar.Calendar.from_ical(event_of(appointment(recurring=True, recur=blob)).data)
    found = recurring_ical_events.of(calendar).between((2021, 1, 1), (2022, 1, 1))
    seen = sorted((e["DTSTART"].dt, str(e["SUMMARY"])) for e in found)
    assert seen == [
        (dt.datetime(2021, 8, 9, 10, tzinfo=LA), "Weekly"),
        (dt.datetime(2021, 8, 17, 14, tzinfo=LA), "Moved ✓"),
        (dt.datetime(2021, 8, 30, 10, tzinfo=LA), "Weekly"),
    ]


def test_a_zone_windows_cannot_name_keeps_its_rules_and_its_key_as_tzid():
    blob = recur(0x200B, 1, 1, (0x2,), dt.date(2021, 10, 25), end=(0x2022, 3, None))
    converted = event_of(
        appointment(recurring=True, recur=blob, tz_definition_recur=tzdef("Mars Standard Time"))
    )
    assert "TZID=Mars Standard Time" in converted.data.decode()
    # across the change to standard time (7 November 2021) the wall time stays 10:00
    assert [(s.day, s.hour, s.utcoffset()) for s in starts(converted.data)] == [
        (25, 10, dt.timedelta(hours=-7)),
        (1, 10, dt.timedelta(hours=-7)),
        (8, 10, dt.timedelta(hours=-8)),
    ]


def test_a_series_without_a_zone_follows_utc_and_says_so():
    blob = recur(0x200B, 1, 1, (0x2,), dt.date(2021, 8, 9), end=(0x2022, 2, None))
    converted = event_of(appointment(recurring=True, recur=blob, tz_definition_recur=b"\x02"))
    assert starts(converted.data) == [dt.datetime(2021, 8, d, 17, tzinfo=UTC) for d in (9, 16)]
    assert converted.notes == ("time zone unknown: the occurrences follow UTC",)


def test_daily_monthly_nth_and_yearly_with_an_end_date_and_deleted_occurrences():
    daily = recur(
        0x200A,
        0,
        2 * 1440,
        (),
        dt.date(2021, 8, 10),
        end=(0x2021, 0, dt.date(2021, 8, 16)),
        deleted=(dt.date(2021, 8, 12),),
    )
    assert [s.day for s in starts(event_of(appointment(recurring=True, recur=daily)).data)] == [
        10,
        14,
        16,
    ]
    # the last Friday of every second month
    nth = recur(0x200C, 4, 2, (0x20, 5), dt.date(2021, 8, 27), end=(0x2022, 3, None))
    found = starts(event_of(appointment(recurring=True, recur=nth)).data)
    assert [(s.month, s.day) for s in found] == [(8, 27), (10, 29), (12, 31)]
    yearly = recur(0x200D, 2, 12, (13,), dt.date(2021, 8, 13))
    assert [
        (s.year, s.month, s.day)
        for s in starts(event_of(appointment(recurring=True, recur=yearly)).data, 2024)
    ] == [(2021, 8, 13), (2022, 8, 13), (2023, 8, 13)]


def test_day_31_of_the_month_falls_on_the_last_day_of_short_months_as_in_outlook():
    blob = recur(0x200C, 2, 1, (31,), dt.date(2021, 1, 31), end=(0x2022, 3, None))
    found = starts(event_of(appointment(recurring=True, recur=blob)).data)
    assert [(s.month, s.day) for s in found] == [(1, 31), (2, 28), (3, 31)]
    leap = recur(0x200D, 2, 12, (29,), dt.date(2024, 2, 29), end=(0x2022, 2, None))
    found = starts(event_of(appointment(recurring=True, recur=leap)).data)
    assert [(s.year, s.month, s.day) for s in found] == [(2024, 2, 29), (2025, 2, 28)]
    # December always has a 31st: one BYMONTHDAY (Microsoft 365 takes no list of them)
    eve = event_of(
        appointment(recurring=True, recur=recur(0x200D, 2, 12, (31,), dt.date(2021, 12, 31)))
    )
    assert "BYMONTHDAY=31;" in eve.data.decode()


@pytest.mark.parametrize(
    ("blob", "reason"),
    [
        (recur(0x200C, 0xA, 1, (1,), dt.date(2021, 1, 1)), "Hijri"),
        (recur(0x200B, 1, 1, (0x2,), dt.date(2021, 8, 9), calendar=6), "not Gregorian"),
        (b"\x04\x30\x04\x30\x0b\x20", "cut short"),
    ],
)
def test_a_recurrence_it_cannot_decode_is_copied_as_its_first_occurrence_and_said(blob, reason):
    converted = event_of(appointment(recurring=True, recur=blob))
    assert starts(converted.data) == [dt.datetime(2021, 8, 9, 17, tzinfo=UTC)]
    assert "RRULE" not in converted.data.decode()
    [note] = converted.notes
    assert reason in note
    assert "first occurrence" in note


def test_an_event_keeps_its_fields_and_a_meeting_its_people_for_the_sync_to_park():
    item = appointment(
        location="Room 1",
        busy_status=0,
        reminder_set=True,
        reminder_delta=30,
        keywords=("Work", "Blue"),
        state_flags=1,
    )
    item.tagged.update(
        {
            mapi.BODY: "Agenda",
            mapi.SENSITIVITY: 2,
            mapi.IMPORTANCE: 2,
            mapi.SENT_REPRESENTING_SMTP: "ed@example.com",
            mapi.SENT_REPRESENTING_NAME: "Ed",
        }
    )
    organizer_row = {mapi.SMTP_ADDRESS: "ed@example.com", mapi.RECIPIENT_FLAGS: 3}
    attendee = {
        mapi.SMTP_ADDRESS: "ann@example.com",
        mapi.DISPLAY_NAME: "Ann",
        mapi.RECIPIENT_TYPE: 2,
        mapi.RECIPIENT_TRACK_STATUS: 3,
    }
    item = MapiItem(item.identifier, item.tagged, item.named, (organizer_row, attendee))
    event = icalendar.Calendar.from_ical(event_of(item).data).walk("VEVENT")[0]
    assert (str(event["LOCATION"]), str(event["DESCRIPTION"]), str(event["CLASS"])) == (
        "Room 1",
        "Agenda",
        "PRIVATE",
    )
    assert (str(event["TRANSP"]), event["PRIORITY"]) == ("TRANSPARENT", 1)
    assert [str(c) for c in event["CATEGORIES"].cats] == ["Work", "Blue"]
    assert event.walk("VALARM")[0]["TRIGGER"].dt == dt.timedelta(minutes=-30)
    assert str(event["ORGANIZER"]) == "mailto:ed@example.com"
    attendees = event["ATTENDEE"] if isinstance(event["ATTENDEE"], list) else [event["ATTENDEE"]]
    assert [(str(a), a.params["ROLE"], a.params["PARTSTAT"]) for a in attendees] == [
        ("mailto:ann@example.com", "OPT-PARTICIPANT", "ACCEPTED")
    ]
    assert event["DTSTART"].dt == dt.datetime(2021, 8, 9, 17, tzinfo=UTC)


def test_all_day_events_are_dates_and_the_same_item_gives_the_same_bytes():
    item = appointment(
        all_day=True,
        start_whole=dt.datetime(2021, 8, 14, 7, tzinfo=UTC),
        end_whole=dt.datetime(2021, 8, 17, 7, tzinfo=UTC),
    )
    event = icalendar.Calendar.from_ical(event_of(item).data).walk("VEVENT")[0]
    assert (event["DTSTART"].dt, event["DTEND"].dt) == (dt.date(2021, 8, 14), dt.date(2021, 8, 17))
    assert event_of(item).data == event_of(item).data
    assert event_of(item).uid.startswith("040000008200E000")


def test_an_appointment_without_a_start_is_unconvertible():
    with pytest.raises(UnconvertibleError, match="no start"):
        event_of(MapiItem("1", {mapi.SUBJECT: "x"}))


def test_a_contact_becomes_a_vcard_3_with_names_addresses_phones_and_dates():
    tagged = {
        mapi.DISPLAY_NAME: "Ann Example",
        mapi.GIVEN_NAME: "Ann",
        mapi.SURNAME: "Example",
        mapi.COMPANY: "Example; Inc",
        mapi.TITLE: "Engineer",
        mapi.BODY: "line 1\nline 2",
        0x3A08: "+1 555 0100",
        0x3A1C: "+1 555 0199",
        mapi.BIRTHDAY: dt.datetime(1980, 5, 31, 22, tzinfo=UTC),
        mapi.HOME_ADDRESS[0]: "1 Main St",
        mapi.HOME_ADDRESS[1]: "Springfield",
        mapi.SEARCH_KEY: bytes.fromhex("00112233"),
    }
    named = {
        mapi.EMAILS[0][0]: "ann@example.com",
        mapi.EMAILS[1][0]: "/o=EX/cn=ann",
        mapi.WORK_ADDRESS[1]: "Shelbyville",
        mapi.KEYWORDS: ("VIP",),
    }
    converted = contact_of(MapiItem("7", tagged, named))  # type: ignore[arg-type]
    card = vobject.readOne(converted.data.decode())
    assert card.version.value == "3.0"
    assert converted.uid == "pst-00112233" == card.uid.value
    assert (card.fn.value, card.n.value.family, card.n.value.given) == (
        "Ann Example",
        "Example",
        "Ann",
    )
    assert [e.value for e in card.email_list] == [
        "ann@example.com"
    ]  # the Exchange address is not mail
    assert sorted(t.value for t in card.tel_list) == ["+1 555 0100", "+1 555 0199"]
    assert card.org.value == ["Example; Inc"]
    assert card.bday.value == "1980-06-01"  # local midnight east of UTC
    assert card.note.value == "line 1\nline 2"
    assert sorted(a.value.city for a in card.adr_list) == ["Shelbyville", "Springfield"]
    assert card.categories.value == ["VIP"]


def test_a_contact_without_name_or_address_is_unconvertible():
    with pytest.raises(UnconvertibleError, match="no name"):
        contact_of(MapiItem("8", {mapi.BODY: "x"}))
    group = MapiItem("9", {mapi.MESSAGE_CLASS: "IPM.DistList", mapi.DISPLAY_NAME: "Team"})
    with pytest.raises(UnconvertibleError, match=r"a IPM.DistList item is not converted"):
        contact_of(group)


def test_a_task_becomes_a_vtodo_with_dates_status_percent_priority_and_completion():
    named = {
        mapi.TASK_START: dt.datetime(2021, 8, 9, 7, tzinfo=UTC),
        mapi.TASK_DUE: dt.datetime(2021, 8, 13, 7, tzinfo=UTC),
        mapi.TASK_STATUS: 2,
        mapi.PERCENT_COMPLETE: 1.0,
        mapi.TASK_COMPLETE: True,
        mapi.TASK_COMPLETED: dt.datetime(2021, 8, 12, 7, tzinfo=UTC),
    }
    tagged = {mapi.SUBJECT: "Report", mapi.IMPORTANCE: 2, mapi.SEARCH_KEY: b"\x01\x02"}
    todo = icalendar.Calendar.from_ical(task_of(MapiItem("9", tagged, named)).data).walk("VTODO")[0]  # type: ignore[arg-type]
    assert (todo["DTSTART"].dt, todo["DUE"].dt) == (dt.date(2021, 8, 9), dt.date(2021, 8, 13))
    assert (str(todo["STATUS"]), todo["PERCENT-COMPLETE"], todo["PRIORITY"]) == (
        "COMPLETED",
        100,
        1,
    )
    assert todo["COMPLETED"].dt == dt.datetime(2021, 8, 12, 7, tzinfo=UTC)
    waiting = task_of(
        MapiItem("10", {mapi.SUBJECT: "Wait"}, {mapi.TASK_STATUS: 3, mapi.PERCENT_COMPLETE: 0.25})
    )
    todo = icalendar.Calendar.from_ical(waiting.data).walk("VTODO")[0]
    assert (str(todo["STATUS"]), str(todo["X-MICROSOFT-TASKSTATUS"]), todo["PERCENT-COMPLETE"]) == (
        "NEEDS-ACTION",
        "WAITING",
        25,
    )
    assert waiting.uid == "pst-item-10"
