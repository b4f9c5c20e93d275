"""Opening the sessions of a run's lanes at once (service/sessions.py) and ``prefetch.both``.

Each fake login waits at a barrier that only opens when every login of the call has started:
logins opened one after another would break the barrier (its timeout) and fail the test.
"""

from __future__ import annotations

import threading

import pytest

from mailferry.adapters.memory.account import MemoryAccount, MemoryServer
from mailferry.adapters.memory.state import MemoryStateStore
from mailferry.domain.errors import AuthError, ConnectError, ThrottledError
from mailferry.service.migrate import Migration, SyncOptions
from mailferry.service.prefetch import both
from mailferry.service.sessions import open_pairs
from tests.fakes import contents, fill, message


class FakeSession:
    def __init__(self, side: str) -> None:
        self.side = side
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Logins:
    """A ``Reconnect`` whose logins meet at a barrier; ``refuse`` makes the n-th of a side fail."""

    def __init__(self, parties: int, refuse: dict[str, Exception] | None = None) -> None:
        self.barrier = threading.Barrier(parties, timeout=5)
        self.refuse = refuse or {}
        self.opened: list[FakeSession] = []
        self._lock = threading.Lock()
        self._count = {"source": 0, "target": 0}

    def _open(self, side: str) -> FakeSession:
        self.barrier.wait()  # BrokenBarrierError unless every login is under way at once
        with self._lock:
            self._count[side] += 1
            key = f"{side}{self._count[side]}"
        if key in self.refuse:
            raise self.refuse[key]
        session = FakeSession(side)
        with self._lock:
            self.opened.append(session)
        return session

    def source(self) -> FakeSession:
        return self._open("source")

    def target(self) -> FakeSession:
        return self._open("target")


def test_every_login_of_the_lanes_is_under_way_at_once() -> None:
    logins = Logins(parties=4)
    pairs, failed = open_pairs(logins, 2)  # type: ignore[arg-type]
    assert failed is None
    assert [(s.side, t.side) for s, t in pairs] == [("source", "target")] * 2
    assert not any(session.closed for session in logins.opened)


def test_a_connection_failure_leaves_fewer_lanes_and_closes_the_odd_session() -> None:
    logins = Logins(parties=4, refuse={"target2": ConnectError("refused")})
    pairs, failed = open_pairs(logins, 2)  # type: ignore[arg-type]
    assert len(pairs) == 1
    assert isinstance(failed, ConnectError)
    kept = {id(s) for pair in pairs for s in pair}
    odd = [s for s in logins.opened if id(s) not in kept]
    assert [s.side for s in odd] == ["source"] and odd[0].closed


def test_a_refused_login_is_raised_and_every_opened_session_closed() -> None:
    logins = Logins(parties=4, refuse={"source1": AuthError("login refused")})
    with pytest.raises(AuthError, match="login refused"):
        open_pairs(logins, 2)  # type: ignore[arg-type]
    assert len(logins.opened) == 3
    assert all(session.closed for session in logins.opened)


def test_both_runs_its_two_calls_at_once() -> None:
    barrier = threading.Barrier(2, timeout=5)

    def first() -> str:
        barrier.wait()
        return "first"

    def second() -> int:
        barrier.wait()
        return 2

    assert both(first, second) == ("first", 2)


def test_both_raises_the_first_calls_error_after_the_second_has_ended() -> None:
    ended = threading.Event()

    def first() -> None:
        raise ConnectError("source down")

    def second() -> None:
        ended.wait(0.05)
        ended.set()
        raise ConnectError("target down")

    with pytest.raises(ConnectError, match="source down"):
        both(first, second)
    assert ended.is_set()


def test_both_raises_the_second_calls_error() -> None:
    def second() -> None:
        raise AuthError("target refused")

    with pytest.raises(AuthError, match="target refused"):
        both(lambda: 1, second)


# -- the run opens its lanes' sessions while it starts (Migration._early_lanes) -----------------


class SlowStart(MemoryAccount):
    """A target whose folder creation waits until the lanes' sessions are being opened: a run
    that opened them only after its start would time out here and report the folder."""

    lanes_opening: threading.Event

    def create_folder(self, name: str) -> None:
        if not self.lanes_opening.wait(5):
            raise ConnectError("the lanes' sessions were not opened during the start")
        super().create_folder(name)


class LaneSessions:
    def __init__(self, src: MemoryServer, dst: MemoryServer) -> None:
        self.src, self.dst = src, dst
        self.opened = threading.Event()
        self.count = 0

    def source(self) -> MemoryAccount:
        self.opened.set()
        self.count += 1
        return MemoryAccount(self.src)

    def target(self) -> MemoryAccount:
        self.opened.set()
        self.count += 1
        return MemoryAccount(self.dst)


def _servers() -> tuple[MemoryServer, MemoryServer]:
    src, dst = MemoryServer(), MemoryServer(delimiter=".")
    for f, name in enumerate(["INBOX", "A", "B", "C"]):
        fill(src, name, [message(100 * f + i) for i in range(5)])
    return src, dst


def test_a_first_pass_opens_its_lanes_while_the_folders_are_created() -> None:
    src, dst = _servers()
    lanes = LaneSessions(src, dst)
    target = SlowStart(dst)
    target.lanes_opening = lanes.opened
    options = SyncOptions(connections=3)
    m = Migration(MemoryAccount(src), target, MemoryStateStore(), "p", options, reconnect=lanes)
    summary = m.run()
    assert summary.failures == [] and summary.messages_copied == 20
    assert lanes.count == 4  # two lanes, a session to each side
    for name in ["INBOX", "A", "B", "C"]:
        assert contents(dst, name) == contents(src, name)


def test_an_incremental_pass_opens_no_lane_early() -> None:
    src, dst = _servers()
    store = MemoryStateStore()

    def run(lanes: LaneSessions) -> int:
        source, target = MemoryAccount(src), MemoryAccount(dst)
        options = SyncOptions(connections=3)
        return Migration(source, target, store, "p", options, reconnect=lanes).run().messages_copied

    first, again = LaneSessions(src, dst), LaneSessions(src, dst)
    assert (run(first), first.count) == (20, 4)
    assert (run(again), again.count) == (0, 0)


def test_both_refused_at_once_raises_the_longer_throttle() -> None:
    def first() -> None:
        raise ConnectError("source dropped")

    def second() -> None:
        raise ThrottledError("target asks to slow down", wait=3.0)

    with pytest.raises(ThrottledError, match="target"):
        both(first, second)

    def slow_first() -> None:
        raise ThrottledError("source asks to slow down", wait=9.0)

    with pytest.raises(ThrottledError, match="source"):
        both(slow_first, second)
