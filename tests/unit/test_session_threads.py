"""One thread at a time in a real IMAP session (adapters/occupancy.py): a second thread
inside it at the same moment is refused at once, before it writes anything; the run's hand-overs
(one thread after the other, generators taken over or left half-read) are not. Scripted server,
no sockets: a held answer keeps the first thread inside its command for as long as the test likes."""

from __future__ import annotations

import ast
import datetime as dt
import gc
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import mailferry.adapters.imap.account as imap_account
from mailferry.adapters.imap.account import ImapAccount
from mailferry.adapters.imap.session import Credentials
from mailferry.adapters.memory.account import MemoryAccount, MemoryServer
from mailferry.adapters.memory.state import MemoryStateStore
from mailferry.domain.errors import ConcurrentUseError, MailferryError
from mailferry.domain.model import MessageMeta
from mailferry.service.migrate import Migration
from mailferry.service.prefetch import Prefetch
from tests.fakes import MemorySessions, fill, message
from tests.unit.test_session_opening import (
    DOVECOT,
    ENDPOINT,
    ScriptedClient,
    ScriptedImap,
    _login,
)

PAIR = "src -> dst"
IMAP_ADAPTER = Path(imap_account.__file__).parent
WHEN = dt.datetime(2013, 7, 14, 9, 30, 5, tzinfo=dt.UTC)
HELD = 5.0  # seconds a held answer waits at most: a check that let the intruder in fails so

LOGIN = b"TAG OK [CAPABILITY IMAP4rev1 LITERAL+ NAMESPACE] Logged in\r\n"
NAMESPACE = b'* NAMESPACE (("" "/")) NIL NIL\r\nTAG OK done\r\n'
EXAMINED = (
    b"* FLAGS (\\Seen \\Answered)\r\n* OK [PERMANENTFLAGS (\\Seen)] ok\r\n* 5 EXISTS\r\n"
    b"* OK [UIDVALIDITY 7] ok\r\n* OK [UIDNEXT 6] ok\r\nTAG OK [READ-ONLY] done\r\n"
)


def uids_answer(*uids: int) -> bytes:
    return b"".join(b"* %d FETCH (UID %d)\r\n" % (u, u) for u in uids) + b"TAG OK done\r\n"


def meta_answer(*uids: int) -> bytes:
    rows = b"".join(
        b'* %d FETCH (UID %d FLAGS (\\Seen) INTERNALDATE "14-Jul-2013 09:30:05 +0000" '
        b"RFC822.SIZE 5)\r\n" % (u, u)
        for u in uids
    )
    return rows + b"TAG OK done\r\n"


def bodies_answer(*uids: int) -> bytes:
    rows = b"".join(b"* %d FETCH (UID %d BODY[] {5}\r\nbody%d)\r\n" % (u, u, u) for u in uids)
    return rows + b"TAG OK done\r\n"


def meta(uid: int) -> MessageMeta:
    return MessageMeta(uid, frozenset(), WHEN, 5)


class HeldImap(ScriptedImap):
    """A script whose answers, once ``hold`` is called, are read only after ``release``: the
    thread reading one stays inside its command meanwhile (``inside`` says it is there)."""

    def __init__(self, replies: list[bytes]) -> None:
        self.inside = threading.Event()
        self._open_gate = threading.Event()  # set before imaplib reads the greeting
        self._open_gate.set()
        super().__init__(DOVECOT, [LOGIN, *replies])

    def hold(self) -> None:
        self.inside.clear()
        self._open_gate.clear()

    def release(self) -> None:
        self._open_gate.set()

    def readline(self) -> bytes:
        if not self._open_gate.is_set():
            self.inside.set()
            self._open_gate.wait(timeout=HELD)
            self._open_gate.set()  # held once at most: a failing test fails in seconds
        return super().readline()


def scripted(*replies: bytes) -> tuple[ImapAccount, HeldImap]:
    """A logged-in read-only session with INBOX selected; ``replies`` answer what comes next."""
    imap = HeldImap([NAMESPACE, EXAMINED, *replies])
    client = ScriptedClient(imap)
    _login(client, ENDPOINT, Credentials("pw"))
    account = ImapAccount(client, readonly=True)
    assert account.permanent_flags("INBOX") == {"\\Seen"}  # selects INBOX
    return account, imap


