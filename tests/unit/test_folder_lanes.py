"""One big folder's first pass over several sessions (service/folderlanes.py), on the in-memory
fake: every message once, whichever lane copied it, through drops, stops and re-runs."""

from __future__ import annotations

import threading
import time

import pytest

from mailferry.adapters.memory.account import MemoryAccount, MemoryServer
from mailferry.adapters.memory.state import MemoryStateStore
from mailferry.domain.ports import StateStore
from mailferry.service.migrate import Migration, SyncOptions
from mailferry.service.resilience import RetryPolicy
from tests.fakes import contents, fill, message

PAIR = "src -> dst"
FAST = RetryPolicy(attempts=4, base_wait=0.0, max_wait=0.0)
MESSAGES = 60
WINDOW = 10  # six windows


class Sessions:
    """Reconnect factory counting sessions; target sessions ``breaking`` (by their number,
    from 1) drop after ``after`` appends."""

    def __init__(
        self, src: MemoryServer, dst: MemoryServer, breaking: set[int] | None = None, after: int = 5
    ) -> None:
        self.src, self.dst, self.breaking, self.after = src, dst, breaking or set(), after
        self.sources = self.targets = 0

    def source(self) -> MemoryAccount:
        self.sources += 1
        return MemoryAccount(self.src)

    def target(self) -> MemoryAccount:
        self.targets += 1
        crash = self.after if self.targets in self.breaking else None
        return MemoryAccount(self.dst, crash_after=crash)


def one_big_folder() -> tuple[MemoryServer, MemoryServer]:
    src, dst = MemoryServer(), MemoryServer(delimiter=".")
    fill(src, "INBOX", [message(i, mid=i % 7 != 0) for i in range(MESSAGES)])
    return src, dst


def run(sessions: Sessions, store: StateStore, *, connections: int = 3, **kw: object) -> Migration:
    options = SyncOptions(
        batch_count=4,
        retry=FAST,
        connections=connections,
        window=WINDOW,
        share_big_folders=bool(kw.pop("share", True)),
    )
    migration = Migration(
        sessions.source(), sessions.target(), store, PAIR, options, reconnect=sessions, **kw
    )
    migration.run()
    return migration


def test_the_windows_are_shared_out_over_every_session_and_copied_once():
    src, dst = one_big_folder()
    sessions, store = Sessions(src, dst), MemoryStateStore()
    m = run(sessions, store)
    assert (sessions.sources, sessions.targets) == (3, 3)  # the run's lane and two helpers
    assert m.summary.failures == []
    assert m.summary.messages_copied == MESSAGES
    assert contents(dst, "INBOX") == contents(src, "INBOX")
    assert len(store.copied(PAIR, "INBOX")) == MESSAGES
    assert store.intents(PAIR, "INBOX") == []
    checkpoint = store.checkpoint(PAIR, "INBOX")
    assert checkpoint is not None and checkpoint.complete
    again = Sessions(src, dst)
    assert run(again, store).summary.messages_copied == 0
    assert again.targets == 1  # an incremental pass opens no helper


@pytest.mark.parametrize(("connections", "share"), [(1, True), (3, False)])
def test_one_session_when_the_run_may_not_share(connections: int, share: bool):
    """One connection allowed, or sharing not asked for (the default: slower on Dovecot)."""
    src, dst = one_big_folder()
    sessions = Sessions(src, dst)
    m = run(sessions, MemoryStateStore(), connections=connections, share=share)
    assert (sessions.targets, m.summary.messages_copied) == (1, MESSAGES)
    assert contents(dst, "INBOX") == contents(src, "INBOX")


def test_a_helper_lane_that_drops_costs_a_retry_and_no_duplicate():
    src, dst = one_big_folder()
    sessions = Sessions(src, dst, breaking={2, 3})  # both helpers drop mid-copy
    m = run(sessions, MemoryStateStore())
    assert m.summary.reconnects >= 1
    assert m.summary.failures == []
    assert contents(dst, "INBOX") == contents(src, "INBOX")


