"""``upsert``'s driver-SQL path (adapters/store/upserts.py) against SQLAlchemy's compiled statement,
on SQLite and PostgreSQL: the same rows after the same writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, Table, Text, create_engine, select

from mailferry.adapters.store import upserts
from mailferry.adapters.store.tables import COPIED, INTENTS

POSTGRESQL = pytest.param("postgresql", marks=pytest.mark.integration)
KEYS = ("pair", "folder", "source_uid")


@pytest.fixture(params=["sqlite", POSTGRESQL])
def connection(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Connection]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'upserts.sqlite'}"
    else:  # a new database for each test (tests/conftest.py)
        url = request.getfixturevalue("postgres_database")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            COPIED.metadata.create_all(conn, tables=[COPIED, INTENTS])
            yield conn
    finally:
        engine.dispose()


def copied(uid: int, target: int | None, flags: str, label: str | None = None) -> dict[str, object]:
    row: dict[str, object] = {"pair": "p", "folder": "INBOX", "source_uid": uid}
    row |= {"target_uid": target, "flags": flags, "label": label, "elsewhere": 0}
    return row


def contents(conn: Connection, table: Table) -> list[tuple[object, ...]]:
    return [tuple(r) for r in conn.execute(select(table).order_by(*table.primary_key.columns))]


def test_driver_sql_leaves_what_the_compiled_statement_leaves(connection: Connection) -> None:
    first = [copied(1, 10, "\\Seen"), copied(2, 11, ""), copied(3, None, "", "k")]
    again = [copied(2, 20, "\\Flagged"), copied(4, 21, "$Junk")]
    with_fast = []
    for write in (upserts.upsert, upserts._compiled_upsert):
        connection.execute(COPIED.delete())
        write(connection, COPIED, first, KEYS)
        write(connection, COPIED, again, KEYS)
        with_fast.append(contents(connection, COPIED))
    assert with_fast[0] == with_fast[1]
    assert [row[3:5] for row in with_fast[0]] == [
        (10, "\\Seen"),
        (20, "\\Flagged"),
        (None, ""),
        (21, "$Junk"),
    ]


def test_a_column_left_out_takes_the_database_default_on_both_paths(connection: Connection) -> None:
    marked = copied(1, 10, "")
    marked["elsewhere"] = 1
    plain = {k: v for k, v in copied(1, 12, "").items() if k != "elsewhere"}
    for write in (upserts.upsert, upserts._compiled_upsert):
        connection.execute(COPIED.delete())
        write(connection, COPIED, [marked], KEYS)
        write(connection, COPIED, [plain], KEYS)
        assert contents(connection, COPIED)[0][3:] == (12, "", None, 0)


def test_tables_sqlalchemy_would_fill_in_take_the_compiled_statement() -> None:
    table = Table(
        "counted",
        MetaData(),
        Column("name", Text, primary_key=True),
        Column("n", Integer, nullable=False, default=0),
    )
    assert upserts._driver_sql("sqlite", table, ("name",), ("name",)) is None
    assert upserts._driver_sql("sqlite", table, ("name", "n"), ("name",)) is not None
    assert upserts._driver_sql("sqlite", COPIED, ("pair", "nope"), KEYS) is None
    assert upserts._driver_sql("mysql", COPIED, ("pair",), KEYS) is None
