"""One mbox file: scanned once into a compact index, read message by message, appended to.

Separators are ``From `` lines at the start of the file or after an empty line (mboxo and mboxrd);
the empty line before a separator belongs to neither message. Inside a message, ``>From `` lines
lose one ``>`` (mboxrd quoting undone; the same rule reads mboxo). Flags are read from ``Status``
(R: seen), ``X-Status`` (A, F, T, D) and ``X-Keywords``; those fields and Dovecot's own (``X-UID``,
``X-IMAP``, ``X-IMAPbase``, ``Content-Length``) are taken out of the message as Dovecot does for its
mbox files (a file target writes flags there and nowhere else, so what it wrote reads back byte
for byte), and the "FOLDER INTERNAL DATA" message Dovecot and Pine put first is no message.
Thunderbird's ``X-Mozilla-Status`` is read, not removed.

The index keeps a few numbers per message in arrays (offsets, size, date, flag bits), never
the messages: a 20 GB mbox is scanned in one pass with flat memory. A file that does not end in
a line end was cut off: its last message is reported as truncated instead of being copied.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from mailferry.adapters.files import rfc822

# Fields an mbox keeps for its reader, not part of the message (Dovecot hides the same ones).
HIDDEN = (
    b"status:",
    b"x-status:",
    b"x-keywords:",
    b"x-uid:",
    b"x-imap:",
    b"x-imapbase:",
    b"content-length:",
)
_QUOTED_FROM = re.compile(rb"^>+From ")
_NEEDS_QUOTE = re.compile(rb"^>*From ", re.MULTILINE)
_FLAG_BITS = {"\\Seen": 1, "\\Answered": 2, "\\Flagged": 4, "\\Draft": 8, "\\Deleted": 16}
COUNTED = 32  # in ``flag_bits``: the body was delimited by Content-Length, not unquoted
_MOZILLA = {0x1: "\\Seen", 0x2: "\\Answered", 0x4: "\\Flagged", 0x8: "\\Deleted"}
_ASCTIME = ("%a %b %d %H:%M:%S %Y", "%a %b %d %H:%M %Y", "%a %b %d %H:%M:%S %z %Y")


def _flags_of(head: bytes) -> tuple[frozenset[str], tuple[str, ...]]:
    """(flags, keywords) from a raw header block."""
    flags: set[str] = set()
    status = rfc822.field_text(head, b"status") or ""
    flags.update(rfc822.STATUS_LETTERS[c] for c in status if c in rfc822.STATUS_LETTERS)
    x_status = rfc822.field_text(head, b"x-status") or ""
    flags.update(rfc822.X_STATUS_LETTERS[c] for c in x_status if c in rfc822.X_STATUS_LETTERS)
    mozilla = rfc822.field_text(head, b"x-mozilla-status") or ""
    try:
        bits = int(mozilla, 16) if mozilla else 0
    except ValueError:
        bits = 0
    flags.update(flag for bit, flag in _MOZILLA.items() if bits & bit)
    words = (rfc822.field_text(head, b"x-keywords") or "").replace(",", " ").split()
    return frozenset(flags), tuple(sorted(set(words)))


def from_line_date(line: bytes) -> dt.datetime | None:
    """The date of a ``From sender DATE`` line (asctime, taken as UTC), or None."""
    words = line.decode("latin-1").split()[2:]
    for count in (5, 6, 4):
        text = " ".join(words[-count:])
        for pattern in _ASCTIME:
            try:
                moment = dt.datetime.strptime(text, pattern)  # noqa: DTZ007 - zone set below
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return None


@dataclass
class _Cleaner:
    """Turns the raw lines of one message into what is handed out, line by line."""

    head: bool = True
    hidden: bool = False
    unquote: bool = True  # False for a body delimited by Content-Length (Dovecot's, unquoted)
    header: list[bytes] = field(default_factory=list)

    def feed(self, line: bytes) -> bytes:
        if self.head:
            if line in (b"\n", b"\r\n"):
                self.head = False
            elif line[:1] in (b" ", b"\t") and self.header:
                self.header.append(line)
                return b"" if self.hidden else rfc822.crlf(line)
            else:
                self.hidden = line.lower().startswith(HIDDEN)
                self.header.append(line)
                if self.hidden:
                    return b""
        if self.unquote and _QUOTED_FROM.match(line):
            line = line[1:]
        return rfc822.crlf(line)


@dataclass
class Scanned:
    """The index of one mbox file."""

    starts: array[int] = field(default_factory=lambda: array("q"))  # first byte after "From "
    ends: array[int] = field(default_factory=lambda: array("q"))  # first byte after the message
    sizes: array[int] = field(default_factory=lambda: array("q"))  # CRLF size handed out
    dates: array[int] = field(default_factory=lambda: array("q"))  # epoch seconds
    flag_bits: array[int] = field(default_factory=lambda: array("B"))
    keyword_ids: array[int] = field(default_factory=lambda: array("I"))
    keyword_sets: list[tuple[str, ...]] = field(default_factory=lambda: [()])
    labels: dict[int, tuple[str, ...]] = field(default_factory=dict)  # X-Gmail-Labels by index
    undated: int = 0  # messages dated from Date: or the file time (no usable From line date)
    truncated: bool = False  # the file ends inside its last message
    validity: int = 1
    length: int = 0  # the file size scanned
    digest: Any = None  # the running hash behind ``validity``, to go on after an append

    def flags(self, index: int) -> frozenset[str]:
        bits = self.flag_bits[index]
        found = {flag for flag, bit in _FLAG_BITS.items() if bits & bit}
        found.update(self.keyword_sets[self.keyword_ids[index]])
        return frozenset(found)


class _Scan:
    """One pass over the lines of a file, closing each message at the next separator."""

    def __init__(
        self, mtime: float, peek: Callable[[int], bytes], resume: Scanned | None = None
    ) -> None:
        self.index = resume or Scanned()
        self.peek = peek  # the 6 bytes at an offset of the file
        self.skip_until = 0  # the end of a body delimited by Content-Length
        self.mtime = mtime
        self.digest = resume.digest.copy() if resume and resume.digest else hashlib.sha256()
        self.keyword_ids = {words: n for n, words in enumerate(self.index.keyword_sets)}
        self.open: tuple[bytes, int] | None = None  # (From line, start) of the current message
        self.cleaner = _Cleaner()
        self.size = 0
        self.held = b""  # the last line, fed once the next one shows it is not a separator's blank

    def line(self, line: bytes, offset: int) -> None:
        if self._counted_body(offset):
            self.size += len(self.cleaner.feed(self.held))
            self.held = line
            return
        is_separator = (
            offset >= self.skip_until
            and line.startswith(b"From ")
            and (offset == 0 or self.held in (b"\n", b"\r\n"))
        )
        if is_separator:
            self.close(offset - len(self.held))
            self.open = (line, offset + len(line))
            self.cleaner, self.size, self.held = _Cleaner(), 0, b""
            return
        if self.open is not None and self.held:
            self.size += len(self.cleaner.feed(self.held))
        self.held = line

    def _counted_body(self, offset: int) -> bool:
        """At the empty line that ends a header: a Content-Length that ends exactly before a
        separator (or the end of the file) delimits the body, whatever ``From `` lines it holds
        (Dovecot writes them so, unquoted)."""
        if not (self.open and self.cleaner.head and self.held in (b"\n", b"\r\n")):
            return False
        text = rfc822.field_text(b"".join(self.cleaner.header), b"content-length") or ""
        if not text.isdigit() or int(text) == 0:
            return False
        end = offset + int(text)
        if self.peek(end) not in (b"", b"\n", b"\nFrom ", b"\r\nFrom"):
            return False
        self.skip_until = end
        self.cleaner.unquote = False
        return True

    def close(self, end: int) -> None:
        if self.open is None:
            return
        if self.held not in (b"\n", b"\r\n", b""):
            self.size += len(self.cleaner.feed(self.held))
            end += len(self.held)
        from_line, start = self.open
        head = b"".join(self.cleaner.header)
        self.open = None
        if not self.index.starts and _folder_data(head):
            return
        flags, words = _flags_of(head)
        index = self.index
        index.starts.append(start)
        index.ends.append(end)
        index.sizes.append(self.size)
        index.dates.append(int(self._date(from_line, head).timestamp()))
        counted = 0 if self.cleaner.unquote else COUNTED
        index.flag_bits.append(sum(_FLAG_BITS[f] for f in flags) | counted)
        index.keyword_ids.append(self.keyword_ids.setdefault(words, len(self.keyword_ids)))
        labels = rfc822.field_text(head, b"x-gmail-labels")
        if labels is not None:
            index.labels[len(index.starts) - 1] = _split_labels(labels)
        self.digest.update(from_line + str(self.size).encode() + b"\n")

    def _date(self, from_line: bytes, head: bytes) -> dt.datetime:
        dated = from_line_date(from_line)
        if dated is not None:
            return dated
        self.index.undated += 1
        return rfc822.header_date(head) or rfc822.from_epoch(self.mtime)

    def finish(self, length: int, last: bytes) -> Scanned:
        self.index.truncated = bool(last) and not last.endswith(b"\n") and self.open is not None
        self.close(length - len(self.held))
        self.index.keyword_sets = sorted(self.keyword_ids, key=self.keyword_ids.__getitem__)
        self.index.validity = int.from_bytes(self.digest.digest()[:4], "big") % 0x7FFFFFFF or 1
        self.index.length = length
        self.index.digest = self.digest
        return self.index


def _folder_data(head: bytes) -> bool:
    """The first message Dovecot (and Pine) keep in an mbox for the folder's UIDs and keywords."""
    subject = rfc822.field_text(head, b"subject") or ""
    return rfc822.field(head, b"x-imap") is not None and "FOLDER INTERNAL DATA" in subject


