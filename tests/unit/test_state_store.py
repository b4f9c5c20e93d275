"""One contract for every StateStore, then what only the SQLite file can show."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, make_url

from mailferry.adapters.memory.state import MemoryStateStore
from mailferry.adapters.store.sync_state import (
    SCHEMA_VERSION,
    UID_CHUNK,
    WRITE_CHUNK,
    SqlStateStore,
)
from mailferry.domain.errors import SchemaTooOldError, StateError
from mailferry.domain.ports import Checkpoint, Copied, Intent, StateStore
from tests.conftest import StateDatabase

PAIR = "alice@old->alice@new"
SEEN = frozenset({"\\Seen"})
MAX_UID = 2**32 - 1
UNICODE_FOLDERS = [
    "Entwürfe",
    "送信済みメール",
    "Archiv/2024/Ölfirma",
    'with "quotes" and 100% _under_',
    "📬 Post",
    "inbox",  # distinct from INBOX: folder names are compared exactly here
]


def checkpoint(folder: str = "INBOX", uidnext: int = 10, modseq: int | None = 7) -> Checkpoint:
    return Checkpoint(
        source_folder=folder,
        target_folder=f"Migrated/{folder}",
        source_uidvalidity=1_700_000_000,
        source_uidnext=uidnext,
        source_modseq=modseq,
        target_uidvalidity=MAX_UID,
        selection="all",
    )


def intent(uid: int, flags: frozenset[str] = SEEN, sha: str = "ab" * 32) -> Intent:
    return Intent(
        source_uid=uid,
        sha256=sha,
        size=1000 + uid,
        flags=flags,
        target_folder="INBOX",
        target_uidvalidity=42,
        target_uidnext=100,
    )


def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "mailferry.sqlite"


POSTGRESQL = pytest.param("postgresql", marks=pytest.mark.integration)


@pytest.fixture(params=["sqlite", "memory", POSTGRESQL])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    opened: StateStore
    if request.param == "sqlite":
        opened = SqlStateStore.open_sqlite(sqlite_path(tmp_path))
    elif request.param == "postgresql":  # a new database for each test (tests/conftest.py)
        opened = StateDatabase("postgresql", request.getfixturevalue("postgres_database")).open()
    else:
        opened = MemoryStateStore()
    yield opened
    opened.close()


class TestStateStoreContract:
    def test_a_new_store_knows_nothing(self, store: StateStore) -> None:
        assert store.checkpoint(PAIR, "INBOX") is None
        assert store.copied(PAIR, "INBOX") == {}
        assert store.copied(PAIR, "INBOX", [1, 2]) == {}
        assert store.intents(PAIR, "INBOX") == []
        assert store.failed_uids(PAIR, "INBOX") == set()

    def test_folder_records_hold_every_checkpointed_folder_of_the_pair(
        self, store: StateStore
    ) -> None:
        for name in ("a", "b", "c", "d"):
            store.save_checkpoint(PAIR, checkpoint(name))
        store.save_checkpoint("other", checkpoint("e"))
        store.add_copied(PAIR, "a", [Copied(1, 1, SEEN), Copied(2, 2, SEEN)])
        store.add_copied(PAIR, "x", [Copied(1, 1, SEEN)])  # rows without a checkpoint
        store.add_intents(PAIR, "b", [intent(3)])
        store.set_failures(PAIR, "c", {4: "refused"})
        records = store.folder_records(PAIR)
        assert sorted(records) == ["a", "b", "c", "d"]
        assert records["a"].checkpoint == checkpoint("a")
        assert [(records[n].copied, records[n].pending) for n in "abcd"] == [
            (2, False),
            (0, True),
            (0, True),
            (0, False),
        ]
        assert store.folder_records("nobody") == {}

    def test_folder_records_count_the_rows_whatever_wrote_them(self, store: StateStore) -> None:
        """The count a no-op pass reports (a SQL store keeps it with the checkpoint, so that it
        does not count a million rows each run) stays exact through every write of the rows."""

        def count() -> int:
            return store.folder_records(PAIR)["INBOX"].copied

        store.save_checkpoint(PAIR, checkpoint())
        assert count() == 0
        store.add_copied(PAIR, "INBOX", [Copied(1, 1, SEEN), Copied(2, 2, SEEN)])
        assert count() == 2
        store.save_checkpoint(PAIR, checkpoint(uidnext=20))
        store.add_copied(PAIR, "INBOX", [Copied(2, 22, SEEN)])  # the same UID: no new row
        assert count() == 2
        store.save_checkpoint(PAIR, checkpoint(uidnext=21))
        store.add_intents(PAIR, "INBOX", [intent(3), intent(4)])
        store.resolve(PAIR, "INBOX", [Copied(3, 3, SEEN)], [4])
        store.save_checkpoint(PAIR, checkpoint(uidnext=30))
        assert count() == 3
        store.update_flags(PAIR, "INBOX", {1: frozenset()})
        store.add_copied(PAIR, "Sent", [Copied(5, 5, SEEN)])  # another folder, another pair
        store.add_copied("other", "INBOX", [Copied(6, 6, SEEN)])
        assert count() == 3
        store.save_checkpoint(PAIR, checkpoint(uidnext=Checkpoint.STARTED))  # a pass begins
        store.add_copied(PAIR, "INBOX", [Copied(7, 7, SEEN)])
        assert count() == 4
        store.save_checkpoint(PAIR, checkpoint(uidnext=40))
        assert count() == 4
        store.reset_folder(PAIR, "INBOX", checkpoint(uidnext=Checkpoint.STARTED))
        assert count() == 0

    def test_checkpoint_is_saved_and_replaced(self, store: StateStore) -> None:
        store.save_checkpoint(PAIR, checkpoint(uidnext=10))
        assert store.checkpoint(PAIR, "INBOX") == checkpoint(uidnext=10)
        store.save_checkpoint(PAIR, checkpoint(uidnext=20, modseq=None))
        assert store.checkpoint(PAIR, "INBOX") == checkpoint(uidnext=20, modseq=None)
        assert store.checkpoint("other pair", "INBOX") is None
        assert store.checkpoint(PAIR, "Sent") is None

    def test_checkpoint_keeps_the_largest_protocol_numbers(self, store: StateStore) -> None:
        big = checkpoint(uidnext=MAX_UID, modseq=2**63 - 1)
        store.save_checkpoint(PAIR, big)
        assert store.checkpoint(PAIR, "INBOX") == big

    def test_copied_rows_are_read_by_uid_range_and_in_pages(self, store: StateStore) -> None:
        """What a streamed folder pass reads: one window's rows, or a folder's rows a page at a
        time, of this folder and pair only."""
        rows = [Copied(uid, uid + 100, SEEN, f"k{uid}") for uid in (1, 5, 6, 9, MAX_UID)]
        store.add_copied(PAIR, "INBOX", rows)
        store.add_copied(PAIR, "Sent", [Copied(5, 1, SEEN)])
        store.add_copied("other", "INBOX", [Copied(7, 1, SEEN)])
        assert store.copied_range(PAIR, "INBOX", 5, 9) == {r.source_uid: r for r in rows[1:4]}
        assert store.copied_range(PAIR, "INBOX", 2, 4) == {}
        assert store.copied_range(PAIR, "INBOX", 10, MAX_UID) == {MAX_UID: rows[4]}
        assert store.copied_page(PAIR, "INBOX", 0, 2) == rows[:2]
        assert store.copied_page(PAIR, "INBOX", 5, 10) == rows[2:]
        assert store.copied_page(PAIR, "INBOX", MAX_UID, 10) == []

    def test_copied_round_trip_and_upsert(self, store: StateStore) -> None:
        store.add_copied(
            PAIR,
            "INBOX",
            [Copied(1, 101, SEEN), Copied(2, None, frozenset()), Copied(MAX_UID, MAX_UID, SEEN)],
        )
        store.add_copied(PAIR, "INBOX", [Copied(2, 102, frozenset({"\\Flagged", "$Label1"}))])
        assert store.copied(PAIR, "INBOX") == {
            1: Copied(1, 101, SEEN),
            2: Copied(2, 102, frozenset({"\\Flagged", "$Label1"})),
            MAX_UID: Copied(MAX_UID, MAX_UID, SEEN),
        }
        assert store.copied(PAIR, "Sent") == {}
        assert store.copied("other pair", "INBOX") == {}

    def test_the_last_of_repeated_uids_in_one_call_wins(self, store: StateStore) -> None:
        store.add_copied(PAIR, "INBOX", [Copied(1, 101, SEEN), Copied(1, 201, frozenset())])
        assert store.copied(PAIR, "INBOX") == {1: Copied(1, 201, frozenset())}

    def test_copied_filtered_by_uids(self, store: StateStore) -> None:
        store.add_copied(PAIR, "INBOX", [Copied(uid, uid + 100, SEEN) for uid in range(1, 11)])
        assert set(store.copied(PAIR, "INBOX", [2, 4, 4, 99])) == {2, 4}
        assert set(store.copied(PAIR, "INBOX", (uid for uid in (3, 5)))) == {3, 5}
        assert store.copied(PAIR, "INBOX", []) == {}

    def test_copied_with_thousands_of_uids(self, store: StateStore) -> None:
        store.add_copied(PAIR, "INBOX", [Copied(uid, uid, SEEN) for uid in range(1, 2001)])
        assert len(store.copied(PAIR, "INBOX")) == 2000
        asked = list(range(2000, 0, -1)) + list(range(5000, 5100))  # unordered, some unknown
        found = store.copied(PAIR, "INBOX", asked)
        assert sorted(found) == list(range(1, 2001))
        assert found[1234] == Copied(1234, 1234, SEEN)
        every_third = range(3, 2001, 3)
        assert sorted(store.copied(PAIR, "INBOX", every_third)) == list(every_third)

    def test_update_flags_touches_only_known_messages(self, store: StateStore) -> None:
        store.add_copied(PAIR, "INBOX", [Copied(1, 101, SEEN), Copied(2, 102, SEEN)])
        store.update_flags(PAIR, "INBOX", {1: frozenset({"\\Seen", "\\Answered"}), 7: SEEN})
        store.update_flags(PAIR, "INBOX", {})
        assert store.copied(PAIR, "INBOX") == {
            1: Copied(1, 101, frozenset({"\\Seen", "\\Answered"})),
            2: Copied(2, 102, SEEN),
        }

    def test_intents_in_uid_order_newest_intent_per_uid(self, store: StateStore) -> None:
        store.add_intents(PAIR, "INBOX", [intent(3), intent(1), intent(2, frozenset())])
        store.add_intents(PAIR, "INBOX", [intent(3, sha="cd" * 32)])
        store.add_intents(PAIR, "Sent", [intent(9)])
        assert store.intents(PAIR, "INBOX") == [
            intent(1),
            intent(2, frozenset()),
            intent(3, sha="cd" * 32),
        ]
        assert store.intents(PAIR, "Sent") == [intent(9)]
        assert store.intents("other pair", "INBOX") == []

    def test_resolve_turns_intents_into_copied_rows(self, store: StateStore) -> None:
        store.add_intents(PAIR, "INBOX", [intent(uid) for uid in (1, 2, 3, 4)])
        store.add_intents(PAIR, "Sent", [intent(1)])
        store.add_copied(PAIR, "INBOX", [Copied(1, None, frozenset())])
        store.resolve(
            PAIR, "INBOX", confirmed=[Copied(1, 11, SEEN), Copied(2, None, SEEN)], dropped=[3]
        )
        assert store.intents(PAIR, "INBOX") == [intent(4)]
        assert store.intents(PAIR, "Sent") == [intent(1)]
        assert store.copied(PAIR, "INBOX") == {1: Copied(1, 11, SEEN), 2: Copied(2, None, SEEN)}

    def test_resolve_of_nothing_changes_nothing(self, store: StateStore) -> None:
        store.add_intents(PAIR, "INBOX", [intent(1)])
        store.resolve(PAIR, "INBOX", confirmed=[], dropped=[])
        store.resolve(PAIR, "INBOX", confirmed=[], dropped=[99])
        assert store.intents(PAIR, "INBOX") == [intent(1)]
        assert store.copied(PAIR, "INBOX") == {}

    def test_a_refused_resolve_leaves_no_trace(self, store: StateStore) -> None:
        store.add_intents(PAIR, "INBOX", [intent(1), intent(2)])
        bad = [Copied(1, 11, SEEN), Copied(2, 12, frozenset({"two words"}))]
        with pytest.raises(ValueError, match="two words"):
            store.resolve(PAIR, "INBOX", confirmed=bad, dropped=[])
        assert store.intents(PAIR, "INBOX") == [intent(1), intent(2)]
        assert store.copied(PAIR, "INBOX") == {}

    @pytest.mark.parametrize("flag", ["", "a b", "tab\there", "new\nline"])
    def test_flags_that_cannot_be_stored_are_refused(self, store: StateStore, flag: str) -> None:
        with pytest.raises(ValueError, match="cannot be stored"):
            store.add_copied(PAIR, "INBOX", [Copied(1, 1, frozenset({flag}))])
        with pytest.raises(ValueError, match="cannot be stored"):
            store.add_intents(PAIR, "INBOX", [intent(1, frozenset({flag}))])
        store.add_copied(PAIR, "INBOX", [Copied(1, 1, SEEN)])
        with pytest.raises(ValueError, match="cannot be stored"):
            store.update_flags(PAIR, "INBOX", {1: frozenset({flag})})
        assert store.copied(PAIR, "INBOX") == {1: Copied(1, 1, SEEN)}
        assert store.intents(PAIR, "INBOX") == []

    def test_a_large_add_copied_is_all_or_nothing(self, store: StateStore) -> None:
        """Written in chunks (the whole folder of a lost-state match), still one transaction."""
        many = [Copied(uid, uid + 1, SEEN) for uid in range(1, WRITE_CHUNK * 2 + 10)]
        bad = [*many, Copied(99_999, 1, frozenset({"two words"}))]
        with pytest.raises(ValueError, match="cannot be stored"):
            store.add_copied(PAIR, "INBOX", bad)
        assert store.copied(PAIR, "INBOX") == {}
        store.add_copied(PAIR, "INBOX", [*many, Copied(5, 50, SEEN)])  # the last row for 5 wins
        found = store.copied(PAIR, "INBOX")
        assert len(found) == len(many)
        assert found[5] == Copied(5, 50, SEEN)

    def test_set_failures_replaces_the_folders_failures(self, store: StateStore) -> None:
        store.set_failures(PAIR, "INBOX", {1: "too big", 2: "refused by server"})
        store.set_failures(PAIR, "Sent", {5: "too big"})
        assert store.failed_uids(PAIR, "INBOX") == {1, 2}
        store.set_failures(PAIR, "INBOX", {3: "bad date"})
        assert store.failed_uids(PAIR, "INBOX") == {3}
        store.set_failures(PAIR, "INBOX", {})
        assert store.failed_uids(PAIR, "INBOX") == set()
        assert store.failed_uids(PAIR, "Sent") == {5}

    def test_reset_folder_forgets_only_that_folder(self, store: StateStore) -> None:
        for pair, folder in [(PAIR, "INBOX"), (PAIR, "Sent"), ("other pair", "INBOX")]:
            store.save_checkpoint(pair, checkpoint(folder))
            store.add_copied(pair, folder, [Copied(1, 1, SEEN)])
            store.add_intents(pair, folder, [intent(2)])
            store.set_failures(pair, folder, {3: "too big"})
        store.reset_folder(PAIR, "INBOX")
        assert store.checkpoint(PAIR, "INBOX") is None
        assert store.copied(PAIR, "INBOX") == {}
        assert store.intents(PAIR, "INBOX") == []
        assert store.failed_uids(PAIR, "INBOX") == set()
        for pair, folder in [(PAIR, "Sent"), ("other pair", "INBOX")]:
            assert store.checkpoint(pair, folder) == checkpoint(folder)
            assert store.copied(pair, folder) == {1: Copied(1, 1, SEEN)}
            assert store.intents(pair, folder) == [intent(2)]
            assert store.failed_uids(pair, folder) == {3}

    def test_unicode_folder_names_are_kept_apart(self, store: StateStore) -> None:
        for uid, folder in enumerate(["INBOX", *UNICODE_FOLDERS], start=1):
            store.save_checkpoint(PAIR, checkpoint(folder, uidnext=uid))
            store.add_copied(PAIR, folder, [Copied(uid, uid, SEEN)])
            store.add_intents(PAIR, folder, [intent(uid)])
            store.set_failures(PAIR, folder, {uid: f"failed in {folder}"})
        for uid, folder in enumerate(["INBOX", *UNICODE_FOLDERS], start=1):
            assert store.checkpoint(PAIR, folder) == checkpoint(folder, uidnext=uid)
            assert store.copied(PAIR, folder) == {uid: Copied(uid, uid, SEEN)}
            assert store.intents(PAIR, folder) == [intent(uid)]
            assert store.failed_uids(PAIR, folder) == {uid}
        store.reset_folder(PAIR, "Entwürfe")
        assert store.copied(PAIR, "Entwürfe") == {}
        assert store.copied(PAIR, "送信済みメール") != {}

    def test_reset_folder_may_start_the_next_pass_in_the_same_transaction(
        self, store: StateStore
    ) -> None:
        for folder in ("INBOX", "Sent"):
            store.save_checkpoint(PAIR, checkpoint(folder))
            store.add_copied(PAIR, folder, [Copied(1, 1, SEEN)])
            store.set_failures(PAIR, folder, {3: "too big"})
        start = checkpoint("INBOX", uidnext=Checkpoint.STARTED, modseq=None)
        store.reset_folder(PAIR, "INBOX", start)
        assert store.checkpoint(PAIR, "INBOX") == start
        assert (store.copied(PAIR, "INBOX"), store.failed_uids(PAIR, "INBOX")) == ({}, set())
        assert store.checkpoint(PAIR, "Sent") == checkpoint("Sent")
        store.set_failures(PAIR, "INBOX", {})  # none, none recorded
        store.set_failures(PAIR, "Sent", {})
        assert store.failed_uids(PAIR, "Sent") == set()

    def test_a_closed_store_refuses_work(self, store: StateStore) -> None:
        store.close()
        with pytest.raises(StateError, match="closed"):
            store.copied(PAIR, "INBOX")
        with pytest.raises(StateError, match="closed"):
            store.add_intents(PAIR, "INBOX", [intent(1)])
        store.close()  # twice is fine


# -- the SQLite file -------------------------------------------------------------------------


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return sqlite_path(tmp_path)


@pytest.fixture
def sql_store(path: Path) -> Iterator[SqlStateStore]:
    opened = SqlStateStore.open_sqlite(path)
    yield opened
    opened.close()


def raw_sql(path: Path, *statements: str) -> list[Any]:
    """Run statements on the file behind the store's back; return the last one's rows."""
    with closing(sqlite3.connect(path)) as conn, conn:
        rows: list[Any] = []
        for statement in statements:
            rows = conn.execute(statement).fetchall()
        return rows


# -- a real database: SQLite and PostgreSQL ----------------------------------------------------


# PostgreSQL's trigger needs a function; both refuse the row for UID 2 with the same words.
REFUSING_TRIGGER = {
    "sqlite": [
        (
            "CREATE TRIGGER refuse AFTER INSERT ON copied WHEN NEW.source_uid = 2 "
            "BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
        )
    ],
    "postgresql": [
        (
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN IF NEW.source_uid = 2 THEN RAISE 'refused by test'; END IF; RETURN NEW; END $$"
        ),
        "CREATE TRIGGER refuse AFTER INSERT ON copied FOR EACH ROW EXECUTE FUNCTION refuse()",
    ],
}
NO_TABLE = {"sqlite": "no such table: copied", "postgresql": 'relation "copied" does not exist'}


class TestDatabase:
    def test_everything_survives_close_and_reopen(self, state_database: StateDatabase) -> None:
        first = state_database.open()
        first.save_checkpoint(PAIR, checkpoint("Entwürfe"))
        first.add_copied(PAIR, "Entwürfe", [Copied(1, 101, SEEN), Copied(2, None, frozenset())])
        first.add_intents(PAIR, "Entwürfe", [intent(3)])
        first.set_failures(PAIR, "Entwürfe", {4: "too big"})
        first.close()
        with closing(state_database.open()) as again:
            assert again.checkpoint(PAIR, "Entwürfe") == checkpoint("Entwürfe")
            assert again.copied(PAIR, "Entwürfe") == {
                1: Copied(1, 101, SEEN),
                2: Copied(2, None, frozenset()),
            }
            assert again.intents(PAIR, "Entwürfe") == [intent(3)]
            assert again.failed_uids(PAIR, "Entwürfe") == {4}

    def test_intents_are_committed_when_add_intents_returns(
        self, state_database: StateDatabase
    ) -> None:
        with closing(state_database.open()) as store:
            store.add_intents(PAIR, "INBOX", [intent(1), intent(2)])
            # Another connection sees them while the store is still open (nothing to flush) ...
            rows = state_database.raw("SELECT source_uid FROM intents ORDER BY 1")
            assert [tuple(row) for row in rows] == [(1,), (2,)]
        # ... and a second store (a run started after a crash) finds them.
        with closing(state_database.open()) as other:
            assert other.intents(PAIR, "INBOX") == [intent(1), intent(2)]

    def test_resolve_is_one_transaction(self, state_database: StateDatabase) -> None:
        with closing(state_database.open()) as store:
            store.add_intents(PAIR, "INBOX", [intent(1), intent(2), intent(3)])
            state_database.raw(*REFUSING_TRIGGER[state_database.kind])
            with pytest.raises(StateError, match="refused by test"):
                store.resolve(PAIR, "INBOX", [Copied(1, 11, SEEN), Copied(2, 12, SEEN)], [3])
            assert store.intents(PAIR, "INBOX") == [intent(1), intent(2), intent(3)]
            assert store.copied(PAIR, "INBOX") == {}

    def test_library_errors_become_state_errors(self, state_database: StateDatabase) -> None:
        with closing(state_database.open()) as store:
            state_database.raw("DROP TABLE copied")
            with pytest.raises(StateError, match=NO_TABLE[state_database.kind]) as caught:
                store.copied(PAIR, "INBOX")
        assert "SELECT" not in str(caught.value)  # the driver's words, not the whole statement
        password = make_url(state_database.url).password
        assert not password or password not in str(caught.value)  # nor the URL's password

    def test_a_meta_row_of_another_application(self, state_database: StateDatabase) -> None:
        state_database.open().close()
        state_database.raw("DELETE FROM meta WHERE application <> 'mailferry'")
        state_database.raw("UPDATE meta SET application = 'othertool'")
        with pytest.raises(StateError, match="is not a mailferry state database"):
            state_database.open()

    def test_a_newer_schema(self, state_database: StateDatabase) -> None:
        state_database.open().close()
        state_database.raw("UPDATE meta SET schema_version = schema_version + 1")
        expected = f"was written by a newer mailferry \\(schema {SCHEMA_VERSION + 1}\\); upgrade"
        with pytest.raises(StateError, match=expected):
            state_database.open()

    def test_a_damaged_state_database(self, state_database: StateDatabase) -> None:
        state_database.open().close()
        state_database.raw("DROP TABLE intents")
        with pytest.raises(StateError, match="missing tables intents"):
            state_database.open()

    def test_somebody_elses_database(self, state_database: StateDatabase) -> None:
        state_database.raw("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        with pytest.raises(StateError, match="is not a mailferry state database"):
            SqlStateStore.open(state_database.url)

    def test_a_schema_1_database_is_upgraded(self, state_database: StateDatabase) -> None:
        state_database.open().close()
        state_database.raw(
            "ALTER TABLE checkpoints DROP COLUMN copied",
            "DROP INDEX copied_label",
            "ALTER TABLE copied DROP COLUMN label",
            "ALTER TABLE copied DROP COLUMN elsewhere",
            "ALTER TABLE intents DROP COLUMN label",
            "UPDATE meta SET schema_version = 1",
            "INSERT INTO copied (pair, folder, source_uid, target_uid, flags) "
            "VALUES ('p', 'INBOX', 5, 50, '\\Seen')",
        )
        if state_database.kind == "postgresql":  # shared: upgraded only when asked to
            with pytest.raises(SchemaTooOldError, match=r"at schema 1 .*mailferry db upgrade"):
                SqlStateStore.open(state_database.url)
            state_database.upgrade()
        with closing(SqlStateStore.open(state_database.url)) as store:  # SQLite: in place
            assert store.copied("p", "INBOX") == {5: Copied(5, 50, SEEN)}
            store.add_copied("p", "INBOX", [Copied(6, 60, SEEN, "k")])
            assert store.label_tally("p", "INBOX", ["k"]).standing == {"k": 1}
        rows = state_database.raw("SELECT schema_version FROM meta WHERE application = 'mailferry'")
        assert [tuple(row) for row in rows] == [(SCHEMA_VERSION,)]

    def test_a_schema_2_database_counts_each_folder_once(
        self, state_database: StateDatabase
    ) -> None:
        with closing(state_database.open()) as store:
            store.save_checkpoint(PAIR, checkpoint())
            store.save_checkpoint(PAIR, checkpoint("Sent"))
            store.add_copied(PAIR, "INBOX", [Copied(1, 1, SEEN), Copied(2, 2, SEEN)])
        state_database.raw(
            "ALTER TABLE checkpoints DROP COLUMN copied",
            "UPDATE meta SET schema_version = 2 WHERE application = 'mailferry'",
        )
        if state_database.kind == "postgresql":
            with pytest.raises(SchemaTooOldError, match=r"at schema 2 .*mailferry db upgrade"):
                SqlStateStore.open(state_database.url)
            state_database.upgrade()
        with closing(state_database.open()) as store:
            records = store.folder_records(PAIR)
        assert {name: record.copied for name, record in records.items()} == {"INBOX": 2, "Sent": 0}
        rows = state_database.raw("SELECT folder, copied FROM checkpoints ORDER BY folder")
        assert [tuple(row) for row in rows] == [("INBOX", 2), ("Sent", 0)]

    def test_an_unchanged_folder_is_not_counted(self, state_database: StateDatabase) -> None:
        """What a no-op pass asks: no row of ``copied`` read (a million took 0.1-0.3 s)."""
        with closing(state_database.open()) as store:
            store.add_copied(PAIR, "INBOX", [Copied(uid, uid, SEEN) for uid in range(1, 101)])
            store.save_checkpoint(PAIR, checkpoint(uidnext=200))
            store.save_checkpoint(PAIR, checkpoint("Sent", uidnext=Checkpoint.STARTED))
            store.add_copied(PAIR, "Sent", [Copied(1, 1, SEEN)])  # a pass that did not end
            statements = TestSqliteFile.record_statements(store)
            records = store.folder_records(PAIR)
        assert (records["INBOX"].copied, records["Sent"].copied) == (100, 1)
        reads = [sql for sql, _ in statements if "FROM copied" in sql]
        assert len(reads) == 1
        assert "IN (" in reads[0]  # the folder that did not end, by name

    def test_folders_too_many_to_name_are_counted_at_once(
        self, state_database: StateDatabase
    ) -> None:
        """More folders written since their pass than one IN (...) may name (a run stopped
        while many lanes were busy): one count of the pair, each folder's its own."""
        names = [f"F{n}" for n in range(UID_CHUNK + 1)]
        with closing(state_database.open()) as store:
            for n, name in enumerate(names):
                store.save_checkpoint(PAIR, checkpoint(name, uidnext=Checkpoint.STARTED))
                store.add_copied(PAIR, name, [Copied(u, u, SEEN) for u in range(1, n % 3 + 1)])
            store.add_copied("other", "F1", [Copied(9, 9, SEEN)])
            statements = TestSqliteFile.record_statements(store)
            records = store.folder_records(PAIR)
        assert {name: records[name].copied for name in names} == {
            name: n % 3 for n, name in enumerate(names)
        }
        reads = [sql for sql, _ in statements if "FROM copied" in sql]
        assert len(reads) == 1
        assert "IN (" not in reads[0]


