"""Helpers for tests on the in-memory server (named fakes: they stand in for IMAP servers)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter

from mailferry.adapters.memory_account import MemoryServer
from mailferry.domain.plan import Selection, target_flags

BASE = dt.datetime(2010, 1, 1, tzinfo=dt.UTC)


def message(n: int, *, mid: bool = True, body: str = "") -> bytes:
    head = f"Message-ID: <m{n}@example.com>\r\n" if mid else ""
    return (f"{head}Subject: message {n}\r\nFrom: a@example.com\r\n\r\n{body or n}\r\n").encode()


def message_key(body: bytes, when: dt.datetime) -> tuple[str, int]:
    """A message as the invariants compare it: (SHA-256 of its bytes, INTERNALDATE in seconds)."""
    return hashlib.sha256(body).hexdigest(), int(when.timestamp())


def fill(
    server: MemoryServer, folder: str, bodies: list[bytes], *, flags=frozenset({"\\Seen"})
) -> None:
    box = server.create(folder)
    for i, body in enumerate(bodies):
        box.add(body, frozenset(flags), BASE + dt.timedelta(days=i, seconds=i))


def contents(server: MemoryServer, folder: str) -> Counter[tuple[str, int, frozenset[str]]]:
    """The multiset of (sha256, INTERNALDATE, writable flags) of a folder."""
    out: Counter[tuple[str, int, frozenset[str]]] = Counter()
    for m in server.folder(folder).messages.values():
        flags, _ = target_flags(m.flags, frozenset({"\\*"}), Selection())
        out[(hashlib.sha256(m.body).hexdigest(), int(m.internaldate.timestamp()), flags)] += 1
    return out


def live_contents(server: MemoryServer, folder: str) -> Counter[tuple[str, int, frozenset[str]]]:
    """Like contents(), leaving out messages flagged \\Deleted (they are not copied by default)."""
    out: Counter[tuple[str, int, frozenset[str]]] = Counter()
    for m in server.folder(folder).messages.values():
        if "\\Deleted" in m.flags:
            continue
        flags, _ = target_flags(m.flags, frozenset({"\\*"}), Selection())
        out[(hashlib.sha256(m.body).hexdigest(), int(m.internaldate.timestamp()), flags)] += 1
    return out