def _split_labels(text: str) -> tuple[str, ...]:
    """``X-Gmail-Labels: Inbox,"Work, old",Opened``: labels, quoted ones may hold commas."""
    found, current, quoted = [], "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            found.append(current.strip())
            current = ""
        else:
            current += char
    found.append(current.strip())
    return tuple(label for label in found if label)


def scan(path: Path, resume: Scanned | None = None) -> Scanned:
    """Index an mbox file in one pass (OSError when it cannot be read). ``resume``: the index of
    the file before we appended whole messages to it; only the new bytes are read, and the
    result is what a full scan gives (``resume`` is extended in place)."""
    with path.open("rb") as source, path.open("rb") as peeker:

        def peek(offset: int) -> bytes:
            peeker.seek(offset)
            return peeker.read(6)

        scanner = _Scan(path.stat().st_mtime, peek, resume)
        offset, last = 0, b""
        if resume is not None and resume.length:
            source.seek(resume.length)
            offset, last, scanner.held = resume.length, b"\n", b"\n"
        for line in source:
            scanner.line(line, offset)
            offset += len(line)
            last = line
        return scanner.finish(offset, last)


def read_message(source: BinaryIO, start: int, end: int, *, unquote: bool = True) -> bytes:
    """One message as handed out: hidden fields removed, quoting undone, CRLF line ends."""
    source.seek(start)
    raw = source.read(end - start)
    cleaner = _Cleaner(unquote=unquote)
    return b"".join(cleaner.feed(line) for line in io.BytesIO(raw))


