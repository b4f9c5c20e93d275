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
import functools
import hashlib
import io
import mmap
import os
import re
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from mailferry.adapters.files import rfc822
from mailferry.adapters.files.mboxhash import Hashing

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
_HIDDEN_FIELD = re.compile(
    rb"^(?:" + rb"|".join(h[:-1] for h in HIDDEN) + rb"):", re.IGNORECASE | re.MULTILINE
)
# The fields the scan reads (flags, labels, Dovecot's): looked for once per header block.
_READ_FIELDS = re.compile(
    rb"^(status|x-status|x-mozilla-status|x-keywords|x-gmail-labels|content-length|x-imap):",
    re.IGNORECASE | re.MULTILINE,
)
_QUOTED_FROM_LINES = re.compile(rb"^>+From ", re.MULTILINE)
CHUNK = 1 << 20  # bodies are measured (and handed to the hashing thread) this many bytes at a time
RELEASE = 16 << 20  # mapped pages are let go every this many bytes scanned
_FLAG_BITS = {"\\Seen": 1, "\\Answered": 2, "\\Flagged": 4, "\\Draft": 8, "\\Deleted": 16}
_FLAG_MASK = sum(_FLAG_BITS.values())
COUNTED = 32  # in ``flag_bits``: the body was delimited by Content-Length, not unquoted
UNDATED_BIT = 64  # in ``flag_bits``: no date on the From line, dated from Date: or the file time
PLAIN = 128  # in ``flag_bits``: handed out as the file holds it but for line ends (read at once)
_MOZILLA = {0x1: "\\Seen", 0x2: "\\Answered", 0x4: "\\Flagged", 0x8: "\\Deleted"}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# asctime as C writes it (``Tue Jan  2 03:04:05 2001``): a subset of what the first strptime
# pattern below accepts, read to the same datetime.
_USUAL_DATE = re.compile(
    rf"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) ({'|'.join(_MONTHS)}) (\d{{1,2}}) (\d\d:\d\d:\d\d) (\d{{4}})\Z",
    re.ASCII,
)
_ASCTIME = ("%a %b %d %H:%M:%S %Y", "%a %b %d %H:%M %Y", "%a %b %d %H:%M:%S %z %Y")


def _flags_of(head: bytes, present: set[bytes]) -> tuple[frozenset[str], tuple[str, ...]]:
    """(flags, keywords) from a raw header block; ``present``: the names of the fields it has
    among those the scan reads (most messages have none of them)."""
    if not present:
        return frozenset(), ()
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
    usual = _USUAL_DATE.match(" ".join(words[-5:]))
    if usual:  # what nearly every From line holds, without strptime (~20 us a message)
        try:
            day, clock, year = int(usual[3]), usual[4], int(usual[5])
            month = _MONTHS.index(usual[2]) + 1
            hour, minute, second = (int(part) for part in clock.split(":"))
            return dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
        except ValueError:
            pass  # what strptime makes of it (it refuses the same dates)
    for count in (5, 6, 4):
        text = " ".join(words[-count:])
        for pattern in _ASCTIME:
            try:
                moment = dt.datetime.strptime(text, pattern)  # noqa: DTZ007 - zone set below
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return None


def clean_head(raw: bytes, *, unquote: bool) -> bytes:
    """A header block as handed out: hidden fields (with their continuation lines) taken out,
    ``>From `` lines unquoted, CRLF line ends. Whole-block operations in C: most header blocks
    hold no hidden field at all, and the line-by-line work is done only for those that do."""
    if _HIDDEN_FIELD.search(raw):
        raw = without_hidden(raw)
    if unquote and b">From " in raw:
        raw = _QUOTED_FROM_LINES.sub(_unquoted, raw)
    return rfc822.crlf(raw)


def without_hidden(raw: bytes) -> bytes:
    """``raw`` (a message, or its header block) without the hidden fields of its header."""
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


def _unquoted(match: re.Match[bytes]) -> bytes:
    return match.group(0)[1:]


@dataclass
class Scanned:
    """The index of one mbox file."""

    starts: array[int] = field(default_factory=lambda: array("q"))  # first byte after "From "
    ends: array[int] = field(default_factory=lambda: array("q"))  # first byte after the message
    heads: array[int] = field(default_factory=lambda: array("I"))  # header block length
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
    # One frozenset per combination of flags, shared by the messages that have it: a planner
    # holding a million messages' flags holds a handful of sets, not a million.
    shared: dict[tuple[int, int], frozenset[str]] = field(default_factory=dict)

    def flags(self, index: int) -> frozenset[str]:
        key = (self.flag_bits[index] & _FLAG_MASK, self.keyword_ids[index])
        found = self.shared.get(key)
        if found is None:
            found = frozenset(
                {flag for flag, bit in _FLAG_BITS.items() if key[0] & bit}
                | set(self.keyword_sets[key[1]])
            )
            self.shared[key] = found
        return found


