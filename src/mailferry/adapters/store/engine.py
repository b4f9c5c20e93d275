"""The one engine factory: one ``Database`` (one SQLAlchemy Engine) per process and database URL.

The sync state, the batch tables and the web's auth tables live in one file; every store of that
file shares this process's one Engine, so they share one set of connection settings and one pool.
On SQLite a writer runs under ``BEGIN IMMEDIATE``: it waits (``busy_timeout``) for the lock up
front instead of failing when a read turns into a write. PostgreSQL URLs work too (the sync state
runs there); only SQLite gets the pragmas. Every SQLAlchemy error is translated to ``StateError``
here, at the boundary.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, SQLAlchemyError

from mailferry.domain.errors import StateError, StateUnreachableError

BUSY_TIMEOUT_MS = 30_000
QUEUE_TIMEOUT_S = 30.0  # a writer's wait for this process's other writers (SQLite only)
_WRITE = "mailferry_write"  # execution option: this transaction will write
_DIALECTS = frozenset({"sqlite", "postgresql"})  # the two that have INSERT ... ON CONFLICT here
# A scheduler runs up to hundreds of mailboxes on one Engine; each holds a connection only for a
# transaction. Beyond the pool, connections are opened and closed (no wait for a free one).
_POOL: dict[str, Any] = {"pool_size": 8, "max_overflow": -1}
# libpq settings of every PostgreSQL connection: a host that does not answer is an error within
# 10 s, and a server that vanished (machine gone, partition) is noticed within ~25 s by TCP
# keepalives, sooner than a worker's stall timeout (60 s): a cut-off worker finds out, and stops,
# before its jobs are handed to another.
_SERVER_CONNECT = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


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
    # A writer takes the lock up front (and waits for it: busy_timeout); readers never block
    # in WAL mode, so `batch status` stays quick while a service writes.
    write = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def db_reason(exc: SQLAlchemyError) -> str:
    """What went wrong, for a person. A DBAPIError's own text repeats the SQL and every parameter
    (session ids, password hashes, ...): only the driver's words are kept."""
    return str(exc.orig) if isinstance(exc, DBAPIError) else str(exc)


# SQLSTATE classes of a lost or refused connection: 08 connection exception, 28 authorization,
# 53 insufficient resources (too many connections), 57P operator intervention (shutdown).
_UNREACHABLE = ("08", "28", "53", "57P")


def unreachable(exc: SQLAlchemyError, where: str) -> StateUnreachableError | None:
    """A database server that cannot be reached or refuses us, in one line; None for any other
    error. The driver says it without SQLSTATE when the connection never opened."""
    if not isinstance(exc, OperationalError) or exc.orig is None:
        return None
    if type(exc.orig).__module__.split(".")[0] != "psycopg":
        return None  # SQLite's OperationalError is about the file: "cannot be opened", not this
    state = getattr(exc.orig, "sqlstate", None)
    if state is not None and not state.startswith(_UNREACHABLE):
        return None
    return StateUnreachableError(f"{where}: cannot connect: {connect_reason(str(exc.orig))}")


def connect_reason(text: str) -> str:
    """libpq's words, in one line: 'connection failed: connection to server at "h", port 5432
    failed: FATAL:  password authentication failed ...' -> 'password authentication failed ...'."""
    first = text.strip().splitlines()[0] if text.strip() else "connection failed"
    reason = (
        first.rsplit("FATAL:", 1)[-1] if "FATAL:" in first else first.rsplit(" failed: ", 1)[-1]
    )
    return " ".join(reason.split())


