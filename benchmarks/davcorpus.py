"""The calendar and contacts corpus of the DAV benchmark: deterministic (seeded), generated lazily.

Each item comes from its own ``random.Random(f"{seed}:{kind}:{index}")`` (string seeds hash with
SHA-512, not Python's salted ``hash``), so item k is the same whatever else is generated and
100,000 items never sit in memory at once. Events: about one in ten is a recurring series (RRULE
daily, weekly, monthly or yearly, with COUNT or UNTIL, 1-3 EXDATEs and 1-3 overridden instances
as RECURRENCE-ID components in the same resource); time zones Europe/Paris, America/New_York,
Asia/Tokyo, Australia/Sydney (with their VTIMEZONE), UTC, or all-day dates; some VALARMs,
ORGANIZER/ATTENDEE lines, non-ASCII text, and one in 250 an ``ATTACH;ENCODING=BASE64`` of
20-100 KB. Contacts: vCard 3.0 (70 %) or 4.0 with a JPEG-like PHOTO of 5-30 KB, CATEGORIES and
several EMAIL, TEL and ADR lines. ``small=True`` leaves out attachments, alarms and attendees
(the memory scenario).
"""

from __future__ import annotations

import base64
import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

PRODID = "-//mailferry//davcorpus 1//EN"
STAMP = "20250301T120000Z"
# fmt: off
ZONES = {  # standard offset, daylight offset, names, first daylight and standard switch + rules
    "Europe/Paris": ("+0100", "+0200", "CET", "CEST", "19700329T020000", "3;BYDAY=-1SU", "19701025T030000", "10;BYDAY=-1SU"),
    "America/New_York": ("-0500", "-0400", "EST", "EDT", "19700308T020000", "3;BYDAY=2SU", "19701101T020000", "11;BYDAY=1SU"),
    "Australia/Sydney": ("+1000", "+1100", "AEST", "AEDT", "19701004T020000", "10;BYDAY=1SU", "19700405T030000", "4;BYDAY=1SU"),
}
# fmt: on
PLACES = ["Salle Émile-Zola", "Room 4.12", "Café de Flore", "会議室 B", "Zoom", "Müllerstraße 5"]
WORDS = "budget review sync planning retro lunch dentist yoga piano standup offsite Q3 roadmap"
FIRST = ["Anna", "Jérôme", "Søren", "María", "Yuki", "Olu", "Chloé", "Łukasz", "Priya", "Tom"]
LAST = ["Martin", "Müller", "García", "Tanaka", "Okafor", "Nguyen", "Dubois", "Kowalski", "Smith"]
# fmt: off
CITIES = [("Paris", "75011", "France"), ("Berlin", "10115", "Germany"), ("Tokyo", "100-0001", "Japan"),
          ("New York", "10001", "USA"), ("Lagos", "100001", "Nigeria")]
# fmt: on
CATEGORIES = ["Family", "Friends", "Work", "VIP", "Clients", "Sport", "School"]


@dataclass(frozen=True)
class Collection:
    name: str  # the path segment under the user's home
    kind: str  # "calendar" | "addressbook"


@dataclass(frozen=True)
class Resource:
    collection: str
    name: str  # the resource's file name (href segment)
    uid: str
    body: bytes


@dataclass(frozen=True)
class DavCorpus:
    events: int = 10_000
    recurring: int = 1_000
    contacts: int = 5_000
    calendars: int = 5
    address_books: int = 2
    seed: int = 2024
    small: bool = False

    def collections(self) -> list[Collection]:
        cals = [Collection(f"cal{i}", "calendar") for i in range(self.calendars)]
        books = [Collection(f"book{i}", "addressbook") for i in range(self.address_books)]
        return cals + (books if self.contacts else [])

    def resources(self) -> Iterator[Resource]:
        for i in range(self.events):
            # exactly `recurring` series, spread evenly over the events
            before, after = (
                (i * self.recurring) // self.events,
                ((i + 1) * self.recurring) // self.events,
            )
            yield event(self, i, recurring=before != after)
        for i in range(self.contacts):
            yield contact(self, i)

    @property
    def items(self) -> int:
        return self.events + self.contacts


# -- content lines ----------------------------------------------------------------------------


