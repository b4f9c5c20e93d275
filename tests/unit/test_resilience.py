"""Reconnects, throttling, full targets and stop requests, on the in-memory fake server."""

from __future__ import annotations

import logging
import threading
from collections import Counter

import pytest

from mailferry.adapters.memory.account import MemoryAccount, MemoryServer
from mailferry.adapters.memory.state import MemoryStateStore
from mailferry.domain.errors import ConnectError
from mailferry.domain.model import AppendResult
from mailferry.service.migrate import Migration, SyncOptions
from mailferry.service.resilience import SERVER_FAILING, Pace, RetryPolicy, ServerFaults
from tests.fakes import contents, fill, message

PAIR = "src -> dst"
FAST = RetryPolicy(attempts=3, base_wait=0.0, max_wait=0.0)


class Dropping(MemoryAccount):
    """A target session that drops at its first APPEND, before the server stores anything."""

    def append_batch(self, folder, requests):
        raise ConnectError("connection lost before the APPEND (injected)")


class Flaky:
    """Reconnect factory: the first ``breaks`` target sessions drop after ``after`` appends
    (``after=None``: before storing any)."""

    def __init__(
        self, src: MemoryServer, dst: MemoryServer, *, breaks: int, after: int | None
    ) -> None:
        self.src, self.dst, self.breaks, self.after = src, dst, breaks, after
        self.opened = 0

    def source(self) -> MemoryAccount:
        return MemoryAccount(self.src)

    def target(self) -> MemoryAccount:
        self.opened += 1
        if self.opened > self.breaks:
            return MemoryAccount(self.dst)
        if self.after is None:
            return Dropping(self.dst)
        return MemoryAccount(self.dst, crash_after=self.after)


def servers(n: int = 30) -> tuple[MemoryServer, MemoryServer]:
    src, dst = MemoryServer(), MemoryServer(delimiter=".")
    fill(src, "INBOX", [message(i) for i in range(n)])
    fill(src, "Other", [message(100 + i) for i in range(5)])
    return src, dst


def run(src, dst, store, flaky: Flaky | None, **kw) -> Migration:
    options = SyncOptions(
        batch_count=kw.pop("batch_count", 4),
        retry=kw.pop("retry", FAST),
        connections=kw.pop("connections", 1),
    )
    target = flaky.target() if flaky else MemoryAccount(dst)
    migration = Migration(MemoryAccount(src), target, store, PAIR, options, reconnect=flaky, **kw)
    migration.run()
    return migration


def test_drops_mid_copy_are_reconnected_and_resumed_without_duplicates():
    src, dst = servers()
    flaky = Flaky(src, dst, breaks=3, after=5)
    m = run(src, dst, MemoryStateStore(), flaky)
    assert m.summary.failures == []
    assert m.summary.reconnects == 3
    # Each message counted once: copied, not also "already there" when its pass starts again.
    assert (m.summary.messages_copied, m.summary.messages_skipped_existing) == (35, 0)
    assert contents(dst, "INBOX") == contents(src, "INBOX")
    assert contents(dst, "Other") == contents(src, "Other")


class SourceRefusedOnce(Flaky):
    """The first target session drops after 5 appends; the first reconnect then fails at the
    source (its server refuses while the network is still down)."""

    def __init__(self, src: MemoryServer, dst: MemoryServer) -> None:
        super().__init__(src, dst, breaks=1, after=5)
        self.sources = 0

    def source(self) -> MemoryAccount:
        self.sources += 1
        if self.sources == 1:
            raise ConnectError("connection refused (injected)")
        return super().source()


def test_a_reconnect_that_fails_costs_an_attempt_and_the_next_one_goes_on(caplog):
    """The failed reconnect leaves the closed sessions in place (``Migration._reopen``); the next
    attempt fails on them as on any lost connection (the fake's closed sessions refuse every
    command, as a real one's socket does), and the one after that reconnects and finishes."""
    caplog.set_level(logging.WARNING, logger="mailferry")
    src, dst = servers()
    flaky = SourceRefusedOnce(src, dst)
    m = run(src, dst, MemoryStateStore(), flaky)
    assert m.summary.failures == []
    assert (flaky.sources, flaky.opened) == (2, 2)  # the refused reconnect, then the good one
    reasons = [
        r.msg["reason"]
        for r in caplog.records
        if isinstance(r.msg, dict) and r.msg.get("event") == "run.reconnecting"
    ]
    assert len(reasons) == m.summary.reconnects == 2
    assert "injected" in reasons[0]  # the drop
    assert reasons[1] == "the connection is closed"  # the attempt on the sessions left closed
    assert (m.summary.messages_copied, m.summary.messages_skipped_existing) == (35, 0)
    assert contents(dst, "INBOX") == contents(src, "INBOX")
    assert contents(dst, "Other") == contents(src, "Other")


