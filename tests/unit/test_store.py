"""The one state database: a file written before ``adapters/store`` existed opens unchanged, a new
file has the same layout, and every store of one file shares one Engine."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from mailferry import bootstrap
from mailferry.adapters.secrets import KEY_ENV
from mailferry.adapters.store import engine
from mailferry.adapters.store.sync_state import SqlStateStore
from mailferry.domain.errors import (
    AccountError,
    ConfigError,
    Conflict,
    MailferryError,
    NotFound,
    StateError,
)
from mailferry.domain.ports import Copied
from mailferry.web.app import status_of
from mailferry.web.credentials import AuthStore
from tests.unit.web_support import FAST

# Written by mailferry at commit 0c037bc (sqlite_state.py, batch_store.py, web/credentials.py):
# every component's tables, a batch, sync state for its mailbox, an admin password and a token.
# The mailboxes' encrypted passwords are left out (their key is not part of the dump).
OLD_FILE = Path(__file__).parent / "data" / "state_before_store_package.sql"
OLD_TOKEN = "mft_lIBf-K9cHiqcZC7CxDvyCWEISy7M0tUpJZ0YRhSZDy8"
OLD_ADMIN_PASSWORD = "correct horse battery"
PAIR = "imap://ann@127.0.0.1:10143 -> imaps://ann@new.example@mail.new.example:993"


# Columns added to the batch tables for calendars and contacts, and the per-workload counters
# (schema.add_missing_columns).
ADDED = {
    "batch_endpoints": ["dav", "dav_ca_file", "dav_insecure", "files"],
    "batch_mailboxes": [
        "collections", "items_copied", "items_updated", "items_skipped", "items_failed",
        "item_conflicts", "workloads",
    ],
    "batch_failures": ["kind", "href", "item_uid"],
    "checkpoints": ["copied"],
}  # fmt: skip
# Tables of the batch tables' schema 2 (workers on a shared database), and the versions it moved.
ADDED_TABLES = {"batch_workers", "batch_release"}
# The sync state's schema 3: each folder's copied rows counted with its checkpoint.
UPGRADED = {"mailferry.batches": (1, 2), "mailferry": (2, 3)}


def layout(path: Path) -> tuple[dict[str, list[tuple[str, str, int]]], set[str], list[Any]]:
    """The file's tables with their columns (name, type, NOT NULL), its indexes and ``meta``
    rows. (Columns, not CREATE statements: SQLite rewrites those on ALTER TABLE ADD COLUMN.)"""
    with closing(sqlite3.connect(path)) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        tables = {
            name: [(c[1], c[2], c[3]) for c in conn.execute(f"PRAGMA table_info({name})")]
            for name in names
        }
        indexes = {
            r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE type='index'") if r[0]
        }
        meta = conn.execute("SELECT application, schema_version FROM meta ORDER BY 1").fetchall()
    return tables, indexes, meta


def without_added(found: tuple[dict[str, list[tuple[str, str, int]]], set[str], list[Any]]) -> Any:
    tables, indexes, meta = found
    kept = {
        name: [c for c in columns if c[0] not in ADDED.get(name, [])]
        for name, columns in tables.items()
        if name not in ADDED_TABLES
    }
    as_before = [(app, UPGRADED[app][0] if app in UPGRADED else v) for app, v in meta]
    return kept, indexes, as_before


@pytest.fixture
def old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(KEY_ENV, raising=False)
    path = tmp_path / "state.sqlite3"
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(OLD_FILE.read_text(encoding="utf-8"))
    return path


def test_a_file_written_by_the_old_layout_opens_and_gains_only_the_new_columns(
    old_file: Path,
) -> None:
    before = layout(old_file)
    assert not any(c[0] in ADDED.get(t, []) for t, cs in before[0].items() for c in cs)
    service = bootstrap.open_service(old_file)
    auth = AuthStore.open_sqlite(old_file, cost=FAST)
    state = SqlStateStore.open_sqlite(old_file)
    try:
        assert [m.record.email for m in service.status("b1").mailboxes] == ["ann@new.example"]
        assert service.endpoint("new").port == 993
        progress = {f.source: f for f in service.folder_progress("b1", "ann@new.example")}
        assert (progress["INBOX"].copied, progress["INBOX"].pass_finished) == (2, True)
        assert (progress["Work"].copied, progress["Work"].failed) == (1, 1)
        assert state.copied(PAIR, "Work") == {5: Copied(5, 15, frozenset(), "k1")}
        assert {n: r.copied for n, r in state.folder_records(PAIR).items()} == {"INBOX": 2}
        assert auth.check_admin(OLD_ADMIN_PASSWORD)
        assert auth.check_token(OLD_TOKEN) == "ci"
        # the old rows read the added columns as their defaults: no DAV, no items
        (view,) = service.status("b1").mailboxes
        assert (view.record.collections, view.record.items_copied) == (None, 0)
        assert service.endpoint("new").dav is None
        assert {f.kind for f in service.store.failures("b1")} <= {"message"}
    finally:
        state.close()
        auth.close()
        service.close()
    after = layout(old_file)
    assert without_added(after) == before
    assert set(after[0]) >= ADDED_TABLES
    for app, (old, new) in UPGRADED.items():
        assert (app, old) in before[2]
        assert (app, new) in after[2]
    for table, columns in ADDED.items():
        assert [c[0] for c in after[0][table][-len(columns) :]] == columns


def test_a_new_file_has_the_layout_of_an_upgraded_old_one(old_file: Path, tmp_path: Path) -> None:
    new = tmp_path / "new" / "state.sqlite3"
    bootstrap.open_service(new).close()
    AuthStore.open_sqlite(new, cost=FAST).close()
    bootstrap.open_service(old_file).close()
    assert layout(new) == layout(old_file)


def test_every_store_of_a_file_shares_one_engine(old_file: Path) -> None:
    service = bootstrap.open_service(old_file)
    tables = bootstrap.open_auth_tables(old_file)
    state = SqlStateStore.open_sqlite(old_file)
    try:
        engine = service.store.db.engine
        assert tables.db.engine is engine
        assert state._engine is engine
        scheduler = bootstrap.scheduler(service, batch="b1")
        scheduler_state = scheduler.open_state()
        assert isinstance(scheduler_state, SqlStateStore)
        assert scheduler_state._engine is engine
        scheduler_state.close()
        scheduler.shutdown()
        with engine.connect() as conn:
            pragmas = [
                conn.exec_driver_sql(f"PRAGMA {p}").scalar()
                for p in ("synchronous", "busy_timeout")
            ]
        assert pragmas == [2, 30_000]  # FULL; the web's tables had neither before
    finally:
        state.close()
        tables.close()
        service.close()
    again = SqlStateStore.open_sqlite(old_file)  # the last close ended that Engine
    try:
        assert again._engine is not engine
    finally:
        again.close()


def test_a_closed_store_refuses_work_while_the_file_stays_open_for_others(old_file: Path) -> None:
    service = bootstrap.open_service(old_file)
    tables = bootstrap.open_auth_tables(old_file)
    try:
        service.store.close()
        with pytest.raises(StateError, match="is closed"):
            service.store.batches()
        assert tables.tokens()[0].name == "ci"
    finally:
        tables.close()


def test_a_file_is_opened_and_read_while_another_process_holds_its_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `mailferry serve` frozen (SIGSTOP) or slow inside a write transaction keeps SQLite's
    write lock: opening an up-to-date file takes no write lock, so `batch status` still reads
    (WAL readers do not wait for the writer). The wait is shortened so that a regression fails
    at once instead of after 30 s."""
    monkeypatch.delenv(KEY_ENV, raising=False)
    path = tmp_path / "state.sqlite3"
    bootstrap.open_service(path).close()
    AuthStore.open_sqlite(path, cost=FAST).close()
    monkeypatch.setattr(engine, "BUSY_TIMEOUT_MS", 100)
    with closing(sqlite3.connect(path, isolation_level=None)) as writer:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO batch_services (owner, heartbeat) VALUES ('frozen', 1.0)")
        service = bootstrap.open_service(path)
        auth = AuthStore.open_sqlite(path, cost=FAST)
        try:
            assert service.store.batches() == []
            assert service.store.services() == []  # the writer's row is not committed
            assert auth.tokens() == []
        finally:
            auth.close()
            service.close()
        writer.execute("ROLLBACK")


