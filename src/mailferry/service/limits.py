"""Per-endpoint connection caps.

A sync holds one connection to its source endpoint and one to its target endpoint for its whole
life (a reconnect closes the old session before it opens the new one). Before a mailbox starts,
the scheduler takes a *lease* on every slot it needs, all at once or none (two batches that run
A -> B and B -> A must not each hold one slot and wait for the other), and gives them back only
after both connections are closed. So the connections to an endpoint never exceed its cap.

``ConnectionLimiter`` is the port. ``LocalLimiter`` counts inside one process, which covers every
batch that process runs (``mailferry serve``, or ``batch start`` in the foreground). Two processes
on one SQLite file each count their own. Workers on one PostgreSQL database share their caps
through ``adapters/store/slots.AdvisoryLimiter``: advisory locks as slots, held on a dedicated
session per worker; a crashed holder's locks vanish with its session, so no lease can leak.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Protocol


class Lease(Protocol):
    def release(self) -> None:
        """Give the slots back; calling it twice is harmless."""
        ...


class ConnectionLimiter(Protocol):
    # True when the slots of running leases were lost (a shared limiter's session ended): their
    # jobs must stop, as they may now run beyond the cap.
    lost: bool

    def try_acquire(self, needs: Mapping[str, int]) -> Lease | None:
        """Every slot in ``needs`` (endpoint name -> connections) at once, or None at once."""
        ...

    def check(self) -> None:
        """Find out whether running leases still hold their slots (sets ``lost``)."""
        ...

    def close(self) -> None:
        """The scheduler is done with it: every slot given back."""
        ...


class _LocalLease:
    def __init__(self, limiter: LocalLimiter, needs: dict[str, int]) -> None:
        self._limiter = limiter
        self._needs: dict[str, int] | None = needs

    def release(self) -> None:
        needs, self._needs = self._needs, None
        if needs is not None:
            self._limiter._give_back(needs)


class LocalLimiter:
    """Counting semaphores, one per endpoint, in this process. ``capacity`` is read at each
    acquire, so an endpoint's new ``--max-connections`` applies to the next mailbox."""

    lost = False  # a process cannot lose its own counters

    def __init__(self, capacity: Callable[[str], int]) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._used: dict[str, int] = {}
        self.peak: dict[str, int] = {}  # the most ever held at once, per endpoint (tests, status)

    def try_acquire(self, needs: Mapping[str, int]) -> Lease | None:
        wanted = {name: count for name, count in needs.items() if count > 0}
        caps = {name: self._capacity(name) for name in wanted}
        with self._lock:
            if any(self._used.get(n, 0) + c > caps[n] for n, c in wanted.items()):
                return None
            for name, count in wanted.items():
                self._used[name] = self._used.get(name, 0) + count
                self.peak[name] = max(self.peak.get(name, 0), self._used[name])
        return _LocalLease(self, wanted)

    def in_use(self, name: str) -> int:
        with self._lock:
            return self._used.get(name, 0)

    def check(self) -> None:
        """Nothing to check: a process cannot lose its own counters."""

    def close(self) -> None:
        """Nothing to give back: the counters end with the process."""

    def _give_back(self, needs: Mapping[str, int]) -> None:
        with self._lock:
            for name, count in needs.items():
                self._used[name] -= count
