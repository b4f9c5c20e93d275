"""Read-receipt requests, neutralised when the administrator asks for it.

A message imported into Exchange Online (and some other targets) may make the target's client
send the read receipt its header asks for, years after the message was read. With
``--neutralise-read-receipts`` the request headers are renamed on the way, keeping their values
(nothing is lost) and, crucially, the message's length: the renamed header has exactly as many
bytes as the original, so identity by Message-ID + INTERNALDATE + size still recognises the copy
after a lost state database, and nothing else in the message changes.

Pure: bytes in, bytes out.
"""

from __future__ import annotations

import re

# Each replacement is as long as the name it replaces (checked below and in the tests).
RENAMES: dict[bytes, bytes] = {
    b"disposition-notification-to": b"X-Orig-Disposition-Notif-To",
    b"return-receipt-to": b"X-Orig-Receipt-To",
    b"x-confirm-reading-to": b"X-Orig-Confirm-Rd-To",
}
if any(len(old) != len(new) for old, new in RENAMES.items()):  # pragma: no cover - a typo above
    raise AssertionError("a receipt header rename must keep the header's length")

_NAMES = re.compile(
    rb"^(" + b"|".join(re.escape(name) for name in RENAMES) + rb")(?=[ \t]*:)",
    re.IGNORECASE | re.MULTILINE,
)
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def header_length(data: bytes) -> int:
    """Bytes of ``data`` that belong to the header (up to the blank line; all of it if none)."""
    end = _HEADER_END.search(data)
    return end.start() if end else len(data)


def neutralise_receipt_requests(data: bytes) -> bytes:
    """``data`` (the start of a message) with every read-receipt request header of its header
    section renamed; the body, folded continuation lines and the length are left as they are."""
    cut = header_length(data)
    head = _NAMES.sub(lambda m: RENAMES[m.group(1).lower()], data[:cut])
    return head + data[cut:]