def test_writers_of_one_process_queue_for_the_lock_instead_of_meeting_sqlites_busy_handler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lanes of a run write their checkpoints at the same moments: they queue on the
    process's own lock, so none meets SQLite's busy handler (here set to fail at once)."""
    monkeypatch.setattr(engine, "BUSY_TIMEOUT_MS", 0)
    db = engine.open_database(engine.sqlite_url(tmp_path / "queue.sqlite3"))
    errors: list[StateError] = []
    held = threading.Event()

    def second_writer() -> None:
        held.wait()
        try:
            with db.transaction(write=True) as conn:
                conn.exec_driver_sql("INSERT INTO t VALUES (2)")
        except StateError as exc:
            errors.append(exc)

    try:
        with db.transaction(write=True) as conn:
            conn.exec_driver_sql("CREATE TABLE t (n INTEGER)")
        other = threading.Thread(target=second_writer)
        other.start()
        with db.transaction(write=True) as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            held.set()
            other.join(0.3)
            assert other.is_alive()  # waiting for this writer, not failed on "database is locked"
        other.join()
        assert errors == []
        with db.transaction() as conn:
            assert conn.exec_driver_sql("SELECT n FROM t ORDER BY n").scalars().all() == [1, 2]
    finally:
        db.release()


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (NotFound("no batch 'x'"), 404),
        (Conflict("anything at all"), 409),
        (ConfigError("batch 'x' exists already"), 400),  # the words no longer decide
        (AccountError("login refused"), 502),
        (StateError("locked"), 503),
        (MailferryError("other"), 500),
    ],
)
def test_the_http_status_comes_from_the_error_type(error: MailferryError, status: int) -> None:
    assert status_of(error) == status
