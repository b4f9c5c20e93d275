"""One mbox file: scanned once into a compact index, read message by message, appended to.

Separators are ``From `` lines at the start of the file or after an empty line (mboxo and mboxrd);
the empty line before a separator belongs to neither message. Inside a message, ``>From `` lines
lose one ``>`` (mboxrd quoting undone; the same rule reads mboxo). Flags are read from ``Status``
(R: seen), ``X-Status`` (A, F, T, D) and ``X-Keywords``; those fields and Dovecot's own (``X-UID``,
``X-IMAP``, ``X-IMAPbase``, ``Content-Length``) are taken out of the message as Dovecot does for its
mbox files (a file target, ``mboxwrite``, writes flags there and nowhere else, so what it wrote
reads back byte for byte), and the "FOLDER INTERNAL DATA" message Dovecot and Pine put first is no message.
Thunderbird's ``X-Mozilla-Status`` is read, not removed.

The index keeps a few numbers per message in arrays (offsets, size, date, flag bits), never
the messages: a 20 GB mbox is scanned in one pass with flat memory. A file that does not end in
a line end was cut off: its last message is reported as truncated instead of being copied.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import mmap
import os
import re
from array import array
from collections.abc import Iterator
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
_QUOTED_FROM_LINES = re.compile(rb"^>+From ", re.MULTILINE)
CHUNK = 8 << 20  # bodies are measured this many bytes at a time
RELEASE = 16 << 20  # mapped pages are let go every this many bytes scanned
_FLAG_BITS = {"\\Seen": 1, "\\Answered": 2, "\\Flagged": 4, "\\Draft": 8, "\\Deleted": 16}
COUNTED = 32  # in ``flag_bits``: the body was delimited by Content-Length, not unquoted
UNDATED_BIT = 64  # in ``flag_bits``: no date on the From line, dated from Date: or the file time
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
    """One pass over a mapped file: separators found with ``find``, bodies measured in chunks
    (the per-line work is for header blocks only)."""

    def __init__(self, data: mmap.mmap, mtime: float, resume: Scanned | None) -> None:
        self.data = data
        self.mtime = mtime
        self.index = resume or Scanned()
        self.digest = resume.digest.copy() if resume and resume.digest else hashlib.sha256()
        self.keyword_ids = {words: n for n, words in enumerate(self.index.keyword_sets)}

    def run(self, pos: int) -> Scanned:
        data, length = self.data, len(self.data)
        here: int | None = pos if data[pos : pos + 5] == b"From " else self._separator(pos)
        released = 0
        while here is not None:
            eol = data.find(b"\n", here)
            if eol < 0:
                break  # a separator line cut off: nothing of its message is there
            here = self._message(data[here : eol + 1], eol + 1)
            if here is not None and here - released > RELEASE:
                # Pages read stay counted in this process until let go: keep the RSS flat.
                released = here - here % mmap.PAGESIZE
                data.madvise(mmap.MADV_DONTNEED, 0, released)
        self.index.truncated = length > 0 and data[length - 1 : length] != b"\n"
        self.index.truncated &= bool(self.index.starts) and self.index.ends[-1] == length
        self.index.keyword_sets = sorted(self.keyword_ids, key=self.keyword_ids.__getitem__)
        self.index.validity = int.from_bytes(self.digest.digest()[:4], "big") % 0x7FFFFFFF or 1
        self.index.length = length
        self.index.digest = self.digest
        return self.index

    def _separator(self, pos: int) -> int | None:
        """The next ``From `` line at or after ``pos`` that follows an empty line."""
        data = self.data
        found = data.find(b"\nFrom ", max(pos - 1, 0))
        while found >= 0:
            line = found + 1
            if data[line - 2 : line - 1] == b"\n" or data[line - 3 : line - 1] == b"\n\r":
                return line
            found = data.find(b"\nFrom ", found + 1)
        return None

    def _message(self, from_line: bytes, start: int) -> int | None:
        """Index the message after ``from_line``; the offset of the next separator, if any."""
        data = self.data
        head_end = _after_blank_line(data, start)
        cleaner = _Cleaner()
        counted = self._content_length(data, start, head_end)
        following = self._separator(counted if counted is not None else head_end)
        end = len(data) if following is None else following
        end -= _blank_before(data, start, end)
        # The content hash sees the header without the flag fields: a flag change is no change.
        content = hashlib.blake2b(digest_size=16)
        size = 0
        for line in _lines(data, start, min(head_end, end)):
            kept = cleaner.feed(line)
            size += len(kept)
            content.update(kept)
        cleaner.unquote = counted is None
        size += _body_size(data, head_end, end, content, unquote=cleaner.unquote)
        self._record(from_line, start, end, size, cleaner)
        self.digest.update(from_line + str(size).encode() + content.digest() + b"\n")
        return following

    def _content_length(self, data: mmap.mmap, start: int, head_end: int) -> int | None:
        """Where a Content-Length body ends, when it ends just before a separator or the end of
        the file (Dovecot writes its mbox so, ``From `` lines unquoted); else None."""
        head = data[start:head_end]
        text = rfc822.field_text(head, b"content-length") or ""
        if not text.isdigit() or int(text) == 0:
            return None
        end = head_end + int(text)
        if data[end : end + 6] not in (b"", b"\n", b"\nFrom ", b"\r\nFrom"):
            return None
        return end

    def _record(self, from_line: bytes, start: int, end: int, size: int, cleaner: _Cleaner) -> None:
        head = b"".join(cleaner.header)
        if not self.index.starts and _folder_data(head):
            return
        flags, words = _flags_of(head)
        index = self.index
        index.starts.append(start)
        index.ends.append(end)
        index.sizes.append(size)
        undated_before = index.undated
        index.dates.append(int(self._date(from_line, head).timestamp()))
        counted = 0 if cleaner.unquote else COUNTED
        undated = UNDATED_BIT if index.undated > undated_before else 0
        index.flag_bits.append(sum(_FLAG_BITS[f] for f in flags) | counted | undated)
        index.keyword_ids.append(self.keyword_ids.setdefault(words, len(self.keyword_ids)))
        labels = rfc822.field_text(head, b"x-gmail-labels")
        if labels is not None:
            index.labels[len(index.starts) - 1] = _split_labels(labels)

    def _date(self, from_line: bytes, head: bytes) -> dt.datetime:
        dated = from_line_date(from_line)
        if dated is not None:
            return dated
        self.index.undated += 1
        return rfc822.header_date(head) or rfc822.from_epoch(self.mtime)


def _after_blank_line(data: mmap.mmap, start: int) -> int:
    """The offset after the empty line that ends the header block starting at ``start``
    (searched in growing windows: a file with LF line ends holds no CRLF empty line at all)."""
    window = 4 << 10
    begin = max(start - 1, 0)
    while True:
        limit = min(len(data), start + window)
        found = data.find(b"\n\n", begin, limit)
        crlf = data.find(b"\n\r\n", begin, found + 1 if found >= 0 else limit)
        if crlf >= 0:
            return crlf + 3
        if found >= 0:
            return found + 2
        if limit == len(data):
            return len(data)
        window *= 4


def _blank_before(data: mmap.mmap, start: int, end: int) -> int:
    """The length of the empty line that ends at ``end`` (a separator's), or 0."""
    if end - 1 >= start and data[end - 2 : end] == b"\n\n":
        return 1
    if end - 2 >= start and data[end - 3 : end] == b"\n\r\n":
        return 2
    return 0


def _lines(data: mmap.mmap, start: int, end: int) -> Iterator[bytes]:
    return iter(io.BytesIO(data[start:end])) if end > start else iter(())


def _body_size(data: mmap.mmap, start: int, end: int, content: Any, *, unquote: bool) -> int:
    """The CRLF size of a body, read in chunks that end at line ends (flat memory); the raw
    bytes go into the ``content`` hash."""
    size = 0
    while start < end:
        stop = min(end, start + CHUNK)
        if stop < end:
            cut = data.rfind(b"\n", start, stop)
            stop = cut + 1 if cut >= start else stop
        chunk = data[start:stop]
        content.update(chunk)
        size += len(chunk) + chunk.count(b"\n") - chunk.count(b"\r\n")
        if unquote and b">From " in chunk:
            size -= len(_QUOTED_FROM_LINES.findall(chunk))
        start = stop
    return size


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
    with path.open("rb") as source:
        mtime = os.fstat(source.fileno()).st_mtime
        if os.fstat(source.fileno()).st_size == 0:
            return Scanned()  # (an empty file cannot be mapped)
        with mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ) as data:
            start = resume.length if resume is not None else 0
            return _Scan(data, mtime, resume).run(start)


