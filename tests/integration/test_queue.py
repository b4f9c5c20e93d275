"""The job queue (procrastinate) on PostgreSQL: a stalled job goes back to the queue, and one that
a newer job already waits behind is ended so that the newer one can run."""

from __future__ import annotations

import asyncio

import procrastinate
import pytest

from mailferry.adapters.queue.procrastinate import (
    JobFeeder,
    conninfo,
    ensure_schema,
    job_key,
    recover_once,
)
from mailferry.adapters.store.engine import open_database
from mailferry.adapters.store.schema import upgrade_all
from mailferry.adapters.store.workers import WorkerRecord, WorkerTable

pytestmark = pytest.mark.integration


@pytest.fixture
def feeder(postgres_database):
    db = open_database(postgres_database)
    upgrade_all(db)
    assert ensure_schema(db) is True
    assert ensure_schema(db) is False  # there already
    made = JobFeeder(db)
    yield made
    made.close()
    db.release()


def jobs(feeder: JobFeeder) -> list[tuple[str, str]]:
    with feeder._db.transaction() as conn:
        rows = conn.exec_driver_sql(
            "SELECT status, queueing_lock FROM procrastinate_jobs ORDER BY id"
        ).all()
    return [(str(status), str(lock)) for status, lock in rows]


def die_while_running(feeder: JobFeeder) -> None:
    """What a worker killed mid-job leaves: its job "doing", its worker row gone."""
    with feeder._db.transaction(write=True) as conn:
        conn.exec_driver_sql("UPDATE procrastinate_jobs SET status = 'doing', worker_id = NULL")


def recover(feeder: JobFeeder) -> int:
    async def once() -> int:
        connector = procrastinate.PsycopgConnector(conninfo=conninfo(feeder._db.engine.url))
        app = procrastinate.App(connector=connector)
        async with app.open_async():
            return await recover_once(app, stall=1)

    return asyncio.run(once())


def test_one_waiting_job_per_mailbox(feeder):
    assert feeder.defer("b", "ann@x.example") is True
    assert feeder.defer("b", "ann@x.example") is False
    assert feeder.defer("b", "bob@x.example") is True
    key = job_key("b", "ann@x.example")
    assert jobs(feeder)[0] == ("todo", key)


def test_a_stalled_job_goes_back_to_the_queue(feeder):
    feeder.defer("b", "ann@x.example")
    die_while_running(feeder)
    assert recover(feeder) == 1
    assert jobs(feeder) == [("todo", job_key("b", "ann@x.example"))]


def test_a_stalled_job_with_a_newer_one_waiting_is_ended(feeder):
    feeder.defer("b", "ann@x.example")
    die_while_running(feeder)
    assert feeder.defer("b", "ann@x.example") is True  # a feeder's, while the first was doing
    assert recover(feeder) == 1
    assert jobs(feeder) == [("todo", job_key("b", "ann@x.example"))]  # the newer one, free to run


def test_worker_rows_and_the_release_on_postgresql(feeder):
    """The same WorkerTable as on SQLite (tests/unit/test_workers_view.py), on PostgreSQL."""
    table = WorkerTable(feeder._db)
    record = WorkerRecord(
        owner="w1:10:1.5", host="w1", pid=10, version="0.1.0", started=1.5, heartbeat=2.0,
        running=0, concurrency=8, stall=30.0,
    )  # fmt: skip
    table.register(record)
    table.beat(record.owner, 40.0, 3)
    (row,) = table.all()
    assert (row.heartbeat, row.running) == (40.0, 3)
    assert row.lost(70.5)
    table.forget(record.owner)
    assert table.all() == []
    assert table.release() is None  # upgrade_all alone records no release (bootstrap does)
    table.record_release("0.1.0", 3.0)
    table.record_release("0.2.0", 4.0)
    assert table.release() == "0.2.0"
