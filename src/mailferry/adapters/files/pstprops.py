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
import itertools
import struct
import uuid
from collections.abc import Callable
from typing import Any

from mailferry.adapters.files import pstcodepage
from mailferry.domain import rtf
from mailferry.domain.mapi import (
    BODY,
    MESSAGE_CLASS,
    NAMED,
    PS_MAPI,
    PS_PUBLIC_STRINGS,
    MapiItem,
    NamedKey,
    Value,
)

# PT_* value types ([MS-OXCDATA] 2.11.1)
_INT16, _INT32, _FLOAT, _DOUBLE, _BOOL, _INT64 = 0x02, 0x03, 0x04, 0x05, 0x0B, 0x14
_STRING8, _UNICODE, _TIME, _BINARY = 0x1E, 0x1F, 0x40, 0x102
_MV_STRING8, _MV_UNICODE, _MV_BINARY = 0x101E, 0x101F, 0x1102
NAMED_FROM = 0x8000  # tags from here on are named properties (numbered per file)
CONTACT_PHOTO = 0x7FFF  # PidTagAttachmentContactPhoto ([MS-OXOCNTC] 2.2.1.8): the attachment is it
PHOTO_LIMIT = 1 << 20  # bytes: a bigger "photo" is left out as an attachment (said in the notes)


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


def mapi_item(item: Any, names: dict[int, NamedKey], *, extras: bool = True) -> MapiItem:
    """The item's properties, its recipients' and its subject (libpff strips the prefix bytes);
    with ``extras``, also a body kept only as RTF and a contact's photo (each read from data of
    its own: left out where only the properties are wanted)."""
    tagged, named, codec = _properties(item, names)
    try:
        subject = item.subject  # a plain pypff.item (IPM.AbchPerson, ...) has none
    except (OSError, AttributeError):
        subject = None
    if isinstance(ours := tagged.get(0x0037), str) and codec is not None:
        subject = ours[2:] if ours.startswith("\x01") else ours  # the prefix marker, as libpff
    if subject:
        tagged[0x0037] = str(subject).rstrip("\x00")
    if extras and BODY not in tagged and (rendered := rtf_body(item, html=False)) is not None:
        tagged[BODY] = rendered.text  # a note or description an OST keeps only as RTF
    try:
        attachments = int(item.number_of_attachments)
    except (OSError, AttributeError):
        attachments = 0
    photo = None
    if (
        extras
        and attachments
        and str(tagged.get(MESSAGE_CLASS, "")).upper().startswith("IPM.CONTACT")
    ):
        photo = _photo(item, attachments)
    return MapiItem(
        str(item.identifier),
        tagged,
        named,
        tuple(_recipients(item, codec)),
        attachments - (photo is not None),
        photo,
        codec,
    )


def _properties(
    item: Any, names: dict[int, NamedKey]
) -> tuple[dict[int, Value], dict[NamedKey, Value], str | None]:
    """The first record set's tagged and named properties (the others are per recipient or per
    attachment); named properties no conversion reads are not read. And the codec of the code
    page the item declares for its non-Unicode strings (``pstcodepage``), which they are read in."""
    tagged: dict[int, Value] = {}
    named: dict[NamedKey, Value] = {}
    codec = None
    for index in range(item.number_of_record_sets):
        entries = [(int(entry.entry_type), entry) for entry in item.get_record_set(index).entries]
        codec = pstcodepage.declared(dict(entries))  # each tag read from libpff once
        for tag, entry in entries:
            key = names.get(tag) if tag >= NAMED_FROM else None
            if tag >= NAMED_FROM and key not in NAMED:
                continue  # a named property no conversion reads: its data is not read
            value = _value(entry, codec)
            if value is None:
                continue
            if key is not None:
                named.setdefault(key, value)
            else:
                tagged.setdefault(tag, value)
        break
    return tagged, named, codec


def rtf_body(item: Any, *, html: bool = True) -> rtf.Body | None:
    """The item's RTF body read as text (``domain/rtf.py``), when it has one: Outlook's "Rich
    Text" mail and many OST items keep no other."""
    try:
        data = item.rtf_body
    except (OSError, AttributeError):
        return None
    if not data:
        return None
    body = rtf.read(bytes(data), html=html)
    return body if body.text else None


def rtf_rendered(item: Any, props: dict[int, Any]) -> bool:
    """Whether the message's body is its RTF rendered as plain text, formatting lost: it keeps
    neither PidTagBody (0x1000) nor PidTagHtml (0x1013), and its RTF (PidTagRtfCompressed,
    0x1009) encapsulates no HTML or text ([MS-OXRTFEX])."""
    if 0x1000 in props or 0x1013 in props or 0x1009 not in props:
        return False
    body = rtf_body(item)
    return body is not None and not body.exact


def _photo(item: Any, count: int) -> bytes | None:
    """The contact's photo: the attachment marked PidTagAttachmentContactPhoto, its bytes read
    (at most ``PHOTO_LIMIT``; an unreadable one stays an attachment, said in the notes)."""
    for index in range(count):
        try:
            attachment = item.get_attachment(index)
            marked = any(
                int(entry.entry_type) == CONTACT_PHOTO and entry.data_as_boolean
                for entry in attachment.get_record_set(0).entries
            )
            if not marked:
                continue
            size = int(attachment.size)
            if 0 < size <= PHOTO_LIMIT:
                return bytes(attachment.read_buffer(size))
        except (OSError, AttributeError, TypeError, ValueError):
            continue
    return None


def _recipients(item: Any, codec: str | None) -> list[dict[int, Value]]:
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
            value = _value(entry, codec)
            if value is not None:
                row.setdefault(int(entry.entry_type), value)
        rows.append(row)
    return rows


