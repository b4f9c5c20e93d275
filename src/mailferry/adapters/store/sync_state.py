"""The durable ``StateStore``: SQLAlchemy Core on SQLite (the default) or PostgreSQL.

Every method is one explicit transaction. Writes run under ``BEGIN IMMEDIATE`` on SQLite so a
writer waits (``busy_timeout``) for the lock up front instead of failing when a read turns into
a write. Batches are written with executemany: one round trip per call, never one per message.
Every SQLAlchemy error is translated to ``StateError`` here, at the boundary.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    URL,
    BigInteger,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from mailferry.domain.errors import StateError
from mailferry.domain.labels import LabelTally
from mailferry.domain.ports import Checkpoint, Copied, Intent

APPLICATION = "mailferry"
SCHEMA_VERSION = 2  # 2: copied.label, copied.elsewhere, intents.label (label folders, Gmail)
UID_CHUNK = 500  # source UIDs per IN (...) query; SQLite allowed 999 variables before 3.32
BUSY_TIMEOUT_MS = 30_000
_WRITE = "mailferry_write"  # execution option: this transaction will write
_DIALECTS = frozenset({"sqlite", "postgresql"})  # the two that have INSERT ... ON CONFLICT here

METADATA = MetaData()

META = Table(
    "meta",
    METADATA,
    Column("application", String(40), primary_key=True),
    Column("schema_version", Integer, nullable=False),
)


def _key_columns() -> list[Column[Any]]:
    # IMAP UIDs are unsigned 32-bit: BigInteger, or PostgreSQL's signed INTEGER overflows.
    return [
        Column("pair", Text, primary_key=True),
        Column("folder", Text, primary_key=True),
        Column("source_uid", BigInteger, primary_key=True, autoincrement=False),
    ]


CHECKPOINTS = Table(
    "checkpoints",
    METADATA,
    Column("pair", Text, primary_key=True),
    Column("folder", Text, primary_key=True),  # Checkpoint.source_folder
    Column("target_folder", Text, nullable=False),
    Column("source_uidvalidity", BigInteger, nullable=False),
    Column("source_uidnext", BigInteger, nullable=False),
    Column("source_modseq", BigInteger, nullable=True),  # RFC 7162: up to 2**63 - 1
    Column("target_uidvalidity", BigInteger, nullable=False),
    Column("selection", Text, nullable=False),
)
COPIED = Table(
    "copied",
    METADATA,
    *_key_columns(),
    Column("target_uid", BigInteger, nullable=True),
    Column("flags", Text, nullable=False),
    Column("label", Text, nullable=True),
    Column("elsewhere", Integer, nullable=False, server_default="0"),
    Index("copied_label", "pair", "label"),
)
INTENTS = Table(
    "intents",
    METADATA,
    *_key_columns(),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("flags", Text, nullable=False),
    Column("target_folder", Text, nullable=False),
    Column("target_uidvalidity", BigInteger, nullable=False),
    Column("target_uidnext", BigInteger, nullable=False),
    Column("message_id", Text, nullable=True),
    Column("internaldate", BigInteger, nullable=True),
    Column("label", Text, nullable=True),
)
FAILURES = Table("failures", METADATA, *_key_columns(), Column("reason", Text, nullable=False))

_FOLDER_TABLES = (CHECKPOINTS, COPIED, INTENTS, FAILURES)


def encode_flags(flags: Iterable[str]) -> str:
    """Flags as stored: sorted, space-joined. IMAP flags are atoms, so never contain a space."""
    ordered = sorted(flags)
    for flag in ordered:
        if not flag or any(ch.isspace() for ch in flag):
            raise ValueError(f"flag {flag!r} cannot be stored: empty or contains whitespace")
    return " ".join(ordered)


def decode_flags(text: str) -> frozenset[str]:
    return frozenset(text.split())


@dataclass(eq=False)  # event listeners must stay hashable
class _SqlitePragmas:
    """Run on every new SQLite connection (a pool ``connect`` listener).

    ``journal_mode=WAL`` is persistent in the file, so it is switched on only once the file is
    known to be ours: opening somebody else's database by mistake must leave it untouched.
    """

    wal: bool = False

    def __call__(self, dbapi_connection: Any, _record: object) -> None:
        # SQLAlchemy emits BEGIN itself (see _begin); pysqlite's own handling skips it for
        # SELECT and DDL, which would make schema creation non-transactional.
        dbapi_connection.isolation_level = None
        with closing(dbapi_connection.cursor()) as cursor:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            # FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on power loss, and
            # intents must survive a crash right after add_intents returns.
            cursor.execute("PRAGMA synchronous = FULL")
            if self.wal:
                cursor.execute("PRAGMA journal_mode = WAL")


def _begin(conn: Connection) -> None:
    write = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def db_reason(exc: SQLAlchemyError) -> str:
    """What went wrong, for a person. A DBAPIError's own text repeats the SQL and every parameter
    (session ids, password hashes, ...): only the driver's words are kept."""
    return str(exc.orig) if isinstance(exc, DBAPIError) else str(exc)