# -- what only the SQLite file shows ------------------------------------------------------------


class TestSqliteFile:
    def test_connection_settings(self, sql_store: SqlStateStore, path: Path) -> None:
        with sql_store._engine.connect() as conn:
            setting = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
        assert setting == {
            "journal_mode": "wal",
            "synchronous": 2,  # FULL
            "foreign_keys": 1,
            "busy_timeout": 30_000,
        }
        assert raw_sql(path, "PRAGMA journal_mode") == [("wal",)]  # persistent in the file

    def test_new_directories_and_file_are_private(self, tmp_path: Path) -> None:
        path = tmp_path / "a" / "b" / "state.sqlite"
        SqlStateStore.open_sqlite(path).close()
        for created in (tmp_path / "a", tmp_path / "a" / "b"):
            assert stat.S_IMODE(created.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0

    def test_an_empty_file_becomes_a_state_database(self, path: Path) -> None:
        path.parent.mkdir()
        path.touch()
        SqlStateStore.open_sqlite(path).close()
        assert raw_sql(path, "SELECT application, schema_version FROM meta") == [
            ("mailferry", SCHEMA_VERSION)
        ]

    def test_batches_are_one_executemany(self, sql_store: SqlStateStore) -> None:
        statements = self.record_statements(sql_store)
        sql_store.add_copied(PAIR, "INBOX", [Copied(uid, uid, SEEN) for uid in range(1, 301)])
        sql_store.add_intents(PAIR, "INBOX", [intent(uid) for uid in range(301, 601)])
        sql_store.resolve(
            PAIR, "INBOX", [Copied(uid, uid, SEEN) for uid in range(301, 451)], range(451, 601)
        )
        sql_store.update_flags(PAIR, "INBOX", dict.fromkeys(range(1, 301), frozenset()))
        sql_store.set_failures(PAIR, "INBOX", dict.fromkeys(range(700, 900), "too big"))
        writes = [(sql.split()[0], many) for sql, many in statements if not sql.startswith("BEGIN")]
        assert writes == [
            ("INSERT", True),
            ("UPDATE", False),  # the folder's saved count cleared (none saved here)
            ("INSERT", True),
            ("DELETE", True),
            ("INSERT", True),
            ("UPDATE", False),
            ("UPDATE", True),
            ("DELETE", False),
            ("INSERT", True),
        ]
        assert [sql for sql, _ in statements if sql.startswith("BEGIN")] == ["BEGIN IMMEDIATE"] * 5

    def test_copied_asks_in_chunks(self, sql_store: SqlStateStore) -> None:
        sql_store.add_copied(PAIR, "INBOX", [Copied(uid, uid, SEEN) for uid in range(1, 2001)])
        statements = self.record_statements(sql_store)
        assert len(sql_store.copied(PAIR, "INBOX", range(1, 2001))) == 2000
        selects = [sql for sql, _ in statements if sql.startswith("SELECT")]
        assert len(selects) == -(-2000 // UID_CHUNK)
        assert [sql for sql, _ in statements if sql.startswith("BEGIN")] == ["BEGIN"]

    @staticmethod
    def record_statements(store: SqlStateStore) -> list[tuple[str, bool]]:
        seen: list[tuple[str, bool]] = []

        def record(*args: Any) -> None:
            statement, executemany = args[2], args[5]
            seen.append((statement.strip(), executemany))

        event.listen(store._engine, "before_cursor_execute", record)
        return seen


class TestRefusedDatabases:
    def test_somebody_elses_sqlite_database(self, path: Path) -> None:
        path.parent.mkdir()
        raw_sql(path, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        with pytest.raises(StateError, match="is not a mailferry state database"):
            SqlStateStore.open_sqlite(path)
        # Left as it was: no tables of ours, and still in its own journal mode.
        assert raw_sql(path, "SELECT name FROM sqlite_master") == [("notes",)]
        assert raw_sql(path, "PRAGMA journal_mode") == [("delete",)]

    def test_a_meta_table_that_is_not_ours(self, path: Path) -> None:
        path.parent.mkdir()
        raw_sql(path, "CREATE TABLE meta (key TEXT, value TEXT)")
        with pytest.raises(StateError, match="is not a mailferry state database"):
            SqlStateStore.open_sqlite(path)

    def test_a_file_that_is_not_sqlite(self, path: Path) -> None:
        path.parent.mkdir()
        garbage = bytes(range(256)) * 64
        path.write_bytes(garbage)
        with pytest.raises(StateError, match="cannot be opened as a state database"):
            SqlStateStore.open_sqlite(path)
        assert path.read_bytes() == garbage

    def test_a_directory_in_place_of_the_file(self, path: Path) -> None:
        path.mkdir(parents=True)
        with pytest.raises(StateError, match="cannot be opened as a state database"):
            SqlStateStore.open_sqlite(path)

    @pytest.mark.parametrize(
        ("url", "reason"),
        [("not a url", "cannot use"), ("mysql+pymysql://u@h/db", "not supported|cannot use")],
    )
    def test_urls_it_cannot_use(self, url: str, reason: str) -> None:
        with pytest.raises(StateError, match=reason):
            SqlStateStore.open(url)


def test_count_copied_counts_one_folder(store: StateStore) -> None:
    assert store.count_copied("p", "A") == 0
    store.add_copied("p", "A", [Copied(1, 10, SEEN), Copied(2, 11, SEEN)])
    store.add_copied("p", "B", [Copied(1, 12, SEEN)])
    store.add_copied("q", "A", [Copied(5, 13, SEEN)])
    assert store.count_copied("p", "A") == 2
    assert store.count_copied("p", "B") == 1
    store.reset_folder("p", "A")
    assert store.count_copied("p", "A") == 0


def test_intents_keep_message_id_and_date(store: StateStore) -> None:
    kept = Intent(7, "ab" * 32, 10, SEEN, "INBOX", 1, 2, "<m@x>", 1_600_000_000)
    bare = Intent(8, "cd" * 32, 10, SEEN, "INBOX", 1, 2)
    store.add_intents("p", "INBOX", [kept, bare])
    assert store.intents("p", "INBOX") == [kept, bare]


def test_label_tally_counts_standing_copies_and_the_folders_own(store: StateStore) -> None:
    store.add_copied(
        "p",
        "INBOX",
        [Copied(1, 10, SEEN, "k1"), Copied(2, 11, SEEN, "k1"), Copied(3, 12, SEEN, "k2")],
    )
    store.add_copied("p", "Work", [Copied(1, None, SEEN, "k1", elsewhere=True)])
    store.add_copied("p", "All", [Copied(4, 13, SEEN, None)])  # no label: not counted
    store.add_copied("q", "INBOX", [Copied(1, 14, SEEN, "k1")])  # another pair
    # An APPEND in flight is no copy yet (the run settles intents before it asks).
    pending = Intent(9, "ab" * 32, 1, SEEN, "Sent", 1, 1, label="k3")
    store.add_intents("p", "Sent", [pending])
    assert store.intents("p", "Sent") == [pending]
    tally = store.label_tally("p", "Work", ["k1", "k2", "k3"])
    assert dict(tally.standing) == {"k1": 2, "k2": 1}
    assert dict(tally.mine) == {"k1": 1}
    assert store.copied("p", "Work") == {1: Copied(1, None, SEEN, "k1", elsewhere=True)}
    assert not store.label_tally("p", "INBOX", []).standing
    many = [f"x{i}" for i in range(UID_CHUNK * 2 + 3)]
    store.add_copied("p", "Big", [Copied(i, i, SEEN, key) for i, key in enumerate(many)])
    assert sum(store.label_tally("p", "Big", many).mine.values()) == len(many)
