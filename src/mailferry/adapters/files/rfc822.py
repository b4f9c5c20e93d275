"""What the file adapters read from a message's own bytes: line ends, headers, dates, flags.

Files on Unix keep messages with bare LF line ends; IMAP servers count and serve CRLF. Every file
source hands out messages with bare LFs turned into CRLF (the size an IMAP server would report), so
a message read from a file and the same message read back from a server have the same size and hash
(identity, lost-state matching). CRLF bytes pass unchanged: what a file target wrote is read back
byte for byte.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re

from mailferry.domain.identity import normalise_message_id

_FIELD = re.compile(rb"^[!-9;-~]+[ \t]*:")  # an RFC 5322 field name, then the colon
HEAD_LIMIT = 256 << 10  # a header block longer than this is cut (for Message-ID and Date only)

# Flags as Maildir letters (the ``:2,`` part) and as mbox ``Status``/``X-Status`` letters.
MAILDIR_LETTERS = {
    "D": "\\Draft",
    "F": "\\Flagged",
    "R": "\\Answered",
    "S": "\\Seen",
    "T": "\\Deleted",
}
STATUS_LETTERS = {"R": "\\Seen"}
X_STATUS_LETTERS = {"A": "\\Answered", "F": "\\Flagged", "T": "\\Draft", "D": "\\Deleted"}


def crlf(data: bytes) -> bytes:
    """Bare LFs as CRLF; CRLF stays as it is (C-speed replaces: a regex is 10x slower). Bytes
    without any CR, as most files keep them, take one replace and no counting."""
    if b"\r" not in data:
        return data.replace(b"\n", b"\r\n")
    if data.count(b"\n") == data.count(b"\r\n"):
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def crlf_size(data: bytes) -> int:
    if b"\r" not in data:
        return len(data) + data.count(b"\n")
    return len(data) + data.count(b"\n") - data.count(b"\r\n")


def header_block(data: bytes) -> bytes:
    """The header block of a message (up to the first empty line), at most HEAD_LIMIT bytes."""
    head = data[:HEAD_LIMIT]
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = head.find(separator)
        if end >= 0:
            head = head[: end + len(separator) // 2]
    return head


def field(head: bytes, name: bytes) -> bytes | None:
    """The raw ``name:`` field of a header block with its continuation lines, or None."""
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    wanted = name.lower() + b":"
    for index, line in enumerate(lines):
        if line.lower().startswith(wanted):
            block = [line]
            for more in lines[index + 1 :]:
                if more[:1] not in (b" ", b"\t"):
                    break
                block.append(more)
            return b"\r\n".join(block)
    return None


def field_text(head: bytes, name: bytes) -> str | None:
    raw = field(head, name)
    if raw is None:
        return None
    value = raw.split(b":", 1)[1]
    return " ".join(value.decode("utf-8", "replace").split())


def message_id(head: bytes) -> str | None:
    return normalise_message_id(field(head, b"message-id"))


def header_date(head: bytes) -> dt.datetime | None:
    """The ``Date:`` field as an aware datetime (a date without a zone is taken as UTC)."""
    text = field_text(head, b"date")
    if not text:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


def looks_like_message(data: bytes) -> bool:
    """True when the bytes start with a header field (what every RFC 822 message does)."""
    first = data[:1000].lstrip(b"\r\n").split(b"\n", 1)[0]
    return bool(_FIELD.match(first))


def maildir_flags(letters: str, keywords: dict[str, str]) -> frozenset[str]:
    """Flags from the letters after ``:2,``; lowercase letters are keywords (``dovecot-keywords``)."""
    flags = {MAILDIR_LETTERS[c] for c in letters if c in MAILDIR_LETTERS}
    flags.update(keywords[c] for c in letters if c in keywords)
    return frozenset(flags)


def from_epoch(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(seconds), tz=dt.UTC)