def fold(line: str) -> str:
    """RFC 5545 folding: at most 75 octets a line, never inside a UTF-8 sequence."""
    if len(line) <= 75 and line.isascii():
        return line + "\r\n"
    out, current, size = [], [], 0
    for char in line:
        width = len(char.encode())
        if size + width > (75 if not out else 74):
            out.append("".join(current))
            current, size = [], 0
        current.append(char)
        size += width
    out.append("".join(current))
    return "\r\n ".join(out) + "\r\n"


def text(value: str) -> str:
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S")


def blob(rnd: random.Random, size: int, magic: bytes, tail: bytes = b"") -> str:
    return base64.b64encode(magic + rnd.randbytes(size - len(magic) - len(tail)) + tail).decode()


def vtimezone(tzid: str) -> list[str]:
    if tzid == "Asia/Tokyo":
        parts = [
            "BEGIN:STANDARD",
            "TZOFFSETFROM:+0900",
            "TZOFFSETTO:+0900",
            "TZNAME:JST",
            "DTSTART:19700101T000000",
            "END:STANDARD",
        ]
        return ["BEGIN:VTIMEZONE", f"TZID:{tzid}", *parts, "END:VTIMEZONE"]
    std, dst, std_name, dst_name, dst_start, dst_rule, std_start, std_rule = ZONES[tzid]
    return [
        "BEGIN:VTIMEZONE",
        f"TZID:{tzid}",
        "BEGIN:DAYLIGHT",
        f"TZOFFSETFROM:{std}",
        f"TZOFFSETTO:{dst}",
        f"TZNAME:{dst_name}",
        f"DTSTART:{dst_start}",
        f"RRULE:FREQ=YEARLY;BYMONTH={dst_rule}",
        "END:DAYLIGHT",
        "BEGIN:STANDARD",
        f"TZOFFSETFROM:{dst}",
        f"TZOFFSETTO:{std}",
        f"TZNAME:{std_name}",
        f"DTSTART:{std_start}",
        f"RRULE:FREQ=YEARLY;BYMONTH={std_rule}",
        "END:STANDARD",
        "END:VTIMEZONE",
    ]


# -- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class When:
    tzid: str | None  # None: UTC; "DATE": all-day
    start: dt.datetime
    length: dt.timedelta

    def prop(self, name: str, moment: dt.datetime) -> str:
        if self.tzid == "DATE":
            return f"{name};VALUE=DATE:{moment:%Y%m%d}"
        if self.tzid is None:
            return f"{name}:{stamp(moment)}Z"
        return f"{name};TZID={self.tzid}:{stamp(moment)}"

    def until(self, last: dt.datetime) -> str:
        if self.tzid == "DATE":
            return f"{last:%Y%m%d}"
        zone = ZoneInfo(self.tzid) if self.tzid else dt.UTC
        return stamp(last.replace(tzinfo=zone).astimezone(dt.UTC)) + "Z"


def pick_when(rnd: random.Random) -> When:
    # naive on purpose: wall-clock time in the event's TZID (or a date, or UTC by "Z")
    day = dt.datetime(2019, 1, 1) + dt.timedelta(days=rnd.randrange(365 * 8))  # noqa: DTZ001
    day = day.replace(day=min(day.day, 28))  # monthly and yearly series exist every month
    tzid = rnd.choice(
        [
            "Europe/Paris",
            "Europe/Paris",
            "America/New_York",
            "Asia/Tokyo",
            "Australia/Sydney",
            None,
            None,
            "DATE",
        ]
    )
    if tzid == "DATE":
        return When(tzid, day, dt.timedelta(days=rnd.choice([1, 1, 1, 2, 3])))
    start = day.replace(hour=rnd.randrange(7, 20), minute=rnd.choice([0, 15, 30, 45]))
    return When(tzid, start, dt.timedelta(minutes=rnd.choice([15, 30, 45, 60, 90, 120, 480])))


def occurrences(rnd: random.Random, when: When) -> tuple[str, list[dt.datetime]]:
    """An RRULE and its occurrences (computed here: simple rules, day of month <= 28)."""
    start = when.start
    count = rnd.randrange(5, 60)
    freq = "YEARLY" if when.tzid == "DATE" else rnd.choice(["DAILY", "WEEKLY", "WEEKLY", "MONTHLY"])
    count = min(count, 20) if freq == "YEARLY" else count
    interval = rnd.choice([1, 1, 2]) if freq in {"DAILY", "WEEKLY"} else 1
    if freq == "MONTHLY":
        dates = [_add_months(start, k) for k in range(count)]
        rule = f"FREQ=MONTHLY;BYMONTHDAY={start.day}"
    elif freq == "YEARLY":
        dates = [start.replace(year=start.year + k) for k in range(count)]
        rule = "FREQ=YEARLY"
    else:
        step = dt.timedelta(days=interval * (7 if freq == "WEEKLY" else 1))
        dates = [start + k * step for k in range(count)]
        byday = f";BYDAY={['MO', 'TU', 'WE', 'TH', 'FR', 'SA', 'SU'][start.weekday()]}"
        rule = f"FREQ={freq};INTERVAL={interval}" + (byday if freq == "WEEKLY" else "")
    ending = f";COUNT={count}" if rnd.random() < 0.6 else f";UNTIL={when.until(dates[-1])}"
    return rule + ending, dates


