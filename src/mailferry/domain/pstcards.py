"""Outlook contacts ([MS-OXOCNTC]) as vCard 3.0 and tasks ([MS-OXOTASK]) as iCalendar VTODOs,
from their MAPI properties (``domain/mapi.py``; IDs and sets are listed there).

Contact: N and FN (PidTagSurname, GivenName, MiddleName, DisplayNamePrefix, Generation;
PidTagDisplayName, else PidLidFileUnder), NICKNAME, EMAIL (PidLidEmail1..3EmailAddress, SMTP
ones), TEL (the PidTag*TelephoneNumber and fax numbers with their TYPE), ADR (home: PidTagHome*,
work: PidLidWorkAddress*, other: PidTagOther*), ORG and TITLE (PidTagCompanyName,
DepartmentName, Title), BDAY (PidTagBirthday), URL, NOTE (PidTagBody), CATEGORIES
(PidNameKeywords), PHOTO (the attachment PidTagAttachmentContactPhoto marks). A personal
distribution list (IPM.DistList, [MS-OXOCNTC] 2.2.2) is an Apple-style contact group (vCard 3.0:
X-ADDRESSBOOKSERVER-KIND:group, as iCloud, Nextcloud and SOGo read it): its members, from their
one-off entries (PidLidDistributionListOneOffMembers, [MS-OXCDATA] 2.2.5.1), are
X-ADDRESSBOOKSERVER-MEMBER:urn:uuid:<UID> when a contact of the same folder has that address,
else mailto:<address> (RFC 6350 6.6.5's form; the member's display name is then said in the
notes as not kept). Task: SUMMARY, DESCRIPTION, DTSTART/DUE (PidLidTaskStartDate/DueDate: dates,
as Outlook shows them), STATUS (PidLidTaskStatus: NEEDS-ACTION, IN-PROCESS, COMPLETED; waiting
and deferred have no iCalendar status: NEEDS-ACTION with X-MICROSOFT-TASKSTATUS), PERCENT-COMPLETE
(PidLidPercentComplete x 100), COMPLETED (PidLidTaskDateCompleted), PRIORITY (PidTagImportance),
CLASS, CATEGORIES. UIDs: PidTagSearchKey, else the PST identifier (``pstcalendar.fallback_uid``).
"""

from __future__ import annotations

import base64
import datetime as dt
import struct
from collections.abc import Callable

import icalendar

from mailferry.domain import mapi
from mailferry.domain.contentlines import fold
from mailferry.domain.errors import UnconvertibleError
from mailferry.domain.mapi import MapiItem
from mailferry.domain.pstcalendar import PRODID, Converted, fallback_uid

_TASK_STATUS = ("NEEDS-ACTION", "IN-PROCESS", "COMPLETED", "NEEDS-ACTION", "NEEDS-ACTION")
_TASK_X = {3: "WAITING", 4: "DEFERRED"}
_CLASS = ("PUBLIC", "PRIVATE", "PRIVATE", "CONFIDENTIAL")
_PRIORITY = {0: 9, 2: 1}
_PHOTO_TYPES = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG", "PNG"), (b"GIF8", "GIF"), (b"BM", "BMP"))
ONE_OFF_PROVIDER = bytes.fromhex("812b1fa4bea310199d6e00dd010f5402")  # [MS-OXCDATA] 2.2.5.1
ONE_OFF_UNICODE = 0x8000  # MAPI_ONE_OFF_UNICODE: the strings are UTF-16LE


