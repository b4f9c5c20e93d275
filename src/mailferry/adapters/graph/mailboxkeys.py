"""The recognition keys of mailbox items as Graph lists them (graph.md): which extended property an
imported copy keeps, by item class, and the ``MailboxEntry`` of a listed item."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from mailferry.domain.mailboxmodel import MailboxEntry

# the recognition properties (graph.md), by item class family; the search key is every item's
MESSAGE_ID = "String 0x1035"  # PidTagInternetMessageId
GLOBAL_OBJECT_ID = "Binary {6ED8DA90-450B-101B-98DA-00AA003F1305} Id 0x23"  # PidLidCleanGlobal...
SEARCH_KEY = "Binary 0x300B"  # PidTagSearchKey
EXPAND = (
    "singleValueExtendedProperties($filter="
    + " or ".join(f"id eq '{name}'" for name in (MESSAGE_ID, GLOBAL_OBJECT_ID, SEARCH_KEY))
    + ")"
)
_CALENDAR = ("IPM.Appointment", "IPM.Schedule.Meeting")


def properties(row: dict[str, Any]) -> dict[str, str]:
    """The expanded extended properties of an item, by normalised id (Graph may change case)."""
    return {
        " ".join(str(p.get("id", "")).lower().split()): str(p.get("value", ""))
        for p in row.get("singleValueExtendedProperties", [])
    }


def _norm(name: str) -> str:
    return " ".join(name.lower().split())


def recognition_key(item_class: str, properties: dict[str, str]) -> str | None:
    """The property an imported copy keeps (graph.md): the Internet message id of mail, the clean
    global object id (hex) of calendar items, else, or when that one is missing, the search key
    (hex; it travels in the item's stream). None when the item has none of them."""
    if item_class.startswith(_CALENDAR):
        preferred = _hex(properties.get(_norm(GLOBAL_OBJECT_ID)))
    else:
        preferred = properties.get(_norm(MESSAGE_ID)) or None
    return preferred or _hex(properties.get(_norm(SEARCH_KEY)))


def _hex(value: str | None) -> str | None:
    """A Binary extended property's value (base64 in Graph's JSON) as hex text."""
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True).hex()
    except (binascii.Error, ValueError):
        return None


def listed_entry(row: dict[str, Any], properties: dict[str, str] | None) -> MailboxEntry:
    item_class = str(row.get("type", ""))
    size = row.get("size")
    return MailboxEntry(
        id=row["id"],
        change_key=str(row.get("changeKey", "")),
        item_class=item_class,
        size=size if isinstance(size, int) else None,
        key=recognition_key(item_class, properties or {}),
    )
