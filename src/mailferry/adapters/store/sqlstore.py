"""What every SQL store of the state database shares: the ``SqlStore`` base (one use of a shared
``Database``, explicit transactions, ``open``/``open_sqlite``), how flags are stored, and helpers
for the item stores' tables."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar, Self

from sqlalchemy import URL, ColumnElement, Connection, Table, delete, func, select

from mailferry.adapters.store import schema
from mailferry.adapters.store.engine import Database, open_database, sqlite_url
from mailferry.adapters.store.upserts import upsert
from mailferry.domain.errors import StateError


def encode_flags(flags: Iterable[str]) -> str:
    """Flags as stored: sorted, space-joined. IMAP flags are atoms, so never contain a space."""
    ordered = sorted(flags)
    for flag in ordered:
        if not flag or any(ch.isspace() for ch in flag):
            raise ValueError(f"flag {flag!r} cannot be stored: empty or contains whitespace")
    return " ".join(ordered)


def decode_flags(text: str) -> frozenset[str]:
    return frozenset(text.split())


def open_store(db: Database, component: schema.Component) -> None:
    """Recognise the file and make ``component`` ready in it; on failure ``db`` is released."""
    try:
        schema.open_file(db)
        if component is not schema.SYNC:
            schema.ensure(db, schema.SYNC)  # the file's identity comes first
        schema.ensure(db, component)
    except BaseException:
        db.release()
        raise


class SqlStore:
    """What both state stores share: one use of a shared ``Database``, the component they keep
    ready in it, explicit transactions that refuse work once closed, ``open``/``open_sqlite``."""

    component: ClassVar[schema.Component]

    def __init__(self, db: Database) -> None:
        """Takes one use of ``db`` (released by ``close``)."""
        self._closed = False
        self._db = db
        self._engine = db.engine
        self._where = db.where
        open_store(db, self.component)

    @classmethod
    def open(cls, url: str | URL) -> Self:
        return cls(open_database(url))

    @classmethod
    def open_sqlite(cls, path: Path) -> Self:
        """Open or create a SQLite state file; new directories get mode 0700, a new file 0600."""
        return cls(open_database(sqlite_url(path)))

    @contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[Connection]:
        if self._closed:
            raise StateError(f"state database {self._where} is closed")
        with self._db.transaction(write=write) as conn:
            yield conn

    def _failures(self, table: Table, id_column: str, pair: str, source: str) -> dict[str, str]:
        """A source collection's (or folder's) recorded per-item failures: id -> reason."""
        query = select(table.c[id_column], table.c.reason).where(of_source(table, pair, source))
        with self._transaction() as conn:
            return {str(row[0]): str(row[1]) for row in conn.execute(query)}

    def _replace_failures(
        self, table: Table, id_column: str, pair: str, source: str, failures: Mapping[str, str]
    ) -> None:
        """Replace them, in one transaction."""
        rows = [
            {"pair": pair, "source": source, id_column: item, "reason": reason}
            for item, reason in failures.items()
        ]
        with self._transaction(write=True) as conn:
            conn.execute(delete(table).where(of_source(table, pair, source)))
            if rows:
                conn.execute(table.insert(), rows)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._db.release()


def of_source(table: Table, pair: str, source: str) -> ColumnElement[bool]:
    """The rows of one source collection or folder of a pair (the item stores' tables)."""
    return (table.c.pair == pair) & (table.c.source == source)


def upsert_unique(
    conn: Connection, table: Table, rows: list[dict[str, object]], keys: tuple[str, ...]
) -> None:
    """``upsert`` where the last row for a key wins, as in a dict (PostgreSQL refuses one row
    twice per statement)."""
    unique = {tuple(row[k] for k in keys): row for row in rows}
    upsert(conn, table, list(unique.values()), keys)


def folder_counts(
    conn: Connection, table: Table, pair: str, folders: list[str] | None = None
) -> dict[str, int]:
    """Rows of ``table`` (``copied``, ``failures``) per folder of the pair: of every folder, or of
    ``folders`` (named in the query up to ``NAMED``, else counted with the rest and picked out)."""
    if folders is not None and not folders:
        return {}
    query = select(table.c.folder, func.count()).where(table.c.pair == pair)
    if folders is not None and len(folders) <= NAMED:
        query = query.where(table.c.folder.in_(folders))
    rows = conn.execute(query.group_by(table.c.folder))
    return {str(row[0]): int(row[1]) for row in rows}


NAMED = 500  # values per IN (...); SQLite allowed 999 variables before 3.32
