"""Login throttling: per client and global, with a growing delay; the clock is injected.

Per client (its address as the socket sees it: behind a reverse proxy that is the proxy, so the
per-client limit then acts as a second global one; ``X-Forwarded-For`` is never trusted): the
first ``free`` failures cost nothing, then each one closes the door for ``base * 2**k`` seconds
(k = failures beyond ``free``, minus one), capped at ``cap``. One check at a time per client, so
parallel requests cannot guess faster than the answers come back.

Global: more than ``budget`` failures from anyone within ``window`` seconds close the door for
everyone until the oldest of them leaves the window. That is a denial of service an attacker can
cause — bounded to ``window`` seconds after the guessing stops — traded for a hard ceiling on
guesses from many addresses (a botnet) that no per-client rule gives.

A refused attempt never reaches the password check (scrypt costs 128 MiB and ~0.3 s each); at
most ``concurrent`` checks run at once, whoever asks.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ThrottlePolicy:
    free: int = 3  # failures per client before any delay
    base: float = 2.0  # seconds: the first delay, doubled each further failure
    cap: float = 900.0  # the longest delay (15 minutes)
    forget: float = 3600.0  # a client quiet this long starts afresh
    budget: int = 30  # failures from all clients within the window
    window: float = 60.0
    concurrent: int = 2  # password checks at once
    max_clients: int = 10_000  # remembered clients (the oldest are forgotten first)


@dataclass
class _Client:
    failures: int = 0
    last: float = 0.0
    until: float = 0.0  # refused before this moment
    busy: bool = False  # a check of this client's is running


class LoginThrottle:
    def __init__(
        self, policy: ThrottlePolicy | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy or ThrottlePolicy()
        self.clock = clock
        self._clients: dict[str, _Client] = {}
        self._failures: deque[float] = deque()
        self._lock = threading.Lock()
        self._checks: asyncio.Semaphore | None = None

    @property
    def checks(self) -> asyncio.Semaphore:
        """Limits concurrent password checks (made in the event loop that first needs it)."""
        if self._checks is None:
            self._checks = asyncio.Semaphore(self.policy.concurrent)
        return self._checks

    def begin(self, client: str) -> int:
        """Seconds to wait before trying again (then the attempt is refused), or 0: go ahead,
        and call ``failed`` or ``succeeded`` afterwards."""
        now = self.clock()
        with self._lock:
            self._expire(now)
            state = self._clients.get(client)
            if state is None:
                state = self._remember(client)
            wait = max(state.until - now, self._global_wait(now))
            if wait > 0:
                return max(1, math.ceil(wait))
            if state.busy:
                return 1
            state.busy = True
            return 0

    def failed(self, client: str) -> tuple[int, float]:
        """Record a failure: (the client's failures in a row, seconds it now must wait)."""
        now = self.clock()
        p = self.policy
        with self._lock:
            state = self._clients.get(client) or self._remember(client)
            state.busy = False
            state.failures += 1
            state.last = now
            beyond = state.failures - p.free
            delay = min(p.cap, p.base * 2 ** (beyond - 1)) if beyond > 0 else 0.0
            state.until = now + delay
            self._failures.append(now)
            return state.failures, delay

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._clients.pop(client, None)

    def release(self, client: str) -> None:
        """The check ended without an answer (the database failed): neither counts."""
        with self._lock:
            state = self._clients.get(client)
            if state is not None:
                state.busy = False

    def _remember(self, client: str) -> _Client:
        if len(self._clients) >= self.policy.max_clients:
            oldest = min(self._clients, key=lambda c: self._clients[c].last)
            del self._clients[oldest]
        state = self._clients[client] = _Client(last=self.clock())
        return state

    def _global_wait(self, now: float) -> float:
        p = self.policy
        if len(self._failures) < p.budget:
            return 0.0
        return self._failures[-p.budget] + p.window - now

    def _expire(self, now: float) -> None:
        p = self.policy
        while self._failures and self._failures[0] + p.window <= now:
            self._failures.popleft()
        stale = [
            c
            for c, s in self._clients.items()
            if not s.busy and s.until <= now and now - s.last > p.forget
        ]
        for client in stale:
            del self._clients[client]
