"""An Outlook appointment (its MAPI properties, ``domain/mapi.py``) as an iCalendar VEVENT.

What is converted ([MS-OXOCAL] 2.2.1 unless said): start and end (PidLidAppointmentStartWhole /
EndWhole, UTC; PidLidCommonStart / End else), all-day (PidLidAppointmentSubType: dates), the
subject, location (PidLidLocation), body (PidTagBody), organizer (PidTagSentRepresenting*) and
attendees (the recipient table: PidTagRecipientType 1 required, 2 optional, 3 resource;
PidTagRecipientTrackStatus as PARTSTAT; the organizer's own row, PidTagRecipientFlags 0x2, left
out) of a meeting (PidLidAppointmentStateFlags bit 0x1), busy status (PidLidBusyStatus: TRANSP
and X-MICROSOFT-CDO-BUSYSTATUS), a cancelled meeting (state flag 0x4: STATUS:CANCELLED), the
reminder ([MS-OXORMDR]: PidLidReminderSet, PidLidReminderDelta minutes before: a VALARM),
sensitivity (PidTagSensitivity: CLASS), categories (PidNameKeywords), importance (PRIORITY), and
the recurrence (``pstrecur``: RRULE, EXDATE, and a RECURRENCE-ID override per changed occurrence
with its times, subject and location), in the series' time zone
(PidLidAppointmentTimeZoneDefinitionRecur's key name, a Windows zone, as IANA).

The UID is what Outlook exports ([MS-OXCICAL] 2.1.3.1.1.20.26): the text after "vCal-Uid" in
PidLidCleanGlobalObjectId when it holds one, else that id in upper-case hex; an item without one
(a PST made by other tools) is known by its PidTagSearchKey, else by its PST identifier.

Items converted not quite as the PST holds them say so in ``Converted.notes``: a recurrence that
cannot be decoded (copied as its first occurrence), a series in a zone with no IANA name (its
occurrences follow UTC), a changed occurrence whose own description or attendees were not copied.
The same properties always give the same bytes (DTSTAMP is the item's last modification time):
the caller hashes them into an ETag, and a re-run reads an unchanged item as unchanged.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import icalendar

from mailferry.domain import mapi, pstrecur
from mailferry.domain.errors import UnconvertibleError
from mailferry.domain.mapi import MapiItem
from mailferry.domain.psttimezone import Zone, parse_zone

PRODID = "-//mailferry//PST//EN"
_BUSY = ("FREE", "TENTATIVE", "BUSY", "OOF", "WORKINGELSEWHERE")
_CLASS = ("PUBLIC", "PRIVATE", "PRIVATE", "CONFIDENTIAL")
_ROLE = {1: "REQ-PARTICIPANT", 2: "OPT-PARTICIPANT", 3: "NON-PARTICIPANT"}
_PARTSTAT = {2: "TENTATIVE", 3: "ACCEPTED", 4: "DECLINED"}
_PRIORITY = {0: 9, 2: 1}  # PidTagImportance low, high (normal: none)
_VCAL_UID = b"vCal-Uid\x01\x00\x00\x00"
MEETING, CANCELLED = 0x1, 0x4  # PidLidAppointmentStateFlags


@dataclass(frozen=True)
class Converted:
    uid: str
    data: bytes
    notes: tuple[str, ...] = ()


def calendar_uid(item: MapiItem) -> str:
    goid = item.binary(mapi.CLEAN_GLOBAL_OBJECT_ID) or item.binary(mapi.GLOBAL_OBJECT_ID)
    if goid:
        at = goid.find(_VCAL_UID)
        if at >= 0:
            text = goid[at + len(_VCAL_UID) :].split(b"\x00", 1)[0].decode("utf-8", "replace")
            if text.strip():
                return text.strip()
        return goid.hex().upper()
    return fallback_uid(item)


def fallback_uid(item: MapiItem) -> str:
    key = item.binary(mapi.SEARCH_KEY)
    return f"pst-{key.hex()}" if key else f"pst-item-{item.identifier}"


def event_of(item: MapiItem) -> Converted:
    """The appointment as one VCALENDAR; ``UnconvertibleError`` when it has no start."""
    item.expect("IPM.Appointment")
    start = item.time(mapi.START_WHOLE) or item.time(mapi.COMMON_START)
    end = item.time(mapi.END_WHOLE) or item.time(mapi.COMMON_END) or start
    if start is None or end is None:
        raise UnconvertibleError("the appointment has no start time (PidLidAppointmentStartWhole)")
    uid = calendar_uid(item)
    notes: list[str] = list(item.left_out())
    event = _base(item, uid)
    all_day = item.flag(mapi.ALL_DAY)
    extra: list[icalendar.Event] = []
    zone = None
    blob = item.binary(mapi.RECUR) if item.flag(mapi.RECURRING) else None
    series = None
    if blob:
        try:
            series = pstrecur.parse(blob)
        except UnconvertibleError as exc:
            notes.append(f"recurrence not converted ({exc}): copied as its first occurrence")
    if series is not None:
        extra, zone = _recurring(event, item, series, all_day, notes)
    else:
        _times(event, start, end, all_day)
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    if zone is not None:
        calendar.add_component(zone.component())
    calendar.add_component(event)
    for override in extra:
        calendar.add_component(override)
    return Converted(uid, calendar.to_ical(), tuple(notes))


def _base(item: MapiItem, uid: str) -> icalendar.Event:
    event = icalendar.Event()
    event.add("uid", uid)
    stamp = item.time(mapi.LAST_MODIFICATION_TIME) or item.time(mapi.CREATION_TIME)
    event.add("dtstamp", stamp or dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    if (created := item.time(mapi.CREATION_TIME)) is not None:
        event.add("created", created)
    if (modified := item.time(mapi.LAST_MODIFICATION_TIME)) is not None:
        event.add("last-modified", modified)
    for name, value in (
        ("summary", item.text(mapi.SUBJECT)),
        ("location", item.text(mapi.LOCATION)),
        ("description", item.text(mapi.BODY)),
    ):
        if value:
            event.add(name, value)
    _status(event, item)
    if categories := item.strings(mapi.KEYWORDS):
        event.add("categories", list(categories))
    if item.flag(mapi.REMINDER_SET):
        alarm = icalendar.Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", "Reminder")
        alarm.add("trigger", dt.timedelta(minutes=-(item.number(mapi.REMINDER_DELTA) or 0)))
        event.add_component(alarm)
    if (state := item.number(mapi.STATE_FLAGS) or 0) & MEETING:
        _meeting(event, item)
    if state & CANCELLED:
        event.add("status", "CANCELLED")
    return event


def _status(event: icalendar.Event, item: MapiItem) -> None:
    busy = item.number(mapi.BUSY_STATUS)
    if busy is not None and 0 <= busy < len(_BUSY):
        event.add("transp", "TRANSPARENT" if busy == 0 else "OPAQUE")
        event.add("x-microsoft-cdo-busystatus", _BUSY[busy])
    sensitivity = item.number(mapi.SENSITIVITY)
    if sensitivity is not None and 0 <= sensitivity < len(_CLASS):
        event.add("class", _CLASS[sensitivity])
    if (priority := _PRIORITY.get(item.number(mapi.IMPORTANCE) or 1)) is not None:
        event.add("priority", priority)


def _meeting(event: icalendar.Event, item: MapiItem) -> None:
    """ORGANIZER and ATTENDEE as they are: the collection sync decides how they are written
    (``--attendees``: SCHEDULE-AGENT=CLIENT or parked), so no server sends an invitation."""
    organizer = _address(
        item.text(mapi.SENT_REPRESENTING_SMTP),
        item.text(mapi.SENT_REPRESENTING_TYPE),
        item.text(mapi.SENT_REPRESENTING_ADDRESS),
    ) or item.text(mapi.SENDER_SMTP)
    if organizer:
        name = item.text(mapi.SENT_REPRESENTING_NAME) or item.text(mapi.SENDER_NAME)
        event.add("organizer", f"mailto:{organizer}", parameters={"CN": name} if name else {})
    for row in item.recipients:
        row_item = MapiItem("", row)
        if (row_item.number(mapi.RECIPIENT_FLAGS) or 0) & 0x2:
            continue  # the organizer's own row
        address = _address(
            row_item.text(mapi.SMTP_ADDRESS),
            row_item.text(mapi.ADDRESS_TYPE),
            row_item.text(mapi.EMAIL_ADDRESS),
        )
        if not address:
            continue
        params = {"ROLE": _ROLE.get(row_item.number(mapi.RECIPIENT_TYPE) or 1, "REQ-PARTICIPANT")}
        params["PARTSTAT"] = _PARTSTAT.get(
            row_item.number(mapi.RECIPIENT_TRACK_STATUS) or 0, "NEEDS-ACTION"
        )
        if (name := row_item.text(mapi.DISPLAY_NAME)) and name != address:
            params["CN"] = name
        event.add("attendee", f"mailto:{address}", parameters=params)


def _address(smtp: str | None, kind: str | None, address: str | None) -> str | None:
    if smtp:
        return smtp
    return address if address and (kind or "").upper() == "SMTP" else None


def _times(event: icalendar.Event, start: dt.datetime, end: dt.datetime, all_day: bool) -> None:
    if all_day:
        first, last = _day(start), _day(end)
        event.add("dtstart", first)
        event.add("dtend", max(last, first + dt.timedelta(days=1)))
    else:
        event.add("dtstart", start)
        event.add("dtend", max(end, start))


def _day(moment: dt.datetime) -> dt.date:
    """An all-day boundary: local midnight in UTC; the nearest midnight is the local date for
    every zone within 12 hours of UTC, whichever the PST's zone was."""
    return (moment + dt.timedelta(hours=12)).date()