def _add_months(moment: dt.datetime, months: int) -> dt.datetime:
    year, month = divmod(moment.month - 1 + months, 12)
    return moment.replace(year=moment.year + year, month=month + 1)


def people(rnd: random.Random, i: int) -> list[str]:
    organizer = f"ORGANIZER;CN={rnd.choice(FIRST)} {rnd.choice(LAST)}:mailto:org{i}@example.org"
    lines = [organizer]
    for k in range(rnd.randrange(1, 6)):
        partstat = rnd.choice(["ACCEPTED", "NEEDS-ACTION", "DECLINED", "TENTATIVE"])
        lines.append(
            f'ATTENDEE;CN="{rnd.choice(LAST)}, {rnd.choice(FIRST)}";ROLE=REQ-PARTICIPANT;'
            f"PARTSTAT={partstat};RSVP=TRUE:mailto:guest{i}-{k}@example.com"
        )
    return lines


def event(corpus: DavCorpus, i: int, *, recurring: bool) -> Resource:
    rnd = random.Random(f"{corpus.seed}:event:{i}")
    uid = f"{rnd.randbytes(8).hex()}-{i}@davcorpus.example"
    when = pick_when(rnd)
    summary = f"{rnd.choice(WORDS.split())} {rnd.choice(WORDS.split())} #{i}"
    head = [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{STAMP}",
        "CREATED:20190101T000000Z",
        when.prop("DTSTART", when.start),
        when.prop("DTEND", when.start + when.length),
        f"SUMMARY:{text(summary)}",
        "SEQUENCE:0",
    ]
    body = head[:]
    if rnd.random() < 0.5:
        body.append(f"LOCATION:{text(rnd.choice(PLACES))}")
    if rnd.random() < 0.4:
        agenda = "Agenda:\n- " + "\n- ".join(rnd.sample(WORDS.split(), 3))
        body.append(f"DESCRIPTION:{text(agenda)}")
    if rnd.random() < 0.3:
        body.append(f"CATEGORIES:{','.join(rnd.sample(CATEGORIES, 2))}")
    body.append("TRANSP:TRANSPARENT" if when.tzid == "DATE" else "STATUS:CONFIRMED")
    extra: list[str] = []
    if recurring:
        extra = recurrence(rnd, when, body, uid, i)
    if not corpus.small:
        if rnd.random() < 0.25:
            body += people(rnd, i)
        if rnd.random() < 0.35:
            body += [
                "BEGIN:VALARM",
                "ACTION:DISPLAY",
                "DESCRIPTION:Reminder",
                f"TRIGGER:-PT{rnd.choice([5, 10, 15, 30, 60])}M",
                "END:VALARM",
            ]
        if i % 250 == 7:
            size = rnd.randrange(20_000, 100_000)
            data = blob(rnd, size, b"%PDF-1.4\n")
            body.append(
                "ATTACH;FMTTYPE=application/pdf;ENCODING=BASE64;VALUE=BINARY;"
                f"X-FILENAME=minutes-{i}.pdf:{data}"
            )
    zones = [when.tzid] if when.tzid not in {None, "DATE"} else []
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN"]
    lines += [line for tz in zones for line in vtimezone(str(tz))]
    lines += [*body, "END:VEVENT", *extra, "END:VCALENDAR"]
    collection = f"cal{i % corpus.calendars}"
    return Resource(collection, f"ev{i:06d}.ics", uid, "".join(map(fold, lines)).encode())


