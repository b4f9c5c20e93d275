"""One contract for every MailboxStateStore (the SQLite file, the memory fake and, in the
integration run, a fresh PostgreSQL database), then what only the SQLite file can show."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from mailferry.adapters.memory.mailboxstate import MemoryMailboxStateStore
from mailferry.adapters.store.dav_state import SqlItemStateStore
from mailferry.adapters.store.engine import open_database
from mailferry.adapters.store.graph_state import ID_CHUNK, SCHEMA_VERSION, SqlMailboxStateStore
from mailferry.adapters.store.schema import upgrade_all
from mailferry.adapters.store.sync_state import SqlStateStore
from mailferry.domain.errors import SchemaTooOldError, StateError
from mailferry.domain.mailboxmodel import Listing, MailboxEntry
from mailferry.domain.mailboxplan import Copy, ImportIntent, Mode
from mailferry.domain.mailboxports import MailboxFolderState, MailboxStateStore
from mailferry.domain.mailboxreport import Doubt, EntryProblem
from mailferry.domain.workloads import Workload
from tests.conftest import StateDatabase

PAIR = "graph:ann@old.example -> graph:ann@new.example"
INBOX = "AAMkAGI2TG93AAA="  # Graph ids are opaque base64-like text
WORK = "AAMkAGI2TG93AAB/+="
MBX_TABLES = {
    "mbx_folders",
    "mbx_items",
    "mbx_intents",
    "mbx_failures",
    "mbx_listed",
    "mbx_doubts",
}


def copy(n: int, ck: str = "c1", key: str | None = "auto") -> Copy:
    return Copy(f"s{n}", f"{ck}-{n}", f"t{n}", "tk", f"<{n}@x>" if key == "auto" else key)


def create(n: int) -> ImportIntent:
    return ImportIntent(f"s{n}", f"c-{n}", "T-INBOX", f"<{n}@x>", Mode.CREATE, size=1000 * n)


def update(n: int) -> ImportIntent:
    return ImportIntent(f"s{n}", f"c2-{n}", "T-INBOX", None, Mode.UPDATE, f"t{n}", "tk")


def doubt(n: int, source: str = INBOX, reason: str = "may be twice") -> Doubt:
    return Doubt(source, Workload.MAIL, EntryProblem(f"Inbox/{source[-3:]}", f"s{n}", reason))


def everything(store: MailboxStateStore, source: str = INBOX) -> list[Any]:
    return [
        store.folder_state(PAIR, source),
        store.copies(PAIR, source),
        store.import_intents(PAIR, source),
        store.mailbox_failures(PAIR, source),
    ]


NOTHING: list[Any] = [None, [], [], {}]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "mailferry.sqlite"


@pytest.fixture(
    params=["sqlite", "memory", pytest.param("postgresql", marks=pytest.mark.integration)]
)
def store(request: pytest.FixtureRequest, path: Path) -> Iterator[MailboxStateStore]:
    if request.param == "memory":
        yield MemoryMailboxStateStore()
        return
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_database")
        db = open_database(url)
        try:
            upgrade_all(db)
        finally:
            db.release()
        opened = SqlMailboxStateStore.open(url)
    else:
        opened = SqlMailboxStateStore.open_sqlite(path)
    yield opened
    opened.close()


class TestMailboxStateStoreContract:
    def test_a_new_store_knows_nothing(self, store: MailboxStateStore) -> None:
        assert everything(store) == NOTHING
        assert store.folder_states(PAIR) == []

    def test_folder_state_is_saved_replaced_and_listed(self, store: MailboxStateStore) -> None:
        store.save_folder_state(PAIR, MailboxFolderState(INBOX, "T-INBOX"))
        store.save_folder_state(PAIR, MailboxFolderState(WORK, "T-WORK", "delta-1"))
        store.save_folder_state(PAIR, MailboxFolderState(INBOX, "T-INBOX", "delta-2"))
        assert store.folder_state(PAIR, INBOX) == MailboxFolderState(INBOX, "T-INBOX", "delta-2")
        assert [s.source for s in store.folder_states(PAIR)] == sorted([INBOX, WORK])
        assert store.folder_states("another pair") == []

    def test_copies_upsert_by_source_id_and_keep_a_missing_key(
        self, store: MailboxStateStore
    ) -> None:
        store.record_copies(PAIR, INBOX, [copy(1), copy(2, key=None)])
        store.record_copies(PAIR, INBOX, [copy(2, "c2", key=None), copy(3), copy(3, "c3")])
        assert store.copies(PAIR, INBOX) == [copy(1), copy(2, "c2", key=None), copy(3, "c3")]
        assert store.copies(PAIR, WORK) == []

    def test_forget_copies_drops_only_those(self, store: MailboxStateStore) -> None:
        store.record_copies(PAIR, INBOX, [copy(n) for n in range(1, 5)])
        store.forget_copies(PAIR, INBOX, ["s2", "s4", "s9", "s2"])
        assert store.copies(PAIR, INBOX) == [copy(1), copy(3)]

    def test_many_ids_go_in_chunks(self, store: MailboxStateStore) -> None:
        many = [copy(n) for n in range(ID_CHUNK * 2 + 7)]
        store.record_copies(PAIR, INBOX, many)
        store.forget_copies(PAIR, INBOX, [c.source_id for c in many[1:]])
        assert store.copies(PAIR, INBOX) == [many[0]]

    def test_intents_are_kept_until_resolved(self, store: MailboxStateStore) -> None:
        store.add_import_intents(PAIR, INBOX, [create(1), update(2), create(3)])
        store.add_import_intents(PAIR, INBOX, [update(3)])  # a newer intent replaces
        assert store.import_intents(PAIR, INBOX) == [create(1), update(2), update(3)]
        store.resolve_imports(PAIR, INBOX, [copy(1)], ["s3"])
        assert store.import_intents(PAIR, INBOX) == [update(2)]
        assert store.copies(PAIR, INBOX) == [copy(1)]

    def test_failures_are_replaced_whole(self, store: MailboxStateStore) -> None:
        store.set_mailbox_failures(PAIR, INBOX, {"s1": "too large", "s2": "export failed"})
        store.set_mailbox_failures(PAIR, INBOX, {"s3": "refused"})
        assert store.mailbox_failures(PAIR, INBOX) == {"s3": "refused"}
        store.set_mailbox_failures(PAIR, INBOX, {})
        assert store.mailbox_failures(PAIR, INBOX) == {}

    def test_forget_folder_forgets_that_folder_only(self, store: MailboxStateStore) -> None:
        for source in (INBOX, WORK):
            store.save_folder_state(PAIR, MailboxFolderState(source, "T", "d"))
            store.record_copies(PAIR, source, [copy(1)])
            store.add_import_intents(PAIR, source, [create(2)])
            store.set_mailbox_failures(PAIR, source, {"s3": "why"})
        kept = everything(store, WORK)
        store.forget_folder(PAIR, INBOX)
        assert everything(store, INBOX) == NOTHING
        assert everything(store, WORK) == kept

    def test_a_window_of_rows_is_read_by_id(self, store: MailboxStateStore) -> None:
        assert not store.has_copies(PAIR, INBOX)
        store.record_copies(PAIR, INBOX, [copy(n) for n in range(ID_CHUNK + 5)])
        store.record_copies(PAIR, WORK, [copy(900)])
        wanted = ["s3", "s9", "s900", "s-none", f"s{ID_CHUNK + 4}", "s3"]
        assert store.copies_of(PAIR, INBOX, wanted) == {
            "s3": copy(3),
            "s9": copy(9),
            f"s{ID_CHUNK + 4}": copy(ID_CHUNK + 4),
        }
        assert store.has_copies(PAIR, INBOX)
        assert store.copies_of(PAIR, INBOX, []) == {}

    def test_free_copies_are_neither_claimed_nor_recorded(self, store: MailboxStateStore) -> None:
        listed = [
            MailboxEntry("t1", "k1", "IPM.Note", 10, "<1@x>"),  # the target of row s1
            MailboxEntry("t7", "k7", "IPM.Note", 10, "<2@x>"),
            MailboxEntry("t5", "k5", "IPM.Note", 12, "<2@x>"),  # two copies with one key
            MailboxEntry("t6", "k6", "IPM.Note", None, None),
        ]
        store.add_listed(PAIR, INBOX, Listing.TARGET, listed)
        assert store.has_strangers(PAIR, INBOX)
        store.record_copies(PAIR, INBOX, [copy(1)])
        assert store.free_copies(PAIR, INBOX, ["<1@x>", "<2@x>", "<9@x>"]) == [listed[2], listed[1]]
        store.claim_copies(PAIR, INBOX, ["t5"])
        assert store.free_copies(PAIR, INBOX, ["<2@x>"]) == [listed[1]]
        assert store.free_copies(PAIR, WORK, ["<2@x>"]) == []
        assert store.listed(PAIR, INBOX, Listing.TARGET, ["t6", "t9"]) == {"t6": listed[3]}
        store.record_copies(PAIR, INBOX, [copy(n) for n in (5, 6, 7)])
        assert not store.has_strangers(PAIR, INBOX)
        store.forget_listed(PAIR, INBOX, [Listing.TARGET])
        assert store.listed(PAIR, INBOX, Listing.TARGET, ["t6"]) == {}

    def test_rows_a_whole_listing_did_not_see(self, store: MailboxStateStore) -> None:
        store.record_copies(PAIR, INBOX, [copy(n) for n in range(1, 8)])
        seen = [MailboxEntry(f"s{n}", "c", "IPM.Note") for n in (1, 3, 4, 9)]
        store.add_listed(PAIR, INBOX, Listing.SOURCE, seen)
        assert store.unlisted_copies(PAIR, INBOX, 2) == ["s2", "s5"]
        assert store.unlisted_copies(PAIR, INBOX, 10) == ["s2", "s5", "s6", "s7"]
        assert [e.id for e in store.listed(PAIR, INBOX, Listing.SOURCE, ["s9"]).values()] == ["s9"]

    def test_resolved_imports_are_listed_as_written(self, store: MailboxStateStore) -> None:
        store.add_import_intents(PAIR, INBOX, [create(1), create(2)])
        store.resolve_imports(PAIR, INBOX, [copy(1)], ["s2"])
        assert list(store.listed(PAIR, INBOX, Listing.WRITTEN, ["s1", "s2"])) == ["s1"]
        store.forget_folder(PAIR, INBOX)
        assert store.listed(PAIR, INBOX, Listing.WRITTEN, ["s1"]) == {}

    def test_doubts_are_kept_with_the_intents_until_forgotten(
        self, store: MailboxStateStore
    ) -> None:
        store.add_import_intents(PAIR, INBOX, [create(1)], [doubt(1)])
        store.add_import_intents(PAIR, WORK, [create(5)], [doubt(5, WORK)])
        store.add_import_intents(PAIR, INBOX, [create(2)])
        store.resolve_imports(PAIR, INBOX, [], ["s1", "s2"], [doubt(2), doubt(1, reason="again")])
        assert store.import_intents(PAIR, INBOX) == []
        mine = [doubt(1, reason="again"), doubt(2), doubt(5, WORK)]
        assert store.doubts(PAIR) == sorted(mine, key=lambda d: (d.source, d.problem.item))
        assert store.doubts("another pair") == []
        store.forget_folder(PAIR, INBOX)  # a doubt goes only once reported
        store.forget_doubts(PAIR, [doubt(2), doubt(5, WORK), doubt(9)])
        assert store.doubts(PAIR) == [doubt(1, reason="again")]

    def test_a_closed_store_refuses_work(self, store: MailboxStateStore) -> None:
        store.close()
        with pytest.raises(StateError):
            store.copies(PAIR, INBOX)


def raw_sql(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(sql).fetchall()
        conn.commit()
        return rows


class TestSqliteFile:
    def test_the_tables_join_a_mail_state_file_when_first_opened(self, path: Path) -> None:
        SqlStateStore.open_sqlite(path).close()
        tables = {r[0] for r in raw_sql(path, "SELECT name FROM sqlite_master WHERE type='table'")}
        assert not tables & MBX_TABLES
        SqlMailboxStateStore.open_sqlite(path).close()
        tables = {r[0] for r in raw_sql(path, "SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables >= MBX_TABLES
        version = raw_sql(
            path, "SELECT schema_version FROM meta WHERE application='mailferry.mailbox'"
        )
        assert version == [(SCHEMA_VERSION,)]

    def test_it_shares_the_file_with_the_other_stores(self, path: Path) -> None:
        mail, items = SqlStateStore.open_sqlite(path), SqlItemStateStore.open_sqlite(path)
        mailbox = SqlMailboxStateStore.open_sqlite(path)
        mailbox.record_copies(PAIR, INBOX, [copy(1)])
        for opened in (mail, items, mailbox):
            opened.close()
        again = SqlMailboxStateStore.open_sqlite(path)
        assert again.copies(PAIR, INBOX) == [copy(1)]
        again.close()

    def test_a_newer_schema_is_refused(self, path: Path) -> None:
        SqlMailboxStateStore.open_sqlite(path).close()
        raw_sql(path, "UPDATE meta SET schema_version = 99 WHERE application = 'mailferry.mailbox'")
        with pytest.raises(StateError, match="schema 99"):
            SqlMailboxStateStore.open_sqlite(path)

    def test_an_unknown_intent_mode_is_a_state_error(self, path: Path) -> None:
        store = SqlMailboxStateStore.open_sqlite(path)
        store.add_import_intents(PAIR, INBOX, [create(1)])
        raw_sql(path, "UPDATE mbx_intents SET mode = 'merge'")
        with pytest.raises(StateError, match="merge"):
            store.import_intents(PAIR, INBOX)
        store.close()

    def test_an_unknown_doubt_workload_is_a_state_error(self, path: Path) -> None:
        store = SqlMailboxStateStore.open_sqlite(path)
        store.add_import_intents(PAIR, INBOX, [create(1)], [doubt(1)])
        raw_sql(path, "UPDATE mbx_doubts SET workload = 'fax'")
        with pytest.raises(StateError, match="fax"):
            store.doubts(PAIR)
        store.close()

    def test_a_schema_1_file_gains_the_scratch_lists(self, path: Path) -> None:
        store = SqlMailboxStateStore.open_sqlite(path)
        store.record_copies(PAIR, INBOX, [copy(1)])
        store.close()
        raw_sql(path, "DROP TABLE mbx_doubts")
        raw_sql(path, "DROP TABLE mbx_listed")
        raw_sql(path, "DROP INDEX mbx_items_target")
        raw_sql(path, "ALTER TABLE mbx_intents DROP COLUMN size")
        raw_sql(path, "UPDATE meta SET schema_version = 1 WHERE application = 'mailferry.mailbox'")
        again = SqlMailboxStateStore.open_sqlite(path)
        again.add_listed(PAIR, INBOX, Listing.TARGET, [MailboxEntry("t9", "k", "IPM.Note")])
        assert again.has_strangers(PAIR, INBOX)
        assert again.copies(PAIR, INBOX) == [copy(1)]
        again.close()
        indexes = raw_sql(path, "SELECT name FROM sqlite_master WHERE type = 'index'")
        assert ("mbx_items_target",) in indexes
        version = raw_sql(
            path, "SELECT schema_version FROM meta WHERE application='mailferry.mailbox'"
        )
        assert version == [(SCHEMA_VERSION,)]


class TestUpgrade:
    def test_a_schema_2_database_gains_the_intents_size(
        self, state_database: StateDatabase
    ) -> None:
        """An intent a schema-2 run left reads with no size: settled by key alone, as before."""
        state_database.upgrade()
        state_database.raw(
            "ALTER TABLE mbx_intents DROP COLUMN size",
            "DROP TABLE mbx_doubts",
            "UPDATE meta SET schema_version = 2 WHERE application = 'mailferry.mailbox'",
            "INSERT INTO mbx_intents (pair, source, source_id, source_change_key, target_folder, "
            "key, mode) VALUES ('p', 'INBOX', 's1', 'c-1', 'T-INBOX', '<1@x>', 'create')",
        )
        if state_database.kind == "postgresql":  # shared: upgraded only when asked to
            with pytest.raises(SchemaTooOldError, match=r"at schema 2 .*mailferry db upgrade"):
                SqlMailboxStateStore.open(state_database.url)
            state_database.upgrade()
        with closing(SqlMailboxStateStore.open(state_database.url)) as store:  # SQLite: in place
            assert store.import_intents("p", "INBOX") == [dataclasses.replace(create(1), size=None)]
            store.add_import_intents("p", "INBOX", [create(2)])
            assert store.import_intents("p", "INBOX")[1] == create(2)
        version = state_database.raw(
            "SELECT schema_version FROM meta WHERE application = 'mailferry.mailbox'"
        )
        assert [tuple(row) for row in version] == [(SCHEMA_VERSION,)] == [(4,)]

    @pytest.mark.parametrize("made_at", [3, 4])
    def test_a_schema_3_database_gains_the_doubts(
        self, state_database: StateDatabase, made_at: int
    ) -> None:
        """Made at 3 (no mbx_doubts), or at 4 with ``meta`` saying 3: brought up, not refused;
        what a schema-3 run left reads as before."""
        state_database.upgrade()
        drop = ["DROP TABLE mbx_doubts"] if made_at == 3 else []
        state_database.raw(
            *drop,
            "UPDATE meta SET schema_version = 3 WHERE application = 'mailferry.mailbox'",
            "INSERT INTO mbx_intents (pair, source, source_id, source_change_key, target_folder, "
            "key, mode, size) VALUES ('p', 'INBOX', 's1', 'c-1', 'T-INBOX', '<1@x>', 'create', "
            "1000)",
        )
        if state_database.kind == "postgresql":
            with pytest.raises(SchemaTooOldError, match=r"at schema 3 .*mailferry db upgrade"):
                SqlMailboxStateStore.open(state_database.url)
            state_database.upgrade()
        with closing(SqlMailboxStateStore.open(state_database.url)) as store:
            assert store.import_intents("p", "INBOX") == [create(1)]
            store.resolve_imports("p", "INBOX", [], ["s1"], [doubt(1, "INBOX")])
            assert store.doubts("p") == [doubt(1, "INBOX")]
        version = state_database.raw(
            "SELECT schema_version FROM meta WHERE application = 'mailferry.mailbox'"
        )
        assert [tuple(row) for row in version] == [(4,)]