def test_spent_budget_fails_the_folder_and_the_rest_goes_on():
    src, dst = servers()
    flaky = Flaky(src, dst, breaks=100, after=None)  # every session drops at its first append
    dst.create("Other")
    m = run(src, dst, MemoryStateStore(), flaky)
    failed = {f.folder for f in m.summary.failures}
    assert failed == {"INBOX", "Other"}
    assert all("gave up after 3 reconnects" in f.reason for f in m.summary.failures)
    assert contents(dst, "INBOX") == contents(dst, "Other") == Counter()


def test_sessions_that_each_store_one_message_and_drop_still_finish_the_run():
    """Each session's one APPEND lands but its answer is lost: the next attempt finds it landed,
    which is progress (the retry budget starts again), and counts it as copied."""
    src, dst = servers()
    flaky = Flaky(src, dst, breaks=100, after=0)
    m = run(src, dst, MemoryStateStore(), flaky)
    assert m.summary.failures == []
    assert m.summary.reconnects > 30  # one session a message
    assert (m.summary.messages_copied, m.summary.messages_skipped_existing) == (35, 0)
    assert contents(dst, "INBOX") == contents(src, "INBOX")
    assert contents(dst, "Other") == contents(src, "Other")


def test_without_a_reconnect_factory_a_drop_ends_the_run():
    src, dst = servers()
    with pytest.raises(ConnectError):
        Migration(
            MemoryAccount(src), MemoryAccount(dst, crash_after=2), MemoryStateStore(), PAIR
        ).run()


def test_throttled_appends_slow_down_and_finish():
    src, dst = servers(12)
    dst.refuse_next = [
        "[THROTTLED] Request is throttled. Suggested Backoff Time: 1 milliseconds"
    ] * 3
    flaky = Flaky(src, dst, breaks=0, after=0)
    m = run(src, dst, MemoryStateStore(), flaky, batch_count=8)
    assert m.summary.failures == []
    assert m.summary.throttled >= 1
    assert m.pace.current < 8 or m.summary.throttled == 1
    assert contents(dst, "INBOX") == contents(src, "INBOX")


def test_full_target_stops_cleanly_and_a_rerun_finishes():
    src, dst = servers(10)
    dst.refuse_next = ["[OVERQUOTA] Quota exceeded (mailbox for user is full)"] * 50
    store = MemoryStateStore()
    m = run(src, dst, store, Flaky(src, dst, breaks=0, after=0))
    assert m.summary.stopped and "full" in m.summary.stopped
    assert m.summary.messages_failed == 0  # no message is to blame
    assert any(f.folder == "*" for f in m.summary.failures)
    dst.refuse_next.clear()
    again = run(src, dst, store, Flaky(src, dst, breaks=0, after=0))
    assert again.summary.failures == []
    assert contents(dst, "INBOX") == contents(src, "INBOX")


def test_appendlimit_is_checked_before_sending():
    src, dst = MemoryServer(), MemoryServer()
    fill(src, "INBOX", [message(1), message(2, body="y" * 5000)])
    dst.advertised_limit = 1000
    m = run(src, dst, MemoryStateStore(), None)
    assert m.summary.messages_copied == 1
    [failure] = m.summary.failures
    assert failure.uid == 2
    assert "APPENDLIMIT" in failure.reason


def test_stop_request_ends_after_the_burst_and_a_rerun_finishes():
    src, dst = servers(20)
    store = MemoryStateStore()
    stop = threading.Event()

    class StopAfterFirstBurst(MemoryAccount):
        def append_batch(self, folder, requests):
            results = super().append_batch(folder, requests)
            stop.set()
            return results

    options = SyncOptions(batch_count=4, retry=FAST)
    m = Migration(MemoryAccount(src), StopAfterFirstBurst(dst), store, PAIR, options, stop=stop)
    m.run()
    assert m.summary.stopped
    assert m.summary.messages_copied == 4
    again = run(src, dst, store, None)
    assert again.summary.messages_copied == 20 + 5 - 4
    assert contents(dst, "INBOX") == contents(src, "INBOX")


def test_pace_halves_and_recovers():
    pace = Pace(16)
    pace.slow_down()
    pace.slow_down()
    assert pace.current == 4
    for _ in range(8):
        pace.went_well()
    assert pace.current == 16


def test_backoff_grows_is_jittered_and_honours_the_server():
    policy = RetryPolicy(attempts=5, base_wait=1.0, max_wait=8.0)
    waits = [policy.wait(a) for a in range(6)]
    assert 0.5 <= waits[0] <= 1.0
    assert 4.0 <= waits[4] <= 8.0
    assert waits[5] <= 8.0
    assert policy.wait(0, suggested=30.0) == 30.0