def zone_of(item: MapiItem) -> Zone | None:
    """The series' zone as the PST defines it (PidLidAppointmentTimeZoneDefinitionRecur, else
    ...StartDisplay; ``psttimezone``), or None."""
    for key in (mapi.TZ_DEFINITION_RECUR, mapi.TZ_DEFINITION_START):
        blob = item.binary(key)
        if blob:
            try:
                return parse_zone(blob)
            except UnconvertibleError:
                continue
    return None


class _Clock:
    """How the series' local wall times are written: dates (all-day), wall times with the zone's
    TZID, or, the zone unknown, UTC instants shifted as the first occurrence was."""

    def __init__(self, item: MapiItem, series: pstrecur.Recurrence, all_day: bool) -> None:
        self.all_day = all_day
        self.zone = None if all_day else zone_of(item)
        self.tz = self.zone.component().to_tz(lookup_tzid=False) if self.zone else None
        first = item.time(mapi.START_WHOLE) or series.start.replace(tzinfo=dt.UTC)
        self.shift = first - series.start.replace(tzinfo=dt.UTC)

    def value(self, moment: dt.datetime) -> dt.datetime | dt.date:
        if self.all_day:
            return moment.date()
        if self.zone is None:
            return (moment + self.shift).replace(tzinfo=dt.UTC)
        return moment  # a wall time of the zone: written with its TZID

    def put(self, component: icalendar.cal.Component, name: str, moment: dt.datetime) -> None:
        params = {"TZID": self.zone.tzid} if self.zone is not None else {}
        component.add(name, self.value(moment), parameters=params)

    def until(self, moment: dt.datetime) -> dt.datetime | dt.date:
        """RFC 5545 3.3.10: UNTIL is UTC when DTSTART has a zone, a date when it is one."""
        value = self.value(moment)
        if not isinstance(value, dt.datetime):
            return value
        return value.replace(tzinfo=self.tz).astimezone(dt.UTC) if self.tz else value