class Database:
    """One Engine on one database, shared by every store of it in this process (see
    ``open_database``); ``release`` when a store is done with it."""

    def __init__(self, engine: Engine, key: str) -> None:
        self.engine = engine
        self._key = key
        self._writer = engine.execution_options(**{_WRITE: True})
        self._pragmas: _SqlitePragmas | None = None
        self._users = 0
        self._writing = threading.RLock()
        self.is_sqlite = engine.dialect.name == "sqlite"
        # A SQLite file is one installation's: opening it brings its schema up to date. A server
        # database is shared by workers that may run another version: only `mailferry db
        # upgrade` changes its schema (see schema.ensure).
        self.upgrades_on_open = self.is_sqlite
        if self.is_sqlite:
            self._pragmas = _SqlitePragmas()
            event.listen(engine, "connect", self._pragmas)
            event.listen(engine, "begin", _begin)
        url = engine.url
        self.where = (
            (url.database or ":memory:")
            if self.is_sqlite
            else url.render_as_string(hide_password=True)
        )

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Connection]:
        """One transaction; ``write``: it will write (SQLite: ``BEGIN IMMEDIATE``).

        On SQLite the writers of this process queue on a lock first: a writer that finds the
        file locked is put to sleep by SQLite's busy handler (1, 2, 5, 10 ... 100 ms, polling),
        and the lanes of a run, each writing its checkpoints, kept waking one another late (a
        tenth of a second of a small PST's run). Other processes still meet ``busy_timeout``;
        after ``QUEUE_TIMEOUT_S`` here, the writer goes on to it."""
        queued = write and self.is_sqlite and self._writing.acquire(timeout=QUEUE_TIMEOUT_S)
        try:
            with (self._writer if write else self.engine).begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise unreachable(exc, self.where) or StateError(
                f"state database {self.where}: {db_reason(exc)}"
            ) from exc
        finally:
            if queued:
                self._writing.release()

    def writer(self) -> Engine:
        """The engine whose transactions write (for opening, where errors read differently)."""
        return self._writer

    def known_ours(self) -> None:
        """The file is a mailferry state database: WAL from now on, on every connection."""
        if self._pragmas is None or self._pragmas.wal:
            return
        self._pragmas.wal = True
        # journal_mode cannot change inside a transaction: use the bare driver connection.
        raw = self.engine.raw_connection()
        try:
            with closing(raw.cursor()) as cursor:
                cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            raw.close()

    def release(self) -> None:
        """One store is done with it; the last one closes the Engine's connections."""
        with _LOCK:
            self._users -= 1
            if self._users > 0:
                return
            if _OPEN.get(self._key) is self:
                del _OPEN[self._key]
        self.engine.dispose()


_LOCK = threading.Lock()
_OPEN: dict[str, Database] = {}


def open_database(url: str | URL) -> Database:
    """This process's ``Database`` for ``url`` (made on first use): the one ``create_engine``."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StateError(f"cannot use state database {url!s}: {exc}") from exc
    key = parsed.render_as_string(hide_password=False)
    with _LOCK:
        found = _OPEN.get(key)
        if found is None:
            found = _OPEN[key] = Database(_create(parsed), key)
        found._users += 1
        return found


def _create(url: URL) -> Engine:
    where = url.render_as_string(hide_password=True)
    if url.get_backend_name() not in _DIALECTS:
        raise StateError(f"state database {where}: {url.get_backend_name()} is not supported")
    sqlite_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    server = url.get_backend_name() == "postgresql"
    # A server's connections may have been closed under us (restart, failover): check on checkout.
    options = (
        {**_POOL, "pool_pre_ping": True, "connect_args": _SERVER_CONNECT}
        if server
        else _POOL
        if sqlite_file
        else {}
    )
    try:
        return create_engine(url, **options)
    except (SQLAlchemyError, ImportError) as exc:
        raise StateError(f"cannot use state database {where}: {exc}") from exc


def sqlite_url(path: Path) -> URL:
    """The URL of a SQLite state file, created if missing: new directories get mode 0700, a new
    file 0600."""
    try:
        _create_private_file(path)
    except OSError as exc:
        raise StateError(f"cannot create state database {path}: {exc.strerror}") from exc
    return URL.create("sqlite+pysqlite", database=str(path))


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
