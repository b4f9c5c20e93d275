"""Calendar and contact items for the DAV sync tests: what rule 2 of issue #13 names, one each."""

from __future__ import annotations

import base64

PARIS = (
    b"BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
    b"RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
    b"TZNAME:CET\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\n"
    b"RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\n"
    b"TZNAME:CEST\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
)


def calendar(*components: bytes, zone: bool = False) -> bytes:
    head = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//mailferry//tests//EN\r\n"
    return head + (PARIS if zone else b"") + b"".join(components) + b"END:VCALENDAR\r\n"


def vevent(uid: str, summary: str, *extra: bytes, start: bytes = b"20270110T090000") -> bytes:
    return (
        b"BEGIN:VEVENT\r\nUID:" + uid.encode() + b"\r\nDTSTAMP:20260101T000000Z\r\n"
        b"DTSTART;TZID=Europe/Paris:" + start + b"\r\nDURATION:PT1H\r\n"
        b"SUMMARY:" + summary.encode() + b"\r\n" + b"".join(extra) + b"END:VEVENT\r\n"
    )


def simple_event(uid: str, summary: str = "Meeting") -> bytes:
    return calendar(vevent(uid, summary), zone=True)


def series(uid: str) -> bytes:
    """A weekly series with an EXDATE, an alarm, and one moved occurrence in the same resource."""
    master = vevent(
        uid,
        "Weekly",
        b"RRULE:FREQ=WEEKLY;COUNT=10\r\n",
        b"EXDATE;TZID=Europe/Paris:20270124T090000\r\n",
        b"BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Soon\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\n",
    )
    moved = (
        b"BEGIN:VEVENT\r\nUID:" + uid.encode() + b"\r\nDTSTAMP:20260101T000000Z\r\n"
        b"RECURRENCE-ID;TZID=Europe/Paris:20270131T090000\r\n"
        b"DTSTART;TZID=Europe/Paris:20270131T140000\r\nDURATION:PT1H\r\n"
        b"SUMMARY:Weekly (moved)\r\nEND:VEVENT\r\n"
    )
    return calendar(master, moved, zone=True)


def all_day(uid: str) -> bytes:
    return calendar(
        b"BEGIN:VEVENT\r\nUID:" + uid.encode() + b"\r\nDTSTAMP:20260101T000000Z\r\n"
        b"DTSTART;VALUE=DATE:20270301\r\nDTEND;VALUE=DATE:20270302\r\nSUMMARY:Holiday\r\n"
        b"END:VEVENT\r\n"
    )


def floating(uid: str) -> bytes:
    return calendar(
        b"BEGIN:VEVENT\r\nUID:" + uid.encode() + b"\r\nDTSTAMP:20260101T000000Z\r\n"
        b"DTSTART:20270305T080000\r\nDTEND:20270305T083000\r\nSUMMARY:Run\r\nEND:VEVENT\r\n"
    )


def with_attachment(uid: str) -> bytes:
    blob = base64.b64encode(bytes(range(256)) * 40)
    return calendar(
        vevent(
            uid,
            "Has a file",
            b"ATTACH;ENCODING=BASE64;VALUE=BINARY;FMTTYPE=application/octet-stream:"
            + blob
            + b"\r\n",
        ),
        zone=True,
    )


def meeting(uid: str, organizer: str = "boss@example.org") -> bytes:
    return calendar(
        vevent(
            uid,
            "Planning",
            b"ORGANIZER;CN=Boss:mailto:" + organizer.encode() + b"\r\n",
            b"ATTENDEE;CN=Ann;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:ann@example.org\r\n",
            b"ATTENDEE;CN=Bob;PARTSTAT=ACCEPTED:mailto:bob@example.org\r\n",
            start=b"20280110T090000",
        ),
        zone=True,
    )


def todo(uid: str) -> bytes:
    return calendar(
        b"BEGIN:VTODO\r\nUID:" + uid.encode() + b"\r\nDTSTAMP:20260101T000000Z\r\n"
        b"SUMMARY:Pay the rent\r\nDUE;VALUE=DATE:20270401\r\nSTATUS:NEEDS-ACTION\r\nEND:VTODO\r\n"
    )


def journal(uid: str) -> bytes:
    return calendar(
        b"BEGIN:VJOURNAL\r\nUID:" + uid.encode() + b"\r\nDTSTAMP:20260101T000000Z\r\n"
        b"DTSTART;VALUE=DATE:20270402\r\nSUMMARY:Notes\r\nDESCRIPTION:It went well\r\n"
        b"END:VJOURNAL\r\n"
    )


def card(uid: str | None, name: str = "Ann Example", *, photo: bool = False) -> bytes:
    lines = [b"BEGIN:VCARD", b"VERSION:3.0"]
    if uid is not None:
        lines.append(b"UID:" + uid.encode())
    family, _, given = name.partition(" ")
    lines += [
        b"FN:" + name.encode(),
        b"N:" + given.encode() + b";" + family.encode() + b";;;",
        b"EMAIL;TYPE=INTERNET:" + name.replace(" ", ".").lower().encode() + b"@example.org",
        b"CATEGORIES:Friends,Work",
    ]
    if photo:
        jpeg = base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20 + b"\xff\xd9")
        lines.append(b"PHOTO;ENCODING=b;TYPE=JPEG:" + jpeg)
    lines.append(b"END:VCARD")
    return b"\r\n".join(lines) + b"\r\n"


def group(uid: str, members: list[str]) -> bytes:
    """An Apple-style contact group (vCard 3.0, X-ADDRESSBOOKSERVER-KIND:group)."""
    lines = [b"BEGIN:VCARD", b"VERSION:3.0", b"UID:" + uid.encode(), b"FN:Team", b"N:Team;;;;"]
    lines.append(b"X-ADDRESSBOOKSERVER-KIND:group")
    lines += [b"X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:" + m.encode() for m in members]
    lines.append(b"END:VCARD")
    return b"\r\n".join(lines) + b"\r\n"


def every_kind() -> dict[str, bytes]:
    """name -> data of one calendar item of each shape rule 2 names."""
    return {
        "simple": simple_event("simple-1@tests"),
        "series": series("series-1@tests"),
        "allday": all_day("allday-1@tests"),
        "floating": floating("floating-1@tests"),
        "attach": with_attachment("attach-1@tests"),
        "todo": todo("todo-1@tests"),
        "journal": journal("journal-1@tests"),
    }