def recurrence(rnd: random.Random, when: When, body: list[str], uid: str, i: int) -> list[str]:
    """Append RRULE and EXDATEs to the master ``body``; return the overridden instances."""
    rule, dates = occurrences(rnd, when)
    body.append(f"RRULE:{rule}")
    picked = rnd.sample(range(1, len(dates)), rnd.randrange(2, 7) if len(dates) > 7 else 2)
    excluded, moved = picked[: len(picked) // 2], picked[len(picked) // 2 :]
    if rnd.random() < 0.5:
        body += [when.prop("EXDATE", dates[k]) for k in excluded]
    else:
        values = ",".join(when.prop("EXDATE", dates[k]).split(":", 1)[1] for k in excluded)
        body.append(when.prop("EXDATE", dates[0]).split(":", 1)[0] + ":" + values)
    shift = dt.timedelta(days=1) if when.tzid == "DATE" else dt.timedelta(hours=rnd.randrange(1, 4))
    overrides = []
    for k in sorted(moved):
        start = dates[k] + shift
        overrides += [
            "BEGIN:VEVENT",
            f"UID:{uid}",
            f"DTSTAMP:{STAMP}",
            when.prop("RECURRENCE-ID", dates[k]),
            when.prop("DTSTART", start),
            when.prop("DTEND", start + when.length),
            f"SUMMARY:{text(f'moved occurrence {k} of #{i}')}",
            "SEQUENCE:1",
            "END:VEVENT",
        ]
    return overrides


# -- contacts ---------------------------------------------------------------------------------


def contact(corpus: DavCorpus, i: int) -> Resource:
    rnd = random.Random(f"{corpus.seed}:contact:{i}")
    uid = f"urn:uuid:{rnd.randbytes(16).hex()}"
    first, last = rnd.choice(FIRST), f"{rnd.choice(LAST)}-{i}"
    v4 = rnd.random() < 0.3
    lines = [
        "BEGIN:VCARD",
        f"VERSION:{'4.0' if v4 else '3.0'}",
        f"PRODID:{PRODID}",
        f"UID:{uid}",
        f"N:{last};{first};;;",
        f"FN:{first} {last}",
        f"ORG:{rnd.choice(LAST)} & Co;Sales",
        f"TITLE:{rnd.choice(['CEO', 'Engineer', 'Nurse', 'Teacher'])}",
    ]
    if v4:
        lines.append("KIND:individual")
    for kind in rnd.sample(["work", "home", "other"], rnd.randrange(1, 4)):
        address = f"{first}.{last}.{kind}@example.{kind[:3]}".lower()
        lines.append(
            f"EMAIL;TYPE={kind}:{address}"
            if v4
            else f"EMAIL;TYPE=INTERNET,{kind.upper()}:{address}"
        )
    for kind in rnd.sample(["cell", "work", "home", "fax"], rnd.randrange(1, 4)):
        number = f"+33 6 {rnd.randrange(10**7, 10**8)}"
        lines.append(
            f"TEL;VALUE=uri;TYPE={kind}:tel:{number.replace(' ', '-')}"
            if v4
            else f"TEL;TYPE={kind.upper()},VOICE:{number}"
        )
    for kind in rnd.sample(["home", "work"], rnd.randrange(1, 3)):
        city, code, country = rnd.choice(CITIES)
        street = (
            f"{rnd.randrange(1, 200)} {rnd.choice(['Rue Oberkampf', 'Hauptstraße', 'Main St'])}"
        )
        lines.append(f"ADR;TYPE={kind if v4 else kind.upper()}:;;{street};{city};;{code};{country}")
    lines.append(f"CATEGORIES:{','.join(rnd.sample(CATEGORIES, rnd.randrange(1, 4)))}")
    birthday = dt.date(1950, 1, 1) + dt.timedelta(days=rnd.randrange(365 * 55))
    lines.append(f"BDAY:{birthday:%Y%m%d}" if v4 else f"BDAY:{birthday:%Y-%m-%d}")
    if rnd.random() < 0.3:
        lines.append(f"NOTE:{text('Met at the conference; likes jazz.')}\\nCall after 6pm.")
    photo = blob(
        rnd, rnd.randrange(5_000, 30_000), b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", b"\xff\xd9"
    )
    lines.append(
        f"PHOTO:data:image/jpeg;base64,{photo}" if v4 else f"PHOTO;ENCODING=b;TYPE=JPEG:{photo}"
    )
    lines += [f"REV:{STAMP}", "END:VCARD"]
    collection = f"book{i % corpus.address_books}"
    return Resource(collection, f"ct{i:06d}.vcf", uid, "".join(map(fold, lines)).encode())