class _Scan:
    """One pass over a mapped file: separators found with ``find``, bodies measured in chunks,
    header blocks read whole (one regex finds the fields the scan needs; line-by-line work only
    for the rare block with hidden fields). Nothing is done per line in Python."""

    def __init__(self, data: mmap.mmap, mtime: float, resume: Scanned | None) -> None:
        self.data = data
        self.mtime = mtime
        self.index = resume or Scanned()
        self.digest = resume.digest.copy() if resume and resume.digest else hashlib.sha256()
        self.keyword_ids = {words: n for n, words in enumerate(self.index.keyword_sets)}
        self.hashing = Hashing(self.digest)

    def run(self, pos: int) -> Scanned:
        data, length = self.data, len(self.data)
        here: int | None = pos if data[pos : pos + 5] == b"From " else self._separator(pos)
        released = 0
        try:
            while here is not None:
                eol = data.find(b"\n", here)
                if eol < 0:
                    break  # a separator line cut off: nothing of its message is there
                here = self._message(data[here : eol + 1], eol + 1)
                if here is not None and here - released > RELEASE:
                    # Pages read stay counted in this process until let go: keep the RSS flat.
                    released = here - here % mmap.PAGESIZE
                    data.madvise(mmap.MADV_DONTNEED, 0, released)
        finally:
            self.hashing.close()
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
        block = data[start:head_end]
        present = {m.group(1).lower() for m in _READ_FIELDS.finditer(block)}
        counted = _content_length(data, block, head_end) if b"content-length" in present else None
        following = self._separator(counted if counted is not None else head_end)
        end = len(data) if following is None else following
        end -= _blank_before(data, start, end)
        head = block[: max(min(head_end, end) - start, 0)]
        # The content hash sees the header without the flag fields: a flag change is no change.
        kept = clean_head(head, unquote=counted is None)
        content = hashlib.blake2b(kept, digest_size=16)
        feed = functools.partial(self.hashing.feed, content)
        body, quoted = _body_size(data, head_end, end, feed, unquote=counted is None)
        plain = not quoted and len(kept) == rfc822.crlf_size(head)  # nothing taken out
        bits = (0 if counted is None else COUNTED) | (PLAIN if plain else 0)
        size = len(kept) + body
        self._record(from_line, (start, end, len(head)), size, head, present, bits)
        self.hashing.message(from_line + str(size).encode(), content)
        return following

    def _record(
        self,
        from_line: bytes,
        where: tuple[int, int, int],
        size: int,
        head: bytes,
        present: set[bytes],
        bits: int,
    ) -> None:
        """Index one message: ``where`` is its (start, end, header length); ``bits`` to add to
        its flag bits (COUNTED, PLAIN)."""
        if not self.index.starts and b"x-imap" in present and _folder_data(head):
            return
        flags, words = _flags_of(head, present)
        index = self.index
        index.starts.append(where[0])
        index.ends.append(where[1])
        index.heads.append(where[2])
        index.sizes.append(size)
        undated_before = index.undated
        index.dates.append(int(self._date(from_line, head).timestamp()))
        undated = UNDATED_BIT if index.undated > undated_before else 0
        index.flag_bits.append(sum(_FLAG_BITS[f] for f in flags) | bits | undated)
        index.keyword_ids.append(self.keyword_ids.setdefault(words, len(self.keyword_ids)))
        if b"x-gmail-labels" not in present:
            return
        labels = rfc822.field_text(head, b"x-gmail-labels")
        if labels is not None:
            index.labels[len(index.starts) - 1] = _split_labels(labels)

    def _date(self, from_line: bytes, head: bytes) -> dt.datetime:
        dated = from_line_date(from_line)
        if dated is not None:
            return dated
        self.index.undated += 1
        return rfc822.header_date(head) or rfc822.from_epoch(self.mtime)


def _content_length(data: mmap.mmap, block: bytes, head_end: int) -> int | None:
    """Where a Content-Length body ends, when it ends just before a separator or the end of
    the file (Dovecot writes its mbox so, ``From `` lines unquoted); else None."""
    text = rfc822.field_text(block, b"content-length") or ""
    if not text.isdigit() or int(text) == 0:
        return None
    end = head_end + int(text)
    if data[end : end + 6] not in (b"", b"\n", b"\nFrom ", b"\r\nFrom"):
        return None
    return end


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


def _body_size(
    data: mmap.mmap, start: int, end: int, feed: Callable[[bytes], None], *, unquote: bool
) -> tuple[int, bool]:
    """The CRLF size of a body, read in chunks that end at line ends (flat memory), and whether
    quoting was undone in it; the raw bytes go to ``feed`` (the content hash)."""
    size, quoted = 0, False
    while start < end:
        stop = min(end, start + CHUNK)
        if stop < end:
            cut = data.rfind(b"\n", start, stop)
            stop = cut + 1 if cut >= start else stop
        chunk = data[start:stop]
        feed(chunk)
        size += len(chunk) + chunk.count(b"\n")
        if b"\r" in chunk:  # (a search at memchr speed: most files hold no CR at all)
            size -= chunk.count(b"\r\n")
        if unquote and b">From" in chunk:  # (faster to find than with its space; findall checks)
            lines = len(_QUOTED_FROM_LINES.findall(chunk))
            size, quoted = size - lines, quoted or lines > 0
        start = stop
    return size, quoted


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


def read_message(
    source: BinaryIO, where: tuple[int, int, int], *, unquote: bool = True, plain: bool = False
) -> bytes:
    """One message as handed out: hidden fields removed, quoting undone, CRLF line ends.
    ``where`` is (start, end, header length) from the index; ``plain`` (the index's PLAIN bit):
    nothing to take out, the message is read and its line ends set in one go. Else the header
    block and the body are read apart, the body touched by C-speed searches and replaces."""
    start, end, head_length = where
    source.seek(start)
    if plain:
        return rfc822.crlf(source.read(end - start))
    head = clean_head(source.read(head_length), unquote=unquote)
    body = source.read(end - start - head_length)
    if unquote and b">From " in body:
        body = _QUOTED_FROM_LINES.sub(_unquoted, body)
    return head + rfc822.crlf(body)


def read_head(source: BinaryIO, start: int, head_length: int) -> bytes:
    """The raw header block of a message (for its Message-ID), at most HEAD_LIMIT bytes."""
    source.seek(start)
    return source.read(min(head_length, rfc822.HEAD_LIMIT))
