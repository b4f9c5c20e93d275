"""The MAPI properties of one PST item as plain Python values (``domain.mapi.MapiItem``).

libpff hands out each property as a tag and raw data; a named property (tags 0x8000 and up:
everything calendar, contact and task specific, ``PidLid*``) is numbered per file, and pypff does
not say which name a number stands for. The file's name-to-id map (``pypff.file.name_to_id_map``,
[MS-PST] 2.4.7) does: its GUID stream (0x0002, 16 bytes a GUID), entry stream (0x0003, 8 bytes an
entry: the LID or string offset, then a 16-bit field whose bit 0 says "string" and bits 1..15 the
GUID index -- 1 PS_MAPI, 2 PS_PUBLIC_STRINGS, 3.. the GUID stream -- then the 16-bit property
index: tag 0x8000 + index) and string stream (0x0004: a 32-bit length, then UTF-16LE).
"""

from __future__ import annotations

import datetime as dt
import struct
import uuid
from typing import Any

from mailferry.domain.mapi import NAMED, PS_MAPI, PS_PUBLIC_STRINGS, MapiItem, NamedKey, Value

# PT_* value types ([MS-OXCDATA] 2.11.1)
_INT16, _INT32, _FLOAT, _DOUBLE, _BOOL, _INT64 = 0x02, 0x03, 0x04, 0x05, 0x0B, 0x14
_STRING8, _UNICODE, _TIME, _BINARY = 0x1E, 0x1F, 0x40, 0x102
_MV_STRING8, _MV_UNICODE = 0x101E, 0x101F
NAMED_FROM = 0x8000  # tags from here on are named properties (numbered per file)


def named_map(pff: Any) -> dict[int, NamedKey]:
    """Tag (0x8000 + index) -> (property set GUID, LID or name), from the file's map."""
    try:
        item = pff.name_to_id_map
        entries = {e.entry_type: e.data for e in item.get_record_set(0).entries}
    except (OSError, AttributeError):
        return {}
    guids_raw, table, strings = (entries.get(t) or b"" for t in (0x0002, 0x0003, 0x0004))
    guids = [
        str(uuid.UUID(bytes_le=guids_raw[i : i + 16])) for i in range(0, len(guids_raw) - 15, 16)
    ]
    found: dict[int, NamedKey] = {}
    for offset in range(0, len(table) - 7, 8):
        ident, field, index = struct.unpack_from("<IHH", table, offset)
        guid_index = field >> 1
        if guid_index == 1:
            guid = PS_MAPI
        elif guid_index == 2:
            guid = PS_PUBLIC_STRINGS
        elif 0 <= guid_index - 3 < len(guids):
            guid = guids[guid_index - 3]
        else:
            continue
        name: int | str = ident
        if field & 1:
            (size,) = (
                struct.unpack_from("<I", strings, ident) if ident + 4 <= len(strings) else (0,)
            )
            name = strings[ident + 4 : ident + 4 + size].decode("utf-16-le", "replace")
        found[0x8000 + index] = NamedKey(guid, name)
    return found


def mapi_item(item: Any, names: dict[int, NamedKey]) -> MapiItem:
    """The item's properties, its recipients' and its subject (libpff strips the prefix bytes)."""
    tagged: dict[int, Value] = {}
    named: dict[NamedKey, Value] = {}
    for index in range(item.number_of_record_sets):
        for entry in item.get_record_set(index).entries:
            tag = int(entry.entry_type)
            key = names.get(tag) if tag >= NAMED_FROM else None
            if tag >= NAMED_FROM and key not in NAMED:
                continue  # a named property no conversion reads: its data is not read
            value = _value(entry)
            if value is None:
                continue
            if key is not None:
                named.setdefault(key, value)
            else:
                tagged.setdefault(tag, value)
        break  # the first record set is the item; others are per-recipient or per-attachment
    try:
        subject = item.subject
    except OSError:
        subject = None
    if subject:
        tagged[0x0037] = str(subject).rstrip("\x00")
    try:
        attachments = int(item.number_of_attachments)
    except (OSError, AttributeError):
        attachments = 0
    return MapiItem(str(item.identifier), tagged, named, tuple(_recipients(item)), attachments)


def _recipients(item: Any) -> list[dict[int, Value]]:
    try:
        table = item.recipients
    except (OSError, AttributeError):
        return []
    if table is None:
        return []
    rows = []
    for index in range(table.number_of_record_sets):
        row: dict[int, Value] = {}
        for entry in table.get_record_set(index).entries:
            value = _value(entry)
            if value is not None:
                row.setdefault(int(entry.entry_type), value)
        rows.append(row)
    return rows


def _value(entry: Any) -> Value | None:  # noqa: PLR0911 - one return per value type
    """A libpff entry's value, by its PT_ type; None for a type not used here or unreadable."""
    try:
        kind, data = int(entry.value_type), entry.data
        if data is None:
            return None
        if kind in (_INT16, _INT32, _INT64):
            return int(entry.data_as_integer)
        if kind == _BOOL:
            return bool(entry.data_as_boolean)
        if kind in (_FLOAT, _DOUBLE):
            return float(entry.data_as_floating_point)
        if kind in (_STRING8, _UNICODE):
            text = entry.data_as_string
            return str(text).rstrip("\x00") if text is not None else None
        if kind == _TIME:
            when = entry.data_as_datetime
            return when.replace(tzinfo=dt.UTC) if isinstance(when, dt.datetime) else None
        if kind == _BINARY:
            return bytes(data)
        if kind in (_MV_STRING8, _MV_UNICODE):
            return _strings(bytes(data), "utf-16-le" if kind == _MV_UNICODE else "cp1252")
    except (OSError, TypeError, ValueError, OverflowError):
        return None
    return None


def _strings(data: bytes, codec: str) -> tuple[str, ...]:
    """A multi-valued string property: a count, the offsets, then the strings ([MS-PST] 2.3.3.4.2)."""
    if len(data) < 4:
        return ()
    (count,) = struct.unpack_from("<I", data)
    if count * 4 + 4 > len(data):
        return ()
    offsets = [*struct.unpack_from(f"<{count}I", data, 4), len(data)]
    return tuple(
        data[offsets[i] : offsets[i + 1]].decode(codec, "replace").rstrip("\x00")
        for i in range(count)
    )
