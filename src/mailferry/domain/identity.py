"""Message identity: how the same message is recognised on both sides without our state.

A message with a Message-ID is identified by (Message-ID, INTERNALDATE, size); one without by the SHA-256
of its exact bytes. Identities are compared as multisets, so two identical messages stay two.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re

from mailferry.domain.model import MessageMeta

_FOLD = re.compile(rb"\r?\n[ \t]+")
_ANGLE = re.compile(r"<[^<>]*>")

IdentityKey = tuple[str, str, int, int] | tuple[str, str]


def normalise_message_id(raw_header: bytes | None) -> str | None:
    """The Message-ID from a raw ``Message-ID:`` header block, normalised; None when absent.

    Unfolds continuation lines, keeps the ``<...>`` part when present, and compares case-sensitively
    (local parts are case-sensitive) after stripping white space.
    """
    if not raw_header:
        return None
    unfolded = _FOLD.sub(b" ", raw_header).decode("utf-8", "replace")
    for line in unfolded.splitlines():
        name, sep, value = line.partition(":")
        if not sep or name.strip().lower() != "message-id":
            continue
        value = value.strip()
        angle = _ANGLE.search(value)
        found = angle.group(0) if angle else value
        found = "".join(found.split())
        return found or None
    return None


def epoch(moment: dt.datetime) -> int:
    """INTERNALDATE as whole seconds since the epoch (the wire format has second precision)."""
    return int(moment.timestamp())


def identity(meta: MessageMeta, *, with_size: bool = True) -> IdentityKey | None:
    """The key that recognises ``meta`` on another server; None when a content hash is needed first.

    ``with_size`` False: for a target that stores rewritten copies, where only the headers agree.
    """
    if meta.message_id:
        size = meta.size if with_size else -1
        return ("mid", meta.message_id, epoch(meta.internaldate), size)
    if meta.sha256:
        return ("sha", meta.sha256)
    return None


def identity_digest(key: IdentityKey) -> str:
    """``key`` as 32 hex digits (128 bits of SHA-256): what lost-state matching stores per target
    message, a fixed width whatever the Message-ID's length. Two different keys share a digest
    with probability 2**-128; among a million messages, any pair at all about 2**-89."""
    text = "\x00".join(str(part) for part in key)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]