def _escape(value: str) -> str:
    """RFC 6350 3.4 / RFC 2426 4: backslash, comma, semicolon and newlines in a text value."""
    text = value.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def contact_of(item: MapiItem) -> Converted:
    """The contact as a vCard 3.0 (``UnconvertibleError`` when it has no name and no address)."""
    item.expect("IPM.Contact")
    uid = fallback_uid(item)
    keys = (mapi.SURNAME, mapi.GIVEN_NAME, mapi.MIDDLE_NAME, mapi.NAME_PREFIX, mapi.GENERATION)
    names = [item.text(key) or "" for key in keys]
    emails = [e for key, _ in mapi.EMAILS if (e := item.text(key)) and "@" in e]
    full = (
        item.text(mapi.DISPLAY_NAME)
        or item.text(mapi.FILE_UNDER)
        or " ".join(n for n in names[1::-1] if n)
        or (emails[0] if emails else None)
    )
    if not full:
        raise UnconvertibleError("the contact has no name and no e-mail address")
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"UID:{_escape(uid)}", f"FN:{_escape(full)}"]
    lines.append("N:" + ";".join(_escape(n) for n in names))
    lines += [f"EMAIL;TYPE=INTERNET{',PREF' if i == 0 else ''}:{e}" for i, e in enumerate(emails)]
    lines += [f"TEL;TYPE={kind}:{_escape(n)}" for tag, kind in mapi.PHONES if (n := item.text(tag))]
    lines += _addresses(item) + _work(item) + _other(item) + _photo(item)
    lines.append("END:VCARD")
    return Converted(uid, _card(lines), item.left_out())


def _card(lines: list[str]) -> bytes:
    """Lines over 75 octets folded (RFC 2425 5.8.1), never inside a UTF-8 sequence."""
    return b"".join(fold(line.encode(), b"\r\n") for line in lines)


def _photo(item: MapiItem) -> list[str]:
    if not item.photo:
        return []
    kind = next(
        (f";TYPE={name}" for magic, name in _PHOTO_TYPES if item.photo.startswith(magic)), ""
    )
    return [f"PHOTO;ENCODING=b{kind}:{base64.b64encode(item.photo).decode()}"]


def group_of(item: MapiItem, contact_uid: Callable[[str], str | None]) -> Converted:
    """The distribution list as a contact group; ``contact_uid`` gives the UID of the folder's
    contact with an address, if there is one (``UnconvertibleError`` for a list without a name,
    or whose members only a PidLidDistributionListStream holds that does not add up)."""
    item.expect("IPM.DistList")
    name = item.text(mapi.LIST_NAME) or item.text(mapi.DISPLAY_NAME) or item.text(mapi.SUBJECT)
    if not name:
        raise UnconvertibleError("the distribution list has no name")
    entries, unlisted, notes = _list_entries(item)
    uid = fallback_uid(item)
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"UID:{_escape(uid)}", f"FN:{_escape(name)}"]
    lines += [f"N:{_escape(name)};;;;", "X-ADDRESSBOOKSERVER-KIND:group"]
    members, said = _members(entries, contact_uid, item.codec or "cp1252")
    lines += members
    notes += said
    if unlisted > 0:
        notes.append(f"{unlisted} member(s) without a one-off entry not copied")
    lines += _other(item)
    lines.append("END:VCARD")
    return Converted(uid, _card(lines), (*item.left_out(), *notes))


def _list_entries(item: MapiItem) -> tuple[tuple[bytes, ...], int, list[str]]:
    """The list's one-off entries, how many members have none, and a note: from its
    PidLidDistributionListStream where it has one that adds up (the other two properties SHOULD
    then be ignored, [MS-OXOCNTC] 2.2.2.2.4), else from PidLidDistributionListOneOffMembers."""
    entries = item.binaries(mapi.LIST_ONE_OFFS)
    unlisted = len(item.binaries(mapi.LIST_MEMBERS)) - len(entries)
    if not (stream := item.binary(mapi.LIST_STREAM)):
        return entries, unlisted, []
    if (read := stream_entries(stream)) is not None:
        return (*read, [])
    if not entries:
        raise UnconvertibleError(
            "the list's members are kept in a PidLidDistributionListStream that does not add up"
        )
    said = "its PidLidDistributionListStream does not add up: members from its one-off list"
    return entries, unlisted, [said]