def flag_fields(flags: frozenset[str]) -> bytes:
    """The ``Status``/``X-Status``/``X-Keywords`` fields a file target writes for ``flags``."""
    out = b""
    if "\\Seen" in flags:
        out += b"Status: RO\n"
    letters = "".join(c for c, flag in rfc822.X_STATUS_LETTERS.items() if flag in flags)
    if letters:
        out += f"X-Status: {letters}\n".encode()
    words = sorted(f for f in flags if not f.startswith("\\") and f.isascii())
    if words:
        out += ("X-Keywords: " + " ".join(words) + "\n").encode()
    return out


def mbox_entry(message: bytes, flags: frozenset[str], when: dt.datetime) -> bytes:
    """A message as an mbox file keeps it: separator line, flag fields, mboxrd quoting, blank line."""
    stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(when.timestamp()))
    body = _NEEDS_QUOTE.sub(lambda m: b">" + m.group(0), message)
    if not body.endswith(b"\n"):
        body += b"\n"
    return b"From MAILER-DAEMON " + stamp.encode() + b"\n" + flag_fields(flags) + body + b"\n"


def rewrite_flags(path: Path, scanned: Scanned, new_flags: Callable[[int], frozenset[str]]) -> None:
    """Write the file again with each message's flag fields from ``new_flags(index)`` (a copy
    renamed over the original: a crash leaves the old file or the new one, never half of each)."""
    temporary = path.with_name(path.name + ".mailferry-tmp")
    with path.open("rb") as source, temporary.open("wb") as out:
        for index in range(len(scanned.starts)):
            start, end = scanned.starts[index], scanned.ends[index]
            out.write(_from_line(source, start))
            out.write(flag_fields(new_flags(index)))
            source.seek(start)
            out.write(_without_hidden(source.read(end - start)))
            out.write(b"\n")
        out.flush()
    temporary.replace(path)


def _from_line(source: BinaryIO, start: int) -> bytes:
    """The separator line that ends just before ``start``."""
    source.seek(max(0, start - 4096))
    before = source.read(start - max(0, start - 4096))
    return before[before.rfind(b"\n", 0, len(before) - 1) + 1 :]


def _without_hidden(raw: bytes) -> bytes:
    lines = iter(io.BytesIO(raw))
    kept, hidden = [], False
    for line in lines:
        if line in (b"\n", b"\r\n"):
            kept.append(line)
            break
        if line[:1] not in (b" ", b"\t"):
            hidden = line.lower().startswith(HIDDEN)
        if not hidden:
            kept.append(line)
    kept.extend(lines)
    return b"".join(kept)


def iter_ranges(scanned: Scanned) -> Iterator[tuple[int, int]]:
    yield from zip(scanned.starts, scanned.ends, strict=True)
