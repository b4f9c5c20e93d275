"""Schema versions in one place: every component's table set and version, and the one upgrade path.

One database file holds its components, each with its own row in ``meta`` (application ->
schema version) so that each evolves apart:

    application         version  tables
    mailferry           3        meta, checkpoints, copied, intents, failures (the sync state;
                                 its row is also the file's identity: a file without it is not ours)
    mailferry.batches   2        batch_endpoints, batch_batches, batch_mailboxes, batch_runs,
                                 batch_failures, batch_services, batch_workers, batch_release
    mailferry.web       1        web_admin, web_tokens, web_sessions
    mailferry.items     1        dav_collections, dav_items, dav_intents, dav_identities,
                                 dav_failures (the state of calendars and contacts)
    mailferry.mailbox   4        mbx_folders, mbx_items, mbx_intents, mbx_failures (the state of
                                 Microsoft 365 mailboxes moved through Graph), mbx_listed (a
                                 pass's scratch lists), mbx_doubts (copies not yet reported
                                 that may be second ones)

Opening a store runs ``ensure`` for its component in one writing transaction: tables created on
first use, an older version brought up to date (``upgrade``), a newer or damaged one refused. So a
file made before a component existed (a mail-only state file) gains its tables when a store of that
component first opens it, and not before: opening the file for mail leaves it as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, ScalarSelect, Table, func, inspect, select, update
from sqlalchemy.exc import SQLAlchemyError

from mailferry.adapters.store import tables as t
from mailferry.adapters.store.engine import Database, db_reason, unreachable
from mailferry.domain.errors import SchemaTooOldError, StateError


@dataclass(frozen=True)
class Component:
    application: str
    version: int
    tables: tuple[Table, ...]
    what: str  # how errors name its tables
    # Columns added after a release of this version (all nullable), added to an older file.
    later_columns: tuple[Table, ...] = ()
    # Upgrades between versions: (from below this version, statements).
    steps: tuple[tuple[int, Callable[[Connection], None]], ...] = ()


def _sync_v2(conn: Connection) -> None:
    """2: copied.label, copied.elsewhere, intents.label (label folders, Gmail)."""
    conn.exec_driver_sql("ALTER TABLE copied ADD COLUMN label TEXT")
    conn.exec_driver_sql("ALTER TABLE copied ADD COLUMN elsewhere INTEGER NOT NULL DEFAULT 0")
    conn.exec_driver_sql("CREATE INDEX copied_label ON copied (pair, label)")
    conn.exec_driver_sql("ALTER TABLE intents ADD COLUMN label TEXT")


def _sync_v3(conn: Connection) -> None:
    """3: checkpoints.copied, each folder's rows counted once here (``SqlStateStore``). A version,
    not a later column: a mailferry before it would write rows without clearing the count."""
    add_missing_columns(conn, t.CHECKPOINTS)
    conn.execute(update(t.CHECKPOINTS).values(copied=copied_count()))


def copied_count() -> ScalarSelect[int]:
    """The rows of ``copied`` of the checkpoint's folder, for an UPDATE of ``checkpoints``."""
    rows, points = t.COPIED.c, t.CHECKPOINTS.c
    found = select(func.count()).where(rows.pair == points.pair, rows.folder == points.folder)
    return found.scalar_subquery()


def _batches_v2(conn: Connection) -> None:
    """2: batch_workers (the workers on a shared database), batch_release (who upgraded it)."""
    t.METADATA.create_all(conn, tables=[t.WORKERS, t.RELEASE])


def _mailbox_v2(conn: Connection) -> None:
    """2: mbx_listed and an index of mbx_items by target id (passes flat in folder size)."""
    t.METADATA.create_all(conn, tables=[t.MBX_LISTED])
    conn.exec_driver_sql(
        "CREATE INDEX IF NOT EXISTS mbx_items_target ON mbx_items (pair, source, target_id)"
    )


def _mailbox_v3(conn: Connection) -> None:
    """3: mbx_intents.size, so that a create is not settled by another item's copy with its key
    (an intent of schema 2 keeps NULL: settled by key alone, as before). Only if missing, as the
    step before is: tables made at 3 whose ``meta`` row says older are brought up, not refused."""
    add_missing_columns(conn, t.MBX_INTENTS)


def _mailbox_v4(conn: Connection) -> None:
    """4: mbx_doubts, so that a possible second copy is reported by a run that finishes, not only
    by the run that learnt of it. Only if missing (``create_all`` checks first), as above."""
    t.METADATA.create_all(conn, tables=[t.MBX_DOUBTS])


SYNC = Component(
    "mailferry",
    3,
    (t.META, t.CHECKPOINTS, t.COPIED, t.INTENTS, t.FAILURES),
    "state",
    steps=((2, _sync_v2), (3, _sync_v3)),
)
BATCHES = Component(
    "mailferry.batches",
    2,
    (
        t.ENDPOINTS,
        t.BATCHES,
        t.MAILBOXES,
        t.RUNS,
        t.BATCH_FAILURES,
        t.SERVICES,
        t.WORKERS,
        t.RELEASE,
    ),
    "batch",
    later_columns=(t.ENDPOINTS, t.MAILBOXES, t.BATCH_FAILURES),
    steps=((2, _batches_v2),),
)
WEB = Component(
    "mailferry.web",
    1,
    (t.ADMIN, t.TOKENS, t.SESSIONS),
    "web",
    later_columns=(t.TOKENS, t.SESSIONS),
)
ITEMS = Component(
    "mailferry.items",
    1,
    (t.DAV_COLLECTIONS, t.DAV_ITEMS, t.DAV_INTENTS, t.DAV_IDENTITIES, t.DAV_FAILURES),
    "calendar and contact",
)
MAILBOX = Component(
    "mailferry.mailbox",
    4,
    (t.MBX_FOLDERS, t.MBX_ITEMS, t.MBX_INTENTS, t.MBX_FAILURES, t.MBX_LISTED, t.MBX_DOUBTS),
    "Microsoft 365 mailbox",
    steps=((2, _mailbox_v2), (3, _mailbox_v3), (4, _mailbox_v4)),
)
COMPONENTS = (SYNC, BATCHES, WEB, ITEMS, MAILBOX)


