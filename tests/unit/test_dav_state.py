"""One contract for every ItemStateStore (the `store` fixture: a SQLite file now, PostgreSQL and a
memory fake can join its params), then what only the SQLite file can show."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from mailferry.adapters.memory.davstate import MemoryItemStateStore
from mailferry.adapters.store.dav_state import HREF_CHUNK, SCHEMA_VERSION, SqlItemStateStore
from mailferry.adapters.store.engine import open_database
from mailferry.adapters.store.schema import upgrade_all
from mailferry.adapters.store.sync_state import SqlStateStore
from mailferry.domain.davplan import Listed, Recorded
from mailferry.domain.davports import CollectionState, ItemIntent, ItemStateStore
from mailferry.domain.errors import StateError
from mailferry.domain.items import ItemKey
from mailferry.domain.ports import Copied

PAIR = "https://ann@old.example/dav/ -> https://ann@new.example/dav/"
CAL = "/dav/calendars/ann/home/"
TARGET_CAL = "/remote.php/dav/calendars/ann/personal/"
BOOK = "/dav/addressbooks/ann/contacts/"
SHA = "5e" * 32
UNICODE_HREFS = ["/dav/ann/Gesch%C3%A4ft/a.ics", "/dav/ann/Geschäft/a.ics", "/dav/ann/📅.ics"]
DAV_TABLES = {"dav_collections", "dav_items", "dav_intents", "dav_identities", "dav_failures"}
# Written by mailferry at commit 0c037bc: a mail-only state file (see test_store.py).
OLD_FILE = Path(__file__).parent / "data" / "state_before_store_package.sql"
OLD_PAIR = "imap://ann@127.0.0.1:10143 -> imaps://ann@new.example@mail.new.example:993"


def uid(value: str) -> ItemKey:
    return ItemKey(uid=value)


def row(n: int, etag: str = "s1") -> Recorded:
    return Recorded(f"{CAL}{n}.ics", f'"{etag}-{n}"', uid(f"u{n}"), f"{TARGET_CAL}{n}.ics", '"t"')


def intent(n: int, if_match: str | None = None) -> ItemIntent:
    return ItemIntent(f"{CAL}{n}.ics", f'"s-{n}"', uid(f"u{n}"), f"{TARGET_CAL}{n}.ics", if_match)


def listed(n: int, etag: str = "e") -> Listed:
    return Listed(f"{CAL}{n}.ics", f'"{etag}{n}"', uid(f"u{n}"))


def fill(store: ItemStateStore, source: str = CAL, target: str = TARGET_CAL) -> None:
    """Something in every table for one source collection."""
    store.save_collection_state(PAIR, CollectionState(source, target, "st", "tt"))
    store.record(PAIR, source, [row(1)])
    store.add_item_intents(PAIR, source, [intent(2)])
    store.set_item_failures(PAIR, source, {f"{source}3.ics": "413 too large"})
    store.save_identities(PAIR, "source", source, [listed(1)], [])
    store.save_identities(PAIR, "target", target, [listed(1)], [])


def everything(store: ItemStateStore, source: str = CAL, target: str = TARGET_CAL) -> list[Any]:
    return [
        store.collection_state(PAIR, source),
        store.recorded(PAIR, source),
        store.item_intents(PAIR, source),
        store.item_failures(PAIR, source),
        store.identities(PAIR, "source", source),
        store.identities(PAIR, "target", target),
    ]


NOTHING: list[Any] = [None, [], [], {}, [], []]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "mailferry.sqlite"


@pytest.fixture(
    params=["sqlite", "memory", pytest.param("postgresql", marks=pytest.mark.integration)]
)
def store(request: pytest.FixtureRequest, path: Path) -> Iterator[ItemStateStore]:
    """The contract on the SQLite file, the memory fake and a fresh PostgreSQL database."""
    if request.param == "memory":
        yield MemoryItemStateStore()
        return
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_database")
        db = open_database(url)
        try:
            upgrade_all(db)
        finally:
            db.release()
        opened = SqlItemStateStore.open(url)
    else:
        opened = SqlItemStateStore.open_sqlite(path)
    yield opened
    opened.close()


class TestItemStateStoreContract:
    def test_a_new_store_knows_nothing(self, store: ItemStateStore) -> None:
        assert everything(store) == NOTHING

    def test_collection_state_is_saved_and_replaced(self, store: ItemStateStore) -> None:
        store.save_collection_state(PAIR, CollectionState(CAL, TARGET_CAL))
        assert store.collection_state(PAIR, CAL) == CollectionState(CAL, TARGET_CAL, None, None)
        later = CollectionState(CAL, "/other/", "http://x/sync/7", "data:,42")
        store.save_collection_state(PAIR, later)
        assert store.collection_state(PAIR, CAL) == later
        assert store.collection_state("another pair", CAL) is None
        assert store.collection_state(PAIR, BOOK) is None

    def test_record_upserts_by_source_href(self, store: ItemStateStore) -> None:
        store.record(PAIR, CAL, [row(1), row(2)])
        store.record(PAIR, CAL, [row(2, "s2"), row(3)])
        assert store.recorded(PAIR, CAL) == [row(1), row(2, "s2"), row(3)]

    def test_the_last_of_repeated_hrefs_in_one_call_wins(self, store: ItemStateStore) -> None:
        store.record(PAIR, CAL, [row(1), row(1, "s9")])
        assert store.recorded(PAIR, CAL) == [row(1, "s9")]
        store.add_item_intents(PAIR, CAL, [intent(1), intent(1, if_match='"t"')])
        assert store.item_intents(PAIR, CAL) == [intent(1, if_match='"t"')]

    def test_both_kinds_of_key_and_missing_etags(self, store: ItemStateStore) -> None:
        by_content = Recorded(f"{CAL}c.vcf", None, ItemKey(content=SHA), f"{TARGET_CAL}c.vcf", None)
        store.record(PAIR, CAL, [by_content, row(1)])
        assert store.recorded(PAIR, CAL) == [row(1), by_content]
        # The same href now has a UID (the item was edited): the key's kind changes with it.
        store.record(PAIR, CAL, [Recorded(by_content.source_href, '"2"', uid("c"), "/t", '"x"')])
        assert store.recorded(PAIR, CAL)[1].key == uid("c")

    def test_pairs_and_collections_are_kept_apart(self, store: ItemStateStore) -> None:
        store.record(PAIR, CAL, [row(1)])
        store.record(PAIR, BOOK, [row(2)])
        store.record("another pair", CAL, [row(3)])
        assert store.recorded(PAIR, CAL) == [row(1)]
        assert store.recorded(PAIR, BOOK) == [row(2)]
        assert store.recorded("another pair", CAL) == [row(3)]

    def test_hrefs_are_compared_exactly(self, store: ItemStateStore) -> None:
        rows = [Recorded(href, None, uid(href), href, None) for href in UNICODE_HREFS]
        store.record(PAIR, CAL, rows)
        found = store.recorded(PAIR, CAL)
        assert (len(found), set(found)) == (3, set(rows))

    def test_intents_in_href_order_newest_per_href(self, store: ItemStateStore) -> None:
        store.add_item_intents(PAIR, CAL, [intent(3), intent(1)])
        store.add_item_intents(PAIR, CAL, [intent(1, if_match='"t-1"')])
        assert store.item_intents(PAIR, CAL) == [intent(1, if_match='"t-1"'), intent(3)]
        assert store.recorded(PAIR, CAL) == []  # an intent is no row yet

    def test_resolve_turns_intents_into_rows_or_drops_them(self, store: ItemStateStore) -> None:
        store.record(PAIR, CAL, [row(3)])
        store.add_item_intents(PAIR, CAL, [intent(1), intent(2), intent(3), intent(4)])
        store.resolve_items(PAIR, CAL, [row(1), row(3, "s2")], [f"{CAL}2.ics"])
        assert store.item_intents(PAIR, CAL) == [intent(4)]
        assert store.recorded(PAIR, CAL) == [row(1), row(3, "s2")]  # dropped: no row, none lost

    def test_resolve_of_nothing_changes_nothing(self, store: ItemStateStore) -> None:
        store.add_item_intents(PAIR, CAL, [intent(1)])
        store.resolve_items(PAIR, CAL, [], [])
        store.resolve_items(PAIR, CAL, [], [f"{CAL}unknown.ics"])
        assert store.item_intents(PAIR, CAL) == [intent(1)]

    def test_identities_per_side(self, store: ItemStateStore) -> None:
        # One collection href on both servers (both say /dav/calendars/ann/home/): two caches.
        store.save_identities(PAIR, "source", CAL, [listed(1), listed(2)], [])
        store.save_identities(PAIR, "target", CAL, [listed(1, "t")], [])
        assert store.identities(PAIR, "source", CAL) == [listed(1), listed(2)]
        assert store.identities(PAIR, "target", CAL) == [listed(1, "t")]
        assert store.identities(PAIR, "source", BOOK) == []
        assert store.identities("another pair", "source", CAL) == []

    def test_save_identities_upserts_and_removes(self, store: ItemStateStore) -> None:
        store.save_identities(PAIR, "source", CAL, [listed(n) for n in range(1, 5)], [])
        gone = [f"{CAL}2.ics", f"{CAL}3.ics", f"{CAL}absent.ics"]
        # 3 is removed and listed again (a delete then a create in one sync-collection report).
        store.save_identities(PAIR, "source", CAL, [listed(1, "x"), listed(3, "y")], gone)
        assert store.identities(PAIR, "source", CAL) == [listed(1, "x"), listed(3, "y"), listed(4)]

    @pytest.mark.parametrize("side", ["Source", "both", ""])
    def test_an_unknown_side_is_refused(self, store: ItemStateStore, side: str) -> None:
        with pytest.raises(ValueError, match="side must be"):
            store.save_identities(PAIR, side, CAL, [listed(1)], [])
        with pytest.raises(ValueError, match="side must be"):
            store.identities(PAIR, side, CAL)

    def test_set_item_failures_replaces_the_collections(self, store: ItemStateStore) -> None:
        store.set_item_failures(PAIR, CAL, {"/a": "413", "/b": "bad data"})
        store.set_item_failures(PAIR, BOOK, {"/c": "403"})
        store.set_item_failures(PAIR, CAL, {"/b": "still bad"})
        assert store.item_failures(PAIR, CAL) == {"/b": "still bad"}
        store.set_item_failures(PAIR, CAL, {})
        assert store.item_failures(PAIR, CAL) == {}
        assert store.item_failures(PAIR, BOOK) == {"/c": "403"}

    def test_forget_collection_forgets_only_that_collection(self, store: ItemStateStore) -> None:
        fill(store)
        fill(store, BOOK, "/target/book/")
        store.save_identities(PAIR, "source", TARGET_CAL, [listed(7)], [])  # not the target side
        kept = everything(store, BOOK, "/target/book/")
        store.forget_collection(PAIR, CAL)
        assert everything(store) == NOTHING
        assert everything(store, BOOK, "/target/book/") == kept
        assert store.identities(PAIR, "source", TARGET_CAL) == [listed(7)]
        store.forget_collection(PAIR, CAL)  # twice: nothing left to forget

    def test_forget_a_collection_never_mapped(self, store: ItemStateStore) -> None:
        store.record(PAIR, CAL, [row(1)])
        store.save_identities(PAIR, "source", CAL, [listed(1)], [])
        store.save_identities(PAIR, "target", TARGET_CAL, [listed(1)], [])
        store.forget_collection(PAIR, CAL)
        assert store.recorded(PAIR, CAL) == []
        assert store.identities(PAIR, "source", CAL) == []
        assert store.identities(PAIR, "target", TARGET_CAL) == [listed(1)]  # nothing says whose

    def test_a_closed_store_refuses_work(self, store: ItemStateStore) -> None:
        assert isinstance(store, SqlItemStateStore | MemoryItemStateStore)
        store.close()
        with pytest.raises(StateError, match="is closed"):
            store.recorded(PAIR, CAL)
        with pytest.raises(StateError, match="is closed"):
            store.add_item_intents(PAIR, CAL, [intent(1)])
        store.close()  # twice is harmless


# -- the SQLite file -------------------------------------------------------------------------


@pytest.fixture
def sql_store(path: Path) -> Iterator[SqlItemStateStore]:
    opened = SqlItemStateStore.open_sqlite(path)
    yield opened
    opened.close()


def raw_sql(path: Path, *statements: str) -> list[Any]:
    """Run statements on the file behind the store's back; return the last one's rows."""
    with closing(sqlite3.connect(path)) as conn, conn:
        rows: list[Any] = []
        for statement in statements:
            rows = conn.execute(statement).fetchall()
        return rows


def tables(path: Path) -> set[str]:
    return {name for (name,) in raw_sql(path, "SELECT name FROM sqlite_master WHERE type='table'")}


def record_statements(store: SqlItemStateStore) -> list[tuple[str, bool]]:
    seen: list[tuple[str, bool]] = []

    def record(*args: Any) -> None:
        statement, executemany = args[2], args[5]
        seen.append((statement.strip(), executemany))

    event.listen(store._engine, "before_cursor_execute", record)
    return seen


class TestSqliteFile:
    def test_everything_survives_close_and_reopen(self, path: Path) -> None:
        with closing(SqlItemStateStore.open_sqlite(path)) as first:
            fill(first)
            before = everything(first)
        with closing(SqlItemStateStore.open_sqlite(path)) as again:
            assert everything(again) == before != NOTHING

    def test_intents_are_committed_when_add_returns(
        self, sql_store: SqlItemStateStore, path: Path
    ) -> None:
        sql_store.add_item_intents(PAIR, CAL, [intent(1), intent(2)])
        # Another connection sees them while the store is still open (nothing left to flush) ...
        assert raw_sql(path, "SELECT source_href FROM dav_intents ORDER BY 1") == [
            (f"{CAL}1.ics",),
            (f"{CAL}2.ics",),
        ]
        # ... and a second store (a pass started after a crash) finds them.
        with closing(SqlItemStateStore.open_sqlite(path)) as other:
            assert other.item_intents(PAIR, CAL) == [intent(1), intent(2)]

    def test_resolve_is_one_transaction(self, sql_store: SqlItemStateStore, path: Path) -> None:
        sql_store.add_item_intents(PAIR, CAL, [intent(1), intent(2), intent(3)])
        raw_sql(
            path,
            "CREATE TRIGGER refuse AFTER INSERT ON dav_items WHEN NEW.source_href LIKE '%2.ics' "
            "BEGIN SELECT RAISE(ABORT, 'refused by test'); END",
        )
        with pytest.raises(StateError, match="refused by test") as caught:
            sql_store.resolve_items(PAIR, CAL, [row(1), row(2)], [f"{CAL}3.ics"])
        assert "INSERT" not in str(caught.value)  # the driver's words, not the statement
        assert sql_store.item_intents(PAIR, CAL) == [intent(1), intent(2), intent(3)]
        assert sql_store.recorded(PAIR, CAL) == []

    def test_forget_is_one_transaction(self, sql_store: SqlItemStateStore, path: Path) -> None:
        fill(sql_store)
        before = everything(sql_store)
        raw_sql(
            path,
            "CREATE TRIGGER refuse BEFORE DELETE ON dav_collections "
            "BEGIN SELECT RAISE(ABORT, 'refused by test'); END",
        )
        with pytest.raises(StateError, match="refused by test"):
            sql_store.forget_collection(PAIR, CAL)
        assert everything(sql_store) == before

    def test_batches_are_executemany_and_deletions_chunked(
        self, sql_store: SqlItemStateStore
    ) -> None:
        many = 2 * HREF_CHUNK + 1
        statements = record_statements(sql_store)
        sql_store.add_item_intents(PAIR, CAL, [intent(n) for n in range(many)])
        sql_store.resolve_items(
            PAIR, CAL, [row(n) for n in range(10)], [f"{CAL}{n}.ics" for n in range(10, many)]
        )
        sql_store.save_identities(PAIR, "source", CAL, [listed(n) for n in range(many)], [])
        sql_store.set_item_failures(PAIR, CAL, {f"/{n}": "x" for n in range(300)})
        writes = [(sql.split()[0], bulk) for sql, bulk in statements if not sql.startswith("BEGIN")]
        assert writes == [
            ("INSERT", True),
            *[("DELETE", False)] * 3,  # 1,001 hrefs: three IN lists
            ("INSERT", True),
            ("INSERT", True),
            ("DELETE", False),
            ("INSERT", True),
        ]
        assert [sql for sql, _ in statements if sql.startswith("BEGIN")] == ["BEGIN IMMEDIATE"] * 4
        assert sql_store.item_intents(PAIR, CAL) == []

    def test_deletions_stay_under_the_variable_limit(self, sql_store: SqlItemStateStore) -> None:
        statements = record_statements(sql_store)
        sql_store.save_identities(PAIR, "target", CAL, [], [f"/{n}" for n in range(1200)])
        deletes = [sql for sql, _ in statements if sql.startswith("DELETE")]
        assert [sql.count("?") for sql in deletes] == [503, 503, 203]  # pair, side, collection

    def test_a_hundred_thousand_identities_round_trip(self, sql_store: SqlItemStateStore) -> None:
        hundred_k = [
            Listed(f"{CAL}{n:06}.ics", f'"{n}"', uid(f"u{n}") if n % 3 else ItemKey(content=SHA))
            for n in range(100_000)
        ]
        sql_store.save_identities(PAIR, "target", CAL, hundred_k, [])
        assert sql_store.identities(PAIR, "target", CAL) == hundred_k
        gone = [item.href for item in hundred_k[::2]]
        sql_store.save_identities(PAIR, "target", CAL, [], gone)
        assert sql_store.identities(PAIR, "target", CAL) == hundred_k[1::2]

    @pytest.mark.slow
    def test_a_hundred_thousand_items_resolved_and_forgotten(
        self, sql_store: SqlItemStateStore
    ) -> None:
        sql_store.add_item_intents(PAIR, CAL, [intent(n) for n in range(100_000)])
        sql_store.save_identities(PAIR, "source", CAL, [listed(n) for n in range(100_000)], [])
        sql_store.resolve_items(PAIR, CAL, [row(n) for n in range(100_000)], [])
        assert sql_store.item_intents(PAIR, CAL) == []
        assert sql_store.recorded(PAIR, CAL) == [row(n) for n in sorted(range(100_000), key=str)]
        sql_store.forget_collection(PAIR, CAL)
        assert everything(sql_store) == NOTHING

    def test_an_unknown_key_kind_is_a_state_error(
        self, sql_store: SqlItemStateStore, path: Path
    ) -> None:
        sql_store.record(PAIR, CAL, [row(1)])
        raw_sql(path, "UPDATE dav_items SET key_kind = 'etag'")
        with pytest.raises(StateError, match="unknown kind 'etag'"):
            sql_store.recorded(PAIR, CAL)


class TestOneFileWithTheMailState:
    def test_a_mail_only_file_gains_the_tables_when_opened(self, tmp_path: Path) -> None:
        path = tmp_path / "old.sqlite3"
        with closing(sqlite3.connect(path)) as conn:
            conn.executescript(OLD_FILE.read_text(encoding="utf-8"))
        assert not tables(path) & DAV_TABLES
        with closing(SqlStateStore.open_sqlite(path)):  # the mail state alone adds nothing
            pass
        assert not tables(path) & DAV_TABLES
        with closing(SqlItemStateStore.open_sqlite(path)) as items:
            fill(items)
        assert tables(path) >= DAV_TABLES
        meta = raw_sql(path, "SELECT schema_version FROM meta WHERE application='mailferry.items'")
        assert meta == [(SCHEMA_VERSION,)]
        with closing(SqlStateStore.open_sqlite(path)) as mail:
            assert mail.copied(OLD_PAIR, "Work") == {5: Copied(5, 15, frozenset(), "k1")}
        with closing(SqlItemStateStore.open_sqlite(path)) as again:
            assert everything(again) != NOTHING

    def test_both_stores_share_one_engine(self, path: Path) -> None:
        mail = SqlStateStore.open_sqlite(path)
        items = SqlItemStateStore.open_sqlite(path)
        try:
            assert items._engine is mail._engine
            mail.close()
            items.record(PAIR, CAL, [row(1)])  # the Engine lives while one store uses it
            assert items.recorded(PAIR, CAL) == [row(1)]
        finally:
            items.close()
            mail.close()

    def test_a_newer_items_schema_is_refused(self, path: Path) -> None:
        SqlItemStateStore.open_sqlite(path).close()
        raw_sql(path, "UPDATE meta SET schema_version = 99 WHERE application = 'mailferry.items'")
        with pytest.raises(StateError, match="calendar and contact tables have schema 99"):
            SqlItemStateStore.open_sqlite(path)
        SqlStateStore.open_sqlite(path).close()  # the mail state still opens

    def test_a_damaged_file_is_refused(self, path: Path) -> None:
        SqlItemStateStore.open_sqlite(path).close()
        raw_sql(path, "DROP TABLE dav_intents")
        with pytest.raises(StateError, match="missing tables dav_intents"):
            SqlItemStateStore.open_sqlite(path)

    def test_somebody_elses_database_is_left_alone(self, path: Path) -> None:
        path.parent.mkdir()
        raw_sql(path, "CREATE TABLE notes (id INTEGER PRIMARY KEY)")
        with pytest.raises(StateError, match="is not a mailferry state database"):
            SqlItemStateStore.open_sqlite(path)
        assert tables(path) == {"notes"}
