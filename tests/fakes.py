"""Helpers for tests on the in-memory server (named fakes: they stand in for IMAP servers)."""

from __future__ import annotations

import datetime as dt
import hashlib
import mailbox
from collections import Counter
from pathlib import Path

from mailferry.adapters.memory.account import MemoryAccount, MemoryServer
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


class MemorySessions:
    """The scheduler's ``Sessions`` on two memory servers: every call opens a new session."""

    def __init__(self, source: MemoryServer, target: MemoryServer) -> None:
        self._servers = (source, target)
        self.opened: list[MemoryAccount] = []
        self.closed = False

    def source(self) -> MemoryAccount:
        return self._open(0)

    def target(self) -> MemoryAccount:
        return self._open(1)

    def _open(self, index: int) -> MemoryAccount:
        account = MemoryAccount(self._servers[index])
        self.opened.append(account)
        return account

    def close(self) -> None:
        self.closed = True


class MemoryConnector:
    """The scheduler's ``JobConnector`` on memory servers (one pair per mailbox address), recording
    every job it connects. Token providers come from ``tokens`` (bootstrap's own ``BatchConnector``,
    to see how it shares them) or are none."""

    def __init__(self, tokens=None) -> None:
        self._tokens = tokens
        self.jobs: list = []
        self.servers: dict[str, tuple[MemoryServer, MemoryServer]] = {}
        self.sessions: list[MemorySessions] = []

    def tokens(self, record, user):
        return None if self._tokens is None else self._tokens.tokens(record, user)

    def graph(self, record):
        """No endpoint here is Microsoft 365 through Graph."""
        del record

    def mailboxes(self, job):
        raise AssertionError(f"no Graph mailboxes on memory servers ({job.mailbox.email})")

    def connect(self, job):
        self.jobs.append(job)
        pair = self.servers.setdefault(job.mailbox.email, (MemoryServer(), MemoryServer()))
        sessions = MemorySessions(*pair)
        self.sessions.append(sessions)
        return sessions


def run_batch(service, batch: str, connector: MemoryConnector) -> dict:
    """Start ``batch`` and run it to the end on ``connector`` with in-memory sync state; the
    jobs the scheduler built, by mailbox address."""
    import threading  # noqa: PLC0415 - only this helper needs it

    from mailferry.adapters.memory.state import MemoryStateStore  # noqa: PLC0415
    from mailferry.service.scheduler import Scheduler  # noqa: PLC0415

    service.start(batch)
    scheduler = Scheduler(service, connector, MemoryStateStore, batch=batch, poll=0.01)
    scheduler.run(threading.Event(), until_idle=True)
    return {job.mailbox.email: job for job in connector.jobs}


# Google Takeout's X-Gmail-Labels of five messages: two in the inbox (one also "Work, old"), one
# sent, one starred only (so in All Mail), one spam.
TAKEOUT_LABELS = (
    "Inbox,Opened",
    'Inbox,"Work, old",Unread',
    "Sent,Opened",
    "Starred,Opened",
    "Spam",
)


def write_takeout(path: Path) -> Path:
    """A Takeout-style mbox at ``path``, one message per ``TAKEOUT_LABELS`` (Message-ID <tN@x>)."""
    box = mailbox.mbox(path)
    for n, label in enumerate(TAKEOUT_LABELS):
        box.add(f"Message-ID: <t{n}@x>\nX-Gmail-Labels: {label}\n\n{n}\n".encode())
    box.close()
    return path
