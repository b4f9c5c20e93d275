"""EXAMINE and the folder's metadata FETCH in one round trip (issue 17 rule 6).

A first pass over a small folder used to wait for its EXAMINE, then for the FETCH that lists it:
two round trips a folder, each a WAN round trip. Both are now written at once, through the raw
``Pipeline``; the server runs them in order (RFC 3501 5.5: a FETCH after the EXAMINE applies to
the folder it selected). The FETCH asks ``1:*``, so it is only asked for a folder the run's
snapshot found small (``planning.LISTING_AHEAD``); the listing is trusted only when its rows are exactly
messages 1 to the EXAMINE's EXISTS (a non-UID FETCH may not announce expunges, RFC 3501 7.4.1),
as ``ImapAccount._listing`` does chunk by chunk. Any other answer is no listing, and the pass
lists the folder as usual.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mailferry.adapters.imap.rows import by_uid, parse_rows
from mailferry.adapters.imap.wire import LITERAL_MARK, Pipeline, Tagged, quote_mailbox

_EXISTS = re.compile(rb"^\* (\d+) EXISTS", re.IGNORECASE)
_CODE = re.compile(rb"^\* OK \[([A-Z-]+)(?: ([^\]]*))?\]", re.IGNORECASE)
_FLAGS = re.compile(rb"^\* FLAGS \(([^)]*)\)", re.IGNORECASE)
FETCH_LINE = re.compile(rb"^\* (\d+) FETCH ", re.IGNORECASE)
_NUMBERS = (b"UIDVALIDITY", b"UIDNEXT", b"HIGHESTMODSEQ")


@dataclass
class Examined:
    """What came back: the EXAMINE's answer (as imapclient's ``select_folder`` shapes it), the
    tagged answers, and the FETCH's rows in imaplib's shape (lines and (line, literal) pairs)."""

    info: dict[bytes, Any] = field(default_factory=dict)
    examine: Tagged | None = None
    fetch: Tagged | None = None
    data: list[Any] = field(default_factory=list)

    def keep(self, line: bytes, literals: list[bytes]) -> None:
        """One untagged line of either answer."""
        if (found := FETCH_LINE.match(line)) is not None:
            self.data.extend(imaplib_shape(found.group(1), line[found.end() :], literals))
        elif (found := _EXISTS.match(line)) is not None:
            self.info[b"EXISTS"] = int(found.group(1))
        elif (found := _CODE.match(line)) is not None:
            key, value = found.group(1).upper(), (found.group(2) or b"").strip()
            if key in _NUMBERS and value.isdigit():
                self.info[key] = int(value)
            elif key == b"PERMANENTFLAGS":
                self.info[key] = tuple(value.strip(b"()").split())
        elif (found := _FLAGS.match(line)) is not None:
            self.info[b"FLAGS"] = tuple(found.group(1).split())

    def listing(self) -> dict[int, dict[str, Any]] | None:
        """Rows by UID of messages 1 to EXISTS, or None when that is not what came back."""
        exists = self.info.get(b"EXISTS")
        if self.fetch is None or exists is None:
            return None
        if exists == 0:
            return {}
        if self.fetch.status != "OK":
            return None
        found = by_uid(parse_rows(self.data), seqs=range(1, exists + 1))
        return found if len(found) == exists else None


@dataclass(frozen=True)
class Sent:
    """An EXAMINE and its listing FETCH written, their answers not read yet."""

    folder: str
    examine: bytes
    fetch: bytes


def send_examine_and_list(pipeline: Pipeline, folder: str, items: list[str]) -> Sent:
    """Write ``EXAMINE folder`` and ``FETCH 1:* (UID items)`` at once (``read_examined`` reads
    the answers: at once, or while the session is busy elsewhere, a round trip later)."""
    sent = Sent(folder, pipeline.next_tag(), pipeline.next_tag())
    spec = " ".join(["UID", *items]).encode("ascii")
    pipeline.send(
        b"%s EXAMINE %s\r\n%s FETCH 1:* (%s)\r\n"
        % (sent.examine, quote_mailbox(folder), sent.fetch, spec)
    )
    return sent


def read_examined(pipeline: Pipeline, sent: Sent) -> Examined:
    """Both answers to what ``send_examine_and_list`` wrote."""
    found = Examined()
    answers = pipeline.wait_tagged([sent.examine, sent.fetch], on_untagged=found.keep)
    found.examine, found.fetch = answers[sent.examine], answers[sent.fetch]
    return found


def imaplib_shape(seq: bytes, rest: bytes, literals: list[bytes]) -> list[Any]:
    """``* 3 FETCH (UID 7 BODY[...] {23}`` + literal + ``)`` as imaplib hands FETCH data over:
    ``[(b"3 (UID 7 BODY[...] {23}", literal), b")"]``."""
    pieces = (seq + b" " + rest.rstrip(b"\r\n")).split(LITERAL_MARK)
    shaped: list[Any] = [
        (piece + b"{%d}" % len(literal), literal)
        for piece, literal in zip(pieces, literals, strict=False)
    ]
    tail = pieces[len(literals)] if len(pieces) > len(literals) else b""
    return [*shaped, tail] if tail or not shaped else shaped