def _value(entry: Any, codec: str | None) -> Value | None:  # noqa: PLR0911 - one per type
    """A libpff entry's value, by its PT_ type; None for a type not used here or unreadable.
    ``codec``: the item's code page for PtypString8 (``pstcodepage``; None: libpff's)."""
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
            text = pstcodepage.decode(entry, codec) if kind == _STRING8 else None
            text = entry.data_as_string if text is None else text
            return str(text).rstrip("\x00") if text is not None else None
        if kind == _TIME:
            when = entry.data_as_datetime
            return when.replace(tzinfo=dt.UTC) if isinstance(when, dt.datetime) else None
        if kind == _BINARY:
            return bytes(data)
        if kind in (_MV_STRING8, _MV_UNICODE, _MV_BINARY):
            return _multiple(bytes(data), kind, codec or "cp1252")
    except (OSError, TypeError, ValueError, OverflowError):
        return None
    return None


def _multiple(data: bytes, kind: int, ansi: str) -> tuple[str, ...] | tuple[bytes, ...]:
    """A multi-valued string or binary property: a count, the offsets, then the values ([MS-PST]
    2.3.3.4.2); ``ansi``: the codec of non-Unicode strings."""
    if kind == _MV_BINARY:
        return _binaries(data)
    codec = "utf-16-le" if kind == _MV_UNICODE else ansi
    return tuple(v.decode(codec, "replace").rstrip("\x00") for v in _binaries(data))


def _binaries(data: bytes) -> tuple[bytes, ...]:
    """A multi-valued variable-size property's values, laid out as ``_multiple`` says; nothing
    for a layout that does not add up."""
    if len(data) < 4:
        return ()
    (count,) = struct.unpack_from("<I", data)
    if count * 4 + 4 > len(data):
        return ()
    offsets = [*struct.unpack_from(f"<{count}I", data, 4), len(data)]
    if any(not count * 4 + 4 <= a <= b <= len(data) for a, b in itertools.pairwise(offsets)):
        return ()
    return tuple(data[offsets[i] : offsets[i + 1]] for i in range(count))


# -- where the user's folders are ([MS-PST] 2.4.3, 2.4.4; [MS-OXPROPS]) --------------------------
IPM_SUBTREE_ENTRY_ID = 0x35E0  # PidTagIpmSubTreeEntryId: the top of the user's folders
STORE_ROLES = {
    0x35E3: "\\Trash",  # PidTagIpmWastebasketEntryId
    0x35E4: "\\Sent",  # PidTagIpmSentMailEntryId
}
_TOPS = ("top of personal folders", "top of outlook data file", "top of information store")
_OST_TOP = ("root - mailbox", "ipm_subtree")  # an Exchange OST's; these names are not localized


def ipm_subtree(pff: Any) -> tuple[Any, tuple[int, ...]]:
    """The folder the user's folders are in, and its route (sub-folder indices from the root):
    the one the message store names (a PST's "Top of Personal Folders", whatever a localized
    Outlook called it), else an OST's Root - Mailbox/IPM_SUBTREE (an OST's store names none),
    else a top folder by its English name, else the root."""
    root = pff.root_folder
    nid = _store_nids(pff).get(IPM_SUBTREE_ENTRY_ID)
    if nid is not None and (found := _near(root, lambda f: int(f.identifier) == nid)) is not None:
        return found
    folder: Any = root
    route: tuple[int, ...] = ()
    for name in _OST_TOP:
        child = _child(folder, name)
        if child is None:
            break
        folder, route = child[0], (*route, child[1])
    else:
        return folder, route
    found = _near(root, lambda f: (f.name or "").lower() in _TOPS, depth=1)
    return found if found is not None else (root, ())


def store_roles(pff: Any) -> dict[int, str]:
    """Folder identifier -> the special-use role the message store gives it (Sent, Trash), so
    that a localized Outlook's folders are found by what they are, not by their names."""
    nids = _store_nids(pff)
    return {nids[tag]: role for tag, role in STORE_ROLES.items() if tag in nids}


def _store_nids(pff: Any) -> dict[int, int]:
    """The message store's folder entry IDs as node IDs: a PST's entry ID is 4 bytes of flags,
    the store's 16-byte record key, then the folder's NID ([MS-PST] 2.2.2.1... 2.4.3.2)."""
    found: dict[int, int] = {}
    try:
        entries = pff.message_store.get_record_set(0).entries
        for entry in entries:
            tag, data = int(entry.entry_type), entry.data
            if (0x35E0 <= tag <= 0x35E7) and data is not None and len(data) == 24:
                found[tag] = int.from_bytes(bytes(data)[20:24], "little")
    except (OSError, AttributeError, TypeError):
        return {}
    return found


def _child(folder: Any, name: str) -> tuple[Any, int] | None:
    """The sub-folder of that name (any case), and its index."""
    for index in range(folder.number_of_sub_folders):
        try:
            child = folder.get_sub_folder(index)
        except OSError:
            continue
        if (child.name or "").lower() == name:
            return child, index
    return None


def _near(
    root: Any, wanted: Callable[[Any], bool], depth: int = 2
) -> tuple[Any, tuple[int, ...]] | None:
    """The first folder ``wanted`` takes among the root's children, then their children."""
    level: list[tuple[Any, tuple[int, ...]]] = [(root, ())]
    for _ in range(depth):
        below = []
        for folder, route in level:
            for index in range(folder.number_of_sub_folders):
                try:
                    child = folder.get_sub_folder(index)
                except OSError:
                    continue
                if wanted(child):
                    return child, (*route, index)
                below.append((child, (*route, index)))
        level = below
    return None