def test_the_run_lane_dropping_stops_the_helpers_and_the_retry_finishes():
    src, dst = one_big_folder()
    sessions = Sessions(src, dst, breaking={1}, after=9)
    m = run(sessions, MemoryStateStore())
    assert m.summary.reconnects == 1
    assert contents(dst, "INBOX") == contents(src, "INBOX")


class Stopping(Sessions):
    """Sessions of a run that is told to stop once 20 messages landed."""

    def __init__(self, src: MemoryServer, dst: MemoryServer) -> None:
        super().__init__(src, dst)
        self.stop = threading.Event()

    def target(self) -> MemoryAccount:
        account = super().target()
        original = account.append_batch

        def append_batch(folder, requests):
            results = original(folder, requests)
            if len(self.dst.folder("INBOX").messages) >= 20:
                self.stop.set()
            return results

        account.append_batch = append_batch  # type: ignore[method-assign]
        return account


def test_a_stop_mid_copy_leaves_no_duplicate_and_the_next_run_finishes():
    src, dst = one_big_folder()
    store = MemoryStateStore()
    stopping = Stopping(src, dst)
    m = run(stopping, store, stop=stopping.stop)
    assert m.summary.stopped
    landed = contents(dst, "INBOX")
    assert not landed - contents(src, "INBOX")
    assert sum(landed.values()) < MESSAGES
    assert run(Sessions(src, dst), store).summary.failures == []
    assert contents(dst, "INBOX") == contents(src, "INBOX")


def test_a_resumed_pass_shared_out_uses_each_session_on_one_thread_at_a_time():
    """A first pass resumed (the run before stopped half-way) into a target that takes a moment
    to answer SELECT: each lane opened for it reads the target's flags before its reading thread
    plans windows, not on both threads at once (on a real server, one of them then waited out
    its 120 s timeout for an answer the other had read). The fake refuses a session used by two
    threads at once (``ConcurrentUseError``)."""
    src, dst = one_big_folder()
    store = MemoryStateStore()
    stopping = Stopping(src, dst)
    assert run(stopping, store, stop=stopping.stop).summary.stopped
    checkpoint = store.checkpoint(PAIR, "INBOX")
    assert checkpoint is not None and not checkpoint.complete
    dst.select_seconds = 0.05
    sessions = Slow(src, dst)
    m = run(sessions, store)
    assert (m.summary.failures, m.summary.reconnects) == ([], 0)
    assert sessions.targets == 3
    assert sum(1 for account in sessions.opened if account.appends) >= 2  # helpers copied
    assert contents(dst, "INBOX") == contents(src, "INBOX")


class Slow(Sessions):
    """Sessions whose source reads take a moment, and that remember every target session."""

    def __init__(self, src: MemoryServer, dst: MemoryServer) -> None:
        super().__init__(src, dst)
        self.opened: list[MemoryAccount] = []

    def source(self) -> MemoryAccount:
        account = super().source()
        original = account.fetch_messages

        def fetch_messages(folder, metas):
            time.sleep(0.01)
            return original(folder, metas)

        account.fetch_messages = fetch_messages  # type: ignore[method-assign]
        return account

    def target(self) -> MemoryAccount:
        account = super().target()
        self.opened.append(account)
        return account


def test_lanes_with_no_folder_left_join_the_big_folder():
    """INBOX and three one-message folders over three lanes: the lanes that copied the small
    folders take windows of INBOX, on the sessions they have (no session more)."""
    src, dst = one_big_folder()
    for name in ("Sent", "Drafts", "Trash"):
        fill(src, name, [message(1000 + len(name))])
    sessions, store = Slow(src, dst), MemoryStateStore()
    m = run(sessions, store)
    assert sessions.targets == 3
    assert m.summary.failures == []
    assert m.summary.messages_copied == MESSAGES + 3
    assert contents(dst, "INBOX") == contents(src, "INBOX")
    assert sum(1 for account in sessions.opened if account.appends > 1) >= 2
    checkpoint = store.checkpoint(PAIR, "INBOX")
    assert checkpoint is not None and checkpoint.complete
    assert run(Sessions(src, dst), store).summary.messages_copied == 0
