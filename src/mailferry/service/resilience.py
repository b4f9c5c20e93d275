"""Staying alive on real networks: retry budgets with backoff and jitter, reconnecting, adaptive pace.

A dropped connection, a timeout, a BYE or a "slow down" answer never loses work: the migration's state
is consistent between bursts, so the answer is always the same — wait, reconnect, re-plan the folder from
the state, and go on. Only the budget decides when a folder is given up (and reported) instead.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from mailferry.domain.model import AppendResult
from mailferry.domain.ports import MailAccount
from mailferry.domain.responses import server_fault

SERVER_FAILING = 20  # refusals in a row by the target's own fault that stop the run


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6  # reconnects per folder before it is reported failed
    base_wait: float = 1.0  # seconds; doubled each attempt
    max_wait: float = 60.0
    # A daily cap (Gmail's bandwidth limit) is waited out in long pauses that cost no attempt,
    # until the run has paused this long in all; then the folder is reported failed.
    cap_pause: float = 1800.0
    cap_max_pause: float = 26 * 3600.0

    def wait(self, attempt: int, suggested: float = 0.0) -> float:
        """Exponential backoff with jitter, never shorter than what the server suggested."""
        computed = min(self.max_wait, self.base_wait * (2**attempt))
        jittered = computed * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography
        return float(max(jittered, suggested))


class Reconnect(Protocol):
    """Opens a fresh session to either side (the composition root knows endpoints and secrets)."""

    def source(self) -> MailAccount: ...

    def target(self) -> MailAccount: ...


class Pace:
    """Messages per burst: halved when the server throttles, grown back after bursts that went well."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.current = self.limit
        self._good = 0

    def slow_down(self) -> None:
        self.current = max(1, self.current // 2)
        self._good = 0

    def went_well(self) -> None:
        self._good += 1
        if self._good >= 4 and self.current < self.limit:
            self.current = min(self.limit, self.current * 2)
            self._good = 0


class ServerFaults:
    """The target's refusals by a fault of its own (``server_fault``), in a row across the run's
    lanes. One may be a bug of the server's with one message; ``limit`` in a row with none
    stored between is the server failing (a full disk, on Dovecot), and the run stops rather
    than fail every message left, one by one."""

    def __init__(self, limit: int = SERVER_FAILING) -> None:
        self.limit = limit
        self.in_row = 0
        self._lock = threading.Lock()

    def note(self, results: Iterable[AppendResult]) -> str | None:
        """The last such refusal once ``limit`` are in a row, else None. Other refusals (a
        message too big) neither count nor break the row; a message stored breaks it."""
        return self.note_writes(
            (r.ok, r.reason if not r.ok and server_fault(r.reason) else None) for r in results
        )

    def note_writes(self, writes: Iterable[tuple[bool, str | None]]) -> str | None:
        """``note`` for any kind of write (a DAV PUT answered 500): (stored, the refusal by the
        target's own fault, or None when it was refused for some other reason)."""
        last = None
        with self._lock:
            for stored, fault in writes:
                if stored:
                    self.in_row = 0
                elif fault is not None:
                    self.in_row += 1
                    last = fault
            return last if self.in_row >= self.limit else None
