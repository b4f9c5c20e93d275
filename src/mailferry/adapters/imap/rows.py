"""FETCH answers read by meaning, not by the exact bytes of their item names.

A server may name an item otherwise than it was asked for: Courier answers
``BODY[HEADER.FIELDS ("MESSAGE-ID")]`` to ``BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]`` (legal IMAP: the
field names are astrings), and partial bodies come back as ``BODY[]<0>``. Item names are therefore
normalised before they are looked up (``item_name``).

A server may also push FETCH responses nobody asked for, during any command: ``* 5 FETCH (FLAGS
(\\Seen))`` when another session changed a flag. Such a row carries no UID, or a message outside the
set asked for; results keyed by UID leave it out (``by_uid``), so it can never be filed under the
wrong message.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from imapclient.exceptions import ProtocolError

from mailferry.adapters.imap.atoms import parse_atoms

_SPACE_IN_PARENS = re.compile(r"\(\s+|\s+\)")
_ORIGIN = re.compile(r"<\d+>$")

MESSAGE_ID = "BODY[HEADER.FIELDS (MESSAGE-ID)]"
BODY = "BODY[]"


@dataclass(frozen=True)
class FetchRow:
    """One ``* n FETCH (...)`` response: its sequence number, its UID if it has one, its items."""

    seq: int
    uid: int | None
    items: dict[str, Any]


@functools.lru_cache(maxsize=256)  # a server names a handful of items, a million times over
def item_name(raw: bytes | str) -> str:
    """``BODY[HEADER.FIELDS ("Message-ID")]`` -> ``BODY[HEADER.FIELDS (MESSAGE-ID)]``; ``BODY[]<0>`` ->
    ``BODY[]``; ``BODY.PEEK[...]`` (as asked) -> ``BODY[...]`` (as answered)."""
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    text = " ".join(text.upper().replace('"', "").split())
    text = _SPACE_IN_PARENS.sub(lambda m: m.group(0).strip(), text)
    text = text.replace(".PEEK[", "[")
    return _ORIGIN.sub("", text)


def parse_rows(data: Sequence[Any]) -> Iterator[FetchRow]:
    """imaplib's FETCH data (lines and ``(line, literal)`` pairs) -> rows, in the order received."""
    lines = [d for d in data if d is not None]
    if not lines:
        return
    atoms = iter(parse_atoms(lines))
    for seq in atoms:
        body = next(atoms, None)
        if not isinstance(seq, int) or not isinstance(body, tuple) or len(body) % 2:
            raise ProtocolError(f"malformed FETCH response for message {seq!r}")
        items: dict[str, Any] = {}
        uid: int | None = None
        for name, value in zip(body[::2], body[1::2], strict=True):
            key = item_name(name)
            if key == "UID":
                uid = int(value)
            else:
                items[key] = value
        yield FetchRow(seq, uid, items)


def by_uid(
    rows: Iterable[FetchRow],
    *,
    seqs: range | None = None,
    uids: AbstractSet[int] | None = None,
    having: str | None = None,
) -> dict[int, dict[str, Any]]:
    """Rows with a UID, keyed by UID: only those of messages ``seqs`` or ``uids`` (when given) and
    those with the item ``having``. Two rows of one message are merged (a flag change the server
    pushes after the row asked for is the newer truth)."""
    found: dict[int, dict[str, Any]] = {}
    for row in rows:
        if row.uid is None or (seqs is not None and row.seq not in seqs):
            continue
        if (uids is not None and row.uid not in uids) or (having and having not in row.items):
            continue
        found.setdefault(row.uid, {}).update(row.items)
    return found
