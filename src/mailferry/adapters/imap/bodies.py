"""A burst's bodies asked for before the burst ahead of it is read (issue 17 rule 6).

A copy's reading thread fetched a burst, handed it over, then sent the next burst's ``UID FETCH``:
between two bursts the source session sat idle for a round trip, about a third of a lane's time
at 100 ms round trips (a ~5 MB burst arrives in a few milliseconds on its own). The next burst's
``UID FETCH`` is now written before this burst's answer is read (``send_bodies``), so its answer
is on its way while this one is parsed, hashed and handed to the writer. The server answers the
commands' tagged answers in order, but it may run two FETCH commands at once and interleave their
untagged answers (RFC 3501 5.5; Dovecot does): a row read while waiting for one burst's answer
may be the next burst's. Rows say their UID, not their command, so each is filed by UID
(``Stash``): this burst's, a later burst's (kept for it), or nobody's (dropped). What is not read
yet waits in the socket (and the server), not in our memory. Nothing is promised for bodies
asked ahead: they are only read, and a burst never taken has its answer read and dropped before
the session's next command (``ImapAccount._read_ahead``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mailferry.adapters.imap.examine import FETCH_LINE, imaplib_shape
from mailferry.adapters.imap.rows import BODY, by_uid, parse_rows
from mailferry.adapters.imap.wire import Pipeline, Tagged, uid_sets


@dataclass(frozen=True)
class SentBodies:
    """``UID FETCH (UID BODY.PEEK[])`` of ``uids`` written (one command per UID set that keeps
    the command line short), the answers not read yet."""

    folder: str
    uids: tuple[int, ...]
    tags: tuple[bytes, ...]

    @property
    def key(self) -> tuple[str, tuple[int, ...]]:
        return self.folder, self.uids


@dataclass
class Bodies:
    """What came back for a ``SentBodies``: the tagged answers and the rows by UID."""

    answers: dict[bytes, Tagged] = field(default_factory=dict)
    data: list[Any] = field(default_factory=list)

    def keep(self, line: bytes, literals: list[bytes]) -> None:
        """One untagged line: a FETCH row kept in imaplib's shape, anything else dropped (an
        EXISTS or EXPUNGE changes nothing fetched by UID)."""
        if (found := FETCH_LINE.match(line)) is not None:
            self.data.extend(imaplib_shape(found.group(1), line[found.end() :], literals))

    def refused(self) -> Tagged | None:
        """The first answer that is not OK, if any."""
        return next((a for a in self.answers.values() if a.status != "OK"), None)

    def rows(self, uids: frozenset[int]) -> dict[int, dict[str, Any]]:
        return by_uid(parse_rows(self.data), uids=uids)


def send_bodies(pipeline: Pipeline, folder: str, uids: tuple[int, ...]) -> SentBodies:
    """Write the ``UID FETCH`` commands of these messages' bodies (``read_bodies`` reads them)."""
    commands = []
    tags = []
    for piece in uid_sets(uids):
        tags.append(pipeline.next_tag())
        commands.append(b"%s UID FETCH %s (UID BODY.PEEK[])\r\n" % (tags[-1], piece.encode()))
    pipeline.send(b"".join(commands))
    return SentBodies(folder, uids, tuple(tags))


def read_bodies(pipeline: Pipeline, sent: SentBodies) -> Bodies:
    """The answers to what ``send_bodies`` wrote, with any rows that came in among them."""
    found = Bodies()
    found.answers = pipeline.wait_tagged(list(sent.tags), on_untagged=found.keep)
    return found


class Stash:
    """Rows of bursts still to be read that came in while an earlier burst's answer was read."""

    def __init__(self) -> None:
        self._rows: dict[int, dict[str, Any]] = {}

    def file(
        self, found: Bodies, sent: SentBodies, later: Iterable[SentBodies]
    ) -> dict[int, dict[str, Any]]:
        """``sent``'s rows (those stashed before and those in ``found``); the rows of the
        bursts ``later`` stashed for them; any other row dropped."""
        rows = {uid: self._rows.pop(uid) for uid in sent.uids if uid in self._rows}
        mine = frozenset(sent.uids)
        wanted = mine.union(*(s.uids for s in later))
        for uid, row in found.rows(wanted).items():
            kept = rows if uid in mine else self._rows
            kept.setdefault(uid, {}).update(row)  # two rows of one message: as ``by_uid``
        return rows


_ORIGIN = re.compile(rb"BODY\[\]<(\d+)>", re.IGNORECASE)


def fetch_in_parts(
    pipeline: Pipeline, uid: int, chunk: int, write: Callable[[bytes], None]
) -> tuple[int, Tagged | None]:
    """A large message's bytes, ``chunk`` at a time (``UID FETCH uid BODY.PEEK[]<offset.chunk>``),
    handed to ``write`` in order; the next part's FETCH is written before this one is read, so
    a message of N parts costs one round trip, not N. At most two parts are asked at once: a
    server that interleaves their answers (RFC 3501 5.5) holds at most one part here early.
    Returns the bytes written (0: the message is gone) and the refusal, if any."""
    parts: dict[int, bytes] = {}
    tags: dict[int, bytes] = {}

    def keep(line: bytes, literals: list[bytes]) -> None:
        found = FETCH_LINE.match(line)
        origin = _ORIGIN.search(line)
        if found is None or origin is None:
            return
        rows = by_uid(parse_rows(imaplib_shape(found.group(1), line[found.end() :], literals)))
        part = rows.get(uid, {}).get(BODY)
        if isinstance(part, bytes):  # an empty part may come as "" rather than {0}
            parts[int(origin.group(1))] = part

    def ask(offset: int) -> None:
        tags[offset] = pipeline.next_tag()
        pipeline.send(
            b"%s UID FETCH %d (UID BODY.PEEK[]<%d.%d>)\r\n" % (tags[offset], uid, offset, chunk)
        )

    offset = 0
    ask(0)
    while True:
        ask(offset + chunk)  # the next part, in case this one is not the last
        answer = pipeline.wait_tagged([tags.pop(offset)], on_untagged=keep)
        part = parts.pop(offset, None)
        refused = next((a for a in answer.values() if a.status != "OK"), None)
        if refused is None and part:
            write(part)
        if refused is not None or part is None or len(part) < chunk:
            pipeline.wait_tagged(list(tags.values()), on_untagged=keep)  # asked for in vain
            return offset + len(part or b"") if refused is None else offset, refused
        offset += len(part)