def test_several_lanes_share_the_folders_and_converge():
    src, dst = MemoryServer(), MemoryServer(delimiter=".")
    for f in range(7):
        fill(src, f"F{f}", [message(f * 100 + i, mid=i % 3 != 0) for i in range(f * 3)])
    flaky = Flaky(src, dst, breaks=2, after=4)
    m = run(src, dst, MemoryStateStore(), flaky, connections=3)
    assert m.summary.failures == []
    assert m.summary.folders == 8  # INBOX too
    # Messages whose APPEND answer was lost in a drop are confirmed from the intents as already there.
    assert m.summary.messages_copied + m.summary.messages_skipped_existing == sum(
        f * 3 for f in range(7)
    )
    for f in range(7):
        assert contents(dst, f"F{f}") == contents(src, f"F{f}")
    assert flaky.opened >= 3


def test_full_target_reason_survives_several_lanes():
    src, dst = MemoryServer(), MemoryServer(delimiter=".")
    for f in range(5):
        fill(src, f"F{f}", [message(f * 100 + i) for i in range(6)])
    dst.refuse_next = ["[OVERQUOTA] Quota exceeded (mailbox for user is full)"] * 1000
    m = run(src, dst, MemoryStateStore(), Flaky(src, dst, breaks=0, after=0), connections=3)
    assert m.summary.stopped
    assert "full" in m.summary.stopped


GMAIL_CAP = "[OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)"


def test_daily_cap_pauses_without_spending_the_retry_budget():
    src, dst = servers(12)
    dst.refuse_next = [GMAIL_CAP] * 3
    no_budget = RetryPolicy(attempts=0, base_wait=0.0, max_wait=0.0, cap_pause=0.05)
    m = run(src, dst, MemoryStateStore(), Flaky(src, dst, breaks=0, after=0), retry=no_budget)
    assert m.summary.failures == []
    assert m.summary.cap_pauses >= 1
    assert m.summary.throttled == 0  # a cap is not an ordinary throttle: the pace is not halved
    assert m.summary.paused_seconds >= 0.05 * m.summary.cap_pauses
    assert contents(dst, "INBOX") == contents(src, "INBOX")
    assert contents(dst, "Other") == contents(src, "Other")


def test_daily_cap_still_in_force_after_the_longest_pause_fails_the_folder():
    src, dst = servers(6)
    dst.refuse_next = [GMAIL_CAP] * 1000
    policy = RetryPolicy(
        attempts=5, base_wait=0.0, max_wait=0.0, cap_pause=0.01, cap_max_pause=0.03
    )
    m = run(src, dst, MemoryStateStore(), Flaky(src, dst, breaks=0, after=0), retry=policy)
    reasons = {f.folder: f.reason for f in m.summary.failures}
    assert set(reasons) == {"INBOX", "Other"}
    assert all("still refused after pausing" in r for r in reasons.values())
    assert m.summary.cap_pauses == 3  # 0.03 s in pauses of 0.01 s, then the first folder gives up
    assert m.summary.messages_failed == 0  # no message is to blame
    assert not contents(dst, "INBOX")


def test_a_stop_request_ends_a_long_cap_pause():
    src, dst = servers(6)
    dst.refuse_next = [GMAIL_CAP] * 1000
    stop = threading.Event()
    hour = RetryPolicy(attempts=0, base_wait=0.0, max_wait=0.0, cap_pause=3600.0)
    threading.Timer(0.2, stop.set).start()
    m = run(src, dst, MemoryStateStore(), Flaky(src, dst, breaks=0, after=0), retry=hour, stop=stop)
    assert m.summary.stopped == "stop requested"
    assert m.summary.cap_pauses == 1
    assert m.summary.failures == []


def test_server_faults_stop_only_a_row_with_nothing_stored_between():
    faults = ServerFaults(limit=3)
    bug = AppendResult(1, ok=False, reason="[SERVERBUG] Internal error occurred.")
    big = AppendResult(2, ok=False, reason="[TOOBIG] Message too large")
    stored = AppendResult(3, ok=True, target_uid=1, target_uidvalidity=1)
    assert faults.note([bug, bug, stored, bug, big, bug]) is None  # a message stored broke the row
    assert faults.in_row == 2  # a refusal of the message's own neither counts nor breaks it
    assert faults.note([bug]) == bug.reason


def test_a_target_failing_every_message_stops_the_run_with_the_rest_remaining():
    src, dst = servers()

    class Failing(MemoryAccount):
        def append_batch(self, folder, requests):
            return [
                AppendResult(r.key, ok=False, reason="[SERVERBUG] Internal error occurred.")
                for r in requests
            ]

    migration = Migration(
        MemoryAccount(src), Failing(dst), MemoryStateStore(), PAIR, SyncOptions(batch_count=4)
    )
    summary = migration.run()
    assert "in a row by a fault of its own" in (summary.stopped or "")
    assert SERVER_FAILING <= summary.messages_failed <= SERVER_FAILING + 2 * 4
    assert summary.messages_failed + summary.messages_remaining == 35