def ensure_component(
    conn: Connection,
    meta: Table,
    *,
    application: str,
    version: int,
    tables: Sequence[Table],
    where: str,
    what: str,
) -> None:
    """Create a component's tables and its row in ``meta`` on first use; refuse a newer or a damaged one.

    The sync state, the batch service and the web app each keep their own tables and schema version in
    the same database file.
    """
    found = conn.scalar(select(meta.c.schema_version).where(meta.c.application == application))
    if found is None:
        tables[0].metadata.create_all(conn, tables=list(tables))
        conn.execute(meta.insert(), {"application": application, "schema_version": version})
        return
    if found != version:
        raise StateError(f"{where}: {what} tables have schema {found}; upgrade mailferry")
    missing = sorted({t.name for t in tables} - set(inspect(conn).get_table_names()))
    if missing:
        raise StateError(f"{where} is damaged: missing tables {', '.join(missing)}")


class SqlStateStore:
    """``StateStore`` on a SQLAlchemy URL; see ``open_sqlite`` for the usual local file."""

    def __init__(self, url: str | URL) -> None:
        self._closed = False
        self._pragmas: _SqlitePragmas | None = None
        try:
            self._engine = create_engine(url)
        except (SQLAlchemyError, ImportError) as exc:
            raise StateError(f"cannot use state database {url!s}: {exc}") from exc
        dialect = self._engine.dialect.name
        self._where = self._describe()
        if dialect not in _DIALECTS:
            self._engine.dispose()
            raise StateError(f"state database {self._where}: {dialect} is not supported")
        if dialect == "sqlite":
            self._pragmas = _SqlitePragmas()
            event.listen(self._engine, "connect", self._pragmas)
            event.listen(self._engine, "begin", _begin)
        self._writer = self._engine.execution_options(**{_WRITE: True})
        try:
            self._open()
        except BaseException:
            self._engine.dispose()
            raise

    @classmethod
    def open_sqlite(cls, path: Path) -> SqlStateStore:
        """Open or create a SQLite state file; new directories get mode 0700, a new file 0600."""
        try:
            _create_private_file(path)
        except OSError as exc:
            raise StateError(f"cannot create state database {path}: {exc.strerror}") from exc
        return cls(URL.create("sqlite+pysqlite", database=str(path)))

    def _describe(self) -> str:
        url = self._engine.url
        if url.get_backend_name() == "sqlite":
            return url.database or ":memory:"
        return url.render_as_string(hide_password=True)

    @contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[Connection]:
        if self._closed:
            raise StateError(f"state database {self._where} is closed")
        try:
            with (self._writer if write else self._engine).begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StateError(f"state database {self._where}: {db_reason(exc)}") from exc

    # -- opening: recognise, create, or refuse ------------------------------------------------

    def _open(self) -> None:
        try:
            with self._writer.begin() as conn:
                self._check_or_create(conn)
            if self._pragmas is not None:
                self._pragmas.wal = True
                self._switch_to_wal()
        except SQLAlchemyError as exc:  # e.g. "file is not a database", "unable to open"
            raise StateError(
                f"{self._where} cannot be opened as a state database: {db_reason(exc)}"
            ) from exc

    def _check_or_create(self, conn: Connection) -> None:
        tables = set(inspect(conn).get_table_names())
        if not tables:
            METADATA.create_all(conn)
            conn.execute(
                META.insert(), {"application": APPLICATION, "schema_version": SCHEMA_VERSION}
            )
            return
        version = self._schema_version(conn, tables)
        if version > SCHEMA_VERSION:
            raise StateError(
                f"{self._where} was written by a newer mailferry (schema {version}); upgrade"
            )
        if version < 1:
            raise StateError(f"{self._where} has an unknown schema version {version}")
        if version < SCHEMA_VERSION:
            _upgrade(conn, version)
        missing = sorted(set(METADATA.tables) - tables)
        if missing:
            raise StateError(f"{self._where} is damaged: missing tables {', '.join(missing)}")

    def _schema_version(self, conn: Connection, tables: set[str]) -> int:
        not_ours = StateError(f"{self._where} is not a mailferry state database")
        if META.name not in tables:
            raise not_ours
        columns = {c["name"] for c in inspect(conn).get_columns(META.name)}
        if not {"application", "schema_version"} <= columns:
            raise not_ours
        version = conn.scalar(
            select(META.c.schema_version).where(META.c.application == APPLICATION)
        )
        if not isinstance(version, int):
            raise not_ours
        return version

    def _switch_to_wal(self) -> None:
        # journal_mode cannot change inside a transaction: use the bare driver connection.
        raw = self._engine.raw_connection()
        try:
            with closing(raw.cursor()) as cursor:
                cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            raw.close()

    # -- checkpoints ---------------------------------------------------------------------------

    def checkpoint(self, pair: str, folder: str) -> Checkpoint | None:
        query = select(CHECKPOINTS).where(
            CHECKPOINTS.c.pair == pair, CHECKPOINTS.c.folder == folder
        )
        with self._transaction() as conn:
            row = conn.execute(query).one_or_none()
        if row is None:
            return None
        return Checkpoint(
            source_folder=row.folder,
            target_folder=row.target_folder,
            source_uidvalidity=row.source_uidvalidity,
            source_uidnext=row.source_uidnext,
            source_modseq=row.source_modseq,
            target_uidvalidity=row.target_uidvalidity,
            selection=row.selection,
        )

    def save_checkpoint(self, pair: str, checkpoint: Checkpoint) -> None:
        row = {
            "pair": pair,
            "folder": checkpoint.source_folder,
            "target_folder": checkpoint.target_folder,
            "source_uidvalidity": checkpoint.source_uidvalidity,
            "source_uidnext": checkpoint.source_uidnext,
            "source_modseq": checkpoint.source_modseq,
            "target_uidvalidity": checkpoint.target_uidvalidity,
            "selection": checkpoint.selection,
        }
        with self._transaction(write=True) as conn:
            _upsert(conn, CHECKPOINTS, [row], ("pair", "folder"))

    def reset_folder(self, pair: str, folder: str) -> None:
        with self._transaction(write=True) as conn:
            for table in _FOLDER_TABLES:
                conn.execute(delete(table).where(table.c.pair == pair, table.c.folder == folder))

    # -- copied --------------------------------------------------------------------------------

    def copied(
        self, pair: str, folder: str, uids: Iterable[int] | None = None
    ) -> dict[int, Copied]:
        query = select(COPIED).where(COPIED.c.pair == pair, COPIED.c.folder == folder)
        if uids is None:
            chunks = [query]
        else:
            wanted = sorted(set(uids))
            chunks = [
                query.where(COPIED.c.source_uid.in_(wanted[start : start + UID_CHUNK]))
                for start in range(0, len(wanted), UID_CHUNK)
            ]
        found: dict[int, Copied] = {}
        if not chunks:
            return found
        with self._transaction() as conn:
            for chunk in chunks:
                for row in conn.execute(chunk):
                    found[row.source_uid] = Copied(
                        row.source_uid,
                        row.target_uid,
                        decode_flags(row.flags),
                        row.label,
                        bool(row.elsewhere),
                    )
        return found

    def count_copied(self, pair: str, folder: str) -> int:
        query = (
            select(func.count())
            .select_from(COPIED)
            .where(COPIED.c.pair == pair, COPIED.c.folder == folder)
        )
        with self._transaction() as conn:
            return int(conn.execute(query).scalar_one())

    def add_copied(self, pair: str, folder: str, copied: Sequence[Copied]) -> None:
        rows = _copied_rows(pair, folder, copied)
        with self._transaction(write=True) as conn:
            _upsert_messages(conn, COPIED, rows)

    def update_flags(self, pair: str, folder: str, updates: Mapping[int, frozenset[str]]) -> None:
        """Record the flags now on the target; UIDs not recorded as copied are ignored."""
        params = [{"b_uid": uid, "b_flags": encode_flags(flags)} for uid, flags in updates.items()]
        if not params:
            return
        statement = (
            update(COPIED)
            .where(
                COPIED.c.pair == pair,
                COPIED.c.folder == folder,
                COPIED.c.source_uid == bindparam("b_uid"),
            )
            .values(flags=bindparam("b_flags"))
        )
        with self._transaction(write=True) as conn:
            conn.execute(statement, params)

    # -- intents -------------------------------------------------------------------------------

    def add_intents(self, pair: str, folder: str, intents: Sequence[Intent]) -> None:
        """Durable when this returns (synchronous=FULL). A UID's newer intent replaces the old."""
        rows: list[dict[str, object]] = [
            {
                "pair": pair,
                "folder": folder,
                "source_uid": intent.source_uid,
                "sha256": intent.sha256,
                "size": intent.size,
                "flags": encode_flags(intent.flags),
                "target_folder": intent.target_folder,
                "target_uidvalidity": intent.target_uidvalidity,
                "target_uidnext": intent.target_uidnext,
                "message_id": intent.message_id,
                "internaldate": intent.internaldate,
                "label": intent.label,
            }
            for intent in intents
        ]
        with self._transaction(write=True) as conn:
            _upsert_messages(conn, INTENTS, rows)

    def intents(self, pair: str, folder: str) -> list[Intent]:
        query = (
            select(INTENTS)
            .where(INTENTS.c.pair == pair, INTENTS.c.folder == folder)
            .order_by(INTENTS.c.source_uid)
        )
        with self._transaction() as conn:
            rows = conn.execute(query).all()
        return [
            Intent(
                source_uid=row.source_uid,
                sha256=row.sha256,
                size=row.size,
                flags=decode_flags(row.flags),
                target_folder=row.target_folder,
                target_uidvalidity=row.target_uidvalidity,
                target_uidnext=row.target_uidnext,
                message_id=row.message_id,
                internaldate=row.internaldate,
                label=row.label,
            )
            for row in rows
        ]

    def resolve(
        self, pair: str, folder: str, confirmed: Sequence[Copied], dropped: Sequence[int]
    ) -> None:
        rows = _copied_rows(pair, folder, confirmed)  # validates before anything is written
        done = [{"b_uid": uid} for uid in {*(c.source_uid for c in confirmed), *dropped}]
        forget = delete(INTENTS).where(
            INTENTS.c.pair == pair,
            INTENTS.c.folder == folder,
            INTENTS.c.source_uid == bindparam("b_uid"),
        )
        with self._transaction(write=True) as conn:
            if done:
                conn.execute(forget, done)
            _upsert_messages(conn, COPIED, rows)

    # -- labels --------------------------------------------------------------------------------

    def label_tally(self, pair: str, folder: str, keys: Iterable[str]) -> LabelTally:
        wanted = sorted(set(keys))
        tally = LabelTally()
        count = func.count().label("n")
        with self._transaction() as conn:
            for start in range(0, len(wanted), UID_CHUNK):
                chunk = wanted[start : start + UID_CHUNK]
                rows = select(COPIED.c.label, count).where(
                    COPIED.c.pair == pair, COPIED.c.label.in_(chunk)
                )
                standing = rows.where(COPIED.c.elsewhere == 0).group_by(COPIED.c.label)
                mine = rows.where(COPIED.c.folder == folder).group_by(COPIED.c.label)
                for row in conn.execute(standing):
                    tally.standing[row.label] += row.n
                for row in conn.execute(mine):
                    tally.mine[row.label] += row.n
        return tally

    # -- failures ------------------------------------------------------------------------------

    def failed_uids(self, pair: str, folder: str) -> set[int]:
        query = select(FAILURES.c.source_uid).where(
            FAILURES.c.pair == pair, FAILURES.c.folder == folder
        )
        with self._transaction() as conn:
            return set(conn.scalars(query))

    def set_failures(self, pair: str, folder: str, failures: Mapping[int, str]) -> None:
        rows = [
            {"pair": pair, "folder": folder, "source_uid": uid, "reason": reason}
            for uid, reason in failures.items()
        ]
        with self._transaction(write=True) as conn:
            conn.execute(
                delete(FAILURES).where(FAILURES.c.pair == pair, FAILURES.c.folder == folder)
            )
            if rows:
                conn.execute(FAILURES.insert(), rows)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine.dispose()


