"""The migration service's tables: endpoints, batches, mailboxes, runs, per-message failures.

They live in the same database as the sync state (one file to back up, one place to look), in
their own tables, with their own row in ``meta`` (application ``mailferry.batches``) so their
schema evolves apart from the sync state's. SQLAlchemy Core with portable types only (Text,
Integer, BigInteger, Float, Boolean): the same code runs on PostgreSQL. Times are UNIX seconds
(float), which compare the same on every backend. Passwords arrive here already encrypted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    URL,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    inspect,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from mailferry.adapters.sqlite_state import META, SqlStateStore, db_reason, ensure_component
from mailferry.domain.errors import ConfigError, StateError

APPLICATION = "mailferry.batches"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
_WRITE = "mailferry_write"

METADATA = MetaData()
# The shared ``meta`` table, declared again in this MetaData (same name and columns) so that
# create_all here never touches the sync state's tables.
_META = Table(
    META.name,
    METADATA,
    *(Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable) for c in META.c),
)

ENDPOINTS = Table(
    "batch_endpoints",
    METADATA,
    Column("name", String(64), primary_key=True),
    Column("host", Text, nullable=False),
    Column("port", Integer, nullable=False),
    Column("security", String(16), nullable=False),
    Column("auth_user", Text, nullable=True),
    Column("auth_secret", Text, nullable=True),  # Fernet token
    Column("max_connections", Integer, nullable=False),
    Column("ca_file", Text, nullable=True),
    Column("insecure", Boolean, nullable=False, default=False),
    Column("created", Float, nullable=False),
    # Added after the first schema (see _add_missing_columns); NULL in an older row reads as the
    # default. ``oauth`` is JSON: the token source's settings, its secrets as Fernet tokens.
    Column("auth", String(16), nullable=True),  # an AuthMethod value; NULL: auto
    Column("oauth", Text, nullable=True),
    Column("profile", String(16), nullable=True),  # a profile name; NULL: auto
)
BATCHES = Table(
    "batch_batches",
    METADATA,
    Column("name", String(64), primary_key=True),
    Column("source", String(64), ForeignKey("batch_endpoints.name"), nullable=False),
    Column("target", String(64), ForeignKey("batch_endpoints.name"), nullable=False),
    Column("options", Text, nullable=False),  # JSON: since, before, include_deleted
    Column("every", Float, nullable=True),  # seconds between scheduled incremental passes
    Column("stop_requested", Boolean, nullable=False, default=False),
    Column("created", Float, nullable=False),
)


def _batch_fk() -> ForeignKey:
    return ForeignKey("batch_batches.name", ondelete="CASCADE")


MAILBOXES = Table(
    "batch_mailboxes",
    METADATA,
    Column("batch", String(64), _batch_fk(), primary_key=True),
    Column("email", Text, primary_key=True),
    Column("line", Integer, nullable=False),
    Column("source_user", Text, nullable=False),
    Column("source_secret", Text, nullable=True),
    Column("target_user", Text, nullable=False),
    Column("target_secret", Text, nullable=True),
    Column("include", Text, nullable=False, default="[]"),  # JSON list of regexes
    Column("exclude", Text, nullable=False, default="[]"),
    Column("state", String(16), nullable=False),
    Column("pending", String(16), nullable=True),  # the pass wanted: "sync" or "complete"
    Column("reason", Text, nullable=True),
    Column("owner", Text, nullable=True),  # the process running it (see scheduler.Owner)
    Column("heartbeat", Float, nullable=True),
    Column("folders", Integer, nullable=False, default=0),
    Column("copied", BigInteger, nullable=False, default=0),  # all runs
    Column("bytes", BigInteger, nullable=False, default=0),  # all runs
    Column("existing", BigInteger, nullable=False, default=0),  # last run
    Column("skipped", BigInteger, nullable=False, default=0),  # last run: deleted + filtered
    Column("errors", Integer, nullable=False, default=0),  # last run
    Column("planned", BigInteger, nullable=False, default=0),  # current run, so far
    Column("planned_bytes", BigInteger, nullable=False, default=0),
    Column("done", BigInteger, nullable=False, default=0),
    Column("done_bytes", BigInteger, nullable=False, default=0),
    Column("seconds", Float, nullable=False, default=0.0),  # all runs
    Column("started", Float, nullable=True),  # current or last run
    Column("finished", Float, nullable=True),
    Column("last_synced", Float, nullable=True),
)
RUNS = Table(
    "batch_runs",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch", String(64), _batch_fk(), nullable=False),
    Column("email", Text, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("started", Float, nullable=False),
    Column("finished", Float, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("summary", Text, nullable=False),  # Summary.as_json()
)
FAILURES = Table(
    "batch_failures",
    METADATA,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("batch", String(64), _batch_fk(), nullable=False),
    Column("email", Text, nullable=False),
    Column("folder", Text, nullable=False),
    Column("uid", BigInteger, nullable=True),
    Column("reason", Text, nullable=False),
)
SERVICES = Table(
    "batch_services",
    METADATA,
    Column("owner", Text, primary_key=True),
    Column("heartbeat", Float, nullable=False),
)
_OURS = (ENDPOINTS, BATCHES, MAILBOXES, RUNS, FAILURES, SERVICES)


@dataclass(frozen=True)
class EndpointRecord:
    name: str
    host: str
    port: int
    security: str
    max_connections: int
    auth_user: str | None = None
    auth_secret: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    insecure: bool = False
    created: float = 0.0
    auth: str = "auto"
    oauth: str | None = field(default=None, repr=False)  # JSON, secrets encrypted
    profile: str = "auto"


@dataclass(frozen=True)
class BatchRecord:
    name: str
    source: str
    target: str
    options: dict[str, Any]
    every: float | None = None
    stop_requested: bool = False
    created: float = 0.0


@dataclass(frozen=True)
class MailboxRecord:
    batch: str
    email: str
    line: int
    source_user: str
    target_user: str
    state: str
    source_secret: str | None = field(default=None, repr=False)
    target_secret: str | None = field(default=None, repr=False)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    pending: str | None = None
    reason: str | None = None
    owner: str | None = None
    heartbeat: float | None = None
    folders: int = 0
    copied: int = 0
    bytes: int = 0
    existing: int = 0
    skipped: int = 0
    errors: int = 0
    planned: int = 0
    planned_bytes: int = 0
    done: int = 0
    done_bytes: int = 0
    seconds: float = 0.0
    started: float | None = None
    finished: float | None = None
    last_synced: float | None = None


@dataclass(frozen=True)
class FailureRecord:
    email: str
    folder: str
    uid: int | None
    reason: str


@dataclass(frozen=True)
class Outcome:
    """What a finished run leaves on its mailbox row."""

    state: str
    reason: str | None
    kind: str
    started: float
    finished: float
    summary: dict[str, Any]
    failures: Sequence[FailureRecord] = ()
    keep_pending: bool = False  # the process is shutting down: run it again on the next start


def _pragmas(dbapi_connection: Any, _record: object) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself
    with closing(dbapi_connection.cursor()) as cursor:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = FULL")


def _begin(conn: Connection) -> None:
    # A writer takes the lock up front (and waits for it: busy_timeout); readers never block
    # in WAL mode, so `batch status` stays quick while a service writes.
    write = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class BatchStore:
    """The service's persistence; every method is one transaction and translates DB errors."""

    def __init__(self, engine: Engine, where: str) -> None:
        self._engine = engine
        self._writer = engine.execution_options(**{_WRITE: True})
        self._where = where
        try:
            with self._tx(write=True) as conn:
                self._check_or_create(conn)
        except BaseException:
            engine.dispose()
            raise

    @classmethod
    def open_sqlite(cls, path: Path) -> BatchStore:
        """Open (creating it if need be) the state file, then this store's tables in it."""
        SqlStateStore.open_sqlite(path).close()  # recognises or creates the file and its schema
        engine = create_engine(URL.create("sqlite+pysqlite", database=str(path)))
        event.listen(engine, "connect", _pragmas)
        event.listen(engine, "begin", _begin)
        return cls(engine, str(path))

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _tx(self, *, write: bool = False) -> Iterator[Connection]:
        try:
            with (self._writer if write else self._engine).begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StateError(f"state database {self._where}: {db_reason(exc)}") from exc

    def _check_or_create(self, conn: Connection) -> None:
        ensure_component(
            conn,
            _META,
            application=APPLICATION,
            version=SCHEMA_VERSION,
            tables=_OURS,
            where=self._where,
            what="batch",
        )
        _add_missing_columns(conn)

    # -- endpoints ---------------------------------------------------------------------------------
    def add_endpoint(self, record: EndpointRecord, *, replace: bool = False) -> None:
        row = _as_row(record)
        try:
            with self._tx(write=True) as conn:
                if replace:
                    conn.execute(
                        update(ENDPOINTS).where(ENDPOINTS.c.name == record.name).values(row)
                    )
                else:
                    conn.execute(ENDPOINTS.insert(), row)
        except StateError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise ConfigError(f"endpoint {record.name!r} exists already") from None
            raise

    def endpoint(self, name: str) -> EndpointRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(ENDPOINTS).where(ENDPOINTS.c.name == name)).one_or_none()
        return None if row is None else _endpoint(row._asdict())

    def endpoints(self) -> list[EndpointRecord]:
        with self._tx() as conn:
            rows = conn.execute(select(ENDPOINTS).order_by(ENDPOINTS.c.name)).all()
        return [_endpoint(row._asdict()) for row in rows]

    def remove_endpoint(self, name: str) -> bool:
        used = select(BATCHES.c.name).where((BATCHES.c.source == name) | (BATCHES.c.target == name))
        with self._tx(write=True) as conn:
            users = list(conn.scalars(used))
            if users:
                raise ConfigError(f"endpoint {name!r} is used by batch(es) {', '.join(users)}")
            return conn.execute(delete(ENDPOINTS).where(ENDPOINTS.c.name == name)).rowcount > 0

    # -- batches -----------------------------------------------------------------------------------
    def create_batch(self, batch: BatchRecord, mailboxes: Sequence[MailboxRecord]) -> None:
        row = _as_row(batch)
        row["options"] = json.dumps(batch.options, sort_keys=True)
        try:
            with self._tx(write=True) as conn:
                conn.execute(BATCHES.insert(), row)
                conn.execute(MAILBOXES.insert(), [_mailbox_row(m) for m in mailboxes])
        except StateError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise ConfigError(f"batch {batch.name!r} exists already") from None
            raise

    def batch(self, name: str) -> BatchRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(BATCHES).where(BATCHES.c.name == name)).one_or_none()
        return None if row is None else _batch(row._asdict())

    def batches(self) -> list[BatchRecord]:
        with self._tx() as conn:
            rows = conn.execute(select(BATCHES).order_by(BATCHES.c.created)).all()
        return [_batch(row._asdict()) for row in rows]

    def delete_batch(self, name: str) -> None:
        with self._tx(write=True) as conn:
            for table in (FAILURES, RUNS, MAILBOXES):
                conn.execute(delete(table).where(table.c.batch == name))
            conn.execute(delete(BATCHES).where(BATCHES.c.name == name))

    def set_batch(self, name: str, **values: Any) -> None:
        with self._tx(write=True) as conn:
            conn.execute(update(BATCHES).where(BATCHES.c.name == name).values(**values))

    # -- mailboxes ---------------------------------------------------------------------------------
    def mailboxes(
        self, batch: str | None = None, *, pending_only: bool = False
    ) -> list[MailboxRecord]:
        query = select(MAILBOXES).order_by(MAILBOXES.c.batch, MAILBOXES.c.line)
        if batch is not None:
            query = query.where(MAILBOXES.c.batch == batch)
        if pending_only:
            query = query.where(MAILBOXES.c.pending.is_not(None))
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return [_mailbox(row._asdict()) for row in rows]

    def request(
        self,
        batch: str,
        pending: str | None,
        states: Sequence[str],
        *,
        state: str | None = None,
        emails: Sequence[str] | None = None,
    ) -> int:
        """Set ``pending`` (and ``state``) on the batch's mailboxes in ``states`` (and ``emails``)."""
        values: dict[str, Any] = {"pending": pending}
        if state is not None:
            values["state"] = state
        statement = (
            update(MAILBOXES)
            .where(MAILBOXES.c.batch == batch, MAILBOXES.c.state.in_(list(states)))
            .values(**values)
        )
        if emails is not None:
            statement = statement.where(MAILBOXES.c.email.in_(list(emails)))
        with self._tx(write=True) as conn:
            return int(conn.execute(statement).rowcount)

    def unowned_request(self, batch: str, pending: str | None, state: str, live: set[str]) -> int:
        """Like ``request`` for every mailbox not run by a live process (``stop``)."""
        with self._tx(write=True) as conn:
            rows = conn.execute(
                select(MAILBOXES.c.email, MAILBOXES.c.owner).where(
                    MAILBOXES.c.batch == batch, MAILBOXES.c.pending.is_not(None)
                )
            ).all()
            emails = [r.email for r in rows if r.owner is None or r.owner not in live]
            for email in emails:
                conn.execute(
                    update(MAILBOXES)
                    .where(MAILBOXES.c.batch == batch, MAILBOXES.c.email == email)
                    .values(pending=pending, state=state, owner=None)
                )
        return len(emails)

    def claim(self, batch: str, email: str, owner: str, previous: str | None, now: float) -> bool:
        """Take a pending mailbox for ``owner``; False if somebody else got it first."""
        mb = MAILBOXES.c
        taken = mb.owner.is_(None) if previous is None else mb.owner == previous
        with self._tx(write=True) as conn:
            pending = conn.scalar(
                select(mb.pending).where(mb.batch == batch, mb.email == email, taken)
            )
            if pending is None:
                return False
            result = conn.execute(
                update(MAILBOXES)
                .where(mb.batch == batch, mb.email == email, taken)
                .values(
                    owner=owner,
                    heartbeat=now,
                    state="completing" if pending == "complete" else "syncing",
                    reason=None,
                    started=now,
                    finished=None,
                    planned=0,
                    planned_bytes=0,
                    done=0,
                    done_bytes=0,
                )
            )
            return bool(result.rowcount == 1)

    def progress(self, batch: str, email: str, owner: str, now: float, **counts: int) -> bool:
        """Record a running mailbox's progress; True when its batch was asked to stop."""
        mb = MAILBOXES.c
        with self._tx(write=True) as conn:
            conn.execute(
                update(MAILBOXES)
                .where(mb.batch == batch, mb.email == email, mb.owner == owner)
                .values(heartbeat=now, **counts)
            )
            stop = conn.scalar(select(BATCHES.c.stop_requested).where(BATCHES.c.name == batch))
        return bool(stop)

    def finish(self, batch: str, email: str, owner: str, outcome: Outcome) -> None:
        """Record a run's end on its mailbox (if ``owner`` still holds it), its run row and failures."""
        mb = MAILBOXES.c
        summary = outcome.summary
        with self._tx(write=True) as conn:
            current = conn.execute(
                select(mb.copied, mb.bytes, mb.seconds, mb.pending).where(
                    mb.batch == batch, mb.email == email, mb.owner == owner
                )
            ).one_or_none()
            if current is None:
                return  # the batch was deleted meanwhile
            values: dict[str, Any] = {
                "state": outcome.state,
                "reason": outcome.reason,
                "owner": None,
                "finished": outcome.finished,
                "copied": current.copied + int(summary.get("messages_copied", 0)),
                "bytes": current.bytes + int(summary.get("bytes_copied", 0)),
                "seconds": current.seconds + (outcome.finished - outcome.started),
                "folders": int(summary.get("folders", 0)),
                "existing": int(summary.get("messages_skipped_existing", 0)),
                "skipped": int(summary.get("messages_skipped_deleted", 0))
                + int(summary.get("messages_skipped_filtered", 0)),
                "errors": len(outcome.failures),
            }
            if not outcome.keep_pending:
                values["pending"] = None
            if outcome.state in ("synced", "completed"):
                values["last_synced"] = outcome.finished
            conn.execute(
                update(MAILBOXES).where(mb.batch == batch, mb.email == email).values(**values)
            )
            conn.execute(
                RUNS.insert(),
                {
                    "batch": batch,
                    "email": email,
                    "kind": outcome.kind,
                    "started": outcome.started,
                    "finished": outcome.finished,
                    "outcome": outcome.state,
                    "summary": json.dumps(summary, ensure_ascii=False),
                },
            )
            if not outcome.keep_pending:
                conn.execute(
                    delete(FAILURES).where(FAILURES.c.batch == batch, FAILURES.c.email == email)
                )
                rows = [{"batch": batch, **_as_row(f)} for f in outcome.failures]
                if rows:
                    conn.execute(FAILURES.insert(), rows)

    def failures(self, batch: str) -> list[FailureRecord]:
        query = (
            select(FAILURES.c.email, FAILURES.c.folder, FAILURES.c.uid, FAILURES.c.reason)
            .where(FAILURES.c.batch == batch)
            .order_by(FAILURES.c.id)
        )
        with self._tx() as conn:
            return [FailureRecord(**row._asdict()) for row in conn.execute(query)]

    def runs(self, batch: str) -> list[dict[str, Any]]:
        query = select(RUNS).where(RUNS.c.batch == batch).order_by(RUNS.c.id)
        with self._tx() as conn:
            return [row._asdict() for row in conn.execute(query)]

    # -- liveness ----------------------------------------------------------------------------------
    def heartbeat(self, owner: str, now: float, *, service: bool) -> None:
        """Refresh the owner's claims (and its service row, for ``mailferry serve``)."""
        with self._tx(write=True) as conn:
            conn.execute(update(MAILBOXES).where(MAILBOXES.c.owner == owner).values(heartbeat=now))
            if service:
                found = conn.execute(
                    update(SERVICES).where(SERVICES.c.owner == owner).values(heartbeat=now)
                ).rowcount
                if not found:
                    conn.execute(SERVICES.insert(), {"owner": owner, "heartbeat": now})

    def services(self) -> list[tuple[str, float]]:
        with self._tx() as conn:
            return [(r.owner, r.heartbeat) for r in conn.execute(select(SERVICES))]

    def forget_service(self, owner: str) -> None:
        with self._tx(write=True) as conn:
            conn.execute(delete(SERVICES).where(SERVICES.c.owner == owner))


def _add_missing_columns(conn: Connection) -> None:
    """Columns added to a table after its first release of schema 1 (all nullable): a file made
    before them gets them here, and its old rows read as the defaults."""
    for table in (ENDPOINTS,):
        have = {c["name"] for c in inspect(conn).get_columns(table.name)}
        for column in table.columns:
            if column.name not in have and column.nullable:
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}")


def _endpoint(row: dict[str, Any]) -> EndpointRecord:
    row["auth"] = row.get("auth") or "auto"
    row["profile"] = row.get("profile") or "auto"
    return EndpointRecord(**row)


def _as_row(record: object) -> dict[str, Any]:
    return dict(record.__dict__)


def _mailbox_row(record: MailboxRecord) -> dict[str, Any]:
    row = _as_row(record)
    row["include"] = json.dumps(list(record.include))
    row["exclude"] = json.dumps(list(record.exclude))
    return row


def _mailbox(row: dict[str, Any]) -> MailboxRecord:
    row["include"] = tuple(json.loads(row["include"]))
    row["exclude"] = tuple(json.loads(row["exclude"]))
    return MailboxRecord(**row)


def _batch(row: dict[str, Any]) -> BatchRecord:
    row["options"] = json.loads(row["options"])
    return BatchRecord(**row)
