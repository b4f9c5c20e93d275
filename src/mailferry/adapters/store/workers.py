"""The workers on a shared database, as they describe themselves, and the release that upgraded it.

Each ``mailferry worker`` writes its own row (``register``), refreshes it every few seconds with
the number of jobs it runs (``beat``) and removes it when it stops (``forget``). A worker killed
or cut off leaves its row behind with a heartbeat that ages: readers call it lost once the
heartbeat is older than the worker's own stall timeout (the time after which the queue runs its
jobs elsewhere), and the next worker to start drops rows lost for a day. The liveness that
decides anything (who may run a mailbox) stays with the mailbox rows and the queue: these rows
are for people and for refusing a worker of another release.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy import Connection, delete, select, update

from mailferry.adapters.store.engine import Database
from mailferry.adapters.store.tables import RELEASE, WORKERS

FORGET_AFTER = 86_400.0  # seconds: a lost worker's row is dropped by the next worker to start


@dataclass(frozen=True)
class WorkerRecord:
    owner: str  # ``host:pid:started``, as the rows of the mailboxes it runs name it
    host: str
    pid: int
    version: str
    started: float
    heartbeat: float
    running: int
    concurrency: int
    stall: float

    def lost(self, now: float) -> bool:
        """Silent for longer than its stall timeout: its jobs run (or will) on another worker."""
        return now - self.heartbeat > self.stall


class WorkerTable:
    """The ``batch_workers`` and ``batch_release`` rows; every method is one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _tx(self, *, write: bool = False) -> AbstractContextManager[Connection]:
        return self._db.transaction(write=write)

    def register(self, record: WorkerRecord) -> None:
        """This worker's row (and the rows of workers lost for a day dropped)."""
        with self._tx(write=True) as conn:
            cutoff = record.started - FORGET_AFTER
            conn.execute(delete(WORKERS).where(WORKERS.c.heartbeat < cutoff))
            conn.execute(delete(WORKERS).where(WORKERS.c.owner == record.owner))
            conn.execute(WORKERS.insert(), {**record.__dict__})

    def beat(self, owner: str, now: float, running: int) -> None:
        with self._tx(write=True) as conn:
            conn.execute(
                update(WORKERS)
                .where(WORKERS.c.owner == owner)
                .values(heartbeat=now, running=running)
            )

    def forget(self, owner: str) -> None:
        with self._tx(write=True) as conn:
            conn.execute(delete(WORKERS).where(WORKERS.c.owner == owner))

    def all(self) -> list[WorkerRecord]:
        """Every worker row, oldest first."""
        with self._tx() as conn:
            rows = conn.execute(select(WORKERS).order_by(WORKERS.c.started, WORKERS.c.owner))
            return [WorkerRecord(**row._asdict()) for row in rows]

    # -- the release -------------------------------------------------------------------------------
    def release(self) -> str | None:
        """The mailferry release that last upgraded the database (None: not recorded)."""
        with self._tx() as conn:
            return conn.scalar(select(RELEASE.c.version).where(RELEASE.c.id == 1))

    def record_release(self, version: str, now: float) -> None:
        with self._tx(write=True) as conn:
            conn.execute(delete(RELEASE))
            conn.execute(RELEASE.insert(), {"id": 1, "version": version, "upgraded": now})
