"""Connection caps across workers: PostgreSQL advisory locks as slots (adapters/store/slots.py).

Each limiter stands for one worker (its own dedicated session); the caps hold across them, a
lease is all slots or none, and a dead worker's slots are free the moment its session ends.
"""

from __future__ import annotations

import threading

import pytest

from mailferry.adapters.store.engine import open_database
from mailferry.adapters.store.slots import AdvisoryLimiter, endpoint_key
from mailferry.domain.errors import StateError

pytestmark = pytest.mark.integration

CAPS = {"old": 3, "new": 2}


@pytest.fixture
def workers(postgres_database):
    db = open_database(postgres_database)
    made = [AdvisoryLimiter(db, CAPS.__getitem__) for _ in range(3)]
    yield made
    for limiter in made:
        limiter.close()
    db.release()


def test_a_cap_holds_across_workers(workers):
    a, b, c = workers
    first = a.try_acquire({"old": 2})
    assert first is not None
    assert b.try_acquire({"old": 2}) is None  # 2 + 2 > 3, and nothing half-taken ...
    second = b.try_acquire({"old": 1})
    assert second is not None  # ... so the one free slot is still there
    assert c.try_acquire({"old": 1}) is None
    second.release()
    second.release()  # twice is harmless
    assert c.try_acquire({"old": 1}) is not None


def test_a_lease_is_every_slot_or_none(workers):
    a, b, _ = workers
    assert a.try_acquire({"new": 2}) is not None
    assert b.try_acquire({"old": 1, "new": 1}) is None
    assert b.in_use() == {}  # the "old" slot it got first was given back
    assert b.try_acquire({"old": 3}) is not None


def test_one_worker_never_counts_its_own_slot_twice(workers):
    a, _, _ = workers
    leases = [a.try_acquire({"old": 1}) for _ in range(4)]
    assert [lease is not None for lease in leases] == [True, True, True, False]
    assert a.in_use() == {"old": 3}


def test_a_dead_workers_slots_are_free_at_once(workers, postgres_server, postgres_database):
    a, b, _ = workers
    assert a.try_acquire({"old": 3}) is not None
    assert b.try_acquire({"old": 1}) is None
    name = postgres_database.rsplit("/", 1)[1]
    with postgres_server.admin(name) as conn:  # the server ends a's session (kill -9, partition)
        pids = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2"
            " AND classid = %s::bigint::oid",
            (endpoint_key("old") & 0xFFFFFFFF,),  # the server shows the key unsigned
        ).fetchall()
        assert len({pid for (pid,) in pids}) == 1
        conn.execute("SELECT pg_terminate_backend(%s, 5000)", (pids[0][0],))  # waits for it
    assert b.try_acquire({"old": 3}) is not None
    # a finds out at its next check (each scheduler tick) and takes no slot while the jobs of
    # its old leases still run (the scheduler stops them).
    assert not a.lost
    a.check()
    assert a.lost
    assert a.try_acquire({"new": 1}) is None


def test_a_lease_taken_on_a_dead_session_is_an_error(workers, postgres_server, postgres_database):
    a, _, _ = workers
    lease = a.try_acquire({"old": 1})
    assert lease is not None
    lease.release()  # no slot held: nothing lost, but the session stays open
    name = postgres_database.rsplit("/", 1)[1]
    with postgres_server.admin(name) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with pytest.raises(StateError, match="connection slots"):
        a.try_acquire({"new": 1})
    assert not a.lost
    assert a.try_acquire({"new": 1}) is not None  # a new session


def test_threads_of_many_workers_never_exceed_the_cap(workers):
    held = 0
    peak = 0
    lock = threading.Lock()

    def run(limiter: AdvisoryLimiter) -> None:
        nonlocal held, peak
        for _ in range(30):
            lease = limiter.try_acquire({"new": 1})
            if lease is None:
                continue
            with lock:
                held += 1
                peak = max(peak, held)
            with lock:
                held -= 1
            lease.release()

    threads = [threading.Thread(target=run, args=(w,)) for w in workers for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert 1 <= peak <= CAPS["new"]