def stream_entries(stream: bytes) -> tuple[tuple[bytes, ...], int] | None:
    """The one-off entries a PidLidDistributionListStream holds, and how many of its members have
    none; None where it does not add up. [MS-OXOCNTC] 2.2.2.2.4: StreamVersion 1 (16 bits), a
    reserved 16-bit field, BuildVersion, DistListStreamFlags, CountOfEntries, TotalEntryIDSize,
    TotalOneOffSize, TotalExtraSize (32 bits each), then per member (2.2.2.2.4.1) its EntryID, its
    one-off EntryID and extra data, each after its 32-bit size, then two terminators. The totals
    are checked against the members read (with or without their size fields: the text does not
    say which it counts)."""
    if len(stream) < _STREAM_HEAD.size:
        return None
    version, _, _, _, count, ids, one_offs, _ = _STREAM_HEAD.unpack_from(stream)
    at, found, sizes = _STREAM_HEAD.size, [], [0, 0]
    if version != 1 or count > len(stream):
        return None
    for _ in range(count):
        fields = []
        for _field in range(3):  # EntryID, one-off EntryID, extra data
            if at + 4 > len(stream):
                return None
            (size,) = struct.unpack_from("<I", stream, at)
            fields.append(stream[at + 4 : at + 4 + size])
            at += 4 + size
        if at > len(stream):
            return None
        sizes[0], sizes[1] = sizes[0] + len(fields[0]), sizes[1] + len(fields[1])
        found.append(fields[1])
    if ids not in (sizes[0], sizes[0] + 4 * count) or one_offs not in (
        sizes[1],
        sizes[1] + 4 * count,
    ):
        return None
    return tuple(e for e in found if e), sum(1 for e in found if not e)


_STREAM_HEAD = struct.Struct("<HHIIIIII")


def _members(
    entries: tuple[bytes, ...], contact_uid: Callable[[str], str | None], codec: str
) -> tuple[list[str], list[str]]:
    """The group's member lines, and what the notes say of members not kept as they were
    (``codec``: the list's code page, for entries that are not Unicode)."""
    lines, notes = [], []
    for entry in entries:
        member = one_off(entry, codec)
        if member is None or member[1].upper() != "SMTP" or "@" not in member[2]:
            shown = f"{member[0]!r} ({member[1]} address)" if member else "(unreadable entry)"
            notes.append(f"member {shown} not copied: not an internet address")
            continue
        name, _kind, address = member
        found = contact_uid(address)
        lines.append(
            f"X-ADDRESSBOOKSERVER-MEMBER:{f'urn:uuid:{found}' if found else f'mailto:{address}'}"
        )
        if found is None:
            notes.append(f"member {name!r} kept as {address} (not a contact of the folder)")
    return lines, notes


def one_off(entry: bytes, codec: str = "cp1252") -> tuple[str, str, str] | None:
    """A One-Off EntryID's display name, address type and address ([MS-OXCDATA] 2.2.5.1: flags,
    the one-off provider's UID, version, a 16-bit field, then three NUL-ended strings, UTF-16
    where the field says so, else 8-bit strings, read in ``codec``: the item's code page)."""
    if len(entry) < 24 or entry[4:20] != ONE_OFF_PROVIDER:
        return None
    (bits,) = struct.unpack_from("<H", entry, 22)
    text = entry[24:].decode("utf-16-le" if bits & ONE_OFF_UNICODE else codec, "replace")
    texts = text.split("\x00")
    return (texts[0], texts[1], texts[2].strip()) if len(texts) >= 3 else None


def _addresses(item: MapiItem) -> list[str]:
    lines = []
    for kind, keys in (
        ("HOME", mapi.HOME_ADDRESS),
        ("WORK", mapi.WORK_ADDRESS),
        ("OTHER", mapi.OTHER_ADDRESS),
    ):
        parts = [item.text(k) or "" for k in keys]
        if any(parts):
            lines.append(f"ADR;TYPE={kind}:;;" + ";".join(_escape(p) for p in parts))
    return lines


