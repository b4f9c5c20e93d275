#!/usr/bin/env python3
"""What a no-op pass asks the state of a big folder (issue #17 rules 1 and 5): the time of
``folder_records`` (the one read a run makes of every folder's checkpoint, count and pending work
before it maps folders) with N copied rows in one folder, on SQLite and on PostgreSQL.

    python3 benchmarks/state_reads.py [--rows 1000000] [--runs 5] [--no-postgres]
    PYTHONPATH=OTHER/src python3 benchmarks/state_reads.py ...   # another checkout's store

The rows are written as a pass writes them (``add_copied`` in bursts of 1,000, then a complete
checkpoint); PostgreSQL with ``fsync`` and synchronous commits on, as in ``scale.py``. Each read is
timed in this process after the writes, then again after ``VACUUM ANALYZE`` and ``CHECKPOINT``
on PostgreSQL. Not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
import run  # noqa: E402, F401 - re-runs this script under the repository's venv if needed

from mailferry.adapters.store.engine import open_database  # noqa: E402
from mailferry.adapters.store.schema import upgrade_all  # noqa: E402
from mailferry.adapters.store.sync_state import SqlStateStore  # noqa: E402
from mailferry.domain.ports import Checkpoint, Copied  # noqa: E402
from mailferry.sandbox.postgres import PostgresServer  # noqa: E402

PAIR, FOLDER, BURST = "bench", "INBOX", 1000


def fill(store: SqlStateStore, rows: int) -> float:
    started = time.perf_counter()
    store.save_checkpoint(PAIR, Checkpoint(FOLDER, FOLDER, 1, Checkpoint.STARTED, None, 1, "all"))
    seen = frozenset({"\\Seen"})
    for low in range(1, rows + 1, BURST):
        burst = [Copied(uid, uid, seen) for uid in range(low, min(low + BURST, rows + 1))]
        store.add_copied(PAIR, FOLDER, burst)
    store.save_checkpoint(PAIR, Checkpoint(FOLDER, FOLDER, 1, rows + 1, 7, 1, "all"))
    return time.perf_counter() - started


def reads(store: SqlStateStore, runs: int, rows: int) -> list[float]:
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        record = store.folder_records(PAIR)[FOLDER]
        took.append(time.perf_counter() - started)
        assert record.copied == rows, record
    return took


def show(label: str, took: list[float]) -> None:
    ms = [round(t * 1000, 1) for t in took]
    print(f"| {label} | {min(ms)} | {statistics.median(ms)} | {ms} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    import mailferry  # noqa: PLC0415

    print(f"mailferry from {Path(mailferry.__file__).parent}, {args.rows:,} rows", flush=True)
    print("| state | min ms | median ms | runs (ms) |\n|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory(prefix="state-reads-") as work:
        store = SqlStateStore.open_sqlite(Path(work) / "state.sqlite3")
        print(f"(SQLite filled in {fill(store, args.rows):.1f} s)", file=sys.stderr)
        show("SQLite", reads(store, args.runs, args.rows))
        store.close()
        if args.no_postgres:
            return
        durable = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
        with PostgresServer(Path(work) / "postgres", durable) as server:
            server.create_database("state")
            upgrade_all(open_database(server.url("state")))
            store = SqlStateStore.open(server.url("state"))
            print(f"(PostgreSQL filled in {fill(store, args.rows):.1f} s)", file=sys.stderr)
            show("PostgreSQL", reads(store, args.runs, args.rows))
            with server.admin("state") as admin:
                admin.autocommit = True
                admin.execute("VACUUM ANALYZE")
                admin.execute("CHECKPOINT")
            show("PostgreSQL, after VACUUM ANALYZE", reads(store, args.runs, args.rows))
            store.close()


if __name__ == "__main__":
    main()