def _copied_rows(pair: str, folder: str, messages: Sequence[Copied]) -> list[dict[str, object]]:
    return [
        {
            "pair": pair,
            "folder": folder,
            "source_uid": message.source_uid,
            "target_uid": message.target_uid,
            "flags": encode_flags(message.flags),
            "label": message.label,
            "elsewhere": int(message.elsewhere),
        }
        for message in messages
    ]


def _upgrade(conn: Connection, version: int) -> None:
    """Bring an older state database to ``SCHEMA_VERSION``, in the opening transaction."""
    if version < 2:
        conn.exec_driver_sql("ALTER TABLE copied ADD COLUMN label TEXT")
        conn.exec_driver_sql("ALTER TABLE copied ADD COLUMN elsewhere INTEGER NOT NULL DEFAULT 0")
        conn.exec_driver_sql("CREATE INDEX copied_label ON copied (pair, label)")
        conn.exec_driver_sql("ALTER TABLE intents ADD COLUMN label TEXT")
    conn.execute(
        update(META).where(META.c.application == APPLICATION).values(schema_version=SCHEMA_VERSION)
    )


def _upsert_messages(conn: Connection, table: Table, rows: list[dict[str, object]]) -> None:
    # The last row for a UID wins, as in a dict; PostgreSQL's multi-row ON CONFLICT would
    # otherwise refuse to touch the same row twice in one statement.
    unique = list({row["source_uid"]: row for row in rows}.values())
    _upsert(conn, table, unique, ("pair", "folder", "source_uid"))