def read_message(source: BinaryIO, start: int, end: int, *, unquote: bool = True) -> bytes:
    """One message as handed out: hidden fields removed, quoting undone, CRLF line ends (the
    header line by line, the body at once)."""
    source.seek(start)
    raw = source.read(end - start)
    head_end = _head_end(raw)
    cleaner = _Cleaner(unquote=unquote)
    head = b"".join(cleaner.feed(line) for line in io.BytesIO(raw[:head_end]))
    body = raw[head_end:]
    if unquote and b">From " in body:
        body = _QUOTED_FROM_LINES.sub(lambda match: match.group(0)[1:], body)
    return head + rfc822.crlf(body)


def read_head(source: BinaryIO, start: int, end: int) -> bytes:
    """The raw header block of a message (for its Message-ID), at most HEAD_LIMIT bytes."""
    source.seek(start)
    raw = source.read(min(end - start, rfc822.HEAD_LIMIT))
    return raw[: _head_end(raw)]


def _head_end(raw: bytes) -> int:
    """The offset after the empty line that ends the header (as ``_after_blank_line`` finds it
    in the file: a message may start with that empty line)."""
    probe = b"\n" + raw
    hits = [at + len(blank) - 1 for blank in (b"\n\n", b"\n\r\n") if (at := probe.find(blank)) >= 0]
    return min(hits) if hits else len(raw)