def on_thread(name: str, call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """``call()`` started on a thread of its own; its result (or error) lands in the list."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except BaseException as exc:  # handed to the test's thread
            out.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread, out


INTRUDERS: dict[str, Callable[[ImapAccount], object]] = {
    "status": lambda a: a.status("Other"),
    "fetch_meta": lambda a: list(a.fetch_meta("INBOX", [1])),
    "fetch_messages": lambda a: list(a.fetch_messages("INBOX", [meta(1)])),
    "send_bodies": lambda a: a.send_bodies("INBOX", [meta(1)]),
    "create_folder": lambda a: a.create_folder("New"),
}


@pytest.mark.parametrize("intruder", INTRUDERS)
def test_a_second_thread_inside_a_session_at_once_is_refused_before_it_writes(intruder):
    account, imap = scripted(uids_answer(1, 2, 3, 4, 5))
    imap.hold()
    reader, marks = on_thread("reader", lambda: account.uid_marks("INBOX", 1))
    try:
        assert imap.inside.wait(timeout=HELD)  # the reader is waiting for its FETCH's answer
        written = len(imap.writes)
        started = time.monotonic()
        with pytest.raises(ConcurrentUseError) as refused:
            INTRUDERS[intruder](account)
        assert time.monotonic() - started < 1.0  # at once, not after a timeout
        assert len(imap.writes) == written  # nothing of the intruder's on the wire
    finally:
        imap.release()
        reader.join(timeout=HELD)
    assert (refused.value.holder, refused.value.entrant) == ("reader", "MainThread")
    assert not isinstance(refused.value, MailferryError)  # a defect: nothing retries it
    assert marks == [[1, 2, 3, 4, 5]]  # the reader's answer was its own, whole


def test_a_session_handed_from_thread_to_thread_is_not_refused():
    """As a run hands it over: a lane's thread, ``both``'s thread, ``Prefetch``'s reading
    thread, each after the one before has left; what one thread asked ahead (``send_bodies``)
    read by the next."""
    account, _imap = scripted(
        EXAMINED,  # another folder's status, on ``both``'s thread
        EXAMINED,  # INBOX selected again, here
        uids_answer(2, 4),
        bodies_answer(1, 2),  # asked ahead on the reading thread, read here
        EXAMINED,
        uids_answer(1, 2, 3, 4, 5),
    )
    thread, out = on_thread("both", lambda: account.status("Other").exists)
    thread.join(timeout=HELD)
    assert out == [5]
    assert account.uid_marks("INBOX", 2) == [2, 4]
    thread, out = on_thread("reading", lambda: account.send_bodies("INBOX", [meta(1), meta(2)]))
    thread.join(timeout=HELD)
    assert out == [True]
    fetched = list(account.fetch_messages("INBOX", [meta(1), meta(2)]))  # read on this thread
    assert [m.body.read() for m in fetched] == [b"body1", b"body2"]
    thread, out = on_thread("next lane", lambda: account.uid_marks("INBOX", 1))
    thread.join(timeout=HELD)
    assert out == [[1, 2, 3, 4, 5]]


def test_a_stream_taken_over_by_the_reading_thread_and_left_half_read_is_not_refused(
    monkeypatch,
):
    """``fetch_meta`` in FETCHes of two messages: started here, continued by ``Prefetch``'s
    reading thread (its second FETCH sent there), left suspended when the copy stops, the session
    used meanwhile by this thread and another, and the stream closed as the garbage collector
    closes it, on a thread of its own."""
    monkeypatch.setattr(imap_account, "META_CHUNK", 2)
    account, imap = scripted(
        meta_answer(1, 2), meta_answer(3, 4), EXAMINED, uids_answer(1, 2, 3, 4, 5)
    )
    stream = account.fetch_meta("INBOX", [1, 2, 3, 4, 5])
    taken = [next(stream).uid]  # the first FETCH, on this thread
    with Prefetch(stream, discard=lambda _m: None) as ahead:
        for got in ahead:
            taken.append(got.uid)
            if got.uid == 3:  # the second FETCH was sent by the reading thread
                break
    assert taken == [1, 2, 3]
    assert account.status("INBOX").exists == 5  # the suspended stream holds nothing
    thread, out = on_thread("lane", lambda: account.uid_marks("INBOX", 1))
    thread.join(timeout=HELD)
    assert out == [[1, 2, 3, 4, 5]]
    thread, out = on_thread("collector", stream.close)
    thread.join(timeout=HELD)
    assert out == [None]
    del stream
    gc.collect()
    assert sum(line.count(b" FETCH ") for line in imap.lines) == 3  # 1:2, 3:4, the marks


def test_no_generator_yields_inside_a_command():
    """What keeps a suspended generator from holding the session (adapters/occupancy.py): no ``yield``
    is written inside ``with self._guard(...)`` or ``with self._occupancy``, but in ``_guard``
    itself, whose ``yield`` is the command's body."""
    found = []
    for path in sorted(IMAP_ADAPTER.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if function.name == "_guard":
                continue
            for block in ast.walk(function):
                if not isinstance(block, ast.With):
                    continue
                held = [ast.unparse(item.context_expr) for item in block.items]
                if not any("_guard" in h or "_occupancy" in h for h in held):
                    continue
                yields = [n for n in ast.walk(block) if isinstance(n, ast.Yield | ast.YieldFrom)]
                found.extend(f"{path.name}:{n.lineno}" for n in yields)
    assert not found


class Misused(MemoryAccount):
    """A target whose APPEND finds another thread inside the session."""

    def append_batch(self, folder, requests):
        raise ConcurrentUseError("reader", "MainThread", "append_batch")


def test_concurrent_use_ends_the_run_at_once_never_retried():
    src, dst = MemoryServer(), MemoryServer()
    fill(src, "INBOX", [message(n) for n in range(3)])
    sessions = MemorySessions(src, dst)
    store = MemoryStateStore()
    migration = Migration(MemoryAccount(src), Misused(dst), store, PAIR, reconnect=sessions)
    with pytest.raises(ConcurrentUseError, match="two threads at once"):
        migration.run()
    assert sessions.opened == []  # no reconnect, no retry
    assert migration.summary.reconnects == 0


# -- the memory fake takes the same check -------------------------------------------------------

FAKE_INTRUDERS: dict[str, Callable[[MemoryAccount, list[MessageMeta]], object]] = {
    "status": lambda a, _m: a.status("INBOX"),
    "list_folders": lambda a, _m: a.list_folders(),
    "fetch_meta": lambda a, _m: next(a.fetch_meta("INBOX")),
    "fetch_flags": lambda a, _m: next(a.fetch_flags("INBOX")),
    "fetch_messages": lambda a, metas: next(a.fetch_messages("INBOX", metas)),
}


@pytest.mark.parametrize("intruder", FAKE_INTRUDERS)
def test_the_memory_fake_refuses_a_second_thread_as_the_real_session_does(intruder):
    """Unit tests run the service on the fake: a second thread inside its session at once must
    fail there as it would on a real server, the FETCH streams and the listing included."""
    server = MemoryServer()
    fill(server, "INBOX", [message(n) for n in range(3)])
    account = MemoryAccount(server)
    metas = list(account.fetch_meta("INBOX"))
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:  # inside ``statuses``, as a thread waiting for its LIST-STATUS answer
        inside.set()
        release.wait(HELD)

    server.on_statuses = hold
    reader, out = on_thread("reader", lambda: account.statuses(["INBOX"]))
    try:
        assert inside.wait(timeout=HELD)
        with pytest.raises(ConcurrentUseError) as refused:
            FAKE_INTRUDERS[intruder](account, metas)
    finally:
        release.set()
        reader.join(timeout=HELD)
    assert (refused.value.holder, refused.value.entrant) == ("reader", "MainThread")
    assert [list(found) for found in out] == [["INBOX"]]  # the reader's answer, whole


def test_a_memory_stream_suspended_between_rows_holds_nothing():
    """As on the real session: a stream started here, the session used by this thread while it
    is suspended, then the stream read to its end by another thread."""
    server = MemoryServer()
    fill(server, "INBOX", [message(n) for n in range(3)])
    account = MemoryAccount(server)
    stream = account.fetch_meta("INBOX")
    first = next(stream).uid
    assert account.status("INBOX").exists == 3
    thread, out = on_thread("reading", lambda: [m.uid for m in stream])
    thread.join(timeout=HELD)
    assert [first, *out[0]] == [1, 2, 3]