def open_file(db: Database) -> None:
    """Recognise the database as ours (creating the sync state in an empty one), or refuse it;
    only then is WAL switched on. Every store runs this before its own component."""
    try:
        with db.engine.begin() as conn:  # a read: see ensure
            _recognise(conn, db.where)
        db.known_ours()
    except SQLAlchemyError as exc:  # e.g. "file is not a database", "unable to open"
        raise unreachable(exc, db.where) or StateError(
            f"{db.where} cannot be opened as a state database: {db_reason(exc)}"
        ) from exc


def ensure(db: Database, component: Component, *, may_upgrade: bool | None = None) -> None:
    """Create the component's tables and its row in ``meta`` on first use, bring an older one up
    to date, refuse a newer or a damaged one. ``may_upgrade`` False (a server database, unless
    `mailferry db upgrade` runs this): a missing or older schema is refused instead.

    An up-to-date file is recognised in a read transaction: on SQLite a writer's lock would make
    every command (`batch status`) wait for a service that holds it, busy or frozen (SIGSTOP)."""
    with db.transaction() as conn:
        if _current(conn, component):
            return
    with db.transaction(write=True) as conn:
        found = _version(conn, component)
        allowed = db.upgrades_on_open if may_upgrade is None else may_upgrade
        if not allowed and _outdated(conn, component, found):
            now = "missing" if found is None else f"at schema {found}"
            raise SchemaTooOldError(
                f"{db.where}: the {component.what} tables are {now} (this mailferry: schema "
                f"{component.version}); run `mailferry db upgrade`"
            )
        if found is None:
            t.METADATA.create_all(conn, tables=list(component.tables))
            conn.execute(
                t.META.insert(),
                {"application": component.application, "schema_version": component.version},
            )
            return
        if found > component.version:
            raise StateError(
                f"{db.where}: {component.what} tables have schema {found}; upgrade mailferry"
            )
        upgrade(conn, component, found)
        missing = sorted({x.name for x in component.tables} - set(inspect(conn).get_table_names()))
        if missing:
            raise StateError(f"{db.where} is damaged: missing tables {', '.join(missing)}")


def upgrade(conn: Connection, component: Component, found: int) -> None:
    """The one upgrade path: version steps, then columns added within a version."""
    for below, step in component.steps:
        if found < below:
            step(conn)
    if found < component.version:
        conn.execute(
            update(t.META)
            .where(t.META.c.application == component.application)
            .values(schema_version=component.version)
        )
    for table in component.later_columns:
        add_missing_columns(conn, table)


def add_missing_columns(conn: Connection, table: Table) -> None:
    """Columns added to a table after its first release (all nullable): a file made before them
    gets them here, and its old rows read as None (the stores read that as the default)."""
    have = {c["name"] for c in inspect(conn).get_columns(table.name)}
    for column in table.columns:
        if column.name not in have and column.nullable:
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}")


def upgrade_all(db: Database) -> list[tuple[str, int | None, int]]:
    """`mailferry db upgrade`: every component created or brought up to date, in one place;
    (application, version found, version now) for each."""
    open_file(db)
    done = []
    for component in COMPONENTS:
        with db.transaction() as conn:
            found = _version(conn, component)
        ensure(db, component, may_upgrade=True)
        done.append((component.application, found, component.version))
    return done


def _current(conn: Connection, component: Component) -> bool:
    """Up to date and whole: nothing for ``ensure`` to create, upgrade or refuse."""
    found = _version(conn, component)
    if found != component.version or _outdated(conn, component, found):
        return False
    return {x.name for x in component.tables} <= set(inspect(conn).get_table_names())


def _outdated(conn: Connection, component: Component, found: int | None) -> bool:
    if found is None or found < component.version:
        return True
    for table in component.later_columns:
        have = {c["name"] for c in inspect(conn).get_columns(table.name)}
        if any(c.name not in have and c.nullable for c in table.columns):
            return True
    return False


def _version(conn: Connection, component: Component) -> int | None:
    if not inspect(conn).has_table(t.META.name):
        return None  # an empty file (``open_file`` refused any other without it)
    query = select(t.META.c.schema_version).where(t.META.c.application == component.application)
    found = conn.scalar(query)
    return None if found is None else int(found)


def _recognise(conn: Connection, where: str) -> None:
    tables = set(inspect(conn).get_table_names())
    if not tables:
        return  # an empty file: ``ensure(SYNC)`` makes it a state database
    not_ours = StateError(f"{where} is not a mailferry state database")
    if t.META.name not in tables:
        raise not_ours
    columns = {c["name"] for c in inspect(conn).get_columns(t.META.name)}
    if not {"application", "schema_version"} <= columns:
        raise not_ours
    version = conn.scalar(
        select(t.META.c.schema_version).where(t.META.c.application == SYNC.application)
    )
    if not isinstance(version, int):
        raise not_ours
    if version > SYNC.version:
        raise StateError(f"{where} was written by a newer mailferry (schema {version}); upgrade")
    if version < 1:
        raise StateError(f"{where} has an unknown schema version {version}")
