"""STATUS of many folders in a few round trips: LIST-STATUS (RFC 5819) where the server offers it,
else STATUS commands pipelined on the one connection.

An account of 2,000 folders used to cost a no-op pass 2,000 STATUS round trips per side. With
LIST-STATUS it is one command; without it, STATUS commands go out in windows of ``WINDOW`` while
the answers to the window before are read, so the link is kept busy and neither side's socket
buffer can fill up with answers nobody reads (which would stall both ends).

Answers are keyed by the folder name's wire bytes (modified UTF-7, or the raw bytes of a
``RawName``), as the server writes them back; INBOX in any case is ``b"INBOX"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from mailferry.adapters.imap.wire import LITERAL_MARK, Pipeline, quote_mailbox, unescape

WINDOW = 100  # STATUS commands sent ahead of the answers being read (two windows in flight)
_STATUS = re.compile(rb"^\* STATUS (.*)\(([^()]*)\)\s*$", re.IGNORECASE | re.DOTALL)
_QUOTED = re.compile(rb'^"((?:[^"\\]|\\.)*)"', re.DOTALL)

Answers = dict[bytes, dict[bytes, int]]


def wire_name(name: str) -> bytes:
    """The bytes of ``name`` inside its quotes on the wire (the key of ``Answers``)."""
    return _key(unescape(quote_mailbox(name)[1:-1]))


def list_status(pipeline: Pipeline, items: Sequence[str]) -> Answers:
    """One ``LIST "" "*" RETURN (STATUS (...))``: the status of every selectable folder the
    server could read (RFC 5819 leaves out those it cannot, silently)."""
    found: Answers = {}
    tag = pipeline.next_tag()
    pipeline.send(b'%s LIST "" "*" RETURN (%s)\r\n' % (tag, status_option(items)))
    answer = pipeline.wait_tagged([tag], on_untagged=Collect(found))[tag]
    if answer.status != "OK":
        return {}  # the caller asks folder by folder, and learns each folder's reason then
    return found


def pipelined_status(pipeline: Pipeline, names: Iterable[str], items: Sequence[str]) -> Answers:
    """One STATUS per folder, ``WINDOW`` at a time written ahead of the answers; a folder the
    server refuses is left out (its own STATUS later says why)."""
    found: Answers = {}
    collect = Collect(found)
    spec = _items(items)
    outstanding: set[bytes] = set()
    batch: list[bytes] = []

    def flush() -> None:
        pipeline.send(b"".join(batch))
        batch.clear()
        pipeline.wait_tagged(outstanding, on_untagged=collect, leave=WINDOW)

    for name in names:
        tag = pipeline.next_tag()
        outstanding.add(tag)
        batch.append(b"%s STATUS %s (%s)\r\n" % (tag, quote_mailbox(name), spec))
        if len(batch) == WINDOW:
            flush()
    if batch:
        flush()
    pipeline.wait_tagged(outstanding, on_untagged=collect)
    return found


def status_option(items: Sequence[str]) -> bytes:
    """LIST's return option for ``items``: ``STATUS (...)``."""
    return b"STATUS (%s)" % _items(items)


def _items(items: Sequence[str]) -> bytes:
    return " ".join(items).encode("ascii")


class Collect:
    """Keeps each ``* STATUS name (...)`` line's items under the name's wire bytes (an
    ``on_untagged`` of ``Pipeline.wait_tagged``)."""

    def __init__(self, found: Answers) -> None:
        self.found = found

    def __call__(self, line: bytes, literals: list[bytes]) -> None:
        if line[:9].upper() != b"* STATUS ":  # LIST-STATUS interleaves a LIST line per folder
            return
        match = _STATUS.match(line.rstrip(b"\r\n"))
        if match is None:
            return
        raw = _name(match.group(1).strip(), literals)
        if raw is None:
            return
        words = match.group(2).split()
        self.found[_key(raw)] = {
            key.upper(): int(value)
            for key, value in zip(words[::2], words[1::2], strict=False)
            if value.isdigit()
        }


def _name(spelled: bytes, literals: list[bytes]) -> bytes | None:
    """The wire bytes of a mailbox as the server spelled it: literal, quoted string or atom."""
    if spelled == LITERAL_MARK:
        return literals[0] if literals else None
    quoted = _QUOTED.match(spelled)
    if quoted is not None:
        return unescape(quoted.group(1))
    return spelled or None


def _key(raw: bytes) -> bytes:
    return b"INBOX" if raw.upper() == b"INBOX" else raw
