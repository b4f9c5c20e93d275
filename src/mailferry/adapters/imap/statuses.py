"""STATUS of many folders in a few round trips: LIST-STATUS (RFC 5819) where the server offers it,
else STATUS commands pipelined on the one connection.

An account of 2,000 folders used to cost a no-op pass 2,000 STATUS round trips per side. With
LIST-STATUS it is one command; without it, STATUS commands go out in windows of ``WINDOW`` while
the answers to the window before are read, so the link is kept busy and neither side's socket
buffer can fill up with answers nobody reads (which would stall both ends).

Answers are keyed by the folder name's wire bytes (modified UTF-7, or the raw bytes of a
``RawName``), as the server writes them back; INBOX in any case is ``b"INBOX"``.

INBOX is opened (EXAMINE) before a LIST-STATUS and closed after it, in the same round trip
(``list_inbox_open``). Dovecot on Maildir, once a session has listed any folder, re-reads INBOX's
whole ``dovecot-uidlist`` for every STATUS of INBOX, LIST-STATUS's included (profiled with perf:
its filename hash table rebuilt each time): 0.4-0.5 s at 200,000 messages, ~2 s at a million, on
every no-op pass, where the STATUS of the selected INBOX comes from the mailbox it has open (1 ms).
Nothing else changes: the EXAMINE is read-only, nothing is expunged by the CLOSE after it (RFC
3501 6.4.2), and a server that leaves the selected folder out of LIST-STATUS has INBOX's status
taken from the EXAMINE's answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from mailferry.adapters.imap.examine import Examined
from mailferry.adapters.imap.wire import LITERAL_MARK, Pipeline, Tagged, quote_mailbox, unescape
from mailferry.domain.responses import slow_down

# An EXAMINE's answer as STATUS items (EXISTS is MESSAGES; HIGHESTMODSEQ comes with CONDSTORE
# enabled, and NOMODSEQ leaves it out, as STATUS does).
_AS_STATUS = {
    b"UIDVALIDITY": b"UIDVALIDITY",
    b"UIDNEXT": b"UIDNEXT",
    b"EXISTS": b"MESSAGES",
    b"HIGHESTMODSEQ": b"HIGHESTMODSEQ",
}
WINDOW = 100  # STATUS commands sent ahead of the answers being read (two windows in flight)
_STATUS = re.compile(rb"^\* STATUS (.*)\(([^()]*)\)\s*$", re.IGNORECASE | re.DOTALL)
_QUOTED = re.compile(rb'^"((?:[^"\\]|\\.)*)"', re.DOTALL)

Answers = dict[bytes, dict[bytes, int]]


def wire_name(name: str) -> bytes:
    """The bytes of ``name`` inside its quotes on the wire (the key of ``Answers``)."""
    return _key(unescape(quote_mailbox(name)[1:-1]))


def list_status(pipeline: Pipeline, items: Sequence[str], *, close: bytes | None) -> Answers:
    """One ``LIST "" "*" RETURN (STATUS (...))``: the status of every selectable folder the
    server could read (RFC 5819 leaves out those it cannot, silently). ``close``: see
    ``list_inbox_open``."""
    found: Answers = {}
    command = b'LIST "" "*" RETURN (%s)' % status_option(items)
    answer = list_inbox_open(pipeline, command, items, Collect(found), close, found)
    if answer.status != "OK":
        return {}  # the caller asks folder by folder, and learns each folder's reason then
    return found


def list_inbox_open(
    pipeline: Pipeline,
    command: bytes,
    items: Sequence[str],
    on_untagged: Callable[[bytes, list[bytes]], None],
    close: bytes | None,
    found: Answers,
) -> Tagged:
    """``command`` (a LIST asking STATUS ``items``) between ``EXAMINE INBOX`` and ``close``
    (``UNSELECT``, or ``CLOSE`` where that is not offered), written at once (see the module
    docstring); its tagged answer. INBOX's status is added to ``found`` from the EXAMINE's
    answer when the LIST brought none; a refused EXAMINE is ignored (the LIST does without),
    unless it asks to slow down. Only for a session with no folder selected, which it ends with
    none selected; ``close`` None (a folder is selected, or no STATUS asked) sends the LIST
    alone."""
    if close is None:
        tag = pipeline.next_tag()
        pipeline.send(b"%s %s\r\n" % (tag, command))
        return pipeline.wait_tagged([tag], on_untagged=on_untagged)[tag]
    tags = [pipeline.next_tag() for _ in range(3)]
    pipeline.send(
        b"%s EXAMINE INBOX\r\n%s %s\r\n%s %s\r\n" % (tags[0], tags[1], command, tags[2], close)
    )
    inbox = Examined()

    def both(line: bytes, literals: list[bytes]) -> None:
        inbox.keep(line, literals)
        on_untagged(line, literals)

    answers = pipeline.wait_tagged(tags, on_untagged=both)
    examine = answers[tags[0]]
    if examine.status != "OK":
        throttled = slow_down(examine.text.decode("utf-8", "replace"), "server asks to slow down")
        if throttled is not None:  # honoured as any command's: asked again after the wait
            raise throttled
    elif b"INBOX" not in found:
        status = {_AS_STATUS[k]: v for k, v in inbox.info.items() if k in _AS_STATUS}
        if {b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES"} <= status.keys():
            asked = {item.encode("ascii") for item in items}
            found[b"INBOX"] = {key: value for key, value in status.items() if key in asked}
    return answers[tags[1]]


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
