"""Connection caps shared by every worker on one PostgreSQL database: advisory locks as slots.

An endpoint with ``--max-connections N`` has N slots, lock ids ``(endpoint key, 0..N-1)`` (the
two-integer form of ``pg_try_advisory_lock``; the key is a CRC-32 of the endpoint's name). A
worker takes the slots of a lease on one dedicated connection of its own, held for the worker's
life; ``release`` unlocks them. Session locks stack within one session, so this process keeps its
own set of the slots it holds and never asks for those again.

What a crash leaves: nothing. A worker killed with SIGKILL, or whose machine is gone, loses its
session when the server notices (at once for a closed socket; after TCP keepalive for a vanished
machine), and the server releases every lock of it: no slot can leak, and the jobs it ran are
taken over by another worker (``Scheduler``: a dead owner's mailboxes) within the caps.

A worker that loses its own dedicated connection no longer holds its slots: it takes no new
lease until every old one is given back (its running jobs are told to stop by the scheduler,
which sees ``lost``), then opens a new connection.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Mapping

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from mailferry.adapters.store.engine import Database, db_reason
from mailferry.domain.errors import StateError

_TRY = text("SELECT pg_try_advisory_lock(:key, :slot)")
_UNLOCK = text("SELECT pg_advisory_unlock(:key, :slot)")

Slot = tuple[str, int]  # (endpoint name, slot number)


def endpoint_key(name: str) -> int:
    """The first half of an endpoint's lock ids: a signed 32-bit CRC of its name."""
    crc = zlib.crc32(f"mailferry.endpoint:{name}".encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


class _AdvisoryLease:
    def __init__(self, limiter: AdvisoryLimiter, slots: list[Slot]) -> None:
        self._limiter = limiter
        self._slots: list[Slot] | None = slots

    def release(self) -> None:
        slots, self._slots = self._slots, None
        if slots is not None:
            self._limiter._give_back(slots)


class AdvisoryLimiter:
    """The ``ConnectionLimiter`` of a worker on PostgreSQL (see the module docstring).
    ``capacity`` is read at each acquire, as ``LocalLimiter`` does."""

    def __init__(self, db: Database, capacity: Callable[[str], int]) -> None:
        if db.is_sqlite:
            raise StateError("advisory-lock slots need a PostgreSQL state database")
        self._db = db
        self._capacity = capacity
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._held: set[Slot] = set()
        self.lost = False  # the dedicated connection broke while slots were held

    def try_acquire(self, needs: Mapping[str, int]) -> _AdvisoryLease | None:
        wanted = {name: count for name, count in needs.items() if count > 0}
        caps = {name: self._capacity(name) for name in wanted}
        with self._lock:
            if self.lost and self._held:
                return None  # the old leases' jobs are still stopping
            self.lost = False
            taken: list[Slot] = []
            try:
                for name, count in wanted.items():
                    got = self._take(name, count, caps[name])
                    taken += got
                    if len(got) < count:
                        break
            except SQLAlchemyError as exc:
                self._broken(taken)
                raise StateError(f"connection slots on {self._db.where}: {db_reason(exc)}") from exc
            if any(self._count(taken, name) < count for name, count in wanted.items()):
                self._unlock(taken)  # all slots or none
                return None
            self._held.update(taken)
            return _AdvisoryLease(self, taken)

    def check(self) -> None:
        """While slots are held, ask the server whether the session still lives (each scheduler
        tick): a session the server ended (or TCP keepalive gave up on) sets ``lost``."""
        with self._lock:
            if self._conn is None or not self._held:
                return
            try:
                self._conn.scalar(text("SELECT 1"))
            except SQLAlchemyError:
                self._broken([])

    def in_use(self) -> dict[str, int]:
        """This worker's slots, per endpoint (tests, status)."""
        with self._lock:
            found: dict[str, int] = {}
            for name, _slot in self._held:
                found[name] = found.get(name, 0) + 1
            return found

    def close(self) -> None:
        """Give the dedicated connection back (every lock of it goes with the session)."""
        with self._lock:
            conn, self._conn = self._conn, None
            self._held.clear()
        if conn is not None:
            conn.invalidate()  # never back to the pool: its locks must end with it
            conn.close()

    # -- under self._lock --------------------------------------------------------------------------
    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def _take(self, name: str, count: int, cap: int) -> list[Slot]:
        key = endpoint_key(name)
        got: list[Slot] = []
        for slot in range(cap):
            if len(got) == count:
                break
            if (name, slot) in self._held:
                continue
            if self._connection().scalar(_TRY, {"key": key, "slot": slot}):
                got.append((name, slot))
        return got

    @staticmethod
    def _count(taken: list[Slot], name: str) -> int:
        return sum(1 for n, _ in taken if n == name)

    def _unlock(self, slots: list[Slot]) -> None:
        if self._conn is None:
            return
        try:
            for name, slot in slots:
                self._conn.scalar(_UNLOCK, {"key": endpoint_key(name), "slot": slot})
        except SQLAlchemyError:
            self._broken(slots)

    def _broken(self, slots: list[Slot]) -> None:
        """The dedicated connection failed: the server has (or will have) dropped its locks."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.invalidate()
        if self._held - set(slots):
            self.lost = True

    def _give_back(self, slots: list[Slot]) -> None:
        with self._lock:
            mine = [s for s in slots if s in self._held]
            self._held.difference_update(mine)
            self._unlock(mine)