def _upsert(
    conn: Connection, table: Table, rows: list[dict[str, object]], keys: tuple[str, ...]
) -> None:
    if not rows:
        return
    index = [table.c[key] for key in keys]
    if conn.dialect.name == "postgresql":
        # Imported here: the PostgreSQL dialect costs ~30 ms at every start of the command.
        from sqlalchemy.dialects.postgresql import insert as pg_insert  # noqa: PLC0415

        pg = pg_insert(table)
        pg_set = {c.name: pg.excluded[c.name] for c in table.c if c.name not in keys}
        conn.execute(pg.on_conflict_do_update(index_elements=index, set_=pg_set), rows)
    else:
        lite = sqlite_insert(table)
        lite_set = {c.name: lite.excluded[c.name] for c in table.c if c.name not in keys}
        conn.execute(lite.on_conflict_do_update(index_elements=index, set_=lite_set), rows)


def _create_private_file(path: Path) -> None:
    _create_private_dirs(path.parent)
    with suppress(FileExistsError):  # already there, or created meanwhile: left as it is
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _create_private_dirs(directory: Path) -> None:
    """Like ``mkdir -p`` but every directory it creates is 0700; existing ones are left alone."""
    if directory.exists():
        return
    _create_private_dirs(directory.parent)
    directory.mkdir(mode=0o700, exist_ok=True)
