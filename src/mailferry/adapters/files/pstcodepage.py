"""Non-Unicode strings of a PST item in the code page the item declares.

An ANSI PST (Outlook 97-2002) keeps every string as PtypString8 (0x001E), bytes in a Windows code
page; a Unicode PST may keep some. libpff's record entries, which mailferry reads properties
from, decode them in one code page for the whole file, windows-1252 unless told otherwise (its
message-level getters, ``item.subject`` or the plain text body, use the message's), so a
Cyrillic, Greek or Japanese subject, sender name or attachment name came out as mojibake. An item names the code page of its non-Unicode string
properties in PidTagMessageCodepage (0x3FFD, [MS-OXPROPS] 2.783); where it names one other than
1252 that Python knows, its PtypString8 values are decoded here in that code page. Otherwise
(none named, 1252, unknown) libpff's decoding stands, so what earlier versions built from such
items keeps its bytes. Folder names have no such property: libpff's decoding stands for them.
"""

from __future__ import annotations

import codecs
from typing import Any

STRING8 = 0x001E  # PtypString8
MESSAGE_CODEPAGE = 0x3FFD  # PidTagMessageCodepage

# Windows code page numbers whose Python codec is not named "cp<number>".
_NAMED = {
    65001: "utf-8",
    20127: "ascii",
    20866: "koi8_r",
    21866: "koi8_u",
    10000: "mac_roman",
    50220: "iso2022_jp",
    50221: "iso2022_jp",
    50222: "iso2022_jp",
    51932: "euc_jp",
    51949: "euc_kr",
    52936: "hz",
    54936: "gb18030",
    **{28590 + n: f"iso8859_{n}" for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 15)},
}


def codec_of(codepage: int | None, *, libpff: bool = True) -> str | None:
    """Python's codec for a code page an item declares; None where libpff's decoding stands
    (``libpff`` False: for bytes libpff hands over undecoded, 1252 is a codec like the others)."""
    if codepage is None or (libpff and codepage == 1252):
        return None
    try:
        return codecs.lookup(_NAMED.get(codepage, f"cp{codepage}")).name
    except LookupError:
        return None


def declared(entries: dict[int, Any], *, libpff: bool = True) -> str | None:
    """The codec of the item's PidTagMessageCodepage (``codec_of``), from its entries by tag."""
    entry = entries.get(MESSAGE_CODEPAGE)
    if entry is None or entry.data is None:
        return None
    try:
        return codec_of(int(entry.data_as_integer), libpff=libpff)
    except (OSError, TypeError, ValueError, OverflowError):
        return None


def decode(entry: Any, codec: str | None) -> str | None:
    """A PtypString8 entry's text in ``codec``; None for another type or no codec (libpff's)."""
    if codec is None or int(entry.value_type) != STRING8 or entry.data is None:
        return None
    return bytes(entry.data).decode(codec, "replace").rstrip("\x00")