def _recurring(
    event: icalendar.Event,
    item: MapiItem,
    series: pstrecur.Recurrence,
    all_day: bool,
    notes: list[str],
) -> tuple[list[icalendar.Event], Zone | None]:
    """DTSTART/DTEND/RRULE/EXDATE on ``event``; the changed occurrences as overrides, and the
    zone its times are in (None: UTC or dates)."""
    clock = _Clock(item, series, all_day)
    if clock.zone is None and not all_day:
        notes.append("time zone unknown: the occurrences follow UTC")
    midnight = series.start.replace(hour=0, minute=0)
    length = dt.timedelta(minutes=series.end_offset) - (series.start - midnight)
    if length < dt.timedelta(0):
        length += dt.timedelta(days=1)
    clock.put(event, "dtstart", series.start)
    if all_day:
        event.add("dtend", series.start.date() + max(length, dt.timedelta(days=1)))
    else:
        clock.put(event, "dtend", series.start + length)
    rule = dict(series.rule)
    if series.until is not None:
        rule["UNTIL"] = clock.until(series.until)
    event.add("rrule", rule)
    for gone in series.deleted:
        clock.put(event, "exdate", gone)
    overrides = []
    for change in series.changes:
        override = _override(event, change, notes)
        clock.put(override, "recurrence-id", change.original)
        clock.put(override, "dtstart", change.start)
        clock.put(override, "dtend", change.end)
        overrides.append(override)
    return overrides, clock.zone


def _override(
    master: icalendar.Event, change: pstrecur.Change, notes: list[str]
) -> icalendar.Event:
    """A changed occurrence: the series' fields, its own subject and location (times: caller)."""
    override = icalendar.Event()
    for name in ("uid", "dtstamp", "summary", "location", "description", "class", "transp"):
        if name in master:
            override[name] = master[name]
    if change.subject is not None:
        override["summary"] = icalendar.vText(change.subject)
    if change.location is not None:
        override["location"] = icalendar.vText(change.location)
    if change.body_changed:
        notes.append(
            f"the occurrence of {change.original:%Y-%m-%d} has its own description, not copied"
        )
    return override