def _work(item: MapiItem) -> list[str]:
    lines = []
    company, department = item.text(mapi.COMPANY), item.text(mapi.DEPARTMENT)
    if company or department:
        parts = [company or ""] + ([department] if department else [])
        lines.append("ORG:" + ";".join(_escape(p) for p in parts))
    if title := item.text(mapi.TITLE):
        lines.append(f"TITLE:{_escape(title)}")
    if url := item.text(mapi.BUSINESS_HOME_PAGE) or item.text(mapi.HTML_PAGE):
        lines.append(f"URL:{url}")
    return lines


def _other(item: MapiItem) -> list[str]:
    """Nickname, birthday, notes, categories, revision: each only when the PST has it."""
    found = {
        "NICKNAME": _escape(item.text(mapi.NICKNAME) or ""),
        "NOTE": _escape(item.text(mapi.BODY) or ""),
        "CATEGORIES": ",".join(_escape(c) for c in item.strings(mapi.KEYWORDS)),
    }
    lines = [f"{name}:{value}" for name, value in found.items() if value]
    if (birthday := item.time(mapi.BIRTHDAY)) is not None:
        lines.append(f"BDAY;VALUE=DATE:{_day(birthday):%Y-%m-%d}")
    if (modified := item.time(mapi.LAST_MODIFICATION_TIME)) is not None:
        lines.append(f"REV:{modified.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}")
    return lines


def _day(moment: dt.datetime) -> dt.date:
    """A date Outlook keeps as local midnight in UTC: the nearest midnight's date."""
    return (moment + dt.timedelta(hours=12)).date()


def task_of(item: MapiItem) -> Converted:
    """The task as one VCALENDAR holding a VTODO."""
    item.expect("IPM.Task")
    uid = fallback_uid(item)
    summary, body = item.text(mapi.SUBJECT), item.text(mapi.BODY)
    if summary is None and body is None:
        raise UnconvertibleError("the task has neither a subject nor a body")
    todo = icalendar.Todo()
    todo.add("uid", uid)
    stamp = item.time(mapi.LAST_MODIFICATION_TIME) or item.time(mapi.CREATION_TIME)
    todo.add("dtstamp", stamp or dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    for name, value in (("summary", summary), ("description", body)):
        if value:
            todo.add(name, value)
    start, due = item.time(mapi.TASK_START), item.time(mapi.TASK_DUE)
    if start is not None:
        todo.add("dtstart", _day(start))
    if due is not None:
        todo.add("due", max(_day(due), _day(start)) if start is not None else _day(due))
    _progress(todo, item)
    if (priority := _PRIORITY.get(item.number(mapi.IMPORTANCE) or 1)) is not None:
        todo.add("priority", priority)
    sensitivity = item.number(mapi.SENSITIVITY)
    if sensitivity is not None and 0 <= sensitivity < len(_CLASS):
        todo.add("class", _CLASS[sensitivity])
    if categories := item.strings(mapi.KEYWORDS):
        todo.add("categories", list(categories))
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add_component(todo)
    return Converted(uid, calendar.to_ical(), item.left_out())


def _progress(todo: icalendar.Todo, item: MapiItem) -> None:
    """STATUS (with Outlook's own word where iCalendar has none), PERCENT-COMPLETE, COMPLETED."""
    status = 2 if item.flag(mapi.TASK_COMPLETE) else item.number(mapi.TASK_STATUS)
    if status is not None and 0 <= status < len(_TASK_STATUS):
        todo.add("status", _TASK_STATUS[status])
        if status in _TASK_X:
            todo.add("x-microsoft-taskstatus", _TASK_X[status])
    percent = item.real(mapi.PERCENT_COMPLETE)
    if percent is not None:
        todo.add("percent-complete", round(min(max(percent, 0.0), 1.0) * 100))
    if (completed := item.time(mapi.TASK_COMPLETED)) is not None:
        todo.add("completed", completed)
